"""Covariates at inflow: age, sex, migration background and generation from
GBAPERSOONTAB (the municipal record where the register has no birth date or
sex), education from HOOGSTEOPLTAB ("missing" without a record), the health
proxy from MEDICIJNTAB, and household, language level, distance to the labour
market, district, team and case manager from the municipal record; then the
0/1 indicators under the covariate names of the synthetic world
(:data:`reintegration.research.panel_contract.COVARIATES`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .panel_contract import KEY, person_key, person_positions
from .panel_sources import Sources

#: ATC4 groups of long-term medication: the health proxy (as in the schema of
#: MEDICIJNTAB; Yildiz, Burdorf & Schuring use medication as a proxy for chronic
#: disease)
CHRONIC_ATC4 = ("A10B", "C07A", "C09A", "C10A", "N05A", "N06A", "R03A")
#: calendar years before the inflow year in which chronic medication counts
HEALTH_YEARS = (1, 2)
#: country of origin (GBAHERKOMSTGROEPERING) -> migration background. These are
#: the illustrative four-digit codes of the synthetic files; inside Remote
#: Access, replace the table by CBS's country reference file. Codes not listed
#: become "unknown".
MIGRATION_GROUPS: dict[str, str] = {
    "6030": "nl",
    "5022": "ma",
    "6043": "tr",
    "5007": "sr",
    "5107": "an",
    "5095": "an",
    "5016": "other_nonwestern",
    "5028": "other_nonwestern",
    "5034": "other_nonwestern",
    "5040": "other_nonwestern",
    "6020": "western",
    "6029": "western",
    "6039": "western",
    "6037": "western",
}
#: GBAGENERATIE -> generation
GENERATIONS = {"0": "none", "1": "first", "2": "second"}
#: first digit of OPLNIVSOI2016AGG4HBMETNIRWO -> education level
EDUCATION_LEVELS = {"1": "low", "2": "middle", "3": "high"}
#: age groups at inflow (lower bounds, labels)
AGE_GROUPS = ((0, "under 27"), (27, "27-49"), (50, "50 and over"))
UNKNOWN = "unknown"


def covariates_at_inflow(
    out: pd.DataFrame, persons: pd.DataFrame, src: Sources, index: pd.Index, t0: np.ndarray
) -> None:
    """Covariates at inflow: register data first, municipal record as fallback."""
    n = len(out)
    gba = src.gba.drop_duplicates(KEY)
    gba = gba.set_index(person_key(gba)).reindex(index)
    mun_by = pd.to_numeric(persons["birth_year"], errors="coerce").to_numpy(dtype=float)
    mun_bm = pd.to_numeric(persons["birth_month"], errors="coerce").to_numpy(dtype=float)
    by = pd.to_numeric(gba["GBAGEBOORTEJAAR"], errors="coerce").to_numpy(dtype=float)
    bm = pd.to_numeric(gba["GBAGEBOORTEMAAND"], errors="coerce").to_numpy(dtype=float)
    by = np.where(np.isnan(by), mun_by, by)
    bm = np.where(np.isnan(bm), mun_bm, bm)
    birth_m = (by - 1970) * 12 + bm - 1
    age = np.floor((t0 - birth_m) / 12)
    out["age"] = pd.array(np.where(np.isnan(age), 0, age).astype("int16"), dtype="Int16")
    out.loc[np.isnan(age), "age"] = pd.NA
    groups = np.full(n, UNKNOWN, dtype=object)
    for bound, label in AGE_GROUPS:
        groups[~np.isnan(age) & (age >= bound)] = label
    out["age_group"] = pd.array(groups, dtype="string")
    sex = gba["GBAGESLACHT"].astype(str).str.strip().map({"1": "male", "2": "female"})
    mun_sex = persons["sex"].astype(object).where(persons["sex"].notna(), None).to_numpy()
    sex = np.where(sex.isna().to_numpy(), mun_sex, sex.to_numpy(dtype=object))
    sex = np.where(pd.isna(sex), UNKNOWN, sex)
    out["sex"] = pd.array(sex, dtype="string")
    origin = gba["GBAHERKOMSTGROEPERING"].astype(str).str.strip().map(MIGRATION_GROUPS)
    out["migration"] = pd.array(origin.fillna(UNKNOWN).to_numpy(dtype=object), dtype="string")
    gen = gba["GBAGENERATIE"].astype(str).str.strip().map(GENERATIONS)
    out["generation"] = pd.array(gen.fillna(UNKNOWN).to_numpy(dtype=object), dtype="string")
    edu = src.education.drop_duplicates(KEY)
    level = edu["OPLNIVSOI2016AGG4HBMETNIRWO"].astype(str).str.strip().str[:1].map(EDUCATION_LEVELS)
    level = pd.Series(level.to_numpy(), index=person_key(edu)).reindex(index)
    out["education"] = pd.array(level.fillna("missing").to_numpy(dtype=object), dtype="string")
    for column in (
        "household_type",
        "language_level",
        "labour_market_distance",
        "district",
        "team",
    ):
        values = persons[column].astype("string").fillna(UNKNOWN)
        out[column] = values.to_numpy()
        out[column] = out[column].astype("string")
    out["case_manager"] = persons["case_manager"].astype("string").to_numpy()
    out["case_manager"] = out["case_manager"].astype("string")
    # health proxy: long-term medication in the two calendar years before the inflow year
    med = src.medication
    mp = person_positions(index, med)
    year = pd.to_numeric(med["JAAR"], errors="coerce").to_numpy(dtype=float)
    chronic_row = (mp >= 0) & med["ATC4"].astype(str).str.strip().isin(CHRONIC_ATC4).to_numpy()
    inflow_year = 1970 + t0 // 12
    lag = np.where(mp >= 0, inflow_year[np.maximum(mp, 0)] - year, -1)
    hit = chronic_row & np.isin(lag, HEALTH_YEARS)
    health = np.zeros(n, dtype="int8")
    health[mp[hit]] = 1
    out["health_chronic"] = health
    # 0/1 indicators under the covariate names of the synthetic world
    ind = {
        "female": out["sex"] == "female",
        "age_under_27": out["age_group"] == "under 27",
        "age_50_plus": out["age_group"] == "50 and over",
        "migrant_first_generation": out["generation"] == "first",
        "migrant_second_generation": out["generation"] == "second",
        "education_low": out["education"] == "low",
        "education_high": out["education"] == "high",
        "education_missing": out["education"] == "missing",
        "single_parent": out["household_type"] == "single_parent",
        "couple_children": out["household_type"] == "couple_children",
        "language_low": out["language_level"] == "below_b1",
        "distance_short": out["labour_market_distance"] == "short",
        "distance_large": out["labour_market_distance"] == "large",
    }
    for name, values in ind.items():
        out[name] = values.fillna(False).to_numpy(dtype=bool).astype("int8")

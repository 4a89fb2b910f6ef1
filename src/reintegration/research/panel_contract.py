"""The contract of the analysis panel's files: their key, rows and columns
(:data:`CONTRACT`), the outcome horizons and the covariate names, and the
person key every part of the panel is joined on.

:mod:`reintegration.research.panel` builds the files to this contract; the data
dictionary of the book and ``panel.json`` show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: months of history before inflow in the panel
PRE_MONTHS = 24
#: outcome horizons in months (those within the city's follow-up are used)
HORIZONS = (6, 12, 18, 24)
#: the instrument of a cohort member who started none in the follow-up window
NO_INSTRUMENT = "none"

#: 0/1 covariates of ``persons`` with the names the synthetic world uses for its
#: planted coefficients (so estimates and truth can be compared by name)
COVARIATES = (
    "female",
    "age_under_27",
    "age_50_plus",
    "migrant_first_generation",
    "migrant_second_generation",
    "education_low",
    "education_high",
    "education_missing",
    "single_parent",
    "couple_children",
    "health_chronic",
    "language_low",
    "distance_short",
    "distance_large",
    "prior_employment",
)

#: the person key (CBS): key source and pseudonymous person number
KEY = ["RINPERSOONS", "RINPERSOON"]

# the tables below read as tables, one column a line
# fmt: off
_K = "RINPERSOONS, RINPERSOON"
EPISODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("RINPERSOONS", "string", "key source"),
    ("RINPERSOON", "string", "pseudonymous person number"),
    ("spell", "int8", "benefit spell the episode belongs to: 1 the cohort spell, 2 the first "
     "re-entry, ...; 0 before the cohort inflow (the last spell that started in or before "
     "the episode's start month)"),
    ("order_in_spell", "int8", "1 for the first episode of the spell, 2 for the next, ..."),
    ("instrument", "string", "instrument, key of config/instruments.yml"),
    ("start_date", "datetime64[ns]", "start of the episode"),
    ("end_date", "datetime64[ns]", "end of the episode (imputed where not delivered)"),
    ("end_imputed", "bool", "the end date was missing and is the start plus the median "
     "duration of the instrument's episodes with an end date"),
    ("start_month", "string", "calendar month of the start, YYYY-MM"),
    ("elapsed", "int16", "months from the inflow month to the start month"),
    ("spell_elapsed", "Int16", "months from the spell's first month to the start month; "
     "missing for spell 0"),
    ("first_after_inflow", "bool", "this is the person's instrument in persons.parquet"),
)

#: file -> (key, sort order, columns (name, type, meaning))
CONTRACT: dict[str, dict[str, Any]] = {
    "persons": {
        "key": _K,
        "rows": "one per cohort member",
        "columns": (
            ("RINPERSOONS", "string", "key source: R = population register, S = BSN outside it"),
            ("RINPERSOON", "string", "pseudonymous person number"),
            ("link_route", "string", "bsn or fallback: how the municipal record was linked"),
            ("inflow_date", "datetime64[ns]", "first day of the cohort benefit spell (CBS)"),
            ("inflow_month", "string", "inflow month YYYY-MM (month k = 0)"),
            ("inflow_quarter", "string", "inflow quarter, e.g. 2017Q3"),
            ("inflow_year", "int16", "inflow year"),
            ("cohort_spell_end", "datetime64[ns]", "last day of the cohort spell; missing "
             "while it runs at the end of the data"),
            ("inflow_check", "string", "municipal spells against CBS: same month, other "
             "month, or no municipal spell in the study period"),
            ("age", "Int16", "age in completed years at the end of the inflow month, from "
             "birth year and month (register, else municipal record)"),
            ("age_group", "string", "under 27, 27-49, 50 and over"),
            ("sex", "string", "male or female (register, else municipal record)"),
            ("migration", "string", "migration background from the country of origin: nl, ma, "
             "tr, sr, an, other_nonwestern, western, unknown"),
            ("generation", "string", "none, first, second, unknown (GBAGENERATIE)"),
            ("education", "string", "highest education: low, middle, high, or missing (no "
             "HOOGSTEOPLTAB record: kept as its own category)"),
            ("household_type", "string", "single, single_parent, couple, couple_children, "
             "unknown (municipal)"),
            ("language_level", "string", "below_b1, b1_or_higher, unknown (municipal)"),
            ("labour_market_distance", "string", "short, medium, large, unknown (municipal)"),
            ("district", "string", "district of the address (municipal)"),
            ("team", "string", "the district team (municipal)"),
            ("case_manager", "string", "pseudonymised case manager; missing where the city "
             "does not deliver it"),
            ("prior_employment_months", "int8", "months employed in the 24 months before the "
             "inflow month"),
            ("prior_earnings", "float64", "base wage (SBASISLOON) earned in those 24 months, "
             "euro, spread over the days of each job spell"),
            ("prior_benefit_months", "int8", "months on bijstand in those 24 months"),
            ("health_chronic", "int8", "1 if long-term medication (ATC4 A10B, C07A, C09A, C10A, "
             "N05A, N06A, R03A) was dispensed in one of the two calendar years before the "
             "inflow year"),
            *((c, "int8", "0/1 indicator (see the covariate list of the data dictionary)")
              for c in COVARIATES if c not in ("health_chronic", "prior_employment")),
            ("prior_employment", "float64", "prior_employment_months / 24"),
            ("instrument", "string", "first instrument started within the follow-up window "
             "(key of config/instruments.yml), or none"),
            ("instrument_start", "datetime64[ns]", "start date of that instrument"),
            ("instrument_start_month", "string", "its start month YYYY-MM"),
            ("instrument_elapsed", "Int16", "months from the inflow month to its start month "
             "(u); missing without an instrument"),
            ("instrument_end", "datetime64[ns]", "its end date (imputed where not delivered)"),
            ("instrument_end_imputed", "boolean", "its end date was imputed"),
            ("instrument_spell", "Int8", "1 if it started in the cohort spell, 2 in the first "
             "re-entry, ..."),
            ("instruments_in_window", "int8", "instrument episodes starting in months 0 .. "
             "follow-up"),
            ("employed_<h>", "int8", "1 if employed in month k = h (h = 6, 12, 18, 24)"),
            ("off_benefit_<h>", "int8", "1 if not on bijstand in month k = h"),
            ("months_employed", "int8", "months employed in months 1 .. 24 after inflow"),
            ("months_on_benefit", "int8", "months on bijstand in months 1 .. 24"),
            ("earnings_after", "float64", "base wage earned in months 1 .. 24, euro"),
            ("employed_after_start_<h>", "Int8", "1 if employed in month k = u + h; missing "
             "without an instrument or when u + h > 24"),
            ("off_benefit_after_start_<h>", "Int8", "1 if not on bijstand in month k = u + h; "
             "missing likewise"),
        ),
    },
    "person_months": {
        "key": f"{_K}, month",
        "rows": "one per cohort member and month k = -24 .. 24 (49 per person)",
        "columns": (
            ("RINPERSOONS", "string", "key source"),
            ("RINPERSOON", "string", "pseudonymous person number"),
            ("month", "int8", "k: months since the inflow month (-24 .. 24)"),
            ("calendar_month", "datetime64[ns]", "first day of the calendar month"),
            ("employed", "int8", "1 if a job spell overlaps the month"),
            ("earnings", "float64", "base wage of the month, euro (each spell's SBASISLOON "
             "spread over its days)"),
            ("on_benefit", "int8", "1 if a bijstand spell overlaps the month"),
            ("in_instrument", "int8", "1 if an instrument episode overlaps the month"),
            ("after_instrument_start", "int8", "1 from the start month of the person's "
             "instrument on"),
        ),
    },
    "episodes": {
        "key": f"{_K}, spell",
        "rows": "the first instrument episode of every benefit spell of a cohort member from "
        "the cohort spell on",
        "columns": EPISODE_COLUMNS,
    },
    "episodes_later": {
        "key": f"{_K}, spell, order_in_spell",
        "rows": "every other episode of a cohort member: second and later episodes of a "
        "spell, and episodes before the cohort inflow (spell 0)",
        "columns": EPISODE_COLUMNS,
    },
}

# fmt: on


def column_names(name: str, horizons: Sequence[int] = HORIZONS) -> list[str]:
    """The columns of one output file in order, ``<h>`` expanded."""
    names = []
    for column, _, _ in CONTRACT[name]["columns"]:
        if "<h>" in column:
            names += [column.replace("<h>", str(h)) for h in horizons]
        else:
            names.append(column)
    return names


def contract_table(name: str) -> pd.DataFrame:
    """The columns of one output file: name, type and meaning."""
    spec = CONTRACT[name]
    return pd.DataFrame(
        [{"column": c, "type": t, "meaning": m} for c, t, m in spec["columns"]]
    ).set_index("column")


def person_key(df: pd.DataFrame) -> pd.Series:
    """``RINPERSOONS:RINPERSOON`` of each row, as text."""
    return df["RINPERSOONS"].astype(str) + ":" + df["RINPERSOON"].astype(str)


def person_positions(index: pd.Index, df: pd.DataFrame) -> np.ndarray:
    """Position of each row's person in ``index`` (an index of
    :func:`person_key`); -1 for a person not in it."""
    if df.empty:
        return np.zeros(0, dtype="int64")
    return index.get_indexer(person_key(df)).astype("int64")

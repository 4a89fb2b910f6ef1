"""The analysis panel: cohort, covariates at inflow, instrument episodes,
person-month panel and outcomes, from the linked delivery and the CBS files.

Everything here runs in the research domain, keyed by RINPERSOONS +
RINPERSOON. The step reads

* the linked municipal delivery (``build/<size>/<city>/research/``: clients,
  benefit spells, instrument episodes; see :data:`reintegration.linkage.RESEARCH_TABLES`),
* the CBS files (``GBAPERSOONTAB``, ``HOOGSTEOPLTAB``, ``SPOLISBUS``,
  ``BIJSTANDUITKERINGTAB``, ``MEDICIJNTAB``; SPSS ``.sav``),

and writes four Parquet files back to the research domain (see
:data:`CONTRACT`): ``persons`` (one row per cohort member: covariates at
inflow, first instrument, outcomes), ``person_months`` (one row per person
and month from 24 months before to 24 months after inflow), ``episodes`` (the
first instrument of every benefit spell from the cohort spell on) and
``episodes_later`` (every other episode of a cohort member).

Definitions (the methods page of the step says the same in words):

* Months are calendar months. A person is *employed* in a month when a job
  spell of SPOLISBUS overlaps it, *on benefit* when a bijstand spell does, and
  *in an instrument* when an instrument episode does. Month ``k`` of a person
  is the calendar month ``k`` months after the inflow month (``k = 0``).
* Benefit spells are the CBS spells (statistic code ``PW``): **CBS wins**
  when the municipal and CBS spells differ. A spell that starts in the
  calendar month after an earlier spell ended, or earlier, continues that
  spell (an administrative break, not a new inflow). The municipal spells are
  only compared with them (``inflow_check``).
* The cohort is every linked client whose first CBS spell *starting* in the
  study period (``study.inflow_from`` .. ``study.inflow_to`` of the city's
  configuration) exists; its start is the inflow.
* The person's instrument is the first episode starting in the inflow month
  or later and at most ``follow_up_months`` after it. Its start month counts
  months since the inflow month.
* Outcome ``h`` months after inflow is the status in month ``k = h``; ``h``
  months after instrument start it is the status in month ``k = u + h``
  (``u`` the start month), missing when that month lies beyond the follow-up
  window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: months of history before inflow in the panel
PRE_MONTHS = 24
#: outcome horizons in months (those within the city's follow-up are used)
HORIZONS = (6, 12, 18, 24)
#: statistic codes of BIJSTANDUITKERINGTAB that count as bijstand
BIJSTAND_CODES = ("PW",)
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

_OPEN = 10**6  # month index of an open-ended spell (far beyond any data)
_KEY = ["RINPERSOONS", "RINPERSOON"]

# ---------------------------------------------------------------------------
# the contract of the output files
# ---------------------------------------------------------------------------

_K = "RINPERSOONS, RINPERSOON"
_EPISODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
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
        "columns": _EPISODE_COLUMNS,
    },
    "episodes_later": {
        "key": f"{_K}, spell, order_in_spell",
        "rows": "every other episode of a cohort member: second and later episodes of a "
        "spell, and episodes before the cohort inflow (spell 0)",
        "columns": _EPISODE_COLUMNS,
    },
}


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


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

#: CBS files and the columns the panel reads from them
CBS_COLUMNS: dict[str, tuple[str, ...]] = {
    "GBAPERSOONTAB": ("RINPERSOONS", "RINPERSOON", "GBAGESLACHT", "GBAGEBOORTEJAAR",
                      "GBAGEBOORTEMAAND", "GBAHERKOMSTGROEPERING", "GBAGENERATIE"),
    "HOOGSTEOPLTAB": ("RINPERSOONS", "RINPERSOON", "OPLNIVSOI2016AGG4HBMETNIRWO"),
    "SPOLISBUS": ("RINPERSOONS", "RINPERSOON", "SDATUMAANVANGIKO", "SDATUMEINDEIKO",
                  "SBASISLOON"),
    "BIJSTANDUITKERINGTAB": ("RINPERSOONS", "RINPERSOON", "BIJSTANDAanvangUitkeringPersoon1A",
                             "BIJSTANDEindeUitkeringPersoon1A", "BIJSTANDSTATCODE"),
    "MEDICIJNTAB": ("RINPERSOONS", "RINPERSOON", "JAAR", "ATC4"),
}
#: the linked delivery the panel reads
DELIVERY = ("clients", "benefit_spells", "instruments")


@dataclass
class Sources:
    """The input frames, with the column names of the delivery and the CBS files."""

    clients: pd.DataFrame
    benefit_spells: pd.DataFrame
    instruments: pd.DataFrame
    gba: pd.DataFrame
    education: pd.DataFrame
    jobs: pd.DataFrame
    bijstand: pd.DataFrame
    medication: pd.DataFrame


def read_sav(ctx: Any, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One CBS file of the step's city, read through the step context's
    custody check (see :func:`read_sav_file`)."""
    folder = ctx.paths.data_domain_dir("research", ctx.city_name)
    return read_sav_file(ctx.check_read(Path(folder) / f"{table}.sav"), table, columns)


def read_sav_file(
    path: str | Path, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A CBS ``.sav`` file: the columns the panel needs (:data:`CBS_COLUMNS`),
    dates as datetime64, the person key as strings (RINPERSOON keeps its
    leading zeros)."""
    import pyreadstat

    cols = list(columns) if columns is not None else list(CBS_COLUMNS.get(table, ())) or None
    df, _ = pyreadstat.read_sav(str(path), usecols=cols, dates_as_pandas_datetime=True)
    for key in _KEY:
        if key in df.columns:
            df[key] = df[key].astype(str)
    return df


def read_sources(ctx: Any) -> Sources:
    """The linked delivery and the CBS files of the step's city."""
    delivery = {
        t: ctx.read_parquet(ctx.upstream_path(f"{t}.parquet", "research")) for t in DELIVERY
    }
    return Sources(
        clients=delivery["clients"],
        benefit_spells=delivery["benefit_spells"],
        instruments=delivery["instruments"],
        gba=read_sav(ctx, "GBAPERSOONTAB"),
        education=read_sav(ctx, "HOOGSTEOPLTAB"),
        jobs=read_sav(ctx, "SPOLISBUS"),
        bijstand=read_sav(ctx, "BIJSTANDUITKERINGTAB"),
        medication=read_sav(ctx, "MEDICIJNTAB"),
    )


# ---------------------------------------------------------------------------
# months and spells
# ---------------------------------------------------------------------------


def month_index(text: str) -> int:
    """``YYYY-MM`` -> months since 1970-01."""
    return int(np.datetime64(str(text), "M").astype("int64"))


def month_text(months: Iterable[int] | np.ndarray) -> np.ndarray:
    """Months since 1970-01 -> ``YYYY-MM`` strings."""
    arr = np.asarray(months, dtype="int64").astype("datetime64[M]")
    return np.datetime_as_string(arr, unit="M").astype(object)


def _months(dates: pd.Series | np.ndarray, missing: int = _OPEN) -> np.ndarray:
    """Month index of each date; ``missing`` where the date is missing."""
    values = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
    out = values.astype("datetime64[M]").astype("int64")
    out[np.isnat(values)] = missing
    return out


def _days(dates: pd.Series | np.ndarray, missing: int) -> np.ndarray:
    values = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
    out = values.astype("datetime64[D]").astype("int64")
    out[np.isnat(values)] = missing
    return out


def _first_day(months: np.ndarray) -> np.ndarray:
    """Day index (days since 1970-01-01) of the first day of each month."""
    return np.asarray(months, dtype="int64").astype("datetime64[M]").astype(
        "datetime64[D]").astype("int64")


def merge_spells(
    spells: pd.DataFrame, start: str = "start_date", end: str = "end_date"
) -> pd.DataFrame:
    """Merge each person's spells into continuous spells.

    A spell that starts in or before the calendar month after the (latest)
    end of the person's earlier spells continues them: the break is shorter
    than a month, which monthly data cannot tell from no break. Returns one
    row per merged spell: key, ``start_date``, ``end_date`` (missing when one
    of the merged spells is open), ``start_m`` and ``end_m`` (month indices;
    an open spell ends at a month far beyond the data), ``seq`` (1, 2, ... per
    person), sorted by key and start.
    """
    cols = [*_KEY, "start_date", "end_date", "start_m", "end_m", "seq"]
    if spells.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    df = pd.DataFrame({
        "RINPERSOONS": spells["RINPERSOONS"].astype(str).to_numpy(),
        "RINPERSOON": spells["RINPERSOON"].astype(str).to_numpy(),
        "start_date": pd.to_datetime(spells[start]).to_numpy(dtype="datetime64[ns]"),
        "end_date": pd.to_datetime(spells[end]).to_numpy(dtype="datetime64[ns]"),
    })
    df = df[df["start_date"].notna()]
    df["start_m"] = _months(df["start_date"])
    df["end_m"] = np.maximum(_months(df["end_date"]), df["start_m"].to_numpy())
    df = df.sort_values([*_KEY, "start_date", "end_m"], kind="stable").reset_index(drop=True)
    person = (df[_KEY[0]] + ":" + df[_KEY[1]]).to_numpy()
    first = np.ones(len(df), dtype=bool)
    first[1:] = person[1:] != person[:-1]
    reach = df.groupby([*_KEY], sort=False)["end_m"].cummax().to_numpy()
    prev = np.empty(len(df), dtype="int64")
    prev[0] = 0
    prev[1:] = reach[:-1]
    new = first | (df["start_m"].to_numpy() > prev + 1)
    df["_spell"] = np.cumsum(new)
    df["_open"] = df["end_date"].isna()
    out = df.groupby("_spell", sort=True).agg(
        RINPERSOONS=("RINPERSOONS", "first"),
        RINPERSOON=("RINPERSOON", "first"),
        start_date=("start_date", "min"),
        end_date=("end_date", "max"),
        start_m=("start_m", "min"),
        end_m=("end_m", "max"),
        _open=("_open", "any"),
    )
    out.loc[out["_open"], "end_date"] = pd.NaT
    out.loc[out["_open"], "end_m"] = _OPEN
    out = out.drop(columns="_open").reset_index(drop=True)
    out["seq"] = out.groupby(_KEY, sort=False).cumcount() + 1
    return out[cols]


def _status(
    pid: np.ndarray, k_start: np.ndarray, k_end: np.ndarray, n: int, lo: int, hi: int
) -> np.ndarray:
    """(n, hi - lo + 1) booleans: month k of person i overlaps one of the
    person's spells, each given as relative months [k_start, k_end]."""
    width = hi - lo + 1
    keep = (k_end >= lo) & (k_start <= hi) & (pid >= 0)
    a = np.clip(k_start[keep], lo, hi) - lo
    b = np.clip(k_end[keep], lo, hi) - lo
    p = pid[keep]
    diff = np.bincount(p * (width + 1) + a, minlength=n * (width + 1))
    diff -= np.bincount(p * (width + 1) + b + 1, minlength=n * (width + 1))
    return np.cumsum(diff.reshape(n, width + 1), axis=1)[:, :width] > 0


def _earnings(
    pid: np.ndarray, start_day: np.ndarray, end_day: np.ndarray, wage: np.ndarray,
    t0: np.ndarray, n: int, lo: int, hi: int,
) -> np.ndarray:
    """(n, hi - lo + 1) euro per month: each spell's wage spread evenly over
    its days and summed per calendar month."""
    width = hi - lo + 1
    start_m = start_day.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    end_m = end_day.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    k_s = start_m - t0[pid]
    k_e = end_m - t0[pid]
    keep = (k_e >= lo) & (k_s <= hi) & np.isfinite(wage)
    pid, start_day, end_day, wage = pid[keep], start_day[keep], end_day[keep], wage[keep]
    a = np.clip(k_s[keep], lo, hi)
    b = np.clip(k_e[keep], lo, hi)
    lens = b - a + 1
    rep = np.repeat(np.arange(len(a)), lens)
    offset = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    k = a[rep] + offset
    month = t0[pid[rep]] + k
    first = _first_day(month)
    last = _first_day(month + 1) - 1
    overlap = np.minimum(end_day[rep], last) - np.maximum(start_day[rep], first) + 1
    days = (end_day - start_day + 1).astype(float)
    amount = wage[rep] * np.maximum(overlap, 0) / days[rep]
    flat = np.bincount(pid[rep] * width + (k - lo), weights=amount, minlength=n * width)
    return flat.reshape(n, width)


# ---------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------


@dataclass
class Panel:
    """The outputs of :func:`build` (see :data:`CONTRACT`), and two frames
    for the step's own tables: ``accounting`` (one row per linked client:
    ``stage``) and the settings used."""

    persons: pd.DataFrame
    person_months: pd.DataFrame
    episodes: pd.DataFrame
    episodes_later: pd.DataFrame
    accounting: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "persons": self.persons,
            "person_months": self.person_months,
            "episodes": self.episodes,
            "episodes_later": self.episodes_later,
        }


#: stages of a linked client on the way into the cohort
STAGES = (
    "in the cohort",
    "no bijstand spell in the CBS file",
    "no inflow in the study period",
)


def _key(df: pd.DataFrame) -> pd.Series:
    return df["RINPERSOONS"].astype(str) + ":" + df["RINPERSOON"].astype(str)


def _pid(index: pd.Index, df: pd.DataFrame) -> np.ndarray:
    if df.empty:
        return np.zeros(0, dtype="int64")
    return index.get_indexer(_key(df)).astype("int64")


def build(
    src: Sources,
    study: dict[str, Any],
    *,
    horizons: Sequence[int] = HORIZONS,
    pre_months: int = PRE_MONTHS,
) -> Panel:
    """Build the cohort, covariates, episodes, person-month panel and outcomes.

    Parameters
    ----------
    src
        The linked delivery and the CBS files (:class:`Sources`).
    study
        The city's ``study`` section: ``inflow_from`` and ``inflow_to``
        (``YYYY-MM``) and ``follow_up_months``.
    horizons
        Outcome horizons in months; those beyond the follow-up are dropped.
    pre_months
        Months of history before the inflow month.
    """
    lo, hi = -int(pre_months), int(study.get("follow_up_months", 24))
    horizons = tuple(h for h in horizons if 0 < h <= hi)
    first_m, last_m = month_index(study["inflow_from"]), month_index(study["inflow_to"])

    # ---- the linked clients, one row per person, in key order
    clients = src.clients.copy()
    clients["RINPERSOONS"] = clients["RINPERSOONS"].astype(str)
    clients["RINPERSOON"] = clients["RINPERSOON"].astype(str)
    clients = clients.drop_duplicates(_KEY).sort_values(_KEY, kind="stable")
    clients = clients.reset_index(drop=True)
    client_index = pd.Index(_key(clients))

    # ---- cohort from the CBS spells (CBS wins)
    bij = src.bijstand
    bij = bij[bij["BIJSTANDSTATCODE"].astype(str).str.strip().isin(BIJSTAND_CODES)]
    cbs = merge_spells(
        bij, "BIJSTANDAanvangUitkeringPersoon1A", "BIJSTANDEindeUitkeringPersoon1A"
    )
    cbs = cbs[client_index.get_indexer(_key(cbs)) >= 0] if len(cbs) else cbs
    in_period = cbs[(cbs["start_m"] >= first_m) & (cbs["start_m"] <= last_m)]
    inflow = in_period.drop_duplicates(_KEY, keep="first")
    inflow = inflow.set_index(_key(inflow))
    has_spell = set(_key(cbs)) if len(cbs) else set()
    stage = np.where(
        client_index.isin(inflow.index),
        STAGES[0],
        np.where(client_index.isin(list(has_spell)), STAGES[2], STAGES[1]),
    )
    accounting = pd.DataFrame({"RINPERSOONS": clients["RINPERSOONS"],
                               "RINPERSOON": clients["RINPERSOON"], "stage": stage})

    persons = clients[stage == STAGES[0]].reset_index(drop=True)
    index = pd.Index(_key(persons))
    n = len(persons)
    coh = inflow.loc[index]
    t0 = coh["start_m"].to_numpy(dtype="int64")
    cohort_seq = coh["seq"].to_numpy(dtype="int64")

    out = pd.DataFrame({
        "RINPERSOONS": persons["RINPERSOONS"].astype("string"),
        "RINPERSOON": persons["RINPERSOON"].astype("string"),
        "link_route": persons["link_route"].astype("string"),
        "inflow_date": coh["start_date"].to_numpy(dtype="datetime64[ns]"),
        "inflow_month": month_text(t0),
        "inflow_quarter": [f"{m[:4]}Q{(int(m[5:]) - 1) // 3 + 1}" for m in month_text(t0)],
        "inflow_year": (1970 + t0 // 12).astype("int16"),
        "cohort_spell_end": coh["end_date"].to_numpy(dtype="datetime64[ns]"),
    })
    out["inflow_month"] = out["inflow_month"].astype("string")
    out["inflow_quarter"] = out["inflow_quarter"].astype("string")

    # ---- municipal spells, compared (not used)
    mun = merge_spells(src.benefit_spells)
    if len(mun):
        mun = mun[(mun["start_m"] >= first_m) & (mun["start_m"] <= last_m)]
        mun = mun.drop_duplicates(_KEY, keep="first")
        mun_m = pd.Series(mun["start_m"].to_numpy(), index=_key(mun)).reindex(index)
    else:
        mun_m = pd.Series(np.nan, index=index)
    out["inflow_check"] = pd.array(np.where(
        mun_m.isna().to_numpy(), "no municipal spell",
        np.where(mun_m.to_numpy() == t0, "same month", "other month"),
    ), dtype="string")

    _covariates(out, persons, src, index, t0)

    # ---- monthly status
    pid = _pid(index, cbs)
    ok = pid >= 0
    on_benefit = _status(pid[ok], cbs["start_m"].to_numpy()[ok] - t0[pid[ok]],
                         cbs["end_m"].to_numpy()[ok] - t0[pid[ok]], n, lo, hi)
    jobs = src.jobs
    jp = _pid(index, jobs)
    jok = jp >= 0
    data_end_day = int(_first_day(np.array([last_m + hi + 1]))[0] - 1)
    j_start = _days(jobs["SDATUMAANVANGIKO"], missing=-(10**9))[jok]
    j_end = _days(jobs["SDATUMEINDEIKO"], missing=data_end_day)[jok]
    valid = j_start > -(10**9)
    jp, j_start, j_end = jp[jok][valid], j_start[valid], np.maximum(j_end[valid], j_start[valid])
    wage = pd.to_numeric(jobs["SBASISLOON"], errors="coerce").to_numpy(dtype=float)[jok][valid]
    j_sm = j_start.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    j_em = j_end.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    employed = _status(jp, j_sm - t0[jp], j_em - t0[jp], n, lo, hi)
    earnings = _earnings(jp, j_start, j_end, np.nan_to_num(wage), t0, n, lo, hi)

    # ---- instrument episodes
    episodes, later, first = _episodes(src.instruments, index, t0, cbs, cohort_seq, hi)
    ep_all = pd.concat([episodes, later], ignore_index=True)
    ep_pid = _pid(index, ep_all)
    in_instrument = _status(
        ep_pid, ep_all["elapsed"].to_numpy(dtype="int64"),
        _months(ep_all["end_date"]) - t0[ep_pid] if len(ep_all) else np.zeros(0, "int64"),
        n, lo, hi,
    )
    u = np.full(n, -1, dtype="int64")
    f_pid = _pid(index, first)
    u[f_pid] = first["elapsed"].to_numpy(dtype="int64")
    ks = np.arange(lo, hi + 1)
    after_start = (u[:, None] >= 0) & (ks[None, :] >= u[:, None])

    _instrument_columns(out, first, f_pid, n, ep_all, ep_pid, hi)

    # ---- outcomes
    # column j of the monthly arrays is month k = lo + j
    pre, post = slice(0, -lo), slice(1 - lo, hi - lo + 1)
    out["prior_employment_months"] = employed[:, pre].sum(axis=1).astype("int8")
    out["prior_employment"] = out["prior_employment_months"] / float(pre_months)
    out["prior_earnings"] = earnings[:, pre].sum(axis=1).round(2)
    out["prior_benefit_months"] = on_benefit[:, pre].sum(axis=1).astype("int8")
    for h in horizons:
        out[f"employed_{h}"] = employed[:, h - lo].astype("int8")
        out[f"off_benefit_{h}"] = (~on_benefit[:, h - lo]).astype("int8")
    out["months_employed"] = employed[:, post].sum(axis=1).astype("int8")
    out["months_on_benefit"] = on_benefit[:, post].sum(axis=1).astype("int8")
    out["earnings_after"] = earnings[:, post].sum(axis=1).round(2)
    rows = np.arange(n)
    for h in horizons:
        k = u + h
        seen = (u >= 0) & (k <= hi)
        kk = np.where(seen, k, 0) - lo
        emp = pd.array(np.where(seen, employed[rows, kk], 0).astype("int8"), dtype="Int8")
        off = pd.array(np.where(seen, ~on_benefit[rows, kk], 0).astype("int8"), dtype="Int8")
        emp[~seen] = pd.NA
        off[~seen] = pd.NA
        out[f"employed_after_start_{h}"] = emp
        out[f"off_benefit_after_start_{h}"] = off

    # ---- the person-month panel
    width = hi - lo + 1
    months_rel = np.tile(ks.astype("int8"), n)
    pm = pd.DataFrame({
        "RINPERSOONS": np.repeat(persons["RINPERSOONS"].to_numpy(dtype=object), width),
        "RINPERSOON": np.repeat(persons["RINPERSOON"].to_numpy(dtype=object), width),
        "month": months_rel,
        "calendar_month": (np.repeat(t0, width) + months_rel).astype("datetime64[M]").astype(
            "datetime64[ns]"),
        "employed": employed.ravel().astype("int8"),
        "earnings": earnings.ravel().round(2),
        "on_benefit": on_benefit.ravel().astype("int8"),
        "in_instrument": in_instrument.ravel().astype("int8"),
        "after_instrument_start": after_start.ravel().astype("int8"),
    })
    out = out[column_names("persons", horizons)]
    settings = {
        "inflow_from": study["inflow_from"],
        "inflow_to": study["inflow_to"],
        "pre_months": int(pre_months),
        "follow_up_months": hi,
        "horizons": list(horizons),
        "benefit_source": "CBS BIJSTANDUITKERINGTAB, statistic codes " + ", ".join(
            BIJSTAND_CODES),
    }
    return Panel(out, pm, episodes, later, accounting, settings)


def _covariates(
    out: pd.DataFrame, persons: pd.DataFrame, src: Sources, index: pd.Index, t0: np.ndarray
) -> None:
    """Covariates at inflow: register data first, municipal record as fallback."""
    n = len(out)
    gba = src.gba.drop_duplicates(_KEY)
    gba = gba.set_index(_key(gba)).reindex(index)
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
    edu = src.education.drop_duplicates(_KEY)
    level = edu["OPLNIVSOI2016AGG4HBMETNIRWO"].astype(str).str.strip().str[:1].map(
        EDUCATION_LEVELS)
    level = pd.Series(level.to_numpy(), index=_key(edu)).reindex(index)
    out["education"] = pd.array(level.fillna("missing").to_numpy(dtype=object), dtype="string")
    for column in ("household_type", "language_level", "labour_market_distance", "district",
                   "team"):
        values = persons[column].astype("string").fillna(UNKNOWN)
        out[column] = values.to_numpy()
        out[column] = out[column].astype("string")
    out["case_manager"] = persons["case_manager"].astype("string").to_numpy()
    out["case_manager"] = out["case_manager"].astype("string")
    # health proxy: long-term medication in the two calendar years before the inflow year
    med = src.medication
    mp = _pid(index, med)
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


def _episodes(
    instruments: pd.DataFrame, index: pd.Index, t0: np.ndarray, cbs: pd.DataFrame,
    cohort_seq: np.ndarray, hi: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Episodes of cohort members, split into the first per spell and the
    rest; and the person's instrument (first after inflow, within the window)."""
    names = [c for c, _, _ in _EPISODE_COLUMNS]
    ep = instruments.copy()
    ep = ep[ep["start_date"].notna()]
    ep["RINPERSOONS"] = ep["RINPERSOONS"].astype(str)
    ep["RINPERSOON"] = ep["RINPERSOON"].astype(str)
    pid = _pid(index, ep)
    ep = ep[pid >= 0].copy()
    pid = pid[pid >= 0]
    if ep.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        return _typed_episodes(empty), _typed_episodes(empty.copy()), empty
    ep["start_date"] = pd.to_datetime(ep["start_date"]).astype("datetime64[ns]")
    ep["end_date"] = pd.to_datetime(ep["end_date"]).astype("datetime64[ns]")
    # missing ends: the start plus the median duration of the instrument's known episodes
    duration = (ep["end_date"] - ep["start_date"]).dt.days
    median = duration.groupby(ep["instrument"]).median()
    overall = duration.median() if duration.notna().any() else 0.0
    missing = ep["end_date"].isna()
    fill = ep.loc[missing, "instrument"].map(median).fillna(overall).fillna(0.0)
    ep["end_imputed"] = missing.to_numpy()
    ep.loc[missing, "end_date"] = ep.loc[missing, "start_date"] + pd.to_timedelta(
        np.round(fill.to_numpy(dtype=float)), unit="D")
    start_m = _months(ep["start_date"])
    ep["start_month"] = month_text(start_m)
    ep["elapsed"] = (start_m - t0[pid]).astype("int16")
    ep["_pid"] = pid
    ep["_start_m"] = start_m
    # the spell: the last CBS spell of the person that started in or before the start month
    sp = cbs.assign(_pid=_pid(index, cbs)) if len(cbs) else cbs.assign(_pid=[])
    sp = sp[sp["_pid"] >= 0]
    sp = sp.assign(_rel=sp["seq"].to_numpy() - cohort_seq[sp["_pid"].to_numpy()] + 1)
    sp = sp[sp["_rel"] >= 1][["_pid", "start_m", "_rel"]].rename(columns={"start_m": "_spell_m"})
    ep = ep.sort_values(["_start_m", "_pid"], kind="stable")
    sp = sp.sort_values(["_spell_m", "_pid"], kind="stable")
    ep = pd.merge_asof(ep, sp, left_on="_start_m", right_on="_spell_m", by="_pid",
                       direction="backward")
    before = ep["elapsed"].to_numpy() < 0
    ep["spell"] = np.where(before | ep["_rel"].isna(), 0, ep["_rel"].fillna(0)).astype("int8")
    ep["spell_elapsed"] = pd.array(
        np.where(ep["spell"] > 0, ep["_start_m"] - ep["_spell_m"].fillna(0), 0).astype("int16"),
        dtype="Int16")
    ep.loc[ep["spell"] == 0, "spell_elapsed"] = pd.NA
    ep = ep.sort_values([*_KEY, "spell", "start_date", "instrument", "end_date"],
                        kind="stable").reset_index(drop=True)
    ep["order_in_spell"] = (ep.groupby([*_KEY, "spell"], sort=False).cumcount() + 1).astype(
        "int8")
    window = (ep["elapsed"] >= 0) & (ep["elapsed"] <= hi) & (ep["spell"] >= 1)
    first_idx = ep[window].drop_duplicates(_KEY, keep="first").index
    ep["first_after_inflow"] = ep.index.isin(first_idx)
    is_first = (ep["order_in_spell"] == 1) & (ep["spell"] >= 1)
    episodes = _typed_episodes(ep.loc[is_first, names].reset_index(drop=True))
    later = _typed_episodes(ep.loc[~is_first, names].reset_index(drop=True))
    first = ep.loc[ep["first_after_inflow"], [*names]].reset_index(drop=True)
    return episodes, later, first


def _typed_episodes(df: pd.DataFrame) -> pd.DataFrame:
    types = {
        "RINPERSOONS": "string", "RINPERSOON": "string", "spell": "int8",
        "order_in_spell": "int8", "instrument": "string", "start_date": "datetime64[ns]",
        "end_date": "datetime64[ns]", "end_imputed": "bool", "start_month": "string",
        "elapsed": "int16", "spell_elapsed": "Int16", "first_after_inflow": "bool",
    }
    return df.astype(types)[[c for c, _, _ in _EPISODE_COLUMNS]]


def _instrument_columns(
    out: pd.DataFrame, first: pd.DataFrame, f_pid: np.ndarray, n: int,
    ep_all: pd.DataFrame, ep_pid: np.ndarray, hi: int,
) -> None:
    inst = np.full(n, NO_INSTRUMENT, dtype=object)
    inst[f_pid] = first["instrument"].astype(str).to_numpy()
    out["instrument"] = pd.array(inst, dtype="string")
    start = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    start[f_pid] = first["start_date"].to_numpy(dtype="datetime64[ns]")
    out["instrument_start"] = start
    month = pd.array([pd.NA] * n, dtype="string")
    month[f_pid] = first["start_month"].astype(str).to_numpy()
    out["instrument_start_month"] = month
    elapsed = pd.array([pd.NA] * n, dtype="Int16")
    elapsed[f_pid] = first["elapsed"].to_numpy(dtype="int16")
    out["instrument_elapsed"] = elapsed
    end = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    end[f_pid] = first["end_date"].to_numpy(dtype="datetime64[ns]")
    out["instrument_end"] = end
    imputed = pd.array([pd.NA] * n, dtype="boolean")
    imputed[f_pid] = first["end_imputed"].to_numpy(dtype=bool)
    out["instrument_end_imputed"] = imputed
    spell = pd.array([pd.NA] * n, dtype="Int8")
    spell[f_pid] = first["spell"].to_numpy(dtype="int8")
    out["instrument_spell"] = spell
    in_window = (ep_all["elapsed"].to_numpy() >= 0) & (ep_all["elapsed"].to_numpy() <= hi)
    out["instruments_in_window"] = np.bincount(ep_pid[in_window], minlength=n).astype("int8")


# ---------------------------------------------------------------------------
# checks, aggregates and writing
# ---------------------------------------------------------------------------


def check(panel: Panel) -> dict[str, bool]:
    """The invariants of the panel, each True when it holds."""
    p, pm = panel.persons, panel.person_months
    width = panel.settings["pre_months"] + panel.settings["follow_up_months"] + 1
    lo = -panel.settings["pre_months"]
    n = len(p)
    keys = set(_key(p))
    # rows in key order: person by person, months -pre .. follow-up
    ordered = len(pm) == n * width and all(
        (pm[c].to_numpy(dtype=object) == np.repeat(p[c].to_numpy(dtype=object), width)).all()
        for c in _KEY
    ) and (pm["month"].to_numpy() == np.tile(np.arange(lo, lo + width), n)).all()
    inside = set(_key(pm.drop_duplicates(_KEY))) <= keys and all(
        set(_key(df)) <= keys for df in (panel.episodes, panel.episodes_later)
    )
    agree = False
    if ordered:
        emp = pm["employed"].to_numpy().reshape(n, width)
        ben = pm["on_benefit"].to_numpy().reshape(n, width)
        agree = all(
            (emp[:, h - lo] == p[f"employed_{h}"].to_numpy()).all()
            and (1 - ben[:, h - lo] == p[f"off_benefit_{h}"].to_numpy()).all()
            for h in panel.settings["horizons"]
        ) and (emp[:, 1 - lo:].sum(axis=1) == p["months_employed"].to_numpy()).all()
    first = panel.episodes[panel.episodes["first_after_inflow"]]
    return {
        "one row per person": bool(not p.duplicated(_KEY).any()),
        "one row per person-month, in key order": bool(ordered),
        "no person outside the cohort": bool(inside),
        "outcomes agree with the monthly panel": bool(agree),
        "one first instrument per person": bool(
            not first.duplicated(_KEY).any()
            and len(first) == int((p["instrument"] != NO_INSTRUMENT).sum())
        ),
    }


def status_by_month(person_months: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Persons, and persons with and without each status, per month k.

    A share is shown in the figure only where both the number with and the
    number without the status reach ``threshold``; elsewhere both counts are
    NaN (not shown), so the figure's counts pass the disclosure rules."""
    g = person_months.groupby("month", sort=True)
    counts = pd.DataFrame({"persons": g.size()})
    for status in ("employed", "on_benefit", "in_instrument"):
        yes = g[status].sum().astype(float)
        no = counts["persons"] - yes
        small = (yes < threshold) | (no < threshold)
        counts[status] = yes.where(~small)
        counts[f"not_{status}"] = no.where(~small)
    counts.loc[counts["persons"] < threshold] = np.nan
    return counts


_STATUS_LABELS = {"employed": "employed", "on_benefit": "on bijstand",
                  "in_instrument": "in an instrument"}


def status_figure(counts: pd.DataFrame, horizons: Sequence[int] = HORIZONS, *,
                  threshold: int | None = None) -> Any:
    """Shares employed, on bijstand and in an instrument by month since
    inflow, drawn only where :func:`status_by_month` kept the counts; a month
    whose counts were masked is marked by a hatched box at the bottom (see
    :mod:`reintegration.figures`)."""
    import matplotlib.pyplot as plt

    from . import figures

    fig, ax = plt.subplots(figsize=(8, 4.2))
    drawn, slot = 0, 0
    x = counts.index.to_numpy(dtype=float)
    for status, colour in zip(_STATUS_LABELS, ("#2f5d8c", "#d08c60", "#6a9f58"), strict=True):
        share = (counts[status] / counts["persons"]).to_numpy(dtype=float)
        ax.plot(x, share, marker="o", markersize=2.5, color=colour,
                label=_STATUS_LABELS[status])
        k = figures.mark_suppressed(ax, x, share, colour=colour, slot=slot)
        slot += bool(k)
        drawn += k
    ax.axvline(0, color="#444444", linewidth=1)
    for h in horizons:
        ax.axvline(h, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.set_xlabel("months since the inflow month (0 = inflow)")
    ax.set_ylabel("share of the cohort")
    ax.set_ylim(0, 1)
    ax.set_title("Status by month around inflow (dotted: outcome horizons)")
    figures.legend(ax, drawn, threshold, frameon=False, loc="upper left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


#: bands of the instrument start month (months since inflow)
START_BANDS = ((0, "0-2"), (3, "3-5"), (6, "6-8"), (9, "9-11"), (12, "12-17"), (18, "18-24"))


NO_START_BAND = "no instrument"


def start_bands(persons: pd.DataFrame) -> pd.DataFrame:
    """Every person of the cohort, with the band of their first instrument's
    start month (months since inflow) as an ordered category, and
    ``"no instrument"`` for persons without one: a one-way table over the
    whole cohort, so that its total is the cohort's and the differencing
    check can join it with the other tables of the cohort."""
    treated = (persons["instrument"] != NO_INSTRUMENT).to_numpy()
    u = persons["instrument_elapsed"].fillna(-1).to_numpy(dtype=int)
    band = np.full(len(persons), NO_START_BAND, dtype=object)
    for bound, label in START_BANDS:
        band[treated & (u >= bound)] = label
    present = [b for _, b in START_BANDS if b in set(band)]
    if (~treated).any():
        present.append(NO_START_BAND)
    order = pd.CategoricalDtype(present, ordered=True)
    return pd.DataFrame({"start month since inflow": pd.Series(band).astype(order)})


def settings_record(panel: Panel, written: dict[str, Path]) -> dict[str, Any]:
    """The step's machine-readable record (release domain): definitions,
    files and invariants; no counts of persons."""
    return {
        "settings": panel.settings,
        "files": {
            name: {
                "file": written[name].name,
                "key": CONTRACT[name]["key"],
                "columns": list(frame.columns),
            }
            for name, frame in panel.frames.items()
        },
        "checks": check(panel),
    }


def write(ctx: Any, panel: Panel) -> dict[str, Path]:
    """Write the four Parquet files to the research domain and ``panel.json``
    (definitions, columns and invariants) beside the executed notebook."""
    written = {
        name: ctx.write_parquet(f"{name}.parquet", frame, domain="research")
        for name, frame in panel.frames.items()
    }
    written["panel"] = ctx.write_json("panel.json", settings_record(panel, written))
    return written


def run(ctx: Any) -> tuple[Panel, dict[str, Path]]:
    """Read, build and write: the whole step without its tables (used by the
    benchmark)."""
    panel = build(read_sources(ctx), ctx.city["study"])
    return panel, write(ctx, panel)

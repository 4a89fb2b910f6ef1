"""National-size synthetic CBS files, for benchmarking the panel step at scale.

In CBS Remote Access the CBS files cover the whole country: SPOLISBUS holds
every job spell, GBAPERSOONTAB every registered person. A generated city's
CBS files (``research/cbs/<city>/*.sav``) hold only its own persons, so they
cannot show how the panel step behaves when the cohort is a small part of a
national file. :func:`write_national` embeds the city's persons (``copies``
times, each copy under new keys, so a cohort of any size can be made from one
city) among ``persons`` other persons, and writes the five CBS tables as
Parquet with the columns and types the panel reads from the ``.sav`` files
(strings stay strings, dates are timestamps, numbers float64).

The other persons are drawn per chunk of :data:`CHUNK_PERSONS` persons,
vectorised, and each chunk is appended to the files as one row group, so
memory while writing depends on the chunk and on the embedded city, not on
``persons``. Files are sorted by RINPERSOON, as CBS delivers them, and the
embedded persons sit at random places in the key order (a filter on the key
cannot skip row groups by their key range).

Proportions of the other persons (:class:`Proportions`; DOMAIN.md names the
tables and their variables but gives no national rates, so these are the
benchmark's own round numbers, checked against the realised shares that
:func:`write_national` reports in ``national.json``):

* ages 0-104 with a flat pyramid up to 65 and a thinning tail after it;
* of persons aged 18-66, 80% have a working career: job spells of 3 years on
  average separated by gaps of 0.6 years, so that about 65% of adults hold a
  job spell in a given year (realised share in ``national.json``);
* 3.5% of persons aged 18-66 have a bijstand spell (code PW) in the period,
  2.5 years long on average, 10% of them still running at the end of the data:
  about 2-3% on bijstand in a given year;
* 70% of persons aged 16 and over have an education record; education,
  country of birth, origin and generation codes and ATC4 codes are drawn from
  their frequencies in the embedded city's own files;
* medication records per person-year at the city's own rate.

:func:`replicate_delivery` puts the linked municipal delivery of the city
under the same new keys, so the panel step can run on the national files.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.atomic import write_json
from ..linking import bsn as bsnlib

#: persons besides the embedded city, by default
DEFAULT_PERSONS = 10_000_000
#: persons per chunk (one row group per table and chunk)
CHUNK_PERSONS = 500_000
#: the tables written, with their columns and Arrow types (those of the .sav files)
TABLES: dict[str, dict[str, str]] = {
    "GBAPERSOONTAB": {
        "RINPERSOONS": "string", "RINPERSOON": "string", "GBAGESLACHT": "string",
        "GBAGEBOORTEJAAR": "string", "GBAGEBOORTEMAAND": "string",
        "GBAGEBOORTELAND": "string", "GBAHERKOMSTGROEPERING": "string",
        "GBAGENERATIE": "string",
    },
    "HOOGSTEOPLTAB": {
        "RINPERSOONS": "string", "RINPERSOON": "string", "OPLNIVSOI2016AGG4HBMETNIRWO": "string",
    },
    "SPOLISBUS": {
        "RINPERSOONS": "string", "RINPERSOON": "string", "IKVID": "string", "SBEID": "string",
        "SDATUMAANVANGIKO": "date", "SDATUMEINDEIKO": "date", "SBASISLOON": "float64",
        "SBASISUREN": "float64",
    },
    "BIJSTANDUITKERINGTAB": {
        "RINPERSOONS": "string", "RINPERSOON": "string",
        "BIJSTANDAanvangUitkeringPersoon1A": "date", "BIJSTANDEindeUitkeringPersoon1A": "date",
        "BIJSTANDSTATCODE": "string",
    },
    "MEDICIJNTAB": {"RINPERSOONS": "string", "RINPERSOON": "string", "JAAR": "float64",
                    "ATC4": "string"},
}  # fmt: skip
#: national RINPERSOON of slot s: 100,000,003 + 10 s (+1 where that would pass the elfproef)
KEY_BASE = 100_000_003
#: average days per month, for the wage of a spell
MONTH_DAYS = 30.4375


@dataclass(frozen=True)
class Proportions:
    """The rates of the other persons (see the module text)."""

    career: float = 0.68  # persons aged 18-66 with a working career
    job_years: float = 3.0  # mean length of a job spell
    gap_years: float = 0.6  # mean gap between job spells
    monthly_wage: float = 3_000.0  # median monthly wage of a job spell (lognormal, sigma 0.5)
    bijstand: float = 0.075  # persons aged 18-66 with a bijstand spell in the period
    bijstand_years: float = 2.5  # mean length of a bijstand spell
    bijstand_open: float = 0.10  # share of bijstand spells still running at the end
    education: float = 0.70  # persons aged 16+ with an education record


@dataclass
class City:
    """The embedded city's CBS tables, its persons and the data period."""

    tables: dict[str, pd.DataFrame]
    persons: np.ndarray  # RINPERSOON of every person in any table (sorted, unique)
    period: tuple[np.datetime64, np.datetime64]  # first and last day of the data
    years: np.ndarray  # the medication years
    medication_rate: float  # MEDICIJNTAB rows per person-year


def read_city(cbs_dir: str | Path, extra_keys: Any = ()) -> City:
    """The city's five CBS ``.sav`` files (all rows, all columns of
    :data:`TABLES`) and the persons in them, with ``extra_keys`` (e.g. linked
    clients without any CBS row) added."""
    import pyreadstat

    cbs_dir = Path(cbs_dir)
    tables = {}
    for table, columns in TABLES.items():
        df, _ = pyreadstat.read_sav(
            str(cbs_dir / f"{table}.sav"), usecols=list(columns), dates_as_pandas_datetime=True
        )
        tables[table] = df[list(columns)]
    keys = np.concatenate([t["RINPERSOON"].astype(str).to_numpy() for t in tables.values()])
    persons = np.unique(np.concatenate([keys, np.asarray(list(extra_keys), dtype=str)]))
    jobs = tables["SPOLISBUS"]
    last = max(
        pd.Timestamp(jobs["SDATUMEINDEIKO"].max()),
        pd.Timestamp(tables["BIJSTANDUITKERINGTAB"]["BIJSTANDEindeUitkeringPersoon1A"].max()),
    )
    med = tables["MEDICIJNTAB"]
    years = np.arange(int(med["JAAR"].min()), int(med["JAAR"].max()) + 1)
    first = np.datetime64(f"{years[0]}-01-01")
    rate = len(med) / max(1, len(persons) * len(years))
    return City(tables, persons, (first, np.datetime64(last.date())), years, rate)


@dataclass
class Layout:
    """Where each embedded person goes: copy ``c`` of city person ``i`` gets
    national slot ``slots[c, i]`` and key ``national_key(slots[c, i])``."""

    total: int  # persons in the national files
    slots: np.ndarray  # (copies, persons of the city), int64

    def keymap(self, city_persons: np.ndarray) -> pd.DataFrame:
        copies, m = self.slots.shape
        return pd.DataFrame(
            {
                "copy": np.repeat(np.arange(copies), m),
                "RINPERSOON": np.tile(city_persons.astype(object), copies),
                "national": national_keys(self.slots.ravel()).astype(object),
            }
        )


def national_ints(slots: np.ndarray) -> np.ndarray:
    """The RINPERSOON number of each slot: increasing in the slot, nine
    digits, never passing the elfproef (a pseudonym must not look like a
    BSN)."""
    ints = KEY_BASE + 10 * np.asarray(slots, dtype=np.int64)
    ints[bsnlib.passes_as_int(ints)] += 1  # last digit 3 -> 4: the check sum moves by one
    return ints


@functools.cache
def _employers() -> np.ndarray:
    """Employer numbers (SBEID) of the other persons' jobs: 100,000
    nine-digit numbers that do not pass the elfproef."""
    ints = KEY_BASE + 7 + 1_000 * np.arange(100_000, dtype=np.int64)
    ints[bsnlib.passes_as_int(ints)] += 1
    return np.char.zfill(ints.astype(str), 9).astype(object)


def national_keys(slots: np.ndarray) -> np.ndarray:
    """:func:`national_ints` as nine-character strings."""
    return np.char.zfill(national_ints(slots).astype(str), 9)


def layout(city: City, persons: int, copies: int, rng: np.random.Generator) -> Layout:
    """Random, distinct slots for ``copies`` copies of the city's persons
    among ``persons`` others."""
    m = len(city.persons)
    total = int(persons) + copies * m
    if total * 10 + KEY_BASE >= 10**9:
        raise ValueError(f"{total} persons do not fit in nine-digit keys (at most 89,999,999)")
    slots = np.sort(rng.choice(total, size=copies * m, replace=False)).astype(np.int64)
    return Layout(total, rng.permutation(slots).reshape(copies, m))


def _cohort_rows(city: City, lay: Layout) -> dict[str, pd.DataFrame]:
    """Every table's rows of the embedded copies, with new keys and a
    ``_slot`` column, sorted by slot (stable: file order within a person)."""
    index = pd.Index(city.persons)
    out = {}
    for table, df in city.tables.items():
        pos = index.get_indexer(df["RINPERSOON"].astype(str))
        parts = []
        for c in range(lay.slots.shape[0]):
            part = df.copy()
            slot = lay.slots[c, pos]
            part["RINPERSOON"] = national_keys(slot).astype(object)
            part["_slot"] = slot
            parts.append(part)
        rows = pd.concat(parts, ignore_index=True)
        out[table] = rows.sort_values("_slot", kind="stable").reset_index(drop=True)
    return out


# ---------------------------------------------------------------------------
# the other persons, one chunk at a time
# ---------------------------------------------------------------------------


def _days(values: np.ndarray) -> np.ndarray:
    """Days since 1970 as timestamps (seconds)."""
    return np.asarray(values, dtype="int64").astype("datetime64[D]").astype("datetime64[s]")


def _draw(rng: np.random.Generator, values: pd.Series, n: int) -> np.ndarray:
    """``n`` draws from the values of a column, at their frequencies."""
    pool = values.astype(str).to_numpy(dtype=object)
    return pool[rng.integers(0, len(pool), n)]


def _jobs(rng, slot, birth_day, first, last, prop):
    """Job spells of the persons with a career (see :class:`Proportions`)."""
    start18, end67 = birth_day + int(18 * 365.25), birth_day + int(67 * 365.25)
    career = (rng.random(len(slot)) < prop.career) & (end67 > first) & (start18 < last)
    idx = np.nonzero(career)[0]
    lead = int(5 * 365.25)
    k = int(math.ceil((last - first + lead) / 365.25 / (prop.job_years + prop.gap_years) * 1.6)) + 2
    job = rng.exponential(prop.job_years * 365.25, (len(idx), k)) + 14
    gap = rng.exponential(prop.gap_years * 365.25, (len(idx), k))
    origin = np.maximum(start18[idx], first - rng.integers(0, lead, len(idx)))
    starts = origin[:, None] + np.concatenate(
        [np.zeros((len(idx), 1)), np.cumsum(job + gap, axis=1)[:, :-1]], axis=1
    )
    ends = np.minimum(starts + job, np.minimum(end67[idx], last)[:, None])
    keep = (starts <= np.minimum(end67[idx], last)[:, None]) & (ends >= first)
    who, _ = np.nonzero(keep)
    s, e = starts[keep].astype("int64"), ends[keep].astype("int64")
    p = idx[who]
    monthly = np.exp(rng.normal(np.log(prop.monthly_wage), 0.5, len(p)))
    employers = _employers()
    days = e - s + 1
    return p, {
        "IKVID": (np.arange(len(p)) + 1).astype(str).astype(object),
        "SBEID": employers[rng.integers(0, len(employers), len(p))],
        "SDATUMAANVANGIKO": _days(s),
        "SDATUMEINDEIKO": _days(e),
        "SBASISLOON": np.round(monthly * days / MONTH_DAYS, 2),
        "SBASISUREN": np.round(rng.uniform(60, 165, len(p)) * days / MONTH_DAYS, 0),
    }


def _bijstand(rng, slot, birth_day, first, last, prop):
    """Bijstand spells: one per recipient, a second for a fifth of them."""
    start18, end67 = birth_day + int(18 * 365.25), birth_day + int(67 * 365.25)
    eligible = (end67 > first) & (start18 < last)
    idx = np.nonzero(eligible & (rng.random(len(slot)) < prop.bijstand))[0]
    idx = np.sort(np.concatenate([idx, idx[rng.random(len(idx)) < 0.2]]))
    lo = np.maximum(start18[idx], first)
    s = lo + (rng.random(len(idx)) * np.maximum(1, np.minimum(end67[idx], last) - lo)).astype(int)
    e = s + rng.exponential(prop.bijstand_years * 365.25, len(idx)).astype("int64")
    open_ = (e > last) | (rng.random(len(idx)) < prop.bijstand_open)
    return idx, {
        "BIJSTANDAanvangUitkeringPersoon1A": _days(s),
        "BIJSTANDEindeUitkeringPersoon1A": np.where(
            open_, np.datetime64("NaT", "s"), _days(np.minimum(e, last))
        ),
        "BIJSTANDSTATCODE": np.full(len(idx), "PW", dtype=object),
    }


def other_persons(
    rng: np.random.Generator, slot: np.ndarray, city: City, prop: Proportions
) -> tuple[dict[str, tuple[np.ndarray, dict[str, Any]]], dict[str, int]]:
    """The rows of the other persons in ``slot`` (national slots), per table:
    (person position of each row, columns without the key), and counts for
    the realised shares (adults 18-66 in the reference year; with a job
    spell, with a bijstand spell in that year)."""
    n = len(slot)
    first = int(city.period[0].astype("datetime64[D]").astype(int))
    last = int(city.period[1].astype("datetime64[D]").astype(int))
    ref_year = int(city.years[len(city.years) // 2])
    young = rng.random(n) < 0.8
    age = np.where(young, rng.uniform(0, 65, n), 65 + np.minimum(rng.exponential(12, n), 39.9))
    end_year = int(str(city.period[1])[:4])
    birth_year = (end_year - age).astype(int)
    birth_month = rng.integers(1, 13, n)
    months = (birth_year - 1970) * 12 + birth_month - 1  # months since 1970-01
    birth_day = months.astype("datetime64[M]").astype("datetime64[D]").astype(int) + rng.integers(
        0, 28, n
    )
    gba_city = city.tables["GBAPERSOONTAB"]
    origin = rng.integers(0, len(gba_city), n)
    everyone = np.arange(n)
    out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
        "GBAPERSOONTAB": (
            everyone,
            {
                "GBAGESLACHT": np.where(rng.random(n) < 0.5, "1", "2").astype(object),
                "GBAGEBOORTEJAAR": birth_year.astype(str).astype(object),
                "GBAGEBOORTEMAAND": np.char.zfill(birth_month.astype(str), 2).astype(object),
                **{
                    c: gba_city[c].astype(str).to_numpy(dtype=object)[origin]
                    for c in ("GBAGEBOORTELAND", "GBAHERKOMSTGROEPERING", "GBAGENERATIE")
                },
            },
        ),
    }
    edu = np.nonzero((age >= 16) & (rng.random(n) < prop.education))[0]
    codes = city.tables["HOOGSTEOPLTAB"]["OPLNIVSOI2016AGG4HBMETNIRWO"]
    out["HOOGSTEOPLTAB"] = (edu, {"OPLNIVSOI2016AGG4HBMETNIRWO": _draw(rng, codes, len(edu))})
    out["SPOLISBUS"] = _jobs(rng, slot, birth_day, first, last, prop)
    out["BIJSTANDUITKERINGTAB"] = _bijstand(rng, slot, birth_day, first, last, prop)
    count = rng.poisson(city.medication_rate * len(city.years), n)
    mp = np.repeat(everyone, count)
    med_codes = city.tables["MEDICIJNTAB"]["ATC4"]
    out["MEDICIJNTAB"] = (
        mp,
        {
            "JAAR": rng.choice(city.years, len(mp)).astype("float64"),
            "ATC4": _draw(rng, med_codes, len(mp)),
        },
    )
    # realised shares in the reference year
    y0 = int(np.datetime64(f"{ref_year}-01-01").astype("datetime64[D]").astype(int))
    y1 = int(np.datetime64(f"{ref_year}-12-31").astype("datetime64[D]").astype(int))
    adult = (ref_year - birth_year >= 18) & (ref_year - birth_year <= 66)
    stats = {"reference_year": ref_year, "adults_18_66": int(adult.sum())}
    for name, table, start, end in (
        ("with_job", "SPOLISBUS", "SDATUMAANVANGIKO", "SDATUMEINDEIKO"),
        (
            "on_bijstand",
            "BIJSTANDUITKERINGTAB",
            "BIJSTANDAanvangUitkeringPersoon1A",
            "BIJSTANDEindeUitkeringPersoon1A",
        ),
    ):
        p, cols = out[table]
        s = cols[start].astype("datetime64[D]").astype(int)
        e_raw = cols[end]
        e = np.where(
            np.isnat(e_raw), np.iinfo(np.int64).max, e_raw.astype("datetime64[D]").astype("int64")
        )
        hit = np.zeros(n, dtype=bool)
        hit[p[(s <= y1) & (e >= y0)]] = True
        stats[f"adults_{name}"] = int((hit & adult).sum())
    return out, stats


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def arrow_schema(table: str) -> Any:
    """The Arrow schema of a national table (:data:`TABLES`)."""
    import pyarrow as pa

    types = {"string": pa.string(), "date": pa.timestamp("ms"), "float64": pa.float64()}
    return pa.schema([(c, types[t]) for c, t in TABLES[table].items()])


def _chunk_table(slot, keys, rows, cohort, schema):
    """One chunk of a table: the other persons' rows (``rows``: person
    position in ``slot`` and columns; ``keys`` the persons' RINPERSOON as an
    Arrow array) and the embedded rows in the chunk's slot range, in slot
    order (file order within a person)."""
    import pyarrow as pa

    pos, cols = rows
    arrays = {
        "RINPERSOONS": pa.array(np.full(len(pos), "R", dtype=object), pa.string()),
        "RINPERSOON": keys.take(pa.array(pos)),
    }
    for c, f in zip(schema.names, schema, strict=True):
        if c not in arrays:
            arrays[c] = pa.array(cols[c], type=f.type, from_pandas=True)
    others = pa.table([arrays[c] for c in schema.names], schema=schema)
    emb = pa.Table.from_pandas(cohort[schema.names], schema=schema, preserve_index=False, safe=True)
    both = pa.concat_tables([others, emb])
    order = np.argsort(np.concatenate([slot[pos], cohort["_slot"].to_numpy()]), kind="stable")
    return both.take(pa.array(order))


def write_national(
    cbs_dir: str | Path,
    out_dir: str | Path,
    *,
    persons: int = DEFAULT_PERSONS,
    copies: int = 1,
    seed: int = 20260,
    extra_keys: Any = (),
    proportions: Proportions | None = None,
    chunk_persons: int = CHUNK_PERSONS,
) -> dict[str, Any]:
    """Write the national files: the city's persons in ``cbs_dir`` (``.sav``),
    ``copies`` times under new keys, among ``persons`` other persons, as
    ``out_dir/<TABLE>.parquet``; ``keymap.parquet`` (copy, city RINPERSOON,
    national RINPERSOON) and ``national.json`` (sizes, rows, realised shares)
    beside them. Returns the summary of ``national.json``."""
    import os
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    prop = proportions or Proportions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    city = read_city(cbs_dir, extra_keys)
    rng = np.random.default_rng([seed, int(persons), int(copies)])
    lay = layout(city, persons, copies, rng)
    cohort = _cohort_rows(city, lay)
    embedded = np.sort(lay.slots.ravel())
    schemas = {t: arrow_schema(t) for t in TABLES}
    tmp = {t: out_dir / f".{t}.parquet.tmp" for t in TABLES}
    writers = {t: pq.ParquetWriter(str(tmp[t]), schemas[t]) for t in TABLES}
    rows = dict.fromkeys(TABLES, 0)
    stats: dict[str, int] = {}
    try:
        for chunk, lo in enumerate(range(0, lay.total, chunk_persons)):
            hi = min(lay.total, lo + chunk_persons)
            a, b = np.searchsorted(embedded, [lo, hi])
            slot = np.setdiff1d(
                np.arange(lo, hi, dtype=np.int64), embedded[a:b], assume_unique=True
            )
            part, st = other_persons(np.random.default_rng([seed, chunk]), slot, city, prop)
            for k, v in st.items():
                stats[k] = v if k == "reference_year" else stats.get(k, 0) + v
            keys = pa.array(national_ints(slot)).cast(pa.string())
            for t in TABLES:
                c = cohort[t]
                i, j = np.searchsorted(c["_slot"].to_numpy(), [lo, hi])
                out = _chunk_table(slot, keys, part[t], c.iloc[i:j], schemas[t])
                writers[t].write_table(out)
                rows[t] += out.num_rows
    finally:
        for w in writers.values():
            w.close()
    for t in TABLES:
        os.replace(tmp[t], out_dir / f"{t}.parquet")
    lay.keymap(city.persons).to_parquet(out_dir / "keymap.parquet", index=False)
    adults = max(1, stats["adults_18_66"])
    summary = {
        "persons_other": int(persons),
        "copies": int(copies),
        "city_persons": len(city.persons),
        "persons_total": int(lay.total),
        "rows": rows,
        "period": [str(city.period[0]), str(city.period[1])],
        "reference_year": stats["reference_year"],
        "share_adults_with_job_in_year": round(stats["adults_with_job"] / adults, 4),
        "share_adults_on_bijstand_in_year": round(stats["adults_on_bijstand"] / adults, 4),
        "proportions": asdict(prop),
        "chunk_persons": int(chunk_persons),
        "seed": int(seed),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out_dir / "national.json", summary)
    return summary


def replicate_delivery(
    delivery: dict[str, pd.DataFrame], keymap: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The linked municipal delivery once per copy of :func:`write_national`,
    each copy's RINPERSOON replaced by its national key (a client whose key
    is not in the keymap is an error)."""
    copies = int(keymap["copy"].max()) + 1
    out = {}
    for name, df in delivery.items():
        parts = []
        for c in range(copies):
            km = keymap[keymap["copy"] == c]
            new = pd.Series(km["national"].to_numpy(), index=km["RINPERSOON"].to_numpy())
            mapped = new.reindex(df["RINPERSOON"].astype(str).to_numpy())
            if mapped.isna().any():
                bad = df["RINPERSOON"][mapped.isna().to_numpy()].iloc[0]
                raise KeyError(f"{name}: RINPERSOON {bad} is not in the national keymap")
            part = df.copy()
            part["RINPERSOON"] = pd.array(mapped.to_numpy(), dtype=df["RINPERSOON"].dtype)
            parts.append(part)
        out[name] = pd.concat(parts, ignore_index=True)
    return out

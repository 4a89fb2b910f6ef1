"""Months, spells and monthly states of the analysis panel.

Months are calendar months, counted from 1970-01 (:mod:`reintegration.core.months`). A
person's spells (benefit, job, instrument) become an array of months ``k``
relative to the inflow month: the person is *in* a state in month ``k`` when
one of their spells overlaps it (:func:`monthly_status`). Job spells also
give earnings per month, each spell's wage spread over its days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .panel_contract import KEY, person_positions

#: month index of an open-ended spell (far beyond any data)
OPEN = 10**6


def months_of(dates: pd.Series | np.ndarray, missing: int = OPEN) -> np.ndarray:
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
    return (
        np.asarray(months, dtype="int64")
        .astype("datetime64[M]")
        .astype("datetime64[D]")
        .astype("int64")
    )


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
    cols = [*KEY, "start_date", "end_date", "start_m", "end_m", "seq"]
    if spells.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    df = pd.DataFrame(
        {
            "RINPERSOONS": spells["RINPERSOONS"].astype(str).to_numpy(),
            "RINPERSOON": spells["RINPERSOON"].astype(str).to_numpy(),
            "start_date": pd.to_datetime(spells[start]).to_numpy(dtype="datetime64[ns]"),
            "end_date": pd.to_datetime(spells[end]).to_numpy(dtype="datetime64[ns]"),
        }
    )
    df = df[df["start_date"].notna()]
    df["start_m"] = months_of(df["start_date"])
    df["end_m"] = np.maximum(months_of(df["end_date"]), df["start_m"].to_numpy())
    df = df.sort_values([*KEY, "start_date", "end_m"], kind="stable").reset_index(drop=True)
    person = (df[KEY[0]] + ":" + df[KEY[1]]).to_numpy()
    first = np.ones(len(df), dtype=bool)
    first[1:] = person[1:] != person[:-1]
    reach = df.groupby([*KEY], sort=False)["end_m"].cummax().to_numpy()
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
    out.loc[out["_open"], "end_m"] = OPEN
    out = out.drop(columns="_open").reset_index(drop=True)
    out["seq"] = out.groupby(KEY, sort=False).cumcount() + 1
    return out[cols]


def monthly_status(
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


#: decimals of the monthly earnings before the panel rounds them to cents: far
#: above the floating-point noise of a wage split over parts (about 1e-12 euro),
#: and fine enough that an exact value rarely ends on a tie of this grid (at six
#: decimals one person of the full-size synthetic Den Haag did)
EARNINGS_DECIMALS = 9


def _earnings(
    pid: np.ndarray,
    start_day: np.ndarray,
    end_day: np.ndarray,
    wage: np.ndarray,
    t0: np.ndarray,
    n: int,
    lo: int,
    hi: int,
) -> np.ndarray:
    """(n, hi - lo + 1) euro per month: each spell's wage spread evenly over
    its days and summed per calendar month, to :data:`EARNINGS_DECIMALS`
    decimals. The rounding takes out the last bits of floating-point noise,
    so the cents of a month do not depend on how a job is cut over files or
    in which order its parts come: CBS delivers SPOLISBUS as a file per year,
    each with the part of a job in that year and its share of the wage
    (tests/test_cbs_files.py builds the same panel from both layouts)."""
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
    return np.round(flat.reshape(n, width), EARNINGS_DECIMALS)


def benefit_months(
    cbs: pd.DataFrame, index: pd.Index, t0: np.ndarray, lo: int, hi: int
) -> np.ndarray:
    """(n, hi - lo + 1) booleans: on bijstand in month k, from the merged
    CBS spells (:func:`merge_spells`) of the persons in ``index``, whose
    inflow months are ``t0``."""
    pid = person_positions(index, cbs)
    ok = pid >= 0
    return monthly_status(
        pid[ok],
        cbs["start_m"].to_numpy()[ok] - t0[pid[ok]],
        cbs["end_m"].to_numpy()[ok] - t0[pid[ok]],
        len(index),
        lo,
        hi,
    )


def job_months(
    jobs: pd.DataFrame, index: pd.Index, t0: np.ndarray, lo: int, hi: int, last_m: int
) -> tuple[np.ndarray, np.ndarray]:
    """(employed, earnings), each (n, hi - lo + 1), from the SPOLISBUS job
    spells. A job without a start date is left out; one without an end date
    runs to the end of the data (the last day of month ``last_m + hi``: the
    follow-up of the last inflow month)."""
    n = len(index)
    jp = person_positions(index, jobs)
    jok = jp >= 0
    data_end_day = int(_first_day(np.array([last_m + hi + 1]))[0] - 1)
    j_start = _days(jobs["SDATUMAANVANGIKO"], missing=-(10**9))[jok]
    j_end = _days(jobs["SDATUMEINDEIKO"], missing=data_end_day)[jok]
    valid = j_start > -(10**9)
    jp, j_start, j_end = jp[jok][valid], j_start[valid], np.maximum(j_end[valid], j_start[valid])
    wage = pd.to_numeric(jobs["SBASISLOON"], errors="coerce").to_numpy(dtype=float)[jok][valid]
    j_sm = j_start.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    j_em = j_end.astype("datetime64[D]").astype("datetime64[M]").astype("int64")
    employed = monthly_status(jp, j_sm - t0[jp], j_em - t0[jp], n, lo, hi)
    earnings = _earnings(jp, j_start, j_end, np.nan_to_num(wage), t0, n, lo, hi)
    return employed, earnings


def benefit_exit(person_months: pd.DataFrame) -> pd.DataFrame:
    """Per person, the first month k >= 0 after inflow without bijstand
    (``exit_month``; missing when on bijstand through month 24) and the
    months on bijstand as a bit mask (``benefit_months``: bit k set when on
    bijstand in month k, k = 0 .. 62), which says in which months an
    instrument could start (the month after one on bijstand)."""
    pm = person_months[person_months["month"] >= 0]
    off = pm[pm["on_benefit"] == 0]
    first = off.groupby(KEY, observed=True)["month"].min().rename("exit_month")
    on = pm[(pm["on_benefit"] == 1) & (pm["month"] < 63)]
    bits = (np.int64(1) << on["month"].to_numpy(dtype=np.int64))
    mask = pd.Series(bits, index=pd.MultiIndex.from_frame(on[KEY])).groupby(
        level=[0, 1], observed=True).sum().rename("benefit_months")
    people = pm[KEY].drop_duplicates().set_index(KEY)
    out = people.join(first).join(mask)
    out["benefit_months"] = out["benefit_months"].fillna(0).astype(np.int64)
    return out.reset_index()

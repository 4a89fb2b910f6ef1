"""Instrument episodes of the cohort: missing end dates imputed, each
episode placed in a benefit spell (the last CBS spell that started in or
before its start month) and numbered within it, the person's instrument (the
first episode starting in the inflow month or later, within the follow-up
window) and the instrument columns of ``persons``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.months import texts as month_text
from .panel_contract import EPISODE_COLUMNS, KEY, NO_INSTRUMENT, person_positions
from .panel_months import monthly_status, months_of


def split_episodes(
    instruments: pd.DataFrame,
    index: pd.Index,
    t0: np.ndarray,
    cbs: pd.DataFrame,
    cohort_seq: np.ndarray,
    hi: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Episodes of cohort members, split into the first per spell and the
    rest; and the person's instrument (first after inflow, within the window)."""
    names = [c for c, _, _ in EPISODE_COLUMNS]
    ep = instruments.copy()
    ep = ep[ep["start_date"].notna()]
    ep["RINPERSOONS"] = ep["RINPERSOONS"].astype(str)
    ep["RINPERSOON"] = ep["RINPERSOON"].astype(str)
    pid = person_positions(index, ep)
    ep = ep[pid >= 0].copy()
    pid = pid[pid >= 0]
    if ep.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        return typed_episodes(empty), typed_episodes(empty.copy()), empty
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
        np.round(fill.to_numpy(dtype=float)), unit="D"
    )
    start_m = months_of(ep["start_date"])
    ep["start_month"] = month_text(start_m)
    ep["elapsed"] = (start_m - t0[pid]).astype("int16")
    ep["_pid"] = pid
    ep["_start_m"] = start_m
    # the spell: the last CBS spell of the person that started in or before the start month
    sp = cbs.assign(_pid=person_positions(index, cbs)) if len(cbs) else cbs.assign(_pid=[])
    sp = sp[sp["_pid"] >= 0]
    sp = sp.assign(_rel=sp["seq"].to_numpy() - cohort_seq[sp["_pid"].to_numpy()] + 1)
    sp = sp[sp["_rel"] >= 1][["_pid", "start_m", "_rel"]].rename(columns={"start_m": "_spell_m"})
    ep = ep.sort_values(["_start_m", "_pid"], kind="stable")
    sp = sp.sort_values(["_spell_m", "_pid"], kind="stable")
    ep = pd.merge_asof(
        ep, sp, left_on="_start_m", right_on="_spell_m", by="_pid", direction="backward"
    )
    before = ep["elapsed"].to_numpy() < 0
    ep["spell"] = np.where(before | ep["_rel"].isna(), 0, ep["_rel"].fillna(0)).astype("int8")
    ep["spell_elapsed"] = pd.array(
        np.where(ep["spell"] > 0, ep["_start_m"] - ep["_spell_m"].fillna(0), 0).astype("int16"),
        dtype="Int16",
    )
    ep.loc[ep["spell"] == 0, "spell_elapsed"] = pd.NA
    ep = ep.sort_values(
        [*KEY, "spell", "start_date", "instrument", "end_date"], kind="stable"
    ).reset_index(drop=True)
    ep["order_in_spell"] = (ep.groupby([*KEY, "spell"], sort=False).cumcount() + 1).astype("int8")
    window = (ep["elapsed"] >= 0) & (ep["elapsed"] <= hi) & (ep["spell"] >= 1)
    first_idx = ep[window].drop_duplicates(KEY, keep="first").index
    ep["first_after_inflow"] = ep.index.isin(first_idx)
    is_first = (ep["order_in_spell"] == 1) & (ep["spell"] >= 1)
    episodes = typed_episodes(ep.loc[is_first, names].reset_index(drop=True))
    later = typed_episodes(ep.loc[~is_first, names].reset_index(drop=True))
    first = ep.loc[ep["first_after_inflow"], [*names]].reset_index(drop=True)
    return episodes, later, first


def typed_episodes(df: pd.DataFrame) -> pd.DataFrame:
    """The episode columns of the contract, in order, with their types."""
    types = {
        "RINPERSOONS": "string",
        "RINPERSOON": "string",
        "spell": "int8",
        "order_in_spell": "int8",
        "instrument": "string",
        "start_date": "datetime64[ns]",
        "end_date": "datetime64[ns]",
        "end_imputed": "bool",
        "start_month": "string",
        "elapsed": "int16",
        "spell_elapsed": "Int16",
        "first_after_inflow": "bool",
    }
    return df.astype(types)[[c for c, _, _ in EPISODE_COLUMNS]]


def instrument_months(
    ep_all: pd.DataFrame, first: pd.DataFrame, index: pd.Index, t0: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in_instrument, after_start, u): the first two (n, hi - lo + 1)
    booleans, in an instrument episode in month k and at or after the start
    month of the person's instrument; ``u`` that start month (months since
    inflow), -1 without an instrument."""
    n = len(index)
    ep_pid = person_positions(index, ep_all)
    in_instrument = monthly_status(
        ep_pid,
        ep_all["elapsed"].to_numpy(dtype="int64"),
        months_of(ep_all["end_date"]) - t0[ep_pid] if len(ep_all) else np.zeros(0, "int64"),
        n,
        lo,
        hi,
    )
    u = np.full(n, -1, dtype="int64")
    u[person_positions(index, first)] = first["elapsed"].to_numpy(dtype="int64")
    ks = np.arange(lo, hi + 1)
    after_start = (u[:, None] >= 0) & (ks[None, :] >= u[:, None])
    return in_instrument, after_start, u


def instrument_columns(
    out: pd.DataFrame, first: pd.DataFrame, ep_all: pd.DataFrame, index: pd.Index, hi: int
) -> None:
    """The columns of ``persons`` about the person's instrument, and the
    number of episodes starting in months 0 .. ``hi``."""
    n = len(index)
    f_pid = person_positions(index, first)
    ep_pid = person_positions(index, ep_all)
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

"""What works for whom, validation only (synthetic data): each group effect
against the true effect of the group's starters, and the predicted effect per
starter against the starter's true effect (rank correlation). Nothing here
runs on real data: the truths come from the generator's potential outcomes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .whom import Heterogeneity, group_frame


@dataclass(frozen=True)
class Predicted:
    """One analysis' predicted effect per starter, as :func:`iate_truth_table`
    needs it (the fields it reads of a :class:`~reintegration.phase2.whom.Heterogeneity`)."""

    instrument: str
    outcome: str
    starters: pd.Series  # the proxy, indexed by the person's row in the panel's persons


def read_predictions(frame: pd.DataFrame) -> list[Predicted]:
    """The analyses of :func:`reintegration.phase2.whom.predictions_frame`'s
    file, in the order the Who benefits step ran them."""
    return [Predicted(inst, outcome, pd.Series(g["proxy"].to_numpy(dtype=float),
                                               index=g["person"].to_numpy(dtype=np.int64),
                                               name="proxy"))
            for (inst, outcome), g in frame.groupby(["instrument", "outcome"], sort=False)]


def truth_table(analyses: Sequence[dict[str, Any]], persons: pd.DataFrame, po: pd.DataFrame,
                groups: Sequence[str]) -> pd.DataFrame:
    """Each group effect of ``heterogeneity.json`` (``analyses``) beside the
    true effect on the starters in the group: the mean over the group's
    starters of employment with the instrument started when it started minus
    employment had that start been blocked (the generator's not-now path).
    Groups are those of the panel's persons, the ones the estimate used."""
    from .estimates import aligned_truth

    joined = aligned_truth(persons, po)
    grp = group_frame(persons, list(groups))
    rows = []
    for a in analyses:
        effect = true_effects(joined, a["instrument"], a["outcome"])
        if effect is None:
            continue
        starters = (persons["instrument"] == a["instrument"]).to_numpy()
        for g in a["groups"]:
            if g["estimate"] is None or not math.isfinite(float(g["estimate"])):
                continue
            inside = starters & (grp[g["group"]] == g["level"]).fillna(False).to_numpy()
            truth = float(effect[inside].mean()) if inside.any() else math.nan
            est, se = float(g["estimate"]), float(g["std_error"])
            rows.append({"instrument": a["instrument"], "outcome": a["outcome"],
                         "group": g["group"], "level": g["level"],
                         "n_treated": int(g["n_treated"]), "estimate": est, "std_error": se,
                         "truth": truth, "bias": est - truth,
                         "covered": bool(abs(est - truth) <= 1.96 * se)})
    return pd.DataFrame(rows, columns=["instrument", "outcome", "group", "level", "n_treated",
                                       "estimate", "std_error", "truth", "bias", "covered"])


def true_effects(joined: pd.DataFrame, instrument: str, outcome: str) -> pd.Series | None:
    """Each person's true effect of starting ``instrument`` when they started
    against that start blocked (the not-now path): employment at the
    outcome's horizon in the world with the instrument minus in the not-now
    world, from the potential outcomes aligned with the panel's persons
    (:func:`reintegration.phase2.estimates.aligned_truth`). The estimand of the group
    truths; meaningful for the starters. None for an outcome without it."""
    h = outcome.rsplit("_", 1)[-1]
    with_it, notnow = f"employed_{instrument}_{h}", f"employed_notnow_{h}"
    if not outcome.startswith("employed_") or notnow not in joined or with_it not in joined:
        return None
    return (joined[with_it] - joined[notnow]).reset_index(drop=True)


def conditional_effects(joined: pd.DataFrame, outcome: str) -> pd.Series | None:
    """Each starter's true conditional effect: the expected effect of their
    start against that start blocked, given everything the generator knows
    about them (``expected_effect_notnow_<h>``, exact from the monthly
    chain; :mod:`reintegration.synth.expected`). What a prediction per
    person can at best recover, where :func:`true_effects` (0 or ±1) also
    holds the luck of the draws. NaN for non-starters; None for an outcome
    or a world without it."""
    column = f"expected_effect_notnow_{outcome.rsplit('_', 1)[-1]}"
    if not outcome.startswith("employed_") or column not in joined:
        return None
    return joined[column].astype(float).reset_index(drop=True)


def rank_correlation(x: Sequence[float], y: Sequence[float], *, draws: int = 999,
                     seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman's rank correlation of ``x`` and ``y`` (pairs with both
    values), with a percentile bootstrap interval over the pairs (persons)
    when ``draws`` > 0; NaN where a side has no spread."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out = {"rank_correlation": math.nan, "low": math.nan, "high": math.nan, "n": int(len(a))}
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    out["rank_correlation"] = _spearman(a, b)
    if draws > 0:
        rng = np.random.default_rng(seed)
        # each draw's mid-ranks from counts of the distinct values (no sorting per draw)
        (ua, ca), (ub, cb) = (np.unique(v, return_inverse=True) for v in (a, b))
        boot = np.array([_correlation(_mid_ranks(ca[i], len(ua)), _mid_ranks(cb[i], len(ub)))
                         for i in (rng.integers(0, len(a), len(a)) for _ in range(draws))])
        boot = boot[np.isfinite(boot)]
        if len(boot):
            tail = 100 * (1 - level) / 2
            out["low"], out["high"] = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return _correlation(stats.rankdata(a), stats.rankdata(b))  # mid-ranks for ties


def _correlation(ra: np.ndarray, rb: np.ndarray) -> float:
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _mid_ranks(codes: np.ndarray, levels: int) -> np.ndarray:
    """``scipy.stats.rankdata`` of values given as ``codes`` of their sorted
    distinct values (``levels`` of them): the number of smaller values plus
    the mean position among the ties. Ranks are whole or half numbers, so
    the result is the same to the last bit, found in linear time."""
    counts = np.bincount(codes, minlength=levels)
    return ((np.cumsum(counts) - counts) + (counts + 1) / 2.0)[codes]


def iate_truth_table(results: Sequence[Heterogeneity | Predicted], persons: pd.DataFrame,
                     po: pd.DataFrame, *, draws: int = 999, seed: int = 0) -> pd.DataFrame:
    """Per instrument and outcome, the rank correlation between the starters'
    predicted effects (the cross-fitted proxy at their start) and
    their true conditional effects (:func:`conditional_effects`; where the
    world lacks them, the realised effects of :func:`true_effects`, column
    ``truth``), with a 95% bootstrap interval over the starters and whether
    it lies above zero."""
    from .estimates import aligned_truth

    joined = aligned_truth(persons.reset_index(drop=True), po)
    rows = []
    for res in results:
        effect, kind = conditional_effects(joined, res.outcome), "expected"
        if effect is None:
            effect, kind = true_effects(joined, res.instrument, res.outcome), "realised"
        if effect is None or res.starters.empty:
            continue
        truth = effect.to_numpy()[res.starters.index.to_numpy()]
        rc = rank_correlation(res.starters.to_numpy(), truth, draws=draws, seed=seed)
        rows.append({"instrument": res.instrument, "outcome": res.outcome,
                     "starters": rc["n"], "rank_correlation": rc["rank_correlation"],
                     "low": rc["low"], "high": rc["high"],
                     "above_zero": bool(rc["low"] > 0) if math.isfinite(rc["low"]) else None,
                     "truth": kind})
    return pd.DataFrame(rows, columns=["instrument", "outcome", "starters", "rank_correlation",
                                       "low", "high", "above_zero", "truth"])


def iate_truth_in_words(table: pd.DataFrame, min_starters: int, label) -> pd.DataFrame:
    """:func:`iate_truth_table` for readers: no counts; instruments with
    fewer than ``min_starters`` starters shown as too few."""
    rows = []
    for r in table.itertuples(index=False):
        few = r.starters < min_starters or not math.isfinite(r.rank_correlation)
        rows.append({
            "instrument": label(r.instrument), "outcome": label(r.outcome),
            "rank correlation, predicted and true effect": "–" if few
            else f"{r.rank_correlation:.3f}",
            "95% interval (bootstrap over starters)": "–" if few or not math.isfinite(r.low)
            else f"from {r.low:.3f} to {r.high:.3f}",
            "above zero?": "too few starters" if few else "yes" if r.above_zero else
            "no: below zero (the predictions point the wrong way)" if r.high < 0 else
            "no (the interval reaches zero)"})
    return pd.DataFrame(rows).set_index(["instrument", "outcome"]) if rows else pd.DataFrame()


def coverage_by_size(table: pd.DataFrame, threshold: int = 200) -> pd.DataFrame:
    """Coverage of the group intervals per instrument, for groups with at
    least ``threshold`` starters and for all groups (no counts of persons:
    numbers of group effects)."""
    out = []
    for inst, g in table.groupby("instrument", sort=True):
        big = g[g["n_treated"] >= threshold]
        out.append({"instrument": inst, "group effects": len(g),
                    "covered": round(float(g["covered"].mean()), 3) if len(g) else None,
                    f"with {threshold}+ starters": len(big),
                    f"covered ({threshold}+)": round(float(big["covered"].mean()), 3)
                    if len(big) else None,
                    "mean bias": round(float(g["bias"].mean()), 4) if len(g) else None})
    return pd.DataFrame(out).set_index("instrument") if out else pd.DataFrame()

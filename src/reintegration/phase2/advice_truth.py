"""Truths of the advice rule (validation only): each starter's potential
outcome under the advice, the best rule of the same kind learned on the
potential outcomes (the *oracle*), the regret, and the rule's estimates
beside their true values in a table and in words.

The true value of a rule is the mean of each starter's potential outcome
under the action the rule gives them, from the synthetic world's potential
outcomes ("start *j* at the month the case manager decided", the start
month of today's starters). Read only by the validator and the Monte Carlo
harness; :mod:`reintegration.phase2.advice` never sees a truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..research import labels
from . import policy_tree as pt
from .advice import Advice
from .policy_tree import TODAY


def potential_matrix(po: pd.DataFrame, actions: Sequence[str], outcome: str) -> np.ndarray:
    """(n, A): each person's potential outcome under each action (rows of
    the aligned potential outcomes: ``employed_<action>_<h>``)."""
    base, h = outcome.rsplit("_", 1)
    cols = [f"{base}_{'obs' if a == TODAY else a}_{h}" for a in actions]
    missing = [c for c in cols if c not in po]
    if missing:
        raise ValueError(f"potential outcomes: no column(s) {missing}")
    return po[cols].to_numpy(dtype=float)


def true_values(adv: Advice, po: pd.DataFrame) -> dict[str, Any]:
    """The true values of the learned rule (held out, as estimated; and as
    shown, learned on all starters), of the oracle rule of the same class
    (the same items and places, learned on the potential outcomes), of
    today's allocation, nobody treated and the best single instrument; and
    the regret. ``po`` is aligned with the starters (phase2.aligned_truth)."""
    actions, s = adv.actions, adv.settings
    Y = potential_matrix(po, actions, s.outcome)
    if np.isnan(Y).any():
        raise ValueError(f"potential outcomes missing for {int(np.isnan(Y).any(1).sum())} starters")
    base, h = s.outcome.rsplit("_", 1)
    splits = pt.candidate_splits(
        adv.frame, {f: s.features[f] for f in adv.rule.features}, level_label=labels.label
    )
    current = adv.scores.today(actions)
    oracle = pt.fit(
        adv.frame,
        Y,
        actions,
        splits,
        depth=s.depth,
        capacity=adv.capacity,
        min_leaf=s.min_leaf(len(Y)),
        today=current,
    )
    best = adv.values["best_single"].iloc[0]
    out: dict[str, Any] = {
        "rule_heldout": float((adv.rule.heldout * Y).sum(axis=1).mean()),
        "rule": float(pt.value(adv.rule.tree, adv.frame, Y).mean()),
        "oracle": float(pt.value(oracle, adv.frame, Y).mean()),
        "status_quo": float(po[f"{base}_obs_{h}"].astype(float).mean()),
        "nobody": float(po[f"{base}_none_{h}"].astype(float).mean()),
        "best_single": float(Y[:, actions.index(best)].mean()),
    }
    out["regret"] = out["oracle"] - out["rule"]
    out["oracle_gain"] = out["oracle"] - out["status_quo"]
    out["regret_share"] = out["regret"] / out["oracle_gain"] if out["oracle_gain"] > 0 else math.nan
    out["oracle_rule"] = [{"path": p, "advice": a} for p, a in oracle.rules()]
    return out


def _benchmarks(adv: Advice, truth: dict[str, Any]) -> list[tuple[str, str | None, float]]:
    """The alternatives the page compares with: nobody starting, and every
    starter the best single instrument (places not limited)."""
    best = adv.values["best_single"].iloc[0]
    return [
        ("employment had nobody started an instrument", "nobody treated", truth["nobody"]),
        (
            f"employment had every starter started {best} (no limit on places)",
            f"everybody: {best}",
            truth["best_single"],
        ),
    ]


def validation_table(adv: Advice, truth: dict[str, Any]) -> pd.DataFrame:
    """The rule's estimates beside their true values (:func:`true_values`),
    in percentage points: its held-out value and its gain over today's
    choices with their intervals, and the true values of the rule shown,
    of the best rule of its kind and of today's choices, with the regret."""
    v = adv.values
    rule = v[(v["policy"] == "the rule") & v["versus"].isna()].iloc[0]
    gain = v[v["versus"] == "today's allocation"].iloc[0]
    rows = []
    for name, est, truth_value in (
        ("employment under the rule (held-out)", rule, truth["rule_heldout"]),
        ("gain over today's choices (held-out)", gain, truth["rule_heldout"] - truth["status_quo"]),
    ):
        covered = est["ci_low"] <= truth_value <= est["ci_high"]
        rows.append(
            {
                "quantity": name,
                "estimate": 100 * est["estimate"],
                "95% interval": f"{100 * est['ci_low']:.1f} to {100 * est['ci_high']:.1f}",
                "true value": 100 * truth_value,
                "interval covers the truth": covered,
            }
        )
    for label_, est_key, truth_value in _benchmarks(adv, truth):
        match = v[(v["policy"] == est_key) & v["versus"].isna()]
        if not len(match):  # nobody treated needs the effects against never starting
            continue
        est = match.iloc[0]
        rows.append(
            {
                "quantity": label_,
                "estimate": 100 * est["estimate"],
                "95% interval": f"{100 * est['ci_low']:.1f} to {100 * est['ci_high']:.1f}",
                "true value": 100 * truth_value,
                "interval covers the truth": est["ci_low"] <= truth_value <= est["ci_high"],
            }
        )
    for name, key in (
        ("employment under the rule shown", "rule"),
        ("employment under the best rule of its kind", "oracle"),
        ("employment under today's choices", "status_quo"),
        ("regret: best rule minus the rule shown", "regret"),
        ("gain of the best rule over today's choices", "oracle_gain"),
    ):
        rows.append(
            {
                "quantity": name,
                "estimate": None,
                "95% interval": "",
                "true value": 100 * truth[key],
                "interval covers the truth": None,
            }
        )
    share = truth["regret_share"]
    rows.append(
        {
            "quantity": "regret as a share of the best rule's gain (%)",
            "estimate": None,
            "95% interval": "",
            "true value": 100 * share if math.isfinite(share) else None,
            "interval covers the truth": None,
        }
    )
    out = pd.DataFrame(rows).set_index("quantity")
    return out.round(1)


def validation_sentence(truth: dict[str, Any]) -> str:
    """The validation of the rule in plain words, from its true values."""
    gain = 100 * (truth["rule"] - truth["status_quo"])
    best = 100 * truth["oracle_gain"]
    if gain < 0:
        head = (
            f"In truth the rule shown would lower the share of starters in work by "
            f"{-gain:.1f} percentage points compared with today's choices."
        )
    else:
        head = (
            f"In truth the rule shown raises the share of starters in work by "
            f"{gain:.1f} percentage points over today's choices."
        )
    if best <= 0:
        return head + " No rule of its kind does better than today's choices."
    if gain < 0:
        return head + (
            f" The best rule of its kind would raise it by {best:.1f} points: the learned "
            "rule does worse than today's choices, where a rule with these questions and "
            "places could do better: following it here would cost work."
        )
    return (
        head + f" The best rule of its kind would raise it by {best:.1f} points, so the "
        f"learned rule recovers {gain / best:.0%} of what a rule with these "
        "questions and places could gain."
    )

"""The Monte Carlo harness's heterogeneity rows: in every world, the *Who
benefits* analysis (:func:`reintegration.phase2.whom.analyse`, the settings of
``heterogeneity:`` in config/effects.yml, linear learner) of every
selection-on-observables instrument, against the world's truths.

Per replication and instrument these kinds of row:

``blp_groups``
    the published heterogeneity test: the Wald statistic and p-value of
    "the effect does not differ by any pre-registered characteristic"
    (:func:`reintegration.phase2.whom.blp_groups`). In the null world there is no
    effect and so no heterogeneity: the share of worlds rejecting at 5% is
    the test's size (criterion: at most 6% over at least 100 worlds).
``blp`` and ``blp_split``
    the slope beta2 of the best linear predictor by the predicted effect
    (``heterogeneity.iate``: the DR-learner by default), with the folds
    pooled (SE and p-value; oversized, recorded to show it) and by the
    split rule (median slope and doubled median p-value over the folds; the
    page's check of the predictions).
``gate``
    each group effect shown (every level of every pre-registered
    characteristic) with its 95% interval and its true value
    (:func:`reintegration.phase2.whom_truth.truth_table`: employment with the start minus
    with that start blocked, over the group's starters). In the oracle world
    the design's assumption holds: the intervals of cells with at least 200
    starters should cover in at least 90%.
``rank``
    Spearman's rank correlation between the starters' cross-fitted predicted
    effects (:func:`reintegration.phase2.whom.cross_fit`'s proxy) and their
    true effects (the same estimand as the group truths:
    :func:`reintegration.phase2.whom_truth.true_effects`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..phase2 import whom, whom_truth
from .shares import clopper_pearson, percent

#: the columns of one replication's heterogeneity rows, in order
HET_FIELDS = (
    "mode",
    "replication",
    "instrument",
    "outcome",
    "kind",
    "group",
    "level",
    "status",
    "n_treated",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "pvalue",
    "truth",
)
#: criteria of issue "What works for whom" (see the module text)
BLP_SIZE, MIN_WORLDS, GATE_COVERAGE, GATE_MIN_TREATED = 0.06, 100, 0.90, 200
LEARNER = "linear"
#: the kinds of world in the tables (the section above describes them)
SHORT = {
    "planted": "planted",
    "null": "null",
    "oracle": "oracle",
    "null_oracle": "null, seen by the oracle",
}


def rows(
    inputs,
    po: pd.DataFrame,
    settings: dict[str, Any],
    instruments: dict[str, pd.DataFrame | None],
    mode: str,
    replication: int,
) -> list[dict[str, Any]]:
    """The heterogeneity rows of one world (module text) for ``instruments``
    (the selection-on-observables sub-studies the world runs, with the risk
    sets the design built, or None to build them)."""
    settings = copy.deepcopy(settings)
    settings["heterogeneity"] = {**settings["heterogeneity"], "learner": LEARNER}
    base = {"mode": mode, "replication": replication}
    out: list[dict[str, Any]] = []
    subs = {
        inst: {"design": "selection_on_observables", "instrument": inst, "decision": "go"}
        for inst, data in instruments.items()
        if data is not None
    }
    try:  # every instrument at once (the persons' groups once)
        results = whom.analyses(inputs, list(subs.values()), settings, instruments)
    except (ValueError, np.linalg.LinAlgError):
        results = []
        for instrument, sub in subs.items():  # which one failed, and the others' rows
            try:
                results += whom.analyses(inputs, [sub], settings, instruments)
            except (ValueError, np.linalg.LinAlgError) as exc:
                reason = "failed: " + " ".join(str(exc).split())[:120]
                out.append(_row({**base, "instrument": instrument}, kind="blp", status=reason))
    persons = inputs.persons.reset_index(drop=True)
    truth = whom_truth.truth_table(
        [whom.summary_record(r) for r in results],
        persons,
        po,
        list(settings["heterogeneity"]["groups"]),
    )
    ranks = whom_truth.iate_truth_table(results, persons, po, draws=0)
    for res in results:
        key = {**base, "instrument": res.instrument, "outcome": res.outcome}
        b = res.blp
        out.append(
            _row(
                key,
                kind="blp",
                status="estimated",
                n_treated=res.overall.n_treated,
                estimate=b["beta2"],
                std_error=b["beta2_se"],
                pvalue=b["beta2_pvalue"],
            )
        )
        out.append(
            _row(
                key,
                kind="blp_groups",
                status="estimated",
                n_treated=res.overall.n_treated,
                estimate=b.get("groups_wald"),
                pvalue=b.get("groups_pvalue"),
            )
        )
        out.append(
            _row(
                key,
                kind="blp_split",
                status="estimated",
                n_treated=res.overall.n_treated,
                estimate=b.get("beta2_split"),
                pvalue=b.get("beta2_pvalue_split"),
            )
        )
        mine = truth[(truth["instrument"] == res.instrument) & (truth["outcome"] == res.outcome)]
        for g in mine.itertuples(index=False):
            out.append(
                _row(
                    key,
                    kind="gate",
                    status="estimated",
                    group=g.group,
                    level=g.level,
                    n_treated=g.n_treated,
                    estimate=g.estimate,
                    std_error=g.std_error,
                    ci_low=g.estimate - 1.96 * g.std_error,
                    ci_high=g.estimate + 1.96 * g.std_error,
                    truth=g.truth,
                )
            )
        rk = ranks[(ranks["instrument"] == res.instrument) & (ranks["outcome"] == res.outcome)]
        for r in rk.itertuples(index=False):
            out.append(
                _row(
                    key,
                    kind="rank",
                    status="estimated",
                    n_treated=r.starters,
                    estimate=r.rank_correlation,
                )
            )
    return out


def _row(key: dict[str, Any], **values: Any) -> dict[str, Any]:
    row = {**dict.fromkeys(HET_FIELDS), **key, **values}
    for k in ("estimate", "std_error", "ci_low", "ci_high", "pvalue", "truth"):
        v = row[k]
        row[k] = float(v) if v is not None and math.isfinite(float(v)) else None
    return row


def frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    out = pd.DataFrame(list(records), columns=list(HET_FIELDS))
    return out.sort_values(
        ["mode", "kind", "instrument", "outcome", "group", "level", "replication"],
        kind="stable",
        na_position="first",
    ).reset_index(drop=True)


def summarise(het: pd.DataFrame) -> dict[str, Any]:
    """Per mode: the BLP slope's rejection share at 5% (per instrument and
    pooled), the coverage of the group intervals (cells with at least 200
    starters and all), the mean rank correlation per instrument."""
    out: dict[str, Any] = {}
    for mode, m in het.groupby("mode", sort=True):
        ok = m[m["status"] == "estimated"]
        blp = ok[(ok["kind"] == "blp") & ok["pvalue"].notna()]
        rej = blp["pvalue"].astype(float) < 0.05
        per = [
            {
                "instrument": i,
                "tests": int(len(g)),
                "rejection": float((g["pvalue"].astype(float) < 0.05).mean()),
            }
            for i, g in blp.groupby("instrument", sort=True)
        ]
        lo, hi = clopper_pearson(int(rej.sum()), int(len(rej)))
        gate = ok[(ok["kind"] == "gate") & ok["truth"].notna()]
        covered = (gate["ci_low"] <= gate["truth"]) & (gate["truth"] <= gate["ci_high"])
        big = gate["n_treated"].astype(float) >= GATE_MIN_TREATED
        glo, ghi = clopper_pearson(int(covered[big].sum()), int(big.sum()))
        rank = ok[(ok["kind"] == "rank") & ok["estimate"].notna()]
        out[str(mode)] = {
            "worlds": int(m["replication"].nunique()),
            "failed": int((m["status"] != "estimated").sum()),
            "blp": {
                "tests": int(len(rej)),
                "rejection": _mean(rej),
                "rejection_low": lo,
                "rejection_high": hi,
                # the spread of beta2 / SE over the tests: 1 when the SE is right
                "sd_t": float((blp["estimate"] / blp["std_error"]).std(ddof=1))
                if len(blp) > 1
                else None,
                "per_instrument": per,
            },
            "blp_split": _rejections(ok, "blp_split"),
            "blp_groups": _rejections(ok, "blp_groups"),
            "gate": {
                "cells": int(len(gate)),
                "coverage": _mean(covered),
                "cells_large": int(big.sum()),
                "coverage_large": _mean(covered[big]),
                "coverage_large_low": glo,
                "coverage_large_high": ghi,
                "mean_bias": _mean(gate["estimate"] - gate["truth"]),
            },
            "rank": [
                {
                    "instrument": i,
                    "worlds": int(len(g)),
                    "mean": float(g["estimate"].mean()),
                    "sd": float(g["estimate"].std(ddof=1)) if len(g) > 1 else None,
                    "positive": float((g["estimate"] > 0).mean()),
                }
                for i, g in rank.groupby("instrument", sort=True)
            ],
        }
    return out


def _rejected(part: dict[str, Any] | None) -> str:
    if not part or not part.get("tests"):
        return "–"
    return (f"{percent(part['rejection'])} of {part['tests']} "
            f"[{percent(part['rejection_low'])}-{percent(part['rejection_high'])}]")


def _rejections(ok: pd.DataFrame, kind: str) -> dict[str, Any]:
    """The share of ``kind``'s tests rejecting at 5%, with its exact interval."""
    rows = ok[(ok["kind"] == kind) & ok["pvalue"].notna()]
    rej = rows["pvalue"].astype(float) < 0.05
    lo, hi = clopper_pearson(int(rej.sum()), int(len(rej)))
    return {"tests": int(len(rej)), "rejection": _mean(rej), "rejection_low": lo,
            "rejection_high": hi}


def _mean(x: pd.Series) -> float | None:
    return float(x.astype(float).mean()) if len(x) else None


def acceptance(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The two harness criteria of the heterogeneity analysis: the BLP test's
    size in the null world (at most 6%, over at least 100 worlds) and the
    oracle world's coverage of the group truths in cells with at least 200
    starters (at least 90%)."""
    out = []
    for mode in ("null", "null_oracle"):
        null = summary.get(mode)
        # the published test (all groups at once), the pooled slope on the fitted
        # proxy (oversized, recorded) and the conservative split rule
        for check, part in (
            ("groups_size", "blp_groups"),
            ("blp_size", "blp"),
            ("blp_size_split", "blp_split"),
        ):
            if null and null.get(part, {}).get("tests"):
                v = null[part]["rejection"]
                enough = null["worlds"] >= MIN_WORLDS
                out.append(
                    {
                        "check": check,
                        "mode": mode,
                        "value": v,
                        "worlds": null["worlds"],
                        "enough_worlds": enough,
                        "met": bool(v <= BLP_SIZE and enough),
                    }
                )
    oracle = summary.get("oracle")
    if oracle and oracle["gate"]["cells_large"]:
        v = oracle["gate"]["coverage_large"]
        out.append(
            {
                "check": "gate_coverage",
                "mode": "oracle",
                "value": v,
                "worlds": oracle["worlds"],
                "enough_worlds": True,
                "met": bool(v >= GATE_COVERAGE),
            }
        )
    return out


def markdown(data: dict[str, Any], root=None) -> list[str]:
    """The heterogeneity part of the Monte Carlo section (plain words)."""
    from ..research.labels import label
    het = data.get("heterogeneity")
    if not het:
        return []
    summary, checks, cost = het["summary"], het["acceptance"], het.get("cost", {})
    lines = [
        "**Who benefits, over the worlds.** In every world the group effects, the "
        "heterogeneity test of all pre-registered groups at once, the slope on the "
        "predicted effect per starter (folds pooled, and the split rule) and those "
        "predictions, for every selection-on-observables instrument (employment 24 "
        "months after inflow, linear learner), against the world's truths: a group's "
        "true effect is its starters' mean of employment with the start minus "
        "employment had that start been blocked; a starter's, for the rank "
        "correlations, is that difference expected given everything the generator "
        "knows about them.",
        "",
    ]
    if cost.get("share") is not None:
        lines += [
            f"This analysis took {percent(cost['share'])} of the time of a world "
            f"({cost['seconds_mean']:.1f} seconds on average).",
            "",
        ]
    lines += [
        "| world | test of all groups at once rejecting at 5% | slope on the predicted "
        "effect (pooled) rejecting at 5% | SD of slope / SE | split rule rejecting at 5% "
        "| group intervals covering their truth (cells with 200+ starters) | all group cells "
        "| mean bias of the group effects (pp) |",
        "|---|---|---|---:|---|---|---|---:|",
    ]
    for mode, s in summary.items():
        b, g = s["blp"], s["gate"]
        bias = g["mean_bias"]
        sd_t = "–" if b.get("sd_t") is None else f"{b['sd_t']:.2f}"
        lines.append(
            f"| {SHORT.get(mode, mode)} | {_rejected(s.get('blp_groups'))} | "
            f"{_rejected(b)} | {sd_t} | {_rejected(s.get('blp_split'))} | "
            f"{percent(g['coverage_large'])} of {g['cells_large']} "
            f"[{percent(g['coverage_large_low'])}-{percent(g['coverage_large_high'])}] | "
            f"{percent(g['coverage'])} of {g['cells']} | "
            f"{'–' if bias is None else f'{100 * bias:+.1f}'} |"
        )
    lines += [
        "",
        "Rank correlation between the predicted and the true effect per starter "
        "(Spearman; mean over the worlds, with the share of worlds in which it is "
        "positive). The true effect per starter is their expected effect given "
        "everything the generator knows about them, the unobserved factor included "
        "(exact, from the world's monthly chain), which no prediction from the "
        "observed characteristics can match fully.",
        "",
        "| world | instrument | mean rank correlation | SD over worlds | positive in |",
        "|---|---|---:|---:|---:|",
    ]
    for mode, s in summary.items():
        for r in s["rank"]:
            sd = "–" if r["sd"] is None else f"{r['sd']:.3f}"
            lines.append(
                f"| {SHORT.get(mode, mode)} | {label(r['instrument'], root)} | {r['mean']:+.3f} | "
                f"{sd} | {percent(r['positive'])} |"
            )
    lines.append("")
    worlds = {
        "null": "the null world",
        "null_oracle": "the null world seen by the oracle",
        "oracle": "the oracle world",
    }
    words = {
        "groups_size": "rejection rate of the published heterogeneity test (all "
        f"pre-registered groups at once; its size) at most {percent(BLP_SIZE)} over at least "
        f"{MIN_WORLDS} worlds",
        "blp_size": "the same for the slope on the predicted effect, folds pooled "
        "(recorded, not published as a test)",
        "blp_size_split": "the same for that slope's split rule (median of the folds' "
        "p-values, doubled; the page's check of the predictions)",
        "gate_coverage": f"coverage of the group truths at least {percent(GATE_COVERAGE)} "
        f"(cells with {GATE_MIN_TREATED}+ starters)",
    }
    for c in checks:
        state = "met" if c["met"] else "not met"
        extra = (
            ""
            if c["enough_worlds"]
            else f" (over {c['worlds']} worlds, fewer than the {MIN_WORLDS} the criterion asks for)"
        )
        lines.append(
            f"* {words[c['check']]}, {worlds.get(c['mode'], c['mode'])}: {state}, "
            f"{percent(c['value'])}{extra}"
        )
    if checks:
        lines.append("")
    return lines

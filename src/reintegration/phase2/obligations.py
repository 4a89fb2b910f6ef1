r"""Phase 1's conditions as obligations that Phase 2 fulfils and the release
audit checks.

A conditional check of Phase 1 is not a remark: it names what must happen
before the sub-study's results may be released. Each check name maps to one
:class:`Obligation` (:func:`obligation_for`), of one of two kinds:

analysis
    something Phase 2 does or shows; :func:`evaluate` checks it on the
    estimates and the prepared data of the sub-study;
organisation
    something the municipality or the study team does (complete a legal
    document, confirm the question with a stakeholder); it is met when the
    Phase 1 check that raised it passes, i.e. when the city's configuration
    records it done.

Step 06 registers the result per sub-study and condition as the public
table ``obligations`` (status *met* or *unmet* and the evidence, in words
and statistics, never counts). The release audit
(:func:`reintegration.disclosure.audit.scan_obligations`) fails when a sub-study that
was estimated has an unmet obligation, so no result leaves under a condition
nobody fulfilled.

The sensitivity analysis for unobserved confounding is the robustness value
of Cinelli and Hazlett (2020), computed with every selection-on-observables
estimate (:func:`reintegration.designs.selection.robustness_value`), and
the benchmarked bounds of :mod:`reintegration.phase2.sensitivity`: how far a hidden
factor as strong as an observed covariate could move the estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import designs
from ..designs.base import Inputs

#: panel columns derived from each canonical export column (for the check that
#: an estimate does not depend on an incomplete column)
DERIVED_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "instruments.end_date": {"persons": ("instrument_end", "instrument_end_imputed"),
                             "person_months": ("in_instrument",)},
}
STATUSES = ("met", "unmet")


@dataclass(frozen=True)
class Obligation:
    """What fulfils one kind of condition."""

    key: str
    kind: str
    text: str


_ANALYSIS = {
    "unconfoundedness": Obligation(
        "sensitivity_analysis", "analysis",
        "a sensitivity analysis for unobserved confounding (robustness value) on every "
        "estimate, and the design-based estimates of the same instrument set beside it"),
    "mde": Obligation(
        "report_mde", "analysis",
        "Phase 1's minimum detectable effect reported with every estimate, so that a null "
        "result reads as inconclusive and the city can be pooled"),
    "teams_per_side": Obligation(
        "randomisation_inference", "analysis",
        "p-values and intervals from the randomisation test over roll-out dates"),
    "column_completeness": Obligation(
        "no_dependence_on_incomplete_columns", "analysis",
        "the estimates do not depend on the incomplete columns: the design's data are the "
        "same without every panel column derived from them"),
    "overlap": Obligation(
        "common_support", "analysis",
        "the effect on the treated inside the common support, with the trimmed share reported"),
    "clients_per_case_manager": Obligation(
        "split_sample_instrument", "analysis",
        "the estimate repeated with a split-sample instrument"),
    "balance": Obligation(
        "covariate_stability", "analysis",
        "the estimate repeated with the covariates controlled, and shown stable"),
    "monotonicity": Obligation(
        "first_stage_by_group", "analysis",
        "the first stage in every pre-registered subgroup reported with the estimate, which "
        "reads as an average that may give some clients a negative weight"),
}
_ORGANISATION = Obligation(
    "resolved_in_configuration", "organisation",
    "resolved by the municipality or the study team and recorded in the city's "
    "configuration, so that the Phase 1 check passes")


def obligation_for(check: str) -> Obligation:
    """The obligation a conditional check of this name raises."""
    return _ANALYSIS.get(check, _ORGANISATION)


# ---- the analysis checks ----------------------------------------------------------


Context = dict[str, Any]
Fulfil = Callable[[dict[str, Any], list[dict[str, Any]], Context, dict[str, Any]],
                  tuple[bool, str]]


def _estimated(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["status"] == "estimated"]


def _sensitivity(sub: dict[str, Any], records: list[dict[str, Any]], ctx: Context,
                 cond: dict[str, Any]) -> tuple[bool, str]:
    est = [r for r in _estimated(records) if r["subgroup"] == "all"]
    rvs = [(r["diagnostics"] or {}).get("robustness_value") for r in est]
    if not est or any(v is None for v in rvs):
        return False, "no robustness value on the estimates"
    others = [s for s in ctx["substudies"] if s["instrument"] == sub["instrument"]
              and s["design"] != sub["design"]]
    compared = "; ".join(f"{designs.get(s['design']).short}: {s['decision']}"
                         for s in others) or "no design-based sub-study of this instrument"
    table = ctx.get("sensitivity")
    if table is not None:
        own = table[(table["sub-study"] == sub["id"]) & (table["multiple"] == 1)]
        if own.empty:
            return False, "no benchmarked sensitivity analysis of this sub-study"
        widest = own.loc[(own["estimate_high"] - own["estimate_low"]).idxmax()]
        return True, (
            f"carried out: robustness value {100 * min(rvs):.1f}% to {100 * max(rvs):.1f}% "
            "(per outcome); a hidden factor as strong as the strongest benchmark "
            f"({widest['covariate']}) could move the linear estimate of "
            f"{100 * widest['estimate']:+.1f} percentage points to between "
            f"{100 * widest['estimate_low']:+.1f} and {100 * widest['estimate_high']:+.1f}; "
            f"design-based sub-studies of the instrument: {compared}")
    return True, (f"carried out: a hidden factor explaining {100 * min(rvs):.1f}% to "
                  f"{100 * max(rvs):.1f}% of the remaining variation in both who starts and the "
                  "outcome would remove the estimate (robustness value, per outcome); "
                  f"design-based sub-studies of the instrument: {compared}")


def _mde_reported(sub: dict[str, Any], records: list[dict[str, Any]], ctx: Context,
                  cond: dict[str, Any]) -> tuple[bool, str]:
    est = _estimated(records)
    values = [(r["diagnostics"] or {}).get("mde_phase1") for r in est]
    if not est or any(v is None for v in values):
        return False, "Phase 1's minimum detectable effect is missing from the estimates"
    return True, f"minimum detectable effect {100 * values[0]:.1f} percentage points reported"


def _randomisation(sub: dict[str, Any], records: list[dict[str, Any]], ctx: Context,
                   cond: dict[str, Any]) -> tuple[bool, str]:
    est = _estimated(records)
    ok = bool(est) and all((r["diagnostics"] or {}).get("randomization_assignments")
                           for r in est)
    return ok, ("intervals and p-values from the randomisation test" if ok else
                "an estimate without a randomisation test")


def _no_dependence(sub: dict[str, Any], records: list[dict[str, Any]], ctx: Context,
                   cond: dict[str, Any]) -> tuple[bool, str]:
    inputs: Inputs = ctx["inputs"]
    incomplete = sorted((cond.get("value") or {}).keys())
    unknown = [c for c in incomplete if c not in DERIVED_COLUMNS]
    if unknown:
        return False, f"no automatic check for {', '.join(unknown)}"
    drop_p = [c for col in incomplete for c in DERIVED_COLUMNS[col]["persons"]]
    drop_m = [c for col in incomplete for c in DERIVED_COLUMNS[col]["person_months"]]
    design = designs.get(sub["design"])
    without = Inputs(
        persons=inputs.persons.drop(columns=drop_p, errors="ignore"), city=inputs.city,
        effects=inputs.effects,
        person_months=None if inputs.person_months is None else
        inputs.person_months.drop(columns=drop_m, errors="ignore"))
    try:
        a = design.prepare(inputs, sub["instrument"])
        b = design.prepare(without, sub["instrument"])
    except (KeyError, ValueError) as exc:
        return False, f"the design needs a derived column: {exc}"
    if a is None or b is None:
        return False, "the design has no data"
    used = [c for c in a.columns if c not in (*drop_p, *drop_m)]
    same = list(b.columns) == used and a[used].equals(b)
    return same, (f"the design's data are identical without {', '.join(drop_p + drop_m)}"
                  if same else "the design's data change without the derived columns")


def _first_stage_by_group(sub: dict[str, Any], records: list[dict[str, Any]], ctx: Context,
                          cond: dict[str, Any]) -> tuple[bool, str]:
    est = [r for r in _estimated(records) if r["subgroup"] == "all"
           and (r["diagnostics"] or {}).get("first_stage_by_group")]
    if not est:
        return False, "no first stage by subgroup on the estimates"
    verdicts = sorted({r["diagnostics"].get("monotonicity") for r in est} - {None})
    return True, ("carried out: the first stage in every pre-registered subgroup is "
                  f"reported with the whole-cohort estimates (verdict: {', '.join(verdicts)})")


_FULFIL: dict[str, Fulfil] = {
    "sensitivity_analysis": _sensitivity,
    "report_mde": _mde_reported,
    "randomisation_inference": _randomisation,
    "no_dependence_on_incomplete_columns": _no_dependence,
    "first_stage_by_group": _first_stage_by_group,
}


def evaluate(substudies: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]],
             inputs: Inputs, *, sensitivity: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per condition of every go or conditional sub-study: the
    obligation, whether it is met, and the evidence (``substudies``: the
    records of ``feasibility.json``; ``records``: those of
    ``estimates.json``; ``sensitivity``: the table of
    :func:`reintegration.phase2.sensitivity.city_analyses`, which the sensitivity
    condition then requires for the sub-study)."""
    ctx = {"substudies": list(substudies), "inputs": inputs, "sensitivity": sensitivity}
    rows = []
    for sub in substudies:
        if sub["decision"] not in ("go", "conditional"):
            continue
        own = [r for r in records if r["substudy"] == sub["id"]]
        for cond in sub.get("obligations") or []:
            ob = obligation_for(cond["check"])
            fulfil = _FULFIL.get(ob.key)
            if ob.kind == "organisation":
                met, evidence = False, "still conditional in Phase 1"
            elif fulfil is None:
                met, evidence = False, "Phase 2 does not carry out this check yet"
            else:
                met, evidence = fulfil(sub, own, ctx, cond)
            rows.append({"sub-study": sub["id"], "condition": cond["check"],
                         "obligation": ob.text, "status": "met" if met else "unmet",
                         "evidence": evidence})
    cols = ["sub-study", "condition", "obligation", "status", "evidence"]
    return pd.DataFrame(rows, columns=cols)

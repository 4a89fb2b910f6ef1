r"""Phase 2: the effects of the instruments, per city, by three designs.

For every sub-study that Phase 1 judged go or conditional
(:func:`reintegration.feasibility.substudies_to_run`) this module builds the
analysis data of its design from the panel and runs the estimator of
:mod:`reintegration.effects`, for each outcome of ``config/effects.yml`` and
for the whole cohort and each pre-specified subgroup:

selection on observables (:func:`selection_data`)
    Sianesi's dynamic comparison: for each elapsed month :math:`u` of the
    benefit spell, persons who start the instrument at :math:`u` against
    persons still on benefit through month :math:`u - 1` who have started
    neither it nor another instrument before :math:`u`; the risk sets are
    stacked and pooled with :math:`u` as stratum (cross-fitted AIPW by
    default), standard errors clustered on the person.
roll-out event study (:func:`rollout_data`)
    clients grouped by team and inflow quarter; a team's clients whose inflow
    falls before its roll-out against those after, with teams that did not
    (yet) roll out as controls: the intention-to-treat effect of the
    instrument's availability, Sun and Abraham's interaction-weighted
    estimator fitted on the team x quarter cell means (``collapse=True``),
    clustered on teams.
case-manager IV (:func:`iv_data`)
    the leave-one-out propensity of the client's case manager to start the
    instrument, residualised within team x inflow quarter, as instrument for
    starting it; team x quarter effects absorbed; the larger of the robust and
    the case-manager-clustered standard error is reported.

Sub-studies that are no-go get records with their reasons and no estimate,
so a design is never silently missing. :func:`city_records` returns the
records of ``estimates.json`` (schema in :data:`RECORD_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import designs
from ..core.config import as_dict, load_shared
from ..core.paths import repo_root
from ..designs import Design, Inputs
from ..designs.rollout import rollout_schedule
from ..effects import EffectResult, EventStudyResult
from ..effects._data import json_safe
from ..research.labels import label as instrument_label
from ..research.subgroups import subgroup_frame

FILE_NAME = "estimates.json"
ALL = "all"
KEY = ["RINPERSOONS", "RINPERSOON"]

#: the fields of every record of ``estimates.json``
RECORD_FIELDS = (
    "city", "substudy", "design", "instrument", "outcome", "subgroup", "group", "target",
    "decision", "status", "reasons", "conditions",
    "estimate", "std_error", "ci_low", "ci_high", "n", "n_treated", "n_control",
    "n_clusters", "pvalue", "estimand", "method", "cov_type", "diagnostics",
)
#: status of a record: estimated, not run (no-go), group too small, estimator failed,
#: withheld by disclosure control
STATUSES = ("estimated", "no-go", "too_small", "failed", "withheld")



# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------


def settings_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / "config" / "effects.yml"


def load_settings(root: Path | None = None) -> dict[str, Any]:
    """``config/effects.yml``, validated against
    :class:`reintegration.core.config_settings.Effects`, as a dict."""
    return as_dict(load_shared("effects", root))


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


def _base(city: str, sub: dict[str, Any], outcome: str, subgroup: str, group: str
          ) -> dict[str, Any]:
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update({"city": city, "substudy": sub["id"], "design": sub["design"],
                "instrument": sub["instrument"], "outcome": outcome, "subgroup": subgroup,
                "group": group, "target": designs.get(sub["design"]).headline_target,
                "decision": sub["decision"],
                "reasons": list(sub.get("reasons") or []),
                "conditions": list(sub.get("conditions") or []), "diagnostics": {}})
    return rec


def result_record(rec: dict[str, Any], result: EffectResult) -> dict[str, Any]:
    """Fill a record from an estimate."""
    r = result.to_record()
    diag = dict(r.get("diagnostics") or {})
    rec = dict(rec)
    rec.update({k: r[k] for k in ("estimate", "std_error", "ci_low", "ci_high", "n",
                                  "n_clusters", "pvalue", "estimand", "method", "cov_type")})
    rec["n_treated"] = getattr(result, "n_treated", None) or diag.get("n_treated")
    rec["n_control"] = getattr(result, "n_control", None) or diag.get("n_control")
    keep = ("first_stage_f", "weak_instrument", "std_error_clustered", "std_error_robust",
            "std_error_reported", "pretrend_pvalue", "pretrend_pvalue_f",
            "pretrend_pvalue_wild", "pretrend_pvalue_randomization", "pvalue_randomization",
            "ci_randomization", "ci_clustered", "randomization_assignments",
            "randomization_possible", "randomization_exact", "n_entities",
            "n_treated_entities", "n_cohorts", "robustness_value", "robustness_value_alpha",
            "leads", "lags", "reference", "std_error_randomization_sd", "std_error_method",
            "itt", "ci_itt", "takeup_change", "ci_takeup", "pvalue_takeup", "reach",
            "effective_n_control", "max_abs_smd_raw",
            "max_abs_smd_weighted", "n_pscore_clipped", "n_strata", "fallback")
    # selection on observables: overlap, effective sizes, balance within strata, censoring
    keep += ("ess_treated", "ess_control", "n_trimmed", "n_trimmed_treated",
             "max_abs_smd_weighted_strata", "max_abs_smd_weighted_by_stratum", "learner",
             "n_month_indicators", "censoring_n_censored", "censoring_max_weight")
    rec["diagnostics"] = {k: diag[k] for k in keep if k in diag}
    # case-manager IV: the weak-instrument-robust interval and the monotonicity check
    keep_iv = ("ci_anderson_rubin", "ar_bounded", "ar_kind", "first_stage_by_group",
               "monotonicity", "others_dropped", "first_stage_f_conditional")
    rec["diagnostics"].update({k: diag[k] for k in keep_iv if k in diag})
    if isinstance(result, EventStudyResult):
        rec["diagnostics"]["pretrend_pvalue_used"] = result.pretrend_pvalue
        rec["diagnostics"]["event_time"] = json_safe(
            result.event_time.reset_index().to_dict(orient="list"))
    rec["status"] = "estimated"
    return json_safe(rec)  # type: ignore[return-value]


def run_substudy(city: str, sub: dict[str, Any], data: pd.DataFrame, design: Design,
                 settings: dict[str, Any], *, check: Callable[[EffectResult], tuple] | None = None,
                 subgroups: pd.DataFrame | None = None
                 ) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], EffectResult]]:
    """Records (and the results, keyed by outcome, subgroup, group) of one
    sub-study over every outcome, the whole sample and each subgroup.

    ``subgroups`` holds the subgroup columns aligned with ``data``;
    ``check`` is the disclosure check (returns status, reasons, ...)."""
    soo = settings["selection_on_observables"]
    rollout = settings["rollout_did"]
    sub_settings = {**settings, "selection_on_observables": {
        **soo, "method": soo.get("subgroup_method", soo["method"])}, "rollout_did": {
        **rollout, "permutations": rollout.get("subgroup_permutations",
                                               rollout["permutations"])}}
    records, results = [], {}
    groups: list[tuple[str, str, np.ndarray | None]] = [(ALL, ALL, None)]
    if subgroups is not None:
        groups += subgroup_masks(subgroups, settings["subgroups"])
    extra = [t for t in design.targets if t != design.headline_target]
    outcomes = list(settings["outcomes"])
    done: dict[tuple[int, int, int], tuple[dict[str, Any], EffectResult | None]] = {}
    # each group's rows are taken once, with only the columns the design reads, and
    # estimated for every outcome (a design may share its work across the outcomes of
    # one frame); records keep the order outcome, group, target
    cols = design.columns(data, settings) if len(groups) > 1 else None
    narrow = data if cols is None else data[cols]
    for j, (subgroup, group, mask) in enumerate(groups):
        part = data if mask is None else narrow.loc[mask]
        use = settings if mask is None else sub_settings
        for k, target in enumerate([design.headline_target, *(extra if mask is None else [])]):
            got = _records(city, sub, part, design, use, outcomes, (subgroup, group), target,
                           check)
            for i, (rec, res) in enumerate(got):
                done[(i, j, k)] = (rec, res if k == 0 else None)
        del part
    del narrow
    for i, j, k in sorted(done):
        rec, res = done[(i, j, k)]
        records.append(rec)
        if res is not None and k == 0:
            results[(outcomes[i], groups[j][0], groups[j][1])] = res
    return records, results


def subgroup_masks(subgroups: pd.DataFrame, names: Sequence[str]
                   ) -> list[tuple[str, str, np.ndarray]]:
    """(subgroup, group, rows) for each column of ``names`` that ``subgroups``
    holds and each of its levels in sorted order: the rows equal to the
    level, missing values in no group. One factorisation per column instead
    of comparing every row with every level."""
    out = []
    for col in names:
        if col not in subgroups:
            continue
        codes, levels = pd.factorize(subgroups[col])
        for i in sorted(range(len(levels)), key=lambda i: levels[i]):
            out.append((col, str(levels[i]), codes == i))
    return out


def _records(city: str, sub: dict[str, Any], part: pd.DataFrame, design: Design,
             settings: dict[str, Any], outcomes: Sequence[str], where: tuple[str, str],
             target: str, check: Callable[[EffectResult], tuple] | None
             ) -> list[tuple[dict[str, Any], EffectResult | None]]:
    """One record (and its result, None when there is none) per outcome: the
    estimate of ``target`` on ``part``, or why there is none. The outcomes
    large enough are estimated together (:meth:`Design.estimate_outcomes`)."""
    counted = [_counted(city, sub, part, design, settings, o, where, target) for o in outcomes]
    ready = [o for o, rec in zip(outcomes, counted, strict=True) if rec["status"] is None]
    fits = design.estimate_outcomes(part, ready, settings, target=target) if ready else {}
    return [_record(rec, sub, fits[o], check) if rec["status"] is None else (rec, None)
            for o, rec in zip(outcomes, counted, strict=True)]


def _counted(city: str, sub: dict[str, Any], part: pd.DataFrame, design: Design,
             settings: dict[str, Any], outcome: str, where: tuple[str, str], target: str
             ) -> dict[str, Any]:
    """The record of ``outcome`` with its counts, marked too small (status
    ``too_small``) when a group is below the minimum sizes."""
    mins = settings["min_group"]
    rec = _base(city, sub, outcome, *where)
    rec["target"] = target
    n1, n0, g = design.counts(part, outcome)
    rec.update({"n_treated": n1, "n_control": n0, "n": n1 + n0})
    if n1 < mins["treated"] or n0 < mins["control"] or (g is not None and g < mins["clusters"]):
        rec["status"] = "too_small"
        rec["reasons"] = [f"fewer than {mins['treated']} treated or {mins['control']} "
                          f"comparison persons, or fewer than {mins['clusters']} "
                          "clusters, in this group"]
        rec["n_treated"] = rec["n_control"] = rec["n"] = None
    return rec


def _record(rec: dict[str, Any], sub: dict[str, Any], res: EffectResult | Exception,
            check: Callable[[EffectResult], tuple] | None
            ) -> tuple[dict[str, Any], EffectResult | None]:
    """The record of an estimate (``res``), or of the error the estimator
    raised, or of its withholding by the disclosure check."""
    if isinstance(res, Exception):
        rec["status"] = "failed"
        first = " ".join(str(res).split())[:200]
        rec["reasons"] = [f"estimator failed: {first}"]
        return rec, None
    if check is not None:
        status, why = check(res)[:2]
        if status == "fail":
            rec["status"] = "withheld"
            rec["reasons"] = list(why)
            rec["n_treated"] = rec["n_control"] = rec["n"] = None
            return rec, None
    rec = result_record(rec, res)
    rec["diagnostics"]["mde_phase1"] = _phase1_mde(sub)
    return rec, res


def _phase1_mde(sub: dict[str, Any]) -> float | None:
    """The sub-study's minimum detectable effect from Phase 1 (its practical
    evidence in ``feasibility.json``), or None."""
    evidence = ((sub.get("criteria") or {}).get("practical") or {}).get("evidence") or {}
    return evidence.get("mde")


def no_go_records(city: str, sub: dict[str, Any], settings: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    """One record per outcome for a sub-study that is not run, with its
    reasons and no estimate."""
    out = []
    for outcome in settings["outcomes"]:
        rec = _base(city, sub, outcome, ALL, ALL)
        rec["status"] = "no-go"
        if not rec["reasons"]:
            rec["reasons"] = [f"decision {sub['decision']}"]
        out.append(rec)
    return out


def city_estimates(city: dict[str, Any], persons: pd.DataFrame,
                   person_months: pd.DataFrame, substudies: Sequence[dict[str, Any]],
                   settings: dict[str, Any], *, check: Callable | None = None
                   ) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Every record of ``estimates.json`` for one city, and the results of
    the sub-studies that ran (``{substudy id: {(outcome, subgroup, group):
    result}}``). ``substudies`` are all records of ``feasibility.json``; the
    go and conditional ones run, the others get :func:`no_go_records`."""
    name = city["name"]
    records: list[dict[str, Any]] = []
    results: dict[str, dict] = {}
    inputs = Inputs(persons=persons, city=city, effects=settings, person_months=person_months)
    for sub in substudies:
        if sub["decision"] not in ("go", "conditional"):
            records += no_go_records(name, sub, settings)
            continue
        design = designs.get(sub["design"])
        data = design.prepare(inputs, sub["instrument"])
        recs, res = run_substudy(name, sub, data, design, settings, check=check,
                                 subgroups=subgroup_frame(data))
        records += recs
        results[sub["id"]] = res
    return records, results


def estimates_file(city: str, size: str, records: list[dict[str, Any]],
                   settings: dict[str, Any], obligations: pd.DataFrame | None = None
                   ) -> dict[str, Any]:
    """The content of ``estimates.json`` (with the Phase 1 conditions and
    whether they were met, :func:`reintegration.phase2.obligations.evaluate`)."""
    met = [] if obligations is None else obligations.to_dict(orient="records")
    return json_safe({
        "city": city, "size": size, "fields": list(RECORD_FIELDS),
        "outcomes": settings["outcomes"], "subgroups": settings["subgroups"],
        "min_group": settings["min_group"], "records": records, "obligations": met,
    })  # type: ignore[return-value]


def records_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The records as a table (diagnostics, reasons and conditions left out)."""
    cols = [c for c in RECORD_FIELDS if c not in ("diagnostics", "reasons", "conditions")]
    return pd.DataFrame(list(records), columns=list(RECORD_FIELDS))[cols]


# ---------------------------------------------------------------------------
# truth (validation only)
# ---------------------------------------------------------------------------


def truth_subgroups(po: pd.DataFrame) -> pd.DataFrame:
    """Subgroup columns of the truth's potential outcomes (education from the
    truth, which has no missing category)."""
    return subgroup_frame(po)


# ---------------------------------------------------------------------------
# presentation (step 06) and validation (step 07)
# ---------------------------------------------------------------------------


def decisions_table(feasibility: dict[str, Any]) -> pd.DataFrame:
    """The Phase 1 decision of every sub-study, with its first reason or
    condition: what Phase 2 runs and what it does not."""
    rows = []
    for s in feasibility["substudies"]:
        why = (s.get("reasons") or s.get("conditions") or [""])[0]
        rows.append({"sub-study": s["id"], "decision": s["decision"],
                     "Phase 2": "run" if s["decision"] in ("go", "conditional") else "not run",
                     "first reason or condition": why})
    return pd.DataFrame(rows).set_index("sub-study")


def headline(results: dict[tuple[str, str, str], EffectResult]) -> dict[str, EffectResult]:
    """The whole-sample result of each outcome of one sub-study."""
    return {o: r for (o, sg, _), r in results.items() if sg == ALL}


def subgroup_figure(records: Sequence[dict[str, Any]], substudy: str, outcome: str
                    ) -> tuple[Any, pd.DataFrame] | None:
    """Forest plot of the subgroup estimates of one sub-study and outcome
    (the design's headline estimand), and the counts behind it (treated and
    comparison persons per group), or None when no subgroup was estimated."""
    from matplotlib.figure import Figure

    rows = [r for r in records if r["substudy"] == substudy and r["outcome"] == outcome
            and r["status"] == "estimated" and _is_headline(r)]
    if not any(r["subgroup"] != ALL for r in rows):
        return None
    labels = [f"{r['subgroup']}: {r['group']}" if r["subgroup"] != ALL else "all" for r in rows]
    est = np.array([r["estimate"] for r in rows])
    lo = np.array([r["ci_low"] for r in rows])
    hi = np.array([r["ci_high"] for r in rows])
    fig = Figure(figsize=(6.4, 0.3 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    ax.axvline(0, color="0.5", linewidth=0.8)
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="C0", capsize=2)
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel(f"effect on {outcome} (95% interval)")
    ax.set_title(substudy, fontsize="medium")
    counts = pd.DataFrame({"treated": [r["n_treated"] for r in rows],
                           "comparison": [r["n_control"] for r in rows]},
                          index=pd.Index(labels, name="group"), dtype=float)
    return fig, counts


def _is_headline(record: dict[str, Any]) -> bool:
    """The record estimates its design's headline target (records without a
    target are headline records)."""
    target = record.get("target")
    return target is None or target == designs.get(record["design"]).headline_target


def aligned_truth(persons: pd.DataFrame, po: pd.DataFrame,
                  columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The potential outcomes (``columns`` of them, or all) in the row order
    of the panel's persons, joined on the pseudonymised keys (validation only;
    missing where a person has no truth row)."""
    right = po if columns is None else po[[*KEY, *columns]]
    return persons[KEY].astype(str).merge(right.astype({k: str for k in KEY}), on=KEY,
                                          how="left", validate="1:1")


def validation_frame(records: Sequence[dict[str, Any]], po: pd.DataFrame,
                     truth: dict[str, Any], city: dict[str, Any], settings: dict[str, Any]
                     ) -> pd.DataFrame:
    """Each estimate beside the true value of the estimand its design
    targets: the ATT (selection on observables, from the potential outcomes,
    also per subgroup), the roll-out effect aggregated as the event study
    aggregates it (:func:`rollout_truth`), the population 2SLS estimand of
    the case-manager IV (``effects.json``, whole sample only). Months
    employed has no planted truth. Columns: the record's keys, ``truth``,
    ``bias`` and ``covered``."""
    sub_po = truth_subgroups(po)
    context = {"schedule": rollout_schedule(city), "settings": settings, "truth": truth}
    rows = []
    for r in records:
        if r["status"] != "estimated":
            continue
        design = r["design"]
        mask = None if r["subgroup"] == ALL else (sub_po[r["subgroup"]] == r["group"]).fillna(
            False).to_numpy()
        value = designs.get(design).truth(po, r, mask, context)
        row = {k: r.get(k) for k in ("city", "design", "instrument", "outcome", "subgroup",
                                     "group", "target", "estimate", "std_error", "ci_low",
                                     "ci_high", "n_treated", "n_control")}
        row["pretrend_pvalue"] = (r.get("diagnostics") or {}).get("pretrend_pvalue_used")
        row["truth"] = value
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["bias"] = out["estimate"] - out["truth"]
    out["covered"] = np.where(out["truth"].notna(),
                              (out["ci_low"] <= out["truth"]) & (out["truth"] <= out["ci_high"]),
                              np.nan)
    return out


def coverage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per design, estimand (target) and outcome (whole samples with a known
    truth): the number of estimates, how many 95% intervals cover the truth,
    the mean bias and the mean standard error."""
    f = frame[(frame["subgroup"] == ALL) & frame["truth"].notna()]
    if f.empty:
        return pd.DataFrame(columns=["estimates", "covered", "coverage", "mean bias",
                                     "mean std. error"])
    keys = ["design", "target", "outcome"] if "target" in f else ["design", "outcome"]
    g = f.groupby(keys, dropna=False)
    return pd.DataFrame({
        "estimates": g.size(),
        "covered": g["covered"].sum().astype(int),
        "coverage": g["covered"].mean().round(3),
        "mean bias": g["bias"].mean().round(4),
        "mean std. error": g["std_error"].mean().round(4),
    })


def bias_figure(frame: pd.DataFrame, outcome: str = "employed_24") -> tuple[Any, pd.DataFrame]:
    """Estimate minus truth with its 95% interval, per design and instrument
    (whole samples, each design's headline estimand), and the counts behind
    each estimate."""
    from matplotlib.figure import Figure

    f = frame[(frame["subgroup"] == ALL) & frame["truth"].notna()
              & (frame["outcome"] == outcome)]
    if "target" in f:  # one estimate per design and instrument: the headline's
        f = f[[_is_headline(r) for r in f[["design", "target"]].to_dict(orient="records")]]
    f = f.reset_index(drop=True)
    # instruments by their label here: a one-word key ("training") is no name
    # that relabelling the figure would find
    labels = [f"{d}: {instrument_label(i)}" for d, i in zip(f["design"], f["instrument"],
                                                             strict=True)]
    fig = Figure(figsize=(6.4, 0.35 * max(len(f), 1) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(f))[::-1]
    ax.axvline(0, color="0.5", linewidth=0.8)
    colours = {"selection_on_observables": "C3", "rollout_did": "C0", "case_manager_iv": "C2"}
    for d, c in colours.items():
        m = (f["design"] == d).to_numpy()
        if m.any():
            half = f.loc[m, "ci_high"] - f.loc[m, "estimate"]
            ax.errorbar(f.loc[m, "bias"], y[m], xerr=half, fmt="o", color=c, capsize=2,
                        label=d.replace("_", " "))
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel(f"estimate minus true value\n{outcome} (95% interval)")
    if len(f):
        fig.legend(fontsize="small", loc="outside lower center", ncols=3)
    counts = pd.DataFrame({"treated": f["n_treated"].astype(float),
                           "comparison": f["n_control"].astype(float)})
    counts.index = pd.Index(labels, name="estimate")
    return fig, counts


def _inside(r: dict[str, Any]) -> bool:
    """The estimate lies inside its interval and the standard error is
    positive; an unbounded end (None: a randomisation interval that the few
    teams cannot close) counts as infinite, and then no standard error is
    expected."""
    low = -np.inf if r["ci_low"] is None else r["ci_low"]
    high = np.inf if r["ci_high"] is None else r["ci_high"]
    se = r["std_error"]
    se_ok = se > 0 if se is not None else (r["ci_low"] is None or r["ci_high"] is None)
    return bool(low <= r["estimate"] <= high and se_ok)


def check_records(records: Sequence[dict[str, Any]], feasibility: dict[str, Any],
                  settings: dict[str, Any]) -> dict[str, bool]:
    """Checks on the records of ``estimates.json``: every sub-study of the
    feasibility file has records for every outcome; each estimate lies inside
    its interval with a positive standard error; estimated groups meet the
    minimum sizes; records without an estimate carry reasons."""
    ids = {s["id"] for s in feasibility["substudies"]}
    have = {(r["substudy"], r["outcome"]) for r in records}
    est = [r for r in records if r["status"] == "estimated"]
    mins = settings["min_group"]
    return {
        "every sub-study has records for every outcome":
            all((i, o) in have for i in ids for o in settings["outcomes"]),
        "every estimate inside its interval, positive standard error":
            all(_inside(r) for r in est),
        "every estimated group meets the minimum sizes":
            all(r["n_treated"] >= mins["treated"] and r["n_control"] >= mins["control"]
                for r in est),
        "every record without an estimate has reasons":
            all(r["reasons"] for r in records if r["status"] != "estimated"),
    }

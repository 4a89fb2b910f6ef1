"""Checks of whole outputs: models, effect estimates and the counts behind a
figure or a pre-aggregated table.

Pure functions of the result and the rules: each returns a status
(``pass``, ``review`` or ``fail``), the reasons a reader is shown, and the
checks the register records. A model or effect result needs enough residual
degrees of freedom and enough persons in every group behind it; counts shown
directly cannot be partly suppressed, so one small count withholds them all.
Nothing here writes a file; the register (:mod:`reintegration.disclosure`)
writes what passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .rules import EFFECTS_ESTIMATOR, DisclosureError, Rules
from .suppression import label, locate


def check_counts(
    counts: pd.DataFrame | pd.Series, structural_zeros: Iterable[tuple[Any, Any]], rules: Rules
) -> tuple[str, list[str], dict[str, Any]]:
    frame = counts.to_frame() if isinstance(counts, pd.Series) else counts
    try:
        values = frame.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise DisclosureError("counts must be numbers (NaN for something not shown)") from None
    structural = np.zeros(values.shape, dtype=bool)
    for key in structural_zeros:
        i, j = locate(frame, key, "counts", "figure")
        if values[i, j] != 0:
            raise DisclosureError(f"structural zero {key!r} is not zero in the counts")
        structural[i, j] = True
    shown = ~np.isnan(values)
    small = shown & (values < rules.cell_threshold) & ~structural
    if not rules.zeros_disclosive:
        small &= values != 0
    k = int(small.sum())
    checks = {"counts": int(shown.sum()), "below_threshold_or_zero": k}
    if k:
        reasons = [
            f"{k} of {int(shown.sum())} counts below {rules.cell_threshold} or zero: "
            "a figure cannot be partly suppressed, so it is withheld"
        ]
        return "fail", reasons, checks
    return "pass", [], checks


def effect_counts(result: Any) -> dict[str, int]:
    """The group sizes behind an effect estimate: treated and controls
    (selection on observables), starters and non-starters (IV, from the
    diagnostics when the pipeline put them there), treated observations per
    shown event time (event study), and clusters."""
    counts: dict[str, int] = {}
    for key in ("n_treated", "n_control"):
        value = getattr(result, key, None)
        if value is None:
            value = (getattr(result, "diagnostics", None) or {}).get(key)
        if value is not None:
            counts[key] = int(value)
    et = getattr(result, "event_time", None)
    if et is not None and "n_obs" in et:
        ref = getattr(result, "reference", None)
        for k, v in et["n_obs"].items():
            if k != ref:
                counts[f"event_time_{int(k)}"] = int(v)
    return counts


def check_effect(result: Any, rules: Rules) -> tuple[str, list[str], dict[str, Any]]:
    """Disclosure check of one effect estimate: residual degrees of freedom
    (of the fitted model where there is one, else ``n`` minus 2) and the
    group sizes of :func:`effect_counts` against the thresholds."""
    for attr in ("estimate", "std_error", "n", "to_record"):
        if not hasattr(result, attr):
            raise DisclosureError(
                f"cannot check a {type(result).__name__}: not an effect result of "
                "reintegration.effects"
            )
    model = getattr(result, "model_results", None)
    dof = getattr(model, "df_resid", None) if model is not None else None
    dof = int(dof) if dof is not None else int(result.n) - 2
    counts = effect_counts(result)
    reasons: list[str] = []
    status = "pass"
    if dof < rules.residual_dof:
        reasons.append(f"residual degrees of freedom below {rules.residual_dof}")
        status = "fail"
    small = sorted(k for k, v in counts.items() if v < rules.cell_threshold)
    if small:
        reasons.append(f"groups with fewer than {rules.cell_threshold} persons: {', '.join(small)}")
        status = "fail"
    if not counts:
        reasons.append("no group sizes known: an output checker must confirm them")
        status = "review" if status == "pass" else status
    checks = {
        "residual_dof": dof if dof >= rules.residual_dof else None,
        "group_cells": {k: (v if v >= rules.cell_threshold else None) for k, v in counts.items()},
    }
    return status, reasons, checks


def group_counts(groups: pd.DataFrame | pd.Series, unit: str | None) -> pd.Series:
    frame = groups.to_frame() if isinstance(groups, pd.Series) else groups.copy()
    if unit is not None:
        if unit in frame.columns:
            ids = frame.pop(unit)
        elif unit in (frame.index.names or []):
            ids = pd.Series(frame.index.get_level_values(unit), index=frame.index)
        else:
            raise DisclosureError(f"unit {unit!r} is neither a column nor an index level of groups")
    if frame.shape[1] == 0:
        raise DisclosureError("groups has no group variables")
    if frame.isna().any().any():
        raise DisclosureError("groups has missing values; recode them to a category first")
    keys = [frame[c].to_numpy() for c in frame.columns]
    if unit is None:
        counts = frame.groupby(keys, sort=True).size()
    else:
        counts = pd.Series(ids.to_numpy(), index=frame.index).groupby(keys, sort=True).nunique()
    return counts


def model_family(results: Any) -> str:
    module = type(results).__module__
    if module.startswith("statsmodels"):
        return "statsmodels"
    if module.startswith("linearmodels"):
        return "linearmodels"
    raise DisclosureError(
        f"cannot check a {type(results).__name__} result: the register knows statsmodels and "
        "linearmodels results"
    )


def df_resid(results: Any) -> int:
    dof = getattr(results, "df_resid", None)
    if dof is None:
        dof = getattr(getattr(results, "model", None), "df_resid", None)
    if dof is None:
        raise DisclosureError(f"{type(results).__name__} has no residual degrees of freedom")
    return int(math.floor(float(dof)))


def _param_names(params: Any) -> list[str]:
    index = getattr(params, "index", None)
    if index is None:
        return [f"x{i}" for i in range(len(params))]
    return [str(k) for k in index]


def model_record(results: Any, family: str, keep: Sequence[str] | None) -> dict[str, Any]:
    if family == "statsmodels":
        params, se = results.params, results.bse
        ci = results.conf_int()
        model = results.model
        estimator = type(model).__name__
        dependent = getattr(model, "endog_names", None)
        pvalues = results.pvalues
    else:
        params, se = results.params, results.std_errors
        ci = results.conf_int()
        estimator = type(getattr(results, "model", results)).__name__
        try:
            dependent = results.model.dependent.cols[0]
        except (AttributeError, IndexError, TypeError):
            dependent = None
        pvalues = results.pvalues
    params = pd.Series(np.asarray(params, dtype=float), index=_param_names(params))
    names = list(params.index)
    if keep is not None:
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise DisclosureError(f"params {unknown} are not parameters of the model")
        names = list(keep)
    se = pd.Series(np.asarray(se), index=params.index)
    pvalues = pd.Series(np.asarray(pvalues), index=params.index)
    ci = np.asarray(ci)

    def r(x: Any) -> float:
        return float(round(float(x), 10))

    pos = {k: i for i, k in enumerate(params.index)}
    record = {
        "estimator": estimator,
        "library": family,
        "dependent": str(dependent) if dependent is not None else None,
        "params": {k: r(params[k]) for k in names},
        "std_errors": {k: r(se[k]) for k in names},
        "conf_int": {k: [r(ci[pos[k], 0]), r(ci[pos[k], 1])] for k in names},
        "pvalues": {k: r(pvalues[k]) for k in names},
        "nobs": int(results.nobs),
        "df_resid": df_resid(results),
    }
    rsq = getattr(results, "rsquared", None)
    if rsq is not None:
        record["rsquared"] = r(rsq)
    return record


def check_model(
    dof: int,
    groups: pd.DataFrame | pd.Series | None,
    unit: str | None,
    rules: Rules,
    *,
    acro_failed: bool = False,
) -> tuple[str, list[str], dict[str, Any]]:
    """Disclosure check of a fitted model: ``dof`` residual degrees of
    freedom, and at least ``cell_threshold`` persons in every combination of
    the treatment and group variables in ``groups`` (see
    :meth:`reintegration.disclosure.Register.model`). ``acro_failed`` is
    ACRO's verdict on a statsmodels result."""
    reasons: list[str] = []
    checks: dict[str, Any] = {"residual_dof": dof if dof >= rules.residual_dof else None}
    status = "fail" if acro_failed else "pass"
    if dof < rules.residual_dof:
        reasons.append(
            f"residual degrees of freedom below {rules.residual_dof}: the model would be "
            "close to a lookup table of individual values"
        )
        status = "fail"
    if groups is None:
        reasons.append(
            "no treatment or group variables declared: cell counts were not checked; "
            "an output checker must confirm every group has enough persons"
        )
        if status == "pass":
            status = "review"
    else:
        cells = group_counts(groups, unit)
        small = cells[cells < rules.cell_threshold]
        checks["group_cells"] = {
            label(k): (int(v) if v >= rules.cell_threshold else None) for k, v in cells.items()
        }
        if len(small):
            reasons.append(
                f"treatment/group cells with fewer than {rules.cell_threshold} persons: "
                f"{len(small)} of {len(cells)} ({', '.join(label(k) for k in small.index)})"
            )
            status = "fail"
    return status, reasons, checks


def check_effects(items: dict[Any, Any], rules: Rules) -> tuple[str, list[str], dict[str, Any]]:
    """:func:`check_effect` of each labelled result; the worst status wins:
    one that fails fails them all, and one that needs an output checker's
    review puts them all up for review."""
    order = {"pass": 0, "review": 1, "fail": 2}
    status, reasons, checks = "pass", [], {}
    for key, res in items.items():
        s, r, c = check_effect(res, rules)
        checks[str(key)] = c
        reasons += [f"{key}: {x}" for x in r]
        status = max(status, s, key=order.__getitem__)
    return status, reasons, checks


def effect_record(items: dict[Any, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """The released record of labelled effect results, in the layout of a
    model record (one coefficient row per label) plus each result's
    ``to_record()``."""
    recs = {str(k): v.to_record() for k, v in items.items()}
    return {
        "estimator": EFFECTS_ESTIMATOR,
        "library": "reintegration",
        "dependent": None,
        "params": {k: r["estimate"] for k, r in recs.items()},
        "std_errors": {k: r["std_error"] for k, r in recs.items()},
        "conf_int": {k: [r["ci_low"], r["ci_high"]] for k, r in recs.items()},
        "pvalues": {k: r["pvalue"] for k, r in recs.items()},
        "nobs": min(int(v.n) for v in items.values()),
        "df_resid": min(c["residual_dof"] for c in checks.values()),
        "effects": recs,
    }

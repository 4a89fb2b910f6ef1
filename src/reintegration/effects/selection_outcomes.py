"""Selection on observables for several outcomes of one sample in one pass.

:func:`selection_on_observables_outcomes` returns, for each outcome, the
result of :func:`reintegration.effects.selection_on_observables` with the same
arguments, and computes once what does not depend on the outcome: the
complete rows, the covariate matrix, the cluster codes, the rows of each
stratum and, within each stratum, the cross-fitting folds and the propensity
scores; for each set of case weights the control cross products of the
regression adjustment and of the cross-fitted outcome model, the odds
weights and the balance moments. Only the parts that read the outcome (its
cross products with the covariates, the residuals, the influence values) are
computed per outcome, by the same operations, so the numbers are those of the
one-outcome function. ``tests/test_effects_speed.py`` compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._data import as_list, binary, numeric_design
from ._sums import _cluster_codes, _FoldGrams
from .learners import LogitLearner, OLSLearner
from .results import SelectionResult
from .selection import (
    _case_weights,
    _check_columns,
    _check_folds,
    _check_options,
    _cross_fitted_outcome,
    _cross_fitted_propensity,
    _fit_balance,
    _fold_ids,
    _nuisance,
    _outcome_values,
    _ra_design,
    _ra_outcome,
    _report,
    _weighting,
    selection_on_observables,
)

__all__ = ["selection_on_observables_outcomes"]


def selection_on_observables_outcomes(
    data: pd.DataFrame,
    *,
    outcomes: Sequence[str],
    treatment: str,
    covariates: Sequence[str],
    method: str = "aipw",
    cluster: str | None = None,
    strata: str | None = None,
    folds: int = 5,
    seed: int = 0,
    trim: float = 0.01,
    outcome_learner: Any = None,
    propensity_learner: Any = None,
    control_weights: str | Mapping[str, str | None] | None = None,
) -> dict[str, SelectionResult]:
    """:func:`reintegration.effects.selection_on_observables` of each of
    ``outcomes`` (same arguments otherwise), by outcome, sharing the work
    that does not depend on the outcome. ``control_weights``: one column for
    every outcome, or a column (or None) per outcome. Outcomes whose complete
    rows differ are fitted on their own rows (those with the same rows
    together). Inverse probability weighting and learners other than the
    default linear ones are fitted one outcome at a time. Raises what the
    one-outcome function raises for the first outcome that fails."""
    outcomes = list(dict.fromkeys(outcomes))
    weights_of = (
        dict(control_weights)
        if isinstance(control_weights, Mapping)
        else dict.fromkeys(outcomes, control_weights)
    )
    common = dict(treatment=treatment, covariates=covariates, method=method, cluster=cluster,
                  strata=strata, folds=folds, seed=seed, trim=trim,
                  outcome_learner=outcome_learner, propensity_learner=propensity_learner)
    linear = (outcome_learner is None or type(outcome_learner) is OLSLearner) and (
        propensity_learner is None or type(propensity_learner) is LogitLearner)
    if method == "ipw" or not linear or len(outcomes) < 2:
        return {o: selection_on_observables(data, outcome=o, control_weights=weights_of[o],
                                            **common) for o in outcomes}
    covs = as_list(covariates)
    _check_options(method, trim, folds, outcome_learner, propensity_learner)
    _check_columns(data, outcomes, treatment, covs, cluster, strata, list(weights_of.values()))
    out: dict[str, SelectionResult] = {}
    for keep, group in _same_rows(data, outcomes, weights_of, common):
        out.update(_fit_outcomes(data, keep, group, weights_of, common))
    return {o: out[o] for o in outcomes}


def _same_rows(data: pd.DataFrame, outcomes: list[str], weights_of: dict[str, str | None],
               common: dict[str, Any]) -> list[tuple[np.ndarray, list[str]]]:
    """The outcomes grouped by their complete rows (the rows without a missing
    value in the columns the one-outcome function reads), in order of first
    appearance, with those rows."""
    shared = [common["treatment"], *as_list(common["covariates"]),
              *as_list(common["cluster"]), *as_list(common["strata"])]
    base = np.ones(len(data), dtype=bool)
    for col in dict.fromkeys(shared):
        base &= data[col].notna().to_numpy()
    groups: dict[bytes, tuple[np.ndarray, list[str]]] = {}
    for o in outcomes:
        keep = base & data[o].notna().to_numpy()
        if weights_of[o] is not None:
            keep &= data[weights_of[o]].notna().to_numpy()
        groups.setdefault(np.packbits(keep).tobytes(), (keep, []))[1].append(o)
    return list(groups.values())


def _fit_outcomes(data: pd.DataFrame, keep: np.ndarray, outcomes: list[str],
                  weights_of: dict[str, str | None], common: dict[str, Any]
                  ) -> dict[str, SelectionResult]:
    """The results of ``outcomes``, which share the complete rows ``keep``."""
    n_missing = int(len(keep) - keep.sum())
    cols = [*outcomes, common["treatment"], *as_list(common["covariates"]),
            *as_list(common["cluster"]), *as_list(common["strata"]),
            *[w for o in outcomes if (w := weights_of[o]) is not None]]
    sample = data if n_missing == 0 else data.loc[keep, list(dict.fromkeys(cols))]
    if len(sample) == 0:  # the one-outcome function's message
        return {o: selection_on_observables(data, outcome=o, control_weights=weights_of[o],
                                            **common) for o in outcomes}
    ys = {o: _outcome_values(sample, o) for o in outcomes}
    d = binary(sample[common["treatment"]], name=common["treatment"])
    cs = {w: _case_weights(sample, d, w) for w in dict.fromkeys(weights_of[o] for o in outcomes)}
    covs = as_list(common["covariates"])
    xdf = numeric_design(sample, covs, role="covariate")
    cluster = common["cluster"]
    clusters = _cluster_codes(sample[cluster]) if cluster is not None else None
    nuisance = _nuisance(common["outcome_learner"], common["propensity_learner"])
    shared = _Shared(xdf.to_numpy(), d, cs, clusters, common, nuisance)
    spec = {"method": common["method"], "trim": common["trim"], "folds": common["folds"],
            "seed": common["seed"], "covs": covs, "treatment": common["treatment"],
            "learner": type(nuisance["outcome_learner"]).__name__, "cluster": cluster,
            "strata": common["strata"]}
    out = {}
    for o in outcomes:
        w = weights_of[o]

        def run(mask: np.ndarray | slice, o: str = o, w: str | None = w) -> dict[str, Any]:
            return shared.fit(mask, ys[o], w)

        out[o] = _report(run, sample, n_missing, d, cs[w], (shared.x, list(xdf.columns)),
                         clusters, {**spec, "outcome": o, "control_weights": w})
    return out


class _Shared:
    """Per stratum (keyed by its rows) the work that does not read the
    outcome, computed on first use: the varying covariates, the folds and
    propensity scores, and per set of case weights the regression
    adjustment's cross products or the folds' cross products, the weights
    and the balance."""

    def __init__(self, x: np.ndarray, d: np.ndarray, cs: dict[str | None, np.ndarray],
                 clusters: np.ndarray | None, common: dict[str, Any], nuisance: dict[str, Any]
                 ) -> None:
        self.x, self.d, self.cs, self.clusters = x, d, cs, clusters
        self.common, self.nuisance = common, nuisance
        self.strata: dict[Any, dict[str, Any]] = {}

    def _stratum(self, mask: np.ndarray | slice) -> dict[str, Any]:
        key = (mask.start, mask.stop) if isinstance(mask, slice) else mask.tobytes()
        if key not in self.strata:
            xfull = self.x[mask]
            xm = xfull[:, np.ptp(xfull, axis=0) > 0] if xfull.shape[1] else xfull
            part = self.strata[key] = {"xfull": xfull, "xm": xm, "d": self.d[mask],
                                       "by_weights": {}}
            if self.common["method"] == "aipw":
                groups = self.clusters[mask] if self.clusters is not None else None
                folds = int(self.common["folds"])
                part["fold"] = _fold_ids(part["d"], groups, folds, int(self.common["seed"]))
        return self.strata[key]

    def _weighted(self, part: dict[str, Any], mask: np.ndarray | slice, w: str | None
                  ) -> dict[str, Any]:
        if w in part["by_weights"]:
            return part["by_weights"][w]
        cm, dm, xm = self.cs[w][mask], part["d"], part["xm"]
        got: dict[str, Any] = {"c": cm}
        if self.common["method"] == "ra":
            got["ra"] = _ra_design(dm, xm, cm)
        else:
            folds = int(self.common["folds"])
            _check_folds(dm, cm, part["fold"], folds)
            if "p" not in part:
                part["p"] = _cross_fitted_propensity(xm, dm, part["fold"], folds,
                                                     self.nuisance["propensity_learner"])
            if type(self.nuisance["outcome_learner"]) is OLSLearner:
                got["grams"] = _FoldGrams(xm, None, dm, cm, part["fold"], folds)
        part["by_weights"][w] = got
        return got

    def fit(self, mask: np.ndarray | slice, y: np.ndarray, w: str | None) -> dict[str, Any]:
        """The fit of one stratum for the outcome ``y`` with the case weights ``w``."""
        part = self._stratum(mask)
        got = self._weighted(part, mask, w)
        ym, dm, cm = y[mask], part["d"], got["c"]
        if "ra" in got:
            fit = _ra_outcome(got["ra"], ym)
        else:
            folds = int(self.common["folds"])
            g0 = _cross_fitted_outcome(part["xm"], ym, dm, cm, part["fold"], folds,
                                       self.nuisance["outcome_learner"], got.get("grams"))
            fit = _weighting(ym - g0, dm, part["p"], float(self.common["trim"]), cm)
        if "balance" not in got:  # the weights and rows used do not read the outcome
            got["balance"] = _fit_balance(part["xfull"], dm, fit)
        fit.update(got["balance"])
        return fit

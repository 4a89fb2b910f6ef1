r"""Selection on observables: the average effect of the treatment on the treated.

The estimand of every method here is the average treatment effect on the
treated (ATT),

.. math::

    \tau_{ATT} = E[Y(1) - Y(0) \mid D = 1],

identified under *unconfoundedness of the untreated outcome*,
:math:`Y(0) \perp D \mid X`, and *overlap*, :math:`P(D = 1 \mid X) < 1`, as

.. math::

    \tau_{ATT} = E[Y \mid D = 1] - E\big[\,E[Y \mid D = 0, X] \mid D = 1\big].

Three estimators are offered (``method``):

``"ra"``, regression adjustment (imputation)
    An OLS regression of :math:`Y` on :math:`X` (with a constant) among the
    controls gives :math:`\hat b_0`; the ATT is the mean over the treated of
    :math:`Y_i - X_i'\hat b_0`. This equals the treatment coefficient of the
    regression of :math:`Y` on :math:`D`, :math:`X` and :math:`D \times (X -
    \bar X_1)` (the fully interacted regression, covariates centred at the
    treated mean).
``"ipw"``, inverse probability weighting
    A logit :math:`\hat p(X)` of :math:`D` on :math:`X`; controls weighted by
    the odds :math:`\hat p/(1-\hat p)`, normalised to sum to one
    (Hajek). :math:`\hat\tau = \bar Y_1 - \sum_{D=0} w_i Y_i / \sum_{D=0} w_i`.
``"aipw"``, augmented IPW (doubly robust), cross-fitted
    The same weighting applied to the residuals :math:`Y - \hat g_0(X)` of the
    control outcome model, with both nuisance models fitted on the other
    folds of a seeded K-fold split (Chernozhukov and others 2018). The
    estimate is consistent when either nuisance model is right.

Standard errors come from the influence function of each estimator (for
``ra`` and ``ipw`` including the estimation of the regression or the logit;
for ``aipw`` from its Neyman-orthogonal score, where the nuisance estimation
does not matter to first order), as a robust or cluster-robust sum.

Overlap: rows with a propensity score above ``1 - trim`` are dropped (the
ATT needs comparable controls only where treatment is near certain; small
scores give small odds weights and need no bound); nothing is clipped. The
diagnostics report the rows dropped, Kish's effective sample sizes of the
treated and the weighted controls and, with strata, the largest weighted
standardised difference within each stratum.

``control_weights`` multiplies each control's weight (and its weight in the
outcome regression) by a case weight, for example the inverse probability
of censoring weights of :func:`censoring_weights`.

:func:`dynamic_risk_set` builds the dynamic comparison of Sianesi (2004):
for each elapsed month :math:`u` of a benefit spell, those who start the
treatment at :math:`u` against those still on benefit and not (yet) treated
at :math:`u`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from ._data import (
    EffectInputError,
    as_list,
    binary,
    cluster_variance,
    if_variance,
    numeric_design,
    require_columns,
    require_frame,
)
from ._memo import ContentMemo
from ._sums import (
    _balance,
    _cluster_codes,
    _complete_rows,
    _FoldGrams,
    _full_column_rank,
    _group_moments,
    _kish,
    _max_smd,
    _stratum_rows,
)
from .dynamic import censoring_weights, dynamic_risk_set
from .learners import LogitLearner, OLSLearner, learners
from .numerics import logit
from .results import SelectionResult

__all__ = [
    "LogitLearner",
    "OLSLearner",
    "censoring_weights",
    "dynamic_risk_set",
    "learners",
    "selection_on_observables",
]

METHODS = ("ra", "ipw", "aipw")

ESTIMAND = (
    "average effect of the treatment on the treated (ATT): E[Y(1) - Y(0) | D = 1], "
    "assuming no unobserved confounding of the untreated outcome given the covariates"
)
ESTIMAND_STRATA = (
    "average effect of the treatment on the treated (ATT) within strata, averaged over the "
    "treated's distribution of strata: sum_s P(S = s | D = 1) E[Y(1) - Y(0) | D = 1, S = s], "
    "assuming no unobserved confounding given the covariates within each stratum"
)


# ---------------------------------------------------------------------------
# the three estimators on one sample
# ---------------------------------------------------------------------------


def _ra(y: np.ndarray, d: np.ndarray, x: np.ndarray, c: np.ndarray) -> dict[str, Any]:
    return _ra_outcome(_ra_design(d, x, c), y)


def _ra_design(d: np.ndarray, x: np.ndarray, c: np.ndarray) -> dict[str, Any]:
    """What regression adjustment computes from the covariates, the treatment
    and the case weights alone: the control cross product, the treated's pull
    on the coefficients and the weights (shared by the outcomes of one
    sample)."""
    xc = np.column_stack([np.ones(len(d)), x])
    trt, ctrl = d == 1, (d == 0) & (c > 0)
    xctrl = xc[ctrl]
    cc = c[ctrl]
    unit = bool(np.all(cc == 1))
    xw = xctrl if unit else xctrl * cc[:, None]
    a = xw.T @ xctrl
    if not _full_column_rank(xctrl, a if unit else None):
        raise EffectInputError(
            "the covariates are collinear among the controls, so the control outcome "
            "regression is not identified; drop a covariate or merge sparse categories"
        )
    n1 = trt.sum()
    h = np.linalg.solve(a, xc[trt].mean(axis=0))
    w = np.where(ctrl, c * n1 / c[ctrl].sum(), 0.0)
    return {"xc": xc, "trt": trt, "ctrl": ctrl, "xw": xw, "a": a, "n1": n1,
            "pull": -(xc @ h), "c0": np.where(d == 0, c, 0.0), "weights": w,
            "used": trt | ctrl}


def _ra_outcome(design: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    """Regression adjustment of ``y`` on the shared part of :func:`_ra_design`."""
    trt = design["trt"]
    b = np.linalg.solve(design["a"], design["xw"].T @ y[design["ctrl"]])
    e = y - design["xc"] @ b
    tau = float(e[trt].mean())
    # treated: own imputed effect; controls: their pull on b0 through the
    # (weighted) normal equations, X_bar1' A^{-1} x_i c_i e_i
    phi = np.where(trt, (e - tau) / design["n1"], design["pull"] * e * design["c0"])
    return {"tau": tau, "phi": phi, "weights": design["weights"], "used": design["used"]}


def _ipw(y: np.ndarray, d: np.ndarray, x: np.ndarray, trim: float, c: np.ndarray) -> dict[str, Any]:
    xc = np.column_stack([np.ones(len(y)), x])
    if np.linalg.matrix_rank(xc) < xc.shape[1]:
        raise EffectInputError(
            "the covariates are collinear, so the propensity model is not identified; "
            "drop a covariate or merge sparse categories"
        )
    p = expit(xc @ logit(d, xc))
    return _weighting(y, d, p, trim, c, xc=xc)


def _weighting(
    y: np.ndarray,
    d: np.ndarray,
    p: np.ndarray,
    trim: float,
    c: np.ndarray,
    *,
    xc: np.ndarray | None = None,
) -> dict[str, Any]:
    """The odds-weighted contrast of ``y`` (an outcome or a residual) with the
    upper tail of ``p`` dropped; with ``xc``, the logit's estimation error
    enters the influence values (IPW)."""
    kept = p <= 1 - trim
    trt, ctrl = (d == 1) & kept, (d == 0) & kept & (c > 0)
    if not trt.any() or not ctrl.any():
        raise EffectInputError(
            f"no treated or no controls left after dropping propensity scores above {1 - trim:g}"
        )
    w = np.where(ctrl, p / (1 - p) * c, 0.0)
    n1 = trt.sum()
    mu1 = y[trt].mean()
    s0 = w.sum()
    mu0 = float(np.sum(w * y) / s0)
    phi = trt * (y - mu1) / n1 - w * (y - mu0) / s0
    if xc is not None:
        # the odds exp(x'gamma) move with the logit coefficients
        g = (w * (y - mu0)) @ xc
        info = (xc * (p * (1 - p))[:, None]).T @ xc
        phi -= (xc @ np.linalg.solve(info, g)) * (d - p) / s0
    return {
        "tau": float(mu1 - mu0),
        "phi": phi,
        "weights": w * n1 / s0,
        "used": trt | ctrl,
        "n_trimmed": int((~kept).sum()),
        "n_trimmed_treated": int((~kept & (d == 1)).sum()),
        "pscore": p,
    }


def _fold_ids(d: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.empty(len(d), dtype=int)
    if groups is None:
        for value in (0.0, 1.0):  # stratified by treatment
            idx = np.flatnonzero(d == value)
            fold[rng.permutation(idx)] = np.arange(len(idx)) % k
    else:
        _, inverse = np.unique(groups, return_inverse=True)
        n_groups = inverse.max() + 1
        group_fold = np.empty(n_groups, dtype=int)
        group_fold[rng.permutation(n_groups)] = np.arange(n_groups) % k
        fold = group_fold[inverse]
    return fold


def _aipw(
    y: np.ndarray,
    d: np.ndarray,
    x: np.ndarray,
    c: np.ndarray,
    *,
    trim: float,
    folds: int,
    groups: np.ndarray | None,
    seed: int,
    outcome_learner: Any,
    propensity_learner: Any,
) -> dict[str, Any]:
    fold = _fold_ids(d, groups, folds, seed)
    _check_folds(d, c, fold, folds)
    p = _cross_fitted_propensity(x, d, fold, folds, propensity_learner)
    g0 = _cross_fitted_outcome(x, y, d, c, fold, folds, outcome_learner)
    return _weighting(y - g0, d, p, trim, c)


def _check_folds(d: np.ndarray, c: np.ndarray, fold: np.ndarray, folds: int) -> None:
    """Every fold's training rows hold treated and controls (with a positive weight)."""
    for k in range(folds):
        test = fold == k
        train = ~test
        if test.any() and (
            d[train].min() == d[train].max() or not (train & (d == 0) & (c > 0)).any()
        ):
            raise EffectInputError(
                f"cross-fitting fold {k} leaves no treated or no controls to train on; "
                "use fewer folds or a larger sample"
            )


def _cross_fitted_outcome(
    x: np.ndarray,
    y: np.ndarray,
    d: np.ndarray,
    c: np.ndarray,
    fold: np.ndarray,
    folds: int,
    learner: Any,
    grams: _FoldGrams | None = None,
) -> np.ndarray:
    """The control outcome of each row predicted by the model fitted on the
    controls (with a positive weight ``c``) of the other folds; ``grams``:
    the folds' cross products of these ``x``, ``d``, ``c`` (without an
    outcome), when the caller shares them between outcomes."""
    g0 = np.empty(len(y))
    weighted = bool(np.any(c != 1))
    fast = None
    if type(learner) is OLSLearner:
        fast = (grams or _FoldGrams(x, None, d, c, fold, folds)).outcome(y)
    for k in range(folds):
        test = fold == k
        if not test.any():
            continue
        if fast is not None:
            got = fast.predict(k, x[test])
            if got is not None:
                g0[test] = got
                continue
        train_ctrl = ~test & (d == 0) & (c > 0)
        om = copy.deepcopy(learner)
        if weighted:
            om.fit(x[train_ctrl], y[train_ctrl], sample_weight=c[train_ctrl])
        else:
            om.fit(x[train_ctrl], y[train_ctrl])
        g0[test] = np.asarray(om.predict(x[test]), dtype=float).ravel()
    return g0


#: cross-fitted propensity scores by content of (covariates, treatment, folds): the
#: propensity model does not depend on the outcome or on the control weights, so the
#: two estimands of an outcome (and outcomes with the same complete rows) share it
_PROPENSITY = ContentMemo(size=64)


def _cross_fitted_propensity(
    x: np.ndarray, d: np.ndarray, fold: np.ndarray, folds: int, learner: Any
) -> np.ndarray:
    """The propensity score of each row from the model fitted on the other
    folds (rows of an empty fold keep no score: they are never used)."""

    def compute() -> np.ndarray:
        p = np.empty(len(d))
        for k in range(folds):
            test = fold == k
            if not test.any():
                continue
            pm = copy.deepcopy(learner).fit(x[~test], d[~test])
            p[test] = np.asarray(pm.predict_proba(x[test]), dtype=float)[:, 1]
        return p

    if type(learner) is not LogitLearner:  # only a learner known to be deterministic
        return compute()
    return _PROPENSITY.get([x, d, fold], ("logit", folds), compute).copy()


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def selection_on_observables(
    data: pd.DataFrame,
    *,
    outcome: str,
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
    control_weights: str | None = None,
) -> SelectionResult:
    r"""Average effect of a binary treatment on the treated, assuming
    selection on observables.

    The estimand is the ATT,

    .. math::

        \tau_{ATT} = E[Y(1) - Y(0) \mid D = 1]
                   = E[Y \mid D = 1] - E\big[E[Y \mid D = 0, X] \mid D = 1\big]

    With ``strata`` :math:`S`, the ATT is estimated within each stratum and
    averaged with the treated's stratum shares,
    :math:`\sum_s P(S = s \mid D = 1)\,\tau_{ATT}(s)`, which equals the ATT
    when every stratum has controls.

    Assumptions: (1) no unobserved confounding of the untreated outcome,
    :math:`Y(0) \perp D \mid X` (within strata); (2) overlap, every treated
    unit has comparable controls, :math:`P(D = 1 \mid X) < 1`; (3) no
    interference between units.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit (or per unit and stratum, see
        :func:`dynamic_risk_set`). Rows with a missing value in a used column
        are dropped (counted in ``diagnostics["n_missing_dropped"]``).
    outcome : str
        Numeric outcome column.
    treatment : str
        Binary (0/1 or bool) treatment column.
    covariates : sequence of str
        Covariate columns. Numeric and boolean columns enter linearly;
        categorical and string columns as indicators (first category left
        out).
    method : {"aipw", "ipw", "ra"}
        ``"ra"``: regression adjustment, the mean over the treated of
        :math:`Y - X'\hat b_0` with :math:`\hat b_0` from OLS of :math:`Y` on
        :math:`X` among controls. ``"ipw"``: Hajek-normalised weighting of
        controls by the logit odds :math:`\hat p/(1-\hat p)`. ``"aipw"``:
        doubly robust, the IPW contrast of the residuals :math:`Y - \hat
        g_0(X)`, with nuisance models cross-fitted over ``folds`` folds.
    cluster : str, optional
        Column of cluster identifiers for cluster-robust standard errors
        (also keeps each cluster within one cross-fitting fold). Without it,
        standard errors are heteroskedasticity-robust.
    strata : str, optional
        Column of strata (for example the elapsed month of the benefit
        spell): the estimator runs separately within each stratum. Strata
        without treated units are dropped; strata with treated but no
        controls raise an error.
    folds : int
        Cross-fitting folds for ``"aipw"``.
    seed : int
        Seed of the fold assignment.
    trim : float
        ``"ipw"``, ``"aipw"``: rows (treated and controls) with a propensity
        score above ``1 - trim`` are dropped, not clipped: the ATT needs
        comparable controls only where treatment is near certain, and small
        scores need no bound (the odds weights of the ATT stay below one
        there). The estimand becomes the ATT of the treated kept; the
        numbers dropped are reported (``n_trimmed``, ``n_trimmed_treated``).
    outcome_learner, propensity_learner : object, optional
        For ``"aipw"`` only: estimators with the scikit-learn protocol
        (``fit(X, y[, sample_weight])``, ``predict(X)``; ``fit(X, d)``,
        ``predict_proba(X)``), e.g. :func:`learners` ``("boosting")``.
        Defaults are OLS and a logit.
    control_weights : str, optional
        Column of non-negative case weights of the controls, for example
        inverse probability of censoring weights
        (:func:`censoring_weights`): each control's outcome (and its weight
        in the outcome regression) counts this many times; a control with
        weight 0 is left out of the comparison but stays in the propensity
        model (its treatment status is observed). Ignored for the treated.

    Returns
    -------
    SelectionResult
        ``estimate`` is the ATT; ``std_error`` from the influence function
        (robust or cluster-robust sum over observations or clusters);
        ``balance`` holds standardised mean differences before and after
        weighting; ``diagnostics`` the counts, the number of rows dropped
        for their propensity score, the effective (Kish) sample sizes
        :math:`(\sum w)^2 / \sum w^2` of the treated and of the weighted
        controls, the largest weighted standardised difference overall and,
        with ``strata``, within each stratum (also in ``strata``).

    Raises
    ------
    ValueError
        A missing column, a treatment that is not binary or does not vary, an
        unknown method, collinear covariates, or a stratum without controls.

    Notes
    -----
    The influence values :math:`\phi_i` are in sum form (:math:`\hat\tau -
    \tau \approx \sum_i \phi_i`). For ``"ra"``,
    :math:`\phi_i = D_i (e_i - \hat\tau)/n_1 - (1 - D_i)\, e_i\, \bar X_1'
    A^{-1} X_i` with :math:`A = \sum_{D=0} X_i X_i'`; for ``"ipw"`` the term
    :math:`G I^{-1} X_i (D_i - \hat p_i)/S_0` adds the logit's estimation
    error; for ``"aipw"`` the nuisance functions are held fixed. The
    variance is :math:`\frac{n}{n-1}\sum_i \phi_i^2` or
    :math:`\frac{G}{G-1}\sum_g (\sum_{i \in g} \phi_i)^2`.

    References
    ----------
    Sianesi (2004), Review of Economics and Statistics; Lechner and Wunsch
    (2013), Labour Economics; Chernozhukov and others (2018), Econometrics
    Journal; Knaus, Lechner and Strittmatter (2022), Journal of Human
    Resources.

    Examples
    --------
    >>> res = selection_on_observables(df, outcome="employed_12m", treatment="started",
    ...                                covariates=["age", "female", "prior_work"],
    ...                                method="aipw", cluster="person")
    >>> res.estimate, res.conf_int()
    """
    data = require_frame(data)
    covs = as_list(covariates)
    _check_options(method, trim, folds, outcome_learner, propensity_learner)
    _check_columns(data, [outcome], treatment, covs, cluster, strata, [control_weights])
    used_cols = [
        outcome,
        treatment,
        *covs,
        *as_list(cluster),
        *as_list(strata),
        *as_list(control_weights),
    ]
    sample, n_missing = _complete_rows(data, used_cols)
    if len(sample) == 0:
        raise EffectInputError("no complete rows in the used columns")
    y = _outcome_values(sample, outcome)
    d = binary(sample[treatment], name=treatment)
    c = _case_weights(sample, d, control_weights)
    xdf = numeric_design(sample, covs, role="covariate")
    xall = xdf.to_numpy()
    clusters = _cluster_codes(sample[cluster]) if cluster is not None else None
    nuisance = _nuisance(outcome_learner, propensity_learner)

    def run(mask: np.ndarray | slice) -> dict[str, Any]:
        xfull = xall[mask]
        xm = xfull[:, np.ptp(xfull, axis=0) > 0] if xfull.shape[1] else xfull
        dm, ym, cm = d[mask], y[mask], c[mask]
        if method == "ra":
            fit = _ra(ym, dm, xm, cm)
        elif method == "ipw":
            fit = _ipw(ym, dm, xm, trim, cm)
        else:
            groups = clusters[mask] if clusters is not None else None
            fit = _aipw(
                ym, dm, xm, cm, trim=trim, folds=folds, groups=groups, seed=seed, **nuisance
            )
        fit.update(_fit_balance(xfull, dm, fit))
        return fit

    spec = {"method": method, "trim": trim, "folds": folds, "seed": seed, "covs": covs,
            "learner": type(nuisance["outcome_learner"]).__name__, "outcome": outcome,
            "treatment": treatment, "cluster": cluster, "strata": strata,
            "control_weights": control_weights}
    return _report(run, sample, n_missing, d, c, (xall, list(xdf.columns)), clusters, spec)


def _check_options(method: str, trim: float, folds: int, outcome_learner: Any,
                   propensity_learner: Any) -> None:
    if method not in METHODS:
        raise EffectInputError(f"method must be one of {METHODS}, not {method!r}")
    if method != "aipw" and (outcome_learner is not None or propensity_learner is not None):
        raise EffectInputError("outcome_learner and propensity_learner are used by 'aipw' only")
    if not 0 <= trim < 0.5:
        raise EffectInputError(f"trim must be in [0, 0.5), not {trim}")
    if folds < 2:
        raise EffectInputError(f"folds must be at least 2, not {folds}")


def _check_columns(data: pd.DataFrame, outcomes: Sequence[str], treatment: str,
                   covs: list[str], cluster: str | None, strata: str | None,
                   control_weights: Sequence[str | None]) -> None:
    for outcome in outcomes:
        require_columns(data, [outcome], role="outcome")
    require_columns(data, [treatment], role="treatment")
    require_columns(data, covs, role="covariate")
    for col, role in (
        (cluster, "cluster"),
        (strata, "strata"),
        *((w, "control weights") for w in control_weights),
    ):
        if col is not None:
            require_columns(data, [col], role=role)
    if treatment in covs or any(o in covs for o in outcomes):
        raise EffectInputError("the outcome and the treatment must not be among the covariates")


def _outcome_values(sample: pd.DataFrame, outcome: str) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(sample[outcome]) or sample[outcome].dtype == bool):
        raise EffectInputError(f"outcome column {outcome!r} must be numeric")
    return sample[outcome].to_numpy(dtype=float)


def _case_weights(sample: pd.DataFrame, d: np.ndarray, control_weights: str | None
                  ) -> np.ndarray:
    """Ones for the treated, the column ``control_weights`` (if any) for the controls."""
    if control_weights is None:
        return np.ones(len(d))
    c = np.where(d == 1, 1.0, sample[control_weights].to_numpy(dtype=float))
    if (c < 0).any() or not np.isfinite(c).all():
        raise EffectInputError(
            f"control weights column {control_weights!r} must hold finite non-negative numbers"
        )
    return c


def _nuisance(outcome_learner: Any, propensity_learner: Any) -> dict[str, Any]:
    nuisance = learners("linear")
    if outcome_learner is not None:
        nuisance["outcome_learner"] = outcome_learner
    if propensity_learner is not None:
        nuisance["propensity_learner"] = propensity_learner
    return nuisance


def _fit_balance(xfull: np.ndarray, dm: np.ndarray, fit: dict[str, Any]) -> dict[str, Any]:
    """The balance moments, the largest weighted difference and the effective
    number of controls of one fitted sample."""
    moments = _group_moments(xfull, dm, fit["weights"], fit["used"])
    return {
        "moments": moments,
        "max_abs_smd_weighted": _max_smd(xfull, dm, fit["weights"], fit["used"],
                                         moments=moments),
        "ess_control": _kish(fit["weights"][fit["used"] & (dm == 0)]),
    }


def _report(run: Any, sample: pd.DataFrame, n_missing: int, d: np.ndarray, c: np.ndarray,
            x: tuple[np.ndarray, list[str]], clusters: np.ndarray | None,
            spec: dict[str, Any]) -> SelectionResult:
    """The estimate from ``run`` (the fit of one sample or stratum, given its
    rows) over the whole sample or within the strata, its standard error,
    balance and diagnostics."""
    method, strata, control_weights = spec["method"], spec["strata"], spec["control_weights"]
    n1_total = int(d.sum())
    n_dropped_strata = 0
    strata_table = None
    if strata is None:
        fit = run(np.ones(len(d), dtype=bool))
        tau, phi, weights, used = fit["tau"], fit["phi"], fit["weights"], fit["used"]
        n_trimmed, n_trimmed_treated = fit.get("n_trimmed", 0), fit.get("n_trimmed_treated", 0)
        keep = np.ones(len(d), dtype=bool)
        parts = [fit["moments"]]
    else:
        s = sample[strata].to_numpy()
        tau, phi, weights, used, keep, strata_table, n_dropped_strata, parts = _stratified(
            run, s, d, strata
        )
        n_trimmed = int(strata_table["n_trimmed"].sum())
        n_trimmed_treated = int(strata_table["n_trimmed_treated"].sum())
    if clusters is None:
        var, n_clusters = if_variance(phi[keep], None), None
    else:
        var, n_clusters = cluster_variance(phi[keep], clusters[keep])
    se = math.sqrt(var)
    trt, ctrl = used & (d == 1), used & (d == 0)
    n_treated, n_control = int(trt.sum()), int(ctrl.sum())
    balance = _balance(x[0], x[1], d[used], weights[used], used, parts=parts)
    wc = weights[ctrl]
    diagnostics: dict[str, Any] = {
        "n_treated": n_treated,
        "n_control": n_control,
        "n_missing_dropped": n_missing,
        "covariates": spec["covs"],
        "n_covariate_columns": len(x[1]),
        "max_abs_smd_raw": float(np.nanmax(np.abs(balance["smd_raw"])))
        if balance["smd_raw"].notna().any()
        else None,
        "max_abs_smd_weighted": float(np.nanmax(np.abs(balance["smd_weighted"])))
        if balance["smd_weighted"].notna().any()
        else None,
        "effective_n_control": _kish(wc),
        "ess_treated": _kish(np.ones(n_treated)),
        "ess_control": _kish(wc),
    }
    if control_weights is not None:
        diagnostics["n_control_weight_zero"] = int(((d == 0) & (c == 0)).sum())
        diagnostics["max_control_weight"] = float(c[d == 0].max()) if (d == 0).any() else None
    if method != "ra":
        diagnostics.update(
            {
                "trim": spec["trim"],
                "trim_rule": f"dropped above {1 - spec['trim']:g}",
                "n_trimmed": n_trimmed,
                "n_trimmed_treated": n_trimmed_treated,
                "n_pscore_clipped": 0,
            }
        )
    if method == "aipw":
        diagnostics.update(folds=spec["folds"], seed=spec["seed"], learner=spec["learner"])
    if strata_table is not None:
        diagnostics.update(_strata_diagnostics(strata, strata_table, n_dropped_strata, n1_total))
    return SelectionResult(
        estimate=float(tau),
        std_error=se,
        n=int(used.sum()),
        design="selection_on_observables",
        estimand=ESTIMAND if strata is None else ESTIMAND_STRATA,
        method=method,
        outcome=spec["outcome"],
        treatment=spec["treatment"],
        cov_type="clustered" if spec["cluster"] is not None else "robust",
        n_clusters=n_clusters,
        diagnostics=diagnostics,
        n_treated=n_treated,
        n_control=n_control,
        balance=balance,
        strata=strata_table,
        influence=phi[keep],
        sample_index=sample.index[keep],
    )


def _strata_diagnostics(strata: str, table: pd.DataFrame, n_dropped: int, n1_total: int
                        ) -> dict[str, Any]:
    worst = table["max_abs_smd_weighted"]
    return {
        "strata": strata,
        "n_strata": int(len(table)),
        "n_strata_without_treated": n_dropped,
        "n_treated_total": n1_total,
        "max_abs_smd_weighted_by_stratum": {
            str(k): v for k, v in table["max_abs_smd_weighted"].items()
        },
        "ess_control_by_stratum": {str(k): v for k, v in table["ess_control"].items()},
        "max_abs_smd_weighted_strata": float(worst.max()) if worst.notna().any() else None,
    }


def _stratified(run: Any, s: np.ndarray, d: np.ndarray, name: str) -> tuple:
    """The estimator within each stratum, averaged with the treated's shares:
    the estimate, influence values, control weights (summing to the treated
    of each stratum), rows used, rows of the strata, the table of strata, the
    number of strata without treated and the balance moments of each stratum
    fitted."""
    rows, fits, n_dropped = [], {}, 0
    rows_of = _stratum_rows(s)
    for value in pd.unique(s):
        mask = rows_of(value)
        n1s, n0s = int(d[mask].sum()), int((d[mask] == 0).sum())
        if n1s == 0:
            n_dropped += 1
            continue
        if n0s == 0:
            raise EffectInputError(
                f"stratum {name}={value!r} has {n1s} treated and no controls: the ATT is "
                "not identified there; coarsen the strata or drop them"
            )
        try:
            fit = fits[value] = run(mask)
        except EffectInputError as exc:
            raise EffectInputError(f"stratum {name}={value!r}: {exc}") from exc
        used = fit["used"]
        rows.append(
            {
                "stratum": value,
                "n_treated": int((used & (d[mask] == 1)).sum()),
                "n_control": int((used & (d[mask] == 0)).sum()),
                "n_trimmed": fit.get("n_trimmed", 0),
                "n_trimmed_treated": fit.get("n_trimmed_treated", 0),
                "ess_control": fit["ess_control"],
                "max_abs_smd_weighted": fit["max_abs_smd_weighted"],
            }
        )
    if not fits:
        raise EffectInputError(f"no stratum of {name!r} holds treated units")
    table = pd.DataFrame(rows).set_index("stratum").sort_index()
    table["weight"] = table["n_treated"] / table["n_treated"].sum()
    table["estimate"] = [fits[v]["tau"] for v in table.index]
    tau = float((table["weight"] * table["estimate"]).sum())
    n1 = table["n_treated"].sum()
    phi, weights = np.zeros(len(d)), np.zeros(len(d))
    used, keep = np.zeros(len(d), dtype=bool), np.zeros(len(d), dtype=bool)
    for value, fit in fits.items():
        mask = rows_of(value)
        phi[mask] = (
            table.loc[value, "weight"] * fit["phi"]
            + (fit["used"] & (d[mask] == 1)) * (fit["tau"] - tau) / n1
        )
        weights[mask] = fit["weights"]
        used[mask] = fit["used"]
        keep[mask] = True
    table["std_error"] = [math.sqrt(if_variance(fits[v]["phi"], None)) for v in table.index]
    return tau, phi, weights, used, keep, table, n_dropped, [f["moments"] for f in fits.values()]

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

from ..numerics import logit
from ._data import (
    EffectInputError,
    as_list,
    binary,
    codes,
    complete_cases,
    if_variance,
    numeric_design,
    require_columns,
    require_frame,
)
from .results import SelectionResult

__all__ = ["dynamic_risk_set", "selection_on_observables"]

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
# nuisance learners (scikit-learn protocol, statsmodels inside)
# ---------------------------------------------------------------------------


class _Columns:
    """Remembers which columns varied in the training data."""

    keep: np.ndarray

    def _design(self, x: np.ndarray, *, fit: bool) -> np.ndarray:
        if fit:
            self.keep = np.ptp(x, axis=0) > 0 if x.shape[1] else np.zeros(0, bool)
        return np.column_stack([np.ones(x.shape[0]), x[:, self.keep]])


class OLSLearner(_Columns):
    """Linear outcome model (OLS with a constant), ``fit``/``predict``."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> OLSLearner:
        xc = self._design(x, fit=True)
        self.coef_ = np.linalg.lstsq(xc, y, rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._design(x, fit=False) @ self.coef_


class LogitLearner(_Columns):
    """Logit propensity model with a constant
    (:func:`reintegration.numerics.logit`), ``fit``/``predict_proba``."""

    def fit(self, x: np.ndarray, d: np.ndarray) -> LogitLearner:
        xc = self._design(x, fit=True)
        self.coef_ = logit(d, xc)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = expit(self._design(x, fit=False) @ self.coef_)
        return np.column_stack([1 - p, p])


# ---------------------------------------------------------------------------
# the three estimators on one sample
# ---------------------------------------------------------------------------


def _ra(y: np.ndarray, d: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    xc = np.column_stack([np.ones(len(y)), x])
    trt, ctrl = d == 1, d == 0
    if np.linalg.matrix_rank(xc[ctrl]) < xc.shape[1]:
        raise EffectInputError(
            "the covariates are collinear among the controls, so the control outcome "
            "regression is not identified; drop a covariate or merge sparse categories"
        )
    a = xc[ctrl].T @ xc[ctrl]
    b = np.linalg.solve(a, xc[ctrl].T @ y[ctrl])
    e = y - xc @ b
    n1 = trt.sum()
    tau = float(e[trt].mean())
    h = np.linalg.solve(a, xc[trt].mean(axis=0))
    # treated: own imputed effect; controls: their pull on b0 through the
    # normal equations, X_bar1' A^{-1} x_i e_i
    phi = np.where(trt, (e - tau) / n1, -(xc @ h) * e)
    return {"tau": tau, "phi": phi, "weights": None, "n_trimmed": 0}


def _ipw(y: np.ndarray, d: np.ndarray, x: np.ndarray, trim: float) -> dict[str, Any]:
    xc = np.column_stack([np.ones(len(y)), x])
    if np.linalg.matrix_rank(xc) < xc.shape[1]:
        raise EffectInputError(
            "the covariates are collinear, so the propensity model is not identified; "
            "drop a covariate or merge sparse categories"
        )
    p = expit(xc @ logit(d, xc))
    pc = np.clip(p, trim, 1 - trim)
    free = pc == p
    w = pc / (1 - pc)
    trt, ctrl = d == 1, d == 0
    n1 = trt.sum()
    mu1 = y[trt].mean()
    s0 = w[ctrl].sum()
    mu0 = float(np.sum(w[ctrl] * y[ctrl]) / s0)
    tau = float(mu1 - mu0)
    # the odds exp(x'gamma) move with the logit coefficients (not where clipped)
    g = ((1 - d) * w * (y - mu0) * free) @ xc
    info = (xc * (p * (1 - p))[:, None]).T @ xc
    k = xc @ np.linalg.solve(info, g)
    phi = d * (y - mu1) / n1 - ((1 - d) * w * (y - mu0) + k * (d - p)) / s0
    return {
        "tau": tau,
        "phi": phi,
        "weights": np.where(ctrl, w * n1 / s0, 0.0),
        "n_trimmed": int((~free).sum()),
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
    *,
    trim: float,
    folds: int,
    groups: np.ndarray | None,
    seed: int,
    outcome_learner: Any,
    propensity_learner: Any,
) -> dict[str, Any]:
    fold = _fold_ids(d, groups, folds, seed)
    g0 = np.empty(len(y))
    p = np.empty(len(y))
    for k in range(folds):
        test = fold == k
        train = ~test
        if not test.any():
            continue
        train_ctrl = train & (d == 0)
        if d[train].min() == d[train].max():
            raise EffectInputError(
                f"cross-fitting fold {k} leaves no treated or no controls to train on; "
                "use fewer folds or a larger sample"
            )
        om = copy.deepcopy(outcome_learner).fit(x[train_ctrl], y[train_ctrl])
        pm = copy.deepcopy(propensity_learner).fit(x[train], d[train])
        g0[test] = np.asarray(om.predict(x[test]), dtype=float).ravel()
        p[test] = np.asarray(pm.predict_proba(x[test]), dtype=float)[:, 1]
    pc = np.clip(p, trim, 1 - trim)
    w = pc / (1 - pc)
    r = y - g0
    trt, ctrl = d == 1, d == 0
    n1 = trt.sum()
    mu1 = r[trt].mean()
    s0 = w[ctrl].sum()
    mu0 = float(np.sum(w[ctrl] * r[ctrl]) / s0)
    tau = float(mu1 - mu0)
    phi = d * (r - mu1) / n1 - (1 - d) * w * (r - mu0) / s0
    return {
        "tau": tau,
        "phi": phi,
        "weights": np.where(ctrl, w * n1 / s0, 0.0),
        "n_trimmed": int((pc != p).sum()),
        "pscore": p,
    }


def _balance(x: pd.DataFrame, d: np.ndarray, weights: np.ndarray | None) -> pd.DataFrame:
    trt, ctrl = d == 1, d == 0
    xt, xc = x.to_numpy()[trt], x.to_numpy()[ctrl]
    sd = np.sqrt((xt.var(axis=0, ddof=1) + xc.var(axis=0, ddof=1)) / 2)
    sd = np.where(sd > 0, sd, np.nan)
    out = pd.DataFrame(
        {
            "mean_treated": xt.mean(axis=0),
            "mean_control": xc.mean(axis=0),
            "smd_raw": (xt.mean(axis=0) - xc.mean(axis=0)) / sd,
        },
        index=pd.Index(x.columns, name="covariate"),
    )
    if weights is not None:
        wc = weights[ctrl]
        mw = (wc[:, None] * xc).sum(axis=0) / wc.sum()
        out["mean_control_weighted"] = mw
        out["smd_weighted"] = (xt.mean(axis=0) - mw) / sd
    return out


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
        Propensity scores are clipped to ``[trim, 1 - trim]`` (``"ipw"``,
        ``"aipw"``); the number clipped is reported.
    outcome_learner, propensity_learner : object, optional
        For ``"aipw"`` only: estimators with the scikit-learn protocol
        (``fit(X, y)``, ``predict(X)``; ``fit(X, d)``, ``predict_proba(X)``),
        e.g. random forests. Defaults are OLS and a statsmodels logit.

    Returns
    -------
    SelectionResult
        ``estimate`` is the ATT; ``std_error`` from the influence function
        (robust or cluster-robust sum over observations or clusters);
        ``balance`` holds standardised mean differences before and after
        weighting; ``diagnostics`` the counts, the number of clipped
        propensity scores, the effective number of weighted controls and the
        largest weighted standardised difference.

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
    if method not in METHODS:
        raise EffectInputError(f"method must be one of {METHODS}, not {method!r}")
    if method != "aipw" and (outcome_learner is not None or propensity_learner is not None):
        raise EffectInputError("outcome_learner and propensity_learner are used by 'aipw' only")
    if not 0 <= trim < 0.5:
        raise EffectInputError(f"trim must be in [0, 0.5), not {trim}")
    if folds < 2:
        raise EffectInputError(f"folds must be at least 2, not {folds}")
    require_columns(data, [outcome], role="outcome")
    require_columns(data, [treatment], role="treatment")
    require_columns(data, covs, role="covariate")
    if cluster is not None:
        require_columns(data, [cluster], role="cluster")
    if strata is not None:
        require_columns(data, [strata], role="strata")
    if treatment in covs or outcome in covs:
        raise EffectInputError("the outcome and the treatment must not be among the covariates")
    used = [outcome, treatment, *covs, *as_list(cluster), *as_list(strata)]
    sample, n_missing = complete_cases(data, used)
    if len(sample) == 0:
        raise EffectInputError("no complete rows in the used columns")
    if not (pd.api.types.is_numeric_dtype(sample[outcome]) or sample[outcome].dtype == bool):
        raise EffectInputError(f"outcome column {outcome!r} must be numeric")
    d = binary(sample[treatment], name=treatment)
    y = sample[outcome].to_numpy(dtype=float)
    xdf = numeric_design(sample, covs, role="covariate")
    clusters = codes(sample, [cluster]) if cluster is not None else None
    learners = {
        "outcome_learner": outcome_learner if outcome_learner is not None else OLSLearner(),
        "propensity_learner": (
            propensity_learner if propensity_learner is not None else LogitLearner()
        ),
    }

    def run(mask: np.ndarray) -> dict[str, Any]:
        xm = xdf.to_numpy()[mask]
        xm = xm[:, np.ptp(xm, axis=0) > 0] if xm.shape[1] else xm
        dm, ym = d[mask], y[mask]
        if method == "ra":
            return _ra(ym, dm, xm)
        if method == "ipw":
            return _ipw(ym, dm, xm, trim)
        groups = clusters[mask] if clusters is not None else None
        return _aipw(ym, dm, xm, trim=trim, folds=folds, groups=groups, seed=seed, **learners)

    n1_total = int(d.sum())
    n_dropped_strata = 0
    strata_table = None
    if strata is None:
        fit = run(np.ones(len(y), dtype=bool))
        tau, phi, weights = fit["tau"], fit["phi"], fit["weights"]
        n_trimmed = fit["n_trimmed"]
        keep = np.ones(len(y), dtype=bool)
    else:
        s = sample[strata].to_numpy()
        rows = []
        phi = np.zeros(len(y))
        weights = np.zeros(len(y))
        n_trimmed = 0
        keep = np.zeros(len(y), dtype=bool)
        fits: dict[Any, dict[str, Any]] = {}
        for value in pd.unique(s):
            mask = s == value
            n1s, n0s = int(d[mask].sum()), int((d[mask] == 0).sum())
            if n1s == 0:
                n_dropped_strata += 1
                continue
            if n0s == 0:
                raise EffectInputError(
                    f"stratum {strata}={value!r} has {n1s} treated and no controls: the ATT is "
                    "not identified there; coarsen the strata or drop them"
                )
            try:
                fits[value] = run(mask)
            except EffectInputError as exc:
                raise EffectInputError(f"stratum {strata}={value!r}: {exc}") from exc
            keep |= mask
            rows.append({"stratum": value, "n_treated": n1s, "n_control": n0s})
        table = pd.DataFrame(rows).set_index("stratum").sort_index()
        table["weight"] = table["n_treated"] / table["n_treated"].sum()
        table["estimate"] = [fits[v]["tau"] for v in table.index]
        tau = float((table["weight"] * table["estimate"]).sum())
        n1 = table["n_treated"].sum()
        for value, fit in fits.items():
            mask = s == value
            wgt = table.loc[value, "weight"]
            phi[mask] = wgt * fit["phi"] + d[mask] * (fit["tau"] - tau) / n1
            if fit["weights"] is not None:
                weights[mask] = fit["weights"]
            else:  # stratification alone reweights controls to the treated's strata
                n0s = table.loc[value, "n_control"]
                weights[mask] = np.where(d[mask] == 0, table.loc[value, "n_treated"] / n0s, 0.0)
            n_trimmed += fit["n_trimmed"]
        table["std_error"] = [math.sqrt(if_variance(fits[v]["phi"], None)) for v in table.index]
        strata_table = table
    var = if_variance(phi[keep], clusters[keep] if clusters is not None else None)
    se = math.sqrt(var)
    n_treated = int(d[keep].sum())
    n_control = int((d[keep] == 0).sum())
    balance = _balance(xdf.loc[keep], d[keep], weights[keep] if weights is not None else None)
    diagnostics: dict[str, Any] = {
        "n_treated": n_treated,
        "n_control": n_control,
        "n_missing_dropped": n_missing,
        "covariates": covs,
        "n_covariate_columns": int(xdf.shape[1]),
        "max_abs_smd_raw": float(np.nanmax(np.abs(balance["smd_raw"]))) if len(balance) else None,
    }
    if weights is not None and "smd_weighted" in balance:
        wc = weights[keep][d[keep] == 0]
        diagnostics["effective_n_control"] = float(wc.sum() ** 2 / np.sum(wc**2))
        diagnostics["max_abs_smd_weighted"] = (
            float(np.nanmax(np.abs(balance["smd_weighted"]))) if len(balance) else None
        )
    if method != "ra":
        diagnostics["trim"] = trim
        diagnostics["n_pscore_clipped"] = n_trimmed
    if method == "aipw":
        diagnostics["folds"] = folds
        diagnostics["seed"] = seed
    if strata is not None:
        diagnostics["strata"] = strata
        diagnostics["n_strata"] = int(len(strata_table))
        diagnostics["n_strata_without_treated"] = n_dropped_strata
        diagnostics["n_treated_total"] = n1_total
    return SelectionResult(
        estimate=float(tau),
        std_error=se,
        n=int(keep.sum()),
        design="selection_on_observables",
        estimand=ESTIMAND if strata is None else ESTIMAND_STRATA,
        method=method,
        outcome=outcome,
        treatment=treatment,
        cov_type="clustered" if cluster is not None else "robust",
        n_clusters=int(len(np.unique(clusters[keep]))) if clusters is not None else None,
        diagnostics=diagnostics,
        n_treated=n_treated,
        n_control=n_control,
        balance=balance,
        strata=strata_table,
        influence=phi[keep],
        sample_index=sample.index[keep],
    )


def dynamic_risk_set(
    data: pd.DataFrame,
    *,
    start: str,
    exit: str,
    max_month: int,
    min_month: int = 0,
    month: str = "elapsed_month",
    treated: str = "treated",
) -> pd.DataFrame:
    r"""Stack the dynamic comparisons of Sianesi (2004): starters at each
    elapsed month against those still waiting.

    For each elapsed month :math:`u` of a spell (``min_month`` to
    ``max_month``), the *risk set* holds every spell that is still on benefit
    at :math:`u` and has not started the treatment before :math:`u`. Within
    it, spells starting at :math:`u` are treated (``treated = 1``); all
    others are controls (``treated = 0``), including those who start later:
    the comparison is *starting now* against *not starting now* (waiting,
    possibly starting later). The risk sets are stacked, with :math:`u` in
    the column ``month``; pass it as ``strata`` to
    :func:`selection_on_observables`, which then estimates

    .. math::

        \tau = \sum_u P(U = u \mid D_u = 1)\;
               E\big[Y_u(1) - Y_u(0) \mid D_u = 1, U = u\big],

    the effect of starting at :math:`u` rather than waiting beyond
    :math:`u`, averaged over the starters' elapsed months. The outcome of
    each stacked row must be measured from :math:`u` on (for example
    employment 12 months after :math:`u`), for treated and controls alike,
    and covariates at or before :math:`u`; the caller merges them in. A
    spell appears in several risk sets, so cluster the standard errors on
    the person (or spell) identifier.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per spell.
    start : str
        Elapsed month (since inflow) in which the treatment starts; missing
        when it does not start during follow-up.
    exit : str
        First elapsed month in which the spell is no longer on benefit;
        missing when still on benefit at the end of follow-up. Set it to the
        end of follow-up for spells that are censored earlier, so they leave
        the risk sets when they are no longer observed.
    max_month, min_month : int
        Elapsed months for which risk sets are built (inclusive).
    month, treated : str
        Names of the added columns.

    Returns
    -------
    pandas.DataFrame
        The rows of ``data`` repeated for each risk set they belong to, with
        ``month`` (:math:`u`) and ``treated`` (0/1) added, sorted by
        :math:`u`; a fresh index.

    Raises
    ------
    ValueError
        A missing or non-numeric ``start``/``exit`` column, or an added
        column name that already exists.
    """
    data = require_frame(data)
    require_columns(data, [start], role="start")
    require_columns(data, [exit], role="exit")
    for name, role in ((month, "month"), (treated, "treated")):
        if name in data.columns:
            raise EffectInputError(f"{role} column {name!r} already exists in data; rename it")
    for col in (start, exit):
        if not pd.api.types.is_numeric_dtype(data[col]):
            raise EffectInputError(f"column {col!r} must hold elapsed months (numeric)")
    if max_month < min_month:
        raise EffectInputError(f"max_month ({max_month}) is below min_month ({min_month})")
    s = data[start].to_numpy(dtype=float)
    e = data[exit].to_numpy(dtype=float)
    blocks = []
    for u in range(int(min_month), int(max_month) + 1):
        at_risk = (np.isnan(e) | (e > u)) & (np.isnan(s) | (s >= u))
        block = data.loc[at_risk].copy()
        block[month] = u
        block[treated] = (s[at_risk] == u).astype(int)
        blocks.append(block)
    if not blocks:
        return data.iloc[0:0].assign(**{month: 0, treated: 0})
    return pd.concat(blocks, ignore_index=True)

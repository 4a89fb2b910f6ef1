r"""Instrumental variables: two-stage least squares through linearmodels
``IV2SLS``, with absorbed fixed effects, first stage and reduced form.

For an outcome :math:`Y`, an endogenous treatment :math:`D`, excluded
instruments :math:`Z`, exogenous controls :math:`W` and fixed effects
:math:`\alpha_{c}` for the cells :math:`c` of ``absorb`` (for example team by
period), the model is

.. math::

    Y_i = \beta D_i + W_i'\gamma + \alpha_{c(i)} + \varepsilon_i, \qquad
    D_i = Z_i'\pi + W_i'\kappa + \mu_{c(i)} + v_i,

estimated by 2SLS. With a binary treatment and a binary instrument that is
as good as randomly assigned (within cells), excluded from the outcome
equation and monotone in its effect on the treatment, :math:`\beta` is the
local average treatment effect of the compliers (Imbens and Angrist 1994),

.. math::

    \beta = \frac{E[Y \mid Z=1] - E[Y \mid Z=0]}{E[D \mid Z=1] - E[D \mid Z=0]}
          = E[Y(1) - Y(0) \mid D(1) > D(0)].

With a multi-valued instrument, such as the leave-one-out propensity of a
client's case manager (:func:`leave_one_out_propensity`), 2SLS estimates a
weighted average of such complier effects across pairs of instrument values,
weighted by how many clients the instrument moves into treatment (Angrist
and Imbens 1995); with fixed effects, the averages are within cells and
weighted by the within-cell variance of the first-stage fitted values.

With several mutually exclusive treatments (instruments a client may start)
and one propensity per treatment, :func:`multi_instrument_iv` fits the
just-identified model of one treatment, the same with the other propensities
as controls, or all treatments jointly (Kirkeboen, Leuven and Mogstad 2016),
once, with the Anderson-Rubin set beside the Wald interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from linearmodels.iv import IV2SLS

from ._data import (
    EffectInputError,
    as_list,
    codes,
    complete_cases,
    numeric_design,
    require_columns,
    require_frame,
)
from ._memo import FrameMemo
from .numerics import (
    anderson_rubin_projection,
    anderson_rubin_set,
    first_stage_f,
    sandwich_cov,
    tsls,
    tsls_first_stage,
)
from .numerics import demean as _demean
from .results import IVResult

__all__ = ["conditional_first_stage_f", "instrumental_variable", "leave_one_out_propensity",
           "leave_out_cell_propensity", "multi_instrument_iv"]

ABSORB_METHODS = ("within", "dummies")

ESTIMAND = (
    "complier-weighted average effect of the treatment (local average treatment effect): "
    "the effect among those whose treatment the instrument changes, averaged over instrument "
    "values{cells}; assumes the instrument is as good as random{given}, affects the outcome "
    "only through the treatment (exclusion), moves everyone's treatment in the same direction "
    "(monotonicity) and predicts the treatment (relevance)"
)


def _numeric(sample: pd.DataFrame, col: str, role: str) -> np.ndarray:
    s = sample[col]
    if not (pd.api.types.is_numeric_dtype(s) or s.dtype == bool):
        raise EffectInputError(f"{role} column {col!r} must be numeric (dtype {s.dtype})")
    return s.to_numpy(dtype=float)


def instrumental_variable(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    instrument: str | Sequence[str],
    controls: Sequence[str] = (),
    absorb: str | Sequence[str] | None = None,
    cluster: str | None = None,
    absorb_method: str = "within",
    debiased: bool = False,
) -> IVResult:
    r"""Two-stage least squares estimate of the effect of a treatment, with
    first stage, reduced form and fixed effects absorbed.

    With a binary treatment :math:`D` and instrument :math:`Z`, the estimand
    is the complier average effect

    .. math::

        \beta = E[Y(1) - Y(0) \mid D(1) > D(0)]
              = \frac{\operatorname{cov}(Y, Z)}{\operatorname{cov}(D, Z)}
              \quad\text{(no controls)},

    and with a multi-valued instrument (e.g. a case manager's leave-one-out
    propensity) a weighted average of complier effects across instrument
    values, within the cells of ``absorb``. Assumptions: (1) independence:
    the instrument is as good as randomly assigned given the controls and
    cells; (2) exclusion: it affects the outcome only through the treatment;
    (3) monotonicity: it moves no one's treatment against the direction it
    moves others'; (4) relevance: a strong first stage.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit. Rows with a missing value in a used column are
        dropped.
    outcome : str
        Numeric outcome column.
    treatment : str
        The endogenous treatment (numeric; usually 0/1).
    instrument : str or sequence of str
        Excluded instrument column(s).
    controls : sequence of str
        Exogenous covariates (categorical columns become indicators).
    absorb : str or sequence of str, optional
        Columns whose combinations get fixed effects (e.g. ``["team",
        "period"]`` for team-by-period effects). Cells with one row carry no
        information and are dropped (counted in ``diagnostics``).
    cluster : str, optional
        Column for cluster-robust standard errors (e.g. the case manager);
        heteroskedasticity-robust without it.
    absorb_method : {"within", "dummies"}
        ``"within"`` subtracts cell means from outcome, treatment,
        instruments and controls (Frisch-Waugh-Lovell) and fits 2SLS without
        a constant, passing the number of cells to linearmodels as
        ``extra_df``; ``"dummies"`` adds one indicator per cell. Both give
        the same estimates, first-stage F and (without ``debiased``)
        standard errors; ``"within"`` is much lighter with many cells.
    debiased : bool
        Small-sample scaling of the covariance (linearmodels' ``debiased``;
        the cells count as regressors).

    Returns
    -------
    IVResult
        ``estimate``/``std_error`` of the treatment coefficient;
        ``first_stage`` (coefficients of the instruments on the treatment)
        and ``first_stage_f`` (robust/cluster-robust Wald statistic divided
        by the number of instruments); ``reduced_form`` (coefficients of the
        instruments on the outcome); ``first_stage_diagnostics``
        (linearmodels' own, for comparison); ``model_results`` (the
        linearmodels fit).

    Raises
    ------
    ValueError
        A missing or non-numeric column, an instrument or treatment without
        variation (overall or within the absorbed cells), or an instrument
        that is also a control.

    Notes
    -----
    The first-stage F is computed from the first-stage regression with the
    model's covariance estimator; with one instrument it equals
    linearmodels' ``first_stage.diagnostics["f.stat"]`` (a chi2(1) Wald
    statistic for robust and clustered covariances) and the Kleibergen-Paap
    rk Wald F. Values below about 10 signal a weak instrument (Staiger and
    Stock 1997); with one instrument and a robust covariance, Lee and others
    (2022) show that valid 5% t-tests need much larger values or adjusted
    critical values.

    Clustered standard errors need many clusters. When the instrument varies
    between a few case managers per team and team effects are absorbed, the
    effective number of clusters is the number of managers minus the number
    of teams, and cluster-robust standard errors come out too small; compare
    them with the robust ones and report the larger.

    Examples
    --------
    >>> clients["z"] = leave_one_out_propensity(clients, group="case_manager",
    ...                                         treatment="assigned")
    >>> res = instrumental_variable(clients, outcome="employed_12m", treatment="assigned",
    ...                             instrument="z", absorb=["team", "quarter"],
    ...                             cluster="case_manager")
    >>> res.estimate, res.first_stage_f, res.reduced_form
    """
    data = require_frame(data)
    inst = as_list(instrument)
    ctrl = as_list(controls)
    cells = as_list(absorb)
    if not inst:
        raise EffectInputError("at least one instrument is needed")
    if absorb_method not in ABSORB_METHODS:
        raise EffectInputError(
            f"absorb_method must be one of {ABSORB_METHODS}, not {absorb_method!r}"
        )
    require_columns(data, [outcome], role="outcome")
    require_columns(data, [treatment], role="treatment")
    require_columns(data, inst, role="instrument")
    require_columns(data, ctrl, role="control")
    require_columns(data, cells, role="absorb")
    if cluster is not None:
        require_columns(data, [cluster], role="cluster")
    both = set(inst) & ({treatment, outcome} | set(ctrl))
    if both:
        raise EffectInputError(
            f"instrument column(s) {sorted(both)} also used as outcome, treatment or control"
        )
    used = [outcome, treatment, *inst, *ctrl, *cells, *as_list(cluster)]
    sample, n_missing = complete_cases(data, used)
    n_singletons = 0
    if cells:
        grp = codes(sample, cells)
        size = np.bincount(grp)
        single = size[grp] == 1
        n_singletons = int(single.sum())
        sample = sample.loc[~single]
    if len(sample) == 0:
        raise EffectInputError("no complete rows in the used columns")
    y = _numeric(sample, outcome, "outcome")
    d = _numeric(sample, treatment, "treatment")
    z = np.column_stack([_numeric(sample, c, "instrument") for c in inst])
    for j, c in enumerate(inst):
        if np.ptp(z[:, j]) == 0:
            raise EffectInputError(f"instrument column {c!r} has no variation")
    if np.ptp(d) == 0:
        raise EffectInputError(f"treatment column {treatment!r} has no variation")
    w = numeric_design(sample, ctrl, role="control")
    wnames = list(w.columns)
    w_arr = w.to_numpy()
    n_cells = 0
    extra_df = 0
    if cells:
        grp = codes(sample, cells)
        n_cells = int(grp.max() + 1)
        if absorb_method == "within":
            y, d = _demean(y[:, None], grp)[:, 0], _demean(d[:, None], grp)[:, 0]
            z = _demean(z, grp)
            w_arr = _demean(w_arr, grp) if w_arr.shape[1] else w_arr
            extra_df = n_cells
            scale = np.abs(w_arr).max(axis=0) if w_arr.shape[1] else np.zeros(0)
            varying = scale > 1e-12
            w_arr = w_arr[:, varying]
            wnames = [n for n, v in zip(wnames, varying, strict=True) if v]
            exog_arr = w_arr
            exog_names = wnames
        else:
            dummies = pd.get_dummies(grp, prefix="cell", drop_first=True).astype(float)
            exog_arr = np.column_stack([np.ones(len(y)), w_arr, dummies.to_numpy()])
            exog_names = ["const", *wnames, *dummies.columns]
        for j, c in enumerate(inst):
            zj = z[:, j] if absorb_method == "within" else _demean(z[:, [j]], grp)[:, 0]
            if np.abs(zj).max() <= 1e-12 * max(1.0, np.abs(z[:, j]).max()):
                raise EffectInputError(
                    f"instrument column {c!r} has no variation within the absorbed cells of {cells}"
                )
    else:
        exog_arr = np.column_stack([np.ones(len(y)), w_arr])
        exog_names = ["const", *wnames]
    index = sample.index
    dep = pd.Series(y, index=index, name=outcome)
    endog = pd.DataFrame({treatment: d}, index=index)
    instr = pd.DataFrame(z, columns=inst, index=index)
    exog = pd.DataFrame(exog_arr, columns=exog_names, index=index) if exog_arr.shape[1] else None
    cl = codes(sample, [cluster]) if cluster is not None else None
    cov: dict[str, object] = {"debiased": debiased, "extra_df": extra_df}
    if cl is not None:
        cov.update(cov_type="clustered", clusters=pd.Series(cl, index=index))
    else:
        cov.update(cov_type="robust")
    res = IV2SLS(dep, exog, endog, instr).fit(**cov)

    pi, vpi, f = first_stage_f(
        d,
        z,
        exog_arr if exog_arr.shape[1] else None,
        clusters=cl,
        debiased=debiased,
        extra_df=extra_df,
    )
    first_stage = pd.DataFrame(
        {"estimate": pi, "std_error": np.sqrt(np.diag(vpi))},
        index=pd.Index(inst, name="instrument"),
    )
    rf_exog = pd.concat([exog, instr], axis=1) if exog is not None else instr
    rf = IV2SLS(dep, rf_exog, None, None).fit(**cov)
    reduced_form = pd.DataFrame(
        {"estimate": rf.params[inst].to_numpy(), "std_error": rf.std_errors[inst].to_numpy()},
        index=pd.Index(inst, name="instrument"),
    )
    fs = res.first_stage
    diag = fs.diagnostics
    f_lm = float(diag.loc[treatment, "f.stat"])
    if cov["cov_type"] not in ("unadjusted", "homoskedastic"):
        f_lm /= len(inst)  # linearmodels reports the chi2 Wald statistic, not divided by q
    try:
        kp_f = float(fs.kleibergen_paap_f)
    except Exception:  # not defined for every configuration
        kp_f = math.nan
    coef = float(res.params[treatment])
    se = float(res.std_errors[treatment])
    diagnostics = {
        "first_stage_f": f,
        "first_stage_f_linearmodels": f_lm,
        "kleibergen_paap_f": kp_f,
        "weak_instrument": bool(f < 10),
        "first_stage": {
            c: {"estimate": float(pi[j]), "std_error": float(math.sqrt(vpi[j, j]))}
            for j, c in enumerate(inst)
        },
        "reduced_form": {
            c: {
                "estimate": float(reduced_form.loc[c, "estimate"]),
                "std_error": float(reduced_form.loc[c, "std_error"]),
            }
            for c in inst
        },
        "partial_rsquared": float(diag.loc[treatment, "partial.rsquared"]),
        "instruments": inst,
        "controls": ctrl,
        "absorb": cells,
        "absorb_method": absorb_method if cells else None,
        "n_absorbed_cells": n_cells,
        "n_singleton_cells_dropped": n_singletons,
        "n_missing_dropped": n_missing,
        "debiased": debiased,
    }
    estimand = ESTIMAND.format(
        cells=f" within cells of {' x '.join(cells)}" if cells else "",
        given=(
            " given " + " and ".join(["the controls"] * bool(ctrl) + ["the cells"] * bool(cells))
        )
        if (ctrl or cells)
        else "",
    )
    return IVResult(
        estimate=coef,
        std_error=se,
        n=int(res.nobs),
        design="instrumental_variable",
        estimand=estimand,
        method="2sls",
        outcome=outcome,
        treatment=treatment,
        cov_type=str(cov["cov_type"]),
        n_clusters=int(len(np.unique(cl))) if cl is not None else None,
        diagnostics=diagnostics,
        first_stage=first_stage,
        first_stage_f=f,
        reduced_form=reduced_form,
        first_stage_diagnostics=diag,
        model_results=res,
    )


#: how :func:`multi_instrument_iv` treats the other alternatives, and what it estimates
MULTI_METHODS = {
    "single": "effect of starting the treatment against the mix of alternatives its "
              "instrument moves clients out of (no alternative's propensity held fixed): a "
              "weighted average of complier effects against no treatment and against each "
              "other alternative",
    "controls": "effect of starting the treatment against none, with the other alternatives' "
                "propensities held fixed (controls): a weighted average of complier effects, "
                "against no treatment where holding the other propensities fixed stops the "
                "instrument moving clients between alternatives",
    "joint": "effect of starting the treatment against none from all alternatives "
             "instrumented jointly by all propensities (Kirkeboen, Leuven and Mogstad 2016)",
}


def multi_instrument_iv(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    instrument: str,
    others: Sequence[tuple[str, str]] = (),
    method: str = "controls",
    absorb: str | Sequence[str] | None = None,
    cluster: str | None = None,
    level: float = 0.95,
    anderson_rubin: bool = True,
) -> IVResult:
    r"""2SLS of one of several mutually exclusive treatments (alternatives)
    with one propensity instrument per alternative, fitted once: the robust
    and the clustered covariance come from the same fit and the larger
    standard error is reported, with the Anderson-Rubin set beside the Wald
    interval.

    With :math:`D_j` the treatment, :math:`Z_j` its instrument and
    :math:`(D_k, Z_k)` the other alternatives (``others``: pairs of
    treatment and instrument columns), cells :math:`c` absorbed:

    ``single``
        :math:`Y` on :math:`D_j` instrumented by :math:`Z_j`: when
        :math:`Z_j` also moves :math:`D_k`, the estimate mixes the effects of
        :math:`j` against none and against each :math:`k`.
    ``controls``
        the same with :math:`Z_{-j}` as controls: variation in :math:`Z_j`
        at fixed propensities for the other alternatives.
    ``joint``
        :math:`Y` on all :math:`D` instrumented by all :math:`Z` (just
        identified; Kirkeboen, Leuven and Mogstad 2016): the coefficient of
        :math:`D_j` equals the effect of :math:`j` against none with
        constant effects, whatever the first stage's cross effects, and its
        probability limit does not depend on noise in the propensities that
        is independent of the client.

    For ``joint`` the diagnostics add ``first_stage_f_conditional``, the
    Sanderson-Windmeijer F of the treatment given the other alternatives
    (:func:`conditional_first_stage_f`; None for the other methods):
    ``first_stage_f`` is the own propensity's F with the others held fixed,
    which can pass 10 while the joint model identifies the coefficient
    weakly. Then the coefficients' errors enter the residuals
    :math:`y - X\hat\beta` and the Wald standard error overstates the spread
    of the estimate. ``weak_instrument`` is set when either F is below 10.

    Alternatives whose treatment or instrument does not vary within cells
    are left out (listed in ``diagnostics["others_dropped"]``). The
    Anderson-Rubin set uses the covariance of the reported standard error:
    exact for the one-endogenous methods (``single``, ``controls``;
    :func:`reintegration.effects.numerics.anderson_rubin_set`), the projection of the
    joint set for ``joint``
    (:func:`reintegration.effects.numerics.anderson_rubin_projection`).
    """
    if method not in MULTI_METHODS:
        raise EffectInputError(f"method must be one of {sorted(MULTI_METHODS)}, not {method!r}")
    data = require_frame(data)
    prepared = _multi_arrays(data, outcome, treatment, instrument, others, method,
                             as_list(absorb), cluster)
    y, d, z, zo, do, cl = (prepared[k] for k in ("y", "d", "z", "zo", "do", "cl"))
    kept, dropped, cells = prepared["kept"], prepared["dropped"], prepared["cells"]
    if method == "joint":
        x, zz, w = np.column_stack([d, do]), np.column_stack([z, zo]), None
    else:
        x, zz, w = d[:, None], z[:, None], (zo if method == "controls" else None)
    # what does not read the outcome is computed once for the outcomes on the same rows
    once = prepared["shared"]
    fit = tsls(y, x, zz, w=w, clusters=cl, first=once(("tsls", method),
                                                      lambda: tsls_first_stage(x, zz, w)))
    se_r = math.sqrt(fit.cov_robust[0, 0])
    se_c = math.sqrt(fit.cov_clustered[0, 0]) if fit.cov_clustered is not None else math.nan
    use_c = cl is not None and se_c >= se_r
    se = se_c if use_c else se_r
    # the first stage of the own instrument: with the other propensities held fixed
    # (controls and joint; for joint the Sanderson-Windmeijer F is first_stage_f_conditional)
    fs_w = zo if method != "single" and zo.shape[1] else None
    pi, vpi, f = once(("first_stage", method, use_c), lambda: first_stage_f(
        d, z[:, None], fs_w, clusters=cl if use_c else None, debiased=False))
    f_cond = (once(("conditional_f", use_c), lambda: conditional_first_stage_f(
        x, zz, clusters=cl if use_c else None)) if method == "joint" else None)
    diagnostics: dict[str, object] = {
        "method": method,
        "first_stage_f": f,
        "first_stage_f_conditional": f_cond,
        # for joint, weak when either F is below 10 (a NaN conditional F counts as weak)
        "weak_instrument": bool(f < 10 or (f_cond is not None and not f_cond >= 10)),
        "first_stage": {instrument: {"estimate": float(pi[0]),
                                     "std_error": float(math.sqrt(vpi[0, 0]))}},
        "reduced_form": {instrument: {"estimate": float(fit.reduced_form[0])}},
        "std_error_clustered": se_c,
        "std_error_robust": se_r,
        "std_error_reported": "clustered" if use_c else "robust",
        "others": [k for _, k in kept],
        "others_dropped": [k for _, k in dropped],
        "absorb": cells,
        "n_absorbed_cells": prepared["n_cells"],
        "n_singleton_cells_dropped": prepared["n_singletons"],
        "n_missing_dropped": prepared["n_missing"],
    }
    if not anderson_rubin:
        diagnostics.update({"ci_anderson_rubin": None, "ar_bounded": None,
                            "ar_kind": "not_computed", "ar_level": level})
    else:
        _add_anderson_rubin(diagnostics, y, x, zz, w, cl if use_c else None, method, level,
                            once(("anderson_rubin", method, use_c), dict))
    first = pd.DataFrame({"estimate": [float(pi[0])], "std_error": [math.sqrt(vpi[0, 0])]},
                         index=pd.Index([instrument], name="instrument"))
    reduced = pd.DataFrame({"estimate": [float(fit.reduced_form[0])]},
                           index=pd.Index([instrument], name="instrument"))
    return IVResult(
        estimate=float(fit.params[0]), std_error=se, n=fit.nobs,
        design="instrumental_variable", estimand=MULTI_METHODS[method], method=f"2sls_{method}",
        outcome=outcome, treatment=treatment, cov_type="clustered" if use_c else "robust",
        n_clusters=int(len(np.unique(cl))) if cl is not None else None,
        diagnostics=diagnostics, first_stage=first, first_stage_f=f, reduced_form=reduced)


def conditional_first_stage_f(x: np.ndarray, z: np.ndarray, *,
                              clusters: np.ndarray | None = None) -> float:
    r"""The conditional first-stage F of the first of several endogenous
    columns ``x`` (n x m) given the others, with instruments ``z`` (n x q, q >=
    m; all already net of controls and cells): Sanderson and Windmeijer
    (2016). The first column is regressed on the others by 2SLS with ``z``,
    :math:`\hat u = x_1 - X_{-1}\hat\delta`, and the F is the robust (or,
    with ``clusters``, clustered) Wald statistic of ``z`` in the regression of
    :math:`\hat u` on ``z``, divided by :math:`q - m + 1`. It measures how
    well the instruments predict :math:`x_1` apart from what they predict of
    the other endogenous columns: a model whose instruments each pass a
    first-stage F of 10 on their own can still identify one coefficient
    weakly. With one endogenous column it is the ordinary first-stage F."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    z = np.asarray(z, dtype=float).reshape(len(x), -1)
    q, m = z.shape[1], x.shape[1]
    u = x[:, 0]
    if m > 1:
        xo = x[:, 1:]
        xo_hat = z @ np.linalg.lstsq(z, xo, rcond=None)[0]
        u = u - xo @ np.linalg.solve(xo_hat.T @ xo, xo_hat.T @ u)
    g = np.linalg.lstsq(z, u, rcond=None)[0]
    v = sandwich_cov(z, u - z @ g, clusters)
    try:
        return float(g @ np.linalg.solve(v, g)) / (q - m + 1)
    except np.linalg.LinAlgError:
        return math.nan


#: the arrays of :func:`_multi_arrays` other than the outcome, per frame and columns:
#: every outcome without missing values and every method of one frame share them
_SHARED = FrameMemo()


def _multi_arrays(data: pd.DataFrame, outcome: str, treatment: str, instrument: str,
                  others: Sequence[tuple[str, str]], method: str, cells: list[str],
                  cluster: str | None) -> dict[str, Any]:
    """The complete rows of :func:`multi_instrument_iv` without singleton
    cells, every column demeaned within cells, and the other alternatives it
    keeps (their instrument varies within cells; for ``joint`` their
    treatment varies too). When the outcome has no missing value the rows do
    not depend on it, and everything but the outcome is computed once per
    frame (:func:`_frame_arrays`)."""
    other_cols = [c for pair in others for c in pair]
    used = [outcome, treatment, instrument, *other_cols, *cells, *as_list(cluster)]
    require_columns(data, used, role="model")
    args = (treatment, instrument, tuple(others), tuple(cells), cluster)
    if data[outcome].notna().all():
        base = _SHARED.get(data, ("multi_arrays", *args),
                           lambda: _frame_arrays(data, None, *args))
    else:
        base = _frame_arrays(data, outcome, *args)
    derived = base.setdefault("derived", {})  # kept with base: per frame, or per call

    def shared(key: tuple, compute: Any) -> Any:
        if key not in derived:
            derived[key] = compute()
        return derived[key]

    values = _numeric(data, outcome, "outcome")[base["rows"]]
    y = _demean(values, base["grp"]) if base["grp"] is not None else values - values.mean()
    ok = [vz and (vd or method != "joint") for vd, vz in base["vary"]]
    kept = [pair for pair, k in zip(others, ok, strict=True) if k]
    dropped = [pair for pair, k in zip(others, ok, strict=True) if not k]
    arr = base["arr"]
    cols_d = [2 + 2 * i for i, k in enumerate(ok) if k]
    return {"y": y, "d": arr[:, 0], "z": arr[:, 1], "zo": arr[:, [c + 1 for c in cols_d]],
            "do": arr[:, cols_d], "cl": base["cl"], "kept": kept, "dropped": dropped,
            "cells": list(cells), "n_cells": base["n_cells"], "shared": shared,
            "n_singletons": base["n_singletons"], "n_missing": base["n_missing"]}


def _frame_arrays(data: pd.DataFrame, outcome: str | None, treatment: str, instrument: str,
                  others: Sequence[tuple[str, str]], cells: Sequence[str],
                  cluster: str | None) -> dict[str, Any]:
    """The rows of :func:`_multi_arrays` (complete in the used columns, the
    outcome among them unless None; singleton cells dropped), their cell
    codes, the treatment, instrument and other alternatives' columns demeaned
    within cells in one pass, whether each alternative's treatment and
    instrument vary, and the cluster codes."""
    cells = list(cells)
    other_cols = [c for pair in others for c in pair]
    used = [*as_list(outcome), treatment, instrument, *other_cols, *cells, *as_list(cluster)]
    frame = data[list(dict.fromkeys(used))]
    complete = frame.notna().all(axis=1).to_numpy()
    sample, n_missing = frame.loc[complete], int((~complete).sum())
    rows = np.flatnonzero(complete)
    n_singletons = 0
    if cells:
        grp = codes(sample, cells)
        single = np.bincount(grp)[grp] == 1
        n_singletons = int(single.sum())
        sample, rows = sample.loc[~single], rows[~single]
    if len(sample) < 3:
        raise EffectInputError("fewer than 3 complete rows in the used columns")
    # the codes of the cells left: the ranks of theirs (codes follow the cells' sorted order)
    grp = np.unique(grp[~single], return_inverse=True)[1] if cells else None
    roles = [("treatment", treatment), ("instrument", instrument)]
    roles += [r for dk, zk in others for r in (("treatment", dk), ("instrument", zk))]
    arr = _demean(np.column_stack([_numeric(sample, c, role) for role, c in roles]), grp)
    if np.abs(arr[:, 0]).max() <= 1e-12:
        raise EffectInputError(f"treatment column {treatment!r} has no variation within cells")
    if np.abs(arr[:, 1]).max() <= 1e-12:
        raise EffectInputError(f"instrument column {instrument!r} has no variation within cells")
    vary = [(bool(np.ptp(sample[dk].to_numpy(dtype=float)) > 0),
             bool(np.abs(arr[:, 3 + 2 * i]).max() > 1e-12)) for i, (dk, _) in enumerate(others)]
    return {"rows": rows, "grp": grp, "arr": arr, "vary": vary,
            "cl": codes(sample, [cluster]) if cluster is not None else None,
            "n_cells": int(grp.max() + 1) if grp is not None else 0,
            "n_singletons": n_singletons, "n_missing": n_missing}


def _add_anderson_rubin(diagnostics: dict[str, object], y: np.ndarray, x: np.ndarray,
                        z: np.ndarray, w: np.ndarray | None, clusters: np.ndarray | None,
                        method: str, level: float, cache: dict[str, Any]) -> None:
    """The Anderson-Rubin set of the first endogenous coefficient: exact with
    one endogenous regressor, the projection of the joint set otherwise
    (``cache``: what it computes without y, for the outcomes on the same rows)."""
    if method == "joint":
        ar = anderson_rubin_projection(y, x, z, clusters=clusters, level=level, cache=cache)
        how = "projection of the joint Anderson-Rubin set (conservative)"
    else:
        ar = anderson_rubin_set(y, x[:, 0], z[:, :1], w=w, clusters=clusters, level=level)
        how = "exact (one endogenous regressor, one instrument)"
    diagnostics.update({
        "ci_anderson_rubin": [[float(lo), float(hi)] for lo, hi in ar.intervals],
        "ar_bounded": ar.bounded, "ar_kind": ar.kind, "ar_level": level, "ar_method": how})


def leave_one_out_propensity(
    data: pd.DataFrame,
    *,
    group: str | Sequence[str],
    treatment: str,
    within: str | Sequence[str] | None = None,
) -> pd.Series:
    r"""Leave-one-out mean of the treatment among the *other* members of a
    unit's group: the case-manager (or judge) propensity instrument.

    For client :math:`i` of case manager :math:`j(i)` with :math:`n_j`
    clients,

    .. math::

        Z_i = \frac{1}{n_{j(i)} - 1} \sum_{k \in j(i),\, k \ne i} \tilde D_k ,

    with :math:`\tilde D_k = D_k`, or, with ``within`` (e.g. team and
    period), the treatment net of the mean of its cell,
    :math:`\tilde D_k = D_k - \bar D_{c(k)}`, so that :math:`Z_i` measures
    how much more often than the colleagues in the same team and period the
    case manager assigns the treatment (the residualised leave-out
    propensity of Dahl, Kostøl and Mogstad 2014). Leaving client :math:`i`
    out keeps the client's own treatment, and so their unobservables, out of
    their instrument, which would otherwise bias 2SLS towards OLS in small
    caseloads.

    Not for use with the same cells absorbed as fixed effects when a case
    manager has several clients in a cell: within a cell, the leave-one-out
    mean of a treated client's case manager is lower than that of an
    untreated client of the same case manager by :math:`1/(n_j - 1)`, so the
    instrument varies with the client's own treatment inside the cell and the
    first stage is biased (exclusion bias, strongest in small caseloads). Use
    :func:`leave_out_cell_propensity` there: it leaves the client's whole
    cell out.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per client (or client spell). Compute the propensity on all
        clients of the case managers, not only on the analysis sample.
    group : str or sequence of str
        Column(s) defining the group, e.g. ``"case_manager"`` or
        ``["case_manager", "year"]``.
    treatment : str
        Numeric (usually 0/1) treatment column.
    within : str or sequence of str, optional
        Cell columns (e.g. ``["team", "period"]``) whose means are subtracted
        from the treatment first.

    Returns
    -------
    pandas.Series
        Aligned with ``data``; missing for rows with a missing input and for
        clients who are alone in their group (no one to leave out to).

    Raises
    ------
    ValueError
        A missing or non-numeric column.
    """
    data = require_frame(data)
    groups = as_list(group)
    cells = as_list(within)
    if not groups:
        raise EffectInputError("group must name at least one column")
    valid, sub = _propensity_rows(data, groups, treatment, cells, cell_role="within")
    dd = sub[treatment].astype(float)

    if cells:
        dd = dd - dd.groupby([sub[c] for c in cells], observed=True).transform("mean")
    keys = [sub[c] for c in groups]
    total = dd.groupby(keys, observed=True).transform("sum")
    count = dd.groupby(keys, observed=True).transform("count")
    loo = (total - dd) / (count - 1).where(count > 1)
    out = pd.Series(np.nan, index=data.index, name=f"loo_{treatment}")
    out.loc[valid] = loo.to_numpy()
    return out


def leave_out_cell_propensity(
    data: pd.DataFrame,
    *,
    group: str | Sequence[str],
    treatment: str,
    cells: str | Sequence[str],
) -> pd.Series:
    r"""The case-manager propensity measured outside the client's own cell:
    the instrument to use when the cells are absorbed in the second stage.

    With :math:`\tilde D_k = D_k - \bar D_{c(k)}` the treatment net of the
    mean of client :math:`k`'s cell (e.g. team and quarter), for client
    :math:`i` of case manager :math:`j` in cell :math:`c`,

    .. math::

        Z_i = \frac{1}{|\{k: j(k) = j,\ c(k) \ne c\}|}
              \sum_{k:\ j(k) = j,\ c(k) \ne c} \tilde D_k ,

    how much more often than their colleagues the case manager starts the
    treatment, measured on their clients in *other* cells. Every client of a
    case manager in a cell gets the same value, and nothing of the cell's own
    treatments enters it, so with cell fixed effects in
    :func:`instrumental_variable` the first stage carries no mechanical
    relation to the client's own treatment (compare
    :func:`leave_one_out_propensity`). The price: case managers with clients
    in one cell only get no instrument.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per client; compute on all clients of the case managers.
    group : str or sequence of str
        Column(s) identifying the case manager (or judge).
    treatment : str
        Numeric (usually 0/1) treatment column.
    cells : str or sequence of str
        Column(s) of the cells within which allocation is as good as random
        and which the second stage absorbs.

    Returns
    -------
    pandas.Series
        Aligned with ``data``; missing for rows with a missing input and for
        case managers without clients in another cell.

    Raises
    ------
    ValueError
        A missing or non-numeric column.
    """
    data = require_frame(data)
    groups, cols = as_list(group), as_list(cells)
    if not groups or not cols:
        raise EffectInputError("group and cells must each name at least one column")
    valid, sub = _propensity_rows(data, groups, treatment, cols, cell_role="cells")
    cell = sub.groupby(cols, sort=True, observed=True).ngroup()
    manager = sub.groupby(groups, sort=True, observed=True).ngroup()
    d = sub[treatment].astype(float)
    dres = d - d.groupby(cell).transform("mean")
    s_m = dres.groupby(manager).transform("sum")
    n_m = dres.groupby(manager).transform("count")
    s_mc = dres.groupby([manager, cell]).transform("sum")
    n_mc = dres.groupby([manager, cell]).transform("count")
    rest = n_m - n_mc
    z = (s_m - s_mc) / rest.where(rest > 0)
    out = pd.Series(np.nan, index=data.index, name=f"propensity_{treatment}")
    out.loc[valid] = z.to_numpy()
    return out


def _propensity_rows(
    data: pd.DataFrame, groups: list[str], treatment: str, cells: list[str], *, cell_role: str
) -> tuple[pd.Series, pd.DataFrame]:
    """Check the columns of a propensity instrument; return the mask of
    complete rows and those rows."""
    require_columns(data, groups, role="group")
    require_columns(data, [treatment], role="treatment")
    require_columns(data, cells, role=cell_role)
    s = data[treatment]
    if not (pd.api.types.is_numeric_dtype(s) or s.dtype == bool):
        raise EffectInputError(f"treatment column {treatment!r} must be numeric (dtype {s.dtype})")
    valid = data[[*groups, treatment, *cells]].notna().all(axis=1)
    return valid, data.loc[valid]

r"""Event study for staggered adoption: Sun and Abraham's interaction-weighted
estimator on a two-way fixed-effects regression (entity and period effects
absorbed exactly, :mod:`reintegration.effects._twfe`; the numbers of
linearmodels' ``PanelOLS``, which a reference test compares).

Units (for example teams, or the clients of teams) adopt a treatment at
different calendar periods :math:`E_i` (the *cohort*); some never adopt in
the data (or adopt last). With relative time :math:`l = t - E_i`, the
regression is

.. math::

    Y_{it} = \alpha_i + \lambda_t
             + \sum_{e \in \mathcal{E}} \sum_{l \ne r} \delta_{e,l}\,
               \mathbf 1\{E_i = e\}\,\mathbf 1\{t - e = l\}
             + X_{it}'\gamma + \varepsilon_{it},

with unit effects :math:`\alpha_i`, calendar-period effects
:math:`\lambda_t`, one coefficient per adoption cohort and event time, the
reference event time :math:`r` (default -1) left out, and no interactions
for the control cohort (never treated, or else the last-treated cohort, with
the periods from its adoption on dropped). Each :math:`\delta_{e,l}`
estimates the cohort-specific effect :math:`CATT_{e,l} = E[Y_{i,e+l} -
Y_{i,e+l}(\infty) \mid E_i = e]` relative to event time :math:`r`, under
parallel trends and no anticipation, however effects differ across cohorts.

The event-time effects aggregate them with cohort shares,

.. math::

    \hat\beta_l = \sum_e \hat w_{e,l}\,\hat\delta_{e,l}, \qquad
    \hat w_{e,l} = \frac{N_{e,l}}{\sum_{e'} N_{e',l}},

where :math:`N_{e,l}` counts the observations of cohort :math:`e` at event
time :math:`l` in the estimation sample (for a balanced panel of units, the
share of units). By default the treated cohorts' rows outside the window
``-leads`` to ``lags`` are left out, so that every event time in the window
has its own coefficient, and the headline is the simple average of the
event-time effects over event times 0 to ``lags``:
:math:`\hat\theta = \frac{1}{L+1}\sum_{l=0}^{L}\hat\beta_l`. Effects that
grow with event time beyond ``lags`` do not enter it. Standard errors of
:math:`\hat\beta_l` and :math:`\hat\theta` follow from the covariance of the
:math:`\hat\delta` by the delta method (linear maps), treating the shares as
fixed.

A plain two-way fixed-effects event study (one coefficient per event time,
pooled over cohorts) would mix effects of other event times and cohorts into
each coefficient, with possibly negative weights, when effects differ across
cohorts; the interaction-weighted estimator does not (Sun and Abraham 2021).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import _cells, _sa
from ._data import (
    EffectInputError,
    as_list,
    codes,
    complete_cases,
    numeric_design,
    require_columns,
    require_frame,
)
from ._twfe import PanelFit, fit_two_way
from .numerics import wild_cluster_pvalue
from .randomization import Cells, Spec, randomization_test
from .results import EventStudyResult

__all__ = ["event_study"]

BINS = ("endpoints", "trim")
POST_WEIGHTS = ("observations", "equal")
BASELINES = ("reference", "pre_mean")
CONTROLS = ("auto", "never", "last")


def _periods(series: pd.Series, *, name: str, allow_missing: bool = False) -> np.ndarray:
    """Integer periods as floats (NaN for missing): integer-valued numbers,
    or pandas Periods (their ordinals, consecutive for a regular frequency)."""
    if isinstance(series.dtype, pd.PeriodDtype):
        values = np.array([p.ordinal if pd.notna(p) else np.nan for p in series], dtype=float)
    elif pd.api.types.is_numeric_dtype(series) and series.dtype != bool:
        values = series.to_numpy(dtype=float)
    else:
        raise EffectInputError(
            f"column {name!r} must hold integer periods (for example months counted from a "
            f"start) or pandas Periods; it has dtype {series.dtype}"
        )
    finite = values[np.isfinite(values)]
    if not np.allclose(finite, np.round(finite)):
        raise EffectInputError(f"column {name!r} must hold whole periods, not fractions")
    if not allow_missing and np.isnan(values).any():
        raise EffectInputError(f"column {name!r} has missing values")
    return np.round(values)


#: eigenvalues of a covariance below this share of its largest are rounding noise
WALD_RTOL = 1e-10


def _wald(b: np.ndarray, v: np.ndarray) -> tuple[float, int]:
    """Wald statistic :math:`b' V^+ b` and the rank of ``V``, counting only
    eigenvalues above :data:`WALD_RTOL` times the largest. A cluster-robust
    covariance from few clusters is often singular; with the default
    tolerances of ``pinv`` and ``matrix_rank`` its rounding noise (around
    1e-20 next to 1e-4) decides the rank, and inverting it gives statistics
    of 1e14, even negative ones."""
    vals, vecs = np.linalg.eigh((v + v.T) / 2)
    top = float(vals.max()) if len(vals) else 0.0
    if not top > 0:
        return math.nan, 0
    big = vals > WALD_RTOL * top
    proj = vecs[:, big].T @ b
    return float(proj @ (proj / vals[big])), int(big.sum())


def _wild_pretrend(
    fit: PanelFit,
    *,
    clusters: np.ndarray,
    restriction: np.ndarray,
    reps: int,
    seed: int,
) -> float:
    """Wild cluster bootstrap p-value of the Wald test R beta = 0, with the
    null imposed (restricted residuals) and Webb's six-point weights
    (Cameron, Gelbach and Miller 2008; Webb 2023), on the regression after
    the two-way fixed effects are partialled out."""
    yt, xt = fit.demeaned
    return wild_cluster_pvalue(
        yt, xt, restriction, clusters, weights=fit.weights, reps=reps, seed=seed
    )


def _permutation_cells(
    sample: pd.DataFrame,
    t: np.ndarray,
    e: np.ndarray,
    *,
    outcome: str,
    entity: str,
    cluster: str,
    path: dict[int, float],
    lags: int,
    extra: Sequence[str] = (),
    ent: np.ndarray | None = None,
    clus: np.ndarray | None = None,
) -> Cells:
    """Entity x period cells of every usable row for the randomisation test:
    the outcome, the exposure indicator of the actual assignment (at or after
    adoption) and the outcome minus the estimated path at the row's event
    time where exposed; beyond ``lags``, where the path is not estimated
    (rows left out by ``bin="trim"``, or binned), the effect at ``lags`` is
    removed, an approximation when effects keep changing; then the cell means
    of the ``extra`` columns. ``ent`` and ``clus``: the group codes of
    ``entity`` and ``cluster`` over the rows, when the caller has them."""
    ent = codes(sample, [entity]) if ent is None else ent
    if clus is None:
        clus = ent if cluster == entity else codes(sample, [cluster])
    ent_first = _cells.first_rows(ent)
    if clus is not ent:
        if (clus != clus[ent_first][ent]).any():
            raise EffectInputError(
                f"permutations re-assign adoption across {entity!r}: cluster column "
                f"{cluster!r} must be constant within each entity"
            )
    late = np.isfinite(e) & (e > t.max())
    rel = t - np.where(late, np.nan, e)
    exposed = np.nan_to_num(rel, nan=-1.0) >= 0
    binned = np.clip(np.nan_to_num(rel, nan=-1.0), None, lags).astype(int)
    # the path at each row's event time, looked up once per distinct event time
    where, first_at = _cells.dense_codes(binned - binned.min())
    times = binned[first_at]
    removed = np.array([path.get(int(k), 0.0) for k in times], dtype=float)[where] * exposed
    y = sample[outcome].to_numpy(dtype=float)
    columns = [y, exposed.astype(float), y - removed]
    columns += [sample[col].to_numpy(dtype=float) for col in extra]
    start = _cells.firsts(e, ent, ent_first)
    found = _cells.cell_codes(ent, t)
    means = None
    if found is not None:
        cell, first = found
        means = _cells.cell_means(np.column_stack(columns), cell, len(first))
    if found is None or means is None:
        return _permutation_cells_pandas(ent, t, clus, columns, start)
    return Cells(
        entity=ent[first],
        period=t[first].astype(float),
        weight=np.bincount(cell, minlength=len(first)).astype(float),
        y=means,
        cluster=clus[first],
        start=start,
    )


def _permutation_cells_pandas(
    ent: np.ndarray, t: np.ndarray, clus: np.ndarray, columns: list[np.ndarray],
    start: np.ndarray,
) -> Cells:
    """:func:`_permutation_cells` by pandas' groupby (the same numbers)."""
    names = [f"v{i}" for i in range(len(columns))]
    frame = pd.DataFrame({"g": ent, "t": t, "c": clus, "w": 1.0})
    for name, col in zip(names, columns, strict=True):
        frame[name] = col
    cells = frame.groupby(["g", "t"], sort=True).agg(
        c=("c", "first"), w=("w", "sum"), **{name: (name, "mean") for name in names}
    )
    return Cells(
        entity=cells.index.get_level_values("g").to_numpy(),
        period=cells.index.get_level_values("t").to_numpy(dtype=float),
        weight=cells["w"].to_numpy(),
        y=cells[names].to_numpy(),
        cluster=cells["c"].to_numpy(),
        start=start,
    )


def event_study(
    data: pd.DataFrame,
    *,
    outcome: str,
    entity: str,
    time: str,
    treatment_start: str,
    leads: int = 4,
    lags: int = 4,
    controls: Sequence[str] = (),
    cluster: str | bool | None = None,
    control_cohort: str = "auto",
    bin: str = "trim",
    reference: int = -1,
    debiased: bool = True,
    post_weights: str = "equal",
    baseline: str = "reference",
    collapse: bool = False,
    wild_bootstrap: int | None = None,
    permutations: int = 0,
    seed: int = 0,
    takeup: str | None = None,
    statistic: str = "studentized",
) -> EventStudyResult:
    r"""Event study of a staggered adoption, robust to effects that differ
    across adoption cohorts (Sun and Abraham's interaction-weighted
    estimator).

    The headline estimand, with the defaults, is the simple average over
    event times :math:`l = 0,\dots,L` (``lags``) of the cohort-averaged
    effects of adoption on adopting units,

    .. math::

        \theta = \frac{1}{L+1}\sum_{l=0}^{L} \beta_l, \qquad
        \beta_l = \sum_{e} w_{e,l}\,
                  E\big[Y_{i,e+l} - Y_{i,e+l}(\infty) \mid E_i = e\big],

    with cohort shares :math:`w_{e,l} = N_{e,l}/\sum_{e'} N_{e',l}` among
    the observations at event time :math:`l` (event times 0 to ``lags``
    without any adopting observation are left out of the average), both
    measured relative to the reference event time (or, with
    ``baseline="pre_mean"``, to each cohort's pre-period mean). Every event
    time in the window counts once, however many observations it holds, and
    effects beyond ``lags`` do not enter: the treated cohorts' rows outside
    the window are dropped (``bin="trim"``), so that each event time in the
    window has its own coefficient, as fixest's ``sunab`` does unless asked
    to bin (fixest reference manual, ``sunab``). Assumptions: (1) parallel
    trends: without adoption, the average outcome of every adoption cohort
    would have moved in parallel with that of the control cohort; (2) no
    anticipation: outcomes before
    adoption do not respond to it (use an earlier ``reference`` when
    adoption is announced ahead); (3) the adoption date of a unit is fixed
    and adoption is not reversed.

    Parameters
    ----------
    data : pandas.DataFrame
        A panel in long form: one row per unit and period, or several rows
        per unit and period (a repeated cross-section, e.g. clients of a
        team by month), in which case ``entity`` effects are absorbed as a
        group effect instead of a panel unit. Rows with a missing value in
        ``outcome``, ``entity``, ``time``, ``controls`` or ``cluster`` are
        dropped.
    outcome : str
        Numeric outcome column.
    entity : str
        The adopting unit; it gets a fixed effect, and by default the
        standard errors are clustered on it.
    time : str
        Calendar period: whole numbers (e.g. months since a start) or pandas
        Periods.
    treatment_start : str
        Period of adoption of the row's unit, on the scale of ``time``;
        missing for units that never adopt. Constant within an entity.
        Units adopting after the last period count as never treated; units
        adopting so early that the reference event time is not observed
        (always treated) are dropped.
    leads, lags : int
        Event times shown: :math:`-\text{leads},\dots,-1` before and
        :math:`0,\dots,\text{lags}` after adoption.
    controls : sequence of str
        Time-varying covariates added linearly (categorical columns as
        indicators).
    cluster : str, False or None
        ``None`` clusters on ``entity``; a column name clusters on it;
        ``False`` gives heteroskedasticity-robust standard errors.
    control_cohort : {"auto", "never", "last"}
        The comparison cohort: the never-treated units (``"auto"`` when there
        are any), or the last-treated cohort, in which case the periods from
        its adoption on are dropped for everyone.
    bin : {"trim", "endpoints"}
        Event times beyond the window: ``"trim"`` (default) drops the
        treated cohorts' rows outside it, which in a balanced panel is the
        same as giving every event time outside it its own coefficient;
        ``"endpoints"`` bins them into the outer event times
        (:math:`l \le -\text{leads}` into :math:`-\text{leads}`,
        :math:`l \ge \text{lags}` into ``lags``), so those two coefficients
        average over the binned periods (and assume the binned periods'
        effects equal within a cohort): with effects that keep growing, the
        binned ``lags`` coefficient is larger than the effect at ``lags``.
        A binned endpoint enters the cohort shares, the headline and the
        ``pre_mean`` baseline with the observations at its own event time
        only, never with the count of the periods binned into it. Binning
        the leads gives the pre-trend test the earlier periods too.
    reference : int
        The omitted event time, between ``-leads`` and -1.
    debiased : bool
        Small-sample scaling of the covariance (linearmodels' ``debiased``).
    collapse : bool
        Fit on the means of ``entity`` x ``time`` cells, weighted by their
        number of rows, instead of on the rows: the same coefficients and the
        same clustered covariance (up to linearmodels' small-sample factor,
        which counts cells instead of rows), far faster when many rows share
        a cell (e.g. clients of a team by month). Needs ``controls=()`` and
        clusters that are constant within cells.
    wild_bootstrap : int, optional
        Replications of the wild cluster bootstrap of the pre-trend test
        (restricted, Webb weights). By default 999 when standard errors are
        clustered on fewer than 50 clusters, and none otherwise; 0 turns it
        off.
    permutations : int
        Randomisation inference (0: none): the adoption dates are re-assigned
        across the entities (never-treated ones included) in every distinct
        way when there are at most this many other assignments, else this
        many random permutations, and the estimator is refitted for each. The
        result's :meth:`~EventStudyResult.conf_int`, ``pvalue`` and
        ``pretrend_pvalue`` then come from this test (studentised with the
        cluster-robust standard error; interval by test inversion under a
        constant effect on exposed observations); see
        :mod:`reintegration.effects.randomization`. ``std_error`` is then the
        one the interval implies (its half-width over 1.96 at 95%), the
        cluster-robust one is ``diagnostics["std_error_clustered"]`` and the
        spread of the estimate over the assignments
        ``diagnostics["std_error_randomization_sd"]``. Valid when the dates
        could as well have fallen to other entities. Needs ``controls=()``
        and clusters constant within entities.
    takeup : str, optional
        A second outcome (e.g. "started the treatment") fitted with the same
        sample, aggregation and assignments as ``outcome``; needs
        ``permutations``. Its estimates are kept in the randomisation test
        for the per-starter Wald ratio (:func:`reintegration.effects.fuzzy.wald_ratio`).
    statistic : {"studentized", "raw"}
        The randomisation test's statistic of the effect: the estimate over
        its cluster-robust standard error, or the estimate itself (see
        :mod:`reintegration.effects.randomization`).
    seed : int
        Seed of the bootstrap weights and of the random permutations.
    post_weights : {"equal", "observations"}
        Aggregation of the post-period effect: ``"equal"`` (default) gives
        each event time 0 to ``lags`` the same weight (the formula above);
        ``"observations"`` averages over the treated observations at event
        times 0 to ``lags``,
        :math:`\theta = \sum_{e, 0 \le l \le L} N_{e,l}\,CATT_{e,l} /
        \sum_{e, 0 \le l \le L} N_{e,l}`, which leans towards the event
        times that more cohorts reach (the early ones in a short panel).
    baseline : {"reference", "pre_mean"}
        What the aggregated post-period effect is measured against:
        ``"reference"``, the cohort's reference event time (the formula
        above); ``"pre_mean"``, the average over all of the cohort's
        pre-period event times :math:`-\text{leads},\dots,-1` (weighted by
        observations, the reference counting as zero), so that
        :math:`\theta = \sum_{e,l \ge 0} a_{e,l}\,(\delta_{e,l} - \bar\delta_{e,\mathrm{pre}})`.
        With one reference period its sampling noise enters every post-period
        coefficient; the pre-period mean rests on many more observations.
        Requires parallel trends over the whole pre-period, which the
        pre-trend test checks. The event-time path is unaffected.

    Returns
    -------
    EventStudyResult
        ``estimate``/``std_error``: the aggregated post-period effect;
        ``event_time``: :math:`\hat\beta_l` with standard errors;
        ``pretrend``: the joint Wald test that all pre-period
        :math:`\beta_l` are zero (chi2, df, p-value; with clustering also an
        F(df, G - 1) p-value, a wild cluster bootstrap p-value and, with
        ``permutations``, a randomisation p-value; see ``pretrend_pvalue``);
        ``randomization``: the randomisation test, or None;
        ``cohort_effects``: the :math:`\hat\delta_{e,l}` and weights;
        ``model_results``: the fitted regression (a
        :class:`~reintegration.effects._twfe.PanelFit` with linearmodels'
        ``params``, ``cov``, ``std_errors``, ``nobs``, ``df_resid``);
        ``plot()`` draws the path.

    Raises
    ------
    ValueError
        A missing column, non-integer periods, a ``treatment_start`` that
        varies within an entity, no treated or no control units, or effects
        that the fixed effects absorb.

    Notes
    -----
    The cohort-specific coefficients are those of Sun and Abraham (2021),
    estimated in one regression with entity and period effects absorbed in
    closed form (whether a unit has one row per period or several); the
    coefficients, covariance and degrees of freedom are those of linearmodels'
    ``PanelOLS`` with ``entity_effects`` and ``time_effects`` (or
    ``other_effects`` for the entity), to rounding. The interaction-weighted
    path uses observation shares :math:`N_{e,l}/\sum_{e'} N_{e',l}`; the
    standard errors treat these shares as fixed (Sun and Abraham also give a
    variance term for estimated shares, which is small when cohorts are
    large). Pre-trend tests have low power against trends that are small
    but matter (Roth 2022); read the plot, not only the p-value. Callaway
    and Sant'Anna (2021) give an alternative with not-yet-treated controls.

    Examples
    --------
    >>> res = event_study(panel, outcome="employed", entity="team", time="month",
    ...                   treatment_start="rollout_month", leads=6, lags=12)
    >>> res.event_time, res.pretrend["pvalue"]
    >>> fig = res.plot()
    """
    data = require_frame(data)
    ctrl_cols = as_list(controls)
    if bin not in BINS:
        raise EffectInputError(f"bin must be one of {BINS}, not {bin!r}")
    if post_weights not in POST_WEIGHTS:
        raise EffectInputError(f"post_weights must be one of {POST_WEIGHTS}, not {post_weights!r}")
    if baseline not in BASELINES:
        raise EffectInputError(f"baseline must be one of {BASELINES}, not {baseline!r}")
    if control_cohort not in CONTROLS:
        raise EffectInputError(f"control_cohort must be one of {CONTROLS}, not {control_cohort!r}")
    if int(leads) < 1 or int(lags) < 0:
        raise EffectInputError(f"leads must be >= 1 and lags >= 0 (got {leads}, {lags})")
    if not -leads <= reference <= -1:
        raise EffectInputError(
            f"reference must be between -leads ({-leads}) and -1, not {reference}"
        )
    require_columns(data, [outcome], role="outcome")
    require_columns(data, [entity], role="entity")
    require_columns(data, [time], role="time")
    require_columns(data, [treatment_start], role="treatment_start")
    require_columns(data, ctrl_cols, role="control")
    cluster_col = entity if cluster is None else (None if cluster is False else cluster)
    if cluster is True:
        raise EffectInputError("cluster must be a column name, None (entity) or False")
    if cluster_col is not None:
        require_columns(data, [cluster_col], role="cluster")
    if permutations and (ctrl_cols or cluster_col is None):
        raise EffectInputError(
            "permutations need controls=() and clustered standard errors (cluster=None "
            "or a column constant within each entity)"
        )
    if takeup is not None:
        if not permutations:
            raise EffectInputError("takeup= needs permutations (its inference is randomisation)")
        require_columns(data, [takeup], role="takeup")
    used = [outcome, entity, time, *ctrl_cols, *as_list(cluster_col), *as_list(takeup)]
    # only the columns used (the rest of a wide frame is never read)
    sample, n_missing = complete_cases(data[list(dict.fromkeys([*used, treatment_start]))], used)
    if not pd.api.types.is_numeric_dtype(sample[outcome]):
        raise EffectInputError(f"outcome column {outcome!r} must be numeric")
    t = _periods(sample[time], name=time)
    e = _periods(sample[treatment_start], name=treatment_start, allow_missing=True)
    ent_all = codes(sample, [entity])
    first_e = e[_cells.first_rows(ent_all)][ent_all]
    if not ((e == first_e) | (np.isnan(e) & np.isnan(first_e))).all():
        per_entity = pd.DataFrame({"g": sample[entity].to_numpy(), "e": e}).groupby("g")["e"]
        bad = per_entity.nunique(dropna=False)
        raise EffectInputError(
            f"treatment_start column {treatment_start!r} varies within entity {entity!r} "
            f"(e.g. {bad[bad > 1].index[0]!r}); adoption must be one period per entity"
        )
    spec = Spec(
        leads=int(leads),
        lags=int(lags),
        reference=int(reference),
        bin=bin,
        control_cohort=control_cohort,
        post_weights=post_weights,
        baseline=baseline,
    )
    asg = _sa.assign(
        t,
        e,
        leads=spec.leads,
        lags=spec.lags,
        reference=spec.reference,
        bin=bin,
        control_cohort=control_cohort,
        name=treatment_start,
    )
    keep = asg.keep
    full_sample, t_all, e_all = sample, t, e
    t, e, lb, treated, exact = t[keep], asg.cohort, asg.binned, asg.treated, asg.exact
    # the codes of the kept rows: those of all rows, renumbered over the kept
    clus_all = None
    if cluster_col is not None:
        clus_all = ent_all if cluster_col == entity else codes(full_sample, [cluster_col])
    ent = _cells.dense(ent_all[keep])
    clus = None
    if clus_all is not None:
        clus = ent if clus_all is ent_all else _cells.dense(clus_all[keep])
    yv = full_sample[outcome].to_numpy(dtype=float)[keep]
    wts = np.ones(len(yv))
    n_rows = len(yv)
    xc = numeric_design(full_sample.loc[keep], ctrl_cols, role="control") if ctrl_cols else None
    if collapse:
        if ctrl_cols:
            raise EffectInputError("collapse=True needs controls=(): covariates vary within cells")
        if clus is None:
            raise EffectInputError(
                "collapse=True needs clustered standard errors (cluster=None or a column): "
                "robust standard errors of cell means differ from those of the rows"
            )
        yv, e, lb, treated, exact, clus, wts, ent, t = _cells.collapse(
            ent, t, clus, yv, e, lb, treated, exact, names=(cluster_col, entity, time)
        )

    # one indicator per (cohort, event time), reference left out
    fitted = dataclasses.replace(
        asg, keep=np.ones(len(yv), bool), cohort=e, treated=treated, binned=lb, exact=exact
    )
    inter = _sa.interactions(fitted, spec.reference)
    names = inter.names
    agg = _sa.aggregate(
        fitted,
        inter,
        wts,
        leads=spec.leads,
        lags=spec.lags,
        reference=spec.reference,
        post_weights=post_weights,
        baseline=baseline,
    )
    exog = pd.DataFrame(inter.matrix(), columns=names)
    if xc is not None:
        clash = set(xc.columns) & set(names)
        if clash:
            raise EffectInputError(f"control columns clash with event-time names: {clash}")
        exog = pd.concat([exog, xc.reset_index(drop=True)], axis=1)

    try:
        res = fit_two_way(
            yv, exog, entity=ent, period=t, weights=wts, clusters=clus, debiased=debiased
        )
    except (EffectInputError, np.linalg.LinAlgError) as exc:
        raise EffectInputError(
            f"the event-study regression could not be estimated: {exc}. Usually a cohort or "
            "event time is absorbed by the fixed effects (too few periods or control units)"
        ) from exc

    delta = res.params[names].to_numpy()
    vdelta = res.cov.loc[names, names].to_numpy()
    # observations behind each coefficient (rows represented, when collapsed)
    n_el, shown, wmat = agg.n_el, agg.shown, agg.wmat
    cohort_of, et_of = inter.cohort_of, inter.et_of
    beta = wmat @ delta
    vbeta = wmat @ vdelta @ wmat.T
    se_beta = np.sqrt(np.clip(np.diag(vbeta), 0, None))

    pre = [i for i, l_ in enumerate(shown) if l_ < 0]
    n_clusters = int(len(np.unique(clus))) if clus is not None else None
    if wild_bootstrap is None:
        wild_bootstrap = 999 if n_clusters is not None and n_clusters < 50 else 0
    if pre:
        bp = beta[pre]
        vp = vbeta[np.ix_(pre, pre)]
        stat, df = _wald(bp, vp)
        pretrend = {"stat": stat, "df": df, "pvalue": float(stats.chi2.sf(stat, df))}
        if n_clusters is not None:
            pretrend["pvalue_f"] = float(stats.f.sf(stat / df, df, n_clusters - 1))
        pretrend["pvalue_wild"] = math.nan
        if wild_bootstrap and clus is not None:
            restriction = np.zeros((len(pre), exog.shape[1]))
            restriction[:, : len(names)] = wmat[pre]
            pretrend["pvalue_wild"] = _wild_pretrend(
                res, clusters=clus, restriction=restriction, reps=int(wild_bootstrap), seed=seed
            )
            pretrend["wild_reps"] = int(wild_bootstrap)
    else:
        pretrend = {"stat": math.nan, "df": 0, "pvalue": math.nan}

    a = agg.post
    theta = float(a @ delta)
    se_theta = float(math.sqrt(max(a @ vdelta @ a, 0.0)))
    randomization = None
    if permutations:
        path = {l_: float(beta[i]) for i, l_ in enumerate(shown) if l_ >= 0}
        cells = _permutation_cells(
            full_sample,
            t_all,
            e_all,
            outcome=outcome,
            entity=entity,
            cluster=cluster_col,
            path=path,
            lags=spec.lags,
            extra=as_list(takeup),
            ent=ent_all,
            clus=clus_all,
        )
        randomization = randomization_test(
            cells, spec, reps=int(permutations), seed=seed, statistic=statistic
        )
        if not math.isclose(randomization.theta_y[0], theta, rel_tol=1e-6, abs_tol=1e-9):
            raise EffectInputError(  # pragma: no cover - a guard on the cell-level refit
                "internal: the cell-level refit of the randomisation test does not reproduce "
                f"the estimate ({randomization.theta_y[0]!r} vs {theta!r})"
            )

    et_rows = []
    for l_ in sorted([*shown, reference]):
        if l_ == reference:
            n_ref = int(wts[(lb == reference) & treated].sum())
            n_c = int(len(np.unique(e[(lb == reference) & treated])))
            et_rows.append((l_, 0.0, math.nan, n_ref, n_c))
        else:
            i = shown.index(l_)
            m = et_of == l_
            et_rows.append((l_, beta[i], se_beta[i], int(n_el[m].sum()), int(m.sum())))
    event_time = pd.DataFrame(
        et_rows, columns=["event_time", "estimate", "std_error", "n_obs", "n_cohorts"]
    ).set_index("event_time")
    cohort_effects = pd.DataFrame(
        {
            "cohort": cohort_of,
            "event_time": et_of.astype(int),
            "estimate": delta,
            "std_error": np.sqrt(np.clip(np.diag(vdelta), 0, None)),
            "n_obs": n_el.astype(int),
        },
        index=pd.Index(names, name="parameter"),
    )
    in_window = np.isin(et_of, shown)
    cohort_effects["weight"] = np.nan
    cohort_effects.loc[in_window, "weight"] = wmat.sum(axis=0)[in_window]
    et_cov = pd.DataFrame(vbeta, index=shown, columns=shown)

    n_entities = int(len(np.unique(ent)))
    treated_entities = int(len(np.unique(ent[treated])))
    diagnostics = {
        "pretrend_chi2": pretrend["stat"],
        "pretrend_df": pretrend["df"],
        "pretrend_pvalue": pretrend["pvalue"],
        "pretrend_pvalue_f": pretrend.get("pvalue_f", math.nan),
        "pretrend_pvalue_wild": pretrend.get("pvalue_wild", math.nan),
        "leads": int(leads),
        "lags": int(lags),
        "reference": int(reference),
        "bin": bin,
        "post_weights": post_weights,
        "baseline": baseline,
        "control_cohort": asg.control_label,
        "n_entities": n_entities,
        "n_treated_entities": treated_entities,
        "n_control_entities": n_entities - treated_entities,
        "n_cohorts": int(len(np.unique(cohort_of))),
        "n_always_treated_cohorts_dropped": len(asg.dropped_cohorts),
        "n_always_treated_rows_dropped": asg.n_dropped_rows,
        "n_missing_dropped": n_missing,
        "n_coefficients": len(names),
        "collapsed": bool(collapse),
        "n_regression_rows": int(res.nobs),
        "event_time": [
            {
                "event_time": int(k),
                "estimate": r.estimate,
                "std_error": r.std_error,
                "n_obs": int(r.n_obs),
            }
            for k, r in event_time.iterrows()
        ],
    }
    if randomization is not None:
        ri = randomization.to_dict()
        pretrend["pvalue_randomization"] = ri["pretrend_pvalue"]
        z = float(stats.norm.ppf(0.975))
        diagnostics.update(
            {
                "pretrend_pvalue_randomization": ri["pretrend_pvalue"],
                "pvalue_randomization": ri["pvalue"],
                "ci_randomization": [ri["ci_low"], ri["ci_high"]],
                "ci_clustered": [theta - z * se_theta, theta + z * se_theta],
                "randomization_assignments": ri["assignments"],
                "randomization_possible": ri["possible_assignments"],
                "randomization_exact": ri["exact"],
                "randomization_skipped": ri["skipped"],
                "std_error_clustered": se_theta,
                "std_error_randomization_sd": randomization.null_sd(),
                "std_error_method": "randomisation interval half-width / 1.96",
            }
        )
        if takeup is not None:
            diagnostics["takeup"] = takeup
    weighting = (
        "averaged over treated observations"
        if post_weights == "observations"
        else "averaged with equal weight per event time"
    )
    estimand = (
        f"average effect of adoption on adopting units at event times 0 to {lags}"
        f"{' (the last binning all later periods)' if bin == 'endpoints' else ''}, "
        f"{weighting}, cohorts averaged at each event time by their share of its "
        "observations, relative to "
        + (
            f"event time {reference}"
            if baseline == "reference"
            else f"the mean of the cohort's pre-period event times -{leads} to -1"
        )
        + " (Sun and Abraham interaction-weighted estimator); assumes "
        "parallel trends with the control cohort and no anticipation"
    )
    return EventStudyResult(
        estimate=theta,
        std_error=se_theta if randomization is None else randomization.interval_std_error(),
        n=n_rows,
        design="event_study",
        estimand=estimand,
        method="sun_abraham",
        outcome=outcome,
        treatment=treatment_start,
        cov_type=res.cov_type,  # type: ignore[arg-type]
        n_clusters=n_clusters,
        diagnostics=diagnostics,
        event_time=event_time,
        cohort_effects=cohort_effects,
        event_time_cov=et_cov,
        pretrend=pretrend,
        reference=int(reference),
        binned=bin == "endpoints",
        model_results=res,
        randomization=randomization,
    )

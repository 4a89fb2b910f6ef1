r"""Selection on observables: Sianesi's dynamic comparison of starters with
persons not (yet) starting, on characteristics at inflow and CBS history.

Phase 2 (:func:`fit_selection`) compares, for each elapsed month :math:`u`
of the benefit spell, persons who start the instrument at :math:`u` with
persons still on bijstand through month :math:`u - 1` who have started
neither it nor another instrument before :math:`u`; the risk sets are stacked
and pooled with bands of :math:`u` as strata, with indicators of the months
within each band in both models (cross-fitted AIPW by default, linear or
gradient-boosting nuisance models; propensity scores above ``1 - trim``
dropped, none clipped), standard errors clustered on the person (Sianesi
2004). It reports two estimands (:data:`TARGETS`): ``now_vs_later``, the
headline, starting at :math:`u` against not starting at :math:`u` (possibly
later); and ``vs_never``, starting against never starting any instrument,
with comparison persons censored at their own later start and inverse
probability of censoring weights
(:func:`reintegration.effects.censoring_weights`). Their truths are
:func:`not_now_truth` and :func:`att_truth`. ``extra_covariates`` of the
settings adds columns of the panel's persons to both models (the Monte Carlo
oracle adds the unobserved factor).

Phase 1 (:func:`diagnose_overlap`) judges overlap of the propensity score of
starting the instrument against starting none, and carries the standing
condition that unconfoundedness cannot be tested. Its minimum detectable
effect comes from the person-clustered standard error of regression
adjustment on the stacked risk sets Phase 2 estimates on
(:func:`_stacked_power`); without the person-month panel, from a difference
in means between the treated and the odds-weighted comparison group
(effective number of controls :math:`(\sum w)^2 / \sum w^2`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import effects
from ..effects import EffectResult
from ..effects._memo import FrameMemo
from ..effects.numerics import propensity_scores
from ..effects.selection_outcomes import selection_on_observables_outcomes
from .base import (
    Check,
    Design,
    Diagnosis,
    Inputs,
    levels,
    mde_check,
    minimum_detectable_effect,
    pct,
    power_settings,
    rounded,
    share_text,
    size_checks,
)

KEY = ["RINPERSOONS", "RINPERSOON"]
#: the comparison of Phase 1's overlap check
NO_INSTRUMENT = "none"


def se_difference(sd: float, n_treated: float, n_control: float) -> float:
    r"""Standard error of a difference in means of two independent groups
    with common standard deviation :math:`\sigma`:
    :math:`\sigma\sqrt{1/n_1 + 1/n_0}` (NaN when a group is empty)."""
    if n_treated <= 0 or n_control <= 0:
        return float("nan")
    return float(sd) * math.sqrt(1.0 / n_treated + 1.0 / n_control)


def binary_sd(p: float) -> float:
    r""":math:`\sqrt{p(1-p)}`, the standard deviation of a 0/1 outcome with mean p."""
    return math.sqrt(max(p * (1 - p), 0.0))


def robustness_value(t: float, df: float, alpha: float | None = None) -> float:
    r"""The robustness value of Cinelli and Hazlett (2020, "Making sense of
    sensitivity: extending omitted variable bias", JRSS-B 82(1), 39-67) for
    a t statistic with ``df`` residual degrees of freedom: with
    :math:`f = |t| / \sqrt{df}`,
    :math:`RV = \tfrac12(\sqrt{f^4 + 4 f^2} - f^2)`, the share of the
    residual variance of both the treatment and the outcome that an
    unobserved confounder would have to explain to bring the estimate to
    zero. With ``alpha``, :math:`f` is reduced by
    :math:`t^*_{\alpha, df-1} / \sqrt{df - 1}`: the strength that would make
    the interval include zero. Exact for regression adjustment; for the
    weighting estimators an approximation from their t statistic."""
    if not (math.isfinite(t) and df > 1):
        return math.nan
    f = abs(t) / math.sqrt(df)
    if alpha is not None:
        f -= float(stats.t.isf(alpha / 2, df - 1)) / math.sqrt(df - 1)
    if f <= 0:
        return 0.0
    return 0.5 * (math.sqrt(f ** 4 + 4 * f ** 2) - f ** 2)


def selection_data(persons: pd.DataFrame, exits: pd.DataFrame, instrument: str, *,
                   max_month: int, min_month: int = 1) -> pd.DataFrame:
    """The stacked risk sets of :func:`reintegration.effects.dynamic_risk_set`
    for one instrument.

    At elapsed month :math:`u` a person is at risk when on bijstand through
    month :math:`u - 1` (the condition under which an instrument can start at
    :math:`u`) and has started no instrument before :math:`u`; persons who
    start another instrument leave the risk sets from that month. Treated
    (``treated = 1``): starters of ``instrument`` at :math:`u`. The column
    ``elapsed_month`` holds :math:`u`, ``_pid`` the person (for clustering).
    """
    df = persons.merge(exits, on=KEY, how="left", validate="one_to_one").copy()
    elapsed = df["instrument_elapsed"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    own = (df["instrument"] == instrument).to_numpy()
    other = (~own) & (df["instrument"] != "none").to_numpy() & ~np.isnan(elapsed)
    exit_ = df["exit_month"].astype("Float64").to_numpy(dtype=float, na_value=np.nan) + 1
    exit_ = np.where(other, np.fmin(exit_, elapsed), exit_)
    df["_start"] = np.where(own, elapsed, np.nan)
    df["_any_start"] = np.where((df["instrument"] != "none").to_numpy(), elapsed, np.nan)
    df["_exit"] = exit_
    df["_pid"] = np.arange(len(df))
    return effects.dynamic_risk_set(df, start="_start", exit="_exit", max_month=max_month,
                                    min_month=min_month)


def elapsed_bands(months: pd.Series | np.ndarray, treated: pd.Series | np.ndarray,
                  min_treated: int) -> np.ndarray:
    """Strata of elapsed months: consecutive months pooled, from the first on,
    until each band holds at least ``min_treated`` starters (a short last band
    joins the one before). Returns the first month of each row's band."""
    m = np.asarray(months, dtype=int)
    counts = pd.Series(np.asarray(treated, dtype=float)).groupby(m).sum().sort_index()
    starts: list[int] = []
    acc = 0.0
    for month, k in counts.items():
        if not starts or acc >= min_treated:
            starts.append(int(month))
            acc = 0.0
        acc += k
    if len(starts) > 1 and acc < min_treated:
        starts.pop()
    b = np.asarray(starts)
    return b[np.clip(np.searchsorted(b, m, side="right") - 1, 0, len(b) - 1)]


def independent_columns(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """``columns`` in order, leaving out each one that is a linear combination
    of a constant and the columns kept before it in ``frame`` (for example
    the migration indicators within a migration subgroup).

    The rank of the cross-product matrix of a constant and the columns kept
    so far plus the next one decides (``numpy.linalg.matrix_rank``). It is
    read from one cross-product matrix of all columns; where a singular value
    lies so close to the rank tolerance that rounding could matter, the
    submatrix is recomputed from the rows, so the columns kept are always
    those of the direct computation (:func:`_full_rank`)."""
    columns = list(columns)
    if not columns:
        return []
    return [columns[j] for j in independent_arrays(len(frame), _float_columns(frame, columns))]


def _float_columns(frame: pd.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """The values of ``frame[columns].to_numpy(dtype=float)``, one array per
    column: read column by column where every column is a numpy number or
    boolean (no row-major copy of the frame), else from that matrix."""
    if len(set(columns)) == len(columns) and all(
            isinstance(t, np.dtype) and t.kind in "biuf" for t in frame.dtypes[columns]):
        return [frame[c].to_numpy() for c in columns]
    whole = frame[columns].to_numpy(dtype=float)
    return [whole[:, j] for j in range(whole.shape[1])]


def independent_arrays(n: int, arrays: Sequence[np.ndarray]) -> list[int]:
    """The positions of ``arrays`` (each ``n`` numbers) that
    :func:`independent_columns` keeps: each one that is not a linear
    combination of a constant and the arrays kept before it. The constant
    and the arrays are written into one column-major matrix (the layout of
    ``numpy.column_stack`` of a constant and a frame's values)."""
    x = np.empty((n, len(arrays) + 1), order="F")
    x[:, 0] = 1.0
    for j, values in enumerate(arrays):
        x[:, j + 1] = values
    gram = x.T @ x
    keep: list[int] = []
    for j in range(1, len(arrays) + 1):
        idx = [0, *keep, j]
        if _full_rank(gram[np.ix_(idx, idx)], x, idx):
            keep.append(j)
    return [j - 1 for j in keep]


def _full_rank(sub: np.ndarray, x: np.ndarray, idx: list[int]) -> bool:
    """Whether ``x[:, idx].T @ x[:, idx]`` has full rank by
    ``numpy.linalg.matrix_rank``'s default tolerance, decided on ``sub`` (the
    same matrix taken from a larger cross product, equal up to rounding)
    unless a singular value lies within a relative 1e-6 of the tolerance."""
    sv = np.linalg.svd(sub, compute_uv=False)
    tol = sv.max(initial=0.0) * max(sub.shape) * np.finfo(float).eps
    if np.all(np.abs(sv - tol) > 1e-6 * max(sv.max(initial=0.0), tol)):
        return int((sv > tol).sum()) == sub.shape[0]
    # consecutive columns (no column left out so far) are read in place: the
    # same column-major layout and leading dimension as the copy, so the same
    # product, without copying the rows
    lo, hi = idx[0], idx[-1]
    part = x[:, lo:hi + 1] if idx == list(range(lo, hi + 1)) else x[:, idx]
    return np.linalg.matrix_rank(part.T @ part) == len(idx)


#: the estimands of the design, key -> plain words; the first is the headline
TARGETS = {
    "now_vs_later": "the effect on starters of starting the instrument in their month of the "
                    "benefit spell rather than not then (they may start later), averaged over "
                    "the starters' months (Sianesi 2004)",
    "vs_never": "the effect on starters of starting the instrument rather than never starting "
                "any instrument: E[Y(j) - Y(never) | D = j]",
}


def covariate_names(settings: dict[str, Any]) -> list[str]:
    """The covariates of both models: ``covariates`` of config/effects.yml and
    the ``extra_covariates`` of its selection-on-observables section."""
    extra = settings["selection_on_observables"].get("extra_covariates") or []
    return list(dict.fromkeys([*settings["covariates"], *extra]))


def month_indicators(months: np.ndarray, bands: np.ndarray,
                     treated: np.ndarray | None = None) -> pd.DataFrame:
    """0/1 columns ``_month_<u>``, one for each elapsed month that is not the
    first of its band: within a band of pooled months, a starter at month u
    is compared with controls at the same u (the band's intercept is the
    first month). With ``treated``, only months that hold controls get one
    (a month of a small subgroup without controls shares the band's
    intercept instead of leaving the control regression unidentified)."""
    months = np.asarray(months, dtype=int)
    firsts = set(np.unique(bands).tolist())
    has_controls = set(np.unique(months if treated is None
                                 else months[np.asarray(treated) == 0]).tolist())
    cols = {f"_month_{u}": (months == u).astype(float)
            for u in np.unique(months) if u not in firsts and u in has_controls}
    return pd.DataFrame(cols, index=pd.RangeIndex(len(months)))


#: the covariates, strata and month indicators of each prepared frame (they do not
#: depend on the outcome or the estimand): computed once per frame
_FRAMES = FrameMemo()

#: the prepared frame of each instrument, per persons and person_months objects: the
#: effects step prepares it for the estimates, the sensitivity analysis and the
#: obligations (callers read it, never change it in place)
_PREPARED = FrameMemo()


def _prepared(inputs: Inputs, instrument: str, max_month: int) -> pd.DataFrame:
    """:func:`selection_data` of ``instrument`` from the inputs' persons and
    benefit exits, computed once per persons and person_months objects."""
    months = inputs.person_months

    def compute() -> tuple[Any, pd.DataFrame]:
        data = selection_data(inputs.persons, inputs.exits(), instrument, max_month=max_month)
        if not isinstance(data.index, pd.RangeIndex) or not data.index.equals(
                pd.RangeIndex(len(data))):  # the risk sets come numbered: no copy needed
            data = data.reset_index(drop=True)
        return (None if months is None else weakref.ref(months)), data

    key = ("prepare", instrument, max_month, id(months))
    ref, data = _PREPARED.get(inputs.persons, key, compute)
    if months is not None and (ref is None or ref() is not months):  # an id used again
        ref, data = compute()
    return data


def _strata_design(data: pd.DataFrame, names: Sequence[str], cfg: dict[str, Any]
                   ) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """The covariates that vary and are not collinear among the comparison
    rows, the elapsed-month band of each row and the month indicators
    (:func:`fit_selection`)."""
    varying = [c for c in names if c in data.columns and _varies(data[c])]
    # independent_columns of the comparison rows, without copying them out of the frame
    ctrl = (data["treated"] == 0).to_numpy()
    covs = [varying[j] for j in independent_arrays(
        int(ctrl.sum()), [values[ctrl] for values in _float_columns(data, varying)])]
    bands = elapsed_bands(data["elapsed_month"], data["treated"], int(cfg["min_stratum_treated"]))
    months = month_indicators(data["elapsed_month"].to_numpy(), bands,
                              data["treated"].to_numpy()).set_axis(data.index)
    return covs, bands, months


def _varies(column: pd.Series) -> bool:
    """Whether ``column`` holds at least two distinct values, missing values
    left out (``nunique(dropna=True) > 1``; for numpy numbers and booleans
    from the smallest and largest value, without hashing every row)."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        values = column.to_numpy()
        if values.dtype.kind == "f":
            values = values[~np.isnan(values)]
        return len(values) > 1 and bool(values.min() < values.max())
    return column.nunique(dropna=True) > 1


def outcome_horizon(outcome: str) -> int | None:
    """The month after inflow an outcome is measured in (``employed_24``:
    24), None for outcomes over a period (months employed): then every later
    start censors."""
    tail = outcome.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def fit_selection(data: pd.DataFrame, outcome: str, settings: dict[str, Any],
                  *, method: str | None = None, target: str | None = None) -> EffectResult:
    """Selection on observables over the stacked risk sets, strata = bands of
    elapsed months with indicators of the months within each band (in both
    models). ``target``: ``now_vs_later`` (default) or ``vs_never``, which
    censors comparison persons at their own later start of any instrument
    and weights the others by the inverse probability of staying unstarted
    (:func:`reintegration.effects.censoring_weights`). When cross-fitting
    leaves a fold without treated or controls in a stratum (small groups),
    it falls back to regression adjustment and says so in the
    diagnostics."""
    cfg = settings["selection_on_observables"]
    frame, kw, extra, covs, n_months = _fit_frame(data, [outcome], settings, target)
    method = method or cfg["method"]
    if extra[outcome].get("_weights"):
        kw["control_weights"] = extra[outcome].pop("_weights")
    try:
        res = _fit(frame, method, cfg, {"outcome": outcome, **kw})
    except effects.EffectInputError:
        if method == "ra":
            raise
        res = effects.selection_on_observables(frame, method="ra", outcome=outcome, **kw)
        res.diagnostics["fallback"] = (f"{method} not estimable in this sample; regression "
                                       "adjustment")
    return _finish(res, extra[outcome], frame, len(covs), n_months)


def fit_selection_outcomes(data: pd.DataFrame, outcomes: Sequence[str],
                           settings: dict[str, Any], *, target: str | None = None
                           ) -> dict[str, EffectResult]:
    """:func:`fit_selection` of each outcome with the settings' method, from
    one frame and one pass over the strata for all of them
    (:func:`reintegration.effects.selection_outcomes.selection_on_observables_outcomes`);
    the same results. Raises where any outcome would fail or fall back to
    regression adjustment (the caller then fits them one at a time)."""
    cfg = settings["selection_on_observables"]
    outcomes = list(outcomes)
    frame, kw, extra, covs, n_months = _fit_frame(data, outcomes, settings, target)
    weights = {o: extra[o].pop("_weights", None) for o in outcomes}
    kw["control_weights"] = weights
    if cfg["method"] == "aipw":
        kw.update(folds=int(cfg["folds"]),
                  **effects.learners(cfg.get("learner", "linear"), seed=int(cfg["seed"])))
    got = selection_on_observables_outcomes(frame, outcomes=outcomes, method=cfg["method"],
                                            **kw)
    return {o: _finish(got[o], extra[o], frame, len(covs), n_months) for o in outcomes}


def _fit_frame(data: pd.DataFrame, outcomes: list[str], settings: dict[str, Any],
               target: str | None) -> tuple[pd.DataFrame, dict[str, Any], dict[str, dict],
                                            list[str], int]:
    """The columns the estimators read (outcomes, treatment, person, covariates,
    month indicators, band), the estimator's keywords, each outcome's
    diagnostics to add (and, for ``vs_never``, its censoring weights column
    under ``_weights``), the covariates and the number of month indicators."""
    cfg = settings["selection_on_observables"]
    target = target or next(iter(TARGETS))
    if target not in TARGETS:
        raise KeyError(f"selection_on_observables: no estimand {target!r}; known: "
                       f"{', '.join(TARGETS)}")
    names = covariate_names(settings)
    key = ("strata", tuple(names), int(cfg["min_stratum_treated"]), len(data),
           tuple(data.columns))
    covs, bands, months = _FRAMES.get(data, key, lambda: _strata_design(data, names, cfg))
    # the columns the estimators read, so that no copy below carries the others
    used = [*outcomes, "treated", "elapsed_month", "_pid", *covs,
            *[c for c in ("_any_start", "benefit_months") if c in data.columns]]
    used = [c for c in dict.fromkeys(used) if c in data.columns]
    frame = pd.concat([data[used], months], axis=1).assign(_stratum=bands)
    kw = dict(treatment="treated", covariates=[*covs, *months.columns], cluster="_pid",
              strata="_stratum", seed=int(cfg["seed"]), trim=float(cfg["trim"]))
    extra: dict[str, dict] = {o: {"target": target} for o in outcomes}
    if target == "vs_never":
        for col in ("_any_start", "benefit_months"):
            if col not in frame.columns:
                raise ValueError(f"the comparison with never starting needs the column {col!r} "
                                 "of the prepared data (SelectionOnObservables.prepare with the "
                                 "panel's person_months)")
        weights = {}
        for i, outcome in enumerate(outcomes):
            w, info = effects.censoring_weights(
                frame, person="_pid", start="_any_start", eligible="benefit_months",
                covariates=covs, horizon=outcome_horizon(outcome))
            weights[f"_ipcw{i}" if len(outcomes) > 1 else "_ipcw"] = w
            extra[outcome].update({f"censoring_{k}": v for k, v in info.items()})
            extra[outcome]["_weights"] = f"_ipcw{i}" if len(outcomes) > 1 else "_ipcw"
        frame = frame.assign(**weights)
    return frame, kw, extra, covs, int(months.shape[1])


def _finish(res: EffectResult, extra: dict[str, Any], frame: pd.DataFrame, n_covs: int,
            n_months: int) -> EffectResult:
    """The design's diagnostics of one result: the estimand, the censoring
    weights, the month indicators and the robustness values."""
    res.diagnostics.update(extra)
    res.diagnostics["n_month_indicators"] = n_months
    df = res.nobs - n_covs - n_months - int(frame["_stratum"].nunique()) - 1
    res.diagnostics["robustness_value"] = robustness_value(res.tstat, df)
    res.diagnostics["robustness_value_alpha"] = robustness_value(res.tstat, df, alpha=0.05)
    return res


def _fit(data: pd.DataFrame, method: str, cfg: dict[str, Any], kw: dict[str, Any]
         ) -> EffectResult:
    if method == "aipw":
        return effects.selection_on_observables(
            data, method=method, folds=int(cfg["folds"]),
            **effects.learners(cfg.get("learner", "linear"), seed=int(cfg["seed"])), **kw)
    return effects.selection_on_observables(data, method=method, **kw)


#: bands of the propensity score for the overlap table
PSCORE_BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def pscore_band(p: np.ndarray) -> np.ndarray:
    labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(PSCORE_BANDS[:-1], PSCORE_BANDS[1:],
                                                   strict=True)]
    idx = np.clip(np.searchsorted(PSCORE_BANDS, p, side="right") - 1, 0, len(labels) - 1)
    return np.asarray(labels, dtype=object)[idx]


def diagnose_overlap(persons: pd.DataFrame, instrument: str, covariates: Sequence[str],
                     outcome: str, settings: dict[str, Any], threshold: int) -> Diagnosis:
    """Phase 1's checks of selection on observables for one instrument."""
    cfg = settings["theoretical"]["selection_on_observables"]
    pcfg = settings["practical"]
    lo, hi = (float(b) for b in cfg["trim_bounds"])
    sample = persons[persons["instrument"].isin([instrument, NO_INSTRUMENT])]
    d = (sample["instrument"] == instrument).to_numpy()
    n1, n0 = int(d.sum()), int((~d).sum())
    diag = Diagnosis()
    theo, prac = diag.theoretical, diag.practical
    ev_t, ev_p = diag.evidence_theoretical, diag.evidence_practical
    ev_t.update({"comparison": "persons who started no instrument",
                 "covariates": len(covariates), "trim_bounds": [lo, hi]})
    ev_p.update({"n_treated": n1, "n_comparison": n0, "outcome": outcome})
    prac += size_checks(n1, n0, pcfg, threshold)
    if n1 < 2 or n0 < 2:
        theo.append(Check("overlap", "not_assessed", "too few persons to fit a propensity score"))
        prac.append(Check("mde", "not_assessed", "no power calculation without both groups"))
        return diag
    frame = sample.assign(_d=d.astype(int))
    p = propensity_scores(frame, "_d", covariates)
    trimmed = (p < lo) | (p > hi)
    k1, k0 = int(trimmed[d].sum()), int(trimmed[~d].sum())
    share1 = k1 / n1
    lim = cfg["share_treated_trimmed"]
    verdict = levels(share1, no_go=lim["no_go"], conditional=lim["conditional"],
                      higher_is_better=False)
    bounds = f"[{lo:g}, {hi:g}]"
    text = {
        "pass": f"propensity scores overlap: treated outside {bounds}: "
                f"{share_text(k1, n1, threshold)} (at most {pct(lim['conditional'], 0)})",
        "conditional": f"treated with propensity scores outside {bounds}: "
                       f"{share_text(k1, n1, threshold)}; estimate the effect on the treated "
                       "inside the common support and say so",
        "fail": f"treated with propensity scores outside {bounds}: "
                f"{share_text(k1, n1, threshold)}, more than {pct(lim['no_go'], 0)}: too "
                "few have comparable controls",
    }[verdict]
    theo.append(Check("overlap", verdict, text, round(share1, 4), lim))
    standing = cfg.get("standing_condition")
    if standing:
        theo.append(Check("unconfoundedness", "conditional", " ".join(str(standing).split())))
    # effective number of controls under odds weights, inside the bounds
    keep = ~trimmed
    pc = np.clip(p, lo, hi)
    w = pc / (1 - pc)
    w0 = w[(~d) & keep]
    ess0 = float(w0.sum() ** 2 / (w0 ** 2).sum()) if len(w0) else 0.0
    y0 = sample.loc[~d, outcome].astype(float)
    p0 = float(y0.mean()) if len(y0) else float("nan")
    se = se_difference(binary_sd(p0), int((d & keep).sum()), ess0)
    prac.append(mde_check(se, pcfg, "treated against the weighted comparison group"))
    ev_t.update({"share_treated_trimmed": round(share1, 4), "n_treated_trimmed": k1,
                 "share_comparison_trimmed": round(k0 / n0, 4), "n_comparison_trimmed": k0})
    ev_p.update({"comparison_mean_outcome": round(p0, 4),
                 "effective_comparison_n": round(ess0, 1), "mde_se": rounded(se, 5),
                 "mde": rounded(minimum_detectable_effect(se, **power_settings(pcfg)), 4)})
    out = pd.DataFrame({
        "instrument": instrument,
        "group": np.where(d, "treated", "no instrument"),
        "propensity": pscore_band(p),
        "trimmed": np.where(trimmed, "outside bounds", "inside bounds"),
    })
    diag.frames["overlap"] = out
    return diag


def att_truth(po: pd.DataFrame, instrument: str, outcome: str,
              mask: np.ndarray | None = None) -> float:
    """Mean of Y(j) - Y(never) among starters of ``j`` (optionally within
    ``mask``): the ``vs_never`` estimand at horizon h of ``outcome =
    employed_<h>``."""
    return _starter_mean(po, instrument, outcome, mask, "none")


#: the potential outcome of a starter whose start at u is blocked and whose
#: later starts are free (the synthetic world's "not now" path)
NOT_NOW = "notnow"


def not_now_truth(po: pd.DataFrame, instrument: str, outcome: str,
                  mask: np.ndarray | None = None) -> float:
    """Mean of Y(j) - Y(not now) among starters of ``j`` (optionally within
    ``mask``): the ``now_vs_later`` estimand, where ``employed_notnow_<h>``
    is the starter's path with the start at their month blocked and the
    later process of starting free. NaN when the potential outcomes have no
    such column (a world generated without it)."""
    return _starter_mean(po, instrument, outcome, mask, NOT_NOW)


def _starter_mean(po: pd.DataFrame, instrument: str, outcome: str, mask: np.ndarray | None,
                  comparison: str) -> float:
    h = outcome.rsplit("_", 1)[-1]
    col = f"employed_{comparison}_{h}"
    if col not in po.columns:
        return math.nan
    sel = (po["instrument"] == instrument).to_numpy(dtype=bool, na_value=False)
    if mask is not None:
        sel &= mask
    if not sel.any():
        return math.nan
    d = po.loc[sel, f"employed_{instrument}_{h}"] - po.loc[sel, col]
    return float(d.mean())


def _stacked_power(diag: Diagnosis, data: pd.DataFrame, outcome: str, inputs: Inputs) -> None:
    """Replace the difference-in-means MDE by the one of the comparison Phase
    2 runs: regression adjustment on the stacked risk sets (elapsed-month
    bands, person-clustered variance), the method Phase 2 uses for
    subgroups; the headline's doubly robust estimator is usually a little
    less precise. Uses the estimate's standard error only."""
    pcfg = inputs.feasibility["practical"]
    try:
        res = fit_selection(data, outcome, inputs.effects, method="ra")
    except (ValueError, np.linalg.LinAlgError):
        return
    se = float(res.std_error)
    diag.practical[:] = [c for c in diag.practical if c.name != "mde"]
    diag.practical.append(mde_check(se, pcfg, "regression adjustment on the stacked risk "
                                    "sets of Phase 2, clustered on persons"))
    ev = diag.evidence_practical
    ev["mde_difference_in_means"] = ev.get("mde")
    ev.update({"mde_se": rounded(se, 5),
               "mde": rounded(minimum_detectable_effect(se, **power_settings(pcfg)), 4)})


class SelectionOnObservables(Design):
    name = "selection_on_observables"
    label = "Selection on observables"
    short = "selection"
    observational = True
    treated = "treated"
    cluster = None
    fit = staticmethod(fit_selection)
    targets = TARGETS

    def prepare(self, inputs: Inputs, instrument: str) -> pd.DataFrame:
        cfg = inputs.effects["selection_on_observables"]
        missing = [c for c in cfg.get("extra_covariates") or [] if c not in inputs.persons]
        if missing:
            raise ValueError(f"selection_on_observables.extra_covariates {missing} of "
                             "config/effects.yml are not columns of the panel's persons")
        return _prepared(inputs, instrument, int(cfg["max_month"]))

    def estimate(self, data: pd.DataFrame, outcome: str, settings: dict[str, Any],
                 target: str | None = None) -> EffectResult:
        return fit_selection(data, outcome, settings, target=target or self.headline_target)

    def estimate_outcomes(self, data: pd.DataFrame, outcomes: Sequence[str],
                          settings: dict[str, Any], target: str | None = None
                          ) -> dict[str, Any]:
        """All outcomes from one frame and one pass over the strata
        (:func:`fit_selection_outcomes`); where that fails, each outcome on
        its own, as :meth:`estimate` (its failure or fallback its own)."""
        try:
            return dict(fit_selection_outcomes(data, outcomes, settings,
                                               target=target or self.headline_target))
        except (ValueError, np.linalg.LinAlgError):
            return super().estimate_outcomes(data, outcomes, settings, target)

    def columns(self, data: pd.DataFrame, settings: dict[str, Any]) -> list[str] | None:
        """What :func:`fit_selection` reads: the outcomes, the treated
        indicator, the elapsed month, the person, the covariates and the
        censoring columns."""
        used = [*settings["outcomes"], self.treated, "elapsed_month", "_pid",
                *covariate_names(settings), "_any_start", "benefit_months"]
        return [c for c in dict.fromkeys(used) if c in data.columns]

    def diagnose(self, inputs: Inputs, instrument: str | None, *, outcome: str,
                 threshold: int) -> Diagnosis:
        covariates = [c for c in inputs.feasibility["covariates"] if c in inputs.persons]
        diag = diagnose_overlap(inputs.persons, str(instrument), covariates, outcome,
                                inputs.feasibility, threshold)
        if inputs.person_months is not None and diag.evidence_practical.get("mde") is not None:
            _stacked_power(diag, self.prepare(inputs, str(instrument)), outcome, inputs)
        return diag

    def truth(self, po: pd.DataFrame, record: dict[str, Any], mask: np.ndarray | None,
              context: dict[str, Any]) -> float:
        """``now_vs_later``: :func:`not_now_truth`; ``vs_never``:
        :func:`att_truth`. Where the world has no "not now" potential
        outcomes, NaN, and ``context["truth_missing"]`` says why."""
        if not record["outcome"].startswith("employed_"):
            return math.nan
        target = record.get("target") or self.headline_target
        if target == "vs_never":
            return att_truth(po, record["instrument"], record["outcome"], mask)
        if target != "now_vs_later":
            raise KeyError(f"{self.name}: no estimand {target!r}; known: {', '.join(TARGETS)}")
        h = record["outcome"].rsplit("_", 1)[-1]
        if f"employed_{NOT_NOW}_{h}" not in po.columns:
            context.setdefault("truth_missing", {})[f"{self.name}/{target}"] = (
                f"the potential outcomes have no column employed_{NOT_NOW}_{h} (the starter's "
                "path with the start blocked in their month and later starts free): this "
                "world was generated without it, so the 'now versus later' estimate has no "
                "truth")
            return math.nan
        return not_now_truth(po, record["instrument"], record["outcome"], mask)

r"""Sianesi's dynamic comparison and its censoring weights.

:func:`dynamic_risk_set` stacks, for each elapsed month :math:`u` of a
spell, those who start the treatment at :math:`u` against those still
waiting (Sianesi 2004): "start now versus not now", where those not starting
now may start later.

:func:`censoring_weights` turns the same risk sets into a comparison with
*never* starting: a comparison person is censored at their own later start
(of any treatment), and the uncensored are weighted by the inverse of the
probability of remaining unstarted, from a discrete-time model of the
monthly hazard of starting (inverse probability of censoring weights,
Robins and Finkelstein 2000; Hernan and Robins 2020, ch. 12 and 17).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from ._data import EffectInputError, as_list, numeric_design, require_columns, require_frame
from ._memo import ContentMemo
from .learners import LogitLearner

__all__ = ["censoring_weights", "dynamic_risk_set"]


#: fitted hazards by content of (covariates, risk set, starts): every instrument of a
#: city has the same persons at risk of starting any instrument, so the hazard model of
#: an outcome horizon is fitted once
_HAZARD = ContentMemo(size=8)


def _hazard(x: np.ndarray, risk: np.ndarray, event: np.ndarray, learner: Any) -> np.ndarray:
    """The monthly hazard of starting (persons x months) from a discrete-time
    model on the person-months at risk: the covariates and one indicator per
    month after the first."""
    n, n_months = risk.shape
    dummies = np.eye(n_months)[:, 1:]
    if learner is None:  # the default logit, fitted on sums over persons and months
        model = LogitLearner()
        model.keep, model.coef_ = _person_month_logit(x, risk, event)
    else:
        rows, cols = np.nonzero(risk)
        model = copy.deepcopy(learner)
        model.fit(np.column_stack([x[rows], dummies[cols]]), event[rows, cols].astype(float))
    if type(model) is LogitLearner:
        # the linear predictor of person i in month t is a person part plus a month
        # part: no persons x months design matrix is built
        keep, coef = model.keep, model.coef_
        kx, nx = x.shape[1], int(keep[: x.shape[1]].sum())
        person = coef[0] + x[:, keep[:kx]] @ coef[1 : 1 + nx]
        month = dummies[:, keep[kx:]] @ coef[1 + nx :]
        lam = expit(person[:, None] + month[None, :])
    else:
        grid_rows = np.repeat(np.arange(n), n_months)
        grid_cols = np.tile(np.arange(n_months), n)
        lam = np.asarray(
            model.predict_proba(np.column_stack([x[grid_rows], dummies[grid_cols]])), dtype=float
        )[:, 1].reshape(n, n_months)
    lam.setflags(write=False)
    return lam


def _person_month_logit(
    x: np.ndarray, risk: np.ndarray, event: np.ndarray, *, max_iter: int = 50, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """:class:`LogitLearner` on the person-months at risk (a constant, the
    person's covariates ``x`` and an indicator of each month after the first,
    columns without variation left out), by the Newton iterations of
    :func:`reintegration.effects.numerics.logit` (same start, ridge, clipping and
    stopping rule), with the gradient and the information matrix summed per
    person and per month instead of over a person-months design matrix: the
    same maximum likelihood estimate, up to rounding. Returns the columns
    kept and the coefficients."""
    rows, cols = np.nonzero(risk)
    n_rows, n_months = len(rows), risk.shape[1]
    at_risk = risk.any(axis=1)
    keep_x = (
        np.ptp(x[at_risk], axis=0) > 0
        if x.shape[1] and at_risk.any()
        else np.zeros(x.shape[1], bool)
    )
    per_month = risk.sum(axis=0)[1:]
    keep_m = (per_month > 0) & (per_month < n_rows)
    months = np.flatnonzero(keep_m) + 1  # the months with their own indicator
    a = np.column_stack([np.ones(len(x)), x[:, keep_x]])
    e = np.where(risk, event, 0.0).astype(float)
    k_a = a.shape[1]
    beta = np.zeros(k_a + len(months))
    ridge = 1e-8 * np.eye(len(beta))
    for _ in range(max_iter):
        shift = np.zeros(n_months)
        shift[months] = beta[k_a:]
        p = 1.0 / (1.0 + np.exp(-np.clip((a @ beta[:k_a])[:, None] + shift[None, :], -30, 30)))
        w = np.where(risk, p * (1 - p), 0.0)
        r = np.where(risk, e - p, 0.0)
        w_m = w[:, months]
        info = np.empty((len(beta), len(beta)))
        info[:k_a, :k_a] = (a * w.sum(axis=1)[:, None]).T @ a
        info[:k_a, k_a:] = a.T @ w_m
        info[k_a:, :k_a] = info[:k_a, k_a:].T
        info[k_a:, k_a:] = np.diag(w_m.sum(axis=0))
        grad = np.concatenate([a.T @ r.sum(axis=1), r[:, months].sum(axis=0)])
        step = np.linalg.solve(info + ridge, grad)
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    return np.concatenate([keep_x, keep_m]), beta


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
    rows, us = [], []
    for u in range(int(min_month), int(max_month) + 1):
        at_risk = np.flatnonzero((np.isnan(e) | (e > u)) & (np.isnan(s) | (s >= u)))
        rows.append(at_risk)
        us.append(np.full(len(at_risk), u, dtype=int))
    if not rows:
        return data.iloc[0:0].assign(**{month: 0, treated: 0})
    # the risk sets one after the other, taken from the rows in one go
    take = np.concatenate(rows)
    u_row = np.concatenate(us)
    stacked = data.take(take)  # a new frame: numbered afresh without another copy
    stacked.index = pd.RangeIndex(len(take))
    stacked[month] = u_row
    stacked[treated] = (s[take] == u_row).astype(int)
    return stacked


def censoring_weights(
    data: pd.DataFrame,
    *,
    person: str,
    start: str,
    eligible: str,
    covariates: Sequence[str],
    horizon: int | None = None,
    month: str = "elapsed_month",
    learner: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    r"""Inverse probability of censoring weights that turn the "not now"
    comparison of :func:`dynamic_risk_set` into a comparison with *never*
    starting.

    A row of the stacked risk sets (person :math:`i`, elapsed month
    :math:`u`) whose person starts a treatment (any treatment) at
    :math:`S_i \in (u, h]` is *censored* (weight 0): from :math:`S_i` on its
    outcome is no longer the untreated one, and a start after the outcome's
    horizon :math:`h` cannot change it. The uncensored rows get

    .. math::

        W_{iu} = \prod_{s = u + 1}^{h} \big(1 - \hat\lambda_s(X_i)\big)^{-E_{is}},

    where :math:`E_{is} = 1` when the person could start at :math:`s` (bit
    :math:`s - 1` of ``eligible`` set: on benefit in month :math:`s - 1`)
    and :math:`\hat\lambda_s(X)` is the monthly hazard of starting any
    treatment among persons who have not started, fitted as a
    discrete-time logit (``learner``: any classifier with ``fit`` and
    ``predict_proba``) on every person-month at risk with the covariates
    and one indicator per elapsed month. Rows that start at :math:`u` (the
    treated of month :math:`u`) get weight 1.

    The weights are right when the decision to start in a month depends on
    the covariates, the elapsed month and being on benefit only (no
    unobserved confounding of later starts, the same assumption as for the
    start at :math:`u`); they treat the hazard as known in the standard
    errors.

    Parameters
    ----------
    data : pandas.DataFrame
        Stacked risk sets, with ``month`` (:math:`u`).
    person : str
        Person identifier (one set of covariates per person).
    start : str
        Elapsed month of the person's first start of any treatment; missing
        when none.
    eligible : str
        Integer bit mask per person: bit :math:`k` set when the person could
        start at month :math:`k + 1` (on benefit in month :math:`k`).
    covariates : sequence of str
        Covariates of the hazard model (fixed per person).
    horizon : int, optional
        Last month whose start censors; None: every later start.

    Returns
    -------
    (numpy.ndarray, dict)
        The weight of each row of ``data`` and a summary (rows censored,
        person-months and starts of the hazard model, largest weight).
    """
    data = require_frame(data)
    covs = as_list(covariates)
    _require_censoring_columns(
        data, person=person, start=start, eligible=eligible, month=month, covariates=covs
    )
    u = data[month].to_numpy(dtype=int)
    s_row = data[start].to_numpy(dtype=float, na_value=np.nan)
    people = data.drop_duplicates(person)
    s = people[start].to_numpy(dtype=float, na_value=np.nan)
    months = _hazard_months(s, u, horizon)
    weights = np.ones(len(data))
    censored = (s_row > u) & (s_row <= (np.inf if horizon is None else horizon))
    weights[censored] = 0.0
    info: dict[str, Any] = {
        "n_censored": int(censored.sum()),
        "hazard_person_months": 0,
        "hazard_starts": 0,
        "max_weight": 1.0,
    }
    if len(months) == 0:
        return weights, info
    risk, event = _risk_and_starts(people[eligible].to_numpy(dtype=np.int64), s, months)
    x = numeric_design(people, covs, role="covariate").to_numpy(dtype=float)
    rows, cols = np.nonzero(risk)
    n_events = int(event[rows, cols].sum())
    info.update({"hazard_person_months": len(rows), "hazard_starts": n_events})
    if n_events == 0:
        return weights, info
    if learner is None:  # the default logit is deterministic: one fit per distinct input
        lam = _HAZARD.get([x, risk, event], "logit", lambda: _hazard(x, risk, event, None))
    else:
        lam = _hazard(x, risk, event, learner)
    pos = pd.Index(people[person]).get_indexer(data[person])
    log_w = _log_inverse_survival(lam, risk, pos, u, int(months[0]))
    free = ~censored & ~(s_row == u)
    weights[free] = np.exp(log_w[free])
    info["max_weight"] = float(weights.max())
    return weights, info


def _require_censoring_columns(
    data: pd.DataFrame, *, person: str, start: str, eligible: str, month: str, covariates: list[str]
) -> None:
    """Raise, naming the column and its role, when a column of
    :func:`censoring_weights` is missing."""
    for col, role in (
        (person, "person"),
        (start, "start"),
        (eligible, "eligible"),
        (month, "month"),
    ):
        require_columns(data, [col], role=role)
    require_columns(data, covariates, role="covariate")


def _hazard_months(s: np.ndarray, u: np.ndarray, horizon: int | None) -> np.ndarray:
    """The months whose start can censor a row: from the first risk set's
    month + 1 to the last start (or the last risk set's month when nobody
    starts), at most ``horizon``."""
    last = int(np.nanmax(s)) if np.isfinite(s).any() else int(u.max())
    if horizon is not None:
        last = min(last, int(horizon))
    return np.arange(int(u.min()) + 1, last + 1)


def _risk_and_starts(
    eligible: np.ndarray, s: np.ndarray, months: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Persons x ``months`` indicators: at risk of starting (could start,
    bit ``month - 1`` of the ``eligible`` mask set, and not started before)
    and starting (the first start ``s`` in that month)."""
    on = (eligible[:, None] >> (months[None, :] - 1)) & 1 == 1
    not_started = np.isnan(s)[:, None] | (s[:, None] >= months[None, :])
    return on & not_started, s[:, None] == months[None, :]


def _log_inverse_survival(
    lam: np.ndarray, risk: np.ndarray, pos: np.ndarray, u: np.ndarray, first: int
) -> np.ndarray:
    r"""For each row (person ``pos``, risk-set month ``u``), the log of
    :math:`\prod_{s > u} (1 - \hat\lambda_s)^{-E_s}` over the hazard's months
    (the first is ``first``) where the person is at risk."""
    n, n_months = risk.shape
    log_keep = np.where(risk, np.log1p(-np.clip(lam, 0.0, 1 - 1e-6)), 0.0)
    cum = np.column_stack([np.zeros(n), np.cumsum(log_keep, axis=1)])  # cum[:, k]: months < k
    # months u + 1 .. last of each row: columns (u + 1 - first) .. end
    k = np.clip(u + 1 - first, 0, n_months)
    return -(cum[pos, -1] - cum[pos, k])

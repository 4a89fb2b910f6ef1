r"""Weighted least squares with two sets of fixed effects absorbed exactly,
and the covariance linearmodels' ``PanelOLS`` reports for it.

The event study (:func:`~reintegration.effects.event_study`) regresses an
outcome on cohort-by-event-time indicators with entity and period effects.
Both sets of effects are partialled out in closed form
(Frisch-Waugh-Lovell): the columns are demeaned within the larger set of
groups (:func:`reintegration.effects.numerics.demean` does the one-way case), and
the residuals are then projected off the smaller set, whose normal
equations after the first demeaning are

.. math::

    \Big(\operatorname{diag}(w_{\cdot t}) - N' \operatorname{diag}(1/w_{g\cdot}) N\Big)\,\beta
    = D_2' W \tilde Z,

with :math:`N` the table of summed weights by group of the first set (rows)
and of the second (columns). Only that small system is solved; no
alternating projections, so the result is exact up to rounding and the cost
is a few passes over the rows.

The covariance follows linearmodels' ``PanelOLS`` (version 7): the
sandwich of :func:`reintegration.effects.numerics.sandwich_cov` on the
(square-root-weighted) partialled-out data, scaled by
:math:`n / (n - d - k)` with :math:`d = G + T - 1` absorbed effects and
:math:`k` regressors when ``debiased`` (else :math:`n / (n - d)`), for
clustered and heteroskedasticity-robust covariances alike. The reference
test (``tests/test_event_study.py``) compares it with ``PanelOLS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import sparse

from ._data import EffectInputError
from .numerics import sandwich_cov

#: a column is absorbed by the effects when less than this share of its norm is left
#: (linearmodels' tolerance)
ABSORBED_TOL = 1e-5
#: below this condition number (of the unit-scaled cross-products) the normal
#: equations are solved by Cholesky
CHOLESKY_MAX_COND = 1e6


def absorb_two_way(
    a: np.ndarray, g1: np.ndarray, g2: np.ndarray, w: np.ndarray | None = None
) -> np.ndarray:
    """Weighted residuals of ``a`` (a vector or the columns of a matrix) on
    the indicators of two sets of groups (integer codes ``g1``, ``g2``,
    every code present, weights ``w`` positive), exactly."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        return absorb_two_way(a[:, None], g1, g2, w)[:, 0]
    n = len(a)
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    g1, g2 = np.asarray(g1, dtype=np.int64), np.asarray(g2, dtype=np.int64)
    n1, n2 = int(g1.max()) + 1, int(g2.max()) + 1
    if n2 > n1:  # the smaller set goes into the dense system
        g1, g2, n1, n2 = g2, g1, n2, n1
    rows = np.arange(n)
    s1 = sparse.csr_array((w, (g1, rows)), shape=(n1, n))
    s2 = sparse.csr_array((w, (g2, rows)), shape=(n2, n))
    w1 = np.bincount(g1, weights=w, minlength=n1)
    cells = np.bincount(g1 * n2 + g2, weights=w, minlength=n1 * n2).reshape(n1, n2)
    share = cells / w1[:, None]
    out = a - (s1 @ a / w1[:, None])[g1]
    normal = np.diag(cells.sum(axis=0)) - cells.T @ share
    beta = np.linalg.lstsq(normal, s2 @ out, rcond=None)[0]
    out -= beta[g2]
    out += (share @ beta)[g1]
    return out


def _check_absorbed(xt: np.ndarray, x: np.ndarray, names: list[str]) -> None:
    """Raise when a regressor is absorbed by the effects or collinear with the
    ones before it: less than :data:`ABSORBED_TOL` of its norm (before the
    effects were removed) left after orthogonalising, as linearmodels checks."""
    norms = np.linalg.norm(x, axis=0)
    scaled = xt / np.where(norms > 0, norms, 1.0)
    gram = scaled.T @ scaled
    k = len(names)
    low = np.zeros((k, k))
    for j in range(k):
        rest = gram[j, j] - low[j, :j] @ low[j, :j]
        size = float(np.sqrt(max(rest, 0.0)))
        if size < ABSORBED_TOL:
            raise EffectInputError(
                f"regressor {names[j]!r} is absorbed by the fixed effects or collinear "
                "with the regressors before it"
            )
        low[j, j] = size
        low[j + 1 :, j] = (gram[j + 1 :, j] - low[j + 1 :, :j] @ low[j, :j]) / size


def _least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares coefficients: by the Cholesky factor of the normal
    equations when the columns, scaled to unit length, have a condition
    number below :data:`CHOLESKY_MAX_COND` (rounding error then far below
    1e-8, at a tenth of the cost of an SVD of the rows), else by
    ``numpy.linalg.lstsq``."""
    gram = x.T @ x
    scale = np.sqrt(np.diag(gram))
    if np.all(scale > 0):
        scaled = gram / np.outer(scale, scale)
        if np.linalg.cond(scaled) < CHOLESKY_MAX_COND:
            factor = scipy.linalg.cho_factor(scaled)
            return scipy.linalg.cho_solve(factor, (x.T @ y) / scale) / scale
    return np.linalg.lstsq(x, y, rcond=None)[0]


@dataclass
class PanelFit:
    """A fitted regression with two sets of fixed effects absorbed: what
    callers read of linearmodels' ``PanelEffectsResults`` (``params``,
    ``cov``, ``std_errors``, ``nobs``, ``df_model``, ``df_resid``), the
    regression's data (``dependent``, ``exog``, the ``entity`` and
    ``period`` codes, ``weights``) and the partialled-out data."""

    params: pd.Series
    cov: pd.DataFrame
    nobs: int
    df_model: int
    df_resid: int
    cov_type: str
    dependent: np.ndarray
    exog: pd.DataFrame
    entity: np.ndarray
    period: np.ndarray
    weights: np.ndarray
    resids: np.ndarray
    demeaned: tuple[np.ndarray, np.ndarray] = field(repr=False)

    @property
    def std_errors(self) -> pd.Series:
        return pd.Series(
            np.sqrt(np.clip(np.diag(self.cov.to_numpy()), 0, None)),
            index=self.params.index,
            name="std_error",
        )


def fit_two_way(
    y: np.ndarray,
    exog: pd.DataFrame,
    *,
    entity: np.ndarray,
    period: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray | None,
    debiased: bool,
) -> PanelFit:
    """Weighted least squares of ``y`` on ``exog`` with entity and period
    effects absorbed; clustered covariance on ``clusters`` (robust without);
    the degrees of freedom and scaling of linearmodels' ``PanelOLS``."""
    names = [str(c) for c in exog.columns]
    x = exog.to_numpy(dtype=float)
    w = np.asarray(weights, dtype=float)
    ent = np.unique(entity, return_inverse=True)[1]
    per = np.unique(period, return_inverse=True)[1]
    both = absorb_two_way(np.column_stack([y, x]), ent, per, w)
    yt, xt = both[:, 0], both[:, 1:]
    root = np.sqrt(w)
    ys, xs = yt * root, xt * root[:, None]
    _check_absorbed(xs, x * root[:, None], names)
    params = _least_squares(xs, ys)
    eps = ys - xs @ params
    n, k = xs.shape
    effects = int(ent.max()) + int(per.max()) + 1  # G + T - 1
    left = n - effects - (k if debiased else 0)
    if left <= 0:
        raise EffectInputError(
            f"no residual degrees of freedom: {n} observations, {k} regressors and "
            f"{effects} absorbed effects"
        )
    if clusters is not None and len(np.unique(clusters)) < 2:
        raise EffectInputError("a clustered covariance needs at least two clusters")
    cov = sandwich_cov(xs, eps, clusters) * (n / left)
    cov = (cov + cov.T) / 2
    return PanelFit(
        params=pd.Series(params, index=names, name="parameter"),
        cov=pd.DataFrame(cov, index=names, columns=names),
        nobs=n,
        df_model=k + effects,
        df_resid=n - k - effects,
        cov_type="clustered" if clusters is not None else "robust",
        dependent=np.asarray(y, dtype=float),
        exog=exog,
        entity=np.asarray(entity),
        period=np.asarray(period),
        weights=w,
        resids=eps,
        demeaned=(yt, xt),
    )

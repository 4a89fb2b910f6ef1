"""Sums that let the selection-on-observables estimator skip work, without changing a number.

:func:`reintegration.effects.selection_on_observables` runs its estimator in every
stratum of every outcome, subgroup and estimand. The helpers here give the numbers
of the direct computation, up to rounding, from fewer passes over the rows:

* :func:`_full_column_rank`: numpy's rank decision from the cross product when
  it settles it, without a singular value decomposition of the tall matrix;
* :class:`_FoldGrams`: the cross-fitted linear outcome model from one cross
  product per fold instead of one least-squares decomposition per training set;
* :class:`Moments`, :func:`_moments`, :func:`_pooled`: means and variances of
  the balance table from one centred copy of the rows, pooled over strata;
* :func:`_complete_rows`, :func:`_cluster_codes`: the complete rows and the
  cluster codes without copies or group-bys (the cluster-robust variance from
  integer codes is :func:`reintegration.effects._data.cluster_variance`);
* :func:`_balance`, :func:`_max_smd`, :func:`_kish`, :func:`_stratum_rows`: the
  balance table, the largest weighted difference, Kish's effective size and
  the rows of a stratum, read by the estimator and by its multi-outcome path
  (:mod:`reintegration.effects.selection_outcomes`).

``tests/test_effects_speed.py`` compares each with the computation it replaces.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "Moments",
    "_FoldGrams",
    "_balance",
    "_kish",
    "_max_smd",
    "_rows",
    "_stratum_rows",
    "_cluster_codes",
    "_complete_rows",
    "_full_column_rank",
    "_group_moments",
    "_moments",
    "_pooled",
]


def _full_column_rank(a: np.ndarray, gram: np.ndarray | None = None) -> bool:
    """``numpy.linalg.matrix_rank(a) == a.shape[1]``, without the singular
    value decomposition of the tall matrix where the cross product settles
    it (``gram``: :math:`A'A` when the caller has it). With :math:`A = BD`,
    :math:`D` the column norms, :math:`\\sigma_{min}(A) \\ge \\sigma_{min}(B)
    \\min_j D_j` and :math:`\\sigma_{max}(A) \\le \\|A\\|_F`: when the smallest
    eigenvalue of :math:`B'B` is far above its rounding (each entry is off by
    at most :math:`n\\epsilon`, so the eigenvalue by :math:`kn\\epsilon`) and this lower
    bound exceeds a thousand times matrix_rank's tolerance
    :math:`\\|A\\|_F \\max(n, k)\\,\\epsilon`, every singular value is above the
    tolerance; otherwise the decomposition decides, as before."""
    n, k = a.shape
    if n >= k > 0 and n * np.finfo(float).eps < 1e-9 and np.all(np.isfinite(a)):
        if gram is None:
            gram = a.T @ a
        norms = np.sqrt(np.diag(gram))
        if norms.min() > 0:
            low = np.linalg.eigvalsh(gram / np.outer(norms, norms))[0]
            tol = math.sqrt(np.trace(gram)) * max(n, k) * np.finfo(float).eps
            bound = max(1e-6, 10 * k * n * np.finfo(float).eps)
            if low > bound and math.sqrt(low) * norms.min() > 1e3 * tol:
                return True
    return bool(np.linalg.matrix_rank(a) == k)


class _FoldGrams:
    """:class:`OLSLearner` on the controls of all folds but one, from the
    weighted cross products of each fold's controls (one pass over the rows
    for all folds instead of one least-squares decomposition per fold): the
    normal equations of the training folds are the sums of theirs, solved
    after scaling the columns to unit length. The least-squares solution,
    up to rounding, when the scaled cross product is well conditioned (its
    smallest eigenvalue above 1e-4, so its condition number is below 1e4
    times the number of columns and rounding moves the predictions by that
    many machine epsilons, far below 1e-8); otherwise :meth:`predict`
    returns None and the caller fits the learner, as before."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        d: np.ndarray,
        c: np.ndarray,
        fold: np.ndarray,
        folds: int,
    ) -> None:
        k = x.shape[1]
        self.gram = np.zeros((folds, k + 1, k + 1))
        self.xty = np.zeros((folds, k + 1))
        self.low = np.full((folds, k), np.inf)
        self.high = np.full((folds, k), -np.inf)
        self.count = np.zeros(folds, dtype=int)
        self._rows: list[tuple[int, np.ndarray, np.ndarray]] = []
        ctrl = (d == 0) & (c > 0)
        for j in range(folds):
            rows = ctrl & (fold == j)
            if not rows.any():
                continue
            xr = np.column_stack([np.ones(int(rows.sum())), x[rows]])
            xw = xr * c[rows, None]
            self.gram[j] = xw.T @ xr
            self._rows.append((j, rows, xw))
            if k:
                self.low[j], self.high[j] = xr[:, 1:].min(axis=0), xr[:, 1:].max(axis=0)
            self.count[j] = int(rows.sum())
        if y is not None:
            self._set_outcome(y)

    def _set_outcome(self, y: np.ndarray) -> None:
        for j, rows, xw in self._rows:
            self.xty[j] = xw.T @ y[rows]

    def outcome(self, y: np.ndarray) -> _FoldGrams:
        """The same cross products with those of the outcome ``y``: one pass
        over the covariates serves every outcome of a sample."""
        out = copy.copy(self)
        out.xty = np.zeros_like(self.xty)
        out._set_outcome(y)
        return out

    def predict(self, k: int, x_test: np.ndarray) -> np.ndarray | None:
        train = np.arange(len(self.count)) != k
        n = int(self.count[train].sum())
        if n == 0:
            return None
        keep = self.high[train].max(axis=0) > self.low[train].min(axis=0)
        cols = np.concatenate([[True], keep])
        if n < cols.sum():
            return None
        a = self.gram[train].sum(axis=0)[np.ix_(cols, cols)]
        b = self.xty[train].sum(axis=0)[cols]
        norms = np.sqrt(np.diag(a))
        if not np.all(norms > 0) or not np.all(np.isfinite(a)):
            return None
        scaled = a / np.outer(norms, norms)
        if np.linalg.eigvalsh(scaled)[0] <= 1e-4:
            return None
        coef = np.linalg.solve(scaled, b / norms) / norms
        return np.column_stack([np.ones(len(x_test)), x_test[:, keep]]) @ coef


class Moments(NamedTuple):
    """Count, column means and sums of squared deviations from them of some
    rows, with the sum of their weights and the weighted column means (NaN
    without weights)."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    w_sum: float
    w_mean: np.ndarray

    @property
    def var(self) -> np.ndarray:
        """The variance with ddof 1 (NaN below two rows, as numpy's ``var``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.m2 / max(self.n - 1, 0)


def _moments(x: np.ndarray, rows: np.ndarray, w: np.ndarray | None = None) -> Moments:
    """The moments of the columns of ``x`` over ``rows`` as numpy's ``mean``
    and ``var`` compute them (column sums over the rows, then the squares of
    the deviations from that mean), from one copy of the rows centred in
    place instead of numpy's temporaries; ``w``: one weight per row of
    ``rows``."""
    xs = x[rows]
    n = xs.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        w_sum = float(w.sum()) if w is not None else math.nan
        w_mean = (w @ xs) / w_sum if w is not None else np.full(x.shape[1], np.nan)
        mean = xs.sum(axis=0) / n
        xs -= mean
    return Moments(n, mean, np.einsum("ij,ij->j", xs, xs), w_sum, w_mean)


def _pooled(parts: Sequence[Moments]) -> Moments:
    """The moments of the union of disjoint row sets from theirs (Chan, Golub
    and LeVeque's pairwise update of the mean and the sum of squared
    deviations); sets without rows are left out."""
    parts = [m for m in parts if m.n > 0]
    if not parts:
        return Moments(0, np.nan, np.nan, 0.0, np.nan)
    n, mean, m2 = parts[0].n, parts[0].mean.copy(), parts[0].m2.copy()
    for m in parts[1:]:
        delta = m.mean - mean
        total = n + m.n
        mean = mean + delta * (m.n / total)
        m2 = m2 + m.m2 + delta**2 * (n * m.n / total)
        n = total
    w_sum = float(sum(m.w_sum for m in parts))
    weighted = [m for m in parts if m.w_sum > 0]  # sets whose weights are all 0 add nothing
    with np.errstate(invalid="ignore", divide="ignore"):
        w_mean = (
            sum(m.w_mean * m.w_sum for m in weighted) / w_sum
            if weighted
            else np.full(len(mean), np.nan)
        )
    return Moments(n, mean, m2, w_sum, w_mean)


def _group_moments(
    x: np.ndarray, d: np.ndarray, w: np.ndarray, used: np.ndarray
) -> tuple[Moments, Moments]:
    """The moments of the used treated rows and of the used controls (with
    their weights ``w``)."""
    trt, ctrl = used & (d == 1), used & (d == 0)
    return _moments(x, trt), _moments(x, ctrl, w[ctrl])


def _complete_rows(data: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """:func:`reintegration.effects._data.complete_cases` without copies: the
    rows without a missing value in ``columns`` (the frame itself when none
    is missing, which is only read) and the number dropped."""
    cols = list(dict.fromkeys(columns))
    keep = np.ones(len(data), dtype=bool)
    for col in cols:
        keep &= data[col].notna().to_numpy()
    n_missing = int(len(keep) - keep.sum())
    return (data if n_missing == 0 else data.loc[keep, cols]), n_missing


def _cluster_codes(values: pd.Series) -> np.ndarray:
    """Integer codes of the clusters in sorted order (the codes of
    :func:`reintegration.effects._data.codes` for one complete column, by one
    factorisation instead of a group-by)."""
    return pd.factorize(values, sort=True)[0]


def _balance(
    x: np.ndarray,
    columns: Sequence[str],
    d: np.ndarray,
    weights: np.ndarray | None,
    used: np.ndarray,
    *,
    parts: Sequence[tuple[Moments, Moments]] | None = None,
) -> pd.DataFrame:
    """Means and standardised differences of the ``used`` rows of ``x``
    (``d`` and ``weights`` of the used rows); ``parts``: the moments of the
    treated and the controls of disjoint row sets that make up the used rows
    (the strata), pooled instead of computed again from ``x``."""
    if parts is not None:
        mom_t, mom_c = _pooled([p[0] for p in parts]), _pooled([p[1] for p in parts])
    else:
        trt, ctrl = d == 1, d == 0
        mom_t = _moments(x, _rows(used, trt))
        mom_c = _moments(x, _rows(used, ctrl), None if weights is None else weights[ctrl])
    mt, mc, mw = mom_t.mean, mom_c.mean, mom_c.w_mean
    sd = np.sqrt((mom_t.var + mom_c.var) / 2)
    sd = np.where(sd > 0, sd, np.nan)
    out = pd.DataFrame(
        {"mean_treated": mt, "mean_control": mc, "smd_raw": (mt - mc) / sd},
        index=pd.Index(columns, name="covariate"),
    )
    if weights is not None:
        out["mean_control_weighted"] = mw
        out["smd_weighted"] = (mt - mw) / sd
    return out


def _rows(used: np.ndarray, among: np.ndarray) -> np.ndarray:
    """The rows of a full-length array that are ``among`` the used ones."""
    out = np.zeros(len(used), dtype=bool)
    out[np.flatnonzero(used)[among]] = True
    return out


def _kish(w: np.ndarray) -> float | None:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2` (None
    without weights)."""
    w = np.asarray(w, dtype=float)
    s2 = float(np.sum(w**2))
    return float(w.sum() ** 2 / s2) if s2 > 0 else None


def _max_smd(
    x: np.ndarray,
    d: np.ndarray,
    w: np.ndarray,
    used: np.ndarray,
    *,
    moments: tuple[Moments, Moments] | None = None,
) -> float | None:
    """The largest absolute standardised mean difference between the treated
    and the weighted controls among the ``used`` rows (pooled standard
    deviation of the unweighted groups); None when no covariate varies.
    ``moments``: those of :func:`_group_moments`, when the caller has them."""
    trt, ctrl = used & (d == 1), used & (d == 0)
    if trt.sum() < 2 or ctrl.sum() < 2 or x.shape[1] == 0 or w[ctrl].sum() <= 0:
        return None
    mom_t, mom_c = moments if moments is not None else _group_moments(x, d, w, used)
    sd = np.sqrt((mom_t.var + mom_c.var) / 2)
    smd = np.abs(mom_t.mean - mom_c.w_mean)[sd > 0] / sd[sd > 0]
    return float(smd.max()) if len(smd) else None


def _stratum_rows(s: np.ndarray) -> Any:
    """A function from a stratum to its rows: a slice when the strata are
    sorted (the stacked risk sets are, by elapsed month), so that a stratum's
    arrays are views rather than copies with the same values; else a boolean
    mask."""
    if s.dtype.kind in "iuf" and (len(s) < 2 or bool(np.all(s[1:] >= s[:-1]))):
        return lambda value: slice(
            int(np.searchsorted(s, value, "left")), int(np.searchsorted(s, value, "right"))
        )
    return lambda value: s == value

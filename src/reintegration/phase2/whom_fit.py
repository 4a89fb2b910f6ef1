"""The cross-fitted nuisance models of :mod:`reintegration.phase2.whom`
(:func:`cross_fit`: propensity, outcome models and the predicted individual
effect per row, in folds of persons), and the linear ones fitted from one
design matrix per sample, with the numbers of the generic learners.

With the linear learners (a logit and least squares,
:class:`reintegration.effects.learners.LogitLearner` and ``OLSLearner``),
:func:`cross_fit` fits many models on subsets of one sample's rows: per
cross-fitting fold, and per pair of folds for the DR-learner's pseudo-outcomes
(:func:`reintegration.phase2.whom_dr.honest_proxy`). The learners build their
design (a constant and the columns that vary in the training rows) afresh from a
copy of the rows each time. :class:`SharedDesign` builds the constant and the
features once, in the column-major layout the learners' design has, and copies
only the rows and columns a fit uses; the columns that vary come from each
column's minimum and maximum per fold and start, computed once. The arrays handed
to the logit and to least squares are equal bit for bit to the learners', so the
coefficients are too.

Propensity models do not read the outcome: for outcomes observed on the same rows
of one risk-set frame (the same sample, the same folds), each propensity model is
fitted once (:func:`shared_design`, keyed on the frame, the features, folds and
seed, and the rows with the outcome). :func:`reintegration.effects._memo.disabled`
switches this path off: the generic learners then fit every model (the tests
compare the two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from threadpoolctl import threadpool_limits

from ..effects import _memo
from ..effects.learners import learners
from ..effects.numerics import logit
from .whom_dr import E_BOUNDS, IATE_LEARNERS, honest_proxy

TREATED, MONTH, PID = "treated", "elapsed_month", "_pid"

#: the sample's arrays per risk-set frame and key (:func:`shared_design`)
_SAMPLES = _memo.FrameMemo()


class SharedDesign:
    """A constant and the features ``X`` of one sample (column-major), with the
    minimum and maximum of each feature per cell of fold and start ``d`` (0/1),
    and the propensities fitted so far (keyed on the training and scored rows)."""

    def __init__(self, X: np.ndarray, d: np.ndarray, fold: np.ndarray) -> None:
        n, p = X.shape
        self.d = d
        self.full = np.empty((n, p + 1), order="F")
        self.full[:, 0] = 1.0
        self.full[:, 1:] = X
        self.X = self.full[:, 1:]  # the features, a view (X itself need not be kept)
        self.cell = np.asarray(fold, dtype=np.int64) * 2 + (np.asarray(d) == 1)
        self.cells: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        if p and n:
            # each column's extremes per cell, from the rows sorted by cell
            order = np.argsort(self.cell, kind="stable")
            cells, starts, counts = np.unique(self.cell[order], return_index=True,
                                              return_counts=True)
            high, low = np.empty((len(cells), p)), np.empty((len(cells), p))
            for j in range(p):
                col = self.full[:, j + 1].take(order)
                high[:, j] = np.maximum.reduceat(col, starts)
                low[:, j] = np.minimum.reduceat(col, starts)
            for i, c in enumerate(cells):
                self.cells[int(c)] = (int(counts[i]), high[i], low[i])
        self.propensity: dict[tuple[bytes, bytes], np.ndarray] = {}
        self._scored: tuple[bytes, bytes, np.ndarray] | None = None

    def keep(self, rows: np.ndarray) -> np.ndarray:
        """The features that vary in ``rows`` (``np.ptp(X[rows], axis=0) > 0``),
        from the cells' extremes when ``rows`` is a union of cells."""
        if self.X.shape[1] == 0:
            return np.zeros(0, bool)
        found = np.bincount(self.cell[rows])
        chosen = [int(c) for c in np.flatnonzero(found)]
        # a union of cells: every row of each cell it touches
        if not chosen or any(self.cells[c][0] != found[c] for c in chosen):
            return np.ptp(self.X[rows], axis=0) > 0
        high = np.max([self.cells[c][1] for c in chosen], axis=0)
        low = np.min([self.cells[c][2] for c in chosen], axis=0)
        return (high - low) > 0

    def rows(self, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The constant and the ``keep`` features of ``rows``, column-major
        (the learners' design of ``X[rows]``)."""
        idx = np.flatnonzero(rows)
        cols = np.flatnonzero(np.concatenate([[True], keep]))
        out = np.empty((len(idx), len(cols)), order="F")
        for j, c in enumerate(cols):
            np.take(self.full[:, c], idx, out=out[:, j])
        return out

    def scored_rows(self, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """:meth:`rows` for predictions, the last rows and columns kept (the
        propensity and the outcome model predict for the same rows in turn)."""
        key = (np.packbits(rows).tobytes(), np.packbits(keep).tobytes())
        if self._scored is None or self._scored[:2] != key:
            self._scored = (*key, self.rows(rows, keep))
        return self._scored[2]

    def weighted_least_squares(self, train: np.ndarray, target: np.ndarray,
                               weight: np.ndarray) -> np.ndarray:
        """:func:`reintegration.phase2.whom_dr._weighted_least_squares` of the
        features' ``train`` rows, predicted for the other rows."""
        keep = self.keep(train)
        A = self.rows(train, keep)
        gram = (A * weight[:, None]).T @ A
        beta = np.linalg.lstsq(gram, A.T @ (weight * target), rcond=None)[0]
        return self.rows(~train, keep) @ beta

    def propensity_of(self, fit: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The logit of ``d`` fitted on the rows in ``fit``, predicted for the
        rows in ``score`` (fitted once per pair of row sets). Newton's method
        starts from zero: a start from another fit would make the prediction
        for a fold depend, if only in its last bits, on rows outside ``fit``
        (tests/test_whom_dr.py checks that a fold's outcomes never reach its
        predictions, bit for bit)."""
        key = (np.packbits(fit).tobytes(), np.packbits(score).tobytes())
        if key not in self.propensity:
            keep = self.keep(fit)
            coef = logit(self.d[fit], self.rows(fit, keep))
            self.propensity[key] = expit(self.scored_rows(score, keep) @ coef)
        return self.propensity[key]

    def outcome_of(self, y: np.ndarray, fit: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Least squares of ``y`` on the rows in ``fit``, predicted for ``score``."""
        keep = self.keep(fit)
        coef = np.linalg.lstsq(self.rows(fit, keep), y[fit], rcond=None)[0]
        return self.scored_rows(score, keep) @ coef


def shared_design(data: pd.DataFrame, has_outcome: np.ndarray, key: tuple,
                  build: Callable[[], tuple]) -> tuple:
    """``build()`` (the sample's arrays, ending with its :class:`SharedDesign`)
    once per risk-set frame ``data``, ``key`` (features, folds, seed) and rows
    with the outcome."""
    rows = np.packbits(np.asarray(has_outcome, dtype=bool)).tobytes()
    return _SAMPLES.get(data, (key, len(has_outcome), rows), build)


def fit_folds(design: SharedDesign, y: np.ndarray, d: np.ndarray, fold: np.ndarray,
              folds: int, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray | None) -> None:
    """:func:`_fit_folds` with the linear learners."""
    for k in range(folds):
        train, test = fold != k, fold == k
        e[test] = design.propensity_of(train, test)
        mu0[test] = design.outcome_of(y, train & (d == 0), test)
        if mu1 is not None:
            mu1[test] = design.outcome_of(y, train & (d == 1), test)


def pseudo_scores(design: SharedDesign, y: np.ndarray, e_bounds: Sequence[float]
                  ) -> Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    """:func:`reintegration.phase2.whom_dr.pseudo_scores` with the linear learners,
    as ``(fit, score, seed) -> (e, psi)`` (the seed is not used by them)."""
    d = design.d

    def scored(fit: np.ndarray, score: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        e = np.clip(design.propensity_of(fit, score), *e_bounds)
        r = y[score] - design.outcome_of(y, fit & (d == 0), score)
        ds = d[score]
        return e, ds * r - (1 - ds) * e / (1 - e) * r
    return scored


def _features(data: pd.DataFrame, covariates: Sequence[str], kind: str) -> np.ndarray:
    cols = [c for c in covariates if c in data]
    X = data[cols].to_numpy(dtype=float)
    month = data[MONTH].to_numpy(dtype=float)
    if kind == "linear":
        dummies = pd.get_dummies(data[MONTH].astype(int), drop_first=True, dtype=float)
        return np.column_stack([X, dummies.to_numpy()])
    return np.column_stack([X, month])


def cross_fit(data: pd.DataFrame, outcome: str, covariates: Sequence[str], *,
              folds: int = 3, seed: int = 0, learner: str = "boosting",
              iate: str = "dr_linear") -> pd.DataFrame:
    """Cross-fitted e, mu0 and mu1 for every row with the outcome (folds of
    persons) and the predicted individual effect ``proxy`` (``iate``: a
    DR-learner of :mod:`reintegration.phase2.whom_dr`, or ``t_learner``:
    mu1 - mu0; mu1 is fitted only for the latter, NaN otherwise); returns
    the rows with columns y, d, e, mu0, mu1, proxy, the person and the fold.
    The linear learners share one design matrix per sample, and the
    propensity models between outcomes observed on the same rows (module text)."""
    if iate not in IATE_LEARNERS:
        raise ValueError(f"heterogeneity.iate must be one of {IATE_LEARNERS}, not {iate!r}")
    has = data[outcome].notna().to_numpy()
    if learner == "linear" and _memo.enabled():
        X, Z, d, pid, fold, design = shared_design(
            data, has, (tuple(covariates), folds, seed),
            lambda: _sample(data, has, covariates, folds, seed, learner, shared=True))
    else:
        X, Z, d, pid, fold, design = _sample(data, has, covariates, folds, seed, learner)
    y = data.loc[has, outcome].to_numpy(dtype=float)
    e, mu0, mu1 = np.full(len(y), np.nan), np.full(len(y), np.nan), np.full(len(y), np.nan)
    t_learner = iate == "t_learner"
    # one thread per fit: OpenMP's threads in gradient boosting slow it down by
    # an order of magnitude on a busy two-core machine (measured: 0.08 s against 22 s)
    with threadpool_limits(limits=1):
        if design is None:
            _fit_folds(X, y, d, fold, folds, seed, learner, e, mu0, mu1 if t_learner else None)
        else:
            fit_folds(design[0], y, d, fold, folds, e, mu0, mu1 if t_learner else None)
        proxy = mu1 - mu0 if t_learner else honest_proxy(
            X, Z, y, d, fold, pid, kind=iate, learner=learner, seed=seed,
            scored=None if design is None else pseudo_scores(design[0], y, E_BOUNDS),
            second=design[1].weighted_least_squares
            if design is not None and iate == "dr_linear" else None)
    return pd.DataFrame({"y": y, "d": d, "e": np.clip(e, *E_BOUNDS), "mu0": mu0, "mu1": mu1,
                         "proxy": proxy, PID: pid, "fold": fold}, index=pd.RangeIndex(len(y)))


def renumbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.reset_index(drop=True)`` without copying the columns: a new
    frame object sharing them, rows numbered from 0 (Phase 2 never changes a
    frame in place)."""
    out = frame.copy(deep=False)
    out.index = pd.RangeIndex(len(out))
    return out


def _sample(data, has, covariates, folds, seed, learner, shared=False) -> tuple:
    """The rows with the outcome: nuisance and second-stage features, start,
    person, fold (persons in random folds), and when ``shared`` a
    :class:`SharedDesign` of each kind of features."""
    cols = [c for c in dict.fromkeys([*covariates, MONTH, TREATED, PID]) if c in data]
    sample = renumbered(data.loc[has, cols])
    X, Z = _features(sample, covariates, learner), _features(sample, covariates, "month")
    d = sample[TREATED].to_numpy(dtype=int)
    pid = sample[PID].to_numpy()
    persons, codes = np.unique(pid, return_inverse=True)
    fold = (np.random.default_rng(seed).permutation(len(persons)) % folds)[codes]
    if shared:  # the features live on in their designs only
        designs = SharedDesign(X, d, fold), SharedDesign(Z, d, fold)
        return None, designs[1].X, d, pid, fold, designs
    return X, Z, d, pid, fold, None


def _fit_folds(X, y, d, fold, folds, seed, learner, e, mu0, mu1) -> None:
    """e, mu0 (and mu1 unless None) of each fold's rows from the learners
    fitted on the other folds."""
    for k in range(folds):
        train, test = fold != k, fold == k
        first = learners(learner, seed=seed + k)
        clf, reg0 = first["propensity_learner"], first["outcome_learner"]
        clf.fit(X[train], d[train])
        e[test] = clf.predict_proba(X[test])[:, 1]
        c, t = train & (d == 0), train & (d == 1)
        reg0.fit(X[c], y[c])
        mu0[test] = reg0.predict(X[test])
        if mu1 is not None:
            reg1 = learners(learner, seed=seed + 100 + k)["outcome_learner"]
            reg1.fit(X[t], y[t])
            mu1[test] = reg1.predict(X[test])

"""The linear nuisance models of :mod:`reintegration.phase2.whom` fitted from one
design matrix per sample, with the numbers of the generic learners.

:func:`reintegration.phase2.whom.cross_fit` fits a logit and least squares
(:class:`reintegration.effects.learners.LogitLearner`, ``OLSLearner``) on many
subsets of one sample's rows: per cross-fitting fold, and per pair of folds for
the DR-learner's pseudo-outcomes (:func:`reintegration.phase2.whom_dr.honest_proxy`).
The learners build their design (a constant and the columns that vary in the
training rows) afresh from a copy of the rows each time. :class:`SharedDesign`
builds the constant and the features once, in the column-major layout the
learners' design has, and copies only the rows and columns a fit uses; the
columns that vary come from each column's minimum and maximum per fold and start,
computed once. The arrays handed to the logit and to least squares are equal
bit for bit to the learners', so the coefficients are too.

Propensity models do not read the outcome: for outcomes observed on the same rows
(the same sample, the same folds), each propensity model is fitted once
(:func:`shared_design`, keyed on the risk sets, the features and the rows with
the outcome). :func:`reintegration.effects._memo.disabled` switches this path
off: the generic learners then fit every model (the tests compare the two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from ..effects import _memo
from ..effects.numerics import logit

#: sample arrays per prepared risk-set frame and key (:func:`shared_design`)
_SAMPLES = _memo.FrameMemo()


class SharedDesign:
    """A constant and the features ``X`` of one sample (column-major), with the
    minimum and maximum of each feature per cell of fold and start ``d`` (0/1),
    and the propensities fitted so far (keyed on the training and scored rows)."""

    def __init__(self, X: np.ndarray, d: np.ndarray, fold: np.ndarray) -> None:
        n, p = X.shape
        self.X, self.d = X, d
        self.full = np.empty((n, p + 1), order="F")
        self.full[:, 0] = 1.0
        self.full[:, 1:] = X
        self.cell = np.asarray(fold, dtype=np.int64) * 2 + (np.asarray(d) == 1)
        self.cells: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        if p:
            for c in np.unique(self.cell):
                part = X[self.cell == c]
                self.cells[int(c)] = (len(part), part.max(axis=0), part.min(axis=0))
        self.propensity: dict[tuple[bytes, bytes], np.ndarray] = {}
        self._scored: tuple[bytes, bytes, np.ndarray] | None = None

    def keep(self, rows: np.ndarray) -> np.ndarray:
        """The features that vary in ``rows`` (``np.ptp(X[rows], axis=0) > 0``),
        from the cells' extremes when ``rows`` is a union of cells."""
        if self.X.shape[1] == 0:
            return np.zeros(0, bool)
        chosen = [int(c) for c in np.unique(self.cell[rows])]
        if not chosen or sum(self.cells[c][0] for c in chosen) != np.count_nonzero(rows):
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

    def propensity_of(self, fit: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The logit of ``d`` fitted on the rows in ``fit``, predicted for the
        rows in ``score`` (fitted once per pair of row sets)."""
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
    """:func:`reintegration.phase2.whom._fit_folds` with the linear learners."""
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

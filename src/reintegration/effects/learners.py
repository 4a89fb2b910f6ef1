"""Nuisance learners of the doubly robust estimators (scikit-learn protocol).

``fit(X, y[, sample_weight])`` and ``predict(X)`` for outcome models,
``fit(X, d)`` and ``predict_proba(X)`` for propensity models. The linear
ones (OLS, a logit by Newton's method) are the defaults; :func:`learners`
also offers scikit-learn's histogram gradient boosting
(``HistGradientBoostingRegressor`` / ``HistGradientBoostingClassifier``),
used with cross-fitting by :func:`reintegration.effects.selection_on_observables`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from .numerics import logit

__all__ = ["LEARNERS", "LogitLearner", "OLSLearner", "learners"]

#: the learner families :func:`learners` builds
LEARNERS = ("linear", "boosting")


class _Columns:
    """Remembers which columns varied in the training data."""

    keep: np.ndarray

    def _design(self, x: np.ndarray, *, fit: bool) -> np.ndarray:
        if fit:
            self.keep = np.ptp(x, axis=0) > 0 if x.shape[1] else np.zeros(0, bool)
        return np.column_stack([np.ones(x.shape[0]), x[:, self.keep]])


class OLSLearner(_Columns):
    """Linear outcome model (OLS with a constant, optionally weighted),
    ``fit``/``predict``."""

    def fit(
        self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> OLSLearner:
        xc = self._design(x, fit=True)
        if sample_weight is not None:
            root = np.sqrt(np.asarray(sample_weight, dtype=float))
            xc, y = xc * root[:, None], y * root
        self.coef_ = np.linalg.lstsq(xc, y, rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._design(x, fit=False) @ self.coef_


class LogitLearner(_Columns):
    """Logit propensity model with a constant
    (:func:`reintegration.effects.numerics.logit`), ``fit``/``predict_proba``."""

    def fit(self, x: np.ndarray, d: np.ndarray) -> LogitLearner:
        xc = self._design(x, fit=True)
        self.coef_ = logit(d, xc)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = expit(self._design(x, fit=False) @ self.coef_)
        return np.column_stack([1 - p, p])


def learners(kind: str = "linear", *, seed: int = 0) -> dict[str, Any]:
    """The outcome and propensity learners of a family, as the keyword
    arguments ``outcome_learner`` and ``propensity_learner``.

    ``"linear"``: :class:`OLSLearner` and :class:`LogitLearner`.
    ``"boosting"``: histogram gradient boosting with shallow trees (at most
    15 leaves, at least 50 observations per leaf, learning rate 0.05, up to
    200 iterations with early stopping on a 10% validation split), seeded;
    flexible in the covariates and their interactions, for the cross-fitted
    doubly robust estimator (Chernozhukov and others 2018)."""
    if kind == "linear":
        return {"outcome_learner": OLSLearner(), "propensity_learner": LogitLearner()}
    if kind != "boosting":
        raise ValueError(f"learner must be one of {LEARNERS}, not {kind!r}")
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = {
        "learning_rate": 0.05,
        "max_iter": 200,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "early_stopping": True,
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
        "random_state": seed,
    }
    return {
        "outcome_learner": HistGradientBoostingRegressor(**common),
        "propensity_learner": HistGradientBoostingClassifier(**common),
    }

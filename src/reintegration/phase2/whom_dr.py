r"""Predicted individual effects for *what works for whom*: the DR-learner
(Kennedy 2023, "Towards optimal doubly robust estimation of heterogeneous
causal effects"), cross-fitted so that a person's prediction never used the
outcomes of the person's own fold.

The first stage is the doubly robust score of :mod:`reintegration.phase2.whom`,
:math:`\psi = D (Y - \mu_0) - (1 - D)\,\frac{e}{1 - e}\,(Y - \mu_0)`, whose
mean given the features is :math:`e(X)\,\tau(X)`. The second stage finds
:math:`\tau` by minimising :math:`\sum_i (\psi_i - e_i\,\tau(Z_i))^2 / e_i`,
i.e. the pseudo-outcome :math:`\psi / e` regressed on :math:`Z` with weights
:math:`e`: the weights make it a fit over the starters' distribution (the
same distribution as the BLP and GATES), and a starter with a small
propensity has a large pseudo-outcome but a small weight, so the fit is as
stable as the effect on the treated itself. Only :math:`e` and
:math:`\mu_0` enter: no outcome model is fitted on the (often small) group
of starters, unlike the T-learner :math:`\mu_1 - \mu_0`.

Second stages (``heterogeneity.iate`` in ``config/effects.yml``):

``dr_linear``
    weighted least squares on the covariates and the elapsed month as one
    linear term (the best linear projection of the effect over the starters:
    19 coefficients, estimable with a few hundred starters).
``dr_boosting``
    histogram gradient boosting with the same features and weights, shallow
    (at most 7 leaves, at least 200 rows per leaf, 100 iterations at rate
    0.05, no early stopping).
``t_learner``
    the previous proxy, :math:`\mu_1 - \mu_0` from the cross-fitted outcome
    models (kept for comparison).

Honesty (nested cross-fitting): the prediction for fold :math:`k` comes from a
second stage fitted on the other folds only, and the pseudo-outcome of a row
in fold :math:`j \ne k` uses nuisance models fitted on the folds other than
:math:`j` and :math:`k` (with two folds: on one half of fold :math:`j`'s
persons for the other half's rows). So fold :math:`k`'s outcomes and starts
enter neither the pseudo-outcomes nor the second stage behind its
predictions, and the BLP slope per fold (:func:`reintegration.phase2.whom.blp_split`)
remains a clean sample split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..effects.learners import learners

#: the proxies :func:`honest_proxy` offers (``heterogeneity.iate``)
IATE_LEARNERS = ("dr_linear", "dr_boosting", "t_learner")
#: bounds on the cross-fitted propensity, here and in the scores of
#: :mod:`reintegration.phase2.whom` (the scores divide by 1 - e)
E_BOUNDS = (1e-4, 0.99)


def pseudo_scores(X: np.ndarray, y: np.ndarray, d: np.ndarray, fit: np.ndarray,
                  score: np.ndarray, learner: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The propensity and the score psi for the rows in ``score`` from
    nuisance models (propensity on every row, mu0 on the non-starters)
    fitted on the rows in ``fit``."""
    models = learners(learner, seed=seed)
    clf, reg0 = models["propensity_learner"], models["outcome_learner"]
    clf.fit(X[fit], d[fit])
    c = fit & (d == 0)
    reg0.fit(X[c], y[c])
    e = np.clip(clf.predict_proba(X[score])[:, 1], *E_BOUNDS)
    r = y[score] - reg0.predict(X[score])
    ds = d[score]
    return e, ds * r - (1 - ds) * e / (1 - e) * r


def second_stage(kind: str, seed: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray], np.ndarray]:
    """``fit_predict(Z_train, pseudo, weight, Z_test)`` of a second stage."""
    if kind == "dr_linear":
        return _weighted_least_squares
    if kind == "dr_boosting":
        from sklearn.ensemble import HistGradientBoostingRegressor

        def boosted(Z, target, weight, Z_new):
            model = HistGradientBoostingRegressor(
                learning_rate=0.05, max_iter=100, max_leaf_nodes=7, min_samples_leaf=200,
                early_stopping=False, random_state=seed)
            model.fit(Z, target, sample_weight=weight)
            return model.predict(Z_new)
        return boosted
    raise ValueError(f"heterogeneity.iate must be one of {IATE_LEARNERS}, not {kind!r}")


def _weighted_least_squares(Z, target, weight, Z_new):
    """Weighted least squares with a constant, by its normal equations (a
    minimum-norm solution where columns are collinear)."""
    keep = np.ptp(Z, axis=0) > 0
    A = np.column_stack([np.ones(len(Z)), Z[:, keep]])
    gram = (A * weight[:, None]).T @ A
    beta = np.linalg.lstsq(gram, A.T @ (weight * target), rcond=None)[0]
    return np.column_stack([np.ones(len(Z_new)), Z_new[:, keep]]) @ beta


def honest_proxy(X: np.ndarray, Z: np.ndarray, y: np.ndarray, d: np.ndarray,
                 fold: np.ndarray, pid: np.ndarray, *, kind: str = "dr_linear",
                 learner: str = "linear", seed: int = 0,
                 scored: Callable[[np.ndarray, np.ndarray, int],
                                  tuple[np.ndarray, np.ndarray]] | None = None,
                 second: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
                 ) -> np.ndarray:
    """The DR-learner's predicted effect for every row (module text):
    nuisance features ``X``, second-stage features ``Z``, outcome ``y``,
    start ``d``, cross-fitting ``fold`` of each row's person ``pid``.
    ``scored(fit, score, seed)``: :func:`pseudo_scores` of these data, and
    ``second(train, target, weight)``: the second stage fitted on the ``train``
    rows of ``Z`` and predicted for the others, by other routes to the same
    numbers (:mod:`reintegration.phase2.whom_fit`)."""
    fit_predict = second_stage(kind, seed)
    if scored is None:
        def scored(fit, score, seed):
            return pseudo_scores(X, y, d, fit, score, learner, seed)
    if second is None:
        def second(train, target, weight):
            return fit_predict(Z[train], target, weight, Z[~train])
    folds = np.unique(fold)
    proxy = np.full(len(y), np.nan)
    cache: dict[frozenset, tuple[np.ndarray, np.ndarray]] = {}
    for k in folds:
        train = fold != k
        e, psi = np.full(len(y), np.nan), np.full(len(y), np.nan)
        for j in folds[folds != k]:
            rows = fold == j
            if len(folds) > 2:  # one fit per pair of folds, scoring both
                key = frozenset((int(j), int(k)))
                pair = rows | ~train
                if key not in cache:
                    cache[key] = scored(~pair, pair, seed + 1000 + int(j) + int(k))
                e[pair], psi[pair] = cache[key]
            else:  # two folds: split fold j's persons in halves, each scored by the other
                half = _halves(pid, rows, seed + int(j))
                for a in (half, rows & ~half):
                    e[a], psi[a] = scored(rows & ~a, a, seed + 1000 + int(j))
        proxy[~train] = second(train, psi[train] / e[train], e[train])
    return proxy


def _halves(pid: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    persons = np.unique(pid[rows])
    first = np.random.default_rng(seed).permutation(len(persons)) < len(persons) // 2
    return rows & np.isin(pid, persons[first])

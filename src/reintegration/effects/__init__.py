"""Causal effect estimators, one module per design, one shared results object.

Each estimator is a public function over a plain DataFrame and column names,
with keyword-only options, returning an :class:`EffectResult` (``estimate``,
``std_error``, ``conf_int()``, ``n``, ``design``, ``estimand``,
``summary()``, ``to_record()``), usable on any dataset:

* :func:`selection_on_observables` (ATT by regression adjustment, inverse
  probability weighting or cross-fitted doubly robust AIPW, with linear or
  gradient-boosting nuisance models, :func:`learners`), with
  :func:`dynamic_risk_set` for Sianesi's dynamic comparison and
  :func:`censoring_weights` to compare with never starting instead;
* :func:`event_study` (staggered adoption, Sun and Abraham's
  interaction-weighted estimator on linearmodels ``PanelOLS``);
* :func:`instrumental_variable` (2SLS on linearmodels ``IV2SLS`` with
  absorbed fixed effects), with :func:`leave_out_cell_propensity` (and
  :func:`leave_one_out_propensity` where no cells are absorbed) for the
  case-manager instrument.

The three estimator functions are the public entry points and the only
functions of the package allowed to exceed 120 lines: each validates its
inputs with messages naming the column, fits, and assembles the diagnostics a
reader needs in one place, in the order the docstring documents. The
numerics they share (covariances, first stage, logit, demeaning, wild
bootstrap) live in :mod:`reintegration.effects.numerics`; the designs that prepare
their data and judge them live in :mod:`reintegration.designs`.
"""

from ._data import EffectInputError
from .dynamic import censoring_weights, dynamic_risk_set
from .iv import (
    instrumental_variable,
    leave_one_out_propensity,
    leave_out_cell_propensity,
    multi_instrument_iv,
)
from .learners import LogitLearner, OLSLearner, learners
from .results import EffectResult, EventStudyResult, IVResult, SelectionResult
from .selection import selection_on_observables
from .staggered import event_study

__all__ = [
    "EffectInputError",
    "EffectResult",
    "EventStudyResult",
    "IVResult",
    "LogitLearner",
    "OLSLearner",
    "SelectionResult",
    "censoring_weights",
    "dynamic_risk_set",
    "event_study",
    "instrumental_variable",
    "leave_one_out_propensity",
    "learners",
    "leave_out_cell_propensity",
    "multi_instrument_iv",
    "selection_on_observables",
]

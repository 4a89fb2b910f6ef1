r"""The effect per additional starter of a staggered roll-out: a fuzzy
difference in differences.

A roll-out makes a treatment *available*; not everyone it reaches takes it
up, and some would have taken it anyway. The event study of the outcome
gives the intention-to-treat effect :math:`\theta_Y`; the same event study
(same sample, cohorts, event times and weights) of "started the treatment"
gives the change in take-up :math:`\theta_D`. Their ratio

.. math::

    \beta = \theta_Y / \theta_D

is the Wald ratio of a fuzzy difference in differences (de Chaisemartin and
D'Haultfoeuille 2018, "Fuzzy differences-in-differences", Review of Economic
Studies 85(2)): the effect per client the roll-out moved into the treatment.
It is the effect of the treatment on those clients against what they would
otherwise have done (nothing, or another treatment) when the roll-out
changes outcomes only through take-up (exclusion) and moves nobody out of
the treatment (monotonicity); de Chaisemartin and D'Haultfoeuille show that
with take-up that already changes in the comparison groups it identifies
such an effect only if effects are stable over time. Numerator and
denominator use the same aggregation, so :math:`\beta` is a ratio of two
averages, not an average of ratios.

Inference: the interval inverts the randomisation test of
:math:`H_0\colon \beta = b`, under which the outcome minus :math:`b` times
take-up, :math:`Y - bD`, has no roll-out effect. The statistic is the
studentised event-study estimate of :math:`Y - bD`, compared with its
values over the same re-assignments of the roll-out dates as the
intention-to-treat test; because the estimator is linear this is
:math:`(\hat\theta_Y - b\hat\theta_D)/\widehat{se}(b)` from one refit per
assignment. This is the Anderson-Rubin idea (the reduced form of
:math:`Y - bD`) with randomisation instead of a normal reference
distribution (Imbens and Rosenbaum 2005, "Robust, accurate confidence
intervals with a weak instrument", JRSS A 168(1)). It is chosen over a
delta-method interval from the joint randomisation distribution because it
stays valid when the take-up change is small relative to its noise, where
the ratio's distribution is far from normal and the delta method
understates the uncertainty; the interval is then wide or unbounded rather
than wrong. The reported ``std_error`` is the interval's half-width over
1.96; the delta-method clustered one is kept in the diagnostics.
"""

from __future__ import annotations

import dataclasses
import math

from scipy import stats

from ._data import EffectInputError
from .results import EventStudyResult

__all__ = ["wald_ratio"]


def _interval(test, level: float) -> list[float]:
    low, high = test.conf_int(level)
    return [float(low), float(high)]


def wald_ratio(reduced: EventStudyResult, *, level: float = 0.95) -> EventStudyResult:
    r"""The per-starter effect :math:`\hat\theta_Y / \hat\theta_D` from an
    event study fitted with ``takeup=`` and ``permutations=``
    (:func:`~reintegration.effects.event_study`), with the randomisation
    interval of the Wald ratio (see the module text).

    Returns an :class:`EventStudyResult` whose ``estimate`` is the ratio,
    ``std_error`` the interval's half-width over :math:`z_{(1+level)/2}`,
    :meth:`~EventStudyResult.conf_int` and ``pvalue`` from the inverted test
    (the p-value of :math:`\beta = 0` is that of no intention-to-treat
    effect). ``event_time`` and the pre-trend test stay those of the
    intention-to-treat event study (the numerator). The diagnostics add the
    intention-to-treat effect (``itt``, ``ci_itt``), the take-up change
    (``takeup_change``, ``ci_takeup``, ``pvalue_takeup``), the delta-method
    clustered standard error (``std_error_clustered``) and the spread of the
    ratio over the assignments (``std_error_randomization_sd``).

    Raises
    ------
    ValueError
        Without the take-up column in the randomisation test, or when the
        estimated take-up change is zero.
    """
    test = reduced.randomization
    if test is None or test.theta_x is None:
        raise EffectInputError(
            "the per-starter effect needs the event study fitted with takeup= and permutations="
        )
    change = float(test.theta_x[0, 0])
    if not change != 0:
        raise EffectInputError("the take-up does not change with the roll-out: no Wald ratio")
    ratio_test = test.ratio(0)
    takeup_test = test.column(0)
    ratio = ratio_test.estimate
    z = float(stats.norm.ppf(0.5 + level / 2))
    # the clustered errors of the test omit linearmodels' small-sample factor
    raw = float(math.sqrt((test.c_y[0] ** 2).sum()))
    factor = reduced.diagnostics.get("std_error_clustered", math.nan) / raw if raw > 0 else 1.0
    se_clustered = factor * ratio_test._scale()
    low, high = ratio_test.conf_int(level)
    diagnostics = {
        **reduced.diagnostics,
        "itt": float(reduced.estimate),
        "ci_itt": [float(x) for x in reduced.conf_int(level)],
        "takeup_change": change,
        "ci_takeup": _interval(takeup_test, level),
        "pvalue_takeup": takeup_test.pvalue(0.0),
        "pvalue_randomization": ratio_test.pvalue(0.0),
        "ci_randomization": [float(low), float(high)],
        "ci_clustered": [ratio - z * se_clustered, ratio + z * se_clustered],
        "std_error_clustered": se_clustered,
        "std_error_randomization_sd": ratio_test.null_sd(),
        "std_error_method": "randomisation interval half-width / 1.96 (Wald ratio, "
        "inverted Anderson-Rubin-type randomisation test)",
    }
    estimand = (
        f"effect per additional starter of {reduced.diagnostics.get('takeup', 'the treatment')}: "
        "the intention-to-treat effect of availability divided by the change in take-up, "
        "both aggregated the same way (fuzzy difference in differences, Wald ratio; de "
        "Chaisemartin and D'Haultfoeuille 2018); the effect of starting against what these "
        "clients would otherwise have done if the roll-out changes outcomes only through "
        "take-up. Intention-to-treat part: " + reduced.estimand
    )
    return dataclasses.replace(
        reduced,
        estimate=ratio,
        std_error=ratio_test.interval_std_error(level),
        estimand=estimand,
        method="fuzzy_did_wald",
        diagnostics=diagnostics,
        randomization=ratio_test,
    )

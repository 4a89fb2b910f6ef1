"""Random-effects meta-analysis of one effect across cities.

The cross-city synthesis pools, per instrument, design and outcome, the
estimates the cities released. Each city's estimate ``y_i`` has a standard
error ``s_i``; the random-effects model says ``y_i = mu + u_i + e_i`` with
``u_i ~ N(0, tau2)`` (the true effect differs between cities) and
``e_i ~ N(0, s_i^2)`` (sampling error).

Two estimators of the between-city variance ``tau2``:

``DL``
    DerSimonian & Laird (1986), the method-of-moments estimator from
    Cochran's Q: ``tau2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))``
    with ``w = 1 / s^2``.
``REML``
    restricted maximum likelihood (Viechtbauer 2005), solved by the
    fixed-point iteration ``tau2 = sum w^2 ((y - mu)^2 - s^2) / sum w^2 +
    1 / sum w`` with ``w = 1 / (s^2 + tau2)``, truncated at zero.

Around the pooled ``mu`` the module reports a Wald confidence interval, the
share of variation due to heterogeneity ``I2 = tau2 / (tau2 + s2)`` with the
"typical" within-study variance ``s2 = (k - 1) sum w / ((sum w)^2 - sum w^2)``
(Higgins & Thompson 2002; for DL this equals ``(Q - (k - 1)) / Q``), and the
prediction interval for the effect in a new city, ``mu +- t_{k-2}
sqrt(tau2 + se(mu)^2)`` (Higgins, Thompson & Spiegelhalter 2009), which
needs at least three cities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

METHODS = ("REML", "DL")


class MetaError(ValueError):
    """The estimates cannot be pooled (too few, or a standard error that is
    not a positive number)."""


@dataclass(frozen=True)
class MetaResult:
    """A pooled random-effects estimate."""

    method: str
    k: int
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    tau2: float
    i2: float
    q: float
    q_df: int
    q_pvalue: float
    pi_low: float | None
    pi_high: float | None
    level: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(estimates: Sequence[float], std_errors: Sequence[float]) -> tuple[list, list]:
    y = [float(v) for v in estimates]
    s = [float(v) for v in std_errors]
    if len(y) != len(s):
        raise MetaError(f"{len(y)} estimates but {len(s)} standard errors")
    if len(y) < 2:
        raise MetaError(f"a meta-analysis needs at least two estimates, got {len(y)}")
    for i, (yi, si) in enumerate(zip(y, s, strict=True)):
        if not math.isfinite(yi):
            raise MetaError(f"estimate {i} is not a finite number: {yi}")
        if not (math.isfinite(si) and si > 0):
            raise MetaError(f"standard error {i} must be a positive number, got {si}")
    return y, [si * si for si in s]


def cochran_q(estimates: Sequence[float], std_errors: Sequence[float]) -> float:
    """Cochran's Q: the inverse-variance weighted sum of squared deviations
    from the fixed-effect mean."""
    y, v = _check(estimates, std_errors)
    w = [1 / vi for vi in v]
    mu = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w)
    return sum(wi * (yi - mu) ** 2 for wi, yi in zip(w, y, strict=True))


def tau2_dl(estimates: Sequence[float], std_errors: Sequence[float]) -> float:
    """DerSimonian-Laird estimate of the between-study variance."""
    y, v = _check(estimates, std_errors)
    w = [1 / vi for vi in v]
    q = cochran_q(estimates, std_errors)
    c = sum(w) - sum(wi * wi for wi in w) / sum(w)
    return max(0.0, (q - (len(y) - 1)) / c)


def tau2_reml(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> float:
    """REML estimate of the between-study variance (fixed-point iteration
    started at the DerSimonian-Laird value)."""
    y, v = _check(estimates, std_errors)
    tau2 = tau2_dl(estimates, std_errors)
    for _ in range(max_iter):
        w = [1 / (vi + tau2) for vi in v]
        sw = sum(w)
        mu = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sw
        num = sum(wi * wi * ((yi - mu) ** 2 - vi) for wi, yi, vi in zip(w, y, v, strict=True))
        new = max(0.0, num / sum(wi * wi for wi in w) + 1 / sw)
        if abs(new - tau2) < tol:
            return new
        tau2 = new
    raise MetaError(f"REML did not converge in {max_iter} iterations (last tau2 {tau2:g})")


def random_effects(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    method: str = "REML",
    level: float = 0.95,
) -> MetaResult:
    """Pool the estimates with a random-effects model (see the module text)."""
    if method not in METHODS:
        raise MetaError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    y, v = _check(estimates, std_errors)
    k = len(y)
    tau2 = (
        tau2_reml(y, [math.sqrt(vi) for vi in v])
        if method == "REML"
        else tau2_dl(y, [math.sqrt(vi) for vi in v])
    )
    w = [1 / (vi + tau2) for vi in v]
    mu = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w)
    se = math.sqrt(1 / sum(w))
    z = float(stats.norm.ppf(0.5 + level / 2))
    w0 = [1 / vi for vi in v]
    s2 = (k - 1) * sum(w0) / (sum(w0) ** 2 - sum(wi * wi for wi in w0))
    q = cochran_q(y, [math.sqrt(vi) for vi in v])
    pi_low = pi_high = None
    if k >= 3:
        half = float(stats.t.ppf(0.5 + level / 2, k - 2)) * math.sqrt(tau2 + se * se)
        pi_low, pi_high = mu - half, mu + half
    return MetaResult(
        method=method,
        k=k,
        estimate=mu,
        std_error=se,
        ci_low=mu - z * se,
        ci_high=mu + z * se,
        tau2=tau2,
        i2=tau2 / (tau2 + s2) if tau2 > 0 else 0.0,
        q=q,
        q_df=k - 1,
        q_pvalue=float(stats.chi2.sf(q, k - 1)),
        pi_low=pi_low,
        pi_high=pi_high,
        level=level,
    )


def uncertainty_word(ci_low: float, ci_high: float, estimate: float, policy: float) -> str:
    """The uncertainty of an estimate in one word, by fixed rules:

    * ``clear``: the 95% interval excludes zero and the effect is at least the
      policy effect in size;
    * ``probably``: the interval excludes zero, but the effect is smaller than
      the policy effect;
    * ``unclear``: the interval includes zero.
    """
    excludes_zero = ci_low > 0 or ci_high < 0
    if excludes_zero and abs(estimate) >= policy:
        return "clear"
    return "probably" if excludes_zero else "unclear"

"""Shares over replications: the exact interval of a share, the band a
correct 95% interval's coverage falls in, and a share as a percentage for
the validation pages (shared by the design, heterogeneity and advice
harnesses)."""

from __future__ import annotations

import math
from typing import Any

from scipy import stats


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a share k/n."""
    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def nominal_band(n: int, level: float = 0.95, nominal: float = 0.95) -> tuple[float, float]:
    """The coverage range a correct 95% interval shows in 95% of runs of n
    replications (binomial quantiles of the count, as shares)."""
    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    return (float(stats.binom.ppf(a, n, nominal)) / n,
            float(stats.binom.ppf(1 - a, n, nominal)) / n)


def finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def percent(x: Any) -> str:
    v = finite(x)
    return "–" if v is None else f"{100 * v:.0f}%"

"""The event study's headline equals the estimand its docstring states when
effects grow with event time: the simple average over event times 0..lags
of the cohort-averaged effects. A planted world with three staggered
cohorts, never-treated units and long post periods (so that most treated
observations lie beyond ``lags``) would let binned far horizons dominate a
headline that weighted them by their observation count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.effects import event_study

STARTS = (6.0, 10.0, 14.0)
#: cohort multipliers of the planted path; their mean is 1, so with equal
#: cohort sizes the cohort-averaged effect at event time l is SLOPE * (l + 1)
MULTIPLIER = {6.0: 0.5, 10.0: 1.0, 14.0: 1.5}
SLOPE = 0.05
LEADS, LAGS = 3, 4
KW = {
    "outcome": "y",
    "entity": "unit",
    "time": "t",
    "treatment_start": "start",
    "leads": LEADS,
    "lags": LAGS,
}


def planted(
    seed: int = 0, *, noise: float = 0.3, per_cohort: int = 30, periods: int = 34
) -> pd.DataFrame:
    """Equal-sized cohorts adopting at 6, 10 and 14, and never-treated units,
    over 34 periods (20 to 28 post periods per cohort); the effect at event
    time l >= 0 is MULTIPLIER[cohort] * SLOPE * (l + 1), growing without
    bound; unit and period effects; normal noise."""
    rng = np.random.default_rng(seed)
    period_fe = 0.5 * rng.normal(size=periods)
    rows = []
    unit = 0
    for start in (*STARTS, np.nan):
        for _ in range(per_cohort):
            level = rng.normal()
            for t in range(periods):
                rel = t - start
                effect = MULTIPLIER[start] * SLOPE * (rel + 1) if rel >= 0 else 0.0
                rows.append((unit, t, start, level + period_fe[t] + effect + noise * rng.normal()))
            unit += 1
    return pd.DataFrame(rows, columns=["unit", "t", "start", "y"])


#: the documented estimand: mean over l = 0..LAGS of the cohort-averaged effects
TRUTH = float(np.mean([SLOPE * (l_ + 1) for l_ in range(LAGS + 1)]))


def test_the_headline_is_the_mean_of_the_event_time_effects_without_noise():
    """No noise: the default headline equals the estimand to rounding error,
    and each event-time coefficient equals its planted value."""
    df = planted(noise=0.0)
    res = event_study(df, **KW)
    assert res.estimate == pytest.approx(TRUTH, abs=1e-9)
    for l_ in range(LAGS + 1):
        assert res.event_time.loc[l_, "estimate"] == pytest.approx(SLOPE * (l_ + 1), abs=1e-9)
    assert res.diagnostics["bin"] == "trim" and res.diagnostics["post_weights"] == "equal"
    assert "equal weight per event time" in res.estimand
    # most treated observations lie beyond lags: an endpoint bin weighted by
    # its observation count would hold most of the headline's weight
    beyond = (df.t - df.start > LAGS).sum()
    within = ((df.t - df.start >= 0) & (df.t - df.start <= LAGS)).sum()
    assert beyond > 3 * within
    # the same with the baseline of the pipeline
    assert event_study(df, **KW, baseline="pre_mean").estimate == pytest.approx(TRUTH, abs=1e-9)


def test_a_binned_endpoint_never_weighs_in_by_its_observation_count():
    """With endpoint binning the last coefficient averages the later, larger
    effects; it enters the headline with the weight of its own event time,
    exactly as the other event times do (balanced cohorts: 1 / (lags + 1))."""
    df = planted(noise=0.0)
    for weights in ("observations", "equal"):
        res = event_study(df, **KW, bin="endpoints", post_weights=weights)
        path = res.event_time.loc[0:LAGS, "estimate"]
        assert res.event_time.loc[LAGS, "n_obs"] > 10 * res.event_time.loc[0, "n_obs"]
        assert res.estimate == pytest.approx(path.mean(), abs=1e-9)
        # the binned endpoint holds effects beyond lags: above the truth at lags
        assert path.loc[LAGS] > SLOPE * (LAGS + 1) + 0.1


#: what an observation-weighted headline over all post periods would target:
#: the mean effect over the treated observations at event times >= 0
ALL_POST = float(np.mean([
    MULTIPLIER[s] * SLOPE * (t - s + 1) for s in STARTS for t in range(34) if t >= s
]))


def test_the_headline_interval_covers_the_estimand_over_replications():
    """With noise, over 20 independent worlds: the 95% interval covers the
    estimand (the mean of the true event-time effects 0..lags) in at least
    17 (under nominal coverage, 16 or fewer happens with probability 1.6%),
    and the mean estimate is within three Monte Carlo standard errors of it.
    The test can fail: the same intervals almost never cover the average
    over all post periods, which a headline dominated by the far horizons
    would estimate (0.57 here against 0.15)."""
    estimates, covered, covered_all_post = [], 0, 0
    for seed in range(20):
        res = event_study(planted(seed=seed), **KW)
        low, high = res.conf_int()
        covered += int(low <= TRUTH <= high)
        covered_all_post += int(low <= ALL_POST <= high)
        estimates.append(res.estimate)
    est = np.array(estimates)
    assert covered >= 17, covered
    assert abs(est.mean() - TRUTH) < 3 * est.std(ddof=1) / np.sqrt(len(est)), est.mean()
    assert ALL_POST > 3 * TRUTH and covered_all_post == 0, covered_all_post

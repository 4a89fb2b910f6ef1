"""Randomisation inference of the event study: the cell-level refits
reproduce the linearmodels fit, small designs are enumerated exactly, the
interval is the inverted test, and with few teams and team-by-period shocks
the test keeps its size where cluster-robust standard errors do not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.effects import EffectInputError, _memo, event_study
from reintegration.effects.randomization import assignments


def teams_by_period(
    seed: int,
    *,
    dates: dict[int, float],
    teams: int = 8,
    periods: int = 20,
    per_cell: int = 25,
    shock_sd: float = 0.04,
    rho: float = 0.9,
    effect: float = 0.0,
) -> pd.DataFrame:
    """Clients of ``teams`` teams by period, team and period effects and a
    persistent team-by-period shock (AR(1) with ``rho``, as when a team's
    staff changes slowly) shared by the clients of a cell; teams in ``dates``
    adopt at the given period, with ``effect`` from then on."""
    rng = np.random.default_rng(seed)
    team = np.repeat(np.arange(teams), periods * per_cell)
    period = np.tile(np.repeat(np.arange(periods), per_cell), teams)
    innovation = rng.normal(0, shock_sd, (teams, periods))
    shock = np.zeros((teams, periods))
    shock[:, 0] = innovation[:, 0] / np.sqrt(1 - rho**2)
    for t in range(1, periods):
        shock[:, t] = rho * shock[:, t - 1] + innovation[:, t]
    start = np.array([dates.get(k, np.nan) for k in range(teams)])[team]
    exposed = np.nan_to_num(period - start, nan=-1) >= 0
    y = (
        0.05 * team
        + 0.01 * period
        + shock[team, period]
        + effect * exposed
        + rng.normal(0, 0.5, len(team))
    )
    return pd.DataFrame({"team": team, "period": period, "start": start, "y": y})


KW = {
    "outcome": "y",
    "entity": "team",
    "time": "period",
    "treatment_start": "start",
    "leads": 3,
    "lags": 4,
    "collapse": True,
    "wild_bootstrap": 0,
}


def test_assignments_enumerate_small_designs_and_sample_large_ones():
    start = np.array([4.0, 6.0, np.nan, np.nan, np.nan])
    rows, exact, possible = assignments(start, reps=99, seed=0)
    assert exact and possible == 20 and len(rows) == 20  # 5! / 3!
    np.testing.assert_array_equal(rows[0], start)
    assert len({tuple(np.nan_to_num(r, nan=-1)) for r in rows}) == 20
    rows, exact, possible = assignments(np.arange(8.0), reps=99, seed=0)
    assert not exact and possible == 40320 and len(rows) == 100
    again, _, _ = assignments(np.arange(8.0), reps=99, seed=0)
    np.testing.assert_array_equal(rows, again)


def test_cell_refit_reproduces_the_estimate_and_its_clustered_error():
    df = teams_by_period(1, dates={0: 6.0, 1: 8.0, 2: 10.0, 3: 12.0}, effect=0.2)
    res = event_study(df, **KW, baseline="pre_mean", debiased=False, permutations=49)
    r = res.randomization
    assert r.theta_y[0] == pytest.approx(res.estimate, abs=1e-10)
    # the studentising standard error of the actual assignment is linearmodels' one
    # but for its constant scale n / (n - absorbed effects): 112 cells (four
    # never-treated teams x 20 periods, four adopting teams x event times -3..4),
    # 7 + 20 effects
    clustered = res.diagnostics["std_error_clustered"]
    ratio = (clustered**2) / (r.c_y[0] ** 2).sum()
    assert ratio == pytest.approx(112 / (112 - 27), rel=1e-8)
    # the reported standard error is the one the randomisation interval implies
    low, high = res.conf_int()
    assert res.std_error == pytest.approx((high - low) / 2 / 1.959964, rel=1e-5)
    assert res.std_error > clustered
    # the exposure indicator is fitted exactly: estimate 1, no residual
    assert r.theta_d[0] == pytest.approx(1.0, abs=1e-10)
    assert np.abs(r.c_d[0]).max() < 1e-10
    # the randomisation test supplies the headline inference
    assert res.conf_int() == r.conf_int()
    assert res.pvalue == r.pvalue(0.0)
    assert res.pretrend_pvalue == res.pretrend["pvalue_randomization"]
    assert res.diagnostics["randomization_assignments"] == 50


def test_exact_enumeration_and_the_inverted_interval():
    df = teams_by_period(2, teams=7, dates={0: 6.0, 1: 9.0, 2: 12.0}, effect=0.3)
    res = event_study(df, **KW, permutations=999)
    r = res.randomization
    assert r.exact and r.n_assignments == r.n_possible == 210  # 7! / 4!
    assert res.diagnostics["randomization_exact"] is True
    # exact p-values are multiples of 1/210
    assert (res.pvalue * 210) == pytest.approx(round(res.pvalue * 210))
    low, high = res.conf_int()
    assert low < res.estimate < high
    eps = 1e-6 * res.std_error
    for edge, outside in ((low, low - eps), (high, high + eps)):
        assert r.pvalue(edge) > 0.05 >= r.pvalue(outside)
    assert low <= 0.3 <= high
    # a wider level gives a wider interval
    low90, high90 = res.conf_int(0.90)
    assert low <= low90 and high90 <= high


def test_randomization_detects_an_effect():
    dates = {0: 6.0, 1: 8.0, 2: 10.0, 3: 12.0, 4: 14.0}
    strong = event_study(teams_by_period(3, dates=dates, effect=0.6), **KW, permutations=199)
    assert strong.pvalue < 0.05
    # the interval covers the planted effect in at least 6 of 8 data sets (under
    # its nominal 95%, 5 or fewer happens with probability 0.6%)
    covered = 0
    for seed in range(3, 11):
        low, high = event_study(
            teams_by_period(seed, dates=dates, effect=0.6), **KW, permutations=99
        ).conf_int()
        covered += int(low <= 0.6 <= high)
    assert covered >= 6, covered


def test_randomization_pretrend_test_rejects_a_planted_trend_at_5_percent():
    """A pre-trend of 0.3 per period before event time -1 in eight worlds of
    eight teams: the randomisation test rejects it at 5% in at least four
    (it does in five: its power with eight teams is modest, 0.005-0.09), and
    every p-value with the trend is below every p-value of the same worlds
    without it (0.25-0.72), where the cluster-robust chi2 test, misled by
    the persistent team-by-period shocks, rejects in all eight. With a trend
    of 0.15 the randomisation p-values are 0.055-0.145: a weak trend passes
    this test, which is why the book says to read the plot."""
    dates = {0: 6.0, 1: 8.0, 2: 10.0, 3: 12.0, 4: 14.0}
    with_trend, without, chi2_null = [], [], []
    for seed in range(4, 12):
        df = teams_by_period(seed, dates=dates)
        null = event_study(df, **KW, permutations=199)
        rel = df.period - df.start
        df["y"] += np.where(rel < -1, 0.3 * (rel + 1), 0.0)
        res = event_study(df, **KW, permutations=199)
        assert res.pretrend["pvalue"] < 1e-6
        with_trend.append(res.pretrend_pvalue)
        without.append(null.pretrend_pvalue)
        chi2_null.append(null.pretrend["pvalue"])
    assert sum(p <= 0.05 for p in with_trend) >= 4, with_trend
    assert max(with_trend) < min(without), (with_trend, without)
    assert sum(p <= 0.05 for p in chi2_null) >= 6, chi2_null


def test_randomization_keeps_its_size_where_clustered_errors_do_not():
    """Data sets with no effect and persistent team-by-period shocks, each
    with five of eight teams adopting at random: cluster-robust intervals
    reject a true zero far more often than 5%; the randomisation test does
    not."""
    dates = [6.0, 8.0, 10.0, 12.0, 14.0]
    rng = np.random.default_rng(0)
    clustered = randomised = pretrend = reported = raw = 0
    draws = 24
    for k in range(draws):
        chosen = rng.choice(8, size=len(dates), replace=False)
        df = teams_by_period(100 + k, dates=dict(zip(chosen.tolist(), dates, strict=True)))
        res = event_study(df, **KW, baseline="pre_mean", permutations=39, seed=k)
        clustered += abs(res.estimate / res.diagnostics["std_error_clustered"]) > 1.96
        # the reported standard error is the randomisation interval's
        reported += abs(res.estimate / res.std_error) > 1.96
        randomised += res.pvalue <= 0.05
        pretrend += res.pretrend_pvalue <= 0.05
        # Fisher's raw statistic (the estimate itself) keeps its size too
        raw += (
            event_study(
                df, **KW, baseline="pre_mean", permutations=39, seed=k, statistic="raw"
            ).pvalue
            <= 0.05
        )
    assert clustered >= 4
    assert randomised <= 2 and pretrend <= 3 and reported <= 2 and raw <= 2


def test_randomization_input_errors():
    df = teams_by_period(5, dates={0: 6.0, 1: 8.0})
    df["x"] = np.random.default_rng(0).normal(size=len(df))
    kw = {k: v for k, v in KW.items() if k != "collapse"}
    with pytest.raises(EffectInputError, match="controls"):
        event_study(df, **kw, controls=["x"], permutations=19)
    with pytest.raises(EffectInputError, match="clustered"):
        event_study(df, **kw, cluster=False, permutations=19)
    df["region"] = np.where(df["period"] < 10, "a", "b")
    with pytest.raises(EffectInputError, match="constant within each entity"):
        event_study(df, **KW, cluster="region", permutations=19)


def _dense_projection(self, keep):
    """The refit's former projection, the cells-by-cells matrix
    F (F'WF)^+ (WF)' formed in full, in the factored form the fitter uses."""
    f = self.fe[keep]
    f = f[:, f.any(axis=0)]
    fw = f * self.cells.weight[keep][:, None]
    p = f @ np.linalg.pinv(f.T @ fw) @ fw.T
    eye = np.eye(len(p))
    return p, eye, eye


@pytest.mark.parametrize(
    "options", [{"baseline": "pre_mean"}, {"statistic": "raw"}, {"bin": "endpoints", "lags": 2}]
)
def test_the_factored_projection_gives_the_dense_projections_inference(options, monkeypatch):
    """The refits share the fixed-effects projection in factored form; the
    statistics, p-values and intervals equal those of the full
    cells-by-cells projection to 1e-8."""
    from reintegration.effects import randomization

    df = teams_by_period(4, dates={1: 6.0, 3: 9.0, 5: 12.0}, effect=0.2)
    kw = {**KW, **options}
    fast = event_study(df, **kw, permutations=99).randomization
    monkeypatch.setattr(randomization._Fitter, "_projection", _dense_projection)
    with _memo.disabled():  # no design shared with the fast fit
        slow = event_study(df, **kw, permutations=99).randomization
    for name in ("theta_y", "theta_d", "c_y", "c_d"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast.pre_stat, slow.pre_stat, rtol=1e-8)
    assert fast.pvalue() == slow.pvalue()
    assert fast.pretrend_pvalue == slow.pretrend_pvalue
    np.testing.assert_allclose(fast.conf_int(), slow.conf_int(), rtol=0, atol=1e-8)
    assert np.isfinite(fast.conf_int()).all() and fast.n_assignments == 100


def test_outcomes_of_the_same_cells_share_each_assignments_design():
    """Two outcomes on the same cells: the refits of the second reuse the
    assignment designs of the first, and every statistic, p-value and
    interval equals a fit without any shared work, bit for bit."""
    from reintegration.effects import randomization

    df = teams_by_period(4, dates={1: 6.0, 3: 9.0, 5: 12.0}, effect=0.2)
    df["y2"] = df["y"] ** 2 + np.random.default_rng(5).normal(size=len(df))
    kw = {**KW, "baseline": "pre_mean"}
    hits = randomization._DESIGNS.hits
    shared = [event_study(df, **{**kw, "outcome": o}, permutations=99).randomization
              for o in ("y", "y2")]
    assert randomization._DESIGNS.hits > hits
    with _memo.disabled():
        alone = [event_study(df, **{**kw, "outcome": o}, permutations=99).randomization
                 for o in ("y", "y2")]
    for fast, slow in zip(shared, alone, strict=True):
        for name in ("theta_y", "theta_d", "c_y", "c_d", "pre_stat"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert fast.pvalue() == slow.pvalue()
        np.testing.assert_array_equal(fast.conf_int(), slow.conf_int())
    assert not np.array_equal(shared[0].theta_y, shared[1].theta_y)


def test_permutation_cells_remove_the_path_at_each_rows_event_time():
    """The adjusted outcome of the randomisation test's cells: the outcome
    minus the estimated path at the row's event time (at ``lags`` beyond it),
    where exposed; row by row as the lookup is defined."""
    from reintegration.effects.staggered import _permutation_cells

    rng = np.random.default_rng(8)
    n = 400
    sample = pd.DataFrame({"g": rng.integers(0, 5, n), "y": rng.random(n)})
    t = rng.integers(0, 10, n).astype(float)
    e = np.array([3.0, 5.0, np.nan, 20.0, 7.0])[sample["g"]]
    path = {0: 0.1, 1: 0.2, 2: 0.4, -3: 9.0}
    cells = _permutation_cells(sample, t, e, outcome="y", entity="g", cluster="g", path=path,
                               lags=2)
    rel = t - np.where(e > t.max(), np.nan, e)
    exposed = np.nan_to_num(rel, nan=-1.0) >= 0
    removed = np.array([path.get(int(min(r, 2)), 0.0) if x else 0.0
                        for r, x in zip(np.nan_to_num(rel, nan=-1.0), exposed, strict=True)])
    frame = pd.DataFrame({"g": sample["g"], "t": t, "adj": sample["y"] - removed})
    want = frame.groupby(["g", "t"], sort=True)["adj"].mean().to_numpy()
    np.testing.assert_array_equal(cells.y[:, 2], want)
    assert cells.y[:, 2].min() > -1  # the -3 entry of the path (a lead) is never removed

"""The shared numerics against linearmodels, statsmodels, pyhdfe and
hand-computed values; the designs' power formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from linearmodels.iv import IV2SLS

from reintegration.designs import base, iv, selection
from reintegration.effects import numerics

# ---------------------------------------------------------------------------
# the minimum detectable effect
# ---------------------------------------------------------------------------


def test_mde_against_a_hand_computed_value():
    # z_0.975 = 1.959964, z_0.80 = 0.841621, sum 2.801585;
    # SE = 0.5 * sqrt(1/100 + 1/400) = 0.5 * 0.111803 = 0.0559017;
    # MDE = 2.801585 * 0.0559017 = 0.156614
    se = selection.se_difference(0.5, 100, 400)
    assert se == pytest.approx(0.0559017, abs=1e-7)
    assert base.mde_multiplier() == pytest.approx(2.801585, abs=1e-6)
    assert base.minimum_detectable_effect(se) == pytest.approx(0.156614, abs=1e-6)
    # 90% power and 1% significance: 2.575829 + 1.281552 = 3.857381
    assert base.minimum_detectable_effect(1.0, alpha=0.01, power=0.90) == pytest.approx(
        3.857381, abs=1e-6
    )


def test_iv_null_standard_error_equals_2sls_at_zero_effect():
    """With no effect the 2SLS residual is the outcome net of its cell means:
    the null variance equals linearmodels' robust and clustered variance of
    the 2SLS estimate when the outcome does not depend on the treatment."""
    df = _iv_frame(4).rename(columns={"d": "_d", "z": "_z", "cell": "_cell",
                                      "cm": "case_manager"})
    rng = np.random.default_rng(4)
    df["y"] = rng.normal(size=len(df))
    dummies = pd.get_dummies(df["_cell"], prefix="cell", dtype=float)
    se = {}
    for cov, kw in (("robust", {}), ("clustered", {"clusters": df["case_manager"]})):
        res = IV2SLS(df["y"], dummies, df[["_d"]], df[["_z"]]).fit(cov_type=cov, debiased=False,
                                                                 **kw)
        se[cov] = float(res.std_errors["_d"])
    ours = iv.null_std_error(df, "y")
    # the estimate is near zero, so its residuals are close to the null's
    assert ours == pytest.approx(max(se.values()), rel=0.05)
    assert selection.binary_sd(0.3) == pytest.approx(math.sqrt(0.21))
    assert math.isnan(selection.se_difference(0.5, 0, 10))


# ---------------------------------------------------------------------------
# the first stage
# ---------------------------------------------------------------------------


def _iv_frame(seed: int = 1, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"cell": rng.integers(0, 12, n), "cm": rng.integers(0, 40, n)})
    df["z"] = rng.normal(size=n) + df["cm"] * 0.01
    df["d"] = (0.3 * df["z"] + rng.normal(size=n) > 0.5).astype(float)
    df["y"] = df["d"] + rng.normal(size=n)
    return df


@pytest.mark.parametrize("cov_type", ["robust", "clustered"])
@pytest.mark.parametrize("debiased", [False, True])
def test_first_stage_f_equals_linearmodels(cov_type, debiased):
    df = _iv_frame()
    dummies = pd.get_dummies(df["cell"], prefix="cell", dtype=float)
    kwargs = {"clusters": df["cm"]} if cov_type == "clustered" else {}
    res = IV2SLS(df["y"], dummies, df[["d"]], df[["z"]]).fit(
        cov_type=cov_type, debiased=debiased, **kwargs
    )
    theirs = res.first_stage.diagnostics.loc["d", "f.stat"]
    coef = res.first_stage.individual["d"].params["z"]
    ours = numerics.first_stage(df, treatment="d", instrument="z", absorb="cell",
                         cluster="cm" if cov_type == "clustered" else None, debiased=debiased)
    assert ours.f_stat == pytest.approx(float(theirs), rel=1e-9)
    assert ours.coef == pytest.approx(float(coef), rel=1e-9)
    assert ours.nobs == len(df)


def test_registered_first_stage_model_gives_the_same_f():
    df = _iv_frame(2).rename(columns={"d": "_d", "z": "_z", "cell": "_cell",
                                      "cm": "case_manager"})
    model = iv.first_stage_model(df)
    res = model.results
    t = float(res.params["case_manager_propensity"] / res.std_errors["case_manager_propensity"])
    ours = numerics.first_stage(df, treatment="_d", instrument="_z", absorb="_cell",
                         cluster="case_manager")
    assert t * t == pytest.approx(ours.f_stat, rel=1e-9)
    assert model.params == ["case_manager_propensity"]


def test_nothing_of_the_clients_cell_enters_the_case_manager_propensity():
    rng = np.random.default_rng(3)
    n = 800
    df = pd.DataFrame({"cell": rng.integers(0, 20, n), "cm": rng.integers(0, 25, n),
                       "d": rng.integers(0, 2, n).astype(float)})
    z = iv.case_manager_propensity(df, case_manager="cm", treatment="d", cells="cell")
    flipped = df.copy()
    in_cell = flipped["cell"] == 7
    flipped.loc[in_cell, "d"] = 1 - flipped.loc[in_cell, "d"]
    z2 = iv.case_manager_propensity(flipped, case_manager="cm", treatment="d", cells="cell")
    assert np.allclose(z[in_cell], z2[in_cell], equal_nan=True)
    assert not np.allclose(z[~in_cell], z2[~in_cell], equal_nan=True)


def test_case_manager_propensity_has_no_mechanical_first_stage():
    """Without any case-manager effect, small caseloads and cell effects, the
    F statistic stays near its null (mean 1), unlike a leave-one-out mean
    that subtracts the client's own cell."""
    fs = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 900
        df = pd.DataFrame({"cell": rng.integers(0, 60, n)})
        df["cm"] = df["cell"] // 6 * 10 + rng.integers(0, 4, n)  # 4 managers per team
        df["d"] = (rng.random(n) < 0.2).astype(float)
        df["z"] = iv.case_manager_propensity(df, case_manager="cm", treatment="d", cells="cell")
        fs.append(numerics.first_stage(df, treatment="d", instrument="z", absorb="cell",
                                cluster="cm").f_stat)
    assert np.mean(fs) < 3


def test_wild_cluster_bootstrap_detects_an_effect_and_is_deterministic():
    rng = np.random.default_rng(7)
    n = 800
    g = rng.integers(0, 8, n)
    x = pd.DataFrame({"lead": ((g < 4) & (rng.random(n) < 0.5)).astype(float)})
    x = pd.concat([x, pd.get_dummies(g, prefix="g", drop_first=True, dtype=float)], axis=1)
    x["const"] = 1.0
    r = (np.asarray(x.columns) == "lead").astype(float)[None, :]
    y = rng.normal(size=n) + 0.8 * x["lead"].to_numpy()
    p1 = numerics.wild_cluster_pvalue(y, x.to_numpy(), r, g, reps=299, seed=1)
    p2 = numerics.wild_cluster_pvalue(y, x.to_numpy(), r, g, reps=299, seed=1)
    assert p1 == p2 and p1 < 0.05
    null = numerics.wild_cluster_pvalue(rng.normal(size=n), x.to_numpy(), r, g, reps=299,
                                        seed=1)
    assert null > 0.05


def test_demean_equals_pyhdfe():
    import pyhdfe

    rng = np.random.default_rng(5)
    n = 500
    groups = rng.integers(0, 17, n)
    values = rng.normal(size=(n, 3))
    ours = numerics.demean(values, groups)
    theirs = pyhdfe.create(groups[:, None]).residualize(values)
    assert np.allclose(ours, theirs, atol=1e-10)
    assert np.allclose(numerics.demean(values[:, 0], None), values[:, 0] - values[:, 0].mean())


def test_logit_equals_statsmodels():
    rng = np.random.default_rng(6)
    n = 2000
    x = rng.normal(size=(n, 3))
    xc = np.column_stack([np.ones(n), x])
    d = (rng.random(n) < 1 / (1 + np.exp(-(xc @ [-1.5, 0.5, -0.3, 0.8])))).astype(float)
    theirs = sm.Logit(d, xc).fit(disp=0).params
    assert np.allclose(numerics.logit(d, xc), theirs, atol=1e-6)
    # separation: finite coefficients and fitted probabilities near 0 and 1
    sep = (x[:, 0] > 0).astype(float)
    beta = numerics.logit(sep, xc)
    assert np.all(np.isfinite(beta))


@pytest.mark.parametrize("clustered", [False, True])
def test_sandwich_equals_linearmodels(clustered):
    from linearmodels.iv import IV2SLS as OLS

    rng = np.random.default_rng(8)
    n = 400
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = x @ [1.0, 0.5, -0.2] + rng.normal(size=n) * (1 + np.abs(x[:, 1]))
    g = rng.integers(0, 30, n)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    ours = numerics.sandwich_cov(x, y - x @ beta, g if clustered else None, debiased=True)
    kw = {"cov_type": "clustered", "clusters": pd.Series(g)} if clustered else {
        "cov_type": "robust"}
    theirs = OLS(pd.Series(y), pd.DataFrame(x), None, None).fit(debiased=True, **kw).cov
    assert np.allclose(ours, theirs.to_numpy(), rtol=1e-9)


# ---------------------------------------------------------------------------
# two-stage least squares and the Anderson-Rubin set
# ---------------------------------------------------------------------------


def _endogenous_frame(seed: int, n: int = 800, strength: float = 0.3):
    """One endogenous regressor (confounded by u), one instrument varying by
    cluster, two controls."""
    rng = np.random.default_rng(seed)
    cm = rng.integers(0, 40, n)
    z = rng.normal(size=40)[cm] + rng.normal(scale=0.5, size=n)
    w = rng.normal(size=(n, 2))
    u = rng.normal(size=n)
    d = strength * z + w[:, 0] + u + rng.normal(size=n)
    y = 0.5 * d + w @ np.array([1.0, -1.0]) + u + rng.normal(size=n)
    return y, d, z, w, cm


@pytest.mark.parametrize("cov_type", ["robust", "clustered"])
def test_tsls_equals_linearmodels(cov_type):
    y, d, z, w, cm = _endogenous_frame(0)
    exog = pd.DataFrame(np.column_stack([np.ones(len(y)), w]), columns=["c", "w1", "w2"])
    kw = {"clusters": pd.Series(cm)} if cov_type == "clustered" else {}
    theirs = IV2SLS(pd.Series(y), exog, pd.DataFrame({"d": d}), pd.DataFrame({"z": z})).fit(
        cov_type=cov_type, debiased=False, **kw)
    # the constant is partialled out by centring, the controls by tsls itself
    ours = numerics.tsls(y - y.mean(), d - d.mean(), z - z.mean(), w=w - w.mean(0),
                         clusters=cm if cov_type == "clustered" else None)
    cov = ours.cov_clustered if cov_type == "clustered" else ours.cov_robust
    assert ours.params[0] == pytest.approx(float(theirs.params["d"]), abs=1e-10)
    assert math.sqrt(cov[0, 0]) == pytest.approx(float(theirs.std_errors["d"]), rel=1e-9)
    assert ours.first_stage[0, 0] == pytest.approx(
        float(theirs.first_stage.individual["d"].params["z"]), abs=1e-10)


def test_anderson_rubin_statistic_is_the_wald_test_of_the_instrument():
    """AR(b): the clustered Wald statistic of z in the OLS of y - b d on z and
    the controls (linearmodels, no instruments)."""
    y, d, z, w, cm = _endogenous_frame(1)
    exog = pd.DataFrame(np.column_stack([np.ones(len(y)), w, z]), columns=["c", "w1", "w2", "z"])
    for b in (-0.3, 0.5, 1.2):
        res = IV2SLS(pd.Series(y - b * d), exog, None, None).fit(
            cov_type="clustered", clusters=pd.Series(cm), debiased=False)
        wald = float(res.tstats["z"]) ** 2
        ours = numerics.anderson_rubin_stat(b, y - y.mean(), d - d.mean(), z - z.mean(),
                                            w=w - w.mean(0), clusters=cm)
        assert ours[0] == pytest.approx(wald, rel=1e-9)


@pytest.mark.parametrize(("strength", "kind"), [(0.3, "interval"), (0.02, None)])
def test_anderson_rubin_set_equals_a_brute_force_grid(strength, kind):
    """The closed-form set against the grid of values the AR statistic does
    not reject; with a weak first stage the set is unbounded. The brute-force
    statistic (one regression per value) is evaluated on a grid of step 0.02
    over [-20, 20] and, step 0.0001, within 0.05 of each finite end the closed
    form reports: an end off by more than 0.02 would disagree on the coarse
    grid, one off by less on the fine one."""
    y, d, z, w, cm = _endogenous_frame(2, strength=strength)
    args = (y - y.mean(), d - d.mean(), z - z.mean())
    ar = numerics.anderson_rubin_set(*args, w=w - w.mean(0), clusters=cm)
    ends = [e for lo_hi in ar.intervals for e in lo_hi if np.isfinite(e) and abs(e) < 20]
    grid = np.unique(np.concatenate(
        [np.linspace(-20, 20, 2001), *[np.linspace(e - 0.05, e + 0.05, 1001) for e in ends]]))
    stat = numerics.anderson_rubin_stat(grid, *args, w=w - w.mean(0), clusters=cm)
    accepted = stat <= 3.841458820694124
    assert np.array_equal(accepted, np.array([ar.contains(b) for b in grid]))
    if kind == "interval":
        assert ar.bounded and ar.kind == "interval"
        lo, hi = ar.intervals[0]
        assert lo < 0.5 < hi and grid[accepted].min() == pytest.approx(lo, abs=1e-4)
        assert grid[accepted].max() == pytest.approx(hi, abs=1e-4)
    else:
        assert not ar.bounded and ar.kind in ("two_rays", "whole_line")
        assert accepted[0] and accepted[-1]      # unbounded on both sides


def test_anderson_rubin_projection_equals_a_brute_force_grid():
    """Two endogenous regressors, two instruments: the projection of the
    joint AR set on the first coefficient against a grid over both
    coefficients, the joint statistic computed directly (the clustered Wald
    test of the instruments in the OLS of y - X beta on Z)."""
    rng = np.random.default_rng(3)
    n, g = 1200, 60
    cm = rng.integers(0, g, n)
    z = rng.normal(size=(g, 2))[cm] + rng.normal(scale=0.7, size=(n, 2))
    u = rng.normal(size=n)
    x = np.column_stack([0.5 * z[:, 0] - 0.3 * z[:, 1], 0.4 * z[:, 1]]) + u[:, None] * [0.8, -0.5]
    x += rng.normal(size=(n, 2))
    y = x @ np.array([0.3, -0.2]) + u + rng.normal(size=n)
    y, x, z = y - y.mean(), x - x.mean(0), z - z.mean(0)
    ar = numerics.anderson_rubin_projection(y, x, z, clusters=cm)
    fit = numerics.tsls(y, x, z, clusters=cm)
    (lo, hi), = ar.intervals
    assert ar.bounded and lo < fit.params[0] < hi
    indicator = np.zeros((n, g))
    indicator[np.arange(n), cm] = 1.0
    zz_inv_z = np.linalg.solve(z.T @ z, z.T)
    crit = 5.991464547107979                       # chi2(2), 95%
    bs = np.linspace(lo - 0.1, hi + 0.1, 81)
    cs = np.linspace(-3, 3, 1201)
    accepted = []
    for b in bs:
        uu = y[:, None] - b * x[:, [0]] - x[:, [1]] * cs[None, :]      # n x C
        coef = zz_inv_z @ uu                                          # 2 x C
        resid = uu - z @ coef
        sums = np.stack([indicator.T @ (z[:, [p]] * resid) for p in range(2)])  # 2 x G x C
        meat = np.einsum("pgc,qgc->cpq", sums, sums)
        bread = np.linalg.inv(z.T @ z)
        cov = bread[None] @ meat @ bread[None]
        stat = np.einsum("pc,cpq,qc->c", coef, np.linalg.inv(cov), coef)
        accepted.append(stat.min() <= crit)
    accepted = np.array(accepted)
    step = bs[1] - bs[0]
    assert bs[accepted].min() == pytest.approx(lo, abs=step)
    assert bs[accepted].max() == pytest.approx(hi, abs=step)
    assert accepted[(bs > lo + step) & (bs < hi - step)].all()


def test_anderson_rubin_statistic_and_gradient_equal_the_einsum_reference():
    """The joint AR statistic the projection minimises, written with matrix
    products on reshaped pieces, equals the einsum form it was derived in
    (three endogenous columns, four instruments, clustered), and its
    gradient matches central differences."""
    rng = np.random.default_rng(11)
    n, g = 900, 45
    cm = rng.integers(0, g, n)
    z = rng.normal(size=(n, 4)) + rng.normal(size=(g, 4))[cm]
    x = z @ rng.normal(size=(4, 3)) + rng.normal(size=(n, 3))
    y = x @ np.array([0.2, -0.1, 0.4]) + rng.normal(size=n)
    pc = numerics._ar_pieces(y, x, z, cm)
    for beta in (np.zeros(3), np.array([0.2, -0.1, 0.4]), rng.normal(size=3)):
        value, grad = numerics._ar_full_grad(beta, pc)
        ref_value, ref_grad = numerics._ar_full_grad_reference(beta, pc)
        assert value == pytest.approx(ref_value, rel=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10 * abs(ref_value))
        h = 1e-6
        numeric = [(numerics._ar_full(beta + h * e, pc) - numerics._ar_full(beta - h * e, pc))
                   / (2 * h) for e in np.eye(3)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)

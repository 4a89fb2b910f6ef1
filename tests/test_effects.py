"""The effect estimators recover effects planted in small simulated data of
their own, agree with reference computations (statsmodels OLS, the Wald
ratio, linearmodels' first-stage diagnostics) and reject bad input with a
message that names the column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from reintegration.effects import (
    EffectInputError,
    dynamic_risk_set,
    event_study,
    instrumental_variable,
    leave_one_out_propensity,
    leave_out_cell_propensity,
    selection_on_observables,
)

# ---------------------------------------------------------------------------
# simulated data
# ---------------------------------------------------------------------------


def observational(seed: int = 11, n: int = 2000, clusters: int | None = None) -> pd.DataFrame:
    """Treatment by a logit in x1 and x2; untreated outcome linear in them;
    effect 1 + 0.5 x1, so the ATT (treated have higher x1) exceeds the ATE."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n)
    shock = np.zeros(n)
    group = np.zeros(n, dtype=int)
    if clusters:
        group = rng.integers(0, clusters, n)
        level = rng.normal(size=clusters)
        x1 = x1 + level[group]  # treatment and outcome both cluster-correlated
        shock = 1.5 * rng.normal(size=clusters)[group]
    p = 1 / (1 + np.exp(-(-0.5 + 0.8 * x1 - 0.6 * x2)))
    d = rng.binomial(1, p)
    effect = 1 + 0.5 * x1
    y = 2 + x1 - 0.7 * x2 + shock + rng.normal(size=n) + d * effect
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "effect": effect, "g": group})


def staggered_panel(
    seed: int = 0,
    *,
    units: int = 60,
    periods: int = 14,
    pretrend: float = 0.0,
    multiplier: dict[float, float] | None = None,
) -> pd.DataFrame:
    """Units adopting at period 4, 6, 8 or 10, or never; effect 0 before,
    0.1, 0.2, 0.3 at event times 0, 1, 2 and 0.3 afterwards (times a cohort
    multiplier); optionally a linear pre-trend of the adopters before -1."""
    rng = np.random.default_rng(seed)
    start = rng.choice([4.0, 6.0, 8.0, 10.0, np.nan], size=units)
    unit_fe = rng.normal(size=units)
    period_fe = 0.5 * rng.normal(size=periods)
    path = {0: 0.1, 1: 0.2, 2: 0.3}
    rows = []
    for i in range(units):
        mult = (multiplier or {}).get(start[i], 1.0)
        for t in range(periods):
            effect = 0.0
            if np.isfinite(start[i]):
                rel = int(t - start[i])
                if rel >= 0:
                    effect = mult * path.get(rel, 0.3)
                elif rel < -1:
                    effect = pretrend * (rel + 1)
            y = unit_fe[i] + period_fe[t] + effect + 0.1 * rng.normal()
            rows.append((i, t, start[i], y, effect))
    return pd.DataFrame(rows, columns=["unit", "t", "start", "y", "effect"])


def caseload(seed: int = 5, *, teams: int = 8, periods: int = 4, managers: int = 5, per: int = 30):
    """Clients assigned at random to case managers within team x period;
    managers differ in how often they assign the instrument; an unobserved
    factor u raises both assignment and the outcome; effect 0.3."""
    rng = np.random.default_rng(seed)
    stringency = rng.normal(0, 0.15, (teams, managers))
    rows = []
    for team in range(teams):
        for period in range(periods):
            for m in range(managers):
                u = rng.normal(size=per)
                x = rng.normal(size=per)
                v = rng.uniform(size=per)
                prob = np.clip(0.35 + 0.03 * team + stringency[team, m] + 0.15 * u, 0.02, 0.98)
                d = (v < prob).astype(float)
                y = 0.1 * team + 0.05 * period + 0.3 * d + 0.2 * x + 0.8 * u + rng.normal(size=per)
                for i in range(per):
                    rows.append((team, period, f"{team}-{m}", d[i], y[i], x[i]))
    return pd.DataFrame(rows, columns=["team", "period", "manager", "d", "y", "x"])


def team_clients(seed: int = 3, *, pretrend: float = 0.0, n: int = 6000) -> pd.DataFrame:
    """Clients (one row each) of 20 teams by month of inflow; 16 teams roll
    out at month 4, 6, 8 or 10, four never; effect 0.2 from the roll-out on;
    optionally a linear pre-trend before event time -1."""
    rng = np.random.default_rng(seed)
    starts = {k: (4.0 + 2 * (k % 4) if k < 16 else np.nan) for k in range(20)}
    team = rng.integers(0, 20, n)
    month = rng.integers(0, 14, n)
    start = np.array([starts[k] for k in team])
    rel = month - start  # NaN for never
    effect = np.where(rel >= 0, 0.2, 0.0)
    trend = np.where(rel < -1, pretrend * (rel + 1), 0.0)
    y = 0.05 * team + 0.02 * month + effect + trend + rng.normal(size=n)
    return pd.DataFrame({"team": team, "month": month, "start": start, "y": y})


def covers(result, truth: float) -> bool:
    low, high = result.conf_int()
    return low <= truth <= high


# ---------------------------------------------------------------------------
# selection on observables
# ---------------------------------------------------------------------------


def test_regression_adjustment_equals_statsmodels_ols():
    df = observational()
    res = selection_on_observables(
        df, outcome="y", treatment="d", covariates=["x1", "x2"], method="ra"
    )
    controls = df[df.d == 0]
    treated = df[df.d == 1]
    b = sm.OLS(controls.y, sm.add_constant(controls[["x1", "x2"]])).fit().params
    imputed = treated.y - sm.add_constant(treated[["x1", "x2"]]) @ b
    assert res.estimate == pytest.approx(imputed.mean(), abs=1e-6)
    # the same number is the treatment coefficient of the fully interacted
    # regression with covariates centred at the treated mean
    centred = df[["x1", "x2"]] - treated[["x1", "x2"]].mean()
    design = pd.concat(
        [df[["d"]], df[["x1", "x2"]], centred.mul(df.d, axis=0).add_prefix("d_")], axis=1
    )
    interacted = sm.OLS(df.y, sm.add_constant(design)).fit().params["d"]
    assert res.estimate == pytest.approx(interacted, abs=1e-6)


@pytest.mark.parametrize("method", ["ra", "ipw", "aipw"])
def test_selection_on_observables_recovers_att(method):
    df = observational()
    truth = df.loc[df.d == 1, "effect"].mean()
    ate = df["effect"].mean()
    res = selection_on_observables(
        df, outcome="y", treatment="d", covariates=["x1", "x2"], method=method
    )
    assert covers(res, truth), (method, truth, res.estimate, res.conf_int())
    assert not covers(res, ate)  # it is the effect on the treated, not on everyone
    assert res.n == len(df)
    assert res.n_treated + res.n_control == len(df)
    assert res.design == "selection_on_observables"
    assert "E[Y(1) - Y(0) | D = 1]" in res.estimand
    if method != "ra":  # weighting balances the covariates
        assert res.diagnostics["max_abs_smd_weighted"] < 0.1 < res.diagnostics["max_abs_smd_raw"]


def test_aipw_is_seeded_and_accepts_learners():
    df = observational()
    kw = {"outcome": "y", "treatment": "d", "covariates": ["x1", "x2"], "method": "aipw"}
    a = selection_on_observables(df, **kw, seed=3)
    b = selection_on_observables(df, **kw, seed=3)
    c = selection_on_observables(df, **kw, seed=4)
    assert a.estimate == b.estimate
    assert a.estimate != c.estimate
    assert a.estimate == pytest.approx(c.estimate, abs=0.02)

    class MeanOutcome:  # a deliberately wrong outcome model: still consistent
        def fit(self, x, y):
            self.mean = float(np.mean(y))
            return self

        def predict(self, x):
            return np.full(len(x), self.mean)

    res = selection_on_observables(df, **kw, outcome_learner=MeanOutcome())
    assert covers(res, df.loc[df.d == 1, "effect"].mean())


def test_cluster_robust_standard_errors_differ_when_clustering_matters():
    df = observational(seed=2, n=3000, clusters=40)
    kw = {"outcome": "y", "treatment": "d", "covariates": ["x1", "x2"]}
    for method in ("ra", "aipw"):
        robust = selection_on_observables(df, **kw, method=method)
        clustered = selection_on_observables(df, **kw, method=method, cluster="g")
        assert clustered.cov_type == "clustered" and clustered.n_clusters == 40
        assert clustered.std_error > 1.25 * robust.std_error, method
    ra = selection_on_observables(df, **kw, method="ra")
    assert ra.estimate == selection_on_observables(df, **kw, method="ra", cluster="g").estimate


def test_strata_average_the_within_stratum_att():
    df = observational(seed=4, n=3000)
    df["s"] = (df.x2 + (df.x1 > 0)).astype(int)
    kw = {"outcome": "y", "treatment": "d", "covariates": ["x1"], "method": "ra"}
    res = selection_on_observables(df, **kw, strata="s")
    parts = [selection_on_observables(df[df.s == s], **kw) for s in sorted(df.s.unique())]
    n1 = np.array([p.n_treated for p in parts])
    assert res.estimate == pytest.approx(np.dot(n1, [p.estimate for p in parts]) / n1.sum())
    assert list(res.strata["estimate"]) == pytest.approx([p.estimate for p in parts])
    assert covers(res, df.loc[df.d == 1, "effect"].mean())


def test_dynamic_risk_set_follows_sianesi():
    spells = pd.DataFrame(
        {
            "person": ["a", "b", "c", "d"],
            "start": [1, np.nan, 2, np.nan],  # month the instrument starts
            "exit": [np.nan, 2, np.nan, np.nan],  # first month off benefit
        }
    )
    stacked = dynamic_risk_set(spells, start="start", exit="exit", max_month=2)
    got = {
        u: dict(zip(g.person, g.treated, strict=True)) for u, g in stacked.groupby("elapsed_month")
    }
    assert got[0] == {"a": 0, "b": 0, "c": 0, "d": 0}
    assert got[1] == {"a": 1, "b": 0, "c": 0, "d": 0}  # c starts later: a control at 1
    assert got[2] == {"c": 1, "d": 0}  # a already treated, b left benefit
    with pytest.raises(ValueError, match="'exit'"):
        dynamic_risk_set(spells.drop(columns="exit"), start="start", exit="exit", max_month=2)


def test_dynamic_risk_set_equals_the_rows_taken_and_renumbered():
    """The stacked frame is the spells' rows, risk set after risk set, with a
    fresh index: what taking the rows and resetting the index gives (the
    frame is renumbered in place instead of copied once more)."""
    rng = np.random.default_rng(4)
    n = 60
    spells = pd.DataFrame(
        {
            "person": pd.array([f"p{i}" for i in range(n)], dtype="string"),
            "age": pd.array(rng.integers(18, 60, n), dtype="Int8"),
            "income": rng.gamma(2.0, 500.0, n),
            "start": np.where(rng.random(n) < 0.5, rng.integers(0, 8, n), np.nan),
            "exit": np.where(rng.random(n) < 0.6, rng.integers(1, 10, n), np.nan),
        },
        index=pd.Index(rng.permutation(n) + 100, name="spell"),
    )
    got = dynamic_risk_set(spells, start="start", exit="exit", max_month=8, min_month=1)
    s, e = spells["start"].to_numpy(), spells["exit"].to_numpy()
    rows, us = [], []
    for u in range(1, 9):
        at = np.flatnonzero((np.isnan(e) | (e > u)) & (np.isnan(s) | (s >= u)))
        rows.append(at)
        us.append(np.full(len(at), u))
    take, u_row = np.concatenate(rows), np.concatenate(us)
    want = spells.take(take).reset_index(drop=True)
    want["elapsed_month"] = u_row
    want["treated"] = (s[take] == u_row).astype(int)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert isinstance(got.index, pd.RangeIndex) and got["treated"].sum() > 0
    got.loc[0, "income"] = -1.0  # a frame of its own
    assert (spells["income"] > 0).all()


def test_selection_on_observables_rejects_bad_input():
    df = observational(n=300)
    kw = {"outcome": "y", "treatment": "d", "covariates": ["x1", "x2"]}
    with pytest.raises(ValueError, match="'x3'"):
        selection_on_observables(df, outcome="y", treatment="d", covariates=["x1", "x3"])
    with pytest.raises(ValueError, match="'y'.*binary"):
        selection_on_observables(df, outcome="d", treatment="y", covariates=["x1"])
    with pytest.raises(ValueError, match="'d'.*no variation"):
        selection_on_observables(df.assign(d=1), **kw)
    with pytest.raises(ValueError, match="method"):
        selection_on_observables(df, **kw, method="psm")
    with pytest.raises(ValueError, match="'cl'"):
        selection_on_observables(df, **kw, cluster="cl")
    assert issubclass(EffectInputError, ValueError)


# ---------------------------------------------------------------------------
# instrumental variables
# ---------------------------------------------------------------------------


def test_just_identified_binary_iv_equals_the_wald_ratio():
    rng = np.random.default_rng(7)
    n = 3000
    z = rng.binomial(1, 0.5, n)
    u = rng.normal(size=n)
    d = (0.8 * z + u + rng.normal(size=n) > 0.5).astype(float)
    y = 1 + 0.5 * d + u + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "d": d, "z": z})
    res = instrumental_variable(df, outcome="y", treatment="d", instrument="z")
    wald = np.cov(y, z)[0, 1] / np.cov(d, z)[0, 1]
    means = (y[z == 1].mean() - y[z == 0].mean()) / (d[z == 1].mean() - d[z == 0].mean())
    assert res.estimate == pytest.approx(wald, abs=1e-6)
    assert res.estimate == pytest.approx(means, abs=1e-6)
    ratio = res.reduced_form.loc["z", "estimate"] / res.first_stage.loc["z", "estimate"]
    assert res.estimate == pytest.approx(ratio, abs=1e-6)
    assert covers(res, 0.5)
    # one instrument: our robust F = linearmodels' Wald = Kleibergen-Paap F
    assert res.first_stage_f == pytest.approx(res.diagnostics["first_stage_f_linearmodels"])
    assert res.first_stage_f == pytest.approx(res.diagnostics["kleibergen_paap_f"], rel=1e-2)


def test_case_manager_iv_recovers_the_effect():
    df = caseload(seed=1, managers=10, per=20)
    df["z"] = leave_one_out_propensity(
        df, group="manager", treatment="d", within=["team", "period"]
    )
    kw = {"outcome": "y", "treatment": "d", "controls": ["x"], "absorb": ["team", "period"]}
    res = instrumental_variable(df, **kw, instrument="z", cluster="manager")
    assert covers(res, 0.3), (res.estimate, res.conf_int())
    assert res.first_stage_f > 10
    assert res.n_clusters == 80
    assert res.diagnostics["n_absorbed_cells"] == 32
    # with the cells absorbed, residualising the instrument changes little
    df["z_plain"] = leave_one_out_propensity(df, group="manager", treatment="d")
    plain = instrumental_variable(df, **kw, instrument="z_plain", cluster="manager")
    assert plain.estimate == pytest.approx(res.estimate, abs=0.02)
    ols = sm.OLS(df.y, sm.add_constant(df[["d", "x"]])).fit().params["d"]
    assert ols > res.conf_int()[1]  # OLS is biased upwards by the unobserved factor
    record = json.loads(json.dumps(res.to_record(), allow_nan=False))
    assert record["diagnostics"]["first_stage_f"] == pytest.approx(res.first_stage_f)
    assert record["design"] == "instrumental_variable" and record["n"] == len(df)


@pytest.mark.parametrize("debiased", [False, True])
def test_absorbing_by_within_transformation_equals_dummies(debiased):
    df = caseload(seed=6, teams=5, periods=3)
    df["z"] = leave_one_out_propensity(df, group="manager", treatment="d")
    kw = {
        "outcome": "y",
        "treatment": "d",
        "instrument": "z",
        "controls": ["x"],
        "absorb": ["team", "period"],
        "cluster": "manager",
        "debiased": debiased,
    }
    within = instrumental_variable(df, **kw, absorb_method="within")
    dummies = instrumental_variable(df, **kw, absorb_method="dummies")
    assert within.estimate == pytest.approx(dummies.estimate, abs=1e-8)
    assert within.std_error == pytest.approx(dummies.std_error, rel=1e-6)
    assert within.first_stage_f == pytest.approx(dummies.first_stage_f, rel=1e-6)
    # with dummies the regressors are all visible to linearmodels, so its own
    # first-stage statistic is the reference for ours
    lm = dummies.diagnostics["first_stage_f_linearmodels"]
    assert dummies.first_stage_f == pytest.approx(lm, rel=1e-6)


def test_leave_one_out_propensity_by_hand():
    df = pd.DataFrame(
        {
            "manager": ["a", "a", "a", "b", "b", "c"],
            "team": [1, 1, 1, 1, 1, 2],
            "d": [1, 0, 1, 0, 0, 1],
        }
    )
    z = leave_one_out_propensity(df, group="manager", treatment="d")
    assert z.tolist()[:5] == pytest.approx([0.5, 1.0, 0.5, 0.0, 0.0])
    assert np.isnan(z.iloc[5])  # alone with this manager: nobody to leave out to
    zw = leave_one_out_propensity(df, group="manager", treatment="d", within="team")
    # treatment net of the team mean (2/5 in team 1), then the leave-one-out mean
    assert zw.tolist()[:5] == pytest.approx([0.1, 0.6, 0.1, -0.4, -0.4])
    assert np.isnan(zw.iloc[5])


def test_leave_out_cell_propensity_by_hand():
    df = pd.DataFrame(
        {
            "manager": ["a", "a", "a", "a", "b", "b", "b", "c"],
            "cell": [1, 1, 2, 2, 1, 2, 2, 1],
            "d": [1, 0, 1, 1, 0, 0, 1, 1],
        }
    )
    z = leave_out_cell_propensity(df, group="manager", treatment="d", cells="cell")
    # treatment net of the cell mean (cell 1: 2/4, cell 2: 3/4), then the mean
    # over the manager's clients in the other cells
    assert z.tolist()[:7] == pytest.approx([0.25, 0.25, 0.0, 0.0, -0.25, -0.5, -0.5])
    assert np.isnan(z.iloc[7])  # manager c has clients in one cell only
    with pytest.raises(ValueError, match="'grp'"):
        leave_out_cell_propensity(df, group="grp", treatment="d", cells="cell")


def test_leave_out_cell_propensity_has_no_mechanical_first_stage():
    """No case-manager effect at all, several clients per manager per cell,
    cells absorbed: the leave-one-out mean shows a first stage that is pure
    exclusion bias (negative, F far above its null), the leave-out-cell
    propensity does not."""
    loo_t, cell_f = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        n = 1200  # 25 teams of 2 managers, 4 cells per team, about 6 clients per manager-cell
        df = pd.DataFrame({"cell": rng.integers(0, 100, n)})
        df["manager"] = df["cell"] // 4 * 10 + rng.integers(0, 2, n)
        df["d"] = (rng.random(n) < 0.3).astype(float)
        df["y"] = rng.normal(size=n)
        kw = {"outcome": "y", "treatment": "d", "absorb": "cell", "cluster": "manager"}
        df["z_loo"] = leave_one_out_propensity(df, group="manager", treatment="d", within="cell")
        df["z_cell"] = leave_out_cell_propensity(df, group="manager", treatment="d", cells="cell")
        loo = instrumental_variable(df, **kw, instrument="z_loo")
        loo_t.append(
            loo.first_stage.loc["z_loo", "estimate"] / loo.first_stage.loc["z_loo", "std_error"]
        )
        cell_f.append(
            instrumental_variable(
                df.dropna(subset=["z_cell"]), **kw, instrument="z_cell"
            ).first_stage_f
        )
    assert max(loo_t) < -1 and np.mean(loo_t) < -2  # negative in every draw: mechanical
    assert np.mean(cell_f) < 3  # about the null's mean of 1


def test_instrumental_variable_rejects_bad_input():
    df = caseload(teams=2, periods=2)
    kw = {"outcome": "y", "treatment": "d"}
    with pytest.raises(ValueError, match="'zz'"):
        instrumental_variable(df, **kw, instrument="zz")
    with pytest.raises(ValueError, match="'c'.*no variation"):
        instrumental_variable(df.assign(c=1.0), **kw, instrument="c")
    # varies only between teams: nothing left within team cells
    with pytest.raises(ValueError, match="'t2'.*within the absorbed cells"):
        instrumental_variable(df.assign(t2=df.team * 1.0), **kw, instrument="t2", absorb="team")
    with pytest.raises(ValueError, match="'grp'"):
        leave_one_out_propensity(df, group="grp", treatment="d")


# ---------------------------------------------------------------------------
# event study
# ---------------------------------------------------------------------------


def test_event_study_recovers_a_planted_path_without_pretrend():
    panel = staggered_panel()
    res = event_study(
        panel, outcome="y", entity="unit", time="t", treatment_start="start", leads=3, lags=3
    )
    truth = {-3: 0.0, -2: 0.0, -1: 0.0, 0: 0.1, 1: 0.2, 2: 0.3, 3: 0.3}
    et = res.event_time_table()
    assert list(et.index) == list(truth)
    for event_time, value in truth.items():
        row = et.loc[event_time]
        assert row.ci_low <= value <= row.ci_high, (event_time, row.to_dict())
    assert res.pretrend["df"] == 2
    assert res.pretrend["pvalue"] > 0.05
    # the headline: the mean of the effects at event times 0..3, each event time
    # weighted equally; the treated cohorts' rows outside the window are left out
    assert covers(res, np.mean([truth[k] for k in range(4)]))
    assert res.cov_type == "clustered" and res.n_clusters == 60
    rel = panel.t - panel.start
    assert res.n == int((panel.start.isna() | rel.between(-3, 3)).sum())


def test_event_study_pre_mean_baseline():
    """Against the mean of the pre-periods: the same planted effect, a
    smaller standard error than against one reference period, and the
    estimate equals the reference-based one minus each cohort's
    observation-weighted pre-period mean, computed by hand."""
    panel = staggered_panel(seed=3)
    kw = {
        "outcome": "y",
        "entity": "unit",
        "time": "t",
        "treatment_start": "start",
        "leads": 3,
        "lags": 3,
    }
    ref = event_study(panel, **kw)
    pre = event_study(panel, **kw, baseline="pre_mean")
    assert pre.diagnostics["baseline"] == "pre_mean" and "mean of the cohort" in pre.estimand
    pd.testing.assert_frame_equal(pre.event_time, ref.event_time)
    ce = ref.cohort_effects
    post = ce[(ce.event_time >= 0) & (ce.event_time <= 3)]
    share = post.groupby("cohort").n_obs.sum() / post.n_obs.sum()
    by_hand = ref.estimate
    for cohort, a_e in share.items():
        lead = ce[(ce.cohort == cohort) & (ce.event_time < 0) & (ce.event_time >= -3)]
        rows = panel[panel.start == cohort]
        n_ref = int((rows.t - rows.start == -1).sum())
        by_hand -= a_e * (lead.estimate * lead.n_obs).sum() / (n_ref + lead.n_obs.sum())
    assert pre.estimate == pytest.approx(by_hand, abs=1e-10)
    et = ref.event_time_table().loc[0:3]
    planted = np.average([0.1, 0.2, 0.3, 0.3], weights=et.n_obs)
    assert covers(pre, planted)
    assert pre.std_error < ref.std_error
    with pytest.raises(ValueError, match="baseline"):
        event_study(panel, **kw, baseline="first")


def test_event_study_detects_a_planted_pretrend():
    res = event_study(
        staggered_panel(pretrend=0.05),
        outcome="y",
        entity="unit",
        time="t",
        treatment_start="start",
        leads=3,
        lags=3,
    )
    assert res.pretrend["pvalue"] < 0.05
    assert res.pretrend_pvalue < 0.05
    # and with few clusters, by the wild cluster bootstrap
    few = event_study(
        team_clients(pretrend=0.15),
        outcome="y",
        entity="team",
        time="month",
        treatment_start="start",
        leads=3,
        lags=3,
        collapse=True,
    )
    assert few.n_clusters == 20
    assert few.pretrend["pvalue_wild"] < 0.05


def test_event_study_is_robust_to_effects_that_differ_across_cohorts():
    mult = {4.0: 0.5, 6.0: 1.0, 8.0: 1.5, 10.0: 2.0}
    panel = staggered_panel(seed=1, multiplier=mult)
    res = event_study(
        panel, outcome="y", entity="unit", time="t", treatment_start="start", leads=3, lags=3
    )
    # planted interaction-weighted path: cohort shares times cohort effects
    ce = res.cohort_effects.dropna(subset=["weight"])
    path = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.3}
    for event_time, value in path.items():
        rows = ce[ce.event_time == event_time]
        planted = float((rows.weight * rows.cohort.map(mult) * value).sum())
        row = res.event_time_table().loc[event_time]
        assert row.ci_low <= planted <= row.ci_high, (event_time, planted, row.to_dict())
    assert res.pretrend["pvalue"] > 0.05


def test_event_study_on_a_repeated_cross_section_and_collapsed_cells():
    df = team_clients()
    n = len(df)
    kw = {"outcome": "y", "entity": "team", "time": "month", "treatment_start": "start"}
    rows = event_study(df, **kw, leads=3, lags=3, debiased=False)
    cells = event_study(df, **kw, leads=3, lags=3, debiased=False, collapse=True)
    assert cells.estimate == pytest.approx(rows.estimate, abs=1e-8)
    assert cells.event_time.estimate.to_numpy() == pytest.approx(
        rows.event_time.estimate.to_numpy(), abs=1e-8
    )
    rel = df.month - df.start
    assert cells.n == rows.n == int((df.start.isna() | rel.between(-3, 3)).sum()) < n
    assert covers(cells, 0.2)
    # 20 clusters: a wild cluster bootstrap p-value is added to the pre-trend test
    assert cells.pretrend_pvalue == cells.pretrend["pvalue_wild"] > 0.05
    # last-treated cohort as control: the never-treated teams left out
    last = event_study(df.dropna(subset=["start"]), **kw, leads=3, lags=3, collapse=True)
    assert last.diagnostics["control_cohort"] == 10.0
    assert covers(last, 0.2)


def test_event_study_accepts_periods_and_plots():
    panel = staggered_panel(seed=2, units=30)
    as_periods = panel.assign(
        t=pd.PeriodIndex.from_ordinals(panel.t + 600, freq="M"),
        start=pd.Series(
            [pd.Period(ordinal=int(s) + 600, freq="M") if s == s else pd.NaT for s in panel.start],
            dtype="period[M]",
        ),
    )
    kw = {"outcome": "y", "entity": "unit", "time": "t", "treatment_start": "start"}
    a = event_study(panel, **kw, leads=2, lags=2)
    b = event_study(as_periods, **kw, leads=2, lags=2)
    assert a.estimate == pytest.approx(b.estimate)
    fig = a.plot()
    assert type(fig).__name__ == "Figure" and len(fig.axes) == 1
    summary = a.summary()
    assert "post (aggregated)" in summary.index and "event time 0" in summary.index
    record = json.loads(json.dumps(a.to_record(), allow_nan=False))
    assert record["design"] == "event_study"
    assert record["diagnostics"]["pretrend_df"] == 1
    assert record["ci_low"] < record["estimate"] < record["ci_high"]


def test_event_study_rejects_bad_input():
    panel = staggered_panel(units=20)
    kw = {"outcome": "y", "entity": "unit", "time": "t"}
    with pytest.raises(ValueError, match="'begin'"):
        event_study(panel, **kw, treatment_start="begin")
    moving = panel.assign(start=panel.start.where(panel.t != 0, 5.0))
    with pytest.raises(ValueError, match="'start' varies within entity 'unit'"):
        event_study(moving, **kw, treatment_start="start")
    with pytest.raises(ValueError, match="'t'.*whole periods"):
        event_study(panel.assign(t=panel.t + 0.5), **kw, treatment_start="start")
    with pytest.raises(ValueError, match="reference"):
        event_study(panel, **kw, treatment_start="start", leads=2, reference=-3)

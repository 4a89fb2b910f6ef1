"""Selection on observables: its two estimands (now versus later, versus
never), their truths, the overlap rule (drop the upper tail), the
diagnostics, and the oracle's extra covariates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from reintegration import designs, effects
from reintegration.designs import Inputs
from reintegration.designs import selection as soo
from reintegration.phase2 import estimates
from reintegration.research.panel_months import benefit_exit

KEY = ["RINPERSOONS", "RINPERSOON"]


# ---------------------------------------------------------------------------
# a small dynamic world: monthly starts of two instruments, a planted effect
# ---------------------------------------------------------------------------


def dynamic_world(
    n: int = 5000,
    *,
    seed: int = 0,
    confound: float = 0.0,
    effect: float = 0.3,
    months: int = 6,
    months_on_benefit: int = 24,
) -> pd.DataFrame:
    """Persons who may start training or job coaching in months 1..months
    (monthly hazard rising with x and, when ``confound`` > 0, with an
    unobserved u that also lowers the untreated outcome). Everyone stays on
    benefit. ``employed_12`` = Y(never) + effect for anyone who started
    (every start falls before month 12)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    u = rng.normal(size=n)
    start = np.full(n, np.nan)
    inst = np.full(n, "none", dtype=object)
    hazard = expit(-2.5 + 0.5 * x + confound * u)
    for s in range(1, months + 1):
        go = np.isnan(start) & (rng.random(n) < hazard)
        start[go] = s
        inst[go] = np.where(rng.random(go.sum()) < 0.5, "training", "job_coaching")
    y0 = 0.8 * x - confound * u + rng.normal(size=n)
    return pd.DataFrame(
        {
            "RINPERSOONS": "R",
            "RINPERSOON": [f"{i:09d}" for i in range(n)],
            "instrument": inst,
            "instrument_elapsed": pd.array(start, dtype="Float64"),
            "x": x,
            "u": u,
            "hazard": hazard,
            "y0": y0,
            "employed_12": y0 + effect * ~np.isnan(start),
        }
    ).assign(_months=months_on_benefit)


def month_panel(persons: pd.DataFrame) -> pd.DataFrame:
    months = pd.DataFrame({"month": range(0, int(persons["_months"].iloc[0]) + 1)})
    return persons[KEY].merge(months, how="cross").assign(on_benefit=1)


def settings_for(extra: list[str] | None = None, **soo_cfg) -> dict:
    s = estimates.load_settings()
    cfg = {
        **s["selection_on_observables"],
        "max_month": 6,
        "extra_covariates": extra or [],
        **soo_cfg,
    }
    return {**s, "covariates": ["x"], "selection_on_observables": cfg}


def prepared(persons: pd.DataFrame, settings: dict, instrument: str = "training"):
    design = designs.get("selection_on_observables")
    inputs = Inputs(persons=persons, city={}, effects=settings, person_months=month_panel(persons))
    return design, design.prepare(inputs, instrument)


def covers(res, value: float) -> bool:
    lo, hi = res.conf_int()
    return lo <= value <= hi


# ---------------------------------------------------------------------------
# estimands and truths
# ---------------------------------------------------------------------------


def test_targets_keep_the_headline_first() -> None:
    design = designs.get("selection_on_observables")
    assert list(design.targets) == ["now_vs_later", "vs_never"]
    assert design.headline_target == "now_vs_later"


def test_truth_of_each_target_on_a_hand_made_frame() -> None:
    design = designs.get("selection_on_observables")
    po = pd.DataFrame(
        {
            "instrument": ["training", "training", "training", "none", "job_coaching"],
            "employed_training_12": [1, 1, 0, 0, 1],
            "employed_none_12": [0, 1, 0, 0, 0],
            "employed_notnow_12": [1, 0, 0, 1, 1],
            "employed_job_coaching_12": [0, 0, 0, 0, 1],
        }
    )
    rec = {"instrument": "training", "outcome": "employed_12", "target": "now_vs_later"}
    # starters of training: (1-1) + (1-0) + (0-0) over 3
    assert design.truth(po, rec, None, {}) == pytest.approx(1 / 3)
    rec_never = {**rec, "target": "vs_never"}
    assert design.truth(po, rec_never, None, {}) == pytest.approx(1 / 3)  # 1 + 0 + 0
    mask = np.array([True, False, True, True, True])
    assert design.truth(po, rec, mask, {}) == pytest.approx(0.0)
    assert design.truth(po, rec_never, mask, {}) == pytest.approx(0.5)
    assert soo.not_now_truth(po, "job_coaching", "employed_12") == pytest.approx(0.0)
    # without the "not now" potential outcome: NaN, and the context says why
    ctx: dict = {}
    assert math.isnan(design.truth(po.drop(columns="employed_notnow_12"), rec, None, ctx))
    assert "employed_notnow_12" in ctx["truth_missing"]["selection_on_observables/now_vs_later"]
    assert design.truth(po.drop(columns="employed_notnow_12"), rec_never, None, {}) == (
        pytest.approx(1 / 3)
    )
    assert math.isnan(design.truth(po, {**rec, "outcome": "months_employed"}, None, {}))
    with pytest.raises(KeyError, match="known: now_vs_later, vs_never"):
        design.truth(po, {**rec, "target": "ate"}, None, {})


def test_versus_never_recovers_the_effect_later_starters_dilute() -> None:
    persons = dynamic_world(seed=1)
    settings = settings_for()
    design, data = prepared(persons, settings)
    assert {"_any_start", "benefit_months"} <= set(data.columns)
    later = design.estimate(data, "employed_12", settings)
    never = design.estimate(data, "employed_12", settings, target="vs_never")
    assert later.diagnostics["target"] == "now_vs_later"
    assert never.diagnostics["target"] == "vs_never"
    # versus never: the planted effect of starting
    assert covers(never, 0.3), (never.estimate, never.conf_int())
    assert never.diagnostics["censoring_n_censored"] > 0
    # now versus later: the effect minus what the comparison group gains by starting later
    # (the same monthly hazard after the starter's month, up to month 6)
    starters = persons[persons["instrument"] == "training"]
    u = starters["instrument_elapsed"].astype(float).to_numpy()
    later_share = 1 - (1 - starters["hazard"].to_numpy()) ** (6 - u)
    truth_later = float(np.mean(0.3 * (1 - later_share)))
    assert covers(later, truth_later), (later.estimate, truth_later)
    assert later.estimate < never.estimate - 0.05


def test_censoring_weights_are_the_inverse_survival_of_the_monthly_hazard() -> None:
    # one covariate-free group: the logit with month indicators gives the
    # monthly start rates of the persons at risk
    rng = np.random.default_rng(5)
    n = 3000
    start = np.full(n, np.nan)
    for s, h in ((2, 0.1), (3, 0.2), (4, 0.05)):
        go = np.isnan(start) & (rng.random(n) < h)
        start[go] = s
    people = pd.DataFrame({"pid": range(n), "any": start, "elig": (1 << 30) - 1, "c": 0.0})
    stacked = effects.dynamic_risk_set(
        people.assign(own=np.nan, ex=np.nan), start="any", exit="ex", max_month=4, min_month=1
    )
    w, info = effects.censoring_weights(
        stacked, person="pid", start="any", eligible="elig", covariates=[], horizon=None
    )
    rates = {}
    for s in (2, 3, 4):
        at_risk = np.isnan(start) | (start >= s)
        rates[s] = float((start[at_risk] == s).mean())
    row = stacked.index[(stacked["elapsed_month"] == 1) & stacked["any"].isna()][0]
    expected = 1 / ((1 - rates[2]) * (1 - rates[3]) * (1 - rates[4]))
    assert w[row] == pytest.approx(expected, rel=1e-5)
    row3 = stacked.index[(stacked["elapsed_month"] == 3) & stacked["any"].isna()][0]
    assert w[row3] == pytest.approx(1 / (1 - rates[4]), rel=1e-5)
    # a later start censors; a start in the row's own month does not
    later = (stacked["any"] > stacked["elapsed_month"]).to_numpy()
    assert (w[later] == 0).all() and info["n_censored"] == later.sum()
    now = (stacked["any"] == stacked["elapsed_month"]).to_numpy()
    assert (w[now] == 1).all()
    # a horizon: starts after it do not censor and their months do not count
    w2, _ = effects.censoring_weights(
        stacked, person="pid", start="any", eligible="elig", covariates=[], horizon=3
    )
    after = (stacked["any"] == 4).to_numpy() & (stacked["elapsed_month"] == 1).to_numpy()
    assert w2[after] == pytest.approx(1 / ((1 - rates[2]) * (1 - rates[3])), rel=1e-5)
    # months off benefit (no bit) cannot hold a start: no factor for them
    off = stacked.assign(elig=(1 << 30) - 1 - (1 << 2))  # not on benefit in month 2
    w3, _ = effects.censoring_weights(
        off, person="pid", start="any", eligible="elig", covariates=[], horizon=None
    )
    assert w3[row] == pytest.approx(1 / ((1 - rates[2]) * (1 - rates[4])), rel=1e-2)


# ---------------------------------------------------------------------------
# the oracle: extra covariates reach both models
# ---------------------------------------------------------------------------


def test_extra_covariates_remove_a_planted_confounder() -> None:
    persons = dynamic_world(n=6000, seed=2, confound=0.8)
    plain = settings_for()
    oracle = settings_for(extra=["u"])
    design, data = prepared(persons, oracle)
    assert "u" in data.columns
    for target in ("vs_never",):
        biased = design.estimate(data, "employed_12", plain, target=target)
        right = design.estimate(data, "employed_12", oracle, target=target)
        assert "u" not in biased.diagnostics["covariates"]
        assert "u" in right.diagnostics["covariates"]
        # starters have higher u and so a lower untreated outcome: biased downwards
        assert biased.conf_int()[1] < 0.3, (target, biased.estimate)
        assert covers(right, 0.3), (target, right.estimate, right.conf_int())
    with pytest.raises(ValueError, match="extra_covariates.*'eta'"):
        prepared(persons, settings_for(extra=["eta"]))


# ---------------------------------------------------------------------------
# overlap, diagnostics, learners
# ---------------------------------------------------------------------------


def overlap_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 2.5
    d = (rng.random(n) < expit(-1 + 1.5 * x)).astype(int)
    y = x + 0.5 * d + rng.normal(size=n)
    return pd.DataFrame({"x": x, "d": d, "y": y})


def test_ipw_drops_the_upper_tail_and_leaves_small_scores_alone() -> None:
    df = overlap_frame()
    res = effects.selection_on_observables(
        df, outcome="y", treatment="d", covariates=["x"], method="ipw", trim=0.05
    )
    p = sm.Logit(df.d, sm.add_constant(df[["x"]])).fit(disp=0).predict()
    kept = p <= 0.95
    assert (p < 0.05).sum() > 100  # many small scores: not clipped, not dropped
    w = p / (1 - p)
    ctrl = kept & (df.d == 0)
    manual = df.y[kept & (df.d == 1)].mean() - np.average(df.y[ctrl], weights=w[ctrl])
    assert res.estimate == pytest.approx(manual, abs=1e-6)
    dg = res.diagnostics
    assert dg["n_trimmed"] == int((~kept).sum()) > 0
    assert dg["n_trimmed_treated"] == int((~kept & (df.d == 1)).sum())
    assert dg["n_pscore_clipped"] == 0
    assert res.n_treated == int((kept & (df.d == 1)).sum())
    assert dg["ess_treated"] == pytest.approx(res.n_treated)
    assert dg["ess_control"] == pytest.approx(w[ctrl].sum() ** 2 / (w[ctrl] ** 2).sum())
    assert dg["ess_control"] < ctrl.sum()


def test_strata_report_balance_and_effective_sizes() -> None:
    df = overlap_frame(n=4000, seed=3)
    df["s"] = (df.index % 2).astype(int)
    res = effects.selection_on_observables(
        df, outcome="y", treatment="d", covariates=["x"], method="aipw", strata="s", folds=3
    )
    dg = res.diagnostics
    assert set(dg["max_abs_smd_weighted_by_stratum"]) == {"0", "1"}
    assert dg["max_abs_smd_weighted_strata"] == pytest.approx(
        max(dg["max_abs_smd_weighted_by_stratum"].values())
    )
    assert list(res.strata.columns[:6]) == [
        "n_treated",
        "n_control",
        "n_trimmed",
        "n_trimmed_treated",
        "ess_control",
        "max_abs_smd_weighted",
    ]
    assert (res.strata["ess_control"] < res.strata["n_control"]).all()
    assert dg["learner"] == "OLSLearner"


def test_boosting_learners_cross_fit_and_recover_a_nonlinear_effect() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.uniform(-2, 2, size=(n, 2))
    p = expit(-0.5 + np.sin(2 * x[:, 0]) + x[:, 1] ** 2 / 2)
    d = (rng.random(n) < p).astype(int)
    y = np.cos(2 * x[:, 0]) + x[:, 1] ** 2 + 0.4 * d + rng.normal(scale=0.5, size=n)
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "d": d, "y": y})
    kw = {"outcome": "y", "treatment": "d", "covariates": ["x1", "x2"], "method": "aipw"}
    boosted = effects.selection_on_observables(df, **kw, **effects.learners("boosting"))
    linear = effects.selection_on_observables(df, **kw)
    assert covers(boosted, 0.4), boosted.conf_int()
    assert boosted.diagnostics["learner"] == "HistGradientBoostingRegressor"
    assert abs(boosted.estimate - 0.4) < abs(linear.estimate - 0.4)
    with pytest.raises(ValueError, match="learner"):
        effects.learners("forest")


def test_month_indicators_within_pooled_bands_and_in_the_record() -> None:
    persons = dynamic_world(n=3000, seed=6)
    settings = settings_for(min_stratum_treated=10_000)  # one band of months 1..6
    design, data = prepared(persons, settings)
    res = design.estimate(data, "employed_12", settings)
    assert res.diagnostics["n_strata"] == 1
    assert res.diagnostics["n_month_indicators"] == 5
    assert [c for c in res.diagnostics["covariates"] if c.startswith("_month_")] == [
        f"_month_{u}" for u in range(2, 7)
    ]
    rec = estimates.result_record({"diagnostics": {}}, res)
    for key in (
        "ess_treated",
        "ess_control",
        "n_trimmed",
        "max_abs_smd_weighted_strata",
        "max_abs_smd_weighted_by_stratum",
        "effective_n_control",
        "n_pscore_clipped",
    ):
        assert key in rec["diagnostics"], key


def test_phase2_records_both_targets_for_the_whole_sample_only() -> None:
    persons = dynamic_world(n=2000, seed=7)
    persons = persons.assign(
        age=40,
        sex="female",
        education="low",
        migration="nl",
        prior_employment_months=0,
        prior_employment=0.0,
        female=1,
    )
    settings = {**settings_for(), "outcomes": {"employed_12": "employed 12 months after"}}
    sub = {
        "id": "selection_on_observables/training",
        "design": "selection_on_observables",
        "instrument": "training",
        "decision": "go",
        "reasons": [],
        "conditions": [],
    }
    recs, _ = estimates.city_estimates(
        {"name": "x"}, persons, month_panel(persons), [sub], settings
    )
    whole = [r for r in recs if r["subgroup"] == "all"]
    assert [r["target"] for r in whole] == ["now_vs_later", "vs_never"]
    assert all(r["status"] == "estimated" for r in whole)
    assert {r["target"] for r in recs if r["subgroup"] != "all"} == {"now_vs_later"}
    # the subgroup figure shows the headline; the bias figure labels the other target
    drawn = estimates.subgroup_figure(recs, sub["id"], "employed_12")
    if drawn is not None:
        assert list(drawn[1].index).count("all") == 1
    po = persons.assign(employed_training_12=persons["employed_12"], employed_none_12=persons["y0"])
    frame = estimates.validation_frame(recs, po, {}, {"name": "x"}, settings)
    whole = frame[frame["subgroup"] == "all"]
    assert whole.set_index("target")["truth"].isna().to_dict() == {
        "now_vs_later": True,
        "vs_never": False,
    }
    # the bias figure shows each design's headline only (the table holds every target)
    po = po.assign(employed_notnow_12=persons["y0"])
    frame = estimates.validation_frame(recs, po, {}, {"name": "x"}, settings)
    _, counts = estimates.bias_figure(frame, "employed_12")
    assert list(counts.index) == ["selection_on_observables: Training"]  # the label


def test_month_indicators_skip_band_starts_and_months_without_controls() -> None:
    months = np.array([1, 2, 2, 3, 3, 4])
    bands = np.array([1, 1, 1, 1, 1, 4])
    treated = np.array([0, 1, 1, 0, 1, 1])
    got = soo.month_indicators(months, bands, treated)
    assert list(got.columns) == ["_month_3"]  # 1 and 4 start bands, 2 has no controls
    assert got["_month_3"].tolist() == [0, 0, 0, 1, 1, 0]
    assert list(soo.month_indicators(months, bands).columns) == ["_month_2", "_month_3"]
    assert soo.month_indicators(months, months, treated).shape == (6, 0)


def test_benefit_exit_keeps_the_months_on_benefit_as_bits() -> None:
    pm = pd.DataFrame(
        {
            "RINPERSOONS": "R",
            "RINPERSOON": ["a"] * 5 + ["b"] * 3,
            "month": [-1, 0, 1, 2, 3, 0, 1, 2],
            "on_benefit": [0, 1, 1, 0, 1, 1, 1, 1],
        }
    )
    got = benefit_exit(pm).set_index("RINPERSOON")
    assert got.loc["a", "exit_month"] == 2 and np.isnan(got.loc["b", "exit_month"])
    # a: months 0, 1 and 3 (back on benefit after leaving); b: months 0-2
    assert got["benefit_months"].to_dict() == {"a": 0b1011, "b": 0b111}

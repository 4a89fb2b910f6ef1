"""The case-manager IV's estimands: j against none with the other
instruments' propensities held fixed (headline), all instruments jointly, and
the just-identified mix; the Anderson-Rubin set in the record; the
monotonicity check; one fit per estimate; the truth of each target."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reintegration import designs
from reintegration.designs import iv
from reintegration.phase2 import estimates

EFFECT = {"a": 0.10, "b": 0.25}   # each instrument against none


def simulated_persons(seed: int = 0, *, n: int = 24000, managers: int = 96, sd: float = 0.6,
                      flip_group: bool = False, effect: dict | None = None) -> pd.DataFrame:
    """Clients allocated at random to case managers within team x quarter
    cells; a multinomial choice between none, a and b with case-manager
    effects that are negatively correlated (a case manager keen on a tends to
    be reluctant about b: a higher propensity for a moves clients mostly out
    of b), with enough independent variation to hold b's propensity fixed;
    an unobserved prognosis u drives both the choice and the outcome; constant
    effects EFFECT against none. With ``flip_group`` the case
    managers' effects are reversed for the clients of group "x" (monotonicity
    fails there)."""
    rng = np.random.default_rng(seed)
    teams, quarters = 4, 6
    team_of = np.arange(managers) % teams
    theta_a = rng.normal(0, sd, managers)
    theta_b = -0.7 * theta_a + rng.normal(0, 0.7 * sd, managers)
    team = rng.integers(0, teams, n)
    quarter = rng.integers(0, quarters, n)
    # a case manager of the client's team, at random
    per_team = managers // teams
    cm = team + teams * rng.integers(0, per_team, n)
    assert (team_of[cm] == team).all()
    group = np.where(rng.random(n) < 0.3, "x", "y")
    sign = np.where(flip_group & (group == "x"), -1.0, 1.0)
    u = rng.normal(size=n)
    util = np.column_stack([
        np.zeros(n),
        -1.0 + 0.5 * u + sign * theta_a[cm],
        -1.0 - 0.5 * u + sign * theta_b[cm],
    ]) + rng.gumbel(size=(n, 3))
    choice = util.argmax(axis=1)
    instrument = np.array(["none", "a", "b"])[choice]
    eff = EFFECT if effect is None else effect
    y = (0.3 + 0.2 * u + eff["a"] * (choice == 1) + eff["b"] * (choice == 2)
         + 0.05 * team + rng.normal(0, 0.4, n))
    return pd.DataFrame({"case_manager": [f"m{m:03d}" for m in cm], "team": team,
                         "inflow_quarter": quarter, "instrument": instrument, "y": y,
                         "grp": group})


@pytest.fixture(scope="module")
def settings() -> dict:
    s = estimates.load_settings()
    s["case_manager_iv"] = {**s["case_manager_iv"], "monotonicity_subgroups": ["grp"]}
    return s


@pytest.fixture(scope="module")
def prepared() -> pd.DataFrame:
    return iv.iv_data(simulated_persons(), "a")


def test_headline_recovers_j_versus_none_and_the_mix_does_not(prepared, settings):
    design = designs.get("case_manager_iv")
    assert design.headline_target == "versus_none"
    assert list(design.targets) == ["versus_none", "versus_none_controls", "mixed"]
    res = {t: design.estimate(prepared, "y", settings, target=t) for t in design.targets}
    truth = EFFECT["a"]
    head = res["versus_none"]
    assert head.method == "2sls_joint" and head.diagnostics["target"] == "versus_none"
    assert abs(head.estimate - truth) < 2 * head.std_error
    assert abs(head.estimate - truth) < 0.05
    # the just-identified 2SLS mixes a-versus-none (0.10) with a-versus-b (-0.15)
    mixed = res["mixed"]
    assert mixed.estimate < truth - 3 * mixed.std_error
    # holding b's propensity fixed removes most of the mix
    ctrl = res["versus_none_controls"]
    assert mixed.estimate < ctrl.estimate and abs(ctrl.estimate - truth) < 2 * ctrl.std_error
    # a higher propensity for a moves clients mostly out of b: the mix is the reason
    d = prepared.dropna(subset=["_z"])
    cross = np.polyfit(d["_z"], d["_d:b"], 1)[0] / np.polyfit(d["_z"], d["_d"], 1)[0]
    assert cross < -0.5


def test_record_carries_the_anderson_rubin_set_and_the_monotonicity_table(prepared, settings):
    head = iv.fit_iv(prepared, "y", settings)
    diag = head.diagnostics
    assert diag["ar_bounded"] is True and diag["ar_kind"] == "interval"
    assert diag["ar_method"].startswith("projection")
    (lo, hi), = diag["ci_anderson_rubin"]
    wald = head.conf_int()
    assert lo < wald[0] < head.estimate < wald[1] < hi     # the projection is conservative
    table = pd.DataFrame(diag["first_stage_by_group"])
    assert list(table["group"]) == ["x", "y"] and (table["estimate"] > 0).all()
    assert diag["monotonicity"] == "pass"
    # one endogenous regressor: the exact set, close to Wald with a strong instrument
    ctrl = iv.fit_iv(prepared, "y", settings, "versus_none_controls")
    (lo, hi), = ctrl.diagnostics["ci_anderson_rubin"]
    assert ctrl.diagnostics["ar_method"].startswith("exact")
    assert lo == pytest.approx(ctrl.conf_int()[0], abs=0.3 * ctrl.std_error)
    assert "first_stage_by_group" not in ctrl.diagnostics   # the headline's
    sub = {"id": "case_manager_iv/a", "design": "case_manager_iv", "instrument": "a",
           "decision": "go"}
    one = {**settings, "outcomes": {"y": "outcome"}}
    records, _ = estimates.run_substudy("sim", sub, prepared, designs.get("case_manager_iv"), one)
    whole = {r["target"]: r for r in records if r["subgroup"] == estimates.ALL}
    assert set(whole) == set(iv.TARGETS)
    kept = whole["versus_none"]["diagnostics"]
    assert kept["ar_bounded"] is True and kept["monotonicity"] == "pass"
    assert len(kept["first_stage_by_group"]) == 2
    assert kept["ci_anderson_rubin"][0] == pytest.approx([lo_ for lo_ in diag[
        "ci_anderson_rubin"][0]])
    assert whole["mixed"]["diagnostics"]["ar_kind"] == "interval"
    # subgroups get the headline only; the subgroup figure shows one whole-cohort row
    with_groups = {**one, "subgroups": {"grp": "a group"}}
    records, _ = estimates.run_substudy("sim", sub, prepared, designs.get("case_manager_iv"),
                                     with_groups, subgroups=prepared[["grp"]])
    assert sorted((r["subgroup"], r["target"]) for r in records if r["subgroup"] != "all") == [
        ("grp", "versus_none"), ("grp", "versus_none")]
    _, counts = estimates.subgroup_figure(records, sub["id"], "y")
    assert list(counts.index) == ["all", "grp: x", "grp: y"]
    # a subgroup's own headline record has no AR set (projection: whole samples only)
    assert records[-1]["diagnostics"]["ar_kind"] == "not_computed"


def test_weak_instrument_gives_an_unbounded_anderson_rubin_set(settings):
    data = iv.iv_data(simulated_persons(3, n=4000, sd=0.01), "a")
    for target in iv.TARGETS:
        res = iv.fit_iv(data, "y", settings, target)
        diag = res.diagnostics
        assert diag["ar_bounded"] is False, target
        assert diag["ar_kind"] in ("two_rays", "whole_line", "half_line")
        ends = [e for interval in diag["ci_anderson_rubin"] for e in interval]
        assert math.inf in ends or -math.inf in ends
        # the Wald interval is finite all the same: only the AR set shows the problem
        assert all(math.isfinite(x) for x in res.conf_int())


def test_monotonicity_check_flags_a_group_whose_first_stage_is_reversed(settings):
    data = iv.iv_data(simulated_persons(5, flip_group=True), "a")
    table = iv.first_stage_by_group(data, settings)
    by = table.set_index("group")["estimate"]
    assert by["x"] < 0 < by["y"]
    assert iv.monotonicity_verdict(table) == "fail"
    too_small = {**settings, "min_group": {"treated": 10**6, "control": 30, "clusters": 4}}
    assert iv.monotonicity_verdict(iv.first_stage_by_group(data, too_small)) == "not_assessed"


def test_each_estimate_is_fitted_once(prepared, settings, monkeypatch):
    from reintegration.effects import iv as effects_iv

    calls = []
    real = effects_iv.tsls

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("the design must not refit through instrumental_variable")

    monkeypatch.setattr(effects_iv, "tsls", counting)
    monkeypatch.setattr(effects_iv, "instrumental_variable", forbidden)
    for target in iv.TARGETS:
        calls.clear()
        iv.fit_iv(prepared, "y", settings, target)
        assert len(calls) == 1, target


def test_truth_of_each_target_from_a_hand_made_truth_file():
    entry = {"estimand": {"employed": {"24": 0.01}, "on_benefit": {"24": -0.02}},
             "estimand_controls": {"employed": {"24": 0.03}, "on_benefit": {"12": -0.04}},
             "estimand_joint": {"employed": {"24": 0.05}}}
    truth = {"case_manager_iv": {"instruments": {"training": entry}}}
    design = designs.get("case_manager_iv")

    def value(target, outcome="employed_24", mask=None, t=truth):
        rec = {"instrument": "training", "outcome": outcome, "target": target}
        return design.truth(pd.DataFrame(), rec, mask, {"truth": t})

    assert value("versus_none") == 0.05
    assert value("versus_none_controls") == 0.03
    assert value("mixed") == 0.01
    assert value(None) == 0.05                          # no target: the headline
    assert value("versus_none_controls", "off_benefit_12") == 0.04
    assert value("mixed", "off_benefit_24") == 0.02
    assert math.isnan(value("versus_none", "off_benefit_24"))   # key absent
    assert math.isnan(value("versus_none", "months_employed"))
    assert math.isnan(value("versus_none", mask=np.ones(3, dtype=bool)))  # subgroups
    old = {"case_manager_iv": {"instruments": {"training": {"estimand": entry["estimand"]}}}}
    assert math.isnan(value("versus_none", t=old))     # before the generator writes it
    assert value("mixed", t=old) == 0.01
    odd = {"case_manager_iv": {"instruments": {"training": {
        "estimand_joint": {"employed": {"24": [0.1, 0.2]}}}}}}
    with pytest.raises(ValueError, match=r"training\.estimand_joint\.employed\.24 is list"):
        value("versus_none", t=odd)
    with pytest.raises(KeyError, match="no estimand"):
        design.estimate(pd.DataFrame(), "y", {}, target="late")


def test_phase1_null_standard_error_matches_the_headline_under_no_effect(settings):
    """The MDE's standard error under no effect is the headline's (joint)
    standard error when there is no effect."""
    data = iv.iv_data(simulated_persons(7, effect={"a": 0.0, "b": 0.0}), "a")
    head = iv.fit_iv(data, "y", settings, inference=False)
    assert abs(head.estimate) < 3 * head.std_error
    assert iv.null_std_error(data, "y") == pytest.approx(head.std_error, rel=0.05)
    # the single-propensity formula would understate it
    single = iv.null_std_error(data.drop(columns=["_d:b", "_z:b"]), "y")
    assert single < 0.8 * head.std_error


# ---------------------------------------------------------------------------
# on a generated city
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotterdam(tmp_path_factory: pytest.TempPathFactory):
    """A small Rotterdam generated into a temporary folder, its panel built."""
    from test_panel import linked_sources

    from reintegration import feasibility
    from reintegration.designs import Inputs
    from reintegration.research import panel

    cfg, src = linked_sources("rotterdam", tmp_path_factory.mktemp("data"))
    built = panel.build(src, cfg["study"])
    return Inputs(persons=built.persons, city=cfg, effects=estimates.load_settings(),
                  feasibility=feasibility.load_settings())


def test_generated_city_gets_every_target_and_the_checks(rotterdam):
    design = designs.get("case_manager_iv")
    data = design.prepare(rotterdam, "job_coaching")
    others = iv.other_pairs(data)
    started = set(rotterdam.persons["instrument"].dropna()) - {"none", "job_coaching"}
    assert {d[len(iv.OTHER_D):] for d, _ in others} == started
    res = {t: design.estimate(data, "employed_24", rotterdam.effects, target=t)
           for t in design.targets}
    # the three estimands differ on the same data and clients
    assert len({round(r.estimate, 6) for r in res.values()}) == 3
    assert len({r.n for r in res.values()}) == 1
    head = res["versus_none"].diagnostics
    assert head["ar_kind"] in ("interval", "two_rays", "whole_line", "half_line")
    table = pd.DataFrame(head["first_stage_by_group"])
    assert set(table["subgroup"]) <= set(rotterdam.effects["subgroups"])
    assert {"age_band", "sex"} <= set(table["subgroup"])
    assert head["monotonicity"] in ("pass", "conditional", "fail", "not_assessed")
    diag = design.diagnose(rotterdam, "job_coaching", outcome="employed_24", threshold=10)
    checks = {c.name: c for c in diag.theoretical}
    assert checks["monotonicity"].verdict == head["monotonicity"] or (
        head["monotonicity"] == "not_assessed")
    pd.testing.assert_frame_equal(pd.DataFrame(diag.evidence_theoretical["first_stage_by_group"]),
                                  table)


def test_validation_tables_keep_targets_apart():
    rows = [{"design": "case_manager_iv", "instrument": "a", "outcome": "employed_24",
             "subgroup": "all", "group": "all", "target": t, "estimate": e, "std_error": 0.01,
             "ci_low": e - 0.02, "ci_high": e + 0.02, "n_treated": 100, "n_control": 100,
             "truth": 0.1, "bias": e - 0.1, "covered": abs(e - 0.1) <= 0.02}
            for t, e in (("versus_none", 0.11), ("mixed", -0.05))]
    frame = pd.DataFrame(rows)
    table = estimates.coverage_table(frame)
    assert table.loc[("case_manager_iv", "versus_none", "employed_24"), "covered"] == 1
    assert table.loc[("case_manager_iv", "mixed", "employed_24"), "covered"] == 0
    _, counts = estimates.bias_figure(frame)
    assert len(counts) == 1                     # the headline only


def test_a_conditional_monotonicity_check_is_met_by_the_subgroup_first_stages():
    from reintegration.designs import Inputs
    from reintegration.phase2 import obligations

    sub = {"id": "case_manager_iv/a", "design": "case_manager_iv", "instrument": "a",
           "decision": "conditional", "obligations": [{"check": "monotonicity"}]}
    inputs = Inputs(persons=pd.DataFrame(), city={}, effects={})
    table = [{"subgroup": "sex", "group": "female", "estimate": -0.1, "t": -0.5}]
    rec = {"substudy": sub["id"], "status": "estimated", "subgroup": "all",
           "diagnostics": {"first_stage_by_group": table, "monotonicity": "conditional"}}
    met = obligations.evaluate([sub], [rec], inputs)
    assert met["status"].tolist() == ["met"] and "conditional" in met["evidence"].iloc[0]
    assert obligations.obligation_for("monotonicity").kind == "analysis"
    unmet = obligations.evaluate([sub], [{**rec, "diagnostics": {}}], inputs)
    assert unmet["status"].tolist() == ["unmet"]


def _two_alternatives(cross: float, seed: int = 3) -> pd.DataFrame:
    """Two endogenous treatments with one instrument each; the second
    treatment loads on the first instrument with ``cross`` (and on its own
    with 1.02): with ``cross`` near 1 both fitted treatments are nearly the
    same combination of the instruments, so the joint model identifies each
    coefficient weakly although each instrument predicts its own treatment
    strongly."""
    rng = np.random.default_rng(seed)
    n = 4000
    z1, z2 = rng.normal(size=n), rng.normal(size=n)
    d1 = z1 + z2 + rng.normal(size=n)
    d2 = cross * z1 + 1.02 * z2 + rng.normal(size=n)
    y = 0.1 * d1 + 0.2 * d2 + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d1, "z": z1, "d2": d2, "z2": z2,
                         "cell": rng.integers(0, 20, n), "cm": rng.integers(0, 200, n)})


def test_joint_model_reports_the_conditional_first_stage_f():
    """The own propensity's F (the other held fixed) is large in both worlds;
    the Sanderson-Windmeijer F of the joint model tells the weakly identified
    one (fitted treatments nearly collinear) from the strong one, and with one
    endogenous treatment it is the ordinary first-stage F."""
    from reintegration.effects import multi_instrument_iv
    from reintegration.effects.iv import conditional_first_stage_f
    from reintegration.effects.numerics import first_stage_f

    fits = {}
    for cross in (0.0, 1.0):
        df = _two_alternatives(cross)
        res = multi_instrument_iv(df, outcome="y", treatment="d", instrument="z",
                                  others=[("d2", "z2")], method="joint", absorb="cell",
                                  cluster="cm", anderson_rubin=False)
        fits[cross] = res.diagnostics
        ctrl = multi_instrument_iv(df, outcome="y", treatment="d", instrument="z",
                                   others=[("d2", "z2")], method="controls", absorb="cell",
                                   cluster="cm", anderson_rubin=False)
        assert ctrl.diagnostics["first_stage_f_conditional"] is None
    assert fits[0.0]["first_stage_f"] > 1000 and fits[1.0]["first_stage_f"] > 1000
    assert fits[0.0]["first_stage_f_conditional"] > 1000
    assert fits[1.0]["first_stage_f_conditional"] < 10
    assert fits[1.0]["weak_instrument"] and not fits[0.0]["weak_instrument"]
    df = _two_alternatives(0.0)
    x, z = df[["d"]].to_numpy(), df[["z", "z2"]].to_numpy()
    x, z = x - x.mean(axis=0), z - z.mean(axis=0)
    cl = df["cm"].to_numpy()
    for clusters in (None, cl):
        f = first_stage_f(x[:, 0], z, None, clusters=clusters, debiased=False)[2]
        assert conditional_first_stage_f(x, z, clusters=clusters) == pytest.approx(f, rel=1e-10)


def test_calibration_rows_match_the_record_and_take_residuals_at_the_truth(prepared, settings):
    """The IV-only Monte Carlo check (montecarlo.iv_calibration): its reported
    standard error is the record's, and with a strongly identified joint
    model the residuals at the true coefficients are about as large as the
    fitted ones, so the standard error at the truth is close to the reported
    one."""
    from reintegration.montecarlo import iv_calibration

    persons = simulated_persons()
    frames = {"a": prepared, "b": iv.iv_data(persons, "b")}
    truth = {k: {"estimand_joint": {"employed": {"24": v}}} for k, v in EFFECT.items()}
    rows = pd.DataFrame(iv_calibration.world_rows(frames, truth, "y", "24"))
    assert list(rows["instrument"]) == ["a", "b"]
    for inst, frame in frames.items():
        rec = iv.fit_iv(frame, "y", settings, inference=False)
        row = rows.set_index("instrument").loc[inst]
        assert row["estimate"] == pytest.approx(rec.estimate, rel=1e-12)
        assert max(row["se_robust"], row["se_clustered"]) == pytest.approx(rec.std_error)
        assert row["truth"] == EFFECT[inst]
        assert row["f_conditional"] > 10
        assert 0.9 < row["residual_variance_ratio"] < 1.1
        assert row["se_true_clustered"] == pytest.approx(row["se_clustered"], rel=0.1)
    table = iv_calibration.summarise(pd.concat([rows.assign(replication=r) for r in (1, 2)]))
    assert set(table.index.get_level_values("stratum")) == {"all", "conditional F >= 10"}


def test_outcomes_and_methods_of_one_frame_share_its_arrays():
    """The treatment, instrument and cell arrays are built once per frame
    and shared by every outcome without missing values and every method;
    each fit equals one without any shared work bit for bit, also for an
    outcome with missing values (its own rows), and against the reference
    path that demeans the outcome with the other columns in one pass."""
    from reintegration.effects import _memo, multi_instrument_iv
    from reintegration.effects import iv as effects_iv
    from reintegration.effects.numerics import demean

    df = _two_alternatives(0.3)
    rng = np.random.default_rng(8)
    df["y2"] = df["y"] + rng.normal(size=len(df))
    df["y3"] = df["y2"].where(rng.random(len(df)) > 0.1)
    df.loc[df.index[:3], "cell"] = [97, 98, 99]  # singleton cells, dropped
    kw = {"treatment": "d", "instrument": "z", "others": [("d2", "z2")], "absorb": "cell",
          "cluster": "cm"}
    for outcome in ("y", "y2", "y3"):
        for method in ("single", "controls", "joint"):
            shared = multi_instrument_iv(df, outcome=outcome, method=method, **kw)
            with _memo.disabled():
                alone = multi_instrument_iv(df, outcome=outcome, method=method, **kw)
            assert shared.estimate == alone.estimate
            assert shared.std_error == alone.std_error
            assert shared.diagnostics == alone.diagnostics
    arrays = effects_iv._multi_arrays(df, "y2", "d", "z", [("d2", "z2")], "joint", ["cell"], "cm")
    assert arrays["n_singletons"] == 3 and arrays["n_missing"] == 0
    keep = np.bincount(df["cell"])[df["cell"]] > 1
    grp = pd.factorize(df.loc[keep, "cell"], sort=True)[0]
    block = demean(df.loc[keep, ["y2", "d", "z", "d2", "z2"]].to_numpy(), grp)
    for k, col in enumerate(("y", "d", "z")):
        np.testing.assert_array_equal(arrays[col], block[:, k])
    np.testing.assert_array_equal(arrays["do"][:, 0], block[:, 3])
    np.testing.assert_array_equal(arrays["zo"][:, 0], block[:, 4])

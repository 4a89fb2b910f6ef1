"""The roll-out design's two estimands: the intention-to-treat effect of the
instrument's availability and the effect per additional starter (a fuzzy
difference in differences), their standard errors and intervals from the
same randomisation test, their truths, and what ``reach_months`` does to
each team."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reintegration import designs
from reintegration.core.config import load_city
from reintegration.core.months import index as month_index
from reintegration.designs import rollout
from reintegration.designs.base import Inputs
from reintegration.effects import EffectInputError, event_study
from reintegration.effects.fuzzy import wald_ratio
from reintegration.phase2 import estimates
from reintegration.research import labels

ROOT = Path(__file__).resolve().parents[1]
DATES = {0: 6.0, 1: 8.0, 2: 10.0, 3: 12.0, 4: 14.0}
KW = {
    "outcome": "y",
    "entity": "team",
    "time": "period",
    "treatment_start": "start",
    "leads": 3,
    "lags": 4,
    "collapse": True,
    "wild_bootstrap": 0,
    "statistic": "raw",
}


def fuzzy_teams(
    seed: int,
    *,
    jump: float = 0.4,
    per_starter: float = 0.5,
    teams: int = 8,
    periods: int = 20,
    per_cell: int = 40,
) -> pd.DataFrame:
    """Clients of ``teams`` teams by period; teams in DATES adopt then. Take-up
    ``d`` is 0.1 everywhere and 0.1 + ``jump`` from adoption on; starting
    raises the outcome by ``per_starter`` (so the intention-to-treat effect
    is ``jump * per_starter``). Team and period effects, a team-by-period
    shock, client noise."""
    rng = np.random.default_rng(seed)
    team = np.repeat(np.arange(teams), periods * per_cell)
    period = np.tile(np.repeat(np.arange(periods), per_cell), teams)
    shock = rng.normal(0, 0.03, (teams, periods))[team, period]
    start = np.array([DATES.get(k, np.nan) for k in range(teams)])[team]
    exposed = np.nan_to_num(period - start, nan=-1) >= 0
    d = (rng.random(len(team)) < 0.1 + jump * exposed).astype(float)
    y = 0.05 * team + 0.01 * period + shock + per_starter * d + rng.normal(0, 0.5, len(team))
    return pd.DataFrame({"team": team, "period": period, "start": start, "y": y, "d": d})


def test_per_starter_is_the_ratio_of_two_event_studies_aggregated_alike():
    df = fuzzy_teams(1)
    reduced = event_study(df, **KW, takeup="d", permutations=199)
    res = wald_ratio(reduced)
    first = event_study(df, **{**KW, "outcome": "d"}, permutations=199)
    # the same sample, cohorts, event times and weights in numerator and denominator
    assert res.diagnostics["itt"] == pytest.approx(reduced.estimate, abs=1e-12)
    assert res.diagnostics["takeup_change"] == pytest.approx(first.estimate, abs=1e-10)
    assert res.estimate == pytest.approx(reduced.estimate / first.estimate, abs=1e-10)
    # the take-up test is that of the take-up event study (same assignments)
    assert res.diagnostics["ci_takeup"] == pytest.approx(list(first.conf_int()), abs=1e-8)
    assert res.diagnostics["pvalue_takeup"] == first.pvalue
    # interval: every beta the test does not reject, edges on the 5% line
    low, high = res.conf_int()
    assert low < res.estimate < high and low <= 0.5 <= high
    r = res.randomization
    eps = 1e-6 * (high - low)
    for edge, outside in ((low, low - eps), (high, high + eps)):
        assert r.pvalue(edge) > 0.05 >= r.pvalue(outside)
    # beta = 0 is rejected exactly when the intention-to-treat effect is
    assert res.pvalue == reduced.pvalue
    # the reported standard error is the interval's; the clustered one (delta
    # method) and the spread over assignments are kept beside it
    assert res.std_error == pytest.approx((high - low) / 2 / 1.959964, rel=1e-5)
    d = res.diagnostics
    assert 0 < d["std_error_clustered"] < res.std_error
    assert d["std_error_randomization_sd"] > 0
    assert res.method == "fuzzy_did_wald" and "per additional starter" in res.estimand
    with pytest.raises(EffectInputError, match="takeup="):
        wald_ratio(first)
    with pytest.raises(EffectInputError, match="permutations"):
        event_study(df, **KW, takeup="d")


def test_per_starter_interval_covers_over_replications_and_widens_when_takeup_is_weak():
    """Over 12 worlds the 95% interval covers the planted 0.5 per starter in
    at least 10 (under nominal coverage, 9 or fewer happens with probability
    1.9%); the ratio of the means is close to it. Without a take-up jump
    the interval does not pretend: it is unbounded or far wider."""
    covered, est = 0, []
    for seed in range(12):
        res = wald_ratio(
            event_study(fuzzy_teams(10 + seed), **KW, takeup="d", permutations=99, seed=seed)
        )
        low, high = res.conf_int()
        covered += int(low <= 0.5 <= high)
        est.append(res.estimate)
    assert covered >= 10, covered
    assert np.median(est) == pytest.approx(0.5, abs=0.1)
    strong = wald_ratio(event_study(fuzzy_teams(3), **KW, takeup="d", permutations=99))
    weak = wald_ratio(event_study(fuzzy_teams(3, jump=0.02), **KW, takeup="d", permutations=99))
    low, high = weak.conf_int()
    assert (not math.isfinite(high - low)) or (high - low) > 5 * np.diff(strong.conf_int())[0]


def test_itt_standard_error_follows_its_interval():
    df = fuzzy_teams(2)
    res = event_study(df, **KW, permutations=199)
    low, high = res.conf_int()
    assert res.std_error == pytest.approx((high - low) / 2 / 1.959964, rel=1e-5)
    assert res.diagnostics["std_error_method"].startswith("randomisation interval")
    assert res.diagnostics["std_error_clustered"] != res.std_error
    # the raw statistic: half-width close to 1.96 times the spread over assignments
    ratio = res.std_error / res.diagnostics["std_error_randomization_sd"]
    assert 0.7 < ratio < 1.4, ratio


def test_per_starter_truth_is_the_ratio_of_two_aggregated_truths():
    settings = estimates.load_settings()
    settings = {
        **settings,
        "rollout_did": {**settings["rollout_did"], "reach_months": 0, "baseline": "reference"},
    }
    # team A rolls out in 2017Q3; half its reached clients are moved into job coaching
    # (on: coaching, off: none) and gain 0.4 from it; B never rolls out
    months = [f"2017-{m:02d}" for m in (1, 4, 7, 10)] * 4
    po = pd.DataFrame({"team": ["A"] * 8 + ["B"] * 8, "inflow_month": months})
    after = (po["team"] == "A") & (po["inflow_month"] >= "2017-07")
    moved = after & (np.arange(len(po)) % 8 >= 4)  # the second client of each pair
    po["rollout_exposed"] = after
    po["instrument_rollout_off"] = "none"
    po["instrument_rollout_on"] = np.where(moved, "job_coaching", "none")
    po["employed_rollout_off_24"] = 0.0
    po["employed_rollout_on_24"] = np.where(moved, 0.4, 0.0)
    july = {"A": month_index("2017-07")}
    itt = rollout.rollout_truth(po, july, "employed_24", settings)
    ps = rollout.rollout_truth(
        po, july, "employed_24", settings, target="per_starter", instrument="job_coaching"
    )
    assert itt == pytest.approx(0.2)
    assert ps == pytest.approx(0.4)
    # another instrument's take-up does not change: no ratio
    assert math.isnan(
        rollout.rollout_truth(
            po, july, "employed_24", settings, target="per_starter", instrument="training"
        )
    )
    design = designs.get("rollout_did")
    context = {"schedule": july, "settings": settings}
    record = {"outcome": "employed_24", "target": "per_starter", "instrument": "job_coaching"}
    assert design.truth(po, record, None, context) == pytest.approx(0.4)
    assert design.truth(po, {**record, "target": "itt"}, None, context) == pytest.approx(0.2)
    assert list(design.targets) == ["itt", "per_starter"]
    with pytest.raises(KeyError, match="no estimand"):
        design.estimate(po, "employed_24", settings, target="late")


@pytest.mark.parametrize(
    ("city", "first", "reach"),
    [
        ("rotterdam", ("Charlois", "2016-07", "2015Q2"), 15),
        ("den_haag", ("Escamp", "2016-04", "2015Q2"), 12),
        ("amsterdam", ("Nieuw-West", "2016-10", "2015Q2"), 18),
    ],
)
def test_reach_table_says_what_reach_months_does_to_each_team(city, first, reach):
    cfg = load_city(city, ROOT)
    settings = estimates.load_settings()
    teams = [*cfg["rollout"]["teams"], "Elsewhere"]
    table = rollout.reach_table(cfg, settings, teams).set_index("team")
    row = table.loc[first[0]]
    assert (row["rollout"], row["first_reached"]) == first[1:]
    assert row["reach_months"] == reach and row["role"] == "treated"
    # no team with a roll-out in the study is dropped; the others reach 18 months back
    assert (table.loc[list(cfg["rollout"]["teams"]), "role"] == "treated").all()
    others = table.drop(index=[first[0], "Elsewhere"])
    assert (others["reach_months"] == 18).all()
    assert table.loc["Elsewhere", "role"] == "never treated"
    if reach < 18:
        assert "shortened from 18" in row["why"]
    # asked to drop such teams, the table says so and why
    drop = {**settings, "rollout_did": {**settings["rollout_did"], "early_teams": "drop"}}
    dropped = rollout.reach_table(cfg, drop, teams).set_index("team").loc[first[0]]
    assert dropped["role"] == ("dropped" if reach < 18 else "treated")
    if reach < 18:
        assert "first inflow quarter" in dropped["why"]


@pytest.fixture(scope="module")
def rotterdam(tmp_path_factory: pytest.TempPathFactory):
    """A small generated Rotterdam, its panel and truth files."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_panel import linked_sources

    from reintegration.research import panel

    data = tmp_path_factory.mktemp("data")
    cfg, src = linked_sources("rotterdam", data)
    built = panel.build(src, cfg["study"])
    po = pd.read_parquet(data / "truth" / "rotterdam" / "potential_outcomes.parquet")
    return cfg, built.persons, po


def test_design_estimates_both_targets_on_a_generated_world(rotterdam):
    cfg, persons, po = rotterdam
    settings = estimates.load_settings()
    settings = {**settings, "rollout_did": {**settings["rollout_did"], "permutations": 99}}
    design = designs.get("rollout_did")
    instrument = cfg["rollout"]["instrument"]
    data = design.prepare(Inputs(persons=persons, city=cfg, effects=settings), instrument)
    # the first team (Charlois) enters as treated, from 2015Q2 on
    charlois = data[data["team"] == "Charlois"]
    assert charlois["_start"].iloc[0] == month_index("2015-04") // 3
    itt = design.estimate(data, "employed_24", settings, target="itt")
    ps = design.estimate(data, "employed_24", settings, target="per_starter")
    takeup = rollout.fit_rollout(data, rollout.STARTED, settings)
    assert itt.diagnostics["n_always_treated_cohorts_dropped"] == 0
    assert ps.estimate == pytest.approx(itt.estimate / takeup.estimate, rel=1e-8)
    assert ps.diagnostics["itt"] == pytest.approx(itt.estimate, abs=1e-12)
    roles = {r["team"]: r["role"] for r in itt.diagnostics["reach"]}
    assert set(roles) == set(persons["team"].dropna().astype(str))
    assert "dropped" not in roles.values()
    # the record keeps the clustered standard error and the per-team table
    rec = estimates.result_record({"diagnostics": {}}, ps)
    if math.isfinite(ps.std_error):
        assert rec["std_error"] == pytest.approx(ps.std_error)
    else:  # an unbounded interval (take-up change not told from zero): no standard error
        assert rec["std_error"] is None and None in (rec["ci_low"], rec["ci_high"])
    for key in ("std_error_clustered", "itt", "takeup_change", "ci_takeup", "reach"):
        assert key in rec["diagnostics"], key
    # the truths: per starter = intention to treat over the take-up change
    context = {"schedule": rollout.rollout_schedule(cfg), "settings": settings}
    base = {"outcome": "employed_24", "instrument": instrument}
    t_itt = design.truth(po, {**base, "target": "itt"}, None, context)
    t_ps = design.truth(po, {**base, "target": "per_starter"}, None, context)
    assert math.isfinite(t_itt) and math.isfinite(t_ps)
    assert abs(t_ps) > abs(t_itt)


def test_validation_keeps_the_two_estimands_apart():
    frame = pd.DataFrame(
        {
            "city": "x",
            "design": "rollout_did",
            "instrument": "job_coaching",
            "outcome": "employed_24",
            "subgroup": estimates.ALL,
            "group": estimates.ALL,
            "target": ["itt", "per_starter"],
            "estimate": [0.01, 0.1],
            "std_error": [0.02, 0.3],
            "ci_low": [-0.03, -0.5],
            "ci_high": [0.05, 0.7],
            "n_treated": 100,
            "n_control": 100,
            "truth": [0.009, 0.08],
        }
    )
    frame["bias"] = frame["estimate"] - frame["truth"]
    frame["covered"] = 1.0
    table = estimates.coverage_table(frame)
    assert table.loc[("rollout_did", "per_starter", "employed_24"), "mean std. error"] == 0.3
    assert table.loc[("rollout_did", "itt", "employed_24"), "mean bias"] == pytest.approx(0.001)
    _, counts = estimates.bias_figure(frame)
    assert len(counts) == 1  # the headline only: the ratio is on another scale


def test_reach_table_roles_of_every_kind_of_team():
    city = {
        "study": {"inflow_from": "2015-01", "inflow_to": "2021-12"},
        "rollout": {
            "instrument": "job_coaching",
            "teams": {"A": "2015-02", "B": "2016-07", "C": "2019-01", "D": "2024-01"},
        },
    }
    settings = estimates.load_settings()
    table = rollout.reach_table(city, settings, ["A", "B", "C", "D", "E"]).set_index("team")
    assert table["role"].to_dict() == {
        "A": "dropped",
        "B": "treated",
        "C": "treated",
        "D": "not yet treated",
        "E": "never treated",
    }
    assert "first inflow quarter" in table.loc["A", "why"]
    assert table.loc["B", "reach_months"] == 15 and table.loc["C", "reach_months"] == 18
    assert table.loc["C", "first_reached"] == "2017Q3"  # 2019-01 minus 18 months
    assert table.loc["D", "first_reached"] == "2022Q3"  # after the last inflow quarter
    # the data follow the table: A's clients are left out, D's and E's compare
    persons = pd.DataFrame(
        {"team": list("ABCDE") * 2, "inflow_month": ["2015-01"] * 5 + ["2021-12"] * 5}
    )
    data = rollout.rollout_settings_data(
        persons, rollout.rollout_schedule(city), settings, first_month=month_index("2015-01")
    )
    assert sorted(data["team"].unique()) == list("BCDE")
    assert data.loc[data["team"] == "B", "_event_time"].tolist() == [-1, 26]


def test_record_checks_and_subgroup_figure_accept_a_second_estimand():
    base = {
        "substudy": "rollout_did/job_coaching",
        "design": "rollout_did",
        "outcome": "employed_24",
        "status": "estimated",
        "n_treated": 40,
        "n_control": 40,
        "reasons": [],
    }
    records = [
        {
            **base,
            "subgroup": estimates.ALL,
            "group": estimates.ALL,
            "target": "itt",
            "estimate": 0.01,
            "std_error": 0.02,
            "ci_low": -0.03,
            "ci_high": 0.05,
        },
        {
            **base,
            "subgroup": estimates.ALL,
            "group": estimates.ALL,
            "target": "per_starter",
            "estimate": 0.1,
            "std_error": None,
            "ci_low": None,
            "ci_high": 0.9,
        },
        {
            **base,
            "subgroup": "sex",
            "group": "female",
            "target": "itt",
            "estimate": 0.02,
            "std_error": 0.03,
            "ci_low": -0.04,
            "ci_high": 0.08,
        },
    ]
    feas = {"substudies": [{"id": base["substudy"]}]}
    settings = {**estimates.load_settings(), "outcomes": {"employed_24": "x"}}
    assert all(estimates.check_records(records, feas, settings).values())
    # a bounded interval without a standard error, or an estimate outside, fails
    bad = [*records[:1], {**records[1], "ci_low": 0.2}]
    assert not estimates.check_records(bad, feas, settings)[
        "every estimate inside its interval, positive standard error"
    ]
    _, counts = estimates.subgroup_figure(records, base["substudy"], "employed_24")
    assert list(counts.index) == ["all", "sex: female"]
    # an unbounded randomisation interval is still named as one
    unbounded = {**records[1], "diagnostics": {"ci_randomization": [None, 0.9]}}
    assert labels.interval_method(unbounded) == "randomisation inference over roll-out dates"

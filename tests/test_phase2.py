"""Phase 2 analysis data, records and the estimates.json of every city."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reintegration.core.config import list_cities
from reintegration.core.months import index as month_index
from reintegration.designs import iv, rollout, selection
from reintegration.phase2 import estimates

KEY = estimates.KEY


def persons_frame(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "RINPERSOONS": ["R"] * n,
        "RINPERSOON": [f"{i:09d}" for i in range(n)],
        "instrument": ["job_coaching", "none", "training", "job_coaching", "none", "none"][:n],
        "instrument_elapsed": pd.array([2, None, 1, 3, None, None][:n], dtype="Int16"),
    })


def exits_frame(exit_months: list[float]) -> pd.DataFrame:
    p = persons_frame(len(exit_months))
    return p[KEY].assign(exit_month=exit_months)


def test_risk_sets_add_up() -> None:
    persons = persons_frame()
    # person 4 leaves bijstand in month 2 (off benefit from month 2 on)
    exits = exits_frame([np.nan, np.nan, np.nan, np.nan, 2, np.nan])
    rs = selection.selection_data(persons, exits, "job_coaching", max_month=4)
    by_u = rs.groupby("elapsed_month")["treated"].agg(["sum", "size"])
    # u=1: the training starter starts something else at 1: not waiting, not at risk
    assert by_u.loc[1, "size"] == 5 and by_u.loc[1, "sum"] == 0
    # u=2: the training starter left; person 4 on benefit through month 1 -> at risk
    assert by_u.loc[2, "size"] == 5 and by_u.loc[2, "sum"] == 1
    # u=3: the job_coaching starter at 2 left, person 4 left (off in month 2)
    assert by_u.loc[3, "size"] == 3 and by_u.loc[3, "sum"] == 1
    # u=4: the starter at 3 left
    assert by_u.loc[4, "size"] == 2 and by_u.loc[4, "sum"] == 0
    # every starter is treated exactly once, in the month they start
    assert rs["treated"].sum() == 2
    assert set(rs.loc[rs["treated"] == 1, "_pid"]) == {0, 3}


def test_elapsed_bands_pool_late_months() -> None:
    months = np.array([1] * 30 + [2] * 30 + [3] * 30 + [4] * 30 + [5] * 30)
    treated = np.r_[np.ones(25), np.zeros(5), np.ones(5), np.zeros(25), np.ones(20),
                    np.zeros(10), np.ones(3), np.zeros(27), np.ones(2), np.zeros(28)]
    bands = selection.elapsed_bands(months, treated, 20)
    assert list(np.unique(bands)) == [1, 2]     # 2..5 pooled: 5 + 20 + 3 + 2 starters
    assert (bands[months >= 2] == 2).all()


def test_rollout_exposure_coded_at_inflow() -> None:
    persons = pd.DataFrame({
        "team": ["A", "A", "A", "B", None],
        "inflow_month": ["2017-06", "2017-07", "2017-09", "2018-01", "2018-01"],
    })
    schedule = rollout.rollout_schedule({"rollout": {"teams": {"A": "2017-07"}}})
    q = rollout.rollout_data(persons, schedule, period="quarter")
    assert len(q) == 4                               # no team: dropped
    assert q["exposed"].tolist() == [0, 1, 1, 0]     # B never rolls out
    assert q["_event_time"].iloc[:3].tolist() == [-1, 0, 0]
    assert np.isnan(q["_start"].iloc[3])
    m = rollout.rollout_data(persons, schedule, period="month")
    assert m["_event_time"].iloc[:3].tolist() == [-1, 0, 2]
    # a roll-out in 2017-07 reaches inflow from 2016-01 on when clients can wait 18 months
    r = rollout.rollout_data(persons.assign(inflow_month=["2015-12", "2016-01", "2016-03",
                                                         "2018-01", "2018-01"]),
                            schedule, period="month", reach_months=18)
    assert r["_event_time"].iloc[:3].tolist() == [-1, 0, 2]
    assert r["exposed"].tolist() == [0, 1, 1, 0]
    # reaching back 18 months from 2017-07 goes to 2016Q1: with the study from 2015-01
    # on, the first reached quarter is 2016Q1 (event time 0)
    first = month_index("2015-01")
    rq = rollout.rollout_data(persons, schedule, period="quarter", reach_months=18,
                              first_month=first)
    assert rq["_event_time"].iloc[:3].tolist() == [5, 6, 6]
    # with the study from 2017-06 on, no inflow quarter would be unreached: the reach is
    # shortened so that the first quarter (2017Q2) is the team's pre-period ...
    short = rollout.rollout_data(persons, schedule, period="quarter", reach_months=18)
    assert short["_event_time"].iloc[:3].tolist() == [-1, 0, 0]
    table = rollout.first_reached(schedule, period="quarter", reach_months=18,
                                 first_month=month_index("2017-06"))
    assert table.loc[0, "reach"] == 0 and not table.loc[0, "dropped"]   # 2017-07 - 2017Q3
    # ... or, when asked, the team is left out (neither treated nor comparison)
    drop = rollout.rollout_data(persons, schedule, period="quarter", reach_months=18,
                                early_teams="drop")
    assert drop["team"].tolist() == ["B"]
    # a roll-out within the first quarter cannot be shortened: dropped
    june = rollout.rollout_schedule({"rollout": {"teams": {"A": "2017-05"}}})
    assert rollout.rollout_data(persons, june, reach_months=18)["team"].tolist() == ["B"]
    with pytest.raises(ValueError, match="reach_months"):
        rollout.rollout_data(persons, schedule, reach_months=-1)


def test_iv_propensity_leaves_the_clients_cell_out() -> None:
    persons = pd.DataFrame({
        "case_manager": ["m1", "m1", "m1", "m2", "m2", "m2", "m1", None],
        "team": ["T"] * 8,
        "inflow_quarter": ["2017Q1"] * 6 + ["2017Q2"] * 2,
        "instrument": ["training", "training", "none", "none", "none", "training", "none",
                       "none"],
    })
    d = iv.iv_data(persons, "training", cells=["team", "inflow_quarter"])
    assert len(d) == 7                               # no case manager: dropped
    # m1's clients in 2017Q1 get m1's residual in 2017Q2 (0 - 0 = 0), and the
    # 2017Q2 client m1's mean residual in 2017Q1 (1, 1, 0 minus 1/2: 1/6)
    assert d["_z"].iloc[:3].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert d["_z"].iloc[6] == pytest.approx(1 / 6)
    assert d["_z"].iloc[3:6].isna().all()           # m2 works in one cell only


def test_no_go_gives_reasons_and_no_estimate() -> None:
    settings = estimates.load_settings()
    sub = {"id": "case_manager_iv/training", "design": "case_manager_iv",
           "instrument": "training", "decision": "no-go",
           "reasons": ["theoretical: no case-manager identifiers"], "conditions": []}
    recs, results = estimates.city_estimates({"name": "x"}, pd.DataFrame(), pd.DataFrame(),
                                          [sub], settings)
    assert results == {}
    assert len(recs) == len(settings["outcomes"])
    for r in recs:
        assert r["status"] == "no-go" and r["estimate"] is None
        assert r["reasons"] == ["theoretical: no case-manager identifiers"]
        assert set(r) == set(estimates.RECORD_FIELDS)


def test_subgroup_masks_equal_comparing_every_row_with_every_level() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({
        "sex": pd.array(rng.choice(["male", "female", None], 200), dtype="string"),
        "education": pd.array(rng.choice(["low", "middle", "high", "missing"], 200),
                              dtype="string"),
        "empty": pd.array([None] * 200, dtype="string")})
    got = estimates.subgroup_masks(frame, ["education", "absent", "sex", "empty"])
    want = [(col, str(level), (frame[col] == level).fillna(False).to_numpy())
            for col in ("education", "sex", "empty")
            for level in sorted(frame[col].dropna().unique())]
    assert [(c, g) for c, g, _ in got] == [(c, g) for c, g, _ in want]
    assert [c for c, _, _ in got] == ["education"] * 4 + ["sex"] * 2
    for (_, _, a), (_, _, b) in zip(got, want, strict=True):
        assert a.dtype == bool and np.array_equal(a, b)


def _selection_inputs(n: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    start = np.where(rng.random(n) < 0.3, rng.integers(1, 4, n), -1)
    persons = pd.DataFrame({
        "RINPERSOONS": "R", "RINPERSOON": [f"{i:09d}" for i in range(n)],
        "instrument": np.where(start > 0, "training", "none"),
        "instrument_elapsed": pd.array(np.where(start > 0, start, np.nan), dtype="Float64"),
        "prior_employment": x, "female": (rng.random(n) < 0.5).astype(int),
        "age": rng.integers(18, 65, n), "sex": "female", "education": "low",
        "prior_employment_months": rng.integers(0, 3, n), "migration": "nl",
    })
    persons["employed_12"] = (rng.random(n) < 0.3 + 0.1 * (start > 0)).astype(int)
    persons["employed_24"] = persons["employed_12"]
    persons["months_employed"] = persons["employed_12"] * 5
    return persons, persons[KEY].assign(month=0, on_benefit=1)


def _selection_settings() -> dict:
    settings = estimates.load_settings()
    return {**settings, "selection_on_observables": {
        **settings["selection_on_observables"], "max_month": 4}}


def test_selection_subgroup_estimates_on_the_columns_the_design_reads() -> None:
    """A subgroup's rows with only :meth:`columns` give the same estimates as
    all its columns (both estimands, every outcome)."""
    from reintegration.designs import Inputs

    persons, pm = _selection_inputs()
    settings = _selection_settings()
    design = selection.SelectionOnObservables()
    data = design.prepare(Inputs(persons=persons, city={"name": "x"}, effects=settings,
                                 person_months=pm), "training")
    cols = design.columns(data, settings)
    assert "treated" in cols and set(settings["outcomes"]) <= set(cols)
    assert len(cols) < data.shape[1]
    mask = (data["age"] >= 30).to_numpy()
    for outcome in settings["outcomes"]:
        for target in design.targets:
            full = design.estimate(data.loc[mask], outcome, settings, target=target)
            narrow = design.estimate(data.loc[mask, cols], outcome, settings, target=target)
            assert narrow.estimate == full.estimate and narrow.std_error == full.std_error
            assert narrow.diagnostics == full.diagnostics


def test_selection_records_schema_and_small_groups() -> None:
    persons, pm = _selection_inputs()
    settings = _selection_settings()
    sub = {"id": "selection_on_observables/training", "design": "selection_on_observables",
           "instrument": "training", "decision": "go", "reasons": [], "conditions": []}
    recs, results = estimates.city_estimates({"name": "x"}, persons, pm, [sub], settings)
    est = [r for r in recs if r["status"] == "estimated"]
    assert {r["outcome"] for r in est if r["subgroup"] == "all"} == set(settings["outcomes"])
    for r in est:
        assert set(r) == set(estimates.RECORD_FIELDS)
        assert r["ci_low"] < r["estimate"] < r["ci_high"]
        assert r["n_treated"] >= settings["min_group"]["treated"]
    assert any(r["subgroup"] != "all" for r in est)
    assert not [r for r in recs if r["status"] == "failed"]
    small = [r for r in recs if r["status"] == "too_small"]
    assert all(r["estimate"] is None and r["n"] is None for r in small)
    json.dumps(recs)


def test_rollout_truth_aggregates_like_the_estimator() -> None:
    settings = estimates.load_settings()
    settings = {**settings, "rollout_did": {**settings["rollout_did"], "reach_months": 0}}
    # team A rolls out in 2017Q3; effect 0.2 from the roll-out on, 0 before
    months = [f"2017-{m:02d}" for m in (1, 4, 7, 10)] * 2
    po = pd.DataFrame({"team": ["A"] * 4 + ["B"] * 4, "inflow_month": months})
    after = (po["team"] == "A") & (po["inflow_month"] >= "2017-07")
    po["employed_rollout_on_12"] = np.where(after, 0.2, 0.0)
    po["employed_rollout_off_12"] = 0.0
    po["rollout_exposed"] = after
    july = {"A": month_index("2017-07")}
    value = rollout.rollout_truth(po, july, "employed_12", settings)
    assert value == pytest.approx(0.2)
    # what a client the roll-out never reached would have had with it is not an effect
    # that happened: it does not enter the truth (here: A's 2017-01 reference cohort)
    hypothetical = po.assign(employed_rollout_on_12=np.where(po["team"] == "A", 0.2, 0.0))
    value = rollout.rollout_truth(hypothetical, july, "employed_12", settings)
    assert value == pytest.approx(0.2)
    # reached three months early: the 2017Q2 cohort is event time 0 and shares part of it
    early = {**settings, "rollout_did": {**settings["rollout_did"], "reach_months": 3}}
    po = pd.concat([po, po.assign(inflow_month="2016-10", employed_rollout_on_12=0.0,
                                  rollout_exposed=False)], ignore_index=True)
    po.loc[(po["team"] == "A") & (po["inflow_month"] == "2017-04"),
           ["employed_rollout_on_12", "rollout_exposed"]] = (0.1, True)
    value = rollout.rollout_truth(po, july, "employed_12", early)
    # event times 0, 1, 2 (one client each), reference -1 (2017-01 cohort, effect 0)
    assert value == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    # a pre-period cohort touched after all (2016-10, -2): against the reference it
    # does not count, against the pre-period mean it does
    po.loc[(po["team"] == "A") & (po["inflow_month"] == "2016-10"),
           ["employed_rollout_on_12", "rollout_exposed"]] = (0.1, True)
    by = {b: rollout.rollout_truth(po, july, "employed_12", {
        **early, "rollout_did": {**early["rollout_did"], "baseline": b}})
        for b in ("reference", "pre_mean")}
    assert by["reference"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    # pre-period clients of A: four at -2 (effect 0.1), one at -1 (effect 0)
    assert by["pre_mean"] == pytest.approx((0.1 + 0.2 + 0.2) / 3 - 4 * 0.1 / 5)


def test_rollout_truth_data_built_once_gives_the_same_truths() -> None:
    """The validation builds the truth frame's roll-out data once per city
    (kept in the design's context) instead of once per record."""
    rng = np.random.default_rng(9)
    n = 800
    po = pd.DataFrame({"team": rng.choice(["A", "B", "C"], n),
                       "inflow_month": rng.choice([f"2017-{m:02d}" for m in range(1, 13)], n)})
    po["rollout_exposed"] = (po["team"] == "A") & (po["inflow_month"] >= "2017-06")
    po["employed_rollout_off_12"] = rng.random(n)
    po["employed_rollout_on_12"] = po["employed_rollout_off_12"] + 0.1 * po["rollout_exposed"]
    settings = estimates.load_settings()
    schedule = {"A": month_index("2017-07")}
    design = rollout.Rollout()
    context = {"schedule": schedule, "settings": settings}
    record = {"outcome": "employed_12", "target": "itt"}
    half = (np.arange(n) % 2 == 0)
    for mask in (None, half):
        want = rollout.rollout_truth(po, schedule, "employed_12", settings, mask)
        assert design.truth(po, record, mask, context) == want
    assert context["rollout_truth_data"][0] is po  # built once, for this frame
    other = po.assign(employed_rollout_on_12=po["employed_rollout_off_12"])  # no effect
    assert design.truth(other, record, None, context) == 0.0  # another frame: built again


@pytest.mark.pipeline
@pytest.mark.parametrize("city", list_cities())
def test_estimates_file(small, city: str) -> None:
    records = small.city_build_domain(city, "research")  # exact counts: research domain
    path = records / estimates.FILE_NAME
    assert path.exists(), f"{path} is missing"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["city"] == city and data["records"]
    feas = json.loads((records / "feasibility.json").read_text("utf-8"))
    ids = {s["id"] for s in feas["substudies"]}
    assert {r["substudy"] for r in data["records"]} == ids    # none silently missing
    for r in data["records"]:
        assert set(r) == set(estimates.RECORD_FIELDS)
        assert r["status"] in estimates.STATUSES
        if r["status"] == "estimated" and r["std_error"] is None:
            # an unbounded randomisation interval (e.g. per starter when the take-up
            # change cannot be told from zero) has no finite standard error either
            assert None in (r["ci_low"], r["ci_high"]) and r["estimate"] is not None
        elif r["status"] == "estimated":
            assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
            assert r["std_error"] > 0
        else:
            assert r["estimate"] is None and r["reasons"]


def test_independent_columns_drops_collinear() -> None:
    frame = pd.DataFrame({"a": [1, 0, 1, 0], "b": [0, 1, 0, 1], "c": [1.0, 2.0, 0.5, 3.0]})
    assert selection.independent_columns(frame, ["a", "b", "c"]) == ["a", "c"]


def test_placebo_rollouts_refit_with_dates_given_to_random_teams() -> None:
    rng = np.random.default_rng(5)
    teams = list("ABCDEFGH")
    months = [f"{y}-{m:02d}" for y in range(2015, 2021) for m in range(1, 13)]
    n = 6000
    persons = pd.DataFrame({"team": rng.choice(teams, n), "inflow_month": rng.choice(months, n)})
    team_level = persons["team"].map(dict(zip(teams, rng.normal(0, 0.1, 8), strict=True)))
    persons["employed_12"] = (rng.random(n) < 0.3 + team_level).astype(int)
    settings = estimates.load_settings()
    schedule = rollout.rollout_schedule({"rollout": {"teams": {
        "A": "2017-01", "B": "2017-07", "C": "2018-01", "D": "2018-07"}}})
    kw = {"draws": 6, "outcomes": ["employed_12"], "seed": 3, "permutations": 19}
    placebo = rollout.placebo_rollouts(persons, schedule, settings, **kw)
    assert len(placebo) == 6 and (placebo["outcome"] == "employed_12").all()
    assert placebo["std_error"].gt(0).all()
    assert placebo["t"].to_numpy() == pytest.approx(
        (placebo["estimate"] / placebo["std_error"]).to_numpy())
    # randomisation p-values with 19 + 1 assignments: multiples of 1/20
    for col in ("pvalue", "pretrend_pvalue"):
        assert placebo[col].between(0.05, 1).all()
        assert (placebo[col] * 20).to_numpy() == pytest.approx((placebo[col] * 20).round())
    assert placebo["pretrend_pvalue_f"].between(0, 1).all()
    # the draws differ (other teams get the dates), and the same seed repeats them
    assert placebo["estimate"].nunique() == 6
    pd.testing.assert_frame_equal(placebo, rollout.placebo_rollouts(persons, schedule, settings,
                                                                   **kw))
    with pytest.raises(ValueError, match="no more teams"):
        rollout.placebo_rollouts(persons[persons["team"].isin(["A", "B"])], schedule, settings)


def test_rollout_data_takes_the_inflow_months_parsed_once() -> None:
    """The placebo parses the clients' inflow months once for all its draws:
    the same data as parsing them per draw, for any schedule."""
    from reintegration.core import months

    rng = np.random.default_rng(6)
    n = 500
    persons = pd.DataFrame({
        "team": rng.choice(["A", "B", "C", None], n),
        "inflow_month": rng.choice([f"2016-{m:02d}" for m in range(1, 13)], n)})
    inflow = months.indices(persons.loc[persons["team"].notna(), "inflow_month"])
    settings = estimates.load_settings()
    for schedule in ({"A": month_index("2016-06")}, {"B": month_index("2016-03"),
                                                     "C": month_index("2016-09")}):
        pd.testing.assert_frame_equal(
            rollout.rollout_settings_data(persons, schedule, settings, inflow=inflow),
            rollout.rollout_settings_data(persons, schedule, settings))


def test_rollout_data_reads_the_teams_as_text_once() -> None:
    """rollout_data converts the team column to text once (the placebo builds
    it for every draw): the frame of converting it again after dropping the
    teams that cannot be used, with numeric team codes and a dropped team."""
    rng = np.random.default_rng(8)
    n = 400
    persons = pd.DataFrame({
        "team": rng.choice([3.0, 7.0, 11.0, np.nan], n),
        "inflow_month": rng.choice([f"2017-{m:02d}" for m in range(1, 13)], n)},
        index=rng.permutation(n) * 2)
    for schedule, early in (({"3.0": month_index("2017-05"), "7.0": month_index("2017-09")},
                             "drop"),
                            ({"11.0": month_index("2017-08")}, "shorten")):
        got = rollout.rollout_data(persons, schedule, reach_months=3, early_teams=early)
        df = persons[persons["team"].notna()].copy()
        inflow = np.array([month_index(m) for m in df["inflow_month"]])
        df["_period"] = inflow // 3
        reach = rollout.first_reached(schedule, period="quarter", reach_months=3,
                                      first_month=int(inflow.min()),
                                      early_teams=early).set_index("team")
        df = df[~df["team"].astype(str).isin(reach.index[reach["dropped"]])]
        df["_start"] = df["team"].astype(str).map(reach["start"]).astype(float)
        df["exposed"] = (df["_period"] >= df["_start"]).fillna(False).astype(int)
        df["_event_time"] = df["_period"] - df["_start"]
        pd.testing.assert_frame_equal(got, df, check_exact=True)
        assert got["_start"].notna().any()
        if early == "drop":  # team 3 reaches back to the first quarter: left out
            assert 3.0 not in set(got["team"]) and len(got) < persons["team"].notna().sum()


def test_placebo_summary_counts_rejections() -> None:
    placebo = pd.DataFrame({
        "outcome": ["y"] * 4,
        "estimate": [0.1, -0.1, 0.3, 0.0],
        "std_error": [0.1, 0.1, 0.1, 0.1],
        "t": [1.0, -1.0, 3.0, 0.0],
        "pvalue": [0.5, 0.05, 0.2, 0.9],
        "pretrend_pvalue": [0.01, 0.5, 0.5, 0.5],
        "pretrend_pvalue_f": [0.01, 0.02, 0.5, 0.5],
    })
    row = rollout.placebo_summary(placebo).loc["y"]
    assert row["draws"] == 4
    assert row["effect_rejected_clustered"] == 0.25  # |t| = 3
    assert row["effect_rejected_randomization"] == 0.25  # p = 0.05 rejects
    assert row["pretrend_rejected_clustered"] == 0.5
    assert row["pretrend_rejected_randomization"] == 0.25
    assert row["sd_estimate_over_mean_se"] == pytest.approx(placebo["estimate"].std() / 0.1)


def test_untreated_rollout_outcomes_take_the_no_rollout_world() -> None:
    po = pd.DataFrame({"team": ["A", "B"], "inflow_month": ["2016-01", "2016-02"],
                       "employed_rollout_off_12": [0, 1], "employed_rollout_on_12": [1, 1],
                       "employed_rollout_off_24": [1, 0]})
    out = rollout.untreated_rollout_outcomes(po)
    assert list(out.columns) == ["team", "inflow_month", "employed_12", "employed_24"]
    assert out["employed_12"].tolist() == [0, 1] and out["employed_24"].tolist() == [1, 0]

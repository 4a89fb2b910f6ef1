"""What works for whom: doubly robust group effects, the BLP heterogeneity
test, GATES, and family-wise error control, on simulated data with a known
effect per person."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reintegration.phase2 import whom, whom_truth


def _rows(n=30_000, het=0.10, seed=3):
    """One row per person: a start at this month (rare, selected on x), an
    outcome with effect 0.05 + het * x1 for starters."""
    rng = np.random.default_rng(seed)
    x1 = rng.binomial(1, 0.4, n).astype(float)
    x2 = rng.standard_normal(n)
    month = rng.integers(1, 7, n)
    e = 1 / (1 + np.exp(-(-3.0 + 0.8 * x1 - 0.5 * x2 + 0.05 * month)))
    d = rng.random(n) < e
    tau = 0.05 + het * x1
    p0 = 1 / (1 + np.exp(-(-0.5 + 0.6 * x2 - 0.3 * x1)))
    y = (rng.random(n) < np.clip(p0 + d * tau, 0, 1)).astype(float)
    data = pd.DataFrame({"elapsed_month": month, "x1": x1, "x2": x2, "treated": d.astype(int),
                         "employed_24": y, "_pid": np.arange(n)})
    groups = pd.DataFrame({"distance": np.where(x1 == 1, "large", "other")})
    return data, groups, tau


def test_group_effects_recover_the_planted_difference():
    data, groups, tau = _rows()
    res = whom.analyse(data, groups, "job_search_training", "employed_24", ["x1", "x2"],
                       learner="linear")
    d = data["treated"].to_numpy() == 1
    truth = tau[d].mean()
    assert abs(res.overall.estimate - truth) < 2.5 * res.overall.se
    g = res.groups.set_index("level")
    for level, x in (("large", 1), ("other", 0)):
        true_g = tau[d & (data["x1"].to_numpy() == x)].mean()
        assert abs(g.loc[level, "estimate"] - true_g) < 2.5 * g.loc[level, "std_error"]
    diff = g.loc["large"]
    assert diff["difference"] / diff["difference_se"] > 3  # 0.10 more for large distance


def test_blp_finds_planted_heterogeneity_and_gates_rise_with_the_proxy():
    data, groups, _ = _rows(het=0.15)
    res = whom.analyse(data, groups, "x", "employed_24", ["x1", "x2"], learner="boosting")
    assert res.blp["beta2"] > 0 and res.blp["beta2_pvalue"] < 0.01
    assert res.gates_difference.estimate > 0
    assert list(res.gates["group"]) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert res.iate_quantiles["p90"] > res.iate_quantiles["p10"]


def _with_noise_groups(data, groups, seed):
    """Two more pre-registered characteristics that do not modify the effect."""
    rng = np.random.default_rng(seed)
    return groups.assign(noise=rng.choice(list("abcd"), len(groups)),
                         x2_band=pd.qcut(data["x2"], 3, labels=["low", "mid", "high"])
                         .astype(str))


def test_groups_test_keeps_its_size_without_heterogeneity():
    # the published test (all pre-registered groups at once) against the slope
    # on the cross-fitted proxy with folds pooled, on the same 40 worlds without
    # heterogeneity (200 such worlds measured: 4.0% against 18.5%)
    groups_rej = pooled_rej = 0
    for seed in range(40):
        data, groups, _ = _rows(n=8_000, het=0.0, seed=500 + seed)
        res = whom.analyse(data, _with_noise_groups(data, groups, seed), "x", "employed_24",
                           ["x1", "x2"], learner="linear")
        assert res.blp["groups_df"] == 6  # distance 1, noise 3, x2 band 2
        groups_rej += res.blp["groups_pvalue"] < 0.05
        pooled_rej += res.blp["beta2_pvalue"] < 0.05
    # 5% expected: more than 6 of 40 has probability below 1.5%
    assert groups_rej <= 6
    assert pooled_rej > groups_rej  # the pooled slope over-rejects (why it is not published)


def test_groups_test_finds_the_planted_modifier():
    data, groups, _ = _rows(het=0.15)
    res = whom.analyse(data, _with_noise_groups(data, groups, 1), "x", "employed_24",
                       ["x1", "x2"], learner="linear")
    assert res.blp["groups_pvalue"] < 0.001
    assert "distance=other" in res.blp["groups_terms"]


def test_groups_test_merges_small_levels_and_drops_duplicates():
    n = 6_000
    rng = np.random.default_rng(0)
    d = (rng.random(n) < 0.1).astype(int)
    psi = d * 0.05 + rng.normal(0, 0.3, n) * d
    e = np.full(n, 0.1)
    level = np.where(rng.random(n) < 0.5, "a", "b")
    rare = np.where(np.arange(n) < 40, "rare", level)  # under 30 starters: joins "a" or "b"
    groups = pd.DataFrame({"g": level, "same": level, "r": rare})
    out = whom.blp_groups(psi, e, groups, d, np.arange(n), min_treated=30)
    # g: one slope; "same" duplicates it (dropped); r: "rare" (under 30 starters)
    # joins the reference level, its other level stays (not quite g's: 40 rows differ)
    assert out["groups_df"] == 2
    terms = out["groups_terms"].split(";")
    assert terms[0].startswith("g=") and terms[1].startswith("r=") and "rare" not in terms[1]


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.20, np.nan, 0.001]
    ok = [x for x in p if np.isfinite(x)]
    expected = multipletests(ok, method="holm")[1]
    got = whom.holm(p)
    assert np.isnan(got[4])
    np.testing.assert_allclose(np.delete(got, 4), expected)


def _estimate(name, value, influence):
    return whom.Estimate(name, value, pd.Series(influence), 100)


def test_romano_wolf_rewards_correlation_that_holm_ignores():
    rng = np.random.default_rng(0)
    inf = rng.standard_normal(400) / 400 ** 0.5 * 0.02  # se 0.02
    same = [_estimate("a", 0.045, inf), _estimate("b", 0.045, inf)]
    raw = 2 * stats.norm.sf(0.045 / np.sqrt((inf**2).sum()))
    rw = whom.romano_wolf(same, draws=4000, seed=1)
    assert rw == pytest.approx([raw, raw], abs=0.01)  # one test in effect
    assert whom.holm([raw, raw]) == pytest.approx([2 * raw, 2 * raw])
    # independent estimates on different persons: close to Holm, never below raw
    other = pd.Series(rng.standard_normal(400) / 400 ** 0.5 * 0.02, index=range(400, 800))
    indep = [_estimate("a", 0.045, inf), whom.Estimate("c", 0.01, other, 100)]
    rw = whom.romano_wolf(indep, draws=4000, seed=1)
    assert rw[0] >= raw - 0.005 and rw[1] >= rw[0]


def test_family_tests_adjust_every_contrast_of_every_instrument():
    results = []
    for inst, seed in (("a", 1), ("b", 2)):
        data, groups, _ = _rows(n=10_000, seed=seed)
        data["_pid"] = np.arange(len(data))  # the same persons in both comparisons
        results.append(whom.analyse(data, groups, inst, "employed_24", ["x1", "x2"],
                                    learner="linear"))
    fam = whom.family_tests(results, draws=500)
    # one two-level characteristic per instrument: one comparison each, tested once
    assert len(fam) == 2 and set(fam["instrument"]) == {"a", "b"}
    assert (fam["pvalue_holm"] >= fam["pvalue"] - 1e-12).all()
    assert (fam["pvalue_romano_wolf"] >= fam["pvalue"] - 0.01).all()


def test_group_frame_has_every_pre_registered_grouping():
    persons = pd.DataFrame({
        "age": [25, 40, 60], "sex": ["female", "male", "female"],
        "education": ["low", None, "high"], "prior_employment_months": [0, 5, 24],
        "migration": ["nl", "ma", "western"],
        "labour_market_distance": ["short", "large", "medium"],
        "health_chronic": [1, 0, 0], "household_type": ["single", "couple", "single_parent"],
        "language_level": ["below_b1", "b1_or_higher", "b1_or_higher"]})
    g = whom.group_frame(persons)
    assert list(g.columns) == ["age_band", "sex", "education", "prior_employment", "migration",
                               "labour_market_distance", "health_chronic", "household",
                               "language_level"]
    assert g["health_chronic"].tolist() == ["yes", "no", "no"]


def test_truth_table_holds_each_group_effect_against_its_starters_truth():
    keys = {"RINPERSOONS": ["R"] * 4, "RINPERSOON": ["1", "2", "3", "4"]}
    persons = pd.DataFrame({**keys, "instrument": ["training", "training", "none", "training"],
                            "age": [25, 60, 30, 30], "sex": "female", "education": "low",
                            "prior_employment_months": 0, "migration": "nl"})
    po = pd.DataFrame({**keys, "employed_training_24": [1, 1, 0, 0],
                       "employed_notnow_24": [0, 1, 0, 1]})
    analyses = [{"instrument": "training", "outcome": "employed_24", "groups": [
        {"group": "age_band", "level": "under 27", "estimate": 0.8, "std_error": 0.1,
         "n_treated": 40},
        {"group": "age_band", "level": "27-49", "estimate": -0.5, "std_error": 0.1,
         "n_treated": 40},
        {"group": "age_band", "level": "50 and over", "estimate": None, "std_error": None,
         "n_treated": 5}]}]
    t = whom_truth.truth_table(analyses, persons, po, ["age_band"]).set_index("level")
    # under 27: person 1 (1 - 0); 27-49: person 4 (0 - 1); person 3 did not start
    assert t.loc["under 27", "truth"] == 1.0 and t.loc["27-49", "truth"] == -1.0
    assert bool(t.loc["under 27", "covered"]) is False  # 0.8 vs 1.0 with se 0.1: |0.2| > 0.196
    assert bool(t.loc["27-49", "covered"]) is False
    assert "50 and over" not in t.index  # no estimate, no row
    cov = whom_truth.coverage_by_size(t.reset_index(), threshold=30)
    assert cov.loc["training", "group effects"] == 2


def test_a_characteristic_is_shown_whole_or_not_at_all():
    data, _, _ = _rows(n=20_000)
    rng = np.random.default_rng(5)
    # three levels, one of them with very few starters
    level = np.where(rng.random(len(data)) < 0.01, "rare", np.where(data["x1"] == 1, "a", "b"))
    groups = pd.DataFrame({"kind": level, "distance": np.where(data["x1"] == 1, "large",
                                                                 "other")})
    res = whom.analyse(data, groups, "x", "employed_24", ["x1", "x2"], learner="linear")
    g = res.groups.set_index(["group", "level"])
    # the rare level would follow from the two shown ones and the overall effect:
    # none of the three is shown
    assert g.loc["kind", "estimate"].isna().all()
    assert g.loc["distance", "estimate"].notna().all()
    assert [c.name for c in res.contrasts] == ["distance=large vs others"]


def test_person_sums_match_a_groupby_per_person():
    rng = np.random.default_rng(2)
    pid = rng.integers(0, 50, 600)
    psi, d = rng.standard_normal(600), rng.binomial(1, 0.3, 600)
    mask = rng.random(600) < 0.5
    est = whom.att(psi, d, whom.PersonIndex.of(pid), mask)
    theta = psi[mask].sum() / d[mask].sum()
    expected = pd.Series(np.where(mask, (psi - d * theta) / d[mask].sum(), 0.0)).groupby(pid).sum()
    assert est.estimate == pytest.approx(theta)
    pd.testing.assert_series_equal(est.influence, expected, check_names=False,
                                   check_index_type=False)


def test_rank_correlation_is_spearman_with_a_bootstrap_interval():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(400)
    y = x + rng.standard_normal(400)
    rc = whom_truth.rank_correlation(x, y, draws=500, seed=1)
    assert rc["rank_correlation"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert rc["low"] < rc["rank_correlation"] < rc["high"] and rc["low"] > 0.5
    assert rc["n"] == 400
    # ties (a true effect of 0 or 1) use mid-ranks, like scipy
    t = (y > 0.5).astype(float)
    assert whom_truth.rank_correlation(x, t, draws=0)["rank_correlation"] == pytest.approx(
        stats.spearmanr(x, t).statistic)
    # the wrong way round, and no relation: the interval says so
    assert whom_truth.rank_correlation(x, -y, draws=200)["high"] < 0
    noise = whom_truth.rank_correlation(x, rng.standard_normal(400), draws=500, seed=2)
    assert noise["low"] < 0 < noise["high"]
    # no spread on one side (a world without effects): no correlation, not zero
    flat = whom_truth.rank_correlation(x, np.zeros(400), draws=100)
    assert np.isnan(flat["rank_correlation"]) and np.isnan(flat["low"])
    # missing values are dropped pairwise
    assert whom_truth.rank_correlation([1, 2, np.nan, 4], [1, 2, 3, 4], draws=0)["n"] == 3


def test_iate_truth_table_holds_each_starters_prediction_against_its_true_effect():
    n = 300
    rng = np.random.default_rng(7)
    keys = {"RINPERSOONS": ["R"] * n, "RINPERSOON": [str(i) for i in range(n)]}
    persons = pd.DataFrame({**keys, "instrument": np.where(np.arange(n) < 200, "training",
                                                           "none")})
    gain = rng.random(n)  # the expected gain: the prediction tracks it
    po = pd.DataFrame({**keys, "employed_training_24": (rng.random(n) < 0.3 + 0.5 * gain),
                       "employed_notnow_24": (rng.random(n) < 0.3)}).astype(
        {"employed_training_24": int, "employed_notnow_24": int})
    po = po.iloc[::-1]  # the join is on the keys, not the row order
    res = whom.Heterogeneity(
        "training", "employed_24", None, pd.DataFrame(), [], {}, pd.DataFrame(), None, {},
        starters=pd.Series(gain[:200], index=np.arange(200)))
    t = whom_truth.iate_truth_table([res], persons, po, draws=300).iloc[0]
    truth = (po.set_index("RINPERSOON").loc[[str(i) for i in range(200)]]
             .eval("employed_training_24 - employed_notnow_24"))
    assert t["starters"] == 200
    assert t["rank_correlation"] == pytest.approx(stats.spearmanr(gain[:200], truth).statistic)
    assert t["rank_correlation"] > 0 and bool(t["above_zero"]) == (t["low"] > 0)
    words = whom_truth.iate_truth_in_words(pd.DataFrame([t]), 250, str)
    assert words.iloc[0]["above zero?"] == "too few starters"  # 200 < 250: not shown
    assert words.iloc[0]["rank correlation, predicted and true effect"] == "–"
    assert t["truth"] == "realised"  # this world has no expected effects
    # with each starter's expected effect in the world, that is the truth
    expected = np.where(np.arange(n) < 200, gain + 0.1 * rng.standard_normal(n), np.nan)
    po = po.assign(expected_effect_notnow_24=expected[::-1])  # po's rows are reversed
    t = whom_truth.iate_truth_table([res], persons, po, draws=0).iloc[0]
    assert t["truth"] == "expected"
    assert t["rank_correlation"] == pytest.approx(
        stats.spearmanr(gain[:200], expected[:200]).statistic)
    assert t["rank_correlation"] > 0.9


def test_the_analysis_keeps_each_starters_prediction_in_memory_only():
    data, groups, tau = _rows(n=10_000)
    res = whom.analyse(data, groups, "x", "employed_24", ["x1", "x2"], learner="linear")
    d = data["treated"].to_numpy() == 1
    assert sorted(res.starters.index) == sorted(data.loc[d, "_pid"])
    # the DR-learner's proxy tracks the planted effect 0.05 + 0.10 * x1
    x1 = data.set_index("_pid").loc[res.starters.index, "x1"].to_numpy()
    assert res.starters[x1 == 1].mean() - res.starters[x1 == 0].mean() > 0.05
    assert "starters" not in whom.summary_record(res)


def test_rank_correlations_in_words_say_which_side_of_zero():
    table = pd.DataFrame([
        {"instrument": "a", "outcome": "employed_24", "starters": 500, "rank_correlation": 0.1,
         "low": 0.02, "high": 0.18, "above_zero": True},
        {"instrument": "b", "outcome": "employed_24", "starters": 500,
         "rank_correlation": -0.2, "low": -0.3, "high": -0.1, "above_zero": False},
        {"instrument": "c", "outcome": "employed_24", "starters": 500,
         "rank_correlation": 0.01, "low": -0.05, "high": 0.07, "above_zero": False}])
    w = whom_truth.iate_truth_in_words(table, 100, str).reset_index().set_index("instrument")
    assert w.loc["a", "above zero?"] == "yes"
    assert w.loc["b", "above zero?"].startswith("no: below zero")
    assert w.loc["c", "above zero?"] == "no (the interval reaches zero)"
    # no cell starts with a minus sign (the CSV neutraliser would quote it)
    assert w.loc["b", "95% interval (bootstrap over starters)"] == "from -0.300 to -0.100"


def test_the_split_rule_takes_the_median_fold_and_doubles_its_p_value():
    data, groups, _ = _rows(n=8_000, het=0.0, seed=11)
    f = whom.cross_fit(data, "employed_24", ["x1", "x2"], folds=3, learner="linear")
    psi, proxy = whom.scores(f), f["proxy"].to_numpy()
    e, d, pid, fold = (f[c].to_numpy() for c in ("e", "d", "_pid", "fold"))
    per = [whom.blp(psi[fold == k], e[fold == k], proxy[fold == k], d[fold == k],
                    pid[fold == k]) for k in range(3)]
    got = whom.blp_split(psi, e, proxy, d, pid, fold)
    assert got["beta2_split"] == pytest.approx(np.median([b["beta2"] for b in per]))
    assert got["beta2_pvalue_split"] == pytest.approx(
        min(1.0, 2 * np.median([b["beta2_pvalue"] for b in per])))
    # every row belongs to one fold, and a person's rows to the same one
    assert set(np.unique(fold)) == {0, 1, 2}
    assert (pd.Series(fold).groupby(pid).nunique() == 1).all()
    res = whom.analyse(data, groups, "x", "employed_24", ["x1", "x2"], learner="linear")
    assert res.blp["beta2_pvalue_split"] == pytest.approx(got["beta2_pvalue_split"])


def test_the_heterogeneity_sentence_follows_the_test_of_all_groups():
    def res(**blp):
        return whom.Heterogeneity("training", "employed_24", None, pd.DataFrame(), [], blp,
                                  pd.DataFrame(), None, {})

    clear = whom.groups_test_sentence(res(groups_pvalue=0.0004, groups_df=7))
    assert "clearly go with differences" in clear and "all 7 group differences" in clear
    assert "p < 0.001" in clear
    none = whom.groups_test_sentence(res(groups_pvalue=0.31, groups_df=1))
    assert "no clear differences" in none and "the one group difference" in none
    assert "p = 0.310" in none
    assert "could not be tested" in whom.groups_test_sentence(res(groups_pvalue=math.nan,
                                                                  groups_df=0))
    # the predictions' verdict reads the split rule, not the pooled slope
    verdict = whom.prediction_verdict(res(beta2=0.9, beta2_pvalue=0.001, beta2_split=0.2,
                                          beta2_pvalue_split=0.6))
    assert "no reliable sign" in verdict and "slope 0.20" in verdict
    # a slope below zero at p < 0.05 is one uncorrected test among the instruments:
    # "may", with the caveat, never a flat claim
    wrong = whom.prediction_verdict(res(beta2_split=-1.05, beta2_pvalue_split=0.033))
    assert "may point the wrong way" in wrong and "not corrected" in wrong
    assert "must not be used to choose anyone" in wrong
    right = whom.prediction_verdict(res(beta2_split=0.8, beta2_pvalue_split=0.01))
    assert "may point the right way" in right and "not corrected" in right


def test_fifths_of_the_predicted_effect_are_shown_only_with_enough_starters_each():
    blp = {"beta2_split": 0.1, "beta2_pvalue_split": 0.5, "groups_wald": 3.2, "groups_df": 4,
           "groups_pvalue": 0.52}
    fifths = pd.DataFrame({"group": [f"Q{k}" for k in range(1, 6)],
                           "predicted": [0.01, 0.02, 0.03, 0.04, 0.05],
                           "estimate": [0.0, 0.01, 0.02, 0.03, 0.04], "std_error": [0.02] * 5,
                           "n_treated": [40, 40, 40, 40, 29]})
    res = whom.Heterogeneity("training", "employed_24", None, pd.DataFrame(), [], blp, fifths,
                             None, {})
    table = whom.gates_table(res, min_treated=30)
    assert not whom.gates_shown(res, 30) and len(table) == 2  # the slope and the joint test
    assert not any(str(i).startswith("Q") for i in table.index)
    assert "3.2 on 4" in table.iloc[1]["estimated (pp)"]
    shown = whom.gates_table(res, min_treated=29)
    assert [i for i in shown.index if str(i).startswith("Q")] == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert not any("top minus bottom" in str(i) for i in shown.index)


def test_no_clear_difference_says_how_large_a_difference_would_be_found():
    res = whom.Heterogeneity("training", "employed_24", None,
                             pd.DataFrame({"group": ["sex"], "level": ["female"],
                                           "estimate": [0.05]}), [],
                             {"groups_pvalue": 0.4, "groups_df": 2}, pd.DataFrame(), None, {})
    family = pd.DataFrame({"instrument": ["training"] * 2, "outcome": ["employed_24"] * 2,
                           "contrast": ["sex=female vs others", "age=young vs others"],
                           "difference": [0.01, -0.02], "std_error": [0.04, 0.06],
                           "pvalue": [0.8, 0.7], "pvalue_romano_wolf": [0.9, 0.9]})
    said = " ".join(whom.sentences(res, family, str))
    # 2.8 times the median standard error (0.05): 14 percentage points
    assert "No group of starters differs clearly" in said and "about 14 percentage points" in said
    family.loc[0, ["pvalue", "pvalue_romano_wolf"]] = [0.001, 0.01]
    said = " ".join(whom.sentences(res, family, str))
    assert "Clearly: for starters whose sex" in said and "would usually not be found" not in said


def test_bootstrap_ranks_are_scipys_to_the_last_bit():
    """The bootstrap's linear-time mid-ranks against the percentile interval of
    the same draws ranked by scipy (what the interval was computed from before)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(300)
    y = np.round(0.4 * x + rng.standard_normal(300), 1)  # many ties
    t = (rng.random(300) < 0.3).astype(float)  # two values: ties everywhere
    for other in (y, t):
        values, codes = np.unique(other, return_inverse=True)
        for _ in range(5):
            i = rng.integers(0, 300, 300)
            np.testing.assert_array_equal(whom_truth._mid_ranks(codes[i], len(values)),
                                          stats.rankdata(other[i]))
        got = whom_truth.rank_correlation(x, other, draws=199, seed=4)
        draw = np.random.default_rng(4)
        boot = [whom_truth._spearman(x[i], other[i])
                for i in (draw.integers(0, 300, 300) for _ in range(199))]
        tail = 100 * (1 - 0.95) / 2  # as rank_correlation computes it
        low, high = np.percentile(boot, [tail, 100 - tail])
        assert (got["low"], got["high"]) == (low, high)  # exactly, not approximately


def test_the_predictions_file_gives_the_validation_the_same_table():
    """07 writes each starter's prediction (research domain); 09 reads it back
    instead of fitting the models again: the same rank-correlation table."""
    data, groups, _ = _rows(n=6_000)
    res = [whom.analyse(data, groups, inst, "employed_24", ["x1", "x2"], learner="linear",
                        seed=seed) for inst, seed in (("x", 0), ("y", 1))]
    frame = whom.predictions_frame(res)
    assert list(frame.columns) == ["instrument", "outcome", "person", "proxy"]
    assert len(frame) == sum(len(r.starters) for r in res)
    back = whom_truth.read_predictions(frame)
    assert [(p.instrument, p.outcome) for p in back] == [("x", "employed_24"), ("y", "employed_24")]
    for p, r in zip(back, res, strict=True):
        pd.testing.assert_series_equal(p.starters, r.starters, check_index_type=True)
    n = len(groups)
    keys = {"RINPERSOONS": ["R"] * n, "RINPERSOON": [str(i) for i in range(n)]}
    persons = pd.DataFrame(keys)
    rng = np.random.default_rng(5)
    po = pd.DataFrame({**keys, "expected_effect_notnow_24": rng.random(n)})
    table = whom_truth.iate_truth_table(res, persons, po, draws=99)
    assert len(table) == 2 and table["starters"].gt(0).all()
    pd.testing.assert_frame_equal(whom_truth.iate_truth_table(back, persons, po, draws=99), table)
    assert whom.predictions_frame([]).empty

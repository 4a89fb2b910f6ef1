"""The validation page in words: tables, rates with intervals, In short."""

import pandas as pd
import pytest

from reintegration.montecarlo.shares import clopper_pearson
from reintegration.phase2 import validation_page as vp
from reintegration.research import labels

SOO = "selection_on_observables"


def _frame():
    """Two instruments, two estimands, one outcome, one subgroup row; one
    interval misses its truth."""
    rows = []
    for inst, target, est, lo, hi, truth in [
        ("training", "now_vs_later", -0.046, -0.092, -0.001, -0.009),
        ("training", "vs_never", -0.051, -0.100, -0.003, 0.020),
        ("job_coaching", "now_vs_later", 0.015, -0.029, 0.059, 0.010),
        ("job_coaching", "vs_never", 0.012, -0.035, 0.059, 0.010),
    ]:
        rows.append({"design": SOO, "instrument": inst, "target": target,
                     "outcome": "employed_24", "subgroup": "all", "group": "all",
                     "estimate": est, "std_error": 0.02, "ci_low": lo, "ci_high": hi,
                     "truth": truth, "bias": est - truth, "covered": lo <= truth <= hi})
    rows.append({**rows[0], "subgroup": "sex", "group": "female", "covered": False})
    return pd.DataFrame(rows)


def _placebo(rand=(0.15, 0.15), clus=(0.20, 0.40)):
    return pd.DataFrame({
        "draws": [20, 20],
        "effect_rejected_clustered": list(clus),
        "effect_rejected_randomization": list(rand),
        "pretrend_rejected_clustered": [0.0, 0.0],
        "pretrend_rejected_randomization": [0.0, 0.05],
        "sd_estimate_over_mean_se": [1.28, 1.58],
        "sd_estimate_over_mean_se_randomization": [1.103, 1.22],
    }, index=pd.Index(["employed_12", "employed_24"], name="outcome"))


def _at_truth():
    return pd.DataFrame({
        "sub-study": [f"{SOO}/training", f"{SOO}/job_coaching"],
        "outcome": ["employed_24", "employed_24"],
        "estimate": [-0.0387, -0.0082], "r2_treatment": [0.002, 0.0011],
        "r2_outcome": [0.0891, 0.0888], "bound_low": [-0.1732, -0.0982],
        "bound_high": [0.0958, 0.0819], "truth": [0.0263, 0.0248],
        "contains_truth": [True, True],
        "a benchmark range contains the truth": [False, True],
        "benchmark_r2_treatment": [0.0005, 0.0024], "benchmark_r2_outcome": [0.0157, 0.0163],
    })


def test_rate_text_is_the_exact_interval_of_3_of_20():
    lo, hi = clopper_pearson(3, 20)
    assert lo == pytest.approx(0.0321, abs=1e-4) and hi == pytest.approx(0.3789, abs=1e-4)
    assert vp.rate_text(0.15, 20) == "15% (3% to 38%)"
    assert vp.rate_text(0.0, 20) == "0% (0% to 17%)"
    assert vp.rate_text(float("nan"), 20) == "–"


def test_placebo_table_has_plain_columns_and_intervals():
    shown = vp.placebo_in_words(_placebo())
    assert list(shown.index) == [labels.label("employed_12"), labels.label("employed_24")]
    col = "zero effect rejected: cluster-robust"
    assert shown.loc[labels.label("employed_24"), col] == "40% (19% to 64%)"
    rand = "zero effect rejected: randomisation test"
    assert list(shown.columns).index(rand) < list(shown.columns).index(col)
    assert not [c for c in shown.columns if "_" in c]
    assert shown.iloc[1, -1] == 1.58


def test_placebo_sentences_say_what_the_rates_mean():
    text = vp.placebo_sentences(_placebo())
    assert "3 rejections in 20 (15%) have a 95% interval from 3% to 38%, which holds" in text
    assert "8 rejections in 20 (40%) have a 95% interval from 19% to 64%, which lies above" in text
    assert "no sign that the roll-out intervals" in text
    assert "cluster-robust ones would be too narrow" in text
    bad = vp.placebo_sentences(_placebo(rand=(0.40, 0.15)))
    assert "Even the randomisation test rejects a true zero more often" in bad
    assert "no placebo" in vp.placebo_sentences(None)


def test_estimates_in_words_speaks_percentage_points_and_yes_no():
    shown = vp.estimates_in_words(_frame())
    assert len(shown) == 4  # the subgroup row stays in the research domain
    key = (labels.label(SOO), "Training", labels.label("employed_24"), "versus never")
    row = shown.loc[key]
    assert row["estimate"] == -5.1 and row["true value"] == 2.0
    assert row["95% interval"] == "-10.0 to -0.3"
    assert row["estimate minus truth"] == -7.1
    assert row["interval contains the truth"] == "no"
    assert shown.loc[(labels.label(SOO), "Job coaching", labels.label("employed_24"),
                      "now versus later"), "interval contains the truth"] == "yes"


def test_coverage_in_words_names_the_estimand_in_percentage_points():
    from reintegration.phase2 import estimates

    shown = vp.coverage_in_words(estimates.coverage_table(_frame()))
    assert list(shown.index.names) == ["design", "estimand", "outcome"]
    row = shown.loc[(labels.label(SOO), "versus never", labels.label("employed_24"))]
    assert row["intervals containing the truth"] == 1 and row["estimates"] == 2
    assert row["mean bias (percentage points)"] == -3.4
    assert row["mean standard error (percentage points)"] == 2.0
    assert row["share containing the truth"] == "50%"


def test_groups_without_200_starters_drop_those_columns():
    cov = pd.DataFrame({"group effects": [11, 2], "covered": [0.909, 0.5],
                        "with 200+ starters": [0, 0], "covered (200+)": [None, None],
                        "mean bias": [-0.033, -0.031]},
                       index=pd.Index(["job_coaching", "training"], name="instrument"))
    shown, text = vp.groups_in_words(cov)
    assert list(shown.index) == ["Job coaching", "Training"]
    assert not [c for c in shown.columns if "200" in c]
    assert shown.loc["Job coaching", "mean bias (percentage points)"] == -3.3
    assert text.startswith("No group reaches 200 starters")
    cov.loc["training", ["with 200+ starters", "covered (200+)"]] = [1, 1.0]
    shown, text = vp.groups_in_words(cov)
    assert shown.loc["Training", "share containing the truth (200+ starters)"] == "100%"
    assert shown.loc["Job coaching", "share containing the truth (200+ starters)"] == "–"
    assert shown.loc["Job coaching", "share whose interval contains the truth"] == "91%"
    assert "at least 200" in text


def test_sensitivity_in_words_and_why_a_yardstick_range_misses():
    shown = vp.sensitivity_in_words(_at_truth(), labels.label)
    assert shown.index[0] == ("Selection on observables, training", labels.label("employed_24"))
    row = shown.iloc[0]
    assert row["the bounds contain the truth"] == "yes"
    assert row["a yardstick range of the effects page contains the truth"] == "no"
    assert row["bounds at the true strength"] == "-17.3 to +9.6"
    assert row["hidden factor: % of the outcome explained"] == 8.9
    assert row["strongest yardstick x3: % of the outcome explained"] == 1.6
    text = vp.sensitivity_sentences(_at_truth())
    assert "contain the true effect in 2 of 2 rows" in text
    assert "contain it in 1 of 2" in text
    assert "leaves out chance" in text
    assert "explains at least 8.9% of the outcome" in text and "at most 1.6%" in text


def test_advice_table_in_words():
    table = pd.DataFrame({"estimate": [40.1, None], "true value": [25.7, 3.1],
                          "interval covers the truth": [True, None]},
                         index=pd.Index(["employment had every starter started work_placement "
                                         "(no limit on places)", "regret"], name="quantity"))
    shown = vp.advice_in_words(table)
    assert shown.index[0] == ("employment had every starter started work placement "
                              "(no limit on places)")
    assert list(shown["interval contains the truth"]) == ["yes", ""]


def test_in_short_from_a_small_frame():
    ranks = pd.DataFrame({"instrument": ["training", "job_coaching"],
                          "outcome": ["employed_24"] * 2, "starters": [120, 30],
                          "rank_correlation": [0.3, 0.5], "low": [0.1, 0.2],
                          "high": [0.5, 0.7], "above_zero": [True, True]})
    advice = {"rule": 0.26, "status_quo": 0.266, "oracle_gain": 0.031}
    text = vp.in_short(_frame(), _placebo(), _at_truth(), ranks, advice, labels.label,
                       min_starters=50)
    items = text.split("\n")
    assert len(items) == 5 and all(i.startswith("* ") for i in items)
    assert items[0].startswith(
        "* Of the whole-cohort 95% intervals, 3 of 4 for selection on observables contain "
        "their true value. Selection on observables is biased by construction")
    assert "mean bias in the coverage table: -3.4 to -1.6 percentage points" in items[0]
    assert ("a single estimate is off by up to 7.1 points (training, employed 24 months "
            "after inflow)") in items[0]
    assert "lie above the truth" not in items[0]  # the one miss lies below, as planted
    assert ("designs have no estimate to check on these data, so this page gives no "
            "evidence about their estimates.") in items[0]
    assert "explains at most 0.2% of who starts" in items[2]
    assert ("The best rank correlation is 0.30 (1 would be a perfect ordering): predictions "
            "this weak describe groups, and must not decide about an individual "
            "client.") in items[3]
    upward = _frame()
    upward.loc[3, ["estimate", "ci_low", "ci_high", "bias", "covered"]] = [
        0.112, 0.07, 0.154, 0.102, False]
    up = vp.in_short(upward, None, None, None, None, labels.label).split("\n")
    assert ("1 of its 2 misses lie above the truth, which the hidden factor does not "
            "explain") in up[0]
    upward = upward.drop(index=1)  # the miss below the truth left out
    one = vp.in_short(upward, None, None, None, None, labels.label).split("\n")
    assert "Its one miss lies above the truth" in one[0]
    assert ("rejected in 15% and 15% of draws (95% intervals from 3% to 38%: consistent "
            "with the 5% it should show); the cluster-robust test in 20% and 40%, too "
            "often.") in items[1]
    # the frame has no roll-out estimate: the effects page shows no roll-out interval
    assert items[1].endswith("This city's roll-out was not estimated on these data, so its "
                             "effects page shows none.")
    rollout = pd.concat([_frame(), _frame().head(1).assign(design="rollout_did", target="itt")])
    again = vp.in_short(rollout, _placebo(), None, None, None, labels.label).split("\n")
    assert again[1].endswith("So this check finds no sign that the roll-out intervals from "
                             "the randomisation test are too narrow (20 draws would only show "
                             "a clear excess); cluster-robust ones would be too narrow.")
    assert ("3 of 4 for selection on observables; 1 of 1 for staggered roll-out "
            "(difference in differences) contain their true value") in again[0]
    assert "design has no estimate to check on these data" in again[0]  # the IV alone
    assert "contain the true effect for 2 of 2 instruments (as they should)" in items[2]
    assert "yardstick ranges of the effects page contain it for 1 of 2" in items[2]
    # job coaching has fewer starters than the minimum: not counted
    assert "for 1 of 1 instruments: training." in items[3]
    none = vp.in_short(_frame(), None, None, ranks.assign(above_zero=False), None,
                       labels.label).split("\n")
    assert "better than chance for none of the 2 instruments" in none[2]
    assert items[4].startswith("* The advice rule against its truth: in truth the rule "
                               "shown would lower the share of starters in work by 0.6 "
                               "percentage points compared with today's choices")


def test_in_short_without_truth_or_roll_out():
    assert vp.in_short(None, None, None, None, None, labels.label,
                       has_truth=False) == vp.NO_TRUTH
    assert "nothing to validate" in vp.NO_TRUTH
    text = vp.in_short(_frame(), None, None, None, None, labels.label)
    assert "rolled out no instrument" in text
    assert "No advice rule was learned" in text
    assert text.startswith("* Of the whole-cohort 95% intervals, 3 of 4")


def test_display_frame_labels_one_word_instruments_and_estimands():
    frame = pd.DataFrame({"x": [1, 2]}, index=pd.MultiIndex.from_tuples(
        [("training", "vs_never"), ("job_coaching", "now_vs_later")],
        names=["instrument", "target"]))
    shown = labels.display_frame(frame)
    assert list(shown.index) == [("Training", "versus never"),
                                 ("Job coaching", "now versus later")]
    # in a sentence a plain word stays a word
    assert labels.relabel("job training") == "job training"

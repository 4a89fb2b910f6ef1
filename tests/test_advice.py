"""Advice for case managers: the policy tree search, the places, the
protected characteristics, the fairness audit and the minimisation table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.phase2 import advice, advice_page, advice_truth, estimates
from reintegration.phase2 import policy_tree as pt
from reintegration.phase2.policy_tree import TODAY

FEATURES = {
    "distance": {
        "column": "labour_market_distance",
        "kind": "ordered",
        "label": "distance",
        "levels": ["short", "medium", "large"],
    },
    "age": {
        "column": "age_group",
        "kind": "ordered",
        "label": "age",
        "levels": ["under 27", "27-49", "50 and over"],
    },
}


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "labour_market_distance": rng.choice(["short", "medium", "large"], n),
            "age_group": rng.choice(["under 27", "27-49", "50 and over"], n),
        }
    )


def test_the_search_finds_a_planted_two_question_rule():
    frame = _frame(3000)
    large = (frame["labour_market_distance"] == "large").to_numpy()
    young = (frame["age_group"] == "under 27").to_numpy()
    # three instruments: a is best for large distance, b for the young otherwise, c else
    R = np.column_stack([large * 1.0, (~large & young) * 1.0, (~large & ~young) * 1.0])
    splits = pt.candidate_splits(frame, FEATURES)
    tree = pt.fit(frame, R, ["a", "b", "c"], splits, depth=2, min_leaf=10)
    advice_given = np.array(tree.actions)[tree.advice(frame)]
    expected = np.where(large, "a", np.where(young, "b", "c"))
    assert (advice_given == expected).all()
    assert tree.root.features() == {"distance", "age"}
    assert pt.value(tree, frame, R).mean() == pytest.approx(1.0)


def test_a_depth_one_rule_asks_one_question():
    frame = _frame(2000, seed=1)
    large = (frame["labour_market_distance"] == "large").to_numpy()
    R = np.column_stack([large * 1.0, (~large) * 1.0])
    tree = pt.fit(frame, R, ["a", "b"], pt.candidate_splits(frame, FEATURES), depth=1)
    assert tree.root.split is not None and tree.root.yes.split is None
    assert tree.root.no.split is None
    with pytest.raises(ValueError, match="depth 3"):
        pt.fit(frame, R, ["a", "b"], [], depth=3)


def test_the_rule_stays_within_the_places_and_as_today_keeps_its_place():
    frame = _frame(4000, seed=2)
    rng = np.random.default_rng(3)
    today = rng.integers(1, 3, len(frame))  # instruments 1 and 2 today, half each
    # instrument 1 is better for everyone: without limits everyone would get it
    R = np.column_stack(
        [
            rng.normal(0.3, 0.1, len(frame)),  # as today
            np.full(len(frame), 0.6),
            np.full(len(frame), 0.2),
        ]
    )
    R[:, 0] = np.where(today == 1, 0.6, 0.2)  # as today: the own instrument's outcome
    actions = [TODAY, "one", "two"]
    splits = pt.candidate_splits(frame, FEATURES)
    free = pt.fit(frame, R, actions, splits, today=today, min_leaf=50)
    assert free.usage(frame, today)[1] == pytest.approx(1.0)
    cap = np.array([np.inf, 0.7, np.inf])
    tree = pt.fit(frame, R, actions, splits, today=today, capacity=cap, min_leaf=50)
    usage = tree.usage(frame, today)
    assert usage[1] <= 0.7 + 1e-9
    assert usage[1] > 0.5  # it still moves some clients into the better instrument
    # every action in every leaf: no rule of fewer actions per leaf is better
    every = pt.fit(frame, R, actions, splits, today=today, capacity=cap, min_leaf=50, top=None)
    fewer = pt.fit(frame, R, actions, splits, today=today, capacity=cap, min_leaf=50, top=2)
    assert pt.value(fewer, frame, R).sum() <= pt.value(every, frame, R).sum() + 1e-9


def test_every_leaf_holds_the_minimum():
    frame = _frame(1000, seed=4)
    rng = np.random.default_rng(5)
    R = rng.normal(size=(len(frame), 3))
    tree = pt.fit(frame, R, ["a", "b", "c"], pt.candidate_splits(frame, FEATURES), min_leaf=150)
    sizes = np.bincount(tree.leaf_of(frame))
    assert sizes.min() >= 150


def _reference_choice(L, A, places, t, top):
    values, assigned = pt._best_assignment(L, A, places, t, top=top)
    if not np.isfinite(values).any():
        return -1, None
    k = int(np.argmax(values))
    return k, assigned[k]


@pytest.mark.parametrize("seed", range(6))
def test_the_bounded_search_picks_the_reference_searchs_tree(seed):
    """The search used by fit (bounds, broadcast sums) against the plain
    search over every tree and combination: the same tree and leaf actions,
    with places binding, with "as today", and with ties (rewards on a grid
    of a few values, so many trees and combinations share the best value)."""
    rng = np.random.default_rng(seed)
    frame = _frame(1500, seed=seed)
    A = 6  # more than four: the search over every action starts from the four best
    today = rng.integers(1, A, len(frame))
    R = (
        rng.integers(0, 3, (len(frame), A)).astype(float)
        if seed % 2
        else rng.normal(size=(len(frame), A))
    )
    t = 0 if seed < 4 else -1
    own = np.eye(A)[today] if t >= 0 else np.zeros((len(frame), A))
    per_row = np.column_stack([np.ones(len(frame)), R, own])
    splits = pt.candidate_splits(frame, FEATURES)
    answers = np.column_stack([s.answer(frame) for s in splits])
    M, stats, n, _ = pt._cells(answers, per_row)
    L, _ = pt._leaf_stats(M, stats, n, 40)
    places = np.array([np.inf, 0.15, 0.3, np.inf, 0.1, 0.05]) * len(frame)
    if t >= 0:
        places[t] = np.inf
        places = np.maximum(places, own.sum(0))
    for top in (2, 4, A, None):
        k_ref, a_ref = _reference_choice(L, A, places, t, A if top is None else top)
        k, a = pt._best_tree(L, A, places, t, top=top, chunk=64)
        assert k == k_ref
        if k >= 0:
            assert a.tolist() == a_ref.tolist()


def test_the_bounded_search_keeps_the_first_of_trees_that_tie():
    """One action is best for everybody, so every tree ties at the same
    value and the same bound, over many chunks: the first tree (the single
    leaf) is the one chosen, as the reference's argmax does."""
    frame = _frame(800, seed=9)
    R = np.column_stack([np.zeros(len(frame)), np.ones(len(frame)), np.zeros(len(frame))])
    per_row = np.column_stack([np.ones(len(frame)), R, np.zeros((len(frame), 3))])
    answers = np.column_stack([s.answer(frame) for s in pt.candidate_splits(frame, FEATURES)])
    L, _ = pt._leaf_stats(*pt._cells(answers, per_row)[:3], 20)
    assert len(L) > 3 * 16
    k, a = pt._best_tree(L, 3, np.full(3, np.inf), -1, chunk=16)
    assert (k, a[0]) == (0, 1) and _reference_choice(L, 3, np.full(3, np.inf), -1, 4)[0] == 0


def test_the_bounded_search_says_when_no_tree_fits():
    L = np.zeros((3, 4, 1 + 2 * 2))
    L[:, 0, 0] = 10  # ten persons in the first leaf of every tree
    L[:, 0, 1:3] = 1.0
    k, _ = pt._best_tree(L, 2, np.array([5.0, 5.0]), -1)
    assert k == -1 and _reference_choice(L, 2, np.array([5.0, 5.0]), -1, 4)[0] == -1


def test_a_feature_without_its_column_is_named():
    with pytest.raises(ValueError, match="advice feature 'distance': no column"):
        pt.candidate_splits(pd.DataFrame({"x": [1]}), FEATURES)


# ---------------------------------------------------------------------------
# the whole step on a constructed cohort of starters
# ---------------------------------------------------------------------------


def _starters(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Starters of three instruments; job coaching works for women only (a
    protected characteristic), work placement for clients far from the
    labour market; the instrument chosen depends on observed covariates only."""
    rng = np.random.default_rng(seed)
    female = rng.integers(0, 2, n)
    dist = rng.choice(["short", "medium", "large"], n)
    age = rng.integers(18, 65, n)
    prior = rng.uniform(0, 1, n)
    util = np.column_stack([0.3 * female, 0.5 * (dist == "large"), np.zeros(n)])
    choice = (util + rng.gumbel(size=(n, 3))).argmax(axis=1)
    inst = np.array(["job_coaching", "work_placement", "training"])[choice]
    base = 0.2 + 0.2 * prior
    effect = {
        "job_coaching": 0.25 * female,
        "work_placement": 0.2 * (dist == "large"),
        "training": np.full(n, 0.05),
    }
    p = base + np.choose(
        choice, [effect["job_coaching"], effect["work_placement"], effect["training"]]
    )
    y = (rng.uniform(size=n) < p).astype(int)
    frame = pd.DataFrame(
        {
            "instrument": inst,
            "employed_24": y,
            "female": female,
            "sex": np.where(female == 1, "female", "male"),
            "age": age,
            "age_group": np.select([age < 27, age < 50], ["under 27", "27-49"], "50 and over"),
            "age_under_27": (age < 27).astype(int),
            "age_50_plus": (age >= 50).astype(int),
            "labour_market_distance": dist,
            "distance_short": (dist == "short").astype(int),
            "distance_large": (dist == "large").astype(int),
            "prior_employment": prior,
            "prior_earnings": 20000 * prior,
            "migration": rng.choice(["nl", "tr", "western"], n),
            "education": rng.choice(["low", "middle", "high"], n),
            "household_type": rng.choice(["single", "couple"], n),
            "language_level": rng.choice(["below_b1", "b1_or_higher"], n),
            "health_chronic": rng.integers(0, 2, n),
        }
    )
    return frame


def _expected_outcomes(persons: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each starter's chance of work had they started each instrument (the
    planted world of :func:`_starters`, recomputed from its columns)."""
    base = 0.2 + 0.2 * persons["prior_employment"].to_numpy()
    female = persons["female"].to_numpy()
    large = persons["labour_market_distance"].to_numpy() == "large"
    return {"job_coaching": base + 0.25 * female, "work_placement": base + 0.2 * large,
            "training": base + 0.05}


def _config() -> dict:
    settings = estimates.load_settings()
    settings["covariates"] = [
        "female",
        "age_under_27",
        "age_50_plus",
        "distance_short",
        "distance_large",
        "prior_employment",
    ]
    settings["selection_on_observables"] = {
        **settings["selection_on_observables"],
        "extra_covariates": [],
    }
    return settings


SUBSTUDIES = [
    {"design": "selection_on_observables", "instrument": i, "decision": "go"}
    for i in ("job_coaching", "work_placement", "training")
]


@pytest.fixture(scope="module")
def planted():
    persons = _starters()
    return persons, advice.city_advice(persons, SUBSTUDIES, _config())


def test_the_default_rule_never_asks_about_sex_even_when_the_effect_depends_on_it(planted):
    persons, adv = planted
    assert adv is not None
    assert "sex" not in adv.rule.tree.root.features()
    assert "sex" not in adv.rule.features
    # allowed to ask about sex, the rule does, and gains from it
    cfg = _config()
    cfg["advice"] = {**cfg["advice"], "allow_protected": ["sex"]}
    allowed = advice.city_advice(persons, SUBSTUDIES, cfg)
    assert "sex" in allowed.rule.tree.root.features()


def test_the_fairness_audit_reports_the_gap_the_protected_effect_leaves(planted):
    _, adv = planted
    fair = adv.fairness.set_index(["group", "level"])
    women, men = fair.loc[("sex", "female")], fair.loc[("sex", "male")]
    # women gain from job coaching and men do not: the gap between them under the
    # rule differs from today's and the audit says by how much, with an interval
    assert women["gap_today"] == pytest.approx(-men["gap_today"])
    assert women["gap_rule"] == pytest.approx(women["gap_today"] + women["gap_change_estimate"])
    # the audit's change of the gap against its truth: each starter's expected
    # employment under the held-out advice minus under today's instrument, women's
    # mean gain minus men's (the world's planted effects, not the draws)
    persons, expected = planted[0], _expected_outcomes(planted[0])
    today = np.array([expected[a][i] for i, a in enumerate(persons["instrument"])])
    under = sum(adv.rule.heldout[:, k] * (today if a == advice.TODAY else expected[a])
                for k, a in enumerate(adv.actions))
    female = persons["female"].to_numpy() == 1
    truth = (under - today)[female].mean() - (under - today)[~female].mean()
    se = (women["gap_change_ci_high"] - women["gap_change_ci_low"]) / (2 * 1.96)
    assert truth > 0  # the rule truly widens women's lead (job coaching to more)
    assert abs(women["gap_change_estimate"] - truth) < 3 * se
    # the flags follow the numbers: widens when the change has the gap's sign,
    # clearly when its interval also leaves out zero; and both sexes agree
    assert women["gap_today"] > 0  # women gain from job coaching, which many start
    assert women["widens"] == (women["gap_change_estimate"] > 0) == men["widens"]
    assert women["widens_clearly"] == (women["widens"] and women["gap_change_ci_low"] > 0)
    # migration has no planted effect: its gaps do not move clearly
    assert not fair.loc[fair.index.get_level_values("group") == "migration", "widens_clearly"].any()


def test_the_minimisation_table_says_what_adding_sex_would_gain(planted):
    _, adv = planted
    mini = adv.minimisation.set_index("data")
    # sex is no data group in the default configuration; distance is, and the rule
    # uses it for work placement: without it, the rule is worse
    row = mini.loc["the distance assessment"]
    assert row["how"] == "without" and "distance" not in row["features"]
    assert row["adds_ci_low"] > 0
    # an item the rule does not use changes no held-out advice, and adds exactly zero
    same = mini[mini["n_changed"] == 0]
    assert len(same) and (same["adds_estimate"] == 0).all()
    assert {"only register data", "only municipal data"} <= set(mini.index)


def test_the_rule_recovers_most_of_the_planted_gain(planted):
    persons, adv = planted
    # the true outcome of each starter under each instrument, without noise
    truth = _expected_outcomes(persons)
    Y = np.column_stack(
        [
            np.choose(adv.scores.action, [truth[a] for a in adv.scores.actions]),
            *[truth[a] for a in adv.actions[1:]],
        ]
    )
    rule = pt.value(adv.rule.tree, adv.frame, Y).mean()
    today = Y[:, 0].mean()
    assert rule > today + 0.01


def test_the_page_tables_hold_only_released_rows(planted):
    _, adv = planted
    items, held = advice_page.shown(advice_page.fairness_results(adv), threshold=10)
    words = advice_page.fairness_in_words(adv, str, set(items))
    assert len(words) == len(adv.fairness)
    none_released = advice_page.fairness_in_words(adv, str, set())
    assert none_released.empty
    leaves = advice_page.rule_in_words(adv, str, set(), {})
    assert (leaves["share of starters"].str.fullmatch(r"about \d+%")).all()


def test_fairness_words_treat_a_reversed_gap_like_a_widened_one():
    """A gap that changes sign is named in the sentences, "clearly" only when
    the change's interval excludes zero; when every group may lose, the page
    says so once instead of listing them all."""
    from types import SimpleNamespace

    from reintegration.phase2 import advice_page

    def row(level, today, rule, lo, hi, gain_lo=-0.01):
        return dict(group="sex", level=level, n=100, n_rest=100, changed=0.3,
                    main_advice="job_coaching", gap_today=today, gap_rule=rule,
                    gap_change_estimate=rule - today, gap_change_ci_low=lo,
                    gap_change_ci_high=hi, gap_change_std_error=0.01, gain_estimate=0.01,
                    gain_std_error=0.01, gain_ci_low=gain_lo,
                    reverses=today * rule < 0,
                    widens=today * rule >= 0 and abs(rule) > abs(today),
                    widens_clearly=False)

    fair = pd.DataFrame([row("female", 0.026, -0.087, -0.44, 0.21),
                         row("male", -0.026, 0.087, 0.05, 0.20)])
    adv = SimpleNamespace(fairness=fair)
    released = {f"sex={lv}: gain" for lv in ("female", "male")}
    said = " ".join(advice_page.fairness_sentences(adv, str, released))
    assert "may reverse the gap" in said and "sex: female" in said.split("may reverse")[1]
    assert "clearly reverses the gap" in said and "sex: male" in said.split("clearly")[2]
    assert "may lose" not in said
    fair["gain_ci_low"] = -0.2
    said = " ".join(advice_page.fairness_sentences(SimpleNamespace(fairness=fair), str,
                                                   released))
    assert "For none of the groups audited can a loss" in said and "sex: female" not in \
        said.split("For none")[1]
    # a change too uncertain to show hides the gap under the rule too (today's gap
    # plus the change would give it back), and the flag says so
    fair.loc[0, "gap_change_std_error"] = 0.6
    keys = {f"sex={lv}: {x}" for lv in ("female", "male")
            for x in ("gain", "gap today", "change of the gap")}
    words = advice_page.fairness_in_words(SimpleNamespace(fairness=fair), str, keys)
    female, male = words.loc[("sex", "female")], words.loc[("sex", "male")]
    assert female["gap under the rule (pp)"].startswith("too uncertain")
    assert female["the rule"] == "too uncertain to say"
    assert male["gap under the rule (pp)"] == "+8.7" and male["the rule"].startswith(
        "reverses the gap, clearly")
    said = " ".join(advice_page.fairness_sentences(SimpleNamespace(fairness=fair), str,
                                                   released))
    assert "Too uncertain to say what the rule does to the gap for: sex: female" in said
    assert "may reverse the gap" not in said  # the female row is no longer counted there


def test_only_starters_are_scored():
    with pytest.raises(ValueError, match="starters"):
        advice.scores(
            pd.DataFrame({"instrument": ["none", "training"], "y": [0, 1], "x": [0.0, 1.0]}),
            ["x"],
            "y",
        )


def test_a_protected_feature_must_be_a_feature():
    cfg = _config()
    cfg["advice"] = {**cfg["advice"], "protected": ["religion"]}
    with pytest.raises(ValueError, match="'religion' is not a feature"):
        advice.Settings.from_config(cfg)


def test_the_harness_summary_counts_coverage_and_regret():
    from reintegration.montecarlo import advice as mca

    rows = pd.DataFrame({
        "mode": ["planted"] * 4, "replication": [1, 2, 3, 4], "starters": [100] * 4,
        "value": [0.30, 0.30, 0.30, 0.30], "value_se": [0.01] * 4,
        # the first three truths inside the interval, the last outside
        "value_truth": [0.30, 0.31, 0.29, 0.40],
        "gain": [0.01] * 4, "gain_se": [0.01] * 4, "gain_truth": [0.01, 0.01, 0.01, 0.01],
        "rule_truth": [0.31] * 4, "oracle_truth": [0.32] * 4, "status_quo": [0.30] * 4,
        "regret": [0.01] * 4, "oracle_gain": [0.02] * 4, "regret_share": [0.5] * 4,
        "leaves_as_today": [1] * 4,
    })
    s = mca.summarise(rows).iloc[0]
    assert s["value_coverage"] == pytest.approx(0.75)
    assert s["gain_coverage"] == pytest.approx(1.0)
    assert s["regret_share_of_means"] == pytest.approx(0.5)
    assert s["rule_gain_truth_mean"] == pytest.approx(0.01)


def test_the_validation_sentence_says_when_the_rule_is_worse_than_today():
    worse = {"rule": 0.26, "status_quo": 0.27, "oracle_gain": 0.03}
    assert ("would lower the share of starters in work by 1.0 percentage points compared "
            "with today's choices") in advice_truth.validation_sentence(worse)
    better = {"rule": 0.28, "status_quo": 0.27, "oracle_gain": 0.02}
    assert "recovers 50%" in advice_truth.validation_sentence(better)
    # worse than today while a rule of its kind could do better: no "recovers 0%"
    assert "does worse than today's choices" in advice_truth.validation_sentence(
        {"rule": 0.26, "status_quo": 0.27, "oracle_gain": 0.02})


def test_the_page_opens_with_the_answer_in_short(planted):
    from reintegration.phase2 import advice_page

    _, adv = planted
    shown = advice_page.in_short(adv, str, True, {})
    value = advice_page.sentences(adv, str)[0]
    assert shown.startswith(value) and "The rule asks about" in shown
    held = advice_page.in_short(adv, str, False, {"the rule": "fewer than 10 starters"})
    assert "not shown: fewer than 10 starters" in held and value not in held
    assert "no rule to learn" in advice_page.in_short(None, str, False, {})

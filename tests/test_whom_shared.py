"""The fast path of *what works for whom* (phase2.whom_fit) gives the numbers of
the generic learners: one design matrix per sample instead of one per fit, and
one propensity model per set of rows for every outcome observed on them.

The reference is the generic path (:func:`reintegration.effects._memo.disabled`
switches the fast path off: every model is fitted by the learners of
:mod:`reintegration.effects.learners` on its own copy of the rows). Every
field of every analysis and of the family's tests must agree to 1e-8. The
group effects, the groups test from factorised levels and the bootstrap's
persons are compared with the direct computations they replaced, kept here as
small reference functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from reintegration.effects import _memo
from reintegration.phase2 import whom, whom_fit

COVARIATES = ["x1", "x2", "x3", "rare", "constant"]


def _risk_sets(persons=3_000, seed=11):
    """Stacked risk sets of persons at risk for months 1..8 until a start,
    with three outcomes: ``a`` on every row, ``b`` on the same rows as ``a``
    (other values), ``c`` missing for a fifth of the persons. ``rare`` is 1 for
    three persons only (constant in some training folds), ``constant`` never
    varies (dropped by every fit), and month 8 is rare (its indicator too)."""
    rng = np.random.default_rng(seed)
    x1 = rng.binomial(1, 0.4, persons).astype(float)
    x2 = rng.standard_normal(persons)
    x3 = rng.integers(0, 4, persons).astype(float)
    rare = np.zeros(persons)
    rare[[5, 17, 1_500]] = 1.0
    group = rng.choice(["north", "south", "west"], persons, p=[0.5, 0.3, 0.2])
    late = rng.random(persons) < 0.2
    # a level only among persons without outcome c, and missing values
    cohort = np.where(late, "late", rng.choice(["early", "mid", None], persons))
    rows, at_risk = [], np.ones(persons, bool)
    for m in range(1, 9):
        keep = at_risk & ((m < 8) | (rng.random(persons) < 0.05))
        e = 1 / (1 + np.exp(-(-2.5 + 0.6 * x1 - 0.4 * x2 + 0.1 * x3)))
        d = rng.random(persons) < e
        tau = 0.10 * x1 + 0.05 * (group == "west")
        p0 = 1 / (1 + np.exp(-(-0.4 + 0.6 * x2 - 0.3 * x1 - 0.05 * m)))
        a = (rng.random(persons) < np.clip(p0 + d * tau, 0, 1)).astype(float)
        b = (rng.random(persons) < np.clip(p0 - d * tau, 0, 1)).astype(float)
        c = np.where(late, np.nan, (rng.random(persons) < p0 + 0.05 * d).astype(float))
        pid = np.arange(persons)
        rows.append(pd.DataFrame({
            "elapsed_month": m, "x1": x1, "x2": x2, "x3": x3, "rare": rare,
            "constant": 1.0, "treated": d.astype(int), "a": a, "b": b, "c": c,
            "_pid": pid, "region": group, "cohort": cohort})[keep])
        at_risk &= ~d
    data = pd.concat(rows, ignore_index=True)
    return data, data[["region", "cohort"]].astype("string")


def _person_codes(data, groups):
    """Each column's codes per person (persons with no rows: missing), taken
    for the rows, as :func:`whom.analyses` passes them."""
    pid = data["_pid"].to_numpy()
    persons = groups.groupby(pid).first().reindex(np.arange(pid.max() + 2))
    return {col: (codes[pid], levels) for col, (codes, levels) in
            ((c, pd.factorize(persons[c].astype("string"), sort=True)) for c in groups)}


def _analyses(data, groups, outcomes=("a", "b", "c"), covariates=COVARIATES, **kw):
    opts = {"folds": 3, "seed": 4, "learner": "linear", "quantiles": 5, "min_treated": 20,
            "iate": "dr_linear", **kw}
    return [whom.analyse(data, groups, "x", y, covariates, **opts) for y in outcomes]


def _assert_same(fast, slow, path="", tol=1e-8):
    """Every field of two analyses (or their parts) equal to ``tol``."""
    if dataclasses.is_dataclass(fast):
        for f in dataclasses.fields(fast):
            _assert_same(getattr(fast, f.name), getattr(slow, f.name), f"{path}.{f.name}", tol)
    elif isinstance(fast, pd.DataFrame):
        assert list(fast.columns) == list(slow.columns), path
        for col in fast.columns:
            _assert_same(fast[col], slow[col], f"{path}[{col}]", tol)
    elif isinstance(fast, pd.Series):
        assert fast.index.equals(slow.index), path
        if pd.api.types.is_numeric_dtype(fast.dtype) and pd.api.types.is_numeric_dtype(slow):
            np.testing.assert_allclose(fast.to_numpy(float), slow.to_numpy(float), rtol=0,
                                       atol=tol, err_msg=path)
        else:
            for u, v in zip(fast.tolist(), slow.tolist(), strict=True):
                _assert_same(u, v, path, tol)
    elif isinstance(fast, dict):
        assert list(fast) == list(slow), path
        for k in fast:
            _assert_same(fast[k], slow[k], f"{path}.{k}", tol)
    elif isinstance(fast, list | tuple):
        assert len(fast) == len(slow), path
        for i, (u, v) in enumerate(zip(fast, slow, strict=True)):
            _assert_same(u, v, f"{path}[{i}]", tol)
    elif isinstance(fast, float | np.floating):
        assert slow is not None, path
        if not (math.isnan(fast) and math.isnan(slow)):
            assert abs(fast - slow) <= tol, (path, fast, slow)
    else:
        assert fast == slow, (path, fast, slow)


def _variants(data, groups, group_codes=None):
    """Analyses of one frame that may share a sample or not: three outcomes,
    another seed (other folds), fewer covariates, two folds."""
    return [*_analyses(data, groups, group_codes=group_codes),
            *_analyses(data, groups, outcomes=("a", "c"), seed=5),
            *_analyses(data, groups, outcomes=("a",), covariates=COVARIATES[:2]),
            *_analyses(data, groups, outcomes=("b",), folds=2)]


def test_the_fast_path_gives_every_number_of_the_generic_learners():
    data, groups = _risk_sets()
    fast = _variants(data, groups, _person_codes(data, groups))
    with _memo.disabled():
        slow = _variants(data, groups)
    assert set(fast[0].groups["level"]) == {"early", "mid", "late", "north", "south", "west"}
    assert "late" not in set(fast[2].groups["level"])  # outcome c: no late persons
    # the outcomes differ, so a propensity or outcome model shared by mistake shows
    assert fast[0].overall.estimate != pytest.approx(fast[1].overall.estimate, abs=1e-3)
    assert len(fast[0].contrasts) > 0 and len(fast[0].starters) > 100
    _assert_same(fast, slow)
    # the family of every contrast, with the Romano-Wolf bootstrap
    _assert_same(whom.family_tests(fast, draws=199, seed=3),
                 whom.family_tests(slow, draws=199, seed=3))


@pytest.mark.parametrize("folds,iate", [(2, "dr_linear"), (3, "t_learner"), (4, "dr_linear"),
                                        (3, "dr_boosting")])
def test_the_fast_cross_fit_matches_with_other_folds_and_learners(folds, iate):
    """Two folds (halves of persons, not unions of folds), the T-learner's
    model of the starters, four folds, and the boosted second stage (from the shared
    design's features)."""
    data, _ = _risk_sets(persons=2_000, seed=12)
    for outcome in ("a", "c"):
        fast = whom.cross_fit(data, outcome, COVARIATES, folds=folds, seed=2,
                              learner="linear", iate=iate)
        with _memo.disabled():
            slow = whom.cross_fit(data, outcome, COVARIATES, folds=folds, seed=2,
                                  learner="linear", iate=iate)
        _assert_same(fast, slow, outcome)


def test_persons_are_dealt_into_folds_as_before():
    """The folds of :func:`whom_fit.cross_fit` (one permutation of the sorted
    persons) are those of the dictionary from person to fold it replaced."""
    data, _ = _risk_sets(persons=2_000, seed=15)
    has = data["c"].notna()
    pid = data.loc[has, "_pid"].to_numpy()
    persons = np.unique(pid)
    fold_of = dict(zip(persons, np.random.default_rng(7).permutation(len(persons)) % 3,
                       strict=True))
    expected = np.array([fold_of[p] for p in pid])
    for off in (False, True):
        with _memo.disabled() if off else contextlib.nullcontext():
            fitted = whom.cross_fit(data, "c", COVARIATES, folds=3, seed=7, learner="linear")
        np.testing.assert_array_equal(fitted["fold"].to_numpy(), expected)
        np.testing.assert_array_equal(fitted["_pid"].to_numpy(), pid)


def test_the_kept_columns_are_those_that_vary_in_the_training_rows():
    data, _ = _risk_sets(persons=2_000, seed=13)
    X = data[COVARIATES].to_numpy(float)
    d = data["treated"].to_numpy()
    fold = data["_pid"].to_numpy() % 3
    design = whom_fit.SharedDesign(X, d, fold)
    rng = np.random.default_rng(0)
    masks = [fold == 0, fold != 1, (fold == 2) & (d == 0), rng.random(len(d)) < 0.01,
             (fold == 1) & (data["rare"].to_numpy() == 0)]
    for rows in masks:
        np.testing.assert_array_equal(design.keep(rows), np.ptp(X[rows], axis=0) > 0)
        keep = design.keep(rows)
        np.testing.assert_array_equal(
            design.rows(rows, keep), np.column_stack([np.ones(rows.sum()), X[rows][:, keep]]))
    # the constant never varies; the rare covariate not within one fold's non-starters
    assert not design.keep(fold == 0)[COVARIATES.index("constant")]


def test_outcomes_on_the_same_rows_share_each_propensity_model(monkeypatch):
    data, groups = _risk_sets(persons=2_000, seed=14)
    fits = []

    def counted(d, xc, **kw):
        fits.append(len(d))
        return logit(d, xc, **kw)

    logit = whom_fit.logit
    monkeypatch.setattr(whom_fit, "logit", counted)
    _analyses(data, groups, outcomes=("a",))
    per_sample = len(fits)
    assert per_sample == 6  # 3 folds and 3 pairs of folds
    _analyses(data, groups, outcomes=("b",))
    assert len(fits) == per_sample  # b is observed on a's rows: no new propensity
    _analyses(data, groups, outcomes=("c",))
    assert len(fits) == 2 * per_sample  # c on fewer rows: its own
    assert fits[per_sample] < fits[0]
    # another frame object, same content: fitted again (the memo is per frame)
    _analyses(data.copy(), groups, outcomes=("a",))
    assert len(fits) == 3 * per_sample


def reference_att(psi, d, pid, mask=None, name="all"):
    """The effect on the starters in ``mask`` as it was: zeros for the other rows."""
    m = np.ones(len(psi), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n1 = float(d[m].sum())
    if n1 == 0:
        return whom.Estimate(name, math.nan, pd.Series(dtype=float), 0)
    theta = float(psi[m].sum() / n1)
    contrib = np.where(m, (psi - d * theta) / n1, 0.0)
    return whom.Estimate(name, theta, whom.PersonIndex.of(pid).sum(contrib), int(n1))


def reference_romano_wolf(estimates, *, draws=999, seed=0):
    """Romano and Wolf's step-down as it was: the persons from a Python set."""
    ests = list(estimates)
    idx = pd.Index(sorted(set().union(*(set(e.influence.index) for e in ests))))
    H = np.column_stack([e.influence.reindex(idx, fill_value=0.0).to_numpy() for e in ests])
    se = np.sqrt((H**2).sum(axis=0))
    t = np.abs(np.array([e.estimate for e in ests])) / se
    rng = np.random.default_rng(seed)
    tmax = np.empty((draws, len(ests)))
    for start in range(0, draws, 100):
        xi = rng.standard_normal((min(100, draws - start), len(idx)))
        tmax[start:start + len(xi)] = np.abs(xi @ H) / se
    order = np.argsort(-t, kind="stable")
    adjusted, running = np.empty(len(ests)), 0.0
    for rank, i in enumerate(order):
        running = max(running, float((tmax[:, order[rank:]].max(axis=1) >= t[i]).mean()))
        adjusted[i] = running
    return adjusted


def test_group_effects_and_the_bootstrap_match_the_direct_computation():
    rng = np.random.default_rng(21)
    n = 5_000
    pid = rng.integers(0, 1_200, n)
    d = (rng.random(n) < 0.2).astype(int)
    psi = d * 0.1 + rng.normal(0, 0.3, n)
    people = whom.PersonIndex.of(pid)
    masks = [None, rng.random(n) < 0.3, pid % 7 == 0, np.zeros(n, bool), d == 0]
    ests = []
    for i, mask in enumerate(masks):
        fast, slow = whom.att(psi, d, people, mask, f"m{i}"), reference_att(psi, d, pid, mask)
        _assert_same(fast.estimate, slow.estimate, f"m{i}", tol=0)
        assert fast.n_treated == slow.n_treated
        if len(slow.influence):
            assert fast.influence.index.equals(slow.influence.index)
            np.testing.assert_array_equal(fast.influence.to_numpy(), slow.influence.to_numpy())
            ests.append(fast)
    # persons missing from some influence functions (groups of other persons)
    ests.append(whom.att(psi[:900], d[:900], pid[:900], name="part"))
    np.testing.assert_array_equal(whom.romano_wolf(ests, draws=250, seed=2),
                                  reference_romano_wolf(ests, draws=250, seed=2))


def test_the_groups_test_from_codes_is_the_groups_test_from_strings():
    """Missing values, a level literally called "missing", levels with few
    starters, a level without starters, and a column not of strings."""
    rng = np.random.default_rng(22)
    n = 8_000
    d = (rng.random(n) < 0.15).astype(int)
    e = np.clip(rng.random(n) * 0.3, 0.01, None)
    psi = d * (0.05 + 0.1 * (rng.random(n) < 0.3)) + rng.normal(0, 0.3, n) * d
    region = rng.choice(["east", "north", "west", "missing"], n)
    region = np.where(rng.random(n) < 0.05, None, region)
    few = np.where(np.arange(n) < 60, "few", rng.choice(["a", "b"], n))
    never = np.where(d == 0, rng.choice(["x", "y", "z"], n), rng.choice(["x", "y"], n))
    groups = pd.DataFrame({"region": region, "few": few, "never": never}).astype("string")
    groups["number"] = rng.integers(0, 3, n)
    coded = {c: pd.factorize(groups[c], sort=True) for c in groups.columns}
    for min_treated in (1, 30, 200):
        slow = whom.blp_groups(psi, e, groups, d, np.arange(n), min_treated)
        fast = whom.blp_groups(psi, e, groups, d, np.arange(n), min_treated, coded)
        assert slow["groups_df"] > 0
        _assert_same(fast, slow, str(min_treated), tol=0)
    assert "region=missing" in slow["groups_terms"] or "region=north" in slow["groups_terms"]


def test_the_indicator_matrix_is_column_stacks_row_major_matrix():
    """blp_groups stacks the characteristics' level indicators through one
    column-major array: the floats and the row-major layout of
    ``numpy.column_stack`` of the indicators as floats, so every product
    with it is the same."""
    rng = np.random.default_rng(23)
    for n, k in ((1, 1), (7, 3), (5_000, 12)):
        cols = [rng.random(n) < p for p in np.linspace(0.1, 0.9, k)]
        got = whom.indicator_matrix(cols)
        ref = np.column_stack([c.astype(float) for c in cols])
        assert got.dtype == ref.dtype and got.shape == ref.shape == (n, k)
        assert got.flags.c_contiguous and ref.flags.c_contiguous
        assert np.array_equal(got, ref)
        assert np.array_equal((got * 0.5).T @ got, (ref * 0.5).T @ ref)

"""The fast paths of the effects step give the numbers of the direct computation.

Phase 2 shares work between the many models of one sub-study (memos of
:mod:`reintegration.effects._memo`, one cross-product matrix for the
collinearity check, the censoring hazard without a persons x months design).
These tests compare each fast path with the direct computation it replaces,
kept here as small reference functions, on fixed data, to 1e-8.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from reintegration import designs, effects
from reintegration.designs import selection as soo
from reintegration.effects import _memo
from reintegration.effects import dynamic as dyn
from reintegration.effects import selection as sel
from reintegration.effects import selection_outcomes as sel_outcomes
from reintegration.effects._sums import _rows
from reintegration.effects.learners import LogitLearner
from reintegration.effects.selection import _full_column_rank
from reintegration.phase2 import estimates, sensitivity
from reintegration.research.subgroups import subgroup_frame

KEY = ["RINPERSOONS", "RINPERSOON"]


def reference_independent_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """The collinearity check as it was: the rank of each cross product from the rows."""
    keep: list[str] = []
    base = np.ones((len(frame), 1))
    for col in columns:
        x = np.column_stack([base, frame[[*keep, col]].to_numpy(dtype=float)])
        if np.linalg.matrix_rank(x.T @ x) == x.shape[1]:
            keep.append(col)
    return keep


class GridLogit(LogitLearner):
    """The default logit, predicted on the full persons x months design (the
    censoring hazard's computation before the person and month parts were
    split)."""


def world(n: int = 2500, seed: int = 3) -> pd.DataFrame:
    """Persons who may start training or job coaching in months 1..6, with
    covariates on very different scales, a covariate that repeats two others,
    the pre-registered subgroup columns and three outcomes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    earnings = np.round(rng.gamma(2.0, 8000.0, size=n), 2) * (rng.random(n) < 0.6)
    female = (rng.random(n) < 0.5).astype(int)
    start = np.full(n, np.nan)
    inst = np.full(n, "none", dtype=object)
    hazard = 1 / (1 + np.exp(2.4 - 0.4 * x - 0.3 * female))
    for s in range(1, 7):
        go = np.isnan(start) & (rng.random(n) < hazard)
        start[go] = s
        inst[go] = np.where(rng.random(go.sum()) < 0.5, "training", "job_coaching")
    y0 = 0.5 * x + 0.00001 * earnings + rng.normal(size=n)
    started = ~np.isnan(start)
    emp12 = (y0 + 0.3 * started > 0.4).astype(float)
    emp24 = np.where(rng.random(n) < 0.1, np.nan, (y0 + 0.4 * started > 0.3).astype(float))
    return pd.DataFrame(
        {
            "RINPERSOONS": "R",
            "RINPERSOON": [f"{i:09d}" for i in range(n)],
            "instrument": inst,
            "instrument_elapsed": pd.array(start, dtype="Float64"),
            "x": x,
            "prior_earnings": earnings,
            "female": female,
            "x_plus_female": x + female,  # collinear with the two before it
            "age": rng.integers(18, 66, size=n),
            "sex": np.where(female == 1, "female", "male"),
            "education": rng.choice(["low", "middle", "high", None], size=n),
            "prior_employment_months": rng.integers(0, 25, size=n) * (rng.random(n) < 0.5),
            "migration": rng.choice(["nl", "ma", "western"], size=n),
            "employed_12": emp12,
            "employed_24": emp24,
            "months_employed": np.round(np.clip(12 + 6 * y0 + 3 * started, 0, 24)),
        }
    )


def month_panel(persons: pd.DataFrame) -> pd.DataFrame:
    months = pd.DataFrame({"month": range(0, 25)})
    return persons[KEY].merge(months, how="cross").assign(on_benefit=1)


def settings() -> dict:
    s = estimates.load_settings()
    cfg = {**s["selection_on_observables"], "max_month": 6, "min_stratum_treated": 15}
    return {
        **s,
        "covariates": ["x", "prior_earnings", "female", "x_plus_female"],
        "selection_on_observables": cfg,
    }


def numbers_close(a: object, b: object, path: str = "") -> None:
    """Equal structure, equal text, floats within 1e-8 (relative to max(1, |a|))."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            numbers_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            numbers_close(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            assert math.isnan(b), path
        else:
            assert abs(a - b) <= 1e-8 * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_collinearity_check_keeps_the_columns_of_the_direct_computation() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 2, n),
            "earnings": rng.gamma(2.0, 9000.0, n),
            "b": rng.normal(size=n),
            "const": 1.0,
            "tiny": 1e-9 * rng.normal(size=n),
        }
    )
    frame["a_copy"] = frame["a"]
    frame["sum"] = frame["a"] + 2 * frame["b"]
    frame["not_a"] = 1 - frame["a"]
    cols = ["a", "earnings", "a_copy", "b", "const", "sum", "tiny", "not_a"]
    got = soo.independent_columns(frame, cols)
    assert got == reference_independent_columns(frame, cols)
    assert got == ["a", "earnings", "b"]  # "tiny" is below the rank tolerance, as before
    for m in (3, 40, 400):  # small subgroups, where columns become constant
        part = frame.iloc[:m]
        assert soo.independent_columns(part, cols) == reference_independent_columns(part, cols)


def test_full_column_rank_decides_as_matrix_rank() -> None:
    rng = np.random.default_rng(1)
    for n, k, deficient in ((500, 6, False), (500, 6, True), (20, 8, True), (5, 8, False)):
        a = rng.normal(size=(n, k)) * np.logspace(0, 5, k)
        if deficient:
            a[:, -1] = a[:, 0] * 3 - a[:, 1]
        assert _full_column_rank(a) == (np.linalg.matrix_rank(a) == k)
    ones = np.column_stack([np.ones(50), rng.integers(0, 2, 50), np.zeros(50)])
    assert not _full_column_rank(ones)
    # columns on very different scales (a constant, indicators, earnings in euros):
    # the scaled cross product settles these without the decomposition
    n = 20000
    mixed = np.column_stack(
        [np.ones(n), rng.integers(0, 2, n), rng.gamma(2.0, 9000.0, n), rng.integers(18, 66, n)]
    )
    nearly = mixed.copy()
    nearly[:, 3] = 3 * nearly[:, 1] + 1e-11 * rng.normal(size=n)  # numerically collinear
    for a in (mixed, nearly, mixed[:, [0, 1, 1]]):
        gram = a.T @ a
        assert (
            _full_column_rank(a)
            == _full_column_rank(a, gram)
            == (np.linalg.matrix_rank(a) == a.shape[1])
        )


def test_censoring_hazard_split_into_person_and_month_parts() -> None:
    persons = world()
    s = settings()
    design = designs.get("selection_on_observables")
    data = design.prepare(
        designs.Inputs(persons=persons, city={}, effects=s, person_months=month_panel(persons)),
        "training",
    )
    kw = dict(
        person="_pid",
        start="_any_start",
        eligible="benefit_months",
        covariates=["x", "prior_earnings", "female"],
    )
    for horizon in (3, None):
        with _memo.disabled():
            fast, info = effects.censoring_weights(data, horizon=horizon, **kw)
            grid, info_grid = effects.censoring_weights(
                data, horizon=horizon, learner=GridLogit(), **kw
            )
        assert info["hazard_starts"] > 50 and info == pytest.approx(info_grid)
        np.testing.assert_allclose(fast, grid, rtol=1e-10, atol=0)


def reference_records(persons: pd.DataFrame, s: dict, sub: dict) -> list[dict]:
    """The records of the direct computation: no memo, the collinearity
    check and the censoring hazard as they were, and one fresh copy of the
    prepared data for every model."""
    design = designs.get(sub["design"])
    inputs = designs.Inputs(persons=persons, city={}, effects=s, person_months=month_panel(persons))
    with _memo.disabled():
        data = design.prepare(inputs, sub["instrument"])
        groups = subgroup_frame(data)
        original = soo.independent_columns, dyn._hazard

        def grid_hazard(x, risk, event, learner):
            return original[1](x, risk, event, learner or GridLogit())

        soo.independent_columns, dyn._hazard = reference_independent_columns, grid_hazard
        try:
            records = []
            for outcome in s["outcomes"]:
                only = {**s, "outcomes": {outcome: s["outcomes"][outcome]}}
                recs, _ = estimates.run_substudy(
                    "x", sub, data.copy(), design, only, subgroups=groups
                )
                records += recs
        finally:
            soo.independent_columns, dyn._hazard = original
    return records


def test_effects_step_records_equal_the_direct_computation() -> None:
    persons = world()
    s = settings()
    sub = {
        "id": "selection_on_observables/training",
        "design": "selection_on_observables",
        "instrument": "training",
        "decision": "go",
        "reasons": [],
        "conditions": [],
    }
    fast, results = estimates.city_estimates({"name": "x"}, persons, month_panel(persons), [sub], s)
    assert _memo.enabled()
    slow = reference_records(persons, s, sub)
    assert len(fast) == len(slow) > 30
    # records in the order outcome, group, target; the headline results keyed alike
    order = [(r["outcome"], r["subgroup"], r["group"], r["target"]) for r in slow]
    assert [(r["outcome"], r["subgroup"], r["group"], r["target"]) for r in fast] == order
    headline = [
        (r["outcome"], r["subgroup"], r["group"])
        for r in slow
        if r["target"] == "now_vs_later" and r["status"] == "estimated"
    ]
    assert list(results[sub["id"]]) == headline
    estimated = [r for r in fast if r["status"] == "estimated"]
    assert len(estimated) > 20
    assert {r["target"] for r in estimated} == {"now_vs_later", "vs_never"}
    assert any("x_plus_female" not in r["diagnostics"].get("covariates", []) for r in estimated)
    numbers_close(fast, slow)


def test_sensitivity_fits_from_one_decomposition_equal_the_two_regressions() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    months = np.eye(4)[rng.integers(0, 4, n)]
    X = np.column_stack(
        [months, rng.gamma(2.0, 9000.0, n), rng.integers(0, 2, n), rng.normal(size=n)]
    )
    names = ["month_1", "month_2", "month_3", "month_4", "earnings", "female", "x"]
    d = (rng.random(n) < 0.2).astype(float)
    y = 0.1 * d + 0.00001 * X[:, 4] + rng.normal(size=n)
    fit_y, fit_d = sensitivity.paired_fits(y, d, X, names)
    ref_y = sensitivity.ols(y, np.column_stack([d, X]), [sensitivity.TREATED, *names])
    ref_d = sensitivity.ols(d, X, names)
    for got, ref in ((fit_y, ref_y), (fit_d, ref_d)):
        assert got.names == ref.names and got.dof == ref.dof
        np.testing.assert_allclose(got.coef, ref.coef, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(got.se, ref.se, rtol=1e-8, atol=0)
        for name in got.names:
            assert got.t(name) == pytest.approx(ref.t(name), rel=1e-8)


def reference_balance(x, columns, d, weights, used, parts=None):
    """The balance table as it was: numpy's mean and var of row copies."""
    trt, ctrl = d == 1, d == 0
    xt, xc = x[_rows(used, trt)], x[_rows(used, ctrl)]
    sd = np.sqrt((xt.var(axis=0, ddof=1) + xc.var(axis=0, ddof=1)) / 2)
    sd = np.where(sd > 0, sd, np.nan)
    out = pd.DataFrame(
        {
            "mean_treated": xt.mean(axis=0),
            "mean_control": xc.mean(axis=0),
            "smd_raw": (xt.mean(axis=0) - xc.mean(axis=0)) / sd,
        },
        index=pd.Index(columns, name="covariate"),
    )
    if weights is not None:
        wc = weights[ctrl]
        mw = (wc[:, None] * xc).sum(axis=0) / wc.sum()
        out["mean_control_weighted"] = mw
        out["smd_weighted"] = (xt.mean(axis=0) - mw) / sd
    return out


def reference_max_smd(x, d, w, used, moments=None):
    trt, ctrl = used & (d == 1), used & (d == 0)
    if trt.sum() < 2 or ctrl.sum() < 2 or x.shape[1] == 0 or w[ctrl].sum() <= 0:
        return None
    xt, xc = x[trt], x[ctrl]
    sd = np.sqrt((xt.var(axis=0, ddof=1) + xc.var(axis=0, ddof=1)) / 2)
    mw = (w[ctrl, None] * xc).sum(axis=0) / w[ctrl].sum()
    smd = np.abs(xt.mean(axis=0) - mw)[sd > 0] / sd[sd > 0]
    return float(smd.max()) if len(smd) else None


def reference_cross_fitted_outcome(x, y, d, c, fold, folds, learner):
    """The outcome model fitted afresh on the controls of the other folds."""
    g0 = np.empty(len(y))
    weighted = bool(np.any(c != 1))
    for k in range(folds):
        test = fold == k
        if not test.any():
            continue
        train_ctrl = ~test & (d == 0) & (c > 0)
        om = copy.deepcopy(learner)
        if weighted:
            om.fit(x[train_ctrl], y[train_ctrl], sample_weight=c[train_ctrl])
        else:
            om.fit(x[train_ctrl], y[train_ctrl])
        g0[test] = np.asarray(om.predict(x[test]), dtype=float).ravel()
    return g0


def reference_selection_patches() -> dict:
    """The estimator's helpers as they were: the rank from the singular values,
    cluster codes from a group-by, the cluster sums of pandas, numpy's moments,
    a copy of the complete rows, one least-squares fit per cross-fitting fold."""
    return {
        "_full_column_rank": lambda a, gram=None: bool(np.linalg.matrix_rank(a) == a.shape[1]),
        "_cluster_codes": lambda v: (
            pd.DataFrame({"c": v}).groupby(["c"], sort=True, observed=True).ngroup().to_numpy()
        ),
        "cluster_variance": lambda phi, cl: (
            len(np.unique(cl)) / (len(np.unique(cl)) - 1)
            * float(np.sum(pd.Series(phi).groupby(cl).sum().to_numpy() ** 2)),
            len(np.unique(cl)),
        ),
        "_balance": reference_balance,
        "_complete_rows": effects._data.complete_cases,
        "_cross_fitted_outcome": reference_cross_fitted_outcome,
        "_max_smd": reference_max_smd,
    }


def stacked_sample(seed: int = 5) -> pd.DataFrame:
    """Stacked risk sets of 3000 persons over months 0..5 with covariates on
    very different scales, a constant covariate, an indicator that is constant
    within some strata, case weights with zeros and two outcomes."""
    rng = np.random.default_rng(seed)
    n = 3000
    persons = pd.DataFrame(
        {
            "pid": rng.permutation(n) * 7 + 11,
            "x": rng.normal(size=n),
            "earnings": np.round(rng.gamma(2.0, 8000.0, n), 2) * (rng.random(n) < 0.6),
            "female": (rng.random(n) < 0.5).astype(float),
            "age": rng.integers(18, 66, n).astype(float),
            "one": 1.0,
            "start": np.where(rng.random(n) < 0.5, rng.integers(0, 6, n), np.nan),
            "exit": np.where(rng.random(n) < 0.3, rng.integers(1, 8, n), np.nan),
        }
    )
    data = effects.dynamic_risk_set(persons, start="start", exit="exit", max_month=5)
    m = len(data)
    data["late"] = (data["elapsed_month"] >= 3).astype(float)  # constant within strata
    data["band"] = np.minimum(data["elapsed_month"], 4)
    data["w"] = np.where(rng.random(m) < 0.1, 0.0, rng.gamma(2.0, 0.5, m))
    base = 0.3 * data["x"] + 0.00002 * data["earnings"] + 0.01 * data["age"]
    data["y"] = base + 0.2 * data["treated"] + rng.normal(size=m)
    data["emp"] = (base + 0.3 * data["treated"] + rng.normal(size=m) > 0.5).astype(float)
    data.loc[rng.random(m) < 0.05, "emp"] = np.nan
    return data


@pytest.mark.parametrize("method", ["ra", "ipw", "aipw"])
def test_selection_on_observables_equals_the_direct_computation(method, monkeypatch) -> None:
    data = stacked_sample()
    covs = ["x", "earnings", "female", "age", "one", "late"]
    cases = [
        dict(outcome="y"),
        dict(outcome="emp", cluster="pid"),
        dict(outcome="y", cluster="pid", strata="band"),
        dict(outcome="emp", cluster="pid", strata="band", control_weights="w"),
        dict(outcome="y", strata="elapsed_month", control_weights="w"),
    ]
    fits = []
    for kw in cases:
        with _memo.disabled():
            fits.append(
                sel.selection_on_observables(
                    data, treatment="treated", covariates=covs, method=method, **kw
                )
            )
    with monkeypatch.context() as m:
        for name, ref in reference_selection_patches().items():
            m.setattr(sel, name, ref)
        for kw, fast in zip(cases, fits, strict=True):
            with _memo.disabled():
                slow = sel.selection_on_observables(
                    data, treatment="treated", covariates=covs, method=method, **kw
                )
            assert fast.estimate == pytest.approx(slow.estimate, rel=1e-8, abs=1e-10)
            assert fast.std_error == pytest.approx(slow.std_error, rel=1e-8)
            assert fast.n_clusters == slow.n_clusters and fast.nobs == slow.nobs
            numbers_close(fast.diagnostics, slow.diagnostics)
            pd.testing.assert_frame_equal(fast.balance, slow.balance, rtol=1e-8, atol=1e-10)
            if slow.strata is not None:
                pd.testing.assert_frame_equal(fast.strata, slow.strata, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(fast.influence, slow.influence, rtol=1e-8, atol=1e-12)
    assert fits[3].strata is not None and fits[3].n_clusters > 1000


def reference_risk_set(data, *, start, exit, max_month, min_month=0):
    """The stacked risk sets as they were built: one copied block per month."""
    s = data[start].to_numpy(dtype=float)
    e = data[exit].to_numpy(dtype=float)
    blocks = []
    for u in range(int(min_month), int(max_month) + 1):
        at_risk = (np.isnan(e) | (e > u)) & (np.isnan(s) | (s >= u))
        block = data.loc[at_risk].copy()
        block["elapsed_month"] = u
        block["treated"] = (s[at_risk] == u).astype(int)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def test_risk_sets_taken_in_one_go_equal_the_blocks() -> None:
    persons = world().set_index(pd.RangeIndex(5, 2505))
    rng = np.random.default_rng(2)
    persons["exit"] = np.where(
        rng.random(len(persons)) < 0.4, rng.integers(1, 9, len(persons)), np.nan
    )
    persons["education"] = persons["education"].astype("category")
    for lo, hi in ((0, 6), (2, 4), (3, 3)):
        kw = dict(start="instrument_elapsed", exit="exit", max_month=hi, min_month=lo)
        got = effects.dynamic_risk_set(persons, **kw)
        pd.testing.assert_frame_equal(got, reference_risk_set(persons, **kw))
        assert len(got) > 1000


def test_varying_columns_as_nunique_says() -> None:
    frame = world()
    frame["nan_and_one"] = np.where(np.arange(len(frame)) % 3 == 0, np.nan, 1.0)
    frame["all_nan"] = np.nan
    frame["zeros"] = np.zeros(len(frame))
    frame["signed_zero"] = np.where(np.arange(len(frame)) % 2 == 0, -0.0, 0.0)
    frame["flag"] = frame["female"] == 1
    frame["one_flag"] = True
    frame["cat"] = frame["education"].astype("category")
    for col in frame.columns:
        for part in (frame, frame.iloc[:1], frame.iloc[:0]):
            assert soo._varies(part[col]) == (part[col].nunique(dropna=True) > 1), col


@pytest.mark.parametrize("method", ["ra", "ipw", "aipw"])
def test_outcomes_in_one_pass_equal_one_outcome_at_a_time(method) -> None:
    """The multi-outcome fast path gives, for each outcome, the result of the
    one-outcome reference: outcomes with the same complete rows (y, y2) and
    with fewer (emp), shared or per-outcome case weights."""
    data = stacked_sample()
    rng = np.random.default_rng(8)
    data["y2"] = 0.5 * data["y"] + rng.normal(size=len(data))
    data["w2"] = np.where(rng.random(len(data)) < 0.2, 0.0, rng.gamma(3.0, 0.4, len(data)))
    covs = ["x", "earnings", "female", "age", "one", "late"]
    outcomes = ["y", "emp", "y2"]
    cases = [
        dict(),
        dict(cluster="pid", strata="band"),
        dict(cluster="pid", strata="band", control_weights="w"),
        dict(strata="elapsed_month", control_weights={"y": "w", "emp": None, "y2": "w2"}),
    ]
    for kw in cases:
        weights = kw.pop("control_weights", None)
        with _memo.disabled():
            fast = sel_outcomes.selection_on_observables_outcomes(
                data, outcomes=outcomes, treatment="treated", covariates=covs, method=method,
                folds=3, control_weights=weights, **kw
            )
        assert list(fast) == outcomes
        for o in outcomes:
            w = weights.get(o) if isinstance(weights, dict) else weights
            with _memo.disabled():
                slow = sel.selection_on_observables(
                    data, outcome=o, treatment="treated", covariates=covs, method=method,
                    folds=3, control_weights=w, **kw
                )
            got = fast[o]
            assert got.outcome == o and got.method == method
            assert got.estimate == pytest.approx(slow.estimate, rel=1e-8, abs=1e-10)
            assert got.std_error == pytest.approx(slow.std_error, rel=1e-8)
            assert got.n_clusters == slow.n_clusters and got.nobs == slow.nobs
            numbers_close(got.diagnostics, slow.diagnostics)
            pd.testing.assert_frame_equal(got.balance, slow.balance, rtol=1e-8, atol=1e-10)
            if slow.strata is not None:
                pd.testing.assert_frame_equal(got.strata, slow.strata, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(got.influence, slow.influence, rtol=1e-8, atol=1e-12)
            assert got.sample_index.equals(slow.sample_index)
    # emp has missing values: fitted on its own rows
    assert fast["emp"].diagnostics["n_missing_dropped"] > 0
    assert fast["y"].diagnostics["n_missing_dropped"] == 0


def test_design_fits_all_outcomes_as_one_at_a_time() -> None:
    """fit_selection_outcomes (both estimands) equals fit_selection per outcome,
    and a frame where one fold lacks treated falls back to one at a time."""
    persons = world()
    s = settings()
    design = designs.get("selection_on_observables")
    inputs = designs.Inputs(persons=persons, city={}, effects=s, person_months=month_panel(persons))
    data = design.prepare(inputs, "training")
    outcomes = list(s["outcomes"])
    for target in soo.TARGETS:
        fast = soo.fit_selection_outcomes(data, outcomes, s, target=target)
        for o in outcomes:
            slow = soo.fit_selection(data, o, s, target=target)
            assert fast[o].estimate == pytest.approx(slow.estimate, rel=1e-8, abs=1e-10)
            assert fast[o].std_error == pytest.approx(slow.std_error, rel=1e-8)
            numbers_close(fast[o].diagnostics, slow.diagnostics)
    # one starter: the fold holding them leaves none to train on, so each outcome
    # falls back to regression adjustment, one at a time
    month1 = data[data["elapsed_month"] == 1]
    small = pd.concat([month1[month1["treated"] == 0].head(300),
                       month1[month1["treated"] == 1].head(1)]).reset_index(drop=True)
    with pytest.raises(ValueError, match="cross-fitting fold"):
        soo.fit_selection_outcomes(small, outcomes, s)
    got = design.estimate_outcomes(small, outcomes, s)
    for o in outcomes:
        ref = design.estimate(small, o, s)
        assert got[o].estimate == pytest.approx(ref.estimate, rel=1e-8, abs=1e-10)
        assert got[o].diagnostics["fallback"] == ref.diagnostics["fallback"]
        assert ref.diagnostics["fallback"].startswith("aipw not estimable")


def test_cell_labels_equal_the_row_by_row_join() -> None:
    from reintegration.designs.iv import cell_labels

    df = pd.DataFrame(
        {
            "team": ["a", "b", None, "c"],
            "inflow_quarter": pd.PeriodIndex(["2020Q1", "2020Q2", "2020Q3", "2020Q4"], freq="Q"),
            "n": [1, 2, 3, np.nan],
            "cat": pd.Categorical(["x", "y", "x", None]),
            "dt": pd.to_datetime(["2020-01-01", None, "2020-03-01", "2020-04-01"]),
            "ni": pd.array([1, None, 3, 4], dtype="Int8"),
            "s": pd.array(["u", None, "w", "z"], dtype="string"),
        },
        index=[3, 1, 7, 5],
    )
    for cells in (("team", "inflow_quarter"), ("team", "n", "cat", "dt", "ni", "s"), ("n",)):
        ref = df[list(cells)].astype(str).agg("|".join, axis=1)
        pd.testing.assert_series_equal(cell_labels(df, cells), ref)
    assert cell_labels(df, ("team", "inflow_quarter")).iloc[0] == "a|2020Q1"


def test_the_prepared_frame_is_built_once_per_panel_objects() -> None:
    """The selection design's prepared frame is shared by every caller with the
    same persons and person_months objects (the estimates, the sensitivity
    analysis and the obligations of the effects step), built again for other
    panel objects or other instruments, and equal to a fresh build."""
    from reintegration.effects import _memo

    persons = world()
    s = settings()
    design = designs.get("selection_on_observables")
    months = month_panel(persons)
    first = design.prepare(designs.Inputs(persons=persons, city={}, effects=s,
                                          person_months=months), "training")
    again = design.prepare(designs.Inputs(persons=persons, city={}, effects=s,
                                          person_months=months), "training")
    assert again is first
    other_months = design.prepare(designs.Inputs(persons=persons, city={}, effects=s,
                                                 person_months=months.copy()), "training")
    assert other_months is not first
    pd.testing.assert_frame_equal(other_months, first)
    other = design.prepare(designs.Inputs(persons=persons, city={}, effects=s,
                                          person_months=months), "job_coaching")
    assert other is not first and not other.equals(first)
    with _memo.disabled():
        fresh = design.prepare(designs.Inputs(persons=persons, city={}, effects=s,
                                              person_months=months), "training")
    assert fresh is not first
    pd.testing.assert_frame_equal(fresh, first)

"""The fast paths of the event study and its randomisation test give the
numbers of the computation they replace, bit for bit.

The randomisation test refits the event study for every assignment of the
adoption dates, and the placebo check and the Monte Carlo harness run
hundreds of event studies. The fast paths: entity x period cells by numpy
instead of pandas' groupby (:mod:`reintegration.effects._cells`, pandas'
Kahan-summed means reproduced), every assignment's rows, columns and weights
built at once (:mod:`reintegration.effects._sa_batch`), the triangular
inverses by LAPACK directly. The computation as it was is kept here as
reference functions (one assignment at a time, pandas' groupby, scipy's
``solve_triangular``) and compared on fixed small panels with several seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg

from reintegration.effects import (
    EffectInputError,
    _cells,
    _memo,
    _sa,
    _sa_batch,
    event_study,
    staggered,
)
from reintegration.effects import randomization as ri
from reintegration.effects._sa import Aggregation, Assignment, Interactions


def panel(seed: int, *, teams: int = 7, periods: int = 16, binary: bool = False) -> pd.DataFrame:
    """Clients of ``teams`` teams by period (uneven cells), four adopting at
    random periods, the others never; a float or a 0/1 outcome with team and
    period effects and an effect from adoption on."""
    rng = np.random.default_rng(seed)
    size = rng.integers(5, 30, (teams, periods))
    team = np.repeat(np.repeat(np.arange(teams), periods), size.reshape(-1))
    period = np.repeat(np.tile(np.arange(periods), teams), size.reshape(-1))
    dates = np.full(teams, np.nan)
    dates[rng.choice(teams, 4, replace=False)] = rng.choice(np.arange(4, 12), 4)
    start = dates[team]
    exposed = np.nan_to_num(period - start, nan=-1) >= 0
    signal = 0.1 * team + 0.02 * period + 0.3 * exposed + rng.normal(0, 1, len(team))
    y = (signal > 0.5).astype(float) if binary else signal
    order = rng.permutation(len(team))  # rows in no particular order
    return pd.DataFrame({"team": [f"t{k}" for k in team[order]], "period": period[order],
                         "start": start[order], "y": y[order],
                         "takeup": (rng.random(len(team)) < 0.3 + 0.4 * exposed[order]) * 1.0})


KW = {"outcome": "y", "entity": "team", "time": "period", "treatment_start": "start",
      "leads": 3, "lags": 4, "collapse": True, "wild_bootstrap": 0}


# --- the computation as it was -------------------------------------------------------------


def reference_interactions(a: Assignment, reference: int) -> Interactions:
    has_dummy = a.treated & (a.binned != reference)
    pairs = np.column_stack([a.cohort[has_dummy], a.binned[has_dummy]]).astype(float)
    uniq, column = np.unique(pairs.reshape(-1, 2), axis=0, return_inverse=True)
    return Interactions(
        keys=[(float(c), float(l_)) for c, l_ in uniq],
        has_dummy=has_dummy,
        column=column.reshape(-1).astype(int),
        cohort_of=uniq[:, 0].copy(),
        et_of=uniq[:, 1].copy(),
    )


def reference_aggregate(
    a: Assignment,
    x: Interactions,
    weights: np.ndarray,
    *,
    leads: int,
    lags: int,
    reference: int,
    post_weights: str,
    baseline: str,
) -> Aggregation:
    """Interaction weights of the event-time path and of the post-period
    effect (see ``event_study`` for the formulas).

    Weights count, for a binned endpoint, only the observations at its own
    event time (``lags`` or ``-leads``), not the binned periods beyond it:
    in the cohort shares of the path, in the post-period effect and in the
    ``pre_mean`` baseline (a cohort seen only beyond the endpoint falls back
    on its binned count)."""
    n_el = np.bincount(x.column, weights=weights[x.has_dummy], minlength=len(x.keys))
    n_own = np.bincount(x.column, weights=(weights * a.exact)[x.has_dummy], minlength=len(x.keys))
    window = [l_ for l_ in range(-leads, lags + 1) if l_ != reference]
    shown = [l_ for l_ in window if (x.et_of == l_).any()]
    wmat = np.zeros((len(shown), len(x.keys)))
    # per event time shown (row), the cohorts' shares of its own observations
    # (of the binned ones when it has none of its own)
    row = np.searchsorted(np.array(shown, dtype=float), x.et_of)
    cols = np.flatnonzero(np.isin(x.et_of, shown))
    row = row[cols]
    own_total = np.bincount(row, weights=n_own[cols], minlength=len(shown))
    count = np.where(own_total[row] > 0, n_own[cols], n_el[cols])
    wmat[row, cols] = count / np.bincount(row, weights=count, minlength=len(shown))[row]
    post = (x.et_of >= 0) & (x.et_of <= lags)
    if not post.any():
        raise EffectInputError("no treated observations at or after adoption within the window")
    if post_weights == "observations":
        w = np.where(post, n_own, 0.0)
        if not w.sum() > 0:
            raise EffectInputError("no treated observations at event times 0 to lags")
        w /= w.sum()
    else:
        # each event time 0..lags shown gets 1 / (number shown), split over
        # the cohorts by their shares at that event time
        rows_post = [i for i, l_ in enumerate(shown) if l_ >= 0]
        w = wmat[rows_post].sum(axis=0) / len(rows_post)
    if baseline == "pre_mean":
        # subtract each cohort's observation-weighted mean of its pre-period
        # coefficients (the reference, with coefficient zero, in the weights;
        # a binned first lead weighted by its own event time's observations)
        pre_k = (x.et_of < 0) & (x.et_of >= -leads)
        cohorts, col_cohort = np.unique(x.cohort_of, return_inverse=True)
        share = np.bincount(col_cohort, weights=np.where(post, w, 0.0), minlength=len(cohorts))
        at_ref = (a.binned == reference) & a.treated & np.isin(a.cohort, cohorts)
        n_ref = np.bincount(
            np.searchsorted(cohorts, a.cohort[at_ref]),
            weights=weights[at_ref],
            minlength=len(cohorts),
        )
        denom = n_ref + np.bincount(
            col_cohort, weights=np.where(pre_k, n_own, 0.0), minlength=len(cohorts)
        )
        ok = (share != 0) & (denom > 0)
        factor = np.divide(share, denom, out=np.zeros_like(share), where=ok)
        w = np.where(pre_k, w - factor[col_cohort] * n_own, w)
    return Aggregation(n_el=n_el, shown=shown, wmat=wmat, post=w)


def reference_inverse(a: np.ndarray, definite: bool = False) -> np.ndarray | None:
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None if definite else np.linalg.pinv(a)
    if definite and np.diag(low).min() ** 2 < 1e-10 * np.diag(a).max():
        return None
    inv_low = scipy.linalg.solve_triangular(low, np.eye(len(a)), lower=True)
    return inv_low.T @ inv_low


def reference_fit(cells: ri.Cells, spec: ri.Spec, start: np.ndarray, pre_column: int) -> tuple:
    """One assignment's refit, as the randomisation test computed it."""
    s = spec
    a = _sa.assign(cells.period, start[cells.entity], leads=s.leads, lags=s.lags,
                   reference=s.reference, bin=s.bin, control_cohort=s.control_cohort)
    g = int(cells.entity.max()) + 1
    periods, pcode = np.unique(cells.period, return_inverse=True)
    n = len(cells.period)
    fe = np.zeros((n, g + len(periods)))
    fe[np.arange(n), cells.entity] = 1.0
    fe[np.arange(n), g + pcode] = 1.0
    cl = np.zeros((n, int(cells.cluster.max()) + 1))
    cl[np.arange(n), cells.cluster] = 1.0
    f = fe[a.keep]
    f = f[:, f.any(axis=0)]
    w = cells.weight[a.keep]
    fw = f[:, :-1] * w[:, None]
    inner = reference_inverse(f[:, :-1].T @ fw, definite=True)
    if inner is None:
        fw = f * w[:, None]
        inner = np.linalg.pinv(f.T @ fw)
    else:
        f = f[:, :-1]
    inter = reference_interactions(a, s.reference)
    agg = reference_aggregate(a, inter, w, leads=s.leads, lags=s.lags, reference=s.reference,
                              post_weights=s.post_weights, baseline=s.baseline)
    x = inter.matrix()
    xt = x - f @ (inner @ (fw.T @ x))
    xw = xt * w[:, None]
    b = reference_inverse(xt.T @ xw)
    lever = xw @ (b @ agg.post)
    y = cells.y[a.keep]
    yt = y - f @ (inner @ (fw.T @ y))
    delta = b @ (xw.T @ yt)
    resid = yt - xt @ delta
    theta = agg.post @ delta
    contrib = cl[a.keep].T @ (lever[:, None] * resid)
    pre = agg.pre_rows
    stat = math.nan
    if pre:
        r = agg.wmat[pre]
        scores = cl[a.keep].T @ ((xw @ (b @ r.T)) * resid[:, [pre_column]])
        rb = r @ delta[:, pre_column]
        stat = float(rb @ np.linalg.pinv(scores.T @ scores) @ rb)
    return theta, contrib, stat


def reference_test(cells: ri.Cells, spec: ri.Spec, reps: int, seed: int) -> dict:
    """The statistics of the randomisation test, one assignment at a time."""
    rows, _, _ = ri.assignments(cells.start, reps, seed)
    out: dict[str, list] = {"theta_y": [], "theta_d": [], "c_y": [], "c_d": [], "pre_stat": []}
    for i, start in enumerate(rows):
        try:
            theta, contrib, stat = reference_fit(cells, spec, start, pre_column=2)
        except (EffectInputError, np.linalg.LinAlgError):
            assert i > 0
            continue
        out["theta_y"].append(theta[0])
        out["theta_d"].append(theta[1])
        out["c_y"].append(contrib[:, 0])
        out["c_d"].append(contrib[:, 1])
        out["pre_stat"].append(stat)
    return {k: np.array(v) for k, v in out.items()}


def reference_cells(sample: pd.DataFrame, t: np.ndarray, e: np.ndarray, *, outcome: str,
                    entity: str, path: dict[int, float], lags: int,
                    extra: tuple[str, ...] = ()) -> ri.Cells:
    """The randomisation test's cells by pandas' groupby, as they were built."""
    ent = sample.groupby([entity], sort=True, observed=True).ngroup().to_numpy()
    late = np.isfinite(e) & (e > t.max())
    rel = t - np.where(late, np.nan, e)
    exposed = np.nan_to_num(rel, nan=-1.0) >= 0
    binned = np.clip(np.nan_to_num(rel, nan=-1.0), None, lags).astype(int)
    removed = np.array([path.get(int(k), 0.0) for k in binned]) * exposed
    y = sample[outcome].to_numpy(dtype=float)
    frame = pd.DataFrame({"g": ent, "t": t, "c": ent, "y": y, "d": exposed.astype(float),
                          "adj": y - removed, "w": 1.0})
    names = [f"x{i}" for i in range(len(extra))]
    for name, col in zip(names, extra, strict=True):
        frame[name] = sample[col].to_numpy(dtype=float)
    cells = frame.groupby(["g", "t"], sort=True).agg(
        y=("y", "mean"), d=("d", "mean"), adj=("adj", "mean"), c=("c", "first"),
        w=("w", "sum"), **{name: (name, "mean") for name in names})
    start = pd.Series(e).groupby(ent).first().sort_index().to_numpy(dtype=float)
    return ri.Cells(entity=cells.index.get_level_values("g").to_numpy(),
                    period=cells.index.get_level_values("t").to_numpy(dtype=float),
                    weight=cells["w"].to_numpy(), y=cells[["y", "d", "adj", *names]].to_numpy(),
                    cluster=cells["c"].to_numpy(), start=start)


# --- the comparisons -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_means_are_pandas_groupby_means_bit_for_bit(seed):
    """Kahan-summed means, as pandas' groupby computes them, for float
    columns; whole numbers by an exact sum. A plain sum differs in the last
    bits for some cells, so the comparison can fail."""
    rng = np.random.default_rng(seed)
    n = 6000
    g = rng.integers(0, 7, n)
    t = rng.integers(50, 70, n).astype(float)
    values = np.column_stack([rng.normal(size=n) * 1e3, rng.integers(0, 2, n),
                              rng.integers(0, 2, n) - 0.1 * rng.integers(1, 4, n)])
    cell, first = _cells.cell_codes(g, t)
    got = _cells.cell_means(values, cell, len(first))
    frame = pd.DataFrame({"g": g, "t": t, "a": values[:, 0], "b": values[:, 1],
                          "c": values[:, 2]})
    want = frame.groupby(["g", "t"], sort=True)[["a", "b", "c"]].mean()
    np.testing.assert_array_equal(got, want.to_numpy())
    np.testing.assert_array_equal(g[first], want.index.get_level_values("g"))
    np.testing.assert_array_equal(t[first], want.index.get_level_values("t"))
    plain = np.bincount(cell, weights=values[:, 0]) / np.bincount(cell)
    assert (plain != got[:, 0]).any()
    assert _cells.cell_means(np.where(values > 1e3, np.nan, values), cell, len(first)) is None


@pytest.mark.parametrize("seed", [0, 3])
def test_interaction_columns_equal_the_unique_over_rows(seed):
    rng = np.random.default_rng(seed)
    t = np.tile(np.arange(10.0, 30.0), 6)
    e = np.repeat(rng.choice([12.0, 15.0, 18.0, np.nan], 6), 20)
    a = _sa.assign(t, e, leads=3, lags=5, reference=-1, bin="endpoints", control_cohort="auto")
    got, want = _sa.interactions(a, -1), reference_interactions(a, -1)
    assert got.keys == want.keys
    for name in ("has_dummy", "column", "cohort_of", "et_of"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    half = dataclasses.replace(a, binned=a.binned + 0.5)  # not whole: the unique over rows
    assert _sa.interactions(half, -1).keys == reference_interactions(half, -1).keys


def small_cells(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells of 6 entities over 14 periods, some missing, sizes 1 to 40; and
    start dates (one after the last period, two never)."""
    rng = np.random.default_rng(seed)
    ent, per = np.meshgrid(np.arange(6), np.arange(100.0, 114.0), indexing="ij")
    present = rng.random(ent.shape) < 0.85
    present[:, [0, -1]] = True
    weight = rng.integers(1, 41, present.sum()).astype(float)
    start = np.array([103.0, 106.0, 106.0, 120.0, np.nan, np.nan])
    return ent[present], per[present], weight, start


SPECS = [ri.Spec(leads=3, lags=4, reference=ref, bin=b, control_cohort=c, post_weights=p,
                 baseline=base)
         for ref, b, c, p, base in itertools.product(
             (-1, -2), ("trim", "endpoints"), ("auto", "never", "last"),
             ("equal", "observations"), ("reference", "pre_mean"))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_rows_columns_and_weights_equal_one_assignment_at_a_time(seed):
    """For every specification and assignment (with and without never-treated
    entities): the same rows, indicator matrix and weights, bit for bit; and
    None exactly where the one-at-a-time rules raise."""
    ent, per, weight, start = small_cells(seed)
    rows = np.vstack([ri.assignments(start, 40, seed)[0],
                      ri.assignments(np.array([103.0, 106.0, 106.0, 109.0, 104.0, 111.0]),
                                     20, seed)[0]])
    n_built = n_raised = 0
    for spec in SPECS:
        found = _sa_batch.structures(per, ent, weight, rows, **dataclasses.asdict(spec))
        for start_a, got in zip(rows, found, strict=True):
            try:
                a = _sa.assign(per, start_a[ent], leads=spec.leads, lags=spec.lags,
                               reference=spec.reference, bin=spec.bin,
                               control_cohort=spec.control_cohort)
                inter = reference_interactions(a, spec.reference)
                agg = reference_aggregate(a, inter, weight[a.keep], leads=spec.leads,
                                          lags=spec.lags, reference=spec.reference,
                                          post_weights=spec.post_weights,
                                          baseline=spec.baseline)
            except EffectInputError:
                assert got is None
                n_raised += 1
                continue
            n_built += 1
            assert got is not None
            np.testing.assert_array_equal(got.keep, a.keep)
            np.testing.assert_array_equal(got.matrix(), inter.matrix())
            np.testing.assert_array_equal(got.post, agg.post)
            pre = agg.pre_rows
            if pre:
                np.testing.assert_array_equal(got.wmat_pre, agg.wmat[pre])
            else:
                assert got.wmat_pre is None
    assert n_built > 1000 and n_raised > 50
    # cell sizes that are not whole numbers: every assignment left to _sa
    assert _sa_batch.structures(per, ent, weight + 0.5, rows, **dataclasses.asdict(SPECS[0])) \
        == [None] * len(rows)


OPTIONS = [{"baseline": "pre_mean"}, {"statistic": "raw"},
           {"bin": "endpoints", "lags": 2, "post_weights": "observations"},
           {"control_cohort": "last", "reference": -2}]


@pytest.mark.parametrize(("seed", "options"), list(zip([0, 1, 2, 3], OPTIONS, strict=True)))
def test_randomization_statistics_equal_the_reference_bit_for_bit(seed, options):
    """The randomisation test with every fast path (numpy cells, batched
    designs, shared designs, LAPACK inverses) against the refits one
    assignment at a time as they were, and against the batching turned off:
    every statistic, p-value and interval the same floats."""
    df = panel(seed)
    kw = {**KW, **options}
    res = event_study(df, **kw, permutations=99, seed=seed)
    test = res.randomization
    # the cells as they were built, from the estimated path
    sample = df.sort_index()
    t = sample["period"].to_numpy(dtype=float)
    e = sample["start"].to_numpy(dtype=float)
    path = {int(k): float(v) for k, v in res.event_time["estimate"].items() if k >= 0}
    cells = reference_cells(sample, t, e, outcome="y", entity="team", path=path,
                            lags=kw["lags"])
    for name in ("entity", "period", "weight", "y", "cluster", "start"):
        np.testing.assert_array_equal(getattr(test.cells, name), getattr(cells, name))
    want = reference_test(cells, test.spec, 99, seed)
    for name, values in want.items():
        np.testing.assert_array_equal(getattr(test, name), values)
    ri.BATCHED = False
    try:
        with _memo.disabled():
            alone = event_study(df, **kw, permutations=99, seed=seed).randomization
    finally:
        ri.BATCHED = True
    for name in want:
        np.testing.assert_array_equal(getattr(test, name), getattr(alone, name))
    assert test.pvalue() == alone.pvalue() and test.pretrend_pvalue == alone.pretrend_pvalue
    assert test.conf_int() == alone.conf_int()
    assert np.isfinite(test.conf_int()).all() and test.n_assignments == 100


@pytest.mark.parametrize(("seed", "binary"), [(0, False), (1, True), (2, False)])
def test_event_study_with_numpy_cells_equals_pandas_groupby(seed, binary, monkeypatch):
    """The event study (collapsed to cells, with its randomisation test and a
    take-up column) the same floats whether its cells come from numpy or, as
    before, from pandas' groupby."""
    df = panel(seed, binary=binary)
    kw = {**KW, "baseline": "pre_mean", "takeup": "takeup"}
    fast = event_study(df, **kw, permutations=49, seed=seed)
    monkeypatch.setattr(staggered._cells, "cell_codes", lambda *args: None)
    with _memo.disabled():
        slow = event_study(df, **kw, permutations=49, seed=seed)
    assert fast.estimate == slow.estimate and fast.std_error == slow.std_error
    pd.testing.assert_frame_equal(fast.event_time, slow.event_time, check_exact=True)
    pd.testing.assert_frame_equal(fast.cohort_effects, slow.cohort_effects, check_exact=True)
    pd.testing.assert_frame_equal(fast.event_time_cov, slow.event_time_cov, check_exact=True)
    for name in ("theta_y", "theta_d", "c_y", "c_d", "pre_stat", "theta_x", "c_x"):
        np.testing.assert_array_equal(getattr(fast.randomization, name),
                                      getattr(slow.randomization, name))
    np.testing.assert_array_equal(fast.randomization.cells.y, slow.randomization.cells.y)
    assert fast.diagnostics["pvalue_randomization"] == slow.diagnostics["pvalue_randomization"]


def test_pretrend_statistics_from_stacked_pseudo_inverses_equal_one_at_a_time():
    """One pinv of a stack of matrices gives each matrix's pinv bit for bit,
    singular ones included; a matrix whose pinv fails is None, and the
    others are unaffected."""
    rng = np.random.default_rng(4)
    parts: list[tuple | None] = []
    for k in range(60):
        scores = rng.normal(size=(6, 3)) * 10.0 ** rng.integers(-4, 4)
        if k % 7 == 0:
            scores[:, 2] = scores[:, 0] - scores[:, 1]  # singular
        parts.append((scores.T @ scores, rng.normal(size=3)))
        if k % 11 == 0:
            parts.append(None)
            parts.append((np.eye(2) * (k + 1.0), rng.normal(size=2)))
    got = ri._wald_stats(parts)
    for part, stat in zip(parts, got, strict=True):
        if part is None:
            assert math.isnan(stat)
        else:
            assert stat == float(part[1] @ np.linalg.pinv(part[0]) @ part[1])
    broken = [*parts[:3], (np.full((3, 3), np.nan), np.ones(3)), *parts[3:6]]
    again = ri._wald_stats(broken)
    assert again[3] is None and again[:3] == got[:3] and again[4:] == got[3:6]


@pytest.mark.parametrize("entity", [np.array([0, 0, 1, 1]), np.array(["a", "a", "b", "b"])])
def test_collapse_refuses_a_cluster_that_varies_within_a_cell(entity):
    """Both routes (numpy for integer entities, pandas otherwise) name the columns."""
    t = np.array([1.0, 1.0, 1.0, 2.0])
    args = [np.array([0.0, 1.0, 0.0, 1.0]), np.zeros(4), np.zeros(4), np.zeros(4),
            np.zeros(4)]
    with pytest.raises(EffectInputError, match="cluster column 'region' to be constant within "
                       "each 'team' x 'month' cell"):
        _cells.collapse(entity, t, np.array([5, 6, 7, 7]), *args, names=("region", "team", "month"))
    rows = _cells.collapse(entity, t, np.array([5, 5, 7, 7]), *args,
                           names=("region", "team", "month"))
    assert list(rows[6]) == [2.0, 1.0, 1.0] and list(rows[0]) == [0.5, 0.0, 1.0]

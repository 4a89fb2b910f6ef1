"""The design matrices of the selection-on-observables strata and of the
sensitivity analysis, written column by column, equal those of the
computation they replace, bit for bit.

The collinearity check (``independent_columns``) used to copy its frame
row-major (``DataFrame.to_numpy``) and then again beside a constant
(``numpy.column_stack``); the sensitivity analysis built its indicators with
``pandas.get_dummies``, joined them to the covariates with ``pandas.concat``
and copied every column of the stacked risk sets for the rows with the
outcome (three times per outcome in the validation). The computation as it
was is kept here as reference functions and compared on fixed data with
indicators that repeat each other, constant columns, integer, boolean and
float columns, and missing outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.designs import selection as soo
from reintegration.phase2 import sensitivity as sa


def reference_independent_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """independent_columns as it was: one row-major copy, a constant beside it."""
    columns = list(columns)
    if not columns:
        return []
    x = np.column_stack([np.ones(len(frame)), frame[columns].to_numpy(dtype=float)])
    gram = x.T @ x
    keep: list[int] = []
    for j in range(1, len(columns) + 1):
        idx = [0, *keep, j]
        if soo._full_rank(gram[np.ix_(idx, idx)], x, idx):
            keep.append(j)
    return [columns[j - 1] for j in keep]


def reference_design(data: pd.DataFrame, covariates: list[str]) -> tuple[np.ndarray, list[str]]:
    """sensitivity._design as it was (get_dummies, concat, column_stack)."""
    months = pd.get_dummies(data[sa.MONTH].astype(int), prefix="month", dtype=float)
    cols = [c for c in covariates if c in data and data[c].astype(float).std() > 0]
    with_months = pd.concat([months.iloc[:, 1:], data[cols].astype(float)], axis=1)
    cols = [c for c in reference_independent_columns(with_months, [*months.columns[1:], *cols])
            if c in cols]
    X = np.column_stack([months.to_numpy(), data[cols].to_numpy(dtype=float)])
    return X, [*months.columns, *cols]


def world(n: int, seed: int) -> pd.DataFrame:
    """Stacked-like rows: elapsed months, int8 indicators of which one repeats
    two others (and one is constant), a boolean, floats on very different
    scales, a hidden z, starts and an outcome missing for some rows."""
    rng = np.random.default_rng(seed)
    month = rng.integers(0, 9, n)
    a = (rng.random(n) < 0.3).astype(np.int8)
    b = ((rng.random(n) < 0.4) & (a == 0)).astype(np.int8)
    x = rng.standard_normal(n)
    earnings = np.round(rng.gamma(2.0, 8000.0, n), 2)
    z = rng.standard_normal(n)
    d = (0.4 * x + 0.3 * a + 0.5 * z + rng.standard_normal(n) > 1.4).astype(np.int8)
    y = 0.1 * d + 0.4 * x - 0.2 * b + 0.5 * z + rng.standard_normal(n)
    return pd.DataFrame({
        "elapsed_month": month, "a": a, "b": b, "a_or_b": (a + b).astype(np.int8),
        "flag": rng.random(n) < 0.5, "constant": np.ones(n, dtype=np.int8), "x": x,
        "earnings": earnings, "x_twice": 2.0 * x, "z": z, "treated": d,
        "y": np.where(rng.random(n) < 0.1, np.nan, y),
        "other": rng.standard_normal(n)})


COVARIATES = ["a", "b", "a_or_b", "flag", "constant", "x", "earnings", "x_twice"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_collinearity_check_keeps_the_columns_of_the_row_major_computation(seed):
    data = world(3_000, seed)
    got = soo.independent_columns(data, COVARIATES)
    assert got == reference_independent_columns(data, COVARIATES)
    # the repeated indicator, the constant and the scaled copy are left out
    assert got == ["a", "b", "flag", "x", "earnings"]
    for m in (3, 40, 400):  # small subgroups, where columns become constant
        part = data.iloc[:m]
        assert soo.independent_columns(part, COVARIATES) == \
            reference_independent_columns(part, COVARIATES)
    # a frame with a nullable column goes through the matrix of the frame
    nullable = data.astype({"x": "Float64"})
    assert soo.independent_columns(nullable, COVARIATES) == got
    assert soo.independent_columns(data, []) == []


def test_the_arrays_written_column_by_column_equal_the_frames_values():
    data = world(500, 4)
    arrays = soo._float_columns(data, COVARIATES)
    whole = data[COVARIATES].to_numpy(dtype=float)
    for j, values in enumerate(arrays):
        assert np.array_equal(np.asarray(values, dtype=float), whole[:, j])
    assert soo.independent_arrays(len(data), arrays) == [0, 1, 3, 5, 6]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sensitivity_design_equals_the_get_dummies_computation(seed):
    data = world(4_000, seed)
    sample = data[data["y"].notna()]
    X, names = sa._design(sample, COVARIATES)
    ref_X, ref_names = reference_design(sample, COVARIATES)
    assert names == ref_names
    assert names[:9] == [f"month_{u}" for u in range(9)]
    assert names[9:] == ["a", "b", "flag", "x", "earnings"]
    assert X.dtype == ref_X.dtype and X.shape == ref_X.shape
    assert X.flags.f_contiguous == ref_X.flags.f_contiguous
    assert np.array_equal(X, ref_X)
    # months missing from a subgroup: the indicators are those of the months present
    few = sample[sample["elapsed_month"].isin([2, 5, 7])]
    X, names = sa._design(few, COVARIATES)
    ref_X, ref_names = reference_design(few, COVARIATES)
    assert names == ref_names and names[:3] == ["month_2", "month_5", "month_7"]
    assert np.array_equal(X, ref_X)


def test_the_analysis_reads_only_the_columns_it_needs_with_the_same_numbers():
    data = world(6_000, 5)
    sample = data[data["y"].notna()]
    reference = reference_design(sample, COVARIATES)
    own = sa.analyse(data, "y", COVARIATES, benchmarks=["x", "a"])
    given = sa.analyse(data, "y", COVARIATES, benchmarks=["x", "a"], design=reference)
    assert (own.estimate, own.se, own.dof) == (given.estimate, given.se, given.dof)
    pd.testing.assert_frame_equal(own.benchmarks, given.benchmarks, check_exact=True)
    assert sa.at_confounder(data, "y", COVARIATES, "z") == \
        sa.at_confounder(data, "y", COVARIATES, "z", design=reference)
    rows = sa._rows_with(data, "y", ["treated", "y", "missing", "treated"])
    assert list(rows.columns) == ["treated", "y"]
    assert rows.index.equals(sample.index)


def reference_risk_set(data: pd.DataFrame, start: str, exit: str, max_month: int,
                       min_month: int) -> pd.DataFrame:
    """dynamic_risk_set's stacking as it was: the rows taken, then copied to number them."""
    s, e = data[start].to_numpy(dtype=float), data[exit].to_numpy(dtype=float)
    rows = [np.flatnonzero((np.isnan(e) | (e > u)) & (np.isnan(s) | (s >= u)))
            for u in range(min_month, max_month + 1)]
    take = np.concatenate(rows)
    u_row = np.concatenate([np.full(len(r), u, dtype=int)
                            for u, r in zip(range(min_month, max_month + 1), rows, strict=True)])
    stacked = data.take(take).reset_index(drop=True)
    stacked["elapsed_month"] = u_row
    stacked["treated"] = (s[take] == u_row).astype(int)
    return stacked


def blocks(frame: pd.DataFrame) -> list[tuple]:
    """The frame's storage: each block's dtype, columns and memory layout."""
    return sorted((str(b.dtype), b.mgr_locs.as_array.tolist(),
                   getattr(b.values, "flags", None) is not None and b.values.flags.c_contiguous)
                  for b in frame._mgr.blocks)


def test_the_risk_sets_numbered_without_a_copy_are_the_prepared_frame_as_before():
    from reintegration.effects import dynamic_risk_set

    rng = np.random.default_rng(9)
    n = 2_000
    data = pd.DataFrame({"x": rng.standard_normal(n), "k": rng.integers(0, 3, n).astype(np.int8),
                         "name": pd.array(rng.choice(["a", "b"], n), dtype="string"),
                         "age": pd.array(rng.integers(18, 66, n), dtype="Int16")},
                        index=rng.permutation(n) + 5)
    data["_start"] = np.where(rng.random(n) < 0.3, rng.integers(1, 8, n), np.nan)
    data["_exit"] = np.where(rng.random(n) < 0.5, rng.integers(1, 12, n), np.nan)
    got = dynamic_risk_set(data, start="_start", exit="_exit", max_month=8, min_month=1)
    ref = reference_risk_set(data, "_start", "_exit", 8, 1)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert isinstance(got.index, pd.RangeIndex) and got.index.equals(ref.index)
    assert got["treated"].sum() > 0 and len(got) > n
    # the prepared frame (numbered afresh by the caller): the same storage as before
    prepared, before = got.reset_index(drop=True), ref.reset_index(drop=True)
    pd.testing.assert_frame_equal(prepared, before, check_exact=True)
    assert blocks(prepared) == blocks(before)


def test_the_strata_covariates_are_those_of_the_comparison_rows_copied_out():
    data = world(3_000, 6).rename(columns={"elapsed_month": "month"})
    data["elapsed_month"] = data.pop("month") + 1
    # among the comparison rows only, "b_if_control" repeats b
    data["b_if_control"] = np.where(data["treated"] == 0, data["b"], 1).astype(np.int8)
    names = [*COVARIATES, "b_if_control"]
    cfg = {"min_stratum_treated": 20}
    covs, bands, months = soo._strata_design(data, names, cfg)
    varying = [c for c in names if soo._varies(data[c])]
    assert covs == reference_independent_columns(data.loc[data["treated"] == 0, varying],
                                                 varying)
    assert "b_if_control" not in covs and "b" in covs and "constant" not in covs
    assert soo.independent_columns(data, names) != covs  # all rows: b_if_control varies apart


@pytest.mark.parametrize("seed", [5, 6])
def test_consecutive_columns_read_in_place_give_the_products_of_the_copy(seed):
    """Where a singular value is too close to the tolerance, the rank check
    recomputes the cross product from the rows. Consecutive columns are read
    in place: the same column-major layout and leading dimension as the copy
    ``x[:, idx]``, hence the same product, bit for bit, and the same
    decision, also where the columns are collinear."""
    rng = np.random.default_rng(seed)
    n = 50_000
    x = np.empty((n, 12), order="F")
    x[:, 0] = 1.0
    x[:, 1:6] = (rng.random((n, 5)) < 0.3)
    x[:, 6:9] = rng.standard_normal((n, 3)) * [1.0, 1e3, 1e-2]
    x[:, 9] = x[:, 1] + x[:, 2]  # collinear with the columns before it
    x[:, 10] = 0.1 * x[:, 6] + 3.0 * x[:, 7]
    x[:, 11] = rng.gamma(2.0, 8000.0, n)
    gram = x.T @ x
    for hi in range(2, 12):
        idx = list(range(hi + 1))
        copy = x[:, idx]
        view = x[:, : hi + 1]
        assert copy.flags.f_contiguous and view.flags.f_contiguous
        assert np.array_equal(view.T @ view, copy.T @ copy)
        expected = np.linalg.matrix_rank(copy.T @ copy) == len(idx)
        assert soo._full_rank(gram[np.ix_(idx, idx)], x, idx) == expected
    # the collinear columns are found (a rank check that reads the copy agrees)
    assert not soo._full_rank(gram[:10, :10], x, list(range(10)))

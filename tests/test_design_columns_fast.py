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

"""Entity x period cells of a panel with numpy, equal bit for bit to the
pandas ``groupby([entity, period], sort=True)`` aggregations they replace.

The event study collapses its rows to cell means, and the randomisation test
builds its cells from every usable row, once per event study: the placebo
check and the Monte Carlo harness fit hundreds of event studies, where the
pandas groupby machinery cost more than the arithmetic. pandas sums a
group's float values in row order with Kahan's compensated summation and
divides by the count; :func:`cell_means` does the same (an exact
``bincount`` where the values are whole numbers, whose sums carry no rounding
at all), so the means are the same floats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._data import EffectInputError

#: sums of whole numbers up to this size are exact in double precision
_EXACT = 2.0**52


def dense(codes: np.ndarray) -> np.ndarray:
    """Group codes (0 or more) renumbered 0, 1, ... in the order of the
    codes present: the codes a sorted groupby gives to a subset of the rows
    whose codes (over all rows) are ``codes``."""
    present = np.bincount(codes) > 0
    return (np.cumsum(present) - 1)[codes]


def dense_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of the non-negative integers ``key`` in sorted order and
    the first position of each."""
    if len(key) and key.max() < 4 * len(key) + 1024:  # few distinct values: by counting
        code = dense(key)
        return code, first_rows(code)
    _, first, code = np.unique(key, return_index=True, return_inverse=True)
    return code.reshape(-1), first


def cell_codes(entity: np.ndarray, period: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row the code of its (entity, period) cell, the cells numbered by
    entity, then period (as a sorted groupby), and the first row of each
    cell; None unless the entities are integer codes and the periods whole
    numbers (then use pandas)."""
    p = np.asarray(period, dtype=float)
    ent = np.asarray(entity)
    if not len(p) or ent.dtype.kind not in "iu" or not np.isfinite(p).all():
        return None
    lo, hi = float(p.min()), float(p.max())
    span = hi - lo + 1
    if span * (float(ent.max()) + 1) > _EXACT or max(abs(lo), abs(hi)) > _EXACT:
        return None
    p_int = p.astype(np.int64)
    if not np.array_equal(p_int, p) or ent.min() < 0:
        return None
    key = ent.astype(np.int64) * int(span) + (p_int - int(lo))
    return dense_codes(key)


def _kahan_sums(values: np.ndarray, cell: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per cell, the sum of ``values`` in row order by Kahan's compensated
    summation, step for step as pandas' ``group_mean`` (finite values): all
    cells advance together, one row of each per step, the largest first."""
    n_cells = len(sizes)
    # a stable sort is one order whatever the algorithm; small integers sort by radix
    order = np.argsort(cell.astype(np.int16) if n_cells < 2**15 else cell, kind="stable")
    by_size = np.argsort(-sizes, kind="stable")
    place = np.empty(n_cells, dtype=np.int64)
    place[by_size] = np.arange(n_cells)
    sorted_cell = cell[order]
    within = np.arange(len(cell)) - (np.cumsum(sizes) - sizes)[sorted_cell]
    longest = int(sizes.max()) if n_cells else 0
    grid = np.zeros((longest, n_cells))
    grid[within, place[sorted_cell]] = values[order]
    # cells still summing at each step: a prefix, the cells sorted by size
    active = np.searchsorted(-sizes[by_size], -np.arange(longest), side="left")
    total = np.zeros(n_cells)
    comp = np.zeros(n_cells)
    for j in range(longest):
        k = int(active[j])
        s = total[:k]
        y = grid[j, :k] - comp[:k]
        t = s + y
        comp[:k] = (t - s) - y
        total[:k] = t
    out = np.empty(n_cells)
    out[by_size] = total
    return out


def cell_means(values: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray | None:
    """Means of the columns of ``values`` (rows x columns) per cell, the
    floats of pandas' groupby mean; None when a value is not finite (then
    use pandas, which skips missing values)."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        return None
    sizes = np.bincount(cell, minlength=n_cells)
    out = np.empty((n_cells, values.shape[1]))
    for j in range(values.shape[1]):
        col = values[:, j]
        if np.abs(col).sum() < _EXACT and np.array_equal(col, np.trunc(col)):
            sums = np.bincount(cell, weights=col, minlength=n_cells)  # exact: whole numbers
        else:
            sums = _kahan_sums(col, cell, sizes)
        out[:, j] = sums / sizes
    return out


def firsts(values: np.ndarray, cell: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per cell the first value that is not missing (NaN when none), as
    pandas' groupby ``first``; ``first`` is the first row of each cell."""
    values = np.asarray(values)
    if values.dtype.kind in "biu" or not pd.isna(values).any():
        return values[first]
    idx = np.flatnonzero(~pd.isna(values))
    found = np.full(len(first), len(values), dtype=np.int64)
    np.minimum.at(found, cell[idx], idx)  # the first row with a value, per cell
    out = np.full(len(first), np.nan) if values.dtype.kind == "f" else values[first].copy()
    some = found < len(values)
    out[some] = values[found[some]]
    return out


def first_rows(codes: np.ndarray) -> np.ndarray:
    """The first row of each code 0, 1, ... (codes of every group present)."""
    first = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def collapse(
    ent: np.ndarray,
    t: np.ndarray,
    clus: np.ndarray,
    yv: np.ndarray,
    e: np.ndarray,
    lb: np.ndarray,
    treated: np.ndarray,
    exact: np.ndarray,
    *,
    names: tuple[str, str, str],
) -> tuple[np.ndarray, ...]:
    """The rows collapsed to entity x period cells (sorted by entity, then
    period): mean outcome, the cell's cohort, binned event time, treated and
    exact flags and cluster (constant within a cell), its number of rows,
    entity and period. numpy where it can (the same floats),
    else pandas' groupby."""
    found = cell_codes(ent, t)
    means = None
    if found is not None:
        cell, first = found
        if clus is not ent and (clus != firsts(clus, cell, first)[cell]).any():
            raise _cluster_not_constant(names)
        means = cell_means(yv[:, None], cell, len(first))
    if found is None or means is None:
        return _collapse_pandas(ent, t, clus, yv, e, lb, treated, exact, names=names)
    n = len(first)
    return (
        means[:, 0],
        firsts(e, cell, first),
        firsts(lb, cell, first),
        firsts(treated, cell, first).astype(bool),
        firsts(exact, cell, first).astype(bool),
        firsts(clus, cell, first),
        np.bincount(cell, minlength=n).astype(float),
        ent[first],
        t[first].astype(float),
    )


def _cluster_not_constant(names: tuple[str, str, str]) -> EffectInputError:
    return EffectInputError(
        f"collapse=True needs cluster column {names[0]!r} to be constant within "
        f"each {names[1]!r} x {names[2]!r} cell"
    )


def _collapse_pandas(
    ent: np.ndarray,
    t: np.ndarray,
    clus: np.ndarray,
    yv: np.ndarray,
    e: np.ndarray,
    lb: np.ndarray,
    treated: np.ndarray,
    exact: np.ndarray,
    *,
    names: tuple[str, str, str],
) -> tuple[np.ndarray, ...]:
    """:func:`collapse` by pandas' groupby."""
    cells = pd.DataFrame({"g": ent, "t": t, "c": clus})
    if (cells.groupby(["g", "t"])["c"].nunique() > 1).any():
        raise _cluster_not_constant(names)
    cells = cells.assign(y=yv, e=e, lb=lb, d=treated, x=exact, w=1.0)
    means = cells.groupby(["g", "t"], sort=True).agg(
        y=("y", "mean"),
        e=("e", "first"),
        lb=("lb", "first"),
        d=("d", "first"),
        x=("x", "first"),
        c=("c", "first"),
        w=("w", "sum"),
    )
    return (
        means["y"].to_numpy(),
        means["e"].to_numpy(),
        means["lb"].to_numpy(),
        means["d"].to_numpy(bool),
        means["x"].to_numpy(bool),
        means["c"].to_numpy(),
        means["w"].to_numpy(),
        means.index.get_level_values("g").to_numpy(),
        means.index.get_level_values("t").to_numpy(dtype=float),
    )

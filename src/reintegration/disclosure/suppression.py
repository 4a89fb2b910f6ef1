"""Cell suppression of one table: which cells may be shown, and why not.

Pure functions of the data and the rules (:mod:`reintegration.disclosure.rules`):
nothing here writes a file or keeps state. The register
(:mod:`reintegration.disclosure`) calls them in this order for each table:

1. :func:`table_request` checks the columns asked for and prepares the data;
2. :func:`tabulate` computes the table and the persons behind each cell;
3. :func:`primary_flags` applies ACRO's per-cell verdicts and the
   compendium's own count, degrees-of-freedom and proportion rules;
4. :func:`mark_structural` clears the zeros declared structural;
5. :func:`protect_magnitude_margins` recomputes the totals of a magnitude
   table without the persons of suppressed cells; the totals of a count
   table are protected with the other tables of its population instead
   (:mod:`reintegration.disclosure.linked_tables`);
6. :func:`mask_released` blanks every flagged cell, and :func:`table_status`
   says whether anything is left to release.

Each cell carries its reason codes as a comma-separated string (empty where
released); the codes are the keys of
:data:`~reintegration.disclosure.rules.REASONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .rules import ACRO_CHECK_TO_REASON, MARGINS, REASONS, DisclosureError, Rules


@dataclass
class TableRequest:
    """A table asked of the register, its columns checked."""

    #: ``<step>/<name>``, for messages
    where: str
    #: the columns the table uses (a one-way table's ``statistic`` column added)
    data: pd.DataFrame
    rows: list[str]
    #: the column variables; ``["statistic"]`` for a one-way table
    cols: list[str]
    values: str | None
    agg: str | None
    margins: bool
    statistic: str
    oneway: bool
    #: a mean or sum of 0/1 values: a proportion, held to the count rules
    binary: bool

    @property
    def dims(self) -> list[str]:
        return self.rows + self.cols


@dataclass
class Cells:
    """A checked table on its grid: as computed, as released, and why."""

    raw: pd.DataFrame
    #: NaN where suppressed
    released: pd.DataFrame
    #: reason codes per cell, "" where released
    flags: np.ndarray
    structural: np.ndarray
    suppressed: np.ndarray

    def without_total_column(self) -> Cells:
        """The total column of a one-way table repeats its only column."""
        keep = ~np.array([is_margin(k) for k in self.raw.columns])
        return Cells(
            raw=self.raw.loc[:, keep],
            released=self.released.loc[:, keep],
            flags=self.flags[:, keep],
            structural=self.structural[:, keep],
            suppressed=self.suppressed[:, keep],
        )


def table_request(
    where: str,
    df: pd.DataFrame,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None,
    values: str | None,
    agg: str | None,
    margins: bool,
    rules: Rules,
) -> TableRequest:
    """Check the columns of a table request and prepare its data; refuse
    unknown or repeated columns and missing values in a row or column
    variable (they would be dropped, not counted)."""
    rows = [index] if isinstance(index, str) else list(index)
    cols = [] if columns is None else [columns] if isinstance(columns, str) else list(columns)
    if not rows:
        raise DisclosureError(f"{where}: a table needs at least one index column")
    dims = rows + cols
    needed = dims + ([values] if values else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DisclosureError(f"{where}: no column(s) {missing} in the data")
    if len(set(needed)) != len(needed):
        raise DisclosureError(f"{where}: a column is used twice: {needed}")
    data = df[needed].copy()
    for col in dims:
        if data[col].isna().any():
            raise DisclosureError(
                f"{where}: column {col!r} has missing values; recode them to an "
                "explicit category (such as 'unknown') so they are counted, not dropped"
            )
    statistic = "count" if values is None else f"{agg or 'count'} of {values}"
    oneway = not cols
    if oneway:  # one column, named after the statistic
        data["statistic"] = statistic
        cols = ["statistic"]
    if values is not None and data[values].dtype == bool:
        data[values] = data[values].astype(int)
    binary = (
        agg in ("mean", "sum")
        and rules.proportions_as_counts
        and values is not None
        and pd.api.types.is_numeric_dtype(data[values])
        and set(pd.unique(data[values].dropna())) <= {0, 1}
    )
    return TableRequest(
        where=where,
        data=data,
        rows=rows,
        cols=cols,
        values=values,
        agg=agg,
        margins=margins,
        statistic=statistic,
        oneway=oneway,
        binary=binary,
    )


def crosstab(
    data: pd.DataFrame,
    rows: list[str],
    cols: list[str],
    values: str | None,
    agg: str | None,
    margins: bool,
) -> pd.DataFrame:
    index = [data[c] for c in rows]
    columns = [data[c] for c in cols]
    if values is None or agg is None:
        return pd.crosstab(index, columns, margins=margins, margins_name=MARGINS, dropna=False)
    table = pd.crosstab(
        index,
        columns,
        values=data[values],
        aggfunc=agg,
        margins=margins,
        margins_name=MARGINS,
        dropna=False,
    )
    if agg in ("count", "sum"):
        table = table.fillna(0)
    return table


def tabulate(req: TableRequest) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table asked for, and the number of persons behind each cell."""
    data, rows, cols, margins = req.data, req.rows, req.cols, req.margins
    counts = crosstab(data, rows, cols, None, None, margins)
    if req.values is None:
        return counts, counts
    n_contrib = crosstab(data, rows, cols, req.values, "count", margins)
    if req.agg is None:  # aggfunc="count" of a column
        return n_contrib, n_contrib
    return crosstab(data, rows, cols, req.values, req.agg, margins), n_contrib


def add_flag(flags: np.ndarray, mask: np.ndarray, code: str) -> None:
    """Add reason ``code`` to the cells of ``mask`` (once per cell)."""
    for i, j in zip(*np.nonzero(mask), strict=True):
        if code not in flags[i, j].split(","):
            flags[i, j] = f"{flags[i, j]},{code}" if flags[i, j] else code


def primary_flags(
    req: TableRequest, raw: pd.DataFrame, n: np.ndarray, acro_out: pd.DataFrame, rules: Rules
) -> np.ndarray:
    """The reason codes of the cells that fail a rule themselves: ACRO's
    verdicts (``acro_out``, on the table's grid) and the compendium's own
    count rules, independent of ACRO (margins included)."""
    flags = np.full(raw.shape, "", dtype=object)
    # ACRO's verdicts per cell (its std verdict is the known bug: see below)
    for check, code in ACRO_CHECK_TO_REASON.items():
        add_flag(flags, acro_out.map(lambda s, c=check: c in str(s)).to_numpy(), code)
    add_flag(flags, n < rules.cell_threshold, "threshold")
    if req.agg == "std":
        # ACRO 1.0.2 uses the table of degrees of freedom as a mask and so
        # blanks every cell; the rule it means is per cell: n - 1 >= dof.
        add_flag(flags, n - 1 < rules.residual_dof, "dof")
    if req.binary:
        ones = crosstab(req.data, req.rows, req.cols, req.values, "sum", req.margins)
        ones_n = ones.to_numpy(dtype=float)
        zeros = n - ones_n
        few_ones = (ones_n < rules.cell_threshold) & ((ones_n > 0) | rules.zeros_disclosive)
        few_zeros = (zeros < rules.cell_threshold) & ((zeros > 0) | rules.zeros_disclosive)
        add_flag(flags, (n > 0) & (few_ones | few_zeros), "proportion")
    if not rules.zeros_disclosive:
        # a zero is not disclosive by configuration: empty count cells stay
        for i, j in zip(*np.nonzero(n == 0), strict=True):
            flags[i, j] = ",".join(c for c in flags[i, j].split(",") if c != "threshold")
    return flags


def mark_structural(
    raw: pd.DataFrame,
    n: np.ndarray,
    declared: list[Any],
    flags: np.ndarray,
    name: str,
    step: str,
) -> np.ndarray:
    """The cells declared structural zeros (empty by definition), their
    flags cleared; a declared cell that holds persons is an error."""
    structural = np.zeros(raw.shape, dtype=bool)
    for key in declared:
        i, j = locate(raw, key, name, step)
        if n[i, j] != 0:
            raise DisclosureError(
                f"{step}/{name}: cell {key!r} is declared a structural zero but is "
                "not empty; a structural zero is empty by definition"
            )
        structural[i, j] = True
        flags[i, j] = ""
    return structural


def protect_magnitude_margins(
    req: TableRequest, raw: pd.DataFrame, flags: np.ndarray, rules: Rules
) -> pd.DataFrame:
    """The values to release before masking: for a mean or sum with margins,
    totals over the shown cells only (a magnitude total must not contain the
    values of suppressed cells), and a total left with too few persons is
    flagged ``secondary``."""
    released = raw.astype(float).copy()
    if not req.margins or req.agg is None:
        return released
    row_margin = np.array([is_margin(k) for k in raw.index])
    col_margin = np.array([is_margin(k) for k in raw.columns])
    inner = ~row_margin[:, None] & ~col_margin[None, :]
    drop = np.vectorize(bool)(flags) & inner
    if drop.any():
        released, n_after = redact(req, raw, drop)
        margin_cells = ~inner & ~np.vectorize(bool)(flags)
        add_flag(flags, margin_cells & (n_after < rules.cell_threshold), "secondary")
    return released


def redact(
    req: TableRequest, raw: pd.DataFrame, drop: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """Recompute a table with margins without the persons in suppressed
    cells, so no total reveals a suppressed cell by subtraction."""
    data, rows, cols, values, agg = req.data, req.rows, req.cols, req.values, req.agg
    keys = []
    for i, j in zip(*np.nonzero(drop), strict=True):
        r = raw.index[i] if len(rows) > 1 else (raw.index[i],)
        c = raw.columns[j] if len(cols) > 1 else (raw.columns[j],)
        keys.append((*r, *c))
    gone = pd.DataFrame(keys, columns=rows + cols).astype(data[rows + cols].dtypes.to_dict())
    gone["_gone"] = True
    kept = data.merge(gone, on=rows + cols, how="left")
    kept = kept[kept["_gone"].isna()].drop(columns="_gone")
    if kept.empty:
        empty = pd.DataFrame(np.nan, index=raw.index, columns=raw.columns)
        return empty, np.zeros(raw.shape)
    n_stat = "count" if values is not None else None
    table = crosstab(kept, rows, cols, values, agg if agg else n_stat, True)
    n_after = crosstab(kept, rows, cols, values, n_stat, True)
    table = table.reindex(index=raw.index, columns=raw.columns)
    n_after = n_after.reindex(index=raw.index, columns=raw.columns).fillna(0)
    return table.astype(float), n_after.to_numpy(dtype=float)


def mask_released(
    raw: pd.DataFrame,
    released: pd.DataFrame,
    flags: np.ndarray,
    structural: np.ndarray,
    decimals: int | None,
) -> Cells:
    """Blank every flagged cell; round magnitudes to ``decimals``, counts to
    whole numbers."""
    suppressed = np.vectorize(bool)(flags)
    arr = released.to_numpy(dtype=float)
    arr[suppressed] = np.nan
    shown = pd.DataFrame(arr, index=raw.index, columns=raw.columns)
    shown = shown.round(decimals) if decimals is not None else shown.astype("Int64")
    return Cells(raw, shown, flags, structural, suppressed)


def table_status(cells: Cells, declared: list[Any], rules: Rules) -> tuple[str, list[str]]:
    """``fail`` when every cell is suppressed, ``review`` when some are,
    ``pass`` otherwise; with the reasons a reader is shown."""
    n_cells = int(cells.suppressed.size)
    n_supp = int(cells.suppressed.sum())
    reasons = table_reasons(cells.flags, rules)
    if declared:
        reasons.append(f"structural zeros declared: {len(declared)} cell(s) shown as empty")
    if n_supp == n_cells:
        reasons.insert(0, "every cell would be suppressed: nothing to release")
        return "fail", reasons
    return ("review" if n_supp else "pass"), reasons


def cell_records(
    cells: Cells, keys: list[list[tuple[Any, ...]]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the register says of the suppressed cells (row, column, key,
    reasons) and of the structural zeros (row, column)."""
    raw = cells.raw
    suppressed = [
        {
            "row": label(raw.index[i]),
            "column": label(raw.columns[j]),
            "key": [str(x) for x in keys[i][j]],
            "reasons": cells.flags[i, j].split(","),
        }
        for i, j in zip(*np.nonzero(cells.suppressed), strict=True)
    ]
    structural = [
        {"row": label(raw.index[i]), "column": label(raw.columns[j])}
        for i, j in zip(*np.nonzero(cells.structural), strict=True)
    ]
    return suppressed, structural


def is_margin(key: Any) -> bool:
    return key == MARGINS or (isinstance(key, tuple) and len(key) > 0 and key[0] == MARGINS)


def locate(table: pd.DataFrame, key: Any, name: str, step: str) -> tuple[int, int]:
    if not isinstance(key, tuple) or len(key) != 2:
        raise DisclosureError(f"{step}/{name}: a structural zero is a pair (row, column): {key!r}")
    row, col = key
    if col is None and table.shape[1] == 1:
        col = table.columns[0]
    try:
        i = table.index.get_loc(row)
        j = table.columns.get_loc(col)
    except KeyError:
        raise DisclosureError(f"{step}/{name}: structural zero {key!r} is not a cell") from None
    if not isinstance(i, int) or not isinstance(j, int):
        raise DisclosureError(f"{step}/{name}: structural zero {key!r} names several cells")
    return i, j


def label(key: Any) -> str:
    if isinstance(key, tuple):
        return " / ".join(str(k) for k in key)
    return str(key)


def table_reasons(flags: np.ndarray, rules: Rules) -> list[str]:
    tally: dict[str, int] = {}
    for cell in flags.ravel():
        for code in filter(None, str(cell).split(",")):
            tally[code] = tally.get(code, 0) + 1
    out = []
    for code in REASONS:
        if code in tally:
            k = tally[code]
            out.append(
                f"{code}: {k} cell{'s' if k > 1 else ''} suppressed, {rules.reason_text(code)}"
            )
    return out

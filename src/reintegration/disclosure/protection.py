"""Protection of linked count tables against differencing.

A suppressed cell is only protected if no combination of everything else that
is published pins it down. This module treats the published count tables of
one population (for example "the cohort's persons") as one system of linear
constraints, as an attacker would: every shown cell is an equation, every
shown total is the sum of its cells, tables that share a variable must agree
on its margin, and no count is negative. For each suppressed cell, linear
programming gives the tightest interval the attacker can derive (the
integer-free relaxation: the real interval can only be narrower where
integrality matters, never wider).

A sensitive cell (suppressed for a primary reason: below the threshold, a
zero, a share too close to 0% or 100%) is *protected* when its derivable
interval reaches the threshold and is at least as wide as the threshold:
``upper >= T`` and ``upper - lower >= T``. The first means an attacker cannot
tell the cell is small; the second that the cell is not pinned within a
narrow band.

:func:`protect` adds complementary (secondary) suppressions to a new table
until every sensitive cell of it and of the tables published before it is
protected; :func:`attack` is the check the release audit runs on everything
a city publishes. Hundepool et al. (2012, *Statistical Disclosure Control*,
ch. 4) describe both: the audit is their "interval" disclosure check, the
greedy search a simple form of secondary cell suppression.

Tables join on variable names: two tables of the same population that both
have a variable ``instrument`` must have equal ``instrument`` margins. The
constraints use each table's own cells, not the full cross-classification of
all variables; for tables that share variables in a tree (every table is
``instrument`` by one characteristic, as here) the two are the same, for
cyclic designs (a x b, b x c, a x c) the attack here is weaker than the
strongest possible one (see the disclosure-control methods page).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# scipy adds warning filters when imported; keep the caller's as they were
with warnings.catch_warnings():
    from scipy import sparse

    from .lp import EqualitySystem

MARGIN = "Total"
SECONDARY = "secondary"


@dataclass
class CountTable:
    """One published table of counts.

    ``cells`` maps a key (one level per variable in ``dims``; ``MARGIN`` for
    a total over that variable) to the published count, or ``None`` when the
    cell is suppressed. ``sensitive`` holds the keys of the cells suppressed
    for a primary reason. ``truth`` (only when protecting, never in an audit)
    holds the true counts of suppressed cells, used to rank candidates.
    """

    id: str
    population: str
    dims: tuple[str, ...]
    cells: dict[tuple[Any, ...], float | None]
    sensitive: set[tuple[Any, ...]] = field(default_factory=set)
    truth: dict[tuple[Any, ...], float] = field(default_factory=dict)
    #: variables held at one level in every cell: the table is a slice of its
    #: population (for example ``{"table": "clients"}``)
    fixed: dict[str, str] = field(default_factory=dict)
    #: coarser variables derived from one of the table's own:
    #: ``{"quarter": ("year", {"2015Q1": "2015", ...})}``
    coarsen: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    #: for a block of a stacked table (see :func:`split_blocks`): its keys ->
    #: the stacked table's keys
    origin: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """A slice or a block: it counts part of its population only."""
        return bool(self.fixed) or bool(self.origin)

    def view(self) -> tuple[tuple[str, ...], dict[tuple[Any, ...], tuple[Any, ...]]]:
        """The variables the table can be joined on (its own, its fixed ones
        and the coarser ones derived from them), and each interior cell's
        levels of them."""
        names = list(self.dims) + list(self.fixed)
        derived = [(self.dims.index(f), c, m) for f, (c, m) in self.coarsen.items()]
        names += [c for _, c, _ in derived]
        keys = {}
        for key in self.interior():
            extra = [self.fixed[d] for d in self.fixed]
            extra += [m.get(key[i], f"?{key[i]}") for i, _, m in derived]
            keys[key] = (*key, *extra)
        return tuple(names), keys

    def interior(self) -> list[tuple[Any, ...]]:
        return [k for k in self.cells if MARGIN not in k]

    def suppressed(self) -> list[tuple[Any, ...]]:
        return [k for k, v in self.cells.items() if v is None]


@dataclass(frozen=True)
class Interval:
    """The interval an attacker can derive for one suppressed cell."""

    table: str
    cell: tuple[Any, ...]
    lower: float
    upper: float
    sensitive: bool

    def protected(self, threshold: float) -> bool:
        if not self.sensitive:
            return True
        return self.upper >= threshold and self.upper - self.lower >= threshold

    def as_dict(self, threshold: float) -> dict[str, Any]:
        return {
            "table": self.table,
            "cell": [str(c) for c in self.cell],
            "lower": _num(self.lower),
            "upper": _num(self.upper),
            "sensitive": self.sensitive,
            "protected": self.protected(threshold),
        }


def _num(x: float) -> float | None:
    return None if math.isinf(x) else round(float(x), 6)


def from_frame(
    table_id: str,
    population: str,
    frame: pd.DataFrame | pd.Series,
    *,
    dims: Sequence[str] | None = None,
    sensitive: Iterable[tuple[Any, ...]] = (),
    truth: pd.DataFrame | None = None,
    oneway: bool | None = None,
    fixed: dict[str, str] | None = None,
    coarsen: dict[str, tuple[str, dict[str, str]]] | None = None,
) -> CountTable:
    """A :class:`CountTable` from a published frame (NaN = suppressed).

    Row and column index levels are the table's variables, named by the
    index names unless ``dims`` gives them. A one-way table (one column, or a
    Series) has only its row variables. Keys of ``sensitive`` are given in the
    same (row..., column...) order.
    """
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if oneway is None:
        oneway = frame.shape[1] == 1
    row_names = [str(n) for n in frame.index.names]
    col_names = [] if oneway else [str(n) for n in frame.columns.names]
    names = list(dims) if dims is not None else row_names + col_names
    if len(names) != len(row_names) + len(col_names):
        raise ValueError(
            f"{table_id}: {len(names)} variable names for a table with "
            f"{len(row_names)} row and {len(col_names)} column levels"
        )
    cells: dict[tuple[Any, ...], float | None] = {}
    true: dict[tuple[Any, ...], float] = {}
    values = frame.to_numpy(dtype=float)
    tvals = None if truth is None else truth.reindex_like(frame).to_numpy(dtype=float)
    for i, r in enumerate(frame.index):
        rk = r if isinstance(r, tuple) else (r,)
        for j, c in enumerate(frame.columns):
            ck = () if oneway else (c if isinstance(c, tuple) else (c,))
            key = normal_key((*rk, *ck), len(rk))
            v = values[i, j]
            cells[key] = None if np.isnan(v) else float(v)
            if tvals is not None and not np.isnan(tvals[i, j]):
                true[key] = float(tvals[i, j])
    n_rows = frame.index.nlevels
    sens = {normal_key(k, n_rows) for k in sensitive}
    unknown = sens - set(cells)
    if unknown:
        raise ValueError(
            f"{table_id}: sensitive cells not in the table: {sorted(map(str, unknown))}"
        )
    fixed = {str(k): _level(v) for k, v in (fixed or {}).items()}
    coarsen = {
        str(f): (str(c), {_level(k): _level(v) for k, v in m.items()})
        for f, (c, m) in (coarsen or {}).items()
    }
    bad = [f for f in coarsen if f not in names] + [d for d in fixed if d in names]
    if bad:
        raise ValueError(f"{table_id}: coarsen/fixed variables do not fit the table: {bad}")
    return CountTable(table_id, population, tuple(names), cells, sens, true, fixed, coarsen)


def split_blocks(table: CountTable, blocks: dict[str, Any]) -> list[CountTable]:
    """One table per level of the block variable ``blocks["by"]``, for a table
    that stacks comparable sub-tables (the propensity bands of each
    instrument: each block's "treated" are that instrument's starters, its
    "no instrument" the persons without one). In each block the other
    variables are renamed ``"<name> (<block>)"`` unless ``blocks["rename"]``
    maps them to a shared name, and ``blocks["relabel"]`` maps their levels
    (``"{block}"`` stands for the block's level), so that a block joins the
    population's other tables on what it really shares. A part's
    ``origin`` maps its keys back to the stacked table's."""
    by = blocks["by"]
    pos = table.dims.index(by)
    rename: dict[str, str] = blocks.get("rename", {})
    relabel: dict[str, dict[str, str]] = blocks.get("relabel", {})
    parts = []
    for block in dict.fromkeys(k[pos] for k in table.cells if k[pos] != MARGIN):
        other = [d for d in table.dims if d != by]
        dims = tuple(rename.get(d, f"{d} ({block})") for d in other)
        part = CountTable(f"{table.id} [{block}]", table.population, dims, {})
        part.origin = {}
        for key, value in table.cells.items():
            if key[pos] != block:
                continue
            rest = [k for i, k in enumerate(key) if i != pos]
            new = tuple(
                relabel.get(d, {}).get(level, level).replace("{block}", str(block))
                if level != MARGIN
                else MARGIN
                for d, level in zip(other, rest, strict=True)
            )
            part.cells[new] = value
            part.origin[new] = key
            if key in table.sensitive:
                part.sensitive.add(new)
            if key in table.truth:
                part.truth[new] = table.truth[key]
        parts.append(part)
    return parts


def normal_key(key: Sequence[Any], n_rows: int | None = None) -> tuple[Any, ...]:
    """A cell key as the tables here hold it: levels as text, and a total
    over a multi-level row or column (``("Total", "")``) as ``Total`` on
    each of its levels. ``n_rows`` is the number of row levels."""
    key = list(key)
    parts = [key] if n_rows is None else [key[:n_rows], key[n_rows:]]
    out: list[Any] = []
    for part in parts:
        if part and _level(part[0]) == MARGIN:
            out += [MARGIN] * len(part)
        else:
            out += [_level(x) for x in part]
    return tuple(out)


def tables_from_register(
    register: dict[str, Any], open_file: Any, population: str | None = None
) -> list[CountTable]:
    """The released count tables a step or city register lists (those
    whose checks record their population and layout), read back from their
    published CSV files as an attacker reads them. ``open_file`` maps the
    register's relative file path to a readable path. With ``population``,
    only that population's tables."""
    found = []
    for table_id, file, checks in _count_files(register):
        pop = checks.get("population") or table_id
        if population is not None and pop != population:
            continue
        n_rows, n_cols = int(checks["index_levels"]), int(checks["column_levels"])
        frame = pd.read_csv(
            open_file(file),
            index_col=list(range(n_rows)),
            header=list(range(max(n_cols, 1))),
            dtype=str,
            keep_default_na=False,
        )
        if "index_column" in checks:  # a public table: one index and one count column
            frame = frame.reset_index().set_index(checks["index_column"])
            frame = frame[[checks["count_column"]]]
        frame = frame.apply(pd.to_numeric, errors="coerce").astype(float)
        sensitive = [
            _register_key(c, n_rows, n_cols)
            for c in checks.get("suppressed_cells", [])
            if set(c.get("reasons", [])) - {SECONDARY}
        ]
        table = from_frame(
            table_id,
            pop,
            frame,
            dims=checks["dims"],
            sensitive=sensitive,
            oneway=n_cols == 0,
            fixed=checks.get("fixed") or {},
            coarsen={f: (c, m) for f, (c, m) in (checks.get("coarsen") or {}).items()},
        )
        found += split_blocks(table, checks["blocks"]) if checks.get("blocks") else [table]
    return found


def _count_files(register: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, file, layout) of every released file that holds a count table of
    a declared layout: the tables themselves, and the data behind a figure
    (``data_file``, laid out as ``checks["data"]`` says)."""
    out = []
    for entry in register.get("outputs", []):
        if entry.get("status") == "fail":
            continue
        checks = entry.get("checks") or {}
        if "dims" in checks and entry.get("file"):
            out.append((entry["id"], entry["file"], checks))
        data = checks.get("data") or {}
        if "dims" in data and entry.get("data_file"):
            out.append((f"{entry['id']} (data)", entry["data_file"], data))
    return out


def _register_key(cell: dict[str, Any], n_rows: int, n_cols: int) -> tuple[Any, ...]:
    """A suppressed cell's key as the register records it."""
    key = list(cell["key"])
    if len(key) != n_rows + n_cols:
        raise ValueError(
            f"register key {key} does not match {n_rows} row and {n_cols} column levels"
        )
    return normal_key(key, n_rows)


def _level(x: Any) -> Any:
    if isinstance(x, str) and x == MARGIN:
        return MARGIN
    return str(x)


class _System:
    """The linear constraints of a set of tables of one population.

    What depends only on the tables' cells and not on their values (which
    interior cells make up each margin, the equations joining two tables) is
    kept in ``memo`` when one is given: systems of the same tables in the
    same order, differing only in which cells are suppressed (the rounds of
    :func:`protect`), share it."""

    def __init__(self, tables: Sequence[CountTable], memo: dict[Any, Any] | None = None):
        self.tables = list(tables)
        self._memo: dict[Any, Any] = {} if memo is None else memo
        self.index: dict[tuple[int, tuple[Any, ...]], int] = {}
        #: per table: its interior keys and the index of the first of them
        self._interior = [table.interior() for table in self.tables]
        self._offset: list[int] = []
        for t, interior in enumerate(self._interior):
            self._offset.append(len(self.index))
            for key in interior:
                self.index[(t, key)] = len(self.index)
        self.n = len(self.index)
        rows: list[dict[int, float]] = []
        rhs: list[float] = []
        for t, table in enumerate(self.tables):
            for key, value in table.cells.items():
                if value is None:
                    continue
                rows.append(self.coefficients(t, key))
                rhs.append(value)
        for a, b in itertools.combinations(range(len(self.tables)), 2):
            links = self._memo.get(("links", a, b))
            if links is None:
                links = self._memo[("links", a, b)] = self._links(a, b)
            for coef in links:
                rows.append(coef)
                rhs.append(0.0)
        self.rows, self.rhs = rows, rhs
        self._matrix: sparse.csr_matrix | None = None
        self._programs: EqualitySystem | None = None

    def coefficients(self, t: int, key: tuple[Any, ...]) -> dict[int, float]:
        """The cell ``key`` of table ``t`` as a sum of interior cells."""
        if MARGIN not in key:
            return {self.index[(t, key)]: 1.0}
        pos = tuple(d for d, v in enumerate(key) if v != MARGIN)
        # per table and set of fixed positions: fixed levels -> interior positions
        groups = self._memo.get(("groups", t, pos))
        if groups is None:
            groups = {}
            for i, k in enumerate(self._interior[t]):
                groups.setdefault(tuple(k[d] for d in pos), []).append(i)
            self._memo[("groups", t, pos)] = groups
        first = self._offset[t]
        members = groups.get(tuple(key[d] for d in pos), ())
        return {first + i: 1.0 for i in members}

    def coefficients_reference(self, t: int, key: tuple[Any, ...]) -> dict[int, float]:
        """:meth:`coefficients` by a scan of every interior cell (the
        definition the tests hold the grouped lookup to)."""
        table = self.tables[t]
        if MARGIN not in key:
            return {self.index[(t, key)]: 1.0}
        fixed = [(d, v) for d, v in enumerate(key) if v != MARGIN]
        return {
            self.index[(t, k)]: 1.0 for k in table.interior() if all(k[d] == v for d, v in fixed)
        }

    def _view(self, t: int) -> tuple[tuple[str, ...], dict[tuple[Any, ...], tuple[Any, ...]]]:
        view = self._memo.get(("view", t))
        if view is None:
            view = self._memo[("view", t)] = self.tables[t].view()
        return view

    def _links(self, a: int, b: int) -> list[dict[int, float]]:
        """Equal margins over the variables tables ``a`` and ``b`` share,
        for the levels both tables cover (a slice covers only its own)."""
        (names_a, keys_a), (names_b, keys_b) = self._view(a), self._view(b)
        shared = [d for d in names_a if d in names_b]
        if not shared and (self.tables[a].partial or self.tables[b].partial):
            return []  # a slice's grand total is not the population's
        pos_a = [names_a.index(d) for d in shared]
        pos_b = [names_b.index(d) for d in shared]
        levels_a = [{k[p] for k in keys_a.values()} for p in pos_a]
        levels_b = [{k[p] for k in keys_b.values()} for p in pos_b]
        both = [la & lb for la, lb in zip(levels_a, levels_b, strict=True)]
        groups: dict[tuple[Any, ...], dict[int, float]] = {}
        for t, keys, pos, sign in ((a, keys_a, pos_a, 1.0), (b, keys_b, pos_b, -1.0)):
            for key, full in keys.items():
                g = tuple(full[p] for p in pos)
                if not all(level in ok for level, ok in zip(g, both, strict=True)):
                    continue
                row = groups.setdefault(g, {})
                v = self.index[(t, key)]
                row[v] = row.get(v, 0.0) + sign
        return [row for row in groups.values() if row]

    def matrix(self) -> sparse.csr_matrix:
        if self._matrix is None:
            data, ri, ci = [], [], []
            for r, row in enumerate(self.rows):
                for c, v in row.items():
                    ri.append(r)
                    ci.append(c)
                    data.append(v)
            self._matrix = sparse.csr_matrix(
                (data, (ri, ci)), shape=(len(self.rows), max(self.n, 1))
            )
        return self._matrix

    def bounds(self, t: int, key: tuple[Any, ...]) -> tuple[float, float]:
        """The smallest and largest value of a cell consistent with the rest."""
        coef = self.coefficients(t, key)
        c = np.zeros(max(self.n, 1))
        for i, v in coef.items():
            c[i] = v
        if self._programs is None:
            self._programs = EqualitySystem(
                self.matrix() if self.rows else None,
                np.asarray(self.rhs) if self.rows else None, max(self.n, 1))
        out = []
        for sign in (1.0, -1.0):
            status, fun, message = self._programs.minimise(sign * c)
            if status == 3:  # unbounded
                out.append(-math.inf if sign > 0 else math.inf)
            elif status != 0:
                raise ValueError(
                    f"the published values of {self.tables[t].population!r} are inconsistent "
                    f"({message}); tables: {', '.join(x.id for x in self.tables)}"
                )
            else:
                out.append(sign * fun)
        return max(out[0], 0.0), out[1]


def attack(tables: Sequence[CountTable]) -> list[Interval]:
    """The interval an attacker derives for every suppressed cell, tables
    grouped by population."""
    found: list[Interval] = []
    for population in sorted({t.population for t in tables}):
        group = [t for t in tables if t.population == population]
        if not any(t.suppressed() for t in group):
            continue
        system = _System(group)
        for t, table in enumerate(group):
            for key in table.suppressed():
                lo, hi = system.bounds(t, key)
                found.append(Interval(table.id, key, lo, hi, key in table.sensitive))
    return found


def leaks(tables: Sequence[CountTable], threshold: float) -> list[Interval]:
    """The sensitive cells an attacker can narrow below the protection interval."""
    return [i for i in attack(tables) if not i.protected(threshold)]


def _first_leak(
    system: _System,
    order: Sequence[tuple[int, tuple[Any, ...]]],
    threshold: float,
    safe: set[tuple[int, tuple[Any, ...]]] | None = None,
) -> Interval | None:
    """The first cell of ``order`` that leaks. Cells in ``safe`` were found
    protected in a system with at least these suppressions and are skipped;
    cells found protected now are added to it."""
    for t, key in order:
        if safe is not None and (t, key) in safe:
            continue
        lo, hi = system.bounds(t, key)
        found = Interval(system.tables[t].id, key, lo, hi, True)
        if not found.protected(threshold):
            return found
        if safe is not None:
            safe.add((t, key))
    return None


def protect(
    new: CountTable, published: Sequence[CountTable], threshold: float, *, max_rounds: int = 400
) -> list[tuple[Any, ...]]:
    """Complementary suppressions in ``new`` so that every sensitive cell of
    ``new`` and of ``published`` (same population, already released, fixed)
    is protected. Returns the keys suppressed in addition; ``new`` is
    changed in place.

    Greedy: while a sensitive cell leaks, suppress one more shown cell of the
    new table. Candidates sharing a row or column with the leaking cell come
    first, interior cells before totals, the smallest first (the least
    information lost); the first of the first few candidates that alone
    protects the leaking cell is taken, else the first candidate. The search
    is not optimal (tau-ARGUS's modular method loses fewer cells), but what
    it returns is checked: no sensitive cell leaks.
    """
    group = [t for t in published if t.population == new.population] + [new]
    me = len(group) - 1
    # the new table's cells first: they are the ones most likely to leak
    order = [(me, k) for k in new.interior() + [k for k in new.cells if MARGIN in k]]
    order = [(t, k) for t, k in order if k in new.sensitive]
    order += [
        (t, k) for t, table in enumerate(group[:-1]) for k in sorted(table.sensitive, key=str)
    ]
    if not order:
        return []
    added: list[tuple[Any, ...]] = []
    # a round only suppresses more cells of the new table, which removes
    # equations: every interval can only widen, so a cell protected in one
    # round stays protected in the next and is not solved again
    safe: set[tuple[int, tuple[Any, ...]]] = set()
    memo: dict[Any, Any] = {}  # the rounds only suppress cells: same cells, same joins
    for _ in range(max_rounds):
        target = _first_leak(_System(group, memo), order, threshold, safe)
        if target is None:
            return added
        candidates = _candidates(new, target)
        if not candidates:
            raise ValueError(
                f"{new.id}: cell {target.cell} of {target.table} cannot be protected by "
                "suppressing cells of this table: an earlier table gives it away"
            )
        rectangle = _rectangle(new, target, threshold) if target.table == new.id else None
        if rectangle:
            for key in rectangle:
                new.truth.setdefault(key, new.cells[key] or 0.0)
                new.cells[key] = None
            added += rectangle
            continue
        chosen = candidates[0]
        t_index = next(t for t, table in enumerate(group) if table.id == target.table)
        for key in candidates[:6]:
            new.cells[key], old = None, new.cells[key]
            lo, hi = _System(group, memo).bounds(t_index, target.cell)
            new.cells[key] = old
            if Interval(target.table, target.cell, lo, hi, True).protected(threshold):
                chosen = key
                break
        new.truth.setdefault(chosen, new.cells[chosen] or 0.0)
        new.cells[chosen] = None
        added.append(chosen)
    raise ValueError(f"{new.id}: no protection found in {max_rounds} rounds")


def _rectangle(new: CountTable, target: Interval, threshold: float) -> list[tuple[Any, ...]] | None:
    """The cheapest set of cells whose suppression lets a cell of a two-way
    table move by at least the protection interval while every published
    relation still holds: the hypercube method in two dimensions (Hundepool
    et al. 2012, sec. 4.4). Moving ``d`` persons around a rectangle of
    interior cells keeps every row and column total; moving them between
    two rows of one column changes those two row totals, which are then
    suppressed with them (and likewise between two columns). A total is
    protected by a move through one of its cells. Returns the cells to
    suppress in addition, or None when the table is not two-way or no move
    suffices (the caller then falls back on single cells)."""
    if len(new.dims) != 2 or target.cell == (MARGIN, MARGIN):
        return None
    r, c = target.cell
    rows = sorted({k[0] for k in new.interior()}, key=str)
    cols = sorted({k[1] for k in new.interior()}, key=str)

    def v(row: Any, col: Any) -> float | None:
        shown = new.cells.get((row, col))
        return new.truth.get((row, col)) if shown is None else shown

    moves = []  # (cells moving with the target, cells moving against it)
    if r != MARGIN and c != MARGIN:
        moves += [
            ([(r2, c2)], [(r, c2), (r2, c)]) for r2 in rows for c2 in cols if r2 != r and c2 != c
        ]
        moves += [([(r, MARGIN)], [(r2, c), (r2, MARGIN)]) for r2 in rows if r2 != r]
        moves += [([(MARGIN, c)], [(r, c2), (MARGIN, c2)]) for c2 in cols if c2 != c]
    elif c == MARGIN:
        moves += [([(r, c2)], [(r2, c2), (r2, MARGIN)]) for r2 in rows for c2 in cols if r2 != r]
    else:
        moves += [([(r2, c)], [(r2, c2), (MARGIN, c2)]) for r2 in rows for c2 in cols if c2 != c]
    x = v(r, c)
    best: tuple[float, list[tuple[Any, ...]]] | None = None
    for along, against in moves:
        along_v, against_v = [v(*k) for k in along], [v(*k) for k in against]
        if x is None or any(val is None for val in along_v + against_v):
            continue
        up, down = min(against_v), min([x, *along_v])
        if x + up < threshold or up + down < threshold:
            continue
        extra = [k for k in along + against if new.cells.get(k) is not None]
        cost = sum(new.cells[k] or 0.0 for k in extra)
        if best is None or cost < best[0]:
            best = (cost, extra)
    return best[1] if best and best[1] else None


def _candidates(new: CountTable, target: Interval) -> list[tuple[Any, ...]]:
    shown = [k for k, v in new.cells.items() if v is not None]
    same_table = target.table == new.id

    def rank(key: tuple[Any, ...]) -> tuple[int, int, float]:
        shares = sum(a == b for a, b in zip(key, target.cell, strict=False)) if same_table else 0
        near = 0 if (same_table and shares >= len(key) - 1) else 1
        total = 1 if MARGIN in key else 0
        return (near, total, float(new.cells[key] or 0.0))

    return sorted(shown, key=rank)


def summary(tables: Sequence[CountTable], threshold: float) -> dict[str, Any]:
    """Counts of primary and secondary suppressions and the information lost
    (the share of persons counted in suppressed interior cells, where the
    true values are known)."""
    primary = sum(len(t.sensitive) for t in tables)
    secondary = sum(len(set(t.suppressed()) - t.sensitive) for t in tables)
    cells = sum(len(t.cells) for t in tables)
    return {"cells": cells, "primary": primary, "secondary": secondary, "threshold": threshold}

"""The attacker's linear programs solved by HiGHS directly
(:mod:`reintegration.disclosure.lp`) give what ``scipy.optimize.linprog`` gives:
the same status and the same optimum, bit for bit, on random systems of linked
count tables, and on unbounded and infeasible ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog

from reintegration.disclosure import lp
from reintegration.disclosure.protection import CountTable, _System


def _reference(a, b, c):
    res = linprog(c, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
    return int(res.status), (float(res.fun) if res.status == 0 else None)


def _table_system(rng, rows, cols, hidden):
    """A rows x cols table with margins, ``hidden`` interior cells unknown:
    the equations of the margins and of the cells that are shown."""
    values = rng.integers(0, 40, size=(rows, cols)).astype(float)
    n = rows * cols
    eqs, rhs = [], []
    for r in range(rows):
        eqs.append({r * cols + c: 1.0 for c in range(cols)})
        rhs.append(values[r].sum())
    for c in range(cols):
        eqs.append({r * cols + c: 1.0 for r in range(rows)})
        rhs.append(values[:, c].sum())
    unknown = set(rng.choice(n, size=hidden, replace=False).tolist())
    for j in range(n):
        if j not in unknown:
            eqs.append({j: 1.0})
            rhs.append(values.ravel()[j])
    data, ri, ci = [], [], []
    for i, row in enumerate(eqs):
        for j, v in row.items():
            ri.append(i)
            ci.append(j)
            data.append(v)
    a = sparse.csr_matrix((data, (ri, ci)), shape=(len(eqs), n))
    return a, np.array(rhs), sorted(unknown)


@pytest.mark.parametrize("seed", range(6))
def test_every_cell_bound_equals_linprog_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    a, b, unknown = _table_system(rng, rows, cols, hidden=int(rng.integers(4, rows * cols // 2)))
    system = lp.EqualitySystem(a, b, a.shape[1])
    assert system.direct
    solved = 0
    for j in unknown:
        for sign in (1.0, -1.0):
            c = np.zeros(a.shape[1])
            c[j] = sign
            got = system.minimise(c)[:2]
            assert got == _reference(a, b, c)
            solved += got[0] == 0
    assert solved == 2 * len(unknown)  # a table's hidden cells are bounded by its margins


def test_unbounded_and_infeasible_are_reported_as_linprog_numbers_them():
    # x0 - x1 = 0: x0 can grow without end
    a = sparse.csr_matrix(np.array([[1.0, -1.0, 0.0]]))
    b = np.array([0.0])
    system = lp.EqualitySystem(a, b, 3)
    c = np.array([-1.0, 0.0, 0.0])
    assert system.minimise(c)[:2] == _reference(a, b, c) == (3, None)
    # x0 + x1 = -1 with x >= 0 has no solution
    a = sparse.csr_matrix(np.array([[1.0, 1.0]]))
    b = np.array([-1.0])
    infeasible = lp.EqualitySystem(a, b, 2)
    status, fun, message = infeasible.minimise(np.array([1.0, 0.0]))
    assert (status, fun) == _reference(a, b, np.array([1.0, 0.0])) == (2, None)
    assert "nfeasible" in message


def test_a_system_without_equations_goes_through_linprog():
    system = lp.EqualitySystem(None, None, 2)
    assert not system.direct
    assert system.minimise(np.array([1.0, 2.0]))[:2] == (0, 0.0)
    assert system.minimise(np.array([-1.0, 2.0]))[0] == 3


def test_linked_tables_bounds_match_linprog():
    """Two tables of one population sharing a margin: the protection's
    bounds of every suppressed cell equal those from linprog."""
    rng = np.random.default_rng(11)
    counts = rng.integers(1, 30, size=(4, 3)).astype(float)
    cells = {}
    for i in range(4):
        for j in range(3):
            cells[(f"r{i}", f"c{j}")] = counts[i, j]
        cells[(f"r{i}", "Total")] = counts[i].sum()
    for j in range(3):
        cells[("Total", f"c{j}")] = counts[:, j].sum()
    cells[("Total", "Total")] = counts.sum()
    for key in [("r0", "c0"), ("r0", "c1"), ("r2", "c0"), ("r2", "c1")]:
        cells[key] = None
    table = CountTable("t", "people", ("row", "col"), cells, {("r0", "c0")})
    system = _System([table])
    a, b = system.matrix(), np.asarray(system.rhs)
    for key in table.suppressed():
        coef = system.coefficients(0, key)
        c = np.zeros(system.n)
        for i, v in coef.items():
            c[i] = v
        lo = _reference(a, b, c)[1]
        hi = -_reference(a, b, -c)[1]
        assert system.bounds(0, key) == (max(lo, 0.0), hi)

"""The faster routes of the disclosure checks give what the direct ones give:
the grouped margin lookup of the differencing system (the same coefficients,
in the same order, as a scan of every interior cell) and ACRO's table check
run by :func:`reintegration.disclosure.acro.acro_call` (the same record as a
direct call; the caller's pandas options untouched; errors passed on)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from reintegration.disclosure import acro as disclosure_acro
from reintegration.disclosure.protection import MARGIN, CountTable, _System
from reintegration.disclosure.rules import load_rules


def _persons(rng) -> pd.DataFrame:
    n = 500
    return pd.DataFrame(
        {
            "instrument": rng.choice(list("abcd"), n),
            "age": rng.choice(["y", "m", "o", "s"], n),
            "sex": rng.choice(["f", "m"], n),
            "dist": rng.choice(list("slx"), n),
        }
    )


def _cube(name: str, dims: tuple[str, ...], persons: pd.DataFrame, rng) -> CountTable:
    """The counts of ``persons`` over ``dims`` with every margin (any
    variable at Total), some cells suppressed."""
    levels = [sorted(persons[d].unique()) for d in dims]
    cells: dict[tuple[str, ...], float | None] = {}
    for key in itertools.product(*[[*lv, MARGIN] for lv in levels]):
        hit = np.ones(len(persons), dtype=bool)
        for d, v in zip(dims, key, strict=True):
            if v != MARGIN:
                hit &= (persons[d] == v).to_numpy()
        cells[key] = None if rng.random() < 0.2 else float(hit.sum())
    return CountTable(name, "persons", dims, cells)


def _systems(seed: int = 7) -> list[_System]:
    rng = np.random.default_rng(seed)
    persons = _persons(rng)
    one = _cube("a", ("instrument",), persons, rng)
    two = _cube("b", ("instrument", "age"), persons, rng)
    three = _cube("c", ("instrument", "sex", "dist"), persons, rng)
    # a level that is also another variable's level ("s", "m")
    odd = _cube("d", ("age", "dist"), persons.assign(age=persons["age"].str[:1]), rng)
    return [_System([one]), _System([one, two, three]), _System([three, odd, two])]


@pytest.mark.parametrize("which", range(3))
def test_grouped_margin_coefficients_equal_the_scan(which: int) -> None:
    system = _systems()[which]
    n_margins = 0
    for t, table in enumerate(system.tables):
        for key in table.cells:
            got = system.coefficients(t, key)
            want = system.coefficients_reference(t, key)
            assert list(got.items()) == list(want.items())  # same cells, same order
            n_margins += MARGIN in key
            if MARGIN in key:
                assert len(got) > 1 or len(table.interior()) == 1
    assert n_margins > 0
    # a second lookup (from the groups built by the first) gives the same
    t, key = 0, next(k for k in system.tables[0].cells if MARGIN in k)
    assert system.coefficients(t, key) == system.coefficients_reference(t, key)


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    return pd.DataFrame(
        {
            "sex": rng.choice(["f", "m"], n),
            "instrument": rng.choice(list("abc"), n, p=[0.6, 0.35, 0.05]),
            "earnings": rng.gamma(2.0, 800.0, n),
        }
    )


def _record(session, call) -> tuple:
    before = session.results.output_id
    call()
    rec = session.results.get(f"output_{before}")
    return rec.status, rec.summary, rec.sdc, rec.outcome, rec.output[0]


@pytest.mark.parametrize(("values", "aggfunc"), [(None, None), ("earnings", "mean")])
def test_acro_call_records_what_a_direct_call_records(values, aggfunc) -> None:
    rules = load_rules()
    df = _frame(3)
    vals = None if values is None else df[values]
    kwargs = dict(values=vals, aggfunc=aggfunc, margins=True, margins_name="Total")
    direct = disclosure_acro.new_acro_session(rules)
    fast = disclosure_acro.new_acro_session(rules)

    def by_hand():
        with disclosure_acro.quiet_acro():
            direct.crosstab([df["sex"]], [df["instrument"]], **kwargs)

    want = _record(direct, by_hand)
    with pd.option_context("display.max_rows", 77):
        got = _record(
            fast,
            lambda: disclosure_acro.acro_call(
                fast.crosstab, [df["sex"]], [df["instrument"]], **kwargs
            ),
        )
        assert pd.get_option("display.max_rows") == 77  # the caller's options are back
    assert got[:3] == want[:3]
    assert got[0] != "pass"  # the small instrument is flagged: the check ran
    pd.testing.assert_frame_equal(got[3], want[3])
    pd.testing.assert_frame_equal(got[4], want[4])


def test_acro_call_passes_results_and_errors_on() -> None:
    assert disclosure_acro.acro_call(lambda a, b=0: a + b, 2, b=3) == 5
    seen = {}

    def options() -> int:
        seen["rows"] = pd.get_option("display.max_rows")
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        disclosure_acro.acro_call(options)
    assert seen["rows"] == 2  # terse reprs while ACRO runs


def test_a_shared_memo_gives_the_equations_of_a_fresh_system() -> None:
    """Systems of the same tables with other cells suppressed (the rounds of
    :func:`protect`) share what depends on the cells only: their equations
    are those of a system built from nothing."""
    memo: dict = {}
    first_tables = _systems()[1].tables
    for round_ in range(4):
        # the same cells each round, other ones suppressed
        tables = _systems(seed=round_)[1].tables if round_ else first_tables
        for table, first in zip(tables, first_tables, strict=True):
            assert list(table.cells) == list(first.cells)
        shared, fresh = _System(tables, memo), _System(tables)
        assert shared.rows == fresh.rows and shared.rhs == fresh.rhs
        assert [list(r) for r in shared.rows] == [list(r) for r in fresh.rows]  # order too
        assert (shared.matrix() != fresh.matrix()).nnz == 0
        key = next(k for k in tables[1].cells if tables[1].cells[k] is None)
        assert shared.bounds(1, key) == fresh.bounds(1, key)
    assert any(k[0] == "links" and v for k, v in memo.items())

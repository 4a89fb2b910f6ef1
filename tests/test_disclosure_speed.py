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


def _cube(name: str, dims: tuple[str, ...], levels: list[list[str]], rng) -> CountTable:
    """A table over ``dims`` with every margin (any variable at Total), some
    cells suppressed."""
    cells: dict[tuple[str, ...], float | None] = {}
    for key in itertools.product(*[[*lv, MARGIN] for lv in levels]):
        cells[key] = None if rng.random() < 0.2 else float(rng.integers(0, 50))
    return CountTable(name, "persons", dims, cells)


def _systems() -> list[_System]:
    rng = np.random.default_rng(7)
    one = _cube("a", ("instrument",), [list("abcd")], rng)
    two = _cube("b", ("instrument", "age"), [list("abcd"), ["y", "m", "o"]], rng)
    three = _cube("c", ("instrument", "sex", "dist"), [list("abcd"), ["f", "m"], list("slx")], rng)
    # a level that is also another variable's level, and a key of one level only
    odd = _cube("d", ("age", "dist"), [["s", "m"], ["s", "m", "l"]], rng)
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

"""BSN helpers: elfproef, normalisation, generation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.linking import bsn


@pytest.mark.parametrize("value", ["111222333", "123456782"])
def test_known_valid_numbers_pass(value: str) -> None:
    assert bsn.elfproef(value)


@pytest.mark.parametrize(
    "value",
    ["000000000", "123456789", "111222334", "12345678", "1234567820", "12345678a", "", " 11122233",
     "１２３４５６７８２"],  # the last one: full-width digits are not ASCII digits
)
def test_invalid_numbers_fail(value: str) -> None:
    assert not bsn.elfproef(value)


def test_elfproef_rejects_non_strings() -> None:
    assert not bsn.elfproef(111222333)  # type: ignore[arg-type]
    assert not bsn.elfproef(None)  # type: ignore[arg-type]


def test_weighted_sum_by_hand() -> None:
    # 9*1 + 8*2 + 7*3 + 6*4 + 5*5 + 4*6 + 3*7 + 2*8 - 1*2 = 154 = 14 * 11
    digits = [1, 2, 3, 4, 5, 6, 7, 8, 2]
    assert sum(int(w) * d for w, d in zip(bsn.WEIGHTS, digits, strict=True)) == 154


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
        ("", None),
        ("   ", None),
        (" 111222333 ", "111222333"),
        ("111.222.333", "111222333"),
        ("111 222 333", "111222333"),
        ("11222333", "011222333"),  # eight digits: a number that lost its leading zero
        (11222333, "011222333"),
        (11222333.0, "011222333"),
        ("11222333.0", "011222333"),
        ("1234567", "1234567"),  # seven digits are not padded
        ("12345678a", "12345678a"),
    ],
)
def test_normalise(raw: object, expected: str | None) -> None:
    assert bsn.normalise(raw) == expected


def test_series_versions_agree_with_scalar_versions() -> None:
    rng = np.random.default_rng(1)
    valid = bsn.generate(rng, 300)
    raw = list(valid[:100]) + [v.lstrip("0") for v in valid[100:150]] + list(
        bsn.typo(rng, valid[150:250])
    ) + ["", None, " 123.456.782 ", "12345678a", "1234567"]
    s = pd.Series(raw, dtype=object)
    norm = bsn.normalise_series(s)
    expected = [bsn.normalise(x) for x in raw]
    assert [None if pd.isna(v) else v for v in norm] == expected
    checks = bsn.elfproef_series(norm)
    assert list(checks) == [bsn.elfproef(x) if x is not None else False for x in expected]


def test_series_of_numbers_and_floats() -> None:
    s = pd.Series([11222333, 123456782], dtype="int64")
    assert list(bsn.normalise_series(s)) == ["011222333", "123456782"]
    f = pd.Series([11222333.0, np.nan])
    out = bsn.normalise_series(f)
    assert out.iloc[0] == "011222333" and pd.isna(out.iloc[1])


def test_generate_gives_unique_valid_numbers_deterministically() -> None:
    a = bsn.generate(np.random.default_rng(7), 5000)
    b = bsn.generate(np.random.default_rng(7), 5000)
    assert list(a) == list(b)
    assert len(set(a)) == 5000
    assert all(bsn.elfproef(x) for x in a)
    assert not any(x.startswith("00") for x in a)
    # about a tenth start with a zero: exports that store the BSN as a number lose it
    share = np.mean([x.startswith("0") for x in a])
    assert 0.07 < share < 0.13


def test_generate_respects_exclusions() -> None:
    first = bsn.generate(np.random.default_rng(3), 100)
    again = bsn.generate(np.random.default_rng(3), 100, exclude=set(first))
    assert not set(first) & set(again)


def test_a_single_digit_typo_always_fails() -> None:
    rng = np.random.default_rng(11)
    valid = bsn.generate(rng, 2000)
    wrong = bsn.typo(rng, valid)
    assert (wrong != valid).all()
    assert not bsn.elfproef_series(pd.Series(wrong)).any()
    # exactly one digit differs
    diffs = [sum(a != b for a, b in zip(x, y, strict=True)) for x, y in zip(valid, wrong,
                                                                                strict=True)]
    assert set(diffs) == {1}


def test_passes_as_int_is_the_elfproef_of_the_nine_digit_text() -> None:
    rng = np.random.default_rng(11)
    numbers = np.concatenate([
        rng.integers(0, 10**9, 20_000),
        np.arange(17_000_000, 17_020_000),  # a RINPERSOON block's start
        [0, 1, 11, 10**8, 123456782, 111222333, 999_999_999],
    ])
    expected = np.array([bsn.elfproef(f"{v:09d}") for v in numbers])
    got = bsn.passes_as_int(numbers)
    assert got.dtype == bool and got.sum() > 3_000
    assert np.array_equal(got, expected)

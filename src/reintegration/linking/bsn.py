"""The Dutch citizen service number (BSN): check, normalise, generate.

A BSN has nine digits and carries no information. Its check is the
*elfproef* (eleven test): for digits :math:`d_1 \\dots d_9`,

.. math::

    9 d_1 + 8 d_2 + 7 d_3 + 6 d_4 + 5 d_5 + 4 d_6 + 3 d_7 + 2 d_8 - d_9
    \\equiv 0 \\pmod{11}

and ``000000000`` is rejected. Changing any single digit always breaks the
test (11 is prime and every weight is smaller than 11), so a one-digit typo
is always caught; a swap of two digits usually is.

Municipal systems that store the BSN as a number drop its leading zero.
:func:`normalise` repairs exactly that case: a purely numeric value of
**eight** digits gets one leading zero. Shorter numbers are left alone,
because padding arbitrary short numbers would turn junk into a string that
passes the elfproef one time in eleven. (The synthetic generator never issues
BSNs that start with two zeros, so an export that stores BSNs as numbers loses
at most one digit.)
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

#: weights of the elfproef for digits d1..d9
WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1], dtype=np.int64)

_SEPARATORS = re.compile(r"[\s.\-]")
_FLOAT_ZERO = re.compile(r"^(\d+)\.0+$")


def elfproef(bsn: str) -> bool:
    """Whether ``bsn`` is nine digits that pass the eleven test.

    >>> elfproef("111222333"), elfproef("123456782"), elfproef("123456789")
    (True, True, False)
    """
    if not isinstance(bsn, str) or len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit():
        return False
    if bsn == "000000000":
        return False
    total = sum(int(d) * int(w) for d, w in zip(bsn, WEIGHTS, strict=True))
    return total % 11 == 0


def normalise(raw: Any) -> str | None:
    """Clean one exported BSN value; ``None`` when it is empty or missing.

    Rules, in order:

    1. missing values (``None``, NaN, ``pd.NA``) and empty strings give ``None``;
    2. integers become their decimal digits; floats with an integral value
       (a numeric column with gaps read as float) and strings such as
       ``"11222333.0"`` lose the ``.0``;
    3. surrounding white space and separators inside the number (spaces,
       dots, hyphens: ``123.456.782``) are removed;
    4. a purely numeric value of eight digits gets one leading zero (a BSN
       stored as a number lost it).

    Anything else is returned cleaned but unchanged, so a quality check can
    report it; use :func:`elfproef` to decide validity.
    """
    if raw is None or raw is pd.NA:
        return None
    if isinstance(raw, bool | np.bool_):
        return None
    if isinstance(raw, int | np.integer):
        text = str(int(raw))
    elif isinstance(raw, float | np.floating):
        if np.isnan(raw):
            return None
        text = str(int(raw)) if float(raw).is_integer() else repr(float(raw))
    else:
        text = str(raw)
    text = text.strip()
    match = _FLOAT_ZERO.match(text)
    if match:
        text = match.group(1)
    text = _SEPARATORS.sub("", text)
    if not text:
        return None
    if len(text) == 8 and text.isascii() and text.isdigit():
        text = "0" + text
    return text


def normalise_series(values: pd.Series) -> pd.Series:
    """Vectorised :func:`normalise`: a string Series with ``<NA>`` for missing."""
    s = values.copy()
    if pd.api.types.is_float_dtype(s.dtype):
        integral = s.notna() & (s == np.floor(s))
        out = pd.Series(pd.NA, index=s.index, dtype="string")
        out[integral] = s[integral].astype("int64").astype(str)
        out[s.notna() & ~integral] = s[s.notna() & ~integral].astype(str)
        s = out
    elif pd.api.types.is_integer_dtype(s.dtype):
        s = s.astype("Int64").astype("string")
    else:
        s = s.astype("string")
    s = s.str.strip().str.replace(_FLOAT_ZERO, r"\1", regex=True)
    s = s.str.replace(_SEPARATORS, "", regex=True)
    s = s.mask(s == "")
    eight = s.str.fullmatch(r"[0-9]{8}").fillna(False).astype(bool)
    s = s.mask(eight, "0" + s)
    return s


def elfproef_series(values: pd.Series) -> pd.Series:
    """Vectorised :func:`elfproef` over a Series of strings (missing -> False)."""
    s = values.astype("string")
    ok = s.str.fullmatch(r"[0-9]{9}").fillna(False).astype(bool).to_numpy()
    result = np.zeros(len(s), dtype=bool)
    if ok.any():
        digits = _digits(s[ok].to_numpy(dtype=str))
        result[ok] = _passes(digits)
    return pd.Series(result, index=values.index, name=values.name)


def _digits(strings: np.ndarray) -> np.ndarray:
    """An (n, 9) integer array of the digits of nine-character digit strings."""
    raw = np.asarray(strings, dtype="S9")
    return raw.view(np.uint8).reshape(-1, 9).astype(np.int64) - ord("0")


def _passes(digits: np.ndarray) -> np.ndarray:
    total = digits @ WEIGHTS
    return (total % 11 == 0) & (digits.sum(axis=1) > 0)


def elfproef_digits(digits: np.ndarray) -> np.ndarray:
    """Vectorised check over an (n, 9) array of digits."""
    return _passes(np.asarray(digits, dtype=np.int64))


def passes_as_int(numbers: np.ndarray) -> np.ndarray:
    """Vectorised elfproef over non-negative integers below 10**9, read as
    nine digits with leading zeros (so 0 and other all-zero reads fail)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    # the weighted digit sum one digit at a time, from the last: the same
    # integers as the (n, 9) digit matrix times WEIGHTS, without the matrix
    total = np.zeros(numbers.shape, dtype=np.int64)
    rest = numbers.copy()
    for weight in WEIGHTS[::-1]:
        total += weight * (rest % 10)
        rest //= 10
    return (total % 11 == 0) & (numbers != 0)


def generate(rng: np.random.Generator, n: int, *, exclude: set[str] | None = None) -> np.ndarray:
    """``n`` distinct valid BSNs (strings of nine digits) drawn with ``rng``.

    Digits d1..d8 are drawn uniformly, excluding a leading ``00``; d9 is the
    check digit that makes the elfproef pass (draws whose check digit would be
    10 are discarded). The result is in the order drawn, so it is a
    deterministic function of the generator's state.
    """
    taken = set(exclude or ())
    out: list[np.ndarray] = []
    have = 0
    seen: set[str] = set()
    while have < n:
        batch = max(64, int((n - have) * 1.2) + 16)
        head = rng.integers(0, 10, size=(batch, 8), dtype=np.int64)
        # no BSN starting with two zeros (see the module docstring)
        head[:, 1] = np.where(head[:, 0] == 0, rng.integers(1, 10, size=batch), head[:, 1])
        check = (head @ WEIGHTS[:8]) % 11
        keep = check < 10
        digits = np.column_stack([head[keep], check[keep]])
        strings = (digits + ord("0")).astype(np.uint8).view("S9").ravel().astype(str)
        fresh = []
        for s in strings:  # keeps draw order; n is at most ~10^5 per call
            if s not in seen and s not in taken:
                seen.add(s)
                fresh.append(s)
        out.append(np.array(fresh, dtype="<U9"))
        have += len(fresh)
    return np.concatenate(out)[:n]


def typo(rng: np.random.Generator, bsns: np.ndarray) -> np.ndarray:
    """Each BSN with one digit replaced by a different digit: the result always
    fails the elfproef."""
    digits = _digits(np.asarray(bsns, dtype=str))
    n = len(digits)
    pos = rng.integers(0, 9, size=n)
    shift = rng.integers(1, 10, size=n)
    rows = np.arange(n)
    digits[rows, pos] = (digits[rows, pos] + shift) % 10
    return (digits + ord("0")).astype(np.uint8).view("S9").ravel().astype(str)

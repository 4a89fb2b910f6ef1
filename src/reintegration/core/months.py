"""Calendar months as integers: one origin for the whole compendium.

A month is counted from January 1970 (numpy's ``datetime64[M]`` origin):
``1970-01`` is 0, ``2019-01`` is 588. Every module that turns ``YYYY-MM``
text into an index, or an index back into text, uses these functions, so an
index computed in one step means the same month in every other step.
Quarters and years are whole multiples of 3 and 12 months from the same
origin, so ``index // 3`` and ``index // 12`` never straddle a calendar
quarter or year.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: the first year of the month count
ORIGIN_YEAR = 1970


def index(value: Any) -> int:
    """Months since 1970-01 of ``YYYY-MM`` (or longer ISO text such as
    ``YYYY-MM-DD``, or a date)."""
    if isinstance(value, (dt.date, pd.Timestamp)):
        return (value.year - ORIGIN_YEAR) * 12 + value.month - 1
    text = str(value)
    try:
        year, month = int(text[:4]), int(text[5:7])
    except ValueError:
        raise ValueError(f"not a month YYYY-MM: {text!r}") from None
    if text[4:5] != "-" or not 1 <= month <= 12:
        raise ValueError(f"not a month YYYY-MM: {text!r}")
    return (year - ORIGIN_YEAR) * 12 + month - 1


def indices(values: pd.Series | Iterable[Any]) -> np.ndarray:
    """:func:`index` of every element (an int64 array)."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    text = series.astype(str)
    out = (text.str[:4].astype(int) - ORIGIN_YEAR) * 12 + text.str[5:7].astype(int) - 1
    return out.to_numpy(dtype=np.int64)


def text(month: int) -> str:
    """``YYYY-MM`` of a month index."""
    month = int(month)
    return f"{ORIGIN_YEAR + month // 12:04d}-{month % 12 + 1:02d}"


def texts(months: Iterable[int] | np.ndarray) -> np.ndarray:
    """``YYYY-MM`` of every month index (an object array)."""
    arr = np.asarray(months, dtype="int64").astype("datetime64[M]")
    return np.datetime_as_string(arr, unit="M").astype(object)


def quarter(month: int | np.ndarray) -> int | np.ndarray:
    """Quarter index (quarters since 1970Q1) of a month index."""
    return month // 3


def quarter_label(month: int) -> str:
    """``YYYYQn`` of a month index."""
    month = int(month)
    return f"{ORIGIN_YEAR + month // 12:04d}Q{(month % 12) // 3 + 1}"


def quarter_labels(values: pd.Series | Iterable[Any]) -> pd.Series:
    """``YYYYQn`` of each ``YYYY-MM`` (a Series of text)."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    text = series.astype(str)
    return text.str[:4] + "Q" + ((text.str[5:7].astype(int) - 1) // 3 + 1).astype(str)

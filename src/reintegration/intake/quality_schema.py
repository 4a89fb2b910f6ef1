"""The pandera schemas of the delivery check and the typing of checked values.

:func:`row_schema` holds the row checks of a canonical table (its check names
are the reason codes of :data:`reintegration.intake.quality_rules.REASONS`);
:func:`output_schema` is the contract of a checked table as it is written. The
helpers turn delivered values into comparable text, codes and types.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

from . import screening
from .ingest import DATE_COLUMNS, declared_columns
from .quality_rules import AGE_RANGE, CANONICAL_CODES, REQUIRED

# ---------------------------------------------------------------------------
# pandera schemas
# ---------------------------------------------------------------------------


def row_schema(table: str, reference_date: pd.Timestamp, columns: list[str]) -> Any:
    """The row checks of ``table``: check names are reason codes (or
    pandera's ``not_nullable``, reported as ``missing_value``)."""
    import pandera.pandas as pa

    ref = pd.Timestamp(reference_date)
    cols: dict[str, Any] = {}
    for col in columns:
        checks = []
        if col in ("start_date", "first_active"):
            checks.append(pa.Check(lambda s, r=ref: s.isna() | (s <= r), name="date_in_future"))
        if table == "benefit_spells" and col == "end_date":
            checks.append(pa.Check(lambda s, r=ref: s.isna() | (s <= r), name="end_after_export"))
        if table == "clients" and col == "birth_date":
            lo = ref - pd.DateOffset(years=AGE_RANGE[1])
            hi = ref - pd.DateOffset(years=AGE_RANGE[0])
            checks.append(
                pa.Check(
                    lambda s, lo=lo, hi=hi: s.isna() | ((s >= lo) & (s <= hi)),
                    name="implausible_birth_date",
                )
            )
        cols[col] = pa.Column(
            nullable=col not in REQUIRED.get(table, ()), checks=checks, required=False
        )
    frame_checks = []
    if {"start_date", "end_date"} <= set(columns):
        frame_checks.append(
            pa.Check(
                lambda d: (
                    d["end_date"].isna()
                    | d["start_date"].isna()
                    | (d["end_date"] >= d["start_date"])
                ),
                name="end_before_start",
            )
        )
    if {"first_active", "last_active"} <= set(columns):
        frame_checks.append(
            pa.Check(
                lambda d: (
                    d["last_active"].isna()
                    | d["first_active"].isna()
                    | (d["last_active"] >= d["first_active"])
                ),
                name="end_before_start",
            )
        )
    return pa.DataFrameSchema(cols, checks=frame_checks, name=f"{table} (row checks)")


def _schema_reason(table: str, check: str, column: Any) -> tuple[str, str | None]:
    if check == "not_nullable":
        return "missing_value", str(column)
    if check == "end_before_start":
        return check, "last_active" if table == "caseload" else "end_date"
    return check, (str(column) if isinstance(column, str) else None)


def output_schema(table: str, city: dict[str, Any], taxonomy: dict[str, Any]) -> Any:
    """The contract of a checked table, as the delivery check writes it."""
    import pandera.pandas as pa

    delivered = set(declared_columns(city, table))
    text = pa.Column(object, nullable=True, required=False)

    def code(col: str) -> Any:
        return pa.Column(
            object, pa.Check.isin(list(CANONICAL_CODES[col])), nullable=True, required=False
        )

    date = pa.Column("datetime64[ns]", nullable=True, required=False)
    cols: dict[str, Any] = {"_row": pa.Column("int64", pa.Check.ge(1), unique=True)}
    if table == "clients":
        cols |= {
            "client_id": pa.Column(object, nullable=False, unique=True),
            "bsn": pa.Column(
                object, pa.Check.str_matches(r"^[0-9]{9}$"), nullable=True, required=False
            ),
            "bsn_status": pa.Column(object, pa.Check.isin(["valid", "missing", "invalid"])),
            "bsn_padded": pa.Column(bool),
            "birth_date": date,
            "postcode": pa.Column(
                object,
                pa.Check.str_matches(r"^[1-9][0-9]{3}[A-Z]{2}$"),
                nullable=True,
                required=False,
            ),
            "house_number": pa.Column("Int64", pa.Check.gt(0), nullable=True, required=False),
        }
        cols |= {
            c: code(c)
            for c in ("sex", "household_type", "language_level", "labour_market_distance")
        }
        checks = (
            [
                pa.Check(
                    lambda d: (d["bsn_status"] == "valid") == d["bsn"].notna(),
                    name="bsn_only_when_valid",
                )
            ]
            if "bsn" in delivered
            else []
        )
    elif table == "benefit_spells":
        cols |= {
            "client_id": pa.Column(object),
            "benefit_type": code("benefit_type"),
            "start_date": pa.Column("datetime64[ns]"),
            "end_date": date,
        }
        checks = []
    elif table == "instruments":
        cols |= {
            "client_id": pa.Column(object),
            "instrument_code": pa.Column(object),
            "instrument": pa.Column(object, pa.Check.isin(list(taxonomy))),
            "start_date": pa.Column("datetime64[ns]"),
            "end_date": date,
        }
        checks = []
    else:
        cols |= {
            "case_manager": pa.Column(object),
            "team": pa.Column(object),
            "first_active": pa.Column("datetime64[ns]"),
            "last_active": date,
        }
        checks = []
    for col in delivered:
        cols.setdefault(col, text)
    return pa.DataFrameSchema(cols, checks=checks, strict=False, name=f"{table} (checked)")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, pd.Timestamp | dt.date):
        return value.isoformat()[:10]
    return str(value)


def _shown(value: Any) -> str | None:
    """A value for a quarantine or flag line: as delivered, control characters visible."""
    text = _text(value)
    return screening.visible(text) if text is not None else None


def _clean_text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _all_text(column: pd.Series) -> list[Any] | None:
    """The values of an object column when every one is a ``str`` or None."""
    if not isinstance(column.dtype, np.dtype) or column.dtype.kind != "O":
        return None
    values = column.tolist()
    return values if set(map(type, values)) <= {str, type(None)} else None


def clean_text_column(column: pd.Series) -> pd.Series:
    """:func:`_clean_text` of every value (an object column); for a column
    of texts and None without a call per value."""
    values = _all_text(column)
    if values is None:
        return column.map(_clean_text).astype(object)
    cleaned = [None if v is None else (v.strip() or None) for v in values]
    return pd.Series(cleaned, index=column.index, name=column.name, dtype=object)


def text_column(column: pd.Series) -> pd.Series:
    """:func:`_text` of every value (an object column); a column of texts
    and None is its own text."""
    if _all_text(column) is None:
        return column.map(_text_or_none).astype(object)
    return column.astype(object)


def _code_key(value: Any) -> str | None:
    """A code as a comparable string: 1, 1.0 and '1' are the same code."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text or None


def _key_series(df: pd.DataFrame, key: list[str]) -> pd.Series:
    return df[key].astype(str).agg("\x1f".join, axis=1)


def _non_ascii(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    return sum(1 for ch in unicodedata.normalize("NFC", value) if ord(ch) > 127)


def _preference(table: str, df: pd.DataFrame) -> dict[str, Any]:
    if table == "clients":
        accents = np.zeros(len(df), dtype=np.int64)
        for c in ("first_name", "surname_prefix", "last_name", "street"):
            if c in df.columns:
                accents += df[c].map(_non_ascii).to_numpy(dtype=np.int64)
        filled = df.drop(columns=["_row"]).notna().sum(axis=1)
        return {"_p1": accents, "_p2": filled.to_numpy()}
    return {"_p1": np.zeros(len(df), dtype=np.int64), "_p2": np.zeros(len(df), dtype=np.int64)}


def _typed(table: str, df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in DATE_COLUMNS.get(table, ()):
        if col in out.columns:
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    for col in out.columns:
        if col in DATE_COLUMNS.get(table, ()) or col in ("_row", "house_number", "bsn_padded"):
            continue
        out[col] = text_column(out[col])
    out["_row"] = out["_row"].astype("int64")
    return out


def _text_or_none(value: Any) -> Any:
    return _text(value)

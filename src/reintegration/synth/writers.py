"""Deterministic, atomic, custody-checked writers for the synthetic files.

Byte-identical output for the same seed:

* CSV: values are formatted here (dates by the city's ``date_format``), no
  timestamps;
* Parquet: pyarrow writes no time stamp (the ``created_by`` field names the
  pyarrow version, so bytes are stable for a given environment);
* SPSS .sav: ReadStat writes the wall-clock creation date and time into the
  file header (bytes 92-108: ``dd Mon yy`` then ``hh:mm:ss``) and pyreadstat
  offers no way to set them. :func:`write_sav` overwrites those 17 bytes with
  the export date of the delivery and ``00:00:00``, so the header carries a
  meaningful, reproducible date instead of the generation time.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.atomic import sha256_file, write_json, write_via_temp
from ..core.custody import DomainMap, check_access
from ..intake.screening import neutralise_frame
from .schema import Table

SAV_STAMP = slice(92, 109)
_SAV_STAMP_RE = re.compile(rb"\d\d [A-Z][a-z]{2} \d\d\d\d:\d\d:\d\d")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def sav_stamp(day: dt.date) -> bytes:
    return f"{day.day:02d} {MONTHS[day.month - 1]} {day.year % 100:02d}00:00:00".encode("ascii")


def patch_sav_timestamp(path: Path, day: dt.date) -> None:
    """Replace ReadStat's creation date and time in a .sav header."""
    with open(path, "r+b") as fh:
        head = fh.read(SAV_STAMP.stop)
        if head[:4] not in (b"$FL2", b"$FL3") or not _SAV_STAMP_RE.fullmatch(head[SAV_STAMP]):
            raise ValueError(f"{path}: unexpected SPSS header; cannot fix its time stamp")
        fh.seek(SAV_STAMP.start)
        fh.write(sav_stamp(day))


class Writer:
    """Writes files of one city under ``data_dir`` and records manifest entries."""

    def __init__(self, data_dir: Path, dmap: DomainMap, city: str, export_date: dt.date):
        self.data_dir = data_dir
        self.dmap = dmap
        self.city = city
        self.export_date = export_date
        self.entries: list[dict[str, Any]] = []

    def _target(self, path: Path) -> str:
        return check_access("generator", path, "write", self.dmap)

    def _record(self, path: Path, domain: str, table: str, fmt: str, rows: int | None) -> None:
        self.entries.append({
            "path": _relative(path, self.data_dir),
            "domain": domain,
            "table": table,
            "format": fmt,
            "rows": rows,
            "sha256": sha256_file(path),
            "city": self.city,
        })

    def parquet(self, path: Path, df: pd.DataFrame, spec: Table | None = None) -> None:
        domain = self._target(path)
        if spec is not None:
            _check_columns(df, spec)
        write_via_temp(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))
        self._record(path, domain, spec.table if spec else path.stem, "parquet", len(df))

    def json(self, path: Path, obj: Any, table: str) -> None:
        domain = self._target(path)
        write_json(path, obj)
        self._record(path, domain, table, "json", None)

    def sav(
        self,
        path: Path,
        df: pd.DataFrame,
        table: str,
        *,
        labels: dict[str, str] | None = None,
        value_labels: dict[str, dict[float, str]] | None = None,
    ) -> None:
        domain = self._target(path)
        out = _sav_frame(df)
        day = self.export_date

        def writer(tmp: Path) -> None:
            import pyreadstat

            pyreadstat.write_sav(
                out,
                tmp,
                column_labels={c: labels[c] for c in out.columns if labels and c in labels}
                or None,
                variable_value_labels=value_labels or None,
            )
            patch_sav_timestamp(tmp, day)

        write_via_temp(path, writer)
        self._record(path, domain, table, "sav", len(df))

    def csv(
        self,
        path: Path,
        df: pd.DataFrame,
        table: str,
        *,
        sep: str,
        encoding: str,
        errors: str,
        lineterminator: str,
        date_format: str,
    ) -> None:
        domain = self._target(path)
        out = df.copy()
        for col in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[col]):
                out[col] = out[col].dt.strftime(date_format).fillna("")
        out = neutralise_frame(out)  # every CSV the compendium writes: no live formulas
        text = out.to_csv(index=False, sep=sep, lineterminator=lineterminator)
        raw = text.encode(encoding, errors=errors)
        write_via_temp(path, lambda tmp: tmp.write_bytes(raw))
        self._record(path, domain, table, "csv", len(df))


def _relative(path: Path, data_dir: Path) -> str:
    """``path`` relative to ``data_dir``; absolute when outside it (CBS files
    written in a layout of their own, :mod:`.cbs_layout`)."""
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _check_columns(df: pd.DataFrame, spec: Table) -> None:
    expected = spec.column_names
    if any("<" in c for c in expected):
        fixed = [c for c in expected if "<" not in c]
        missing = [c for c in fixed if c not in df.columns]
    else:
        missing = [c for c in expected if c not in df.columns]
        extra = [c for c in df.columns if c not in expected]
        if extra:
            raise ValueError(f"{spec.table}: columns not in the schema: {extra}")
    if missing:
        raise ValueError(f"{spec.table}: columns missing against the schema: {missing}")


def _sav_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Dates as ``datetime.date`` (SPSS DATE11), strings with '' for missing."""
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            vals = s.dt.date.to_numpy(dtype=object)
            vals[s.isna().to_numpy()] = None
            out[col] = vals
        elif pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64")
        elif pd.api.types.is_numeric_dtype(s):
            out[col] = s.astype("float64")
        else:
            out[col] = s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)
    return pd.DataFrame(out, columns=df.columns)


def write_research_sav(w: Writer, path: Path, df: pd.DataFrame, spec: Table) -> None:
    _check_columns(df, spec)
    labels = {c.name: c.meaning[:120] for c in spec.columns}
    w.sav(path, df, spec.table, labels=labels)


def numeric_codes(codes: dict[str, Any]) -> bool:
    return all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in codes.values())

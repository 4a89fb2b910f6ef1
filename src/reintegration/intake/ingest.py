"""Read a municipality's export files exactly as its city configuration declares.

A city's ``exports:`` section (``config/cities/<city>.yml``) says how its files
are written: the format (``csv`` or ``sav``), for CSV the encoding, delimiter,
date format and line terminator, and per table the file name and the mapping
of canonical column names onto the export's own column names (``null``: the
city does not deliver that column). This module reads one file at a time and
returns its rows under the canonical names, with every value as delivered:
text for CSV (nothing is guessed, so leading zeros survive), native values for
SPSS files. Dates are parsed with the declared format; a date that does not
parse is kept as missing and reported as a cell error, which the delivery
check (:mod:`reintegration.intake.quality`) turns into a quarantine line. A
configured "no end date" sentinel (``exports.open_end_sentinels``, by default
9999-12-31) in an end date is read as an open end and counted in the notes.
:attr:`Export.delivered` keeps every value as delivered (text), so quarantine
and flag lines show what the municipality sent.

Rows are numbered from 1 in file order; the header is row 0. In a CSV file
row ``n`` is on line ``n + 1`` unless a quoted value spans several lines (the
line is reported as well).

A file that cannot be read as declared raises :class:`ExportError`, naming the
file, the row and the column, and saying what to check; a message never quotes
a delivered value. These are the cases:

* the file is empty, or has a header and no rows;
* the file is in another encoding than the declared one: a byte-order mark,
  UTF-16, or valid UTF-8 where a single-byte code page is declared
  (:mod:`reintegration.intake.screening` names the encoding);
* a field longer than ``exports.max_field_bytes`` (4,096 bytes), found in
  bounded memory before the file is read whole;
* the first line holds none of the declared names (the header line is
  missing), the header repeats a column name, lacks a column the configuration
  declares, or is separated by another delimiter than the declared one;
* bytes that the declared encoding cannot decode;
* a row with more or fewer fields than the header (a truncated file, or a
  value that contains the delimiter without quotes), or broken quoting;
* a date column none of whose values matches the declared date format;
* an SPSS file that ReadStat cannot open, that holds fewer rows than its
  header declares (truncated), or whose variables have the wrong type (a date
  stored as text, a numeric code stored as text and the reverse).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import screening

#: canonical columns that hold dates, per table
DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "clients": ("birth_date",),
    "benefit_spells": ("start_date", "end_date"),
    "instruments": ("start_date", "end_date"),
    "caseload": ("first_active", "last_active"),
}
#: canonical coded columns (the city's codes are in ``exports.codes``)
CODED_COLUMNS = ("sex", "household_type", "language_level", "labour_market_distance",
                 "benefit_type")
#: canonical date columns that end a period (a configured sentinel there means "open")
END_COLUMNS = ("end_date", "last_active")
#: "no end date" sentinels read as an open end unless ``exports.open_end_sentinels`` says otherwise
DEFAULT_OPEN_END_SENTINELS = ("9999-12-31",)
#: other delimiters tried when the header does not split on the declared one
_OTHER_DELIMITERS = (";", ",", "\t", "|")
#: SPSS display formats that mark a date variable
_SPSS_DATE_FORMATS = ("DATE", "ADATE", "EDATE", "SDATE", "JDATE", "DATETIME", "YMDHMS")


class ExportError(ValueError):
    """An export file that cannot be read as its city configuration declares.

    The message names the file, the row (0 is the header; rows count from 1)
    and the column (the export's own column name), then says what is wrong and
    what to check. The same facts are attributes, for tests and reports.
    """

    def __init__(
        self,
        file: str | os.PathLike,
        row: int,
        column: str | None,
        reason: str,
        *,
        line: int | None = None,
    ):
        self.file = str(file)
        self.row = row
        self.column = column
        self.reason = reason
        self.line = line
        where = "row 0 (header)" if row == 0 else f"row {row}"
        if line is not None and row != 0:
            where += f" (line {line})"
        col = f"column {column!r}" if column is not None else "column (none)"
        super().__init__(f"{self.file}: {where}, {col}: {reason}")


@dataclass
class CellError:
    """A value that could not be read as declared (the row is kept)."""

    row: int
    column: str  # canonical name
    export_column: str
    value: str
    reason: str
    kind: str = "format"  # "format": does not parse; "range": a date outside 1678-2261


@dataclass
class Export:
    """One export file, read: rows under canonical column names.

    ``frame`` has one row per data row in file order, the delivered canonical
    columns and ``_row`` (the row number, from 1). Date columns hold
    ``datetime64`` values (missing where empty or unparsable); every other
    column holds the value as delivered: a string (``None`` when empty) for
    CSV, a string, float or ``None`` for SPSS.
    """

    table: str
    path: Path
    format: str
    columns: dict[str, str]  # canonical -> export column
    frame: pd.DataFrame
    cell_errors: list[CellError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line_terminator: str | None = None
    spss_types: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[Any, str]] = field(default_factory=dict)
    #: every delivered column as delivered (text for CSV), before dates are parsed
    delivered: pd.DataFrame | None = None
    city_exports: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def file(self) -> str:
        return self.path.name


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def declared_columns(city: dict[str, Any], table: str) -> dict[str, str]:
    """canonical column -> the export's column name, for the columns the city
    delivers (a column mapped to ``null`` is not delivered)."""
    spec = city["exports"]["files"][table]
    mapping = spec.get("columns") or {}
    return {canon: name for canon, name in mapping.items() if name is not None}


def export_path(city: dict[str, Any], table: str, folder: str | os.PathLike) -> Path:
    return Path(folder) / city["exports"]["files"][table]["file"]


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def read_export(path: str | os.PathLike, table: str, city: dict[str, Any]) -> Export:
    """Read one export file of ``table`` as ``city`` declares it."""
    path = Path(path)
    columns = declared_columns(city, table)
    if not columns:
        raise ExportError(path, 0, None, f"the configuration declares no columns for {table!r}")
    fmt = city["exports"]["format"]
    if fmt == "csv":
        return _read_csv(path, table, city, columns)
    return _read_sav(path, table, city, columns)


def read_delivery(
    city: dict[str, Any],
    folder: str | os.PathLike,
    *,
    check: Callable[[Path], Any] | None = None,
) -> dict[str, Export]:
    """Read every file the city declares from ``folder``; ``check`` is called
    with each path first (a step passes its custody check, ``ctx.check_read``)."""
    out = {}
    for table in city["exports"]["files"]:
        path = export_path(city, table, folder)
        if check is not None:
            check(path)
        elif not path.exists():
            raise FileNotFoundError(f"{path}: the delivery has no file for table {table!r}")
        out[table] = read_export(path, table, city)
    return out


def read_city(ctx: Any) -> dict[str, Export]:
    """Read the delivery of the city of a step context, custody-checked."""
    folder = ctx.paths.data_domain_dir("municipal", ctx.city_name)
    return read_delivery(ctx.city, folder, check=ctx.check_read)


def files_table(exports: dict[str, Export]) -> pd.DataFrame:
    """One row per file read: name, format, line terminator found, rows."""
    rows = []
    for table, ex in exports.items():
        term = {"\r\n": "CRLF", "\n": "LF", None: "–"}.get(ex.line_terminator, "mixed")
        rows.append(
            {"table": table, "file": ex.file, "format": ex.format, "line ends": term,
             "rows": ex.rows}
        )
    return pd.DataFrame(rows).set_index("table")


# ---- CSV -------------------------------------------------------------------


def _read_csv(path: Path, table: str, city: dict[str, Any], columns: dict[str, str]) -> Export:
    ex = city["exports"]
    encoding = ex.get("encoding", "utf-8")
    delimiter = ex.get("delimiter", ",")
    date_format = ex.get("date_format", "%Y-%m-%d")
    first_col = next(iter(columns.values()))
    _screen_bytes(path, ex, first_col)
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8) and screening.is_utf8(encoding):
        raw = raw[3:]
    if not raw.strip():
        raise ExportError(
            path, 0, first_col,
            f"the file is empty ({len(raw)} bytes): expected a header line with the columns "
            f"{', '.join(columns.values())}",
        )
    text = _decode(path, raw, encoding, delimiter)
    del raw
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ExportError(
            path, 0, first_col, f"the header cannot be parsed as CSV: {exc}"
        ) from None
    header = [h.strip() for h in header]
    _check_header(path, header, columns, delimiter)
    records, lines, blank = _records(path, reader, header, text)
    if not records:
        raise ExportError(path, 1, first_col, "the file has a header but no data rows")

    positions = {name: i for i, name in enumerate(header)}
    data: dict[str, Any] = {}
    for canon, name in columns.items():
        i = positions[name]
        values = [r[i].strip() for r in records]
        data[canon] = [v if v != "" else None for v in values]
    frame = pd.DataFrame(data, dtype=object)
    frame["_row"] = np.arange(1, len(records) + 1, dtype=np.int64)
    export = Export(table, path, "csv", dict(columns), frame, delivered=frame.copy(),
                    city_exports=ex)
    export.line_terminator = _line_terminator(text)
    declared = ex.get("line_terminator", "\n")
    if export.line_terminator not in (None, declared):
        export.notes.append(
            f"line terminator declared {declared!r}, found "
            f"{export.line_terminator if export.line_terminator != 'mixed' else 'a mix'!r}"
        )
    if blank:
        export.notes.append(f"{blank} blank line(s) skipped")
    if not text.endswith(("\n", "\r")):
        export.notes.append("the file does not end with a line terminator")
    extra = [h for h in header if h not in columns.values()]
    if extra:
        export.notes.append(f"columns not declared (ignored): {', '.join(extra)}")
    for canon in DATE_COLUMNS.get(table, ()):
        if canon in columns:
            frame[canon] = _parse_dates(export, canon, date_format, lines)
    return export


def _screen_bytes(path: Path, ex: dict[str, Any], first_col: str) -> None:
    """Before the file is read whole: its actual encoding, and no field longer
    than ``exports.max_field_bytes`` (scanned in chunks: bounded memory)."""
    encoding = ex.get("encoding", "utf-8")
    delimiter = ex.get("delimiter", ",")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ExportError(
            path, 0, None, f"unknown encoding {encoding!r} in exports.encoding"
        ) from None
    with open(path, "rb") as fh:
        head = fh.read(4096)
    actual = screening.actual_encoding(head, encoding)
    if actual:
        raise ExportError(
            path, 0, first_col,
            f"the file is encoded in {actual}, not in the declared {encoding}: ask for an "
            "export in the declared encoding, or change exports.encoding",
        )
    limit = int(ex.get("max_field_bytes", screening.MAX_FIELD_BYTES))
    over = screening.longest_field_over(path, delimiter.encode(encoding), limit)
    if over is None:
        return
    line, index, seen = over
    header = screening.header_names(path, encoding, delimiter, limit)
    column = header[index] if index < len(header) else None
    where = "in the header" if line == 1 else "in this row"
    raise ExportError(
        path, max(line - 1, 0), column,
        f"a field {where} is longer than {limit:,} bytes (more than {seen:,} bytes read): "
        "not a value the export should hold (a missing closing quote, or a damaged file); "
        "the file was not read further",
        line=line,
    )


def _records(
    path: Path, reader: Any, header: list[str], text: str
) -> tuple[list[list[str]], list[int], int]:
    records: list[list[str]] = []
    lines: list[int] = []
    blank = 0
    row = 0
    while True:
        start = reader.line_num + 1  # the line the next record starts on
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ExportError(
                path, row + 1, _quoted_column(text, start, reader.dialect.delimiter, header),
                f"the row cannot be parsed as CSV ({exc}): a quote is not closed, or text "
                "follows a closing quote; check the quoting of its values",
                line=start,
            ) from None
        if not fields or (len(fields) == 1 and not fields[0].strip() and len(header) > 1):
            blank += 1
            continue
        row += 1
        if len(fields) != len(header):
            _ragged(path, row, reader.line_num, fields, header, text)
        records.append(fields)
        lines.append(reader.line_num)
    return records, lines, blank


def _decode(path: Path, raw: bytes, encoding: str, delimiter: str) -> str:
    first = screening.utf8_in_single_byte(raw, encoding)
    if first is not None:
        line, column = _locate(raw, first, encoding, delimiter)
        raise ExportError(
            path, line - 1, column,
            f"the file is valid UTF-8 (its first non-ASCII letter is here), not the declared "
            f"{encoding}: read as {encoding} every accented letter would be garbled (é as Ã©); "
            "ask for an export in the declared encoding, or set exports.encoding to utf-8",
            line=line,
        )
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line, column = _locate(raw, exc.start, encoding, delimiter)
        bad = raw[exc.start:exc.end]
        raise ExportError(
            path, line - 1, column,
            f"byte(s) {bad.hex(' ')} cannot be decoded as {encoding}: the file is not in the "
            "declared encoding (check exports.encoding) or is damaged",
            line=line,
        ) from None


def _locate(raw: bytes, offset: int, encoding: str, delimiter: str) -> tuple[int, str | None]:
    """(line, column name) of the byte at ``offset``, quotes not followed."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    prefix = raw[line_start:offset].decode(encoding, errors="replace")
    field_index = prefix.count(delimiter)
    header_line = raw.split(b"\n", 1)[0].decode(encoding, errors="replace").rstrip("\r")
    header = header_line.split(delimiter)
    column = header[field_index].strip() if field_index < len(header) else None
    return line, column


def _check_header(path: Path, header: list[str], columns: dict[str, str], delimiter: str) -> None:
    """Messages name declared columns and counts, never the first line's
    content: when the header line is missing, that line is a client's data."""
    seen = set(header)
    missing = [name for name in columns.values() if name not in seen]
    if len(missing) == len(columns) and len(columns) > 1:
        _other_delimiter(path, header, columns, delimiter, missing)
        raise ExportError(
            path, 0, missing[0],
            f"none of the declared column names is in the first line ({len(header)} "
            "field(s)): the header line is missing, or the file holds another table; "
            "check the export or exports.files.<table>.columns",
        )
    for i, name in enumerate(header):
        if name in header[:i]:
            raise ExportError(
                path, 0, name,
                "the header names this column twice: the values cannot be told apart; "
                "ask for a corrected export",
            )
    if not missing:
        return
    _other_delimiter(path, header, columns, delimiter, missing)
    raise ExportError(
        path, 0, missing[0],
        f"required column(s) missing from the header: {', '.join(missing)} "
        f"(the header has {len(header)} column(s)); check the export or "
        "exports.files.<table>.columns",
    )


def _other_delimiter(
    path: Path, header: list[str], columns: dict[str, str], delimiter: str, missing: list[str]
) -> None:
    joined = delimiter.join(header)
    for other in _OTHER_DELIMITERS:
        if other == delimiter:
            continue
        split = {h.strip() for h in joined.split(other)}
        if len(split) > 1 and all(name in split for name in columns.values()):
            raise ExportError(
                path, 0, missing[0],
                f"the header is separated by {other!r}, not by the declared delimiter "
                f"{delimiter!r}: check exports.delimiter",
            )


def _ragged(
    path: Path, row: int, line: int, fields: list[str], header: list[str], text: str
) -> None:
    n, k = len(header), len(fields)
    if k < n:
        column = header[k]
        what = f"has {k} field(s) where the header has {n}; values from column {column!r} on " \
               "are missing"
    else:
        column = header[-1]
        what = f"has {k} fields where the header has {n}: more values than columns"
    last = line >= text.rstrip("\r\n").count("\n") + 1  # the row is on the last line
    if k < n and last:
        cause = "the file looks truncated (cut off in this row)"
    else:
        cause = "the file is truncated, or a value contains the delimiter without quotes"
    raise ExportError(path, row, column, f"the row {what}: {cause}", line=line)


def _quoted_column(text: str, line: int, delimiter: str, header: list[str]) -> str | None:
    """The column of the first value on ``line`` whose quotes do not pair up."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    for i, value in enumerate(lines[line - 1].split(delimiter)):
        if value.count('"') % 2 or (value.startswith('"') and not value.endswith('"')):
            return header[i] if i < len(header) else None
    return None


def _line_terminator(text: str) -> str | None:
    crlf = text.count("\r\n")
    lf = text.count("\n")
    if lf == 0:
        return None
    if crlf == lf:
        return "\r\n"
    if crlf == 0:
        return "\n"
    return "mixed"


def _sentinels(city_exports: dict[str, Any]) -> list[dt.date]:
    """The configured "no end date" sentinels (``exports.open_end_sentinels``)."""
    given = city_exports.get("open_end_sentinels", DEFAULT_OPEN_END_SENTINELS)
    return [dt.date.fromisoformat(str(v)) for v in given or ()]


def _parse_dates(
    export: Export, canon: str, date_format: str, lines: list[int] | None = None
) -> pd.Series:
    values = export.frame[canon]
    name = export.columns[canon]
    if canon in END_COLUMNS:
        sentinels = _sentinels(export.city_exports)
        texts = {d.strftime(date_format) for d in sentinels} | {d.isoformat() for d in sentinels}
        open_end = values.isin(texts)
        if open_end.any():
            export.notes.append(
                f"{int(open_end.sum())} value(s) in column {name!r} are a configured 'no end "
                "date' sentinel (exports.open_end_sentinels): read as no end date"
            )
            values = values.where(~open_end, None)
    present = values.notna()
    parsed = pd.to_datetime(values.where(present), format=date_format, errors="coerce")
    failed = present & parsed.isna()
    if failed.any():
        if failed.sum() == present.sum() and present.sum() >= 2:
            i = int(np.flatnonzero(failed.to_numpy())[0])
            raise ExportError(
                export.path, i + 1, name,
                f"none of the {int(present.sum())} dates in this column matches the declared "
                f"date format {date_format!r}: check exports.date_format",
                line=lines[i] if lines else None,
            )
        for i in np.flatnonzero(failed.to_numpy()):
            value = str(values.iloc[i])
            reason, kind = _date_problem(value, date_format)
            export.cell_errors.append(CellError(int(i) + 1, canon, name, value, reason, kind))
    return parsed.astype("datetime64[ns]")


def _date_problem(value: str, date_format: str) -> tuple[str, str]:
    try:
        dt.datetime.strptime(value, date_format)
    except ValueError:
        return f"not a date in the declared format {date_format!r}", "format"
    return (
        f"a date in the declared format {date_format!r} but outside the years 1678-2261 "
        "(and not a configured 'no end date' sentinel)",
        "range",
    )


def _sav_dates(export: Export, canon: str) -> pd.Series:
    """SPSS date values as datetime64, with the same sentinel and range rules as CSV.

    ReadStat gives a date variable as ``datetime.date`` (or ``datetime``)
    objects: those are converted in one vectorised call. Any other value (a
    file written by another tool) takes the value-by-value route, which gives
    the same result for dates."""
    values = export.frame[canon]
    sentinels = set(_sentinels(export.city_exports)) if canon in END_COLUMNS else set()
    raw = values.to_numpy(dtype=object)
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in raw],
                       dtype=bool)
    present = np.flatnonzero(~missing)
    if not all(isinstance(v, dt.date) for v in raw[present]):
        out, n_open = _sav_dates_by_value(export, canon, raw, sentinels)
        _note_open_ends(export, canon, n_open)
        return pd.Series(pd.to_datetime(pd.Series(out, dtype=object)),
                         index=values.index).astype("datetime64[ns]")
    open_end = np.zeros(len(raw), dtype=bool)
    if sentinels:
        open_end[present] = [(v.date() if isinstance(v, dt.datetime) else v) in sentinels
                             for v in raw[present]]
    keep = ~missing & ~open_end
    parsed = pd.to_datetime(pd.Series(raw[keep], dtype=object), errors="coerce")
    parsed = parsed.to_numpy(dtype="datetime64[ns]")
    for i in np.flatnonzero(keep)[np.isnat(parsed)]:
        export.cell_errors.append(_sav_range_error(export, canon, int(i), raw[i]))
    _note_open_ends(export, canon, int(open_end.sum()))
    stamps = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[ns]")
    stamps[keep] = parsed
    return pd.Series(stamps, index=values.index)


def _note_open_ends(export: Export, canon: str, n_open: int) -> None:
    if n_open:
        export.notes.append(
            f"{n_open} value(s) in variable {export.columns[canon]!r} are a configured 'no end "
            "date' sentinel (exports.open_end_sentinels): read as no end date"
        )


def _sav_range_error(export: Export, canon: str, i: int, value: Any) -> CellError:
    return CellError(
        i + 1, canon, export.columns[canon], _shown(value),
        "a date outside the years 1678-2261 (and not a configured 'no end date' "
        "sentinel)", "range",
    )


def _sav_dates_by_value(
    export: Export, canon: str, raw: np.ndarray, sentinels: set[dt.date]
) -> tuple[list[Any], int]:
    """Value by value (values that are not all dates): (timestamps, sentinels)."""
    out: list[Any] = []
    n_open = 0
    for i, v in enumerate(raw):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(pd.NaT)
            continue
        day = v.date() if isinstance(v, dt.datetime) else v
        if isinstance(day, dt.date) and day in sentinels:
            n_open += 1
            out.append(pd.NaT)
            continue
        stamp = pd.to_datetime(v, errors="coerce")
        if pd.isna(stamp):
            export.cell_errors.append(_sav_range_error(export, canon, i, v))
        out.append(stamp)
    return out, n_open


def _shown(value: Any) -> str | None:
    """A native SPSS value as text, the way the file holds it."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# ---- SPSS ------------------------------------------------------------------


def _read_sav(path: Path, table: str, city: dict[str, Any], columns: dict[str, str]) -> Export:
    import pyreadstat

    first_col = next(iter(columns.values()))
    size = path.stat().st_size
    if size == 0:
        raise ExportError(path, 0, first_col, "the file is empty (0 bytes)")
    try:
        meta = pyreadstat.read_sav(str(path), metadataonly=True)[1]
    except pyreadstat.ReadstatError as exc:
        raise ExportError(
            path, 0, first_col,
            f"not a readable SPSS .sav file (ReadStat: {exc}); check exports.format",
        ) from None
    names = list(meta.column_names)
    types = dict(meta.original_variable_types)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ExportError(path, 0, name, "the file has this variable twice")
        seen.add(name)
    missing = [name for name in columns.values() if name not in seen]
    if missing:
        raise ExportError(
            path, 0, missing[0],
            f"required variable(s) missing: {', '.join(missing)} (the file has: "
            f"{', '.join(names)}); check the export or exports.files.<table>.columns",
        )
    declared_rows = meta.number_rows
    if declared_rows == 0:
        raise ExportError(path, 1, first_col, "the file has variables but no data rows")
    _check_sav_types(path, table, city, columns, types)
    try:
        df, meta = pyreadstat.read_sav(str(path), usecols=list(columns.values()))
    except pyreadstat.ReadstatError as exc:
        good = _readable_rows(path, declared_rows, list(columns.values()))
        raise ExportError(
            path, good + 1, first_col,
            f"the file declares {declared_rows} rows but only {good} can be read "
            f"(ReadStat: {exc}): the file looks truncated from this row on",
        ) from None
    if declared_rows not in (None, -1) and len(df) != declared_rows:  # pragma: no cover
        raise ExportError(
            path, len(df) + 1, first_col,
            f"the file declares {declared_rows} rows but holds {len(df)}: truncated",
        )
    data: dict[str, Any] = {}
    for canon, name in columns.items():
        s = df[name]
        if s.dtype == object:
            s = s.map(lambda v: None if v is None or (isinstance(v, str) and not v.strip())
                      else (v.strip() if isinstance(v, str) else v))
        data[canon] = s.astype(object).where(s.notna(), None)
    frame = pd.DataFrame(data, dtype=object)
    frame["_row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    export = Export(table, path, "sav", dict(columns), frame, spss_types=types,
                    delivered=frame.map(_shown).astype(object), city_exports=city["exports"])
    _check_sav_lengths(export, city["exports"])
    export.value_labels = {
        canon: dict(meta.variable_value_labels[name])
        for canon, name in columns.items()
        if name in meta.variable_value_labels
    }
    for canon in DATE_COLUMNS.get(table, ()):
        if canon in columns:
            frame[canon] = _sav_dates(export, canon)
    return export


def _check_sav_lengths(export: Export, ex: dict[str, Any]) -> None:
    limit = int(ex.get("max_field_bytes", screening.MAX_FIELD_BYTES))
    for canon, name in export.columns.items():
        col = export.frame[canon]
        long = col.map(lambda v: isinstance(v, str) and len(v.encode("utf-8")) > limit)
        if long.any():
            i = int(np.flatnonzero(long.to_numpy())[0])
            raise ExportError(
                export.path, i + 1, name,
                f"a value longer than {limit:,} bytes: not a value the export should hold "
                "(a damaged file or a wrong variable); check exports.max_field_bytes",
            )


def _readable_rows(path: Path, declared: int, usecols: list[str]) -> int:
    """The number of leading rows ReadStat can read (bisection on row_limit)."""
    import pyreadstat

    lo, hi = 0, declared
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            pyreadstat.read_sav(str(path), row_limit=mid, usecols=usecols[:1])
            lo = mid
        except pyreadstat.ReadstatError:
            hi = mid - 1
    return lo


def _check_sav_types(
    path: Path, table: str, city: dict[str, Any], columns: dict[str, str], types: dict[str, str]
) -> None:
    codes = city["exports"].get("codes") or {}
    for canon, name in columns.items():
        spss = str(types.get(name, ""))
        is_string = spss.upper().startswith("A")
        is_date = spss.upper().startswith(_SPSS_DATE_FORMATS)
        if canon in DATE_COLUMNS.get(table, ()):
            if not is_date:
                raise ExportError(
                    path, 0, name,
                    f"expected an SPSS date variable (such as DATE11), found format {spss}: "
                    "dates stored as text or numbers cannot be read safely; ask for a date "
                    "variable",
                )
        elif canon in CODED_COLUMNS and canon in codes:
            numeric = all(
                isinstance(v, int | float) and not isinstance(v, bool)
                for v in codes[canon].values()
            )
            if numeric and is_string:
                raise ExportError(
                    path, 0, name,
                    f"expected a numeric variable (the configured codes are numbers), found "
                    f"format {spss}",
                )
            if not numeric and not is_string:
                raise ExportError(
                    path, 0, name,
                    f"expected a string variable (the configured codes are text), found "
                    f"format {spss}",
                )
        elif is_date:
            raise ExportError(
                path, 0, name, f"expected a text or number variable, found the date format {spss}"
            )

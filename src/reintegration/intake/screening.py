"""Screening delivered bytes and values for input that must never pass silently.

The reader (:mod:`reintegration.intake.ingest`) and the delivery check
(:mod:`reintegration.intake.quality`) call these helpers for problems that are not
about the meaning of a value but about its form:

* the actual encoding of a CSV file (a byte-order mark, UTF-16, valid UTF-8
  delivered where a single-byte code page is declared), so the error says
  which encoding the file is in instead of reporting missing columns or
  garbled names;
* over-long fields, found by scanning the file in fixed-size chunks, so a
  200 MB line costs a few megabytes of memory before it is rejected, with the
  row, line and column named;
* NUL and other control characters inside a value;
* spreadsheet formulas (a value starting with ``=``, ``+``, ``-`` or ``@``
  that is not a number), which are flagged on intake and neutralised, with a
  leading apostrophe, in every CSV file the project writes
  (:func:`csv_bytes`).

Messages never quote a delivered value: they name file, row, column and what
was expected. Quarantine and flag lines, which stay in the municipal domain,
show the value as delivered, with control characters made visible
(:func:`visible`).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

#: the longest field the reader accepts, in bytes (``exports.max_field_bytes``)
MAX_FIELD_BYTES = 4096
#: bytes read at a time by the field-length scan
CHUNK_BYTES = 1 << 20
#: characters that make a spreadsheet treat a cell as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
#: control characters other than line ends (a NUL byte, a bell, an escape, DEL...)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: single-byte code pages: valid UTF-8 in a file declared in one of these is UTF-8
_SINGLE_BYTE = {"cp1252", "latin_1", "iso8859_15", "cp850", "cp437", "iso8859_2", "cp1250"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian, with a byte-order mark)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian, with a byte-order mark)"),
    (codecs.BOM_UTF8, "UTF-8 with a byte-order mark"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian, with a byte-order mark)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian, with a byte-order mark)"),
)


# ---------------------------------------------------------------------------
# encodings
# ---------------------------------------------------------------------------


def codec_name(encoding: str) -> str:
    return codecs.lookup(encoding).name.replace("-", "_")


def is_utf8(encoding: str) -> bool:
    return codec_name(encoding) in ("utf_8", "utf_8_sig")


def actual_encoding(head: bytes, declared: str) -> str | None:
    """The encoding the first bytes of a file show when it is not the declared
    one (a byte-order mark or the NUL pattern of UTF-16), else None.

    A UTF-8 byte-order mark is accepted when UTF-8 is declared."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            if bom == codecs.BOM_UTF8 and is_utf8(declared):
                return None
            if codec_name(declared).startswith(("utf_16", "utf_32")):
                return None
            return name
    sample = head[:4096]
    if len(sample) >= 4 and not codec_name(declared).startswith(("utf_16", "utf_32")):
        even = sample[0::2].count(0)
        odd = sample[1::2].count(0)
        half = len(sample) // 2
        if odd > 0.4 * half and even < 0.05 * half:
            return "UTF-16 (little-endian, without a byte-order mark)"
        if even > 0.4 * half and odd < 0.05 * half:
            return "UTF-16 (big-endian, without a byte-order mark)"
    return None


def utf8_in_single_byte(raw: bytes, declared: str) -> int | None:
    """The offset of the first multi-byte UTF-8 character when a file declared
    in a single-byte code page is in fact valid UTF-8 with non-ASCII letters."""
    if codec_name(declared) not in _SINGLE_BYTE or raw.isascii():
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    first = _NON_ASCII.search(raw)
    return first.start() if first else None


# ---------------------------------------------------------------------------
# over-long fields, in bounded memory
# ---------------------------------------------------------------------------


def longest_field_over(
    path: str | os.PathLike, delimiter: bytes, limit: int, *, chunk: int = CHUNK_BYTES
) -> tuple[int, int, int] | None:
    """Scan ``path`` in chunks of ``chunk`` bytes for a field longer than
    ``limit`` bytes. Returns (line, field index, bytes seen) of the first one
    (lines count from 1), or None. Memory is bounded by the chunk size.

    Quotes are followed so that a delimiter inside a quoted value does not
    start a new field; a quoted value that spans lines counts from its line.
    A first pass looks only for a run of ``limit`` bytes without a delimiter or
    line end (a regular expression, fast); the field is located only when one
    exists."""
    if not _has_long_run(path, delimiter, limit, chunk):
        return None
    line, index, length, quoted = 1, 0, 0, False
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            for piece, sep in _pieces(block, delimiter):
                length += len(piece)
                quoted ^= piece.count(b'"') % 2 == 1
                if length > limit:
                    return line, index, length
                if sep is None or quoted:
                    if sep == b"\n":
                        line += 1
                    if sep is not None:
                        length += 1
                    continue
                if sep == b"\n":
                    line, index, length = line + 1, 0, 0
                else:
                    index, length = index + 1, 0
    return None


def _has_long_run(path: str | os.PathLike, delimiter: bytes, limit: int, chunk: int) -> bool:
    """Whether some run of more than ``limit`` bytes holds no delimiter and no
    line end (quotes ignored: vectorised, about 1 ms per MiB)."""
    import numpy as np

    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            data = tail + block
            arr = np.frombuffer(data, dtype=np.uint8)
            sep = np.flatnonzero((arr == delimiter[0]) | (arr == 10))
            if sep.size == 0:
                if len(data) > limit:
                    return True
                tail = data
                continue
            inner = int(np.diff(sep).max(initial=1)) - 1
            if max(int(sep[0]), inner) > limit:
                return True
            tail = data[int(sep[-1]) + 1 :]
            if len(tail) > limit:
                return True
    return False


def _pieces(block: bytes, delimiter: bytes) -> Iterable[tuple[bytes, bytes | None]]:
    """Split a chunk on line ends and delimiters; the last piece has no separator."""
    lines = block.split(b"\n")
    for li, text in enumerate(lines):
        fields = text.split(delimiter)
        for fi, piece in enumerate(fields):
            if fi < len(fields) - 1:
                yield piece, delimiter
            elif li < len(lines) - 1:
                yield piece, b"\n"
            else:
                yield piece, None


def header_names(path: str | os.PathLike, encoding: str, delimiter: str, limit: int) -> list[str]:
    """The names in the first line, read with a bounded ``readline``."""
    with open(path, "rb") as fh:
        first = fh.readline(limit)
    text = first.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return [h.strip().strip('"') for h in text.split(delimiter)]


# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------


def has_control(value: Any) -> bool:
    return isinstance(value, str) and _CONTROL.search(value) is not None


def strip_control(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    cleaned = _CONTROL.sub("", value).strip()
    return cleaned or None


def is_formula(value: Any) -> bool:
    """A text a spreadsheet would evaluate: it starts with =, +, -, @, a tab or
    a carriage return and is not a plain number (``-5``, ``+31``)."""
    if not isinstance(value, str) or len(value) < 2 or not value.startswith(FORMULA_START):
        return False
    return _NUMBER.fullmatch(value.strip()) is None


#: the start of a delivered text (of the whole text, or after a line end in it)
#: that may make it a formula; line ends are neither control characters nor formula
#: starts, so the texts of a column can be searched joined by line ends
_FORMULA_AT_START = re.compile(r"(?:^|(?<=\n))[=+\-@\t\r]")


def _texts(values: Any) -> list[str] | None:
    """The values of an object Series as texts ("" for None), when every one
    is a ``str`` or None; else None (the masks then go value by value)."""
    dtype = getattr(values, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind != "O":
        return None
    vals = values.tolist()
    if not set(map(type, vals)) <= {str, type(None)}:
        return None
    return ["" if v is None else v for v in vals]


def _hits(texts: list[str], pattern: re.Pattern[str]) -> np.ndarray:
    """The positions of the texts in which ``pattern`` (no line ends in its
    matches) matches, searched in one text joined by line ends."""
    joined = "\n".join(texts)
    found = [m.start() for m in pattern.finditer(joined)]
    if not found:
        return np.zeros(0, dtype=np.int64)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begin = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    return np.unique(np.searchsorted(begin, found, side="right") - 1)


def control_mask(values: Any) -> Any:
    """Vectorised :func:`has_control` over a pandas Series (numpy bool array):
    a column of texts is searched in one go, others as
    :func:`control_mask_reference`."""
    texts = _texts(values)
    if texts is None:
        return control_mask_reference(values)
    mask = np.zeros(len(texts), dtype=bool)
    mask[_hits(texts, _CONTROL)] = True
    return mask


def formula_mask(values: Any) -> Any:
    """Vectorised :func:`is_formula` over a pandas Series (numpy bool array):
    in a column of texts, the few that start like a formula are found in one
    search and checked by :func:`is_formula`; others as
    :func:`formula_mask_reference`."""
    texts = _texts(values)
    if texts is None:
        return formula_mask_reference(values)
    mask = np.zeros(len(texts), dtype=bool)
    for i in _hits(texts, _FORMULA_AT_START):
        mask[i] = is_formula(texts[i])
    return mask


def control_mask_reference(values: Any) -> Any:
    """:func:`has_control` of each value by pandas' string methods."""
    text = values.astype("string")
    return text.str.contains(_CONTROL.pattern, regex=True).fillna(False).to_numpy(dtype=bool)


def formula_mask_reference(values: Any) -> Any:
    """:func:`is_formula` of each value by pandas' string methods."""
    text = values.astype("string")
    starts = text.str.match(r"[=+\-@\t\r]").fillna(False).to_numpy(dtype=bool)
    if not starts.any():
        return starts
    is_text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    number = text.str.strip().str.fullmatch(_NUMBER.pattern).fillna(False).to_numpy(dtype=bool)
    longer = (text.str.len() >= 2).fillna(False).to_numpy(dtype=bool)
    return is_text & starts & ~number & longer


def neutralise(value: Any) -> Any:
    """Prefix a formula with an apostrophe, so a spreadsheet shows it as text."""
    return "'" + value if is_formula(value) else value


def visible(value: str) -> str:
    """A delivered value with its control characters written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def neutralise_frame(df: Any) -> Any:
    """A copy of a data frame whose text cells, column names and index labels
    cannot run as spreadsheet formulas."""
    out = df.copy()
    for col in out.columns:
        values = out[col]
        if values.dtype == object:
            # mapped only where a formula is found (a column of texts in one search)
            if formula_mask(values).any():
                out[col] = values.map(neutralise)
        elif str(values.dtype) in ("string", "str"):
            out[col] = values.map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    if out.index.dtype == object:
        out.index = out.index.map(neutralise)
    return out


def csv_bytes(df: Any, **to_csv: Any) -> bytes:
    """``df.to_csv(**to_csv)`` as UTF-8 bytes, with formulas neutralised: the
    one way the project writes a CSV file."""
    to_csv.setdefault("lineterminator", "\n")
    return neutralise_frame(df).to_csv(**to_csv).encode("utf-8")

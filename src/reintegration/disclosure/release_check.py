"""Is every table and figure on a page in the output register?

The disclosure register (:mod:`reintegration.disclosure`) displays each output
with ``{"reintegration": {"output_id": "<step>/<name>", ...}}`` in the
notebook output's metadata. The release audit uses the two functions here:
:func:`registered_output_ids` reads what a city's steps registered, and
:func:`unregistered_outputs` lists the outputs of an executed notebook that show
a table or an image without a registered id, naming the cell.

What counts as a table or a figure in a code cell's output (``display_data``
or ``execute_result``):

* ``text/html`` that contains ``<table`` (a pandas DataFrame, a styled table);
* ``text/markdown`` that contains a Markdown table (a header separator row);
* an image: ``image/png``, ``image/jpeg``, ``image/gif``, ``image/svg+xml``.

Printed text (``stream`` outputs) is not inspected here; the audit's
identifier and small-count scans read it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

from .rules import META_KEY

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_HTML_TABLE = re.compile(r"<table\b", re.IGNORECASE)
_MD_TABLE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.MULTILINE)


def registered_output_ids(city_build: str | os.PathLike) -> set[str]:
    """The ids of every output registered by the steps of one city:
    ``build/<size>/<city>/outputs/<step>/register.json`` (and the city's
    union ``outputs/register.json`` when present)."""
    folder = Path(city_build) / "outputs"
    ids: set[str] = set()
    for path in [*sorted(folder.glob("*/register.json")), folder / "register.json"]:
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            ids.update(entry["id"] for entry in data.get("outputs", []))
    return ids


def output_kind(output: Any) -> str | None:
    """'table (text/html)', 'image (image/png)', ... or None when the output
    shows neither a table nor an image."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return None
    data = output.get("data", {})
    for mime in IMAGE_TYPES:
        if mime in data:
            return f"image ({mime})"
    if _HTML_TABLE.search(_text(data.get("text/html", ""))):
        return "table (text/html)"
    if _MD_TABLE.search(_text(data.get("text/markdown", ""))):
        return "table (text/markdown)"
    return None


def output_id_of(output: Any) -> str | None:
    meta = output.get("metadata", {}) or {}
    entry = meta.get(META_KEY)
    if isinstance(entry, dict) and isinstance(entry.get("output_id"), str):
        return entry["output_id"]
    return None


def unregistered_outputs(
    notebook_path: str | os.PathLike, register: Iterable[str] | str | os.PathLike
) -> list[tuple[int, str]]:
    """Outputs of ``notebook_path`` that show a table or an image without an
    output id found in ``register``.

    ``register`` is a collection of output ids, or the build folder of the
    city (read with :func:`registered_output_ids`). Returns
    ``(cell_index, description)`` pairs; ``cell_index`` counts all cells of
    the notebook from 0, and the description names the cell (index, id,
    execution count, first line of source) and what is wrong.
    """
    if isinstance(register, str | os.PathLike):
        known = registered_output_ids(register)
    else:
        known = set(register)
    nb = nbformat.read(str(notebook_path), as_version=4)
    offenders: list[tuple[int, str]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for k, output in enumerate(cell.get("outputs", [])):
            kind = output_kind(output)
            if kind is None:
                continue
            oid = output_id_of(output)
            if oid is None:
                problem = "has no output id: it did not pass through the disclosure register"
            elif oid not in known:
                problem = f"carries output id {oid!r}, which is not in the register"
            else:
                continue
            where = _name_cell(index, cell)
            offenders.append((index, f"{where}: output {k} shows a {kind} that {problem}"))
    return offenders


def _name_cell(index: int, cell: Any) -> str:
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    details = []
    if cell.get("id"):
        details.append(f"id {cell['id']}")
    if cell.get("execution_count") is not None:
        details.append(f"execution count {cell['execution_count']}")
    where = f"cell {index}" + (f" ({', '.join(details)})" if details else "")
    return f"{where} `{first}`" if first else where


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    return str(value)

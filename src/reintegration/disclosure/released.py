"""Reading released outputs: how the book gets its numbers.

The book and the synthesis are made by the ``publisher`` role, which may read
only the public and release domains. They take numbers from the registered,
checked outputs of a step (``build/<size>/<city>/outputs/<step>/``), never
from the steps' machine-readable records, which hold exact counts and stay in
the research domain (:data:`reintegration.core.custody.RESEARCH_RECORDS`). Every
read here is checked against the role (a research file raises
:class:`~reintegration.core.custody.CustodyError`), and every file against the
SHA-256 its register recorded, so the book shows what was checked and nothing
else.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import atomic
from ..core.custody import DomainMap, check_access
from ..core.paths import Paths

#: the role the book is built under
ROLE = "publisher"


class ReleaseError(RuntimeError):
    """A released file does not match its register."""


def _read_bytes(path: Path, dmap: DomainMap) -> bytes:
    check_access(ROLE, path, "read", dmap)
    return path.read_bytes()


def step_register(paths: Paths, city: str, step: str) -> dict[str, Any] | None:
    """The register of one step of one city, or None when the step has not
    run (``outputs/<step>/register.json``)."""
    path = paths.city_build(city) / "outputs" / step / "register.json"
    if not path.exists():
        return None
    return json.loads(_read_bytes(path, DomainMap.for_paths(paths)).decode("utf-8"))


def read_table(paths: Paths, city: str, output_id: str) -> pd.DataFrame | None:
    """The released CSV of a registered table (``step/name``), every cell as
    text, or None when the step did not register it or withheld it. Raises
    :class:`ReleaseError` when the file differs from its register."""
    step, name = output_id.split("/", 1)
    register = step_register(paths, city, step)
    if register is None:
        return None
    entry = next((e for e in register["outputs"] if e["id"] == output_id), None)
    if entry is None or not entry.get("file") or entry["status"] == "fail":
        return None
    path = paths.city_build(city) / entry["file"]
    if path.suffix != ".csv":
        raise ReleaseError(f"{output_id}: {path} is not a table")
    if not path.exists():
        raise ReleaseError(f"{output_id}: released file {path} is missing")
    raw = _read_bytes(path, DomainMap.for_paths(paths))
    if atomic.sha256_bytes(raw) != entry["sha256"]:
        raise ReleaseError(
            f"{output_id}: {path} changed after it was registered (checksum differs)"
        )
    return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)

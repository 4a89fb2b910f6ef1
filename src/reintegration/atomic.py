"""Atomic, deterministic file writes and checksums.

Every file the compendium writes goes through here: the bytes land in a
temporary file beside the target and are renamed over it, so a crash never
leaves a half-written file that a later step (or ``make``) would take for
finished. JSON is written with sorted keys and a trailing newline, so the same
content gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_via_temp(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result over ``path``.

    ``writer`` writes a complete file at the temporary path (for example
    ``df.to_parquet``); the rename is atomic on POSIX file systems.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return target


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_via_temp(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, dumps_json(obj))


def write_if_changed(path: str | os.PathLike, data: bytes | str) -> bool:
    """Write only when the content differs, keeping the file's modification
    time otherwise (so ``make`` does not rebuild what depends on it).
    Returns whether the file was written."""
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if target.exists() and target.read_bytes() == raw:
        return False
    write_bytes(target, raw)
    return True


def _default(obj: Any) -> Any:
    # numpy scalars and paths, without importing numpy here
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")

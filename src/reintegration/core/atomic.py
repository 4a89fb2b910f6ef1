"""Atomic, deterministic file writes and checksums.

Every file the compendium writes goes through here: the bytes land in a
temporary file beside the target and are renamed over it, so a crash never
leaves a half-written file that a later step (or ``make``) would take for
finished. The temporary file is fsynced before the rename and the directory after it,
so after a power cut the target holds the old bytes or the new ones. JSON is
written with sorted keys and a trailing newline, so the same content gives the
same bytes. A folder (a release bundle) is put in place by :func:`replace_dir`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
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
        fsync_file(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def fsync_file(path: str | os.PathLike) -> None:
    """Force a file's bytes to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Force a directory's entries (a rename into it) to disk. Windows cannot
    open a directory for fsync; there the rename is left to the file system."""
    if os.name == "nt":  # pragma: no cover - not on the Linux CI
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every file and directory under ``root`` (a staged folder)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths with one ``renameat2(RENAME_EXCHANGE)`` (Linux); False
    when the system has no such call."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # pragma: no cover - old glibc
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL):  # the file system cannot exchange
            return False
        raise OSError(err, os.strerror(err), str(a), None, str(b))
    return True


def replace_dir(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the complete folder ``staging`` in place of ``target`` with one
    atomic step: every file is fsynced first, then a first publication is one
    ``rename`` and a replacement one ``renameat2(RENAME_EXCHANGE)``, so a
    reader (or a crash) sees the old folder or the new one, never neither or a
    mix. The old folder, left at ``staging``, is removed afterwards, and so are
    staging folders ``.<target name>.*`` that a killed run left. Where the
    exchange is unavailable (not Linux) the old folder is first renamed aside:
    two renames, with a moment in which ``target`` is absent."""
    import shutil

    staging, target = Path(staging), Path(target)
    fsync_tree(staging)
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)
    else:  # pragma: no cover - exercised only where renameat2 is missing
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old)
    for stale in target.parent.glob(f".{target.name}.*"):  # staging left by a killed run
        if stale.is_dir() and stale != staging:
            shutil.rmtree(stale, ignore_errors=True)
    fsync_dir(target.parent)
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

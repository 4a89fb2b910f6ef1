"""Publish only what was audited: the book is built aside, audited, then swapped in.

The book is built into a new version folder, ``book/_build/versions/<id>/``
(Jupyter Book's ``--path-output``), never over the published one. The release
audit then scans that build (with the executed notebooks and the release
bundles). Only when it passes does one atomic rename publish it:
``book/_build/html`` is a symbolic link, replaced by ``os.replace`` with a
link to the new version's HTML. Last of all the record
``build/<size>/book.json`` is written (atomically); it names the version and
the SHA-256 of the audited build's file list (every file's relative path and
content hash), and it is what ``make book`` builds.

So a build or an audit that is interrupted (a SIGKILL, a power cut) or that
fails leaves the previously published, audited book in place and no new
record: the next ``make all`` sees the record missing or older than its
sources and builds, audits and publishes again. :func:`verify` checks that the
published book is, file for file, the build the record says was audited.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.paths import Paths

RECORD = "book.json"
STAGING_PREFIX = ".staging-"


class PublishError(RuntimeError):
    """The book was not published: its audit failed or its build broke."""


def book_build(paths: Paths) -> Path:
    return paths.book_dir / "_build"


def published(paths: Paths) -> Path:
    """The published book: ``book/_build/html`` (a link to an audited version)."""
    return book_build(paths) / "html"


def record_path(paths: Paths) -> Path:
    return paths.build_dir / RECORD


def tree_digest(folder: Path) -> tuple[str, int]:
    """SHA-256 over the sorted lines ``<relative path> <sha256 of content>`` of
    every file under ``folder`` (links followed), and the number of files."""
    lines = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        lines.append(f"{rel} {atomic.sha256_file(path)}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest(), len(lines)


def jupyter_book(source: Path, output: Path) -> Path:
    """Build the whole book from ``source`` into ``output``; return its HTML
    folder. ``--all``: Sphinx's incremental build leaves the navigation of
    unchanged pages stale when a city or step is added."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(source)]
    cmd += ["--path-output", str(output), "--all", "--warningiserror", "--keep-going", "--quiet"]
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise PublishError(f"jupyter-book build failed (exit {done.returncode}); nothing published")
    return output / "_build" / "html"


def audit_html(paths: Paths, html: Path) -> dict[str, Any]:
    """The release audit over notebooks, release bundles and the staged HTML.
    Its report goes to ``build/<size>/book_audit.json``: ``audit.json`` is the
    record of the audit before the book (the book's pages are built from it)."""
    from ..disclosure.audit import run

    return run(paths.size, root=paths.root, html=True, html_dir=html, record="book_audit.json")


def audit_bundle(city: str, size: str, root: Path | None = None) -> Callable[[Path], None]:
    """The check :func:`reintegration.disclosure.release_bundle.finalise` runs on a staged
    release bundle: the release audit of that bundle; a finding stops it from
    being published (the previous bundle, and its ``SHA256SUMS``, stay)."""

    def check(staging: Path) -> None:
        from ..disclosure.audit import scan_bundle

        found = scan_bundle(city, size, staging, root=root)
        if found:
            shown = "; ".join(str(f) for f in found[:5])
            raise PublishError(
                f"{city}: the release audit of the new bundle found {len(found)} problem(s), "
                f"so it was not published: {shown}"
            )

    return check


def publish(
    paths: Paths,
    *,
    build: Callable[[Path, Path], Path] = jupyter_book,
    audit: Callable[[Paths, Path], dict[str, Any]] = audit_html,
) -> dict[str, Any]:
    """Build the book aside, audit it, publish it by one rename, then write
    and return the record. Raises :class:`PublishError` when the audit fails;
    nothing is published then."""
    versions = book_build(paths) / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    _remove_stale(paths)
    staging = versions / f"{STAGING_PREFIX}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    html = build(paths.book_dir, staging)
    if not (html / "index.html").is_file():
        raise PublishError(f"the book build left no {html / 'index.html'}; nothing published")
    digest, files = tree_digest(html)
    report = audit(paths, html)
    if not report.get("passed"):
        found = report.get("findings", [])
        shown = "".join(f"\n  {f['file']}: {f['kind']}: {f['detail']}" for f in found[:10])
        raise PublishError(
            f"the release audit of the new book failed with {len(found)} finding(s); it stays "
            f"unpublished in {staging} and the published book is unchanged:{shown}"
        )
    if tree_digest(html)[0] != digest:
        raise PublishError(f"{html} changed while it was audited; nothing published")
    version = versions / digest[:16]
    shutil.rmtree(version, ignore_errors=True)
    os.replace(staging, version)
    shown = _point(published(paths), version / html.relative_to(staging))
    record = {
        "size": paths.size,
        "version": version.name,
        "html": Path(os.path.relpath(shown, paths.root)).as_posix(),
        "files": files,
        "file_list_sha256": digest,
        "audit": {
            "passed": True,
            "scanned": report.get("scanned", {}),
            "findings": len(report.get("findings", [])),
        },
    }
    atomic.write_json(record_path(paths), record)
    _remove_stale(paths, keep=version)
    return record


def _point(link: Path, target: Path) -> Path:
    """Make ``link`` point at ``target`` with one atomic rename, and return the
    folder now published. A real folder at ``link`` (a book built before this
    scheme, never audited as a whole) is removed first: no book is better than
    an unaudited one. Where symbolic links are not allowed (Windows without
    the privilege) the audited folder itself is moved to ``link``: two renames,
    between which there is briefly no book, never an unaudited one."""
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)
    except OSError:
        if link.is_symlink():
            link.unlink()
        os.replace(target, link)
        _fsync_dir(link.parent)
        return link
    os.replace(tmp, link)
    _fsync_dir(link.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(paths: Paths, keep: Path | None = None) -> None:
    """Remove builds left by interrupted runs, and versions no longer
    published (``keep`` and the current target stay)."""
    versions = book_build(paths) / "versions"
    link = published(paths)
    current = link.resolve() if link.is_symlink() else None
    for entry in versions.iterdir() if versions.is_dir() else ():
        if entry.name.startswith(STAGING_PREFIX):
            pid = entry.name.removeprefix(STAGING_PREFIX)
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue  # another build is running
            shutil.rmtree(entry, ignore_errors=True)
        elif keep is not None and entry != keep and not (current and entry in current.parents):
            shutil.rmtree(entry, ignore_errors=True)
    for tmp in link.parent.glob(f".{link.name}.*.tmp") if link.parent.is_dir() else ():
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def verify(paths: Paths) -> list[str]:
    """Problems with the published book (empty when it is the audited build)."""
    import json

    rec_path = record_path(paths)
    if not rec_path.exists():
        return [f"{rec_path} is missing: the book was never published after an audit"]
    record = json.loads(rec_path.read_text(encoding="utf-8"))
    link = published(paths)
    if not link.exists():
        return [f"{link} does not exist: no audited book is published"]
    if link.resolve() != (paths.root / record["html"]).resolve():
        return [f"{link} points at {link.resolve()}, not the audited {record['html']}"]
    digest, files = tree_digest(link.resolve())
    if digest != record["file_list_sha256"]:
        return [
            f"the published book ({files} files) differs from the audited build "
            f"({record['files']} files, {record['file_list_sha256'][:12]})"
        ]
    return []

"""The environment's lock file, and the record of it in each release bundle.

``requirements.lock`` pins every package the compendium installs (its
dependencies and the ``test`` extra) to one version, with the SHA-256 of each
file (``uv pip compile --universal --generate-hashes``: one lock for Linux,
macOS and Windows and Python 3.11 to 3.13). ``make venv``, CI and the README's
instructions for machines without make install from it with
``--require-hashes``; ``make lock`` rewrites it.

A release bundle records what produced it: :func:`write_environment` writes
``ENVIRONMENT.json`` with the lock file's SHA-256 and the version of every
package installed in the environment that ran, so an output checker can tell
two bundles made by different stacks apart.
"""

from __future__ import annotations

import hashlib
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from . import atomic

LOCK = "requirements.lock"
RECORD = "ENVIRONMENT.json"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def canonical(name: str) -> str:
    """A distribution's name as the package index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_sha256(root: Path) -> str | None:
    """The SHA-256 of ``requirements.lock`` (line endings as stored), or None
    when the checkout has none."""
    path = Path(root) / LOCK
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pins(text: str) -> list[tuple[str, str, str | None]]:
    """(name, version, environment marker or None) of every pin of a lock file."""
    out = []
    for line in text.splitlines():
        m = _PIN.match(line.strip())
        if m:
            out.append((canonical(m.group(1)), m.group(2), m.group(3)))
    return out


def installed() -> dict[str, str]:
    """Every distribution installed in this interpreter's environment, by
    canonical name, with its version."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return dict(sorted(found.items()))


def record(root: Path) -> dict[str, Any]:
    """What ``ENVIRONMENT.json`` holds: the lock file and its hash, the Python
    version and the installed packages."""
    return {
        "lock_file": LOCK,
        "lock_sha256": lock_sha256(root),
        "python": platform.python_version(),
        "packages": installed(),
    }


def write_environment(folder: Path, root: Path) -> Path:
    """Write ``ENVIRONMENT.json`` into ``folder`` (a release bundle being
    staged, before its SHA256SUMS) and return its path."""
    path = Path(folder) / RECORD
    path.write_text(atomic.dumps_json(record(root)), encoding="utf-8")
    return path

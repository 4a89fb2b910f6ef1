"""Provenance: what produced each executed notebook.

For every step run the runner records the git commit and whether the working
tree was dirty, the parameters, every seed of the shared configuration, the
SHA-256 of every input the step read (the custody layer logs each read,
configuration files included), of its template and city config, of every
output it wrote, and the run time. The record lands in
``build/<size>/<city>/provenance/<step>.json`` and as a closing cell of the
executed notebook; the Reproducibility appendix is generated from these
records plus the versions of every installed package.

Run time is wall-clock and lives only here, never in derived data.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import sha256_file

#: packages whose versions the Reproducibility appendix lists
KEY_PACKAGES = (
    "reintegration",
    "numpy",
    "pandas",
    "pyarrow",
    "pyreadstat",
    "pydantic",
    "linearmodels",
    "statsmodels",
    "acro",
    "matplotlib",
    "papermill",
    "ipykernel",
    "jupyter-book",
    "sphinx",
    "nbval",
    "pytest",
)


def git_state(root: Path) -> dict[str, Any]:
    """The commit checked out at ``root`` and whether tracked files differ
    from it (``dirty``). ``commit`` is ``"unknown"`` outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def all_package_versions() -> dict[str, str]:
    """Every distribution installed in this environment, by name."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            out.setdefault(name.lower(), dist.version)
    return dict(sorted(out.items()))


def seeds(root: Path) -> dict[str, Any]:
    """Every random seed in the shared configuration (``config/*.yml``):
    ``"<file>: <dotted.key>"`` -> value, for keys named ``seed`` or ending in
    ``_seed``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, about ten times faster
    found: dict[str, Any] = {}

    def walk(node: Any, prefix: str, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                dotted = f"{prefix}.{key}" if prefix else str(key)
                if str(key) == "seed" or str(key).endswith("_seed"):
                    found[f"{where}: {dotted}"] = value
                walk(value, dotted, where)

    for path in sorted((root / "config").glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        walk(yaml.load(text, Loader=loader), "", f"config/{path.name}")  # noqa: S506 (safe)
    return found


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(terse=True)}


def file_entry(path: Path, root: Path, domain: str | None = None) -> dict[str, Any]:
    try:
        rel = str(path.resolve().relative_to(root))
    except ValueError:
        rel = str(path)
    entry: dict[str, Any] = {"path": rel, "sha256": sha256_file(path)}
    if domain is not None:
        entry["domain"] = domain
    return entry


def read_record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown_cell(record: dict[str, Any]) -> str:
    """The closing cell of an executed notebook: a reader can tell exactly
    what produced the page."""
    git = record["git"]
    dirty = {True: " (working tree had uncommitted changes)", False: "", None: ""}[git["dirty"]]
    params = ", ".join(f"`{k}={v!r}`" for k, v in sorted(record["parameters"].items()))
    lines = [
        "## Provenance",
        "",
        f"Produced by commit `{git['commit']}`{dirty} with parameters {params}, "
        f"role `{record['role']}`, kernel `{record['kernel']}`, "
        f"in {record['runtime_seconds']:.1f} s.",
        "",
        "| input | domain | SHA-256 (first 16) |",
        "|---|---|---|",
    ]
    for item in record["inputs"]:
        lines.append(f"| `{item['path']}` | {item.get('domain', '')} | `{item['sha256'][:16]}` |")
    return "\n".join(lines)

"""Which package modules a step really uses: a static import graph.

A step's executed notebook must be rebuilt when a module it runs changes, and
only then. The modules it runs are those its template imports, those the
runner imports (every step runs through :mod:`reintegration.pipeline.runner`), and
everything they import in turn, found by reading the sources with :mod:`ast`
(nothing is imported or executed). Imports inside functions count too, so the
graph errs towards rebuilding. Importing ``reintegration.a.b`` also runs the
``__init__`` of ``reintegration`` and ``reintegration.a``.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

PACKAGE = "reintegration"
#: every step is executed by the runner, so its imports belong to every step
RUNNER = f"{PACKAGE}.pipeline.runner"


def package_dir() -> Path:
    """The folder of the package's sources (``src/reintegration``)."""
    return Path(__file__).resolve().parent


def modules(pkg_dir: Path | None = None) -> dict[str, Path]:
    """Module name -> source file, for every module of the package."""
    pkg_dir = pkg_dir or package_dir()
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        rel = path.relative_to(pkg_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_in(tree: ast.AST, current: str, is_package: bool, known: set[str]) -> set[str]:
    """Package modules imported anywhere in ``tree`` (module ``current``)."""
    found: set[str] = set()
    base = current if is_package else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in known:
                found.add(name)
    return found


@lru_cache(maxsize=4)
def _graph(pkg_dir: Path) -> dict[str, frozenset[str]]:
    mods = modules(pkg_dir)
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imports_in(tree, name, path.name == "__init__.py", known)
        graph[name] = frozenset(found | {p for p in _parents(name) if p in known})
    return graph


def closure(start: set[str], pkg_dir: Path | None = None) -> set[str]:
    """``start`` and every package module they import, directly or not."""
    graph = _graph(pkg_dir or package_dir())
    seen: set[str] = set()
    todo = [m for m in start if m in graph]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in graph[name] | {p for p in _parents(name) if p in graph}]
    return seen


def notebook_imports(path: Path, pkg_dir: Path | None = None) -> set[str]:
    """Package modules a notebook's code cells import (IPython magics and
    shell lines are skipped)."""
    known = set(modules(pkg_dir or package_dir()))
    nb = json.loads(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as exc:
            raise SyntaxError(f"{path}: a code cell does not parse: {exc}") from None
        found |= imports_in(tree, "__notebook__", False, known)
    return found


def step_modules(template: Path, pkg_dir: Path | None = None) -> set[str]:
    """The modules a step runs: its template's imports and the runner's, closed."""
    return closure(notebook_imports(template, pkg_dir) | {RUNNER}, pkg_dir)


def module_files(start: set[str], pkg_dir: Path | None = None) -> list[str]:
    """The source files of ``start`` and everything it imports, as ``src/...``
    paths relative to the repository root, sorted."""
    pkg_dir = pkg_dir or package_dir()
    mods = modules(pkg_dir)
    return sorted(
        mods[m].relative_to(pkg_dir.parent.parent).as_posix() for m in closure(start, pkg_dir)
    )


def step_sources(template: Path, pkg_dir: Path | None = None) -> list[str]:
    """The source files of :func:`step_modules` (see :func:`module_files`)."""
    return module_files(step_modules(template, pkg_dir), pkg_dir)

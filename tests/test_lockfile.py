"""The lock file: current with pyproject.toml, hashed, and what the environment holds."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import tomllib
from importlib import metadata

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from reintegration.core.lockfile import LOCK, canonical, installed, pins, write_environment


def _project(root):
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def _requirements(root, *extras):
    project = _project(root)
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_the_lock_pins_every_requirement_within_its_bounds(root):
    text = (root / LOCK).read_text()
    pinned: dict[str, list[str]] = {}
    for name, version, _ in pins(text):
        pinned.setdefault(name, []).append(version)
    for req in _requirements(root, "test"):
        name = canonical(req.name)
        assert name in pinned, f"{req.name} is not in {LOCK}: run `make lock`"
        for version in pinned[name]:
            assert Version(version) in req.specifier, f"{name} {version} outside {req.specifier}"
    assert "jupyterlab" not in pinned, "jupyterlab belongs to the lab extra, not the lock"


def test_every_pin_has_hashes_and_the_lock_says_how_it_was_made(root):
    text = (root / LOCK).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(blocks) == len(pins(text)) > 100
    for block in blocks:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]
    makefile = (root / "Makefile").read_text()
    # the command in the lock's header is the Makefile's `make lock`
    assert "--universal --generate-hashes" in text.splitlines()[1]
    assert "--universal --generate-hashes" in makefile
    assert "--require-hashes -r $(LOCK)" in makefile


def test_ruff_is_pinned_and_python_311_to_313_are_supported(root):
    project = _project(root)
    ruff = next(r for r in _requirements(root, "test") if r.name == "ruff")
    assert [s.operator for s in ruff.specifier] == ["=="]
    supported = Requirement(f"python{project['requires-python']}").specifier
    assert all(v in supported for v in ("3.11.0", "3.12.5", "3.13.1"))
    assert "3.10.9" not in supported and "3.14.0" not in supported
    assert [canonical(r) for r in project["optional-dependencies"]["lab"]][0].startswith(
        "jupyterlab"
    )


def test_every_imported_package_is_declared(root):
    """Each third-party module the package imports (anywhere, also inside
    functions) comes from a distribution that pyproject.toml declares."""
    declared = {canonical(r.name) for r in _requirements(root, "test", "bench", "lab")}
    providers = metadata.packages_distributions()
    missing = {}
    for path in sorted((root / "src" / "reintegration").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "reintegration":
                    continue
                dists = {canonical(d) for d in providers.get(top, [top])}
                if not dists & declared:
                    missing[top] = path.relative_to(root).as_posix()
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_the_environment_is_the_locked_one(root):
    """Every package the lock pins for this platform and Python is installed
    at the pinned version (`make venv` and CI install from the lock)."""
    have = installed()
    differ = {
        name: (version, have.get(name))
        for name, version, marker in pins((root / LOCK).read_text())
        if not marker or Marker(marker).evaluate()
        if have.get(name) != version
    }
    assert differ == {}, f"(locked, installed) differ: {differ}; run `make venv`"


def test_a_bundle_records_the_lock_and_the_installed_versions(root, tmp_path):
    path = write_environment(tmp_path, root)
    rec = json.loads(path.read_text())
    assert rec["lock_sha256"] == hashlib.sha256((root / LOCK).read_bytes()).hexdigest()
    assert rec["packages"]["pandas"] == metadata.version("pandas")
    assert rec["python"] == ".".join(map(str, sys.version_info[:3]))
    assert write_environment(tmp_path, root).read_bytes() == path.read_bytes()  # stable

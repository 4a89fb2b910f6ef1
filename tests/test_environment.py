"""pyproject.toml is the one list of dependencies; environment.yml must agree."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _pyproject(root):
    data = tomllib.loads((root / "pyproject.toml").read_text())
    # what environment.yml installs: the runtime dependencies and the test extra
    # (the bench extra is installed by `make bench` only)
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    reqs += [Requirement(r) for r in data["project"]["optional-dependencies"]["test"]]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def _environment(root):
    data = yaml.safe_load((root / "environment.yml").read_text())
    out = {}
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            for pipdep in dep["pip"]:
                if not pipdep.startswith("-e"):
                    req = Requirement(pipdep)
                    out[canonicalize_name(req.name)] = req.specifier
        elif dep not in ("pip",) and not dep.startswith("python"):
            req = Requirement(re.sub(r"\s+", "", dep))
            out[canonicalize_name(req.name)] = req.specifier
    return out


def test_every_dependency_is_bounded_below_and_above(root):
    for name, spec in _pyproject(root).items():
        ops = {s.operator for s in spec}
        assert ops & {">=", ">", "=="}, f"{name} has no lower bound: {spec}"
        assert ops & {"<", "<=", "=="}, f"{name} has no upper bound: {spec}"


def test_environment_yml_agrees_with_pyproject(root):
    py, env = _pyproject(root), _environment(root)
    assert sorted(set(py) - set(env)) == [], "in pyproject but not in environment.yml"
    assert sorted(set(env) - set(py)) == [], "in environment.yml but not in pyproject"
    differ = {n: (str(py[n]), str(env[n])) for n in py if py[n] != env[n]}
    assert differ == {}, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_environment_yml_installs_this_package(root):
    data = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))
    assert "-e .[test]" in pip


def test_a_disagreement_is_detected(root, tmp_path):
    (tmp_path / "pyproject.toml").write_text((root / "pyproject.toml").read_text())
    env = (root / "environment.yml").read_text().replace("pandas>=2.2,<=2.3.3", "pandas>=2.2,<3")
    (tmp_path / "environment.yml").write_text(env)
    assert _pyproject(tmp_path)["pandas"] != _environment(tmp_path)["pandas"]

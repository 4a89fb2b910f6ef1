"""The generated make rules, and make's view of what is up to date."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from reintegration.config import list_cities
from reintegration.makefile import render


def test_a_rule_per_city_and_step_with_its_dependencies(root):
    text = render(root)
    for city in list_cities(root):
        rule = re.search(
            rf"^\$\(RESULTS\)/{city}/00_city_profile\.ipynb: (.*)$", text, re.MULTILINE
        )
        assert rule, city
        prereqs = rule.group(1).split()
        assert "notebooks/00_city_profile.ipynb" in prereqs
        assert f"config/cities/{city}.yml" in prereqs
        assert f"$(DATA)/manifests/{city}.json" in prereqs
        assert "$(STEP_DEPS)" in prereqs
        # no other city's config or data
        others = [c for c in list_cities(root) if c != city]
        assert not [p for p in prereqs if any(f"/{o}." in p for o in others)]


def test_needs_become_prerequisites(tmp_root):
    steps = tmp_root / "config" / "steps.yml"
    steps.write_text(
        steps.read_text()
        + "  - name: 01_next\n    title: Next\n    role: researcher\n"
        + "    needs: [00_city_profile]\n"
    )
    text = render(tmp_root)
    rule = re.search(r"^\$\(RESULTS\)/utrecht/01_next\.ipynb: (.*)$", text, re.MULTILINE)
    assert "$(RESULTS)/utrecht/00_city_profile.ipynb" in rule.group(1).split()
    assert "$(RESULTS)/rotterdam/00_city_profile.ipynb" not in rule.group(1).split()


def _copy_repo(root, dest):
    """A copy of the repository for dry runs. It gets a stand-in environment
    stamp newer than its pyproject.toml, and the tests pass the real
    interpreter as PY, so make never touches the real environment."""
    for name in ("Makefile", "pyproject.toml", "uv-overrides.txt"):
        shutil.copy2(root / name, dest / name)
    for folder in ("config", "notebooks", "src", "book"):
        shutil.copytree(
            root / folder,
            dest / folder,
            ignore=shutil.ignore_patterns("_build", "results", "_generated", "__pycache__"),
        )
    (dest / ".venv").mkdir()
    (dest / ".venv" / ".installed").touch()
    return f"PY={root / '.venv' / 'bin' / 'python'}"


def test_copying_a_city_file_adds_the_city_to_the_pipeline(root, tmp_path):
    py = _copy_repo(root, tmp_path)
    shutil.copy(tmp_path / "config/cities/utrecht.yml", tmp_path / "config/cities/zwolle.yml")
    cfg = tmp_path / "config/cities/zwolle.yml"
    cfg.write_text(cfg.read_text().replace("name: utrecht", "name: zwolle"))
    env = {**os.environ, "REINTEGRATION_ROOT": str(tmp_path)}
    out = subprocess.run(
        ["make", "-n", py, "SIZE=small", "all"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "run-step --size small --kernel reintegration --city zwolle --step 00_city_profile" in out
    )
    assert "data --size small --city zwolle" in out


def _make(root, *args):
    return subprocess.run(["make", *args], cwd=root, capture_output=True, text=True, timeout=120)


@pytest.mark.pipeline
def test_everything_is_up_to_date_after_a_build(root, built_book):
    result = _make(root, "-q", "SIZE=small", "book")
    assert result.returncode == 0, _make(root, "-n", "SIZE=small", "book").stdout


@pytest.mark.pipeline
def test_touching_one_city_reruns_only_that_city(root, built_book):
    out = _make(root, "-n", "-W", "config/cities/utrecht.yml", "SIZE=small", "book").stdout
    runs = re.findall(r"run-step .*--city (\w+) --step (\w+)", out)
    assert runs and {city for city, _ in runs} == {"utrecht"}, out
    data = re.findall(r"reintegration data --size small --city (\w+)", out)
    assert data == ["utrecht"], out

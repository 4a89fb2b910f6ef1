"""The generated make rules, and make's view of what is up to date."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reintegration.core.config import list_cities, load_steps
from reintegration.pipeline.makefile import render


def _prereqs(text: str, city: str, step: str) -> list[str]:
    """The prerequisites of one step's rule, with the generated variables
    (STEP_SRC_<step>) expanded; make's own variables stay as they are."""
    defs = dict(re.findall(r"^(STEP_SRC_\w+) := (.*)$", text, re.MULTILINE))
    rule = re.search(rf"^\$\(RESULTS\)/{city}/{step}\.ipynb: (.*)$", text, re.MULTILINE)
    assert rule, (city, step)
    out = []
    for item in rule.group(1).split():
        name = item[2:-1] if item.startswith("$(") else None
        out += defs[name].split() if name in defs else [item]
    return out


def test_a_rule_per_city_and_step_with_its_dependencies(root):
    text = render(root)
    for city in list_cities(root):
        prereqs = _prereqs(text, city, "00_city_profile")
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
    prereqs = _prereqs(text, "utrecht", "01_next")
    assert "$(RESULTS)/utrecht/00_city_profile.ipynb" in prereqs
    assert "$(RESULTS)/rotterdam/00_city_profile.ipynb" not in prereqs


def _copy_repo(root, dest):
    """A copy of the repository for dry runs. It gets a stand-in environment
    stamp newer than its pyproject.toml, and the tests pass the real
    interpreter as PY, so make never touches the real environment."""
    for name in ("Makefile", "pyproject.toml", "uv-overrides.txt", "requirements.lock"):
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


# ---------------------------------------------------------------------------
# rules follow what a step really uses
# ---------------------------------------------------------------------------

BOOK_RENDERER = "src/reintegration/book/generate.py"
ROLLOUT_ESTIMATOR = "src/reintegration/effects/staggered.py"
ROLLOUT_DESIGN = "src/reintegration/designs/rollout.py"


@functools.cache
def _runtime_modules(root, template) -> frozenset[str]:
    """The package modules a template's import statements load when run (one
    subprocess per template and test session: both parameters of the test
    below ask for the same ten)."""
    nb = json.loads(template.read_text(encoding="utf-8"))
    imports = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            tree = ast.parse("".join(cell["source"]))
            imports += [
                ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
            ]
    code = "\n".join(
        [
            *imports,
            "import sys, reintegration.pipeline.runner",
            "print('\\n'.join(m for m in sys.modules if m.startswith('reintegration')))",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return frozenset(out.split())


def _as_file(root, module: str) -> str:
    path = root / "src" / Path(*module.split("."))
    return (
        (path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
        .relative_to(root)
        .as_posix()
    )


def test_the_book_renderer_is_no_step_prerequisite(root):
    text = render(root)
    for city in list_cities(root):
        for step in load_steps(root):
            assert BOOK_RENDERER not in _prereqs(text, city, step["name"]), (city, step["name"])


def test_declared_config_reads_are_prerequisites_and_no_other_shared_file(root):
    text = render(root)
    shared = {f"config/{p.name}" for p in (root / "config").glob("*.yml")} - {"config/steps.yml"}
    for step in load_steps(root):
        prereqs = set(_prereqs(text, "rotterdam", step["name"]))
        assert prereqs & shared == set(step["reads"]), step["name"]
    assert "config/effects.yml" in _prereqs(text, "rotterdam", "06_effects")
    assert "config/effects.yml" not in _prereqs(text, "rotterdam", "03_panel")


@pytest.mark.parametrize("module", [ROLLOUT_ESTIMATOR, ROLLOUT_DESIGN])
def test_rules_hold_every_module_a_step_loads_and_the_estimator_only_where_used(root, module):
    """Soundness: every module a template's imports load at run time is a
    prerequisite of its rule. Precision for the roll-out estimator and the
    roll-out design module: editing one reruns exactly the steps whose imports
    load it, and not every step."""
    text = render(root)
    steps = [s["name"] for s in load_steps(root)]
    dependent, loading = set(), set()
    for step in steps:
        prereqs = set(_prereqs(text, "amsterdam", step))
        loaded = {
            _as_file(root, m) for m in _runtime_modules(root, root / f"notebooks/{step}.ipynb")
        }
        assert loaded <= prereqs, (step, sorted(loaded - prereqs))
        dependent |= {step} if module in prereqs else set()
        loading |= {step} if module in loaded else set()
    assert dependent == loading
    assert 0 < len(dependent) < len(steps)


def _fake_build(root, tmp_path) -> tuple[str, dict]:
    """A copy of the repository where every target of `make SIZE=small book`
    exists and is newer than all its sources, so make sees it up to date."""
    py = _copy_repo(root, tmp_path)
    env = {**os.environ, "REINTEGRATION_ROOT": str(tmp_path), "PYTHONPATH": str(tmp_path / "src")}
    past = time.time() - 3600
    for path in tmp_path.rglob("*"):
        os.utime(path, (past, past))
    subprocess.run(
        ["make", "-n", py, "SIZE=small", "book"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    targets = [
        "synthetic_data/small/manifest.json",
        "build/small/audit.json",
        "book/_build/html/index.html",
    ]
    for city in list_cities(tmp_path):
        targets += [f"book/results/{city}/{s['name']}.ipynb" for s in load_steps(tmp_path)]
        targets += [
            f"synthetic_data/small/manifests/{city}.json",
            f"release/small/{city}/SHA256SUMS",
        ]
    now = time.time()
    for rel in targets:  # all at one time: none is newer than another
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
        os.utime(tmp_path / rel, (now, now))
    return py, env


def test_make_reruns_no_step_for_the_book_renderer_and_only_users_of_the_estimator(root, tmp_path):
    py, env = _fake_build(root, tmp_path)

    def runs(*args):
        out = subprocess.run(
            ["make", "-n", py, "SIZE=small", *args, "book"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return set(re.findall(r"run-step .*--city (\w+) --step (\w+)", out.stdout))

    assert runs() == set()  # the fake build is up to date
    assert runs("-W", BOOK_RENDERER) == set()
    text = render(tmp_path)
    for module in (ROLLOUT_ESTIMATOR, ROLLOUT_DESIGN):
        rerun = runs("-W", module)
        expected = {
            (c, s["name"])
            for c in list_cities(tmp_path)
            for s in load_steps(tmp_path)
            if module in _prereqs(text, c, s["name"])
        }
        # 07_who_benefits and 08_advice ask the designs' registry which designs are
        # observational, and the registry holds the roll-out design too
        assert rerun == expected and {s for _, s in rerun} == {
            "05_feasibility",
            "06_effects",
            "07_who_benefits",
            "08_advice",
            "09_validation",
        }, module


def test_data_for_another_size_leaves_the_built_steps_up_to_date(root, tmp_path):
    """The executed notebooks belong to the SIZE of the last run of the steps;
    generating the data of another size runs no step and must not make them
    stale (it did: the size stamp was rewritten by every goal)."""
    py, env = _fake_build(root, tmp_path)

    def make(*args):
        out = subprocess.run(["make", "-n", py, *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    stamp = tmp_path / "book" / "results" / ".size"
    assert stamp.read_text().strip() == "small"
    assert "reintegration data --size full" in make("SIZE=full", "data")
    assert stamp.read_text().strip() == "small"
    assert "run-step" not in make("SIZE=small", "book")
    # a goal that runs steps for the other size does claim the stamp
    make("SIZE=full", "city", "CITY=utrecht")
    assert stamp.read_text().strip() == "full"


# ---------------------------------------------------------------------------
# a bad config file stops make before any work
# ---------------------------------------------------------------------------

BAD_CITY = {
    "unknown key": (
        lambda t: t.replace("quirks:\n", "colour: blue\nquirks:\n"),
        "config/cities/utrecht.yml: colour: unknown key (valid keys: name, display_name, ",
    ),
    "misspelled key": (
        lambda t: t.replace("  inflow_from: 2018-01", "  inflow_fom: 2018-01"),
        "config/cities/utrecht.yml: study.inflow_fom: unknown key (did you mean inflow_from?)",
    ),
    "inflow_to before inflow_from": (
        lambda t: t.replace("  inflow_to: 2021-12", "  inflow_to: 2017-06"),
        "config/cities/utrecht.yml: study.inflow_to: 2017-06 is before inflow_from 2018-01",
    ),
    "roll-out team that is no team": (
        lambda t: t + "rollout:\n  instrument: training\n  teams: {Oost: 2019-01, Zuid: 2019-07}\n",
        "config/cities/utrecht.yml: rollout.teams.Zuid: not one of the city's teams",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CITY))
def test_a_bad_city_file_stops_make_all_within_5_seconds(root, tmp_path, case):
    change, message = BAD_CITY[case]
    py = _copy_repo(root, tmp_path)
    city = tmp_path / "config/cities/utrecht.yml"
    city.write_text(change(city.read_text(encoding="utf-8")), encoding="utf-8")
    env = {**os.environ, "REINTEGRATION_ROOT": str(tmp_path), "PYTHONPATH": str(tmp_path / "src")}
    started = time.perf_counter()
    out = subprocess.run(
        ["make", py, "SIZE=small", "all"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), out.stderr
    assert elapsed < 5, elapsed
    assert not (tmp_path / "synthetic_data").exists()  # no work was done


def test_the_data_rule_follows_the_generators_imports(root):
    text = render(root)
    data_src = re.search(r"^DATA_SRC := (.*)$", text, re.MULTILINE).group(1).split()
    assert "src/reintegration/synth/world.py" in data_src
    assert "src/reintegration/core/config_models.py" in data_src  # imported through config
    assert BOOK_RENDERER not in data_src and "src/reintegration/phase2/estimates.py" not in data_src
    rule = re.search(r"^\$\(DATA\)/manifests/utrecht\.json: (.*)$", text, re.MULTILINE)
    assert "$(DATA_SRC)" in rule.group(1).split()

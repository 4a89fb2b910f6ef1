"""`python -m reintegration run`: make's rule on the pipeline's graph, without make.

The first tests run the executor on a small graph of its own (each task a
one-line Python command), so they check the rule itself: what runs, in which
order, what a second run does, what a failure stops. The last ones run the
real pipeline for one city and compare with the make route."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reintegration.core.paths import Paths
from reintegration.pipeline.graph import Graph, Task, build
from reintegration.pipeline.makefile import render
from reintegration.pipeline.run import (
    Progress,
    RunError,
    closure,
    execute,
    load_times,
    resolve,
    select,
)


def _copy(name: str, *sources: str, fail: bool = False, sleep: float = 0.3) -> Task:
    """A task writing ``name`` from its sources, logging its start and end."""
    code = (
        "import sys, time; from pathlib import Path; "
        f"Path('log.txt').open('a').write('start {name}\\n'); time.sleep({sleep}); "
        + ("sys.exit(3); " if fail else "")
        + f"Path('{name}').write_text(''.join(Path(s).read_text() for s in {list(sources)!r})"
        f" + '{name}'); Path('log.txt').open('a').write('end {name}\\n')"
    )
    return Task(name=name, kind="step", target=name, prereqs=sources, commands=(("-c", code),))


def _graph(*tasks: Task) -> Graph:
    return Graph(cities=(), steps=(), variables={}, tasks=tasks)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    (tmp_path / "src.txt").write_text("s")
    (tmp_path / "other.txt").write_text("o")
    old = time.time() - 100
    for f in ("src.txt", "other.txt"):
        os.utime(tmp_path / f, (old, old))
    graph = _graph(
        _copy("a.out", "src.txt"),
        _copy("b.out", "a.out"),
        _copy("c.out", "other.txt"),
        _copy("d.out", "b.out", "c.out"),
    )
    return tmp_path, graph, Paths.for_size("small", tmp_path)


def _run(graph, paths, goals=("d.out",), jobs=2, **kw):
    resolved = resolve(graph, paths)
    lines: list[str] = []
    outcome = execute(resolved, closure(resolved, goals), paths, jobs=jobs, say=lines.append, **kw)
    return outcome, lines


def _log(root: Path) -> list[str]:
    path = root / "log.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_tasks_run_after_what_they_need_and_a_second_run_does_nothing(toy):
    root, graph, paths = toy
    outcome, lines = _run(graph, paths)
    assert sorted(outcome.ran) == ["a.out", "b.out", "c.out", "d.out"]
    assert (root / "d.out").read_text() == "sa.outb.outoc.outd.out"
    log = _log(root)
    for before, after in (("a.out", "b.out"), ("b.out", "d.out"), ("c.out", "d.out")):
        assert log.index(f"end {before}") < log.index(f"start {after}"), log
    # two jobs: c.out (independent) started before a.out ended
    assert log.index("start c.out") < log.index("end a.out"), log
    assert any("done  d.out" in ln and "elapsed" in ln for ln in lines), lines
    # the durations are kept for the next run's estimate
    assert set(json_times(paths)) == {"a.out", "b.out", "c.out", "d.out"}

    outcome, lines = _run(graph, paths)
    assert outcome.ran == [] and _log(root) == []
    assert lines == ["run (small): everything is up to date (4 tasks checked)"]


def json_times(paths):
    import json

    return json.loads((paths.build_dir / "run-times.json").read_text())


def test_a_newer_prerequisite_reruns_its_task_and_what_follows_only(toy):
    root, graph, paths = toy
    _run(graph, paths)
    _log(root)
    time.sleep(0.05)
    (root / "other.txt").write_text("o2")  # newer than c.out
    outcome, lines = _run(graph, paths)
    assert outcome.ran == ["c.out", "d.out"]
    assert (root / "d.out").read_text() == "sa.outb.outo2c.outd.out"
    # why it runs, and the estimate from the previous run
    assert lines[1].startswith("[1/2] start c.out (other.txt is newer; last run "), lines
    assert lines[0].startswith("run (small): 2 of 4 tasks to run") and "left" in lines[0]


def test_a_long_task_is_reported_while_it_runs(toy):
    root, _, paths = toy
    graph = _graph(_copy("slow.out", "src.txt", sleep=1.5))
    _, lines = _run(graph, paths, goals=("slow.out",), heartbeat=0.4)
    assert any(ln.startswith("  slow.out still running: ") for ln in lines), lines


def test_a_dry_run_says_what_would_run_and_runs_nothing(toy):
    root, graph, paths = toy
    outcome, lines = _run(graph, paths, dry_run=True)
    assert sorted(outcome.ran) == ["a.out", "b.out", "c.out", "d.out"]
    assert not (root / "a.out").exists() and _log(root) == []
    assert any(ln.startswith("  b.out: python -c") for ln in lines)


def test_a_failure_stops_what_needs_it_and_fails_the_run(toy):
    root, _, paths = toy
    graph = _graph(
        _copy("a.out", "src.txt", fail=True),
        _copy("b.out", "a.out"),
        _copy("c.out", "other.txt"),
    )
    outcome, lines = _run(graph, paths, goals=("b.out", "c.out"), jobs=1)
    assert outcome.failed == ["a.out"]
    assert "b.out" not in outcome.ran and not (root / "b.out").exists()
    assert any(ln.startswith("FAILED a.out (exit 3)") for ln in lines), lines


def test_a_missing_source_nobody_makes_stops_before_any_work(toy):
    root, _, paths = toy
    graph = _graph(_copy("c.out", "other.txt"), _copy("a.out", "nowhere.txt"))
    with pytest.raises(RunError, match=r"nowhere.txt is missing and no task makes it \(needed by"):
        _run(graph, paths, goals=("c.out", "a.out"))
    assert _log(root) == []


def test_the_estimate_uses_the_last_run_or_the_steps_provenance(toy):
    root, graph, paths = toy
    task = Task(
        name="x/s1", kind="step", target="s1.out", prereqs=(), commands=(), city="x", step="s1"
    )
    record = paths.provenance_dir("x") / "s1.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"runtime_seconds": 12.5}')
    resolved = resolve(_graph(task), paths)
    assert load_times(paths, resolved) == {"x/s1": 12.5}
    (paths.build_dir / "run-times.json").write_text('{"x/s1": 3.0}')
    assert load_times(paths, resolved) == {"x/s1": 3.0}  # the runner's own timing first
    progress = Progress({"x/s1": 30.0, "x/s2": 90.0}, jobs=2)
    assert progress.left(["x/s1", "x/s2"], {}) == "about 1 min 00 s left"
    # never timed: the mean, and the estimate says so
    assert progress.left(["x/s3"], {}) == "about 30 s left (1 never timed: guessed)"


def test_make_and_the_runner_read_the_same_rules(root):
    """Every task of the graph is a make rule with the same target,
    prerequisites and commands: the Makefile has no rule of its own for them."""
    text = render(root)
    graph = build(root)
    for task in graph.tasks:
        rule = f"{task.target}: {' '.join(task.prereqs)}\n"
        assert rule in text, task.name
        for cmd in task.commands:
            assert f"$(PY) {' '.join(cmd)}" in text, task.name
    makefile = (root / "Makefile").read_text()
    for task in graph.tasks:
        assert f"\n{task.target}:" not in makefile, f"{task.name} has a hand-written rule"


def test_choosing_cities_and_steps(root):
    graph = build(root)
    resolved = resolve(graph, Paths.for_size("small", root))
    assert select(graph) == ["book"]
    plan = closure(resolved, select(graph, ["utrecht"], ["03_panel"]))
    assert plan == [
        "data/utrecht",
        "utrecht/01_delivery_check",
        "utrecht/02_pseudonymise_link",
        "utrecht/03_panel",
    ]
    whole_city = closure(resolved, select(graph, ["utrecht"]))
    assert whole_city[-1] == "release/utrecht" and "book" not in whole_city
    assert len(closure(resolved, ["book"])) == len(graph.tasks) - 1  # all but the PDF
    assert select(graph, pdf=True) == ["book", "pdf"]



def test_the_pages_are_written_beside_the_audit_and_built_on_only_after_it(root):
    """The generated pages wait for every executed notebook and release bundle
    but not for the audit; the book and its PDF, the first things built from
    the pages, wait for both."""
    graph = build(root)
    resolved = resolve(graph, Paths.for_size("small", root))
    made = {t.name for t in graph.tasks if t.kind in ("step", "release")}
    assert resolved["book-pages"].deps == made | {"data-manifest"}
    assert resolved["audit"].deps == made
    assert "audit" not in closure(resolved, ["book-pages"])
    for name in ("book", "pdf"):
        assert resolved[name].deps == {"audit", "book-pages"}

def _cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "reintegration", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["run", "--city", "zwolle"], "amsterdam, den_haag, rotterdam, utrecht"),
        (["run", "--steps", "03_panel", "99_x"], "00_city_profile, 01_delivery_check,"),
        (["run", "--size", "medium"], "choose from 'small', 'full'"),
        (["run-step", "--city", "utrecht", "--step", "3"], "03_panel, 04_describe"),
    ],
)
def test_every_error_lists_the_valid_choices(root, args, choices):
    result = _cli(*args, cwd=root)
    assert result.returncode == 2
    assert choices in result.stderr, result.stderr


def test_version(root):
    for args in (["--version"], ["run", "--version"]):
        result = _cli(*args, cwd=root)
        assert result.returncode == 0 and result.stdout.startswith("reintegration 0."), result


# ---------------------------------------------------------------------------
# the real pipeline, one city
# ---------------------------------------------------------------------------

CITY = "utrecht"


def _tracked(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.splitlines() if (root / f).is_file() and not f.startswith(".venv")]


@pytest.mark.pipeline
def test_the_runner_builds_the_bundle_make_built_byte_for_byte(root, small, built_book, tmp_path):
    """The make route (`make SIZE=small book`, run by `make test` before
    pytest) built release/small/<city>. The runner agrees that it is up to date;
    then, in a copy of the repository with the same synthetic data and no
    step outputs, it runs that city's steps and release and must write the same
    bundle, byte for byte. A second run does nothing, quickly; make agrees
    that the runner's outputs are up to date, and after one change (a city's
    file, a shared config file) `make -n` and `run --dry-run` name the same
    steps to rerun."""
    made = small.root / "release" / "small" / CITY
    assert (made / "SHA256SUMS").exists(), "make's bundle is missing"
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    env.pop("REINTEGRATION_BUILD_DIR", None)
    env.pop("REINTEGRATION_ROOT", None)
    check = _cli("run", "--dry-run", "--city", CITY, cwd=small.root, env=env)
    assert "everything is up to date" in check.stdout, check.stdout + check.stderr

    copy = tmp_path / "repo"
    for rel in _tracked(root):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, copy / rel)
    # the same synthetic data, with its times (so it is not regenerated)
    shutil.copytree(small.data_dir, copy / "synthetic_data" / "small", symlinks=False)
    env = {**env, "PYTHONPATH": str(copy / "src")}
    started = time.perf_counter()
    result = _cli("run", "--city", CITY, "--jobs", "2", cwd=copy, env=env)
    first = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"done  release/{CITY}" in result.stdout
    print(result.stdout)

    ours = copy / "release" / "small" / CITY
    theirs = sorted(p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file())
    mine = sorted(p.relative_to(ours).as_posix() for p in ours.rglob("*") if p.is_file())
    assert mine == theirs
    differ = [f for f in theirs if not filecmp.cmp(made / f, ours / f, shallow=False)]
    assert differ == [], f"files differ from make's bundle: {differ}"

    started = time.perf_counter()
    again = _cli("run", "--city", CITY, cwd=copy, env=env)
    noop = time.perf_counter() - started
    assert again.returncode == 0 and "everything is up to date" in again.stdout, again.stdout
    assert noop < 15, f"a no-op run took {noop:.1f} s (the real run {first:.0f} s)"
    print(f"runner: {CITY} in {first:.1f} s; no-op rerun {noop:.2f} s")

    if shutil.which("make"):
        # make's environment stamp as the make route left it: newer than
        # pyproject.toml, the lock and the overrides (else make would reinstall
        # the environment of this interpreter), older than the data (else make
        # would see everything as out of date)
        stamp = copy / ".venv" / ".installed"
        stamp.parent.mkdir()
        stamp.touch()
        sources = [copy / f for f in ("pyproject.toml", "requirements.lock", "uv-overrides.txt")]
        when = max(p.stat().st_mtime for p in sources) + 1
        os.utime(stamp, (when, when))
        goal = f"release/small/{CITY}/SHA256SUMS"

        def make(*args):
            return subprocess.run(
                ["make", *args, f"PY={sys.executable}", "SIZE=small", goal],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )

        assert make("-q").returncode == 0, "make does not see the runner's outputs as up to date"
        # one change, the same reruns: make -n and the runner's dry run name the same steps
        # a city file reruns all 10 steps; config/effects.yml the five that read it
        # (05 prepares the designs' data with it, 06 estimates, 07 splits by group,
        # 08 learns the advice rule, 09 validates)
        for changed, expected in (("config/cities", 10), ("config/effects.yml", 5)):
            path = copy / (f"{changed}/{CITY}.yml" if changed == "config/cities" else changed)
            before = path.stat().st_mtime
            os.utime(path, (time.time() + 5, time.time() + 5))
            dry = _cli("run", "--dry-run", "--city", CITY, cwd=copy, env=env).stdout
            ours = re.findall(r"run-step .*--city \w+ --step (\w+)", dry)
            theirs = re.findall(r"run-step .*--city \w+ --step (\w+)", make("-n").stdout)
            assert sorted(ours) == sorted(theirs) and len(ours) == expected, (changed, dry)
            os.utime(path, (before, before))

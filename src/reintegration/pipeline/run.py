"""``python -m reintegration run``: the whole pipeline without make or a shell.

It reads the task graph of :mod:`reintegration.pipeline.graph` (the one the
Makefile's generated rules come from) and applies make's rule to it: a task
runs when its target is missing or older than one of its prerequisites, after
the tasks whose targets it needs. Each task's commands run as child processes
of this interpreter (``python -m reintegration ...``, the same commands make
runs), up to ``jobs`` at a time, so it works the same on Linux, macOS and
Windows. The first failure stops new tasks from starting; those running are
finished, as make does without ``-k``.

Progress: one line when a task starts and one when it ends, with the elapsed
time and an estimate of the time left, from the durations of the previous
run (``build/<size>/run-times.json``); a task still running is reported every
``HEARTBEAT`` seconds; a task's own lines (papermill's, the step's) are
passed through, prefixed with the task's name.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from pathlib import Path

from ..core import atomic
from ..core.paths import Paths
from .graph import ONE_THREAD, Graph, Task, build, expand, python, resolver, write_size_stamp

TIMES = "run-times.json"
HEARTBEAT = 30.0


class RunError(RuntimeError):
    """The pipeline could not be planned (a prerequisite nobody makes) or a
    task failed."""


@dataclass
class Resolved:
    """A task with its variables resolved to paths below the repository root."""

    task: Task
    target: Path
    prereqs: list[Path]
    commands: list[list[str]]
    deps: set[str] = field(default_factory=set)  # names of the tasks it needs


def resolve(graph: Graph, paths: Paths) -> dict[str, Resolved]:
    """Every task of ``graph`` with paths for ``paths.size``, and the tasks each
    one needs (those whose targets are among its prerequisites)."""
    values = {**resolver(paths), **graph.variables}
    root = paths.root
    out: dict[str, Resolved] = {}
    for task in graph.tasks:
        cmds = [[python(), *expand(list(cmd), values)] for cmd in task.commands]
        out[task.name] = Resolved(
            task=task,
            target=root / expand([task.target], values)[0],
            prereqs=[root / p for p in expand(list(task.prereqs), values)],
            commands=cmds,
        )
    by_target = {r.target: name for name, r in out.items()}
    for r in out.values():
        r.deps = {by_target[p] for p in r.prereqs if p in by_target}
    return out


def select(
    graph: Graph,
    cities: list[str] | None = None,
    steps: list[str] | None = None,
    *,
    pdf: bool = False,
) -> list[str]:
    """The goal tasks: everything up to the published book (and its PDF with
    ``pdf``) when neither ``cities`` nor ``steps`` is given; else the chosen
    steps (all when none is given) of the chosen cities (all when none is
    given), with each city's release bundle when all its steps are chosen."""
    if not cities and not steps:
        return ["book", "pdf"] if pdf else ["book"]
    goals = [
        t.name
        for t in graph.tasks
        if t.kind == "step" and (not cities or t.city in cities) and (not steps or t.step in steps)
    ]
    if not steps:
        goals += [f"release/{c}" for c in (cities or graph.cities)]
    return goals


def closure(resolved: dict[str, Resolved], goals: Iterable[str]) -> list[str]:
    """The goals and every task they need, in the graph's order."""
    seen: set[str] = set()
    todo = list(goals)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += resolved[name].deps
    return [name for name in resolved if name in seen]


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns  # nanoseconds, as make compares them
    except FileNotFoundError:
        return None


def stale(r: Resolved, will_run: Set[str] = frozenset()) -> str | None:
    """Why ``r`` must run, by make's rule, or None when its target is up to date:
    its target is missing or older than a prerequisite. ``will_run``: tasks
    assumed to run first (a dry run's plan, as ``make -n`` assumes)."""
    target = _mtime(r.target)
    if target is None:
        return f"{r.target.name} is missing"
    if r.deps & will_run:
        return "a task it needs runs first"
    for p in r.prereqs:
        when = _mtime(p)
        if when is None:
            raise RunError(f"{p} is missing and no task made it (needed by {r.task.name})")
        if when > target:
            return f"{p.name} is newer"
    return None


def check_prerequisites(resolved: dict[str, Resolved], plan: list[str], root: Path) -> None:
    """Fail before any work when a prerequisite is missing and no task makes it."""
    targets = {r.target for r in resolved.values()}
    for name in plan:
        for p in resolved[name].prereqs:
            if p not in targets and not p.exists():
                rel = p.relative_to(root) if p.is_relative_to(root) else p
                raise RunError(f"{rel} is missing and no task makes it (needed by {name})")


def load_times(paths: Paths, resolved: dict[str, Resolved] | None = None) -> dict[str, float]:
    """The duration of each task in the previous run (``run-times.json``); for
    a step never timed by the runner, the run time in its provenance record
    (written by every run of the step, through make or not)."""
    import json

    f = paths.build_dir / TIMES
    try:
        times = {k: float(v) for k, v in json.loads(f.read_text(encoding="utf-8")).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        times = {}
    for name, r in (resolved or {}).items():
        if name in times or r.task.kind != "step" or r.task.city is None:
            continue
        record = paths.provenance_dir(r.task.city) / f"{r.task.step}.json"
        try:
            times[name] = float(json.loads(record.read_text(encoding="utf-8"))["runtime_seconds"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            continue
    return times


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


@dataclass
class Progress:
    """The estimate of the time left: the last run's duration of each task
    still to run (the mean of the known ones for a task never timed), less
    what the running ones have used, spread over the jobs."""

    times: dict[str, float]
    jobs: int
    started: float = field(default_factory=time.perf_counter)

    def guess(self, name: str) -> float | None:
        if name in self.times:
            return self.times[name]
        return sum(self.times.values()) / len(self.times) if self.times else None

    def left(self, waiting: Iterable[str], running: dict[str, float]) -> str:
        now = time.perf_counter()
        total = 0.0
        untimed = 0
        for name, used in [(n, 0.0) for n in waiting] + [
            (n, now - since) for n, since in running.items()
        ]:
            g = self.guess(name)
            if g is None:
                return "time left unknown (no earlier run)"
            untimed += name not in self.times
            total += max(0.0, g - used)
        guess = f"about {clock(total / max(1, self.jobs))} left"
        return guess + (f" ({untimed} never timed: guessed)" if untimed else "")

    def elapsed(self) -> str:
        return clock(time.perf_counter() - self.started)


def _reader(name: str, proc: subprocess.Popen, out: queue.Queue) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(("line", name, line.rstrip("\r\n")))
    out.put(("exit", name, proc.wait()))


def _start(r: Resolved, cmd: list[str], root: Path, out: queue.Queue) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if r.task.one_thread:
        env.update(ONE_THREAD)
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    threading.Thread(target=_reader, args=(r.task.name, proc, out), daemon=True).start()
    return proc


@dataclass
class Outcome:
    ran: list[str]
    failed: list[str]
    seconds: float
    checked: int


def execute(
    resolved: dict[str, Resolved],
    plan: list[str],
    paths: Paths,
    *,
    jobs: int = 2,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    heartbeat: float = HEARTBEAT,
) -> Outcome:
    """Run the out-of-date tasks of ``plan`` (in dependency order, up to
    ``jobs`` at a time). A dry run only says what would run."""
    started = time.perf_counter()
    check_prerequisites(resolved, plan, paths.root)
    times = load_times(paths, resolved)
    # the tasks that would run, judged as make -n does: the estimate's basis
    would: set[str] = set()
    for name in plan:
        if stale(resolved[name], would):
            would.add(name)
    if not would:
        say(f"run ({paths.size}): everything is up to date ({len(plan)} tasks checked)")
        return Outcome([], [], time.perf_counter() - started, len(plan))
    progress = Progress(times, jobs)
    say(
        f"run ({paths.size}): {len(would)} of {len(plan)} tasks to run, {jobs} at a time; "
        f"{progress.left(would, {})}"
    )
    if dry_run:
        for name in plan:
            if name in would:
                for cmd in resolved[name].commands:
                    say(f"  {name}: python {' '.join(cmd[1:])}")
        return Outcome(sorted(would), [], time.perf_counter() - started, len(plan))
    return _loop(resolved, plan, paths, jobs, would, progress, say, heartbeat)


def _loop(
    resolved: dict[str, Resolved],
    plan: list[str],
    paths: Paths,
    jobs: int,
    would: set[str],
    progress: Progress,
    say: Callable[[str], None],
    heartbeat: float,
) -> Outcome:
    todo = list(plan)  # not yet started or skipped
    done: set[str] = set()  # finished (ran or up to date)
    ran: list[str] = []
    failed: list[str] = []
    running: dict[str, float] = {}
    procs: dict[str, subprocess.Popen] = {}
    pending_cmds: dict[str, list[list[str]]] = {}
    last_beat: dict[str, float] = {}
    events: queue.Queue = queue.Queue()
    times = dict(progress.times)
    n = 0
    width = len(str(len(would)))
    prefix = jobs > 1
    try:
        while todo or running:
            # start what is ready, in plan order, while there are free jobs
            for name in list(todo):
                if failed or len(running) >= jobs:
                    break
                r = resolved[name]
                if not r.deps <= done:
                    continue
                todo.remove(name)
                why = stale(r)
                if not why:
                    done.add(name)
                    continue
                n += 1
                was = progress.guess(name) if name in times else None
                last = f"; last run {clock(was)}" if was is not None else ""
                say(f"[{n:>{width}}/{len(would)}] start {name} ({why}{last})")
                running[name] = last_beat[name] = time.perf_counter()
                pending_cmds[name] = list(r.commands)
                procs[name] = _start(r, pending_cmds[name].pop(0), paths.root, events)
            if not running:
                break  # a failure left nothing to wait for
            try:
                kind, name, value = events.get(timeout=min(1.0, heartbeat))
            except queue.Empty:
                now = time.perf_counter()
                for name, since in running.items():
                    if now - last_beat[name] >= heartbeat:
                        last_beat[name] = now
                        was = progress.guess(name) if name in times else None
                        of = f" (last run {clock(was)})" if was is not None else ""
                        say(f"  {name} still running: {clock(now - since)}{of}")
                continue
            if kind == "line":
                say(f"{name} | {value}" if prefix else value)
                continue
            if value == 0 and pending_cmds[name]:
                procs[name] = _start(resolved[name], pending_cmds[name].pop(0), paths.root, events)
                continue
            seconds = time.perf_counter() - running.pop(name)
            procs.pop(name)
            if value != 0:
                failed.append(name)
                say(f"FAILED {name} (exit {value}) after {clock(seconds)}")
                continue
            if resolved[name].task.touch:
                resolved[name].target.touch()
            done.add(name)
            ran.append(name)
            times[name] = round(seconds, 2)
            atomic.write_json(paths.build_dir / TIMES, dict(sorted(times.items())))
            waiting = [t for t in todo if t in would]
            say(
                f"[{len(ran):>{width}}/{len(would)}] done  {name} in {clock(seconds)}; "
                f"elapsed {progress.elapsed()}, {progress.left(waiting, running)}"
            )
    except BaseException:  # Ctrl-C, or an error of the runner itself: stop the children
        for proc in procs.values():
            proc.terminate()
        raise
    seconds = time.perf_counter() - progress.started
    return Outcome(ran, failed, seconds, len(plan))


def run(
    size: str,
    *,
    cities: list[str] | None = None,
    steps: list[str] | None = None,
    jobs: int = 2,
    dry_run: bool = False,
    pdf: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Bring the chosen part of the pipeline up to date (see :func:`select`)."""
    paths = Paths.for_size(size, root)
    graph = build(paths.root)
    write_size_stamp(paths)  # as make does, in a dry run too
    resolved = resolve(graph, paths)
    plan = closure(resolved, select(graph, cities, steps, pdf=pdf))
    outcome = execute(resolved, plan, paths, jobs=jobs, dry_run=dry_run, say=say)
    if outcome.failed:
        raise RunError(
            f"{', '.join(outcome.failed)} failed; {len(outcome.ran)} tasks ran before "
            f"(elapsed {clock(outcome.seconds)})"
        )
    if outcome.ran and not dry_run:
        say(f"run ({size}): {len(outcome.ran)} tasks in {clock(outcome.seconds)}")
    if "book" in plan and not dry_run:
        say(f"Book: {(paths.book_dir / '_build' / 'html' / 'index.html').as_uri()}")
    if "pdf" in plan and not dry_run:
        say(f"PDF: {resolved['pdf'].target.as_uri()}")
    return outcome

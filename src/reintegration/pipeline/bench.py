"""Benchmarks, run by ``make bench``; results to ``build/bench.json``.

Speed and memory targets are checked here, never by timed tests:

``data_full``
    generating the full synthetic data for every city into a temporary folder,
    two cities at a time (the machine has two cores); target 120 s in all.
``make_all``
    ``make all`` (data generation, every city's steps, the book and its PDF) in
    a fresh copy of the repository's files with this environment, from nothing
    generated; target 6 minutes at ``--size full`` (two cores), with the time of
    each step from make's own lines.
``noop_make``
    a second ``make all`` on an up-to-date tree; target 2 s, and no notebook
    re-executed.
``montecarlo``
    the Monte Carlo harness (``make montecarlo``): a few replications of its
    default plan, and the projected time of 100; target 30 minutes.
``panel_national``
    the panel step at national scale (:mod:`reintegration.pipeline.bench_scale`): a
    table of cohorts of 12,000 / 40,000 / 160,000 / 450,000 clients read from
    CBS files of 1 / 10 million other persons (Parquet, filtered to the
    cohort); time and peak resident memory of the panel in its own process;
    targets: 450,000 from 10 million within 180 s and 4 GiB, time per client
    at the largest cohort within 1.5x that at 40,000. The grid is set by
    ``--cohorts`` / ``--persons`` (or ``BENCH_COHORTS`` / ``BENCH_PERSONS``).
``heterogeneity_full_rotterdam``
    the Who benefits step's computation (:func:`reintegration.phase2.whom.city_analyses`)
    on full-size Rotterdam, every selection-on-observables instrument; target
    120 s (the step's budget per full-size city on two cores).
``effects_full_rotterdam``
    the effects step's computation (:func:`reintegration.phase2.estimates.city_estimates`,
    the sensitivity analysis and Phase 1's obligations) on full-size Rotterdam,
    every sub-study the city offers, each outcome and subgroup; target 60 s (the
    step's budget per full-size city on two cores).
``validation_full_rotterdam``
    the validation step's own model fits on full-size Rotterdam: the placebo
    roll-outs (:func:`reintegration.designs.rollout.placebo_check`, 100 draws) and
    the sensitivity analysis at the hidden factor's true strength
    (:func:`reintegration.phase2.sensitivity.at_truth`, every selection-on-observables
    instrument); target 70 s of CPU time (see :func:`bench_validation_full_rotterdam`).
``event_study_full_rotterdam``
    the roll-out event study of full-size Rotterdam (clients by team and inflow
    quarter, one row per client) fitted by :func:`reintegration.effects.event_study`
    and the same interacted two-way fixed-effects regression in pyfixest (the
    ``bench`` extra), as a ratio from one run.

Each entry records seconds, the peak resident memory in MiB where measured,
the target and whether it was met. Each benchmark runs in a fresh interpreter
of its own, and its peak memory is that process's own high-water mark
(:mod:`reintegration.pipeline.peak_rss`). With ``ru_maxrss`` in one process,
each benchmark reported the largest peak of those before it, and every process
it spawned inherited that peak: the panel of 12,000 clients "used" 4,058 MiB.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..core import atomic
from ..core.config import list_cities
from ..core.paths import Paths, repo_root
from ..core.steplog import step_times
from . import peak_rss
from .bench_scale import bench_panel_national


def _generate(args: tuple[str, str]) -> tuple[str, float, float]:
    from ..synth import generate_city

    city, data_dir = args
    started = time.perf_counter()
    generate_city(city, "full", data_dir=Path(data_dir))
    peak = peak_rss.peak_mib()
    return city, time.perf_counter() - started, peak


def bench_data_full(root: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as pool:
            per_city = list(pool.map(_generate, [(c, tmp) for c in list_cities(root)]))
        total = time.perf_counter() - started
    return {
        "seconds": round(total, 2),
        "target_seconds": 120,
        "met": total <= 120,
        "peak_rss_mib": round(max(p for _, _, p in per_city), 1),
        "per_city_seconds": {c: round(s, 2) for c, s, _ in per_city},
    }


def _fresh_copy(root: Path, copy: Path) -> dict[str, str]:
    """The repository's files (tracked or not ignored) in ``copy``, with make's
    environment stamp of this interpreter's environment (newer than the lock,
    so make uses it as it is); returns the environment to run make in."""
    import os
    import shutil

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in listed:
        if (root / rel).is_file() and not rel.startswith(".venv"):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, copy / rel)
    stamp = copy / ".venv" / ".installed"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    when = max((copy / f).stat().st_mtime
               for f in ("pyproject.toml", "requirements.lock", "uv-overrides.txt")) + 1
    os.utime(stamp, (when, when))
    return {**_top_level_env(), "PYTHONPATH": str(copy / "src")}


def _top_level_env() -> dict[str, str]:
    """This process's environment without what a calling make passes down (its
    job server and level: a make started from ``make bench`` would otherwise
    run one job at a time) or the pipeline's folder overrides."""
    import os

    drop = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
            "REINTEGRATION_BUILD_DIR", "REINTEGRATION_ROOT")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run_stamped(cmd: list[str], cwd: Path | str, env: dict[str, str] | None
                 ) -> tuple[int, list[tuple[float, str]]]:
    """Run ``cmd`` with its output (stderr into stdout) read line by line, each
    line with the seconds since the start at which it arrived."""
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))
    return proc.returncode, lines


#: what the make output says at each milestone of ``make all`` (the first line that matches)
MILESTONES = {
    "first_step_started": re.compile(r"reintegration run-step "),
    "audit_done": re.compile(r"^audit: passed"),
    "book_published": re.compile(r"^book: audited and published"),
    "pdf_done": re.compile(r"^PDF: \d+ pages"),
}


def milestones(lines: list[tuple[float, str]]) -> dict[str, float | None]:
    """Seconds since the start of ``make all`` at which each milestone's line
    appeared (None when it did not), and the last step's end."""
    out: dict[str, float | None] = {name: next((round(t, 1) for t, line in lines
                                                if rx.search(line)), None)
                                    for name, rx in MILESTONES.items()}
    ends = [t for t, line in lines if step_times(line)]
    out["last_step_done"] = round(max(ends), 1) if ends else None
    return out


def bench_make_all(root: Path, size: str) -> dict:
    """``make all SIZE=size`` from nothing generated, in a fresh copy (module text)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        env = _fresh_copy(root, copy)
        started = time.perf_counter()
        returncode, lines = _run_stamped(
            ["make", f"PY={sys.executable}", f"SIZE={size}", "all"], copy, env)
        seconds = time.perf_counter() - started
    output = "\n".join(line for _, line in lines)
    if returncode != 0:
        raise RuntimeError(f"make all SIZE={size} failed in a fresh copy:\n{output[-6000:]}")
    steps = step_times(output)
    per_step: dict[str, float] = {}
    for name, sec in steps.items():
        step = name.split("/", 1)[1]
        per_step[step] = round(per_step.get(step, 0.0) + sec, 1)
    target = 360 if size == "full" else None
    marks = milestones(lines)
    return {"seconds": round(seconds, 1), "size": size, "target_seconds": target,
            "met": seconds <= target if target else None,
            "step_seconds_all_cities": per_step,
            "slowest_steps": dict(sorted(steps.items(), key=lambda kv: -kv[1])[:6]),
            "milestones_seconds": marks,
            "after_last_step_seconds": round(seconds - marks["last_step_done"], 1)
            if marks["last_step_done"] is not None else None,
            "note": "data generation, every city's steps, the book and its PDF, from nothing "
                    "generated (the environment as it is); step seconds are the steps' own "
                    "lines, two at a time; milestones are seconds since the start at which "
                    "make printed them"}


def bench_noop_make(root: Path, size: str) -> dict:
    env = _top_level_env()
    subprocess.run(["make", f"SIZE={size}", "all"], cwd=root, check=True, capture_output=True,
                   env=env)
    results = root / "book" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*.ipynb")}
    started = time.perf_counter()
    subprocess.run(["make", f"SIZE={size}", "all"], cwd=root, check=True, capture_output=True,
                   env=env)
    seconds = time.perf_counter() - started
    rerun = sorted(str(p) for p, m in before.items() if p.stat().st_mtime_ns != m)
    return {
        "seconds": round(seconds, 2),
        "target_seconds": 2,
        "notebooks_reexecuted": len(rerun),
        "met": seconds <= 2 and not rerun,
    }


def _panel_prepare(root: str, build: str) -> None:
    """Delivery check and linkage of full-size Rotterdam into ``build``."""
    import os

    os.environ["REINTEGRATION_BUILD_DIR"] = build
    from ..core import step
    from ..intake import ingest, quality
    from ..linking import linkage

    ctx = step.start("01_delivery_check", city="rotterdam", size="full", root=Path(root))
    checked = quality.check_delivery(ingest.read_city(ctx), ctx.city, root=Path(root))
    quality.write_checked(ctx, checked)
    ctx = step.start("02_pseudonymise_link", city="rotterdam", size="full", root=Path(root))
    tables, quarantine = linkage.read_checked(ctx)
    key_table, register = linkage.read_ttp(ctx)
    result = linkage.link(tables, quarantine, key_table, register, key=linkage.pseudonym_key(ctx))
    linkage.write_delivery(ctx, result)


def _panel_run(root: str, build: str) -> tuple[float, float, int]:
    """The timed part, in its own process: import, read, build, write."""
    import os

    os.environ["REINTEGRATION_BUILD_DIR"] = build
    started = time.perf_counter()
    from ..core import step
    from ..research import panel

    ctx = step.start("03_panel", city="rotterdam", size="full", root=Path(root))
    built, _ = panel.run(ctx)
    seconds = time.perf_counter() - started
    peak = peak_rss.peak_mib()
    return seconds, peak, len(built.person_months)


def bench_panel_full_rotterdam(root: Path, size: str = "full") -> dict:
    """The panel step's work (read the linked delivery and the CBS files,
    build, write) for full-size Rotterdam in a fresh process; target 60 s.
    The delivery check and linkage it reads from run first, untimed, into a
    temporary build folder. Always full size, whatever SIZE is."""
    with tempfile.TemporaryDirectory() as tmp:
        seconds, peak, rows = _full_rotterdam_panel(root, tmp)
    return {
        "seconds": round(seconds, 2),
        "target_seconds": 60,
        "met": seconds <= 60,
        "peak_rss_mib": round(peak, 1),
        "person_months": rows,
    }


def _full_rotterdam_panel(root: Path, tmp: str) -> tuple[float, float, int]:
    """Generate full-size Rotterdam if needed, run the delivery check and
    linkage into ``tmp`` (untimed), then the panel step there in a fresh
    process; returns its (seconds, peak RSS in MiB, person-month rows)."""
    if not Paths.for_size("full", root).city_manifest("rotterdam").exists():
        from ..synth import generate_city

        generate_city("rotterdam", "full", root=root)
    peak_rss.in_fresh_process(_panel_prepare, str(root), tmp)
    return peak_rss.in_fresh_process(_panel_run, str(root), tmp)


def _event_study_data(root: Path) -> tuple:
    """Full-size Rotterdam's roll-out data (one row per client), from a panel
    built into a temporary folder, untimed."""
    import pandas as pd

    from ..core.config import load_city
    from ..designs import rollout
    from ..phase2 import estimates

    with tempfile.TemporaryDirectory() as tmp:
        _full_rotterdam_panel(root, tmp)
        persons = pd.read_parquet(Path(tmp) / "full" / "rotterdam" / "research" / "persons.parquet")
    settings = estimates.load_settings(root)
    schedule = rollout.rollout_schedule(load_city("rotterdam", root))
    data = rollout.rollout_settings_data(persons, schedule, settings)
    return data, settings["rollout_did"]


def bench_event_study_full_rotterdam(root: Path, size: str = "full") -> dict:
    """Fit time of the roll-out event study (employed 12 months after inflow,
    one row per client, no collapsing, no bootstrap) with
    :func:`reintegration.effects.event_study` (team and quarter effects absorbed in
    closed form, linearmodels' ``PanelOLS`` numbers) and of
    the same regression in pyfixest: the cohort x event-time indicators that
    the event study built, team and quarter effects, standard errors clustered
    on teams. Reports both times, their ratio and the largest difference of
    the coefficients. Always full size. pyfixest is optional (the ``bench``
    extra); without it only the event study is timed, with a note."""
    import numpy as np
    import pandas as pd

    from .. import effects

    data, cfg = _event_study_data(root)
    kw = dict(outcome="employed_12", entity="team", time="_period", treatment_start="_start",
              leads=int(cfg["leads"]), lags=int(cfg["lags"]), reference=int(cfg["reference"]),
              wild_bootstrap=0)
    started = time.perf_counter()
    res = effects.event_study(data, **kw)
    seconds = time.perf_counter() - started
    out = {"rows": int(len(data)), "seconds_reintegration": round(seconds, 3),
           "estimate": round(res.estimate, 6)}
    try:
        import pyfixest as pf
    except ImportError:
        out["note"] = ("pyfixest is not installed (pip install '.[bench]'): "
                       "the comparison was skipped")
        return out
    fit = res.model_results  # the regression's own data: indicators, team, quarter
    frame = pd.DataFrame({"y": fit.dependent})
    names = [f"x{i}" for i in range(fit.exog.shape[1])]
    frame[names] = fit.exog.to_numpy()
    frame["team"] = np.asarray(fit.entity).astype(str)
    frame["period"] = np.asarray(fit.period).astype(np.int64).astype(str)
    formula = f"y ~ {' + '.join(names)} | team + period"
    started = time.perf_counter()
    pfit = pf.feols(formula, data=frame, vcov={"CRV1": "team"})
    coef = pfit.coef()
    seconds_pf = time.perf_counter() - started
    started = time.perf_counter()  # again, its start-up done
    pf.feols(formula, data=frame, vcov={"CRV1": "team"}).coef()
    seconds_pf_again = time.perf_counter() - started
    diff = float(np.max(np.abs(coef.to_numpy() - np.asarray(fit.params)[: len(coef)])))
    out.update({
        "seconds_pyfixest": round(seconds_pf, 3),
        "ratio_reintegration_to_pyfixest": round(seconds / seconds_pf, 2),
        "seconds_pyfixest_second_call": round(seconds_pf_again, 3),
        "ratio_to_pyfixest_second_call": round(seconds / seconds_pf_again, 2),
        "pyfixest_version": pf.__version__,
        "max_abs_coef_difference": diff,
        "note": "one run each: the event-study time includes building the interactions, "
                "the Sun and Abraham aggregation and the pre-trend test; the pyfixest time "
                "includes its first-call start-up and fits the regression only",
    })
    return out


def bench_montecarlo(root: Path, size: str = "full") -> dict:
    """The Monte Carlo harness's cost (``make montecarlo``'s defaults: one
    city, every kind of world): four replications on two local workers, and
    the time of 100 projected from the mean time of one replication (the
    tasks are independent, so the projection is the mean task time x tasks /
    workers). Target: 100 replications within 30 minutes."""
    from ..montecarlo import harness as mc

    plan = mc.Plan(city="rotterdam", replications=4)
    _, cost, _ = mc.run(plan, n_jobs=2, root=root)
    per_task = cost["seconds_per_replication_mean"]
    projected = per_task * len(mc.Plan(city="rotterdam", replications=100).tasks()) / 2
    return {"seconds": cost["seconds"], "tasks": cost["tasks"], "clients": plan.clients,
            "seconds_per_replication_mean": per_task,
            "seconds_per_replication_max": cost["seconds_per_replication_max"],
            "projected_seconds_100_replications": round(projected, 1),
            "target_seconds": 1800, "met": projected <= 1800,
            "note": "projected from four replications per kind of world on 2 workers"}


def _full_rotterdam_research(root: Path) -> tuple:
    """Full-size Rotterdam's panel (persons, person months; built into a
    temporary folder, untimed), its city configuration and the effects
    settings."""
    import pandas as pd

    from ..core.config import load_city
    from ..phase2 import estimates

    with tempfile.TemporaryDirectory() as tmp:
        _full_rotterdam_panel(root, tmp)
        research = Path(tmp) / "full" / "rotterdam" / "research"
        persons = pd.read_parquet(research / "persons.parquet")
        person_months = pd.read_parquet(research / "person_months.parquet")
    return persons, person_months, load_city("rotterdam", root), estimates.load_settings(root)


def bench_heterogeneity_full_rotterdam(root: Path, size: str = "full") -> dict:
    """The Who benefits step's computation (:func:`reintegration.phase2.whom.city_analyses`:
    cross-fitted scores, group effects, BLP, GATES and the family's
    Romano-Wolf bootstrap) for full-size Rotterdam, on every
    selection-on-observables instrument the city offers (as if Phase 1 let
    all of them run: an upper bound of the step's work), from a panel built
    into a temporary folder, untimed; target 120 s. Always full size."""
    from ..designs import Inputs
    from ..feasibility.criteria import offered_instruments, substudy_ids
    from ..phase2 import whom

    persons, person_months, city, settings = _full_rotterdam_research(root)
    substudies = [{"design": name, "instrument": inst, "decision": "go"}
                  for name, inst in substudy_ids(city, offered_instruments(city))
                  if inst is not None]
    inputs = Inputs(persons=persons, city=city, effects=settings, person_months=person_months)
    started = time.perf_counter()
    results, family = whom.city_analyses(inputs, substudies, settings)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "target_seconds": 120, "met": seconds <= 120,
            "peak_rss_mib": round(peak_rss.peak_mib(), 1),
            "clients": int(len(persons)), "analyses": len(results),
            "contrasts": int(len(family)), "learner": settings["heterogeneity"]["learner"],
            "note": "every selection-on-observables instrument of the city, each outcome of "
                    "heterogeneity: in config/effects.yml; one run, in this process"}


def bench_effects_full_rotterdam(root: Path, size: str = "full") -> dict:
    """The effects step's computation (:func:`reintegration.phase2.estimates.city_estimates`,
    :func:`reintegration.phase2.sensitivity.city_analyses` and
    :func:`reintegration.phase2.obligations.evaluate`, what ``06_effects`` computes) for
    full-size Rotterdam, on every sub-study the city offers (as if Phase 1 let all of
    them run: an upper bound of the step's work), from a panel built into a temporary
    folder, untimed; target 60 s (the step's budget per full-size city on two cores).
    The notebook's own work (kernel start, disclosure checks, figures) is not
    included. Always full size."""
    from ..designs import Inputs
    from ..feasibility.criteria import offered_instruments, substudy_ids
    from ..phase2 import estimates, obligations, sensitivity

    persons, person_months, city, settings = _full_rotterdam_research(root)
    substudies = [{"id": f"{name}/{inst}", "design": name, "instrument": inst,
                   "decision": "go"}
                  for name, inst in substudy_ids(city, offered_instruments(city))
                  if inst is not None]
    started = time.perf_counter()
    records, _ = estimates.city_estimates(city, persons, person_months, substudies, settings)
    estimated = time.perf_counter() - started
    inputs = Inputs(persons=persons, city=city, effects=settings, person_months=person_months)
    table, _ = sensitivity.city_analyses(inputs, substudies, settings)
    obligations.evaluate(substudies, records, inputs, sensitivity=table)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "target_seconds": 60, "met": seconds <= 60,
            "peak_rss_mib": round(peak_rss.peak_mib(), 1),
            "clients": int(len(persons)), "substudies": len(substudies),
            "records": len(records),
            "estimated": sum(r["status"] == "estimated" for r in records),
            "seconds_estimates": round(estimated, 2),
            "seconds_sensitivity_and_obligations": round(seconds - estimated, 2),
            "note": "every sub-study of the city run (an upper bound of the step's work), "
                    "every outcome and subgroup; the step's computation only, one run, in "
                    "this process"}


def bench_validation_full_rotterdam(root: Path, size: str = "full") -> dict:
    """The validation step's computations that fit models of their own, for
    full-size Rotterdam: the placebo roll-outs (100 draws, each an event study
    with its randomisation test, per outcome) and the sensitivity analysis at
    the true strength of the unobserved factor, on every selection-on-observables
    instrument the city offers (an upper bound). The panel is built into a
    temporary folder, untimed; the rest of the step reads what the effects and
    Who benefits steps wrote (the per-starter predictions included) and costs
    about 15 s more. Target 70 s of CPU time (``time.process_time``: the fits
    run in this one process, and on two shared cores the wall clock measures
    the neighbours): measured at 56-57 s (placebo 35-39 s; two runs, December
    2026), so about 25% headroom; the whole step took about 135 s of CPU when
    it also refitted the Who benefits models, about 70 s since. The placebo
    roll-outs alone (``rollout.placebo_check``) then took 26-27 s of CPU time
    and 13 s after the randomisation test's designs were batched (two runs each,
    back to back, December 2026). Always full size."""
    import pandas as pd

    from ..designs import Inputs, get, rollout
    from ..feasibility.criteria import offered_instruments, substudy_ids
    from ..phase2 import sensitivity

    persons, person_months, city, settings = _full_rotterdam_research(root)
    truth = Paths.for_size("full", root).data_domain_dir("truth", "rotterdam")
    po = pd.read_parquet(truth / "potential_outcomes.parquet")
    substudies = [{"id": f"{name}/{inst}", "design": name, "instrument": inst,
                   "decision": "go"}
                  for name, inst in substudy_ids(city, offered_instruments(city))
                  if inst is not None]
    soo = get("selection_on_observables")

    def true_effect(instrument: str, outcome: str) -> float:
        record = {"design": soo.name, "instrument": instrument, "outcome": outcome,
                  "subgroup": "all", "group": "all", "target": soo.headline_target}
        return soo.truth(po, record, None, {})

    started, cpu = time.perf_counter(), time.process_time()
    placebo = rollout.placebo_check(po, city, settings, "full")
    placebo_cpu = time.process_time() - cpu
    inputs = Inputs(persons=persons, city=city, effects=settings, person_months=person_months)
    at_truth = sensitivity.at_truth(inputs, po, substudies, settings, true_effect)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "cpu_seconds_placebo": round(placebo_cpu, 2),
            "target_seconds": 70, "target_on": "cpu_seconds", "met": cpu <= 70,
            "peak_rss_mib": round(peak_rss.peak_mib(), 1),
            "clients": int(len(persons)), "placebo_fits": int(len(placebo)),
            "sensitivity_rows": int(len(at_truth)),
            "note": "placebo roll-outs and sensitivity at the truth, every selection-on-"
                    "observables instrument; one run, in this process; the target is on "
                    "CPU seconds"}


BENCHES = {
    "montecarlo": bench_montecarlo,
    "data_full": bench_data_full,
    "make_all": bench_make_all,
    "noop_make": bench_noop_make,
    "panel_full_rotterdam": bench_panel_full_rotterdam,
    "event_study_full_rotterdam": bench_event_study_full_rotterdam,
    "heterogeneity_full_rotterdam": bench_heterogeneity_full_rotterdam,
    "effects_full_rotterdam": bench_effects_full_rotterdam,
    "validation_full_rotterdam": bench_validation_full_rotterdam,
    "panel_national": bench_panel_national,
}


#: the benchmarks that time a step's computation in the benchmark's own process
IN_PROCESS = frozenset({"event_study_full_rotterdam", "heterogeneity_full_rotterdam",
                        "effects_full_rotterdam", "validation_full_rotterdam"})


def run_one(name: str, root: Path, size: str, cohorts: str | None = None,
            persons: str | None = None) -> dict:
    """The benchmark ``name`` in this process (``main`` starts a fresh one for
    each). The benchmarks that time a step's computation in this process start
    with the modules a step's kernel has imported before its first cell
    (:data:`reintegration.pipeline.warm.PRELOAD`), so that importing them is
    not timed, as it is not in the step."""
    if name in IN_PROCESS:
        import importlib

        from .warm import PRELOAD

        for module in PRELOAD:
            try:
                importlib.import_module(module)
            except ImportError:  # as the kernels' server does (a missing extra)
                continue
    bench = BENCHES[name]
    if name == "data_full":
        return bench(root)
    if name == "panel_national":
        return bench(root, size, cohorts=cohorts, persons=persons)
    return bench(root, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--cohorts", help="panel_national: cohort sizes, comma-separated "
                        "(default 12000,40000,160000,450000 or $BENCH_COHORTS)")
    parser.add_argument("--persons", help="panel_national: other persons in the CBS files, "
                        "comma-separated (default 1000000,10000000 or $BENCH_PERSONS)")
    args = parser.parse_args(argv)
    root = repo_root()
    out = args.output or Paths.for_size(args.size, root).build_root / "bench.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    for name in args.only or sorted(BENCHES):
        # each in an interpreter of its own: its peak memory (and the memory
        # it leaves behind) never counts for the next one
        result = peak_rss.in_fresh_process(run_one, name, root, args.size, args.cohorts,
                                           args.persons)
        previous[name] = result
        print(f"{name}: {json.dumps(result, sort_keys=True)}")
    atomic.write_json(out, previous)
    print(f"wrote {out}")
    return 0 if all(r.get("met", True) is not False for r in previous.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

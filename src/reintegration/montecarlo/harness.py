"""Monte Carlo harness: every design's estimate against the truth of its own
estimand, over many simulated worlds of one city (``make montecarlo``).

One replication draws a fresh world of the city (its own seed stream, the
same configuration: :func:`reintegration.synth.generate_city` with
``replication=r``) into a temporary folder, runs the delivery check, the
linkage and the panel exactly as the pipeline does, and then, for every
design, instrument and estimand the design reports (``Design.targets``),
fits the whole-cohort estimate and looks up its truth in the world's
potential outcomes (``Design.truth``). Three kinds of world:

``planted``
    the city's configuration as published: the planted effects.
``null``
    every instrument effect switched off (``during``, ``after`` and the
    heterogeneity set to zero): all truths are zero, so the share of
    intervals that exclude zero is the test's size.
``oracle``
    the planted world, with the unobserved employability factor added to
    selection on observables' covariates (``extra_covariates: [eta]``):
    the design's assumption then holds by construction, so it shows the
    estimator is right when its assumption is.
``null_oracle`` (only when asked for: ``--modes null_oracle``)
    the null world seen with the oracle's covariates: no effect anywhere and
    selection on observables' assumption holding, so its intervals' and the
    BLP test's rejection rates are their sizes, free of confounding.

Replications run in parallel with joblib on this machine, or on a Dask
cluster when a scheduler address is given (the same function per task).
:func:`summarise` gives per design, instrument, estimand and outcome the
coverage of the 95% intervals with its Clopper-Pearson band, the bias, the
ratio of the estimates' standard deviation to the mean standard error, the
mean interval length and the share of intervals excluding zero.

This harness reads the worlds it generates itself and never runs on
delivered data: it validates the estimators, not a city.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import designs
from ..core import atomic
from ..core.config import load_city, load_instruments
from ..core.paths import repo_root
from ..designs import Inputs
from ..designs.rollout import rollout_schedule
from ..feasibility.criteria import offered_instruments, substudy_ids
from ..intake import ingest, quality
from ..linking import linkage
from ..phase2 import estimates
from ..research import panel, panel_sources
from . import whom
from .shares import clopper_pearson, finite, nominal_band, percent

MODES = ("planted", "null", "oracle", "null_oracle")
#: the kinds of world ``make montecarlo`` runs unless told otherwise
DEFAULT_MODES = ("planted", "null", "oracle")
#: the designs each kind of world runs (the oracle only changes the observational ones)
MODE_DESIGNS = {"planted": None, "null": None, "oracle": ("selection_on_observables",),
                "null_oracle": ("selection_on_observables",)}
#: worlds without effects, and worlds where selection on observables sees the factor
NULL_MODES, ORACLE_MODES = ("null", "null_oracle"), ("oracle", "null_oracle")
#: the columns of one replication's rows, in order (no run-time fields)
ROW_FIELDS = ("mode", "replication", "design", "instrument", "target", "outcome", "status",
              "estimate", "std_error", "ci_low", "ci_high", "truth")
CBS_TABLES = {"gba": "GBAPERSOONTAB", "education": "HOOGSTEOPLTAB", "jobs": "SPOLISBUS",
              "bijstand": "BIJSTANDUITKERINGTAB", "medication": "MEDICIJNTAB"}


@dataclass(frozen=True)
class Plan:
    """What to simulate: one city, R replications per kind of world."""

    city: str
    replications: int = 100
    size: str = "full"
    clients: int | None = 8000
    modes: tuple[str, ...] = DEFAULT_MODES
    outcomes: tuple[str, ...] = ("employed_24",)
    #: randomisation draws of the roll-out's test (fewer than the published 499:
    #: the harness needs each interval, not a p-value to three decimals)
    permutations: int = 199
    first: int = 1
    effects: dict[str, Any] = field(default_factory=dict)
    #: also the Who benefits analysis per world (:mod:`reintegration.montecarlo.whom`)
    heterogeneity: bool = True

    def __post_init__(self) -> None:
        bad = sorted(set(self.modes) - set(MODES))
        if bad:
            raise ValueError(f"unknown Monte Carlo mode(s) {bad}; known: {', '.join(MODES)}")
        if self.replications < 1:
            raise ValueError("replications must be at least 1")

    def tasks(self) -> list[tuple[str, int]]:
        return [(m, r) for m in self.modes
                for r in range(self.first, self.first + self.replications)]


def null_overrides(root: Path | None = None) -> dict[str, Any]:
    """Synthetic settings that switch every instrument's effect off."""
    return {"effects": {inst: {"during": 0.0, "after": 0.0, "heterogeneity": {}}
                        for inst in load_instruments(root)}}


def settings_for(plan: Plan, mode: str, root: Path | None = None) -> dict[str, Any]:
    """Phase 2's settings (config/effects.yml) with the harness's changes:
    the roll-out's randomisation draws and, in the oracle, the unobserved
    factor as an extra covariate of selection on observables."""
    settings = copy.deepcopy(estimates.load_settings(root))
    for key, value in plan.effects.items():
        settings[key] = {**settings.get(key, {}), **value}
    settings["rollout_did"] = {**settings["rollout_did"], "permutations": plan.permutations}
    if mode in ORACLE_MODES:
        soo = settings["selection_on_observables"]
        soo["extra_covariates"] = [*soo.get("extra_covariates", []), "eta"]
    return settings


def world_panel(city: str, plan: Plan, replication: int, mode: str, data_dir: Path,
                root: Path) -> tuple[dict[str, Any], panel.Panel, pd.DataFrame, dict[str, Any]]:
    """Generate one world and build its panel as the pipeline's steps 01-03
    do; returns the city configuration, the panel, the potential outcomes
    and the world's effects.json."""
    from ..synth import generate_city

    generate_city(city, plan.size, root=root, data_dir=data_dir, replication=replication,
                  clients=plan.clients,
                  overrides=null_overrides(root) if mode in NULL_MODES else None)
    cfg = load_city(city, root)
    exports = ingest.read_delivery(cfg, data_dir / "municipal" / city)
    checked = quality.check_delivery(exports, cfg, root=root)
    key_table = pd.read_parquet(data_dir / "ttp" / city / "key_table.parquet")
    register = pd.read_parquet(data_dir / "ttp" / city / "person_register.parquet")
    linked = linkage.link(checked.tables, checked.quarantine, key_table, register,
                          key=f"montecarlo-{replication}".encode())
    cbs = data_dir / "research" / "cbs" / city
    research = linked.research
    src = panel_sources.Sources(
        clients=research["clients"], benefit_spells=research["benefit_spells"],
        instruments=research["instruments"],
        **{k: panel_sources.read_sav_file(cbs / f"{t}.sav", t) for k, t in CBS_TABLES.items()})
    built = panel.build(src, cfg["study"])
    truth_dir = data_dir / "truth" / city
    po = pd.read_parquet(truth_dir / "potential_outcomes.parquet")
    truth = json.loads((truth_dir / "effects.json").read_text(encoding="utf-8"))
    return cfg, built, po, truth


@dataclass
class Replication:
    """One world's rows: the designs' estimates, the heterogeneity rows
    (:mod:`reintegration.montecarlo.whom`) and the seconds the latter took."""

    rows: list[dict[str, Any]]
    heterogeneity: list[dict[str, Any]] = field(default_factory=list)
    heterogeneity_seconds: float = 0.0


def replicate(plan: Plan, mode: str, replication: int, root: Path | None = None
              ) -> list[dict[str, Any]]:
    """The design rows of one replication of one kind of world."""
    return replication_rows(plan, mode, replication, root).rows


def replication_rows(plan: Plan, mode: str, replication: int, root: Path | None = None
                     ) -> Replication:
    """Every row of one replication of one kind of world (see the module text)."""
    root = (root or repo_root()).resolve()
    with tempfile.TemporaryDirectory(prefix="montecarlo-") as tmp:
        cfg, built, po, truth = world_panel(plan.city, plan, replication, mode, Path(tmp), root)
    settings = settings_for(plan, mode, root)
    persons = built.persons
    if mode in ORACLE_MODES:
        eta = estimates.aligned_truth(persons, po, ["eta"])["eta"].to_numpy()
        persons = persons.assign(eta=eta)
    inputs = Inputs(persons=persons, city=cfg, effects=settings,
                    person_months=built.person_months)
    context = {"schedule": rollout_schedule(cfg), "settings": settings, "truth": truth}
    wanted = MODE_DESIGNS[mode]
    rows, observational = [], {}
    for name, instrument in substudy_ids(cfg, offered_instruments(cfg)):
        if instrument is None or (wanted is not None and name not in wanted):
            continue
        design = designs.get(name)
        data = design.prepare(inputs, instrument)
        if design.observational:
            observational[instrument] = data
        # the null world checks each design's headline test; the others all estimands
        targets = [design.headline_target] if mode in NULL_MODES else list(design.targets)
        for target in targets:
            for outcome in plan.outcomes:
                rows.append(_row(design, data, po, context, settings, mode, replication,
                                 instrument, target, outcome))
    out = Replication(rows)
    if plan.heterogeneity and observational:
        started = time.perf_counter()
        out.heterogeneity = whom.rows(inputs, po, settings, observational, mode,
                                                 replication)
        out.heterogeneity_seconds = time.perf_counter() - started
    return out


def _row(design: designs.Design, data: pd.DataFrame | None, po: pd.DataFrame,
         context: dict[str, Any], settings: dict[str, Any], mode: str, replication: int,
         instrument: str, target: str, outcome: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(mode=mode, replication=replication, design=design.name, instrument=instrument,
               target=target, outcome=outcome)
    record = {"design": design.name, "instrument": instrument, "outcome": outcome,
              "subgroup": estimates.ALL, "group": estimates.ALL, "target": target}
    row["truth"] = finite(design.truth(po, record, None, context))
    if data is None:
        row["status"] = "no data"
        return row
    try:
        res = design.estimate(data, outcome, settings, target=target)
    except (ValueError, np.linalg.LinAlgError) as exc:
        row["status"] = "failed: " + " ".join(str(exc).split())[:120]
        return row
    rec = res.to_record()  # the interval Phase 2 reports (randomisation where it applies)
    row.update(status="estimated", **{k: finite(rec[k]) for k in
                                      ("estimate", "std_error", "ci_low", "ci_high")})
    return row


def run(plan: Plan, *, n_jobs: int = 2, scheduler: str | None = None,
        root: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """All replications of ``plan``: the design rows (sorted, no run-time
    fields), the cost (seconds in all and per replication, where they ran,
    and the share of a replication the heterogeneity rows took) and the
    heterogeneity rows (:func:`reintegration.montecarlo.whom.frame`)."""
    root = (root or repo_root()).resolve()
    tasks = plan.tasks()
    started = time.perf_counter()
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            futures = client.map(_timed, [plan] * len(tasks), [m for m, _ in tasks],
                                 [r for _, r in tasks], [root] * len(tasks), pure=False)
            results = client.gather(futures)
        where = f"dask scheduler {scheduler}"
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_timed)(plan, m, r, root) for m, r in tasks)
        where = f"joblib, {n_jobs} worker(s)"
    seconds = time.perf_counter() - started
    rows = [row for part, _ in results for row in part.rows]
    het = whom.frame([row for part, _ in results for row in part.heterogeneity])
    per_task = [s for _, s in results]
    het_seconds = [part.heterogeneity_seconds for part, _ in results]
    frame = pd.DataFrame(rows, columns=list(ROW_FIELDS))
    frame = frame.sort_values(["mode", "design", "instrument", "target", "outcome",
                               "replication"], kind="stable").reset_index(drop=True)
    cost = {"seconds": round(seconds, 1), "tasks": len(tasks), "where": where,
            "seconds_per_replication_mean": round(float(np.mean(per_task)), 2),
            "seconds_per_replication_max": round(float(np.max(per_task)), 2),
            "heterogeneity_seconds_mean": round(float(np.mean(het_seconds)), 2),
            # the heterogeneity rows' time against the rest of a replication
            "heterogeneity_added": round(float(np.sum(het_seconds))
                                         / max(float(np.sum(per_task) - np.sum(het_seconds)),
                                               1e-9), 3)}
    return frame, cost, het


def _timed(plan: Plan, mode: str, replication: int, root: Path
           ) -> tuple[Replication, float]:
    started = time.perf_counter()
    part = replication_rows(plan, mode, replication, root)
    return part, time.perf_counter() - started


SUMMARY_COLUMNS = ("mode", "design", "instrument", "target", "outcome", "replications",
                   "failed", "mean_truth", "mean_estimate", "bias", "bias_se", "rmse",
                   "coverage", "coverage_low", "coverage_high", "sd_over_se",
                   "interval_length", "unbounded", "reject_zero")


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per mode, design, instrument, estimand and outcome (see the module text)."""
    out = []
    keys = ["mode", "design", "instrument", "target", "outcome"]
    for key, g in rows.groupby(keys, sort=True):
        ok = g[(g["status"] == "estimated") & g["truth"].notna()]
        n = len(ok)
        rec = dict(zip(keys, key, strict=True))
        rec.update(replications=n, failed=int((g["status"] != "estimated").sum()))
        if n:
            est, tru = ok["estimate"].astype(float), ok["truth"].astype(float)
            err = est - tru
            # a missing bound is an unbounded interval (randomisation or
            # Anderson-Rubin intervals can be): it covers on that side
            low = ok["ci_low"].astype(float).fillna(-np.inf)
            high = ok["ci_high"].astype(float).fillna(np.inf)
            bounded = np.isfinite(low) & np.isfinite(high)
            covered = int(((low <= tru) & (tru <= high)).sum())
            lo, hi = clopper_pearson(covered, n)
            se = ok["std_error"].astype(float)
            rec.update(
                mean_truth=tru.mean(), mean_estimate=est.mean(), bias=err.mean(),
                bias_se=err.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan,
                rmse=math.sqrt(float((err**2).mean())), coverage=covered / n,
                coverage_low=lo, coverage_high=hi,
                sd_over_se=est.std(ddof=1) / se.mean() if n > 1 and se.mean() > 0 else math.nan,
                interval_length=float((high - low)[bounded].median()) if bounded.any()
                else math.inf, unbounded=int((~bounded).sum()),
                reject_zero=float(((low > 0) | (high < 0)).mean()))
        out.append(rec)
    frame = pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
    return frame


def acceptance(summary: pd.DataFrame, *, valid: Iterable[tuple[str, str, str]] = (),
               coverage: tuple[float, float] = (0.92, 0.98),
               sd_ratio: tuple[float, float] = (0.85, 1.15),
               null_rejection: float = 0.07) -> pd.DataFrame:
    """One line per check of the harness's criteria: the designs valid by
    construction (``valid``: (mode, design, target)) cover within
    ``coverage`` with SD(estimate)/mean(SE) within ``sd_ratio``; in the null
    world every design rejects zero in at most ``null_rejection``."""
    rows = []
    want = set(valid)
    for r in summary.itertuples(index=False):
        if (r.mode, r.design, r.target) in want and r.replications:
            rows.append({"check": "coverage", "mode": r.mode, "design": r.design,
                         "instrument": r.instrument, "target": r.target, "outcome": r.outcome,
                         "value": r.coverage,
                         "met": bool(coverage[0] <= r.coverage <= coverage[1])})
            rows.append({"check": "sd_over_se", "mode": r.mode, "design": r.design,
                         "instrument": r.instrument, "target": r.target, "outcome": r.outcome,
                         "value": r.sd_over_se,
                         "met": bool(sd_ratio[0] <= r.sd_over_se <= sd_ratio[1])})
        if r.mode in NULL_MODES and r.replications:
            rows.append({"check": "null_rejection", "mode": r.mode, "design": r.design,
                         "instrument": r.instrument, "target": r.target, "outcome": r.outcome,
                         "value": r.reject_zero, "met": bool(r.reject_zero <= null_rejection)})
    return pd.DataFrame(rows, columns=["check", "mode", "design", "instrument", "target",
                                       "outcome", "value", "met"])


def decomposition(rows: pd.DataFrame, design: str = "selection_on_observables",
                  headline: str = "now_vs_later", never: str = "vs_never",
                  outcome: str = "employed_24") -> pd.DataFrame:
    """Selection on observables' error against the "versus never" truth (the
    comparison earlier versions of the validation made), split per replication
    into estimand mismatch (the truth of what the estimator targets, now versus
    later, minus the versus-never truth) and confounding (the estimate minus
    its own truth); beside it the oracle's error against its own truth
    (confounding removed). Means over replications, per instrument."""
    r = rows[(rows["design"] == design) & (rows["outcome"] == outcome)
             & (rows["status"] == "estimated")]
    key = ["replication", "instrument"]
    now = r[(r["mode"] == "planted") & (r["target"] == headline)].set_index(key)
    nev = r[(r["mode"] == "planted") & (r["target"] == never)].set_index(key)
    orc = r[(r["mode"] == "oracle") & (r["target"] == headline)].set_index(key)
    both = now[["estimate", "truth"]].join(nev[["truth"]].rename(columns={"truth": "never"}),
                                           how="inner")
    if both.empty:
        return pd.DataFrame(columns=["instrument", "error_vs_never", "estimand_mismatch",
                                     "confounding", "oracle_error", "replications"])
    both["oracle"] = (orc["estimate"] - orc["truth"]).reindex(both.index)
    out = both.assign(error_vs_never=both["estimate"] - both["never"],
                      estimand_mismatch=both["truth"] - both["never"],
                      confounding=both["estimate"] - both["truth"])
    g = out.groupby(level="instrument")
    return pd.DataFrame({
        "error_vs_never": g["error_vs_never"].mean(),
        "estimand_mismatch": g["estimand_mismatch"].mean(),
        "confounding": g["confounding"].mean(),
        "oracle_error": g["oracle"].mean(),
        "replications": g.size(),
    }).reset_index()


#: (mode, design, target) valid by construction in the synthetic world
VALID_BY_CONSTRUCTION = (
    ("planted", "rollout_did", "itt"),
    ("planted", "rollout_did", "per_starter"),
    ("planted", "case_manager_iv", "versus_none"),
    ("oracle", "selection_on_observables", "now_vs_later"),
    ("null_oracle", "selection_on_observables", "now_vs_later"),
)


def output_dir(root: Path | None = None) -> Path:
    return (root or repo_root()).resolve() / "build" / "montecarlo"


def write(plan: Plan, rows: pd.DataFrame, cost: dict[str, Any], root: Path | None = None,
          heterogeneity: pd.DataFrame | None = None) -> Path:
    """``build/montecarlo/<city>.json`` (plan, summary, acceptance, cost, and
    the heterogeneity rows' summary and criteria), ``<city>_rows.csv`` (every
    replication's row) and ``<city>_heterogeneity_rows.csv``."""
    from ..intake.screening import csv_bytes
    folder = output_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    checks = acceptance(summary, valid=VALID_BY_CONSTRUCTION)
    atomic.write_bytes(folder / f"{plan.city}_rows.csv",
                       csv_bytes(rows, index=False, float_format="%.6g"))
    het: dict[str, Any] | None = None
    if heterogeneity is not None and len(heterogeneity):
        atomic.write_bytes(folder / f"{plan.city}_heterogeneity_rows.csv",
                           csv_bytes(heterogeneity, index=False, float_format="%.6g"))
        het_summary = whom.summarise(heterogeneity)
        het = {"summary": het_summary, "acceptance": whom.acceptance(het_summary),
               "cost": {"seconds_mean": cost.get("heterogeneity_seconds_mean"),
                        "share": cost.get("heterogeneity_added")}}
    path = folder / f"{plan.city}.json"
    atomic.write_json(path, {
        "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(plan).items()},
        "summary": json.loads(summary.to_json(orient="records", double_precision=6)),
        "decomposition": json.loads(decomposition(rows).to_json(orient="records",
                                                                double_precision=6)),
        "acceptance": json.loads(checks.to_json(orient="records", double_precision=6)),
        "cost": cost,
        "heterogeneity": het,
    })
    return path


# ---------------------------------------------------------------------------
# the validation chapter's section
# ---------------------------------------------------------------------------

MODE_WORDS = {
    "planted": "the planted world (the city's configuration)",
    "null": "the null world (every instrument effect switched off)",
    "null_oracle": "the null world seen by the oracle (no effects, and selection on "
                   "observables also sees the unobserved employability factor)",
    "oracle": "the oracle world (selection on observables also sees the unobserved "
              "employability factor)",
}


def _pp(x: Any, sign: bool = True) -> str:
    v = finite(x)
    if v is None:
        return "–"
    return f"{100 * v:+.1f}" if sign else f"{100 * v:.1f}"


def _results_table(summary: pd.DataFrame, root: Path | None) -> list[str]:
    from ..research.labels import label

    lines = ["| design | instrument | estimand | worlds | mean truth (pp) | bias (pp) "
             "| coverage of the 95% intervals [band] | SD / SE | median interval length (pp) "
             "| intervals excluding zero |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in summary.itertuples(index=False):
        design = designs.get(r.design)
        target = design.targets.get(r.target, r.target)
        band = (f"{percent(r.coverage)} [{percent(r.coverage_low)}-{percent(r.coverage_high)}]"
                if r.replications else "–")
        unb = f" ({r.unbounded} unbounded)" if finite(r.unbounded) else ""
        bias = (f"{_pp(r.bias)} ± {_pp(1.96 * r.bias_se, sign=False)}"
                if finite(r.bias_se) is not None else _pp(r.bias))
        sd = finite(r.sd_over_se)
        lines.append(
            f"| {design.label} | {label(r.instrument, root)} | {target} | {r.replications} "
            f"| {_pp(r.mean_truth)} | {bias} | {band} | "
            f"{'–' if sd is None else f'{sd:.2f}'} | {_pp(r.interval_length, sign=False)}{unb} "
            f"| {percent(r.reject_zero)} |")
    return lines


def markdown(root: Path | None = None) -> str:
    """The Monte Carlo section of the validation chapter, from the result
    files in ``build/montecarlo/`` (or how to make them when there are none)."""
    files = sorted(output_dir(root).glob("*.json"))
    if not files:
        return ("No Monte Carlo results are in this build. Run `make montecarlo` (one city, "
                "100 worlds of each kind, about half an hour on two cores; "
                "`MC_REPS=20 make montecarlo` for a quick look) and build the book again: "
                "this section then shows them.\n")
    out: list[str] = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        plan, cost = data["plan"], data["cost"]
        summary = pd.DataFrame(data["summary"], columns=list(SUMMARY_COLUMNS))
        checks = pd.DataFrame(data["acceptance"])
        city = load_city(plan["city"], root)["display_name"]
        lo, hi = nominal_band(int(plan["replications"]))
        out += [f"### {city}: {plan['replications']} worlds of each kind", "",
                f"Each world has {plan['clients'] or 'the size`s'} clients "
                f"(generated with the {plan['size']} world's settings and this many clients); "
                f"outcome: {', '.join(plan['outcomes'])}. "
                f"Computed in {cost['seconds']:.0f} seconds ({cost['where']}). "
                f"With {plan['replications']} worlds, a correct 95% interval covers the "
                f"truth in {percent(lo)} to {percent(hi)} of them in 95 of 100 such runs; the "
                "band after each coverage is its exact (Clopper-Pearson) 95% interval. "
                "Bias is in percentage points with its Monte Carlo 95% margin; SD / SE is "
                "the spread of the estimates over the worlds divided by their mean "
                "standard error (1 when the standard errors are right).", ""]
        for mode in MODES:
            part = summary[summary["mode"] == mode]
            if part.empty:
                continue
            out += [f"**{MODE_WORDS[mode].capitalize()}**", "", *_results_table(part, root), ""]
        dec = pd.DataFrame(data.get("decomposition") or [])
        if not dec.empty:
            from ..research.labels import label

            out += ["**Where selection on observables' error comes from** (employment 24 "
                    "months after inflow, percentage points, mean over the planted worlds): "
                    "its error against the effect of starting versus never starting is the "
                    "sum of the estimand mismatch (the estimator compares starting now with "
                    "not starting now, and those who do not start now may start later) and "
                    "of confounding by the unobserved employability (the estimate minus the "
                    "truth of its own estimand). The last column is the error in the oracle "
                    "world, where the estimator also sees employability.", "",
                    "| instrument | error against versus never | of which estimand mismatch "
                    "| of which confounding | error with the oracle |",
                    "|---|---:|---:|---:|---:|"]
            for r in dec.itertuples(index=False):
                out.append(f"| {label(r.instrument, root)} | {_pp(r.error_vs_never)} | "
                           f"{_pp(r.estimand_mismatch)} | {_pp(r.confounding)} | "
                           f"{_pp(r.oracle_error)} |")
            out.append("")
        if not checks.empty:
            met = int(checks["met"].sum())
            out += [f"Criteria met: {met} of {len(checks)} (coverage within 92-98% and "
                    "SD / SE within 0.85-1.15 for the designs valid by construction; "
                    "at most 7% of intervals excluding zero in the null world).", ""]
            failed = checks[~checks["met"].astype(bool)]
            from ..research.labels import label

            what = {"coverage": "coverage", "sd_over_se": "SD / SE",
                    "null_rejection": "intervals excluding zero"}
            for c in failed.itertuples(index=False):
                out.append(f"* not met: {what.get(c.check, c.check)} of "
                           f"{designs.get(c.design).label}, {label(c.instrument, root)} "
                           f"(estimand `{c.target}`), {c.mode} world: {finite(c.value):.3f}")
            out.append("")
        out += whom.markdown(data, root)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reintegration montecarlo",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--city", default="rotterdam")
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--size", default="full")
    parser.add_argument("--clients", type=int, default=8000)
    parser.add_argument("--modes", nargs="*", default=list(DEFAULT_MODES), choices=MODES)
    parser.add_argument("--outcomes", nargs="*", default=["employed_24"])
    parser.add_argument("--permutations", type=int, default=199)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-heterogeneity", action="store_true",
                        help="skip the Who benefits analysis in each world")
    parser.add_argument("--first", type=int, default=1, help="number of the first world")
    parser.add_argument("--scheduler", default=None,
                        help="address of a Dask scheduler (tcp://host:8786); local joblib "
                        "workers when absent")
    args = parser.parse_args(argv)
    plan = Plan(city=args.city, replications=args.replications, size=args.size,
                clients=args.clients, modes=tuple(args.modes), outcomes=tuple(args.outcomes),
                permutations=args.permutations, first=args.first,
                heterogeneity=not args.no_heterogeneity)
    rows, cost, het = run(plan, n_jobs=args.jobs, scheduler=args.scheduler)
    path = write(plan, rows, cost, heterogeneity=het)
    data = json.loads(path.read_text(encoding="utf-8"))
    met = sum(c["met"] for c in data["acceptance"])
    print(f"{len(rows)} estimates from {cost['tasks']} replications in {cost['seconds']} s "
          f"({cost['where']}); acceptance checks met: {met} of {len(data['acceptance'])}")
    for c in (data.get("heterogeneity") or {}).get("acceptance", []):
        print(f"heterogeneity {c['check']} ({c['mode']} world, {c['worlds']} worlds): "
              f"{c['value']:.3f}, {'met' if c['met'] else 'not met'}")
    print(f"heterogeneity rows added {cost['heterogeneity_added']:.0%} to a replication")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())

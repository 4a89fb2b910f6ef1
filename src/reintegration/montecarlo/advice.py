"""Monte Carlo check of the advice rule: over many simulated worlds of one
city, does the 95% interval of the rule's estimated value cover its true
value, and how far is the learned rule from the best rule of its kind?
(``make montecarlo-advice``)

One replication draws a fresh world (the same generator and panel as
:mod:`reintegration.montecarlo.harness`), learns the rule on today's starters as the
step ``08_advice`` does (:func:`reintegration.phase2.advice.city_advice`, without the
fairness and minimisation tables), and compares with the world's potential
outcomes (:func:`reintegration.phase2.advice_truth.true_values`):

value
    the held-out estimate of the starters' employment under the rule against
    its truth: each starter's potential outcome under the advice of the rule
    learned without their fold (the estimand of the held-out estimate);
gain
    the held-out estimate of the rule minus today's choices, against its truth;
regret
    the true value of the best rule of the same kind (the same questions and
    places, learned on the potential outcomes) minus that of the rule shown,
    as a share of the best rule's gain over today's choices.

Every instrument the city offers is treated as allowed (Phase 1 is not run
per world). ``planted`` worlds use the city's configuration; ``oracle``
worlds also give the scores' models the unobserved employability factor,
so that the design's assumption holds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import atomic
from ..core.config import load_city
from ..core.paths import repo_root
from ..feasibility.criteria import offered_instruments
from ..phase2 import advice, advice_truth, estimates
from .harness import Plan, clopper_pearson, nominal_band, world_panel

MODES = ("planted", "oracle")
FIELDS = ("mode", "replication", "starters", "value", "value_se", "value_truth",
          "gain", "gain_se", "gain_truth", "rule_truth", "oracle_truth", "status_quo",
          "regret", "oracle_gain", "regret_share", "leaves_as_today")


def replicate(city: str, mode: str, replication: int, clients: int | None = 8000,
              size: str = "full", root: Path | None = None) -> dict[str, Any]:
    """One world: the rule's estimated value and gain with their truths."""
    root = (root or repo_root()).resolve()
    plan = Plan(city=city, replications=1, size=size, clients=clients, modes=("planted",))
    with tempfile.TemporaryDirectory(prefix="montecarlo-advice-") as tmp:
        cfg, built, po, _ = world_panel(city, plan, replication, "planted", Path(tmp), root)
    settings = copy.deepcopy(estimates.load_settings(root))
    persons = built.persons.reset_index(drop=True)
    aligned = estimates.aligned_truth(persons, po)
    if mode == "oracle":
        persons = persons.assign(eta=aligned["eta"].to_numpy())
        soo = settings["selection_on_observables"]
        soo["extra_covariates"] = [*soo.get("extra_covariates", []), "eta"]
    offered = offered_instruments(cfg)
    substudies = [{"design": "selection_on_observables", "instrument": i, "decision": "go"}
                  for i in offered]
    adv = advice.city_advice(persons, substudies, settings, audit=False)
    if adv is None:
        return {"mode": mode, "replication": replication, "starters": 0}
    keep = persons["instrument"].astype("string").fillna("none").ne("none").to_numpy()
    truth = advice_truth.true_values(adv, aligned[keep].reset_index(drop=True))
    values = adv.values.set_index(["policy", "versus"], drop=False)
    rule = values[(values["policy"] == "the rule") & values["versus"].isna()].iloc[0]
    gain = values[values["versus"] == "today's allocation"].iloc[0]
    return {
        "mode": mode, "replication": replication, "starters": len(adv.scores.y),
        "value": float(rule["estimate"]), "value_se": float(rule["std_error"]),
        "value_truth": truth["rule_heldout"],
        "gain": float(gain["estimate"]), "gain_se": float(gain["std_error"]),
        "gain_truth": truth["rule_heldout"] - truth["status_quo"],
        "rule_truth": truth["rule"], "oracle_truth": truth["oracle"],
        "status_quo": truth["status_quo"], "regret": truth["regret"],
        "oracle_gain": truth["oracle_gain"], "regret_share": truth["regret_share"],
        "leaves_as_today": sum(1 for r in truth_rules(adv) if r == advice.TODAY),
    }


def truth_rules(adv: advice.Advice) -> list[str]:
    return [a for _, a in adv.rule.tree.rules()]


def run(city: str, replications: int, *, modes: Sequence[str] = MODES,
        clients: int | None = 8000, jobs: int = 2, first: int = 1,
        root: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every replication of every mode (joblib workers); rows and the cost."""
    from joblib import Parallel, delayed

    tasks = [(m, r) for m in modes for r in range(first, first + replications)]
    started = time.perf_counter()
    rows = Parallel(n_jobs=jobs)(
        delayed(replicate)(city, m, r, clients, "full", root) for m, r in tasks)
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(rows, columns=list(FIELDS)).sort_values(
        ["mode", "replication"], kind="stable").reset_index(drop=True)
    return frame, {"seconds": round(seconds, 1), "tasks": len(tasks),
                   "where": f"joblib, {jobs} worker(s)"}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per mode: coverage of the value's and the gain's 95% intervals (with
    Clopper-Pearson bands), bias, SD / mean SE, and the regret."""
    out = []
    for mode, g in rows.groupby("mode", sort=False):
        g = g[g["starters"] > 0]
        rec: dict[str, Any] = {"mode": mode, "replications": len(g)}
        for name in ("value", "gain"):
            est, se, truth = g[name], g[f"{name}_se"], g[f"{name}_truth"]
            covered = ((est - 1.959964 * se <= truth) & (truth <= est + 1.959964 * se))
            k = int(covered.sum())
            lo, hi = clopper_pearson(k, len(g))
            rec.update({f"{name}_coverage": k / len(g) if len(g) else math.nan,
                        f"{name}_coverage_low": lo, f"{name}_coverage_high": hi,
                        f"{name}_bias": float((est - truth).mean()),
                        f"{name}_sd_over_se": float((est - truth).std(ddof=1) / se.mean())
                        if len(g) > 1 else math.nan})
        rec.update({"gain_truth_mean": float(g["gain_truth"].mean()),
                    "rule_gain_truth_mean": float((g["rule_truth"] - g["status_quo"]).mean()),
                    "oracle_gain_mean": float(g["oracle_gain"].mean()),
                    "regret_mean": float(g["regret"].mean()),
                    "regret_share_median": float(g["regret_share"].median()),
                    "regret_share_of_means": float(g["regret"].mean() / g["oracle_gain"].mean())
                    if g["oracle_gain"].mean() > 0 else math.nan})
        out.append(rec)
    return pd.DataFrame(out)


def output_dir(root: Path | None = None) -> Path:
    return (root or repo_root()).resolve() / "build" / "montecarlo_advice"


def write(city: str, rows: pd.DataFrame, cost: dict[str, Any], clients: int | None,
          root: Path | None = None) -> Path:
    """``build/montecarlo_advice/<city>.json`` and ``<city>_rows.csv``."""
    from ..intake.screening import csv_bytes

    folder = output_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(folder / f"{city}_rows.csv",
                       csv_bytes(rows, index=False, float_format="%.6g"))
    path = folder / f"{city}.json"
    atomic.write_json(path, {
        "city": city, "clients": clients,
        "replications": int(rows.groupby("mode").size().max()) if len(rows) else 0,
        "summary": json.loads(summarise(rows).to_json(orient="records", double_precision=6)),
        "cost": cost})
    return path


def _pct(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.0f}%"


def _pp(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):+.2f}"


def markdown(root: Path | None = None) -> str:
    """The advice section of the validation chapter, from the result files
    (or how to make them when there are none)."""
    files = sorted(output_dir(root).glob("*.json"))
    if not files:
        return ("No Monte Carlo results for the advice rule are in this build. Run "
                "`make montecarlo-advice` (one city, 50 worlds of each kind, about ten "
                "minutes on two cores) and build the book again: this section then shows "
                "them.\n")
    out = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        city = load_city(data["city"], root)["display_name"]
        lo, hi = nominal_band(int(data["replications"]))
        out += [f"### {city}: {data['replications']} worlds of each kind, "
                f"{data['clients']} clients each", "",
                f"Run time: {data['cost']['seconds']} s ({data['cost']['where']}). With "
                f"{data['replications']} worlds a correct 95% interval covers in "
                f"{_pct(lo)} to {_pct(hi)} of them (95% band).", "",
                "The coverage and bias are of the held-out estimates (the rules learned without "
                "each starter's fold); the true gains and the regret are of the rule shown "
                "(learned on all starters) against the best rule of its kind, averaged over "
                "the worlds; the share is the mean regret over the mean best gain.", "",
                "| world | coverage of the value | coverage of the gain over today | "
                "bias of the gain (pp) | SD / SE of the gain | true gain of the rule shown (pp) | "
                "best rule's true gain (pp) | regret, share of the best rule's gain |",
                "|---|---|---|---|---|---|---|---|"]
        for s in data["summary"]:
            out.append(
                f"| {s['mode']} | {_pct(s['value_coverage'])} | {_pct(s['gain_coverage'])} | "
                f"{_pp(s['gain_bias'])} | {s['gain_sd_over_se']:.2f} | "
                f"{_pp(s.get('rule_gain_truth_mean'))} | {_pp(s['oracle_gain_mean'])} | "
                f"{_pct(s['regret_share_of_means'])} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reintegration montecarlo_advice",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--city", default="rotterdam")
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8000)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    rows, cost = run(args.city, args.replications, modes=args.modes, clients=args.clients,
                     jobs=args.jobs)
    path = write(args.city, rows, cost, args.clients)
    print(summarise(rows).to_string(index=False))
    print(f"{cost['tasks']} replications in {cost['seconds']} s; wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())

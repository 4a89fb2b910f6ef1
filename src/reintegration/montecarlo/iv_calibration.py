r"""Why the joint case-manager IV's standard error is conservative: an IV-only
loop over the Monte Carlo harness's worlds.

For each world (:func:`reintegration.montecarlo.harness.world_panel`, planted effects)
and instrument, :func:`world_rows` fits the headline (all instruments'
starts instrumented jointly by all propensities, team x quarter cells
absorbed, as :func:`reintegration.designs.iv.fit_iv`) and records beside the
estimate and its truth (``estimand_joint``):

* the robust and the case-manager-clustered standard error (the record
  reports the larger);
* the same two standard errors with the residuals taken at the *true*
  coefficients of all instruments, :math:`Y - X\beta` instead of
  :math:`Y - X\hat\beta` (same covariance formula, instruments and
  clusters): an infeasible check of whether the residuals are the problem;
* the ratio of the two residual variances, and the own and the conditional
  (Sanderson-Windmeijer) first-stage F.

:func:`summarise` gives per instrument the spread of the estimates over the
worlds divided by the mean of each standard error, the standard deviation of
the estimate's error divided by its standard error, coverage, the mean
residual-variance ratio and the median F statistics, for all worlds and
split by a conditional F of at least 10. Run it with ``python -m
reintegration.montecarlo.iv_calibration --replications 100`` (the harness's
Rotterdam worlds of 8,000 clients; one process, a few seconds per world).
The findings are in the book's page on the case-manager IV (known limits).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import atomic
from ..designs.iv import OTHER_D, other_pairs
from ..effects.iv import _multi_arrays, conditional_first_stage_f
from ..effects.numerics import first_stage_f, sandwich_cov, tsls
from ..intake.screening import csv_bytes


def world_rows(frames: dict[str, pd.DataFrame], truth: dict[str, Any], outcome: str,
               horizon: str) -> list[dict[str, Any]]:
    """One row per instrument of one world: ``frames`` maps each instrument to
    its prepared data (:func:`reintegration.designs.iv.iv_data`), ``truth`` is
    the world's ``case_manager_iv.instruments`` entry of effects.json,
    ``outcome`` the column (e.g. ``employed_24``) and ``horizon`` its month
    (``"24"``; the truth of ``employed``)."""
    rows = []
    for inst, data in frames.items():
        p = _multi_arrays(data, outcome, "_d", "_z", other_pairs(data), "joint", ["_cell"],
                          "case_manager")
        x, z, cl = np.column_stack([p["d"], p["do"]]), np.column_stack([p["z"], p["zo"]]), p["cl"]
        names = [inst] + [k[len(OTHER_D):] for k, _ in p["kept"]]
        beta = np.array([float(truth[n]["estimand_joint"]["employed"][horizon]) for n in names])
        fit = tsls(p["y"], x, z, clusters=cl)
        xhat = z @ np.linalg.lstsq(z, x, rcond=None)[0]
        e0 = p["y"] - x @ beta
        e0 = e0 - e0.mean()
        rows.append({
            "instrument": inst, "estimate": float(fit.params[0]), "truth": float(beta[0]),
            "se_robust": math.sqrt(fit.cov_robust[0, 0]),
            "se_clustered": math.sqrt(fit.cov_clustered[0, 0]),
            "se_true_robust": math.sqrt(sandwich_cov(xhat, e0, None)[0, 0]),
            "se_true_clustered": math.sqrt(sandwich_cov(xhat, e0, cl)[0, 0]),
            "residual_variance_ratio": float(np.var(fit.resid) / np.var(e0)),
            "f_own": first_stage_f(p["d"], p["z"][:, None], p["zo"], clusters=cl,
                                   debiased=False)[2],
            "f_conditional": conditional_first_stage_f(x, z, clusters=cl),
            "n": int(len(p["y"])), "case_managers": int(len(np.unique(cl)))})
    return rows


def _stats(g: pd.DataFrame) -> pd.Series:
    se = g[["se_robust", "se_clustered"]].max(axis=1)
    err = g["estimate"] - g["truth"]
    sd = float(g["estimate"].std())
    return pd.Series({
        "worlds": len(g), "sd_estimate": sd, "sd_truth": float(g["truth"].std()),
        "sd_over_se_reported": sd / se.mean(),
        "sd_over_se_robust": sd / g["se_robust"].mean(),
        "sd_over_se_clustered": sd / g["se_clustered"].mean(),
        "sd_over_se_at_truth": sd / g["se_true_clustered"].mean(),
        "sd_t_reported": float((err / se).std()),
        "sd_t_at_truth": float((err / g["se_true_clustered"]).std()),
        "coverage_reported": float((err.abs() <= 1.959964 * se).mean()),
        "residual_variance_ratio": float(g["residual_variance_ratio"].mean()),
        "median_f_own": float(g["f_own"].median()),
        "median_f_conditional": float(g["f_conditional"].median())})


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per instrument and stratum (``all`` worlds; conditional F ``>= 10``
    and ``< 10``) the statistics of the module text."""
    parts = []
    strata = {"all": np.ones(len(rows), dtype=bool),
              "conditional F >= 10": (rows["f_conditional"] >= 10).to_numpy(),
              "conditional F < 10": ~(rows["f_conditional"] >= 10).to_numpy()}
    for name, keep in strata.items():
        sub = rows[keep]
        if sub.empty:
            continue
        out = sub.groupby("instrument")[list(sub.columns)].apply(_stats)
        parts.append(out.assign(stratum=name).set_index("stratum", append=True))
    return pd.concat(parts)


def run(first: int, replications: int, *, city: str = "rotterdam", clients: int = 8000,
        outcome: str = "employed_24", root: Path | None = None) -> pd.DataFrame:
    """The rows of :func:`world_rows` for the harness's planted worlds
    ``first .. first + replications - 1``."""
    from ..core.paths import repo_root
    from ..designs import get
    from ..designs.base import Inputs
    from ..feasibility.criteria import offered_instruments, substudy_ids
    from . import harness as mc

    root = (root or repo_root()).resolve()
    plan = mc.Plan(city=city, clients=clients, outcomes=(outcome,))
    design = get("case_manager_iv")
    rows = []
    for r in range(first, first + replications):
        with tempfile.TemporaryDirectory(prefix="iv-calibration-") as tmp:
            cfg, built, _, truth = mc.world_panel(city, plan, r, "planted", Path(tmp), root)
        inputs = Inputs(persons=built.persons, city=cfg, effects=mc.settings_for(plan, "planted",
                                                                                 root))
        frames = {inst: design.prepare(inputs, inst)
                  for name, inst in substudy_ids(cfg, offered_instruments(cfg))
                  if name == design.name and inst is not None}
        frames = {k: v for k, v in frames.items() if v is not None}
        for row in world_rows(frames, truth["case_manager_iv"]["instruments"], outcome,
                              outcome.rpartition("_")[2]):
            rows.append({"replication": r, **row})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reintegration.montecarlo.iv_calibration")
    parser.add_argument("--city", default="rotterdam")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8000)
    parser.add_argument("--out", type=Path, help="CSV of the per-world rows")
    args = parser.parse_args(argv)
    rows = run(args.first, args.replications, city=args.city, clients=args.clients)
    if args.out:
        atomic.write_bytes(args.out, csv_bytes(rows, index=False))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summarise(rows).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

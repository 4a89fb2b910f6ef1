r"""The staggered roll-out: teams that introduced an instrument at different
times, an event study of the availability effect.

Phase 2 (:func:`fit_rollout`): clients grouped by team and inflow quarter; a
team's clients whose inflow falls before its roll-out against those after,
with teams that did not (yet) roll out as controls: the intention-to-treat
effect of the instrument's availability, Sun and Abraham's
interaction-weighted estimator on the team x quarter cell means, with
p-values and intervals from a randomisation test over re-assignments of the
roll-out dates across teams (:func:`reintegration.effects.event_study`).
Event time is counted from the first inflow quarter a roll-out can reach
(``reach_months`` of config/effects.yml; a team whose reach goes back to the
study's first inflow quarter is kept with a shortened reach or dropped,
``early_teams``, and :func:`reach_table` says what happens to each team).
Two estimands (:attr:`Rollout.targets`): the intention-to-treat effect
(``itt``, the headline) and the effect per additional starter
(``per_starter``, :func:`per_starter`: the same event study of the outcome
over that of take-up, a fuzzy difference in differences, with the interval
of the inverted randomisation test). Both records' ``std_error`` is the one
their randomisation interval implies (half-width / 1.96); the clustered one
is in the diagnostics.

Phase 1 (:func:`diagnose_rollout`) runs the same estimator on the same
prepared data (:meth:`Rollout.prepare`):

* take-up: the event study with "started the instrument" as outcome; its
  post-period estimate :math:`\delta` is the rise in take-up the roll-out
  brought, tested with the same randomisation test;
* pre-trend: the randomisation test of the pre-period coefficients of the
  event study of Phase 1's outcome (the test Phase 2 reports);
* minimum detectable effect, per starter: :math:`SE_R / \delta`, with
  :math:`SE_R` the standard deviation of the estimate over the re-assigned
  roll-out dates (the randomisation distribution that Phase 2's interval
  comes from), times :math:`z_{1-\alpha/2} + z_{power}`. The minimum
  detectable effect that Phase 2's interval realises (half its width over
  1.96, same multiplier, same :math:`\delta`) is reported beside it, and
  their ratio.

The estimate of the outcome's event study is neither kept nor shown in
Phase 1: only its randomisation distribution and interval width are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import effects
from ..core import months
from ..effects import EventStudyResult
from ..effects.fuzzy import wald_ratio
from ..effects.randomization import design_power
from .base import (
    Check,
    Design,
    Diagnosis,
    Inputs,
    levels,
    mde_multiplier,
    mde_verdict,
    power_settings,
    pp,
    rounded,
    size_checks,
)

#: the reason of a city without a team-by-team roll-out
NO_ROLLOUT = "no team-by-team roll-out"
#: the take-up column the event study of take-up uses
STARTED = "_started"


def rollout_schedule(city: dict[str, Any]) -> dict[str, int]:
    """Team -> month index of its roll-out (``rollout.teams`` of the city's
    configuration, :mod:`reintegration.core.months`); empty without a roll-out."""
    teams = ((city.get("rollout") or {}).get("teams")) or {}
    return {str(team): months.index(month) for team, month in teams.items()}


#: what :func:`rollout_data` does with a team whose reach goes back to the
#: first inflow period of the data
EARLY_TEAMS = ("shorten", "drop")


def first_reached(schedule: dict[str, int], *, period: str, reach_months: int,
                  first_month: int, early_teams: str = "shorten") -> pd.DataFrame:
    """Per team of ``schedule``: the roll-out month, the first inflow period
    its roll-out reaches (``start``; periods as in :func:`rollout_data`) and
    the reach in months that gives it (``reach``); ``start`` is missing for a
    team the design cannot use.

    With ``reach_months`` :math:`m`, a roll-out in month :math:`R` reaches
    the inflow period holding month :math:`R - m` and every later one. A team
    whose first reached period would be the data's first inflow period (the
    one holding ``first_month``) or earlier has no unreached inflow period to
    compare with: every cohort of its clients in the data was already partly
    reached. With ``early_teams="shorten"`` (and a roll-out after the first
    inflow period) its reach is shortened so that the first inflow period is
    its only pre-period: its clients with the longest waits in that period
    could still start the instrument, so its reference is slightly exposed
    (the truth of the estimand counts this the same way). With ``"drop"``, or
    when the roll-out itself falls in the first inflow period, the team
    cannot be used (``start`` missing, ``dropped`` true)."""
    if early_teams not in EARLY_TEAMS:
        raise ValueError(f"early_teams must be one of {EARLY_TEAMS}, not {early_teams!r}")
    step = 3 if period == "quarter" else 1
    first = first_month // step
    rows = []
    for team, month in schedule.items():
        start = (month - reach_months) // step
        reach, dropped = reach_months, False
        if start <= first:
            if early_teams == "shorten" and month // step > first:
                start = first + 1
                reach = month - start * step
            else:
                start, dropped = math.nan, True
        rows.append({"team": team, "rollout_month": month, "start": start,
                     "reach": reach, "dropped": dropped})
    return pd.DataFrame(rows, columns=["team", "rollout_month", "start", "reach", "dropped"])


def rollout_data(persons: pd.DataFrame, schedule: dict[str, int], *,
                 period: str = "quarter", reach_months: int = 0,
                 first_month: int | None = None, early_teams: str = "shorten",
                 inflow: np.ndarray | None = None) -> pd.DataFrame:
    """Clients with their team, inflow period (``_period``), the first
    inflow period the team's roll-out can reach (``_start``, missing for
    teams without a roll-out) and whether their inflow period is reached
    (``exposed``). Periods are months or quarters since 1970-01 (:mod:`reintegration.core.months`).
    The clients of a team that cannot be used (:func:`first_reached`) are
    left out, neither treated nor comparison; ``first_month`` is the first
    inflow month of the study (default: the earliest in ``persons``).

    A client who flowed in shortly before the roll-out is still on bijstand
    when it happens and can start the instrument afterwards: a roll-out in
    month :math:`R` reaches every inflow month from :math:`R - m` on, with
    :math:`m` = ``reach_months`` the longest wait between inflow and an
    instrument start. Counting event time from the first reached inflow
    period keeps the partly exposed cohorts out of the pre-period, where they
    would show up as a pre-trend and shift the reference period.

    ``inflow``: the month indices of the inflow months of the clients with a
    team, when the caller already has them (:func:`placebo_rollouts` fits
    many schedules on the same clients)."""
    if period not in ("month", "quarter"):
        raise ValueError(f"period must be month or quarter, not {period!r}")
    if reach_months < 0:
        raise ValueError(f"reach_months must be zero or positive, not {reach_months}")
    df = persons[persons["team"].notna()].copy()
    step = 3 if period == "quarter" else 1
    inflow = months.indices(df["inflow_month"]) if inflow is None else inflow
    df["_period"] = inflow // step
    first = int(inflow.min()) if first_month is None else int(first_month)
    reach = first_reached(schedule, period=period, reach_months=reach_months,
                          first_month=first, early_teams=early_teams).set_index("team")
    team = df["team"].astype(str)  # once: the teams as the schedule names them
    kept = ~team.isin(reach.index[reach["dropped"]])
    df = df[kept]
    df["_start"] = team[kept].map(reach["start"]).astype(float)
    df["exposed"] = (df["_period"] >= df["_start"]).fillna(False).astype(int)
    df["_event_time"] = df["_period"] - df["_start"]
    return df


def rollout_settings_data(persons: pd.DataFrame, schedule: dict[str, int],
                          settings: dict[str, Any], first_month: int | None = None,
                          inflow: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`rollout_data` with the period and reach of ``config/effects.yml``."""
    cfg = settings["rollout_did"]
    return rollout_data(persons, schedule, period=cfg["period"],
                        reach_months=int(cfg["reach_months"]), first_month=first_month,
                        early_teams=cfg.get("early_teams", "shorten"), inflow=inflow)


def _period_text(p: float, period: str) -> str | None:
    if not math.isfinite(p):
        return None
    if period == "quarter":
        m = int(p) * 3
        return f"{months.text(m)[:4]}Q{(m % 12) // 3 + 1}"
    return months.text(int(p))


def reach_table(city: dict[str, Any], settings: dict[str, Any],
                teams: Sequence[str] | None = None) -> pd.DataFrame:
    """What ``reach_months`` does to each team (:func:`first_reached`): its
    roll-out month, the first inflow period reached, the reach in months
    used, its role in the event study (``treated``; a comparison team that
    is ``never treated`` or ``not yet treated``, its roll-out reaching no
    inflow period of the study; or ``dropped``) and why. ``teams``: the teams in the data
    (default: those of the schedule). Uses the configuration only (no counts
    of persons)."""
    cfg = settings["rollout_did"]
    period, m = cfg["period"], int(cfg["reach_months"])
    study = city["study"]
    first_m, last_m = months.index(study["inflow_from"]), months.index(study["inflow_to"])
    schedule = rollout_schedule(city)
    step = 3 if period == "quarter" else 1
    table = first_reached(schedule, period=period, reach_months=m, first_month=first_m,
                          early_teams=cfg.get("early_teams", "shorten"))
    lead, lag = int(cfg["leads"]), int(cfg["lags"])
    rows = []
    for r in table.itertuples():
        start = r.start
        if r.dropped:
            role = "dropped"
            why = (f"its roll-out falls in the first inflow {period} of the study: no client "
                   "of its was unreached, so there is nothing to compare with"
                   if cfg.get("early_teams", "shorten") == "shorten" else
                   f"reaching back {m} months goes to or before the first inflow {period}: "
                   "no unreached inflow period (early_teams: drop)")
        elif start > last_m // step:
            role = "not yet treated"
            why = (f"its roll-out reaches no inflow {period} of the study: a comparison team "
                   "throughout")
        else:
            role = "treated"
            pre = int(start - first_m // step)
            why = (f"{min(pre, lead)} {period}s before the first reached one in the window "
                   f"(event times -{min(pre, lead)} to -1), up to {lag + 1} from it on")
            if r.reach < m:
                why += (f"; reach shortened from {m} to {r.reach} months so that the first "
                        f"inflow {period} of the study is its pre-period (its clients with "
                        f"the longest waits there could still start after the roll-out)")
        rows.append({"team": r.team, "rollout": months.text(r.rollout_month),
                     "first_reached": _period_text(float(start), period),
                     "reach_months": int(r.reach), "role": role, "why": why})
    for team in sorted(set(teams or []) - set(schedule)):
        rows.append({"team": team, "rollout": None, "first_reached": None,
                     "reach_months": None, "role": "never treated",
                     "why": "no roll-out: a comparison team throughout"})
    return pd.DataFrame(rows, columns=["team", "rollout", "first_reached", "reach_months",
                                       "role", "why"])


def placebo_rollouts(persons: pd.DataFrame, schedule: dict[str, int], settings: dict[str, Any],
                     *, draws: int = 40, outcomes: Sequence[str] | None = None,
                     permutations: int | None = None, seed: int = 1) -> pd.DataFrame:
    """Placebo check of the roll-out event study: the city's roll-out dates
    given to randomly chosen teams, ``draws`` times, each fitted like the real
    roll-out (:func:`fit_rollout`, with ``permutations`` assignments in its
    randomisation test when given). On outcomes without a roll-out effect
    (the untreated potential outcomes, :func:`untreated_rollout_outcomes`) a
    well-sized design rejects a zero effect and the pre-trend in about 5% of
    the draws.

    Returns one row per draw and outcome: ``draw``, ``outcome``,
    ``estimate``, ``std_error`` (cluster-robust), ``t``,
    ``std_error_randomization`` (the one the randomisation interval implies,
    the standard error Phase 2 reports), ``pvalue`` and
    ``pretrend_pvalue`` (randomisation test) and ``pretrend_pvalue_f`` (the
    cluster-robust Wald test against F); draws the estimator cannot fit are
    left out."""
    teams = sorted(str(t) for t in persons["team"].dropna().unique())
    dates = list(schedule.values())
    if not dates or len(dates) > len(teams):
        raise ValueError("a placebo needs a roll-out schedule with no more teams than the data")
    outcomes = list(outcomes or settings["outcomes"])
    if permutations is not None:
        settings = {**settings, "rollout_did": {**settings["rollout_did"],
                                                "permutations": int(permutations)}}
    rng = np.random.default_rng(seed)
    # the clients' inflow months do not depend on the draw: parsed once
    inflow = months.indices(persons.loc[persons["team"].notna(), "inflow_month"])
    rows = []
    for k in range(draws):
        chosen = rng.choice(teams, size=len(dates), replace=False)
        fake = dict(zip(chosen, rng.permutation(dates), strict=True))
        data = rollout_settings_data(persons, fake, settings,
                                     inflow=inflow).reset_index(drop=True)
        for outcome in outcomes:
            try:
                res = fit_rollout(data, outcome, settings)
            except ValueError:
                continue
            se = res.diagnostics.get("std_error_clustered", res.std_error)
            rows.append({"draw": k, "outcome": outcome, "estimate": res.estimate,
                         "std_error": se, "t": res.estimate / se,
                         "std_error_randomization": res.std_error,
                         "pvalue": res.pvalue, "pretrend_pvalue": res.pretrend_pvalue,
                         "pretrend_pvalue_f": res.pretrend.get("pvalue_f", math.nan)})
    return pd.DataFrame(rows, columns=["draw", "outcome", "estimate", "std_error", "t",
                                       "std_error_randomization", "pvalue", "pretrend_pvalue",
                                       "pretrend_pvalue_f"])


def untreated_rollout_outcomes(po: pd.DataFrame) -> pd.DataFrame:
    """Team, inflow month and the employment outcomes every client would have
    had without any roll-out (``employed_rollout_off_<h>`` of the truth
    files), under the outcome names of the panel: data in which the true
    roll-out effect is zero by construction, for :func:`placebo_rollouts`."""
    out = po[["team", "inflow_month"]].copy()
    out["inflow_month"] = out["inflow_month"].astype(str)
    for col in po.columns:
        if col.startswith("employed_rollout_off_"):
            out[f"employed_{col.rsplit('_', 1)[1]}"] = po[col]
    return out


def placebo_check(po: pd.DataFrame, city: dict[str, Any], settings: dict[str, Any],
                  size: str) -> pd.DataFrame | None:
    """:func:`placebo_rollouts` on the untreated potential outcomes, with the
    draws, assignments and seed of ``rollout_did.placebo`` in
    ``config/effects.yml`` for data size ``size``; None for a city without a
    roll-out."""
    schedule = rollout_schedule(city)
    if not schedule:
        return None
    cfg = settings["rollout_did"]["placebo"]
    draws = cfg["draws"]
    n = int(draws[size] if isinstance(draws, dict) else draws)
    data = untreated_rollout_outcomes(po)
    outcomes = [o for o in settings["outcomes"] if o in data.columns]
    return placebo_rollouts(data, schedule, settings, draws=n, outcomes=outcomes,
                            permutations=int(cfg["permutations"]), seed=int(cfg["seed"]))


def placebo_summary(placebo: pd.DataFrame, level: float = 0.05) -> pd.DataFrame:
    """Per outcome: draws, and the share of draws in which the cluster-robust
    interval and the randomisation test reject a zero effect, and the
    cluster-robust and randomisation pre-trend tests reject, at ``level``;
    with the spread of the estimates over their mean standard error
    (cluster-robust, and the one Phase 2 reports from the randomisation
    interval)."""
    z = float(stats.norm.isf(level / 2))
    rows = []
    for outcome, g in placebo.groupby("outcome", sort=False):
        rows.append({
            "outcome": outcome,
            "draws": len(g),
            "effect_rejected_clustered": float((g["t"].abs() > z).mean()),
            "effect_rejected_randomization": float((g["pvalue"] <= level).mean()),
            "pretrend_rejected_clustered": float((g["pretrend_pvalue_f"] < level).mean()),
            "pretrend_rejected_randomization": float((g["pretrend_pvalue"] <= level).mean()),
            "sd_estimate_over_mean_se": float(g["estimate"].std() / g["std_error"].mean()),
            **({"sd_estimate_over_mean_se_randomization": float(
                g["estimate"].std() / g["std_error_randomization"].mean())}
               if "std_error_randomization" in g else {}),
        })
    return pd.DataFrame(rows).set_index("outcome")


def fit_rollout(data: pd.DataFrame, outcome: str, settings: dict[str, Any], *,
                takeup: str | None = None) -> EventStudyResult:
    """The event study of ``outcome`` on prepared data (:meth:`Rollout.prepare`)
    with the settings of ``rollout_did``; with ``takeup``, the take-up column
    fitted beside it for :func:`per_starter`."""
    cfg = settings["rollout_did"]
    res = effects.event_study(
        data, outcome=outcome, entity="team", time="_period", treatment_start="_start",
        leads=int(cfg["leads"]), lags=int(cfg["lags"]), reference=int(cfg["reference"]),
        baseline=cfg.get("baseline", "reference"), collapse=True, wild_bootstrap=0,
        permutations=int(cfg["permutations"]), seed=int(cfg["seed"]), takeup=takeup,
        statistic=cfg.get("statistic", "studentized"))
    exposed = int(data.loc[data[outcome].notna(), "exposed"].sum())
    if "reach" in data.attrs:
        res.diagnostics["reach"] = data.attrs["reach"]
    res.diagnostics["n_treated"] = exposed
    res.diagnostics["n_control"] = int(data[outcome].notna().sum()) - exposed
    return res


def per_starter(data: pd.DataFrame, outcome: str, settings: dict[str, Any]) -> EventStudyResult:
    """The effect per additional starter (:func:`reintegration.effects.fuzzy.wald_ratio`):
    the event study of ``outcome`` over the same event study of take-up
    (``_started``, the roll-out instrument started), with the interval of the
    inverted randomisation test over the same roll-out date assignments."""
    return wald_ratio(fit_rollout(data, outcome, settings, takeup=STARTED))


def _no_rollout(reason: str, outcome: str, names: Sequence[str]) -> Diagnosis:
    diag = Diagnosis(evidence_practical={"outcome": outcome})
    diag.theoretical += [Check(n, "not_assessed", reason) for n in names]
    diag.practical += [Check("sample", "not_assessed", reason),
                       Check("mde", "not_assessed", reason)]
    return diag


def diagnose_rollout(inputs: Inputs, instrument: str | None, *, outcome: str,
                     threshold: int) -> Diagnosis:
    """Phase 1's checks of the roll-out design (see the module text)."""
    cfg = inputs.feasibility["theoretical"]["rollout_did"]
    pcfg = inputs.feasibility["practical"]
    city, persons = inputs.city, inputs.persons
    if instrument is None or not city.get("rollout"):
        diag = _no_rollout(NO_ROLLOUT, outcome, ("teams_per_side", "pre_period",
                                                 "post_period", "takeup", "pretrend"))
        diag.theoretical.insert(0, Check("rollout_present", "fail",
                                         f"{NO_ROLLOUT} of any instrument in the city's "
                                         "configuration"))
        return diag
    schedule = rollout_schedule(city)
    study = city["study"]
    first_m, last_m = months.index(study["inflow_from"]), months.index(study["inflow_to"])
    teams_in_data = set(persons["team"].dropna().astype(str))
    reach = reach_table(city, inputs.effects, sorted(teams_in_data))
    role = dict(zip(reach["team"], reach["role"], strict=True))
    treated = sorted(t for t in teams_in_data if role.get(t) == "treated")
    dropped = sorted(t for t in teams_in_data if role.get(t) == "dropped")
    comparison = sorted(t for t in teams_in_data if t not in treated and t not in dropped)
    lim = cfg["teams_per_side"]
    verdict = levels(min(len(treated), len(comparison)), no_go=lim["no_go"],
                     conditional=lim["conditional"])
    text = f"{len(treated)} teams rolled out and {len(comparison)} did not" + (
        f" ({len(dropped)} left out: {', '.join(dropped)}; see the reach table)"
        if dropped else "") + {
        "pass": f" (at least {lim['conditional']} on each side)",
        "conditional": f" (fewer than {lim['conditional']} on a side): inference from the "
                       "randomisation test over roll-out dates, not from clustered errors",
        "fail": f": fewer than {lim['no_go']} teams on a side",
    }[verdict]
    diag = Diagnosis(evidence_practical={"outcome": outcome})
    theo = diag.theoretical
    ev_t = diag.evidence_theoretical
    theo.append(Check("rollout_present", "pass",
                      f"roll-out of this instrument in {len(schedule)} teams (configuration)"))
    theo.append(Check("teams_per_side", verdict, text,
                      {"rolled_out": len(treated), "not_rolled_out": len(comparison)}, lim))
    ev_t.update({"teams_rolled_out": treated, "teams_not_rolled_out": comparison,
                 "rollout_months": {t: months.text(schedule[t]) for t in treated},
                 "teams_dropped": dropped, "reach": reach.to_dict(orient="records")})
    if not treated:
        out = _no_rollout("no team rolled out during the study", outcome,
                          ("pre_period", "post_period", "takeup", "pretrend"))
        theo += out.theoretical
        diag.practical += out.practical[1:]
        return diag
    pre = min(schedule[t] for t in treated) - first_m
    post = last_m - max(schedule[t] for t in treated) + 1
    for name, span, key, what in (("pre_period", pre, "min_pre_months", "before the first"),
                                  ("post_period", post, "min_post_months", "from the last")):
        need = int(cfg[key])
        theo.append(Check(name, "pass" if span >= need else "fail",
                          f"{span} months of inflow {what} roll-out (at least {need})",
                          span, need))
    ev_t.update({"pre_months": pre, "post_months": post})
    data = Rollout().prepare(inputs, instrument)
    _design_checks(diag, data, outcome, inputs.effects, cfg, pcfg, threshold)
    return diag


def _design_checks(diag: Diagnosis, data: pd.DataFrame, outcome: str,
                   effects_settings: dict[str, Any], cfg: dict[str, Any],
                   pcfg: dict[str, Any], threshold: int) -> None:
    """Take-up, pre-trend and power from the event study Phase 2 runs."""
    theo, prac = diag.theoretical, diag.practical
    ev_t, ev_p = diag.evidence_theoretical, diag.evidence_practical
    diag.frames["rollout"] = data[["group", "exposed", STARTED]].rename(
        columns={STARTED: "treated"})
    lim_p = float(cfg["takeup_pvalue"])
    try:
        takeup = fit_rollout(data, STARTED, effects_settings)
    except ValueError as exc:
        theo.append(Check("takeup", "fail", f"the take-up event study cannot be fitted: {exc}"))
        theo.append(Check("pretrend", "not_assessed", "no event study"))
        prac.append(Check("mde", "not_assessed", "no event study"))
        return
    delta, p_tu = float(takeup.estimate), float(takeup.pvalue)
    ok = delta > 0 and p_tu < lim_p
    theo.append(Check(
        "takeup", "pass" if ok else "fail",
        f"take-up rises by {pp(delta)} with the roll-out (randomisation test over roll-out "
        f"dates, p = {p_tu:.3f})" if ok else
        f"the roll-out does not raise take-up clearly ({pp(delta)}, randomisation test "
        f"p = {p_tu:.3f}): an availability effect would say nothing about the instrument",
        round(delta, 4), lim_p))
    ev_t["takeup_increase"] = {"estimate": round(delta, 4), "pvalue": round(p_tu, 4)}
    lim_pt = float(cfg["pretrend_pvalue"])
    try:
        res = fit_rollout(data, outcome, effects_settings)
    except ValueError as exc:
        theo.append(Check("pretrend", "fail", f"the outcome's event study cannot be fitted: "
                          f"{exc}", None, lim_pt))
        prac.append(Check("mde", "not_assessed", "no event study"))
        return
    p_pt = float(res.pretrend_pvalue)
    if not math.isfinite(p_pt):
        theo.append(Check("pretrend", "fail", "too few cohorts before the roll-outs to test "
                          "pre-trends", None, lim_pt))
    else:
        ok = p_pt >= lim_pt
        theo.append(Check(
            "pretrend", "pass" if ok else "fail",
            f"no pre-trend: before the roll-out the outcome of reached teams moved with the "
            f"others (randomisation test of the pre-period event times, p = {p_pt:.3f})"
            if ok else
            f"pre-trend: before the roll-out the outcome of reached teams drifted from the "
            f"others (randomisation test p = {p_pt:.3f} < {lim_pt:g}): parallel trends are "
            "doubtful", round(p_pt, 4), lim_pt))
        ev_t["pretrend"] = {"pvalue": round(p_pt, 4), "test": "randomisation",
                            "assignments": int(res.randomization.n_assignments)}
    sample = data[data[outcome].notna()]
    n_exp = int(sample["exposed"].sum())
    prac += size_checks(n_exp, len(sample) - n_exp, pcfg, threshold,
                        ("group reached by the roll-out", "group not reached"))
    ev_p.update({"n_exposed": n_exp, "n_not_exposed": len(sample) - n_exp})
    ev_p.update(_power(res, delta, pcfg, int(cfg["power_draws"])))
    prac.append(mde_verdict(
        ev_p["mde"] if ev_p["mde"] is not None else math.nan, pcfg,
        "randomisation test over re-assigned roll-out dates, per starter"))


def _power(res: EventStudyResult, delta: float, pcfg: dict[str, Any], draws: int
           ) -> dict[str, Any]:
    """Phase 1's minimum detectable effect per starter from the design's
    randomisation test (:func:`reintegration.effects.randomization.design_power`),
    the range of the interval half-widths the design can give, and what the
    actual interval realises, all divided by the take-up increase."""
    power = power_settings(pcfg)
    dp = design_power(res.randomization, alpha=power["alpha"], power=power["power"],
                      draws=draws, seed=0)
    scale = 1 / delta if delta > 0 else math.nan
    z = float(stats.norm.isf(power["alpha"] / 2))
    to_mde = mde_multiplier(**power) / z * scale       # half-width -> MDE per starter
    mde = dp.mde * scale
    realised = (res.conf_int()[1] - res.conf_int()[0]) / 2 * to_mde
    band = [dp.halfwidth[0] * to_mde, dp.halfwidth[2] * to_mde]
    return {"mde": rounded(mde, 4), "mde_itt": rounded(dp.mde, 5),
            "mde_realised": rounded(realised, 4),
            "mde_ratio": rounded(mde / realised, 3) if 0 < realised < math.inf else None,
            "mde_realised_band": [rounded(b, 4) for b in band],
            "realised_in_band": bool(band[0] <= realised <= band[1]),
            "null_sd_itt": rounded(dp.null_sd, 5), "power_draws": dp.draws}


def _aggregate_truth(data: pd.DataFrame, effect: pd.Series, cfg: dict[str, Any]) -> float:
    """An effect per client aggregated as the event study aggregates it (see
    :func:`rollout_truth`)."""
    tab = pd.DataFrame({"e": data["_start"].to_numpy(), "l": data["_event_time"].to_numpy(),
                        "v": effect.to_numpy(dtype=float)})
    tab = tab[(tab["l"] >= -int(cfg["leads"])) & (tab["l"] <= int(cfg["lags"]))]
    ref = tab[tab["l"] == int(cfg["reference"])].groupby("e")["v"].mean()
    if cfg.get("baseline", "reference") == "pre_mean":
        base = tab[tab["l"] < 0].groupby("e")["v"].mean()
    else:
        base = ref
    post = tab[tab["l"] >= 0].groupby(["e", "l"])["v"].agg(["mean", "size"]).reset_index()
    post = post[post["e"].isin(ref.index)]   # the estimator drops cohorts without a reference
    if post.empty:
        return math.nan
    post["catt"] = post["mean"] - post["e"].map(base)
    per_l = post.groupby("l").apply(lambda g: np.average(g["catt"], weights=g["size"]),
                                    include_groups=False)
    return float(per_l.mean())


def truth_data(po: pd.DataFrame, schedule: dict[str, int], settings: dict[str, Any]
               ) -> pd.DataFrame:
    """:func:`rollout_settings_data` of the whole of the truth frame ``po``,
    with a ``_row`` column for subgroup masks and the first inflow month of
    ``po``: what :func:`rollout_truth` aggregates. The same for every record of
    a city, so the validation builds it once (:meth:`Rollout.truth`)."""
    frame = po.assign(inflow_month=po["inflow_month"].astype(str))
    inflow = months.indices(frame["inflow_month"])
    return rollout_settings_data(frame.assign(_row=np.arange(len(frame))), schedule, settings,
                                 first_month=int(inflow.min()),
                                 inflow=inflow[frame["team"].notna().to_numpy()])


def rollout_truth(po: pd.DataFrame, schedule: dict[str, int], outcome: str,
                  settings: dict[str, Any], mask: np.ndarray | None = None, *,
                  target: str = "itt", instrument: str | None = None,
                  data: pd.DataFrame | None = None) -> float:
    r"""The roll-out effect aggregated the way the event study aggregates it:
    per roll-out cohort :math:`e` and event time :math:`l` from 0 to
    ``lags`` (later periods left out), the mean of the effect of the
    roll-out as it happened on the cohort's clients at :math:`l` minus that
    at the reference event time (``baseline: reference``) or over the
    cohort's pre-period event times ``-leads`` to -1 (``baseline:
    pre_mean``); averaged over cohorts at each event time with their shares
    of the clients there, and over event times 0 to ``lags`` with equal
    weight. Teams, reach and event times as in the estimate
    (:func:`rollout_settings_data`, the first inflow month taken from the
    whole of ``po`` before ``mask`` selects a subgroup).

    The effect as it happened is :math:`Y(D^{R=1}) - Y(D^{R=0})` for clients
    the roll-out reached (``rollout_exposed``) and zero for the others: their
    observed outcome is :math:`Y(D^{R=0})`. The truth files also hold
    :math:`Y(D^{R=1})` for clients it never reached (what they would have had
    with the instrument available at inflow); counting those would put a
    hypothetical effect into the pre-period baseline that no data set shows.

    ``target="per_starter"``: that intention-to-treat truth divided by the
    true take-up change aggregated the same way, the change in
    :math:`1\{D^{R=1} = j\} - 1\{D^{R=0} = j\}` (``instrument_rollout_on``
    / ``_off``) for the reached clients, :math:`j` = ``instrument``: the
    estimand of the fuzzy difference in differences (a ratio of two
    aggregates, as the estimate). ``data``: :func:`truth_data` of ``po``,
    ``schedule`` and ``settings`` when the caller has it (it is not changed)."""
    cfg = settings["rollout_did"]
    h = outcome.rsplit("_", 1)[-1]
    if data is None:
        data = truth_data(po, schedule, settings)
    if mask is not None:
        data = data[np.asarray(mask, dtype=bool)[data["_row"].to_numpy()]]
    data = data[data["_start"].notna()]
    reached = data["rollout_exposed"].astype(bool)
    itt = (data[f"employed_rollout_on_{h}"] - data[f"employed_rollout_off_{h}"]).where(reached, 0)
    value = _aggregate_truth(data, itt, cfg)
    if target == "itt":
        return value
    if target != "per_starter":
        raise KeyError(f"rollout_did: no estimand {target!r}")
    if instrument is None:
        raise ValueError("the per-starter truth needs the roll-out instrument")
    on = (data["instrument_rollout_on"].astype(str) == instrument).astype(float)
    off = (data["instrument_rollout_off"].astype(str) == instrument).astype(float)
    change = _aggregate_truth(data, (on - off).where(reached, 0), cfg)
    return value / change if change != 0 else math.nan


class Rollout(Design):
    name = "rollout_did"
    label = "Staggered roll-out (difference in differences)"
    short = "roll-out"
    per_city_instrument = True
    treated = "exposed"
    cluster = "team"
    fit = staticmethod(fit_rollout)
    targets = {
        "itt": "intention-to-treat effect of the instrument's availability: the roll-out's "
               "effect on all clients it reached, starters or not",
        "per_starter": "effect per additional starter: the intention-to-treat effect over the "
                       "change in take-up of the instrument (fuzzy difference in differences)",
    }

    def instruments(self, city: dict[str, Any], instruments: Sequence[str]) -> list[str | None]:
        rollout = city.get("rollout")
        return [rollout["instrument"] if rollout else None]

    def prepare(self, inputs: Inputs, instrument: str) -> pd.DataFrame:
        study = inputs.city.get("study") or {}
        first = months.index(study["inflow_from"]) if "inflow_from" in study else None
        data = rollout_settings_data(inputs.persons, rollout_schedule(inputs.city),
                                     inputs.effects, first_month=first).reset_index(drop=True)
        data[STARTED] = (data["instrument"] == instrument).astype(float)
        if "study" in inputs.city:
            teams = sorted(inputs.persons["team"].dropna().astype(str).unique())
            data.attrs["reach"] = reach_table(inputs.city, inputs.effects, teams).to_dict(
                orient="records")
        data["group"] = np.where(data["_start"].isna(), "team did not roll out",
                                 np.where(data["exposed"] == 1, "reached by the roll-out",
                                          "before the roll-out"))
        return data

    def diagnose(self, inputs: Inputs, instrument: str | None, *, outcome: str,
                 threshold: int) -> Diagnosis:
        return diagnose_rollout(inputs, instrument, outcome=outcome, threshold=threshold)

    def estimate(self, data: pd.DataFrame, outcome: str, settings: dict[str, Any],
                 target: str | None = None) -> EventStudyResult:
        """The intention-to-treat effect (``itt``, the headline) or the
        effect per additional starter (``per_starter``, :func:`per_starter`)."""
        if target in (None, "itt"):
            return fit_rollout(data, outcome, settings)
        if target == "per_starter":
            return per_starter(data, outcome, settings)
        raise KeyError(f"{self.name}: no estimand {target!r}; known: {', '.join(self.targets)}")

    def truth(self, po: pd.DataFrame, record: dict[str, Any], mask: np.ndarray | None,
              context: dict[str, Any]) -> float:
        if not record["outcome"].startswith("employed_"):
            return math.nan
        # the roll-out data of this truth frame, built once per context (one city's
        # records, or one world's, on the same frame)
        built = context.get("rollout_truth_data")
        if built is None or built[0] is not po:
            built = context["rollout_truth_data"] = (
                po, truth_data(po, context["schedule"], context["settings"]))
        return rollout_truth(po, context["schedule"], record["outcome"], context["settings"],
                             mask, target=record.get("target") or "itt",
                             instrument=record.get("instrument"), data=built[1])

"""The dynamic assignment of the synthetic world and the truths built on it.

Worlds are built in memory (:func:`build_world`, no files) from the city's
parameters, some with overrides: effects switched off, or assignment that
does not depend on covariates, eta or the case manager.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reintegration.synth import generate_city
from reintegration.synth.dynamics import B
from reintegration.synth.params import load_params
from reintegration.synth.truth import compute_effects
from reintegration.synth.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]


def world(
    city: str,
    clients: int | None = None,
    overrides: dict | None = None,
    replication: int | None = None,
) -> World:
    p = load_params(
        city, "small", root=ROOT, clients=clients, overrides=overrides, replication=replication
    )
    return build_world(p, p.streams())


@cache
def rotterdam() -> World:
    return world("rotterdam", clients=6000)


def null_overrides(city: str) -> dict:
    p = load_params(city, "small", root=ROOT)
    return {
        "effects": {i: {"during": 0.0, "after": 0.0, "heterogeneity": {}} for i in p.instruments}
    }


def random_assignment_overrides(city: str) -> dict:
    """Take-up independent of covariates, eta, case manager and roll-out, and
    frequent (no_start 0: many later starts, so that "not now" and "never"
    differ clearly)."""
    p = load_params(city, "small", root=ROOT)
    return {
        "assignment": {
            "no_start": 0.0,
            "case_manager_sd": 0.0,
            "rollout_shift": 0.0,
            "instruments": {
                i: {"eta": 0.0, "elapsed": 0.0, "covariates": {}} for i in p.instruments
            },
        }
    }


def _values(tree: object) -> list[float]:
    """Every number in a nested dict of per-horizon truths."""
    if isinstance(tree, dict):
        return [v for x in tree.values() for v in _values(x)]
    return [] if tree is None else [float(tree)]


@pytest.mark.parametrize("city", ["rotterdam", "amsterdam"])
def test_every_truth_is_zero_when_effects_are_switched_off(city: str) -> None:
    w = world(city, clients=3000, overrides=null_overrides(city), replication=7)
    eff = compute_effects(w, case_manager_exported=True)
    assert (w.instrument > 0).mean() > 0.3  # instruments still start
    for inst, entry in eff["instruments"].items():
        for key in ("ate", "ate_cohort", "att", "att_notnow"):
            vals = _values(entry[key])
            assert vals and all(v == 0 for v in vals), (inst, key)
    assert all(v == 0 for v in _values(eff["any_instrument"]["att"]))
    assert all(v == 0 for v in _values(eff["any_instrument"]["att_notnow"]))
    for key in ("itt", "itt_realised"):
        assert all(v == 0 for v in _values(eff["rollout"][key]))
    for inst, entry in eff["case_manager_iv"]["instruments"].items():
        for key in ("estimand", "estimand_controls", "estimand_joint"):
            vals = _values(entry[key])
            assert len(vals) == 8 and all(abs(v) < 1e-9 for v in vals), (inst, key)
    # and the naive difference is not zero: selection alone makes it
    naive = _values(eff["any_instrument"]["naive_difference"]["employed"])
    assert min(naive) < -0.02


def test_not_now_path_follows_the_none_path_until_a_later_start() -> None:
    w = rotterdam()
    assert w.hist is not None
    none = w.hist[0]
    starters = np.nonzero(w.instrument > 0)[0]
    assert len(starters) > 1000
    K = w.p.follow_up
    later = 0
    for i in starters:
        s, s2 = w.real_start[i], w.notnow_start[i]
        # the realised start happened at an opportunity while on benefit
        assert w.opportunity[i, s - 1] and none[i, s - 1] == B
        until = s2 if w.notnow_instrument[i] > 0 else K + 1
        np.testing.assert_array_equal(w.notnow_path[i, :until], none[i, :until])
        if w.notnow_instrument[i] > 0:
            later += 1
            # a later start at a later opportunity, still on benefit
            assert s2 > s and w.opportunity[i, s2 - 1] and none[i, s2 - 1] == B
        # the realised path is the none path before the start
        np.testing.assert_array_equal(w.hist[w.instrument[i], i, :s], none[i, :s])
    assert later > 0.3 * len(starters)  # "not now" is often "later", not "never"
    # non-starters: not now is the realised world
    non = w.instrument == 0
    np.testing.assert_array_equal(w.notnow_path[non], none[non])
    assert (w.notnow_instrument[non] == 0).all()


def test_realised_world_is_the_own_case_manager_world_and_the_matching_rollout_world() -> None:
    w = rotterdam()
    assert w.hist is not None
    rows = np.arange(w.n)
    own = w.slot
    np.testing.assert_array_equal(w.inst_cells[rows, own], w.instrument)
    np.testing.assert_array_equal(w.start_cells[rows, own], w.real_start)
    observed = w.observed_path()
    np.testing.assert_array_equal(w.cell_paths[rows, own], observed)
    # exposed at the first opportunity on benefit: the roll-out is in place at every later one
    ex = w.rollout_exposed
    assert 0.2 < ex.mean() < 0.8
    np.testing.assert_array_equal(w.instrument_rollout["on"][ex], w.instrument[ex])
    np.testing.assert_array_equal(w.rollout_paths["on"][ex], observed[ex])
    # not reached at any month the process looked at: the off world
    asg = w.assignment
    assert asg is not None
    last = np.where(w.instrument > 0, w.real_start, min(asg.cap, w.p.follow_up))
    never = asg.rollout_month > last
    assert never.sum() > 0.2 * w.n
    np.testing.assert_array_equal(w.instrument_rollout["off"][never], w.instrument[never])
    np.testing.assert_array_equal(w.rollout_paths["off"][never], observed[never])
    # the rest (reached after their first opportunity on benefit) is a small group
    assert (~ex & ~never).mean() < 0.1


def test_no_rollout_means_on_off_and_realised_coincide() -> None:
    w = world("utrecht", clients=2000)
    assert w.p.rollout is None
    for tag in ("on", "off"):
        np.testing.assert_array_equal(w.instrument_rollout[tag], w.instrument)
        np.testing.assert_array_equal(w.rollout_paths[tag], w.observed_path())


def _choice_probability(w: World, k: int) -> np.ndarray:
    """P(a pick other than none) at month k for every person, own case manager,
    roll-out as it stood (multinomial logit with a zero utility for none)."""
    asg = w.assignment
    assert asg is not None
    own = w.cm_cells[np.arange(w.n), w.slot]
    util = asg.base + w.theta[own] + asg.elapsed * (k / 12)
    if asg.rollout_j is not None:
        util[:, asg.rollout_j] += asg.shift * (asg.rollout_month <= k)
    return 1 - 1 / (1 + np.exp(util).sum(axis=1))


def test_assignment_is_memoryless() -> None:
    """Opportunities arrive with the configured probability whatever the
    employment state and past opportunities; and at risk (on benefit, nothing
    started) the start rate at k is the opportunity probability times the
    logit's probability, whatever the number of past opportunities that
    ended in none."""
    w = rotterdam()
    asg = w.assignment
    assert asg is not None and w.hist is not None
    q = float(w.p.syn["assignment"]["start_month"]["opportunity_probability"])
    cap = min(asg.cap, w.p.follow_up)
    none = w.hist[0]
    opp = asg.opportunity[:, :cap]
    onb = none[:, :cap] == B
    past = np.cumsum(opp, axis=1) - opp  # opportunities before k
    for mask in (onb, ~onb, past == 0, past >= 2):
        rate, m = opp[mask].mean(), mask.sum()
        assert abs(rate - q) < 4 * np.sqrt(q * (1 - q) / m), (rate, m)
    rows, resid, n_past = [], [], []
    for k in range(1, cap + 1):
        at_risk = onb[:, k - 1] & ((w.real_start == 0) | (w.real_start >= k))
        p = q * _choice_probability(w, k)
        started = (w.real_start == k) & (w.instrument > 0)
        # past opportunities while at risk, all of which ended in none
        prior = (opp[:, : k - 1] & onb[:, : k - 1]).sum(axis=1)
        rows.append(at_risk)
        resid.append(np.where(at_risk, started - p, 0.0))
        n_past.append(prior)
    at = np.stack(rows, axis=1)
    res = np.stack(resid, axis=1)
    npast = np.stack(n_past, axis=1)
    for lo, hi in ((0, 0), (1, 1), (2, 3), (4, 99)):
        sel = at & (npast >= lo) & (npast <= hi)
        assert sel.sum() > 500
        r = res[sel]
        assert abs(r.mean()) < 4 * r.std() / np.sqrt(sel.sum()), (lo, hi, r.mean())


def test_dynamic_comparison_recovers_the_not_now_truth_when_assignment_is_random() -> None:
    """With take-up independent of covariates, eta and the case manager,
    starters at u versus persons at risk at u who do not start at u
    (Sianesi's comparison, without any adjustment) estimates att_notnow,
    not att (start versus never)."""
    w = world("utrecht", clients=30000, overrides=random_assignment_overrides("utrecht"))
    eff = compute_effects(w, case_manager_exported=False)
    assert w.hist is not None
    none = w.hist[0]
    observed = w.observed_path()
    cap = min(w.assignment.cap, w.p.follow_up)  # type: ignore[union-attr]
    h = 24
    est, var, n_t = 0.0, 0.0, 0
    for u in range(1, cap + 1):
        at_risk = (none[:, u - 1] == B) & ((w.instrument == 0) | (w.real_start >= u))
        treated = at_risk & (w.instrument > 0) & (w.real_start == u)
        control = at_risk & ~treated
        if treated.sum() < 5:
            continue
        yt = (observed[treated, h] == 1).astype(float)
        yc = (observed[control, h] == 1).astype(float)
        m = treated.sum()
        est += m * (yt.mean() - yc.mean())
        var += m**2 * (yt.var() / m + yc.var() / control.sum())
        n_t += m
    est, se = est / n_t, np.sqrt(var) / n_t
    notnow = eff["any_instrument"]["att_notnow"]["employed"][str(h)]
    never = eff["any_instrument"]["att"]["employed"][str(h)]
    assert abs(est - notnow) < 3.5 * se, (est, notnow, se)
    # the two truths differ in this world, and the comparison does not estimate "never"
    assert abs(notnow - never) > 0.01
    assert abs(est - never) > 3.5 * se, (est, never, se)


def test_case_manager_estimands_follow_from_the_truth_files(tmp_path: Path) -> None:
    """Recompute the IV estimands and att_notnow from the parquet files."""
    generate_city("amsterdam", "small", root=ROOT, data_dir=tmp_path)
    folder = tmp_path / "truth" / "amsterdam"
    po = pd.read_parquet(folder / "potential_outcomes.parquet")
    pa = pd.read_parquet(folder / "potential_assignment.parquet")
    import json

    eff = json.loads((folder / "effects.json").read_text(encoding="utf-8"))
    p = load_params("amsterdam", "small", root=ROOT)
    # the own case manager's row is the realised world
    own = pa[pa["own"]].set_index("client_id").loc[po["client_id"]]
    assert (own["instrument"].to_numpy() == po["instrument"].to_numpy()).all()
    assert (own["employed_24"].to_numpy() == po["employed_obs_24"].to_numpy()).all()
    treated = po["instrument"] != "none"
    assert (
        own.loc[treated.to_numpy(), "start_month_elapsed"].to_numpy()
        == po.loc[treated, "start_month_elapsed"].to_numpy()
    ).all()
    for inst in p.offered:
        s = po["instrument"] == inst
        d = (po["employed_obs_24"] - po["employed_notnow_24"])[s].mean()
        assert eff["instruments"][inst]["att_notnow"]["employed"]["24"] == pytest.approx(
            d, abs=1e-6
        )
    pa = pa.merge(po[["client_id", "team", "quarter"]], on="client_id")
    cell = pa["team"] + pa["quarter"]
    offered = list(p.offered)
    D = np.stack([(pa["instrument"] == i).to_numpy(float) for i in offered], axis=1)
    Zt = np.empty_like(D)
    for c in range(len(offered)):
        z = pd.Series(D[:, c]).groupby(pa["case_manager"].to_numpy()).transform("mean")
        Zt[:, c] = z - z.groupby(cell.to_numpy()).transform("mean")
    y = pa["employed_24"].to_numpy(float)
    joint = np.linalg.solve(Zt.T @ D, Zt.T @ y)
    iv = eff["case_manager_iv"]["instruments"]
    for c, inst in enumerate(offered):
        z = Zt[:, c]
        others = np.delete(Zt, c, axis=1)
        zdd = z - others @ np.linalg.lstsq(others, z, rcond=None)[0]
        assert iv[inst]["estimand"]["employed"]["24"] == pytest.approx(
            z @ y / (z @ D[:, c]), abs=1e-5
        )
        assert iv[inst]["estimand_controls"]["employed"]["24"] == pytest.approx(
            zdd @ y / (zdd @ D[:, c]), abs=1e-5
        )
        assert iv[inst]["estimand_joint"]["employed"]["24"] == pytest.approx(joint[c], abs=1e-5)
        fs = iv[inst]["first_stage_others"]
        total = sum(v for v in fs.values()) + iv[inst]["first_stage"]
        assert total == pytest.approx(0, abs=1e-5)  # starts of j come from somewhere


def test_oracle_weighting_recovers_the_not_now_truth_in_the_planted_world() -> None:
    """In the planted world (take-up selected on covariates, eta, the case
    manager and the roll-out), weighting the controls of each risk set by the
    odds of the true monthly start probability (which knows eta) recovers
    att_notnow; the unweighted comparison is far off. This is the validity of
    the dynamic design given eta, checked on the generator itself."""
    # frequent take-up (no_start 0), so that "not now" and "never" differ clearly
    w = world("rotterdam", clients=20000, replication=3,
              overrides={"assignment": {"no_start": 0.0}})
    eff = compute_effects(w, case_manager_exported=True)
    asg = w.assignment
    assert asg is not None and w.hist is not None
    q = float(w.p.syn["assignment"]["start_month"]["opportunity_probability"])
    none, observed = w.hist[0], w.observed_path()
    h = 24
    y = (observed[:, h] == 1).astype(float)
    parts = {"weighted": [0.0, 0.0], "unweighted": [0.0, 0.0]}
    n_t = 0
    for u in range(1, min(asg.cap, w.p.follow_up) + 1):
        at_risk = (none[:, u - 1] == B) & ((w.instrument == 0) | (w.real_start >= u))
        treated = at_risk & (w.instrument > 0) & (w.real_start == u)
        control = at_risk & ~treated
        m = int(treated.sum())
        if m < 5:
            continue
        p = q * _choice_probability(w, u)[control]
        for key, wt in (("weighted", p / (1 - p)), ("unweighted", np.ones(control.sum()))):
            yc = y[control]
            mc = np.average(yc, weights=wt)
            var_c = np.sum(wt**2 * (yc - mc) ** 2) / wt.sum() ** 2
            parts[key][0] += m * (y[treated].mean() - mc)
            parts[key][1] += m**2 * (y[treated].var() / m + var_c)
        n_t += m
    truth = eff["any_instrument"]["att_notnow"]["employed"][str(h)]
    est = {k: (v[0] / n_t, np.sqrt(v[1]) / n_t) for k, v in parts.items()}
    est_w, se_w = est["weighted"]
    assert abs(est_w - truth) < 3.5 * se_w, (est_w, truth, se_w)
    never = eff["any_instrument"]["att"]["employed"][str(h)]
    assert abs(est_w - never) > 3.5 * se_w, (est_w, never, se_w)  # not "versus never"
    est_u, se_u = est["unweighted"]
    assert est_u - truth < -5 * se_u, (est_u, truth, se_u)  # dynamic selection on eta


def _brute_force_effect(w: World, i: int, h: int, reps: int, seed: int) -> tuple[float, float]:
    """Starter ``i``'s expected effect at ``h`` by simulation: fresh draws of
    the chain and of later opportunities, kept where the person is on benefit
    just before their start month (mean and its standard error)."""
    from dataclasses import replace

    from reintegration.synth.dynamics import E

    rng = np.random.default_rng(seed)
    m, asg = w.model, w.assignment
    rows, K = np.full(reps, i), m.K
    mm = replace(m, base=m.base[rows], p_lose=m.p_lose[rows], after=m.after[:, rows],
                 U=rng.random((reps, K + 1)), V=rng.random((reps, K + 1)))
    idx = np.arange(reps)
    none = mm.simulate(idx, np.zeros(reps, dtype=np.int64), np.zeros(reps, dtype=np.int64))
    S, j = w.real_start[i], w.instrument[i]
    keep = none[:, S - 1] == B
    with_it = mm.simulate(idx, np.full(reps, j), np.full(reps, S))
    a = replace(asg, base=asg.base[rows], rollout_month=asg.rollout_month[rows],
                opportunity=rng.random((reps, asg.K)) < asg.q,
                gumbel=rng.gumbel(size=(reps, asg.K, asg.base.shape[1] + 1)))
    own = w.theta[w.cm_cells[i, w.slot[i]]]
    inst, start = a.first_start(np.broadcast_to(own, (reps, len(own))), none[:, :K] == B,
                                after=np.full(reps, S))
    later = mm.paths(none, inst, start)
    eff = (with_it[keep, h] == E).astype(float) - (later[keep, h] == E)
    return float(eff.mean()), float(eff.std() / np.sqrt(keep.sum()))


def test_expected_effects_are_exact_and_average_to_the_realised_ones():
    from reintegration.synth.dynamics import E
    from reintegration.synth.tables import _expected

    w = world("rotterdam", clients=3000)
    horizons = list(w.p.horizons)
    c = horizons.index(24)
    ex = _expected(w, horizons)
    starters = w.instrument > 0
    assert np.isnan(ex[~starters]).all() and np.isfinite(ex[starters]).all()
    # the exact chain against simulation for starters at early and late months
    order = np.flatnonzero(starters)[np.argsort(w.real_start[starters], kind="stable")]
    for i in (order[0], order[len(order) // 2], order[-1]):
        mean, se = _brute_force_effect(w, int(i), 24, reps=30_000, seed=int(i))
        assert abs(ex[i, c] - mean) < 4 * se + 1e-9, (i, ex[i, c], mean, se)
    # over the starters, the expected effects average to the realised ones (the
    # same draws' coin flips are the only difference)
    realised = ((w.hist[w.instrument, np.arange(w.n), 24] == E).astype(float)
                - (w.notnow_path[:, 24] == E))[starters]
    diff = realised - ex[starters, c]
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(starters.sum())
    # persons differ in what they gain: the expected effects are not one number
    assert ex[starters, c].std() > 0.01

"""True effects of one city, computed from the potential outcomes.

Worlds (:mod:`.world`; outcome *Y* is employment or benefit receipt *h*
months after inflow): :math:`Y_i(0)` with no instrument ever;
:math:`Y_i(j)` with instrument *j* started at :math:`S^*_i` (a starter's
realised start month, otherwise the first start opportunity on benefit) if on
benefit just before it; the realised world :math:`Y_i = Y_i(D_i)`;
:math:`Y_i(\\text{not now})`, a starter's path with the start at
:math:`S_i` blocked and the assignment process free to continue; the
realised schedule under every case manager of the client's cell; and the
roll-out in place in every month or in none.

``ate``
    :math:`E[Y_i(j) - Y_i(0) \\mid \\text{eligible}_i]`: persons with a start
    opportunity while on benefit, the only ones an instrument can start for.
``ate_cohort``
    the same over the whole inflow cohort (zero effect for the non-eligible).
``att``
    :math:`E[Y_i(j) - Y_i(0) \\mid D_i = j]`: start at *S* versus never.
``att_notnow``
    :math:`E[Y_i(j) - Y_i(\\text{not now}) \\mid D_i = j]`: start at *S*
    versus not at *S* (a later start of any instrument allowed). This is what
    selection on observables in Sianesi's dynamic design estimates.
``naive_difference``
    :math:`E[Y_i \\mid D_i = j] - E[Y_i \\mid D_i = 0]` in the realised world,
    and ``naive_bias`` = naive difference minus ATT.
``rollout``
    intention-to-treat effect of the roll-out (availability) on outcomes:
    :math:`Y_i(D_i^{R=1}) - Y_i(D_i^{R=0})` with the roll-out in place in
    every month or in none, averaged over the exposed (the team had rolled
    out by the person's first start opportunity on benefit), over the
    rolled-out teams' persons whose inflow came on or after the team's start
    date, and over everyone; ``itt_realised`` is the effect of the roll-out
    as it happened, :math:`Y_i - Y_i(D_i^{R=0})`.
``case_manager_iv``
    population estimands of within-cell (team x quarter) IV regressions over
    every client and every case manager of the client's cell (allocation is
    uniform), with :math:`Z_{mj}` the case manager's true propensity to start
    *j* and :math:`\\tilde Z` demeaned within the cell: ``estimand`` the
    just-identified 2SLS of *Y* on :math:`1[D = j]` with :math:`Z_j` (a
    weighted average of complier effects; compliers may move from another
    instrument, not only from none); ``estimand_controls`` the same with the
    other instruments' propensities as controls; ``estimand_joint`` all
    propensities instrumenting all treatment dummies jointly, each *j* versus
    none (Kirkeboen, Leuven and Mogstad 2016); ``first_stage_others`` the
    change in starts of each other instrument (and of none) per unit of
    :math:`Z_j`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .world import B, E, World

OUTCOMES = {"employed": E, "on_benefit": B}


def _r(x: Any) -> Any:
    if x is None:
        return None
    v = float(x)
    return None if not np.isfinite(v) else round(v, 6)


def _by_h(values: np.ndarray, horizons: list[int]) -> dict[str, Any]:
    return {str(h): _r(v) for h, v in zip(horizons, values, strict=True)}


def _mean(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if mask.sum() == 0:
        return np.full(a.shape[1:], np.nan)
    return a[mask].mean(axis=0)


def compute_effects(w: World, *, case_manager_exported: bool) -> dict[str, Any]:
    p = w.p
    H = p.horizons
    n = w.n
    hist = w.hist
    assert hist is not None
    rows = np.arange(n)
    Y = {o: (hist[:, :, H] == s).astype(float) for o, s in OUTCOMES.items()}  # (W, n, len(H))
    Yobs = {o: y[w.instrument, rows] for o, y in Y.items()}
    Ynot = {o: (w.notnow_path[:, H] == s).astype(float) for o, s in OUTCOMES.items()}
    none = w.instrument == 0
    eta_signs = [p.syn["assignment"]["instruments"][i].get("eta", 0) for i in p.offered]
    negative = all(s <= 0 for s in eta_signs)
    out: dict[str, Any] = {
        "city": p.city,
        "size": p.size,
        "seed": p.seed,
        "n_clients": n,
        "n_eligible": int(w.eligible.sum()),
        "horizons": H,
        "outcomes": {
            "employed": "a job spell overlaps the calendar month h months after the inflow month",
            "on_benefit": "a bijstand spell overlaps that month",
        },
        "planted_bias_direction": {
            "employed": "negative" if negative else "mixed",
            "on_benefit": "positive" if negative else "mixed",
        },
        "bias_mechanism": (
            "Instruments go to persons with lower unobserved employability eta (every "
            "instrument's assignment coefficient on eta is <= 0) and only to persons still on "
            "benefit at a start opportunity (dynamic selection). Both make the treated "
            "less employable than the untreated, so the naive treated-versus-untreated "
            "difference in employment lies below the true ATT, and in benefit receipt above it."
            if negative else
            "Some instruments select on eta positively: see naive_bias per instrument."
        ),
        "instruments": {},
    }
    for j, inst in enumerate(p.instruments, start=1):
        treated = w.instrument == j
        entry: dict[str, Any] = {
            "offered": inst in p.offered,
            "n_treated": int(treated.sum()),
        }
        for key in ("ate", "ate_cohort", "att", "att_notnow", "naive_difference", "naive_bias"):
            entry[key] = {}
        for o in OUTCOMES:
            diff = Y[o][j] - Y[o][0]
            att = _mean(diff, treated)
            naive = _mean(Yobs[o], treated) - _mean(Yobs[o], none)
            entry["ate"][o] = _by_h(_mean(diff, w.eligible), H)
            entry["ate_cohort"][o] = _by_h(diff.mean(axis=0), H)
            entry["att"][o] = _by_h(att, H)
            entry["att_notnow"][o] = _by_h(_mean(Yobs[o] - Ynot[o], treated), H)
            entry["naive_difference"][o] = _by_h(naive, H)
            entry["naive_bias"][o] = _by_h(naive - att, H)
        out["instruments"][inst] = entry
    treated_any = w.instrument > 0
    anyi: dict[str, Any] = {"n_treated": int(treated_any.sum()), "att": {}, "att_notnow": {},
                            "naive_difference": {}, "naive_bias": {}}
    for o in OUTCOMES:
        diff = Yobs[o] - Y[o][0]
        att = _mean(diff, treated_any)
        naive = _mean(Yobs[o], treated_any) - _mean(Yobs[o], none)
        anyi["att"][o] = _by_h(att, H)
        anyi["att_notnow"][o] = _by_h(_mean(Yobs[o] - Ynot[o], treated_any), H)
        anyi["naive_difference"][o] = _by_h(naive, H)
        anyi["naive_bias"][o] = _by_h(naive - att, H)
    out["any_instrument"] = anyi
    out["n_starters_later_start_notnow"] = int((treated_any & (w.notnow_instrument > 0)).sum())
    out["rollout"] = _rollout(w, Yobs) if p.rollout else None
    out["case_manager_iv"] = _iv(w, case_manager_exported)
    return out


def _rollout(w: World, Yobs: dict[str, np.ndarray]) -> dict[str, Any]:
    from ..core.months import index as month_index

    p = w.p
    assert p.rollout is not None
    n = w.n
    H = p.horizons
    j = p.instruments.index(p.rollout["instrument"]) + 1
    on, off = w.instrument_rollout["on"], w.instrument_rollout["off"]
    Yr = {
        tag: {o: (w.rollout_paths[tag][:, H] == s).astype(float) for o, s in OUTCOMES.items()}
        for tag in ("on", "off")
    }
    team_names = p.syn["teams"]
    starts = np.array(
        [month_index(p.rollout["teams"][t]) if t in p.rollout["teams"] else 10**9
         for t in team_names]
    )
    in_team = np.isin(np.array(team_names, dtype=object)[w.persons.team],
                      list(p.rollout["teams"]))
    after_start = w.persons.inflow_month >= starts[w.persons.team]
    groups = {
        "exposed": w.rollout_exposed,
        "inflow_after_start": after_start,
        "rollout_teams": in_team,
        "cohort": np.ones(n, dtype=bool),
    }
    # not exposed at the first opportunity on benefit, but reached at a later one: the
    # realised schedule is then neither the on nor the off schedule
    partial = ~w.rollout_exposed & (
        (w.instrument != off) | (w.real_start != w.start_rollout["off"])
    )
    res: dict[str, Any] = {
        "instrument": p.rollout["instrument"],
        "teams": p.rollout["teams"],
        "definition": "itt: mean of Y(D(R=1)) - Y(D(R=0)) per group, with the roll-out in "
        "place at every start opportunity (R=1) or at none (R=0); itt_realised: mean of the "
        "realised Y - Y(D(R=0)), the effect of the roll-out as it happened; exposed = the "
        "team had rolled out by the person's first start opportunity on benefit",
        "n": {g: int(m.sum()) for g, m in groups.items()},
        "n_reached_after_first_opportunity": int(partial.sum()),
        "take_up": {},
        "itt": {},
        "itt_realised": {},
    }
    for g, m in groups.items():
        res["take_up"][g] = _r(((on == j)[m].mean() - (off == j)[m].mean()) if m.any() else None)
        res["itt"][g] = {o: _by_h(_mean(Yr["on"][o] - Yr["off"][o], m), H) for o in OUTCOMES}
        res["itt_realised"][g] = {o: _by_h(_mean(Yobs[o] - Yr["off"][o], m), H) for o in OUTCOMES}
    return res


def _iv(w: World, exported: bool) -> dict[str, Any]:
    """The case-manager IV estimands over all (client, case manager) pairs of
    each team x quarter cell; see the module docstring."""
    p = w.p
    H = p.horizons
    n, slots = w.cm_cells.shape
    D = w.inst_cells.ravel()  # (P,) realised instrument under each case manager
    cm_flat = w.cm_cells.ravel()
    count = np.bincount(cm_flat, minlength=len(w.cm_team)).astype(float)
    Y = {o: (w.cell_paths[:, :, H] == s).reshape(n * slots, len(H)).astype(float)
         for o, s in OUTCOMES.items()}
    offered = [(j, inst) for j, inst in enumerate(p.instruments, start=1) if inst in p.offered]
    Dm = np.stack([(D == j).astype(float) for j, _ in offered], axis=1)  # (P, Jo)
    Zt = np.empty_like(Dm)
    Zsd = []
    for c, _ in enumerate(offered):
        Z = np.bincount(cm_flat, weights=Dm[:, c], minlength=len(count)) / np.maximum(count, 1)
        Zc = Z[w.cm_cells]
        Zt[:, c] = (Zc - Zc.mean(axis=1, keepdims=True)).ravel()
        Zsd.append(np.sqrt(np.average((Z - np.average(Z, weights=count)) ** 2, weights=count)))
    joint = _solve(Zt.T @ Dm, {o: Zt.T @ y for o, y in Y.items()})
    res: dict[str, Any] = {
        "case_manager_exported": exported,
        "n_case_managers": int(len(w.cm_team)),
        "definition": "population 2SLS estimands within team x quarter cells with the case "
        "managers' true propensities to start each instrument as instruments, over every "
        "client and every case manager of the client's cell: estimand (just identified, "
        "Z_j only), estimand_controls (other propensities as controls), estimand_joint (all "
        "propensities instrumenting all treatment dummies; j versus none) "
        "(reintegration.synth.truth)",
        "instruments": {},
    }
    for c, (_, inst) in enumerate(offered):
        z = Zt[:, c]
        others = np.delete(Zt, c, axis=1)
        zdd = z - others @ np.linalg.lstsq(others, z, rcond=None)[0] if others.size else z
        denom, denom_c = z @ Dm[:, c], zdd @ Dm[:, c]
        zz = z @ z
        fs_others: dict[str, Any] = {"none": _r(z @ (D == 0) / zz) if zz > 0 else None}
        for c2, (_, inst2) in enumerate(offered):
            if c2 != c:
                fs_others[inst2] = _r(z @ Dm[:, c2] / zz) if zz > 0 else None
        moved = -sum(z @ Dm[:, c2] for c2 in range(len(offered)) if c2 != c)
        entry: dict[str, Any] = {
            "propensity_sd": _r(Zsd[c]),
            "first_stage": _r(denom / zz) if zz > 0 else None,
            "first_stage_controls": _r(denom_c / (zdd @ zdd)) if zdd @ zdd > 0 else None,
            "first_stage_others": fs_others,
            "share_from_other_instruments": _r(moved / denom) if denom else None,
            "estimand": {},
            "estimand_controls": {},
            "estimand_joint": {},
        }
        for o, y in Y.items():
            nan = np.full(len(H), np.nan)
            entry["estimand"][o] = _by_h(z @ y / denom if denom else nan, H)
            entry["estimand_controls"][o] = _by_h(zdd @ y / denom_c if denom_c else nan, H)
            entry["estimand_joint"][o] = _by_h(joint[o][c] if joint else nan, H)
        res["instruments"][inst] = entry
    return res


def _solve(A: np.ndarray, b: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """(Z'D)^-1 Z'Y per outcome; None when Z'D is singular."""
    try:
        return {o: np.linalg.solve(A, v) for o, v in b.items()}
    except np.linalg.LinAlgError:
        return None

"""True effects of one city, computed from the potential outcomes.

Estimands (outcome *Y* is employment or benefit receipt *h* months after
inflow; :math:`Y_i(j)` in the world where instrument *j* starts at the
person's potential start month :math:`S_i` if still on benefit just before it,
:math:`Y_i(0)` with no instrument):

``ate``
    :math:`E[Y_i(j) - Y_i(0) \\mid \\text{eligible}_i]`: persons still on
    benefit just before :math:`S_i`, the only ones an instrument can start for.
``ate_cohort``
    the same over the whole inflow cohort (zero effect for the non-eligible).
``att``
    :math:`E[Y_i(j) - Y_i(0) \\mid D_i = j]`.
``naive_difference``
    :math:`E[Y_i \\mid D_i = j] - E[Y_i \\mid D_i = 0]` in the realised world,
    and ``naive_bias`` = naive difference minus ATT.
``rollout``
    intention-to-treat effect of the roll-out (availability) on outcomes:
    :math:`Y_i(D_i^{R=1}) - Y_i(D_i^{R=0})`, averaged over the exposed
    (persons whose team had rolled out by their potential start), over the
    rolled-out teams' persons whose inflow came on or after the team's start
    date, and over everyone.
``case_manager_iv``
    the population estimand of the within-cell (team x quarter) IV
    regression of *Y* on :math:`1[D = j]` with the case manager's true
    propensity :math:`Z_{mj}` as instrument, computed over every client and
    every case manager of the client's cell (allocation is uniform):
    :math:`\\sum_{i,m} \\tilde Z_{mj} Y_i(D_{im}) / \\sum_{i,m} \\tilde Z_{mj} 1[D_{im} = j]`,
    with :math:`\\tilde Z` demeaned within the cell. This is the weighted
    average of complier effects that 2SLS with case-manager propensity
    targets; compliers may move from another instrument, not only from none.
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
            "benefit at the potential start month (dynamic selection). Both make the treated "
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
        for key in ("ate", "ate_cohort", "att", "naive_difference", "naive_bias"):
            entry[key] = {}
        for o in OUTCOMES:
            diff = Y[o][j] - Y[o][0]
            att = _mean(diff, treated)
            naive = _mean(Yobs[o], treated) - _mean(Yobs[o], none)
            entry["ate"][o] = _by_h(_mean(diff, w.eligible), H)
            entry["ate_cohort"][o] = _by_h(diff.mean(axis=0), H)
            entry["att"][o] = _by_h(att, H)
            entry["naive_difference"][o] = _by_h(naive, H)
            entry["naive_bias"][o] = _by_h(naive - att, H)
        out["instruments"][inst] = entry
    treated_any = w.instrument > 0
    anyi: dict[str, Any] = {"n_treated": int(treated_any.sum()), "att": {},
                            "naive_difference": {}, "naive_bias": {}}
    for o in OUTCOMES:
        diff = Yobs[o] - Y[o][0]
        att = _mean(diff, treated_any)
        naive = _mean(Yobs[o], treated_any) - _mean(Yobs[o], none)
        anyi["att"][o] = _by_h(att, H)
        anyi["naive_difference"][o] = _by_h(naive, H)
        anyi["naive_bias"][o] = _by_h(naive - att, H)
    out["any_instrument"] = anyi
    out["rollout"] = _rollout(w, Y) if p.rollout else None
    out["case_manager_iv"] = _iv(w, Y, case_manager_exported)
    return out


def _rollout(w: World, Y: dict[str, np.ndarray]) -> dict[str, Any]:
    from ..months import index as month_index

    p = w.p
    assert p.rollout is not None
    n = w.n
    rows = np.arange(n)
    j = p.instruments.index(p.rollout["instrument"]) + 1
    on, off = w.instrument_rollout["on"], w.instrument_rollout["off"]
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
    res: dict[str, Any] = {
        "instrument": p.rollout["instrument"],
        "teams": p.rollout["teams"],
        "definition": "mean of Y(D(R=1)) - Y(D(R=0)) per group; R = the team's roll-out of "
        "the instrument is in place at the person's potential start month",
        "n": {g: int(m.sum()) for g, m in groups.items()},
        "take_up": {},
        "itt": {},
    }
    for g, m in groups.items():
        res["take_up"][g] = _r(((on == j)[m].mean() - (off == j)[m].mean()) if m.any() else None)
        res["itt"][g] = {
            o: _by_h(_mean(Y[o][on, rows] - Y[o][off, rows], m), p.horizons) for o in Y
        }
    return res


def _iv(w: World, Y: dict[str, np.ndarray], exported: bool) -> dict[str, Any]:
    p = w.p
    n, slots = w.cm_cells.shape
    inst_cells = np.where(w.eligible[:, None], w.choice_cells, 0)  # (n, slots)
    cm_flat = w.cm_cells.ravel()
    count = np.bincount(cm_flat, minlength=len(w.cm_team)).astype(float)
    res: dict[str, Any] = {
        "case_manager_exported": exported,
        "n_case_managers": int(len(w.cm_team)),
        "definition": "population 2SLS estimand within team x quarter cells with the case "
        "manager's true propensity to start the instrument as instrument "
        "(reintegration.synth.truth)",
        "instruments": {},
    }
    rows = np.arange(n)[:, None]
    for j, inst in enumerate(p.instruments, start=1):
        if inst not in p.offered:
            continue
        D = (inst_cells == j).astype(float)
        Z = np.bincount(cm_flat, weights=D.ravel(), minlength=len(count)) / np.maximum(count, 1)
        Zc = Z[w.cm_cells]
        Zt = Zc - Zc.mean(axis=1, keepdims=True)
        denom = (Zt * D).sum()
        entry: dict[str, Any] = {
            "propensity_sd": _r(np.sqrt(np.average((Z - np.average(Z, weights=count)) ** 2,
                                                   weights=count))),
            "first_stage": _r(denom / (Zt**2).sum()) if (Zt**2).sum() > 0 else None,
            "estimand": {},
        }
        for o, y in Y.items():
            yc = y[inst_cells, rows]  # (n, slots, H)
            num = (Zt[:, :, None] * yc).sum(axis=(0, 1))
            entry["estimand"][o] = _by_h(num / denom if denom else np.full(len(num), np.nan),
                                         p.horizons)
        res["instruments"][inst] = entry
    return res

r"""The case-manager instrument: as-if random allocation of clients to case
managers within team x inflow-quarter cells.

Phase 2 (:func:`fit_iv`) estimates three targets (:data:`TARGETS`), each
with one 2SLS fit (:func:`reintegration.effects.multi_instrument_iv`), team x
quarter cells absorbed, the larger of the robust and the
case-manager-clustered standard error reported:

``versus_none`` (headline)
    starting each instrument :math:`j` against no instrument: all the
    instruments' start indicators instrumented jointly by the case manager's
    leave-out-cell propensities for all of them (Kirkeboen, Leuven and
    Mogstad 2016). A case manager who starts :math:`j` more often may start
    others less often; the joint model separates the two.
``versus_none_controls``
    :math:`1[D = j]` instrumented by :math:`Z_j` with the propensities
    :math:`Z_{-j}` for the other instruments as controls. Noise in the
    leave-out propensities makes them imperfect controls, so part of the mix
    below remains when caseloads are small.
``mixed``
    the just-identified 2SLS of :math:`1[D = j]` on :math:`Z_j`: the effect
    of :math:`j` against the mix of alternatives (none and other instruments)
    the propensity moves clients out of.

Beside the Wald interval each record carries the Anderson-Rubin set
(``ci_anderson_rubin``, ``ar_bounded``, ``ar_kind``): exact for the
one-endogenous targets, the projection of the joint set for the headline
(whole samples only). The headline's whole-sample record also carries its
first stage in each pre-registered subgroup (``first_stage_by_group``) and
the verdict of that monotonicity check (``monotonicity``).

Phase 1 (:func:`diagnose_iv`) judges the same prepared data
(:meth:`CaseManagerIV.prepare`): identifier coverage, clients per case
manager, cells with several case managers, the first-stage F
(:func:`reintegration.effects.numerics.first_stage`, clustered on case managers),
the first stage per subgroup (monotonicity) and the balance of covariates
across the propensity within cells. Its minimum detectable effect uses the
variance of the headline 2SLS estimate under no effect
(:func:`null_std_error`): with :math:`\tilde y, \tilde d` the outcome and
treatment net of their cell means and :math:`\tilde z` the combination of
the propensities that the joint 2SLS uses for this instrument (its fitted
starts net of the other instruments' fitted starts; the propensity itself
when there are no other instruments),

.. math::

    \widehat V_0 = \frac{\sum_g \big(\sum_{i \in g} \tilde z_i \tilde y_i\big)^2}
                        {\big(\sum_i \tilde z_i \tilde d_i\big)^2},

clustered on case managers :math:`g` (and the same sum per client for the
robust variance), the larger of the two, as Phase 2 reports. The minimum
detectable effect Phase 2's interval realises and the ratio of the two are
reported beside it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import effects
from ..effects import EffectResult
from ..effects._memo import FrameMemo
from ..effects.numerics import (
    cluster_ols,
    demean,
    first_stage,
    first_stage_f,
    group_codes,
    joint_test,
    partial_out,
    propensity_scores,
)
from ..research.panel_contract import NO_INSTRUMENT
from ..research.subgroups import subgroup_frame
from .base import (
    Check,
    Design,
    Diagnosis,
    Inputs,
    Model,
    levels,
    mde_check,
    minimum_detectable_effect,
    pct,
    power_settings,
    rounded,
    size_checks,
)

#: the reason of a city without case-manager identifiers
NO_IDENTIFIERS = "no case-manager identifiers"
#: prefixes of the prepared data's columns of the other alternatives: started it, and
#: the case manager's leave-out-cell propensity for it
OTHER_D, OTHER_Z = "_d:", "_z:"
#: prefix of the prepared data's subgroup columns (reintegration.research.subgroups.subgroup_frame)
SUBGROUP = "_sg:"
#: a column of the data used as a subgroup as it is has at most this many groups
MAX_GROUPS = 20
#: the estimands (Design.targets) and the estimator of each
#: (:func:`reintegration.effects.multi_instrument_iv`)
TARGETS = {
    "versus_none": "the instrument against no instrument: starting each instrument "
                   "instrumented jointly by the case manager's propensities for all of them "
                   "(Kirkeboen, Leuven and Mogstad 2016)",
    "versus_none_controls": "the instrument against no instrument: starting it, "
                            "instrumented by the case manager's propensity for it with the "
                            "propensities for the other instruments held fixed",
    "mixed": "the instrument against the mix of alternatives a case manager's propensity "
             "moves clients out of (other instruments and none): the just-identified 2SLS",
}
METHODS = {"versus_none": "joint", "versus_none_controls": "controls", "mixed": "single"}
#: the truth key (effects.json, case_manager_iv.instruments.<j>) of each target
TRUTH_KEYS = {"versus_none": "estimand_joint", "versus_none_controls": "estimand_controls",
              "mixed": "estimand"}
#: the panel columns reintegration.research.subgroups.subgroup_frame derives the subgroups from
SUBGROUP_INPUTS = ("age", "sex", "female", "education", "prior_employment_months",
                   "prior_employment", "migration")
#: bands of the number of cohort clients per case manager (caseload table)
CASELOAD_BANDS = ("1-9", "10-19", "20-29", "30-49", "50-99", "100 or more")


def null_std_error(sample: pd.DataFrame, outcome: str) -> float:
    """Standard error of the headline 2SLS estimate under no effect (see the
    module text): the larger of the case-manager-clustered and the robust
    one. With other instruments in the data the instrument is the
    combination of all propensities that the joint 2SLS uses for this
    instrument's coefficient: its fitted starts net of the fitted starts of
    the others."""
    pairs = other_pairs(sample)
    sample = sample.dropna(subset=[outcome, "_z", "_d", *[c for p in pairs for c in p]])
    groups = sample["_cell"].to_numpy()
    y, d, z = (demean(sample[c].to_numpy(dtype=float), groups) for c in (outcome, "_d", "_z"))
    if pairs:
        zz = np.column_stack([z, demean(sample[[k for _, k in pairs]].to_numpy(float), groups)])
        dd = np.column_stack([d, demean(sample[[k for k, _ in pairs]].to_numpy(float), groups)])
        fitted = zz @ np.linalg.lstsq(zz, dd, rcond=None)[0]
        (z,) = partial_out(fitted[:, 1:], fitted[:, 0])
    denom = float(z @ d)
    if denom == 0:
        return float("nan")
    score = z * y
    clustered = pd.Series(score).groupby(sample["case_manager"].to_numpy()).sum()
    var = max(float((clustered ** 2).sum()), float((score ** 2).sum())) / denom ** 2
    return math.sqrt(var)


def case_manager_propensity(
    data: pd.DataFrame, *, case_manager: str, treatment: str, cells: str | Sequence[str]
) -> pd.Series:
    r"""The leave-out-cell propensity of the client's case manager: how much
    more often than their colleagues the case manager starts the treatment,
    measured on their clients in *other* cells.

    With :math:`\tilde D_k = D_k - \bar D_{c(k)}` the treatment minus its
    mean in client :math:`k`'s cell (team and quarter), for client :math:`i`
    of case manager :math:`m` in cell :math:`c`,

    .. math::

        Z_i = \frac{1}{|\{k: m(k) = m,\ c(k) \ne c\}|}
              \sum_{k:\ m(k) = m,\ c(k) \ne c} \tilde D_k ,

    missing when the case manager has no clients in other cells.

    Why not the plain leave-one-out mean. With cell fixed effects in the
    first stage, (a) subtracting the leave-one-out mean of the client's own
    cell puts the client's own treatment back into the instrument (within a
    cell the others' mean is lower for a treated client by
    :math:`1/(n_c - 1)`), which inflates the first stage mechanically; and
    (b) the leave-one-out mean of the case manager's other clients is lower for
    a treated client than for an untreated client of the same case manager by
    :math:`1/(n_m - 1)`; within a cell, where a case manager has several
    clients, this biases the first stage towards a negative value when
    caseloads are small (exclusion bias). Leaving out the whole cell removes
    both: nothing of the client's cell enters any instrument of that cell. The
    tests show that with case managers shuffled within cells the F statistic
    then behaves like a null.
    """
    return effects.leave_out_cell_propensity(data, group=case_manager, treatment=treatment,
                                             cells=cells)


def iv_data(persons: pd.DataFrame, instrument: str, *,
            cells: Sequence[str] = ("team", "inflow_quarter")) -> pd.DataFrame:
    """Clients with a case manager, the treatment ``_d`` (started the
    instrument), the cell ``_cell`` (team x inflow quarter) and the
    propensity ``_z`` of their case manager measured on their clients in
    other cells (:func:`reintegration.effects.leave_out_cell_propensity`;
    the same instrument as the feasibility step's first stage). The plain
    leave-one-out mean is not used: with the cells absorbed it carries the
    client's own treatment into the first stage."""
    df = persons[persons["case_manager"].notna()].copy()
    df["_d"] = (df["instrument"] == instrument).astype(float)
    df["_cell"] = _PREPARED.get(persons, ("cells", tuple(cells)),
                                lambda: cell_labels(df, cells).to_numpy()).copy()
    df["_z"] = _propensity(persons, df, instrument, cells)

    try:  # the pre-registered subgroups, derived once (the monotonicity check)
        groups = subgroup_frame(df[[c for c in SUBGROUP_INPUTS if c in df]])
        for name in groups:
            df[SUBGROUP + name] = groups[name]
    except KeyError:  # data without the panel's columns
        pass
    started = df["instrument"].dropna().astype(str).unique()
    for other in sorted(set(started) - {instrument, NO_INSTRUMENT}):
        df[f"{OTHER_D}{other}"] = (df["instrument"] == other).astype(float)
        df[f"{OTHER_Z}{other}"] = _propensity(persons, df, other, cells)
    return df


#: the cell labels and propensities of :func:`iv_data` per persons frame: every instrument's
#: prepared data holds the propensities for all instruments, computed once
_PREPARED = FrameMemo()


def _propensity(persons: pd.DataFrame, df: pd.DataFrame, instrument: str,
                cells: Sequence[str]) -> np.ndarray:
    """The case manager's propensity for ``instrument`` (:func:`case_manager_propensity`)
    on the rows ``df`` of ``persons`` that :func:`iv_data` keeps, from the columns it
    reads only, once per persons frame and cells."""

    def compute() -> np.ndarray:
        frame = pd.DataFrame({"case_manager": df["case_manager"],
                              "_t": (df["instrument"] == instrument).astype(float),
                              "_cell": df["_cell"]})
        return case_manager_propensity(frame, case_manager="case_manager", treatment="_t",
                                       cells="_cell").to_numpy()

    return _PREPARED.get(persons, ("propensity", instrument, tuple(cells)), compute).copy()


def cell_labels(df: pd.DataFrame, cells: Sequence[str]) -> pd.Series:
    """The cell of each row: its ``cells`` values as text joined by ``|``
    (``"|".join`` of each row's texts, column by column instead of row by row)."""
    if len(df) == 0 or not cells:
        return df[list(cells)].astype(str).agg("|".join, axis=1)
    out = df[cells[0]].astype(str).astype(object)
    for col in cells[1:]:
        out = out + "|" + df[col].astype(str).astype(object)
    return out.rename(None)


def other_pairs(data: pd.DataFrame) -> list[tuple[str, str]]:
    """The (treatment, propensity) columns of the other alternatives in the
    prepared data (:func:`iv_data`)."""
    return [(c, OTHER_Z + c[len(OTHER_D):]) for c in data.columns
            if isinstance(c, str) and c.startswith(OTHER_D)
            and OTHER_Z + c[len(OTHER_D):] in data.columns]


def caseload_frame(base: pd.DataFrame) -> pd.DataFrame:
    """One row per case manager: the number of cohort clients (for the
    caseload table; case managers are pseudonymised and not shown)."""
    counts = base.groupby("case_manager", sort=True).size()
    bands = pd.cut(counts, [0, 9, 19, 29, 49, 99, np.inf], labels=list(CASELOAD_BANDS))
    return pd.DataFrame({"clients": counts.to_numpy(),
                         "clients per case manager": bands.astype(str).to_numpy()})


def fit_iv(data: pd.DataFrame, outcome: str, settings: dict[str, Any],
           target: str = "versus_none", *, inference: bool = True) -> EffectResult:
    """The estimate of ``target`` (:data:`TARGETS`), fitted once
    (:func:`reintegration.effects.multi_instrument_iv`): the larger of the
    robust and the case-manager-clustered standard error (the advice with
    few or unequal clusters) and the Anderson-Rubin set beside the Wald
    interval; for the headline on a whole sample, the first stage in each
    pre-registered subgroup (:func:`first_stage_by_group`) and the
    monotonicity verdict. The headline's Anderson-Rubin set (a projection,
    :func:`reintegration.effects.numerics.anderson_rubin_projection`) is computed for
    whole samples only (a subgroup is recognised by a pre-registered
    subgroup with one group left). ``inference=False`` leaves out the
    Anderson-Rubin set and the subgroup table (Phase 1 needs only the
    standard error)."""
    if target not in TARGETS:
        raise KeyError(f"case_manager_iv: no estimand {target!r}; known: {', '.join(TARGETS)}")
    names, whole = _group_names(data, settings)
    res = effects.multi_instrument_iv(
        data, outcome=outcome, treatment="_d", instrument="_z", others=other_pairs(data),
        method=METHODS[target], absorb="_cell", cluster="case_manager",
        anderson_rubin=inference and (whole or METHODS[target] != "joint"))
    diag = dict(res.diagnostics)
    sample = data[[outcome, "_z", "_d"]].dropna()
    diag.update({"target": target, "n_treated": int(sample["_d"].sum()),
                 "n_control": int(len(sample) - sample["_d"].sum())})
    if inference and target == next(iter(TARGETS)) and whole and names and len(data):
        table = _cached_first_stages(data, settings, names)
        if table is not None:
            diag["first_stage_by_group"] = table.to_dict(orient="records")
            diag["monotonicity"] = monotonicity_verdict(table)
    return dataclasses.replace(res, diagnostics=diag)


#: the first stage by subgroup of each prepared frame (it does not depend on the outcome)
_FIRST_STAGES = FrameMemo()
#: the monotonicity subgroups of each prepared frame (they do not depend on the outcome)
_GROUPS = FrameMemo()
#: the treated, comparison and case-manager counts of each frame's complete outcomes
_COUNTS = FrameMemo()


def _group_names(data: pd.DataFrame, settings: dict[str, Any]) -> tuple[list[str], bool]:
    """The columns of :func:`monotonicity_groups` and whether the data is a
    whole sample (every one of them holds two groups or more), derived once
    per prepared frame (every outcome and estimand of a sample shares them)."""
    key = ("monotonicity_groups", len(data), tuple(data.columns),
           repr(settings["case_manager_iv"].get("monotonicity_subgroups")),
           tuple(settings.get("subgroups") or {}))

    def compute() -> tuple[list[str], bool]:
        groups = monotonicity_groups(data, settings)
        return list(groups.columns), not any(groups[c].nunique() < 2 for c in groups)

    names, whole = _GROUPS.get(data, key, compute)
    return list(names), whole


def _cached_first_stages(data: pd.DataFrame, settings: dict[str, Any], names: list[str]
                         ) -> pd.DataFrame | None:
    """:func:`first_stage_by_group`, computed once per prepared frame and
    subgroup columns (the table does not depend on the outcome). It was kept in
    the frame's ``attrs`` before, which pandas deep-copies on every operation
    on the frame; each caller gets its own copy of the table."""
    key = ("first_stage_by_group", len(data), tuple(names),
           repr(settings.get("min_group")), repr(settings["case_manager_iv"]))
    table = _FIRST_STAGES.get(data, key, lambda: first_stage_by_group(data, settings))
    return None if table is None else table.copy()


def monotonicity_groups(data: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """The pre-registered subgroup columns of the monotonicity check
    (``case_manager_iv.monotonicity_subgroups``; default: Phase 2's
    subgroups) that the data holds, aligned with ``data``: those
    :func:`iv_data` derived from the panel's columns, else a column of that
    name with at most :data:`MAX_GROUPS` groups."""
    names = settings["case_manager_iv"].get("monotonicity_subgroups")
    names = list(settings.get("subgroups") or {}) if names is None else list(names)
    frame = pd.DataFrame(index=data.index)
    for name in names:
        if SUBGROUP + name in data:      # derived by iv_data
            frame[name] = data[SUBGROUP + name]
        elif name in data and data[name].nunique() <= MAX_GROUPS:
            frame[name] = data[name].astype("string")
    return frame


def first_stage_by_group(data: pd.DataFrame, settings: dict[str, Any]
                         ) -> pd.DataFrame | None:
    """The headline's first stage (starting the instrument on the case
    manager's propensity for it, the other propensities held fixed, cells
    absorbed, clustered on case managers) in each group of each
    pre-registered subgroup with at least two groups: the testable
    implication of monotonicity that it is positive everywhere (Frandsen,
    Lefgren and Leslie 2023 discuss stronger tests). Groups below
    ``min_group`` get no estimate. None when no subgroup has two groups."""
    groups = monotonicity_groups(data, settings)
    mins = settings["min_group"]
    cols = ["_d", "_z", "_cell", "case_manager"] + [c for pair in other_pairs(data) for c in pair]
    base = data[cols].dropna()
    # cell and case-manager codes once; a group's rows take theirs (same groups, same order)
    codes = (group_codes(base, ["_cell"]), pd.factorize(base["case_manager"].astype(str))[0])
    rows = []
    for name in groups:
        aligned = groups[name].loc[base.index]
        levels_ = aligned.dropna()
        if levels_.nunique() < 2:
            continue
        for level in sorted(levels_.unique()):
            mask = (aligned == level).to_numpy(dtype=bool, na_value=False)
            part = base.loc[mask]
            n1 = int(part["_d"].sum())
            row = {"subgroup": name, "group": str(level), "estimate": None,
                   "std_error": None, "t": None, "status": "too_small"}
            if (n1 >= mins["treated"] and len(part) - n1 >= mins["control"]
                    and part["case_manager"].nunique() >= mins["clusters"]):
                coef, se = controlled_first_stage(part, (codes[0][mask], codes[1][mask]))
                t = coef / se if se > 0 else math.nan
                row.update({"estimate": rounded(coef, 4), "std_error": rounded(se, 4),
                            "t": rounded(t, 2), "status": "estimated"})
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def controlled_first_stage(part: pd.DataFrame, codes: tuple[np.ndarray, np.ndarray] | None = None
                           ) -> tuple[float, float]:
    """Coefficient and case-manager-clustered standard error of the
    propensity in the first stage of the headline: starting the instrument
    on the propensity for it, the propensities for the other instruments
    and the cells partialled out (singleton cells dropped). ``codes``: the
    rows' codes of the cells (in sorted order) and of the case managers
    from a larger frame, instead of coding them again."""
    if codes is None:
        grp = group_codes(part, ["_cell"])
        managers = part["case_manager"].astype(str).to_numpy()
    else:
        grp, managers = np.unique(codes[0], return_inverse=True)[1], codes[1]
    keep = np.bincount(grp)[grp] > 1
    part, grp, managers = part.loc[keep], grp[keep], managers[keep]
    zcols = [z for _, z in other_pairs(part)]
    arr = demean(part[["_d", "_z", *zcols]].to_numpy(dtype=float), grp)
    zo = arr[:, 2:][:, np.abs(arr[:, 2:]).max(axis=0, initial=0) > 1e-12]
    if len(arr) < 3 or np.abs(arr[:, 1]).max() <= 1e-12:
        return math.nan, math.nan
    pi, v, _ = first_stage_f(arr[:, 0], arr[:, [1]], zo if zo.shape[1] else None,
                             clusters=managers, debiased=False)
    return float(pi[0]), float(math.sqrt(v[0, 0]))


def monotonicity_verdict(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """pass: the first stage is positive in every estimated group;
    conditional: negative somewhere but not significantly; fail: significantly
    negative somewhere, one-sided at ``alpha`` with Bonferroni's correction
    for the number of groups estimated (with a dozen groups and a first stage
    near zero, one of them is below -1.96 by chance one time in four);
    not_assessed: no group estimated."""
    from scipy import stats

    est = table[table["status"] == "estimated"]
    if est.empty:
        return "not_assessed"
    critical = float(stats.norm.ppf(1 - alpha / len(est)))
    if (est["t"].astype(float) < -critical).any():
        return "fail"
    return "conditional" if (est["estimate"].astype(float) <= 0).any() else "pass"


def first_stage_model(frame: pd.DataFrame) -> Model:
    """The first stage as a linearmodels fit for the output register: the
    treatment on the case manager's leave-out-cell propensity, both demeaned within cells
    (the cell effects absorbed), clustered on case managers. Its coefficient
    over its standard error, squared, is :func:`first_stage`'s F."""
    from linearmodels.iv import IV2SLS

    sample = frame[frame[["_d", "_z", "_cell", "case_manager"]].notna().all(axis=1)]
    groups = sample["_cell"].to_numpy()
    dep = pd.Series(demean(sample["_d"].to_numpy(dtype=float), groups), name="starts")
    z = demean(sample["_z"].to_numpy(dtype=float), groups)
    exog = pd.DataFrame({"case_manager_propensity": z})
    clusters = pd.factorize(sample["case_manager"].astype(str))[0]
    res = IV2SLS(dep, exog, None, None).fit(cov_type="clustered", clusters=clusters,
                                             debiased=False)
    started = np.where(sample["_d"].to_numpy() > 0, "started", "did not start")
    return Model(res, pd.DataFrame({"instrument started": started}), ["case_manager_propensity"],
                 "First stage: starting the instrument on the case manager's leave-out-cell "
                 "propensity (cell effects absorbed, clustered on case managers)")


def diagnose_iv(persons: pd.DataFrame, data: pd.DataFrame | None, instrument: str,
                covariates: Sequence[str], outcome: str, settings: dict[str, Any],
                effects_settings: dict[str, Any], threshold: int) -> Diagnosis:
    """Phase 1's checks of the case-manager IV for one instrument, on the
    data Phase 2 estimates on (``data``: :meth:`CaseManagerIV.prepare`, None
    without case-manager identifiers)."""
    cfg = settings["theoretical"]["case_manager_iv"]
    cells = list(effects_settings["case_manager_iv"]["cells"])
    diag = Diagnosis()
    diag.evidence_practical["outcome"] = outcome
    diag.evidence_theoretical.update({
        "cells": cells, "instrument_definition": "leave-out-cell propensity: share of the "
        "case manager's clients in other cells starting the instrument, each net of their "
        "cell's share"})
    if not _allocation_checks(diag, persons, data, cfg, cells):
        return diag
    assert data is not None
    _first_stage_check(diag, data, instrument, cfg)
    _monotonicity_check(diag, data, effects_settings)
    sample = data[data["_z"].notna()]
    used = _balance_check(diag, sample, covariates, cfg)
    _power_checks(diag, data, sample, outcome, settings["practical"], effects_settings,
                  threshold)
    # balance index for display: take-up predicted from covariates, by propensity tercile
    index = propensity_scores(sample, "_d", used)
    terciles = pd.qcut(sample["_z"].rank(method="first"), 3, labels=["low", "middle", "high"])
    diag.frames["iv_balance"] = pd.DataFrame({
        "instrument": instrument, "propensity tercile": terciles.astype(str).to_numpy(),
        "predicted take-up": index})
    return diag


def _allocation_checks(diag: Diagnosis, persons: pd.DataFrame, base: pd.DataFrame | None,
                       cfg: dict[str, Any], cells: list[str]) -> bool:
    """Identifier coverage, clients per case manager and cells with several
    case managers; False when there are no identifiers at all."""
    theo, ev_t = diag.theoretical, diag.evidence_theoretical
    n_all = len(persons)
    n_with = 0 if base is None else len(base)
    coverage = n_with / n_all if n_all else 0.0
    ev_t["identifier_coverage"] = round(coverage, 4)
    lim_cov = float(cfg["min_identifier_coverage"])
    if base is None or n_with == 0:
        theo.append(Check("identifiers", "fail",
                          f"{NO_IDENTIFIERS}: the city's delivery has no case manager per "
                          "client, so the instrument cannot be formed", 0.0, lim_cov))
        for name in ("clients_per_case_manager", "multi_manager_cells", "first_stage_f",
                     "monotonicity", "balance"):
            theo.append(Check(name, "not_assessed", NO_IDENTIFIERS))
        diag.practical.append(Check("sample", "not_assessed", NO_IDENTIFIERS))
        diag.practical.append(Check("mde", "not_assessed", NO_IDENTIFIERS))
        return False
    if coverage < lim_cov:
        theo.append(Check("identifiers", "fail",
                          f"case-manager identifiers for only {pct(coverage)} of the cohort "
                          f"(at least {pct(lim_cov, 0)} needed)", round(coverage, 4), lim_cov))
    else:
        theo.append(Check("identifiers", "pass",
                          f"case-manager identifiers for {pct(coverage)} of the cohort",
                          round(coverage, 4), lim_cov))
    diag.frames["caseload"] = caseload_frame(base)
    caseload = base.groupby("case_manager").size()
    median = float(caseload.median())
    lim = cfg["clients_per_case_manager"]
    verdict = levels(median, no_go=lim["no_go"], conditional=lim["conditional"])
    text = {
        "pass": f"median {median:g} cohort clients per case manager (at least "
                f"{lim['conditional']})",
        "conditional": f"median {median:g} cohort clients per case manager (fewer than "
                       f"{lim['conditional']}): case-manager propensities are noisy; check "
                       "the estimate with a split-sample instrument",
        "fail": f"median {median:g} cohort clients per case manager, fewer than "
                f"{lim['no_go']}: a case manager's propensity would be mostly noise",
    }[verdict]
    theo.append(Check("clients_per_case_manager", verdict, text, median, lim))
    ev_t.update({"case_managers": int(len(caseload)), "median_clients_per_case_manager": median,
                 "mean_clients_per_case_manager": round(float(caseload.mean()), 2)})
    per_cell = base.groupby("_cell")["case_manager"].transform("nunique")
    share_multi = float((per_cell >= 2).mean())
    lim_multi = float(cfg["min_share_multi_manager_cells"])
    theo.append(Check(
        "multi_manager_cells", "pass" if share_multi >= lim_multi else "fail",
        f"{pct(share_multi)} of clients are in cells ({' x '.join(cells)}) with two or "
        f"more case managers (at least {pct(lim_multi, 0)})"
        + ("" if share_multi >= lim_multi else ": too little variation within cells"),
        round(share_multi, 4), lim_multi))
    ev_t["share_in_multi_manager_cells"] = round(share_multi, 4)
    return True


def _first_stage_check(diag: Diagnosis, data: pd.DataFrame, instrument: str,
                       cfg: dict[str, Any]) -> None:
    fs = first_stage(data, treatment="_d", instrument="_z", absorb="_cell",
                     cluster="case_manager")
    lim_f = float(cfg["min_first_stage_f"])
    diag.evidence_theoretical["first_stage"] = fs.as_dict()
    if not math.isfinite(fs.f_stat) or fs.f_stat < lim_f:
        diag.theoretical.append(Check(
            "first_stage_f", "fail", f"first-stage F {_fmt_f(fs.f_stat)} below {lim_f:g}: which "
            "case manager a client gets barely changes whether they start the instrument (a weak "
            "instrument), so this comparison cannot tell its effect", rounded(fs.f_stat, 3),
            lim_f))
    else:
        diag.theoretical.append(Check(
            "first_stage_f", "pass", f"first-stage F {_fmt_f(fs.f_stat)} (at least {lim_f:g})",
            rounded(fs.f_stat, 3), lim_f))
    diag.models[f"first_stage_{instrument}"] = first_stage_model(data)


def _monotonicity_check(diag: Diagnosis, data: pd.DataFrame,
                        effects_settings: dict[str, Any]) -> None:
    """The first stage of the headline in each pre-registered subgroup
    (:func:`first_stage_by_group`): positive everywhere, as monotonicity
    implies."""
    groups = monotonicity_groups(data, effects_settings)
    table = _cached_first_stages(data, effects_settings, list(groups.columns))
    if table is None:
        diag.theoretical.append(Check("monotonicity", "not_assessed",
                                      "no pre-registered subgroup has two groups"))
        return
    verdict = monotonicity_verdict(table)
    est = table[table["status"] == "estimated"]
    negative = [f"{r.subgroup}: {r.group}" for r in est.itertuples() if r.estimate <= 0]
    text = {
        "pass": f"the first stage is positive in all {len(est)} groups of the pre-registered "
                "subgroups, as monotonicity implies",
        "conditional": f"the first stage is not positive in {', '.join(negative)} (not "
                       "significantly, corrected for the number of groups): case managers "
                       "may rank these clients differently; read the estimate as an average "
                       "with possibly negative weights",
        "fail": f"the first stage is negative in {', '.join(negative)}, significantly so in "
                "at least one (one-sided 5%, corrected for the number of groups): case "
                "managers who start the instrument more often start it less often for these "
                "clients, so monotonicity fails and 2SLS need not be a weighted average of "
                "effects",
        "not_assessed": "no subgroup is large enough to estimate its first stage",
    }[verdict]
    diag.theoretical.append(Check("monotonicity", verdict, text, len(negative), 0))
    diag.evidence_theoretical["first_stage_by_group"] = table.to_dict(orient="records")


def _balance_check(diag: Diagnosis, sample: pd.DataFrame, covariates: Sequence[str],
                   cfg: dict[str, Any]) -> list[str]:
    """Do the covariates predict the propensity within cells? Returns the
    covariates that vary within cells."""
    groups = sample["_cell"].to_numpy()
    xcols = [c for c in covariates if sample[c].std(ddof=0) > 0]
    xt = pd.DataFrame(demean(sample[xcols].to_numpy(dtype=float), groups), columns=xcols)
    xt = xt.loc[:, xt.std(ddof=0) > 1e-12]
    zt = demean(sample["_z"].to_numpy(dtype=float), groups)
    lim_b = float(cfg["balance_pvalue"])
    if not (xt.shape[1] and len(zt) > xt.shape[1] + 1):
        diag.theoretical.append(Check("balance", "not_assessed",
                                      "no covariates vary within cells"))
        return list(xt.columns)
    res = cluster_ols(zt, xt, sample["case_manager"].astype(str).to_numpy())
    fbal, pbal = joint_test(res, list(xt.columns))
    ok = pbal >= lim_b
    diag.theoretical.append(Check(
        "balance", "pass" if ok else "conditional",
        f"covariates at inflow do not predict the propensity within cells (joint test "
        f"p = {pbal:.3f}, at least {lim_b:g})" if ok else
        f"covariates at inflow predict the propensity within cells (joint test p = "
        f"{pbal:.3f} < {lim_b:g}): allocation may not be as good as random; control for "
        "the covariates and show the estimate is stable",
        round(pbal, 4), lim_b))
    diag.evidence_theoretical["balance"] = {"f_stat": round(fbal, 3), "pvalue": round(pbal, 4),
                                            "covariates": int(xt.shape[1])}
    return list(xt.columns)


def _power_checks(diag: Diagnosis, data: pd.DataFrame, sample: pd.DataFrame, outcome: str,
                  pcfg: dict[str, Any], effects_settings: dict[str, Any],
                  threshold: int) -> None:
    """Group sizes and the MDE from the 2SLS variance under no effect, with
    the MDE Phase 2's interval realises beside it."""
    n = int(sample[["_d", "_cell", "case_manager"]].notna().all(axis=1).sum())
    n1 = int(sample["_d"].sum())
    diag.practical.extend(size_checks(n1, n - n1, pcfg, threshold))
    se = null_std_error(sample, outcome)
    diag.practical.append(mde_check(
        se, pcfg, "clients of case managers who often start the instrument against those of "
        "case managers who rarely do (two-stage least squares)"))
    mde = minimum_detectable_effect(se, **power_settings(pcfg))
    try:
        fitted = fit_iv(data, outcome, effects_settings, inference=False)
        realised = minimum_detectable_effect(fitted.std_error, **power_settings(pcfg))
    except (ValueError, np.linalg.LinAlgError):
        realised = float("nan")
    diag.evidence_practical.update({
        "n": n, "n_treated": n1, "mde_se": rounded(se, 5), "mde": rounded(mde, 4),
        "mde_realised": rounded(realised, 4),
        "mde_ratio": rounded(mde / realised, 3) if 0 < realised < math.inf else None})


def _fmt_f(f: float) -> str:
    return "undefined" if not math.isfinite(f) else f"{f:.1f}"


class CaseManagerIV(Design):
    name = "case_manager_iv"
    label = "Case-manager instrumental variable"
    short = "case-manager IV"
    treated = "_d"
    cluster = "case_manager"
    fit = staticmethod(fit_iv)
    targets = TARGETS

    def prepare(self, inputs: Inputs, instrument: str) -> pd.DataFrame | None:
        persons = inputs.persons
        if "case_manager" not in persons or persons["case_manager"].isna().all():
            return None
        cells = list(inputs.effects["case_manager_iv"]["cells"])
        missing = [c for c in cells if c not in persons.columns]
        if missing:
            raise ValueError(f"case_manager_iv.cells {missing} are not columns of "
                             "persons.parquet")
        return iv_data(persons, instrument, cells=cells).reset_index(drop=True)

    def estimate(self, data: pd.DataFrame, outcome: str, settings: dict[str, Any],
                 target: str | None = None) -> EffectResult:
        return fit_iv(data, outcome, settings, target or self.headline_target)

    def counts(self, data: pd.DataFrame, outcome: str) -> tuple[int, int, int | None]:
        """:meth:`Design.counts`, once per frame for the outcomes without a
        missing value (their rows are all rows)."""
        if data[outcome].notna().all():
            return _COUNTS.get(data, ("counts", len(data)),
                               lambda: Design.counts(self, data, outcome))
        return Design.counts(self, data, outcome)

    def columns(self, data: pd.DataFrame, settings: dict[str, Any]) -> list[str] | None:
        """What :func:`fit_iv` and :meth:`counts` read: the outcomes, treatment,
        propensity, cell, case manager, the other alternatives' columns and the
        monotonicity subgroups (:func:`monotonicity_groups`, which tell a
        subgroup from a whole sample)."""
        names = settings["case_manager_iv"].get("monotonicity_subgroups")
        names = list(settings.get("subgroups") or {}) if names is None else list(names)
        used = [*settings["outcomes"], "_d", "_z", "_cell", "case_manager",
                *[c for pair in other_pairs(data) for c in pair],
                *[SUBGROUP + n if SUBGROUP + n in data else n for n in names]]
        return [c for c in dict.fromkeys(used) if c in data.columns]

    def diagnose(self, inputs: Inputs, instrument: str | None, *, outcome: str,
                 threshold: int) -> Diagnosis:
        covariates = [c for c in inputs.feasibility["covariates"] if c in inputs.persons]
        data = self.prepare(inputs, str(instrument))
        return diagnose_iv(inputs.persons, data, str(instrument), covariates, outcome,
                           inputs.feasibility, inputs.effects, threshold)

    def truth(self, po: pd.DataFrame, record: dict[str, Any], mask: np.ndarray | None,
              context: dict[str, Any]) -> float:
        """The population estimand of the record's target in the truth file
        (whole sample only): ``case_manager_iv.instruments.<j>.<key>.
        <employed|on_benefit>.<h>`` with the key of :data:`TRUTH_KEYS`;
        off-benefit outcomes are minus the on-benefit truth. NaN where the
        truth file has no such value."""
        return iv_truth(context.get("truth"), record, whole_sample=mask is None)


def iv_truth(truth: dict[str, Any] | None, record: dict[str, Any], *,
             whole_sample: bool = True) -> float:
    """The truth of a record's target (see :meth:`CaseManagerIV.truth`)."""
    kind, _, h = str(record["outcome"]).rpartition("_")
    sign = {"employed": 1.0, "on_benefit": 1.0, "off_benefit": -1.0}.get(kind)
    if not whole_sample or sign is None or not h.isdigit():
        return math.nan
    key = TRUTH_KEYS.get(record.get("target") or next(iter(TARGETS)))
    entry = (((truth or {}).get("case_manager_iv") or {}).get("instruments") or {}).get(
        record["instrument"]) or {}
    source = "on_benefit" if kind == "off_benefit" else kind
    value = ((entry.get(key) or {}).get(source) or {}).get(h)
    if value is None:
        return math.nan
    if not isinstance(value, int | float):
        raise ValueError(f"effects.json: case_manager_iv.instruments.{record['instrument']}."
                         f"{key}.{source}.{h} is {type(value).__name__}, not a number")
    return sign * float(value)

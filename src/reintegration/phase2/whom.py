r"""What works for whom: group effects with honest inference, tests of
heterogeneity, and individual effects summarised (never published per person).

The comparison is selection on observables' dynamic one (Sianesi 2004): on
the stacked risk sets of an instrument, persons who start it at elapsed month
:math:`u` against persons still on bijstand at :math:`u` who do not start
then. Every quantity rests on doubly robust scores for the effect on the
treated, with cross-fitted nuisance models (folds of persons, so a person's
rows never train the models that score them): the propensity :math:`e(X, u)`
of starting at :math:`u`, and the outcome models :math:`\mu_0` (not starting)
and :math:`\mu_1` (starting): a logit and least squares by default, or
scikit-learn's gradient boosting (:func:`reintegration.effects.learners`;
fitted by :func:`reintegration.phase2.whom_fit.cross_fit`).
The score's numerator for a row is

.. math:: \psi_i = D_i (Y_i - \mu_0(X_i)) - (1 - D_i)\,\frac{e(X_i)}{1 - e(X_i)}\,
   (Y_i - \mu_0(X_i)),

and :math:`E[\psi \mid X] = e(X)\,\tau(X)` when either nuisance model is right
(:math:`\tau` the effect at :math:`X`). From it:

group effects (GATEs)
    per level :math:`g` of a pre-registered characteristic, the effect on the
    starters in :math:`g`: :math:`\hat\theta_g = \sum_{i \in g} \psi_i /
    \sum_{i \in g} D_i`, with a person-clustered standard error from its
    influence function; and its difference from the starters outside
    :math:`g` ("gains more or less than the others").
BLP
    the best linear predictor of :math:`\tau` by the cross-fitted proxy
    :math:`S` over the starters (the DR-learner of
    :mod:`reintegration.phase2.whom_dr`, or the T-learner :math:`\mu_1 - \mu_0`;
    a person's :math:`S` never used the outcomes of the person's fold;
    Chernozhukov, Demirer, Duflo and
    Fernandez-Val, "Generic machine learning inference on heterogeneous
    treatment effects"): :math:`\beta_2 = 0` means the proxy finds no
    heterogeneity; the moment :math:`E[Z(\psi - e Z'\beta)] = 0` with
    :math:`Z = (1, S - \bar S)`.
GATES
    the effect in each quintile of :math:`S` among the starters; read as a
    calibration check of the individual effects (predicted mean of :math:`S`
    against the realised effect per quintile) and tested top minus bottom.
family-wise error
    across every group contrast of every instrument and outcome, Holm's step-
    down and Romano and Wolf's (2005) step-down with a multiplier bootstrap
    that draws one weight per person (shared across instruments, since the
    same persons appear in several comparisons).

Individual effects (:math:`S` per starter) are summarised by quantiles only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..research.subgroups import subgroup_frame
from .whom_fit import PID, cross_fit, renumbered

# ---------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------

#: pre-registered characteristics beyond Phase 2's subgroups, from the persons file
EXTRA_GROUPS = {
    "labour_market_distance": "labour_market_distance",
    "health_chronic": "health_chronic",
    "household": "household_type",
    "language_level": "language_level",
}


KNOWN_GROUPS = ("age_band", "sex", "education", "prior_employment", "migration",
                *EXTRA_GROUPS)


def group_frame(frame: pd.DataFrame, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Every pre-registered grouping as strings (or those in ``names``):
    Phase 2's subgroups (age band, sex, education, prior employment,
    migration) and the municipal rating of the distance to the labour
    market, chronic health, household type and language level."""
    unknown = sorted(set(names or ()) - set(KNOWN_GROUPS))
    if unknown:
        raise ValueError(f"config/effects.yml: heterogeneity.groups names unknown groupings "
                         f"{unknown}; known: {', '.join(KNOWN_GROUPS)}")
    out = subgroup_frame(frame)
    for name, col in EXTRA_GROUPS.items():
        if col in frame:
            values = frame[col]
            if name == "health_chronic":
                values = values.map({1: "yes", 0: "no"})
            out[name] = values.astype("string")
    return out if names is None else out[[n for n in names if n in out]]


# ---------------------------------------------------------------------------
# nuisance models and scores
# ---------------------------------------------------------------------------


def scores(fitted: pd.DataFrame) -> np.ndarray:
    """The doubly robust numerators psi of the effect on the treated (module text)."""
    r = fitted["y"] - fitted["mu0"]
    w = fitted["e"] / (1 - fitted["e"])
    return (fitted["d"] * r - (1 - fitted["d"]) * w * r).to_numpy(dtype=float)


# ---------------------------------------------------------------------------
# estimates with person-level influence functions
# ---------------------------------------------------------------------------


@dataclass
class Estimate:
    """An effect with its influence function per person (for joint inference)."""

    name: str
    estimate: float
    influence: pd.Series  # per person, sums to zero; variance = sum of squares
    n_treated: int

    @property
    def se(self) -> float:
        return float(math.sqrt((self.influence**2).sum()))

    def minus(self, other: Estimate, name: str) -> Estimate:
        inf = self.influence.sub(other.influence, fill_value=0.0)
        return Estimate(name, self.estimate - other.estimate, inf,
                        min(self.n_treated, other.n_treated))


@dataclass(frozen=True)
class PersonIndex:
    """Each row's person as an integer code (factorised once per analysis:
    the influence functions of many group effects are summed per person)."""

    codes: np.ndarray
    persons: pd.Index

    @classmethod
    def of(cls, pid: np.ndarray | PersonIndex) -> PersonIndex:
        if isinstance(pid, PersonIndex):
            return pid
        codes, persons = pd.factorize(np.asarray(pid), sort=True)
        return cls(codes, pd.Index(persons))

    def sum(self, values: np.ndarray, rows: np.ndarray | None = None) -> pd.Series:
        """``values`` summed per person (``rows``: the values are those of these rows)."""
        codes = self.codes if rows is None else self.codes[rows]
        return pd.Series(np.bincount(codes, weights=values, minlength=len(self.persons)),
                         index=self.persons)


def att(psi: np.ndarray, d: np.ndarray, pid: np.ndarray | PersonIndex,
        mask: np.ndarray | None = None, name: str = "all") -> Estimate:
    """theta = sum psi / sum d over the rows in ``mask``, with its influence
    function summed per person (``pid``: each row's person, or a
    :class:`PersonIndex` of them)."""
    m = np.arange(len(psi)) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    dm = d[m]
    n1 = float(dm.sum())
    if n1 == 0:
        return Estimate(name, math.nan, pd.Series(dtype=float), 0)
    psi_m = psi[m]
    theta = float(psi_m.sum() / n1)
    # the rows outside the mask contribute zero: summed over the mask's rows only
    inf = PersonIndex.of(pid).sum((psi_m - dm * theta) / n1, rows=m)
    return Estimate(name, theta, inf, int(n1))


def blp(psi: np.ndarray, e: np.ndarray, proxy: np.ndarray, d: np.ndarray, pid: np.ndarray
        ) -> dict[str, float]:
    """beta1 (average effect on the treated) and beta2 (heterogeneity slope)
    of the best linear predictor of the effect by the proxy, over the
    starters' distribution; person-clustered sandwich."""
    s = proxy - np.average(proxy, weights=e)
    Z = np.column_stack([np.ones_like(s), s])
    A = (Z * e[:, None]).T @ Z
    beta = np.linalg.solve(A, Z.T @ psi)
    resid = psi - e * (Z @ beta)
    g = pd.DataFrame(Z * resid[:, None]).groupby(pid).sum().to_numpy()
    ainv = np.linalg.inv(A)
    cov = ainv @ (g.T @ g) @ ainv.T
    se = np.sqrt(np.diag(cov))
    return {"beta1": float(beta[0]), "beta1_se": float(se[0]), "beta2": float(beta[1]),
            "beta2_se": float(se[1]),
            "beta2_pvalue": float(2 * stats.norm.sf(abs(beta[1] / se[1]))) if se[1] > 0
            else math.nan}


def indicator_matrix(columns: Sequence[np.ndarray]) -> np.ndarray:
    """``numpy.column_stack`` of the 0/1 ``columns`` as floats (rows x columns,
    row-major), built column-major first and then transposed in one copy:
    the same matrix, without writing every column with a stride of a row."""
    return np.ascontiguousarray(np.array(columns, dtype=float).T)


def blp_groups(psi: np.ndarray, e: np.ndarray, groups: pd.DataFrame, d: np.ndarray,
               pid: np.ndarray | PersonIndex, min_treated: int = 30,
               coded: dict[str, tuple[np.ndarray, Any]] | None = None) -> dict[str, float]:
    r"""The heterogeneity test on the pre-registered characteristics: the best
    linear predictor of the effect by every characteristic's levels at once
    (Semenova and Chernozhukov 2021, "Debiased machine learning of
    conditional average treatment effects and other causal functions"), the
    moment :math:`E[Z(\psi - e Z'\beta)] = 0` with :math:`Z` a constant and
    each characteristic's level indicators, centred on the starters, and a
    Wald test that every slope is zero (chi-squared with one degree of
    freedom per slope; person-clustered sandwich). The basis is fixed before
    the data are seen, so pooling the cross-fitting folds is valid here,
    unlike for the slope on the fitted proxy (:func:`blp`). Per
    characteristic the most common level among the starters is the
    reference; levels with fewer than ``min_treated`` starters join it, and
    a missing value is a level of its own. ``coded``: per column, its
    ``pd.factorize(column, sort=True)`` when already at hand."""
    people = PersonIndex.of(pid)
    cols, names = [], []
    starters = d == 1
    for col in groups.columns:
        levels, counts, rows_of = _starter_levels(groups[col], starters, (coded or {}).get(col))
        if len(levels) < 2:
            continue
        reference = levels[np.argmax(counts)]
        for k, (level, count) in enumerate(zip(levels, counts, strict=True)):
            if level != reference and count >= min_treated:
                cols.append(rows_of(k))
                names.append(f"{col}={level}")
    if not cols:
        return {"groups_wald": math.nan, "groups_df": 0, "groups_pvalue": math.nan}
    X = indicator_matrix(cols)
    X = X - np.average(X, axis=0, weights=e)
    # drop indicators that the others determine (nested or identical levels)
    gram = (X * e[:, None]).T @ X
    keep: list[int] = []
    for j in range(X.shape[1]):
        idx = [*keep, j]
        if np.linalg.matrix_rank(gram[np.ix_(idx, idx)], hermitian=True) == len(idx):
            keep.append(j)
    Z = np.column_stack([np.ones(len(psi)), X[:, keep]])
    A = (Z * e[:, None]).T @ Z
    beta = np.linalg.solve(A, Z.T @ psi)
    resid = psi - e * (Z @ beta)
    g = np.column_stack([people.sum(Z[:, k] * resid).to_numpy() for k in range(Z.shape[1])])
    ainv = np.linalg.inv(A)
    cov = ainv @ (g.T @ g) @ ainv.T
    slopes, vs = beta[1:], cov[1:, 1:]
    try:
        wald = float(slopes @ np.linalg.solve(vs, slopes))
    except np.linalg.LinAlgError:  # no spread left in some direction: no test
        return {"groups_wald": math.nan, "groups_df": 0, "groups_pvalue": math.nan}
    return {"groups_wald": wald, "groups_df": len(keep),
            "groups_pvalue": float(stats.chi2.sf(wald, len(keep))),
            "groups_terms": ";".join(names[j] for j in keep)}


def _starter_levels(column: pd.Series, starters: np.ndarray,
                    coded: tuple[np.ndarray, Any] | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """The levels of ``column`` among the starters as strings, a missing value
    the level "missing", sorted, with their counts of starters, and
    ``rows_of(k)``: the rows of the k-th level. From the column's codes
    (``coded``, of a string column) without comparing strings row by row."""
    if coded is None or not isinstance(column.dtype, pd.StringDtype):
        values = column.astype("string").fillna("missing").to_numpy(dtype=object)
        levels, counts = np.unique(values[starters], return_counts=True)
        return levels, counts, lambda k: values == levels[k]
    codes, found = coded
    # every label once ("missing" may also be a level), sorted as np.unique sorts
    labels, label_of = np.unique(np.array([*found, "missing"], dtype=object),
                                 return_inverse=True)
    row = label_of[np.where(codes < 0, len(found), codes)]
    counts = np.bincount(row[starters], minlength=len(labels))
    present = np.flatnonzero(counts)
    return labels[present], counts[present], lambda k: row == present[k]


def blp_split(psi: np.ndarray, e: np.ndarray, proxy: np.ndarray, d: np.ndarray,
              pid: np.ndarray, fold: np.ndarray) -> dict[str, float]:
    """The BLP slope per cross-fitting fold (each fold's rows were scored by
    models that never saw them, a clean sample split) combined by the rule
    of Chernozhukov, Demirer, Duflo and Fernandez-Val for many splits: the
    median slope, and twice the median p-value (at most 1). The pooled slope
    of :func:`blp` over-rejects without heterogeneity (the folds' proxies
    are built from each other's outcomes); this one is conservative."""
    slopes, pvalues = [], []
    for k in np.unique(fold):
        m = fold == k
        if d[m].sum() < 3:
            continue
        try:
            b = blp(psi[m], e[m], proxy[m], d[m], pid[m])
        except np.linalg.LinAlgError:
            continue
        slopes.append(b["beta2"])
        pvalues.append(b["beta2_pvalue"])
    ok = [p for p in pvalues if math.isfinite(p)]
    return {"beta2_split": float(np.median(slopes)) if slopes else math.nan,
            "beta2_pvalue_split": min(1.0, 2 * float(np.median(ok))) if ok else math.nan}


def gates(psi: np.ndarray, d: np.ndarray, pid: np.ndarray | PersonIndex, proxy: np.ndarray,
          quantiles: int = 5) -> tuple[pd.DataFrame, Estimate]:
    """The effect on the starters in each quantile of the proxy among the
    starters, with the mean proxy there (predicted) beside it, and the top
    minus bottom difference."""
    cuts = np.quantile(proxy[d == 1], np.linspace(0, 1, quantiles + 1)[1:-1])
    q = np.searchsorted(cuts, proxy, side="right")
    rows, ests = [], []
    for k in range(quantiles):
        est = att(psi, d, pid, q == k, name=f"Q{k + 1}")
        ests.append(est)
        sel = (q == k) & (d == 1)
        rows.append({"group": est.name, "predicted": float(proxy[sel].mean()) if sel.any()
                     else math.nan, "estimate": est.estimate, "std_error": est.se,
                     "n_treated": est.n_treated})
    return pd.DataFrame(rows), ests[-1].minus(ests[0], "top minus bottom")


# ---------------------------------------------------------------------------
# multiple testing
# ---------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def romano_wolf(estimates: Sequence[Estimate], *, draws: int = 999, seed: int = 0
                ) -> np.ndarray:
    """Romano and Wolf's step-down adjusted p-values for H0: effect = 0 of
    every estimate, from a multiplier bootstrap of their influence functions
    with one standard normal weight per person (shared by all estimates)."""
    ests = list(estimates)
    ids = [e.influence.index.to_numpy() for e in ests if len(e.influence)]
    persons = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    idx = pd.Index(persons)
    H = np.column_stack([e.influence.reindex(idx, fill_value=0.0).to_numpy() for e in ests])
    se = np.sqrt((H**2).sum(axis=0))
    t = np.abs(np.array([e.estimate for e in ests])) / se
    rng = np.random.default_rng(seed)
    tmax_draws = np.empty((draws, len(ests)))
    for start in range(0, draws, 100):
        xi = rng.standard_normal((min(100, draws - start), len(persons)))
        tmax_draws[start:start + len(xi)] = np.abs(xi @ H) / se
    order = np.argsort(-t, kind="stable")
    adjusted = np.empty(len(ests))
    running = 0.0
    for rank, i in enumerate(order):
        remaining = order[rank:]
        pmax = float((tmax_draws[:, remaining].max(axis=1) >= t[i]).mean())
        running = max(running, pmax)
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------------------
# one instrument, one outcome
# ---------------------------------------------------------------------------


@dataclass
class Heterogeneity:
    """Everything this module reports for one instrument and outcome."""

    instrument: str
    outcome: str
    overall: Estimate
    groups: pd.DataFrame
    contrasts: list[Estimate]
    blp: dict[str, float]
    gates: pd.DataFrame
    gates_difference: Estimate
    iate_quantiles: dict[str, float]
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the cross-fitted proxy (:func:`cross_fit`) per starter, indexed by the person's
    #: row in the panel's persons: for the validation, never in a summary
    #: (:func:`summary_record`); per person, so written to the research domain only
    #: (:func:`predictions_frame`)
    starters: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))


def analyse(data: pd.DataFrame, groups: pd.DataFrame, instrument: str, outcome: str,
            covariates: Sequence[str], *, folds: int = 3, seed: int = 0,
            learner: str = "boosting", quantiles: int = 5, min_treated: int = 30,
            iate: str = "dr_linear", group_codes: dict[str, tuple[np.ndarray, Any]] | None = None
            ) -> Heterogeneity:
    """Group effects, contrasts, BLP, GATES and the IATE summary for one
    instrument's stacked risk sets ``data`` (with ``groups``: the person's
    pre-registered group columns, aligned with ``data``'s rows; ``group_codes``:
    per column, ``pd.factorize(groups[col], sort=True)`` by another route)."""
    fitted = cross_fit(data, outcome, covariates, folds=folds, seed=seed, learner=learner,
                       iate=iate)
    has = data[outcome].notna().to_numpy()
    grp = renumbered(groups.loc[has])
    psi, d, pid = scores(fitted), fitted["d"].to_numpy(), fitted[PID].to_numpy()
    proxy, e = fitted["proxy"].to_numpy(), fitted["e"].to_numpy()
    people = PersonIndex.of(pid)
    overall = att(psi, d, people)
    rows, contrasts, coded = [], [], {}
    for col in grp.columns:
        # integer codes (sorted levels, -1 missing): much faster masks than strings
        codes, levels = coded[col] = _factorized(grp[col], (group_codes or {}).get(col), has)
        known = codes >= 0
        parts = []
        for k_level, level in enumerate(levels):
            inside = codes == k_level
            parts.append((level, inside, att(psi, d, people, inside, name=f"{col}={level}"),
                          att(psi, d, people, ~inside & known)))
        # a characteristic is shown whole or not at all: with one level held back,
        # its effect would follow from the others' effects and differences
        shown = len(parts) > 1 and all(
            e.n_treated >= min_treated and o.n_treated >= min_treated for _, _, e, o in parts)
        for k, (level, inside, est, outside) in enumerate(parts):
            # with two levels the two contrasts are one comparison: test it once
            diff = (est.minus(outside, f"{col}={level} vs others")
                    if shown and not (len(parts) == 2 and k == 1) else None)
            if diff is not None:
                contrasts.append(diff)
            rows.append({"group": col, "level": str(level), "n_treated": est.n_treated,
                         "n_control": int(((d == 0) & inside).sum()),
                         "n_rows": int(inside.sum()),
                         "estimate": est.estimate if shown else None,
                         "std_error": est.se if shown else None,
                         "difference": (est.estimate - outside.estimate) if shown else None,
                         "difference_se": est.minus(outside, "").se if shown else None})
    table = pd.DataFrame(rows)
    g_table, g_diff = gates(psi, d, people, proxy, quantiles)
    treated_proxy = proxy[d == 1]
    return Heterogeneity(
        instrument=instrument, outcome=outcome, overall=overall, groups=table,
        contrasts=contrasts, blp={**blp(psi, e, proxy, d, pid),
                                  **blp_split(psi, e, proxy, d, pid, fitted["fold"].to_numpy()),
                                  **blp_groups(psi, e, grp, d, people, min_treated, coded)},
        gates=g_table, gates_difference=g_diff,
        iate_quantiles={f"p{int(q * 100)}": float(np.quantile(treated_proxy, q))
                        for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if len(treated_proxy) else {},
        starters=pd.Series(treated_proxy, index=pid[d == 1], name="proxy"))


def _factorized(column: pd.Series, coded: tuple[np.ndarray, Any] | None, rows: np.ndarray
                ) -> tuple[np.ndarray, Any]:
    """``pd.factorize(column, sort=True)``, or from ``coded``, the codes and
    sorted levels of a frame whose ``rows`` are ``column`` (the levels present
    in the rows, renumbered in order)."""
    if coded is None:
        return pd.factorize(column, sort=True)
    codes, levels = coded[0][rows], coded[1]
    known = codes >= 0
    present = np.flatnonzero(np.bincount(codes[known], minlength=len(levels)))
    renumber = np.full(len(levels), -1, dtype=np.intp)
    renumber[present] = np.arange(len(present))
    return np.where(known, renumber[codes], -1), levels[present]


def family_tests(results: Sequence[Heterogeneity], *, draws: int = 999, seed: int = 0
                 ) -> pd.DataFrame:
    """Every group contrast of every instrument and outcome as one family:
    raw, Holm and Romano-Wolf p-values of "this group gains as much as the
    others" (difference zero)."""
    rows, ests = [], []
    for res in results:
        for c in res.contrasts:
            z = c.estimate / c.se if c.se > 0 else math.nan
            rows.append({"instrument": res.instrument, "outcome": res.outcome,
                         "contrast": c.name, "difference": c.estimate, "std_error": c.se,
                         "pvalue": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z)
                         else math.nan})
            ests.append(c)
    frame = pd.DataFrame(rows, columns=["instrument", "outcome", "contrast", "difference",
                                        "std_error", "pvalue"])
    if frame.empty:
        return frame.assign(pvalue_holm=[], pvalue_romano_wolf=[])
    frame["pvalue_holm"] = holm(frame["pvalue"])
    frame["pvalue_romano_wolf"] = romano_wolf(ests, draws=draws, seed=seed)
    return frame


#: the research-domain file of :func:`predictions_frame` (07 writes it, 09 reads it)
PREDICTIONS_FILE = "heterogeneity_predictions.parquet"


def predictions_frame(results: Sequence[Heterogeneity]) -> pd.DataFrame:
    """Every analysis' predicted effect per starter (:attr:`Heterogeneity.starters`),
    in the analyses' order: instrument, outcome, the person's row in the panel's
    persons, the proxy. Per person: research domain only, read by the validation
    step instead of fitting the same models again; never released."""
    return pd.DataFrame({
        "instrument": [r.instrument for r in results for _ in range(len(r.starters))],
        "outcome": [r.outcome for r in results for _ in range(len(r.starters))],
        "person": np.concatenate([r.starters.index.to_numpy(dtype=np.int64)
                                  for r in results] or [np.zeros(0, np.int64)]),
        "proxy": np.concatenate([r.starters.to_numpy(dtype=float)
                                 for r in results] or [np.zeros(0)])})


def summary_record(res: Heterogeneity) -> dict[str, Any]:
    """A JSON-safe record of one analysis (no per-person values)."""
    return {"instrument": res.instrument, "outcome": res.outcome,
            "att": res.overall.estimate, "att_se": res.overall.se,
            "n_treated": res.overall.n_treated, "blp": res.blp,
            "gates": res.gates.to_dict(orient="records"),
            "gates_top_minus_bottom": res.gates_difference.estimate,
            "gates_top_minus_bottom_se": res.gates_difference.se,
            "iate_quantiles": res.iate_quantiles,
            "groups": res.groups.to_dict(orient="records")}


# ---------------------------------------------------------------------------
# the step: every selection-on-observables sub-study of a city
# ---------------------------------------------------------------------------


def city_analyses(inputs, substudies: Sequence[dict[str, Any]], settings: dict[str, Any]
                  ) -> tuple[list[Heterogeneity], pd.DataFrame]:
    """:func:`analyse` for every selection-on-observables sub-study Phase 1
    let run and every outcome of ``settings["heterogeneity"]``, and the
    family's adjusted p-values (:func:`family_tests`)."""
    cfg = settings["heterogeneity"]
    results = analyses(inputs, substudies, settings)
    return results, family_tests(results, draws=int(cfg["bootstrap"]), seed=int(cfg["seed"]))


def analyses(inputs, substudies: Sequence[dict[str, Any]], settings: dict[str, Any],
             prepared: dict[str, pd.DataFrame] | None = None) -> list[Heterogeneity]:
    """:func:`analyse` per selection-on-observables sub-study with decision go
    or conditional and per outcome of ``settings["heterogeneity"]`` (its
    folds, seed, learner and quantiles), without the family's tests.
    ``prepared``: risk sets already built by the design, per instrument."""
    from .. import designs

    cfg = settings["heterogeneity"]
    covariates = [*settings["covariates"],
                  *settings["selection_on_observables"].get("extra_covariates", [])]
    results = []
    # the persons' groups once, and their codes; each instrument's risk sets pick their rows
    all_groups = group_frame(inputs.persons.reset_index(drop=True), list(cfg["groups"]))
    person_codes = {col: pd.factorize(all_groups[col], sort=True) for col in all_groups}
    for sub in substudies:
        design = designs.get(sub["design"])
        if not design.observational or sub["decision"] not in ("go", "conditional"):
            continue
        data = (prepared or {}).get(sub["instrument"])
        if data is None:  # not prepared by the caller
            data = design.prepare(inputs, sub["instrument"])
        rows = data[PID].to_numpy()
        groups = renumbered(all_groups.iloc[rows])
        codes = {col: (c[rows], levels) for col, (c, levels) in person_codes.items()}
        data = renumbered(data)  # one frame object: outcomes share the propensity models
        for outcome in cfg["outcomes"]:
            results.append(analyse(
                data, groups, sub["instrument"], outcome, covariates,
                folds=int(cfg["folds"]), seed=int(cfg["seed"]), learner=cfg["learner"],
                quantiles=int(cfg["quantiles"]), iate=cfg.get("iate", "dr_linear"),
                min_treated=int(settings["min_group"]["treated"]), group_codes=codes))
    return results


def effect_results(res: Heterogeneity) -> dict[str, Any]:
    """The group effects as effect results for disclosure control: each
    carries the starters in the group and the comparison rows behind it."""
    from ..effects import EffectResult

    out = {}
    for r in res.groups.itertuples(index=False):
        if r.estimate is None or not math.isfinite(r.estimate):
            continue
        result = EffectResult(
            estimate=float(r.estimate), std_error=float(r.std_error), n=int(r.n_rows),
            design="selection_on_observables",
            estimand="effect on the starters in the group (now versus not now)",
            method="cross-fitted doubly robust scores", outcome=res.outcome,
            treatment=res.instrument, cov_type="clustered")
        result.n_treated, result.n_control = int(r.n_treated), int(r.n_control)
        out[f"{r.group}={r.level}"] = result
    return out


#: the words for how sure a difference is (fixed rules, see the methods page)
CLEAR, POSSIBLE, NONE = "clearly", "possibly", "no clear difference"


def certainty(pvalue: float, adjusted: float, level: float = 0.05) -> str:
    """``clearly`` when the family-wise adjusted p-value is below ``level``,
    ``possibly`` when only the raw one is, otherwise no clear difference."""
    if math.isfinite(adjusted) and adjusted < level:
        return CLEAR
    if math.isfinite(pvalue) and pvalue < level:
        return POSSIBLE
    return NONE


def sentences(res: Heterogeneity, family: pd.DataFrame, label) -> list[str]:
    """Plain sentences for one instrument and outcome, from the numbers, with
    fixed words for how sure a difference is (:func:`certainty`)."""
    fam = family[(family["instrument"] == res.instrument) & (family["outcome"] == res.outcome)]
    groups = res.groups.set_index(["group", "level"])
    words = []
    for r in fam.itertuples(index=False):
        how = certainty(r.pvalue, r.pvalue_romano_wolf)
        if how == NONE:
            continue
        group, level = r.contrast.split(" vs ")[0].split("=", 1)
        own = groups.loc[(group, level), "estimate"]
        others = own - r.difference
        higher = "higher" if r.difference > 0 else "lower"
        lead = "Clearly" if how == CLEAR else "Possibly, but this may be chance (it does not " \
            "pass the correction for the many comparisons on this page)"
        words.append(f"{lead}: for starters whose {label(group)} is \"{label(level)}\" the "
                     f"effect is {abs(100 * r.difference):.1f} percentage points {higher} than "
                     f"for the other starters ({100 * own:+.1f} against {100 * others:+.1f}).")
    if not words:
        words.append(f"No group of starters differs clearly from the others{_unseen(fam)}."
                     if len(fam) else
                     "No characteristic has enough starters in every group to compare.")
    return [groups_test_sentence(res, len(fam)), *words, prediction_verdict(res)]


def _unseen(fam: pd.DataFrame) -> str:
    """How large a group difference would have to be to be found: 2.8 standard
    errors (found in 80% of studies at 5%, two-sided), at the median standard
    error of the differences on the page, before any correction."""
    se = pd.to_numeric(fam["std_error"], errors="coerce").dropna()
    if not len(se):
        return ""
    return (f", but a difference smaller than about {100 * 2.8 * float(se.median()):.0f} "
            "percentage points would usually not be found with these numbers of starters")


def groups_test_sentence(res: Heterogeneity, shown: int | None = None) -> str:
    """The heterogeneity test of all pre-registered characteristics at once
    (:func:`blp_groups`) in one sentence; ``shown``: the differences the page
    shows (the test also holds groups of characteristics not shown)."""
    p, df = res.blp.get("groups_pvalue", math.nan), int(res.blp.get("groups_df", 0))
    if not math.isfinite(p) or df == 0:
        return "The effect could not be tested for differences between groups."
    what = ("one test of the one group difference large enough to test" if df == 1 else
            f"one test of all {df} group differences at once")
    if shown is not None and df > shown:
        what += (", including groups of characteristics not shown below because one of "
                 "their groups is too small")
    if p < 0.05:
        return (f"Taken together, the characteristics clearly go with differences in the "
                f"effect ({what}, {_p_is(p)}).")
    return (f"Taken together, the characteristics show no clear differences in the effect "
            f"({what}, {_p_is(p)}).")


def prediction_verdict(res: Heterogeneity) -> str:
    """One sentence on whether the predicted individual effects carry
    information (the BLP slope by the split rule, :func:`blp_split`: 1
    calibrated, 0 no information, below 0 the wrong way round)."""
    b = res.blp.get("beta2_split", math.nan)
    p = res.blp.get("beta2_pvalue_split", math.nan)
    if not (math.isfinite(b) and math.isfinite(p)):
        return "The predicted effects per person could not be checked."
    # one p-value per instrument, outside the corrected family: "may", not "do"
    uncorrected = "not corrected for the other instruments checked"
    if p < 0.05 and b > 0:
        return (f"The model's predictions of who gains most may point the right way (slope "
                f"{b:.2f}, p = {p:.3f}, {uncorrected}), but they are predictions for groups "
                "of similar starters, not a basis for decisions about one person.")
    if p < 0.05 and b < 0:
        return (f"The model's predictions of who gains most may point the wrong way (slope "
                f"{b:.2f}, p = {p:.3f}, {uncorrected}): they must not be used to choose "
                "anyone.")
    capped = ", the largest value the rule gives" if p >= 1 else ""
    return (f"This check found no reliable sign that the model's predictions sort starters "
            f"by what they gain (slope {b:.2f}, p = {p:.2f}{capped}). That is not proof that "
            "all starters gain alike: the check is cautious and has little power at this "
            "size.")


def calibration_figure(res: Heterogeneity, ax=None):
    """GATES: the realised effect per quintile of the predicted individual
    effect against the mean prediction there (on the diagonal when the
    predictions are calibrated)."""
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.2, 4.0))
    else:
        fig = ax.figure
    g = res.gates
    x, y, se = 100 * g["predicted"], 100 * g["estimate"], 100 * 1.96 * g["std_error"]
    ax.errorbar(x, y, yerr=se, fmt="o", color="#2166ac", capsize=3)
    lo, hi = float(min(x.min(), (y - se).min())), float(max(x.max(), (y + se).max()))
    ax.plot([lo, hi], [lo, hi], ls="--", color="0.5", lw=0.8)
    ax.axhline(0, color="0.7", lw=0.6)
    for xi, yi, name in zip(x, y, g["group"], strict=True):
        ax.annotate(name, (xi, yi), xytext=(4, 3), textcoords="offset points",
                    fontsize="x-small")
    ax.set_xlabel("predicted effect, mean in the fifth (percentage points)")
    ax.set_ylabel("estimated effect in the fifth (95% interval)")
    if own:
        fig.tight_layout()
    return fig


def groups_in_words(res: Heterogeneity, family: pd.DataFrame, label) -> pd.DataFrame:
    """The group effects of one instrument for readers: effect and difference
    from the other starters in percentage points with 95% intervals, the raw
    and adjusted p-values of the difference, and the word for it."""
    fam = family[(family["instrument"] == res.instrument) & (family["outcome"] == res.outcome)]
    fam = fam.set_index("contrast")
    rows = []
    for r in res.groups.itertuples(index=False):
        if r.estimate is None or not math.isfinite(r.estimate):
            continue
        key = f"{r.group}={r.level} vs others"
        same = [k for k in fam.index if k.startswith(f"{r.group}=")]
        # two levels: one comparison, tested once (under the first level)
        key = key if key in fam.index else (same[0] if len(same) == 1 else None)
        f = fam.loc[key] if key is not None else None
        rows.append({
            "characteristic": label(r.group), "group": label(r.level),
            "effect (pp)": _pp_interval(r.estimate, r.std_error),
            "difference from other starters (pp)": _pp_interval(r.difference, r.difference_se),
            "p-value": _p(None if f is None else f["pvalue"]),
            "Holm": _p(None if f is None else f["pvalue_holm"]),
            "Romano-Wolf": _p(None if f is None else f["pvalue_romano_wolf"]),
            "does the group differ from the other starters?": "–" if f is None else
            certainty(f["pvalue"], f["pvalue_romano_wolf"]),
        })
    return pd.DataFrame(rows).set_index(["characteristic", "group"]) if rows else pd.DataFrame()


def gates_shown(res: Heterogeneity, min_treated: int) -> bool:
    """Whether every fifth holds at least ``min_treated`` starters (else no
    fifth is shown: an effect of fewer starters is not published)."""
    return bool(len(res.gates)) and bool((res.gates["n_treated"] >= min_treated).all())


def gates_table(res: Heterogeneity, min_treated: int = 0) -> pd.DataFrame:
    """GATES per fifth (predicted and estimated effect, percentage points)
    when every fifth holds ``min_treated`` starters, and the BLP slope and
    the test of all groups: no counts. The top-minus-bottom difference is not
    shown: the fifths are sorted by predictions built from the other folds'
    outcomes, so its interval is too narrow, as the pooled slope's is."""
    rows = [{"fifth of the predicted effect": r.group,
             "predicted (pp)": round(100 * r.predicted, 1),
             "estimated (pp)": _pp_interval(r.estimate, r.std_error)}
            for r in res.gates.itertuples(index=False)] if gates_shown(res, min_treated) else []
    b = res.blp
    rows.append({"fifth of the predicted effect":
                 "BLP slope (1: predictions calibrated, 0: no information, below 0: wrong "
                 "way; median over the folds, p-value by the split rule)",
                 "predicted (pp)": None,
                 "estimated (pp)": f"{b['beta2_split']:.2f} (p = {b['beta2_pvalue_split']:.3f})"})
    rows.append({"fifth of the predicted effect":
                 "all pre-registered groups at once (Wald test, degrees of freedom)",
                 "predicted (pp)": None,
                 "estimated (pp)": f"{b['groups_wald']:.1f} on {b['groups_df']} "
                 f"(p = {b['groups_pvalue']:.3f})" if b.get("groups_df") else "–"})
    return pd.DataFrame(rows).set_index("fifth of the predicted effect")


def _pp_interval(value: Any, se: Any) -> str:
    if value is None or se is None or not math.isfinite(value):
        return "–"
    return (f"{100 * value:+.1f} ({100 * (value - 1.96 * se):+.1f} to "
            f"{100 * (value + 1.96 * se):+.1f})")


def _p_is(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _p(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"

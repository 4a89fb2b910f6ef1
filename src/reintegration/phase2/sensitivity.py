r"""How strong would an unobserved confounder have to be? Sensitivity of
selection on observables, benchmarked against the observed covariates.

Selection on observables assumes that, at each elapsed month, who starts an
instrument depends on nothing that also drives the outcome beyond the
covariates. This module asks what happens when that fails, with the omitted
variable bias framework of Cinelli and Hazlett (2020, "Making sense of
sensitivity: extending omitted variable bias", JRSS-B 82(1), 39-67), on the
linear version of the comparison Phase 2 runs: on the stacked risk sets, the
outcome regressed on the start indicator, the covariates and one indicator
per elapsed month (regression adjustment; the headline doubly robust
estimate is close to it, and the table shows both).

An unobserved confounder :math:`Z` is described by two partial :math:`R^2`:
:math:`R^2_{D\sim Z|X}`, the share of the residual variation in starting that
it explains, and :math:`R^2_{Y\sim Z|D,X}`, the share of the residual
variation in the outcome. Its bias is at most

.. math:: |\text{bias}| = \mathrm{se}\,\sqrt{df \cdot
   \frac{R^2_{Y\sim Z|D,X}\, R^2_{D\sim Z|X}}{1 - R^2_{D\sim Z|X}}}

(Cinelli and Hazlett 2020, eq. 11; exact for the linear regression). The
benchmarks translate those shares into something a reader can judge: a
confounder *k* times as strong as an observed covariate :math:`X_j` (as
strong in explaining starts and the outcome, beyond the other covariates)
has the partial :math:`R^2` of their section 6.1 and footnote 10
(:func:`partial_r2_bound`). The table then reads "a hidden factor as strong
as prior employment would move the estimate to between a and b". Both
directions are shown: the framework bounds the size of the bias, not its
sign.

On the synthetic data the generator's unobserved employability factor is
such a confounder; :func:`at_confounder` gives its true partial :math:`R^2`
(by adding it to both regressions), so the validation can check that the
bounds at that strength contain the true effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

#: the stacked risk sets' columns (:func:`reintegration.designs.selection.selection_data`)
TREATED, MONTH = "treated", "elapsed_month"


def partial_r2(t: float, dof: float) -> float:
    """Partial :math:`R^2` of a regressor from its t statistic: t^2 / (t^2 + df)."""
    return float(t * t / (t * t + dof))


def bias_bound(se: float, dof: float, r2dz: float, r2yz: float) -> float:
    """The largest absolute bias of a confounder with these partial R^2."""
    if not 0 <= r2dz < 1 or not 0 <= r2yz <= 1:
        return math.nan
    return float(se * math.sqrt(dof * r2yz * r2dz / (1 - r2dz)))


def adjusted_se(se: float, dof: float, r2dz: float, r2yz: float) -> float:
    """The standard error had the confounder been in the regression
    (Cinelli and Hazlett 2020, eq. 12)."""
    if not 0 <= r2dz < 1 or not 0 <= r2yz <= 1 or dof <= 1:
        return math.nan
    return float(se * math.sqrt((1 - r2yz) / (1 - r2dz) * dof / (dof - 1)))


def partial_r2_bound(r2dxj: float, r2yxj: float, kd: float = 1.0,
                     ky: float | None = None) -> tuple[float, float]:
    """Partial R^2 of a confounder ``kd`` times as strong as covariate
    :math:`X_j` in explaining the treatment and ``ky`` times in explaining
    the outcome (given :math:`X_j`'s own partial R^2 ``r2dxj`` with the
    treatment and ``r2yxj`` with the outcome): (r2dz, r2yz), NaN where the
    multiple is impossible, r2yz capped at 1."""
    ky = kd if ky is None else ky
    r2dz = kd * r2dxj / (1 - r2dxj)
    if not r2dz < 1:
        return math.nan, math.nan
    r2zxj = kd * r2dxj**2 / ((1 - kd * r2dxj) * (1 - r2dxj))
    if not 0 <= r2zxj < 1:
        return math.nan, math.nan
    r2yz = ((math.sqrt(ky) + math.sqrt(r2zxj)) / math.sqrt(1 - r2zxj)) ** 2 * (
        r2yxj / (1 - r2yxj))
    return float(r2dz), float(min(r2yz, 1.0))


# ---------------------------------------------------------------------------
# the linear comparison
# ---------------------------------------------------------------------------


@dataclass
class LinearFit:
    """OLS with classical standard errors (partial R^2 are shares of
    variance: Cinelli and Hazlett's statistics use the classical t)."""

    names: list[str]
    coef: np.ndarray
    se: np.ndarray
    dof: int

    def t(self, name: str) -> float:
        i = self.names.index(name)
        return float(self.coef[i] / self.se[i])


def ols(y: np.ndarray, X: np.ndarray, names: Sequence[str]) -> LinearFit:
    q, r = np.linalg.qr(X)
    coef = np.linalg.solve(r, q.T @ y)
    resid = y - X @ coef
    dof = X.shape[0] - X.shape[1]
    sigma2 = float(resid @ resid) / dof
    rinv = np.linalg.inv(r)
    se = np.sqrt(sigma2 * np.sum(rinv**2, axis=1))
    return LinearFit(list(names), coef, se, dof)


def paired_fits(y: np.ndarray, d: np.ndarray, X: np.ndarray, names: Sequence[str]
                ) -> tuple[LinearFit, LinearFit]:
    """``ols(y, [d, X])`` and ``ols(d, X)`` from one QR decomposition of
    :math:`[X, d, y]` (only R is formed): the leading block of R is that of
    X, its next column holds :math:`Q_X' d` and the residual norm of d, and
    the last column the same for y on :math:`[X, d]`. Equal to the two
    separate fits up to rounding."""
    n, k = X.shape
    if n < k + 2:
        return ols(y, np.column_stack([d, X]), [TREATED, *names]), ols(d, X, names)
    r = np.linalg.qr(np.column_stack([X, d, y]), mode="r")
    coef_d, se_d, dof_d = _fit_from_r(r, k, n)
    coef_y, se_y, dof_y = _fit_from_r(r, k + 1, n)
    order = [k, *range(k)]  # the treatment first, as in ols(y, [d, X])
    return (LinearFit([TREATED, *names], coef_y[order], se_y[order], dof_y),
            LinearFit(list(names), coef_d, se_d, dof_d))


def _fit_from_r(r: np.ndarray, m: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients and standard errors of the OLS fit of column m of a matrix
    on its columns before m, from the R of its QR decomposition (n rows)."""
    rm = r[:m, :m]
    coef = np.linalg.solve(rm, r[:m, m])
    dof = n - m
    rinv = np.linalg.inv(rm)
    return coef, np.sqrt(r[m, m] ** 2 / dof * np.sum(rinv**2, axis=1)), dof


def _design(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Elapsed-month indicators (the first is the constant) and covariates,
    leaving out covariates without variation or that repeat others. The
    matrix is written column by column (column-major, as ``numpy.column_stack``
    of the indicators and the covariates' values gives it)."""
    from ..designs.selection import independent_arrays

    month = data[MONTH].astype(int).to_numpy()
    levels = np.unique(month)  # the columns of pd.get_dummies, in its order
    cols = [c for c in covariates if c in data and data[c].astype(float).std() > 0]
    values = [data[c].astype(float).to_numpy() for c in cols]
    indicators = [month == u for u in levels]
    first = len(levels) - 1  # the positions of the covariates among the arrays checked
    kept = [j - first for j in independent_arrays(len(data), [*indicators[1:], *values])
            if j >= first]
    columns = [*indicators, *(values[j] for j in kept)]
    X = np.empty((len(data), len(columns)), order="F")
    for j, column in enumerate(columns):
        X[:, j] = column
    return X, [*(f"month_{u}" for u in levels), *(cols[j] for j in kept)]


def _rows_with(data: pd.DataFrame, outcome: str, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of ``data`` with ``outcome``, only the ``columns`` of them that
    ``data`` has (the rows of a stacked risk set hold many more)."""
    used = [c for c in dict.fromkeys(columns) if c in data.columns]
    return data.loc[data[outcome].notna().to_numpy(), used]


@dataclass
class Sensitivity:
    """The linear estimate, its robustness values, and the benchmark bounds."""

    outcome: str
    estimate: float
    se: float
    dof: int
    robustness_value: float
    robustness_value_alpha: float
    benchmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    contour_limit: float = 0.0

    def interval_at(self, r2dz: float, r2yz: float, level: float = 0.95
                    ) -> tuple[float, float]:
        """The widest interval a confounder of this strength allows: the
        estimate moved by the bias bound either way, with the adjusted
        standard error's margin."""
        bias = bias_bound(self.se, self.dof, r2dz, r2yz)
        z = float(stats.t.isf((1 - level) / 2, max(self.dof - 1, 1)))
        margin = z * adjusted_se(self.se, self.dof, r2dz, r2yz)
        return self.estimate - bias - margin, self.estimate + bias + margin


def robustness_value(t: float, dof: float, alpha: float | None = None) -> float:
    """Cinelli and Hazlett's robustness value (see
    :func:`reintegration.designs.selection.robustness_value`)."""
    from ..designs.selection import robustness_value as rv

    return rv(t, dof, alpha)


def analyse(data: pd.DataFrame, outcome: str, covariates: Sequence[str],
            benchmarks: Sequence[str], multiples: Sequence[float] = (1, 2, 3), *,
            design: tuple[np.ndarray, list[str]] | None = None) -> Sensitivity:
    """The sensitivity analysis of one selection-on-observables comparison
    (``data``: its stacked risk sets) for ``outcome``, benchmarked against
    each covariate in ``benchmarks`` at each multiple of its strength.
    ``design``: :func:`_design` of the rows with the outcome, when the caller
    has it already."""
    sample = _rows_with(data, outcome, [TREATED, outcome, *(
        (MONTH, *covariates) if design is None else ())])
    X, names = _design(sample, covariates) if design is None else design
    d = sample[TREATED].to_numpy(dtype=float)
    y = sample[outcome].to_numpy(dtype=float)
    fit_y, fit_d = paired_fits(y, d, X, names)
    t = fit_y.t(TREATED)
    est, se, dof = float(fit_y.coef[0]), float(fit_y.se[0]), fit_y.dof
    rows = []
    for cov in benchmarks:
        if cov not in names:
            continue
        r2dxj, r2yxj = partial_r2(fit_d.t(cov), fit_d.dof), partial_r2(fit_y.t(cov), fit_y.dof)
        for k in multiples:
            r2dz, r2yz = partial_r2_bound(r2dxj, r2yxj, kd=k)
            bias = bias_bound(se, dof, r2dz, r2yz)
            rows.append({"covariate": cov, "multiple": k, "r2_treatment": r2dz,
                         "r2_outcome": r2yz, "bias_bound": bias,
                         "estimate_low": est - bias, "estimate_high": est + bias})
    sens = Sensitivity(outcome=outcome, estimate=est, se=se, dof=dof,
                       robustness_value=robustness_value(t, dof),
                       robustness_value_alpha=robustness_value(t, dof, alpha=0.05),
                       benchmarks=pd.DataFrame(rows, columns=[
                           "covariate", "multiple", "r2_treatment", "r2_outcome",
                           "bias_bound", "estimate_low", "estimate_high"]))
    finite = sens.benchmarks[["r2_treatment", "r2_outcome"]].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    sens.contour_limit = float(min(max([0.05, sens.robustness_value * 1.5,
                                        *(finite * 1.2 if finite.size else [])]), 0.99))
    return sens


def at_confounder(data: pd.DataFrame, outcome: str, covariates: Sequence[str],
                  confounder: str, *, design: tuple[np.ndarray, list[str]] | None = None
                  ) -> tuple[float, float]:
    """The true partial R^2 of a known confounder (a column of ``data``) with
    the start indicator and with the outcome, given the covariates and the
    elapsed months: (r2dz, r2yz). Only possible where the confounder is
    known, as in the synthetic world. ``design`` as in :func:`analyse`."""
    sample = _rows_with(data, outcome, [TREATED, outcome, confounder, *(
        (MONTH, *covariates) if design is None else ())])
    X, names = _design(sample, covariates) if design is None else design
    z = sample[confounder].to_numpy(dtype=float)
    d = sample[TREATED].to_numpy(dtype=float)
    y = sample[outcome].to_numpy(dtype=float)
    n, k = X.shape
    if n < k + 3:
        fit_d = ols(d, np.column_stack([z, X]), [confounder, *names])
        fit_y = ols(y, np.column_stack([d, z, X]), [TREATED, confounder, *names])
        return (partial_r2(fit_d.t(confounder), fit_d.dof),
                partial_r2(fit_y.t(confounder), fit_y.dof))
    # both fits from one QR decomposition of [X, z, d, y] (only R is formed):
    # d on [X, z] is column k + 1 on the columns before it, y on [X, z, d] column k + 2
    r = np.linalg.qr(np.column_stack([X, z, d, y]), mode="r")
    t = []
    for m in (k + 1, k + 2):
        coef, se, dof = _fit_from_r(r, m, n)
        t.append((float(coef[k] / se[k]), dof))
    return partial_r2(*t[0]), partial_r2(*t[1])


def contour_figure(sens: Sensitivity, *, labels: dict[str, str] | None = None,
                   ax=None, title: str | None = None):
    """Contours of the estimate after removing a confounder's bias (toward
    zero: the direction that matters for a positive or negative finding),
    over its two partial R^2, with each benchmark at 1x, 2x and 3x its
    strength (one line per covariate) and the zero line dashed red."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
    else:
        fig = ax.figure
    bm = sens.benchmarks.dropna(subset=["r2_treatment", "r2_outcome"])
    rv = sens.robustness_value if math.isfinite(sens.robustness_value) else 0.0
    xlim = min(max(0.002, 1.3 * rv, *(1.3 * bm["r2_treatment"])), 0.99)
    ylim = min(max(0.01, 1.3 * rv, *(1.3 * bm["r2_outcome"])), 0.99)
    rd, ry = np.meshgrid(np.linspace(0, xlim, 81), np.linspace(0, ylim, 81))
    bias = sens.se * np.sqrt(sens.dof * ry * rd / np.clip(1 - rd, 1e-9, None))
    adjusted = 100 * (sens.estimate - np.sign(sens.estimate) * bias)
    cs = ax.contour(rd, ry, adjusted, levels=7, colors="0.45", linewidths=0.7)
    ax.clabel(cs, fmt="%.0f pp", fontsize="x-small", inline_spacing=2)
    if adjusted.min() < 0 < adjusted.max():
        ax.contour(rd, ry, adjusted, levels=[0], colors="#b2182b", linestyles="--",
                   linewidths=1.5)
    for cov, g in bm.groupby("covariate", sort=False):
        g = g.sort_values("multiple")
        ax.plot(g["r2_treatment"], g["r2_outcome"], "o-", ms=3.5, lw=0.8, color="#2166ac")
        last = g.iloc[-1]
        ax.annotate(f"{labels.get(cov, cov)} ({', '.join(f'{m:g}x' for m in g['multiple'])})",
                    (last["r2_treatment"], last["r2_outcome"]), fontsize="x-small",
                    xytext=(4, 0), textcoords="offset points", color="#2166ac")
    ax.set_xlim(0, xlim)
    ax.set_ylim(0, ylim)
    ax.set_xlabel("hidden factor: share of the remaining variation in starting")
    ax.set_ylabel("... and in the outcome")
    ax.set_title(title or f"estimate {100 * sens.estimate:+.1f} pp; contours: the estimate "
                 "without the hidden factor", fontsize="small")
    if own:
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Phase 2: every selection-on-observables sub-study of a city
# ---------------------------------------------------------------------------

TABLE_COLUMNS = ("sub-study", "outcome", "estimate", "std_error", "robustness_value",
                 "robustness_value_alpha", "covariate", "multiple", "r2_treatment",
                 "r2_outcome", "estimate_low", "estimate_high")


def city_analyses(inputs, substudies, settings) -> tuple[pd.DataFrame, dict[str, Sensitivity]]:
    """The sensitivity analysis of every selection-on-observables sub-study
    that Phase 1 let run (``substudies``: the records of feasibility.json),
    for each outcome of ``settings["sensitivity"]``: one table row per
    benchmark and multiple (no counts), and the analyses by
    ``"<sub-study id>|<outcome>"`` for the figures."""
    from .. import designs

    cfg = settings["sensitivity"]
    rows, found = [], {}
    for sub in substudies:
        design = designs.get(sub["design"])
        if not design.observational or sub["decision"] not in ("go", "conditional"):
            continue
        data = design.prepare(inputs, sub["instrument"])
        covariates = [*settings["covariates"],
                      *settings["selection_on_observables"].get("extra_covariates", [])]
        for outcome in cfg["outcomes"]:
            sens = analyse(data, outcome, covariates, cfg["benchmarks"], cfg["multiples"])
            found[f"{sub['id']}|{outcome}"] = sens
            for b in sens.benchmarks.itertuples(index=False):
                rows.append({"sub-study": sub["id"], "outcome": outcome,
                             "estimate": sens.estimate, "std_error": sens.se,
                             "robustness_value": sens.robustness_value,
                             "robustness_value_alpha": sens.robustness_value_alpha,
                             "covariate": b.covariate, "multiple": b.multiple,
                             "r2_treatment": b.r2_treatment, "r2_outcome": b.r2_outcome,
                             "estimate_low": b.estimate_low, "estimate_high": b.estimate_high})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), found


def words(table: pd.DataFrame, label) -> pd.DataFrame:
    """One row per sub-study and outcome for readers: the linear estimate and,
    per benchmark at its own strength (1x), where a hidden factor that strong
    could move it, in percentage points."""
    one = table[table["multiple"] == 1]
    out = []
    for (sub, outcome), g in one.groupby(["sub-study", "outcome"], sort=False):
        row = {"sub-study": sub, "outcome": label(outcome),
               "estimate (linear, pp)": f"{100 * g['estimate'].iloc[0]:+.1f}",
               "robustness value": f"{100 * g['robustness_value'].iloc[0]:.1f}%"}
        for b in g.itertuples(index=False):
            row[f"as strong as {label(b.covariate)}"] = (
                f"{100 * b.estimate_low:+.1f} to {100 * b.estimate_high:+.1f}"
                if math.isfinite(b.estimate_low) else "not possible")
        out.append(row)
    return pd.DataFrame(out)


def at_truth(inputs, po: pd.DataFrame, substudies, settings, truth) -> pd.DataFrame:
    """Validation on synthetic data: for every selection-on-observables
    sub-study, the partial R^2 of the generator's unobserved employability
    factor (the confounder the design cannot see), the bounds a confounder of
    exactly that strength allows, and whether they contain the true effect
    (``truth``: a function (instrument, outcome) -> the true value of the
    estimand); and whether any published benchmark range at the largest
    multiple contains it (the yardsticks a reader sees), with the largest
    partial R^2 of those benchmarks with starting and with the outcome (to set
    beside the hidden factor's)."""
    from .. import designs
    from ..designs.base import Inputs
    from .estimates import aligned_truth

    eta = aligned_truth(inputs.persons, po, ["eta"])["eta"].to_numpy()
    with_eta = Inputs(persons=inputs.persons.assign(eta=eta), city=inputs.city,
                      effects=inputs.effects, person_months=inputs.person_months)
    cfg = settings["sensitivity"]
    covariates = list(settings["covariates"])
    rows = []
    for sub in substudies:
        design = designs.get(sub["design"])
        if not design.observational or sub["decision"] not in ("go", "conditional"):
            continue
        data = design.prepare(with_eta, sub["instrument"])
        for outcome in cfg["outcomes"]:
            # one design matrix for both fits (the confounder is not in it)
            design = _design(_rows_with(data, outcome, [MONTH, *covariates]), covariates)
            sens = analyse(data, outcome, covariates, cfg["benchmarks"], cfg["multiples"],
                           design=design)
            r2dz, r2yz = at_confounder(data, outcome, covariates, "eta", design=design)
            low, high = sens.interval_at(r2dz, r2yz)
            true = truth(sub["instrument"], outcome)
            top = sens.benchmarks[sens.benchmarks["multiple"] == max(cfg["multiples"])]
            in_benchmark = bool(((top["estimate_low"] <= true)
                                 & (true <= top["estimate_high"])).any()) \
                if math.isfinite(true) else None
            rows.append({"sub-study": sub["id"], "outcome": outcome,
                         "estimate": sens.estimate, "r2_treatment": r2dz, "r2_outcome": r2yz,
                         "bound_low": low, "bound_high": high, "truth": true,
                         "contains_truth": bool(low <= true <= high)
                         if math.isfinite(true) else None,
                         "a benchmark range contains the truth": in_benchmark,
                         "benchmark_r2_treatment": float(top["r2_treatment"].max()),
                         "benchmark_r2_outcome": float(top["r2_outcome"].max())})
    return pd.DataFrame(rows, columns=["sub-study", "outcome", "estimate", "r2_treatment",
                                       "r2_outcome", "bound_low", "bound_high", "truth",
                                       "contains_truth",
                                       "a benchmark range contains the truth",
                                       "benchmark_r2_treatment", "benchmark_r2_outcome"])


def plain_words(table: pd.DataFrame, label) -> str:
    """A few sentences per sub-study for readers without statistics: how
    strong a hidden factor would have to be, and how weak the observed
    yardsticks are (from :func:`city_analyses`' table)."""
    one = table[table["multiple"] == 1]
    out = []
    for (sub, outcome), g in one.groupby(["sub-study", "outcome"], sort=False):
        first = g.iloc[0]
        strongest = g.loc[(g["r2_treatment"] + g["r2_outcome"]).idxmax()]
        rv, est = float(first["robustness_value"]), float(first["estimate"])
        text = [f"**{label(sub)}** ({label(outcome)}, {100 * est:+.1f} percentage points):"]
        if float(first["robustness_value_alpha"]) <= 0:
            text.append("even without any hidden factor, the estimate is not clearly "
                        "different from zero (its interval includes zero).")
        text.append(f"A hidden factor that explains {100 * rv:.2f}% of what the "
                    "characteristics leave unexplained, both in who starts and in who "
                    "finds work, would erase it.")
        text.append(f"The strongest observed characteristic, {label(strongest['covariate'])}, "
                    f"explains {100 * strongest['r2_treatment']:.2f}% of who starts and "
                    f"{100 * strongest['r2_outcome']:.1f}% of the outcome. These are weak "
                    "yardsticks: what a case manager sees in a client, or a client's "
                    "motivation, can matter far more, so this check cannot show that the "
                    "estimate is safe; it shows how little it would take.")
        out.append(" ".join(text))
    return "\n\n".join(out)


#: the table's columns for readers
WORDS = {"estimate": "linear estimate", "std_error": "standard error",
         "robustness_value": "robustness value",
         "robustness_value_alpha": "robustness value (to reach the interval's edge)",
         "r2_treatment": "share of starting explained",
         "r2_outcome": "share of the outcome explained",
         "estimate_low": "lowest estimate", "estimate_high": "highest estimate"}


def table_in_words(table: pd.DataFrame, label) -> pd.DataFrame:
    """The table of :func:`city_analyses` for readers (and as the data of the
    contour figures): sub-study, outcome, benchmark and multiple in words as
    the index, the columns named in words."""
    out = table.assign(**{
        "sub-study": table["sub-study"].map(label),
        "outcome": table["outcome"].map(label),
        "as strong as": [f"{m:g} x {label(c)}" for c, m in
                         zip(table["covariate"], table["multiple"], strict=True)]})
    out = out.drop(columns=["covariate", "multiple"]).rename(columns=WORDS)
    return out.set_index(["sub-study", "outcome", "as strong as"])

"""Results objects shared by the designs.

Every estimator in :mod:`reintegration.effects` returns an
:class:`EffectResult` (or a subclass that adds what its design needs): one
causal parameter with its standard error, a plain-words statement of the
estimand, the number of observations and the design's diagnostics.
Confidence intervals and p-values use the normal approximation, for every
design, so that intervals of different designs are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._data import json_safe

__all__ = ["EffectResult", "EventStudyResult", "IVResult", "SelectionResult"]


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


@dataclass(kw_only=True, repr=False)
class EffectResult:
    """The estimate of one causal parameter.

    Attributes
    ----------
    estimate : float
        The point estimate of the estimand.
    std_error : float
        Its standard error (robust or cluster-robust, see ``cov_type``).
    n : int
        Observations used (rows of the estimation sample).
    design : str
        ``"selection_on_observables"``, ``"event_study"`` or
        ``"instrumental_variable"``.
    estimand : str
        The parameter, in plain words.
    method : str
        The estimator within the design (for example ``"aipw"``).
    outcome, treatment : str
        The column names the estimate is about.
    cov_type : str
        ``"robust"`` or ``"clustered"``.
    n_clusters : int or None
        Number of clusters when ``cov_type`` is ``"clustered"``.
    diagnostics : dict
        Design-specific checks (JSON-safe scalars and small lists), also
        returned by :meth:`to_record`.
    """

    estimate: float
    std_error: float
    n: int
    design: str
    estimand: str
    method: str
    outcome: str
    treatment: str
    cov_type: str
    n_clusters: int | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    # -- inference ---------------------------------------------------------
    def conf_int(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval ``(low, high)``."""
        half = _z(level) * self.std_error
        return (self.estimate - half, self.estimate + half)

    @property
    def tstat(self) -> float:
        """The estimate divided by its standard error."""
        return self.estimate / self.std_error if self.std_error > 0 else math.nan

    @property
    def pvalue(self) -> float:
        """Two-sided p-value of the null that the estimand is zero (normal)."""
        t = self.tstat
        return float(2 * stats.norm.sf(abs(t))) if np.isfinite(t) else math.nan

    # linearmodels-style accessors, indexed by the treatment's name
    @property
    def params(self) -> pd.Series:
        return pd.Series({self.treatment: self.estimate}, name="parameter")

    @property
    def std_errors(self) -> pd.Series:
        return pd.Series({self.treatment: self.std_error}, name="std_error")

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series({self.treatment: self.pvalue}, name="pvalue")

    @property
    def nobs(self) -> int:
        return self.n

    # -- presentation --------------------------------------------------------
    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One tidy row per reported parameter: estimate, std_error,
        ci_low, ci_high, pvalue and n. Subclasses add rows (event times,
        first stage, reduced form)."""
        low, high = self.conf_int(level)
        row = {
            "estimate": self.estimate,
            "std_error": self.std_error,
            "ci_low": low,
            "ci_high": high,
            "pvalue": self.pvalue,
            "n": self.n,
        }
        return pd.DataFrame([row], index=pd.Index([self._label()], name="parameter"))

    def _label(self) -> str:
        return f"{self.method}: {self.treatment} -> {self.outcome}"

    def _header(self) -> list[str]:
        lines = [
            f"Design:    {self.design} ({self.method})",
            f"Estimand:  {self.estimand}",
            f"Outcome:   {self.outcome}    Treatment: {self.treatment}",
            f"N:         {self.n}    Covariance: {self.cov_type}"
            + (f" ({self.n_clusters} clusters)" if self.n_clusters else ""),
        ]
        return lines

    def __str__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            table = self.summary().to_string(float_format=lambda v: f"{v:.4f}")
        return "\n".join([*self._header(), "", table])

    def __repr__(self) -> str:
        low, high = self.conf_int()
        return (
            f"<{type(self).__name__} {self.design}/{self.method}: "
            f"{self.estimate:.4f} (se {self.std_error:.4f}; 95% CI {low:.4f} to {high:.4f}), "
            f"n={self.n}>"
        )

    def to_record(self, level: float = 0.95) -> dict[str, Any]:
        """A JSON-safe dict: estimate, std_error, ci_low, ci_high, level, n,
        design, method, estimand, outcome, treatment, cov_type, n_clusters,
        pvalue and the design's diagnostics (under ``"diagnostics"``)."""
        low, high = self.conf_int(level)
        record = {
            "estimate": self.estimate,
            "std_error": self.std_error,
            "ci_low": low,
            "ci_high": high,
            "level": level,
            "pvalue": self.pvalue,
            "n": self.n,
            "design": self.design,
            "method": self.method,
            "estimand": self.estimand,
            "outcome": self.outcome,
            "treatment": self.treatment,
            "cov_type": self.cov_type,
            "n_clusters": self.n_clusters,
            "diagnostics": self.diagnostics,
        }
        return json_safe(record)  # type: ignore[return-value]


@dataclass(kw_only=True, repr=False)
class SelectionResult(EffectResult):
    """Result of :func:`~reintegration.effects.selection_on_observables`.

    Attributes
    ----------
    n_treated, n_control : int
        Treated and control observations in the estimation sample.
    balance : pandas.DataFrame
        Standardised mean differences of each covariate between treated and
        controls, before and (for ``ipw``/``aipw``) after weighting the
        controls with the ATT weights ``p/(1-p)``.
    strata : pandas.DataFrame or None
        Per-stratum estimates, treated and control counts and the weight of
        each stratum, when ``strata`` was given.
    influence : numpy.ndarray
        Influence values in sum form (the estimate minus its limit is about
        their sum), aligned with the rows of the estimation sample; used for
        the standard error and available for joint inference.
    sample_index : pandas.Index
        Index labels (in ``data``) of the rows of the estimation sample.
    """

    n_treated: int = 0
    n_control: int = 0
    balance: pd.DataFrame | None = None
    strata: pd.DataFrame | None = None
    influence: np.ndarray | None = None
    sample_index: pd.Index | None = None

    def _header(self) -> list[str]:
        return [
            *super()._header(),
            f"Treated:   {self.n_treated}    Controls: {self.n_control}",
        ]


@dataclass(kw_only=True, repr=False)
class EventStudyResult(EffectResult):
    """Result of :func:`~reintegration.effects.event_study`.

    The headline ``estimate`` is the aggregated post-period effect; the
    event-time path is in ``event_time``.

    Attributes
    ----------
    event_time : pandas.DataFrame
        One row per event time ``l`` (the reference period included with
        estimate 0 and no standard error): estimate, std_error, ci_low,
        ci_high, n_obs (treated observations at ``l``) and n_cohorts.
    cohort_effects : pandas.DataFrame
        The cohort-by-event-time coefficients ``delta_{e,l}`` with standard
        errors and their aggregation weights.
    event_time_cov : pandas.DataFrame
        Covariance matrix of the event-time estimates (reference excluded).
    pretrend : dict
        Joint Wald test that all pre-period event-time effects are zero:
        ``stat`` (chi2), ``df``, ``pvalue`` (chi2), and with clustered
        standard errors ``pvalue_f`` (the statistic over df against
        F(df, G - 1)) and ``pvalue_wild`` (wild cluster bootstrap; NaN when
        not run). With few clusters the chi2 p-value is too small; read
        :attr:`pretrend_pvalue`.
    model_results : reintegration.effects._twfe.PanelFit
        The fitted interacted two-way fixed-effects regression (``params``,
        ``cov``, ``std_errors``, ``nobs``, ``df_resid`` as linearmodels'
        ``PanelOLS`` reports them, and the regression's data).
    randomization : RandomizationTest or None
        With ``permutations``: the randomisation test over re-assignments of
        the adoption dates. It then supplies :meth:`conf_int`,
        :attr:`pvalue` and :attr:`pretrend_pvalue`; ``std_error`` is the one
        the interval implies (half its width over 1.96), the cluster-robust
        one is ``diagnostics["std_error_clustered"]`` and the normal interval
        from it ``diagnostics["ci_clustered"]``.
    """

    event_time: pd.DataFrame | None = None
    cohort_effects: pd.DataFrame | None = None
    event_time_cov: pd.DataFrame | None = None
    pretrend: dict[str, float] = field(default_factory=dict)
    reference: int = -1
    binned: bool = False
    model_results: Any = None
    randomization: Any = None

    def conf_int(self, level: float = 0.95) -> tuple[float, float]:
        """The randomisation interval when the test was run (test inversion
        under a constant effect), else the normal interval."""
        if self.randomization is not None:
            return self.randomization.conf_int(level)
        return super().conf_int(level)

    @property
    def pvalue(self) -> float:
        """Randomisation p-value of no effect when the test was run, else
        the normal one."""
        if self.randomization is not None:
            return self.randomization.pvalue(0.0)
        return super().pvalue

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """The aggregated post-period effect, then one row per event time."""
        head = super().summary(level)
        head.index = pd.Index(["post (aggregated)"], name="parameter")
        et = self.event_time_table(level).drop(columns=["n_cohorts"])
        et = et.rename(columns={"n_obs": "n"})
        et.index = pd.Index([f"event time {int(k)}" for k in et.index], name="parameter")
        et.insert(4, "pvalue", 2 * stats.norm.sf(np.abs(et["estimate"] / et["std_error"])))
        return pd.concat([head, et])

    @property
    def pretrend_pvalue(self) -> float:
        """The most reliable pre-trend p-value available: the randomisation
        one, else the wild cluster bootstrap one, else the chi2 one."""
        for key in ("pvalue_randomization", "pvalue_wild", "pvalue"):
            value = self.pretrend.get(key, math.nan)
            if np.isfinite(value):
                return float(value)
        return math.nan

    def event_time_table(self, level: float = 0.95) -> pd.DataFrame:
        """Event-time estimates with intervals at ``level``."""
        if self.event_time is None:
            raise ValueError("no event-time estimates")
        et = self.event_time.copy()
        half = _z(level) * et["std_error"]
        et["ci_low"] = et["estimate"] - half
        et["ci_high"] = et["estimate"] + half
        ref = et.index == self.reference
        et.loc[ref, ["ci_low", "ci_high"]] = 0.0
        return et

    def _header(self) -> list[str]:
        p = self.pretrend
        line = (
            f"Pre-trend: chi2({p.get('df')}) = {p.get('stat', math.nan):.3f}, "
            f"p = {p.get('pvalue', math.nan):.3f}"
        )
        if np.isfinite(p.get("pvalue_wild", math.nan)):
            line += f", wild cluster bootstrap p = {p['pvalue_wild']:.3f}"
        if np.isfinite(p.get("pvalue_randomization", math.nan)):
            r = self.randomization
            line += (
                f", randomisation p = {p['pvalue_randomization']:.3f} "
                f"({r.n_assignments} assignments{', all' if r.exact else ''})"
            )
        return [*super()._header(), line, f"Reference event time: {self.reference}"]

    def plot(self, ax: Any = None, *, level: float = 0.95, title: str | None = None) -> Any:
        """Event-time coefficients with pointwise confidence intervals.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; a new figure is made when omitted.
        level : float
            Level of the pointwise intervals.
        title : str, optional
            Axes title.

        Returns
        -------
        matplotlib.figure.Figure
            The figure (not shown: the caller displays or registers it).
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6.4, 3.8), layout="constrained")
            ax = fig.subplots()
        else:
            fig = ax.figure
        et = self.event_time_table(level)
        x = et.index.to_numpy(dtype=float)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.axvline(self.reference + 0.5, color="0.5", linewidth=0.8, linestyle="--")
        ax.fill_between(x, et["ci_low"], et["ci_high"], color="C0", alpha=0.2, linewidth=0)
        ax.plot(x, et["estimate"], marker="o", color="C0")
        ax.plot([self.reference], [0.0], marker="o", color="white", markeredgecolor="C0")
        ax.set_xlabel("event time (periods since adoption)")
        ax.set_ylabel(f"effect on {self.outcome}")
        p = self.pretrend_pvalue
        ax.set_title(
            title or f"{self.estimate:.3f} after (se {self.std_error:.3f}); pre-trend p = {p:.2f}",
            fontsize="medium",
        )
        ticks = et.index.to_numpy()
        if len(ticks) <= 25:
            labels = [str(int(k)) for k in ticks]
            if self.binned:  # the outer event times hold the binned periods
                labels[0] = f"\u2264{labels[0]}"
                labels[-1] = f"{labels[-1]}+"
            ax.set_xticks(ticks, labels)
        return fig


@dataclass(kw_only=True, repr=False)
class IVResult(EffectResult):
    """Result of :func:`~reintegration.effects.instrumental_variable`.

    Attributes
    ----------
    first_stage : pandas.DataFrame
        Coefficients of the instruments in the first stage (treatment on
        instruments, controls and absorbed effects) with standard errors.
    first_stage_f : float
        The robust or cluster-robust first-stage F statistic: the Wald
        statistic of the excluded instruments divided by their number.
    reduced_form : pandas.DataFrame
        Coefficients of the instruments in the regression of the outcome on
        instruments, controls and absorbed effects.
    first_stage_diagnostics : pandas.DataFrame
        ``linearmodels``' own first-stage diagnostics, for comparison.
    model_results : linearmodels IVResults
        The fitted two-stage least squares model.
    """

    first_stage: pd.DataFrame | None = None
    first_stage_f: float = math.nan
    reduced_form: pd.DataFrame | None = None
    first_stage_diagnostics: pd.DataFrame | None = None
    model_results: Any = None

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """The 2SLS estimate, then the first-stage and reduced-form
        coefficients of each instrument."""
        head = super().summary(level)
        head.index = pd.Index([f"2SLS: {self.treatment}"], name="parameter")
        z = _z(level)
        rows = [head]
        for label, table in (
            ("first stage", self.first_stage),
            ("reduced form", self.reduced_form),
        ):
            if table is None:
                continue
            t = table[["estimate", "std_error"]].copy()
            t["ci_low"] = t["estimate"] - z * t["std_error"]
            t["ci_high"] = t["estimate"] + z * t["std_error"]
            t["pvalue"] = 2 * stats.norm.sf(np.abs(t["estimate"] / t["std_error"]))
            t["n"] = self.n
            t.index = pd.Index([f"{label}: {k}" for k in t.index], name="parameter")
            rows.append(t)
        return pd.concat(rows)

    def _header(self) -> list[str]:
        return [*super()._header(), f"First-stage F: {self.first_stage_f:.2f}"]

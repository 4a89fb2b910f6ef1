r"""What every design offers both phases, and the check records Phase 1 judges.

A design (:class:`Design`) is one quasi-experimental comparison. Both phases
use the same object:

``prepare(inputs, instrument)``
    the analysis data of the design for one instrument, built from the panel
    and the city's configuration (:class:`Inputs`); Phase 2 estimates on it
    and Phase 1 diagnoses it.
``diagnose(inputs, instrument, outcome, threshold)``
    the theoretical and practical checks of Phase 1 as typed :class:`Check`
    records, with their evidence, the person-level frames behind the
    registered tables and the fitted models (a :class:`Diagnosis`).
``estimate(data, outcome, settings)``
    the result Phase 2 reports (:class:`reintegration.effects.EffectResult`).
``counts(data, outcome)``
    treated, comparison and cluster counts of an estimation sample.
``truth(po, record, mask, context)``
    the true value of the estimand a record targets, from the synthetic
    world's potential outcomes (validation only).

Minimum detectable effect
-------------------------
For an estimator with standard error :math:`SE` the smallest true effect
that a two-sided test at level :math:`\alpha` detects with probability
:math:`1 - \beta` is :math:`MDE = (z_{1-\alpha/2} + z_{1-\beta})\, SE`
(2.8016 :math:`SE` at 5% and 80% power). Each design takes it from the
estimate Phase 2 will report, so that Phase 1's power statement is about the
analysis that is actually run: the standard error of that estimator on the
same data (selection on observables, case-manager IV), or the power of its
randomisation test over re-assigned roll-out dates (roll-out; see
:func:`reintegration.effects.randomization.design_power`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from ..research.panel_months import benefit_exit

VERDICTS = ("pass", "conditional", "fail", "not_assessed")
_ORDER = {"pass": 0, "not_assessed": 0, "conditional": 1, "fail": 2}


def json_value(value: Any) -> Any:
    """A value as JSON can hold it: numpy scalars as Python numbers, NaN and
    infinities as None, keys as text."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rounded(x: float | None, digits: int) -> float | None:
    """``x`` rounded, None when missing or not finite."""
    return round(float(x), digits) if x is not None and math.isfinite(float(x)) else None


@dataclass
class Check:
    """One check of one criterion: its verdict and what it says."""

    name: str
    verdict: str
    text: str
    value: Any = None
    threshold: Any = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "text": self.text,
                "value": json_value(self.value), "threshold": json_value(self.threshold)}


def criterion_verdict(checks: Sequence[Check]) -> str:
    """The worst verdict of the checks (``not_assessed`` counts as a pass: it
    only follows a check that failed)."""
    worst = max((c.verdict for c in checks), key=lambda v: _ORDER[v], default="pass")
    return "pass" if worst == "not_assessed" else worst


def levels(value: float | None, *, no_go: float, conditional: float,
           higher_is_better: bool = True) -> str:
    """pass / conditional / fail of a value against a two-level threshold."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "fail"
    if higher_is_better:
        if value < no_go:
            return "fail"
        return "conditional" if value < conditional else "pass"
    if value > no_go:
        return "fail"
    return "conditional" if value > conditional else "pass"


@dataclass
class Model:
    """A fitted regression behind a check, for the step's output register:
    the results object, the group variables of its estimation sample (one
    row per person) and the coefficients that may be shown."""

    results: Any
    groups: pd.DataFrame
    params: list[str]
    title: str


@dataclass
class Diagnosis:
    """What a design's ``diagnose`` returns for one instrument."""

    theoretical: list[Check] = field(default_factory=list)
    practical: list[Check] = field(default_factory=list)
    evidence_theoretical: dict[str, Any] = field(default_factory=dict)
    evidence_practical: dict[str, Any] = field(default_factory=dict)
    #: person-level frames behind the registered tables, by name (never written out)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)


@dataclass
class Inputs:
    """What the designs read: the panel, the city's configuration and the
    settings of both phases. The benefit exits are computed once, when a
    design first asks for them."""

    persons: pd.DataFrame
    city: dict[str, Any]
    #: config/effects.yml (:func:`reintegration.phase2.estimates.load_settings`)
    effects: dict[str, Any]
    #: config/feasibility.yml (:func:`reintegration.feasibility.load_settings`); may be
    #: empty in Phase 2
    feasibility: dict[str, Any] = field(default_factory=dict)
    person_months: pd.DataFrame | None = None
    _exits: pd.DataFrame | None = None

    def exits(self) -> pd.DataFrame:
        if self._exits is None:
            if self.person_months is None:
                raise ValueError("this design needs the panel's person_months")
            self._exits = benefit_exit(self.person_months)
        return self._exits


# ---- power -------------------------------------------------------------------


def mde_multiplier(alpha: float = 0.05, power: float = 0.80) -> float:
    r""":math:`z_{1-\alpha/2} + z_{power}`: 2.8016 for the defaults."""
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def minimum_detectable_effect(std_error: float, *, alpha: float = 0.05,
                              power: float = 0.80) -> float:
    r""":math:`(z_{1-\alpha/2} + z_{power})\, SE`; NaN without a standard error."""
    if not std_error >= 0:
        return float("nan")
    return mde_multiplier(alpha, power) * float(std_error)


def power_settings(practical: dict[str, Any]) -> dict[str, float]:
    pw = practical["power"]
    return {"alpha": float(pw["alpha"]), "power": float(pw["power"])}


def mde_check(se: float, practical: dict[str, Any], what: str) -> Check:
    """The practical check of the minimum detectable effect of an estimator
    with standard error ``se`` (:func:`mde_verdict`)."""
    return mde_verdict(minimum_detectable_effect(se, **power_settings(practical)), practical,
                       what)


def mde_verdict(mde: float, practical: dict[str, Any], what: str) -> Check:
    """The practical check of a minimum detectable effect: pass up to the
    policy-relevant effect, conditional above it, no-go above
    ``no_go_factor`` times it."""
    pw = practical["power"]
    effect = float(pw["policy_effect"])
    factor = pw.get("no_go_factor")
    limit = effect * float(factor) if factor is not None else float("inf")
    sig = f"{pct(float(pw['power']), 0)} power, {pct(float(pw['alpha']), 0)} two-sided"
    if not math.isfinite(mde):
        return Check("mde", "fail", f"no minimum detectable effect can be computed ({what})",
                     None, effect)
    mde = round(mde, 4)  # the value the records and tables keep
    verdict = levels(mde, no_go=limit, conditional=effect, higher_is_better=False)
    head = (f"minimum detectable effect {pp(mde)} ({what}; {sig}; policy-relevant: "
            f"{pp(effect)})")
    if mde > 1:
        head += (": more than 100 percentage points, so even an instrument that got every "
                 "participant into work could not be shown")
    text = {
        "pass": head,
        "conditional": f"{head}: on its own a null result would be inconclusive; report the "
                       "MDE and pool the city in the cross-city synthesis",
        "fail": f"{head}: more than {float(factor or 0):g} times the policy-relevant effect",
    }[verdict]
    return Check("mde", verdict, text, round(mde, 4),
                 {"policy_effect": effect,
                  "no_go_above": round(limit, 4) if math.isfinite(limit) else None})


def size_checks(n1: int, n0: int, practical: dict[str, Any], threshold: int,
                groups: tuple[str, str] = ("treated group", "comparison group")) -> list[Check]:
    """Group sizes against ``min_treated`` and ``min_comparison``."""
    out = []
    for name, group, n, key in (("n_treated", groups[0], n1, "min_treated"),
                                ("n_comparison", groups[1], n0, "min_comparison")):
        lim = int(practical[key])
        if n >= lim:
            out.append(Check(name, "pass", f"{count_text(n, threshold)} persons in the {group} "
                             f"(at least {lim})", n, lim))
        else:
            out.append(Check(name, "fail", f"{count_text(n, threshold)} persons in the {group}, "
                             f"fewer than the {lim} needed", n, lim))
    return out


# ---- texts for readers (no small counts) -------------------------------------


def count_text(n: int | float, threshold: int) -> str:
    """A count of persons for a reader: the number, or 'fewer than <t>'."""
    n = int(n)
    return f"{n:,}".replace(",", " ") if n >= threshold else f"fewer than {threshold}"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def pp(x: float) -> str:
    return f"{100 * x:.1f} percentage points"


def share_text(k: int, n: int, threshold: int) -> str:
    """A share k/n for a reader; written without the share when k or n - k is
    below the threshold (the share and the group size would give it away)."""
    if n <= 0 or k == 0:
        return "none"
    if k < threshold:
        return f"fewer than {threshold} persons"
    if n - k < threshold:
        return f"all but fewer than {threshold} persons"
    return pct(k / n)


# ---- the interface ---------------------------------------------------------------


class Design:
    """One design; subclasses fill in the methods (see the module text)."""

    name: ClassVar[str]
    label: ClassVar[str]
    short: ClassVar[str]
    #: the prepared data's column of the treated (or exposed) rows
    treated: ClassVar[str]
    #: the column the estimate clusters on in the group counts (None: none)
    cluster: ClassVar[str | None] = None
    #: Phase 2's estimator: (data, outcome, settings) -> result
    fit: ClassVar[Any]
    #: the design rests on observed characteristics alone (read with care)
    observational: ClassVar[bool] = False
    #: one sub-study per city, for the instrument the city's configuration names
    per_city_instrument: ClassVar[bool] = False
    #: the estimands Phase 2 reports, key -> what it is in words; the first is
    #: the headline (every subgroup), the others are reported for the whole
    #: sample beside it. A record's ``target`` names its key; :meth:`truth`
    #: returns the true value of that key's estimand.
    targets: ClassVar[dict[str, str]] = {"headline": "the design's headline estimand"}

    def instruments(self, city: dict[str, Any], instruments: Sequence[str]) -> list[str | None]:
        """The instruments this design studies in a city, in report order."""
        return list(instruments)

    def prepare(self, inputs: Inputs, instrument: str) -> pd.DataFrame:
        raise NotImplementedError

    def diagnose(self, inputs: Inputs, instrument: str | None, *, outcome: str,
                 threshold: int) -> Diagnosis:
        raise NotImplementedError

    @property
    def headline_target(self) -> str:
        return next(iter(self.targets))

    def estimate(self, data: pd.DataFrame, outcome: str, settings: dict[str, Any],
                 target: str | None = None) -> Any:
        """Phase 2's estimate on prepared data (the design's ``fit``) of the
        estimand ``target`` (None: the headline)."""
        if target not in (None, self.headline_target):
            raise KeyError(f"{self.name}: no estimand {target!r}; known: "
                           f"{', '.join(self.targets)}")
        return type(self).fit(data, outcome, settings)

    def estimate_outcomes(self, data: pd.DataFrame, outcomes: Sequence[str],
                          settings: dict[str, Any], target: str | None = None
                          ) -> dict[str, Any]:
        """:meth:`estimate` of each outcome on the same prepared data: its
        result, or the ``ValueError`` or ``LinAlgError`` it raised (Phase 2
        records the failure of that outcome alone). A design may share work
        between the outcomes here, with the same results."""
        out: dict[str, Any] = {}
        for outcome in outcomes:
            try:
                out[outcome] = self.estimate(data, outcome, settings, target=target)
            except (ValueError, np.linalg.LinAlgError) as exc:
                out[outcome] = exc
        return out

    def columns(self, data: pd.DataFrame, settings: dict[str, Any]) -> list[str] | None:
        """The columns of prepared ``data`` that :meth:`estimate` and
        :meth:`counts` read for any outcome of ``settings`` (None: all of
        them). Phase 2 copies only these into a subgroup's rows."""
        return None

    def counts(self, data: pd.DataFrame, outcome: str) -> tuple[int, int, int | None]:
        """Treated, comparison and clusters (None: not clustered) of the rows
        with the outcome."""
        has = data[outcome].notna().to_numpy()  # no copy of the other columns
        n1 = int(data[self.treated][has].sum())
        clusters = None if self.cluster is None else int(data[self.cluster][has].nunique())
        return n1, int(has.sum()) - n1, clusters

    def truth(self, po: pd.DataFrame, record: dict[str, Any], mask: np.ndarray | None,
              context: dict[str, Any]) -> float:
        """The true value of the estimand a Phase 2 record targets, from the
        synthetic world's potential outcomes ``po`` (validation only; NaN
        where the world plants none)."""
        raise NotImplementedError

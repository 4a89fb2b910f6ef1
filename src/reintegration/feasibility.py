r"""Phase 1: is each sub-study possible, allowed and wanted? A go/no-go per city.

A *sub-study* is one design applied to one instrument:

* ``selection_on_observables/<instrument>`` for every instrument of the
  taxonomy: the instrument's starters against the persons who started none,
  compared on their characteristics at inflow and their CBS history;
* ``rollout_did/<instrument>`` for the instrument a city rolled out team by
  team (``rollout:`` in its configuration); a city without a roll-out gets one
  record ``rollout_did/none``, which is no-go, so that the design is never
  silently missing;
* ``case_manager_iv/<instrument>`` for every instrument: the propensity of
  the client's case manager to start it, measured on the case manager's other
  clients (outside the client's own team-quarter cell, see
  :func:`case_manager_propensity`), as an instrument for starting it.

Each is judged on four criteria, each made of checks with thresholds from
``config/feasibility.yml``:

theoretical
    can the design show a causal effect here? Propensity overlap and the share
    trimmed (selection on observables); a roll-out, teams on each side, a pre-
    and post-period, a take-up jump and a pre-trend test (roll-out); case-
    manager identifiers, clients per case manager, cells with more than one
    case manager, the first-stage F of the case-manager propensity and the
    balance of covariates across it (case-manager IV).
practical
    are the data there and good enough? Linkage rate and completeness (from
    ``linkage.json`` and ``quality.json`` of steps 01 and 02), the size of the
    treatment and comparison groups, the minimum detectable effect against a
    policy-relevant effect, and the coverage of the windows before and after
    inflow.
allowed
    the city's legal checklist (``legal:`` in its configuration); a mandatory
    item that is not complete makes every sub-study of the city no-go.
wanted
    relevance to policy, the executing organisation and the client council
    (``relevance:``), and every concern of the client council answered by a
    safeguard of this compendium.

A check's verdict is ``pass``, ``conditional`` (with the condition) or
``fail`` (with the reason); ``not_assessed`` marks a check that cannot be
computed because an earlier one failed. A criterion takes the worst verdict
of its checks. The decision is *no-go* when a criterion fails, *conditional*
when one is conditional, and *go* otherwise.

Minimum detectable effect
-------------------------
For an estimator with standard error :math:`SE`, the smallest true effect that
a two-sided test at level :math:`\alpha` detects with probability
:math:`1 - \beta` (the power) is

.. math::

    MDE = \left(z_{1-\alpha/2} + z_{1-\beta}\right)\, SE,

with :math:`z_q` the standard normal quantile (2.8016 for
:math:`\alpha = 0.05`, power 0.80). The standard errors per design, for an
outcome with standard deviation :math:`\sigma` (for a 0/1 outcome with
comparison-group mean :math:`p_0`, :math:`\sigma = \sqrt{p_0(1-p_0)}`):

* difference in means (selection on observables), :math:`n_1` treated and
  :math:`n_0` controls, the latter replaced by the effective number of
  weighted controls :math:`n_0^{\mathrm{eff}} = (\sum w)^2 / \sum w^2` of the
  odds weights :math:`w = \hat p / (1 - \hat p)`:
  :math:`SE = \sigma \sqrt{1/n_1 + 1/n_0^{\mathrm{eff}}}`;
* instrumental variable, :math:`n` clients, first-stage coefficient
  :math:`\pi` and standard deviation :math:`s_Z` of the instrument after
  absorbing the cells: :math:`SE = \sigma / (\sqrt n\, |\pi|\, s_Z)`;
* roll-out, :math:`n_1` clients exposed at inflow and :math:`n_0` not, and a
  take-up increase :math:`\Delta`: the effect of the instrument is the effect
  of availability divided by :math:`\Delta`, so
  :math:`SE = \sigma \sqrt{1/n_1 + 1/n_0} / \Delta` (ignoring clustering on
  teams, so optimistic).

Covariate adjustment would lower these standard errors; they are not reduced
for it, so the MDEs err on the cautious side.

First-stage F
-------------
With one excluded instrument :math:`Z` (the case-manager propensity) and the
cell effects absorbed (Frisch-Waugh-Lovell: treatment and instrument are
demeaned within cells), :math:`\hat\pi = \sum_i \tilde z_i \tilde d_i / \sum_i
\tilde z_i^2` and :math:`F = \hat\pi^2 / \widehat{V}(\hat\pi)`, with the
cluster-robust variance :math:`\widehat V = \sum_g (\sum_{i \in g} \tilde z_i
\hat u_i)^2 / (\sum_i \tilde z_i^2)^2` over case managers :math:`g`. This is
the Wald statistic that linearmodels reports as the first stage's ``f.stat``
for one instrument (the tests check it against linearmodels).

Outputs
-------
:func:`assess_city` returns an :class:`Assessment`; :func:`record` turns it
into ``build/<size>/<city>/research/feasibility.json`` (research domain: it
holds exact counts). :func:`substudies_to_run` gives Phase 2 the sub-studies
that are go or conditional; :func:`phase1_markdown` and :func:`matrix_figure`
render the Phase 1 chapter from the registered, checked tables ``decisions``
and ``reasons`` of every city's feasibility step (release domain), never
from ``feasibility.json``. Texts meant for readers (reasons, conditions)
never show a count of persons below the disclosure threshold: such counts
are written as "fewer than 10".
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import released
from .config import (
    ConfigError,
    as_dict,
    list_cities,
    load_city,
    load_instruments,
    load_shared,
)
from .effects import leave_out_cell_propensity
from .paths import Paths, repo_root

DESIGNS = ("selection_on_observables", "rollout_did", "case_manager_iv")
DESIGN_LABELS = {
    "selection_on_observables": "Selection on observables",
    "rollout_did": "Staggered roll-out (difference in differences)",
    "case_manager_iv": "Case-manager instrumental variable",
}
DESIGN_SHORT = {
    "selection_on_observables": "selection",
    "rollout_did": "roll-out",
    "case_manager_iv": "case-manager IV",
}
CRITERIA = ("theoretical", "practical", "allowed", "wanted")
CRITERION_LABELS = {
    "theoretical": "theoretically possible",
    "practical": "practically possible",
    "allowed": "allowed",
    "wanted": "wanted",
}
VERDICTS = ("pass", "conditional", "fail", "not_assessed")
STAKEHOLDER_LABELS = {
    "policy": "policy makers",
    "executing_organisation": "the executing organisation",
    "client_council": "the client council",
}
DECISIONS = ("go", "conditional", "no-go")
LEGAL_STATUSES = ("complete", "in_progress", "missing", "not_applicable")
NO_INSTRUMENT = "none"
FILE_NAME = "feasibility.json"
#: the step that writes it, and whose registered tables the Phase 1 chapter reads
STEP = "05_feasibility"
#: the reason every case-manager sub-study of a city without identifiers carries
NO_IDENTIFIERS = "no case-manager identifiers"
#: the reason of a city without a team-by-team roll-out
NO_ROLLOUT = "no team-by-team roll-out"

_ORDER = {"pass": 0, "not_assessed": 0, "conditional": 1, "fail": 2}


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def settings_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / "config" / "feasibility.yml"


def load_settings(root: Path | None = None, path: Path | None = None) -> dict[str, Any]:
    """``config/feasibility.yml``, validated against
    :class:`reintegration.config_settings.Feasibility` (a problem is one line
    naming the file and the key), as a dict with ``_path``."""
    path = Path(path) if path is not None else settings_path(root)
    return as_dict(load_shared("feasibility", root, path), path)


def resolve_safeguard(reference: str) -> Any:
    """The object a safeguard's ``where`` names (``package.module.attribute``);
    raises ``LookupError`` when it does not exist."""
    module_name, _, attr = reference.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"{reference}: module {module_name!r} cannot be imported") from exc
    if not hasattr(module, attr):
        raise LookupError(f"{reference}: {module_name} has no attribute {attr!r}")
    return getattr(module, attr)


# ---------------------------------------------------------------------------
# checks and decisions
# ---------------------------------------------------------------------------


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
        return {
            "name": self.name,
            "verdict": self.verdict,
            "text": self.text,
            "value": _json_value(self.value),
            "threshold": _json_value(self.threshold),
        }


def decision_follows(rec: dict[str, Any]) -> bool:
    """Whether a record of ``feasibility.json`` is consistent: its decision
    is the one the rule gives for its criteria's verdicts."""
    verdicts = [rec["criteria"][c]["verdict"] for c in CRITERIA]
    expected = ("no-go" if "fail" in verdicts
                else "conditional" if "conditional" in verdicts else "go")
    return rec["decision"] == expected


def criterion_verdict(checks: Sequence[Check]) -> str:
    """The worst verdict of the checks (``not_assessed`` counts as a pass: it
    only follows a check that failed)."""
    worst = max((c.verdict for c in checks), key=lambda v: _ORDER[v], default="pass")
    return "pass" if worst == "not_assessed" else worst


def decide(criteria: dict[str, Sequence[Check]]) -> tuple[str, list[str], list[str]]:
    """Decision, reasons and conditions from the checks of the four criteria.

    No-go when a criterion fails (the reasons are the failing checks), else
    conditional when one is conditional (the conditions are those checks),
    else go. Conditions are listed for a no-go too: they say what else would
    have to change."""
    reasons, conditions = [], []
    for name in CRITERIA:
        for check in criteria.get(name, ()):
            if check.verdict == "fail":
                reasons.append(f"{name}: {check.text}")
            elif check.verdict == "conditional":
                conditions.append(f"{name}: {check.text}")
    verdicts = [criterion_verdict(criteria.get(name, ())) for name in CRITERIA]
    if "fail" in verdicts:
        return "no-go", reasons, conditions
    if "conditional" in verdicts:
        return "conditional", reasons, conditions
    return "go", reasons, conditions


def _levels(value: float, *, no_go: float, conditional: float, higher_is_better: bool = True
            ) -> str:
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


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------


def mde_multiplier(alpha: float = 0.05, power: float = 0.80) -> float:
    r""":math:`z_{1-\alpha/2} + z_{power}`: 2.8016 for the defaults."""
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def minimum_detectable_effect(
    std_error: float, *, alpha: float = 0.05, power: float = 0.80
) -> float:
    r"""Minimum detectable effect of an estimator with standard error
    ``std_error``, two-sided level ``alpha`` and power ``power``:

    .. math::

        MDE = \left(z_{1-\alpha/2} + z_{power}\right) SE .

    With the defaults, :math:`MDE = (1.95996 + 0.84162)\, SE = 2.80158\, SE`.
    """
    if not std_error >= 0:
        return float("nan")
    return mde_multiplier(alpha, power) * float(std_error)


def se_difference(sd: float, n_treated: float, n_control: float) -> float:
    r"""Standard error of a difference in means of two independent groups
    with common standard deviation :math:`\sigma`:
    :math:`\sigma\sqrt{1/n_1 + 1/n_0}` (NaN when a group is empty)."""
    if n_treated <= 0 or n_control <= 0:
        return float("nan")
    return float(sd) * math.sqrt(1.0 / n_treated + 1.0 / n_control)


def se_iv(sd: float, n: float, first_stage_coef: float, sd_instrument: float) -> float:
    r"""Approximate standard error of the 2SLS estimate with one instrument:
    :math:`\sigma / (\sqrt n\, |\pi|\, s_Z)`, with :math:`s_Z` the standard
    deviation of the instrument after absorbing the cells."""
    denom = math.sqrt(max(n, 0)) * abs(first_stage_coef) * sd_instrument
    return float(sd) / denom if denom > 0 else float("nan")


def binary_sd(p: float) -> float:
    r""":math:`\sqrt{p(1-p)}`, the standard deviation of a 0/1 outcome with mean p."""
    return math.sqrt(max(p * (1 - p), 0.0))


def _demean(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Columns of ``values`` minus their group means (the overall mean without
    groups)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return _demean(values[:, None], groups)[:, 0]
    if groups is None:
        return values - values.mean(axis=0)
    frame = pd.DataFrame(values)
    return (frame - frame.groupby(groups, sort=False).transform("mean")).to_numpy()


def _group_codes(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    if not columns:
        return np.zeros(len(data), dtype=np.int64)
    return data.groupby(list(columns), sort=True, dropna=False).ngroup().to_numpy()


def _robust_cov(x: np.ndarray, resid: np.ndarray, clusters: np.ndarray | None,
                *, debiased: bool = False, extra_df: int = 0) -> np.ndarray:
    """Sandwich covariance of OLS coefficients: heteroskedasticity-robust
    (HC0) or clustered, with linearmodels' small-sample scaling when
    ``debiased``."""
    n, k = x.shape
    bread = np.linalg.pinv(x.T @ x)
    scores = x * resid[:, None]
    if clusters is None:
        meat = scores.T @ scores
        scale = n / (n - k - extra_df) if debiased else 1.0
    else:
        sums = pd.DataFrame(scores).groupby(clusters, sort=False).sum().to_numpy()
        g = sums.shape[0]
        meat = sums.T @ sums
        scale = g / (g - 1) * (n - 1) / (n - k - extra_df) if debiased and g > 1 else 1.0
    return bread @ meat @ bread * scale


@dataclass
class FirstStage:
    """The first stage of the leave-one-out propensity."""

    coef: float
    std_error: float
    f_stat: float
    nobs: int
    clusters: int | None
    sd_instrument: float
    partial_r2: float

    def as_dict(self) -> dict[str, Any]:
        return {k: _json_value(v) for k, v in self.__dict__.items()}


def first_stage(
    data: pd.DataFrame,
    *,
    treatment: str,
    instrument: str,
    absorb: str | Sequence[str] | None = None,
    cluster: str | None = None,
    debiased: bool = False,
) -> FirstStage:
    r"""First-stage regression of ``treatment`` on one excluded ``instrument``
    with the cells of ``absorb`` as fixed effects, and its F statistic.

    By Frisch-Waugh-Lovell both are demeaned within cells (overall without
    ``absorb``); :math:`\hat\pi = \sum \tilde z \tilde d / \sum \tilde z^2`,
    residuals :math:`\hat u = \tilde d - \hat\pi \tilde z`, variance
    :math:`\widehat V = \sum_g (\sum_{i \in g} \tilde z_i \hat u_i)^2 /
    (\sum_i \tilde z_i^2)^2` (clustered on ``cluster``; per row without it),
    times linearmodels' small-sample factor when ``debiased``, and

    .. math::

        F = \hat\pi^2 / \widehat V ,

    the Wald statistic of :math:`\pi = 0`, which for one instrument is what
    linearmodels reports as the first stage's ``f.stat`` (robust and
    clustered covariances; the homoskedastic F differs). Rows with a missing
    value are dropped.
    """
    cells = [absorb] if isinstance(absorb, str) else list(absorb or [])
    cols = [treatment, instrument, *cells] + ([cluster] if cluster else [])
    sample = data.loc[data[cols].notna().all(axis=1)]
    n = len(sample)
    if n < 3:
        return FirstStage(float("nan"), float("nan"), float("nan"), n, None, float("nan"),
                          float("nan"))
    groups = _group_codes(sample, cells) if cells else None
    d = _demean(sample[treatment].to_numpy(dtype=float), groups)
    z = _demean(sample[instrument].to_numpy(dtype=float), groups)
    szz = float(z @ z)
    if szz <= 0:
        return FirstStage(float("nan"), float("nan"), 0.0, n, None, 0.0, 0.0)
    pi = float(z @ d) / szz
    u = d - pi * z
    clusters = sample[cluster].to_numpy() if cluster else None
    n_cells = int(len(np.unique(groups))) if groups is not None else 1
    v = float(_robust_cov(z[:, None], u, clusters, debiased=debiased,
                          extra_df=n_cells)[0, 0])
    f = pi * pi / v if v > 0 else float("inf")
    g = int(pd.Series(clusters).nunique()) if clusters is not None else None
    sdd = float(d @ d)
    partial_r2 = (pi * pi * szz) / sdd if sdd > 0 else float("nan")
    return FirstStage(pi, math.sqrt(v), f, n, g, math.sqrt(szz / n), partial_r2)


def cluster_ols(y: pd.Series | np.ndarray, x: pd.DataFrame, groups: np.ndarray) -> Any:
    """statsmodels OLS of ``y`` on ``x`` (no constant added) with standard
    errors clustered on ``groups`` and t / F reference distributions with
    G - 1 degrees of freedom (statsmodels' small-sample correction)."""
    import statsmodels.api as sm

    return sm.OLS(np.asarray(y, dtype=float), x).fit(
        cov_type="cluster", cov_kwds={"groups": np.asarray(groups)}, use_t=True
    )


def joint_test(results: Any, names: Sequence[str]) -> tuple[float, float]:
    """F statistic and p-value of the joint test that the coefficients
    ``names`` are zero (statsmodels ``f_test`` with the fit's covariance)."""
    params = list(results.params.index)
    r = np.zeros((len(names), len(params)))
    for i, name in enumerate(names):
        r[i, params.index(name)] = 1.0
    test = results.f_test(r)
    return float(np.squeeze(test.fvalue)), float(test.pvalue)


#: Webb's six-point weights for the wild cluster bootstrap
WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])


def wild_cluster_pvalue(
    y: np.ndarray, x: pd.DataFrame, test: Sequence[str], clusters: np.ndarray, *,
    reps: int = 999, seed: int = 0,
) -> float:
    r"""Wild cluster bootstrap p-value of the Wald test that the coefficients
    ``test`` of the OLS regression of ``y`` on ``x`` are zero, with the null
    imposed (restricted residuals) and Webb's six-point weights (Cameron,
    Gelbach and Miller 2008; Webb 2023): reliable with few clusters, where
    the cluster-robust F over-rejects.

    Each replication draws one weight :math:`v_g` per cluster, builds
    :math:`y^* = X\hateta_r + v_g \hat u_{r}`, refits and recomputes the
    cluster-robust Wald statistic; the p-value is :math:`(1 + \#\{W^* \ge
    W\}) / (B + 1)`. The replications use cluster-level cross products, so
    their cost does not grow with the number of rows.
    """
    xa = x.to_numpy(dtype=float)
    y = np.asarray(y, dtype=float)
    cols = list(x.columns)
    idx = [cols.index(t) for t in test]
    codes = pd.factorize(pd.Series(clusters))[0]
    g = int(codes.max()) + 1
    a = np.linalg.pinv(xa.T @ xa)
    beta = a @ (xa.T @ y)
    r = np.zeros((len(idx), xa.shape[1]))
    r[np.arange(len(idx)), idx] = 1.0
    ra = r @ a

    def cluster_sums(m: np.ndarray) -> np.ndarray:
        out = np.zeros((g, m.shape[1]))
        np.add.at(out, codes, m)
        return out

    def wald(scores: np.ndarray, rb: np.ndarray) -> float:  # scores: G x k
        t = scores @ ra.T
        return float(rb @ np.linalg.pinv(t.T @ t) @ rb)

    stat = wald(cluster_sums(xa * (y - xa @ beta)[:, None]), r @ beta)
    art = a @ r.T
    beta_r = beta - art @ np.linalg.solve(r @ art, r @ beta)
    m = cluster_sums(xa * (y - xa @ beta_r)[:, None])  # G x k restricted scores
    h = np.zeros((g, xa.shape[1], xa.shape[1]))
    for j in range(g):
        rows = xa[codes == j]
        h[j] = rows.T @ rows
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, reps, 200):
        v = rng.choice(WEBB, size=(min(200, reps - start), g))
        dev = (v @ m) @ a  # beta* - beta_r
        sc = v[:, :, None] * m[None] - np.einsum("gkl,bl->bgk", h, dev)
        t = sc @ ra.T
        vr = np.einsum("bgq,bgr->bqr", t, t)
        rb = (beta_r + dev) @ r.T
        stats_b = np.einsum("bq,bq->b", rb, (np.linalg.pinv(vr) @ rb[:, :, None])[:, :, 0])
        exceed += int((stats_b >= stat - 1e-12).sum())
    return (1 + exceed) / (reps + 1)


def _dummies(codes: np.ndarray, prefix: str) -> pd.DataFrame:
    """Indicator columns of integer codes, the first level left out."""
    levels = np.unique(codes)
    return pd.DataFrame((codes[:, None] == levels[None, 1:]).astype(float),
                        columns=[f"{prefix}{v}" for v in levels[1:]])


def propensity_scores(data: pd.DataFrame, treatment: str, covariates: Sequence[str]) -> np.ndarray:
    """Logit propensity scores of ``treatment`` on ``covariates`` (plus a
    constant); covariates that do not vary in the sample are left out. A fit
    that does not converge (separation) falls back to a lightly penalised
    logit."""
    import statsmodels.api as sm

    x = data[list(covariates)].astype(float)
    x = x.loc[:, x.std(ddof=0) > 0]
    xc = sm.add_constant(x.to_numpy(), has_constant="add")
    d = data[treatment].to_numpy(dtype=float)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.Logit(d, xc).fit(disp=0, maxiter=200)
            params = fit.params
            if not np.all(np.isfinite(params)) or not fit.mle_retvals.get("converged", True):
                raise np.linalg.LinAlgError("not converged")
        except (np.linalg.LinAlgError, ValueError):
            params = sm.Logit(d, xc).fit_regularized(alpha=1e-3, disp=0).params
    return 1.0 / (1.0 + np.exp(-(xc @ params)))


# ---------------------------------------------------------------------------
# helpers for readers' texts (no small counts)
# ---------------------------------------------------------------------------


def count_text(n: int | float, threshold: int) -> str:
    """A count of persons for a reader: the number, or 'fewer than <t>'."""
    n = int(n)
    return f"{n:,}".replace(",", " ") if n >= threshold else f"fewer than {threshold}"


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _pp(x: float) -> str:
    return f"{100 * x:.1f} percentage points"


def _share_text(k: int, n: int, threshold: int) -> str:
    """A share k/n for a reader; written without the share when k or n - k is
    below the threshold (the share and the group size would give it away)."""
    if n <= 0:
        return "none"
    if k == 0:
        return "none"
    if k < threshold:
        return f"fewer than {threshold} persons"
    if n - k < threshold:
        return f"all but fewer than {threshold} persons"
    return _pct(k / n)


def _month_index(text: str) -> int:
    text = str(text)
    return int(text[:4]) * 12 + int(text[5:7]) - 1


def _month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# ---------------------------------------------------------------------------
# the assessment of one city
# ---------------------------------------------------------------------------


@dataclass
class SubStudy:
    """One design applied to one instrument in one city."""

    design: str
    instrument: str | None
    criteria: dict[str, list[Check]] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.design}/{self.instrument or NO_INSTRUMENT}"

    def decision(self) -> tuple[str, list[str], list[str]]:
        return decide(self.criteria)

    def as_dict(self, labels: dict[str, str]) -> dict[str, Any]:
        decision, reasons, conditions = self.decision()
        return {
            "id": self.id,
            "design": self.design,
            "design_label": DESIGN_LABELS[self.design],
            "instrument": self.instrument,
            "instrument_label": labels.get(self.instrument or "", "none rolled out"),
            "decision": decision,
            "reasons": reasons,
            "conditions": conditions,
            "criteria": {
                name: {
                    "verdict": criterion_verdict(self.criteria.get(name, [])),
                    "checks": [c.as_dict() for c in self.criteria.get(name, [])],
                    "evidence": {k: _json_value(v)
                                 for k, v in self.evidence.get(name, {}).items()},
                }
                for name in CRITERIA
            },
        }


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
class Assessment:
    """Everything :func:`assess_city` computed for one city: the sub-studies
    and the person-level frames behind the evidence (for the step's own
    registered tables; never written out)."""

    city: str
    substudies: list[SubStudy]
    legal: list[dict[str, Any]]
    relevance: list[dict[str, Any]]
    concerns: list[dict[str, Any]]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    city_evidence: dict[str, Any] = field(default_factory=dict)

    def get(self, substudy_id: str) -> SubStudy:
        for s in self.substudies:
            if s.id == substudy_id:
                return s
        raise KeyError(substudy_id)


def substudy_ids(city: dict[str, Any], instruments: Iterable[str]) -> list[tuple[str, str | None]]:
    """(design, instrument) of every sub-study of a city, in report order."""
    instruments = list(instruments)
    out: list[tuple[str, str | None]] = [("selection_on_observables", i) for i in instruments]
    rollout = city.get("rollout")
    out.append(("rollout_did", rollout["instrument"] if rollout else None))
    out += [("case_manager_iv", i) for i in instruments]
    return out


def offered_instruments(city: dict[str, Any]) -> set[str]:
    """Taxonomy keys the city has a code for."""
    return set(city.get("exports", {}).get("instrument_codes", {}).values())


def assess_city(
    persons: pd.DataFrame,
    *,
    city: dict[str, Any],
    quality: dict[str, Any],
    linkage: dict[str, Any],
    settings: dict[str, Any],
    instruments: Sequence[str],
    threshold: int = 10,
) -> Assessment:
    """Assess every sub-study of one city.

    Parameters
    ----------
    persons
        The panel's ``persons.parquet`` (one row per cohort member).
    city
        The city's configuration (:func:`reintegration.config.load_city`).
    quality, linkage
        ``quality.json`` and ``linkage.json`` of steps 01 and 02.
    settings
        :func:`load_settings`.
    instruments
        Instrument keys of the taxonomy, in order.
    threshold
        The disclosure cell threshold; counts below it are not written in
        texts for readers.
    """
    name = city["name"]
    outcome = settings["outcome"]
    covariates = [c for c in settings["covariates"] if c in persons.columns]
    missing_cov = [c for c in settings["covariates"] if c not in persons.columns]
    if outcome not in persons.columns:
        raise ConfigError(f"{settings.get('_path')}: outcome {outcome!r} is not a column of "
                          "persons.parquet")
    uses_health = any(c in covariates for c in settings["health_data_columns"])

    practical_common = practical_data_checks(city, quality, linkage, settings, threshold)
    coverage_checks, coverage_evidence = coverage_check(persons, city, quality, settings)
    legal_rows, legal_checks = legal_checklist(city, settings, uses_health_data=uses_health)
    rel_rows, concern_rows = relevance_tables(city, settings)
    offered = offered_instruments(city)

    frames: dict[str, pd.DataFrame] = {}
    models: dict[str, Model] = {}
    subs: list[SubStudy] = []
    soo_frames, iv_frames = [], []
    iv_base = _iv_base(persons, settings)
    for design, instrument in substudy_ids(city, instruments):
        sub = SubStudy(design, instrument)
        if design == "selection_on_observables":
            theo, prac, ev_t, ev_p, frame = _selection(
                persons, instrument, covariates, outcome, settings, threshold)
            if frame is not None:
                soo_frames.append(frame)
        elif design == "rollout_did":
            theo, prac, ev_t, ev_p, frame = _rollout(
                persons, city, instrument, outcome, settings, threshold, models)
            if frame is not None:
                frames["rollout"] = frame
        else:
            theo, prac, ev_t, ev_p, frame = _case_manager(
                persons, iv_base, instrument, covariates, outcome, settings, threshold, models)
            if frame is not None:
                iv_frames.append(frame)
        if instrument is not None and instrument not in offered:
            theo.insert(0, Check("instrument_offered", "fail",
                                 "the city has no code for this instrument"))
        if missing_cov:
            theo.append(Check("covariates_present", "conditional",
                              f"covariates missing from the panel: {', '.join(missing_cov)}"))
        sub.criteria["theoretical"] = theo
        sub.criteria["practical"] = [*practical_common, *coverage_checks, *prac]
        sub.criteria["allowed"] = list(legal_checks)
        sub.criteria["wanted"] = wanted_checks(city, settings, instrument)
        sub.evidence["theoretical"] = ev_t
        sub.evidence["practical"] = {**ev_p, **coverage_evidence, **_data_evidence(
            quality, linkage)}
        sub.evidence["allowed"] = {"health_data_used": uses_health}
        sub.evidence["wanted"] = {r["stakeholder"]: r["level for this sub-study"]
                                  for r in _relevance_for(city, settings, instrument)}
        subs.append(sub)
    if soo_frames:
        frames["overlap"] = pd.concat(soo_frames, ignore_index=True)
    if iv_frames:
        frames["iv_balance"] = pd.concat(iv_frames, ignore_index=True)
    if iv_base is not None:
        frames["caseload"] = caseload_frame(iv_base)
    return Assessment(
        city=name,
        substudies=subs,
        legal=legal_rows,
        relevance=rel_rows,
        concerns=concern_rows,
        frames=frames,
        models=models,
        city_evidence={"health_data_used": uses_health, "covariates": covariates},
    )


# ---- selection on observables ----------------------------------------------

#: bands of the propensity score for the overlap table
PSCORE_BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def pscore_band(p: np.ndarray) -> np.ndarray:
    labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(PSCORE_BANDS[:-1], PSCORE_BANDS[1:],
                                                   strict=True)]
    idx = np.clip(np.searchsorted(PSCORE_BANDS, p, side="right") - 1, 0, len(labels) - 1)
    return np.asarray(labels, dtype=object)[idx]


def _selection(persons, instrument, covariates, outcome, settings, threshold):
    cfg = settings["theoretical"]["selection_on_observables"]
    pcfg = settings["practical"]
    lo, hi = (float(b) for b in cfg["trim_bounds"])
    sample = persons[persons["instrument"].isin([instrument, NO_INSTRUMENT])]
    d = (sample["instrument"] == instrument).to_numpy()
    n1, n0 = int(d.sum()), int((~d).sum())
    theo: list[Check] = []
    prac: list[Check] = []
    ev_t: dict[str, Any] = {"comparison": "persons who started no instrument",
                            "covariates": len(covariates), "trim_bounds": [lo, hi]}
    ev_p: dict[str, Any] = {"n_treated": n1, "n_comparison": n0, "outcome": outcome}
    prac += _size_checks(n1, n0, pcfg, threshold)
    if n1 < 2 or n0 < 2:
        theo.append(Check("overlap", "not_assessed", "too few persons to fit a propensity score"))
        prac.append(Check("mde", "not_assessed", "no power calculation without both groups"))
        return theo, prac, ev_t, ev_p, None
    frame = sample.assign(_d=d.astype(int))
    p = propensity_scores(frame, "_d", covariates)
    trimmed = (p < lo) | (p > hi)
    k1, k0 = int(trimmed[d].sum()), int(trimmed[~d].sum())
    share1 = k1 / n1
    lim = cfg["share_treated_trimmed"]
    verdict = _levels(share1, no_go=lim["no_go"], conditional=lim["conditional"],
                      higher_is_better=False)
    bounds = f"[{lo:g}, {hi:g}]"
    text = {
        "pass": f"propensity scores overlap: treated outside {bounds}: "
                f"{_share_text(k1, n1, threshold)} (at most {_pct(lim['conditional'], 0)})",
        "conditional": f"treated with propensity scores outside {bounds}: "
                       f"{_share_text(k1, n1, threshold)}; estimate the effect on the treated "
                       "inside the common support and say so",
        "fail": f"treated with propensity scores outside {bounds}: "
                f"{_share_text(k1, n1, threshold)}, more than {_pct(lim['no_go'], 0)}: too "
                "few have comparable controls",
    }[verdict]
    theo.append(Check("overlap", verdict, text, round(share1, 4), lim))
    standing = cfg.get("standing_condition")
    if standing:
        theo.append(Check("unconfoundedness", "conditional", " ".join(str(standing).split())))
    # effective number of controls under odds weights, inside the bounds
    keep = ~trimmed
    pc = np.clip(p, lo, hi)
    w = pc / (1 - pc)
    w0 = w[(~d) & keep]
    ess0 = float(w0.sum() ** 2 / (w0 ** 2).sum()) if len(w0) else 0.0
    y0 = sample.loc[~d, outcome].astype(float)
    p0 = float(y0.mean()) if len(y0) else float("nan")
    se = se_difference(binary_sd(p0), int((d & keep).sum()), ess0)
    prac.append(_mde_check(se, pcfg, "treated against the weighted comparison group"))
    ev_t.update({"share_treated_trimmed": round(share1, 4), "n_treated_trimmed": k1,
                 "share_comparison_trimmed": round(k0 / n0, 4), "n_comparison_trimmed": k0})
    ev_p.update({"comparison_mean_outcome": round(p0, 4),
                 "effective_comparison_n": round(ess0, 1), "mde_se": _round(se, 5),
                 "mde": _round(minimum_detectable_effect(se, **_power(pcfg)), 4)})
    out = pd.DataFrame({
        "instrument": instrument,
        "group": np.where(d, "treated", "no instrument"),
        "propensity": pscore_band(p),
        "trimmed": np.where(trimmed, "outside bounds", "inside bounds"),
    })
    return theo, prac, ev_t, ev_p, out


def _size_checks(n1: int, n0: int, pcfg: dict[str, Any], threshold: int,
                 groups: tuple[str, str] = ("treated group", "comparison group")) -> list[Check]:
    out = []
    for name, group, n, key in (("n_treated", groups[0], n1, "min_treated"),
                                ("n_comparison", groups[1], n0, "min_comparison")):
        lim = int(pcfg[key])
        if n >= lim:
            out.append(Check(name, "pass", f"{count_text(n, threshold)} persons in the {group} "
                             f"(at least {lim})", n, lim))
        else:
            out.append(Check(name, "fail", f"{count_text(n, threshold)} persons in the {group}, "
                             f"fewer than the {lim} needed", n, lim))
    return out


def _power(pcfg: dict[str, Any]) -> dict[str, float]:
    return {"alpha": float(pcfg["power"]["alpha"]), "power": float(pcfg["power"]["power"])}


def _mde_check(se: float, pcfg: dict[str, Any], what: str) -> Check:
    pw = pcfg["power"]
    effect = float(pw["policy_effect"])
    factor = pw.get("no_go_factor")
    limit = effect * float(factor) if factor is not None else float("inf")
    mde = minimum_detectable_effect(se, **_power(pcfg))
    sig = f"{_pct(float(pw['power']), 0)} power, {_pct(float(pw['alpha']), 0)} two-sided"
    if not math.isfinite(mde):
        return Check("mde", "fail", f"no minimum detectable effect can be computed ({what})",
                     None, effect)
    verdict = _levels(mde, no_go=limit, conditional=effect, higher_is_better=False)
    head = f"minimum detectable effect {_pp(mde)} ({sig}; policy-relevant: {_pp(effect)})"
    text = {
        "pass": head,
        "conditional": f"{head}: on its own a null result would be inconclusive; report the "
                       "MDE and pool the city in the cross-city synthesis",
        "fail": f"{head}: more than {float(factor or 0):g} times the policy-relevant effect",
    }[verdict]
    return Check("mde", verdict, text, round(mde, 4),
                 {"policy_effect": effect,
                  "no_go_above": round(limit, 4) if math.isfinite(limit) else None})


# ---- case-manager instrumental variable -------------------------------------


def _iv_base(persons: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame | None:
    """Persons with a case manager, with the cell column; None without any."""
    if "case_manager" not in persons.columns:
        return None
    base = persons[persons["case_manager"].notna()]
    if base.empty:
        return None
    cells = settings["theoretical"]["case_manager_iv"]["cells"]
    missing = [c for c in cells if c not in persons.columns]
    if missing:
        raise ConfigError(f"{settings.get('_path')}: case_manager_iv.cells {missing} are not "
                          "columns of persons.parquet")
    base = base.copy()
    base["_cell"] = _group_codes(base, cells)
    return base


def caseload_frame(base: pd.DataFrame) -> pd.DataFrame:
    """One row per case manager: the number of cohort clients (for the
    caseload table; case managers are pseudonymised and not shown)."""
    counts = base.groupby("case_manager", sort=True).size()
    bands = pd.cut(counts, [0, 9, 19, 29, 49, 99, np.inf], labels=list(CASELOAD_BANDS))
    return pd.DataFrame({"clients": counts.to_numpy(),
                         "clients per case manager": bands.astype(str).to_numpy()})


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
    return leave_out_cell_propensity(data, group=case_manager, treatment=treatment, cells=cells)


def _case_manager(persons, base, instrument, covariates, outcome, settings, threshold, models):
    cfg = settings["theoretical"]["case_manager_iv"]
    pcfg = settings["practical"]
    theo: list[Check] = []
    prac: list[Check] = []
    ev_t: dict[str, Any] = {"cells": list(cfg["cells"]),
                            "instrument_definition": "leave-out-cell propensity: share of the "
                            "case manager's clients in other cells starting the instrument, each "
                            "net of their cell's share"}
    ev_p: dict[str, Any] = {"outcome": outcome}
    n_all = len(persons)
    n_with = 0 if base is None else len(base)
    coverage = n_with / n_all if n_all else 0.0
    ev_t["identifier_coverage"] = round(coverage, 4)
    lim_cov = float(cfg["min_identifier_coverage"])
    if n_with == 0:
        theo.append(Check("identifiers", "fail",
                          f"{NO_IDENTIFIERS}: the city's delivery has no case manager per "
                          "client, so the instrument cannot be formed", 0.0, lim_cov))
        for name in ("clients_per_case_manager", "multi_manager_cells", "first_stage_f",
                     "balance"):
            theo.append(Check(name, "not_assessed", NO_IDENTIFIERS))
        prac.append(Check("sample", "not_assessed", NO_IDENTIFIERS))
        prac.append(Check("mde", "not_assessed", NO_IDENTIFIERS))
        return theo, prac, ev_t, ev_p, None
    if coverage < lim_cov:
        theo.append(Check("identifiers", "fail",
                          f"case-manager identifiers for only {_pct(coverage)} of the cohort "
                          f"(at least {_pct(lim_cov, 0)} needed)", round(coverage, 4), lim_cov))
    else:
        theo.append(Check("identifiers", "pass",
                          f"case-manager identifiers for {_pct(coverage)} of the cohort",
                          round(coverage, 4), lim_cov))
    caseload = base.groupby("case_manager").size()
    median = float(caseload.median())
    lim = cfg["clients_per_case_manager"]
    verdict = _levels(median, no_go=lim["no_go"], conditional=lim["conditional"])
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
        f"{_pct(share_multi)} of clients are in cells ({' x '.join(cfg['cells'])}) with two or "
        f"more case managers (at least {_pct(lim_multi, 0)})"
        + ("" if share_multi >= lim_multi else ": too little variation within cells"),
        round(share_multi, 4), lim_multi))
    ev_t["share_in_multi_manager_cells"] = round(share_multi, 4)

    frame = base.assign(_d=(base["instrument"] == instrument).astype(float))
    frame["_z"] = case_manager_propensity(frame, case_manager="case_manager", treatment="_d",
                                          cells="_cell")
    fs = first_stage(frame, treatment="_d", instrument="_z", absorb="_cell",
                     cluster="case_manager")
    lim_f = float(cfg["min_first_stage_f"])
    ev_t["first_stage"] = fs.as_dict()
    if not math.isfinite(fs.f_stat) or fs.f_stat < lim_f:
        theo.append(Check("first_stage_f", "fail",
                          f"first-stage F {_fmt_f(fs.f_stat)} below {lim_f:g}: the case "
                          "manager's propensity hardly predicts who starts the instrument "
                          "(weak instrument)", _round(fs.f_stat, 3), lim_f))
    else:
        theo.append(Check("first_stage_f", "pass",
                          f"first-stage F {_fmt_f(fs.f_stat)} (at least {lim_f:g})",
                          _round(fs.f_stat, 3), lim_f))
    models[f"first_stage_{instrument}"] = first_stage_model(frame)
    # balance: do the covariates predict the propensity within cells?
    sample = frame[frame["_z"].notna()]
    groups = sample["_cell"].to_numpy()
    xcols = [c for c in covariates if sample[c].std(ddof=0) > 0]
    xt = pd.DataFrame(_demean(sample[xcols].to_numpy(dtype=float), groups), columns=xcols)
    xt = xt.loc[:, xt.std(ddof=0) > 1e-12]
    zt = _demean(sample["_z"].to_numpy(dtype=float), groups)
    lim_b = float(cfg["balance_pvalue"])
    if xt.shape[1] and len(zt) > xt.shape[1] + 1:
        res = cluster_ols(zt, xt, sample["case_manager"].astype(str).to_numpy())
        fbal, pbal = joint_test(res, list(xt.columns))
        ok = pbal >= lim_b
        theo.append(Check(
            "balance", "pass" if ok else "conditional",
            f"covariates at inflow do not predict the propensity within cells (joint test "
            f"p = {pbal:.3f}, at least {lim_b:g})" if ok else
            f"covariates at inflow predict the propensity within cells (joint test p = "
            f"{pbal:.3f} < {lim_b:g}): allocation may not be as good as random; control for "
            "the covariates and show the estimate is stable",
            round(pbal, 4), lim_b))
        ev_t["balance"] = {"f_stat": round(fbal, 3), "pvalue": round(pbal, 4),
                           "covariates": int(xt.shape[1])}
    else:
        theo.append(Check("balance", "not_assessed", "no covariates vary within cells"))
    # practical: sample and power
    n = fs.nobs
    n1 = int(sample["_d"].sum())
    prac += _size_checks(n1, n - n1, pcfg, threshold)
    sd = float(sample[outcome].astype(float).std(ddof=0))
    se = se_iv(sd, n, fs.coef, fs.sd_instrument)
    prac.append(_mde_check(se, pcfg, "two-stage least squares on the case-manager propensity"))
    ev_p.update({"n": n, "n_treated": n1, "outcome_sd": round(sd, 4), "mde_se": _round(se, 5),
                 "mde": _round(minimum_detectable_effect(se, **_power(pcfg)), 4)})
    # balance index for display: take-up predicted from covariates, by propensity tercile
    index = propensity_scores(sample, "_d", list(xt.columns))
    terciles = pd.qcut(sample["_z"].rank(method="first"), 3, labels=["low", "middle", "high"])
    out = pd.DataFrame({"instrument": instrument,
                        "propensity tercile": terciles.astype(str).to_numpy(),
                        "predicted take-up": index})
    return theo, prac, ev_t, ev_p, out


def _fmt_f(f: float) -> str:
    return "undefined" if not math.isfinite(f) else f"{f:.1f}"


# ---- staggered roll-out ----------------------------------------------------


def rollout_schedule(city: dict[str, Any]) -> dict[str, int]:
    """Team -> month index of its roll-out (from the city's configuration)."""
    rollout = city.get("rollout") or {}
    out = {}
    for team, month in (rollout.get("teams") or {}).items():
        if hasattr(month, "year"):
            month = f"{month.year:04d}-{month.month:02d}"
        out[str(team)] = _month_index(str(month))
    return out


def _rollout(persons, city, instrument, outcome, settings, threshold, models):
    cfg = settings["theoretical"]["rollout_did"]
    pcfg = settings["practical"]
    theo: list[Check] = []
    prac: list[Check] = []
    ev_t: dict[str, Any] = {}
    ev_p: dict[str, Any] = {"outcome": outcome}
    if instrument is None or not city.get("rollout"):
        theo.append(Check("rollout_present", "fail",
                          f"{NO_ROLLOUT} of any instrument in the city's configuration"))
        for name in ("teams_per_side", "pre_period", "post_period", "takeup", "pretrend"):
            theo.append(Check(name, "not_assessed", NO_ROLLOUT))
        prac.append(Check("sample", "not_assessed", NO_ROLLOUT))
        prac.append(Check("mde", "not_assessed", NO_ROLLOUT))
        return theo, prac, ev_t, ev_p, None
    schedule = rollout_schedule(city)
    study = city["study"]
    first_m, last_m = _month_index(study["inflow_from"]), _month_index(study["inflow_to"])
    theo.append(Check("rollout_present", "pass",
                      f"roll-out of this instrument in {len(schedule)} teams (configuration)"))
    teams_in_data = set(persons["team"].dropna().astype(str))
    treated = sorted(t for t, m in schedule.items() if t in teams_in_data and m <= last_m)
    comparison = sorted(t for t in teams_in_data if t not in treated)
    lim = cfg["teams_per_side"]
    sides = min(len(treated), len(comparison))
    verdict = _levels(sides, no_go=lim["no_go"], conditional=lim["conditional"])
    text = f"{len(treated)} teams rolled out and {len(comparison)} did not"
    text += {
        "pass": f" (at least {lim['conditional']} on each side)",
        "conditional": f" (fewer than {lim['conditional']} on a side): use inference for few "
                       "clusters (wild cluster bootstrap or randomisation inference)",
        "fail": f": fewer than {lim['no_go']} teams on a side",
    }[verdict]
    theo.append(Check("teams_per_side", verdict, text,
                      {"rolled_out": len(treated), "not_rolled_out": len(comparison)}, lim))
    ev_t.update({"teams_rolled_out": treated, "teams_not_rolled_out": comparison,
                 "rollout_months": {t: _month_text(schedule[t]) for t in treated}})
    months_t = [schedule[t] for t in treated]
    if not months_t:
        for name in ("pre_period", "post_period", "takeup", "pretrend"):
            theo.append(Check(name, "not_assessed", "no team rolled out during the study"))
        prac.append(Check("mde", "not_assessed", "no team rolled out during the study"))
        return theo, prac, ev_t, ev_p, None
    pre = min(months_t) - first_m
    post = last_m - max(months_t) + 1
    for name, months, key, what in (("pre_period", pre, "min_pre_months", "before the first"),
                                    ("post_period", post, "min_post_months", "from the last")):
        need = int(cfg[key])
        ok = months >= need
        theo.append(Check(name, "pass" if ok else "fail",
                          f"{months} months of inflow {what} roll-out (at least {need})",
                          months, need))
    ev_t.update({"pre_months": pre, "post_months": post})

    frame = rollout_frame(persons, schedule, instrument, outcome)
    # take-up: does exposure raise the start of the instrument?
    x = pd.concat([frame[["exposed"]].astype(float).reset_index(drop=True),
                   _dummies(frame["_team"].to_numpy(), "team_"),
                   _dummies(frame["_quarter"].to_numpy(), "quarter_")], axis=1)
    x["const"] = 1.0
    res = cluster_ols(frame["treated"].to_numpy(dtype=float), x, frame["_team"].to_numpy())
    delta = float(res.params["exposed"])
    reps, seed = int(cfg["bootstrap_replications"]), int(cfg["bootstrap_seed"])
    ptu = wild_cluster_pvalue(frame["treated"].to_numpy(dtype=float), x, ["exposed"],
                              frame["_team"].to_numpy(), reps=reps, seed=seed)
    models["rollout_takeup_model"] = Model(
        res, frame[["group"]].reset_index(drop=True), ["exposed"],
        "Take-up of the rolled-out instrument on exposure at inflow (team and quarter effects)")
    lim_p = float(cfg["takeup_pvalue"])
    ok = delta > 0 and ptu < lim_p
    theo.append(Check(
        "takeup", "pass" if ok else "fail",
        f"take-up rises by {_pp(delta)} with the roll-out (wild cluster bootstrap p = "
        f"{ptu:.3f})" if ok else
        f"the roll-out does not raise take-up clearly ({_pp(delta)}, wild cluster bootstrap "
        f"p = {ptu:.3f}): "
        "an availability effect would say nothing about the instrument",
        round(delta, 4), lim_p))
    ev_t["takeup_increase"] = {"estimate": round(delta, 4), "pvalue": round(ptu, 4)}
    # pre-trend: lead bins of the outcome month before the roll-out
    pt = pretrend_test(frame, leads=int(cfg["pretrend_leads"]), reps=reps, seed=seed)
    lim_pt = float(cfg["pretrend_pvalue"])
    if pt is None:
        theo.append(Check("pretrend", "fail",
                          "too few outcomes measured before the roll-outs to test pre-trends",
                          None, lim_pt))
    else:
        summary, model = pt
        models["rollout_pretrend"] = model
        ok = summary["pvalue"] >= lim_pt
        theo.append(Check(
            "pretrend", "pass" if ok else "fail",
            f"no pre-trend: outcomes of rolling-out teams moved with the others before the "
            f"roll-out (joint test of {summary['leads']} lead(s), wild cluster bootstrap "
            f"p = {summary['pvalue']:.3f})"
            if ok else
            f"pre-trend: outcomes of rolling-out teams drifted from the others before the "
            f"roll-out (wild cluster bootstrap p = {summary['pvalue']:.3f} < {lim_pt:g}): "
            "parallel trends are doubtful", round(summary["pvalue"], 4), lim_pt))
        ev_t["pretrend"] = summary
    # practical: sample and power
    n_exp = int(frame["exposed"].sum())
    n_un = len(frame) - n_exp
    prac += _size_checks(n_exp, n_un, pcfg, threshold,
                         ("group exposed to the roll-out at inflow", "group not exposed"))
    sd = float(frame["y"].std(ddof=0))
    se = se_difference(sd, n_exp, n_un) / delta if delta > 0 else float("nan")
    prac.append(_mde_check(se, pcfg, "availability effect divided by the take-up increase"))
    ev_p.update({"n_exposed": n_exp, "n_not_exposed": n_un, "outcome_sd": round(sd, 4),
                 "mde_se": _round(se, 5),
                 "mde": _round(minimum_detectable_effect(se, **_power(pcfg)), 4)})
    return theo, prac, ev_t, ev_p, frame


def rollout_frame(persons: pd.DataFrame, schedule: dict[str, int], instrument: str,
                  outcome: str) -> pd.DataFrame:
    """Persons with their team's roll-out month, exposure at inflow (inflow in
    or after the roll-out month), the event time of the outcome month in
    years before the roll-out, and codes for team and inflow quarter."""
    horizon = int("".join(ch for ch in outcome.rsplit("_", 1)[-1] if ch.isdigit()) or 0)
    frame = persons[persons["team"].notna()].copy()
    inflow = frame["inflow_month"].astype(str).map(_month_index).to_numpy()
    team = frame["team"].astype(str).to_numpy()
    start = np.array([schedule.get(t, np.nan) for t in team], dtype=float)
    frame = pd.DataFrame({
        "team": team,
        "inflow": inflow,
        "rollout": start,
        "exposed": (~np.isnan(start)) & (inflow >= np.nan_to_num(start, nan=np.inf)),
        "treated": (frame["instrument"] == instrument).to_numpy(dtype=int),
        "y": frame[outcome].to_numpy(dtype=float),
    })
    outcome_month = inflow + horizon
    rel = outcome_month - np.nan_to_num(start, nan=np.inf)
    # event year of the outcome month: -1 = 1-12 months before the roll-out, -2 = 13-24, ...
    year = np.where(np.isnan(start), np.nan, np.floor(rel / 12))
    frame["event_year"] = year
    frame["_team"] = pd.factorize(frame["team"], sort=True)[0]
    frame["_quarter"] = frame["inflow"] // 3
    frame["group"] = np.where(np.isnan(start), "team did not roll out",
                              np.where(frame["exposed"], "after roll-out", "before roll-out"))
    frame["year"] = frame["inflow"] // 12
    return frame


def pretrend_test(frame: pd.DataFrame, *, leads: int, reps: int = 999, seed: int = 0
                  ) -> tuple[dict[str, Any], Model] | None:
    """Joint test that outcomes of rolling-out teams did not drift before
    their roll-out.

    Sample: persons of teams without a roll-out, and persons of rolling-out
    teams whose outcome month lies before the roll-out (event year < 0).
    Regression of the outcome on lead indicators of event years -2, ...,
    -(leads + 1) (the last binning everything earlier; event year -1 is the
    reference), team and inflow-quarter effects; the leads are tested jointly
    with a covariance clustered on teams. The p-value is the wild cluster
    bootstrap's (:func:`wild_cluster_pvalue`; a handful of teams is too few
    for the F(q, G - 1) approximation, which is reported beside it). Returns
    the summary and the fitted model, or None when no lead can be
    estimated."""
    pre = frame[np.isnan(frame["rollout"]) | (frame["event_year"] < 0)].reset_index(drop=True)
    if (pre["event_year"] == -1).sum() == 0:
        return None
    ev = pre["event_year"].to_numpy()
    leads_x = pd.DataFrame(index=pre.index)
    for k in range(2, leads + 2):
        last = k == leads + 1
        ind = (ev <= -k) if last else (ev == -k)
        ind = np.nan_to_num(ind.astype(float), nan=0.0)
        if ind.sum() > 0:
            leads_x[f"year_{-k}{'_or_earlier' if last else ''}"] = ind
    if leads_x.shape[1] == 0:
        return None
    fixed = pd.concat([_dummies(pre["_team"].to_numpy(), "team_"),
                       _dummies(pre["_quarter"].to_numpy(), "quarter_")], axis=1)
    fixed["const"] = 1.0
    def rank(frame: pd.DataFrame) -> int:  # rank(X) = rank(X'X), cheaper for tall X
        a = frame.to_numpy()
        return int(np.linalg.matrix_rank(a.T @ a))

    base_rank = rank(fixed)
    names: list[str] = []
    for col in leads_x.columns:  # keep leads the fixed effects do not absorb
        if rank(pd.concat([fixed, leads_x[[*names, col]]], axis=1)) == base_rank + len(names) + 1:
            names.append(col)
    if not names:
        return None
    x = pd.concat([leads_x[names], fixed], axis=1)
    y = pre["y"].to_numpy(dtype=float)
    res = cluster_ols(y, x, pre["_team"].to_numpy())
    f, p_f = joint_test(res, names)
    p = wild_cluster_pvalue(y, x, names, pre["_team"].to_numpy(), reps=reps, seed=seed)
    summary = {"leads": len(names), "lead_years": names,
               "coefficients": {n: round(float(res.params[n]), 4) for n in names},
               "f_stat": round(f, 3), "pvalue_f": round(p_f, 4), "pvalue": round(p, 4),
               "n": int(len(pre)), "teams": int(pre["_team"].nunique())}
    model = Model(res, pre[["group"]], names,
                  "Pre-trend: outcome before the roll-out by years to the roll-out "
                  "(reference: the year just before; team and quarter effects)")
    return summary, model


def first_stage_model(frame: pd.DataFrame) -> Model:
    """The first stage as a linearmodels fit for the output register: the
    treatment on the leave-one-out propensity, both demeaned within cells
    (the cell effects absorbed), clustered on case managers. Its coefficient
    over its standard error, squared, is :func:`first_stage`'s F."""
    from linearmodels.iv import IV2SLS

    sample = frame[frame[["_d", "_z", "_cell", "case_manager"]].notna().all(axis=1)]
    groups = sample["_cell"].to_numpy()
    dep = pd.Series(_demean(sample["_d"].to_numpy(dtype=float), groups), name="starts")
    exog = pd.DataFrame({"loo_propensity": _demean(sample["_z"].to_numpy(dtype=float),
                                                   groups)})
    clusters = pd.factorize(sample["case_manager"].astype(str))[0]
    res = IV2SLS(dep, exog, None, None).fit(cov_type="clustered", clusters=clusters,
                                             debiased=False)
    started = np.where(sample["_d"].to_numpy() > 0, "started", "did not start")
    return Model(res, pd.DataFrame({"instrument started": started}), ["loo_propensity"],
                 "First stage: starting the instrument on the case manager's leave-one-out "
                 "propensity (cell effects absorbed, clustered on case managers)")


# ---- practical data checks ---------------------------------------------------


def practical_data_checks(city: dict[str, Any], quality: dict[str, Any],
                          linkage: dict[str, Any], settings: dict[str, Any],
                          threshold: int) -> list[Check]:
    """Linkage rate and completeness from ``linkage.json`` and
    ``quality.json``: the same for every sub-study of the city."""
    pcfg = settings["practical"]
    out: list[Check] = []
    rate = (linkage.get("tables", {}).get("clients", {}) or {}).get("linked_share")
    lim = pcfg["linkage_rate"]
    if rate is None:
        out.append(Check("linkage_rate", "fail", "no linkage rate in linkage.json", None, lim))
    else:
        verdict = _levels(float(rate), no_go=lim["no_go"], conditional=lim["conditional"])
        text = {
            "pass": f"{_pct(rate)} of delivered clients linked to CBS (at least "
                    f"{_pct(lim['conditional'], 0)})",
            "conditional": f"{_pct(rate)} of delivered clients linked to CBS (below "
                           f"{_pct(lim['conditional'], 0)}): compare linked and unlinked "
                           "clients for selective linkage",
            "fail": f"only {_pct(rate)} of delivered clients linked to CBS (below "
                    f"{_pct(lim['no_go'], 0)})",
        }[verdict]
        out.append(Check("linkage_rate", verdict, text, round(float(rate), 4), lim))
    min_table = float(pcfg["min_table_completeness"])
    min_col = float(pcfg["min_column_completeness"])
    tables = quality.get("tables", {})
    low_tables, low_cols = [], []
    for table, canon in pcfg["columns"].items():
        info = tables.get(table)
        if info is None:
            if table in city.get("exports", {}).get("files", {}):
                low_tables.append((table, None))
            continue
        comp = float(info.get("dimensions", {}).get("completeness", float("nan")))
        if not comp >= min_table:
            low_tables.append((table, comp))
        mapping = city["exports"]["files"].get(table, {}).get("columns", {}) or {}
        by_col = info.get("completeness_by_column", {}) or {}
        for col in canon:
            export_name = mapping.get(col)
            if export_name is None or export_name not in by_col:
                continue
            value = float(by_col[export_name])
            if value < min_col:
                low_cols.append((table, col, export_name, value))
    if low_tables:
        parts = [f"{t} table " + ("missing from the quality report" if c is None
                                   else f"completeness {_pct(c)}") for t, c in low_tables]
        out.append(Check("table_completeness", "fail",
                         "; ".join(parts) + f" (at least {_pct(min_table, 0)})",
                         {t: c for t, c in low_tables}, min_table))
    else:
        out.append(Check("table_completeness", "pass",
                         f"every delivered table at least {_pct(min_table, 0)} complete",
                         None, min_table))
    if low_cols:
        parts = [f"{col} of {table} ({name}) {_pct(v)} complete" for table, col, name, v in
                 low_cols]
        out.append(Check(
            "column_completeness", "conditional",
            "; ".join(parts) + f" (below {_pct(min_col, 0)}): the panel imputes or drops them; "
            "show that results do not depend on the imputation",
            {f"{t}.{c}": round(v, 4) for t, c, _, v in low_cols}, min_col))
    else:
        out.append(Check("column_completeness", "pass",
                         f"the columns the analysis relies on are at least {_pct(min_col, 0)} "
                         "complete", None, min_col))
    return out


def _data_evidence(quality: dict[str, Any], linkage: dict[str, Any]) -> dict[str, Any]:
    tables = quality.get("tables", {})
    return {
        "linkage_rate": (linkage.get("tables", {}).get("clients", {}) or {}).get("linked_share"),
        "completeness": {t: v.get("dimensions", {}).get("completeness")
                         for t, v in sorted(tables.items())},
    }


def coverage_check(persons: pd.DataFrame, city: dict[str, Any], quality: dict[str, Any],
                   settings: dict[str, Any]) -> tuple[list[Check], dict[str, Any]]:
    """Share of the cohort with 24 months of CBS history before inflow and
    the full follow-up after it within the data."""
    cov = settings["practical"]["coverage"]
    pre_months = 24
    follow = int(city["study"].get("follow_up_months", 24))
    history_from = _month_index(str(cov["cbs_history_from"]))
    data_to = _month_index(str(cov["cbs_data_to"]))
    export = quality.get("export_date")
    if export:
        data_to = min(data_to, _month_index(str(export)[:7]))
    inflow = persons["inflow_month"].astype(str).map(_month_index).to_numpy()
    n = len(inflow)
    pre_share = float((inflow - pre_months >= history_from).mean()) if n else 0.0
    post_share = float((inflow + follow <= data_to).mean()) if n else 0.0
    need = float(cov["min_share"])
    checks = []
    for name, share, what, fix in (
        ("pre_window", pre_share, f"{pre_months} months of CBS history before inflow",
         "restrict the cohort to inflows with a complete history"),
        ("post_window", post_share, f"{follow} months of follow-up within the data",
         "restrict the outcomes to the horizons covered"),
    ):
        if share >= need:
            checks.append(Check(name, "pass", f"{_pct(share)} of the cohort have {what}",
                                round(share, 4), need))
        else:
            checks.append(Check(name, "conditional",
                                f"only {_pct(share)} of the cohort have {what}: {fix}",
                                round(share, 4), need))
    evidence = {"pre_window_share": round(pre_share, 4), "post_window_share": round(post_share, 4),
                "data_to": _month_text(data_to), "history_from": _month_text(history_from)}
    return checks, evidence


# ---- allowed -------------------------------------------------------------------


def legal_checklist(city: dict[str, Any], settings: dict[str, Any], *, uses_health_data: bool
                    ) -> tuple[list[dict[str, Any]], list[Check]]:
    """The city's legal checklist against ``allowed.items``: one row per item
    (for the table), and the checks every sub-study of the city shares."""
    path = city.get("_path", city.get("name", "city"))
    items = settings["allowed"]["items"]
    given = city.get("legal") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: 'legal' must be a mapping of checklist items")
    unknown = sorted(set(given) - set(items))
    if unknown:
        raise ConfigError(f"{path}: legal items {unknown} are not in config/feasibility.yml "
                          f"(allowed.items: {', '.join(items)})")
    rows, checks = [], []
    for key, spec in items.items():
        entry = given.get(key) or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: legal.{key} must be a mapping (status, mandatory, "
                              "evidence)")
        status = str(entry.get("status", "missing"))
        if status not in LEGAL_STATUSES:
            raise ConfigError(f"{path}: legal.{key}.status {status!r} is not one of "
                              f"{', '.join(LEGAL_STATUSES)}")
        floor = spec["mandatory"]
        floor = uses_health_data if floor == "when_health_data" else bool(floor)
        mandatory = floor or bool(entry.get("mandatory", False))
        evidence = str(entry.get("evidence") or "").strip()
        label = spec["label"]
        if status == "complete" and evidence:
            verdict, text = "pass", f"{label}: complete ({evidence})"
        elif status == "complete":
            verdict = "fail" if mandatory else "conditional"
            text = f"{label}: marked complete without an evidence reference"
        elif status == "not_applicable" and not mandatory:
            verdict, text = "pass", f"{label}: not applicable"
        elif status == "not_applicable":
            verdict = "fail"
            text = f"{label}: declared not applicable, but it is mandatory" + (
                " because health data are used" if spec["mandatory"] == "when_health_data"
                else "")
        elif mandatory:
            verdict = "fail"
            text = (f"{label} is {status.replace('_', ' ')}, and it is mandatory: no "
                    "sub-study of this city may start without it")
        else:
            verdict = "conditional"
            text = f"{label} is {status.replace('_', ' ')}: complete it before results are " \
                   "published"
        checks.append(Check(f"legal_{key}", verdict, text, status, "mandatory" if mandatory
                            else "optional"))
        rows.append({"item": label, "status": status.replace("_", " "),
                     "mandatory": "yes" if mandatory else "no",
                     "evidence": evidence or "–", "verdict": verdict})
    return rows, checks


# ---- wanted --------------------------------------------------------------------


def _relevance_for(city: dict[str, Any], settings: dict[str, Any], instrument: str | None
                   ) -> list[dict[str, Any]]:
    path = city.get("_path", city.get("name", "city"))
    wcfg = settings["wanted"]
    levels = wcfg["levels"]
    rel = city.get("relevance") or {}
    rows = []
    for who in wcfg["stakeholders"]:
        entry = rel.get(who)
        if entry is None:
            rows.append({"stakeholder": who, "level": None, "level for this sub-study": None,
                         "note": "", "evidence": ""})
            continue
        level = entry.get("level")
        overrides = entry.get("instruments") or {}
        specific = overrides.get(instrument, level) if instrument else level
        for value in (level, specific):
            if value not in levels:
                raise ConfigError(f"{path}: relevance.{who} level {value!r} is not one of "
                                  f"{', '.join(levels)}")
        rows.append({"stakeholder": who, "level": level, "level for this sub-study": specific,
                     "note": " ".join(str(entry.get("note", "")).split()),
                     "evidence": str(entry.get("evidence", "")),
                     "instruments": dict(overrides)})
    return rows


def wanted_checks(city: dict[str, Any], settings: dict[str, Any], instrument: str | None
                  ) -> list[Check]:
    """Relevance per stakeholder (for this instrument) and the client
    council's concerns answered by safeguards."""
    wcfg = settings["wanted"]
    levels = wcfg["levels"]
    floor = levels.index(wcfg["min_level"])
    rows = _relevance_for(city, settings, instrument)
    checks = []
    low = []
    for row in rows:
        who = STAKEHOLDER_LABELS.get(row["stakeholder"], row["stakeholder"].replace("_", " "))
        level = row["level for this sub-study"]
        if level is None:
            checks.append(Check(f"relevance_{row['stakeholder']}", "conditional",
                                f"relevance to {who} not yet established: ask before "
                                "Phase 2", None, wcfg["min_level"]))
            low.append(row["stakeholder"])
        elif levels.index(level) < floor:
            checks.append(Check(f"relevance_{row['stakeholder']}", "conditional",
                                f"{level} relevance to {who}: discuss the sub-study with "
                                f"them before Phase 2", level, wcfg["min_level"]))
            low.append(row["stakeholder"])
        else:
            checks.append(Check(f"relevance_{row['stakeholder']}", "pass",
                                f"{level} relevance to {who}", level, wcfg["min_level"]))
    if {"policy", "executing_organisation"} <= set(low):
        checks.append(Check("relevance", "fail",
                            "neither policy makers nor the executing organisation rate it "
                            "relevant: nobody would act on the result"))
    concerns = concern_rows(city, settings)
    unanswered = [c["concern"] for c in concerns if not c["safeguards"]]
    if unanswered:
        checks.append(Check("client_concerns", "conditional",
                            "client council concerns without a safeguard in this compendium: "
                            + "; ".join(unanswered), len(unanswered), 0))
    elif concerns:
        checks.append(Check("client_concerns", "pass",
                            f"every concern of the client council ({len(concerns)}) is answered "
                            "by a safeguard", len(concerns), 0))
    else:
        checks.append(Check("client_concerns", "conditional",
                            "the client council's concerns are not recorded: consult the "
                            "council before Phase 2", 0, None))
    return checks


def concern_rows(city: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The client council's concerns of a city, each with its safeguards and
    where the code enforces them. A concern not in the catalogue has no
    safeguard."""
    wcfg = settings["wanted"]
    catalogue = wcfg["client_concerns"]
    safeguards = wcfg["safeguards"]
    council = (city.get("relevance") or {}).get("client_council") or {}
    rows = []
    for key in council.get("concerns") or []:
        spec = catalogue.get(key)
        if spec is None:
            rows.append({"key": key, "concern": str(key), "safeguards": [], "where": []})
            continue
        names = list(spec.get("safeguards") or [])
        rows.append({
            "key": key,
            "concern": spec["concern"],
            "safeguards": [safeguards[s]["label"] for s in names],
            "where": [w for s in names for w in safeguards[s]["where"]],
        })
    return rows


def relevance_tables(city: dict[str, Any], settings: dict[str, Any]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = _relevance_for(city, settings, None)
    return rows, concern_rows(city, settings)


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


def record(assessment: Assessment, *, city: dict[str, Any], size: str,
           settings: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The content of ``feasibility.json``: one record per sub-study (the
    four criteria with their checks and evidence, the decision, the reasons
    and the conditions), the city's legal checklist and relevance, and the
    settings used."""
    subs = [s.as_dict(labels) for s in assessment.substudies]
    counts = {d: sum(1 for s in subs if s["decision"] == d) for d in DECISIONS}
    return {
        "city": city["name"],
        "display_name": city.get("display_name", city["name"]),
        "size": size,
        "designs": list(DESIGNS),
        "criteria": list(CRITERIA),
        "decisions": counts,
        "substudies": subs,
        "legal": assessment.legal,
        "relevance": [{k: v for k, v in r.items() if k != "level for this sub-study"}
                      for r in assessment.relevance],
        "client_concerns": assessment.concerns,
        "city_evidence": {k: _json_value(v) for k, v in assessment.city_evidence.items()},
        "settings": {k: v for k, v in settings.items() if not k.startswith("_")},
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _round(x: float, digits: int) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(float(x)) else None


# ---------------------------------------------------------------------------
# reading the files: Phase 2 and the Phase 1 chapter
# ---------------------------------------------------------------------------


def feasibility_path(city: str, size: str, root: Path | None = None) -> Path:
    """``build/<size>/<city>/research/feasibility.json`` (research domain)."""
    return Paths.for_size(size, root).city_build_domain(city, "research") / FILE_NAME


def read(city: str, size: str, root: Path | None = None) -> dict[str, Any]:
    """``build/<size>/<city>/research/feasibility.json``: for Phase 2 and
    tests in the research domain; the book uses :func:`released_record`."""
    path = feasibility_path(city, size, root)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run the feasibility step (05_feasibility) for {city} first"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def substudies_to_run(city: str, size: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The sub-studies of ``city`` that Phase 2 may run: those whose decision
    is go or conditional, in report order. Each is the full record of
    ``feasibility.json`` (``id``, ``design``, ``instrument``, ``decision``,
    ``conditions`` to honour, ``criteria`` with their evidence).

    Phase 2 steps should show the others with their reasons; use
    :func:`read` for all records."""
    return [s for s in read(city, size, root)["substudies"]
            if s["decision"] in ("go", "conditional")]


def _all_records(paths: Paths) -> dict[str, dict[str, Any] | None]:
    labels = {k: v["label"] for k, v in load_instruments(paths.root).items()}
    return {city: released_record(paths, city, labels) for city in list_cities(paths.root)}


def released_record(paths: Paths, city: str, labels: dict[str, str]) -> dict[str, Any] | None:
    """The Phase 1 record of a city as the book may see it, or None when its
    feasibility step has not run: decisions and verdicts from the registered
    table ``decisions``, reasons and conditions from ``reasons``, both read
    as released (role ``publisher``, checksums verified; see
    :mod:`reintegration.released`). It has the keys of :func:`record` that
    the chapter uses; the criteria carry their verdicts only."""
    decisions = released.read_table(paths, city, f"{STEP}/decisions")
    if decisions is None:
        return None
    texts: dict[tuple[str, str], list[str]] = {}
    reasons = released.read_table(paths, city, f"{STEP}/reasons")
    for row in [] if reasons is None else reasons.to_dict("records"):
        texts.setdefault((row["sub-study"], row["kind"]), []).append(row["text"])
    subs = []
    for row in decisions.to_dict("records"):
        sid = row["sub-study"]
        design, instrument = sid.split("/", 1)
        instrument = None if instrument == NO_INSTRUMENT else instrument
        subs.append({
            "id": sid, "design": design, "instrument": instrument,
            "instrument_label": labels.get(instrument or "", "none rolled out"),
            "decision": row["decision"],
            "reasons": texts.get((sid, "reason"), []),
            "conditions": texts.get((sid, "condition"), []),
            "criteria": {c: {"verdict": row[c]} for c in CRITERIA},
        })
    return {"city": city, "display_name": load_city(city, paths.root)["display_name"],
            "substudies": subs}


def matrix_columns(root: Path | None = None) -> list[tuple[str, str | None]]:
    """The columns of the feasibility matrix: selection on observables per
    instrument, the roll-out (one column, whatever the city rolled out), the
    case-manager IV per instrument."""
    instruments = list(load_instruments(root))
    return ([("selection_on_observables", i) for i in instruments] + [("rollout_did", None)]
            + [("case_manager_iv", i) for i in instruments])


def _cell(rec: dict[str, Any] | None, design: str, instrument: str | None) -> dict | None:
    if rec is None:
        return None
    for s in rec["substudies"]:
        if s["design"] == design and (design == "rollout_did" or s["instrument"] == instrument):
            return s
    return None


_SYMBOL = {"go": "go", "conditional": "cond.", "no-go": "no-go"}


def phase1_markdown(paths: Paths) -> str:
    """The generated part of the Phase 1 chapter: the city x sub-study matrix
    (decisions only) and the advice per city with the reasons and conditions
    of every sub-study, from the released tables of each city's feasibility
    step (:func:`released_record`)."""
    root = paths.root
    labels = {k: v["label"] for k, v in load_instruments(root).items()}
    records = _all_records(paths)
    cols = matrix_columns(root)
    lines = [
        f"Decisions of this build (synthetic data, size `{paths.size}`), from the "
        "feasibility step of each city. *go*: run in Phase 2; *cond.*: run, under the "
        "conditions listed below; *no-go*: not run, for the reasons listed below.",
        "",
    ]
    for design in DESIGNS:
        dcols = [c for c in cols if c[0] == design]
        head = ["city"] + [labels[i] if i else "instrument rolled out" for _, i in dcols]
        lines += [f"**{DESIGN_LABELS[design]}**", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for city, rec in records.items():
            name = rec["display_name"] if rec else load_city(city, root)["display_name"]
            cells = []
            for d, i in dcols:
                s = _cell(rec, d, i)
                if s is None:
                    cells.append("not assessed")
                elif d == "rollout_did" and s["instrument"]:
                    cells.append(f"{_SYMBOL[s['decision']]} ({s['instrument_label']})")
                else:
                    cells.append(_SYMBOL[s["decision"]])
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Advice per city", ""]
    for city, rec in records.items():
        if rec is None:
            name = load_city(city, root)["display_name"]
            lines += [f"### {name}", "", "Not assessed in this build: the feasibility step "
                      "has not run for this city.", ""]
            continue
        lines += [f"### {rec['display_name']}", "", city_advice(rec), ""]
        lines += _city_details(rec)
    return "\n".join(lines)


def _shared(lists: list[list[str]]) -> list[str]:
    """Items present in every list, in the order of the first."""
    if not lists:
        return []
    common = set(lists[0]).intersection(*map(set, lists[1:]))
    return [x for x in lists[0] if x in common]


def _city_details(rec: dict[str, Any]) -> list[str]:
    """Conditions shared by the city's running sub-studies (once), those
    shared within a design (once per design), then per sub-study what is
    left: the reasons of a no-go, the remaining conditions of a conditional."""
    subs = rec["substudies"]
    running = [s for s in subs if s["decision"] != "no-go"]
    city_wide = _shared([s["conditions"] for s in running]) if len(running) > 1 else []
    lines = []
    if city_wide:
        lines += ["Conditions for every sub-study of the city that runs:", ""]
        lines += [f"- {c}" for c in city_wide]
        lines.append("")
    for design in DESIGNS:
        dsubs = [s for s in subs if s["design"] == design]
        drun = [s for s in dsubs if s["decision"] != "no-go"]
        design_wide = [c for c in _shared([s["conditions"] for s in drun])
                       if c not in city_wide] if len(drun) > 1 else []
        dstop = [s for s in dsubs if s["decision"] == "no-go"]
        stop_wide = _shared([s["reasons"] for s in dstop]) if len(dstop) > 1 else []
        lines += [f"*{DESIGN_LABELS[design]}*", ""]
        if design_wide:
            lines.append("- conditions for every sub-study of this design that runs: "
                         + "; ".join(design_wide))
        if stop_wide:
            lines.append("- reasons for every no-go of this design: " + "; ".join(stop_wide))
        for s in dsubs:
            name = (s["instrument_label"] if s["instrument"] else "none rolled out")
            if s["decision"] == "no-go":
                rest = [r for r in s["reasons"] if r not in stop_wide]
                lines.append(f"- **{name}**: **no-go**" + (": " + "; ".join(rest) if rest
                                                            else "") + ".")
            else:
                rest = [c for c in s["conditions"] if c not in city_wide and
                        c not in design_wide]
                tail = (": " + "; ".join(rest)) if rest else ""
                lines.append(f"- **{name}**: **{s['decision']}**{tail}.")
        lines.append("")
    return lines


def city_advice(rec: dict[str, Any]) -> str:
    """One paragraph of advice for a city, from its records."""
    subs = rec["substudies"]
    by = {d: [s for s in subs if s["decision"] == d] for d in DECISIONS}
    allowed_fail = [s for s in subs if s["criteria"]["allowed"]["verdict"] == "fail"]
    parts = []
    if subs and len(allowed_fail) == len(subs):
        legal = sorted({r.split(": ", 1)[1] for s in allowed_fail for r in s["reasons"]
                        if r.startswith("allowed: ")})
        parts.append("No sub-study may start: the legal checklist is not complete ("
                     + "; ".join(legal) + ").")
    go = [_short(s) for s in by["go"]]
    cond = [_short(s) for s in by["conditional"]]
    if go:
        parts.append("Go: " + ", ".join(go) + ".")
    if cond:
        parts.append("Conditional: " + ", ".join(cond) + ".")
    for design in DESIGNS:
        nogo = [s for s in by["no-go"] if s["design"] == design]
        total = [s for s in subs if s["design"] == design]
        if nogo and len(nogo) == len(total):
            first = _common_reasons(nogo)
            why = ("; ".join(first) if first else "see the reasons per sub-study")
            parts.append(f"No-go for every {DESIGN_SHORT[design]} sub-study: {why}.")
        elif nogo:
            parts.append(f"No-go for {DESIGN_SHORT[design]}: "
                         + ", ".join(s["instrument_label"].lower() for s in nogo) + ".")
    return " ".join(parts) if parts else "No sub-studies."


def _short(s: dict[str, Any]) -> str:
    if s["design"] == "rollout_did":
        return f"roll-out of {s['instrument_label'].lower()}"
    return f"{DESIGN_SHORT[s['design']]} for {s['instrument_label'].lower()}"


def _common_reasons(subs: list[dict[str, Any]]) -> list[str]:
    common = set(subs[0]["reasons"])
    for s in subs[1:]:
        common &= set(s["reasons"])
    return [r for r in subs[0]["reasons"] if r in common]


_COLOURS = {"go": "#4c9a5b", "conditional": "#e2b33c", "no-go": "#c8553d", None: "#dddddd"}


def matrix_figure(paths: Paths, out_png: str | Path) -> Path:
    """Draw the city x sub-study matrix (decisions only, no counts) to
    ``out_png`` with matplotlib; returns the path. Deterministic bytes (no
    timestamp in the PNG), written only when they change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from . import atomic

    root = paths.root
    labels = {k: v["label"] for k, v in load_instruments(root).items()}
    records = _all_records(paths)
    cols = matrix_columns(root)
    cities = list(records)
    fig, ax = plt.subplots(figsize=(2.2 + 0.62 * len(cols), 2.2 + 0.45 * len(cities)))
    for r, city in enumerate(cities):
        rec = records[city]
        for c, (design, instrument) in enumerate(cols):
            s = _cell(rec, design, instrument)
            decision = s["decision"] if s else None
            ax.add_patch(plt.Rectangle((c, r), 0.94, 0.9, color=_COLOURS[decision]))
            text = _SYMBOL.get(decision, "–") if decision else "–"
            ax.text(c + 0.47, r + 0.45, text, ha="center", va="center", fontsize=7,
                    color="white" if decision in ("go", "no-go") else "black")
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(cities), 0)
    ax.set_yticks([i + 0.45 for i in range(len(cities))])
    names = [(records[c] or {}).get("display_name") or load_city(c, root)["display_name"]
             for c in cities]
    ax.set_yticklabels(names)
    xl = [labels[i] if i else "rolled-out instrument" for _, i in cols]
    ax.set_xticks([i + 0.47 for i in range(len(cols))])
    ax.set_xticklabels(xl, rotation=55, ha="right", fontsize=8)
    start = 0
    for design in DESIGNS:
        width = sum(1 for d, _ in cols if d == design)
        ax.text(start + width / 2, -0.25, DESIGN_LABELS[design].replace(" (", "\n("),
                ha="center", va="bottom", fontsize=8, fontweight="bold")
        if start:
            ax.axvline(start - 0.03, color="black", linewidth=1)
        start += width
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    handles = [Patch(color=_COLOURS[d], label=d) for d in DECISIONS]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, title="decision", title_fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic.write_if_changed(out, buf.getvalue())
    return out


# ---------------------------------------------------------------------------
# tables for the step's page (configuration and verdicts; no person counts)
# ---------------------------------------------------------------------------


def substudy_table(city: dict[str, Any], labels: dict[str, str], instruments: Sequence[str]
                   ) -> pd.DataFrame:
    """The sub-studies of a city, from its configuration."""
    offered = offered_instruments(city)
    rows = []
    for design, instrument in substudy_ids(city, instruments):
        rows.append({
            "sub-study": f"{design}/{instrument or NO_INSTRUMENT}",
            "design": DESIGN_LABELS[design],
            "instrument": labels.get(instrument, "none rolled out") if instrument
            else "none rolled out",
            "offered by the city": ("yes" if instrument in offered else "no")
            if instrument else "–",
        })
    return pd.DataFrame(rows).set_index("sub-study")


def decision_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    """Verdict per criterion and the decision per sub-study: categories only."""
    rows = []
    for s in assessment.substudies:
        decision, _, _ = s.decision()
        row = {"sub-study": s.id}
        for c in CRITERIA:
            row[c] = criterion_verdict(s.criteria.get(c, []))
        row["decision"] = decision
        rows.append(row)
    return pd.DataFrame(rows).set_index("sub-study")


def reasons_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    """Reasons and conditions per sub-study, one row each (``kind`` is
    *reason* or *condition*): the texts of the checks, in which counts of
    persons below the disclosure threshold are written as "fewer than ...".
    Registered by the step; the Phase 1 chapter reads it."""
    rows = []
    for s in assessment.substudies:
        decision, reasons, conditions = s.decision()
        for kind, items in (("reason", reasons), ("condition", conditions)):
            rows += [{"sub-study": s.id, "decision": decision, "kind": kind, "text": t}
                     for t in items]
    return pd.DataFrame(rows, columns=["sub-study", "decision", "kind", "text"]).set_index(
        "sub-study")


def reasons_markdown(assessment: Assessment, labels: dict[str, str]) -> str:
    """Reasons and conditions per sub-study, as Markdown text (they contain no
    count of persons below the disclosure threshold)."""
    lines = []
    for s in assessment.substudies:
        decision, reasons, conditions = s.decision()
        label = labels.get(s.instrument or "", "no roll-out")
        lines.append(f"- **{DESIGN_LABELS[s.design]}, {label.lower()}**: {decision}")
        lines += [f"  - reason, {r}" for r in reasons]
        lines += [f"  - condition, {c}" for c in conditions]
    return "\n".join(lines)


def checks_markdown(assessment: Assessment, substudy_id: str, criterion: str) -> str:
    """The checks of one criterion of one sub-study, as Markdown bullets."""
    s = assessment.get(substudy_id)
    return "\n".join(f"- *{c.verdict}*: {c.text}" for c in s.criteria.get(criterion, []))


def legal_table(assessment: Assessment) -> pd.DataFrame:
    return pd.DataFrame(assessment.legal).set_index("item")


def relevance_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for r in assessment.relevance:
        over = r.get("instruments") or {}
        rows.append({
            "stakeholder": STAKEHOLDER_LABELS.get(r["stakeholder"], r["stakeholder"]),
            "relevance": r["level"] or "not established",
            "except": ", ".join(f"{labels.get(k, k).lower()}: {v}" for k, v in over.items())
            or "–",
            "note": r["note"] or "–",
            "evidence": r["evidence"] or "–",
        })
    return pd.DataFrame(rows).set_index("stakeholder")


def concerns_table(assessment: Assessment) -> pd.DataFrame:
    rows = [{"concern of the client council": c["concern"],
             "safeguard": ", ".join(c["safeguards"]) or "none",
             "enforced in": ", ".join(f"{w}" for w in c["where"]) or "–"}
            for c in assessment.concerns]
    return pd.DataFrame(rows).set_index("concern of the client council")


def safeguards_table(settings: dict[str, Any]) -> pd.DataFrame:
    rows = [{"safeguard": s["label"], "where the code enforces it": ", ".join(s["where"]),
             "how": " ".join(str(s["how"]).split())}
            for s in settings["wanted"]["safeguards"].values()]
    return pd.DataFrame(rows).set_index("safeguard")


def thresholds_table(settings: dict[str, Any]) -> pd.DataFrame:
    """Every threshold of ``config/feasibility.yml`` as (setting, value)."""
    rows = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append({"setting": prefix, "value": _flat(node)})

    for section in ("theoretical", "practical"):
        walk(section, settings[section])
    rows.append({"setting": "outcome", "value": settings["outcome"]})
    return pd.DataFrame(rows).set_index("setting")


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str):
        return " ".join(value.split())
    return str(value)


def criterion_markdown(assessment: Assessment, criterion: str, labels: dict[str, str],
                       designs: Sequence[str] | None = None) -> str:
    """The checks of one criterion as Markdown bullets: checks that are the
    same for every sub-study listed once, then the rest per sub-study (of
    ``designs``, default all). Checks not assessed (because an earlier check
    failed) are left out."""
    subs = [s for s in assessment.substudies if designs is None or s.design in designs]
    if not subs:
        return ""
    texts = [[(c.verdict, c.text) for c in s.criteria.get(criterion, [])
              if c.verdict != "not_assessed"] for s in subs]
    shared = [t for t in texts[0] if all(t in other for other in texts[1:])]
    lines = []
    if shared and len(subs) > 1:
        lines.append("For every sub-study below:")
        lines += [f"- *{v}*: {t}" for v, t in shared]
        lines.append("")
    for s, own in zip(subs, texts, strict=True):
        rest = [(v, t) for v, t in own if (v, t) not in shared or len(subs) == 1]
        if not rest:
            continue
        label = labels.get(s.instrument or "", "no roll-out")
        lines.append(f"- **{DESIGN_SHORT[s.design]}, {label.lower()}**:")
        lines += [f"  - *{v}*: {t}" for v, t in rest]
    return "\n".join(lines)


def quoted_counts(assessment: Assessment, labels: dict[str, str], threshold: int) -> pd.DataFrame:
    """Every count of persons the checks' sentences quote (group sizes such
    as "1 270 persons in the comparison group"), one row per sub-study and
    check, so the sentences' numbers are a registered, checked output too;
    a count below ``threshold`` is quoted as "fewer than" and is empty here."""
    rows = []
    for s in assessment.substudies:
        label = labels.get(s.instrument or "", "no roll-out")
        for criterion, checks in s.criteria.items():
            for c in checks:
                quoted = c.verdict != "not_assessed" and "persons" in c.text
                if not (quoted and c.name.startswith("n_") and isinstance(c.value, int | float)):
                    continue
                rows.append({
                    "sub-study": f"{DESIGN_SHORT[s.design]}, {label.lower()}",
                    "criterion": criterion,
                    "check": c.name,
                    "persons": int(c.value) if c.value >= threshold else None,
                })
    return pd.DataFrame(rows, columns=["sub-study", "criterion", "check", "persons"]).astype(
        {"persons": "Int64"}
    )


def labelled(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """An evidence frame with instrument labels (in taxonomy order) instead
    of keys, for tables a reader sees."""
    out = frame.copy()
    if "instrument" in out.columns:
        order = [labels[k] for k in labels if k in set(out["instrument"])]
        out["instrument"] = pd.Categorical(out["instrument"].map(labels), categories=order,
                                           ordered=True)
    for col, order in (("propensity", None), ("clients per case manager", CASELOAD_BANDS),
                       ("propensity tercile", ("low", "middle", "high")),
                       ("group", None)):
        if col in out.columns and order is not None:
            present = [b for b in order if b in set(out[col])]
            out[col] = pd.Categorical(out[col], categories=present, ordered=True)
    return out


CASELOAD_BANDS = ("1-9", "10-19", "20-29", "30-49", "50-99", "100 or more")


#: how the overlap table's blocks join the cohort's other tables (see
#: :func:`reintegration.protection.split_blocks`): per instrument, its
#: "treated" are the persons whose first instrument it is and its "no
#: instrument" the persons without one, so each block's columns add up to
#: counts the take-up table publishes
OVERLAP_BLOCKS = {
    "by": "instrument",
    "rename": {"group": "instrument"},
    "relabel": {"group": {"treated": "{block}", "no instrument": "No instrument"}},
}


def overlap_figure(released: Any, *, threshold: int | None = None) -> Any:
    """Small multiples of the propensity-score distribution of the treated
    and of the persons without an instrument, per instrument, drawn from the
    released overlap table. Shares are of the persons in the cells shown; a
    suppressed cell is a hatched box of one nominal height for the whole
    figure (see :mod:`reintegration.figures`), not a share."""
    import matplotlib.pyplot as plt

    from . import figures

    threshold = figures.threshold_of(released, threshold)
    table = getattr(released, "table", released)
    instruments = list(dict.fromkeys(table.index.get_level_values(0)))
    groups = [g for g in ("no instrument", "treated") if g in table.columns]
    shares = {}
    for instrument in instruments:
        part = table.xs(instrument, level=0)
        for group in groups:
            counts = part[group].astype(float)
            shares[(instrument, group)] = counts / counts.sum(skipna=True)
    nominal = figures.nominal_size(np.concatenate([v.to_numpy() for v in shares.values()])
                                   if shares else [])
    cols = 3
    rows = max(1, math.ceil(len(instruments) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.6 * rows), sharey=True, squeeze=False)
    for ax in axes.ravel()[len(instruments):]:
        ax.set_visible(False)
    colours = {"treated": "#2f5d8c", "no instrument": "#d08c60"}
    drawn = 0
    for ax, instrument in zip(axes.ravel(), instruments, strict=False):
        bands = [str(b) for b in table.xs(instrument, level=0).index]
        x = np.arange(len(bands))
        for k, group in enumerate(["no instrument", "treated"]):
            if group not in groups:
                continue
            share = shares[(instrument, group)].to_numpy()
            figures.bar_or_suppressed(ax, x + (k - 0.5) * 0.4, share, nominal=nominal,
                                      width=0.4, colour=colours[group], label=group)
            drawn += int(np.isnan(share).sum())
        ax.set_title(str(instrument), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(bands, rotation=45, ha="right", fontsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for row in axes:
        row[0].set_ylabel("share of the group\n(in the bands shown)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    keep = dict(zip(names, handles, strict=True))  # one entry per group
    handles, names = figures.add_key(list(keep.values()), list(keep), drawn, threshold)
    axes[0, 0].legend(handles, names, frameon=False, fontsize=8)
    fig.suptitle("Propensity scores of the treated and of persons without an instrument",
                 fontsize=10)
    fig.tight_layout()
    return fig

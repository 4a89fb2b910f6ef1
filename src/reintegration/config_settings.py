"""Typed models of the shared settings: feasibility, effects, disclosure, synthetic.

See :mod:`reintegration.config_models` for the conventions (frozen, unknown
keys rejected, descriptions document the keys).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .config_models import Month, Share, Strict, Synthetic

Pvalue = Share


class Levels(Strict):
    """A check with two lines: below ``no_go`` it fails, below ``conditional`` it
    passes with a condition (or above, for shares that must stay small)."""

    conditional: float
    no_go: float


# ---------------------------------------------------------------------------
# config/feasibility.yml
# ---------------------------------------------------------------------------


class SelectionOnObservablesCheck(Strict):
    trim_bounds: list[Share] = Field(min_length=2, max_length=2)
    share_treated_trimmed: Levels
    standing_condition: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SelectionOnObservablesCheck:
        if not self.trim_bounds[0] < self.trim_bounds[1]:
            raise ValueError("trim_bounds must be [lower, upper] with lower < upper")
        return self


class CaseManagerIVCheck(Strict):
    cells: list[str] = Field(min_length=1)
    min_identifier_coverage: Share
    clients_per_case_manager: Levels
    min_share_multi_manager_cells: Share
    min_first_stage_f: float = Field(ge=0)
    balance_pvalue: Pvalue


class RolloutCheck(Strict):
    teams_per_side: Levels
    min_pre_months: int = Field(ge=0)
    min_post_months: int = Field(ge=0)
    takeup_pvalue: Pvalue
    pretrend_leads: int = Field(ge=1)
    pretrend_pvalue: Pvalue
    bootstrap_replications: int = Field(ge=1)
    bootstrap_seed: int


class Theoretical(Strict):
    selection_on_observables: SelectionOnObservablesCheck
    case_manager_iv: CaseManagerIVCheck
    rollout_did: RolloutCheck


class Power(Strict):
    alpha: float = Field(gt=0, lt=1)
    power: float = Field(gt=0, lt=1)
    policy_effect: float = Field(gt=0)
    no_go_factor: float | None = Field(None, ge=1)


class Coverage(Strict):
    cbs_history_from: Month
    cbs_data_to: Month
    min_share: Share


class Practical(Strict):
    linkage_rate: Levels
    min_table_completeness: Share
    min_column_completeness: Share
    columns: dict[str, list[str]]
    min_treated: int = Field(ge=1)
    min_comparison: int = Field(ge=1)
    power: Power
    coverage: Coverage


class AllowedItem(Strict):
    label: str
    mandatory: bool | Literal["when_health_data"]


class Allowed(Strict):
    items: dict[str, AllowedItem]


class Safeguard(Strict):
    label: str
    where: list[str] = Field(min_length=1)
    how: str


class Concern(Strict):
    concern: str
    safeguards: list[str] = Field(default_factory=list)


class Wanted(Strict):
    levels: list[str] = Field(min_length=1)
    min_level: str
    stakeholders: list[str]
    safeguards: dict[str, Safeguard]
    client_concerns: dict[str, Concern]

    @model_validator(mode="after")
    def _references(self) -> Wanted:
        if self.min_level not in self.levels:
            raise ValueError(f"min_level {self.min_level!r} is not one of levels")
        for key, spec in self.client_concerns.items():
            for s in spec.safeguards:
                if s not in self.safeguards:
                    raise ValueError(
                        f"client_concerns.{key} names safeguard {s!r}, which is not in safeguards"
                    )
        return self


class Feasibility(Strict):
    """``config/feasibility.yml``: Phase 1 thresholds and catalogues."""

    outcome: str
    covariates: list[str] = Field(min_length=1)
    health_data_columns: list[str] = Field(default_factory=list)
    theoretical: Theoretical
    practical: Practical
    allowed: Allowed
    wanted: Wanted


# ---------------------------------------------------------------------------
# config/effects.yml
# ---------------------------------------------------------------------------


class SelectionOnObservablesEstimate(Strict):
    method: Literal["ra", "ipw", "aipw"]
    folds: int = Field(ge=2)
    seed: int
    trim: float = Field(ge=0, lt=0.5)
    max_month: int = Field(ge=0)
    min_stratum_treated: int = Field(ge=1)
    subgroup_method: Literal["ra", "ipw", "aipw"]


class Placebo(Strict):
    draws: dict[Literal["small", "full"], int]
    permutations: int = Field(ge=1)
    seed: int


class RolloutEstimate(Strict):
    period: Literal["month", "quarter"]
    reach_months: int = Field(ge=0)
    leads: int = Field(ge=1)
    lags: int = Field(ge=1)
    reference: int = Field(lt=0)
    baseline: Literal["pre_mean", "reference"]
    permutations: int = Field(ge=0)
    subgroup_permutations: int = Field(ge=0)
    seed: int
    placebo: Placebo


class CaseManagerIVEstimate(Strict):
    cells: list[str] = Field(min_length=1)


class MinGroup(Strict):
    treated: int = Field(ge=1)
    control: int = Field(ge=1)
    clusters: int = Field(ge=1)


class Effects(Strict):
    """``config/effects.yml``: Phase 2 settings."""

    outcomes: dict[str, str] = Field(min_length=1)
    covariates: list[str] = Field(min_length=1)
    selection_on_observables: SelectionOnObservablesEstimate
    rollout_did: RolloutEstimate
    case_manager_iv: CaseManagerIVEstimate
    subgroups: dict[str, str]
    min_group: MinGroup


# ---------------------------------------------------------------------------
# config/disclosure.yml
# ---------------------------------------------------------------------------


class Dominance(Strict):
    nk_n: int = Field(ge=1)
    nk_k: float = Field(gt=0, le=1)
    p_ratio: float = Field(gt=0, lt=1)


class Disclosure(Strict):
    """``config/disclosure.yml``: statistical disclosure control rules."""

    cell_threshold: int = Field(ge=1)
    dominance: Dominance
    residual_dof: int = Field(ge=1)
    release_minima_maxima: Literal[False] = Field(
        description="Must be false: a minimum or maximum describes one person."
    )
    zeros_disclosive: bool
    proportions_as_counts: bool = True
    check_missing_values: bool = False


# ---------------------------------------------------------------------------
# config/synthetic.yml
# ---------------------------------------------------------------------------


class SyntheticFile(Strict):
    """``config/synthetic.yml``: the generator's shared settings."""

    seed: int
    horizons: list[int] = Field(min_length=1)
    defaults: Synthetic

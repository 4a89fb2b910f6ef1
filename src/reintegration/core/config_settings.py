"""Typed models of the shared settings: feasibility, effects, disclosure, synthetic,
CBS files.

See :mod:`reintegration.core.config_models` for the conventions (frozen, unknown
keys rejected, descriptions document the keys). The comments in each YAML
file say why a value was chosen; the descriptions here say what a key means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .cbs_columns import CBS_COLUMNS
from .config_models import Month, Num, Share, Strict, Synthetic, _opt


def _d(description: str, **limits: object) -> object:
    """A required key with its description."""
    return Field(description=description, **limits)  # type: ignore[arg-type]


class Levels(Strict):
    """A check with two lines: one where it fails (no_go) and one where it stops
    passing cleanly (conditional)."""

    conditional: Num = _d("The line at which the check becomes conditional.")
    no_go: Num = _d("The line at which the check fails.")


# ---------------------------------------------------------------------------
# config/feasibility.yml
# ---------------------------------------------------------------------------


class SelectionOnObservablesCheck(Strict):
    """Theoretical criterion of selection on observables."""

    trim_bounds: list[Share] = _d(
        "Propensity scores outside [lower, upper] count as outside the common support "
        "(Phase 1 overlap check; Phase 2 drops only scores above 1 - trim of effects.yml).",
        min_length=2,
        max_length=2,
    )
    share_treated_trimmed: Levels = _d(
        "Share of the treated outside the bounds: above conditional the estimand shrinks, "
        "above no_go too many are lost."
    )
    standing_condition: str | None = Field(
        None,
        description="Condition set on every sub-study of this design (untestable "
        "unconfoundedness); null drops it.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> SelectionOnObservablesCheck:
        if not self.trim_bounds[0] < self.trim_bounds[1]:
            raise ValueError("trim_bounds must be [lower, upper] with lower < upper")
        return self


class CaseManagerIVCheck(Strict):
    """Theoretical criterion of the case-manager instrument."""

    min_identifier_coverage: Share = _d("Share of the cohort with a case-manager identifier.")
    clients_per_case_manager: Levels = _d("Median clients per case manager in the cohort.")
    min_share_multi_manager_cells: Share = _d(
        "Share of clients in cells with at least two case managers."
    )
    min_first_stage_f: Num = _d("First-stage F statistic (cluster-robust) at least.", ge=0)
    balance_pvalue: Share = _d("A balance-test p-value below this makes the sub-study conditional.")


class RolloutCheck(Strict):
    """Theoretical criterion of the team-by-team roll-out."""

    teams_per_side: Levels = _d("Teams that rolled out, and teams that did not, each at least.")
    min_pre_months: int = _d("Months of inflow before the first roll-out.", ge=0)
    min_post_months: int = _d("Months of inflow after the last roll-out.", ge=0)
    takeup_pvalue: Share = _d("The roll-out must raise take-up significantly at this level.")
    pretrend_pvalue: Share = _d("A pre-trend p-value below this fails the design.")
    power_draws: int = _d("Assignments taken as the true one in the power calculation.", ge=10)


class Theoretical(Strict):
    """Can the design show a causal effect here?"""

    selection_on_observables: SelectionOnObservablesCheck = _d("Selection on observables.")
    case_manager_iv: CaseManagerIVCheck = _d("Case-manager instrumental variable.")
    rollout_did: RolloutCheck = _d("Roll-out difference-in-differences (event study).")


class Power(Strict):
    """Minimum detectable effect against the effect that matters for policy."""

    alpha: Num = _d("Two-sided significance level.", gt=0, lt=1)
    power: Num = _d("Power.", gt=0, lt=1)
    policy_effect: Num = _d("Policy-relevant effect on the outcome (share).", gt=0)
    no_go_factor: Num | None = Field(
        None, ge=1, description="An MDE above this multiple of policy_effect is no-go; null: never."
    )


class Coverage(Strict):
    """Coverage of the CBS windows around inflow."""

    cbs_history_from: Month = _d("First month of CBS history (SPOLISBUS starts in 2010).")
    cbs_data_to: Month = _d("Last month of CBS data available.")
    min_share: Share = _d("Share of the cohort with a complete window, at least.")


class Practical(Strict):
    """Are the data available and good enough, is the sample large enough?"""

    linkage_rate: Levels = _d("Share of delivered clients linked to a RINPERSOON.")
    min_table_completeness: Share = _d("Completeness of each delivered table.")
    min_column_completeness: Share = _d(
        "Completeness of the columns in columns; below: conditional."
    )
    columns: dict[str, list[str]] = _d("Table -> canonical columns the analysis relies on.")
    min_treated: int = _d("Persons in the treatment group, at least.", ge=1)
    min_comparison: int = _d("Persons in the comparison group, at least.", ge=1)
    power: Power = _d("Minimum detectable effect.")
    coverage: Coverage = _d("Windows around inflow.")


class AllowedItem(Strict):
    """One item of the legal checklist."""

    label: str = _d("The item and its legal source.")
    mandatory: bool | Literal["when_health_data"] = _d(
        "true, false, or when_health_data (mandatory when a health covariate is used)."
    )


class Allowed(Strict):
    """Is the processing lawful?"""

    items: dict[str, AllowedItem] = _d("The checklist every city fills in under legal.")


class Safeguard(Strict):
    """A safeguard and where the code enforces it."""

    label: str = _d("Name shown in the book.")
    where: list[str] = _d(
        "Module and function or constant (a test checks each exists).", min_length=1
    )
    how: str = _d("What it does.")


class Concern(Strict):
    """A concern of the client council."""

    concern: str = _d("The concern in plain words.")
    safeguards: list[str] = Field(
        default_factory=list, description="Keys of wanted.safeguards that answer it."
    )


class Wanted(Strict):
    """Is it relevant to policy, the executing organisation and clients?"""

    levels: list[str] = _d("The relevance scale, low to high.", min_length=1)
    min_level: str = _d("Below this for one stakeholder: conditional; for two: no-go.")
    stakeholders: list[str] = _d("The stakeholders every city rates under relevance.")
    safeguards: dict[str, Safeguard] = _d("The compendium's safeguards.")
    client_concerns: dict[str, Concern] = _d("Concerns a council may raise, each answered.")

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

    outcome: str = _d("Primary outcome (a column of persons.parquet).")
    covariates: list[str] = _d("Covariates at inflow for the propensity score.", min_length=1)
    health_data_columns: list[str] = Field(
        default_factory=list,
        description="Covariates that are health data (GDPR art. 9); using one makes "
        "art9_condition mandatory.",
    )
    theoretical: Theoretical = _d("Design diagnostics.")
    practical: Practical = _d("Data and sample.")
    allowed: Allowed = _d("Legal checklist.")
    wanted: Wanted = _d("Relevance and the client council's concerns.")


# ---------------------------------------------------------------------------
# config/effects.yml
# ---------------------------------------------------------------------------

Method = Literal["ra", "ipw", "aipw"]


class SelectionOnObservablesEstimate(Strict):
    """Phase 2 selection on observables (dynamic comparison by elapsed month)."""

    method: Method = _d("ra, ipw or aipw (cross-fitted doubly robust).")
    folds: int = _d("Cross-fitting folds.", ge=2)
    seed: int = _d("Seed of the fold split.")
    trim: Num = _d(
        "Rows with a propensity score above 1 - trim are dropped (upper tail only, no clipping).",
        ge=0,
        lt=0.5,
    )
    max_month: int = _d("Risk sets for elapsed months 0 .. max_month.", ge=0)
    min_stratum_treated: int = _d("Starters per band of elapsed months, at least.", ge=1)
    subgroup_method: Method = _d("Method of the subgroup estimates.")
    learner: Literal["linear", "boosting"] = Field(
        "linear",
        description="Nuisance models of aipw: linear (OLS and logit) or "
        "boosting (scikit-learn histogram gradient boosting), cross-fitted.",
    )
    extra_covariates: list[str] = Field(
        default_factory=list,
        description="Further columns of the panel's persons used as "
        "covariates by both models (the Monte Carlo oracle adds the unobserved factor).",
    )


class Placebo(Strict):
    """Placebo roll-outs in the validation step."""

    draws: dict[Literal["small", "full"], int] = _d("Placebo draws per data size.")
    permutations: int = _d("Randomisation assignments per draw.", ge=1)
    seed: int = _d("Seed of the draws.")


class RolloutEstimate(Strict):
    """Phase 2 event study of the roll-out."""

    period: Literal["month", "quarter"] = _d("Calendar period of the event study.")
    reach_months: int = _d("Months before a roll-out an inflow cohort can still be reached.", ge=0)
    early_teams: Literal["shorten", "drop"] = _d(
        "A team whose reach goes back to the first inflow period: reach shortened, or dropped."
    )
    leads: int = _d("Periods before the roll-out shown (earlier ones left out).", ge=1)
    lags: int = _d("Periods from the roll-out on (later ones left out).", ge=1)
    reference: int = _d("Reference period of the event-time plot.", lt=0)
    baseline: Literal["pre_mean", "reference"] = _d(
        "Headline effect against the mean of the pre-period or the reference period."
    )
    permutations: int = _d("Randomisation-inference assignments (0: none).", ge=0)
    statistic: Literal["raw", "studentized"] = _d(
        "Randomisation-test statistic of the effect: the estimate, or over its clustered SE."
    )
    subgroup_permutations: int = _d("The same for subgroup estimates.", ge=0)
    seed: int = _d("Seed of the assignments.")
    placebo: Placebo = _d("Placebo check.")


class CaseManagerIVEstimate(Strict):
    """Phase 2 case-manager instrumental variable."""

    cells: list[str] = _d("Cells of as-if random allocation (absorbed).", min_length=1)
    monotonicity_subgroups: list[str] | None = Field(
        None,
        description="Subgroups in which the first stage must be positive (the "
        "monotonicity check); default: the subgroups of Phase 2.",
    )


class MinGroup(Strict):
    """Smallest subgroup that gets an estimate."""

    treated: int = _d("Treated persons, at least.", ge=1)
    control: int = _d("Comparison persons, at least.", ge=1)
    clusters: int = _d("Clusters, at least (designs clustered on units).", ge=1)


class SensitivitySettings(Strict):
    """Sensitivity of selection on observables to a hidden confounder."""

    outcomes: list[str] = _d("Outcomes analysed (columns of the persons file).", min_length=1)
    benchmarks: list[str] = _d("Covariates a hidden factor is compared with.", min_length=1)
    multiples: list[Num] = _d("Multiples of a benchmark's strength shown.", min_length=1)


class HeterogeneitySettings(Strict):
    """What works for whom (step 07_who_benefits)."""

    outcomes: list[str] = _d("Outcomes analysed (columns of the persons file).", min_length=1)
    groups: dict[str, str] = _d("Pre-registered grouping -> its meaning.", min_length=1)
    learner: Literal["boosting", "linear"] = _d("Learner of the nuisance models.")
    iate: Literal["dr_linear", "dr_boosting", "t_learner"] = _d(
        "Predicted individual effect: DR-learner (linear or boosted second stage) or T-learner.")
    folds: int = _d("Cross-fitting folds of persons.", ge=2)
    seed: int = _d("Seed of the folds and learners.")
    quantiles: int = _d("GATES quantile groups.", ge=2)
    bootstrap: int = _d("Romano-Wolf multiplier draws.", ge=99)


class AdviceFeature(Strict):
    """One data item a rule may ask about."""

    column: str = _d("Column of the persons file.")
    source: Literal["register", "municipal"] = _d("Where the item comes from.")
    kind: Literal["ordered", "categorical"] = _d("Ordered levels or numbers, or categories.")
    label: str = _d("The item in words.")
    levels: list[str] | None = _opt("An ordered item's levels, low to high.")
    unit: Literal["share", "euro", "months"] | None = _opt("A numeric item's unit.")
    level_labels: dict[str, str] | None = _opt("Words for the item's levels.")


class AdviceSettings(Strict):
    """Advice for case managers (step 08_advice)."""

    outcome: str = _d("The outcome the rule maximises (a persons column).")
    depth: int = _d("Depth of the rule's tree (1 or 2).", ge=1, le=2)
    folds: int = _d("Cross-fitting folds of persons.", ge=2)
    seed: int = _d("Seed of the folds and learners.")
    learner: Literal["boosting", "linear"] = _d("Learner of the nuisance models.")
    capacity: Literal["today"] | dict[str, Num] = _d("Places: today's take-up or a share each.")
    capacity_factor: Num = _d("Places as a multiple of today's take-up.", ge=1)
    min_leaf_share: Num = _d("Smallest share of persons in a leaf.", gt=0, lt=0.5)
    protected: list[str] = _d("Protected items, never asked unless allowed.")
    allow_protected: list[str] = _d("Protected items the rule may ask after all.")
    features: dict[str, AdviceFeature] = _d("Items the rule may ask about.", min_length=1)
    data_groups: dict[str, list[str]] = _d("Minimisation rows: data group -> items.")
    fairness: list[str] = _d("Groupings of the fairness audit.", min_length=1)


class Effects(Strict):
    """``config/effects.yml``: Phase 2 settings."""

    outcomes: dict[str, str] = _d("Outcome column -> its meaning.", min_length=1)
    covariates: list[str] = _d("Covariates at inflow for selection on observables.", min_length=1)
    selection_on_observables: SelectionOnObservablesEstimate = _d("Selection on observables.")
    rollout_did: RolloutEstimate = _d("Roll-out event study.")
    case_manager_iv: CaseManagerIVEstimate = _d("Case-manager instrument.")
    subgroups: dict[str, str] = _d("Pre-specified subgroup -> its meaning.")
    min_group: MinGroup = _d("Smallest subgroup estimated.")
    sensitivity: SensitivitySettings = _d("Sensitivity to a hidden confounder.")
    heterogeneity: HeterogeneitySettings = _d("What works for whom.")
    advice: AdviceSettings = _d("Advice for case managers.")


# ---------------------------------------------------------------------------
# config/disclosure.yml
# ---------------------------------------------------------------------------


class Dominance(Strict):
    """Dominance rules for magnitude tables."""

    nk_n: int = _d("n of the nk rule: the n largest contributions ...", ge=1)
    nk_k: Num = _d("... may not make up k or more of the cell total.", gt=0, le=1)
    p_ratio: Num = _d("What remains after the two largest must be >= p x the largest.", gt=0, lt=1)


class Disclosure(Strict):
    """``config/disclosure.yml``: statistical disclosure control rules."""

    cell_threshold: int = _d("A released cell describes at least this many persons.", ge=1)
    dominance: Dominance = _d("nk and p-ratio rules.")
    residual_dof: int = _d("Residual degrees of freedom of a model, at least.", ge=1)
    release_minima_maxima: Literal[False] = _d(
        "Must be false: a minimum or maximum describes one person."
    )
    zeros_disclosive: bool = _d("Suppress zero cells unless declared structural.")
    proportions_as_counts: bool = Field(
        True, description="A proportion's implied counts must pass the threshold rule too."
    )
    check_missing_values: bool = Field(
        False, description="Passed to ACRO: report cells computed from missing values."
    )


# ---------------------------------------------------------------------------
# config/synthetic.yml
# ---------------------------------------------------------------------------


class SyntheticFile(Strict):
    """``config/synthetic.yml``: the generator's shared settings."""

    seed: int = _d("Global seed; each city's streams derive from it and the city's name.")
    horizons: list[int] = _d("Months after inflow recorded in the truth files.", min_length=1)
    defaults: Synthetic = _d("The synthetic world every city's synthetic section is merged over.")


# ---------------------------------------------------------------------------
# config/cbs_files.yml
# ---------------------------------------------------------------------------

#: placeholders allowed in the folder settings and in a file name pattern
FOLDER_FIELDS = ("data_dir", "city", "table", "year")
FILE_FIELDS = ("table", "year", "version")


def _placeholders(text: str, allowed: tuple[str, ...]) -> str:
    """``text`` when its ``{placeholders}`` are all in ``allowed``."""
    import string

    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    for name in names:
        if name not in allowed:
            valid = ", ".join(f"{{{a}}}" for a in allowed)
            raise ValueError(f"unknown placeholder {{{name}}} in {text!r}; use {valid}")
    return text


class Years(Strict):
    """The calendar years whose files are read (both included)."""

    first: int = _d("First year.", ge=1900, le=2200)
    last: int = _d("Last year.", ge=1900, le=2200)

    @model_validator(mode="after")
    def _ordered(self) -> Years:
        if self.first > self.last:
            raise ValueError(f"first ({self.first}) is after last ({self.last})")
        return self


class CbsTable(Strict):
    """Where one CBS table's files are and how its columns are named."""

    folder: str = Field(
        "",
        description="Folder of the table's files, inside `root` unless absolute; may hold "
        "{table} and {year} (a folder per year) and {city}.",
    )
    file: str = _d(
        "File name: ends in .sav or .parquet; {year} makes one file per year of `years`, "
        "{version} is the year's version, {table} the table's name."
    )
    version: str = Field("", description="The version in the file name ({version}), e.g. V1.")
    versions: dict[int, str] = Field(
        default_factory=dict, description="Year -> version, for years whose version differs."
    )
    years: Years | None = Field(None, description="This table's years, instead of `years`.")
    year_column: str | None = Field(
        None,
        description="A column the panel reads that the files do not hold because the year "
        "is in the file name (MEDICIJNTAB's JAAR): filled with the file's year.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column the panel reads -> its name in the file, where they differ "
        "(the person key RINPERSOON/RINPERSOONS included).",
    )

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        return _placeholders(value, FOLDER_FIELDS)

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        _placeholders(value, FILE_FIELDS)
        if not value.lower().endswith((".sav", ".parquet")):
            raise ValueError(f"{value!r}: a CBS file name ends in .sav or .parquet")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        read = {c for cols in CBS_COLUMNS.values() for c in cols}
        for name in value:
            if name not in read:
                raise ValueError(
                    f"{name!r} is no column the panel reads; columns: {', '.join(sorted(read))}"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CbsTable:
        """Settings that would be silently ignored are errors."""
        if not self.per_year:
            for key in ("year_column", "years"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} needs a file per year ({{year}} in folder or file)")
        if "{version}" in self.file and not self.version:
            raise ValueError(
                "the file name has {version}: set version (and versions for years that differ)"
            )
        if "{version}" not in self.file and (self.version or self.versions):
            raise ValueError("version or versions set, but the file name has no {version}")
        return self

    @property
    def per_year(self) -> bool:
        """One file per year: {year} in the folder or the file name."""
        return "{year}" in self.folder or "{year}" in self.file


class CbsTables(Strict):
    """The five CBS tables the panel reads (see the book's panel methods)."""

    GBAPERSOONTAB: CbsTable = _d("Persons: sex, birth year and month, origin, generation.")
    HOOGSTEOPLTAB: CbsTable = _d("Highest education level attained.")
    SPOLISBUS: CbsTable = _d("Job spells with wages (Polis administration).")
    BIJSTANDUITKERINGTAB: CbsTable = _d("Social-assistance benefit spells.")
    MEDICIJNTAB: CbsTable = _d("Medication by ATC4 group and year (health proxy).")


class CbsFiles(Strict):
    """``config/cbs_files.yml``: where the CBS files are, per table and year.
    The default points at the synthetic files; inside CBS Remote Access this
    file (and nothing in the code) names the project's files."""

    root: str = _d(
        "Folder the tables' folders start from: absolute, or relative to the compendium "
        "root; {data_dir} is synthetic_data/<size>, {city} the city."
    )
    years: Years | None = Field(
        None, description="The years read from tables with a file per year."
    )
    tables: CbsTables = _d("Each table's folder, file name, versions and columns.")

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _placeholders(value, ("data_dir", "city"))

    @model_validator(mode="after")
    def _years_given(self) -> CbsFiles:
        for name in CbsTables.model_fields:
            table = getattr(self.tables, name)
            if table.per_year and table.years is None and self.years is None:
                raise ValueError(
                    f"tables.{name} has a file per year ({{year}}) but no years: "
                    "set years (or the table's years)"
                )
        return self

"""Typed models of the configuration files (pydantic v2).

Every model is frozen and forbids keys it does not know, so a misspelled key
fails instead of being ignored. :mod:`reintegration.core.config` validates the
files against these models and turns a validation error into one line naming
the file, the key path and, for an unknown key, the nearest valid key.

The field descriptions are the documentation of each key: the JSON Schema of
the city file (``config/schema/city.schema.json``) and the book's
configuration reference are generated from them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class Strict(BaseModel):
    """Frozen, no unknown keys, no silent coercion of numbers to text."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


def _month(value: Any) -> str:
    """``YYYY-MM`` (text, or a date YAML parsed) normalised to ``YYYY-MM``."""
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value)
    if not re.fullmatch(r"\d{4}-\d{2}", text) or not 1 <= int(text[5:]) <= 12:
        raise ValueError(f"must be a month YYYY-MM, got {text!r}")
    return text


MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
Month = Annotated[str, BeforeValidator(_month), Field(json_schema_extra={"pattern": MONTH_PATTERN})]
#: a number as written: an integer stays an integer (10 is not shown as 10.0)
Num = int | float
Share = Annotated[Num, Field(ge=0, le=1)]


# ---------------------------------------------------------------------------
# config/cities/<city>.yml
# ---------------------------------------------------------------------------


class Study(Strict):
    """The study period of the city's inflow cohorts."""

    inflow_from: Month = Field(description="First month of the inflow cohorts (YYYY-MM).")
    inflow_to: Month = Field(
        description="Last month of the inflow cohorts (YYYY-MM); not before inflow_from."
    )
    follow_up_months: int = Field(24, ge=1, description="Outcome horizon after inflow, in months.")

    @field_validator("inflow_to")
    @classmethod
    def _not_before_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("inflow_from")
        if start is not None and value < start:
            raise ValueError(f"{value} is before inflow_from {start}")
        return value


class ExportFile(Strict):
    """One delivered table of the municipality's export."""

    file: str = Field(description="File name in the delivery folder.")
    description: str = Field("", description="What one row of the file is.")
    columns: dict[str, str | None] = Field(
        default_factory=dict,
        description="Canonical column name (see the data dictionary) -> the export's column "
        "name; null when the city does not deliver the column.",
    )


class Exports(Strict):
    """How the municipality delivers its exports."""

    format: Literal["csv", "sav"] = Field(description="csv or sav (SPSS).")
    encoding: str = Field("utf-8", description="Text encoding of CSV exports.")
    encoding_errors: Literal["strict", "replace", "ignore"] = Field(
        "strict", description="How letters outside the encoding arrive (Python's codec errors)."
    )
    delimiter: str = Field(",", description="Field separator of CSV exports.")
    line_terminator: str = Field("\n", description="Line ending of CSV exports.")
    date_format: str = Field(
        "%Y-%m-%d", description="strftime format of dates in the exports, or 'spss' for SPSS dates."
    )
    bsn_as_number: bool = Field(
        False, description="The BSN column is numeric, so leading zeros are lost."
    )
    client_id_format: str = Field(
        "{:07d}", description="Python format of the client number, e.g. K{:07d}."
    )
    case_manager_id_format: str | None = Field(
        None, description="Python format of the case-manager number; absent when not delivered."
    )
    postcode_space: bool = Field(False, description="Postcodes are written '1234 AB'.")
    files: dict[str, ExportFile] = Field(
        description="Delivered tables: clients, benefit_spells, instruments and optionally "
        "caseload."
    )
    codes: dict[str, dict[str, str | int]] = Field(
        default_factory=dict,
        description="Per coded column: canonical value -> the city's code.",
    )
    instrument_codes: dict[str, str] = Field(
        default_factory=dict,
        description="The city's instrument code -> key of config/instruments.yml.",
    )
    max_field_bytes: int | None = Field(
        None,
        gt=0,
        description="Longest field accepted, in bytes; a longer one stops the delivery check "
        "naming row and column (default 4,096).",
    )
    open_end_sentinels: list[str] | None = Field(
        None,
        description="End dates that mean 'no end date', as ISO dates (default ['9999-12-31']), "
        "read as an open end with a note.",
    )
    earliest_date: str | None = Field(
        None,
        description="No delivered date lies before this day (YYYY-MM-DD; default 1900-01-01).",
    )
    earliest_event_date: str | None = Field(
        None,
        description="Earliest plausible start or end of a spell, episode or post (YYYY-MM-DD; "
        "default 40 years before the first inflow month).",
    )


class Rollout(Strict):
    """A team-by-team roll-out of one instrument."""

    instrument: str = Field(description="Key of config/instruments.yml that was rolled out.")
    teams: dict[str, Month] = Field(
        description="Team -> first month of the roll-out; teams not listed never rolled it out."
    )


class LegalItem(Strict):
    """One item of the city's legal checklist (Phase 1, allowed)."""

    status: Literal["complete", "in_progress", "missing", "not_applicable"] = Field(
        description="State of the document."
    )
    mandatory: bool = Field(
        description="The city may make an item mandatory, never optional "
        "(see allowed.items in config/feasibility.yml)."
    )
    evidence: str = Field("", description="Reference of the document.")


class Relevance(Strict):
    """One stakeholder's view (Phase 1, wanted)."""

    level: Literal["low", "medium", "high"] = Field(description="Relevance to this stakeholder.")
    note: str = Field("", description="Why.")
    evidence: str = Field("", description="Where the view is recorded.")
    instruments: dict[str, Literal["low", "medium", "high"]] = Field(
        default_factory=dict, description="Level overrides for single instruments."
    )
    concerns: list[str] = Field(
        default_factory=list,
        description="Concerns raised (keys of wanted.client_concerns in config/feasibility.yml).",
    )


# The synthetic world: every key optional in a city (merged over synthetic.yml defaults).
def _opt(description: str, **limits: Any) -> Any:
    """An optional key of the synthetic world (null: take the default)."""
    return Field(None, description=description, **limits)


class SizeCounts(Strict):
    """A count per data size."""

    small: int | None = _opt("Value for SIZE=small.", ge=1)
    full: int | None = _opt("Value for SIZE=full.", ge=1)


class Population(Strict):
    """Planted population shares (see config/synthetic.yml for the defaults)."""

    female_share: Share | None = _opt("Share of women among clients.")
    age: dict[str, Num] | None = _opt("Age at inflow: mean, sd, min, max (years).")
    migration: dict[str, Share] | None = _opt(
        "Shares by migration background (nl, ma, tr, sr, an, other_nonwestern, western)."
    )
    first_generation_share: Share | None = _opt("Of persons with a migration background.")
    education: dict[str, Share] | None = _opt("Shares of low, middle, high education.")
    education_first_generation: dict[str, Share] | None = _opt(
        "The same for first-generation migrants."
    )
    education_missing: dict[str, Num] | None = _opt(
        "Missing education in HOOGSTEOPLTAB: first_generation_over_age, rate, other_rate."
    )
    household: dict[str, Share] | None = _opt(
        "Shares of single, single_parent, couple, couple_children."
    )
    chronic_health: dict[str, Num] | None = _opt(
        "Chronic health condition: base share and per_decade_over_30."
    )
    language_low: dict[str, Share] | None = _opt(
        "Share below language level B1 by generation (first_generation, second_generation, nl)."
    )
    distance_noise_sd: Num | None = _opt(
        "Noise in the case manager's assessment of the distance to the labour market.", ge=0
    )


class Employment(Strict):
    """Planted job-finding and job-loss hazards (log-odds of the monthly hazards)."""

    pre_inflow: dict[str, Num] | None = _opt(
        "History before inflow: employed_intercept, find_intercept, lose_intercept, eta."
    )
    find_intercept: Num | None = _opt("Intercept of the monthly job-finding hazard.")
    lose_intercept: Num | None = _opt("Intercept of the monthly job-loss hazard.")
    eta_find: Num | None = _opt("Effect of unobserved employability on job finding.")
    eta_lose: Num | None = _opt("Effect of unobserved employability on job loss.")
    duration_per_month: Num | None = _opt("Duration dependence per month on benefit.")
    reentry_probability: Share | None = _opt("Probability of returning to bijstand after a job.")
    team_sd: Num | None = _opt("Spread of time-invariant district differences.", ge=0)
    covariates: dict[str, Num] | None = _opt("Covariate -> effect on job finding.")
    lose_covariates: dict[str, Num] | None = _opt("Covariate -> effect on job loss.")
    calendar: dict[int, Num] | None = _opt("Calendar year -> common shock to job finding.")
    job_switch_rate: Share | None = _opt("Monthly probability of switching jobs.")
    wage: dict[str, Num] | None = _opt(
        "Log monthly wage: log_mean, education_low, education_high, eta, sd."
    )
    hours: dict[str, Num] | None = _opt(
        "Hours per month: full_time, part_time_share, part_time_factor."
    )
    tail_months: dict[str, Num] | None = _opt(
        "Mean further months of employment and benefit spells running at the horizon."
    )


class InstrumentAssignment(Strict):
    """Planted take-up of one instrument (log-odds)."""

    intercept: Num | None = _opt("Intercept of the take-up model.")
    eta: Num | None = _opt("Effect of unobserved employability on take-up.")
    elapsed: Num | None = _opt("Effect per year on benefit.")
    covariates: dict[str, Num] | None = _opt("Covariate -> effect on take-up.")


class Assignment(Strict):
    """Planted allocation to instruments."""

    start_month: dict[str, Num] | None = _opt(
        "Start opportunities: opportunity_probability (monthly chance of a start "
        "opportunity, memoryless) and max (last elapsed month with opportunities)."
    )
    no_start: Num | None = _opt(
        "Utility of not starting at an opportunity (log-odds against every instrument): "
        "one knob for the overall take-up."
    )
    case_manager_sd: Num | None = _opt("Spread of case-manager propensities (log-odds).", ge=0)
    rollout_shift: Num | None = _opt(
        "Shift in the availability of the rolled-out instrument once a team rolled it out."
    )
    instruments: dict[str, InstrumentAssignment] | None = _opt(
        "Instrument -> its take-up model (merged key by key over the defaults)."
    )


class PlantedEffect(Strict):
    """Planted effect of one instrument on the job-finding hazard (log-odds)."""

    months: int | None = _opt("How long the instrument runs.", ge=1)
    during: Num | None = _opt("Shift while it runs (lock-in when negative).")
    after: Num | None = _opt("Shift once it ended.")
    heterogeneity: dict[str, Num] | None = _opt("Covariate -> extra shift after it ended.")


class Defects(Strict):
    """Planted data defects."""

    bsn_typo_rate: Share | None = _opt("Share of BSNs with one wrong digit (fails the elfproef).")
    bsn_missing_rate: Share | None = _opt("Share of clients without BSN.")
    unregistered_rate: Share | None = _opt("Share of clients not in the person register.")
    duplicate_rate: Share | None = _opt("Share of clients duplicated by a system migration.")
    duplicate_month: Month | None = _opt("Clients on benefit in this month can be duplicated.")
    duplicate_ascii_fold_share: Share | None = _opt(
        "Of the duplicates, the share whose names lost their accents."
    )
    missing_instrument_end_rate: Share | None = _opt("Share of episodes without end date.")


class Synthetic(Strict):
    """Settings of the synthetic world; in a city file, what differs from the defaults."""

    clients: SizeCounts | None = _opt("Clients (inflow cohort members) per data size.")
    other_residents_share: Num | None = _opt(
        "Register persons who are not clients, per client.", ge=0
    )
    rin_block: int | None = _opt(
        "Block of RINPERSOON numbers (1-999); null: derived from the city name.", ge=1, le=999
    )
    teams: list[str] | None = _opt("Districts, one team each.", min_length=1)
    pc4_range: list[int] | None = _opt(
        "First and last four-digit postcode of the city.", min_length=2, max_length=2
    )
    case_managers_per_team: SizeCounts | None = _opt("Case-manager posts per team at any time.")
    case_manager_tenure_quarters: Num | None = _opt(
        "Mean quarters a case manager stays on a post.", gt=0
    )
    population: Population | None = _opt("Population shares.")
    employment: Employment | None = _opt("Job finding and job loss.")
    assignment: Assignment | None = _opt("Allocation to instruments.")
    effects: dict[str, PlantedEffect] | None = _opt("Instrument -> its planted effect.")
    defects: Defects | None = _opt("Planted data defects.")


class City(Strict):
    """``config/cities/<city>.yml``: one municipality."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The file's stem.")
    display_name: str = Field(description="Name shown in the book.")
    description: str = Field("", description="One paragraph on the delivery.")
    study: Study
    exports: Exports
    quirks: list[str] = Field(default_factory=list, description="Known oddities of the delivery.")
    rollout: Rollout | None = Field(None, description="Absent when no team-by-team roll-out.")
    legal: dict[str, LegalItem] = Field(
        default_factory=dict,
        description="Legal checklist: keys of allowed.items in config/feasibility.yml.",
    )
    relevance: dict[str, Relevance] = Field(
        default_factory=dict,
        description="Per stakeholder (wanted.stakeholders in config/feasibility.yml).",
    )
    synthetic: Synthetic | None = Field(None, description="Merged over synthetic.yml defaults.")
    data_roots: dict[str, str] | None = Field(
        None, description="Folder of real exports -> its custody domain (secure environment)."
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_are_part_of_the_view(cls, data: Any) -> Any:
        """Defaults the dict view has always carried are set explicitly."""
        if isinstance(data, dict):
            data = {**data}
            data.setdefault("quirks", [])
            if isinstance(data.get("study"), dict):
                data["study"] = {"follow_up_months": 24, **data["study"]}
        return data


# ---------------------------------------------------------------------------
# config/steps.yml, config/instruments.yml
# ---------------------------------------------------------------------------

Role = Literal[
    "generator", "municipality", "linking_unit", "researcher", "validator", "publisher", "auditor"
]
Domain = Literal["municipal", "ttp", "research", "release", "truth", "public"]


class StepOutput(Strict):
    """One output a step writes, below build/<size>/<city>/."""

    path: str = Field(
        description="Path relative to the domain's folder; '*' matches any characters."
    )
    domain: Domain = Field(description="Custody domain of the file.")


class Step(Strict):
    """One analysis step (a notebook template run per city)."""

    name: str = Field(pattern=r"^\d\d_[a-z0-9_]+$", description="NN_name.")
    title: str = Field(description="Page title in the book.")
    role: Role = Field(description="Custody role the step runs under.")
    needs: list[str] = Field(default_factory=list, description="Earlier steps it reads from.")
    reads: list[str] = Field(
        default_factory=list,
        description="Shared config files it reads (config/steps.yml and the city's file are "
        "always read).",
    )
    writes: list[StepOutput] = Field(default_factory=list, description="Outputs it writes.")

    @field_validator("reads")
    @classmethod
    def _config_files(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"config/[a-z_]+\.yml", item):
                raise ValueError(f"{item!r} is not a shared config file config/<name>.yml")
        return value


class Steps(Strict):
    """``config/steps.yml``: the analysis steps, in order."""

    steps: list[Step] = Field(description="One entry per notebook template.")

    @model_validator(mode="after")
    def _needs_in_order(self) -> Steps:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            for need in step.needs:
                if need not in seen:
                    raise ValueError(f"steps[{i}]: needs {need!r}, which is not declared before it")
            seen.add(step.name)
        return self


class Instrument(Strict):
    """One instrument of the taxonomy."""

    label: str = Field(description="English label.")
    dutch: str = Field(description="Dutch name.")
    description: str = Field("", description="What the instrument is.")


class Instruments(Strict):
    """``config/instruments.yml``: the shared instrument taxonomy."""

    instruments: dict[str, Instrument] = Field(
        description="Instrument key -> its names; every city maps its own codes onto the keys."
    )

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

Designs
-------
The theoretical checks and the design's practical checks (group sizes and
the minimum detectable effect) come from the design's own module in
:mod:`reintegration.designs`, on the same prepared data and with the same
estimator's variance as Phase 2: see :mod:`reintegration.designs.selection`,
:mod:`reintegration.designs.rollout` and :mod:`reintegration.designs.iv`.
An MDE above ``practical.power.no_go_factor`` times the policy-relevant
effect is no-go.

Package
-------
:mod:`.criteria` (vocabulary, settings, decision rule, records),
:mod:`.assess` (:func:`assess_city`), :mod:`.practical`, :mod:`.legal`,
:mod:`.wanted` (the checks shared by a city's sub-studies), :mod:`.record`
(``feasibility.json``) and :mod:`.page` (the chapter, tables and figures).

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

from ..designs.base import Check, Model, count_text, criterion_verdict
from ..designs.iv import NO_IDENTIFIERS
from ..designs.rollout import NO_ROLLOUT
from .assess import assess_city
from .criteria import (
    CRITERIA,
    CRITERION_LABELS,
    DECISIONS,
    DESIGN_LABELS,
    DESIGN_SHORT,
    DESIGNS,
    FILE_NAME,
    LEGAL_STATUSES,
    NO_INSTRUMENT,
    STAKEHOLDER_LABELS,
    STEP,
    VERDICTS,
    Assessment,
    SubStudy,
    decide,
    decision_follows,
    load_settings,
    offered_instruments,
    resolve_safeguard,
    settings_path,
    substudy_ids,
)
from .legal import legal_checklist
from .page import (  # the chapter's tables and figures
    CASELOAD_BANDS,
    OVERLAP_BLOCKS,
    checks_markdown,
    city_advice,
    concerns_table,
    criterion_markdown,
    decision_table,
    labelled,
    legal_table,
    matrix_columns,
    matrix_figure,
    overlap_figure,
    phase1_markdown,
    power_markdown,
    power_table,
    quoted_counts,
    reasons_markdown,
    reasons_table,
    relevance_table,
    safeguards_table,
    substudy_table,
    thresholds_table,
)
from .practical import coverage_check, practical_data_checks
from .record import (
    feasibility_path,
    read,
    record,
    released_record,
    substudies_to_run,
)
from .wanted import concern_rows, relevance_tables, wanted_checks

__all__ = [
    "Assessment",
    "CASELOAD_BANDS",
    "CRITERIA",
    "CRITERION_LABELS",
    "Check",
    "DECISIONS",
    "DESIGNS",
    "DESIGN_LABELS",
    "DESIGN_SHORT",
    "FILE_NAME",
    "LEGAL_STATUSES",
    "Model",
    "NO_IDENTIFIERS",
    "NO_INSTRUMENT",
    "NO_ROLLOUT",
    "OVERLAP_BLOCKS",
    "STAKEHOLDER_LABELS",
    "STEP",
    "SubStudy",
    "VERDICTS",
    "assess_city",
    "checks_markdown",
    "city_advice",
    "concern_rows",
    "concerns_table",
    "count_text",
    "coverage_check",
    "criterion_markdown",
    "criterion_verdict",
    "decide",
    "decision_follows",
    "decision_table",
    "feasibility_path",
    "labelled",
    "legal_checklist",
    "legal_table",
    "load_settings",
    "matrix_columns",
    "matrix_figure",
    "offered_instruments",
    "overlap_figure",
    "phase1_markdown",
    "power_markdown",
    "power_table",
    "practical_data_checks",
    "quoted_counts",
    "read",
    "reasons_markdown",
    "reasons_table",
    "record",
    "released_record",
    "relevance_table",
    "relevance_tables",
    "resolve_safeguard",
    "safeguards_table",
    "settings_path",
    "substudies_to_run",
    "substudy_ids",
    "substudy_table",
    "thresholds_table",
    "wanted_checks",
]

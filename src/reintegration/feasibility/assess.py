"""The assessment of one city: every sub-study's four criteria.

The theoretical checks and the design's practical checks (group sizes,
minimum detectable effect) come from the design's own ``diagnose`` in
:mod:`reintegration.designs`, on the data Phase 2 will estimate on; the
checks shared by every sub-study of the city (linkage, completeness,
coverage, the legal checklist, relevance) from the modules of this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .. import designs
from ..core.config import ConfigError
from ..designs.base import Check, Inputs, Model
from .criteria import Assessment, SubStudy, offered_instruments, substudy_ids
from .legal import legal_checklist
from .practical import _data_evidence, coverage_check, practical_data_checks
from .wanted import _relevance_for, relevance_tables, wanted_checks

#: frames a design returns per instrument that describe the whole city (kept once)
CITY_FRAMES = ("caseload", "rollout")


def assess_city(
    persons: pd.DataFrame,
    *,
    city: dict[str, Any],
    quality: dict[str, Any],
    linkage: dict[str, Any],
    settings: dict[str, Any],
    effects: dict[str, Any],
    instruments: Sequence[str],
    threshold: int = 10,
    person_months: pd.DataFrame | None = None,
) -> Assessment:
    """Assess every sub-study of one city.

    Parameters
    ----------
    persons
        The panel's ``persons.parquet`` (one row per cohort member).
    city
        The city's configuration (:func:`reintegration.core.config.load_city`).
    quality, linkage
        ``quality.json`` and ``linkage.json`` of steps 01 and 02.
    settings
        ``config/feasibility.yml`` (:func:`load_settings`).
    effects
        ``config/effects.yml`` (:func:`reintegration.phase2.estimates.load_settings`):
        the designs prepare their data as Phase 2 will.
    instruments
        Instrument keys of the taxonomy, in order.
    threshold
        The disclosure cell threshold; counts below it are not written in
        texts for readers.
    person_months
        The panel's ``person_months.parquet``: with it, selection on
        observables takes its minimum detectable effect from the stacked
        comparison Phase 2 runs (without it, from a difference in means).
    """
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
    rel_rows, concerns = relevance_tables(city, settings)
    offered = offered_instruments(city)
    inputs = Inputs(persons=persons, city=city, effects=effects, feasibility=settings,
                    person_months=person_months)
    parts: dict[str, list[pd.DataFrame]] = {}
    models: dict[str, Model] = {}
    subs: list[SubStudy] = []
    for design, instrument in substudy_ids(city, instruments):
        sub = SubStudy(design, instrument)
        diag = designs.get(design).diagnose(inputs, instrument, outcome=outcome,
                                            threshold=threshold)
        for name, frame in diag.frames.items():
            if name not in CITY_FRAMES or name not in parts:
                parts.setdefault(name, []).append(frame)
        models.update(diag.models)
        theo = list(diag.theoretical)
        if instrument is not None and instrument not in offered:
            theo.insert(0, Check("instrument_offered", "fail",
                                 "the city has no code for this instrument"))
        if missing_cov:
            theo.append(Check("covariates_present", "conditional",
                              f"covariates missing from the panel: {', '.join(missing_cov)}"))
        sub.criteria["theoretical"] = theo
        sub.criteria["practical"] = [*practical_common, *coverage_checks, *diag.practical]
        sub.criteria["allowed"] = list(legal_checks)
        sub.criteria["wanted"] = wanted_checks(city, settings, instrument)
        sub.evidence["theoretical"] = diag.evidence_theoretical
        sub.evidence["practical"] = {**diag.evidence_practical, **coverage_evidence,
                                     **_data_evidence(quality, linkage)}
        sub.evidence["allowed"] = {"health_data_used": uses_health}
        sub.evidence["wanted"] = {r["stakeholder"]: r["level for this sub-study"]
                                  for r in _relevance_for(city, settings, instrument)}
        subs.append(sub)
    return Assessment(
        city=city["name"], substudies=subs, legal=legal_rows, relevance=rel_rows,
        concerns=concerns, frames={k: pd.concat(v, ignore_index=True) for k, v in parts.items()},
        models=models, city_evidence={"health_data_used": uses_health, "covariates": covariates},
    )

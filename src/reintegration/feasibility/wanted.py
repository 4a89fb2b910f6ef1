"""Wanted criterion: relevance to policy, the executing organisation and
clients, and the client council's concerns with their safeguards."""

from __future__ import annotations

from typing import Any

from ..core.config import ConfigError
from ..designs.base import (
    Check,
)
from .criteria import (
    STAKEHOLDER_LABELS,
)


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

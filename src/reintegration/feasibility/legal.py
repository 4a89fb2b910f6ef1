"""Allowed criterion: the city's legal checklist."""

from __future__ import annotations

from typing import Any

from ..core.config import ConfigError
from ..designs.base import (
    Check,
)
from .criteria import (
    LEGAL_STATUSES,
)

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

"""Phase 1's vocabulary and rules: designs, criteria, verdicts, the
settings file, the decision rule and the sub-study records."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import designs
from ..core.config import as_dict, load_shared
from ..core.paths import repo_root
from ..designs.base import (
    Check,
    Model,
    criterion_verdict,
    json_value,
)
from ..phase2.obligations import obligation_for

#: the designs, in report order (:data:`reintegration.designs.REGISTRY`)
DESIGNS = designs.names()
DESIGN_LABELS = {name: d.label for name, d in designs.REGISTRY.items()}
DESIGN_SHORT = {name: d.short for name, d in designs.REGISTRY.items()}
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


def settings_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / "config" / "feasibility.yml"


def load_settings(root: Path | None = None, path: Path | None = None) -> dict[str, Any]:
    """``config/feasibility.yml``, validated against
    :class:`reintegration.core.config_settings.Feasibility` (a problem is one line
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


def decision_follows(rec: dict[str, Any]) -> bool:
    """Whether a record of ``feasibility.json`` is consistent: its decision
    is the one the rule gives for its criteria's verdicts."""
    verdicts = [rec["criteria"][c]["verdict"] for c in CRITERIA]
    expected = ("no-go" if "fail" in verdicts
                else "conditional" if "conditional" in verdicts else "go")
    return rec["decision"] == expected


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
            "obligations": [
                {"criterion": name, "check": c.name, "value": json_value(c.value),
                 "obligation": obligation_for(c.name).key,
                 "fulfilled_by": obligation_for(c.name).text}
                for name in CRITERIA for c in self.criteria.get(name, [])
                if c.verdict == "conditional"
            ],
            "criteria": {
                name: {
                    "verdict": criterion_verdict(self.criteria.get(name, [])),
                    "checks": [c.as_dict() for c in self.criteria.get(name, [])],
                    "evidence": {k: json_value(v)
                                 for k, v in self.evidence.get(name, {}).items()},
                }
                for name in CRITERIA
            },
        }


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
    """(design, instrument) of every sub-study of a city, in report order
    (each design's :meth:`~reintegration.designs.base.Design.instruments`)."""
    instruments = list(instruments)
    return [(name, instrument) for name, design in designs.REGISTRY.items()
            for instrument in design.instruments(city, instruments)]


def offered_instruments(city: dict[str, Any]) -> list[str]:
    """Taxonomy keys the city has a code for, sorted: the order of the
    sub-studies built from them must not depend on the process (a set of
    strings iterates in an order that changes with Python's hash seed)."""
    return sorted(set(city.get("exports", {}).get("instrument_codes", {}).values()))

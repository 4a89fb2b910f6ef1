"""``feasibility.json``: writing it, reading it back for Phase 2, and the
released per-city records the Phase 1 chapter reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.config import list_cities, load_city, load_instruments
from ..core.paths import Paths
from ..designs.base import (
    json_value,
)
from ..disclosure import released
from .criteria import (
    CRITERIA,
    DECISIONS,
    DESIGNS,
    FILE_NAME,
    NO_INSTRUMENT,
    STEP,
    Assessment,
)


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
        "city_evidence": {k: json_value(v) for k, v in assessment.city_evidence.items()},
        "settings": {k: v for k, v in settings.items() if not k.startswith("_")},
    }


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
    :mod:`reintegration.disclosure.released`). It has the keys of :func:`record` that
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

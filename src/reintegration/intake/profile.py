"""The city profile: what a city's configuration declares, and the size of its
delivery. Everything here is about files and configuration, never persons;
row counts are totals per file."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core.config import load_instruments


def sources_table(city: dict[str, Any]) -> pd.DataFrame:
    """One row per export file the city declares, with how it is encoded."""
    exports = city["exports"]
    rows = []
    for table, spec in exports["files"].items():
        rows.append(
            {
                "table": table,
                "file": spec["file"],
                "format": exports["format"],
                "encoding": exports.get("encoding", "(in file)"),
                "delimiter": exports.get("delimiter", "(n/a)"),
                "date format": exports.get("date_format", ""),
                "description": spec.get("description", ""),
            }
        )
    return pd.DataFrame(rows).set_index("table")


def study_table(city: dict[str, Any], size: str) -> pd.DataFrame:
    """The study period and the number of inflow cohorts."""
    study = city["study"]
    first, last = int(study["inflow_from"][:4]), int(study["inflow_to"][:4])
    rows = [
        ("first inflow month", study["inflow_from"]),
        ("last inflow month", study["inflow_to"]),
        ("inflow cohorts (years)", str(last - first + 1)),
        ("follow-up after inflow (months)", str(study["follow_up_months"])),
        ("synthetic data size", size),
    ]
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def instrument_table(city: dict[str, Any], root=None) -> pd.DataFrame:
    """The city's own instrument codes and the shared taxonomy they map onto.
    Unknown taxonomy keys raise, naming the code."""
    taxonomy = load_instruments(root)
    rows = []
    for code, key in city["exports"].get("instrument_codes", {}).items():
        if key not in taxonomy:
            raise KeyError(
                f"{city['_path']}: instrument code {code!r} maps to {key!r}, "
                "which is not in config/instruments.yml"
            )
        rows.append(
            {
                "city code": str(code),
                "instrument": taxonomy[key]["label"],
                "Dutch name": taxonomy[key]["dutch"],
            }
        )
    return pd.DataFrame(rows).set_index("city code")


def manifest_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows per delivered file, from the city's data manifest, by custody domain."""
    df = pd.DataFrame(entries)
    if df.empty:
        return pd.DataFrame(columns=["domain", "table", "format", "rows"])
    df = df[["domain", "table", "path", "format", "rows"]].sort_values(["domain", "table"])
    return df.set_index(["domain", "table"])


def profile_record(city: dict[str, Any], size: str, entries: list[dict[str, Any]]) -> dict:
    """The machine-readable profile written to build/<size>/<city>/profile.json."""
    return {
        "city": city["name"],
        "display_name": city["display_name"],
        "size": size,
        "study": city["study"],
        "exports": {t: s["file"] for t, s in city["exports"]["files"].items()},
        "format": city["exports"]["format"],
        "quirks": list(city["quirks"]),
        "files": {
            e["path"]: {"domain": e["domain"], "table": e["table"], "rows": e["rows"]}
            for e in entries
        },
    }

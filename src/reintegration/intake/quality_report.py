"""The quality report of the delivery check: five dimensions per table and
year, counts by reason, and the documented rules in words.

:func:`quality_report` is what ``quality.json`` holds: counts and shares only,
nothing about a person.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .checked import CheckedDelivery
from .ingest import Export
from .quality_rules import (
    DIMENSIONS,
    DUPLICATE_RULES,
    OPTIONAL,
    REASONS,
    REFERENCE_DATE_COLUMN,
    TABLES,
)

# ---------------------------------------------------------------------------
# the quality report
# ---------------------------------------------------------------------------

DEFINITIONS = {
    "completeness": "share of the expected values that are present (columns that may be empty "
    "by nature, such as a surname prefix or the end of a running benefit spell, are not "
    "counted)",
    "validity": "share of rows whose values all have the declared format and codes: dates "
    "parse, codes map, the BSN passes the elfproef, postcodes and house numbers are well "
    "formed, start dates are not after the export date",
    "uniqueness": "share of rows that are not a duplicate of another row (same key)",
    "consistency": "share of rows that agree with the rest of the delivery: end not before "
    "start, no overlapping benefit spells, the client exists, every client has a benefit "
    "spell, a client's case manager is in the case-manager file",
    "timeliness": "share of rows that fall in the period the delivery covers: the reference "
    "date (start date; for a client the start of the first benefit spell) lies between the "
    "first inflow month and the export date",
}


def _assess(checked: CheckedDelivery, exports: dict[str, Export]) -> None:
    """Per delivered row: year, outcome and a score per quality dimension."""
    q = checked.quarantine
    f = checked.flags
    spells = checked.tables.get("benefit_spells")
    first_spell = (
        spells.groupby("client_id")["start_date"].min() if spells is not None else pd.Series()
    )
    for table, ex in exports.items():
        if table not in TABLES:
            continue
        raw = ex.frame
        n = len(raw)
        rows = raw["_row"].to_numpy()
        expected = [c for c in ex.columns if c not in OPTIONAL.get(table, ())]
        present = np.column_stack([raw[c].notna().to_numpy() for c in expected])
        # a date that did not parse was delivered, but it is not a usable value
        completeness = present.mean(axis=1)
        qt = q[q["table"] == table].set_index("row")["reason"]
        outcome = pd.Series(rows).map(qt).fillna("kept").to_numpy()
        ft = f[f["table"] == table]
        failed: dict[str, set[int]] = {d: set() for d in DIMENSIONS}
        for reason, group in pd.concat([qt.reset_index(), ft[["row", "reason"]]]).groupby("reason"):
            dim = REASONS[reason].dimension
            if dim and dim != "completeness":
                failed[dim].update(group["row"].astype(int))
        if table == "clients":
            ref = raw["client_id"].map(first_spell)
        else:
            ref = raw[REFERENCE_DATE_COLUMN[table]]
        ref = pd.to_datetime(ref, errors="coerce")
        timely = (ref >= checked.window_start) & (ref <= checked.reference_date)
        if table == "caseload" and "last_active" in raw.columns:
            # a case manager counts when the period on the post overlaps the window
            last = pd.to_datetime(raw["last_active"], errors="coerce")
            timely = (ref <= checked.reference_date) & (
                last.isna() | (last >= checked.window_start)
            )
        year = ref.dt.year.astype("Int64").astype("string").fillna("unknown")
        checked.assessment[table] = pd.DataFrame(
            {
                "_row": rows,
                "year": year.to_numpy(),
                "outcome": outcome,
                "completeness": completeness,
                "validity": ~np.isin(rows, list(failed["validity"])),
                "uniqueness": ~np.isin(rows, list(failed["uniqueness"])),
                "consistency": ~np.isin(rows, list(failed["consistency"])),
                "timeliness": timely.to_numpy(dtype=bool),
            }
        )
        checked.completeness_by_column[table] = {
            ex.columns[c]: round(float(raw[c].notna().mean()), 4) if n else 0.0 for c in ex.columns
        }


def quality_report(checked: CheckedDelivery, *, size: str | None = None) -> dict[str, Any]:
    """The aggregate quality report (``quality.json``): row accounting,
    quarantine and flag counts by reason, and the five quality dimensions per
    table, overall and per year. Counts and shares only; nothing about a person."""
    acc = checked.accounting()
    tables: dict[str, Any] = {}
    for table, a in checked.assessment.items():
        qt = checked.quarantine[checked.quarantine["table"] == table]
        ft = checked.flags[checked.flags["table"] == table]

        def dims(frame: pd.DataFrame) -> dict[str, Any]:
            out: dict[str, Any] = {"rows": len(frame)}
            for d in DIMENSIONS:
                out[d] = round(float(frame[d].astype(float).mean()), 4) if len(frame) else None
            return out

        per_year = {str(y): dims(g) for y, g in a.groupby("year", sort=True)}
        tables[table] = {
            "file": checked.files[table],
            "rows_in": int(acc.at[table, "rows_in"]),
            "rows_kept": int(acc.at[table, "kept"]),
            "rows_quarantined": int(acc.at[table, "quarantined"]),
            "quarantined": {k: int(v) for k, v in qt["reason"].value_counts().sort_index().items()},
            "flagged_rows": {
                k: int(v)
                for k, v in ft.drop_duplicates(["row", "reason"])["reason"]
                .value_counts()
                .sort_index()
                .items()
            },
            "dimensions": dims(a),
            "dimensions_by_year": per_year,
            "completeness_by_column": checked.completeness_by_column[table],
            "notes": checked.notes.get(table, []),
        }
    return {
        "city": checked.city,
        "size": size,
        "export_date": checked.reference_date.date().isoformat(),
        "window_start": checked.window_start.date().isoformat(),
        "accounting_ok": checked.accounting_ok(),
        "tables": tables,
        "definitions": DEFINITIONS,
        "reasons": {
            k: {"action": r.action, "dimension": r.dimension, "text": r.text}
            for k, r in REASONS.items()
        },
    }


def rules_table() -> pd.DataFrame:
    """The documented duplicate rules, one row per table."""
    rows = [
        {
            "table": t,
            "key": " + ".join(k),
            "same record when equal": ", ".join(i),
            "kept": kept,
            "also": extra,
        }
        for t, (k, i, kept, extra) in DUPLICATE_RULES.items()
    ]
    return pd.DataFrame(rows).set_index("table")


def rules_text() -> str:
    """The duplicate rules in words, one paragraph per table."""
    import textwrap

    out = []
    for table, (key, identity, kept, extra) in DUPLICATE_RULES.items():
        text = (
            f"{table}: rows with the same {' + '.join(key)} are copies of one record when "
            f"they agree on {', '.join(identity)}; one copy is kept: {kept}. Copies that "
            f"disagree are all quarantined. {extra}"
        ).strip()
        out.append(textwrap.fill(text, width=88, subsequent_indent="  "))
    return "\n".join(out)


def reasons_table(action: str | None = None) -> pd.DataFrame:
    rows = [
        {"reason": k, "action": r.action, "dimension": r.dimension or "(repair)", "meaning": r.text}
        for k, r in REASONS.items()
        if action in (None, r.action)
    ]
    return pd.DataFrame(rows).set_index("reason")

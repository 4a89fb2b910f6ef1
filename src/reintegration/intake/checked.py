"""The result of the delivery check (:func:`reintegration.intake.quality.check_delivery`):
the checked tables, the quarantine and the flags of one city, with the
accounting that every delivered row is kept or quarantined, and the long
tables the quality report (:mod:`reintegration.intake.quality_report`) is
built from."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .quality_rules import DIMENSIONS


@dataclass
class CheckedDelivery:
    """The checked delivery of one city (the check itself:
    :mod:`reintegration.intake.quality`)."""

    city: str
    reference_date: pd.Timestamp
    window_start: pd.Timestamp
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    flags: pd.DataFrame
    rows_in: dict[str, int]
    files: dict[str, str]
    notes: dict[str, list[str]] = field(default_factory=dict)
    assessment: dict[str, pd.DataFrame] = field(default_factory=dict)
    completeness_by_column: dict[str, dict[str, float]] = field(default_factory=dict)

    def accounting(self) -> pd.DataFrame:
        """Rows in, kept and quarantined per table (the invariant of the check)."""
        rows = []
        for table, n in self.rows_in.items():
            q = int((self.quarantine["table"] == table).sum())
            rows.append({"table": table, "rows_in": n, "kept": len(self.tables[table]),
                         "quarantined": q})
        return pd.DataFrame(rows).set_index("table")

    def accounting_ok(self) -> bool:
        acc = self.accounting()
        return bool((acc["rows_in"] == acc["kept"] + acc["quarantined"]).all())

    def row_outcomes(self) -> pd.DataFrame:
        """One row per delivered row: table, year and outcome ('kept' or the
        quarantine reason), for aggregate tables."""
        frames = []
        for table, a in self.assessment.items():
            frames.append(pd.DataFrame({
                "table": table,
                "year": a["year"].to_numpy(),
                "outcome": a["outcome"].to_numpy(),
            }))
        return pd.concat(frames, ignore_index=True)

    def flag_rows(self) -> pd.DataFrame:
        """One row per (delivered row, flag reason); rows without a flag appear
        once as 'no flag'."""
        frames = []
        for table, a in self.assessment.items():
            f = self.flags[self.flags["table"] == table][["row", "reason"]].drop_duplicates()
            flagged = set(f["row"])
            none = a.loc[~a["_row"].isin(flagged), ["_row"]].assign(reason="no flag")
            both = pd.concat([f.rename(columns={"row": "_row"}), none], ignore_index=True)
            frames.append(both.assign(table=table)[["table", "reason"]])
        return pd.concat(frames, ignore_index=True)

    def dimension_rows(self) -> pd.DataFrame:
        """Long format: one row per delivered row and pass/fail dimension
        (validity, uniqueness, consistency, timeliness), with its score: 1 if
        the row passes, 0 if not. Its mean is a share of rows, so disclosure
        control treats it as a proportion."""
        frames = []
        for table, a in self.assessment.items():
            for dim in DIMENSIONS[1:]:
                frames.append(pd.DataFrame({
                    "table": table, "year": a["year"].to_numpy(), "dimension": dim,
                    "score": a[dim].astype("int64").to_numpy(),
                }))
        return pd.concat(frames, ignore_index=True)

    def completeness_rows(self) -> pd.DataFrame:
        """One row per delivered row: table, year and the share of its expected
        values that are present."""
        return pd.concat(
            [pd.DataFrame({"table": t, "year": a["year"].to_numpy(),
                           "completeness": a["completeness"].to_numpy()})
             for t, a in self.assessment.items()],
            ignore_index=True,
        )

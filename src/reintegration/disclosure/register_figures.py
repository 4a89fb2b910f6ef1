"""Figures in the output register, and the data behind each.

A figure is released only when every count it shows passes, or when it was
drawn from a released table; beside its PNG the data behind it is released
as a CSV and checked like a table.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..intake import screening
from .checks import check_counts
from .linked_tables import LAYOUT_KEYS
from .output import Output
from .register_core import RegisterCore
from .suppression import label


class FigureOutputs(RegisterCore):
    """The figure outputs of a register."""

    def figure(
        self,
        name: str,
        fig: Any,
        *,
        counts: pd.DataFrame | pd.Series | Output,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        title: str | None = None,
        dpi: int = 100,
    ) -> Output:
        """A matplotlib figure and the data behind it, released only if every
        count it shows passes.

        ``counts`` holds every count the figure depends on (numerators and
        denominators; NaN marks something not shown), or is the :class:`Output`
        of a released table the figure was drawn from. Counts given directly
        cannot be partly suppressed: if one fails, nothing is released. A
        figure drawn from a released table with suppressed cells is released
        for review; it must draw those cells as suppressed
        (:mod:`reintegration.disclosure.figures`), never as zero.

        Besides ``<name>.png``, the data behind the figure (the released table
        or the counts, suppressed cells empty) is written to ``<name>.csv``
        and recorded in the register entry (``data_file``, ``data_sha256``,
        and ``checks["data"]`` with its statistic and structural zeros), so
        the bundle and the audit check it like a table. The figure is closed,
        so the notebook does not show it a second time unchecked.
        """
        self._check_name(name)
        reasons: list[str] = []
        checks: dict[str, Any] = {}
        if isinstance(counts, Output):
            checks["based_on"] = counts.output_id
            status = {"pass": "pass", "review": "review"}.get(counts.status, "fail")
            if status == "fail":
                reasons.append(f"drawn from {counts.output_id}, which was withheld")
            elif status == "review":
                reasons.append(
                    f"drawn from {counts.output_id} (status review); its suppressed cells are "
                    "drawn hatched and labelled as suppressed, not as values"
                )
        else:
            status, reasons, checks = check_counts(counts, structural_zeros, self.rules)
        out = self._output(name, "figure", status, reasons, title)
        data = None
        if status != "fail":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
            out.png = buf.getvalue()
            out.path, out.sha256 = self._write_file(f"{name}.png", out.png)
            payload, checks["data"] = self._figure_data(counts, structural_zeros)
            data = self._write_file(f"{name}.csv", payload)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)
        entry = self._entry(out, checks)
        entry["data_file"] = (
            None if data is None else data[0].relative_to(self.ctx.out_dir).as_posix()
        )
        entry["data_sha256"] = None if data is None else data[1]
        self._acro_record_custom(name, out, "figure")
        return self._commit(name, out, entry)

    def _figure_data(
        self, counts: pd.DataFrame | pd.Series | Output, structural_zeros: Iterable[tuple[Any, Any]]
    ) -> tuple[bytes, dict[str, Any]]:
        """The CSV of the data behind a figure and what it holds: the released
        table it was drawn from (the same bytes as that table's CSV), or the
        counts given, with NaN (not shown) as an empty cell."""
        if isinstance(counts, Output):
            if counts.path is not None and counts.path.suffix == ".csv":
                payload = counts.path.read_bytes()
            else:
                frame = counts.table if counts.table is not None else pd.DataFrame()
                payload = screening.csv_bytes(frame, na_rep="")
            source = self.entries.get(counts.output_id.split("/", 1)[1], {})
            source_checks = (
                source.get("checks") or {} if source.get("id") == counts.output_id else {}
            )
            # the same bytes as the table: the same layout, so the audit's
            # differencing attack reads the figure's data as it reads the table
            layout = {
                k: source_checks[k]
                for k in LAYOUT_KEYS
                if k in source_checks and source_checks.get("population")
            }
            return payload, {
                "statistic": source_checks.get("statistic"),
                "structural_zeros": source_checks.get("structural_zeros", []),
                "index_columns": 1 if counts.table is None else counts.table.index.nlevels,
                "from": counts.output_id,
                **layout,
            }
        frame = counts.to_frame() if isinstance(counts, pd.Series) else counts.copy()
        if isinstance(frame.columns, pd.MultiIndex):
            frame.columns = [label(c) for c in frame.columns]
        payload = screening.csv_bytes(frame, na_rep="")
        zeros = [
            {"row": label(r), "column": label(c if c is not None else frame.columns[0])}
            for r, c in structural_zeros
        ]
        return payload, {
            "statistic": "count",
            "structural_zeros": zeros,
            "index_columns": frame.index.nlevels,
            "from": None,
        }

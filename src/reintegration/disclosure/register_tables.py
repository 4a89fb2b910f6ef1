"""Tables in the output register: frequency tables, magnitude tables, and
tables that are not about persons.

ACRO checks each table request and the compendium applies the suppression
(:mod:`reintegration.disclosure.suppression`); count tables of one population are
protected together (:mod:`reintegration.disclosure.linked_tables`). What passes is
released as a CSV with suppressed cells empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ..intake import screening
from . import protection
from .acro import acro_call, acro_flagged, align
from .checks import check_counts
from .linked_tables import cell_keys, layout
from .output import Output
from .register_core import RegisterCore
from .rules import ALLOWED_AGG, MARGINS, DisclosureError
from .suppression import (
    TableRequest,
    add_flag,
    cell_records,
    mark_structural,
    mask_released,
    primary_flags,
    protect_magnitude_margins,
    table_request,
    table_status,
    tabulate,
)


class TableOutputs(RegisterCore):
    """The table outputs of a register."""

    def crosstab(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        *,
        margins: bool = False,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        title: str | None = None,
        population: str | None = None,
        dims: Sequence[str] | None = None,
        fixed: dict[str, str] | None = None,
        coarsen: dict[str, tuple[str, dict[str, str]]] | None = None,
        blocks: dict[str, Any] | None = None,
    ) -> Output:
        """A frequency table (persons per cell), checked by ACRO.

        Cells under the threshold and zeros not declared in
        ``structural_zeros`` (pairs ``(row, column)``; a row or column of a
        multi-level table is a tuple) are suppressed. With ``margins`` the
        totals are the true totals, suppressed like any cell when small.

        ``population`` names the set of units the table counts (for example
        ``"cohort persons"``). Tables of the same population are protected
        together: complementary cells are suppressed until no suppressed
        cell of this or an earlier table of that population (in this step or
        an earlier one of the city) can be narrowed by subtraction (see
        :mod:`reintegration.disclosure.protection`). Without it the table is protected
        on its own. Tables join on their variables' names: ``dims`` renames
        the row and column variables for that purpose (when two tables use
        one column name for different things), ``fixed`` declares the table a
        slice (``{"table": "clients"}``), ``coarsen`` a coarser variable
        derived from one of its own (``{"quarter": ("year", {...})}``), and
        ``blocks`` a stack of sub-tables joined one by one (see
        :func:`reintegration.disclosure.protection.split_blocks`).
        """
        link = {
            "population": population,
            "dims": dims,
            "fixed": fixed,
            "coarsen": coarsen,
            "blocks": blocks,
        }
        return self._table(
            name,
            df,
            index,
            columns,
            None,
            None,
            margins,
            structural_zeros,
            title,
            None,
            link=link,
        )

    def table(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        *,
        values: str,
        aggfunc: str = "mean",
        margins: bool = False,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        decimals: int = 2,
        title: str | None = None,
    ) -> Output:
        """A table of ``aggfunc`` (mean, median, sum, std or count) of
        ``values`` per cell, checked by ACRO (threshold, dominance) and by the
        compendium (proportions, standard deviations). Minima, maxima and
        modes are refused."""
        agg = str(getattr(aggfunc, "__name__", aggfunc)).lower()
        if agg in ("min", "max", "amin", "amax", "nanmin", "nanmax", "minimum", "maximum"):
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc={aggfunc!r} refused: a minimum or maximum is the "
                "value of one person, and CBS does not release minima or maxima. Report a "
                "percentile band of a large group, or a rounded range, instead"
            )
        if agg == "mode":
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc='mode' refused: a mode is a value held by named "
                "persons, and ACRO picks one of several modes at random (not reproducible)"
            )
        if agg not in ALLOWED_AGG:
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc={aggfunc!r} is not supported; use one of "
                f"{', '.join(ALLOWED_AGG)}"
            )
        if agg == "count":
            return self._table(
                name, df, index, columns, values, None, margins, structural_zeros, title, None
            )
        return self._table(
            name, df, index, columns, values, agg, margins, structural_zeros, title, decimals
        )

    def public_table(
        self,
        name: str,
        df: pd.DataFrame,
        *,
        reason: str,
        count_columns: Sequence[str] = (),
        title: str | None = None,
        population: str | None = None,
        index: str | None = None,
    ) -> Output:
        """A table that is not computed from person-level data (configuration,
        file inventories), registered so the audit knows it was looked at.

        ``reason`` says why it is not about persons. Counts it shows (for
        example rows per delivered file) go in ``count_columns`` and must pass
        the threshold and zero rules; if one fails, nothing is released.
        With ``population`` and ``index`` (the column whose values name the
        rows) the counts join the other tables of that population in the
        differencing attack of the audit (see :meth:`crosstab`).
        """
        self._check_name(name)
        if not reason.strip():
            raise DisclosureError(f"{self.step}/{name}: say why this table is not about persons")
        missing = [c for c in count_columns if c not in df.columns]
        if missing:
            raise DisclosureError(f"{self.step}/{name}: no column(s) {missing} in the table")
        if count_columns:
            status, reasons, checks = check_counts(df[list(count_columns)], (), self.rules)
        else:
            status, reasons, checks = "pass", [], {}
        if population is not None:
            known = [*df.columns, *df.index.names]
            if index is None or index not in known or len(count_columns) != 1:
                raise DisclosureError(
                    f"{self.step}/{name}: a public table joins its population by one index "
                    "column and one count column"
                )
            checks.update(
                population=population,
                dims=[index],
                fixed={},
                coarsen={},
                index_column=index,
                count_column=count_columns[0],
                index_levels=1,
                column_levels=0,
            )
            if status != "fail":  # later tables of this step are protected against it
                counts = df.reset_index() if index not in df.columns else df
                shown = counts.set_index(index)[[count_columns[0]]].astype(float)
                published = protection.from_frame(
                    f"{self.step}/{name}", population, shown, dims=[index], oneway=True
                )
                self._linked.of(population).append(published)
        reasons = [f"not computed from person-level data: {reason.strip()}", *reasons]
        table = df.copy()
        out = self._output(
            name,
            "table",
            status,
            reasons,
            title,
            table=table,
            flags=pd.DataFrame("", index=table.index, columns=table.columns, dtype=object),
            decimals=None,
        )
        if status != "fail":
            payload = screening.csv_bytes(table)  # formulas neutralised
            out.path, out.sha256 = self._write_file(f"{name}.csv", payload)
        entry = self._entry(out, checks)
        return self._commit(name, out, entry)

    # ---- tables ----------------------------------------------------------------
    def _table(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None,
        values: str | None,
        agg: str | None,
        margins: bool,
        structural_zeros: Iterable[tuple[Any, Any]],
        title: str | None,
        decimals: int | None,
        link: dict[str, Any] | None = None,
    ) -> Output:
        self._check_name(name)
        where = f"{self.step}/{name}"
        req = table_request(where, df, index, columns, values, agg, margins, self.rules)
        # ACRO checks the request (and records it for the output checker)
        uid, record = self._acro_table(req)
        try:
            declared = list(structural_zeros)
            out, entry = self._check_table(name, req, record, declared, title, decimals, link or {})
        except BaseException:
            # nothing half-checked may stay in ACRO's record for the checker
            self.session().remove_output(uid)
            raise
        self._acro_finish_table(uid, name, out, agg, declared, req.binary)
        return self._commit(name, out, entry)

    def _check_table(
        self,
        name: str,
        req: TableRequest,
        record: Any,
        declared: list[Any],
        title: str | None,
        decimals: int | None,
        link: dict[str, Any],
    ) -> tuple[Output, dict[str, Any]]:
        """Suppress what the rules require, write the released CSV and make
        the register entry of one table; ``record`` is ACRO's record of it."""
        rules = self.rules
        raw, n_contrib = tabulate(req)
        n = n_contrib.to_numpy(dtype=float)
        acro_out = align(record.outcome, raw, name)
        flags = primary_flags(req, raw, n, acro_out, rules)
        structural = mark_structural(raw, n, declared, flags, name, self.step)
        released = protect_magnitude_margins(req, raw, flags, rules)
        is_count = req.agg is None
        if is_count:
            dims, oneway, threshold = req.dims, req.oneway, rules.cell_threshold
            protected = self._linked.protect(name, raw, flags, dims, oneway, link, threshold)
            add_flag(flags, protected, "secondary")
        cells = mask_released(raw, released, flags, structural, decimals)
        if req.oneway and req.margins:  # the total column repeats the only column
            cells = cells.without_total_column()
        status, reasons = table_status(cells, declared, rules)
        raw = cells.raw
        out = self._output(
            name,
            "table",
            status,
            reasons,
            title,
            table=cells.released,
            flags=pd.DataFrame(cells.flags, index=raw.index, columns=raw.columns),
            structural=pd.DataFrame(cells.structural, index=raw.index, columns=raw.columns),
            decimals=decimals,
        )
        if status != "fail":
            fmt = None if decimals is None else f"%.{decimals}f"
            payload = screening.csv_bytes(cells.released, na_rep="", float_format=fmt)
            out.path, out.sha256 = self._write_file(f"{name}.csv", payload)
        suppressed_cells, structural_zeros = cell_records(cells, cell_keys(raw, req.oneway))
        checks = {
            "statistic": req.statistic,
            "cells": int(cells.suppressed.size),
            "suppressed": int(cells.suppressed.sum()),
            **(layout(raw, req.dims, req.oneway, link, self.step) if is_count else {}),
            "suppressed_cells": suppressed_cells,
            "structural_zeros": structural_zeros,
        }
        entry = self._entry(out, checks)
        entry["acro"] = {"status": record.status, "flagged": acro_flagged(acro_out)}
        return out, entry

    # ---- ACRO's record -----------------------------------------------------------
    def _acro_table(self, req: TableRequest) -> tuple[str, Any]:
        s = self.session()
        data, values, agg = req.data, req.values, req.agg
        index = [data[c].reset_index(drop=True) for c in req.rows]
        columns = [data[c].reset_index(drop=True) for c in req.cols]
        vals = data[values].reset_index(drop=True) if values is not None else None
        aggfunc = agg if vals is not None else None
        if vals is not None and aggfunc is None:
            aggfunc = "count"
        acro_call(
            s.crosstab,
            index,
            columns,
            values=vals,
            aggfunc=aggfunc,
            margins=req.margins,
            margins_name=MARGINS,
        )
        uid = f"output_{s.results.output_id - 1}"
        return uid, s.results.get(uid)

    def _acro_finish_table(
        self,
        uid: str,
        name: str,
        out: Output,
        agg: str | None,
        declared: list[Any],
        binary: bool,
    ) -> None:
        s = self.session()
        if not out.released:
            s.remove_output(uid)
            return
        s.rename_output(uid, name)
        rec = s.results.get(name)
        rec.output = [out.table]
        rec.timestamp = ""
        rec.command = f"register.{'crosstab' if agg is None else 'table'}({out.output_id!r})"
        notes = [
            "The compendium applied the suppression from these cell outcomes and its own "
            "count rules; the output is the released table."
        ]
        if agg == "std":
            notes.append(
                "ACRO 1.0.2 flags every cell of a standard-deviation table (its degrees-of-"
                "freedom outcome is used as a mask); the compendium applied the per-cell rule "
                f"n - 1 >= {self.rules.residual_dof} and the threshold rule instead."
            )
        if declared:
            notes.append(f"Structural zeros declared by the researcher: {declared!r}.")
        if binary:
            notes.append(
                "The values are 0/1: persons with and without the outcome were each held to "
                "the threshold rule."
            )
        for note in notes:
            s.add_comments(name, note)
        if out.status == "review" or rec.status != "pass":
            rec.status = "review"
            s.add_exception(name, "Suppression applied where needed; see comments.")
        self._flush_acro()

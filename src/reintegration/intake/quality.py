"""The delivery check: validate a municipality's exports, quarantine bad rows,
resolve duplicates and report data quality in aggregates.

Input: the files read by :mod:`reintegration.intake.ingest` (canonical column names,
values as delivered). Output: a :class:`CheckedDelivery` with

* the checked tables: canonical, typed columns (codes mapped onto the
  canonical values, instrument codes onto the shared taxonomy, the BSN
  normalised), plus ``_row``, the row number in the export;
* the quarantine: one line per removed row, naming the file, the row, the
  column and the reason (:data:`reintegration.intake.quality_rules.REASONS`);
* the flags: rows kept with a repaired or missing value, one line per
  finding (a BSN that fails the elfproef is kept, without its BSN, for
  fallback linkage).

Every row is accounted for: per table, rows in = rows kept + rows quarantined
(:meth:`CheckedDelivery.accounting`).

The checks are pandera schemas per canonical table (:func:`row_schema`), whose
check names are the reason codes; the checked tables are validated once more
against the output contract (:func:`output_schema`) before they are written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.config import ConfigError, load_instruments
from ..linking import bsn as bsnlib
from . import screening
from .checked import CheckedDelivery
from .ingest import CODED_COLUMNS, DATE_COLUMNS, Export
from .quality_report import _assess, quality_report
from .quality_rules import (
    CANONICAL_CODES,
    DUPLICATE_RULES,
    EARLIEST_DATE,
    EVENT_HISTORY_YEARS,
    QUARANTINE_ORDER,
    REASONS,
    TABLES,
)
from .quality_schema import (
    _code_key,
    _key_series,
    _preference,
    _schema_reason,
    _shown,
    _text,
    _typed,
    clean_text_column,
    output_schema,
    row_schema,
)

# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------


def reference_dates(city: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start of the delivery window, export date).

    The export date is ``exports.export_date`` when the configuration declares
    it, else the last day of the observation window (the last inflow month plus
    the follow-up). The window starts on the first day of the first inflow month.
    """
    study = city["study"]
    start = pd.Timestamp(f"{study['inflow_from']}-01")
    declared = city["exports"].get("export_date")
    if declared:
        ref = pd.Timestamp(declared)
    else:
        end = pd.Timestamp(f"{study['inflow_to']}-01") + pd.DateOffset(
            months=int(study.get("follow_up_months", 24)) + 1
        )
        ref = end - pd.Timedelta(days=1)
    return start, ref


def date_bounds(city: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(earliest plausible date of any kind, earliest plausible start or end of
    a spell, episode or post), from ``exports.earliest_date`` and
    ``exports.earliest_event_date``."""
    ex = city["exports"]
    floor = pd.Timestamp(str(ex.get("earliest_date", EARLIEST_DATE)))
    window_start, _ = reference_dates(city)
    default = window_start - pd.DateOffset(years=EVENT_HISTORY_YEARS)
    event = pd.Timestamp(str(ex.get("earliest_event_date", default.date())))
    return floor, max(floor, event)


def check_delivery(
    exports: dict[str, Export],
    city: dict[str, Any],
    *,
    taxonomy: dict[str, Any] | None = None,
    root: Any = None,
) -> CheckedDelivery:
    """Check every table of a delivery (see the module docstring)."""
    taxonomy = taxonomy if taxonomy is not None else load_instruments(root)
    window_start, ref = reference_dates(city)
    ctx = _Check(city, exports, taxonomy, ref)
    for table in TABLES:
        if table in exports:
            ctx.row_checks(table)
    ctx.deduplicate()
    ctx.references()
    ctx.consistency()
    tables = ctx.finish()
    quarantine, flags = ctx.issue_frames()
    checked = CheckedDelivery(
        city=city["name"],
        reference_date=ref,
        window_start=window_start,
        tables=tables,
        quarantine=quarantine,
        flags=flags,
        rows_in={t: exports[t].rows for t in TABLES if t in exports},
        files={t: exports[t].file for t in TABLES if t in exports},
        notes={t: list(exports[t].notes) for t in TABLES if t in exports},
    )

    _assess(checked, exports)
    if not checked.accounting_ok():  # pragma: no cover - a bug, never a data problem
        raise AssertionError(f"rows lost in the delivery check:\n{checked.accounting()}")
    for table, df in tables.items():
        _validate_output(table, df, city, taxonomy)
    return checked


def _validate_output(table: str, df: pd.DataFrame, city: dict[str, Any], taxonomy: Any) -> None:
    """The output contract; a breach is a bug, reported without the values
    pandera would quote (they can be a client's data)."""
    import pandera.errors as pe

    try:
        output_schema(table, city, taxonomy).validate(df)
    except pe.SchemaError as exc:
        cases = exc.failure_cases
        n = len(cases) if cases is not None and hasattr(cases, "__len__") else "some"
        column = getattr(exc.schema, "name", None)
        check = getattr(exc.check, "name", None) or str(exc.reason_code)
        raise AssertionError(
            f"the checked {table} table breaks its output contract: column {column!r}, "
            f"check {check!r}, {n} failing value(s) (values not shown)"
        ) from None


class _Check:
    """The working state of one delivery check."""

    def __init__(self, city: dict[str, Any], exports: dict[str, Export], taxonomy, ref):
        self.city = city
        self.exports = exports
        self.taxonomy = taxonomy
        self.ref = ref
        self.frames: dict[str, pd.DataFrame] = {}
        self.issues: list[dict[str, Any]] = []
        self.out: dict[str, pd.Series] = {}  # table -> boolean "quarantined" by position

    # ---- bookkeeping -----------------------------------------------------------
    def issue(
        self, table: str, pos: np.ndarray | pd.Index, column: str | None, reason: str,
        values: Any = None, detail: str = "",
    ) -> None:
        pos = np.asarray(pos, dtype=np.int64)
        if pos.size == 0:
            return
        df = self.frames[table]
        ex = self.exports[table]
        shown = ex.delivered
        if values is None and shown is not None and column in shown.columns:
            values = shown[column].to_numpy()[pos]  # the value as delivered
        elif values is None and column is not None and column in df.columns:
            values = df[column].to_numpy()[pos]
        elif values is None:
            values = [None] * pos.size
        for p, v in zip(pos, np.asarray(values, dtype=object), strict=True):
            self.issues.append({
                "table": table,
                "file": ex.file,
                "pos": int(p),
                "row": int(df["_row"].iat[p]),
                "client_id": df["client_id"].iat[p] if "client_id" in df.columns else None,
                "column": ex.columns.get(column, column) if column else None,
                "canonical": column,
                "reason": reason,
                "value": _shown(v),
                "detail": detail or REASONS[reason].text,
            })
        if REASONS[reason].action == "quarantine":
            self.out[table].iloc[pos] = True

    def alive(self, table: str) -> pd.DataFrame:
        df = self.frames[table]
        return df[~self.out[table].to_numpy()]

    # ---- per-row checks ----------------------------------------------------------
    def row_checks(self, table: str) -> None:
        ex = self.exports[table]
        df = ex.frame.copy().reset_index(drop=True)
        self.frames[table] = df
        self.out[table] = pd.Series(False, index=df.index)
        for err in ex.cell_errors:
            pos = np.array([err.row - 1])
            if table == "clients" and err.column == "birth_date":
                self.issue(table, pos, err.column, "invalid_birth_date", [err.value], err.reason)
            else:
                reason = "date_out_of_range" if err.kind == "range" else "unparsable_date"
                self.issue(table, pos, err.column, reason, [err.value], err.reason)
        self._screen(table, df)
        for col in df.columns:
            if col != "_row" and col not in DATE_COLUMNS.get(table, ()):
                df[col] = clean_text_column(df[col])
        self._date_bounds(table, df)
        if table == "clients":
            self._clients(df)
        elif table == "benefit_spells":
            self._codes(table, df, ("benefit_type",), quarantine="unknown_benefit_type")
        elif table == "instruments":
            self._instruments(df)
        schema = row_schema(table, self.ref, [c for c in df.columns if c != "_row"])
        self._run_schema(table, schema)

    def _screen(self, table: str, df: pd.DataFrame) -> None:
        """Control characters (removed, flagged) and spreadsheet formulas
        (kept as text, flagged; neutralised in every CSV the project writes)."""
        for col in df.columns:
            if col == "_row" or col in DATE_COLUMNS.get(table, ()):
                continue
            control = screening.control_mask(df[col])
            self.issue(table, np.flatnonzero(control), col, "control_character")
            if control.any():
                df[col] = df[col].map(screening.strip_control).astype(object)
            formula = screening.formula_mask(df[col])
            self.issue(table, np.flatnonzero(formula), col, "spreadsheet_formula")

    def _date_bounds(self, table: str, df: pd.DataFrame) -> None:
        """Dates before the plausible bounds; empty birth dates."""
        floor, event_floor = date_bounds(self.city)
        for col in DATE_COLUMNS.get(table, ()):
            if col not in df.columns:
                continue
            if col == "birth_date":
                early = df[col].notna() & (df[col] < floor)
                self.issue(table, np.flatnonzero(early), col, "invalid_birth_date",
                           detail=f"a birth date before {floor.date()} (exports.earliest_date):"
                           " set to missing")
                df[col] = df[col].where(~early)
                shown = self.exports[table].delivered
                empty = (shown[col] if shown is not None else df[col]).isna().to_numpy()
                self.issue(table, np.flatnonzero(empty), col, "missing_birth_date")
                continue
            early = (df[col].notna() & (df[col] < event_floor)).to_numpy()
            self.issue(table, np.flatnonzero(early), col, "implausible_date",
                       detail=f"a date before {event_floor.date()} "
                       "(exports.earliest_event_date): not plausible in this delivery")

    def _clients(self, df: pd.DataFrame) -> None:
        t = "clients"
        if "bsn" in df.columns:
            raw = df["bsn"]
            norm = bsnlib.normalise_series(pd.Series(raw.to_numpy(), dtype=object))
            digits = (
                pd.Series(raw.map(_text).to_numpy(), dtype="string")
                .str.replace(r"\.0+$", "", regex=True)
                .str.replace(r"[\s.\-]", "", regex=True)
            )
            padded = digits.str.fullmatch(r"[0-9]{8}").fillna(False).to_numpy(dtype=bool)
            valid = bsnlib.elfproef_series(norm).to_numpy(dtype=bool)
            missing = norm.isna().to_numpy()
            invalid = ~valid & ~missing
            self.issue(t, np.flatnonzero(missing), "bsn", "bsn_missing")
            self.issue(t, np.flatnonzero(invalid), "bsn", "bsn_invalid")
            self.issue(t, np.flatnonzero(padded & valid), "bsn", "bsn_padded")
            status = np.where(valid, "valid", np.where(missing, "missing", "invalid"))
            df["bsn"] = pd.Series(norm.to_numpy(dtype=object), dtype=object).where(valid, None)
            df["bsn_status"] = status
            df["bsn_padded"] = padded & valid
        else:
            df["bsn_status"] = "missing"
            df["bsn_padded"] = False
        self._codes(t, df, tuple(c for c in CODED_COLUMNS if c in df.columns), quarantine=None)
        if "postcode" in df.columns:
            pc = df["postcode"].map(
                lambda v: None if v is None else str(v).replace(" ", "").upper()
            )
            ok = pc.str.fullmatch(r"[1-9][0-9]{3}[A-Z]{2}").fillna(False).astype(bool)
            bad = pc.notna() & ~ok
            self.issue(t, np.flatnonzero(bad), "postcode", "invalid_postcode")
            df["postcode"] = pc.where(ok, None).astype(object)
        if "house_number" in df.columns:
            num = pd.to_numeric(df["house_number"], errors="coerce")
            ok = num.notna() & (num > 0) & (num == np.floor(num.fillna(0)))
            bad = df["house_number"].notna() & ~ok
            self.issue(t, np.flatnonzero(bad), "house_number", "invalid_house_number")
            df["house_number"] = num.where(ok).astype("Int64")
        if "birth_date" in df.columns:
            bd = df["birth_date"]
            future = bd.notna() & (bd > self.ref)
            self.issue(t, np.flatnonzero(future), "birth_date", "invalid_birth_date",
                       detail="a birth date after the export date: set to missing")
            df["birth_date"] = bd.where(~future)

    def _codes(
        self, table: str, df: pd.DataFrame, columns: tuple[str, ...], quarantine: str | None
    ) -> None:
        codes = self.city["exports"].get("codes") or {}
        for col in columns:
            given = codes.get(col) or {}
            inverse = {_code_key(code): canon for canon, code in given.items()}
            for canon in CANONICAL_CODES.get(col, ()):
                inverse.setdefault(_code_key(canon), canon)
            keys = df[col].map(_code_key)
            mapped = keys.map(inverse)
            bad = keys.notna() & mapped.isna()
            if quarantine:
                self.issue(table, np.flatnonzero(bad), col, quarantine)
            else:
                self.issue(table, np.flatnonzero(bad), col, "unknown_code")
            df[col] = mapped.astype(object).where(mapped.notna(), None)

    def _instruments(self, df: pd.DataFrame) -> None:
        mapping = self.city["exports"].get("instrument_codes") or {}
        inverse = {}
        for code, key in mapping.items():
            if key not in self.taxonomy:
                raise ConfigError(
                    f"{self.city.get('_path', self.city['name'])}: instrument code {code!r} "
                    f"maps to {key!r}, which is not in config/instruments.yml"
                )
            inverse[_code_key(code)] = key
        keys = df["instrument_code"].map(_code_key)
        inst = keys.map(inverse)
        bad = keys.notna() & inst.isna()
        self.issue("instruments", np.flatnonzero(bad), "instrument_code",
                   "unknown_instrument_code")
        df["instrument_code"] = keys.astype(object).where(keys.notna(), None)
        df["instrument"] = inst.astype(object).where(inst.notna(), None)

    def _run_schema(self, table: str, schema: Any) -> None:
        import pandera.errors as pe

        alive = self.alive(table)
        try:
            schema.validate(alive, lazy=True)
            return
        except pe.SchemaErrors as exc:
            cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        df = self.frames[table]
        seen: set[tuple[int, str]] = set()
        for _, case in cases.iterrows():
            check = str(case["check"])
            reason, column = _schema_reason(table, check, case["column"])
            pos = int(case["index"])
            if (pos, reason) in seen:
                continue
            seen.add((pos, reason))
            if reason == "end_after_export":
                self.issue(table, [pos], column, reason)
                df.at[pos, column] = pd.NaT
            else:  # every reason is recorded; the quarantine line names the first
                self.issue(table, [pos], column, reason)

    # ---- duplicates ----------------------------------------------------------------
    def deduplicate(self) -> None:
        for table in TABLES:
            if table not in self.frames:
                continue
            key, identity, _, _ = DUPLICATE_RULES[table]
            alive = self.alive(table)
            key = tuple(c for c in key if c in alive.columns)
            identity = tuple(c for c in identity if c in alive.columns)
            if not key:
                continue
            self._dedup(table, alive, list(key), list(identity))
            if table in ("benefit_spells", "instruments"):
                self._dedup_content(table)

    def _dedup(self, table: str, alive: pd.DataFrame, key: list[str], identity: list[str]):
        dup = alive[alive.duplicated(key, keep=False)]
        if dup.empty:
            return
        k = _key_series(dup, key)
        if identity:
            n_ident = dup[identity].astype(str).groupby(k.to_numpy()).nunique().max(axis=1)
            conflicting = k.map(n_ident).to_numpy() > 1
        else:
            conflicting = np.zeros(len(dup), dtype=bool)
        self.issue(table, dup.index[conflicting], key[-1], "conflicting_duplicate",
                   detail="copies with the same " + " and ".join(key) + " differ in "
                   + ", ".join(identity))
        same = dup[~conflicting]
        if same.empty:
            return
        order = same.assign(_k=k[~conflicting].to_numpy(), **_preference(table, same))
        order = order.sort_values(["_k", "_p1", "_p2", "_row"], ascending=[True, False, False,
                                                                            True])
        keep = ~order.duplicated("_k", keep="first")
        self.issue(table, order.index[~keep.to_numpy()], key[-1], "duplicate",
                   detail="a copy of a record kept once (same " + " and ".join(key) + ")")
        if table == "clients":
            self._differences(order, keep)

    def _differences(self, order: pd.DataFrame, keep: pd.Series) -> None:
        """Flag the kept copy of a client where a removed copy differs in an
        analysis column (names and street may differ in accents only)."""
        compare = [c for c in ("district", "household_type", "language_level",
                               "labour_market_distance", "team", "case_manager", "postcode",
                               "house_number") if c in order.columns]
        kept = order[keep.to_numpy()]
        dropped = order[~keep.to_numpy()]
        by_key = kept.set_index("_k")
        for col in compare:
            ref = dropped["_k"].map(by_key[col].astype(str))
            differ = dropped[col].astype(str).to_numpy() != ref.to_numpy()
            keys = set(dropped["_k"].to_numpy()[differ])
            if keys:
                idx = kept.index[kept["_k"].isin(keys).to_numpy()]
                self.issue("clients", idx, col, "duplicate_values_differ")

    def _dedup_content(self, table: str) -> None:
        alive = self.alive(table)
        if table == "benefit_spells":
            key = [c for c in ("client_id", "benefit_type", "start_date", "end_date")
                   if c in alive.columns]
            dup = alive[alive.duplicated(key, keep="first")]
            self.issue(table, dup.index, "start_date", "duplicate",
                       detail="the same spell (client, scheme, start, end) under another number")
        else:
            key = ["client_id", "instrument", "start_date"]
            order = alive.assign(_has_end=alive["end_date"].notna()).sort_values(
                key + ["_has_end", "_row"], ascending=[True] * len(key) + [False, True]
            )
            dup = order[order.duplicated(key, keep="first")]
            self.issue(table, dup.index, "start_date", "duplicate",
                       detail="the same episode (client, instrument, start) under another number")

    # ---- references between tables ---------------------------------------------------
    def references(self) -> None:
        if "clients" not in self.frames:
            return
        kept = set(self.alive("clients")["client_id"])
        delivered = set(self.frames["clients"]["client_id"].dropna())
        for table in ("benefit_spells", "instruments"):
            if table not in self.frames:
                continue
            alive = self.alive(table)
            orphan = ~alive["client_id"].isin(kept)
            gone = orphan & alive["client_id"].isin(delivered)
            self.issue(table, alive.index[gone.to_numpy()], "client_id", "client_quarantined")
            self.issue(table, alive.index[(orphan & ~gone).to_numpy()], "client_id",
                       "unknown_client")

    def consistency(self) -> None:
        if "benefit_spells" in self.frames:
            b = self.alive("benefit_spells").sort_values(["client_id", "start_date", "_row"])
            end = b["end_date"].fillna(pd.Timestamp.max)
            running = end.groupby(b["client_id"].to_numpy()).cummax()
            prev_end = running.groupby(b["client_id"].to_numpy()).shift()
            overlap = prev_end.notna() & (b["start_date"] <= prev_end)
            self.issue("benefit_spells", b.index[overlap.to_numpy()], "start_date",
                       "overlapping_spell")
        if "clients" in self.frames:
            clients = self.alive("clients")
            if "benefit_spells" in self.frames:
                with_spell = set(self.alive("benefit_spells")["client_id"])
                none = ~clients["client_id"].isin(with_spell)
                self.issue("clients", clients.index[none.to_numpy()], "client_id",
                           "no_benefit_spell")
            if "caseload" in self.frames and "case_manager" in clients.columns:
                known = set(self.alive("caseload")["case_manager"])
                unknown = clients["case_manager"].notna() & ~clients["case_manager"].isin(known)
                self.issue("clients", clients.index[unknown.to_numpy()], "case_manager",
                           "unknown_case_manager")

    # ---- results ------------------------------------------------------------------------
    def finish(self) -> dict[str, pd.DataFrame]:
        out = {}
        for table, df in self.frames.items():
            kept = df[~self.out[table].to_numpy()].copy()
            out[table] = _typed(table, kept).reset_index(drop=True)
        return out

    def issue_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        cols = ["table", "file", "row", "client_id", "column", "reason", "value", "detail"]
        issues = pd.DataFrame(self.issues, columns=[*cols, "pos", "canonical"])
        action = issues["reason"].map(lambda r: REASONS[r].action)
        flags = issues[action == "flag"][cols].sort_values(["table", "row", "reason"])
        q = issues[action == "quarantine"].copy()
        q["_order"] = q["reason"].map(QUARANTINE_ORDER.index)
        q = q.sort_values(["table", "row", "_order"])
        first = q.drop_duplicates(["table", "row"], keep="first").copy()
        if len(q) > len(first):
            others = q.groupby(["table", "row"])["reason"].agg(
                lambda s: ", ".join(list(dict.fromkeys(s))[1:])
            ).rename("_others")
            first = first.merge(others, left_on=["table", "row"], right_index=True, how="left")
            first["detail"] = [
                f"{d} (also: {o})" if o else d
                for d, o in zip(first["detail"], first["_others"], strict=True)
            ]
        quarantine = first[cols].sort_values(["table", "row"]).reset_index(drop=True)
        for frame in (quarantine, flags):
            frame["row"] = frame["row"].astype("int64")
            for col in ("client_id", "column", "value", "detail"):
                frame[col] = frame[col].astype("string")
        return quarantine, flags.reset_index(drop=True)


# ---------------------------------------------------------------------------
# writing (through the step context, so custody is enforced)
# ---------------------------------------------------------------------------

CHECKED_FILES = {t: f"{t}.parquet" for t in TABLES}
QUARANTINE_FILE = "quarantine.parquet"
FLAGS_FILE = "flags.parquet"


def write_checked(ctx: Any, checked: CheckedDelivery) -> dict[str, Any]:
    """Write the checked tables, the quarantine and the flags to the municipal
    domain (``build/<size>/<city>/municipal/``) and ``quality.json`` (research: it
    holds exact counts; it travels with the delivery to the researcher)."""
    written = {}
    for table, df in checked.tables.items():
        written[table] = ctx.write_parquet(CHECKED_FILES[table], df, domain="municipal")
    written["quarantine"] = ctx.write_parquet(QUARANTINE_FILE, checked.quarantine, "municipal")
    written["flags"] = ctx.write_parquet(FLAGS_FILE, checked.flags, "municipal")
    written["quality"] = ctx.write_json(
        "quality.json", quality_report(checked, size=ctx.size), domain="research"
    )
    return written


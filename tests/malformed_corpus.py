"""The corpus of malformed municipal exports: one generator, one expected outcome per case.

Every case starts from the small valid delivery of ``test_ingest`` (five
clients, their spells and episodes, two case managers) written in a city's
declared format (Rotterdam: CSV in cp1252 with ``;``; Utrecht: CSV in UTF-8;
Den Haag: SPSS ``.sav``), changes one thing, and declares the one outcome the
delivery check must reach:

``error``       the reader stops with an :class:`ExportError` naming the file,
                the row and the column, whose message contains ``expect``;
``quarantine``  the row is removed with a quarantine line (table, row, column,
                reason ``expect``) showing ``value`` as delivered;
``flag``        the row is kept with a flag line (same fields);
``note``        the file gets a note containing ``expect``; the row is kept.

Any other exception is a traceback; an expected line that is absent is a
silent acceptance; a line or message that says something else is a wrong
message. No error message may contain a delivered identifying value (the
BSNs, names, streets and birth dates of the delivery).

Run as a script to write the corpus to a folder and print the outcome of every
case with totals (``python tests/malformed_corpus.py OUT``);
``tests/test_corpus.py`` runs every case as a test.
"""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_ingest import (  # noqa: E402
    CLIENTS,
    canonical_frame,
    city_frame,
    csv_text,
    encode,
    write_delivery,
    write_sav,
)

from reintegration.core.config import load_city
from reintegration.intake import ingest, quality
from reintegration.intake.ingest import ExportError

OUTCOMES = ("error", "quarantine", "flag", "note")


@dataclass(frozen=True)
class Case:
    name: str
    city: str
    table: str
    outcome: str
    row: int | None
    column: str | None
    expect: str
    value: str | None = None
    frame: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # canonical rows changed
    edit: Callable[[bytes, dict], bytes] | None = None  # the written file changed
    exports: dict[str, Any] = field(default_factory=dict)  # configuration changed

    @property
    def format(self) -> str:
        return "sav" if self.city == "den_haag" else "csv"


@dataclass
class Result:
    kind: str  # error | quarantine | flag | note | accepted | traceback
    row: int | None = None
    column: str | None = None
    text: str = ""  # the message, reason or note
    value: str | None = None
    accounting_ok: bool = True
    messages: list[str] = field(default_factory=list)  # every message a reader may see


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------


def setv(row: int, column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Set a canonical value in data row ``row`` (from 1)."""

    def change(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[column] = df[column].astype(object)
        df.loc[row - 1, column] = value
        return df

    return change


def text_edit(fn: Callable[[str], str]) -> Callable[[bytes, dict], bytes]:
    def edit(raw: bytes, city: dict) -> bytes:
        return encode(city, fn(raw.decode(city["exports"]["encoding"])))

    return edit


def sub(old: str, new: str) -> Callable[[bytes, dict], bytes]:
    def fn(text: str) -> str:
        assert old in text, f"{old!r} is not in the file"
        return text.replace(old, new, 1)

    return text_edit(fn)


def reencode(encoding: str, bom: bytes = b"") -> Callable[[bytes, dict], bytes]:
    def edit(raw: bytes, city: dict) -> bytes:
        text = raw.decode(city["exports"]["encoding"]).replace("Y?lmaz", "Yılmaz")
        return bom + text.encode(encoding)

    return edit


def replace_bytes(old: bytes, new: bytes) -> Callable[[bytes, dict], bytes]:
    def edit(raw: bytes, city: dict) -> bytes:
        assert old in raw
        return raw.replace(old, new, 1)

    return edit


def lines(fn: Callable[[list[str]], list[str]]) -> Callable[[bytes, dict], bytes]:
    def edit(raw: bytes, city: dict) -> bytes:
        term = city["exports"].get("line_terminator", "\n")
        text = raw.decode(city["exports"]["encoding"])
        return encode(city, term.join(fn(text.split(term))))

    return edit


def whole(data: bytes) -> Callable[[bytes, dict], bytes]:
    return lambda raw, city: data


def cut(fraction: float) -> Callable[[bytes, dict], bytes]:
    return lambda raw, city: raw[: int(len(raw) * fraction)]


def identifying_values(city: dict) -> set[str]:
    """The delivered BSNs, names, streets and birth dates (also as the city writes them)."""
    fmt = city["exports"].get("date_format", "%Y-%m-%d")
    out: set[str] = set()
    for r in CLIENTS:
        out |= {v for v in (r[1], r[2], r[4], r[7]) if v}
        out.add(r[6])
        if fmt != "spss":
            out.add(dt.date.fromisoformat(r[6]).strftime(fmt))
    return out


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


# fmt: off
# The cases are a table: one case per entry, aligned by hand.


def _csv_errors() -> list[Case]:
    R, C = "rotterdam", "clients"
    long_name = "X" * 100_000
    return [
        Case("empty file", R, C, "error", 0, "klantnummer", "empty", edit=whole(b"")),
        Case("header only", R, C, "error", 1, "klantnummer", "no data rows",
             edit=lines(lambda ls: [ls[0], ""])),
        Case("wrong delimiter", R, C, "error", 0, "klantnummer", "separated by ','",
             edit=text_edit(lambda t: t.replace(";", ","))),
        Case("byte cp1252 cannot decode", R, C, "error", 3, "achternaam", "cannot be decoded",
             edit=replace_bytes(b"Dijk", b"Di\x81k")),
        Case("UTF-8 delivered, cp1252 declared", R, C, "error", 2, "achternaam",
             "valid UTF-8", edit=reencode("utf-8")),
        Case("UTF-8 byte-order mark, cp1252 declared", R, C, "error", 0, "klantnummer",
             "UTF-8 with a byte-order mark", edit=reencode("utf-8", codecs.BOM_UTF8)),
        Case("UTF-16 with byte-order mark", R, C, "error", 0, "klantnummer", "UTF-16",
             edit=reencode("utf-16")),
        Case("UTF-16 without byte-order mark", R, C, "error", 0, "klantnummer",
             "UTF-16 (little-endian, without", edit=reencode("utf-16-le")),
        Case("missing column", R, C, "error", 0, "geboortedatum", "missing",
             edit=sub("geboortedatum;", "")),
        Case("header line missing", R, C, "error", 0, "klantnummer", "header line is missing",
             edit=lines(lambda ls: ls[1:])),
        Case("column named twice", R, C, "error", 0, "postcode", "twice",
             edit=sub("woonplaats", "postcode")),
        Case("truncated in a row", R, C, "error", 5, "huisnummer", "truncated",
             edit=lambda raw, city: raw[: raw.rindex(b";Dorpsstraat;") + 3]),
        Case("value with unquoted delimiter", R, "instruments", "error", 2, "einddatum",
             "delimiter without quotes", edit=lines(lambda ls: [*ls[:2], ls[2] + ";x", *ls[3:]])),
        Case("quote not closed", R, "caseload", "error", 2, "team", "quot",
             edit=sub(";Noord;", ';"Noord;')),
        Case("every start date in another format", R, "benefit_spells", "error", 1,
             "ingangsdatum", "exports.date_format", exports={"date_format": "%Y-%m-%d"}),
        Case("every birth date in another format", R, C, "error", 1, "geboortedatum",
             "exports.date_format", exports={"date_format": "%Y-%m-%d"}),
        Case("100,000-character surname", R, C, "error", 2, "achternaam", "longer than 4,096",
             frame=setv(2, "last_name", long_name)),
        Case("200 kB line without delimiters", R, "caseload", "error", 2, "klantmanager",
             "longer than 4,096", edit=lines(lambda ls: [ls[0], ls[1], "K" * 200_000, *ls[2:]])),
        Case("empty case-manager file", R, "caseload", "error", 0, "klantmanager", "empty",
             edit=whole(b"\r\n")),
        Case("header only in episodes", R, "instruments", "error", 1, "klantnummer",
             "no data rows", edit=lines(lambda ls: [ls[0], ""])),
        Case("UTF-8 in a UTF-8 city with cp1252 bytes", "utrecht", C, "error", 2, "voornaam",
             "cannot be decoded", edit=replace_bytes(b"Fatma", b"Fa\xe9tma")),
        Case("UTF-16 in a UTF-8 city", "utrecht", "benefit_spells", "error", 0, "klantnr",
             "UTF-16", edit=lambda raw, city: codecs.BOM_UTF16_LE + raw.decode().encode(
                 "utf-16-le")),
    ]


def _csv_rows() -> list[Case]:
    R = "rotterdam"
    return [
        Case("date that does not exist", R, "instruments", "quarantine", 2, "begindatum",
             "unparsable_date", "31-02-2016", edit=sub("01-09-2016", "31-02-2016")),
        Case("start date in 2099", R, "instruments", "quarantine", 1, "begindatum",
             "date_in_future", "01-01-2099", frame=setv(1, "start_date", "2099-01-01")),
        Case("instrument starting in 1900", R, "instruments", "quarantine", 3, "begindatum",
             "implausible_date", "01-01-1900", frame=setv(3, "start_date", "1900-01-01")),
        Case("start date in 2300", R, "benefit_spells", "quarantine", 2, "ingangsdatum",
             "date_out_of_range", "01-01-2300", edit=sub("01-03-2016", "01-01-2300")),
        Case("sentinel as a start date", R, "instruments", "quarantine", 2, "begindatum",
             "date_out_of_range", "31-12-9999", edit=sub("01-09-2016", "31-12-9999")),
        Case("unknown instrument code", R, "instruments", "quarantine", 2, "voorziening",
             "unknown_instrument_code", "XYZ", frame=setv(2, "instrument_code", "XYZ")),
        Case("spell without client number", R, "benefit_spells", "quarantine", 5,
             "klantnummer", "missing_value", frame=setv(5, "client_id", "")),
        Case("spell ends before it starts", R, "benefit_spells", "quarantine", 1, "einddatum",
             "end_before_start", "01-01-2015", frame=setv(1, "end_date", "2015-01-01")),
        Case("unknown benefit scheme", R, "benefit_spells", "quarantine", 3, "regeling",
             "unknown_benefit_type", "WW", frame=setv(3, "benefit_type", "WW")),
        Case("spell of an unknown client", R, "benefit_spells", "quarantine", 4, "klantnummer",
             "unknown_client", "K0000099", frame=setv(4, "client_id", "K0000099")),
        Case("spell delivered twice", R, "benefit_spells", "quarantine", 6, "uitkeringsnummer",
             "duplicate", frame=lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True)),
        Case("case manager without team", R, "caseload", "quarantine", 2, "team",
             "missing_value", frame=setv(2, "team", "")),
        Case("case manager leaves before starting", R, "caseload", "quarantine", 1,
             "uit_dienst", "end_before_start", "01-01-2014",
             frame=setv(1, "last_active", "2014-01-01")),
        Case("client without client number", R, "clients", "quarantine", 4, "klantnummer",
             "missing_value", frame=setv(4, "client_id", "")),
        Case("one client number, two people", R, "clients", "quarantine", 2, "klantnummer",
             "conflicting_duplicate", frame=setv(2, "client_id", "K0000001")),
    ]


def _csv_flags() -> list[Case]:
    R, C = "rotterdam", "clients"
    hyperlink = '=HYPERLINK("http://x.example";"klik")'
    extra_spell = [("K0000001", "2", "participatiewet", "2016-06-01", "")]
    return [
        Case("NUL byte in a surname", R, C, "flag", 4, "achternaam", "control_character",
             "Sil\\x00va", edit=sub("Silva", "Sil\x00va")),
        Case("escape character in a first name", R, C, "flag", 1, "voornaam",
             "control_character", "J\\x1ban", edit=sub("Jan", "J\x1ban")),
        Case("formula in a surname", R, C, "flag", 3, "achternaam", "spreadsheet_formula",
             hyperlink, frame=setv(3, "last_name", hyperlink)),
        Case("command formula in a district", R, C, "flag", 2, "wijk", "spreadsheet_formula",
             "=cmd|' /C calc'!A0", frame=setv(2, "district", "=cmd|' /C calc'!A0")),
        Case("at-formula in a street", R, C, "flag", 5, "straat", "spreadsheet_formula",
             "@SUM(1+1)", frame=setv(5, "street", "@SUM(1+1)")),
        Case("empty birth date", R, C, "flag", 2, "geboortedatum", "missing_birth_date",
             frame=setv(2, "birth_date", "")),
        Case("birth date in 1850", R, C, "flag", 1, "geboortedatum", "invalid_birth_date",
             "01-01-1850", frame=setv(1, "birth_date", "1850-01-01")),
        Case("birth date in 2099", R, C, "flag", 3, "geboortedatum", "invalid_birth_date",
             "01-01-2099", frame=setv(3, "birth_date", "2099-01-01")),
        Case("birth date in another format", R, C, "flag", 3, "geboortedatum",
             "invalid_birth_date", "1990/12/31", edit=sub("31-12-1990", "1990/12/31")),
        Case("BSN with a letter", R, C, "flag", 1, "bsn", "bsn_invalid", "11122A333",
             frame=setv(1, "bsn", "11122A333")),
        Case("unknown sex code", R, C, "flag", 2, "geslacht", "unknown_code", "X",
             frame=setv(2, "sex", "X")),
        Case("malformed postcode", R, C, "flag", 4, "postcode", "invalid_postcode", "30AB 14",
             edit=sub("3014 GH", "30AB 14")),
        Case("negative house number", R, C, "flag", 5, "huisnummer", "invalid_house_number",
             "-1", frame=setv(5, "house_number", -1)),
        Case("unknown case manager", R, C, "flag", 1, "klantmanager", "unknown_case_manager",
             "KM0099", frame=setv(1, "case_manager", "KM0099")),
        Case("benefit ends after the export date", R, "benefit_spells", "flag", 1, "einddatum",
             "end_after_export", "01-01-2030", frame=setv(1, "end_date", "2030-01-01")),
        Case("overlapping spells", R, "benefit_spells", "flag", 6, "ingangsdatum",
             "overlapping_spell", frame=lambda df: pd.concat(
                 [df, pd.DataFrame(extra_spell, columns=df.columns)], ignore_index=True)),
    ]


def _csv_notes() -> list[Case]:
    R = "rotterdam"
    return [
        Case("open end as 31-12-9999", R, "benefit_spells", "note", 3, "einddatum",
             "'no end date' sentinel", frame=setv(3, "end_date", "9999-12-31")),
        Case("case manager open end as 31-12-9999", R, "caseload", "note", 1, "uit_dienst",
             "'no end date' sentinel", frame=setv(1, "last_active", "9999-12-31")),
        Case("open end as a configured sentinel", R, "instruments", "note", 1, "einddatum",
             "'no end date' sentinel", frame=setv(1, "end_date", "2099-12-31"),
             exports={"open_end_sentinels": ["9999-12-31", "2099-12-31"]}),
        Case("LF where CRLF is declared", R, "clients", "note", None, None, "line terminator",
             edit=text_edit(lambda t: t.replace("\r\n", "\n"))),
        Case("blank line", R, "clients", "note", None, None, "blank line",
             edit=lines(lambda ls: [*ls[:3], "", *ls[3:]])),
        Case("undeclared column", R, "caseload", "note", None, None, "not declared",
             edit=lines(lambda ls: [x + ";x" if x else x for x in ls])),
        Case("no final line end", R, "instruments", "note", None, None,
             "does not end with a line terminator", edit=lambda raw, city: raw.rstrip(b"\r\n")),
        Case("open end as 31-12-9999 in Utrecht", "utrecht", "instruments", "note", 1,
             "einddatum", "'no end date' sentinel", frame=setv(1, "end_date", "9999-12-31")),
    ]


def _sav_cases() -> list[Case]:
    D = "den_haag"
    big = pd.concat([canonical_frame("clients")] * 200, ignore_index=True)
    big["client_id"] = [f"DH{i:07d}" for i in range(len(big))]
    return [
        Case("empty .sav", D, "clients", "error", 0, "KLANTNR", "empty", edit=whole(b"")),
        Case("not an SPSS file", D, "caseload", "error", 0, "CONSULENT", "SPSS",
             edit=whole(b"this is not an SPSS file at all" * 10)),
        Case("truncated .sav", D, "clients", "error", None, "KLANTNR", "truncated",
             frame=lambda df: big, edit=cut(2 / 3)),
        Case(".sav date stored as text", D, "clients", "error", 0, "GEBDAT", "date variable",
             exports={"_text_columns": ("GEBDAT",)}),
        Case(".sav numeric code stored as text", D, "clients", "error", 0, "GESLACHT",
             "numeric", exports={"_text_columns": ("GESLACHT",)}),
        Case(".sav without rows", D, "instruments", "error", 1, "KLANTNR", "no data rows",
             frame=lambda df: df.iloc[:0]),
        Case(".sav with a 5,000-character team", D, "caseload", "error", 2, "TEAM",
             "longer than 4,096", frame=setv(2, "team", "T" * 5000)),
        Case(".sav instrument starting in 1900", D, "instruments", "quarantine", 1, "DATBEGIN",
             "implausible_date", "1900-01-01", frame=setv(1, "start_date", "1900-01-01")),
        Case(".sav start date in 2099", D, "instruments", "quarantine", 2, "DATBEGIN",
             "date_in_future", "2099-01-01", frame=setv(2, "start_date", "2099-01-01")),
        Case(".sav start date in 2300", D, "benefit_spells", "quarantine", 1, "DATBEGIN",
             "date_out_of_range", "2300-01-01", frame=setv(1, "start_date", "2300-01-01")),
        Case(".sav unknown instrument code", D, "instruments", "quarantine", 3, "VOORZCODE",
             "unknown_instrument_code", "99", frame=setv(3, "instrument_code", 99)),
        Case(".sav spell ends before it starts", D, "benefit_spells", "quarantine", 3,
             "DATEINDE", "end_before_start", "2010-01-01",
             frame=setv(3, "end_date", "2010-01-01")),
        Case(".sav control character in a surname", D, "clients", "flag", 4, "ACHTERNAAM",
             "control_character", "Sil\\x07va", frame=setv(4, "last_name", "Sil\x07va")),
        Case(".sav formula in a first name", D, "clients", "flag", 2, "VOORNAAM",
             "spreadsheet_formula", "=1+1", frame=setv(2, "first_name", "=1+1")),
        Case(".sav empty birth date", D, "clients", "flag", 5, "GEBDAT", "missing_birth_date",
             frame=setv(5, "birth_date", "")),
        Case(".sav birth date in 1899", D, "clients", "flag", 1, "GEBDAT",
             "invalid_birth_date", "1899-12-31", frame=setv(1, "birth_date", "1899-12-31")),
        Case(".sav unknown sex code", D, "clients", "flag", 3, "GESLACHT", "unknown_code", "9",
             frame=setv(3, "sex", 9)),
        Case(".sav open end as 9999-12-31", D, "benefit_spells", "note", 1, "DATEINDE",
             "'no end date' sentinel", frame=setv(1, "end_date", "9999-12-31")),
        Case(".sav case manager open end", D, "caseload", "note", 2, "DATUITDIENST",
             "'no end date' sentinel", frame=setv(2, "last_active", "9999-12-31")),
    ]


def cases() -> list[Case]:
    return [*_csv_errors(), *_csv_rows(), *_csv_flags(), *_csv_notes(), *_sav_cases()]


# fmt: on


# ---------------------------------------------------------------------------
# generating and running one case
# ---------------------------------------------------------------------------


def generate(case: Case, folder: Path) -> dict:
    """Write the case's delivery into ``folder``; return the city configuration
    the reader is given."""
    city = copy.deepcopy(load_city(case.city))
    folder.mkdir(parents=True, exist_ok=True)
    frames = {t: canonical_frame(t) for t in city["exports"]["files"]}
    if case.frame is not None:
        frames[case.table] = case.frame(frames[case.table])
    writer_city = copy.deepcopy(city)
    conf = {k: v for k, v in case.exports.items() if not k.startswith("_")}
    if "date_format" in conf:  # the export is written in another format than declared
        writer_city["exports"]["date_format"] = conf.pop("date_format")
    city["exports"].update(conf)
    if case.format == "csv":
        write_delivery(city, folder, **frames)
        path = folder / city["exports"]["files"][case.table]["file"]
        path.write_bytes(
            encode(city, csv_text(writer_city, city_frame(city, case.table, frames[case.table])))
        )
    else:
        for table, frame in frames.items():
            text = case.exports.get("_text_columns", ()) if table == case.table else ()
            write_sav(city, folder, table, frame, text_columns=text)
    if case.edit is not None:
        path = folder / city["exports"]["files"][case.table]["file"]
        path.write_bytes(case.edit(path.read_bytes(), city))
    return city


def run(case: Case, folder: Path) -> Result:
    """Read and check the generated delivery; the outcome for ``case.table``."""
    city = generate(case, folder)
    try:
        exports = ingest.read_delivery(city, folder)
        checked = quality.check_delivery(exports, city)
    except ExportError as err:
        return Result("error", err.row, err.column, str(err), messages=[str(err)])
    except Exception:  # noqa: BLE001 - a traceback is what the corpus counts
        return Result("traceback", text=traceback.format_exc(limit=3))
    return _row_result(case, checked)


def _row_result(case: Case, checked: quality.CheckedDelivery) -> Result:
    ok = checked.accounting_ok()
    for kind, frame in (("quarantine", checked.quarantine), ("flag", checked.flags)):
        hit = frame[(frame["table"] == case.table) & (frame["row"] == case.row)]
        if case.outcome == kind and case.column is not None:
            hit = hit[hit["column"] == case.column]
        if case.outcome == kind and len(hit):
            same = hit[hit["reason"] == case.expect]
            line = (same if len(same) else hit).iloc[0]
            return Result(
                kind,
                int(line["row"]),
                line["column"],
                str(line["reason"]),
                None if pd.isna(line["value"]) else str(line["value"]),
                ok,
            )
    notes = checked.notes.get(case.table, [])
    if case.outcome == "note":
        match = [n for n in notes if case.expect in n]
        if match:
            return Result("note", case.row, case.column, match[0], accounting_ok=ok)
    return Result("accepted", text="; ".join(notes), accounting_ok=ok)


def problems(case: Case, result: Result) -> list[str]:
    """What is wrong with the outcome: [] when it is the declared one."""
    if result.kind == "traceback":
        return [f"traceback: {result.text}"]
    if result.kind == "accepted":
        return ["silent acceptance"]
    out = []
    if result.kind != case.outcome:
        out.append(f"wrong outcome: {result.kind} ({result.text})")
    if result.kind == "error":
        if case.expect not in result.text:
            out.append(f"wrong message: {result.text}")
        if case.row is not None and result.row != case.row:
            out.append(f"wrong row {result.row}, expected {case.row}")
        if result.column != case.column:
            out.append(f"wrong column {result.column!r}, expected {case.column!r}")
        city = load_city(case.city)
        leaked = [v for v in identifying_values(city) if v in result.text]
        if leaked:
            out.append(f"the message quotes delivered identifying value(s): {len(leaked)}")
    elif result.kind in ("quarantine", "flag"):
        if result.text != case.expect:
            out.append(f"wrong reason {result.text}, expected {case.expect}")
        if case.value is not None and result.value != case.value:
            out.append(f"value shown {result.value!r}, delivered {case.value!r}")
    if not result.accounting_ok:
        out.append("rows in != kept + quarantined")
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("build/malformed_corpus")
    tally: dict[str, int] = {}
    bad = 0
    all_cases = cases()
    for i, case in enumerate(all_cases, 1):
        result = run(case, out / f"{i:03d}_{case.city}_{case.table}")
        found = problems(case, result)
        tally[case.outcome] = tally.get(case.outcome, 0) + 1
        bad += bool(found)
        status = "ok" if not found else "; ".join(found)
        print(f"{i:3d} {case.format:3s} {case.table:14s} {case.outcome:10s} {case.name}: {status}")
    print(
        f"{len(all_cases)} cases: "
        + ", ".join(f"{k} {tally.get(k, 0)}" for k in OUTCOMES)
        + f"; {bad} with a problem"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

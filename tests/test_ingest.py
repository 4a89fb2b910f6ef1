"""Reading exports as declared, and the corpus of malformed exports.

Every malformed file is generated here, in a temporary folder, from a small
valid delivery written in the city's declared format. Each case must end in
one :class:`ExportError` that names the file, the row and the column (never
a bare UnicodeDecodeError, csv.Error or ReadstatError), or in a quarantine or
flag line naming them, with every row accounted for.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from reintegration.core.config import load_city
from reintegration.intake import ingest, quality
from reintegration.intake.ingest import ExportError

# ---------------------------------------------------------------------------
# a small valid delivery in a city's format
# ---------------------------------------------------------------------------

CLIENTS = [
    # client_id, bsn, first, prefix, last, sex, birth, street, number, postcode, district,
    # household, language, distance, team, case manager
    ("K0000001", "111222333", "Jan", "de", "Vries", "male", "1980-01-02", "Molenweg", 12,
     "3011AB", "Centrum", "single", "below_b1", "short", "Centrum", "KM0001"),
    ("K0000002", "123456782", "Fatma", "", "Yılmaz", "female", "1975-06-30", "Kruiskade", 3,
     "3012CD", "Noord", "single_parent", "b1_or_higher", "large", "Noord", "KM0002"),
    ("K0000003", "", "Karel", "van", "Dijk", "male", "1990-12-31", "Coolsingel", 40,
     "3013EF", "Centrum", "couple", "b1_or_higher", "medium", "Centrum", "KM0001"),
    ("K0000004", "040244192", "Ana", "", "Silva", "female", "1985-03-15", "Statenweg", 7,
     "3014GH", "Noord", "couple_children", "below_b1", "large", "Noord", "KM0002"),
    ("K0000005", "111222334", "Piet", "", "Bakker", "male", "1969-09-09", "Dorpsstraat", 1,
     "3015JK", "Centrum", "single", "b1_or_higher", "short", "Centrum", "KM0001"),
]
SPELLS = [
    ("K0000001", "1", "participatiewet", "2016-01-04", "2017-02-28"),
    ("K0000002", "1", "participatiewet", "2016-03-01", ""),
    ("K0000003", "1", "participatiewet", "2017-05-10", "2018-01-31"),
    ("K0000004", "1", "participatiewet", "2018-07-01", "2019-06-30"),
    ("K0000005", "1", "participatiewet", "2019-02-01", ""),
]
EPISODES = [
    ("K0000001", "100001", "job_search_training", "2016-05-01", "2016-06-30"),
    ("K0000002", "100002", "training", "2016-09-01", "2017-02-28"),
    ("K0000004", "100003", "wage_subsidy", "2018-10-01", "2019-09-30"),
]
CASELOAD = [
    ("KM0001", "Centrum", "2015-01-01", "2021-12-31"),
    ("KM0002", "Noord", "2015-01-01", ""),
]
CANONICAL = {
    "clients": ["client_id", "bsn", "first_name", "surname_prefix", "last_name", "sex",
                "birth_date", "street", "house_number", "postcode", "district",
                "household_type", "language_level", "labour_market_distance", "team",
                "case_manager"],
    "benefit_spells": ["client_id", "spell_id", "benefit_type", "start_date", "end_date"],
    "instruments": ["client_id", "episode_id", "instrument_code", "start_date", "end_date"],
    "caseload": ["case_manager", "team", "first_active", "last_active"],
}
ROWS = {"clients": CLIENTS, "benefit_spells": SPELLS, "instruments": EPISODES,
        "caseload": CASELOAD}


def canonical_frame(table: str) -> pd.DataFrame:
    df = pd.DataFrame(ROWS[table], columns=CANONICAL[table])
    if table == "clients":
        df.insert(10, "place", "Stad")
    return df


def city_frame(city: dict, table: str, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """A canonical table in the city's own column names and codes."""
    df = canonical_frame(table) if df is None else df
    ex = city["exports"]
    codes = ex.get("codes") or {}
    out = df.copy()
    for col, mapping in codes.items():
        if col in out.columns:
            out[col] = out[col].map(lambda v, m=mapping: m.get(v, v))
    if "instrument_code" in out.columns:
        inverse = {v: k for k, v in ex["instrument_codes"].items()}
        out["instrument_code"] = out["instrument_code"].map(lambda v: inverse.get(v, v))
    if table == "clients" and ex.get("postcode_space"):
        out["postcode"] = out["postcode"].str[:4] + " " + out["postcode"].str[4:]
    names = ingest.declared_columns(city, table)
    out = out[[c for c in out.columns if c in names]].rename(columns=names)
    return out


def encode(city: dict, text: str) -> bytes:
    ex = city["exports"]
    return text.encode(ex.get("encoding", "utf-8"), ex.get("encoding_errors", "strict"))


def csv_text(city: dict, frame: pd.DataFrame) -> str:
    ex = city["exports"]
    fmt = ex.get("date_format", "%Y-%m-%d")
    out = frame.copy()
    for col in out.columns:
        values = out[col].astype(str)
        if values.str.fullmatch(r"\d{4}-\d{2}-\d{2}").any():
            out[col] = [
                dt.date.fromisoformat(v).strftime(fmt) if v else "" for v in values
            ]
    term = ex.get("line_terminator", "\n")
    return out.to_csv(index=False, sep=ex.get("delimiter", ","), lineterminator=term)


def write_csv(city: dict, folder: Path, table: str, frame: pd.DataFrame | None = None) -> Path:
    path = folder / city["exports"]["files"][table]["file"]
    text = csv_text(city, city_frame(city, table, frame))
    path.write_bytes(encode(city, text))
    return path


def write_delivery(city: dict, folder: Path, **frames: pd.DataFrame) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {t: write_csv(city, folder, t, frames.get(t)) for t in city["exports"]["files"]}


def write_sav(city: dict, folder: Path, table: str, frame: pd.DataFrame | None = None,
              *, text_columns: tuple[str, ...] = ()) -> Path:
    """A table as SPSS, the way Den Haag delivers it: dates as dates, numeric
    codes as numbers (``text_columns``: store these export columns as text
    instead, to make a wrong type)."""
    import pyreadstat

    out = city_frame(city, table, frame)
    for col in out.columns:
        if col in text_columns:
            out[col] = out[col].astype(str)
            continue
        values = out[col].astype(str)
        if values.str.fullmatch(r"\d{4}-\d{2}-\d{2}").any():
            out[col] = [dt.date.fromisoformat(v) if v else None for v in values]
        elif pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float)
        else:
            out[col] = values
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / city["exports"]["files"][table]["file"]
    pyreadstat.write_sav(out, str(path))
    return path


@pytest.fixture(scope="module")
def rotterdam() -> dict:
    return load_city("rotterdam")


@pytest.fixture(scope="module")
def den_haag() -> dict:
    return load_city("den_haag")


def raises(path: Path, row: int, column: str | None, read=None, line: int | None = None):
    """Read ``path`` (or call ``read``) and return the ExportError, after
    checking that its message starts with file, row and column."""
    with pytest.raises(ExportError) as info:
        read()
    err = info.value
    where = "row 0 (header)" if row == 0 else f"row {row}"
    if line is not None:
        where += f" (line {line})"
    prefix = f"{path}: {where}, column {column!r}: "
    assert str(err).startswith(prefix), str(err)
    assert (err.file, err.row, err.column) == (str(path), row, column)
    assert len(str(err)) > len(prefix) + 20, "the message says what is wrong"
    return err


# ---------------------------------------------------------------------------
# valid files
# ---------------------------------------------------------------------------


def test_reads_a_valid_csv_delivery_as_declared(rotterdam, tmp_path):
    paths = write_delivery(rotterdam, tmp_path)
    exports = ingest.read_delivery(rotterdam, tmp_path)
    clients = exports["clients"]
    assert clients.rows == len(CLIENTS)
    assert list(clients.frame["_row"]) == [1, 2, 3, 4, 5]
    assert clients.frame.loc[3, "bsn"] == "040244192", "leading zeros survive"
    assert clients.frame.loc[2, "bsn"] is None
    assert clients.frame.loc[1, "last_name"] == "Y?lmaz", "cp1252 cannot hold the dotless i"
    assert clients.frame.loc[0, "birth_date"] == pd.Timestamp("1980-01-02")
    assert clients.line_terminator == "\r\n" and not clients.notes
    assert exports["benefit_spells"].frame["end_date"].isna().sum() == 2
    assert ingest.files_table(exports).loc["clients", "file"] == paths["clients"].name


def test_reads_a_valid_sav_delivery(den_haag, tmp_path):
    for table in den_haag["exports"]["files"]:
        write_sav(den_haag, tmp_path, table)
    exports = ingest.read_delivery(den_haag, tmp_path)
    clients = exports["clients"].frame
    assert clients.loc[0, "sex"] == 1.0 and clients.loc[0, "birth_date"] == pd.Timestamp(
        "1980-01-02"
    )
    checked = quality.check_delivery(exports, den_haag)
    assert checked.accounting_ok()
    assert list(checked.tables["clients"]["sex"][:2]) == ["male", "female"]
    assert set(checked.tables["instruments"]["instrument"]) == {
        "job_search_training", "training", "wage_subsidy"
    }


def test_notes_undeclared_columns_and_line_ends(rotterdam, tmp_path):
    frame = city_frame(rotterdam, "caseload").assign(extra="x")
    path = tmp_path / "klantmanagers.csv"
    path.write_bytes(encode(rotterdam, csv_text(rotterdam, frame).replace("\r\n", "\n")))
    ex = ingest.read_export(path, "caseload", rotterdam)
    assert any("extra" in n for n in ex.notes)
    assert any("line terminator" in n for n in ex.notes)


# ---------------------------------------------------------------------------
# the malformed corpus: file errors
# ---------------------------------------------------------------------------


def test_empty_file(rotterdam, tmp_path):
    path = tmp_path / "klanten.csv"
    path.write_bytes(b"")
    err = raises(path, 0, "klantnummer", lambda: ingest.read_export(path, "clients", rotterdam))
    assert "empty" in str(err)


def test_header_only(rotterdam, tmp_path):
    path = tmp_path / "klanten.csv"
    text = csv_text(rotterdam, city_frame(rotterdam, "clients")).split("\r\n")[0] + "\r\n"
    path.write_bytes(encode(rotterdam, text))
    err = raises(path, 1, "klantnummer", lambda: ingest.read_export(path, "clients", rotterdam))
    assert "no data rows" in str(err)


def test_wrong_delimiter(rotterdam, tmp_path):
    path = tmp_path / "klanten.csv"
    text = city_frame(rotterdam, "clients").to_csv(index=False, sep=",", lineterminator="\r\n")
    path.write_bytes(encode(rotterdam, text))
    err = raises(path, 0, "klantnummer", lambda: ingest.read_export(path, "clients", rotterdam))
    assert "separated by ','" in str(err) and "exports.delimiter" in str(err)


def test_undecodable_bytes_name_row_and_column(rotterdam, tmp_path):
    path = write_csv(rotterdam, tmp_path, "clients")
    lines = path.read_bytes().split(b"\r\n")
    lines[3] = lines[3].replace(b"Dijk", b"Di\x81k")  # 0x81 is not a cp1252 character
    path.write_bytes(b"\r\n".join(lines))
    err = raises(path, 3, "achternaam", lambda: ingest.read_export(path, "clients", rotterdam),
                 line=4)
    assert "81" in str(err) and "cp1252" in str(err)


def test_undecodable_utf8(tmp_path):
    utrecht = load_city("utrecht")
    path = write_csv(utrecht, tmp_path, "clients")
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"Fatma", b"Fa\xfftma")
    path.write_bytes(b"\n".join(lines))
    raises(path, 2, "voornaam", lambda: ingest.read_export(path, "clients", utrecht), line=3)


def test_missing_required_column(rotterdam, tmp_path):
    path = tmp_path / "klanten.csv"
    frame = city_frame(rotterdam, "clients").drop(columns="geboortedatum")
    path.write_bytes(encode(rotterdam, csv_text(rotterdam, frame)))
    err = raises(path, 0, "geboortedatum",
                 lambda: ingest.read_export(path, "clients", rotterdam))
    assert "missing" in str(err)


def test_duplicate_header(rotterdam, tmp_path):
    path = tmp_path / "klanten.csv"
    frame = city_frame(rotterdam, "clients")
    text = csv_text(rotterdam, frame).replace("woonplaats", "postcode", 1)
    path.write_bytes(encode(rotterdam, text))
    raises(path, 0, "postcode", lambda: ingest.read_export(path, "clients", rotterdam))


def test_truncated_file(rotterdam, tmp_path):
    path = write_csv(rotterdam, tmp_path, "clients")
    raw = path.read_bytes()
    cut = raw[: raw.rindex(b";Dorpsstraat;") + 3]  # the last row ends inside the street
    path.write_bytes(cut)
    err = raises(path, 5, "huisnummer", lambda: ingest.read_export(path, "clients", rotterdam),
                 line=6)
    assert "truncated" in str(err)


def test_row_with_extra_delimiter(rotterdam, tmp_path):
    path = write_csv(rotterdam, tmp_path, "instruments")
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    lines[2] = lines[2] + ";extra"
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    raises(path, 2, "einddatum", lambda: ingest.read_export(path, "instruments", rotterdam),
           line=3)


def test_broken_quoting(rotterdam, tmp_path):
    path = write_csv(rotterdam, tmp_path, "caseload")
    text = path.read_bytes().decode("cp1252").replace(";Noord;", ';"Noord;', 1)
    path.write_bytes(text.encode("cp1252"))
    err = raises(path, 2, "team", lambda: ingest.read_export(path, "caseload", rotterdam),
                 line=3)
    assert "quot" in str(err)


def test_every_date_in_another_format(rotterdam, tmp_path):
    city = copy.deepcopy(rotterdam)
    city["exports"]["date_format"] = "%Y-%m-%d"
    path = write_csv(city, tmp_path, "benefit_spells")  # written in ISO dates
    err = raises(path, 1, "ingangsdatum",
                 lambda: ingest.read_export(path, "benefit_spells", rotterdam), line=2)
    assert "exports.date_format" in str(err)


def test_sav_with_a_date_stored_as_text(den_haag, tmp_path):
    path = write_sav(den_haag, tmp_path, "clients", text_columns=("GEBDAT",))
    err = raises(path, 0, "GEBDAT", lambda: ingest.read_export(path, "clients", den_haag))
    assert "date variable" in str(err)


def test_sav_with_a_numeric_code_stored_as_text(den_haag, tmp_path):
    path = write_sav(den_haag, tmp_path, "clients", text_columns=("GESLACHT",))
    err = raises(path, 0, "GESLACHT", lambda: ingest.read_export(path, "clients", den_haag))
    assert "numeric" in str(err)


def test_truncated_sav(den_haag, tmp_path):
    frame = pd.concat([canonical_frame("clients")] * 200, ignore_index=True)
    frame["client_id"] = [f"DH{i:07d}" for i in range(len(frame))]
    path = write_sav(den_haag, tmp_path, "clients", frame)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(ExportError) as info:
        ingest.read_export(path, "clients", den_haag)
    err = info.value
    assert 1 < err.row <= len(frame) and err.column == "KLANTNR"
    assert str(err).startswith(f"{path}: row {err.row}, column 'KLANTNR': ")
    assert "truncated" in str(err)


def test_empty_and_unreadable_sav(den_haag, tmp_path):
    path = tmp_path / "clienten.sav"
    path.write_bytes(b"")
    raises(path, 0, "KLANTNR", lambda: ingest.read_export(path, "clients", den_haag))
    path.write_bytes(b"this is not an SPSS file at all" * 10)
    err = raises(path, 0, "KLANTNR", lambda: ingest.read_export(path, "clients", den_haag))
    assert "SPSS" in str(err)


def test_sav_without_rows(den_haag, tmp_path):
    path = write_sav(den_haag, tmp_path, "clients", canonical_frame("clients").iloc[:0])
    raises(path, 1, "KLANTNR", lambda: ingest.read_export(path, "clients", den_haag))


def test_sav_missing_variable(den_haag, tmp_path):
    import pyreadstat

    path = write_sav(den_haag, tmp_path, "caseload")
    df, _ = pyreadstat.read_sav(str(path))
    pyreadstat.write_sav(df.drop(columns="TEAM"), str(path))
    raises(path, 0, "TEAM", lambda: ingest.read_export(path, "caseload", den_haag))


# ---------------------------------------------------------------------------
# the malformed corpus: row problems are quarantined or flagged, never lost
# ---------------------------------------------------------------------------


def check(city: dict, folder: Path) -> quality.CheckedDelivery:
    checked = quality.check_delivery(ingest.read_delivery(city, folder), city)
    acc = checked.accounting()
    assert (acc["rows_in"] == acc["kept"] + acc["quarantined"]).all(), acc
    return checked


def line(frame: pd.DataFrame, **where) -> pd.Series:
    hit = frame
    for k, v in where.items():
        hit = hit[hit[k] == v]
    assert len(hit) == 1, f"expected one line with {where}, got\n{frame}"
    return hit.iloc[0]


def test_unparsable_date_is_quarantined_with_file_row_and_column(rotterdam, tmp_path):
    write_delivery(rotterdam, tmp_path)
    path = tmp_path / "trajecten.csv"
    text = path.read_bytes().decode("cp1252").replace("01-09-2016", "31-02-2016")
    path.write_bytes(text.encode("cp1252"))
    checked = check(rotterdam, tmp_path)
    q = line(checked.quarantine, table="instruments")
    assert (q["file"], q["row"], q["column"], q["reason"]) == (
        "trajecten.csv", 2, "begindatum", "unparsable_date"
    )
    assert q["value"] == "31-02-2016"
    assert len(checked.tables["instruments"]) == len(EPISODES) - 1


def test_bsn_with_letters_is_flagged_and_kept(rotterdam, tmp_path):
    clients = canonical_frame("clients")
    clients.loc[0, "bsn"] = "11122A333"
    write_delivery(rotterdam, tmp_path, clients=clients)
    checked = check(rotterdam, tmp_path)
    f = line(checked.flags, reason="bsn_invalid", row=1)
    assert (f["file"], f["column"], f["value"]) == ("klanten.csv", "bsn", "11122A333")
    kept = checked.tables["clients"].set_index("client_id")
    assert kept.loc["K0000001", "bsn_status"] == "invalid"
    assert pd.isna(kept.loc["K0000001", "bsn"]), "an invalid BSN is not passed on"
    # the elfproef failure of K0000005 (111222334) is flagged the same way
    assert line(checked.flags, reason="bsn_invalid", row=5)["column"] == "bsn"


def test_unknown_instrument_code_is_quarantined(rotterdam, tmp_path):
    episodes = canonical_frame("instruments")
    episodes.loc[1, "instrument_code"] = "XYZ"
    write_delivery(rotterdam, tmp_path, instruments=episodes)
    checked = check(rotterdam, tmp_path)
    q = line(checked.quarantine, reason="unknown_instrument_code")
    assert (q["file"], q["row"], q["column"], q["value"]) == (
        "trajecten.csv", 2, "voorziening", "XYZ"
    )


def test_missing_client_number_is_quarantined(rotterdam, tmp_path):
    spells = canonical_frame("benefit_spells")
    spells.loc[4, "client_id"] = ""
    write_delivery(rotterdam, tmp_path, benefit_spells=spells)
    q = line(check(rotterdam, tmp_path).quarantine, table="benefit_spells")
    assert (q["row"], q["column"], q["reason"]) == (5, "klantnummer", "missing_value")


def test_a_bad_birth_date_flags_the_client_without_losing_it(rotterdam, tmp_path):
    write_delivery(rotterdam, tmp_path)
    path = tmp_path / "klanten.csv"
    text = path.read_bytes().decode("cp1252").replace("31-12-1990", "1990/12/31")
    path.write_bytes(text.encode("cp1252"))
    checked = check(rotterdam, tmp_path)
    f = line(checked.flags, reason="invalid_birth_date")
    assert (f["row"], f["column"], f["value"]) == (3, "geboortedatum", "1990/12/31")
    assert len(checked.tables["clients"]) == len(CLIENTS)

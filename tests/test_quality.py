"""The delivery check: BSN rules, codes, duplicates, dates, the quality report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_ingest import (
    CASELOAD,
    CLIENTS,
    EPISODES,
    SPELLS,
    canonical_frame,
    write_delivery,
    write_sav,
)

from reintegration.core.config import list_cities, load_city
from reintegration.intake import ingest, quality, quality_report, quality_rules, quality_schema
from reintegration.synth import generate_city


@pytest.fixture(scope="module")
def rotterdam() -> dict:
    return load_city("rotterdam")


def check(city: dict, folder, **frames) -> quality.CheckedDelivery:
    write_delivery(city, folder, **frames)
    checked = quality.check_delivery(ingest.read_delivery(city, folder), city)
    assert checked.accounting_ok(), checked.accounting()
    return checked


def reasons(frame: pd.DataFrame, table: str) -> dict[int, str]:
    sub = frame[frame["table"] == table]
    return dict(zip(sub["row"], sub["reason"], strict=True))


# ---------------------------------------------------------------------------
# BSN
# ---------------------------------------------------------------------------


def test_bsn_padding_elfproef_and_status(tmp_path):
    amsterdam = load_city("amsterdam")
    clients = canonical_frame("clients")
    clients["client_id"] = [f"{i:07d}" for i in range(1, 6)]
    clients["bsn"] = ["40244192", "123456782", "", "1234567", "123.456.782"]
    spells = canonical_frame("benefit_spells").assign(client_id=clients["client_id"])
    episodes = canonical_frame("instruments").assign(
        client_id=clients["client_id"][[0, 1, 3]].to_numpy()
    )
    checked = check(amsterdam, tmp_path, clients=clients, benefit_spells=spells,
                    instruments=episodes)
    kept = checked.tables["clients"].set_index("client_id")
    assert list(kept["bsn_status"]) == ["valid", "valid", "missing", "invalid", "valid"]
    assert kept.loc["0000001", "bsn"] == "040244192", "eight digits get their leading zero"
    assert kept.loc["0000005", "bsn"] == "123456782", "separators are removed"
    assert pd.isna(kept.loc["0000004", "bsn"]), "seven digits are never padded"
    assert list(kept["bsn_padded"]) == [True, False, False, False, False]
    flags = checked.flags[checked.flags["column"] == "BSN"]
    assert dict(zip(flags["row"], flags["reason"], strict=True)) == {
        1: "bsn_padded", 3: "bsn_missing", 4: "bsn_invalid"
    }


def test_client_codes_map_and_unknown_codes_are_flagged(rotterdam, tmp_path):
    clients = canonical_frame("clients")
    clients.loc[1, "sex"] = "X"
    clients.loc[2, "postcode"] = "12AB"
    clients["house_number"] = clients["house_number"].astype(object)
    clients.loc[3, "house_number"] = "zeven"
    checked = check(rotterdam, tmp_path, clients=clients)
    kept = checked.tables["clients"]
    assert kept.loc[0, "household_type"] == "single"
    assert kept.loc[0, "postcode"] == "3011AB", "the space of '3011 AB' is removed"
    assert pd.isna(kept.loc[1, "sex"]) and pd.isna(kept.loc[2, "postcode"])
    assert pd.isna(kept.loc[3, "house_number"])
    flags = reasons(checked.flags[checked.flags["reason"] != "bsn_invalid"], "clients")
    assert flags == {2: "unknown_code", 3: "invalid_postcode", 4: "invalid_house_number"}


# ---------------------------------------------------------------------------
# duplicates
# ---------------------------------------------------------------------------


def test_duplicate_clients_keep_the_accented_copy(rotterdam, tmp_path):
    utrecht = load_city("utrecht")  # UTF-8, so accents survive
    clients = canonical_frame("clients")
    clients.loc[1, "last_name"] = "Yılmaz"
    folded = clients.iloc[[1]].assign(last_name="Yilmaz")
    clients = pd.concat([clients.iloc[:1], folded, clients.iloc[1:]], ignore_index=True)
    spells = canonical_frame("benefit_spells")
    spells = pd.concat([spells, spells.iloc[[1]]], ignore_index=True)
    checked = check(utrecht, tmp_path, clients=clients, benefit_spells=spells)
    assert reasons(checked.quarantine, "clients") == {2: "duplicate"}
    kept = checked.tables["clients"].set_index("client_id")
    assert kept.loc["K0000002", "last_name"] == "Yılmaz"
    assert reasons(checked.quarantine, "benefit_spells") == {6: "duplicate"}


def test_conflicting_duplicates_are_all_quarantined_with_their_spells(rotterdam, tmp_path):
    clients = canonical_frame("clients")
    other = clients.iloc[[0]].assign(birth_date="1981-01-02")
    clients = pd.concat([clients, other], ignore_index=True)
    checked = check(rotterdam, tmp_path, clients=clients)
    assert reasons(checked.quarantine, "clients") == {
        1: "conflicting_duplicate", 6: "conflicting_duplicate"
    }
    assert reasons(checked.quarantine, "benefit_spells") == {1: "client_quarantined"}
    assert reasons(checked.quarantine, "instruments") == {1: "client_quarantined"}


def test_duplicate_values_differ_is_flagged(rotterdam, tmp_path):
    clients = canonical_frame("clients")
    clients = pd.concat([clients, clients.iloc[[2]].assign(team="Noord")], ignore_index=True)
    checked = check(rotterdam, tmp_path, clients=clients)
    assert reasons(checked.quarantine, "clients") == {6: "duplicate"}
    f = checked.flags[checked.flags["reason"] == "duplicate_values_differ"]
    assert list(zip(f["row"], f["column"], strict=True)) == [(3, "team")]


def test_instrument_copies_under_other_numbers_keep_the_one_with_an_end(rotterdam, tmp_path):
    episodes = canonical_frame("instruments")
    copy = episodes.iloc[[0]].assign(episode_id="100009", end_date="")
    episodes = pd.concat([copy, episodes], ignore_index=True)
    checked = check(rotterdam, tmp_path, instruments=episodes)
    assert reasons(checked.quarantine, "instruments") == {1: "duplicate"}


# ---------------------------------------------------------------------------
# dates and references
# ---------------------------------------------------------------------------


def test_date_consistency(rotterdam, tmp_path):
    spells = canonical_frame("benefit_spells")
    spells.loc[0, "end_date"] = "2015-12-31"  # before its start
    spells.loc[2, "start_date"] = "2031-01-01"  # after the export date
    extra = pd.DataFrame(
        [("K0000004", "2", "participatiewet", "2019-01-01", "2030-01-01"),  # overlaps, ends late
         ("K0009999", "1", "participatiewet", "2019-01-01", "")],  # no such client
        columns=spells.columns,
    )
    spells = pd.concat([spells, extra], ignore_index=True)
    checked = check(rotterdam, tmp_path, benefit_spells=spells)
    assert reasons(checked.quarantine, "benefit_spells") == {
        1: "end_before_start", 3: "date_in_future", 7: "unknown_client"
    }
    flags = checked.flags[checked.flags["table"] == "benefit_spells"]
    assert set(zip(flags["row"], flags["reason"], strict=True)) == {
        (6, "end_after_export"), (6, "overlapping_spell")
    }
    kept = checked.tables["benefit_spells"].set_index("_row")
    assert pd.isna(kept.loc[6, "end_date"]), "an end after the export date counts as running"
    q = checked.quarantine.set_index("row")
    assert q.loc[1, "column"] == "einddatum" and q.loc[3, "column"] == "ingangsdatum"
    # K0000003's only spell is in the future: the client has no benefit spell left
    assert "no_benefit_spell" in set(checked.flags["reason"])


def test_reference_dates_follow_the_configuration(rotterdam):
    start, ref = quality.reference_dates(rotterdam)
    assert (start, ref) == (pd.Timestamp("2015-01-01"), pd.Timestamp("2023-12-31"))
    declared = dict(rotterdam, exports=dict(rotterdam["exports"], export_date="2022-06-30"))
    assert quality.reference_dates(declared)[1] == pd.Timestamp("2022-06-30")


# ---------------------------------------------------------------------------
# report and schemas
# ---------------------------------------------------------------------------


def test_quality_report_adds_up_and_has_every_dimension(rotterdam, tmp_path):
    clients = canonical_frame("clients")
    clients.loc[0, "bsn"] = ""
    checked = check(rotterdam, tmp_path, clients=clients)
    rep = quality_report.quality_report(checked, size="small")
    json.dumps(rep)  # serialisable as it is
    assert rep["accounting_ok"]
    for table, n in (("clients", len(CLIENTS)), ("benefit_spells", len(SPELLS)),
                     ("instruments", len(EPISODES)), ("caseload", len(CASELOAD))):
        t = rep["tables"][table]
        assert t["rows_in"] == n == t["rows_kept"] + t["rows_quarantined"]
        assert set(t["dimensions"]) == {"rows", *quality_rules.DIMENSIONS}
        assert sum(y["rows"] for y in t["dimensions_by_year"].values()) == n
    clients_t = rep["tables"]["clients"]
    assert clients_t["flagged_rows"] == {"bsn_invalid": 1, "bsn_missing": 2}
    assert clients_t["completeness_by_column"]["bsn"] == 0.6
    assert clients_t["dimensions"]["validity"] == 0.8  # K0000005 fails the elfproef
    assert set(clients_t["dimensions_by_year"]) == {"2016", "2017", "2018", "2019"}


def test_every_reason_is_documented_in_the_methods_page(root):
    page = (root / "book" / "methods" / "01_delivery_check.md").read_text(encoding="utf-8")
    for reason in quality_rules.REASONS:
        assert f"`{reason}`" in page, reason


def test_output_schema_rejects_a_broken_checked_table(rotterdam, tmp_path):
    import pandera.errors as pe

    checked = check(rotterdam, tmp_path)
    clients = checked.tables["clients"].copy()
    clients.loc[0, "bsn"] = "12345"
    schema = quality_schema.output_schema("clients", rotterdam, {"training": {}})
    with pytest.raises(pe.SchemaError):
        schema.validate(clients)


# ---------------------------------------------------------------------------
# every city's generated delivery (small)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    for city in list_cities():
        generate_city(city, "small", data_dir=folder)
    return folder


@pytest.mark.parametrize("city", list_cities())
def test_generated_delivery_checks_clean(generated, city):
    cfg = load_city(city)
    exports = ingest.read_delivery(cfg, generated / "municipal" / city)
    checked = quality.check_delivery(exports, cfg)
    acc = checked.accounting()
    assert (acc["rows_in"] == acc["kept"] + acc["quarantined"]).all()
    q = set(checked.quarantine["reason"])
    assert q <= {"duplicate"}, f"only the planted duplicates are quarantined: {q}"
    flags = set(checked.flags["reason"])
    assert {"bsn_missing", "bsn_invalid"} <= flags
    assert flags <= {"bsn_missing", "bsn_invalid", "bsn_padded"}
    if cfg["exports"].get("bsn_as_number"):
        assert "bsn_padded" in flags


def test_den_haag_duplicates_are_removed(generated):
    cfg = load_city("den_haag")
    exports = ingest.read_delivery(cfg, generated / "municipal" / "den_haag")
    checked = quality.check_delivery(exports, cfg)
    raw = exports["clients"].frame
    n_dup = int(raw["client_id"].duplicated().sum())
    assert n_dup > 0
    assert (checked.quarantine["table"] == "clients").sum() == n_dup
    assert checked.tables["clients"]["client_id"].is_unique
    # the kept copy is the one with its accents: no kept name is the folded form
    # of a removed copy with accents
    removed = checked.quarantine[checked.quarantine["table"] == "clients"]["row"]
    removed_names = raw.set_index("_row").loc[removed, "last_name"]
    kept = checked.tables["clients"].set_index("client_id")["last_name"]
    ids = raw.set_index("_row").loc[removed, "client_id"]
    accents = [sum(ord(c) > 127 for c in str(v)) for v in kept.loc[ids]]
    assert np.all(np.array(accents) >= [sum(ord(c) > 127 for c in str(v))
                                        for v in removed_names])


def test_sav_numeric_codes_map(tmp_path):
    den_haag = load_city("den_haag")
    for table in den_haag["exports"]["files"]:
        write_sav(den_haag, tmp_path, table)
    checked = quality.check_delivery(ingest.read_delivery(den_haag, tmp_path), den_haag)
    kept = checked.tables["clients"]
    assert list(kept["labour_market_distance"]) == ["short", "large", "medium", "large", "short"]
    assert list(checked.tables["benefit_spells"]["benefit_type"].unique()) == ["participatiewet"]


def test_a_broken_output_contract_is_reported_without_values(rotterdam):
    import pandas as pd

    df = pd.DataFrame({"_row": [1], "client_id": ["K1"], "bsn": ["Jansen-123"],
                       "bsn_status": ["valid"], "bsn_padded": [False]})
    with pytest.raises(AssertionError) as info:
        quality._validate_output("clients", df, rotterdam, {"training": {}})
    assert "Jansen" not in str(info.value) and "'bsn'" in str(info.value)


def test_text_columns_are_cleaned_and_typed_as_value_by_value():
    """A column of texts and None is cleaned (stripped, empty to None) and
    typed without a call per value: the same as mapping the value functions;
    a column with other values is mapped value by value."""
    texts = pd.Series(
        ["  a ", "", "   ", None, "b", "\tc\n", "é ", "0"], index=[5, 3, 9, 1, 2, 8, 7, 6], name="x"
    )
    mixed = pd.Series([" a", 3.0, float("nan"), None, 7], name="y", dtype=object)
    for column in (texts, mixed):
        want = column.map(quality_schema._clean_text).astype(object)
        got = quality_schema.clean_text_column(column)
        pd.testing.assert_series_equal(got, want)
        assert [type(v) for v in got] == [type(v) for v in want]
        want = column.map(quality_schema._text_or_none).astype(object)
        got = quality_schema.text_column(column)
        pd.testing.assert_series_equal(got, want)
        assert [type(v) for v in got] == [type(v) for v in want]
    assert list(quality_schema.clean_text_column(texts)) == [
        "a", None, None, None, "b", "c", "é", "0"
    ]
    assert list(quality_schema.text_column(mixed)) == [" a", "3", None, None, "7"]

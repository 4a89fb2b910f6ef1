"""The synthetic world: files, formats, defects and planted truth.

One session-scoped generation of SIZE=small for the four cities (into a
temporary folder) serves most tests; the determinism and new-city tests
generate one or two cities again.
"""

from __future__ import annotations

import json
import shutil
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from reintegration.core.atomic import sha256_file
from reintegration.core.months import index as month_index
from reintegration.linking import bsn as bsnlib
from reintegration.synth import (
    data_dictionary_markdown,
    generate_city,
    merge_manifests,
    planted_parameters_markdown,
    schema,
)
from reintegration.synth.params import load_params
from reintegration.synth.tables import ascii_fold

ROOT = Path(__file__).resolve().parents[1]
CITIES = ["amsterdam", "den_haag", "rotterdam", "utrecht"]


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic_small")
    for city in CITIES:
        generate_city(city, "small", root=ROOT, data_dir=out)
    merge_manifests("small", root=ROOT, data_dir=out)
    return out


@cache
def params(city: str):
    return load_params(city, "small", root=ROOT)


@lru_cache(maxsize=64)
def _parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


@lru_cache(maxsize=64)
def _sav(path: Path) -> pd.DataFrame:
    df, _ = pyreadstat.read_sav(str(path))
    return df


def manifest(data: Path, city: str | None = None) -> list[dict]:
    path = data / "manifest.json" if city is None else data / "manifests" / f"{city}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def truth(data: Path, city: str) -> pd.DataFrame:
    return _parquet(data / "truth" / city / "potential_outcomes.parquet").copy()


def effects(data: Path, city: str) -> dict:
    return json.loads((data / "truth" / city / "effects.json").read_text(encoding="utf-8"))


def sav(path: Path) -> pd.DataFrame:
    return _sav(path).copy()


def municipal(data: Path, city: str, table: str) -> pd.DataFrame:
    """A municipal export read the way a careful analyst would: every column
    as text, with the city's declared format, encoding and delimiter, and the
    columns renamed back to canonical names."""
    p = params(city)
    ex = p.exports
    path = data / "municipal" / city / ex["files"][table]["file"]
    if ex["format"] == "sav":
        df = sav(path)
    else:
        df = pd.read_csv(path, sep=ex["delimiter"], encoding=ex["encoding"], dtype=str,
                         keep_default_na=False)
    return df.rename(columns={v: k for k, v in p.columns(table).items()})


def month_of(values: pd.Series) -> np.ndarray:
    d = pd.to_datetime(values)
    return ((d.dt.year - 1970) * 12 + d.dt.month - 1).to_numpy()


def status_at_horizons(
    po: pd.DataFrame, spells: pd.DataFrame, start: str, end: str, horizons: list[int]
) -> dict[int, np.ndarray]:
    """Per person (rows of po) and horizon h: does a spell overlap the calendar
    month h months after the inflow month? Spells keyed by RINPERSOON."""
    s = spells.copy()
    s["m0"] = month_of(s[start])
    ends = pd.to_datetime(s[end])
    s["m1"] = np.where(ends.isna(), 10**6, month_of(ends.fillna(pd.Timestamp("2262-01-01"))))
    key = po[["RINPERSOON", "inflow_month"]].copy()
    key["t0"] = [month_index(m) for m in key["inflow_month"]]
    merged = key.reset_index().merge(s[["RINPERSOON", "m0", "m1"]], on="RINPERSOON")
    out = {}
    for h in horizons:
        t = merged["t0"] + h
        hit = merged.loc[(merged["m0"] <= t) & (merged["m1"] >= t), "index"].unique()
        flag = np.zeros(len(po), dtype=int)
        flag[hit] = 1
        out[h] = flag
    return out


# ------------------------------------------------------------------ layout and manifest


def test_manifest_lists_every_file_with_its_checksum(data: Path) -> None:
    entries = manifest(data)
    assert entries == sorted(entries, key=lambda e: (e["city"], e["path"]))
    assert {e["city"] for e in entries} == set(CITIES)
    listed = {e["path"] for e in entries}
    on_disk = {
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.is_file() and p.parent.name != "manifests" and p.name != "manifest.json"
    }
    assert listed == on_disk
    for e in entries:
        assert set(e) == {"path", "domain", "table", "format", "rows", "sha256", "city"}
        assert e["path"].startswith(("research/cbs/", f"{e['domain']}/"))
        assert e["path"].split("/")[0] == e["domain"]
        assert sha256_file(data / e["path"]) == e["sha256"]
    for city in CITIES:
        assert manifest(data, city) == [e for e in entries if e["city"] == city]


def test_rows_in_the_manifest_match_the_files(data: Path) -> None:
    for e in manifest(data):
        path = data / e["path"]
        if e["format"] == "parquet":
            assert len(pd.read_parquet(path)) == e["rows"]
        elif e["format"] == "sav":
            _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
            assert meta.number_rows == e["rows"]
        elif e["format"] == "csv":
            assert len(municipal(data, e["city"], e["table"])) == e["rows"]


def test_files_follow_the_schema(data: Path) -> None:
    for city in CITIES:
        for t in schema.RESEARCH:
            df = sav(data / "research" / "cbs" / city / t.file)
            assert list(df.columns) == t.column_names
        for t in schema.TTP:
            df = pd.read_parquet(data / "ttp" / city / t.file)
            assert list(df.columns) == t.column_names
        po = truth(data, city)
        fixed = [c.name for c in schema.table("potential_outcomes").columns if "<" not in c.name]
        assert set(fixed) <= set(po.columns)
        assert set(schema.COVARIATES) <= set(po.columns)


def test_rinpersoon_is_a_padded_string_and_disjoint_across_cities(data: Path) -> None:
    seen: dict[str, set[str]] = {}
    for city in CITIES:
        key = pd.read_parquet(data / "ttp" / city / "key_table.parquet")
        assert key["RINPERSOON"].str.fullmatch(r"\d{9}").all()
        assert set(key["RINPERSOONS"]) == {"R", "S"}
        assert key["RINPERSOON"].is_unique and key["BSN"].is_unique
        assert bsnlib.elfproef_series(key["BSN"]).all()
        gba = sav(data / "research" / "cbs" / city / "GBAPERSOONTAB.sav")
        assert gba["RINPERSOON"].map(type).eq(str).all()
        assert gba["RINPERSOON"].str.len().eq(9).all()
        seen[city] = set(key["RINPERSOON"])
    for a in CITIES:
        for b in CITIES:
            if a < b:
                assert not seen[a] & seen[b]


def test_research_files_hold_no_direct_identifiers(data: Path) -> None:
    for city in CITIES:
        key = pd.read_parquet(data / "ttp" / city / "key_table.parquet")
        bsns = set(key["BSN"])
        for t in schema.RESEARCH:
            df = sav(data / "research" / "cbs" / city / t.file)
            assert not {"BSN", "bsn", "POSTCODE", "HUISNUMMER"} & set(df.columns)
            for col in df.columns:
                if df[col].dtype == object:
                    values = df[col].astype(str)
                    assert not bsns & set(values)
                    # no pseudonym or employer number looks like a BSN either
                    assert not bsnlib.elfproef_series(values).any(), f"{t.file}.{col}"


# ------------------------------------------------------------------ the planted truth


@pytest.mark.parametrize("city", CITIES)
def test_observed_employment_equals_the_potential_outcome_of_the_assigned_instrument(
    data: Path, city: str
) -> None:
    po = truth(data, city)
    horizons = effects(data, city)["horizons"]
    polis = sav(data / "research" / "cbs" / city / "SPOLISBUS.sav")
    employed = status_at_horizons(po, polis, "SDATUMAANVANGIKO", "SDATUMEINDEIKO", horizons)
    bij = sav(data / "research" / "cbs" / city / "BIJSTANDUITKERINGTAB.sav")
    on_benefit = status_at_horizons(
        po, bij, "BIJSTANDAanvangUitkeringPersoon1A", "BIJSTANDEindeUitkeringPersoon1A", horizons
    )
    rows = np.arange(len(po))
    worlds = ["none", *params(city).instruments]
    for h in horizons:
        for outcome, observed in (("employed", employed[h]), ("on_benefit", on_benefit[h])):
            cols = [f"{outcome}_{w}_{h}" for w in worlds]
            table = po[cols].to_numpy()
            # the column of the assigned instrument (none for the untreated)
            idx = np.array([cols.index(f"{outcome}_{inst}_{h}") for inst in po["instrument"]])
            assigned = table[rows, idx]
            np.testing.assert_array_equal(observed, assigned, err_msg=f"{outcome} at {h}")
            np.testing.assert_array_equal(observed, po[f"{outcome}_obs_{h}"].to_numpy())
    # and the world is not trivial: people do find work
    assert 0.15 < employed[12].mean() < 0.6


@pytest.mark.parametrize("city", CITIES)
def test_potential_outcomes_coincide_before_an_instrument_can_start(
    data: Path, city: str
) -> None:
    po = truth(data, city)
    instruments = params(city).instruments
    for h in effects(data, city)["horizons"]:
        same = (po["start_month_elapsed"] > h) | ~po["eligible"]
        for inst in instruments:
            a = po.loc[same, f"employed_{inst}_{h}"]
            b = po.loc[same, f"employed_none_{h}"]
            assert (a == b).all()


@pytest.mark.parametrize("city", CITIES)
def test_effects_json_matches_the_potential_outcomes(data: Path, city: str) -> None:
    po = truth(data, city)
    eff = effects(data, city)
    for inst, entry in eff["instruments"].items():
        treated = po["instrument"] == inst
        assert entry["n_treated"] == treated.sum()
        for h in eff["horizons"]:
            diff = po[f"employed_{inst}_{h}"] - po[f"employed_none_{h}"]
            if treated.any():
                assert entry["att"]["employed"][str(h)] == pytest.approx(diff[treated].mean(),
                                                                         abs=1e-6)
            assert entry["ate"]["employed"][str(h)] == pytest.approx(
                diff[po["eligible"]].mean(), abs=1e-6
            )


@pytest.mark.parametrize("city", CITIES)
def test_naive_difference_is_biased_in_the_planted_direction(data: Path, city: str) -> None:
    """Compute the naive treated-versus-untreated difference from the files an
    analyst has (municipal instrument episodes, CBS job spells) and compare it
    with the true ATT from the truth files."""
    eff = effects(data, city)
    assert eff["planted_bias_direction"]["employed"] == "negative"
    po = truth(data, city)
    episodes = municipal(data, city, "instruments")
    treated = po["client_id"].isin(set(episodes["client_id"]))
    assert (treated == (po["instrument"] != "none")).all()
    polis = sav(data / "research" / "cbs" / city / "SPOLISBUS.sav")
    employed = status_at_horizons(po, polis, "SDATUMAANVANGIKO", "SDATUMEINDEIKO", [12, 24])
    for h in (12, 24):
        y = employed[h]
        naive = y[treated].mean() - y[~treated].mean()
        se = np.sqrt(y[treated].var() / treated.sum() + y[~treated].var() / (~treated).sum())
        att = (po[f"employed_obs_{h}"] - po[f"employed_none_{h}"])[treated].mean()
        assert naive == pytest.approx(eff["any_instrument"]["naive_difference"]["employed"][str(h)],
                                      abs=1e-6)
        assert att == pytest.approx(eff["any_instrument"]["att"]["employed"][str(h)], abs=1e-6)
        # planted direction: negative, and clearly beyond sampling noise
        assert naive - att < -3 * se, (city, h, naive, att, se)


def test_instrument_start_and_case_manager_allocation_are_as_designed(data: Path) -> None:
    for city in ("rotterdam", "amsterdam"):
        po = truth(data, city)
        # as-if random allocation: the unobserved factor does not differ between the case
        # managers of a team x quarter cell beyond chance (one-way ANOVA within cells)
        po["cell"] = po["team"] + po["quarter"]
        resid = po["eta"] - po.groupby("cell")["eta"].transform("mean")
        cm_means = resid.groupby(po["case_manager"] + po["cell"]).agg(["mean", "count"])
        z = cm_means["mean"] * np.sqrt(cm_means["count"])
        assert abs(z.mean()) < 4 / np.sqrt(len(z))
        assert (z**2).mean() < 1.5
        iv = effects(data, city)["case_manager_iv"]
        assert iv["case_manager_exported"]
        for entry in iv["instruments"].values():
            assert entry["first_stage"] > 0.5
            assert entry["propensity_sd"] > 0.01


def test_rollout_raises_take_up_where_configured(data: Path) -> None:
    for city in ("rotterdam", "amsterdam", "den_haag"):
        eff = effects(data, city)
        ro = eff["rollout"]
        p = params(city)
        assert ro["instrument"] == p.rollout["instrument"]
        assert ro["take_up"]["exposed"] > 0.05
        po = truth(data, city)
        inst = ro["instrument"]
        exposed = po["rollout_exposed"]
        share_on = (po.loc[exposed, "instrument"] == inst).mean()
        share_off = (po.loc[~exposed, "instrument"] == inst).mean()
        assert share_on > share_off + 0.05
    assert effects(data, "utrecht")["rollout"] is None
    assert not truth(data, "utrecht")["rollout_exposed"].any()


# ------------------------------------------------------------------ city formats and defects


@pytest.mark.parametrize("city", CITIES)
def test_elfproef_failure_rate_is_as_planted(data: Path, city: str) -> None:
    p = params(city)
    clients = municipal(data, city, "clients").drop_duplicates("client_id")
    n = len(clients)
    norm = bsnlib.normalise_series(clients["bsn"].astype("string"))
    present = norm.notna()
    failing = (present & ~bsnlib.elfproef_series(norm)).sum()
    for rate, observed in (
        (p.syn["defects"]["bsn_typo_rate"], failing / n),
        (p.syn["defects"]["bsn_missing_rate"], (~present).sum() / n),
    ):
        sd = np.sqrt(rate * (1 - rate) / n)
        assert abs(observed - rate) < 4 * sd + 1 / n, (city, rate, observed)
    # every BSN that passes is one the linking unit knows
    key = pd.read_parquet(data / "ttp" / city / "key_table.parquet")
    passing = norm[present & bsnlib.elfproef_series(norm)]
    assert set(passing) <= set(key["BSN"])


def test_amsterdam_bsns_lost_their_leading_zero(data: Path) -> None:
    raw = municipal(data, "amsterdam", "clients")["bsn"]
    raw = raw[raw != ""]
    assert raw.str.fullmatch(r"\d+").all()
    assert not raw.str.startswith("0").any()
    eight = raw.str.len() == 8
    assert 0.05 < eight.mean() < 0.15
    key = set(pd.read_parquet(data / "ttp" / "amsterdam" / "key_table.parquet")["BSN"])
    repaired = bsnlib.normalise_series(raw[eight])
    assert repaired.str.startswith("0").all()
    assert repaired.isin(key).mean() > 0.95  # all except the few with a typo
    # cities that export text keep the zero
    other = municipal(data, "rotterdam", "clients")["bsn"]
    assert other[other != ""].str.len().eq(9).all()


def test_den_haag_exports_are_spss_files_with_duplicates_and_missing_end_dates(
    data: Path,
) -> None:
    p = params("den_haag")
    folder = data / "municipal" / "den_haag"
    for spec in p.exports["files"].values():
        df, meta = pyreadstat.read_sav(str(folder / spec["file"]))
        assert len(df) > 0 and meta.number_rows == len(df)
    clients = municipal(data, "den_haag", "clients")
    dup = clients["client_id"].duplicated()
    assert 0.01 < dup.mean() < 0.1
    assert clients["client_id"].nunique() == len(truth(data, "den_haag"))
    # part of the duplicates lost their accents in the migration: the generator folds first
    # name, last name and street of a duplicate together, so look at all three (the last
    # name alone carries an accent in only a handful of the small world's duplicates)
    dups = clients[clients["client_id"].duplicated(keep=False)]
    folded = 0
    for _, group in dups.groupby("client_id"):
        for col in ("first_name", "last_name", "street"):
            values = set(group[col])
            if len(values) > 1:
                # a difference is a lost accent and nothing else
                assert len({ascii_fold(v) for v in values}) == 1, (col, values)
                folded += 1
    assert folded > 0
    episodes = municipal(data, "den_haag", "instruments").drop_duplicates()
    rate = p.syn["defects"]["missing_instrument_end_rate"]
    missing = episodes["end_date"].isna().mean()
    assert abs(missing - rate) < 4 * np.sqrt(rate * (1 - rate) / len(episodes)) + 0.02
    # coded columns carry SPSS value labels
    _, meta = pyreadstat.read_sav(str(folder / p.exports["files"]["clients"]["file"]),
                                  metadataonly=True)
    assert meta.variable_value_labels["GESLACHT"] == {1.0: "male", 2.0: "female"}
    # other cities: no end dates missing beyond the export date
    other = municipal(data, "rotterdam", "instruments")
    assert (other["end_date"] == "").mean() < 0.05


def test_utrecht_has_no_case_manager_column(data: Path) -> None:
    raw = pd.read_csv(data / "municipal" / "utrecht" / "klanten.csv", sep=";", dtype=str,
                      nrows=5)
    assert not {"klantmanager", "case_manager", "consulent"} & {c.lower() for c in raw.columns}
    assert not (data / "municipal" / "utrecht" / "klantmanagers.csv").exists()
    assert not effects(data, "utrecht")["case_manager_iv"]["case_manager_exported"]
    for city in ("rotterdam", "amsterdam", "den_haag"):
        assert "case_manager" in municipal(data, city, "clients").columns
    # and Utrecht's data start in 2018
    spells = municipal(data, "utrecht", "benefit_spells")
    first = pd.to_datetime(spells["start_date"], format="%d-%m-%Y").min()
    assert first >= pd.Timestamp("2018-01-01")


def test_rotterdam_is_cp1252_with_dutch_dates_and_amsterdam_utf8_iso(data: Path) -> None:
    raw = (data / "municipal" / "rotterdam" / "klanten.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    assert "\r\n" in text and ";" in text.splitlines()[0]
    clients = municipal(data, "rotterdam", "clients")
    assert clients["birth_date"].str.fullmatch(r"\d\d-\d\d-\d{4}").all()
    assert clients["household_type"].isin(["Alleenstaande", "Alleenstaande ouder",
                                           "Gehuwd/samenwonend zonder kinderen",
                                           "Gehuwd/samenwonend met kinderen"]).all()
    names = pd.concat([clients["first_name"], clients["last_name"], clients["street"]])
    assert names.str.contains(r"[^\x00-\x7f]").any()  # é, ü, ç survive in cp1252
    assert names.str.contains(r"\?").any()  # ş, ı, ł do not
    ams = municipal(data, "amsterdam", "clients")
    assert ams["birth_date"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    text = pd.concat([ams["first_name"], ams["last_name"]])
    assert text.str.contains("ş|ı|ł|ğ|ś").any()


@pytest.mark.parametrize("city", CITIES)
def test_clients_without_bsn_match_the_register_on_sex_birth_date_and_address(
    data: Path, city: str
) -> None:
    clients = municipal(data, city, "clients").drop_duplicates("client_id")
    p = params(city)
    missing = clients[clients["bsn"].isna() | (clients["bsn"].astype(str).str.strip() == "")]
    assert len(missing) > 0
    reg = pd.read_parquet(data / "ttp" / city / "person_register.parquet")
    sex = {str(v): k for k, v in p.codes("sex").items()}
    fmt = p.exports.get("date_format", "%Y-%m-%d")
    births = (pd.to_datetime(missing["birth_date"]) if p.exports["format"] == "sav"
              else pd.to_datetime(missing["birth_date"], format=fmt))
    sexes = missing["sex"].astype(str).str.replace(r"\.0$", "", regex=True).map(sex)
    m = pd.DataFrame({
        "client_id": missing["client_id"].to_numpy(),
        "GESLACHT": sexes.map({"male": "M", "female": "V"}).to_numpy(),
        "GEBOORTEDATUM": births.to_numpy(),
        "POSTCODE": missing["postcode"].str.replace(" ", "").to_numpy(),
        "HUISNUMMER": pd.to_numeric(missing["house_number"]).astype("int64").to_numpy(),
    })
    reg["GEBOORTEDATUM"] = pd.to_datetime(reg["GEBOORTEDATUM"])
    m["GEBOORTEDATUM"] = pd.to_datetime(m["GEBOORTEDATUM"])
    linked = m.merge(reg, on=["GESLACHT", "GEBOORTEDATUM", "POSTCODE", "HUISNUMMER"])
    assert linked["client_id"].is_unique
    assert set(linked["client_id"]) == set(m["client_id"])
    po = truth(data, city).set_index("client_id")
    assert (po.loc[linked["client_id"], "RINPERSOON"].to_numpy() == linked["RINPERSOON"]).all()


def test_education_is_missing_mostly_for_older_first_generation_migrants(data: Path) -> None:
    po = truth(data, "rotterdam")
    old_first = (po["migrant_first_generation"] == 1) & (po["age"] > 35)
    edu = sav(data / "research" / "cbs" / "rotterdam" / "HOOGSTEOPLTAB.sav")
    has = po["RINPERSOON"].isin(set(edu["RINPERSOON"]))
    assert (~has[old_first]).mean() > 0.4
    assert (~has[~old_first & (po["RINPERSOONS"] == "R")]).mean() < 0.08


# ------------------------------------------------------------------ determinism and new cities


def test_same_seed_gives_the_same_bytes(data: Path, tmp_path: Path) -> None:
    for city in ("den_haag", "rotterdam"):
        again = generate_city(city, "small", root=ROOT, data_dir=tmp_path)
        first = {e["path"]: e["sha256"] for e in manifest(data, city)}
        second = {e["path"]: e["sha256"] for e in json.loads(again.read_text())}
        assert first == second
        assert (data / "manifests" / f"{city}.json").read_bytes() == again.read_bytes()


def test_sav_header_carries_the_export_date_not_the_clock(data: Path) -> None:
    raw = (data / "research" / "cbs" / "rotterdam" / "SPOLISBUS.sav").read_bytes()
    assert raw[92:109] == b"31 Dec 2300:00:00"


NEWTOWN = """
name: newtown
display_name: Nieuwstad
study:
  inflow_from: 2016-01
  inflow_to: 2019-12
  follow_up_months: 24
exports:
  format: csv
  encoding: utf-8
  delimiter: "|"
  date_format: "%Y%m%d"
  files:
    clients: {file: persons.csv, columns: {client_id: id, case_manager: null}}
    benefit_spells: {file: spells.csv}
    instruments: {file: programmes.csv}
  instrument_codes:
    T1: training
    T2: wage_subsidy
rollout:
  instrument: wage_subsidy
  teams: {Haven: 2017-06}
synthetic:
  clients: {small: 900, full: 5000}
  teams: [Haven, Markt]
  pc4_range: [9711, 9747]
  assignment:
    rollout_shift: 2.5
  effects:
    training: {months: 3, during: -0.2, after: -0.8, heterogeneity: {}}
  defects:
    bsn_typo_rate: 0.05
"""


def test_a_new_city_yaml_plants_its_own_truth_without_code_changes(
    data: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "config" / "cities").mkdir(parents=True)
    for name in ("instruments.yml", "synthetic.yml", "steps.yml", "feasibility.yml"):
        shutil.copy(ROOT / "config" / name, root / "config" / name)
    for city in CITIES:
        shutil.copy(ROOT / "config" / "cities" / f"{city}.yml", root / "config" / "cities")
    (root / "config" / "cities" / "newtown.yml").write_text(NEWTOWN, encoding="utf-8")
    out = tmp_path / "data"
    generate_city("newtown", "small", root=root, data_dir=out)
    eff = effects(out, "newtown")
    assert eff["n_clients"] == 900
    assert eff["parameters"]["synthetic"]["effects"]["training"]["after"] == -0.8
    # the planted negative effect of training shows in the truth, unlike in every other city
    assert eff["instruments"]["training"]["ate"]["employed"]["24"] < -0.05
    for city in CITIES:
        assert effects(data, city)["instruments"]["training"]["ate"]["employed"]["24"] > 0
    # only offered instruments are ever assigned
    po = truth(out, "newtown")
    assert set(po["instrument"]) <= {"none", "training", "wage_subsidy"}
    assert eff["rollout"]["instrument"] == "wage_subsidy"
    clients = pd.read_csv(out / "municipal" / "newtown" / "persons.csv", sep="|", dtype=str,
                          keep_default_na=False)
    assert "id" in clients.columns and "case_manager" not in clients.columns
    assert clients["birth_date"].str.fullmatch(r"\d{8}").all()
    failing = (~bsnlib.elfproef_series(bsnlib.normalise_series(clients["bsn"]))
               & (clients["bsn"] != "")).mean()
    assert abs(failing - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 900)
    # adding the city changed nothing for the others
    again = generate_city("utrecht", "small", root=root, data_dir=out)
    assert again.read_bytes() == (data / "manifests" / "utrecht.json").read_bytes()
    # merging needs every configured city's manifest
    with pytest.raises(FileNotFoundError, match="amsterdam"):
        merge_manifests("small", root=root, data_dir=out)


def test_a_city_without_a_synthetic_section_uses_the_defaults(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "config" / "cities").mkdir(parents=True)
    for name in ("instruments.yml", "synthetic.yml", "steps.yml", "feasibility.yml"):
        shutil.copy(ROOT / "config" / name, root / "config" / name)
    bare = NEWTOWN.split("rollout:")[0].replace("newtown", "plain")
    (root / "config" / "cities" / "plain.yml").write_text(bare, encoding="utf-8")
    p = load_params("plain", "small", root=root)
    assert p.n_clients == 1500 and p.rollout is None
    assert p.syn["effects"]["training"]["after"] == 0.55
    assert p.syn["teams"] == ["Noord", "Oost", "Zuid", "West"]


# ------------------------------------------------------------------ documentation


def test_data_dictionary_lists_every_table_and_column() -> None:
    md = data_dictionary_markdown()
    for t in schema.TABLES:
        assert f"### {t.table}" in md
        for c in t.columns:
            assert f"`{c.name}`" in md
    assert md.index("## Domain `municipal`") < md.index("## Domain `research`")


def test_planted_parameters_table_has_a_column_per_city() -> None:
    md = planted_parameters_markdown(CITIES, root=ROOT)
    assert "| parameter | amsterdam | den_haag | rotterdam | utrecht |" in md
    assert "`effects.training.after`" in md
    assert "`clients.full` | 45000 | 30000 | 40000 | 12000 |" in md
    assert "`rollout.instrument` | work_placement | job_coaching | job_coaching | none |" in md

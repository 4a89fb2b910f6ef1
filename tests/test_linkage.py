"""Pseudonymisation and linkage: routes, ambiguity, accounting, custody, and
the absence of direct identifiers in everything written to the research domain."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from test_ingest import write_delivery

from reintegration.core import step
from reintegration.core.config import list_cities, load_city
from reintegration.core.custody import CustodyError
from reintegration.intake import ingest, quality
from reintegration.linking import bsn as bsnlib
from reintegration.linking import linkage
from reintegration.synth import generate_city

KEY = b"k" * 32


def register_row(rin, sex, birth, postcode, number, rins="R"):
    return {"RINPERSOONS": rins, "RINPERSOON": rin, "GESLACHT": sex,
            "GEBOORTEDATUM": pd.Timestamp(birth), "POSTCODE": postcode, "HUISNUMMER": number}


@pytest.fixture
def delivery(tmp_path):
    """The five test clients, checked. K1 and K2 have valid BSNs (K2 outside the
    register), K3 none, K4 a valid BSN the key table does not know, K5 a BSN
    that fails the elfproef."""
    city = load_city("rotterdam")
    write_delivery(city, tmp_path)
    checked = quality.check_delivery(ingest.read_delivery(city, tmp_path), city)
    key_table = pd.DataFrame({
        "BSN": ["111222333", "123456782", "999999990"],
        "RINPERSOONS": ["R", "S", "R"],
        "RINPERSOON": ["000000101", "000000102", "000000199"],
    })
    register = pd.DataFrame([
        register_row("000000101", "M", "1980-01-02", "3011AB", 12),
        register_row("000000103", "M", "1990-12-31", "3013EF", 40),   # K3 on PC6
        register_row("000000104", "V", "1985-03-15", "3014GH", 7),    # K4: two candidates
        register_row("000000114", "V", "1985-03-15", "3014GH", 7),
        register_row("000000105", "M", "1969-09-09", "3015XY", 1),    # K5 on PC4 only
    ])
    return checked, key_table, register


def run(delivery, **kwargs) -> linkage.LinkResult:
    checked, key_table, register = delivery
    return linkage.link(checked.tables, checked.quarantine, key_table, register, key=KEY,
                        **kwargs)


def routes(result) -> dict[str, tuple]:
    c = result.clients
    return {r.client_id: (r.route, r.tier, r.RINPERSOON, r.reason)
            for r in c.itertuples()}


# ---------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------


def test_routes_ambiguity_and_pc4(delivery):
    result = run(delivery)
    assert routes(result) == {
        "K0000001": ("bsn", None, "000000101", None),
        "K0000002": ("bsn", None, "000000102", None),
        "K0000003": ("fallback", "pc6", "000000103", None),
        "K0000004": (None, None, None, "ambiguous"),
        "K0000005": ("fallback", "pc4", "000000105", None),
    }
    rep = result.report["tables"]["clients"]
    assert (rep["linked_bsn"], rep["linked_fallback"], rep["ambiguous"]) == (2, 2, 1)
    assert rep["ambiguous_candidates"] == 2
    assert rep["linked_fallback_by_postcode"] == {"pc6": 1, "pc4": 1}
    assert rep["linked_by_rinpersoons"] == {"R": 3, "S": 1}
    assert rep["bsn_not_in_key_table"] == 1
    assert result.accounting_ok()


def test_pc4_can_be_switched_off(delivery):
    result = run(delivery, fallback_pc4=False)
    assert routes(result)["K0000005"] == (None, None, None, "no_match")


def test_spells_and_episodes_follow_their_client(delivery):
    result = run(delivery)
    spells = result.report["tables"]["benefit_spells"]
    assert (spells["linked_bsn"], spells["linked_fallback"]) == (2, 2)
    assert spells["quarantined"] == {"client_not_linked": 1}
    research = result.research["benefit_spells"]
    assert set(research["RINPERSOON"]) == {"000000101", "000000102", "000000103", "000000105"}
    unlinked = result.unlinked
    assert set(zip(unlinked["table"], unlinked["client_id"], unlinked["reason"],
                   strict=True)) == {
        ("clients", "K0000004", "ambiguous"),
        ("benefit_spells", "K0000004", "client_not_linked"),
        ("instruments", "K0000004", "client_not_linked"),
    }


def test_a_person_is_linked_once(delivery):
    checked, key_table, register = delivery
    clients = checked.tables["clients"].copy()
    # K3 matches register person 101 by its address, who is linked by BSN (K1)
    clients.loc[2, ["sex", "birth_date", "postcode", "house_number"]] = [
        "male", pd.Timestamp("1980-01-02"), "3011AB", 12
    ]
    # K5 carries K2's BSN
    clients.loc[4, ["bsn", "bsn_status"]] = ["123456782", "valid"]
    tables = dict(checked.tables, clients=clients)
    result = linkage.link(tables, checked.quarantine, key_table, register, key=KEY)
    r = routes(result)
    assert r["K0000001"][0] == "bsn"
    assert r["K0000003"][3] == "fallback_conflict"
    assert r["K0000002"][3] == r["K0000005"][3] == "same_person_twice"
    assert result.research["clients"]["RINPERSOON"].is_unique
    assert result.accounting_ok()


def test_incomplete_fallback_fields(delivery):
    checked, key_table, register = delivery
    clients = checked.tables["clients"].copy()
    clients.loc[2, "house_number"] = pd.NA
    tables = dict(checked.tables, clients=clients)
    result = linkage.link(tables, checked.quarantine, key_table, register, key=KEY)
    assert routes(result)["K0000003"][3] == "fallback_incomplete"


def test_a_key_table_with_a_repeated_bsn_is_refused(delivery):
    checked, key_table, register = delivery
    bad = pd.concat([key_table, key_table.iloc[[0]]])
    with pytest.raises(linkage.LinkageError, match="more than once"):
        linkage.link(checked.tables, checked.quarantine, bad, register, key=KEY)


def test_research_tables_follow_the_contract(delivery):
    result = run(delivery)
    for table, df in result.research.items():
        assert list(df.columns) == [c for c, _, _ in linkage.RESEARCH_TABLES[table]]
        linkage.research_schema(table).validate(df)
    clients = result.research["clients"]
    assert clients["RINPERSOON"].map(type).eq(str).all()
    row = clients.set_index("RINPERSOON").loc["000000101"]
    assert (row["birth_year"], row["birth_month"], row["sex"]) == (1980, 1, "male")
    assert row["link_route"] == "bsn"


def test_pseudonyms_are_keyed_and_deterministic():
    ids = pd.Series(["KM0001", "KM0002", None])
    a = linkage.pseudonymise(ids, KEY)
    assert a.equals(linkage.pseudonymise(ids, KEY))
    assert not a[:2].equals(linkage.pseudonymise(ids, b"x" * 32)[:2])
    assert a.isna().tolist() == [False, False, True]
    assert not set(a.dropna()) & set(ids.dropna())
    assert linkage.synthetic_key("rotterdam", "small", 1) != linkage.synthetic_key(
        "amsterdam", "small", 1
    )


def test_every_link_reason_is_documented_in_the_methods_page(root):
    page = (root / "book" / "methods" / "02_pseudonymise_link.md").read_text(encoding="utf-8")
    for reason in linkage.LINK_REASONS:
        assert f"`{reason}`" in page, reason
    for table in linkage.RESEARCH_TABLES:
        assert f"`{table}.parquet`" in page


def test_funnel_never_shows_a_total_over_a_suppressed_count():
    released = pd.DataFrame({"count": [np.nan, 1200.0, 40.0, 25.0]},
                            index=["not linked", "linked by BSN", "linked by fallback",
                                   "quarantined in delivery check"])
    stages = dict((label, count) for label, count, _ in linkage.funnel_stages(released))
    assert "delivered" not in stages and stages["linked"] == 1240.0
    assert stages["not linked"] is None
    released.loc["not linked", "count"] = 12.0
    stages = dict((label, count) for label, count, _ in linkage.funnel_stages(released))
    assert stages["delivered"] == 1277.0 and stages["passed the delivery check"] == 1252.0
    linkage.funnel_figure(released)


# ---------------------------------------------------------------------------
# custody
# ---------------------------------------------------------------------------


@pytest.fixture
def custody_root(tmp_root):
    """A copy of the configuration with a researcher step, and files in the
    municipal and ttp domains of a synthetic data tree."""
    steps = tmp_root / "config" / "steps.yml"
    data = yaml.safe_load(steps.read_text(encoding="utf-8"))
    data["steps"].append({"name": "99_research_probe", "title": "Probe", "role": "researcher",
                          "needs": []})
    steps.write_text(yaml.safe_dump(data), encoding="utf-8")
    base = tmp_root / "synthetic_data" / "small"
    for domain, name in (("municipal", "klanten.csv"), ("ttp", "key_table.parquet")):
        folder = base / domain / "rotterdam"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"not for researchers")
    return tmp_root


@pytest.mark.parametrize("domain,name", [("municipal", "klanten.csv"),
                                         ("ttp", "key_table.parquet")])
def test_a_research_step_cannot_read_municipal_or_ttp_files(custody_root, domain, name):
    ctx = step.start("99_research_probe", city="rotterdam", size="small", root=custody_root)
    path = ctx.paths.data_domain_dir(domain, "rotterdam") / name
    with pytest.raises(CustodyError) as info:
        ctx.read_parquet(path)
    msg = str(info.value)
    assert "'researcher'" in msg and str(path) in msg and f"'{domain}'" in msg


def test_the_linking_unit_cannot_write_back_to_the_municipality(custody_root):
    ctx = step.start("02_pseudonymise_link", city="rotterdam", size="small", root=custody_root)
    with pytest.raises(CustodyError, match="linking_unit"):
        ctx.write_parquet("clients.parquet", pd.DataFrame({"a": [1]}), domain="municipal")


def test_the_municipality_cannot_read_the_key_table(custody_root):
    ctx = step.start("01_delivery_check", city="rotterdam", size="small", root=custody_root)
    with pytest.raises(CustodyError, match="municipality"):
        linkage.read_ttp(ctx)


# ---------------------------------------------------------------------------
# generated deliveries: every city (small), and the acceptance checks (full)
# ---------------------------------------------------------------------------


def link_city(folder, city: str, size: str):
    cfg = load_city(city)
    exports = ingest.read_delivery(cfg, folder / "municipal" / city)
    checked = quality.check_delivery(exports, cfg)
    ttp = folder / "ttp" / city
    result = linkage.link(
        checked.tables, checked.quarantine,
        pd.read_parquet(ttp / "key_table.parquet"),
        pd.read_parquet(ttp / "person_register.parquet"),
        key=linkage.synthetic_key(city, size),
    )
    truth = pd.read_parquet(folder / "truth" / city / "potential_outcomes.parquet",
                            columns=["client_id", "RINPERSOONS", "RINPERSOON"])
    return exports, checked, result, truth


def assert_no_identifiers(exports, research, routes=None):
    """No value of any research table equals a direct identifier of the raw
    municipal export; with ``routes``, no RINPERSOON is its own person's BSN."""
    raw = exports["clients"].frame
    ids: dict[str, set[str]] = {
        "bsn": {str(v) for v in raw["bsn"].dropna()}
        | set(bsnlib.normalise_series(raw["bsn"].astype(object)).dropna()),
        "client_id": set(raw["client_id"].dropna().astype(str)),
        "name": set(raw["first_name"].dropna()) | set(raw["last_name"].dropna()),
        "street": set(raw["street"].dropna()),
        "postcode": set(raw["postcode"].dropna())
        | {str(v).replace(" ", "") for v in raw["postcode"].dropna()},
        "birth_date": {d.strftime(f) for d in raw["birth_date"].dropna()
                       for f in ("%Y-%m-%d", "%d-%m-%Y", "%Y%m%d")},
    }
    births = set(raw["birth_date"].dropna())
    for table, df in research.items():
        for bad in linkage.DIRECT_IDENTIFIERS:
            assert bad not in df.columns, f"{table}.{bad}"
        for col in df.columns:
            s = df[col].dropna()
            if pd.api.types.is_datetime64_any_dtype(s):
                if col.startswith("birth"):
                    assert not s.isin(births).any()
                continue
            text = set(s.astype(str))
            for kind, values in ids.items():
                if col == "RINPERSOON" and kind == "bsn":
                    continue  # nine digits both: chance equality is checked below
                assert not text & values, f"{table}.{col} holds a {kind} of the export"
            assert not bsnlib.elfproef_series(pd.Series(sorted(text))).any(), (
                f"{table}.{col} holds a nine-digit number that passes the elfproef"
            )
    if routes is not None:
        clients = raw[["client_id"]].assign(bsn=bsnlib.normalise_series(raw["bsn"].astype(object)))
        linked = routes.merge(clients, on="client_id")
        assert not (linked["RINPERSOON"] == linked["bsn"]).any()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    for city in list_cities():
        generate_city(city, "small", data_dir=folder)
    return folder


@pytest.mark.parametrize("city", list_cities())
def test_every_city_links_adds_up_and_leaks_nothing(small_data, city):
    exports, checked, result, truth = link_city(small_data, city, "small")
    report = json.loads(json.dumps(result.report))
    for table, t in report["tables"].items():
        assert t["rows_in"] == t["linked_bsn"] + t["linked_fallback"] + sum(
            t["quarantined"].values()
        ), table
        assert t["rows_in"] == exports[table].rows
    wrong = result.clients.merge(truth, on="client_id", suffixes=("", "_truth"))
    wrong = wrong[wrong["route"].notna() & (wrong["RINPERSOON"] != wrong["RINPERSOON_truth"])]
    assert wrong.empty, "every link finds the planted person"
    assert_no_identifiers(exports, result.research, result.clients)


@pytest.fixture(scope="module")
def full_data(tmp_path_factory):
    """Rotterdam and Amsterdam at full size (about 7 s each to generate)."""
    folder = tmp_path_factory.mktemp("full")
    for city in ("rotterdam", "amsterdam"):
        generate_city(city, "full", data_dir=folder)
    return folder


def test_full_rotterdam_links_97_percent_and_recovers_the_planted_clients(full_data):
    exports, checked, result, truth = link_city(full_data, "rotterdam", "full")
    clients = result.report["tables"]["clients"]
    assert (clients["linked_bsn"] + clients["linked_fallback"]) / clients["rows_in"] >= 0.97
    # planted: no usable BSN in the export, but a register person (RINPERSOONS R)
    status = checked.tables["clients"].set_index("client_id")["bsn_status"]
    planted = truth[truth["client_id"].map(status).ne("valid") & truth["RINPERSOONS"].eq("R")]
    assert len(planted) > 500
    got = result.clients.set_index("client_id").loc[planted["client_id"]]
    assert (got["route"] == "fallback").all()
    assert (got["RINPERSOON"].to_numpy() == planted["RINPERSOON"].to_numpy()).all()
    assert_no_identifiers(exports, result.research, result.clients)


def test_full_amsterdam_links_eight_digit_bsns_after_padding(full_data):
    exports, checked, result, truth = link_city(full_data, "amsterdam", "full")
    raw = exports["clients"].frame
    digits = raw["bsn"].astype("string")
    eight = digits.str.fullmatch(r"[0-9]{8}").fillna(False).to_numpy()
    valid = bsnlib.elfproef_series("0" + digits.fillna("")).to_numpy()
    padded = raw.loc[eight & valid, "client_id"]
    assert len(padded) > 1000
    # an eight-digit BSN that fails the elfproef after padding is a planted typo
    assert (eight & ~valid).sum() < 0.02 * eight.sum()
    got = result.clients.set_index("client_id").loc[padded]
    assert (got["route"] == "bsn").all(), "every valid eight-digit BSN links after padding"
    t = truth.set_index("client_id").loc[padded]
    assert (got["RINPERSOON"].to_numpy() == t["RINPERSOON"].to_numpy()).all()
    assert result.report["tables"]["clients"]["bsn_padded_linked"] == len(padded)


# ---------------------------------------------------------------------------
# the pipeline's own outputs (make SIZE=small book runs the steps first)
# ---------------------------------------------------------------------------


@pytest.mark.pipeline
@pytest.mark.parametrize("city", list_cities())
def test_pipeline_outputs_add_up_and_leak_nothing(small, city):
    build = small.city_build(city)
    records = small.city_build_domain(city, "research")  # exact counts: research domain
    for name in ("linkage.json", "quality.json"):
        if not (records / name).exists():
            pytest.fail(f"{records / name} is missing: run `make SIZE=small book` first")
    report = json.loads((records / "linkage.json").read_text(encoding="utf-8"))
    assert report["city"] == city and report["size"] == "small"
    for table, t in report["tables"].items():
        assert t["rows_in"] == t["linked_bsn"] + t["linked_fallback"] + sum(
            t["quarantined"].values()
        ), table
    quality_report = json.loads((records / "quality.json").read_text(encoding="utf-8"))
    assert quality_report["accounting_ok"]
    cfg = load_city(city)
    exports = ingest.read_delivery(cfg, small.data_domain_dir("municipal", city))
    # every research-domain file (later steps write theirs beside the linked delivery)
    research = {p.stem: pd.read_parquet(p) for p in sorted((build / "research").glob("*.parquet"))}
    assert set(linkage.RESEARCH_TABLES) & set(cfg["exports"]["files"]) <= set(research)
    assert_no_identifiers(exports, research)

"""The release audit fails, naming file and cell, on every kind of leak."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from reintegration.core.config import load_city
from reintegration.core.paths import Paths
from reintegration.disclosure import audit
from reintegration.disclosure.rules import META_KEY
from reintegration.intake import ingest
from reintegration.synth import generate_city

CITY = "utrecht"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A compendium tree with one small city, its data and a built register."""
    from conftest import ROOT

    root = tmp_path_factory.mktemp("audit")
    for folder in ("config", "notebooks"):
        shutil.copytree(ROOT / folder, root / folder)
    for cfg in (root / "config" / "cities").glob("*.yml"):
        if cfg.stem != CITY:
            cfg.unlink()
    paths = Paths.for_size("small", root)
    generate_city(CITY, "small", root=root)
    clients = ingest.read_delivery(load_city(CITY, root), paths.data_domain_dir("municipal", CITY))[
        "clients"
    ].frame
    out = paths.city_build(CITY) / "outputs"
    (out / "00_city_profile").mkdir(parents=True)
    register = {
        "outputs": [
            {
                "id": "00_city_profile/uptake",
                "file": "outputs/00_city_profile/uptake.csv",
                "checks": {"statistic": "count", "structural_zeros": []},
                "status": "review",
            }
        ]
    }
    (out / "00_city_profile" / "register.json").write_text(json.dumps(register))
    (out / "register.json").write_text(json.dumps(register))
    return root, paths, clients


def _notebook(cells):
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# Utrecht"), *cells]
    return nb


def _cell(output):
    cell = new_code_cell("x")
    cell.outputs = [output]
    return cell


def _write(paths, nb, csv="instrument,women,men\ntraining,25,31\n"):
    target = paths.results_dir(CITY) / "00_city_profile.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    (paths.city_build(CITY) / "outputs" / "00_city_profile" / "uptake.csv").write_text(csv)
    return "book/results/utrecht/00_city_profile.ipynb"


def _registered_table():
    return new_output(
        "display_data",
        data={"text/html": "<table><tr><td>25</td></tr></table>", "text/plain": "t"},
        metadata={META_KEY: {"output_id": "00_city_profile/uptake", "status": "pass"}},
    )


def test_a_clean_notebook_passes(world, monkeypatch):
    root, paths, _ = world
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    _write(paths, _notebook([_cell(_registered_table())]))
    report = audit.run("small", root=root, html=False)
    assert report["findings"] == [] and report["passed"]
    assert report["scanned"]["notebooks"] == 1
    assert report["identifiers_checked"]["rins"] >= 1500  # clients and other residents
    assert json.loads((paths.build_dir / "audit.json").read_text())["passed"] is True


def test_each_leak_is_named_by_file_and_cell(world, monkeypatch):
    root, paths, clients = world
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    person = clients.dropna(subset=["first_name", "last_name", "birth_date"]).iloc[0]
    parts = (person["first_name"], person.get("surname_prefix"), person["last_name"])
    full = " ".join(str(p) for p in parts if isinstance(p, str) and p.strip())
    birth = person["birth_date"].strftime("%d-%m-%Y")
    cells = [
        _cell(_registered_table()),
        _cell(new_output("stream", name="stdout", text="client 123456782 started\n")),
        _cell(new_output("execute_result", data={"text/plain": f"'{full}'"})),
        _cell(new_output("display_data", data={"text/html": "<table><tr><td>7</td></tr></table>"})),
        _cell(new_output("stream", name="stdout", text=f"born {birth}\n")),
    ]
    nb_file = _write(paths, _notebook(cells), csv="instrument,women,men\ntraining,3,31\n")
    report = audit.run("small", root=root, html=False)
    got = {(f["file"], f["cell"], f["kind"]) for f in report["findings"]}
    assert (nb_file, 2, "BSN") in got
    assert (nb_file, 3, "name") in got
    assert (nb_file, 4, "unregistered output") in got
    assert (nb_file, 5, "birth date") in got
    small = [f for f in report["findings"] if f["kind"] == "small count"]
    assert len(small) == 1 and "00_city_profile/uptake" in small[0]["detail"]
    assert report["passed"] is False
    # the report masks what it found
    text = json.dumps(report)
    assert "123456782" not in text and full not in text and birth not in text


def test_a_rin_from_the_research_files_is_found(world, monkeypatch):
    root, paths, _ = world
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    rin = sorted(audit._rin_values(next(paths.data_domain_dir("research", CITY).glob("*.sav"))))[0]
    nb_file = _write(
        paths,
        _notebook([_cell(new_output("stream", name="stdout", text=f"RINPERSOON {rin}\n"))]),
    )
    report = audit.run("small", root=root, html=False)
    assert [(f["file"], f["cell"], f["kind"]) for f in report["findings"]] == [
        (nb_file, 1, "RINPERSOON")
    ]


def test_numbers_that_are_not_identifiers_pass(world):
    _, _, _ = world
    scanner = audit.Scanner(audit.Identifiers(rins={"000000123"}))
    text = "sha 9f3a123456782b; 0.123456782; 1234567820; total 123456789"
    assert list(scanner.text(text, "f", 0)) == []


def test_failed_notebooks_are_scanned_and_unreadable_domains_counted(world, monkeypatch):
    from reintegration.core.custody import failed_dir

    root, paths, clients = world
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    _write(paths, _notebook([_cell(_registered_table())]))
    person = clients.dropna(subset=["birth_date"]).iloc[0]
    birth = person["birth_date"].strftime("%d-%m-%Y")
    failed = failed_dir(paths, CITY, "municipality") / "01_delivery_check.ipynb"
    failed.parent.mkdir(parents=True, exist_ok=True)
    error = new_output(
        "error",
        ename="ValueError",
        evalue=f"bad date {birth}",
        traceback=[f"ValueError: bad date {birth}"],
    )
    nbformat.write(_notebook([_cell(error)]), failed)
    ttp = failed_dir(paths, CITY, "linking_unit") / "02_pseudonymise_link.ipynb"
    ttp.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_notebook([]), ttp)
    try:
        report = audit.run("small", root=root, html=False)
    finally:
        failed.unlink()
        ttp.unlink()
    rel = "build/small/utrecht/municipal/failed/01_delivery_check.ipynb"
    assert [(f["file"], f["cell"], f["kind"]) for f in report["findings"]] == [
        (rel, 1, "birth date")
    ]
    assert report["scanned"]["failed_notebooks"] == 1
    assert report["scanned"]["failed_notebooks_unreadable"] == 1
    assert birth not in json.dumps(report)


def _all_phrases(scanner: audit.Scanner, text: str) -> set[str]:
    """Every run of 1 to span words (the scanner's lookup without its first-word filter)."""
    words = [w if audit._ELISION.fullmatch(w) else w.strip("'’-")
             for w in audit._WORD.findall(text)]
    return {" ".join(words[i : i + n]) for n in range(1, scanner.span + 1)
            for i in range(len(words) - n + 1)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_runs_of_words_left_out_match_no_name_or_street(seed):
    import random

    rng = random.Random(seed)
    names = {"Jan de Vries", "Anna van 't Hof", "Mo El Amrani", "Ed Bos", "Lisa-Marie Jansen"}
    streets = {"Van 't Hoffstraat", "Kerkstraat", "Lange  Nieuwstraat", "Oude-Gracht"}
    scanner = audit.Scanner(audit.Identifiers(names=names, streets=streets))
    vocabulary = [w for p in sorted(names | streets) for w in p.split(" ") if w] + [
        "de", "van", "'t", "-", "--", "straat", "Vries.", "(Jan", "Bos,", "9999", "table", ""]
    pieces = [rng.choice(vocabulary) for _ in range(3000)]
    for planted in sorted(names | streets):
        pieces.insert(rng.randrange(len(pieces)), planted)
    text = " ".join(pieces)
    full = _all_phrases(scanner, text)
    kept = scanner._phrases(text)
    assert kept <= full and len(kept) < len(full) / 2
    assert kept & (names | streets) == full & (names | streets)
    found = {f.detail for f in scanner.text(text, "f", 0)}
    # every planted one; the street written with two spaces only where a lone "-" stood
    # between its words by chance (the text joins words with one space)
    assert len(found) == len(full & (names | streets)) >= len(names | streets) - 1


def test_research_identifiers_are_every_distinct_value_of_a_file_once(tmp_path):
    """The RINs of a research file: every value that is not missing, as text,
    whatever the column's type and however often a person appears."""
    import pandas as pd

    text = tmp_path / "persons.parquet"
    pd.DataFrame({"RINPERSOON": ["000000017", None, "000000017", "123456782"],
                  "x": [1, 2, 3, 4]}).to_parquet(text)
    numbers = tmp_path / "numbers.parquet"
    pd.DataFrame({"RINPERSOON": [17.0, float("nan"), 17.0, 5.0]}).to_parquet(numbers)
    without = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(without)
    assert audit._rin_values(text) == {"000000017", "123456782"}
    assert audit._rin_values(numbers) == {"17.0", "5.0"}
    assert audit._rin_values(without) == set()

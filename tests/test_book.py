"""The book: generated table of contents, offline HTML, one section per city."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from reintegration.book.generate import BookError, toc
from reintegration.core.config import list_cities, load_city, load_steps
from reintegration.core.paths import Paths


def _files(entries):
    for entry in entries:
        yield entry["file"]
        yield from _files(entry.get("sections", []))


def _fake_results(root):
    for city in list_cities(root):
        for s in load_steps(root):
            nb = root / "book" / "results" / city / f"{s['name']}.ipynb"
            nb.parent.mkdir(parents=True, exist_ok=True)
            nb.write_text("{}")
        summary = root / "book" / "_generated" / f"summary_{city}.md"
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(f"# {city}: summary of results\n")


def test_toc_has_one_results_chapter_per_city_and_a_page_per_step(tmp_root):
    _fake_results(tmp_root)
    contents = toc(Paths.for_size("small", tmp_root))
    parts = {p["caption"]: p["chapters"] for p in contents["parts"]}
    results = parts["Results per city"]
    assert [c["file"] for c in results[1:]] == [
        f"_generated/summary_{c}" for c in list_cities(tmp_root)
    ]
    assert [c["sections"][0]["file"] for c in results[1:]] == [
        f"results/{c}/00_city_profile" for c in list_cities(tmp_root)
    ]
    methods = list(_files(parts["Data and methods"]))
    assert [f"methods/{s['name']}" for s in load_steps(tmp_root)] == [
        m for m in methods if re.match(r"methods/\d\d_", m)
    ]
    assert list(parts)[:3] == ["Introduction", "Data and methods", "Phase 1: feasibility"]
    assert list(parts)[-3:] == ["Cross-city synthesis", "Werkwijzer", "Appendices"]


def test_toc_refuses_a_step_without_its_methods_page(tmp_root):
    (tmp_root / "book" / "methods" / "00_city_profile.md").unlink()
    with pytest.raises(BookError, match="methods/00_city_profile.md, which does not exist"):
        toc(Paths.for_size("small", tmp_root))


def test_toc_refuses_a_city_whose_notebooks_did_not_run(tmp_root):
    _fake_results(tmp_root)
    shutil.copy(tmp_root / "config/cities/utrecht.yml", tmp_root / "config/cities/zwolle.yml")
    with pytest.raises(BookError, match="results/zwolle/00_city_profile"):
        toc(Paths.for_size("small", tmp_root))


@pytest.mark.pipeline
def test_built_toc_matches_configuration(small, built_book):
    contents = yaml.safe_load((small.book_dir / "_toc.yml").read_text())
    assert contents == toc(small)


@pytest.mark.pipeline
def test_book_has_a_results_section_per_city(small, built_book):
    index = (built_book / "cities.html").read_text()
    for city in list_cities(small.root):
        page = built_book / "results" / city / "00_city_profile.html"
        assert page.exists(), page
        html = page.read_text()
        assert f"<h1>{load_city(city, small.root)['display_name']}" in html
        assert f"results/{city}/00_city_profile.html" in index


@pytest.mark.pipeline
def test_book_loads_nothing_from_the_network(built_book):
    # absolute http(s) and protocol-relative references alike
    hits = [
        (str(p), m)
        for p in built_book.rglob("*.html")
        for m in re.findall(r'\b(?:src|href)\s*=\s*["\']?(?:https?:)?//[^"\'\s>]+', p.read_text())
    ]
    assert hits == []


@pytest.mark.pipeline
def test_book_has_no_launch_buttons_or_thebe(built_book):
    """No Thebe or Binder machinery in any page: no script, stylesheet, link
    or element class that loads or offers them. (The words themselves may
    appear in text, e.g. the installed package sphinx-thebe in the
    reproducibility appendix's package list.)"""
    machinery = re.compile(
        r"<(?:script|link)\b[^>]*(?:thebe|binder)|class=\"[^\"]*(?:thebe|launch-button|binder)"
        r"|href=\"[^\"]*mybinder|launch-buttons", re.IGNORECASE
    )
    for page in built_book.rglob("*.html"):
        found = machinery.search(page.read_text())
        assert found is None, (page, found and found.group(0))


@pytest.mark.pipeline
def test_every_page_lists_every_city_in_its_navigation(small, built_book):
    cities = list_cities(small.root)
    for page in sorted(built_book.glob("results/*/*.html")) + [built_book / "intro.html"]:
        text = page.read_text()
        own = page.parent.name  # its own city: a relative link, or none on the landing page
        missing = [
            c
            for c in cities
            if f"{c}/00_city_profile.html" not in text
            and not (
                c == own
                and (page.name == "00_city_profile.html" or 'href="00_city_profile.html' in text)
            )
        ]
        assert missing == [], f"{page.relative_to(built_book)} does not list {missing}"


def test_no_hand_written_page_holds_a_control_character(root):
    """A backslash lost on the way (``\\frac`` written as a form feed and
    ``rac``) garbles a formula without any build warning."""
    import re

    pages = sorted((root / "book").glob("**/*.md"))
    pages = [p for p in pages if "_build" not in p.parts and "_generated" not in p.parts]
    assert len(pages) > 20
    bad = {
        str(p.relative_to(root)): sorted({hex(ord(c)) for c in found})
        for p in pages
        if (found := re.findall(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", p.read_text(encoding="utf-8")))
    }
    assert bad == {}


@pytest.mark.pipeline
def test_the_protection_page_reads_the_audit_record_only_for_the_same_bundles(
    small, built_book, monkeypatch
):
    """The generated page on disclosure protection takes each city's
    differencing result from the release audit's record of the attack when
    that record was made from the bundle now released; it is the same page as
    attacking the bundles afresh, and a record of another bundle is not used."""
    from reintegration.book import generate
    from reintegration.disclosure import audit

    cities = list_cities(small.root)
    recorded = [audit.recorded_differencing(small, c) for c in cities]
    assert all(r is not None and r[1]["cells"] > 0 for r in recorded)
    from_record = generate.protection_markdown(small)
    monkeypatch.setattr(audit, "recorded_differencing", lambda paths, city: None)
    assert generate.protection_markdown(small) == from_record
    monkeypatch.undo()
    monkeypatch.setattr(audit, "attack_key", lambda bundle, threshold: "0" * 64)
    assert audit.recorded_differencing(small, cities[0]) is None

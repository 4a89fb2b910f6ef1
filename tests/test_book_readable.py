"""The built book reads as a report: no code, and no raw column name or
configuration key where a reader looks for words (headings, column headers,
output titles, image alt text), nor in the data behind a figure.

Axis labels and legends are drawn into PNGs; the functions that draw them
are tested in tests/test_labels.py (and the figures' data here)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from reintegration.core.config import list_cities
from reintegration.research import labels


def _pages(built_book: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "_downloads"}
    return sorted(p for p in built_book.rglob("*.html") if not skip & set(p.parts))


@pytest.fixture(scope="module")
def scanned(built_book: Path) -> dict[str, list[tuple[str, str, str]]]:
    names = labels.raw_names()
    return {
        p.relative_to(built_book).as_posix(): labels.scan_html(p.read_text(encoding="utf-8"), names)
        for p in _pages(built_book)
    }


@pytest.mark.pipeline
def test_the_book_has_results_pages_to_scan(small, scanned):
    for city in list_cities(small.root):
        assert f"results/{city}/06_effects.html" in scanned, city


@pytest.mark.pipeline
def test_no_page_shows_a_code_cell(scanned):
    shown = Counter(page for page, hits in scanned.items() for w, _, _ in hits if w == "code cell")
    assert shown == {}, f"code input cells per page: {dict(shown)}"


@pytest.mark.pipeline
def test_no_raw_name_in_headings_headers_titles_or_alt_text(scanned):
    found = [
        f"{page}: {where} {text!r} names {name}"
        for page, hits in scanned.items()
        for where, text, name in hits
        if where != "code cell"
    ]
    assert found == [], "\n".join(found[:40])


@pytest.mark.pipeline
def test_figure_data_speak_in_words(small):
    """The table released with each figure (its CSV beside the PNG): the
    header and the row labels hold no raw name."""
    names = labels.raw_names()
    release = small.root / "release" / small.size
    found, figures = [], 0
    for png in sorted(release.glob("*/*/*.png")):
        data = png.with_suffix(".csv")
        if not data.is_file():
            continue
        figures += 1
        rows = list(csv.reader(io.StringIO(data.read_text(encoding="utf-8"))))
        cells = rows[0] + [r[0] for r in rows[1:] if r]
        found += [
            f"{data.relative_to(release)}: {c!r}" for c in cells if labels.find_names(c, names)
        ]
    assert figures > 0, f"no figure data in {release}"
    assert found == [], "\n".join(found[:40])

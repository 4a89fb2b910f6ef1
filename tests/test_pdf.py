"""The PDF of the whole book: reading its bookmarks, finding each chapter,
and printing a page offline with Chromium."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
import yaml

from reintegration.book import pdf


def test_outline_titles_reads_literal_hex_and_compressed_strings():
    inner = b"<< /Title <FEFF00570061007400200067006500620065007500720074003F> >>"
    raw = (
        b"%PDF-1.7\n1 0 obj << /Title (Glossary \\(terms\\)) /Parent 2 0 R >> endobj\n"
        b"3 0 obj << /Length 9 /Filter /FlateDecode >>\nstream\n"
        + zlib.compress(inner)
        + b"\nendstream\nendobj\n"
    )
    assert pdf.outline_titles(raw) == ["Glossary (terms)", "Wat gebeurt?"]


SINGLE = """<html><body><section><h1>What works for whom?</h1><p>intro</p>
<span id="document-reading"></span><section><h1>How to read this book</h1></section>
<span id="document-results/x/01"></span><section><h2>Delivery
 check</h2><h3>Files</h3></section>
<span id="document-appendices/glossary"></span><p>no heading at all</p>
</section></body></html>"""


def test_page_titles_takes_the_first_heading_after_each_document_marker():
    titles = pdf.page_titles(SINGLE, "intro")
    assert titles == {
        "intro": "What works for whom?",
        "reading": "How to read this book",
        "results/x/01": "Delivery check",
    }


def test_missing_chapters_names_each_gap():
    titles = pdf.page_titles(SINGLE, "intro")
    files = ["intro", "reading", "results/x/01", "appendices/glossary"]
    # Chromium's bookmarks lose the space at a wrapped heading's line break
    outline = ["What works for whom?", "How to read thisbook", "Delivery check"]
    assert pdf.missing_chapters(files, titles, outline) == [
        "appendices/glossary (not in the single HTML file)"
    ]
    assert pdf.missing_chapters(files[:3], titles, outline[:2]) == [
        "results/x/01 (title 'Delivery check' is not a bookmark of the PDF)"
    ]


def test_toc_files_follow_the_reading_order(tmp_path: Path):
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "A", "chapters": [{"file": "reading"}]},
            {"caption": "B", "chapters": [{"file": "c/x", "sections": [{"file": "c/y"}]}]},
        ],
    }
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    assert pdf.toc_files(tmp_path) == ["intro", "reading", "c/x", "c/y"]
    with pytest.raises(pdf.PdfError, match="_toc.yml is missing"):
        pdf.toc_files(tmp_path / "nothing")


@pytest.fixture(scope="module")
def has_chromium() -> None:
    try:
        pdf.chromium()
    except pdf.PdfError:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: .ci/run should have installed it")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


def test_print_pdf_offline_makes_bookmarks_and_blocks_the_network(has_chromium, tmp_path):
    page = tmp_path / "book.html"
    page.write_text(
        "<html><body><h1>First chapter</h1><p>text</p>"
        '<h1>Second chapter</h1><img src="https://example.org/x.png"></body></html>'
    )
    out = tmp_path / "book.pdf"
    blocked = pdf.print_pdf(page, out, timeout_ms=60_000)
    raw = out.read_bytes()
    assert raw.startswith(b"%PDF")
    assert {"First chapter", "Second chapter"} <= set(pdf.outline_titles(raw))
    assert blocked == ["https://example.org/x.png"]


@pytest.mark.pipeline
def test_built_pdf_has_every_chapter_within_the_time_limit(small):
    """After `make pdf`: the record the build wrote. (`make test` does not
    build the PDF, so this is skipped there.)"""
    record = small.book_dir / "_build" / "pdf" / "reintegration-book.json"
    if not record.exists():
        pytest.skip("the PDF is not built: run `make pdf`")
    rec = json.loads(record.read_text())
    files = pdf.toc_files(small.book_dir)
    assert rec["chapters"] == len(files)
    assert len(rec["titles"]) == len(files)
    assert rec["seconds_total"] <= pdf.TIME_LIMIT


def test_a_finding_in_the_one_page_html_stops_the_print(monkeypatch, tmp_path):
    """The identifiers are gathered beside the single-HTML build; a name from the
    exports in the page stops the build before anything is printed."""
    from reintegration.disclosure import audit

    single = tmp_path / "book" / "_build" / "singlehtml" / "intro.html"
    single.parent.mkdir(parents=True)
    single.write_text("<html><body><p>Client Jan de Vries started training.</p></body></html>")
    scanner = audit.Scanner(audit.Identifiers(names={"Jan de Vries"}))
    monkeypatch.setattr(pdf, "_scanner", lambda size: scanner)
    monkeypatch.setattr(pdf, "build_singlehtml", lambda book: single)

    def no_print(*args, **kwargs):
        raise AssertionError("printed despite a finding")

    monkeypatch.setattr(pdf, "print_pdf", no_print)
    out = tmp_path / "out.pdf"
    with pytest.raises(pdf.PdfError, match=r"1 audit finding\(s\).*name Ja\*+.*no PDF is printed"):
        pdf.build(tmp_path / "book", out, size="small")
    assert not out.exists()
    single.write_text("<html><body><p>Clients started training.</p></body></html>")
    with pytest.raises(AssertionError, match="printed despite"):
        pdf.build(tmp_path / "book", out, size="small")

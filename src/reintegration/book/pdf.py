"""The whole book as one PDF, built offline.

Two steps, both without network:

1. Jupyter Book's ``singlehtml`` builder writes every page of the table of
   contents into one HTML file (``book/_build/singlehtml/<root>.html``), with
   the same sources, executed notebooks and generated pages as the HTML book
   (nothing is executed: the book's configuration turns execution off).
2. Debian's Chromium, driven headless by Playwright, opens that file with every
   non-local request sent to a closed port (as the browser check of the HTML
   book does), waits for MathJax (served from the book itself) to typeset,
   and prints it to A4 with a document outline (PDF bookmarks) made from the
   headings.

The build then checks that the PDF contains every chapter: every page of
``book/_toc.yml`` is in the single HTML file, and the title of every page is
a bookmark of the PDF. It writes the PDF into the HTML book
(``book/_build/html/<name>.pdf``), where the introduction links to it, and a
record of its size, page titles and build time beside it.

Run: ``python -m reintegration.book.pdf --book book`` (``make pdf``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from ..core import atomic

PDF_NAME = "reintegration-book.pdf"
#: the acceptance limit for SIZE=small, in seconds
TIME_LIMIT = 180
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]


class PdfError(RuntimeError):
    """The PDF could not be built, or misses a chapter."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        raise PdfError(
            "the PDF needs Debian's Chromium, which is not installed: apt-get install chromium "
            "(.ci/run installs it)"
        )
    return found


def toc_files(book: Path) -> list[str]:
    """Every page of ``_toc.yml`` in reading order (root first)."""
    path = book / "_toc.yml"
    if not path.is_file():
        raise PdfError(f"{path} is missing: run `python -m reintegration book` first")
    toc = yaml.safe_load(path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for e in entries:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


class _Titles(HTMLParser):
    """The first heading after each ``id="document-<name>"`` marker of a
    Sphinx single-HTML page, and the page's first heading for the root."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.titles: dict[str, str] = {}
        self._doc: str | None = ""
        self._in_h = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id") or ""
        if ident.startswith("document-"):
            self._doc = ident[len("document-") :]
        if tag in _HEADINGS and self._doc is not None and self._doc not in self.titles:
            self._in_h, self._text = True, []

    def handle_endtag(self, tag: str) -> None:
        if self._in_h and tag in _HEADINGS:
            text = re.sub(r"\s+", " ", "".join(self._text)).strip().rstrip("#").strip()
            self.titles[self._doc or ""] = text
            self._in_h = False

    def handle_data(self, data: str) -> None:
        if self._in_h:
            self._text.append(data)


def page_titles(html: str, root: str) -> dict[str, str]:
    """Page name -> title, for every page of a single-HTML book."""
    parser = _Titles()
    parser.feed(html)
    titles = dict(parser.titles)
    if "" in titles:
        titles[root] = titles.pop("")
    return titles


def _pdf_string(raw: bytes) -> str:
    if raw.startswith(b"<"):
        data = bytes.fromhex(raw[1:-1].decode("ascii"))
    else:
        body = raw[1:-1]
        body = re.sub(rb"\\([nrtbf()\\])", lambda m: {b"n": b"\n", b"r": b"\r", b"t": b"\t",
                      b"b": b"\b", b"f": b"\f"}.get(m.group(1), m.group(1)), body)  # fmt: skip
        body = re.sub(rb"\\([0-7]{1,3})", lambda m: bytes([int(m.group(1), 8)]), body)
        data = body
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


_TITLE = re.compile(rb"/Title\s*(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>)")
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def outline_titles(pdf: bytes) -> list[str]:
    """The bookmark titles of a PDF (also those inside compressed object
    streams)."""
    chunks = [pdf]
    for m in _STREAM.finditer(pdf):
        try:
            chunks.append(zlib.decompress(m.group(1)))
        except zlib.error:
            continue
    titles = []
    for chunk in chunks:
        titles += [_pdf_string(m.group(1)) for m in _TITLE.finditer(chunk)]
    return titles


def _norm(text: str) -> str:
    """Casefolded, without any white space: Chromium's bookmarks lose the
    space at a line break of a wrapped heading."""
    return re.sub(r"\s+", "", text).casefold()


def missing_chapters(files: list[str], titles: dict[str, str], outline: list[str]) -> list[str]:
    """The pages of the table of contents that are not in the single HTML
    file, or whose title is not a bookmark of the PDF."""
    marks = [_norm(t) for t in outline]
    missing = []
    for name in files:
        title = titles.get(name)
        if title is None:
            missing.append(f"{name} (not in the single HTML file)")
        elif not any(_norm(title) in mark for mark in marks):
            missing.append(f"{name} (title {title!r} is not a bookmark of the PDF)")
    return missing


def build_singlehtml(book: Path) -> Path:
    """Run Jupyter Book's single-HTML builder; return the HTML file."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(book), "--builder", "singlehtml", "--all", "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise PdfError(f"jupyter-book singlehtml failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    root = toc_files(book)[0]
    out = book / "_build" / "singlehtml" / f"{root}.html"
    if not out.is_file():
        raise PdfError(f"the single-HTML build wrote no {out}")
    return out


def print_pdf(html: Path, out: Path, timeout_ms: int = 120_000) -> list[str]:
    """Print a local HTML file to PDF with headless Chromium, offline.
    Returns the requests to the network that were attempted (and blocked)."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on(
                "request",
                lambda r: (
                    blocked.append(r.url) if not r.url.startswith(("file:", "data:")) else None
                ),
            )
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            page.wait_for_function(
                "() => !window.MathJax || !window.MathJax.startup"
                " || window.MathJax.startup.promise.then(() => true)",
                timeout=timeout_ms,
            )
            page.emulate_media(media="print")
            pdf = page.pdf(
                format="A4",
                print_background=True,
                margin={"top": "15mm", "bottom": "15mm", "left": "14mm", "right": "14mm"},
                outline=True,
                tagged=True,
            )
        finally:
            browser.close()
    atomic.write_bytes(out, pdf)
    out.chmod(0o644)
    return blocked


def _scanner(size: str) -> Any:
    from ..disclosure.audit import size_scanner

    return size_scanner(size)


def _titles(book: Path, single: Path) -> tuple[list[str], dict[str, str]]:
    """The pages of the table of contents and the title of each page in the
    one-page HTML."""
    files = toc_files(book)
    return files, page_titles(single.read_text(encoding="utf-8"), files[0])


def build(book: Path, out: Path | None = None, size: str | None = None) -> dict:
    """Build the PDF of the book and check it; return the record.

    The PDF lies beside the published book (``book/_build/pdf/``), not in the
    audited folder, which stays exactly what the audit saw. With ``size`` the
    one-page HTML it prints is scanned by the release audit's identifier
    scanner first, and nothing is printed on a finding."""
    started = time.monotonic()
    out = out or book / "_build" / "pdf" / PDF_NAME
    with ThreadPoolExecutor(max_workers=1) as pool:
        # the audit's identifiers are gathered while Jupyter Book builds the page
        # (a process of its own)
        scanner = pool.submit(_scanner, size) if size is not None else None
        single = build_singlehtml(book)
        html_seconds = time.monotonic() - started
        if scanner is not None:
            from ..core.paths import Paths
            from ..disclosure.audit import scan_pages_with

            root = Paths.for_size(size).root
            findings = scan_pages_with(scanner.result(), single.parent, root)
        else:
            findings = []
        if findings:
            raise PdfError(
                f"the one-page HTML {single} has {len(findings)} audit finding(s), the "
                f"first: {findings[0]}; no PDF is printed"
            )
        # the page titles are read from the one-page HTML while Chromium prints it
        read = pool.submit(_titles, book, single)
        blocked = print_pdf(single, out)
        files, titles = read.result()
    raw = out.read_bytes()
    missing = missing_chapters(files, titles, outline_titles(raw))
    if missing:
        raise PdfError(f"{out} misses {len(missing)} chapter(s): " + "; ".join(missing))
    if blocked:
        raise PdfError(f"printing {single} tried to reach the network: {blocked[:5]}")
    record = {
        "pdf": out.name,
        "bytes": len(raw),
        "pages": len(re.findall(rb"/Type\s*/Page\b", raw)),
        "chapters": len(files),
        "titles": [titles[f] for f in files],
        "seconds_singlehtml": round(html_seconds, 1),
        "seconds_total": round(time.monotonic() - started, 1),
        "time_limit_seconds": TIME_LIMIT,
    }
    atomic.write_json(out.with_suffix(".json"), record)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reintegration.book.pdf", description=__doc__)
    ap.add_argument("--book", type=Path, default=Path("book"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--size", default=None, help="audit the one-page HTML of this SIZE first")
    ap.add_argument("--check-time", action="store_true", help=f"fail above {TIME_LIMIT} s")
    args = ap.parse_args(argv)
    try:
        rec = build(args.book, args.out, args.size)
    except PdfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"PDF: {rec['pages']} pages, {rec['chapters']} chapters, {rec['bytes'] / 1e6:.1f} MB "
        f"in {rec['seconds_total']} s"
    )
    if args.check_time and rec["seconds_total"] > TIME_LIMIT:
        print(f"error: the PDF took {rec['seconds_total']} s, over {TIME_LIMIT} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

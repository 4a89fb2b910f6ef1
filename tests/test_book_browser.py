"""The built book in a real browser with no network: no request leaves the
machine, no console or page error, and every formula is typeset by the MathJax
copy served from the book itself.

The browser sends every request that is not a local file to a proxy that does
not exist, so nothing can leave the machine; each such request is recorded
(and fails, which the page also reports as a console error). Listening to
requests instead of intercepting each one keeps the check of every page at
about 0.7 s a page.

Needs Debian's ``chromium`` (``.ci/run`` installs it); elsewhere the test is
skipped, except under CI, where a missing browser fails.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # no network: every http(s) request goes to a closed local port
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
]

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: .ci/run should have installed it")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def _pages(html: Path) -> list[Path]:
    pages = sorted(html.glob("*.html")) + sorted(html.glob("*/*.html"))
    pages += sorted(html.glob("results/*/*.html"))
    skip = {"genindex.html", "search.html"}
    return [p for p in pages if p.name not in skip and not p.parts[-2].startswith("_")]


def _refresh_target(page: Path) -> str | None:
    """Where a page forwards to with a meta refresh (read from the file, so
    that the check does not race the browser's own navigation)."""
    found = re.search(r'http-equiv="Refresh" content="\d+; url=([^"]+)"', page.read_text())
    return found.group(1) if found else None


def test_every_page_renders_offline(browser, built_book):
    problems: list[str] = []
    math_pages = 0
    pages = _pages(built_book)
    assert len(pages) >= 10, pages
    context = browser.new_context()
    current = {"name": ""}

    def on_request(request):
        if not request.url.startswith(("file://", "data:")):
            problems.append(f"{current['name']}: external request {request.url}")

    context.on("request", on_request)
    page = context.new_page()
    def report(kind: str, text: object) -> None:
        problems.append(f"{current['name']}: {kind} {text}")

    page.on("console", lambda m: m.type == "error" and report("console error", m.text))
    page.on("pageerror", lambda e: report("page error", e))
    for page_path in pages:
        current["name"] = str(page_path.relative_to(built_book))
        page.goto(page_path.as_uri(), wait_until="load")
        target = _refresh_target(page_path)
        if target:  # index.html forwards to the first page: let it arrive
            page.wait_for_url(urljoin(page_path.as_uri(), target), wait_until="load")
        n_math = page.locator(".math").count()
        if n_math:
            math_pages += 1
            page.wait_for_function(
                "document.querySelectorAll('.math').length === "
                "document.querySelectorAll('.math mjx-container').length",
                timeout=20_000,
            )
    context.close()
    assert problems == []
    assert math_pages >= 1, "no page with formulas was checked"


def test_an_external_request_is_caught(browser, tmp_path):
    """The check itself: a page that loads a script from the internet is
    reported, and the request does not get through."""
    page_file = tmp_path / "leak.html"
    page_file.write_text(
        '<html><body><script src="https://cdn.example.org/x.js"></script></body></html>'
    )
    context = browser.new_context()
    seen, failed = [], []
    context.on("request", lambda r: seen.append(r.url))
    context.on("requestfailed", lambda r: failed.append(r.url))
    page = context.new_page()
    page.goto(page_file.as_uri(), wait_until="load")
    context.close()
    assert "https://cdn.example.org/x.js" in seen
    assert "https://cdn.example.org/x.js" in failed

"""The built book in a real browser with no network: no request leaves the
machine, no console or page error, and every formula is typeset by the MathJax
copy served from the book itself.

Needs Debian's ``chromium`` (``.ci/run`` installs it); elsewhere the test is
skipped, except under CI, where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def test_every_page_renders_offline(browser, built_book):
    problems: list[str] = []
    math_pages = 0
    pages = _pages(built_book)
    assert len(pages) >= 10, pages
    for page_path in pages:
        page = browser.new_page()
        name = page_path.relative_to(built_book)

        def route(r, name=name):
            if r.request.url.startswith(("file://", "data:")):
                r.continue_()
            else:
                problems.append(f"{name}: external request {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on(
            "console",
            lambda m, n=name: m.type == "error" and problems.append(f"{n}: console error {m.text}"),
        )
        page.on("pageerror", lambda e, n=name: problems.append(f"{n}: page error {e}"))
        page.goto(page_path.as_uri(), wait_until="load")
        n_math = page.locator(".math").count()
        if n_math:
            math_pages += 1
            page.wait_for_function(
                "document.querySelectorAll('.math').length === "
                "document.querySelectorAll('.math mjx-container').length",
                timeout=20_000,
            )
        page.close()
    assert problems == []
    assert math_pages >= 1, "no page with formulas was checked"

"""The book is published only after its audit, by one rename; an interrupted
build or audit leaves the previously audited book and no new record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reintegration.core.paths import Paths
from reintegration.pipeline import publish

PLANTED = "123456782"  # passes the elfproef


def fake_build(pages: dict[str, str], *, stall: Path | None = None):
    """A stand-in for jupyter-book: writes ``pages`` into the output folder;
    with ``stall``, signals it has written half and then waits to be killed."""

    def build(source: Path, output: Path) -> Path:
        html = output / "_build" / "html"
        html.mkdir(parents=True)
        for i, (name, text) in enumerate(sorted(pages.items())):
            (html / name).write_text(text, encoding="utf-8")
            if stall is not None and i == len(pages) // 2:
                stall.write_text("half", encoding="utf-8")
                time.sleep(60)
        return html

    return build


def fake_audit(paths: Paths, html: Path) -> dict:
    found = [
        {"file": p.name, "kind": "BSN", "detail": "planted"}
        for p in html.rglob("*.html")
        if PLANTED in p.read_text(encoding="utf-8")
    ]
    return {"passed": not found, "findings": found, "scanned": {"html_pages": 1}}


def _paths(tmp_path: Path) -> Paths:
    (tmp_path / "config" / "cities").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    return Paths.for_size("small", tmp_path)


def _published_text(paths: Paths) -> str:
    return (publish.published(paths) / "index.html").read_text(encoding="utf-8")


def test_publishes_the_audited_build_and_records_its_file_list(tmp_path):
    paths = _paths(tmp_path)
    pages = {"index.html": "<p>clean book</p>", "a.html": "<p>page a</p>"}
    rec = publish.publish(paths, build=fake_build(pages), audit=fake_audit)
    assert publish.published(paths).is_symlink()
    assert _published_text(paths) == "<p>clean book</p>"
    assert rec["files"] == 2
    assert rec["file_list_sha256"] == publish.tree_digest(publish.published(paths))[0]
    assert json.loads(publish.record_path(paths).read_text()) == rec
    assert publish.verify(paths) == []
    # a file changed after the audit is caught
    (publish.published(paths) / "a.html").write_text(f"<p>{PLANTED}</p>", encoding="utf-8")
    assert "differs from the audited build" in publish.verify(paths)[0]


def test_without_symbolic_links_the_audited_folder_itself_is_published(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError("symbolic link privilege not held")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    paths = _paths(tmp_path)
    publish.publish(paths, build=fake_build({"index.html": "first"}), audit=fake_audit)
    rec = publish.publish(paths, build=fake_build({"index.html": "second"}), audit=fake_audit)
    link = publish.published(paths)
    assert not link.is_symlink() and _published_text(paths) == "second"
    assert rec["html"] == "book/_build/html" and publish.verify(paths) == []
    (link / "index.html").write_text(PLANTED, encoding="utf-8")
    assert publish.verify(paths)


def test_a_failed_audit_keeps_the_old_book_and_the_old_record(tmp_path):
    paths = _paths(tmp_path)
    publish.publish(paths, build=fake_build({"index.html": "old, audited"}), audit=fake_audit)
    record = publish.record_path(paths).read_bytes()
    leaky = fake_build({"index.html": f"<p>BSN {PLANTED}</p>"})
    with pytest.raises(publish.PublishError, match="failed with 1 finding.*\n  index.html: BSN"):
        publish.publish(paths, build=leaky, audit=fake_audit)
    assert _published_text(paths) == "old, audited"
    assert publish.record_path(paths).read_bytes() == record
    assert publish.verify(paths) == []


def test_an_exception_inside_the_audit_publishes_nothing(tmp_path):
    paths = _paths(tmp_path)

    def crash(paths: Paths, html: Path) -> dict:
        raise KeyboardInterrupt  # as an interrupted audit

    with pytest.raises(KeyboardInterrupt):
        publish.publish(paths, build=fake_build({"index.html": "x"}), audit=crash)
    assert not publish.published(paths).exists()
    assert not publish.record_path(paths).exists()
    assert publish.verify(paths)  # no record: make will build again


def test_an_unaudited_book_from_before_is_removed_not_kept(tmp_path):
    paths = _paths(tmp_path)
    old = publish.published(paths)
    old.mkdir(parents=True)
    (old / "index.html").write_text(PLANTED, encoding="utf-8")
    publish.publish(paths, build=fake_build({"index.html": "new"}), audit=fake_audit)
    assert _published_text(paths) == "new"


KILLED = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_publish import fake_build, fake_audit
from reintegration.pipeline import publish
from reintegration.core.paths import Paths
root = Path({root!r})
pages = {{f"p{{i}}.html": f"<p>{{i}} {planted}</p>" for i in range(6)}}
pages["index.html"] = "new, never audited"
build = fake_build(pages, stall=root / "half")
publish.publish(Paths.for_size("small", root), build=build, audit=fake_audit)
"""


def test_sigkill_during_the_build_then_a_rerun_never_publishes_unaudited(tmp_path):
    paths = _paths(tmp_path)
    publish.publish(paths, build=fake_build({"index.html": "old, audited"}), audit=fake_audit)
    code = KILLED.format(tests=str(Path(__file__).parent), root=str(tmp_path), planted=PLANTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "half").exists():
        assert child.poll() is None, "the build ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    # half a build lies in staging; the published book is still the audited one
    staging = list((publish.book_build(paths) / "versions").glob(".staging-*"))
    assert staging and any(PLANTED in p.read_text() for p in staging[0].rglob("*.html"))
    assert _published_text(paths) == "old, audited"
    assert publish.verify(paths) == []
    # the rerun clears the debris, audits, and refuses the planted BSN
    leaky = fake_build({"index.html": f"<p>{PLANTED}</p>"})
    with pytest.raises(publish.PublishError):
        publish.publish(paths, build=leaky, audit=fake_audit)
    assert _published_text(paths) == "old, audited"
    assert not any(s.exists() for s in staging)
    # and a clean rerun publishes, with a record naming exactly that build
    rec = publish.publish(paths, build=fake_build({"index.html": "fixed"}), audit=fake_audit)
    assert _published_text(paths) == "fixed" and publish.verify(paths) == []
    assert [v.name for v in (publish.book_build(paths) / "versions").iterdir()] == [rec["version"]]


def test_a_release_bundle_that_fails_its_audit_in_staging_is_not_published(tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    from reintegration import disclosure
    from reintegration.core import step
    from reintegration.disclosure.release_bundle import finalise

    shutil.copytree(Path(__file__).resolve().parents[1] / "config", tmp_path / "config")
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    monkeypatch.delenv("REINTEGRATION_ROOT", raising=False)
    ctx = step.start("00_city_profile", city="rotterdam", size="small", root=tmp_path)
    rows = [("f", "a")] * 12 + [("m", "a")] * 15 + [("f", "b")] * 11 + [("m", "b")] * 13
    disclosure.register(ctx).crosstab(
        "uptake",
        pd.DataFrame(rows, columns=["sex", "instrument"]),
        index="sex",
        columns="instrument",
    )
    bundle = finalise("rotterdam", "small", root=tmp_path)
    sums = (bundle / "SHA256SUMS").read_bytes()
    seen = []

    def refuse(staging: Path) -> None:
        seen.append(sorted(p.name for p in staging.rglob("*") if p.is_file()))
        raise publish.PublishError("planted finding")

    with pytest.raises(publish.PublishError, match="planted finding"):
        finalise("rotterdam", "small", root=tmp_path, check=refuse)
    assert "SHA256SUMS" in seen[0]  # the audit saw the complete staged bundle
    assert (bundle / "SHA256SUMS").read_bytes() == sums  # the published one is untouched
    assert [p.name for p in bundle.parent.iterdir()] == ["rotterdam"]  # no staging debris

"""The parts of ``make kill-check`` that decide: what counts as the same bytes,
what counts as a whole release bundle, and the kill of a whole process tree."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time

from reintegration.pipeline import killcheck


def test_run_time_fields_do_not_count_as_differences(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"rows": 10, "run_seconds": 1.5, "log": "took 3.2 s"}))
    b.write_text(json.dumps({"rows": 10, "run_seconds": 9.1, "log": "took 7 s"}))
    c.write_text(json.dumps({"rows": 11, "run_seconds": 1.5, "log": "took 3.2 s"}))
    assert killcheck.file_digest(a) == killcheck.file_digest(b)
    assert killcheck.file_digest(a) != killcheck.file_digest(c)
    raw = tmp_path / "x.csv"
    raw.write_text("seconds\n1.5\n")
    assert killcheck.file_digest(raw) == hashlib.sha256(b"seconds\n1.5\n").hexdigest()


def _bundle(root, files):
    bundle = root / "release" / "small" / "utrecht"
    bundle.mkdir(parents=True)
    lines = []
    for name, text in files.items():
        (bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (bundle / name).write_text(text)
        lines.append(f"{hashlib.sha256(text.encode()).hexdigest()}  {name}")
    (bundle / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return bundle


def test_a_bundle_is_whole_only_with_every_listed_file_and_nothing_else(tmp_path):
    bundle = _bundle(tmp_path, {"a/t.csv": "x,1\n", "README.md": "r"})
    assert killcheck.bundles_complete(tmp_path, "small") == []
    (bundle / "a" / "t.csv").write_text("x,2\n")
    (bundle / "half.tmp").write_text("")
    (bundle / "README.md").unlink()
    problems = killcheck.bundles_complete(tmp_path, "small")
    assert problems == ["utrecht: README.md is listed but missing",
                        "utrecht: half.tmp is not listed",
                        "utrecht: a/t.csv differs from its listed digest"]


def test_the_kill_reaches_every_process_under_make(tmp_path):
    marker = tmp_path / "grandchild.pid"
    script = (f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); "
              "time.sleep(60)  # reintegration audit")
    proc = subprocess.Popen(["bash", "-c", f"{sys.executable} -c \"{script}\"; sleep 60"],
                            start_new_session=True)
    out = killcheck.kill_when(proc, re.compile(r"reintegration audit"), delay=0.2, timeout=30)
    assert out["killed"] and out["stage_running_at_kill"]
    grandchild = int(marker.read_text())
    time.sleep(0.2)
    try:
        os.kill(grandchild, 0)
        state = open(f"/proc/{grandchild}/stat").read().rsplit(")", 1)[1].split()[0]
        assert state == "Z", "the stage's process survived the kill"
    except ProcessLookupError:
        pass


def test_make_ending_before_the_stage_is_reported_not_hidden():
    proc = subprocess.Popen(["true"], start_new_session=True)
    out = killcheck.kill_when(proc, re.compile(r"never-there"), delay=0.1, timeout=10)
    assert out == {"reached": False, "killed": False,
                   "note": "make ended (status 0) before the kill"}


def test_book_pages_are_compared_without_their_rendered_run_times(tmp_path):
    page = ("<p>Executed by the runner, in {t} s.</p><table><tr><th>step</th>"
            "<th>run time (s)</th><th>rows</th></tr><tr><td>03_panel</td><td>{t}</td>"
            "<td>{rows}</td></tr></table>")
    a, b, c = tmp_path / "a.html", tmp_path / "b.html", tmp_path / "c.html"
    a.write_text(page.format(t="3.3", rows="1500"))
    b.write_text(page.format(t="12.9", rows="1500"))
    c.write_text(page.format(t="3.3", rows="1501"))
    assert killcheck.file_digest(a) == killcheck.file_digest(b)
    assert killcheck.file_digest(a) != killcheck.file_digest(c)  # a data cell still counts

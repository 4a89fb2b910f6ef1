from __future__ import annotations

import os

import pytest

from reintegration.core import atomic


def test_write_if_changed_keeps_mtime_when_equal(tmp_path):
    path = tmp_path / "a.json"
    assert atomic.write_if_changed(path, "x\n") is True
    os.utime(path, (1_000_000, 1_000_000))
    assert atomic.write_if_changed(path, "x\n") is False
    assert path.stat().st_mtime == 1_000_000
    assert atomic.write_if_changed(path, "y\n") is True
    assert path.read_text() == "y\n"


def test_failed_write_leaves_target_and_no_temp(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_via_temp(path, broken)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_json_is_deterministic(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    atomic.write_json(a, {"b": 1, "a": [1, 2]})
    atomic.write_json(b, {"a": [1, 2], "b": 1})
    assert atomic.sha256_file(a) == atomic.sha256_file(b)


def test_writes_fsync_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    calls = []
    real = os.fsync

    def spy(fd):
        calls.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    atomic.write_text(tmp_path / "x.txt", "x")
    assert len(calls) == 2
    assert calls[0].startswith(".x.txt.") and calls[0].endswith(".tmp"), "the file, before"
    assert calls[1] == tmp_path.name, "then its folder"


def test_replace_dir_swaps_a_folder_in_one_step(tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    first = tmp_path / ".stage1"
    first.mkdir()
    (first / "a.csv").write_text("1")
    atomic.replace_dir(first, target)
    assert (target / "a.csv").read_text() == "1" and not first.exists()

    second = tmp_path / ".stage2"
    (second / "sub").mkdir(parents=True)
    (second / "sub" / "b.csv").write_text("2")
    renames = []
    monkeypatch.setattr(atomic.os, "rename", lambda *a: renames.append(a))
    atomic.replace_dir(second, target)
    assert renames == [], "a replacement is one exchange, not renames"
    assert (target / "sub" / "b.csv").read_text() == "2"
    assert not (target / "a.csv").exists() and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


_SWAPPER = """
import sys, tempfile
from pathlib import Path
from reintegration.core import atomic

target = Path(sys.argv[1])
version = 0
while True:
    version += 1
    staging = Path(tempfile.mkdtemp(prefix=".bundle.", dir=target.parent))
    for i in range(20):
        (staging / f"f{i:02d}.csv").write_text(f"{version}\\n" * 200)
    atomic.replace_dir(staging, target)
    print(version, flush=True)
"""


def test_a_bundle_killed_mid_swap_is_old_or_new_never_a_mix(tmp_path):
    """SIGKILL a process that keeps replacing a folder: every time, the folder
    holds all files of one version."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "bundle"
    script = tmp_path / "swap.py"
    script.write_text(_SWAPPER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (0.3, 0.45, 0.6, 0.75, 0.9):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(target)], env=env, stdout=subprocess.PIPE
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not target.exists():
            continue  # killed before the first publication
        files = sorted(target.iterdir())
        assert [f.name for f in files] == [f"f{i:02d}.csv" for i in range(20)]
        versions = {f.read_text() for f in files}
        assert len(versions) == 1, "one version, never a mix"
    stage = tmp_path / ".bundle.final"
    stage.mkdir()
    (stage / "f.csv").write_text("final")
    atomic.replace_dir(stage, target)
    assert not list(tmp_path.glob(".bundle.*")), "staging left by killed runs is removed"

from __future__ import annotations

import os

import pytest

from reintegration import atomic


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

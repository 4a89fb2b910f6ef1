"""The top-level synthetic_data/ folder: its README is committed, its data never."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def _ignored(root, relpath: str) -> bool:
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", relpath], cwd=root, capture_output=True
    )
    return out.returncode == 0


def test_readme_is_tracked_and_generated_data_ignored(root):
    assert not _ignored(root, "synthetic_data/README.md")
    for size in ("small", "full"):
        assert _ignored(root, f"synthetic_data/{size}/manifest.json")
        assert _ignored(root, f"synthetic_data/{size}/municipal/rotterdam/klanten.csv")
    assert _ignored(root, "synthetic_data/medium/anything.parquet")


def test_readme_describes_every_custody_domain_and_how_to_regenerate(root):
    text = (root / "synthetic_data" / "README.md").read_text()
    for folder in ("municipal/<city>/", "ttp/<city>/", "research/cbs/<city>/", "truth/<city>/"):
        assert folder in text, folder
    assert "make data" in text
    assert "python -m reintegration data --size small --city" in text

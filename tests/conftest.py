"""Shared fixtures. Tests marked ``pipeline`` read the outputs of
``make SIZE=small book`` (which ``make test`` runs first); they fail, rather
than skip, when those outputs are missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reintegration.core.paths import Paths

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def small() -> Paths:
    return Paths.for_size("small", ROOT)


@pytest.fixture(scope="session")
def built_book(small: Paths) -> Path:
    html = small.book_dir / "_build" / "html"
    if not (html / "index.html").exists():
        pytest.fail(f"{html}/index.html is missing: run `make SIZE=small book` first")
    return html


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    """A copy of the repository's configuration, book sources and templates in
    a temporary folder, to change without touching the working tree."""
    for folder in ("config", "notebooks", "book"):
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("_build", "results", "_generated", "_toc.yml"),
        )
    return tmp_path

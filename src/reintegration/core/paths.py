"""Where things live: the repository root and the per-size, per-city folders.

Layout (see the Reproducibility appendix of the book)::

    config/cities/<city>.yml           one file per municipality
    synthetic_data/<size>/<domain>/... generated inputs, one folder per custody domain
    build/<size>/<city>/               step descriptions (profile.json, panel.json): no
                                       counts beyond the public manifests (release)
    build/<size>/<city>/outputs/       registered, checked outputs (release)
    build/<size>/<city>/<domain>/      step outputs that stay in a custody domain; the
                                       step records with exact counts (quality.json,
                                       linkage.json, feasibility.json, estimates.json,
                                       validation.json, placebo.json) are in research/
    book/results/<city>/NN_step.ipynb  executed notebooks (build products)

Two environment variables move the generated trees, for tests and for running
the same code inside a secure environment:

``REINTEGRATION_ROOT``
    the repository root (default: found by walking up from the working
    directory to the folder that holds ``config/cities``).
``REINTEGRATION_BUILD_DIR``
    the root of ``build/`` (default: ``<root>/build``). Notebook validation
    points it at a temporary folder so it never overwrites pipeline outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SIZES = ("small", "full")


def repo_root(start: Path | None = None) -> Path:
    """Return the repository root: ``$REINTEGRATION_ROOT`` or the nearest
    ancestor of ``start`` (default: the working directory) that holds
    ``config/cities``."""
    env = os.environ.get("REINTEGRATION_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "config" / "cities").is_dir():
            return candidate
    # Fall back to the source checkout this package was imported from.
    pkg = Path(__file__).resolve()
    for candidate in pkg.parents:
        if (candidate / "config" / "cities").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the compendium root (a folder with config/cities) above {here}; "
        "set REINTEGRATION_ROOT"
    )


def check_size(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"unknown SIZE {size!r}: choose one of {', '.join(SIZES)}")
    return size


@dataclass(frozen=True)
class Paths:
    """All paths of one data size, optionally of one city."""

    size: str
    root: Path

    @classmethod
    def for_size(cls, size: str, root: Path | None = None) -> Paths:
        return cls(size=check_size(size), root=(root or repo_root()).resolve())

    # configuration and templates (public)
    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def cities_dir(self) -> Path:
        return self.config_dir / "cities"

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def book_dir(self) -> Path:
        return self.root / "book"

    def results_dir(self, city: str) -> Path:
        return self.book_dir / "results" / city

    # synthetic inputs
    @cached_property
    def data_dir(self) -> Path:
        return self.root / "synthetic_data" / self.size

    @property
    def manifest(self) -> Path:
        return self.data_dir / "manifest.json"

    def city_manifest(self, city: str) -> Path:
        return self.data_dir / "manifests" / f"{city}.json"

    def data_domain_dir(self, domain: str, city: str) -> Path:
        """``synthetic_data/<size>/<domain>/<city>``; CBS-like files sit in
        ``research/cbs/<city>``."""
        if domain == "research":
            return self.data_dir / "research" / "cbs" / city
        return self.data_dir / domain / city

    # step outputs
    @cached_property
    def build_root(self) -> Path:
        env = os.environ.get("REINTEGRATION_BUILD_DIR")
        return Path(env).resolve() if env else self.root / "build"

    @property
    def build_dir(self) -> Path:
        return self.build_root / self.size

    def city_build(self, city: str) -> Path:
        return self.build_dir / city

    def city_build_domain(self, city: str, domain: str) -> Path:
        return self.city_build(city) / domain

    def provenance_dir(self, city: str) -> Path:
        return self.city_build(city) / "provenance"

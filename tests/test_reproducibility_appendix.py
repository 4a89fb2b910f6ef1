"""The Reproducibility appendix shows, per executed notebook, the full commit,
the working-tree state, parameters, seeds, run time and the SHA-256 of every
input and output; every installed package; each release checksum file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from reintegration.book import generate
from reintegration.core import atomic, provenance
from reintegration.core.config import list_cities, load_steps
from reintegration.core.paths import Paths

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _record(city: str, step: str, seeds: dict | None) -> dict:
    rec = {
        "step": step,
        "city": city,
        "parameters": {"city": city, "size": "small"},
        "git": {"commit": COMMIT, "dirty": True},
        "inputs": [{"path": f"notebooks/{step}.ipynb", "domain": "public", "sha256": "a" * 64}],
        "outputs": [
            {"path": f"build/small/{city}/x.json", "domain": "release", "sha256": "b" * 64}
        ],
        "runtime_seconds": 12.34,
    }
    if seeds is not None:
        rec["seeds"] = seeds
    return rec


def test_seeds_are_found_at_any_depth(tmp_path: Path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "a.yml").write_text(
        yaml.safe_dump({"seed": 7, "x": {"y": {"bootstrap_seed": 9, "seeds": 3}}})
    )
    assert provenance.seeds(tmp_path) == {
        "config/a.yml: seed": 7,
        "config/a.yml: x.y.bootstrap_seed": 9,
    }


def test_the_repository_configuration_declares_its_seeds(root: Path):
    seeds = provenance.seeds(root)
    assert (
        seeds["config/synthetic.yml: seed"]
        == yaml.safe_load((root / "config" / "synthetic.yml").read_text())["seed"]
    )
    assert any(k.startswith("config/effects.yml") for k in seeds)


def test_every_installed_package_is_listed():
    versions = provenance.all_package_versions()
    assert {"pandas", "numpy", "jupyter-book", "pytest"} <= set(versions)
    assert len(versions) > len(provenance.KEY_PACKAGES)
    assert list(versions) == sorted(versions)


def test_appendix_shows_every_run_in_full(tmp_root: Path):
    paths = Paths.for_size("small", tmp_root)
    city, steps = list_cities(tmp_root)[0], load_steps(tmp_root)
    for i, s in enumerate(steps[:2]):
        seeds = {"config/synthetic.yml: seed": 5} if i == 0 else None
        atomic.write_json(
            paths.provenance_dir(city) / f"{s['name']}.json", _record(city, s["name"], seeds)
        )
    text = generate.provenance_markdown(paths)
    assert f"`{COMMIT}`" in text  # the full commit, not a prefix
    assert "uncommitted changes" in text
    assert f"`city={city}`, `size=small`" in text
    assert "12.3" in text
    assert f"| `notebooks/{steps[0]['name']}.ipynb` | input | public | `{'a' * 64}` |" in text
    assert f"| `build/small/{city}/x.json` | output | release | `{'b' * 64}` |" in text
    # one of the two records predates seeds: said so, and the configuration's seeds shown
    assert "1 of 2 records predate the recording of seeds" in text
    assert "config/synthetic.yml: seed" in text


def test_release_checksum_files_are_shown_whole(tmp_root: Path):
    paths = Paths.for_size("small", tmp_root)
    cities = list_cities(tmp_root)
    sums = "1" * 64 + "  06_effects/x.json\n" + "2" * 64 + "  README.md\n"
    folder = tmp_root / "release" / "small" / cities[0]
    folder.mkdir(parents=True)
    (folder / "SHA256SUMS").write_text(sums)
    text = generate.release_checksums_markdown(paths)
    assert sums.rstrip("\n") in text
    assert hashlib.sha256(sums.encode()).hexdigest() in text
    assert "2 files" in text
    assert text.count("No release bundle yet.") == len(cities) - 1

"""Every executed notebook says what produced it."""

from __future__ import annotations

import re
import subprocess

import nbformat
import pytest

from reintegration.core.atomic import sha256_file
from reintegration.core.config import list_cities, load_city, load_steps
from reintegration.core.provenance import git_state, read_record
from reintegration.pipeline.runner import retitle


def test_git_state_in_this_checkout(root):
    state = git_state(root)
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) or state["commit"] == "unknown"


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": None}


def test_retitle_names_the_city():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# City profile\n\nText.")]
    retitle(nb, "Den Haag", "City profile", landing=True)
    assert nb.cells[0].source == "# Den Haag\n\nText."
    nb.cells = [nbformat.v4.new_markdown_cell("Intro only")]
    retitle(nb, "Den Haag", "Panel", landing=False)
    assert nb.cells[0].source == "# Den Haag: Panel"


def _records(small):
    for city in list_cities(small.root):
        for s in load_steps(small.root):
            yield city, s, small.provenance_dir(city) / f"{s['name']}.json"


@pytest.mark.pipeline
def test_every_run_has_a_record_whose_checksums_hold(small, built_book):
    for city, s, path in _records(small):
        rec = read_record(path)
        assert rec["parameters"] == {"city": city, "size": "small"}
        assert rec["role"] == s["role"] and rec["kernel"] == "reintegration"
        if rec["git"]["commit"] != "unknown":
            subprocess.run(
                ["git", "-C", str(small.root), "cat-file", "-e", rec["git"]["commit"]],
                check=True,
            )
        paths = [i["path"] for i in rec["inputs"]]
        assert f"notebooks/{s['name']}.ipynb" in paths
        assert f"config/cities/{city}.yml" in paths
        for item in rec["inputs"] + rec["outputs"]:
            assert sha256_file(small.root / item["path"]) == item["sha256"], item["path"]
        assert rec["runtime_seconds"] > 0


@pytest.mark.pipeline
def test_executed_notebooks_end_with_their_provenance(small, built_book):
    for city, s, path in _records(small):
        rec = read_record(path)
        nb = nbformat.read(small.results_dir(city) / f"{s['name']}.ipynb", as_version=4)
        last = nb.cells[-1]
        assert last.cell_type == "markdown" and last.source.startswith("## Provenance")
        assert rec["git"]["commit"][:12] in last.source
        assert nb.metadata["reintegration"] == {"step": s["name"], "city": city, "size": "small"}
        html = (built_book / "results" / city / f"{s['name']}.html").read_text()
        assert "Provenance" in html


@pytest.mark.pipeline
def test_reproducibility_appendix_lists_every_run(small, built_book):
    html = (built_book / "appendices" / "reproducibility.html").read_text()
    for city, _step, _ in _records(small):
        assert f"<td><p>{load_city(city, small.root)['display_name']}</p></td>" in html
    assert "pandas" in html and "linearmodels" in html


def config_inputs_problems(paths, city: str, step: dict) -> list[str]:
    """What is wrong with the config inputs of one step's record: a declared
    config file it does not list, or a config file the step read (its I/O log)
    that the record does not list."""
    from reintegration.core.step import read_io_log

    rec = read_record(paths.provenance_dir(city) / f"{step['name']}.json")
    listed = {i["path"] for i in rec["inputs"] if i["path"].startswith("config/")}
    expected = {f"config/cities/{city}.yml", "config/steps.yml", *step["reads"]}
    read = {
        str(p.relative_to(paths.root))
        for p in map(type(paths.root), read_io_log(paths, city, step["name"])["reads"])
        if paths.config_dir in p.parents
    }
    return [f"{step['name']}: declared {f} not listed" for f in sorted(expected - listed)] + [
        f"{step['name']}: read {f} not listed" for f in sorted(read - listed)
    ]


@pytest.mark.pipeline
def test_every_steps_provenance_lists_every_config_file_it_read(small, built_book):
    problems = []
    for city in list_cities(small.root):
        for s in load_steps(small.root):
            problems += [f"{city}/{p}" for p in config_inputs_problems(small, city, s)]
    assert not problems
    rec = read_record(small.provenance_dir("rotterdam") / "06_effects.json")
    paths = {i["path"] for i in rec["inputs"]}
    assert {"config/effects.yml", "config/disclosure.yml"} <= paths

"""Notebook templates: declared, parameterised, committed without outputs."""

from __future__ import annotations

import nbformat
import pytest

from reintegration.book.notebook_tags import (
    HIDE,
    HIDING,
    NEEDS_OUTPUT,
    drop_empty_sections,
    hides_source,
    tag_templates,
)
from reintegration.core.config import load_steps


def _templates(root):
    return sorted((root / "notebooks").glob("*.ipynb"))


def test_every_step_has_a_template_and_every_template_a_step(root):
    declared = {s["name"] for s in load_steps(root)}
    assert {p.stem for p in _templates(root)} == declared


@pytest.mark.parametrize("name", [s["name"] for s in load_steps()])
def test_template_has_parameters_and_a_title(root, name):
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    namespace: dict = {}
    exec(tagged[0].source, namespace)
    assert {"city", "size"} <= set(namespace)
    assert namespace["size"] == "small"
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert first_md.source.startswith("# ")
    assert nb.metadata["kernelspec"]["name"] == "reintegration"


@pytest.mark.parametrize("name", [s["name"] for s in load_steps()])
def test_template_is_committed_without_outputs(root, name):
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        checked = "NBVAL_CHECK_OUTPUT" in cell.source
        if checked:
            assert cell.outputs, f"cell {i} is checked by nbval but has no stored output"
        else:
            assert not cell.outputs, f"cell {i} carries outputs; strip them"
            assert cell.execution_count is None, f"cell {i} carries an execution count"


@pytest.mark.parametrize("name", [s["name"] for s in load_steps()])
def test_every_code_cell_is_hidden_in_the_book(root, name):
    """The book shows no code: every code cell carries a tag that keeps its
    source out of the rendered page (set by reintegration.book.notebook_tags)."""
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    shown = [i for i, c in enumerate(nb.cells) if not hides_source(c)]
    assert shown == [], (
        f"code cells {shown} of notebooks/{name}.ipynb show their source in the book: "
        "run `python -m reintegration.book.notebook_tags notebooks/*.ipynb`"
    )


def test_tagging_adds_the_tag_once_and_keeps_other_tags(tmp_root):
    template = tmp_root / "notebooks" / "06_effects.ipynb"
    nb = nbformat.read(template, as_version=4)
    for cell in nb.cells:  # as a new template would be: no hiding tags
        tags = [t for t in cell.metadata.get("tags", []) if t not in HIDING]
        cell.metadata["tags"] = tags
    nb.cells[2].metadata["tags"] = ["remove-cell"]
    nbformat.write(nb, template)
    code = sum(c.cell_type == "code" for c in nb.cells)
    assert tag_templates([template]) == {template: code - 1}
    assert tag_templates([template]) == {template: 0}
    again = nbformat.read(template, as_version=4)
    assert again.cells[1].metadata["tags"] == ["parameters", HIDE]
    assert again.cells[2].metadata["tags"] == ["remove-cell"]
    assert all(hides_source(c) for c in again.cells)


def test_a_section_without_output_is_dropped_from_the_page():
    """A markdown cell tagged needs-output goes when the next code cell shows
    nothing (a city without a roll-out), and stays when it shows something."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    intro = new_markdown_cell("## Roll-out event study", metadata={"tags": [NEEDS_OUTPUT]})
    other = new_markdown_cell("## Subgroups", metadata={"tags": [NEEDS_OUTPUT]})
    plain = new_markdown_cell("## Reading these results")
    shown = new_code_cell("print(1)", outputs=[new_output("stream", text="1\n")])
    nb = new_notebook(cells=[intro, new_code_cell("pass"), other, shown, plain])
    assert drop_empty_sections(nb) == [0]
    assert "remove-cell" in nb.cells[0].metadata["tags"]
    assert "remove-cell" not in nb.cells[2].metadata["tags"]
    assert "tags" not in nb.cells[4].metadata


@pytest.mark.parametrize("name", ["05_feasibility", "06_effects", "09_validation"])
def test_design_sections_are_tagged_to_adapt_to_the_city(root, name):
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [
        c.source.splitlines()[0] for c in nb.cells if NEEDS_OUTPUT in c.metadata.get("tags", [])
    ]
    expected = {
        "05_feasibility": [
            "Balance across the instrument: the take-up predicted from the characteristics"
        ],
        "06_effects": ["## Roll-out event study", "## Subgroups",
                       "## How strong would a hidden factor have to be?"],
        "09_validation": [
            "## Coverage",
            "## Bias",
            "## Placebo roll-outs",
            "## Estimates with their true values",
            "## Who benefits: group effects against their truth",
            "## Sensitivity at the true strength of the hidden factor",
            "## Who benefits: predicted against true effects per starter",
            "## Advice for case managers: the rule against its truth",
        ],
    }
    assert tagged == expected[name]

"""Notebook templates: declared, parameterised, committed without outputs."""

from __future__ import annotations

import nbformat
import pytest

from reintegration.config import load_steps


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

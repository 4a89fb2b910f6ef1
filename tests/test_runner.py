"""The runner's handling of executed and failed notebooks (without a kernel)."""

from __future__ import annotations

import stat
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from reintegration.core import custody
from reintegration.core.paths import Paths
from reintegration.pipeline import runner


def _template(tmp_path: Path) -> Path:
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# T"), new_code_cell("city = 'x'"), new_code_cell("1 + 1")]
    nb.cells[1].metadata["tags"] = ["parameters"]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    return path


def _executed(template: Path) -> nbformat.NotebookNode:
    """What papermill returns: an injected cell with a random id, timings."""
    nb = nbformat.read(template, as_version=4)
    injected = new_code_cell("city = 'utrecht'")  # nbformat gives it a random id
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    for cell in nb.cells:
        cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "duration": 0.1}
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    nb.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "duration": 1.2}
    nb.cells.append(new_markdown_cell("## Provenance"))
    return nb


def test_executed_notebooks_are_byte_identical_across_runs(tmp_path):
    template = _template(tmp_path)
    first = runner.normalise_executed(_executed(template), template)
    second = runner.normalise_executed(_executed(template), template)
    assert nbformat.writes(first) == nbformat.writes(second)
    ids = [c["id"] for c in first.cells]
    kept = [c["id"] for c in nbformat.read(template, as_version=4).cells]
    assert ids[:2] == kept[:2] and ids[3] == kept[2], "template cells keep their ids"
    assert ids[2] == "run-parameters-002" and ids[4] == "run-cell-004"
    assert "papermill" not in first.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in first.cells)
    nbformat.validate(first)


def _printed(template: Path, pieces: list[list[tuple[str, str]]]) -> nbformat.NotebookNode:
    """An executed notebook whose last cell printed ``pieces``: one list of
    (stream, text) messages per output run, with a figure between runs."""
    nb = _executed(template)
    cell = nb.cells[3]
    for k, run in enumerate(pieces):
        if k:
            cell.outputs.append(new_output("display_data", data={"text/plain": f"figure {k}"}))
        cell.outputs += [new_output("stream", name=n, text=t) for n, t in run]
    return nb


def test_a_printed_line_cut_in_two_messages_gives_the_same_bytes(tmp_path):
    # seen on a loaded machine: the line and its line end came as two messages
    template = _template(tmp_path)
    whole = [[("stdout", "a\nquality: quality.json (research)\n")], [("stdout", "b\n")]]
    cut = [
        [("stdout", "a\n"), ("stdout", "quality: quality.json (research)"), ("stdout", "\n")],
        [("stdout", "b"), ("stdout", "\n")],
    ]
    one = nbformat.writes(runner.normalise_executed(_printed(template, whole), template))
    two = nbformat.writes(runner.normalise_executed(_printed(template, cut), template))
    assert one == two
    outputs = nbformat.reads(two, as_version=4).cells[3].outputs
    assert [o["output_type"] for o in outputs] == ["stream", "display_data", "stream"]
    assert outputs[0]["text"] == "a\nquality: quality.json (research)\n"


def test_streams_are_joined_only_with_a_neighbour_of_the_same_stream(tmp_path):
    template = _template(tmp_path)
    mixed = [[("stdout", "x\n"), ("stderr", "warn\n"), ("stdout", "y\n")], [("stdout", "z\n")]]
    nb = runner.normalise_executed(_printed(template, mixed), template)
    got = [(o["output_type"], o.get("name"), o.get("text")) for o in nb.cells[3].outputs]
    assert got == [
        ("stream", "stdout", "x\n"),
        ("stream", "stderr", "warn\n"),
        ("stream", "stdout", "y\n"),
        ("display_data", None, None),
        ("stream", "stdout", "z\n"),
    ]


def test_failed_runs_are_kept_owner_only_in_the_domain_of_the_role(tmp_path):
    paths = Paths.for_size("small", tmp_path)
    assert custody.failed_dir(paths, "utrecht", "municipality") == (
        paths.city_build("utrecht") / "municipal" / "failed"
    )
    assert custody.failed_dir(paths, "utrecht", "linking_unit").parent.name == "ttp"
    assert custody.failed_dir(paths, "utrecht", "researcher").parent.name == "research"
    assert custody.failed_dir(paths, "utrecht", "validator").parent.name == "truth"
    folder = custody.failed_dir(paths, "utrecht", "researcher")
    runner._private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("03_panel.ipynb", "04_describe.ipynb"):
        (folder / name).write_text("{}")
    legacy = paths.city_build("utrecht") / "failed" / "03_panel.ipynb"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("{}")
    assert len(custody.failed_notebooks(paths, "utrecht")) == 3
    runner.remove_failed(paths, "utrecht", "03_panel")
    assert [p.name for p in custody.failed_notebooks(paths, "utrecht")] == ["04_describe.ipynb"]


class _Exc:
    def __init__(self, ename: str, evalue: str):
        self.ename, self.evalue = ename, evalue


def test_only_the_compendiums_own_messages_reach_the_log():
    own = runner._safe_evalue(_Exc("ExportError", "x.csv: row 3, column 'a': not a date"))
    assert own.endswith("not a date")
    other = runner._safe_evalue(_Exc("KeyError", "'Jansen'"))
    assert "Jansen" not in other and "failed notebook" in other

"""Run one step for one city: papermill with a named kernel, then provenance.

The Makefile calls this through ``python -m reintegration run-step``. The
parameters are written as YAML to ``build/<size>/<city>/params/<step>.yml`` and
handed to papermill from that file, with an explicit kernel name. The executed
notebook is written to a temporary file and renamed into
``book/results/<city>/<step>.ipynb`` only when every cell succeeded; a failed
run is kept in ``build/<size>/<city>/failed/`` and the error names the cell.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from . import atomic, provenance
from . import kernel as kernel_launch
from .config import get_step, load_city
from .paths import Paths
from .step import read_io_log

KERNEL = "reintegration"


class StepFailed(RuntimeError):
    """A step's notebook raised in one of its cells."""


def parameters_for(step: str, city: str, size: str) -> dict[str, Any]:
    return {"city": city, "size": size}


def run_step(
    step: str, *, city: str, size: str, root: Path | None = None, kernel: str = KERNEL
) -> Path:
    """Execute ``notebooks/<step>.ipynb`` for ``city`` and return the path of the
    executed notebook."""
    import papermill  # heavy import: only when a step really runs

    paths = Paths.for_size(size, root)
    spec = get_step(step, paths.root)
    cfg = load_city(city, paths.root)
    template = paths.notebooks_dir / f"{step}.ipynb"
    if not template.exists():
        raise FileNotFoundError(f"step {step!r} is declared but {template} does not exist")
    target = paths.results_dir(city) / f"{step}.ipynb"
    params_file = paths.city_build(city) / "params" / f"{step}.yml"
    atomic.write_text(params_file, yaml.safe_dump(parameters_for(step, city, size)))
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))

    tmp = target.parent / f".{step}.running.ipynb"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    os.environ["REINTEGRATION_ROOT"] = str(paths.root)  # the kernel inherits it
    started = time.perf_counter()
    launch = kernel_launch.prepare(paths, step, city, size, spec["role"])
    try:
        papermill.execute_notebook(
            str(template),
            str(tmp),
            parameters=params,
            kernel_name=kernel,
            cwd=str(paths.notebooks_dir),
            progress_bar=False,
            kernel_manager_class=launch["manager"],
        )
    except papermill.PapermillExecutionError as exc:
        failed = paths.city_build(city) / "failed" / f"{step}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed)
        raise StepFailed(
            f"step {step} for {city} failed in cell {exc.exec_count} "
            f"({exc.ename}: {exc.evalue}); the executed notebook is kept at {failed}"
        ) from None
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise StepFailed(kernel_launch.failure(step, city, launch["log"], exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        kernel_launch.remove_sockets(launch["sockets"])
    runtime = time.perf_counter() - started

    io = read_io_log(paths, city, step)
    inputs = [
        provenance.file_entry(template, paths.root, "public"),
        provenance.file_entry(Path(cfg["_path"]), paths.root, "public"),
        provenance.file_entry(paths.config_dir / "steps.yml", paths.root, "public"),
    ]
    inputs += [
        provenance.file_entry(Path(p), paths.root, dom) for p, dom in sorted(io["reads"].items())
    ]
    outputs = [
        provenance.file_entry(Path(p), paths.root, dom)
        for p, dom in sorted(io["writes"].items())
        if Path(p).exists()
    ]
    record = {
        "step": step,
        "title": spec["title"],
        "city": city,
        "size": size,
        "role": spec["role"],
        "kernel": kernel,
        "parameters": params,
        "git": provenance.git_state(paths.root),
        "environment": provenance.environment(),
        "inputs": inputs,
        "outputs": outputs,
        "runtime_seconds": round(runtime, 2),
        "custody": kernel_launch.custody_record(launch["custody"], paths.root),
    }
    atomic.write_json(paths.provenance_dir(city) / f"{step}.json", record)

    nb = nbformat.read(tmp, as_version=4)
    for cell in nb.cells:  # the book shows the injected parameters, not the defaults
        if "parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [*cell.metadata["tags"], "remove-cell"]
    retitle(nb, cfg["display_name"], spec["title"], landing=step == first_city_step(paths))
    nb.cells.append(nbformat.v4.new_markdown_cell(provenance.markdown_cell(record)))
    nb.metadata["reintegration"] = {"step": step, "city": city, "size": size}
    atomic.write_text(target, nbformat.writes(nb))
    tmp.unlink(missing_ok=True)
    return target


def first_city_step(paths: Paths) -> str:
    from .config import load_steps

    return load_steps(paths.root)[0]["name"]


_HEADING = re.compile(r"^# .*$", re.MULTILINE)


def retitle(nb: Any, city_display: str, title: str, *, landing: bool) -> None:
    """Give the page its city: the landing page is titled with the city's
    name, the others '<City>: <step title>'. The template's first level-1
    heading is replaced; one is added when the template has none."""
    heading = f"# {city_display}" if landing else f"# {city_display}: {title}"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _HEADING.search(cell.source):
            cell.source = _HEADING.sub(heading, cell.source, count=1)
            return
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(heading))


CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def refresh_checked_outputs(
    templates: list[Path], *, root: Path | None = None, kernel: str = KERNEL
) -> dict[Path, int]:
    """Execute the templates with their default parameters and store back only
    the outputs of cells marked ``# NBVAL_CHECK_OUTPUT`` (the outputs notebook
    validation compares against); every other output is stripped.

    Every declared step up to the last one asked for runs, in step order, in
    one temporary build folder, so a template finds the outputs of the steps
    before it (as under nbval); only the templates asked for are rewritten.
    Returns, per template, the number of cells whose stored output was set."""
    import tempfile

    import papermill

    from .config import load_steps

    paths = Paths.for_size("small", root)
    wanted = {Path(t).resolve() for t in templates}
    order = [paths.notebooks_dir / f"{s['name']}.ipynb" for s in load_steps(paths.root)]
    unknown = wanted - set(order)
    if unknown:
        raise FileNotFoundError(f"not a declared step's template: {sorted(map(str, unknown))}")
    last = max(order.index(t) for t in wanted)
    kept: dict[Path, int] = {}
    env_before = os.environ.get("REINTEGRATION_BUILD_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REINTEGRATION_BUILD_DIR"] = tmp
        try:
            for template in order[: last + 1]:
                executed = Path(tmp) / template.name
                papermill.execute_notebook(
                    str(template),
                    str(executed),
                    kernel_name=kernel,
                    cwd=str(template.parent),
                    progress_bar=False,
                )
                if template in wanted:
                    kept[template] = _store_checked(template, executed)
        finally:
            if env_before is None:
                os.environ.pop("REINTEGRATION_BUILD_DIR", None)
            else:
                os.environ["REINTEGRATION_BUILD_DIR"] = env_before
    return kept


def _store_checked(template: Path, executed: Path) -> int:
    ran = {c.get("id"): c for c in nbformat.read(executed, as_version=4).cells}
    nb = nbformat.read(template, as_version=4)
    kept = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARK in cell.source:
            # nbval needs the execution count on a reference cell with outputs
            cell.outputs = ran[cell.get("id")].outputs
            cell.execution_count = ran[cell.get("id")].execution_count
            kept += 1
        else:
            cell.outputs = []
            cell.execution_count = None
    atomic.write_text(template, nbformat.writes(nb))
    return kept

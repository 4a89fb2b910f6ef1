"""Run one step for one city: papermill with a named kernel, then provenance.

The Makefile calls this through ``python -m reintegration run-step``. The
parameters are written as YAML to ``build/<size>/<city>/params/<step>.yml`` and
handed to papermill from that file, with an explicit kernel name. The executed
notebook is written to a temporary file in an owner-only folder of the step's
person-level domain (``build/<size>/<city>/<domain>/failed/``, see
:data:`FAILED_DOMAIN`) and written to ``book/results/<city>/<step>.ipynb`` only
when every cell succeeded, with deterministic cell ids and without timing
metadata (:func:`normalise_executed`). A failed run stays in that folder,
readable by its owner only, until the step succeeds; the error names the cell.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ..book import notebook_tags
from ..core import atomic, provenance
from ..core.config import get_step, load_city
from ..core.custody import failed_dir, failed_notebooks
from ..core.paths import Paths
from ..core.step import read_io_log
from . import kernel as kernel_launch

KERNEL = "reintegration"


class StepFailed(RuntimeError):
    """A step's notebook raised in one of its cells."""


def parameters_for(step: str, city: str, size: str) -> dict[str, Any]:
    return {"city": city, "size": size}


def check_logged_access(
    spec: dict[str, Any], city: str, cfg: dict[str, Any], paths: Paths, io: dict
) -> None:
    """Fail a step whose log of reads and writes names a file its role may
    not read or write. The step context logs only what it allowed, but the
    log lies in a folder the kernel can write: code in a step could name a
    hidden file there and have the runner, outside the sandbox, record its
    SHA-256 in the provenance (a way to test a guess of its content)."""
    from ..core import custody
    from ..core.step import step_domains

    domains = step_domains(paths, cfg.get("data_roots"), spec, city)
    for mode, logged in (("read", io["reads"]), ("write", io["writes"])):
        for path in sorted(logged):
            try:
                custody.check_access(spec["role"], path, mode, domains)
            except custody.CustodyError as exc:
                raise StepFailed(
                    f"step {spec['name']} for {city}: its log of the files it used lists one "
                    f"its role may not {mode} ({exc}); nothing of the run is recorded"
                ) from None


def check_config_reads(spec: dict[str, Any], city: str, paths: Paths, reads: dict) -> None:
    """Fail a step that read a config file config/steps.yml does not list
    under its ``reads`` (its make rule would miss that prerequisite)."""
    allowed = {f"config/cities/{city}.yml", "config/steps.yml", *spec["reads"]}
    config_dir = paths.config_dir.resolve()
    for path in sorted(reads):
        p = Path(path)
        if config_dir not in p.parents:
            continue
        rel = p.relative_to(paths.root.resolve()).as_posix()
        if rel not in allowed:
            raise StepFailed(
                f"step {spec['name']} for {city} read {rel}, which config/steps.yml does not "
                "list under its reads"
            )


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

    private = failed_dir(paths, city, spec["role"])
    _private_dir(private)
    tmp = private / f".{step}.running.ipynb"
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
            # written once at the end (with the error, when a cell fails), not
            # after every cell: nobody reads it while it runs
            request_save_on_cell_execute=False,
            kernel_manager_class=launch["manager"],
        )
    except papermill.PapermillExecutionError as exc:
        failed = private / f"{step}.ipynb"
        os.chmod(tmp, 0o600)
        os.replace(tmp, failed)
        raise StepFailed(
            f"step {step} for {city} failed in cell {exc.exec_count} "
            f"({exc.ename}{_safe_evalue(exc)}); the executed notebook is kept, readable by "
            f"its owner only, at {failed}"
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
    check_logged_access(spec, city, cfg, paths, io)
    check_config_reads(spec, city, paths, io["reads"])
    fixed = [template, Path(cfg["_path"]), paths.config_dir / "steps.yml"]
    inputs = [provenance.file_entry(p, paths.root, "public") for p in fixed]
    seen = {str(p.resolve()) for p in fixed}
    inputs += [
        provenance.file_entry(Path(p), paths.root, dom)
        for p, dom in sorted(io["reads"].items())
        if p not in seen
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
        "seeds": provenance.seeds(paths.root),
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
    notebook_tags.drop_empty_sections(nb)  # no text about a section the city does not have
    retitle(nb, cfg["display_name"], spec["title"], landing=step == first_city_step(paths))
    nb.cells.append(nbformat.v4.new_markdown_cell(provenance.markdown_cell(record)))
    nb.metadata["reintegration"] = {"step": step, "city": city, "size": size}
    normalise_executed(nb, template)
    atomic.write_text(target, nbformat.writes(nb))
    tmp.unlink(missing_ok=True)
    remove_failed(paths, city, step)
    return target


#: exceptions whose messages the compendium writes itself and which never quote a value
_OWN_ERRORS = ("ExportError", "ConfigError", "CustodyError", "StepFailed")


def remove_failed(paths: Paths, city: str, step: str) -> None:
    """A successful run removes the failed notebooks of earlier runs of ``step``."""
    for path in failed_notebooks(paths, city):
        if path.name in (f"{step}.ipynb", f".{step}.running.ipynb"):
            path.unlink(missing_ok=True)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _safe_evalue(exc: Any) -> str:
    """The exception's message when the compendium wrote it (it names file, row
    and column, never a value); other messages may quote data and stay in the
    owner-only notebook."""
    if exc.ename in _OWN_ERRORS or exc.ename.endswith((".ExportError", ".CustodyError")):
        return f": {exc.evalue}"
    return ": the message is in the failed notebook"


#: papermill's per-cell and per-notebook timing metadata: removed, so two runs
#: give the same bytes; the run time is kept once, in the provenance cell
_TIMING_KEYS = ("papermill", "execution")


def normalise_executed(nb: Any, template: Path) -> Any:
    """Make an executed notebook byte-reproducible: cells added by the run
    (papermill's injected parameters, the provenance cell) get ids derived
    from their position instead of random ones, timing metadata is removed,
    and a cell's consecutive stream outputs of one stream are joined (see
    :func:`join_split_streams`). The one run-time field left is the run time
    in the provenance cell."""
    known = {c.get("id") for c in nbformat.read(template, as_version=4).cells}
    used: set[str] = set()
    for i, cell in enumerate(nb.cells):
        cid = cell.get("id")
        if cid not in known or cid in used:
            tag = "parameters" if "injected-parameters" in cell.metadata.get("tags", []) else "cell"
            cid = f"run-{tag}-{i:03d}"
            cell["id"] = cid
        used.add(cid)
        for key in _TIMING_KEYS:
            cell.metadata.pop(key, None)
        if cell.get("outputs"):
            cell["outputs"] = join_split_streams(cell["outputs"])
    for key in _TIMING_KEYS:
        nb.metadata.pop(key, None)
    return nb


def join_split_streams(outputs: list[Any]) -> list[Any]:
    """Join consecutive stream outputs of the same stream into one.

    The kernel sends what a cell prints in pieces, cut wherever its output
    thread's flush timer fires (every 0.2 s); ``print`` writes its text and
    its line end in two writes, so on a busy machine one line can arrive as
    two messages, and the executed notebook holds two outputs where a quiet
    run holds one. The text is the same; only the cut depends on timing, so
    joining neighbours gives the same bytes from every run. Outputs of
    another kind, or of the other stream, stay where they are."""
    joined: list[Any] = []
    for out in outputs:
        last = joined[-1] if joined else None
        if (
            last is not None
            and out.get("output_type") == "stream"
            and last.get("output_type") == "stream"
            and out.get("name") == last.get("name")
        ):
            last["text"] = _text(last["text"]) + _text(out["text"])
            continue
        joined.append(out)
    return joined


def _text(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def first_city_step(paths: Paths) -> str:
    from ..core.config import load_steps

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

    from ..core.config import load_steps

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

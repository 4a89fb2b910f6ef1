"""The pipeline as one graph of tasks: what make and ``reintegration run`` build.

Every file the pipeline makes is the target of one :class:`Task`: a city's
synthetic data, the merged data manifest, each executed notebook (city x
step), each city's release bundle, the release audit and the audited book.
A task lists its prerequisites (files, or variables that stand for lists of
files) and the commands that make its target (arguments of ``python -m``).

Two things read this graph, so they agree on what is out of date:

- :mod:`reintegration.pipeline.makefile` renders it as make rules
  (``build/<size>/steps.mk``, included by the Makefile);
- :mod:`reintegration.pipeline.run` (``python -m reintegration run``) resolves the
  variables itself and runs the tasks, without make or a shell, on Linux,
  macOS and Windows.

The rule is make's: a target is rebuilt when it is missing or older than one
of its prerequisites; a task runs after the tasks whose targets it needs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import list_cities, load_steps, validate_all
from ..core.paths import Paths
from .depgraph import module_files, step_sources

#: make's variables, also known to the runner (see :func:`resolver`)
RESULTS, DATA, RELEASE, BUILD = "$(RESULTS)", "$(DATA)", "$(RELEASE)", "$(BUILD)"
SIZE, KERNEL = "$(SIZE)", "$(KERNEL)"
#: commands are arguments of the interpreter: ``$(PY) -m reintegration ...`` in make
PKG = "reintegration"
KERNEL_NAME = "reintegration"
BOOK_PDF = "book/_build/pdf/reintegration-book.pdf"
#: the record of the book's generated pages (``python -m reintegration book``)
PAGES_RECORD = "book_pages.json"
#: one BLAS thread per step (two cores, two steps at a time)
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Task:
    """One target of the pipeline and how to make it."""

    name: str  # e.g. "utrecht/03_panel", "data/utrecht", "release/utrecht", "book"
    kind: str  # data, manifest, step, release, audit, book
    target: str
    prereqs: tuple[str, ...]
    commands: tuple[tuple[str, ...], ...]  # each the arguments of the interpreter
    city: str | None = None
    step: str | None = None
    one_thread: bool = False  # run with ONE_THREAD in the environment
    touch: bool = False  # touch the target after the commands (make sees it as new)


@dataclass(frozen=True)
class Graph:
    """The tasks in an order where every task comes after the ones it needs,
    and the variables their prerequisites use (name -> tokens)."""

    cities: tuple[str, ...]
    steps: tuple[str, ...]
    variables: dict[str, tuple[str, ...]]
    tasks: tuple[Task, ...]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


def notebook(city: str, step: str) -> str:
    return f"{RESULTS}/{city}/{step}.ipynb"


def city_manifest(city: str) -> str:
    return f"{DATA}/manifests/{city}.json"


def release_sums(city: str) -> str:
    return f"{RELEASE}/{city}/SHA256SUMS"


def step_var(step: str) -> str:
    return f"STEP_SRC_{step}"


def step_prerequisites(root: Path, step: dict) -> list[str]:
    """What every city's run of ``step`` depends on besides its city: the
    template, config/steps.yml, the declared config reads, the modules run."""
    template = root / "notebooks" / f"{step['name']}.ipynb"
    own = root / "src" / "reintegration"  # this tree's sources; else the installed ones
    sources = step_sources(template, own if own.is_dir() else None) if template.exists() else []
    return [
        f"notebooks/{step['name']}.ipynb",
        "config/steps.yml",
        *sorted(step["reads"]),
        *sources,
    ]


def data_sources(root: Path) -> list[str]:
    """The modules the synthetic-data generator runs (``reintegration.synth``
    and what it imports), as ``src/...`` paths."""
    own = root / "src" / "reintegration"
    return module_files({"reintegration.synth"}, own if own.is_dir() else None)


def book_sources(root: Path) -> list[str]:
    """The book's own sources: ``book/_config.yml``, every Markdown file
    under ``book/`` outside the generated folders, and the Monte Carlo
    results the validation chapter shows (the Makefile's BOOK_SOURCES)."""
    skip = ("book/_build/", "book/results/", "book/_generated/")
    found = [
        p.relative_to(root).as_posix()
        for p in (root / "book").rglob("*.md")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(skip)
    ]
    mc = [p.relative_to(root).as_posix() for p in (root / "build" / "montecarlo").glob("*.json")]
    return ["book/_config.yml", *sorted(found), *sorted(mc)]


def _cli(*args: str) -> tuple[str, ...]:
    return ("-m", PKG, *args)


def build(root: Path) -> Graph:
    """The pipeline's graph for the repository at ``root``. Every config file
    is validated first: a bad key stops here with one line naming it."""
    validate_all(root)
    cities = list_cities(root)
    steps = load_steps(root)
    synthetic = ["config/synthetic.yml"] if (root / "config/synthetic.yml").exists() else []
    variables: dict[str, tuple[str, ...]] = {
        # besides a step's own template, config, modules and upstream notebooks
        "STEP_DEPS": ("$(VENV_STAMP)", "$(SIZE_STAMP)"),
        # besides a city's config and the generator's modules
        "DATA_DEPS": ("config/instruments.yml", *synthetic, "$(VENV_STAMP)"),
        "DATA_SRC": tuple(data_sources(root)),
    }
    for s in steps:
        variables[step_var(s["name"])] = tuple(step_prerequisites(root, s))
    tasks = [*_data_tasks(cities)]
    for city in cities:
        tasks += _city_tasks(city, steps)
    tasks += _release_tasks(cities, steps)
    return Graph(
        cities=tuple(cities),
        steps=tuple(s["name"] for s in steps),
        variables=variables,
        tasks=tuple(tasks),
    )


def _data_tasks(cities: list[str]) -> list[Task]:
    """Each city's synthetic data, and the manifest made from them."""
    tasks = [
        Task(
            name=f"data/{city}",
            kind="data",
            target=city_manifest(city),
            prereqs=(f"config/cities/{city}.yml", "$(DATA_SRC)", "$(DATA_DEPS)"),
            commands=(_cli("data", "--size", SIZE, "--city", city),),
            city=city,
        )
        for city in cities
    ]
    tasks.append(
        Task(
            name="data-manifest",
            kind="manifest",
            target=f"{DATA}/manifest.json",
            prereqs=tuple(city_manifest(c) for c in cities),
            commands=(_cli("data-manifest", "--size", SIZE),),
            # rewritten only when its content changes: touched, so it is newer
            # than the per-city manifests it was made from
            touch=True,
        )
    )
    return tasks


def _city_tasks(city: str, steps: list[dict[str, Any]]) -> list[Task]:
    """One city's executed notebooks, one per step, and its release bundle."""
    tasks = []
    for s in steps:
        needs = tuple(notebook(city, n) for n in s["needs"])
        tasks.append(
            Task(
                name=f"{city}/{s['name']}",
                kind="step",
                target=notebook(city, s["name"]),
                prereqs=(
                    f"$({step_var(s['name'])})",
                    f"config/cities/{city}.yml",
                    city_manifest(city),
                    "$(STEP_DEPS)",
                    *needs,
                ),
                commands=(
                    _cli(
                        *("run-step", "--size", SIZE, "--kernel", KERNEL),
                        *("--city", city, "--step", s["name"]),
                    ),
                ),
                city=city,
                step=s["name"],
                one_thread=True,
            )
        )
    tasks.append(
        Task(
            name=f"release/{city}",
            kind="release",
            target=release_sums(city),
            prereqs=tuple(notebook(city, s["name"]) for s in steps),
            commands=(_cli("release", "--size", SIZE, "--city", city),),
            city=city,
        )
    )
    return tasks


def _release_tasks(cities: list[str], steps: list[dict[str, Any]]) -> list[Task]:
    """The audit of every city's outputs, the book and its PDF.

    The audit runs before the book is built or printed, so a leak stops the
    build before anything is published or printed; the book is then built
    aside, audited with everything else and published only when that audit
    passes (reintegration.pipeline.publish). Its record is written last, so an
    interrupted build or audit never looks finished. The generated pages (the
    book's Markdown sources, read from the release bundles) are written beside
    the audit: they wait for no finding of it, and nothing is built from them
    before it has passed."""
    outputs = (
        *(notebook(c, s["name"]) for c in cities for s in steps),
        *(release_sums(c) for c in cities),
    )
    audit = Task(
        name="audit",
        kind="audit",
        target=f"{BUILD}/audit.json",
        prereqs=outputs,
        # it runs after every city's steps: two processes for the two cores
        commands=(_cli("audit", "--size", SIZE, "--no-html", "--jobs", "2"),),
    )
    # The generated pages, beside the audit; the HTML book and the PDF are
    # then built from them, after the audit, side by side (two cores: the
    # PDF's print takes longer than the HTML book's build and audit together).
    # The protection page takes the differencing attack's result from the
    # release audit's record of each bundle (reintegration.disclosure.audit).
    pages = Task(
        name="book-pages",
        kind="pages",
        target=f"{BUILD}/{PAGES_RECORD}",
        prereqs=(
            *outputs,
            "$(BOOK_SOURCES)",
            f"{DATA}/manifest.json",
            "$(SIZE_STAMP)",
        ),
        commands=(_cli("book", "--size", SIZE),),
    )
    after_audit = (f"{BUILD}/audit.json", f"{BUILD}/{PAGES_RECORD}")
    book = Task(
        name="book",
        kind="book",
        target=f"{BUILD}/book.json",
        prereqs=after_audit,
        commands=(_cli("publish", "--size", SIZE),),
    )
    # The whole book as one PDF: Jupyter Book's single-HTML build printed by
    # Chromium, offline (reintegration.book.pdf); a goal of its own (make pdf, run --pdf).
    # It scans its one-page HTML with the release audit itself.
    pdf = Task(
        name="pdf",
        kind="pdf",
        target=BOOK_PDF,
        prereqs=after_audit,
        commands=(
            ("-m", f"{PKG}.book.pdf", "--book", "book", "--size", SIZE, "--out", BOOK_PDF),
        ),
    )
    return [audit, pages, book, pdf]


def resolver(paths: Paths) -> dict[str, tuple[str, ...]]:
    """The values of make's own variables for the runner, relative to the
    repository root: the folders of ``paths.size`` and the stamps. The
    environment stamp (``.venv/.installed``, written by ``make venv``) counts
    only where it exists: without make there is none."""
    root = paths.root
    venv_stamp = ".venv/.installed"
    return {
        "SIZE": (paths.size,),
        "KERNEL": (KERNEL_NAME,),
        "RESULTS": ("book/results",),
        "DATA": (f"synthetic_data/{paths.size}",),
        "RELEASE": (f"release/{paths.size}",),
        "BUILD": (f"build/{paths.size}",),
        "SIZE_STAMP": (size_stamp_path(),),
        "VENV_STAMP": (venv_stamp,) if (root / venv_stamp).exists() else (),
        "BOOK_SOURCES": tuple(book_sources(root)),
    }


def size_stamp_path() -> str:
    return "book/results/.size"


def write_size_stamp(paths: Paths) -> bool:
    """The executed notebooks in book/results/ belong to one size at a time:
    the stamp changes (and so reruns them) only when the size differs from the
    last run's. Returns whether it was written. The Makefile does the same."""
    stamp = paths.root / size_stamp_path()
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == paths.size:
        return False
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(paths.size + "\n", encoding="utf-8")
    return True


def expand(tokens: tuple[str, ...] | list[str], values: dict[str, tuple[str, ...]]) -> list[str]:
    """``tokens`` with every ``$(NAME)`` replaced by its value (recursively);
    a token that only contains a variable, such as ``$(DATA)/manifest.json``,
    gets it substituted in place (single-valued variables only)."""
    out: list[str] = []
    for token in tokens:
        if token.startswith("$(") and token.endswith(")") and token.count("$(") == 1:
            name = token[2:-1]
            if name not in values:
                raise KeyError(f"unknown variable {token}")
            out += expand(values[name], values)
            continue
        while "$(" in token:
            start = token.index("$(")
            end = token.index(")", start)
            name = token[start + 2 : end]
            value = values.get(name)
            if value is None or len(value) != 1:
                raise KeyError(f"variable $({name}) in {token!r} needs exactly one value")
            token = token[:start] + value[0] + token[end + 1 :]
        out.append(token)
    return out


def python() -> str:
    """The interpreter the runner starts its commands with: its own."""
    return sys.executable

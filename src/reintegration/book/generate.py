"""Generate the book's table of contents and its generated pages.

The table of contents is never edited by hand: it is built from the fixed
parts of the book, the steps in ``config/steps.yml`` (one methods page each)
and the cities in ``config/cities/`` (one results chapter each, one page per
executed step). Generated pages land in ``book/_generated/`` and are pulled
into hand-written pages with MyST's ``include`` directive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .. import feasibility
from ..core import atomic, provenance
from ..core.config import list_cities, load_city, load_steps
from ..core.config_reference import reference_markdown
from ..core.paths import Paths
from ..montecarlo import advice, harness
from ..phase2 import synthesis
from ..synth import data_dictionary_markdown, planted_parameters_markdown
from . import architecture, summary, werkwijzer

#: fixed parts before and after the per-city results, as (caption, files)
FRONT = [
    ("Introduction", ["reading", "clients/nl", "clients/en"]),
    (
        "Data and methods",
        [
            "methods/index",
            "methods/synthetic_data",
            "methods/disclosure_control",
            "@steps",
            "methods/design_selection_on_observables",
            "methods/design_event_study",
            "methods/design_case_manager_iv",
        ],
    ),
    ("Phase 1: feasibility", ["phase1/index"]),
]
BACK = [
    ("Cross-city synthesis", ["synthesis/index"]),
    ("Werkwijzer", ["werkwijzer/index"]),
    (
        "Appendices",
        [
            "appendices/legal",
            "appendices/ethics",
            "appendices/reproducibility",
            "appendices/data_dictionary",
            "appendices/configuration",
            "appendices/architecture",
            "appendices/glossary",
        ],
    ),
]


class BookError(RuntimeError):
    """A page the table of contents needs does not exist."""


def toc(paths: Paths) -> dict[str, Any]:
    """The table of contents (sphinx-external-toc ``jb-book`` format)."""
    book = paths.book_dir
    steps = load_steps(paths.root)

    def page(name: str) -> dict[str, str]:
        if not any((book / f"{name}{ext}").exists() for ext in (".md", ".ipynb")):
            raise BookError(f"the table of contents needs {book / name}.md, which does not exist")
        return {"file": name}

    def part(caption: str, files: list[str]) -> dict[str, Any]:
        chapters = []
        for name in files:
            if name == "@steps":
                chapters += [page(f"methods/{s['name']}") for s in steps]
            else:
                chapters.append(page(name))
        return {"caption": caption, "chapters": chapters}

    parts = [part(c, f) for c, f in FRONT]
    city_chapters = [page("cities")]
    for city in list_cities(paths.root):
        pages = [page(f"results/{city}/{s['name']}") for s in steps]
        # the city's summary (generated from its release bundle) opens the chapter
        city_chapters.append({**page(f"_generated/summary_{city}"), "sections": pages})
    parts.append({"caption": "Results per city", "chapters": city_chapters})
    parts += [part(c, f) for c, f in BACK]
    return {"format": "jb-book", "root": "intro", "parts": parts}


def provenance_markdown(paths: Paths) -> str:
    """Every step run that produced this book, from the provenance records:
    per executed notebook the full commit, the working-tree state, the
    parameters, the seeds, the run time, and the SHA-256 of every input and
    output; then each city's release checksum file."""
    runs = []
    for city in list_cities(paths.root):
        name = load_city(city, paths.root)["display_name"]
        for s in load_steps(paths.root):
            rec_path = paths.provenance_dir(city) / f"{s['name']}.json"
            if rec_path.exists():
                runs.append((name, s["title"], provenance.read_record(rec_path)))
    commits = {(r["git"]["commit"], r["git"]["dirty"]) for _, _, r in runs}
    lines = [
        f"This build used the synthetic data of size `{paths.size}`: "
        f"{len(runs)} executed notebooks.",
        "",
        "### Executed notebooks",
        "",
        "| city | step | commit | working tree | parameters | run time (s) |",
        "|---|---|---|---|---|---:|",
    ]
    for name, title, rec in runs:
        params = ", ".join(f"`{k}={v}`" for k, v in sorted(rec["parameters"].items()))
        lines.append(
            f"| {name} | {title} | `{rec['git']['commit']}` | {_dirty(rec['git']['dirty'])} "
            f"| {params} | {rec['runtime_seconds']:.1f} |"
        )
    lines.append("")
    if len(commits) > 1:
        lines.append(
            "```{warning}\nThe pages of this book were produced by more than one commit "
            "or working-tree state; rerun `make all` from a clean checkout before review.\n```\n"
        )
    lines += ["### Seeds", "", *_seeds_markdown(runs, paths.root), ""]
    lines += ["### Inputs and outputs of each notebook", ""]
    for name, title, rec in runs:
        lines += [
            f"#### {name}: {title}",
            "",
            "| file | read or written | custody domain | SHA-256 |",
            "|---|---|---|---|",
        ]
        for kind, items in (("input", rec["inputs"]), ("output", rec["outputs"])):
            lines += [
                f"| `{i['path']}` | {kind} | {i.get('domain', '')} | `{i['sha256']}` |"
                for i in items
            ]
        lines.append("")
    return "\n".join(lines)


def _seeds_markdown(runs: list[tuple[str, str, dict[str, Any]]], root: Path) -> list[str]:
    """The seeds the runs recorded (one table when every run used the same)."""
    recorded = [r.get("seeds") for _, _, r in runs]
    if not runs or any(s is None for s in recorded):
        missing = sum(s is None for s in recorded)
        head = [
            f"{missing} of {len(runs)} records predate the recording of seeds; "
            "rerun `make all` to record them. The seeds of the current configuration:",
            "",
        ]
        seeds = provenance.seeds(root)
    else:
        head = []
        distinct = {json.dumps(s, sort_keys=True) for s in recorded}
        if len(distinct) > 1:
            head = [
                "The runs recorded different seeds: the configuration changed between runs.",
                "",
            ]
        seeds = recorded[0]
    rows = ["| configuration key | seed |", "|---|---:|"]
    rows += [f"| `{k}` | {v} |" for k, v in seeds.items()]
    note = [
        "",
        "The synthetic data of each city are drawn from the global seed of "
        "`config/synthetic.yml` combined with a hash of the city's name and the data "
        "size; their SHA-256 are in `synthetic_data/<size>/manifest.json`.",
    ]
    return [*head, *rows, *note]


def release_checksums_markdown(paths: Paths) -> str:
    """Each city's release checksum file, whole, with its own SHA-256."""
    lines = []
    for city in list_cities(paths.root):
        name = load_city(city, paths.root)["display_name"]
        sums = paths.root / "release" / paths.size / city / "SHA256SUMS"
        lines += [f"### {name}", ""]
        if not sums.is_file():
            lines += ["No release bundle yet.", ""]
            continue
        text = sums.read_text(encoding="utf-8")
        lines += [
            f"`release/{paths.size}/{city}/SHA256SUMS`: {len(text.splitlines())} files; "
            f"SHA-256 of the checksum file itself `{atomic.sha256_bytes(text.encode())}`. "
            f"Check a copy with `sha256sum -c SHA256SUMS` inside the bundle's folder.",
            "",
            "```text",
            text.rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(lines)


def _dirty(flag: bool | None) -> str:
    return {True: "uncommitted changes", False: "clean", None: "unknown"}[flag]


def packages_markdown() -> str:
    env = provenance.environment()
    lines = [
        f"Python {env['python']} on {env['platform']}.",
        "",
        "| package | version |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in provenance.all_package_versions().items()]
    return "\n".join(lines) + "\n"


def steps_markdown(paths: Paths) -> str:
    """The table of analysis steps on the Data and methods page."""
    steps = load_steps(paths.root)
    titles = {s["name"]: s["title"] for s in steps}
    lines = ["| step | custody role | reads the outputs of |", "|---|---|---|"]
    for s in steps:
        needs = ", ".join(titles[n] for n in s["needs"]) or "(only its inputs)"
        page = f"{{doc}}`{s['title']} </methods/{s['name']}>`"
        lines.append(f"| {page} | `{s['role']}` | {needs} |")
    return "\n".join(lines) + "\n"


def generated_pages(paths: Paths) -> dict[str, str]:
    pages = {
        "steps.md": steps_markdown(paths),
        "provenance.md": provenance_markdown(paths),
        "packages.md": packages_markdown(),
        "release_checksums.md": release_checksums_markdown(paths),
    }
    pages["data_dictionary.md"] = data_dictionary_markdown()
    pages["config_reference.md"] = reference_markdown()
    pages["planted_parameters.md"] = planted_parameters_markdown(
        list_cities(paths.root), root=paths.root
    )
    pages["phase1.md"] = feasibility.phase1_markdown(paths)
    pages["phase1_power.md"] = feasibility.power_markdown(paths)
    pages.update(werkwijzer.generated_pages(paths))
    pages["protection.md"] = protection_markdown(paths)
    pages["montecarlo.md"] = harness.markdown(paths.root)
    pages["montecarlo_advice.md"] = advice.markdown(paths.root)
    pages.update(synthesis.generated_pages(paths))
    pages.update(summary.generated_pages(paths))
    pages.update(architecture.generated_pages(paths))
    return pages


def protection_markdown(paths: Paths) -> str:
    """Per city: the count tables of its release bundle, the primary and
    complementary suppressions, and what the release audit's differencing
    attack derives (read from the release bundles only: from the release
    audit's record of the attack where it was made from the same bundle,
    else attacked here)."""
    from ..disclosure.audit import recorded_differencing, scan_differencing
    from ..disclosure.rules import load_rules

    threshold = load_rules(paths.root).cell_threshold
    lines = [
        "| city | count tables | populations | cells | primary | complementary "
        "| cells suppressed | narrowest derivable interval | cells narrower than the rule |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for city in list_cities(paths.root):
        bundle = paths.root / "release" / paths.size / city
        recorded = recorded_differencing(paths, city)
        if recorded is None:
            found, summary = scan_differencing(bundle, threshold, paths.root)
            n_found = len(found)
        else:
            n_found, summary = recorded
        if not summary:
            lines.append(
                f"| {load_city(city, paths.root)['display_name']} | no release bundle "
                "| | | | | | | |"
            )
            continue
        share = (summary["primary"] + summary["secondary"]) / max(summary["cells"], 1)
        narrow = summary["narrowest_width"]
        width = "–" if narrow is None else f"{narrow:g}".replace("inf", "unbounded")
        lines.append(
            f"| {load_city(city, paths.root)['display_name']} | {summary['tables']} "
            f"| {summary['populations']} | {summary['cells']:,} | {summary['primary']} "
            f"| {summary['secondary']} | {share:.0%} | {width} | {n_found} |"
        )
    lines += [
        "",
        f"Cells: every cell of the released count tables, totals included. Primary: "
        f"suppressed because the cell itself breaks a rule (fewer than {threshold} persons, "
        "a zero, a share near 0% or 100%). Complementary: suppressed only so that the "
        "primary cells cannot be derived; they are the information the protection costs. "
        "Narrowest derivable interval: the smallest width, in persons, over all primary "
        "cells, of the interval an attacker can derive from everything the city's bundle publishes "
        f"(the rule asks for at least {threshold}).",
        "",
    ]
    return "\n".join(lines)


def write_pages_record(paths: Paths, out: Path) -> Path:
    """Record the table of contents and every generated page (name and SHA-256)
    in ``out``; written on every run (it is the pipeline's target for the pages,
    from which the HTML book and its PDF are built), with no time in it."""
    import hashlib

    book = paths.book_dir
    files = [book / "_toc.yml", *sorted((book / "_generated").iterdir())]
    record = {
        "size": paths.size,
        "pages": {f.relative_to(book).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
                  for f in files if f.is_file()},
    }
    atomic.write_json(out, record)
    return out


def prepare(paths: Paths) -> list[Path]:
    """Write the table of contents and the generated pages; return what changed."""
    changed = []
    gen = paths.book_dir / "_generated"
    for name, text in generated_pages(paths).items():
        if atomic.write_if_changed(gen / name, text):
            changed.append(gen / name)
    matrix = gen / "phase1_matrix.png"
    before = matrix.read_bytes() if matrix.exists() else None
    feasibility.matrix_figure(paths, matrix)
    if matrix.read_bytes() != before:
        changed.append(matrix)
    changed += summary.write_figures(paths, gen)
    flow = gen / "architecture_flow.png"
    before = flow.read_bytes() if flow.exists() else None
    if architecture.flow_figure(flow, paths.root).read_bytes() != before:
        changed.append(flow)
    toc_text = "# Generated by `python -m reintegration book`; do not edit.\n" + yaml.safe_dump(
        toc(paths), sort_keys=False
    )
    if atomic.write_if_changed(paths.book_dir / "_toc.yml", toc_text):
        changed.append(paths.book_dir / "_toc.yml")
    return changed

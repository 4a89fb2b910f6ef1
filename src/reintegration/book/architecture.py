"""The architecture appendix: data flow through the custody domains, package map.

Both parts are generated, so they stay true when the code changes. The data
flow comes from ``config/steps.yml`` (each step's role, needs and declared
writes with their custody domain) and :data:`reintegration.core.custody.ROLE_ACCESS`;
the package map parses every module of ``src/reintegration`` with :mod:`ast`
(nothing is imported, so no module's import side effects run) and places it in
one room of :data:`ROOMS`. A module that no room names, or that two rooms
name, is an error: a new module must be placed.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import re
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.config import load_steps
from ..core.custody import DOMAINS, ROLE_ACCESS
from ..core.paths import Paths

#: the custody domains in the order data flows through them, with their labels
DOMAIN_LABELS: dict[str, str] = {
    "municipal": "Municipal\nexports with BSN,\nname, address",
    "ttp": "Linking unit (TTP)\nkey table\nBSN to pseudonym",
    "research": "Research\npseudonymised data,\nexact counts",
    "release": "Release\nchecked aggregates",
    "public": "Public\nconfiguration,\ntemplates",
    "truth": "Truth\nplanted effects\n(synthetic only)",
}

#: the person-level domains that data are delivered into before any step runs
#: (the synthetic generator writes them; real deliveries arrive in the same folders)
DELIVERED = ("municipal", "ttp", "research", "truth")

#: room -> (what it holds, module patterns relative to src/reintegration without
#: ``.py``, separated by spaces); every module matches exactly one room
ROOMS: dict[str, tuple[str, str]] = {
    "Intake": ("reading and checking the municipal exports (municipality role)", "intake/*"),
    "Linking": ("BSN checks, pseudonymisation and linkage (linking unit role)", "linking/*"),
    "Research data": ("the analysis panel, its description and the words for its variables",
                      "research/*"),
    "Designs and estimators": (
        "one module per design for both phases, the estimators, shared numerics",
        "designs/* effects/*",
    ),
    "Phase 1": ("feasibility: possible, allowed, wanted", "feasibility/*"),
    "Phase 2": ("the effects, Phase 1's obligations, sensitivity to a hidden factor, what works "
                "for whom, advice, the comparison of cities", "phase2/*"),
    "Output control": (
        "statistical disclosure control, the release bundle and the release audit",
        "disclosure/*",
    ),
    "Core": ("configuration, paths, custody domains, the step context, provenance, months",
             "core/*"),
    "Pipeline machinery": (
        "the task graph, make rules, running steps, publishing, command line, "
        "benchmarks",
        "pipeline/* __init__ __main__",
    ),
    "Book": ("the book's generated pages, the werkwijzer and the checks of the pages", "book/*"),
    "Synthetic data": ("the synthetic world with planted effects", "synth/*"),
    "Monte Carlo": ("the harness that checks every estimator over many synthetic worlds",
                    "montecarlo/*"),
}


class ArchitectureError(RuntimeError):
    """A module is in no room, or in more than one."""


# ---------------------------------------------------------------------------
# data flow
# ---------------------------------------------------------------------------


def flows(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per step (after a first row for the delivered data): its role,
    the domains it reads and the domains it writes.

    A step reads the domains its role may read (:data:`ROLE_ACCESS`) that hold
    its inputs: configuration (public), the outputs of the steps it needs, and
    the delivered data. It writes the domains of the outputs it declares."""
    steps = load_steps(root)
    written = {s["name"]: {o["domain"] for o in s["writes"]} for s in steps}
    rows: list[dict[str, Any]] = [
        {
            "name": "delivered data",
            "title": "Delivered data",
            "role": "generator",
            "reads": [],
            "writes": {d: 0 for d in DELIVERED},
        }
    ]
    for s in steps:
        may_read, may_write = ROLE_ACCESS[s["role"]]
        inputs = {"public", *DELIVERED}.union(*(written[n] for n in s["needs"]))
        writes: dict[str, int] = {}
        for out in s["writes"]:
            if out["domain"] not in may_write:
                raise ArchitectureError(
                    f"config/steps.yml: step {s['name']} declares a write to "
                    f"{out['domain']}, which role {s['role']} may not write"
                )
            writes[out["domain"]] = writes.get(out["domain"], 0) + 1
        reads = [d for d in DOMAINS if d in may_read and d in inputs]
        rows.append({**s, "reads": reads, "writes": writes})
    return rows


def flow_figure(out_png: str | Path, root: Path | None = None) -> Path:
    """Draw the steps (rows) against the custody domains (columns) to
    ``out_png``. Grey cells: the role may access the domain; circles: the step
    reads it; squares: the step writes it (with the number of declared
    outputs); arrows from each person-level domain read to each other domain
    written (reads of configuration and released tables have none: nothing
    about persons flows from them). Deterministic bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    cols = list(DOMAIN_LABELS)
    rows = flows(root)
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.72 * len(rows)))
    col_px = fig.get_figwidth() * 0.8 / len(cols) * fig.dpi  # about one column, in pixels
    for r, row in enumerate(rows):
        may_read, may_write = ROLE_ACCESS[row["role"]]
        for c, dom in enumerate(cols):
            shade = "#e4e4e4" if dom in may_read | may_write else "white"
            ax.add_patch(plt.Rectangle((c + 0.04, r + 0.08), 0.92, 0.84, color=shade, zorder=0))
            if dom in row["reads"]:
                ax.plot(c + 0.3, r + 0.5, "o", ms=9, mfc="white", mec="#1f4e79", mew=2)
            if dom in row["writes"]:
                ax.plot(c + 0.7, r + 0.5, "s", ms=10, color="#c55a11")
                n = row["writes"][dom]
                if n:
                    ax.text(
                        c + 0.7,
                        r + 0.8,
                        f"{n} output{'s' * (n > 1)}",
                        ha="center",
                        va="center",
                        fontsize=7,
                    )
        for src in (d for d in row["reads"] if d in DELIVERED):
            for dst in (d for d in row["writes"] if d != src):
                a, b = cols.index(src), cols.index(dst)
                # an arc over the row, about as high wherever it goes
                rad = 0.3 * 160 / (col_px * abs(b - a)) * (-1 if b > a else 1)
                ax.add_patch(
                    FancyArrowPatch(
                        (a + 0.3, r + 0.45),
                        (b + 0.7, r + 0.45),
                        arrowstyle="-|>",
                        mutation_scale=11,
                        connectionstyle=f"arc3,rad={rad:.3f}",
                        color="#1f4e79",
                        linewidth=1.2,
                        zorder=3,
                        shrinkA=6,
                        shrinkB=6,
                    )
                )
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), -0.05)
    ax.set_xticks([c + 0.5 for c in range(len(cols))])
    ax.set_xticklabels([DOMAIN_LABELS[d] for d in cols], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([r + 0.5 for r in range(len(rows))])
    ax.set_yticklabels(
        [f"{row['title']}\nrole: {row['role'].replace('_', ' ')}" for row in rows], fontsize=8
    )
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    ax.plot([], [], "o", ms=8, mfc="white", mec="#1f4e79", mew=2, label="reads")
    ax.plot([], [], "s", ms=8, color="#c55a11", label="writes")
    ax.add_patch(plt.Rectangle((0, 0), 0, 0, color="#e4e4e4", label="role may access"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    out = Path(out_png)
    atomic.write_if_changed(out, buf.getvalue())
    return out


def _names(domains: Any) -> str:
    words = [(w := DOMAIN_LABELS[d].split("\n")[0])[0].lower() + w[1:] for d in domains]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def flow_markdown(root: Path | None = None) -> str:
    """The figure in words, one line per row, for readers who cannot see it."""
    lines = []
    for row in flows(root):
        reads = _names(row["reads"]) if row["reads"] else "nothing of a step"
        lines.append(
            f"* **{row['title']}** (role `{row['role']}`) reads {reads}; "
            f"writes {_names(row['writes'])}."
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# package map
# ---------------------------------------------------------------------------


def modules(package_dir: Path) -> list[str]:
    """Every module of the package, as a path relative to it without ``.py``."""
    return sorted(
        p.relative_to(package_dir).with_suffix("").as_posix() for p in package_dir.rglob("*.py")
    )


def room_of(module: str) -> str:
    """The one room whose patterns match ``module``."""
    hits = [
        room
        for room, (_, pats) in ROOMS.items()
        if any(fnmatch.fnmatchcase(module, p) for p in pats.split())
    ]
    if len(hits) != 1:
        where = "no room" if not hits else f"rooms {', '.join(hits)}"
        raise ArchitectureError(
            f"src/reintegration/{module}.py is in {where}: place it in exactly one room "
            "of reintegration.book.architecture.ROOMS"
        )
    return hits[0]


def summary_line(path: Path) -> str:
    """The first sentence of a module's docstring (parsed, not imported)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    if not doc:
        raise ArchitectureError(f"{path} has no module docstring to show in the package map")
    para = " ".join(doc.split("\n\n")[0].split())
    end = para.find(". ")
    para = para if end < 0 else para[: end + 1]
    if len(para) > 170:  # a long first sentence: up to its last comma within 170 characters
        para = para[: para.rfind(",", 0, 170)] + " …"
    # reStructuredText roles and literals as Markdown code
    para = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", para)
    return para.replace("``", "`").replace("|", "/")


def package_map(package_dir: Path) -> dict[str, list[tuple[str, str, int]]]:
    """room -> [(module, first docstring sentence, lines)], rooms in order."""
    rooms: dict[str, list[tuple[str, str, int]]] = {room: [] for room in ROOMS}
    for mod in modules(package_dir):
        path = package_dir / f"{mod}.py"
        n = len(path.read_text(encoding="utf-8").splitlines())
        rooms[room_of(mod)].append((mod, summary_line(path), n))
    return rooms


def package_markdown(package_dir: Path) -> str:
    """The package map as one table per room."""
    lines = []
    for room, entries in package_map(package_dir).items():
        lines += [
            f"**{room}**: {ROOMS[room][0]}.",
            "",
            "| module | what it is | lines |",
            "|---|---|---:|",
        ]
        for mod, text, n in entries:
            parts = [p for p in mod.split("/") if p != "__init__"]
            lines.append(f"| `{'.'.join(['reintegration', *parts])}` | {text} | {n} |")
        lines.append("")
    return "\n".join(lines)


#: the package's folder (``src/reintegration``): the map shows the code that generates it
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def generated_pages(paths: Paths) -> dict[str, str]:
    """The appendix's generated parts, by file name in ``book/_generated/``."""
    package_dir = PACKAGE_DIR
    return {
        "architecture_flow.md": flow_markdown(paths.root),
        "package_map.md": package_markdown(package_dir),
    }

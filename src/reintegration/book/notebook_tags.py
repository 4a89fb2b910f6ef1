"""Cell tags of the notebook templates: the book shows no code.

A results page is read by people who do not read Python. Every code cell of
every template therefore carries a Jupyter Book tag that keeps its source out
of the book (``remove-input``: the output stays, the code goes; myst-nb reads
the tag when it renders an executed notebook). A cell that already carries a
stronger or an equivalent tag (``remove-cell``, ``hide-input``) keeps it.

Tags change nothing else: papermill still runs every cell, notebook
validation (nbval) still compares the cells marked ``# NBVAL_CHECK_OUTPUT``
(it reads the marker comment, not the tags), and the executed notebooks in
``book/results/`` keep the code for anyone who opens them.

Run ``python -m reintegration.book.notebook_tags notebooks/*.ipynb`` after adding
a template or a cell; ``tests/test_templates.py`` fails on a code cell
without a tag.

A page adapts to its city: a markdown cell tagged :data:`NEEDS_OUTPUT`
introduces what the next code cell shows (a roll-out plot, a balance table),
and :func:`drop_empty_sections`, run on every executed notebook, removes it
from the page (tag ``remove-cell``) when that code cell showed nothing, as
for a city without a roll-out or without case-manager identifiers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

from ..core import atomic

#: the tag every code cell gets
HIDE = "remove-input"
#: a markdown cell about the output of the next code cell, dropped without one
NEEDS_OUTPUT = "needs-output"
#: tags that already keep a cell's source out of the book
HIDING = frozenset({"remove-input", "remove-cell", "hide-input", "hide-cell"})


def hides_source(cell: Any) -> bool:
    """Whether the book shows no source of this cell (markdown has none)."""
    if cell.cell_type != "code":
        return True
    return bool(HIDING & set(cell.metadata.get("tags", [])))


def tag_cells(nb: Any) -> int:
    """Add :data:`HIDE` to every code cell without a hiding tag; the number of
    cells changed. The ``parameters`` cell is tagged like the others."""
    changed = 0
    for cell in nb.cells:
        if not hides_source(cell):
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), HIDE]
            changed += 1
    return changed


def drop_empty_sections(nb: Any) -> list[int]:
    """Tag ``remove-cell`` every markdown cell tagged :data:`NEEDS_OUTPUT`
    whose next code cell has no output; the indices of the cells dropped."""
    dropped = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or NEEDS_OUTPUT not in cell.metadata.get("tags", []):
            continue
        nxt = next((c for c in nb.cells[i + 1 :] if c.cell_type == "code"), None)
        if nxt is None or not nxt.get("outputs"):
            cell.metadata["tags"] = [*cell.metadata["tags"], "remove-cell"]
            dropped.append(i)
    return dropped


def tag_templates(templates: Iterable[Path]) -> dict[Path, int]:
    """Tag the code cells of each template in place; per template, the number
    of cells changed (a template already tagged is not rewritten)."""
    done: dict[Path, int] = {}
    for template in templates:
        nb = nbformat.read(template, as_version=4)
        done[template] = tag_cells(nb)
        if done[template]:
            atomic.write_text(template, nbformat.writes(nb))
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m reintegration.book.notebook_tags notebooks/*.ipynb",
              file=sys.stderr)
        return 2
    for template, n in tag_templates(Path(a) for a in args).items():
        print(f"{template}: {n} code cells tagged {HIDE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Count tables protected together with the earlier tables of their population.

A count table that names the population it counts (``cohort persons``) is
protected with every table of that population released before it: in the
same step, and in the steps it needs (``config/steps.yml``). Complementary
cells are suppressed until no suppressed cell of this or an earlier table can
be narrowed by subtraction; the attack itself is
:mod:`reintegration.disclosure.protection`. This module joins the register to it: it
reads the earlier registers through the step context, keeps the tables of
each population released so far, and says in each register entry how the
released CSV reads back (:func:`layout`), so the release audit can repeat
the attack on the bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.config import load_steps
from . import protection
from .rules import DisclosureError

if TYPE_CHECKING:  # pragma: no cover
    from ..core.step import StepContext

#: what a count table's register entry says about how its CSV reads back and
#: joins the other tables of its population (see :func:`layout`)
LAYOUT_KEYS = (
    "population",
    "dims",
    "fixed",
    "coarsen",
    "blocks",
    "index_levels",
    "column_levels",
    "suppressed_cells",
)


class PublishedTables:
    """The count tables of each population released before the current one,
    for the step run behind ``ctx``."""

    def __init__(self, ctx: StepContext):
        self.ctx = ctx
        self.step = ctx.name
        self._published: dict[str, list[protection.CountTable]] = {}

    def of(self, population: str) -> list[protection.CountTable]:
        """Tables of ``population`` released before this one: earlier in this
        step, and in the steps it needs, directly or not (config/steps.yml),
        which have finished before it starts. A step that runs beside this one
        is never read, so the result does not depend on the order of a
        parallel build."""
        if population not in self._published:
            found: list[protection.CountTable] = []
            folder = self.ctx.out_dir / "outputs"
            upstream = upstream_steps(self.step, self.ctx.paths.root)
            for path in sorted(folder.glob("*/register.json")):
                if path.parent.name not in upstream:
                    continue
                reg = json.loads(self.ctx.check_read(path).read_text(encoding="utf-8"))
                found += protection.tables_from_register(
                    reg, lambda rel: self.ctx.check_read(self.ctx.out_dir / rel), population
                )
            self._published[population] = found
        return self._published[population]

    def protect(
        self,
        name: str,
        raw: pd.DataFrame,
        flags: np.ndarray,
        dims: list[str],
        oneway: bool,
        link: dict[str, Any],
        threshold: int,
    ) -> np.ndarray:
        """The cells to suppress in addition, so that no suppressed cell of
        this table or of an earlier one of its population can be derived.
        Without a population in ``link`` the table is protected on its own."""
        full = raw.shape
        if oneway:  # the total column of a one-way table repeats its only column
            raw, flags = raw.iloc[:, :1], flags[:, :1]
        primary = np.vectorize(bool)(flags)
        shown = raw.astype(float).mask(primary)
        keys = cell_keys(raw, oneway)
        population = link.get("population")
        output_id = f"{self.step}/{name}"
        table = protection.from_frame(
            output_id,
            population or output_id,
            shown,
            dims=layout(raw, dims, oneway, link, self.step)["dims"],
            sensitive=[keys[i][j] for i, j in zip(*np.nonzero(primary), strict=True)],
            truth=raw.astype(float),
            oneway=oneway,
            fixed=link.get("fixed"),
            coarsen=link.get("coarsen"),
        )
        earlier = self.of(table.population) if population else []
        parts = protection.split_blocks(table, link["blocks"]) if link.get("blocks") else [table]
        added: set[tuple[Any, ...]] = set()
        for part in parts:
            found = protection.protect(part, earlier, threshold)
            added |= {part.origin.get(k, k) for k in found}
            earlier = [*earlier, part]
        if population:
            self._published.setdefault(population, []).extend(parts)
        n_rows = raw.index.nlevels
        mask = np.zeros(full, dtype=bool)
        for i, row in enumerate(keys):
            for j, key in enumerate(row):
                mask[i, j] = protection.normal_key(key, n_rows) in added
        return mask


def layout(
    raw: pd.DataFrame, dims: list[str], oneway: bool, link: dict[str, Any], step: str
) -> dict[str, Any]:
    """How the released CSV of a count table reads back and joins other
    tables of its population, for the audit."""
    own = list(dims[:-1] if oneway else dims)
    names = list(link.get("dims") or own)
    if len(names) != len(own):
        raise DisclosureError(
            f"{step}: dims={names} names {len(names)} variables; the table has {len(own)} ({own})"
        )
    coarsen = {
        f: [c, {str(k): str(v) for k, v in m.items()}]
        for f, (c, m) in (link.get("coarsen") or {}).items()
    }
    return {
        "population": link.get("population"),
        "dims": names,
        "fixed": {str(k): str(v) for k, v in (link.get("fixed") or {}).items()},
        "coarsen": coarsen,
        **({"blocks": link["blocks"]} if link.get("blocks") else {}),
        "index_levels": raw.index.nlevels,
        "column_levels": 0 if oneway else raw.columns.nlevels,
    }


def upstream_steps(step: str, root: Path) -> set[str]:
    """Every step ``step`` needs, directly or through others."""
    needs = {s["name"]: set(s["needs"]) for s in load_steps(root)}
    found: set[str] = set()
    todo = list(needs.get(step, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += needs.get(name, ())
    return found


def cell_keys(raw: pd.DataFrame, oneway: bool) -> list[list[tuple[Any, ...]]]:
    """Each cell's key as (row levels..., column levels...)."""
    out = []
    for r in raw.index:
        rk = r if isinstance(r, tuple) else (r,)
        row = []
        for c in raw.columns:
            ck = () if oneway else (c if isinstance(c, tuple) else (c,))
            row.append((*rk, *ck))
        out.append(row)
    return out

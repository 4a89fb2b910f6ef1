"""The designs, one module each, used by both phases.

Every design offers the interface of :class:`base.Design`: ``prepare`` the
analysis data from the panel and the city's configuration, ``diagnose`` it
(Phase 1's checks), ``estimate`` on it (Phase 2's result) and ``counts`` of
an estimation sample. :data:`REGISTRY` lists them in report order; code that
needs a design looks it up by name (:func:`get`) and never branches on it.

Adding a design: a module here with a :class:`base.Design` subclass, one
line in :data:`REGISTRY`, its thresholds in ``config/feasibility.yml`` and
its settings in ``config/effects.yml``.
"""

from __future__ import annotations

from .base import Check, Design, Diagnosis, Inputs, Model
from .iv import CaseManagerIV
from .rollout import Rollout
from .selection import SelectionOnObservables

#: the designs, in report order
REGISTRY: dict[str, Design] = {
    d.name: d for d in (SelectionOnObservables(), Rollout(), CaseManagerIV())
}


def get(name: str) -> Design:
    """The design called ``name``; a clear error naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown design {name!r}; known: {', '.join(REGISTRY)}") from None


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


__all__ = ["REGISTRY", "Check", "Design", "Diagnosis", "Inputs", "Model", "get", "names"]

"""The one line the runner prints per step run."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any


def step_line(paths: Any, city: str, step: str, seconds: float, custody: str | None) -> str:
    """``<city>/<step>: <s> s, <n> outputs registered (<status counts>), custody: <how>``.

    The counts come from the step's own disclosure register
    (``build/<size>/<city>/outputs/<step>/register.json``); a step that
    registers nothing says so."""
    reg = paths.city_build(city) / "outputs" / step / "register.json"
    statuses: Counter[str] = Counter()
    if Path(reg).exists():
        outputs = json.loads(Path(reg).read_text(encoding="utf-8")).get("outputs", [])
        statuses.update(str(o.get("status", "unknown")) for o in outputs)
    n = sum(statuses.values())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none"
    line = f"{city}/{step}: {seconds:.1f} s, {n} outputs registered ({counts})"
    return line + (f", custody: {custody}" if custody else "")


_LINE = re.compile(r"^(?P<city>\w+)/(?P<step>\d\d_\w+): (?P<seconds>[0-9.]+) s, ", re.M)


def step_times(text: str) -> dict[str, float]:
    """The seconds of every :func:`step_line` in ``text`` (a run's output),
    keyed ``<city>/<step>``."""
    return {f"{m['city']}/{m['step']}": float(m["seconds"]) for m in _LINE.finditer(text)}

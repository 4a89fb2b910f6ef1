"""The planted parameters of every city, as the book's page shows them: one
table per parameter group with one column per city, after each city's
``synthetic:`` section is merged over the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .params import load_params
from .schema import _cell


def planted_parameters_markdown(cities: list[str], root: Path | None = None) -> str:
    """A MyST section per parameter group with one column per city: the planted
    values after merging each city's ``synthetic:`` section over the defaults."""
    params = {c: load_params(c, "full", root=root) for c in cities}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for city, p in params.items():
        flat = _flatten(p.syn)
        flat["rin_block"] = p.rin_block  # the block in use (derived when not set)
        flat["rollout.instrument"] = p.rollout["instrument"] if p.rollout else "none"
        if p.rollout:
            for team, month in p.rollout["teams"].items():
                flat[f"rollout.teams.{team}"] = month
        for key, value in flat.items():
            group = key.split(".")[0]
            groups.setdefault(group, {}).setdefault(key, {})[city] = value
    names = {
        "clients": "Sizes",
        "other_residents_share": "Structure",
        "rin_block": "Structure",
        "teams": "Structure",
        "pc4_range": "Structure",
        "case_managers_per_team": "Structure",
        "case_manager_tenure_quarters": "Structure",
        "population": "Population",
        "employment": "Employment (log-odds of monthly hazards)",
        "assignment": "Assignment to instruments (multinomial logit utilities)",
        "effects": "Effects of instruments (log-odds shifts of the monthly job-finding hazard)",
        "defects": "Defects in the municipal exports",
        "rollout": "Roll-out",
    }
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for group, rows in groups.items():
        merged.setdefault(names.get(group, group), {}).update(rows)
    out = []
    header = "| parameter | " + " | ".join(cities) + " |"
    rule = "|---|" + "---|" * len(cities)
    for title, rows in merged.items():
        out += [f"### {title}", "", header, rule]
        for key in rows:
            vals = [_fmt(rows[key].get(c, "")) for c in cities]
            out.append(f"| `{key}` | " + " | ".join(vals) + " |")
        out.append("")
    return "\n".join(out)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return _cell(", ".join(str(v) for v in value))
    if value is None:
        return "–"
    return _cell(str(value))

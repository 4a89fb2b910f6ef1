"""Configuration: one YAML file per city, shared taxonomies, the step list.

Adding a municipality is adding ``config/cities/<name>.yml``: the city list is
discovered from that folder, never written in code. Every loader checks the
keys it relies on and names the file and the key when one is missing or wrong,
so a researcher editing a config sees what to fix.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .paths import repo_root

CITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STEP_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
ROLES = (
    "generator",
    "municipality",
    "linking_unit",
    "researcher",
    "validator",
    "publisher",
    "auditor",
)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or lacks a required key."""


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a missing or invalid file is a ConfigError
    naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _require(mapping: Any, key: str, path: Path, where: str = "", kind: type | None = None) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"{path}: missing required key '{where}{key}'")
    value = mapping[key]
    if kind is not None and not isinstance(value, kind):
        raise ConfigError(
            f"{path}: key '{where}{key}' must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _month(value: Any, path: Path, key: str) -> str:
    """Accept ``2015-01`` (string) and return it normalised as ``YYYY-MM``."""
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value)
    if not re.fullmatch(r"\d{4}-\d{2}", text) or not 1 <= int(text[5:]) <= 12:
        raise ConfigError(f"{path}: key '{key}' must be a month YYYY-MM, got {text!r}")
    return text


def cities_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "config" / "cities"


def list_cities(root: Path | None = None) -> list[str]:
    """Names of all configured cities, sorted: the stems of config/cities/*.yml."""
    folder = cities_dir(root)
    names = sorted(p.stem for p in folder.glob("*.yml"))
    for name in names:
        if not CITY_NAME.match(name):
            raise ConfigError(
                f"{folder / (name + '.yml')}: a city file name must be lower-case letters, "
                "digits and underscores (it becomes a path and a make target)"
            )
    return names


def load_city(name: str, root: Path | None = None) -> dict[str, Any]:
    """Load and check ``config/cities/<name>.yml``."""
    path = cities_dir(root) / f"{name}.yml"
    cfg = read_yaml(path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    declared = _require(cfg, "name", path, kind=str)
    if declared != name:
        raise ConfigError(f"{path}: key 'name' is {declared!r} but the file is named {name!r}")
    _require(cfg, "display_name", path, kind=str)
    study = _require(cfg, "study", path, kind=dict)
    study["inflow_from"] = _month(
        _require(study, "inflow_from", path, "study."), path, "study.inflow_from"
    )
    study["inflow_to"] = _month(
        _require(study, "inflow_to", path, "study."), path, "study.inflow_to"
    )
    if study["inflow_from"] > study["inflow_to"]:
        raise ConfigError(f"{path}: study.inflow_from is after study.inflow_to")
    study.setdefault("follow_up_months", 24)
    exports = _require(cfg, "exports", path, kind=dict)
    fmt = _require(exports, "format", path, "exports.", kind=str)
    if fmt not in ("csv", "sav"):
        raise ConfigError(f"{path}: exports.format must be 'csv' or 'sav', got {fmt!r}")
    files = _require(exports, "files", path, "exports.", kind=dict)
    for table, spec in files.items():
        _require(spec, "file", path, f"exports.files.{table}.", kind=str)
    cfg.setdefault("quirks", [])
    cfg["_path"] = str(path)
    return cfg


def load_instruments(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The shared instrument taxonomy: key -> {label, dutch, description}."""
    path = (root or repo_root()) / "config" / "instruments.yml"
    data = read_yaml(path)
    instruments = _require(data, "instruments", path, kind=dict)
    for key, spec in instruments.items():
        for field in ("label", "dutch"):
            _require(spec, field, path, f"instruments.{key}.")
    return instruments


@lru_cache(maxsize=8)
def _steps_cached(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    p = Path(path)
    data = read_yaml(p)
    steps = _require(data, "steps", p, kind=list)
    seen: set[str] = set()
    out = []
    for i, step in enumerate(steps):
        where = f"steps[{i}]."
        name = _require(step, "name", p, where, kind=str)
        if not STEP_NAME.match(name):
            raise ConfigError(f"{p}: {where}name {name!r} must look like NN_name")
        _require(step, "title", p, where, kind=str)
        role = _require(step, "role", p, where, kind=str)
        if role not in ROLES:
            raise ConfigError(f"{p}: {where}role {role!r} is not one of {', '.join(ROLES)}")
        step.setdefault("needs", [])
        for need in step["needs"]:
            if need not in seen:
                raise ConfigError(f"{p}: {where}needs {need!r}, which is not declared before it")
        seen.add(name)
        out.append(step)
    return tuple(out)


def load_steps(root: Path | None = None) -> list[dict[str, Any]]:
    """The analysis steps in order (config/steps.yml)."""
    path = (root or repo_root()) / "config" / "steps.yml"
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    return [dict(s) for s in _steps_cached(str(path), path.stat().st_mtime)]


def get_step(name: str, root: Path | None = None) -> dict[str, Any]:
    for step in load_steps(root):
        if step["name"] == name:
            return step
    raise ConfigError(f"step {name!r} is not declared in config/steps.yml")

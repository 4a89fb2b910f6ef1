"""Configuration: one YAML file per city, shared settings, the step list.

Adding a municipality is adding ``config/cities/<name>.yml``: the city list is
discovered from that folder, never written in code. Every file is validated
against a typed model (:mod:`reintegration.core.config_models`,
:mod:`reintegration.core.config_settings`); a problem is reported in one line that
names the file, the key path and, for an unknown key, the nearest valid key::

    config/cities/utrecht.yml: study.inflow_fom: unknown key (did you mean inflow_from?)

:func:`validate_all` checks every file; the Makefile runs it (through the
generated rules) before any work. A step's context registers itself with
:func:`set_read_observer`, so every config file a step reads through this
module is logged in its provenance.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from . import config_models as cm
from . import config_settings as cs
from .paths import repo_root

CITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STEP_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
ROLES = typing.get_args(cm.Role)

#: the shared config files (config/<name>.yml) and the model of each
SHARED: dict[str, type[BaseModel]] = {
    "steps": cm.Steps,
    "instruments": cm.Instruments,
    "feasibility": cs.Feasibility,
    "effects": cs.Effects,
    "disclosure": cs.Disclosure,
    "synthetic": cs.SyntheticFile,
    "cbs_files": cs.CbsFiles,
}

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


_observer: Callable[[Path], None] | None = None
#: libyaml's safe loader when PyYAML was built with it (about ten times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def set_read_observer(observer: Callable[[Path], None] | None) -> None:
    """Call ``observer(path)`` for every config file read from now on (the
    running step's context logs them); ``None`` stops it."""
    global _observer
    _observer = observer


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a missing or invalid file is a ConfigError
    naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    if _observer is not None:
        _observer(path)
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


# ---------------------------------------------------------------------------
# one-line errors
# ---------------------------------------------------------------------------


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """The member types of an Optional/Union/Annotated annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _unwrap(a)]
    return [annotation]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose keys are valid at ``loc`` (None when it is no model)."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for ann in current:
            for t in _unwrap(ann):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    field = t.model_fields.get(str(part))
                    if field is not None:
                        nxt.append(field.annotation)
                elif typing.get_origin(t) in (dict, list, tuple):
                    args = typing.get_args(t)
                    if args:
                        nxt.append(args[-1] if typing.get_origin(t) is dict else args[0])
        current = nxt
    for ann in current:
        for t in _unwrap(ann):
            if isinstance(t, type) and issubclass(t, BaseModel):
                return t
    return None


def _file_loc(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[Any, ...]:
    """The part of a pydantic error location that is a key path of the file:
    pydantic adds the member types of a union (``str``, ``int``) and tags
    such as ``[key]``; those are not in the data. A missing key is kept."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif kind == "missing" and len(out) == len(loc) - 1:
            pass
        else:
            continue
        out.append(part)
    return tuple(out)


def one_line(
    path: Path | str, model: type[BaseModel], exc: ValidationError, data: Any = None
) -> str:
    """The first error of ``exc`` as ``<file>: <key path>: <problem>``. An
    unknown key comes first: a misspelled key is also a missing one, and the
    misspelling is what to fix."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    kind = err["type"]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    if data is not None:
        loc = _file_loc(data, loc, kind)
    where = _key_path(loc) or "(top level)"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        valid = list(parent.model_fields) if parent else []
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]}?)" if near else f" (valid keys: {', '.join(valid)})"
        return f"{path}: {where}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: {where}: missing required key"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind not in ("value_error", "assertion_error"):
        msg = f"{msg}, got {err.get('input')!r}"
    return f"{path}: {where}: {msg}"


def validate(path: Path, model: type[M], data: Any = None, **context: Any) -> M:
    """``path``'s content (or ``data`` read from it) as a ``model``; a
    ConfigError in one line otherwise."""
    if data is None:
        data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise ConfigError(one_line(_show(path), model, exc, data)) from None


def _show(path: Path) -> str:
    """``path`` relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------
# shared files
# ---------------------------------------------------------------------------


def config_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "config"


@lru_cache(maxsize=32)
def _cached(path: str, mtime: float, kind: str) -> BaseModel:
    return validate(Path(path), SHARED[kind])


def load_shared(kind: str, root: Path | None = None, path: Path | None = None) -> Any:
    """The typed content of ``config/<kind>.yml`` (kinds: see :data:`SHARED`).
    A cached model is reused while the file is unchanged; the read observer
    still hears of every load."""
    if kind not in SHARED:
        raise ConfigError(f"unknown config file kind {kind!r}; kinds are {', '.join(SHARED)}")
    path = Path(path) if path is not None else config_dir(root) / f"{kind}.yml"
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if _observer is not None:
        _observer(path)
    return _cached(str(path), path.stat().st_mtime, kind)


def as_dict(model: BaseModel, path: Path | None = None) -> dict[str, Any]:
    """The dict view older call sites use: the keys the file sets (and the
    defaults the model fills in explicitly), plus ``_path``."""
    out = model.model_dump(mode="python", exclude_unset=True)
    if path is not None:
        out["_path"] = str(path)
    return out


def load_instruments(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The shared instrument taxonomy: key -> {label, dutch, description}."""
    return as_dict(load_shared("instruments", root))["instruments"]


def load_steps(root: Path | None = None) -> list[dict[str, Any]]:
    """The analysis steps in order (config/steps.yml), each with its needs,
    reads and writes (empty lists when not declared)."""
    steps = load_shared("steps", root).steps
    return [s.model_dump(mode="python") for s in steps]


def get_step(name: str, root: Path | None = None) -> dict[str, Any]:
    for step in load_steps(root):
        if step["name"] == name:
            return step
    raise ConfigError(f"step {name!r} is not declared in config/steps.yml")


# ---------------------------------------------------------------------------
# cities
# ---------------------------------------------------------------------------


def cities_dir(root: Path | None = None) -> Path:
    return config_dir(root) / "cities"


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


def load_city_model(name: str, root: Path | None = None) -> cm.City:
    """``config/cities/<name>.yml`` as a typed, checked :class:`City`."""
    path = cities_dir(root) / f"{name}.yml"
    city = validate(path, cm.City)
    _check_city_references(city, name, path, root)
    return city


def load_city(name: str, root: Path | None = None) -> dict[str, Any]:
    """Load and check ``config/cities/<name>.yml``: the dict view of
    :func:`load_city_model`, with ``_path``."""
    path = cities_dir(root) / f"{name}.yml"
    return as_dict(load_city_model(name, root), path)


def city_teams(city: cm.City, root: Path | None = None) -> list[str]:
    """The city's teams: its synthetic section's, or the synthetic defaults'."""
    if city.synthetic is not None and city.synthetic.teams is not None:
        return list(city.synthetic.teams)
    return list(load_shared("synthetic", root).defaults.teams or [])


def _check_city_references(city: cm.City, name: str, path: Path, root: Path | None) -> None:
    """What one file cannot check alone: the file name, the instrument
    taxonomy and the city's teams."""
    show = _show(path)
    if city.name != name:
        raise ConfigError(f"{show}: name: is {city.name!r} but the file is named {name!r}")
    taxonomy = set(load_shared("instruments", root).instruments)
    for code, key in city.exports.instrument_codes.items():
        if key not in taxonomy:
            raise ConfigError(
                f"{show}: exports.instrument_codes.{code}: {key!r} is not a key of "
                f"config/instruments.yml ({', '.join(sorted(taxonomy))})"
            )
    feas = load_shared("feasibility", root) if city.legal or city.relevance else None
    if feas is not None:
        _check_phase1_keys(city, feas, show, taxonomy)
    if city.rollout is None:
        return
    if city.rollout.instrument not in taxonomy:
        near = difflib.get_close_matches(city.rollout.instrument, sorted(taxonomy), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigError(
            f"{show}: rollout.instrument: {city.rollout.instrument!r} is not a key of "
            f"config/instruments.yml{hint}"
        )
    teams = city_teams(city, root)
    for team in city.rollout.teams:
        if team not in teams:
            near = difflib.get_close_matches(team, teams, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(
                f"{show}: rollout.teams.{team}: not one of the city's teams "
                f"({', '.join(teams)}){hint}"
            )


def _check_phase1_keys(city: cm.City, feas: Any, show: str, taxonomy: set[str]) -> None:
    """The city's legal items, stakeholders, concerns and instrument overrides
    exist in config/feasibility.yml and the instrument taxonomy."""
    _known(show, "legal", city.legal, feas.allowed.items, "allowed.items")
    _known(show, "relevance", city.relevance, feas.wanted.stakeholders, "wanted.stakeholders")
    for who, rel in city.relevance.items():
        where = f"relevance.{who}.concerns"
        _known(show, where, rel.concerns, feas.wanted.client_concerns, "wanted.client_concerns")
        _known(show, f"relevance.{who}.instruments", rel.instruments, taxonomy, None)


def _known(show: str, where: str, keys: Any, valid: Any, source: str | None) -> None:
    """Every one of ``keys`` is one of ``valid`` (from config/feasibility.yml
    ``source``, or the instrument taxonomy when ``source`` is None)."""
    valid = sorted(valid)
    for key in keys:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.75)
            hint = f" (did you mean {near[0]}?)" if near else ""
            origin = (
                f"config/feasibility.yml {source}"
                if source
                else "the keys of config/instruments.yml"
            )
            raise ConfigError(f"{show}: {where}.{key}: not one of {origin}{hint}")


def validate_all(root: Path | None = None) -> list[str]:
    """Validate every config file; return the files checked, raise a
    ConfigError (one line) at the first problem."""
    root = root or repo_root()
    checked = []
    for kind in SHARED:
        path = config_dir(root) / f"{kind}.yml"
        load_shared(kind, root)
        checked.append(str(path))
    for name in list_cities(root):
        load_city_model(name, root)
        checked.append(str(cities_dir(root) / f"{name}.yml"))
    return checked


def policy_effect(root: Path | None = None) -> float:
    """The effect that would matter for policy, as a share
    (``practical.power.policy_effect`` in config/feasibility.yml)."""
    path = (root or repo_root()) / "config" / "feasibility.yml"
    try:
        return float(read_yaml(path)["practical"]["power"]["policy_effect"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: practical.power.policy_effect is missing or not a number"
        ) from exc

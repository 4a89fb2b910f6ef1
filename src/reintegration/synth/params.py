"""Generator parameters of one city: its YAML merged over ``config/synthetic.yml``.

Every city difference comes from configuration: sizes, teams, covariate
distributions, effect and selection parameters (``synthetic:``), the roll-out
(``rollout:``) and the export format, columns and codes (``exports:``).

Seeds: each city and size gets its own :class:`numpy.random.SeedSequence`
from the global seed, a SHA-256 of the city name and of the size (never
Python's salted ``hash()``), so adding a city leaves every other city's files
unchanged. The random streams of the world's parts are spawned from it in a
fixed order, so changing a defect rate does not change anyone's employment.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import (
    ConfigError,
    as_dict,
    list_cities,
    load_city,
    load_instruments,
    load_shared,
)
from ..core.months import index as month_index
from ..core.paths import check_size, repo_root
from .schema import CANONICAL_CODES, COVARIATES, MUNICIPAL
from .schema import table as schema_table

#: the named random streams, in spawn order (append only: never reorder)
STREAMS = (
    "population",
    "pre_inflow",
    "outcomes",
    "assignment",
    "case_managers",
    "identity",
    "spells",
    "residents",
    "medication",
    "defects",
)


def stable_int(text: str, nbytes: int = 8) -> int:
    """A stable non-negative integer from ``text`` (SHA-256; not Python's hash())."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:nbytes], "little")


def load_synthetic_config(root: Path | None = None) -> dict[str, Any]:
    """``config/synthetic.yml``, validated against
    :class:`reintegration.core.config_settings.SyntheticFile`, as a dict."""
    return as_dict(load_shared("synthetic", root))


#: mappings a city replaces whole rather than key by key: shares (which must
#: sum to one) and coefficient lists (a city that lists heterogeneity for an
#: instrument lists all of it)
REPLACE_WHOLE = frozenset({
    "migration", "education", "education_first_generation", "household", "covariates",
    "lose_covariates", "heterogeneity", "calendar",
})


def deep_merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings merge key by key
    (except those in :data:`REPLACE_WHOLE`), anything else (numbers, lists)
    is replaced."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if key in REPLACE_WHOLE:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def rin_block(city: str, syn: dict[str, Any]) -> int:
    block = syn.get("rin_block")
    if block is None:
        return stable_int(f"rin-block:{city}") % 999 + 1
    return int(block)


@dataclass
class CityParams:
    city: str
    size: str
    root: Path
    cfg: dict[str, Any]
    syn: dict[str, Any]
    exports: dict[str, Any]
    rollout: dict[str, Any] | None
    instruments: list[str]  # taxonomy order
    offered: list[str]  # instruments the city offers (has a code for)
    horizons: list[int]
    seed: int
    n_clients: int
    rin_block: int
    inflow_from: int  # month index
    inflow_to: int
    follow_up: int
    #: a Monte Carlo replication number: None is the published world; a number
    #: draws a fresh world of the same configuration (its own seed stream)
    replication: int | None = None

    @property
    def data_start(self) -> int:
        """First month of CBS-like data: 24 months before the first inflow."""
        return self.inflow_from - 24

    @property
    def data_end(self) -> int:
        """Last month of data: the follow-up of the last inflow cohort."""
        return self.inflow_to + self.follow_up

    @property
    def export_date(self) -> dt.date:
        """The day the municipal exports were taken: end of the last data month."""
        nxt = self.data_end + 1
        return dt.date(1970 + nxt // 12, nxt % 12 + 1, 1) - dt.timedelta(days=1)

    def seed_sequence(self) -> np.random.SeedSequence:
        entropy = [self.seed, stable_int(f"city:{self.city}"), stable_int(f"size:{self.size}")]
        if self.replication is not None:
            entropy.append(stable_int(f"replication:{self.replication}"))
        return np.random.SeedSequence(entropy)

    def streams(self) -> dict[str, np.random.Generator]:
        children = self.seed_sequence().spawn(len(STREAMS))
        return {name: np.random.default_rng(s) for name, s in zip(STREAMS, children, strict=True)}

    def columns(self, table: str) -> dict[str, str]:
        """canonical column -> export name, for the columns the city delivers."""
        spec = self.exports["files"][table]
        mapping = spec.get("columns") or {}
        out = {}
        for col in schema_table(table, "municipal").column_names:
            name = mapping.get(col, col)
            if name is not None:
                out[col] = name
        return out

    def codes(self, field: str) -> dict[str, Any]:
        """canonical value -> the city's code for a coded municipal column."""
        given = (self.exports.get("codes") or {}).get(field) or {}
        return {v: given.get(v, v) for v in CANONICAL_CODES[field]}


def load_params(city: str, size: str, *, root: Path | None = None,
                replication: int | None = None, clients: int | None = None,
                overrides: dict[str, Any] | None = None) -> CityParams:
    """Load and check everything the generator needs for ``city`` at ``size``.

    For Monte Carlo replications (never the published world): ``replication``
    draws a fresh world from its own seed stream, ``clients`` replaces the
    size's number of clients, and ``overrides`` is merged over the city's
    synthetic settings (e.g. every effect set to zero for a null world)."""
    root = (root or repo_root()).resolve()
    check_size(size)
    cfg = load_city(city, root)
    path = cfg["_path"]
    shared = load_synthetic_config(root)
    syn = deep_merge(deep_merge(shared["defaults"], cfg.get("synthetic")), overrides)
    instruments = list(load_instruments(root))
    codes = cfg["exports"].get("instrument_codes") or {}
    unknown = sorted(set(codes.values()) - set(instruments))
    if unknown:
        raise ConfigError(f"{path}: exports.instrument_codes maps to unknown instruments {unknown}")
    offered = [i for i in instruments if i in set(codes.values())]
    _check_synthetic(syn, instruments, path)
    rollout = cfg.get("rollout")
    if rollout:
        if rollout.get("instrument") not in offered:
            raise ConfigError(
                f"{path}: rollout.instrument must be one of the city's instruments {offered}"
            )
        teams = rollout.get("teams") or {}
        bad = sorted(set(teams) - set(syn["teams"]))
        if bad:
            raise ConfigError(f"{path}: rollout.teams names teams not in synthetic.teams: {bad}")
        rollout = {
            "instrument": rollout["instrument"],
            "teams": {t: _month_str(m) for t, m in teams.items()},
        }
    for table in ("clients", "benefit_spells", "instruments"):
        if table not in cfg["exports"]["files"]:
            raise ConfigError(f"{path}: exports.files must declare '{table}'")
    valid_tables = {t.table for t in MUNICIPAL}
    for table, spec in cfg["exports"]["files"].items():
        if table not in valid_tables:
            raise ConfigError(f"{path}: exports.files.{table}: unknown table")
        cols = set(schema_table(table, "municipal").column_names)
        extra = sorted(set(spec.get("columns") or {}) - cols)
        if extra:
            raise ConfigError(
                f"{path}: exports.files.{table}.columns names unknown canonical columns {extra}"
            )
    sizes = syn["clients"]
    if size not in sizes:
        raise ConfigError(f"{path}: synthetic.clients has no entry for size {size!r}")
    p = CityParams(
        city=city,
        size=size,
        root=root,
        cfg=cfg,
        syn=syn,
        exports=cfg["exports"],
        rollout=rollout,
        instruments=instruments,
        offered=offered,
        horizons=[h for h in shared["horizons"] if h <= cfg["study"]["follow_up_months"]],
        seed=int(shared["seed"]),
        n_clients=int(clients if clients is not None else sizes[size]),
        rin_block=rin_block(city, syn),
        inflow_from=month_index(cfg["study"]["inflow_from"]),
        inflow_to=month_index(cfg["study"]["inflow_to"]),
        follow_up=int(cfg["study"]["follow_up_months"]),
        replication=replication,
    )
    if not 1 <= p.rin_block <= 999:
        raise ConfigError(f"{path}: synthetic.rin_block must be between 1 and 999")
    _check_rin_blocks(p, root)
    return p


def _month_str(value: Any) -> str:
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)


def _check_synthetic(syn: dict[str, Any], instruments: list[str], path: str) -> None:
    def covs(where: str, mapping: dict[str, Any] | None) -> None:
        bad = sorted(set(mapping or {}) - set(COVARIATES))
        if bad:
            raise ConfigError(
                f"{path}: {where} names unknown covariates {bad}; valid: {', '.join(COVARIATES)}"
            )

    covs("synthetic.employment.covariates", syn["employment"]["covariates"])
    covs("synthetic.employment.lose_covariates", syn["employment"].get("lose_covariates"))
    for inst in instruments:
        for section in ("effects",):
            if inst not in syn[section]:
                raise ConfigError(f"{path}: synthetic.{section} lacks instrument '{inst}'")
        if inst not in syn["assignment"]["instruments"]:
            raise ConfigError(f"{path}: synthetic.assignment.instruments lacks '{inst}'")
        covs(f"synthetic.effects.{inst}.heterogeneity", syn["effects"][inst].get("heterogeneity"))
        covs(
            f"synthetic.assignment.instruments.{inst}.covariates",
            syn["assignment"]["instruments"][inst].get("covariates"),
        )
    for key in ("migration", "education", "household"):
        shares = syn["population"][key]
        if abs(sum(shares.values()) - 1) > 1e-6:
            raise ConfigError(f"{path}: synthetic.population.{key} shares must sum to 1")
    if len(syn["teams"]) < 1:
        raise ConfigError(f"{path}: synthetic.teams must list at least one team")
    lo, hi = syn["pc4_range"]
    if hi - lo + 1 < len(syn["teams"]):
        raise ConfigError(f"{path}: synthetic.pc4_range is too small for the teams")


def _check_rin_blocks(p: CityParams, root: Path) -> None:
    """RINPERSOON ranges must be disjoint across the configured cities."""
    shared = load_synthetic_config(root)["defaults"]
    for other in list_cities(root):
        if other == p.city:
            continue
        ocfg = load_city(other, root)
        osyn = deep_merge(shared, ocfg.get("synthetic"))
        if rin_block(other, osyn) == p.rin_block:
            raise ConfigError(
                f"{p.cfg['_path']}: the RINPERSOON block {p.rin_block} of {p.city!r} equals that "
                f"of {other!r}; set synthetic.rin_block to a free number (1-999) in one of them"
            )

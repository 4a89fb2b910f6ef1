"""Generate one city's synthetic files, and merge the per-city manifests.

Layout under ``synthetic_data/<size>/`` (or ``data_dir``)::

    municipal/<city>/      the city's exports (CSV or SPSS, as its YAML declares)
    ttp/<city>/            key_table.parquet, person_register.parquet
    research/cbs/<city>/   GBAPERSOONTAB.sav, HOOGSTEOPLTAB.sav, SPOLISBUS.sav,
                           BIJSTANDUITKERINGTAB.sav, MEDICIJNTAB.sav (or, with
                           ``cbs_files``, where that configuration says)
    truth/<city>/          potential_outcomes.parquet, potential_assignment.parquet,
                           effects.json
    manifests/<city>.json  written last: path, domain, table, format, rows, sha256
    manifest.json          all configured cities (merge_manifests)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.atomic import dumps_json, write_if_changed, write_json
from ..core.config import list_cities
from ..core.config_settings import CbsFiles
from ..core.custody import CustodyError, DomainMap, check_access
from ..core.paths import Paths
from ..research.cbs_files import research_roots
from . import schema
from .cbs_layout import write_cbs_layout
from .params import CityParams, load_params
from .tables import (
    make_identity,
    make_residents,
    make_spells,
    municipal_ids,
    municipal_tables,
    research_tables,
    truth_tables,
    ttp_tables,
)
from .truth import compute_effects
from .world import build_world
from .writers import Writer, numeric_codes, write_research_sav

CODED = ("sex", "household_type", "language_level", "labour_market_distance", "benefit_type")
DATA_DOMAINS = ("municipal", "ttp", "research", "truth")


def _layout(size: str, root: Path | None, data_dir: Path | None) -> tuple[Paths, Path, DomainMap]:
    paths = Paths.for_size(size, root)
    target = Path(data_dir).resolve() if data_dir is not None else paths.data_dir
    extra: dict[str, str] = {}
    if target != paths.data_dir:
        extra = {
            str(target / "manifest.json"): "public",
            str(target / "manifests"): "public",
            **{str(target / d): d for d in DATA_DOMAINS},
        }
    return paths, target, DomainMap.for_paths(paths, extra=extra)


def _check_public(path: Path, dmap: DomainMap) -> None:
    """Manifests hold names, sizes and checksums, nothing about persons: they
    are public. The generator role may not write the public domain in
    general (configuration, templates), so a manifest write is checked to
    land in the public domain's manifest location instead."""
    domain = dmap.domain_of(path)
    if domain != "public" or not (path.name == "manifest.json" or path.parent.name == "manifests"):
        raise CustodyError(f"{path}: not a manifest location (domain {domain!r})")


def _city_dir(data_dir: Path, domain: str, city: str) -> Path:
    if domain == "research":
        return data_dir / "research" / "cbs" / city
    return data_dir / domain / city


def generate_city(
    city: str, size: str, *, root: Path | None = None, data_dir: Path | None = None,
    replication: int | None = None, clients: int | None = None,
    overrides: dict[str, Any] | None = None, cbs_files: CbsFiles | None = None,
) -> Path:
    """Generate every file of ``city`` at ``size`` and return the path of its
    manifest, which is written last (so a finished manifest means a finished
    city). ``replication``, ``clients`` and ``overrides`` draw a Monte Carlo
    world instead of the published one (:func:`.params.load_params`).
    ``cbs_files`` writes the CBS files where that configuration says (for
    example a file per year, as in CBS Remote Access: :mod:`.cbs_layout`)
    instead of one ``.sav`` per table in ``research/cbs/<city>/``."""
    paths, data_dir, dmap = _layout(size, root, data_dir)
    if cbs_files is not None:
        where = {"city": city, "data_dir": data_dir, "root": paths.root}
        extra = research_roots(cbs_files, known=dmap, **where)
        dmap = DomainMap(dmap.roots + tuple((Path(r).resolve(), d) for r, d in extra.items()),
                         build_dir=dmap.build_dir)
    p = load_params(city, size, root=paths.root, replication=replication, clients=clients,
                    overrides=overrides)
    manifest = data_dir / "manifests" / f"{city}.json"
    _check_public(manifest, dmap)
    manifest.unlink(missing_ok=True)

    streams = p.streams()
    world = build_world(p, streams)
    n_res = int(round(p.syn["other_residents_share"] * p.n_clients))
    res = make_residents(world, streams["residents"], n_res)
    ident = make_identity(world, streams["identity"], n_res, res.migration)
    ids = municipal_ids(world, streams["identity"])
    spells = make_spells(world, streams["spells"], res)
    research = research_tables(world, ident, res, spells, streams["medication"])
    ttp = ttp_tables(world, ident, res)
    municipal = municipal_tables(world, ident, spells, ids, streams["defects"])
    truth = truth_tables(world, ident, ids, spells)
    cm_exported = "caseload" in p.exports["files"] and "case_manager" in p.columns("clients")
    effects = compute_effects(world, case_manager_exported=cm_exported)
    effects["parameters"] = {"synthetic": p.syn, "rollout": p.rollout}

    w = Writer(data_dir, dmap, city, p.export_date)
    mdir = _city_dir(data_dir, "municipal", city)
    for table, spec in p.exports["files"].items():
        _write_municipal(w, p, mdir / spec["file"], table, municipal[table])
    tdir = _city_dir(data_dir, "ttp", city)
    for table, df in ttp.items():
        w.parquet(tdir / f"{table}.parquet", df, schema.table(table, "ttp"))
    rdir = _city_dir(data_dir, "research", city)
    if cbs_files is None:
        for table, df in research.items():
            write_research_sav(w, rdir / f"{table}.sav", df, schema.table(table, "research"))
    else:
        write_cbs_layout(w, cbs_files, research, city=city, data_dir=data_dir, root=paths.root)
    xdir = _city_dir(data_dir, "truth", city)
    for table, df in truth.items():
        w.parquet(xdir / f"{table}.parquet", df, schema.table(table, "truth"))
    w.json(xdir / "effects.json", effects, "effects")

    written = {data_dir / e["path"] for e in w.entries}
    for domain in DATA_DOMAINS:
        folder = _city_dir(data_dir, domain, city)
        for old in sorted(folder.rglob("*")):
            if old.is_file() and old not in written:
                check_access("generator", old, "write", dmap)
                old.unlink()
    entries = sorted(w.entries, key=lambda e: e["path"])
    write_json(manifest, entries)
    return manifest


def _write_municipal(w: Writer, p: CityParams, path: Path, table: str, df: pd.DataFrame) -> None:
    spec = schema.table(table, "municipal")
    mapping = p.columns(table)
    out = df[list(mapping)].rename(columns=mapping).copy()
    ex = p.exports
    if ex.get("bsn_as_number") and "bsn" in mapping:
        col = mapping["bsn"]
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    numeric = {f for f in CODED if f in mapping and numeric_codes(p.codes(f))}
    for f in numeric:
        out[mapping[f]] = pd.to_numeric(out[mapping[f]]).astype("int64")
    if ex["format"] == "csv":
        w.csv(
            path, out, table,
            sep=ex.get("delimiter", ","),
            encoding=ex.get("encoding", "utf-8"),
            errors=ex.get("encoding_errors", "strict"),
            lineterminator=ex.get("line_terminator", "\n"),
            date_format=ex.get("date_format", "%Y-%m-%d"),
        )
    else:
        labels = {mapping[c.name]: c.meaning[:120] for c in spec.columns if c.name in mapping}
        value_labels = {
            mapping[f]: {float(code): canon for canon, code in p.codes(f).items()}
            for f in numeric
        }
        w.sav(path, out, table, labels=labels, value_labels=value_labels or None)


def merge_manifests(size: str, *, root: Path | None = None, data_dir: Path | None = None) -> Path:
    """Write ``manifest.json``: the entries of every configured city's
    manifest, sorted by city and path. Unchanged content keeps the file (and
    its modification time) as it is."""
    paths, data_dir, dmap = _layout(size, root, data_dir)
    entries: list[dict[str, Any]] = []
    for city in list_cities(paths.root):
        path = data_dir / "manifests" / f"{city}.json"
        check_access("generator", path, "read", dmap)
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no manifest for city {city!r}; generate it first "
                f"(make data SIZE={size})"
            )
        entries += json.loads(path.read_text(encoding="utf-8"))
    entries.sort(key=lambda e: (e["city"], e["path"]))
    target = data_dir / "manifest.json"
    _check_public(target, dmap)
    write_if_changed(target, dumps_json(entries))
    return target

"""Where the CBS files are: ``config/cbs_files.yml``, resolved per table and year.

The panel step reads five CBS tables
(:data:`reintegration.research.panel_sources.SOURCE_TABLES`). Their folders and file names
are configuration (:class:`reintegration.core.config_settings.CbsFiles`),
not code: the default points at the synthetic files
(``synthetic_data/<size>/research/cbs/<city>/<TABLE>.sav``); inside CBS Remote
Access the same file names the project's files on the G: drive, one file per
year where CBS delivers a table that way (``G:/Spolis/SPOLISBUS/2022/SPOLISBUS2022V3.sav``).

* :func:`files` lists a table's files (one per year of its ``years``, or one);
* :func:`read_cbs_table` reads them filtered to the cohort's keys, renames the
  columns to the names the panel uses and stacks the years in order;
* :func:`read_sources` (a step) and :func:`read_sources_config` (tests,
  benchmarks) give the panel its :class:`~reintegration.research.panel_sources.Sources`;
* :func:`research_roots` adds the configured folders to the research custody
  domain, unless they already belong to another domain;
* :func:`check` lists every file with whether it exists, its columns and the
  years each city's study period needs (``python -m reintegration cbs-files``).

A missing file is a :class:`CbsFileMissing` naming the table, the year and
the path tried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import pandas as pd

from ..core import config as configuration
from ..core.config_settings import CbsFiles, CbsTable
from .panel_contract import KEY, PRE_MONTHS
from .panel_covariates import HEALTH_YEARS
from .panel_sources import (
    CBS_COLUMNS,
    DELIVERY,
    SAV_CHUNK_ROWS,
    SOURCE_TABLES,
    Sources,
    cohort_keys,
    read_cbs_file,
)

#: the configuration file, relative to the compendium root
CONFIG = "config/cbs_files.yml"


class CbsFileMissing(FileNotFoundError):
    """A CBS file that ``config/cbs_files.yml`` names does not exist."""


@dataclass(frozen=True)
class CbsFile:
    """One file of a CBS table: its year (None for a table in one file) and path."""

    table: str
    year: int | None
    path: Path

    @property
    def label(self) -> str:
        return f"{self.table}" + (f" {self.year}" if self.year is not None else "")


def load(root: Path | None = None, path: Path | None = None) -> CbsFiles:
    """The typed ``config/cbs_files.yml`` (or ``path``)."""
    return configuration.load_shared("cbs_files", root, path)


def table_settings(cfg: CbsFiles, table: str) -> CbsTable:
    if table not in CBS_COLUMNS:
        raise KeyError(f"unknown CBS table {table!r}; tables: {', '.join(CBS_COLUMNS)}")
    return getattr(cfg.tables, table)


def years_of(cfg: CbsFiles, table: str) -> list[int] | None:
    """The years of ``table``'s files, None for a table in one file."""
    spec = table_settings(cfg, table)
    if not spec.per_year:
        return None
    years = spec.years or cfg.years
    assert years is not None  # the model requires years for a table with {year}
    return list(range(years.first, years.last + 1))


def _base(cfg: CbsFiles, *, city: str, data_dir: Path, root: Path) -> Path:
    """The root folder; a Windows drive (``G:/``) counts as absolute on any system."""
    text = cfg.root.format(data_dir=Path(data_dir).as_posix(), city=city)
    base = Path(text)
    return base if base.is_absolute() or PureWindowsPath(text).drive else Path(root) / base


def files(
    cfg: CbsFiles, table: str, *, city: str, data_dir: str | Path, root: str | Path
) -> list[CbsFile]:
    """The files of ``table``: one per year of its years when its folder or
    file name holds ``{year}``, else one. ``data_dir`` fills ``{data_dir}``
    (``synthetic_data/<size>``), ``root`` is the compendium root that
    relative folders start from."""
    spec = table_settings(cfg, table)
    base = _base(cfg, city=city, data_dir=Path(data_dir), root=Path(root))
    out = []
    for year in years_of(cfg, table) or [None]:
        version = spec.versions.get(year, spec.version) if year is not None else spec.version
        fill = {"table": table, "year": "" if year is None else year, "city": city}
        folder = spec.folder.format(data_dir=Path(data_dir).as_posix(), **fill)
        name = spec.file.format(version=version, **fill)
        out.append(CbsFile(table, year, base / folder / name))
    return out


def require(f: CbsFile, source: str = CONFIG) -> Path:
    """``f.path`` when it exists; a :class:`CbsFileMissing` naming the table,
    the year and the path otherwise."""
    if not f.path.is_file():
        year = f", year {f.year}" if f.year is not None else ""
        raise CbsFileMissing(
            f"CBS table {f.table}{year}: no file {f.path} (set in {source}, tables.{f.table}; "
            "check with `python -m reintegration cbs-files`)"
        )
    return f.path


def read_cbs_table(
    cfg: CbsFiles,
    table: str,
    *,
    city: str,
    data_dir: str | Path,
    root: str | Path,
    keys: Collection[str] | None = None,
    check_read: Callable[[Path], Path] | None = None,
    engine: str = "pyarrow",
    chunk_rows: int = SAV_CHUNK_ROWS,
) -> pd.DataFrame:
    """The rows of ``table`` (of the persons ``keys``, when given), with the
    columns the panel reads (:data:`~reintegration.research.panel_sources.CBS_COLUMNS`)
    under the panel's names, its years stacked in order. ``check_read`` (a
    step context's) approves each file before it is opened."""
    spec = table_settings(cfg, table)
    wanted = [c for c in CBS_COLUMNS[table] if c != spec.year_column]
    in_file = [spec.columns.get(c, c) for c in wanted]
    back = {spec.columns[c]: c for c in wanted if c in spec.columns}
    key = spec.columns.get("RINPERSOON", "RINPERSOON")
    parts = []
    for f in files(cfg, table, city=city, data_dir=data_dir, root=root):
        path = require(f)
        if check_read is not None:
            path = check_read(path)
        try:
            df = read_cbs_file(
                path, table, in_file, keys=keys, engine=engine, chunk_rows=chunk_rows, key=key
            )
        except ValueError as exc:  # a column the file lacks: name the table and year
            raise ValueError(f"CBS table {f.label} ({CONFIG} tables.{table}): {exc}") from None
        lacks = [c for c in in_file if c not in df.columns]  # pyreadstat skips them silently
        if lacks:
            raise ValueError(
                f"CBS table {f.label}: {path} has no column {', '.join(lacks)}; where the file "
                f"names it differently, set it under tables.{table}.columns in {CONFIG}"
            )
        df = df.rename(columns=back)
        if spec.year_column is not None:
            df[spec.year_column] = float(f.year)  # as a numeric SPSS column reads
        parts.append(df[list(CBS_COLUMNS[table])])
    kept = [p for p in parts if len(p)] or parts[:1]
    out = pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0].reset_index(drop=True)
    for column in KEY:
        out[column] = out[column].astype(str)
    return out


def read_sources(ctx: Any) -> Sources:
    """The linked delivery and the CBS files of the step's city, the CBS
    files as ``config/cbs_files.yml`` says (which the step must declare under
    ``reads``), filtered to the linked clients' keys, each file approved by
    the step's custody check."""
    cfg = ctx.settings("cbs_files")
    delivery = {
        t: ctx.read_parquet(ctx.upstream_path(f"{t}.parquet", "research")) for t in DELIVERY
    }
    return _sources(
        delivery,
        cfg,
        city=ctx.city_name,
        data_dir=ctx.paths.data_dir,
        root=ctx.paths.root,
        check_read=ctx.check_read,
    )


def read_sources_config(
    delivery: dict[str, pd.DataFrame],
    cfg: CbsFiles,
    *,
    city: str,
    data_dir: str | Path,
    root: str | Path,
    engine: str = "pyarrow",
    chunk_rows: int = SAV_CHUNK_ROWS,
) -> Sources:
    """:func:`read_sources` without a step context (tests and benchmarks)."""
    where = {"city": city, "data_dir": data_dir, "root": root}
    return _sources(delivery, cfg, engine=engine, chunk_rows=chunk_rows, **where)


def _sources(delivery: dict[str, pd.DataFrame], cfg: CbsFiles, **where: Any) -> Sources:
    keys = cohort_keys(delivery["clients"])
    cbs = {f: read_cbs_table(cfg, t, keys=keys, **where) for f, t in SOURCE_TABLES.items()}
    return Sources(
        clients=delivery["clients"],
        benefit_spells=delivery["benefit_spells"],
        instruments=delivery["instruments"],
        **cbs,
    )


# ---------------------------------------------------------------------------
# custody and the check command
# ---------------------------------------------------------------------------


def table_folders(cfg: CbsFiles, *, city: str, data_dir: Path, root: Path) -> list[Path]:
    """Each table's folder up to its first per-year part (the folder that
    holds all its files)."""
    base = _base(cfg, city=city, data_dir=data_dir, root=root)
    out = []
    for table in CBS_COLUMNS:
        spec = table_settings(cfg, table)
        parts = []
        for part in Path(spec.folder).parts if spec.folder else ():
            if "{year}" in part:
                break
            parts.append(part.format(table=table, city=city, data_dir=data_dir.as_posix()))
        folder = base.joinpath(*parts)
        if folder not in out:
            out.append(folder)
    return out


def research_roots(
    cfg: CbsFiles, *, city: str, data_dir: Path, root: Path, known: Any
) -> dict[str, str]:
    """The table folders that belong to no custody domain yet, as research
    roots: the CBS files of a secure environment are research data. A folder
    inside another domain (a configuration pointing at municipal files) keeps
    its domain, so the researcher is still refused; the compendium root and
    its ancestors are never claimed."""
    from ..core.custody import CustodyError

    out = {}
    for folder in table_folders(cfg, city=city, data_dir=data_dir, root=root):
        resolved = folder.resolve()
        if resolved == Path(root).resolve() or resolved in Path(root).resolve().parents:
            continue
        try:
            known.domain_of(folder)
        except CustodyError:
            out[str(folder)] = "research"
    return out


def years_needed(study: dict[str, Any], pre_months: int = PRE_MONTHS) -> tuple[int, int]:
    """(first, last) calendar year of CBS data a city's study period needs:
    from ``pre_months`` before the first inflow month (and the medication
    years before the first inflow year) to the follow-up after the last."""
    y0, m0 = (int(x) for x in str(study["inflow_from"]).split("-"))
    y1, m1 = (int(x) for x in str(study["inflow_to"]).split("-"))
    first = y0 + math.floor((m0 - 1 - pre_months) / 12)
    last = y1 + math.floor((m1 - 1 + int(study.get("follow_up_months", 24))) / 12)
    return min(first, y0 - max(HEALTH_YEARS)), last


def file_columns(path: Path) -> list[str]:
    """The column names of a CBS file, from its metadata (nothing else is
    read); for the ``cbs-files`` command, which runs in no step."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(str(path)).schema_arrow  # custody: metadata only (check)
        return list(schema.names)
    import pyreadstat

    meta = pyreadstat.read_sav(str(path), metadataonly=True)[1]  # custody: metadata only (check)
    return list(meta.column_names)


def check(
    cfg: CbsFiles, *, city: str, study: dict[str, Any], data_dir: Path, root: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """(files, problems): every configured file of ``city`` with whether it
    exists and which of the columns the panel reads it lacks, and one line
    per problem (missing file, missing column, years that do not cover the
    study period)."""
    rows, problems = [], []
    need = years_needed(study)
    for table in CBS_COLUMNS:
        spec = table_settings(cfg, table)
        years = years_of(cfg, table)
        if years is not None and (years[0] > need[0] or years[-1] < need[1]):
            problems.append(
                f"{table}: years {years[0]}-{years[-1]} do not cover {need[0]}-{need[1]}, "
                f"the years the study period of {city} needs"
            )
        wanted = [spec.columns.get(c, c) for c in CBS_COLUMNS[table] if c != spec.year_column]
        for f in files(cfg, table, city=city, data_dir=data_dir, root=root):
            exists = f.path.is_file()
            present = set(file_columns(f.path)) if exists else set(wanted)
            lacks = [c for c in wanted if c not in present]
            rows.append(
                {
                    "table": table,
                    "year": f.year,
                    "path": str(f.path),
                    "exists": exists,
                    "missing_columns": lacks,
                }
            )
            if not exists:
                problems.append(f"{f.label}: no file {f.path}")
            elif lacks:
                problems.append(f"{f.label}: {f.path} lacks the columns {', '.join(lacks)}")
    return rows, problems


def report_lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The rows of :func:`check` as aligned text lines."""
    lines = []
    for r in rows:
        year = "" if r["year"] is None else str(r["year"])
        state = "MISSING" if not r["exists"] else "ok"
        if r["exists"] and r["missing_columns"]:
            state = "COLUMNS MISSING"
        lines.append(f"{r['table']:<21} {year:>4}  {state:<15} {r['path']}")
    return lines


def run_check(size: str, *, cities: list[str] | None = None, config: Path | None = None) -> int:
    """``python -m reintegration cbs-files``: for each city (default all),
    every file the configuration names, whether it exists and has the
    columns the panel reads, and whether its years cover the study period;
    0 when all is well, 1 otherwise (the problems on standard error)."""
    import sys

    from ..core.config import list_cities, load_city
    from ..core.paths import Paths

    paths = Paths.for_size(size)
    cfg = load(paths.root, config)
    source = config or paths.root / CONFIG
    problems = []
    for city in cities or list_cities(paths.root):
        study = load_city(city, paths.root)["study"]
        where = {"city": city, "data_dir": paths.data_dir, "root": paths.root}
        rows, found = check(cfg, study=study, **where)
        first, last = years_needed(study)
        print(f"{city}: {source}, the study period needs {first}-{last}")
        for line in report_lines(rows):
            print(f"  {line}")
        problems += [f"{city}: {p}" for p in found]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"cbs-files: {'all files found' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0

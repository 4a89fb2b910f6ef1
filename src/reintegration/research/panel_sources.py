"""The inputs of the analysis panel: the linked municipal delivery
(``build/<size>/<city>/research/``: clients, benefit spells, instrument
episodes) and the CBS files (SPSS ``.sav``, or Parquet with the same columns),
of which only the columns in :data:`CBS_COLUMNS` are read.

In CBS Remote Access the CBS files are national: SPOLISBUS holds every job in
the country. The panel therefore reads them *out of core and filtered to the
cohort*: only rows whose person key (RINPERSOON) belongs to a linked client
are kept, so peak memory depends on the cohort, not on the size of the
files (:func:`read_cbs_file`). A ``.sav`` file is read in chunks of
:data:`SAV_CHUNK_ROWS` rows (``pyreadstat.read_file_in_chunks``); a Parquet
file is read one row group at a time, each filtered to the cohort before the
next is read (or scanned by DuckDB with the filter inside the scan, when
installed and asked for). Rows of persons outside
the cohort never matter to the panel (every CBS row is matched to a client
by its key), so the filtered read gives the same panel as reading the whole
file (tests/test_national.py checks this frame for frame).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.cbs_columns import CBS_COLUMNS
from .panel_contract import KEY

#: the linked delivery the panel reads
DELIVERY = ("clients", "benefit_spells", "instruments")
#: rows per chunk when a .sav file is read filtered to the cohort
SAV_CHUNK_ROWS = 500_000
#: file formats of a CBS file, in the order they are looked for
CBS_SUFFIXES = (".parquet", ".sav")
#: engines for Parquet: pyarrow (always installed) or DuckDB (optional)
PARQUET_ENGINES = ("pyarrow", "duckdb")


@dataclass
class Sources:
    """The input frames, with the column names of the delivery and the CBS files."""

    clients: pd.DataFrame
    benefit_spells: pd.DataFrame
    instruments: pd.DataFrame
    gba: pd.DataFrame
    education: pd.DataFrame
    jobs: pd.DataFrame
    bijstand: pd.DataFrame
    medication: pd.DataFrame


def cbs_file(folder: str | Path, table: str) -> Path:
    """The file of CBS table ``table`` in ``folder``: ``<table>.parquet`` when
    present, else ``<table>.sav`` (:data:`CBS_SUFFIXES`)."""
    folder = Path(folder)
    for suffix in CBS_SUFFIXES:
        path = folder / f"{table}{suffix}"
        if path.exists():
            return path
    names = " or ".join(f"{table}{s}" for s in CBS_SUFFIXES)
    raise FileNotFoundError(f"{folder}: no CBS file {names}")


def read_cbs_file(
    path: str | Path,
    table: str,
    columns: Sequence[str] | None = None,
    *,
    keys: Collection[str] | None = None,
    engine: str = "pyarrow",
    chunk_rows: int = SAV_CHUNK_ROWS,
    key: str = "RINPERSOON",
) -> pd.DataFrame:
    """A CBS file (``.sav`` or ``.parquet``) with the columns the panel needs
    (:data:`CBS_COLUMNS`), as :func:`read_sav_file` returns it (dates as
    datetime64[ns], the person key as strings, rows in file order).

    With ``keys`` (RINPERSOON values, in the column ``key`` of the file) only
    the rows of those persons are kept, and the file is never held in memory
    whole: a ``.sav`` file is read ``chunk_rows`` rows at a time, a Parquet
    file one row group at a time (``engine="pyarrow"``) or by DuckDB with the filter in the scan
    (``engine="duckdb"``)."""
    path = Path(path)
    cols = list(columns) if columns is not None else list(CBS_COLUMNS.get(table, ())) or None
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, cols, keys, engine, key)
    if path.suffix.lower() != ".sav":
        raise ValueError(f"{path}: a CBS file must end in .sav or .parquet")
    if keys is None:
        return read_sav_file(path, table, cols)
    return _read_sav_filtered(path, cols, keys, chunk_rows, key)


def read_sav_file(
    path: str | Path, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A CBS ``.sav`` file: the columns the panel needs (:data:`CBS_COLUMNS`),
    dates as datetime64, the person key as strings (RINPERSOON keeps its
    leading zeros)."""
    import pyreadstat

    cols = list(columns) if columns is not None else list(CBS_COLUMNS.get(table, ())) or None
    df, _ = pyreadstat.read_sav(str(path), usecols=cols, dates_as_pandas_datetime=True)
    for key in KEY:
        if key in df.columns:
            df[key] = df[key].astype(str)
    return df


def _key_column(df: pd.DataFrame) -> pd.DataFrame:
    for key in KEY:
        if key in df.columns:
            df[key] = df[key].astype(str)
    return df


def _read_sav_filtered(
    path: Path,
    cols: list[str] | None,
    keys: Collection[str],
    chunk_rows: int,
    key: str = "RINPERSOON",
) -> pd.DataFrame:
    """The rows of a .sav file whose person key (column ``key``) is in
    ``keys``, read in chunks."""
    import pyreadstat

    wanted = pd.Index(pd.unique(pd.Series(list(keys), dtype=object).astype(str)))
    parts: list[pd.DataFrame] = []
    date_cols: set[str] = set()
    chunks = pyreadstat.read_file_in_chunks(
        pyreadstat.read_sav,
        str(path),
        chunksize=int(chunk_rows),
        usecols=cols,
        dates_as_pandas_datetime=True,
    )
    for chunk, meta in chunks:
        if key not in chunk.columns:
            raise ValueError(f"{path}: no column {key} to filter the cohort on")
        date_cols |= {
            c for c, f in meta.original_variable_types.items() if str(f).upper().startswith("DATE")
        }
        keep = wanted.get_indexer(chunk[key].astype(str)) >= 0
        parts.append(chunk.loc[keep])
    if not parts:  # no rows at all: the whole (empty) file
        return read_sav_file(path, path.stem, cols)
    df = pd.concat(parts, ignore_index=True)
    for c in date_cols & set(df.columns):
        df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
    return _key_column(df)


def _read_parquet(
    path: Path,
    cols: list[str] | None,
    keys: Collection[str] | None,
    engine: str,
    key: str = "RINPERSOON",
) -> pd.DataFrame:
    """A Parquet CBS file, filtered to ``keys`` inside the scan, with the
    dtypes of a .sav read (strings as objects, dates as datetime64[ns])."""
    import pyarrow as pa

    if engine not in PARQUET_ENGINES:
        raise ValueError(f"unknown Parquet engine {engine!r}; choose one of {PARQUET_ENGINES}")
    wanted = None
    if keys is not None:
        wanted = pa.array(pd.unique(pd.Series(list(keys), dtype=object).astype(str)), pa.string())
    if engine == "duckdb":
        table = _duckdb_scan(path, cols, wanted, key)
    else:
        table = _arrow_scan(path, cols, wanted, key)
    df = table.to_pandas()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            df[c] = df[c].astype("datetime64[ns]")
        elif pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].astype(object)
    return _key_column(df)


def _arrow_scan(path: Path, cols: list[str] | None, wanted: Any, key: str = "RINPERSOON") -> Any:
    """The pyarrow scan of :func:`_read_parquet`: one row group at a time,
    each filtered to the cohort's keys before the next is read, so memory
    holds one decoded row group and the kept rows (a dataset scan with its
    read-ahead held about twice as much in the benchmark); an Arrow table in
    file order."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(path))
    missing = [c for c in cols or () if c not in f.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: columns missing: {missing}")
    if wanted is None:
        return f.read(columns=cols)
    if key not in f.schema_arrow.names:
        raise ValueError(f"{path}: no column {key} to filter the cohort on")
    read = cols if cols is None or key in cols else [*cols, key]
    parts = []
    for i in range(f.num_row_groups):
        group = f.read_row_group(i, columns=read)
        # as text: an empty file's key column has no type (null) in Parquet
        parts.append(group.filter(pc.is_in(group[key].cast(pa.string()), value_set=wanted)))
    table = pa.concat_tables(parts) if parts else f.schema_arrow.empty_table()
    return table.select(cols) if cols else table


def _duckdb_scan(path: Path, cols: list[str] | None, wanted: Any, key: str = "RINPERSOON") -> Any:
    """The DuckDB scan of :func:`_read_parquet`: a semi-join on the person
    key with the cohort's keys, in file order (``file_row_number``); an Arrow
    table."""
    try:
        import duckdb
    except ImportError as exc:  # optional: pyarrow does the same scan
        raise ImportError("engine='duckdb' needs the duckdb package (pip install duckdb)") from exc
    import pyarrow as pa

    select = ", ".join(f't."{c}"' for c in cols) if cols else "t.* EXCLUDE (file_row_number)"
    literal = str(path).replace("'", "''")
    sql = f"SELECT {select} FROM read_parquet('{literal}', file_row_number = true) AS t"
    con = duckdb.connect()
    try:
        if wanted is not None:
            con.register("cohort_keys", pa.table({"k": wanted}))
            sql += f' WHERE t."{key}" IN (SELECT k FROM cohort_keys)'
        # a relation, not a DB-API result: its Arrow table is not copied once more
        result = con.sql(sql + " ORDER BY t.file_row_number")
        fetch = getattr(result, "to_arrow_table", None) or result.arrow  # DuckDB 2 / 1.x
        return fetch()
    finally:
        con.close()


def cohort_keys(clients: pd.DataFrame) -> pd.Index:
    """The RINPERSOON values of the linked clients: the keys the CBS files
    are filtered to (RINPERSOONS is compared later, when rows are matched)."""
    return pd.Index(pd.unique(clients["RINPERSOON"].astype(str).to_numpy(dtype=object)))


#: the fields of :class:`Sources` and the CBS table each comes from
SOURCE_TABLES = {
    "gba": "GBAPERSOONTAB",
    "education": "HOOGSTEOPLTAB",
    "jobs": "SPOLISBUS",
    "bijstand": "BIJSTANDUITKERINGTAB",
    "medication": "MEDICIJNTAB",
}


def read_sources_from(
    delivery: dict[str, pd.DataFrame],
    cbs_folder: str | Path,
    *,
    engine: str = "pyarrow",
    chunk_rows: int = SAV_CHUNK_ROWS,
) -> Sources:
    """:func:`reintegration.research.cbs_files.read_sources` without a step
    context: the frames of the linked delivery and the folder of the CBS
    files (``.parquet`` or ``.sav``, :func:`cbs_file`), read filtered to the
    cohort. For the national-scale benchmark and tests, which read their own
    temporary files."""
    keys = cohort_keys(delivery["clients"])
    cbs = {
        f: read_cbs_file(
            cbs_file(cbs_folder, t), t, keys=keys, engine=engine, chunk_rows=chunk_rows
        )
        for f, t in SOURCE_TABLES.items()
    }
    return Sources(
        clients=delivery["clients"],
        benefit_spells=delivery["benefit_spells"],
        instruments=delivery["instruments"],
        **cbs,
    )

"""The synthetic CBS files in the layout a configuration names (for example
the Remote Access layout of ``config/examples/cbs_files.remote_access.yml``:
a folder per table, a ``.sav`` file per year, CBS's column names).

The synthetic world holds each CBS table as one frame (one ``.sav`` per
table in the default layout). A table whose configuration has a file per
year is cut into years the way CBS delivers it:

* job and benefit spells (SPOLISBUS, BIJSTANDUITKERINGTAB): each year file
  holds the part of every spell that falls in that year, its start and end
  clipped to the year; a job's wage and hours are split over the parts in
  proportion to their days. An open spell is closed at the end of every year
  but the last. The panel merges benefit spells that touch and counts jobs
  per month, so the parts give the same panel as the whole spells;
* medication (MEDICIJNTAB): the rows of the year (column ``JAAR``), without
  that column when the configuration's ``year_column`` says the year is only
  in the file name;
* education (HOOGSTEOPLTAB): every person's level in every year (the
  synthetic level does not change);
* any other table: not cut (an error names it).

Rows before the first or after the last configured year are not written,
as they are not in the files a project is given. A table in one file is
written whole. Columns are renamed to the names the configuration gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.config_settings import CbsFiles
from ..research import cbs_files
from .schema import table as schema_table
from .writers import Writer, _check_columns

#: spell tables: start column, end column, amounts split over a spell's parts
SPELLS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "SPOLISBUS": ("SDATUMAANVANGIKO", "SDATUMEINDEIKO", ("SBASISLOON", "SBASISUREN")),
    "BIJSTANDUITKERINGTAB": (
        "BIJSTANDAanvangUitkeringPersoon1A",
        "BIJSTANDEindeUitkeringPersoon1A",
        (),
    ),
}
#: tables with one row per person and year, and their year column
YEAR_ROWS = {"MEDICIJNTAB": "JAAR"}
#: tables whose rows hold in every year
EVERY_YEAR = ("HOOGSTEOPLTAB",)


def spell_part(df: pd.DataFrame, table: str, year: int, last_year: int) -> pd.DataFrame:
    """The part of each spell of ``df`` in calendar ``year``."""
    start_col, end_col, amounts = SPELLS[table]
    lo, hi = pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)
    start = pd.to_datetime(df[start_col])
    end = pd.to_datetime(df[end_col])
    # the day an open spell runs to when its amounts are shared out: the end of the data
    full_end = end.fillna(pd.Timestamp(last_year, 12, 31))
    inside = (start <= hi) & (full_end >= lo) & start.notna()
    out = df.loc[inside].copy()
    s, e, fe = start[inside], end[inside], full_end[inside]
    part_start = s.where(s > lo, lo)
    part_end = fe.where(fe < hi, hi)
    days = (np.maximum(fe, s) - s).dt.days.to_numpy(dtype=float) + 1
    part_days = (part_end - part_start).dt.days.to_numpy(dtype=float) + 1
    for column in amounts:
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        out[column] = values * part_days / days
    out[start_col] = part_start.to_numpy(dtype="datetime64[ns]")
    # an open spell stays open in the last year; every other part ends with its year
    keep_open = e.isna().to_numpy() & (year == last_year)
    out[end_col] = np.where(keep_open, np.datetime64("NaT"), part_end.to_numpy("datetime64[ns]"))
    out[end_col] = out[end_col].astype("datetime64[ns]")
    return out


def year_part(df: pd.DataFrame, table: str, year: int, last_year: int) -> pd.DataFrame:
    """The rows of ``table`` in its file of ``year``."""
    if table in SPELLS:
        return spell_part(df, table, year, last_year)
    if table in YEAR_ROWS:
        column = YEAR_ROWS[table]
        return df.loc[pd.to_numeric(df[column], errors="coerce") == year]
    if table in EVERY_YEAR:
        return df
    raise ValueError(
        f"{table}: the synthetic generator cannot cut this table into years; give it one file "
        "(no {year} in its folder or file name)"
    )


def write_cbs_layout(
    w: Writer,
    cfg: CbsFiles,
    research: dict[str, pd.DataFrame],
    *,
    city: str,
    data_dir: Path,
    root: Path,
) -> None:
    """Write the CBS tables of ``research`` where ``cfg`` says, a file per
    year where it names one, with its column names."""
    unknown = sorted(set(research) - set(cbs_files.CBS_COLUMNS))
    if unknown:
        raise ValueError(f"no configured place for the CBS tables {', '.join(unknown)}")
    for table in cbs_files.CBS_COLUMNS:
        df = research[table]
        _check_columns(df, schema_table(table, "research"))
        spec = cbs_files.table_settings(cfg, table)
        years = cbs_files.years_of(cfg, table)
        for f in cbs_files.files(cfg, table, city=city, data_dir=data_dir, root=root):
            part = df if f.year is None else year_part(df, table, f.year, years[-1])
            if spec.year_column is not None:
                part = part.drop(columns=[spec.year_column])
            _write(w, f.path, part, table, spec.columns)


def _write(w: Writer, path: Path, df: pd.DataFrame, table: str, names: dict[str, str]) -> None:
    """One file: columns renamed to ``names``, with the schema's meanings as labels."""
    meaning = {c.name: c.meaning[:120] for c in schema_table(table, "research").columns}
    labels: dict[str, Any] = {names.get(c, c): meaning[c] for c in df.columns if c in meaning}
    out = df.rename(columns=names).reset_index(drop=True)
    if path.suffix.lower() == ".parquet":
        w.parquet(path, out)
    else:
        w.sav(path, out, table, labels=labels)

"""The inputs of the analysis panel: the linked municipal delivery
(``build/<size>/<city>/research/``: clients, benefit spells, instrument
episodes) and the CBS files (SPSS ``.sav``), of which only the columns in
:data:`CBS_COLUMNS` are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .panel_contract import KEY

#: CBS files and the columns the panel reads from them
CBS_COLUMNS: dict[str, tuple[str, ...]] = {
    "GBAPERSOONTAB": (
        "RINPERSOONS",
        "RINPERSOON",
        "GBAGESLACHT",
        "GBAGEBOORTEJAAR",
        "GBAGEBOORTEMAAND",
        "GBAHERKOMSTGROEPERING",
        "GBAGENERATIE",
    ),
    "HOOGSTEOPLTAB": ("RINPERSOONS", "RINPERSOON", "OPLNIVSOI2016AGG4HBMETNIRWO"),
    "SPOLISBUS": ("RINPERSOONS", "RINPERSOON", "SDATUMAANVANGIKO", "SDATUMEINDEIKO", "SBASISLOON"),
    "BIJSTANDUITKERINGTAB": (
        "RINPERSOONS",
        "RINPERSOON",
        "BIJSTANDAanvangUitkeringPersoon1A",
        "BIJSTANDEindeUitkeringPersoon1A",
        "BIJSTANDSTATCODE",
    ),
    "MEDICIJNTAB": ("RINPERSOONS", "RINPERSOON", "JAAR", "ATC4"),
}
#: the linked delivery the panel reads
DELIVERY = ("clients", "benefit_spells", "instruments")


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


def read_sav(ctx: Any, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One CBS file of the step's city, read through the step context's
    custody check (see :func:`read_sav_file`)."""
    folder = ctx.paths.data_domain_dir("research", ctx.city_name)
    return read_sav_file(ctx.check_read(Path(folder) / f"{table}.sav"), table, columns)


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


def read_sources(ctx: Any) -> Sources:
    """The linked delivery and the CBS files of the step's city."""
    delivery = {
        t: ctx.read_parquet(ctx.upstream_path(f"{t}.parquet", "research")) for t in DELIVERY
    }
    return Sources(
        clients=delivery["clients"],
        benefit_spells=delivery["benefit_spells"],
        instruments=delivery["instruments"],
        gba=read_sav(ctx, "GBAPERSOONTAB"),
        education=read_sav(ctx, "HOOGSTEOPLTAB"),
        jobs=read_sav(ctx, "SPOLISBUS"),
        bijstand=read_sav(ctx, "BIJSTANDUITKERINGTAB"),
        medication=read_sav(ctx, "MEDICIJNTAB"),
    )

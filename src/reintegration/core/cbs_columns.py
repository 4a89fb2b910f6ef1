"""The columns the analysis panel reads from each CBS table: a data contract
shared by the typed configuration of ``config/cbs_files.yml`` (a renamed
column must be one of these) and the panel's readers
(:mod:`reintegration.research.panel_sources`)."""

from __future__ import annotations

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

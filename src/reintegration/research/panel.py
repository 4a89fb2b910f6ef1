"""The analysis panel: cohort, covariates at inflow, instrument episodes,
person-month panel and outcomes, from the linked delivery and the CBS files.

Everything here runs in the research domain, keyed by RINPERSOONS +
RINPERSOON. The step reads

* the linked municipal delivery (``build/<size>/<city>/research/``: clients,
  benefit spells, instrument episodes; see :data:`reintegration.linking.linkage.RESEARCH_TABLES`),
* the CBS files (``GBAPERSOONTAB``, ``HOOGSTEOPLTAB``, ``SPOLISBUS``,
  ``BIJSTANDUITKERINGTAB``, ``MEDICIJNTAB``; SPSS ``.sav``),

and writes four Parquet files back to the research domain (see
:data:`reintegration.research.panel_contract.CONTRACT`): ``persons`` (one row per
cohort member: covariates at inflow, first instrument, outcomes),
``person_months`` (one row per person and month from 24 months before to 24
months after inflow), ``episodes`` (the first instrument of every benefit
spell from the cohort spell on) and ``episodes_later`` (every other episode
of a cohort member).

Definitions (the methods page of the step says the same in words):

* Months are calendar months. A person is *employed* in a month when a job
  spell of SPOLISBUS overlaps it, *on benefit* when a bijstand spell does, and
  *in an instrument* when an instrument episode does. Month ``k`` of a person
  is the calendar month ``k`` months after the inflow month (``k = 0``).
* Benefit spells are the CBS spells (statistic code ``PW``): **CBS wins**
  when the municipal and CBS spells differ. A spell that starts in the
  calendar month after an earlier spell ended, or earlier, continues that
  spell (an administrative break, not a new inflow). The municipal spells are
  only compared with them (``inflow_check``).
* The cohort is every linked client whose first CBS spell *starting* in the
  study period (``study.inflow_from`` .. ``study.inflow_to`` of the city's
  configuration) exists; its start is the inflow.
* The person's instrument is the first episode starting in the inflow month
  or later and at most ``follow_up_months`` after it. Its start month counts
  months since the inflow month.
* Outcome ``h`` months after inflow is the status in month ``k = h``; ``h``
  months after instrument start it is the status in month ``k = u + h``
  (``u`` the start month), missing when that month lies beyond the follow-up
  window.

The parts: :mod:`.panel_contract` (the files' columns and key),
:mod:`.panel_sources` (reading the inputs), :mod:`.panel_months` (months,
spells and monthly states), :mod:`.panel_covariates` and
:mod:`.panel_episodes`; this module builds the panel from them
(:func:`build`), checks and writes it, and draws the step's figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.months import index as month_index
from ..core.months import quarter_labels
from ..core.months import texts as month_text
from .cbs_files import read_sources
from .panel_contract import (
    CONTRACT,
    HORIZONS,
    KEY,
    NO_INSTRUMENT,
    PRE_MONTHS,
    column_names,
    person_key,
)
from .panel_covariates import covariates_at_inflow
from .panel_episodes import instrument_columns, instrument_months, split_episodes
from .panel_months import benefit_months, job_months, merge_spells
from .panel_sources import Sources

#: statistic codes of BIJSTANDUITKERINGTAB that count as bijstand
BIJSTAND_CODES = ("PW",)

# ---------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------


@dataclass
class Panel:
    """The outputs of :func:`build` (see :data:`CONTRACT`), and two frames
    for the step's own tables: ``accounting`` (one row per linked client:
    ``stage``) and the settings used."""

    persons: pd.DataFrame
    person_months: pd.DataFrame
    episodes: pd.DataFrame
    episodes_later: pd.DataFrame
    accounting: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "persons": self.persons,
            "person_months": self.person_months,
            "episodes": self.episodes,
            "episodes_later": self.episodes_later,
        }


#: stages of a linked client on the way into the cohort
STAGES = (
    "in the cohort",
    "no bijstand spell in the CBS file",
    "no inflow in the study period",
)


def build(
    src: Sources,
    study: dict[str, Any],
    *,
    horizons: Sequence[int] = HORIZONS,
    pre_months: int = PRE_MONTHS,
) -> Panel:
    """Build the cohort, covariates, episodes, person-month panel and outcomes.

    Parameters
    ----------
    src
        The linked delivery and the CBS files (:class:`Sources`).
    study
        The city's ``study`` section: ``inflow_from`` and ``inflow_to``
        (``YYYY-MM``) and ``follow_up_months``.
    horizons
        Outcome horizons in months; those beyond the follow-up are dropped.
    pre_months
        Months of history before the inflow month.
    """
    lo, hi = -int(pre_months), int(study.get("follow_up_months", 24))
    horizons = tuple(h for h in horizons if 0 < h <= hi)
    first_m, last_m = month_index(study["inflow_from"]), month_index(study["inflow_to"])

    clients = _linked_clients(src.clients)
    cbs = _cbs_spells(src.bijstand, clients)
    accounting, inflow = _cohort(clients, cbs, first_m, last_m)
    persons = clients[accounting["stage"].to_numpy() == STAGES[0]].reset_index(drop=True)
    index = pd.Index(person_key(persons))
    coh = inflow.loc[index]
    t0 = coh["start_m"].to_numpy(dtype="int64")

    out = _inflow_columns(persons, coh, t0)
    out["inflow_check"] = _inflow_check(src.benefit_spells, index, t0, first_m, last_m)
    covariates_at_inflow(out, persons, src, index, t0)

    # monthly states: column j of each (persons, months) array is month k = lo + j
    on_benefit = benefit_months(cbs, index, t0, lo, hi)
    employed, earnings = job_months(src.jobs, index, t0, lo, hi, last_m)
    episodes, later, first = split_episodes(
        src.instruments, index, t0, cbs, coh["seq"].to_numpy(dtype="int64"), hi
    )
    ep_all = pd.concat([episodes, later], ignore_index=True)
    in_instrument, after_start, u = instrument_months(ep_all, first, index, t0, lo, hi)
    instrument_columns(out, first, ep_all, index, hi)

    _outcome_columns(out, employed, on_benefit, earnings, u, lo, hi, horizons)
    pm = pd.DataFrame(
        {
            "RINPERSOONS": _per_month(persons["RINPERSOONS"], lo, hi),
            "RINPERSOON": _per_month(persons["RINPERSOON"], lo, hi),
            **_month_columns(t0, lo, hi),
            "employed": employed.ravel().astype("int8"),
            "earnings": earnings.ravel().round(2),
            "on_benefit": on_benefit.ravel().astype("int8"),
            "in_instrument": in_instrument.ravel().astype("int8"),
            "after_instrument_start": after_start.ravel().astype("int8"),
        }
    )
    settings = {
        "inflow_from": study["inflow_from"],
        "inflow_to": study["inflow_to"],
        "pre_months": int(pre_months),
        "follow_up_months": hi,
        "horizons": list(horizons),
        "benefit_source": "CBS BIJSTANDUITKERINGTAB, statistic codes " + ", ".join(BIJSTAND_CODES),
    }
    out = out[column_names("persons", horizons)]
    return Panel(out, pm, episodes, later, accounting, settings)


def _linked_clients(clients: pd.DataFrame) -> pd.DataFrame:
    """The linked clients, one row per person, in key order."""
    clients = clients.copy()
    clients["RINPERSOONS"] = clients["RINPERSOONS"].astype(str)
    clients["RINPERSOON"] = clients["RINPERSOON"].astype(str)
    clients = clients.drop_duplicates(KEY).sort_values(KEY, kind="stable")
    return clients.reset_index(drop=True)


def _cbs_spells(bijstand: pd.DataFrame, clients: pd.DataFrame) -> pd.DataFrame:
    """The merged CBS bijstand spells (:data:`BIJSTAND_CODES`) of the linked
    clients: the benefit spells of the panel (CBS wins)."""
    bij = bijstand[bijstand["BIJSTANDSTATCODE"].astype(str).str.strip().isin(BIJSTAND_CODES)]
    cbs = merge_spells(bij, "BIJSTANDAanvangUitkeringPersoon1A", "BIJSTANDEindeUitkeringPersoon1A")
    client_index = pd.Index(person_key(clients))
    return cbs[client_index.get_indexer(person_key(cbs)) >= 0] if len(cbs) else cbs


def _cohort(
    clients: pd.DataFrame, cbs: pd.DataFrame, first_m: int, last_m: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accounting, inflow): the stage of every linked client (:data:`STAGES`)
    and, indexed by person key, the first CBS spell starting in the study
    period of each cohort member (its start is the inflow)."""
    client_index = pd.Index(person_key(clients))
    in_period = cbs[(cbs["start_m"] >= first_m) & (cbs["start_m"] <= last_m)]
    inflow = in_period.drop_duplicates(KEY, keep="first")
    inflow = inflow.set_index(person_key(inflow))
    has_spell = set(person_key(cbs)) if len(cbs) else set()
    stage = np.where(
        client_index.isin(inflow.index),
        STAGES[0],
        np.where(client_index.isin(list(has_spell)), STAGES[2], STAGES[1]),
    )
    accounting = pd.DataFrame(
        {"RINPERSOONS": clients["RINPERSOONS"], "RINPERSOON": clients["RINPERSOON"], "stage": stage}
    )
    return accounting, inflow


def _inflow_columns(persons: pd.DataFrame, coh: pd.DataFrame, t0: np.ndarray) -> pd.DataFrame:
    """The key, link route and inflow columns of ``persons``."""
    out = pd.DataFrame(
        {
            "RINPERSOONS": persons["RINPERSOONS"].astype("string"),
            "RINPERSOON": persons["RINPERSOON"].astype("string"),
            "link_route": persons["link_route"].astype("string"),
            "inflow_date": coh["start_date"].to_numpy(dtype="datetime64[ns]"),
            "inflow_month": month_text(t0),
            "inflow_quarter": quarter_labels(month_text(t0)).to_numpy(dtype=object),
            "inflow_year": (1970 + t0 // 12).astype("int16"),
            "cohort_spell_end": coh["end_date"].to_numpy(dtype="datetime64[ns]"),
        }
    )
    out["inflow_month"] = out["inflow_month"].astype("string")
    out["inflow_quarter"] = out["inflow_quarter"].astype("string")
    return out


def _inflow_check(
    benefit_spells: pd.DataFrame, index: pd.Index, t0: np.ndarray, first_m: int, last_m: int
) -> Any:
    """The municipal spells compared with the CBS inflow (not used to build
    the panel): same month, other month, or no municipal spell."""
    mun = merge_spells(benefit_spells)
    if len(mun):
        mun = mun[(mun["start_m"] >= first_m) & (mun["start_m"] <= last_m)]
        mun = mun.drop_duplicates(KEY, keep="first")
        mun_m = pd.Series(mun["start_m"].to_numpy(), index=person_key(mun)).reindex(index)
    else:
        mun_m = pd.Series(np.nan, index=index)
    return pd.array(
        np.where(
            mun_m.isna().to_numpy(),
            "no municipal spell",
            np.where(mun_m.to_numpy() == t0, "same month", "other month"),
        ),
        dtype="string",
    )


def _outcome_columns(
    out: pd.DataFrame,
    employed: np.ndarray,
    on_benefit: np.ndarray,
    earnings: np.ndarray,
    u: np.ndarray,
    lo: int,
    hi: int,
    horizons: Sequence[int],
) -> None:
    """History before inflow, outcomes after inflow and after instrument start
    (month ``k = u + h``), from the monthly states (column j is month
    ``k = lo + j``)."""
    pre, post = slice(0, -lo), slice(1 - lo, hi - lo + 1)
    out["prior_employment_months"] = employed[:, pre].sum(axis=1).astype("int8")
    out["prior_employment"] = out["prior_employment_months"] / float(-lo)
    out["prior_earnings"] = earnings[:, pre].sum(axis=1).round(2)
    out["prior_benefit_months"] = on_benefit[:, pre].sum(axis=1).astype("int8")
    for h in horizons:
        out[f"employed_{h}"] = employed[:, h - lo].astype("int8")
        out[f"off_benefit_{h}"] = (~on_benefit[:, h - lo]).astype("int8")
    out["months_employed"] = employed[:, post].sum(axis=1).astype("int8")
    out["months_on_benefit"] = on_benefit[:, post].sum(axis=1).astype("int8")
    out["earnings_after"] = earnings[:, post].sum(axis=1).round(2)
    rows = np.arange(len(out))
    for h in horizons:
        k = u + h
        seen = (u >= 0) & (k <= hi)
        kk = np.where(seen, k, 0) - lo
        emp = pd.array(np.where(seen, employed[rows, kk], 0).astype("int8"), dtype="Int8")
        off = pd.array(np.where(seen, ~on_benefit[rows, kk], 0).astype("int8"), dtype="Int8")
        emp[~seen] = pd.NA
        off[~seen] = pd.NA
        out[f"employed_after_start_{h}"] = emp
        out[f"off_benefit_after_start_{h}"] = off


def _per_month(column: pd.Series, lo: int, hi: int) -> np.ndarray:
    """A person column repeated for each month k = lo .. hi."""
    return np.repeat(column.to_numpy(dtype=object), hi - lo + 1)


def _month_columns(t0: np.ndarray, lo: int, hi: int) -> dict[str, np.ndarray]:
    """``month`` (k) and ``calendar_month`` of the person-month rows."""
    width = hi - lo + 1
    months_rel = np.tile(np.arange(lo, hi + 1).astype("int8"), len(t0))
    calendar = (np.repeat(t0, width) + months_rel).astype("datetime64[M]").astype("datetime64[ns]")
    return {"month": months_rel, "calendar_month": calendar}


# ---------------------------------------------------------------------------
# checks, aggregates and writing
# ---------------------------------------------------------------------------


def check(panel: Panel) -> dict[str, bool]:
    """The invariants of the panel, each True when it holds."""
    p, pm = panel.persons, panel.person_months
    width = panel.settings["pre_months"] + panel.settings["follow_up_months"] + 1
    lo = -panel.settings["pre_months"]
    n = len(p)
    keys = set(person_key(p))
    # rows in key order: person by person, months -pre .. follow-up
    ordered = (
        len(pm) == n * width
        and all(
            (pm[c].to_numpy(dtype=object) == np.repeat(p[c].to_numpy(dtype=object), width)).all()
            for c in KEY
        )
        and (pm["month"].to_numpy() == np.tile(np.arange(lo, lo + width), n)).all()
    )
    inside = set(person_key(pm.drop_duplicates(KEY))) <= keys and all(
        set(person_key(df)) <= keys for df in (panel.episodes, panel.episodes_later)
    )
    agree = False
    if ordered:
        emp = pm["employed"].to_numpy().reshape(n, width)
        ben = pm["on_benefit"].to_numpy().reshape(n, width)
        agree = (
            all(
                (emp[:, h - lo] == p[f"employed_{h}"].to_numpy()).all()
                and (1 - ben[:, h - lo] == p[f"off_benefit_{h}"].to_numpy()).all()
                for h in panel.settings["horizons"]
            )
            and (emp[:, 1 - lo :].sum(axis=1) == p["months_employed"].to_numpy()).all()
        )
    first = panel.episodes[panel.episodes["first_after_inflow"]]
    return {
        "one row per person": bool(not p.duplicated(KEY).any()),
        "one row per person-month, in key order": bool(ordered),
        "no person outside the cohort": bool(inside),
        "outcomes agree with the monthly panel": bool(agree),
        "one first instrument per person": bool(
            not first.duplicated(KEY).any()
            and len(first) == int((p["instrument"] != NO_INSTRUMENT).sum())
        ),
    }


def status_by_month(person_months: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Persons, and persons with and without each status, per month k.

    A share is shown in the figure only where both the number with and the
    number without the status reach ``threshold``; elsewhere both counts are
    NaN (not shown), so the figure's counts pass the disclosure rules."""
    g = person_months.groupby("month", sort=True)
    counts = pd.DataFrame({"persons": g.size()})
    for status in ("employed", "on_benefit", "in_instrument"):
        yes = g[status].sum().astype(float)
        no = counts["persons"] - yes
        small = (yes < threshold) | (no < threshold)
        counts[status] = yes.where(~small)
        counts[f"not_{status}"] = no.where(~small)
    counts.loc[counts["persons"] < threshold] = np.nan
    return counts


_STATUS_LABELS = {
    "employed": "employed",
    "on_benefit": "on bijstand",
    "in_instrument": "in an instrument",
}


def status_figure(
    counts: pd.DataFrame, horizons: Sequence[int] = HORIZONS, *, threshold: int | None = None
) -> Any:
    """Shares employed, on bijstand and in an instrument by month since
    inflow, drawn only where :func:`status_by_month` kept the counts; a month
    whose counts were masked is marked by a hatched box at the bottom (see
    :mod:`reintegration.disclosure.figures`)."""
    import matplotlib.pyplot as plt

    from ..disclosure import figures

    fig, ax = plt.subplots(figsize=(8, 4.2))
    drawn, slot = 0, 0
    x = counts.index.to_numpy(dtype=float)
    for status, colour in zip(_STATUS_LABELS, ("#2f5d8c", "#d08c60", "#6a9f58"), strict=True):
        share = (counts[status] / counts["persons"]).to_numpy(dtype=float)
        ax.plot(x, share, marker="o", markersize=2.5, color=colour, label=_STATUS_LABELS[status])
        k = figures.mark_suppressed(ax, x, share, colour=colour, slot=slot)
        slot += bool(k)
        drawn += k
    ax.axvline(0, color="#444444", linewidth=1)
    for h in horizons:
        ax.axvline(h, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.set_xlabel("months since the inflow month (0 = inflow)")
    ax.set_ylabel("share of the cohort")
    ax.set_ylim(0, 1)
    ax.set_title("Status by month around inflow (dotted: outcome horizons)")
    figures.legend(ax, drawn, threshold, frameon=False, loc="upper left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


#: bands of the instrument start month (months since inflow)
START_BANDS = ((0, "0-2"), (3, "3-5"), (6, "6-8"), (9, "9-11"), (12, "12-17"), (18, "18-24"))


NO_START_BAND = "no instrument"


def start_bands(persons: pd.DataFrame) -> pd.DataFrame:
    """Every person of the cohort, with the band of their first instrument's
    start month (months since inflow) as an ordered category, and
    ``"no instrument"`` for persons without one: a one-way table over the
    whole cohort, so that its total is the cohort's and the differencing
    check can join it with the other tables of the cohort."""
    treated = (persons["instrument"] != NO_INSTRUMENT).to_numpy()
    u = persons["instrument_elapsed"].fillna(-1).to_numpy(dtype=int)
    band = np.full(len(persons), NO_START_BAND, dtype=object)
    for bound, label in START_BANDS:
        band[treated & (u >= bound)] = label
    present = [b for _, b in START_BANDS if b in set(band)]
    if (~treated).any():
        present.append(NO_START_BAND)
    order = pd.CategoricalDtype(present, ordered=True)
    return pd.DataFrame({"start month since inflow": pd.Series(band).astype(order)})


def settings_record(panel: Panel, written: dict[str, Path]) -> dict[str, Any]:
    """The step's machine-readable record (release domain): definitions,
    files and invariants; no counts of persons."""
    return {
        "settings": panel.settings,
        "files": {
            name: {
                "file": written[name].name,
                "key": CONTRACT[name]["key"],
                "columns": list(frame.columns),
            }
            for name, frame in panel.frames.items()
        },
        "checks": check(panel),
    }


def write(ctx: Any, panel: Panel) -> dict[str, Path]:
    """Write the four Parquet files to the research domain and ``panel.json``
    (definitions, columns and invariants) beside the executed notebook."""
    written = {
        name: ctx.write_parquet(f"{name}.parquet", frame, domain="research")
        for name, frame in panel.frames.items()
    }
    written["panel"] = ctx.write_json("panel.json", settings_record(panel, written))
    return written


def run(ctx: Any) -> tuple[Panel, dict[str, Path]]:
    """Read, build and write: the whole step without its tables (used by the
    benchmark)."""
    panel = build(read_sources(ctx), ctx.city["study"])
    return panel, write(ctx, panel)

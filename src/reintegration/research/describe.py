"""Who gets which instrument: take-up, coverage over time, outcome rates and
covariate balance, from the panel's person file.

Every function returns a plain frame that a notebook hands to the disclosure
register (:mod:`reintegration.disclosure`): person-level frames with readable
group columns for ``reg.crosstab`` and ``reg.table``, or counts with NaN
where a number is not shown for ``reg.figure``. Nothing here displays a
table. The figure functions draw only what the released tables (or masked
counts) contain, so a suppressed cell never reappears in a plot.

Standardised differences (:func:`standardised_differences`) are computed from
released tables of means and standard deviations, never from person-level
data: a function of released, checked aggregates reveals nothing the
aggregates did not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.config import load_instruments
from ..core.months import quarter_labels
from ..disclosure import figures
from .labels import label
from .panel_contract import COVARIATES, HORIZONS, NO_INSTRUMENT

NONE_LABEL = "No instrument"

#: characteristics for take-up tables: column of :func:`labelled` -> title
GROUPS: dict[str, str] = {
    "distance": "distance to the labour market",
    "age group": "age at inflow",
    "sex": "sex",
    "migration": "migration background",
    "education": "education",
    "language": "Dutch language level",
    "household": "household",
    "health": "long-term medication",
    "prior work": "work in the 24 months before inflow",
}

_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    # group column: (persons column, value -> label), in display order
    "distance": ("labour_market_distance", {
        "short": "short", "medium": "medium", "large": "large", "unknown": "unknown"}),
    "age group": ("age_group", {
        "under 27": "under 27", "27-49": "27-49", "50 and over": "50 and over",
        "unknown": "unknown"}),
    "sex": ("sex", {"female": "female", "male": "male", "unknown": "unknown"}),
    "migration": ("migration", {
        "nl": "no migration background", "ma": "Moroccan", "tr": "Turkish",
        "sr": "Surinamese", "an": "Antillean or Aruban",
        "other_nonwestern": "other non-western", "western": "western", "unknown": "unknown"}),
    "education": ("education", {
        "low": "low", "middle": "middle", "high": "high", "missing": "not registered"}),
    "language": ("language_level", {
        "below_b1": "below B1", "b1_or_higher": "B1 or higher", "unknown": "unknown"}),
    "household": ("household_type", {
        "single": "single", "single_parent": "single parent", "couple": "couple",
        "couple_children": "couple with children", "unknown": "unknown"}),
}

#: readable names of the balance covariates, from the one label table
COVARIATE_LABELS: dict[str, str] = {
    c: label(c)
    for c in (
        *(c for c in COVARIATES if c != "prior_employment"),
        "age",
        "prior_employment_months",
        "prior_earnings",
    )
}
BINARY_COVARIATES = tuple(c for c in COVARIATES if c != "prior_employment")
CONTINUOUS_COVARIATES = ("age", "prior_employment_months", "prior_earnings")


def instrument_labels(root: Path | None = None) -> dict[str, str]:
    """Instrument key -> label, in taxonomy order, with ``none`` first."""
    labels = {NO_INSTRUMENT: NONE_LABEL}
    labels.update({k: v["label"] for k, v in load_instruments(root).items()})
    return labels


def _ordered(values: Sequence[str] | pd.Series, order: Sequence[str]) -> pd.Categorical:
    present = set(pd.Series(values).astype(str))
    cats = [c for c in order if c in present]
    cats += sorted(present - set(cats))
    return pd.Categorical(pd.Series(values).astype(str), categories=cats, ordered=True)


def labelled(persons: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """One row per person with readable, ordered group columns: ``instrument``
    (label), the characteristics of :data:`GROUPS`, ``team``, ``inflow year``,
    and the numeric columns outcome and balance tables need. No missing
    values in group columns: unknowns are their own category."""
    out = pd.DataFrame(index=persons.index)
    inst = persons["instrument"].astype(str).map(lambda k: labels.get(k, k))
    out["instrument"] = _ordered(inst, list(labels.values()))
    for group, (column, mapping) in _VALUES.items():
        values = persons[column].astype("string").fillna("unknown").astype(str)
        out[group] = _ordered(values.map(lambda v, m=mapping: m.get(v, v)), list(mapping.values()))
    out["health"] = _ordered(np.where(persons["health_chronic"] == 1, "yes", "no"), ["yes", "no"])
    months = persons["prior_employment_months"].to_numpy()
    work = np.where(months == 0, "none", np.where(months < 12, "1-11 months", "12-24 months"))
    out["prior work"] = _ordered(work, ["none", "1-11 months", "12-24 months"])
    out["team"] = _ordered(persons["team"].astype("string").fillna("unknown").astype(str), [])
    out["inflow year"] = _ordered(persons["inflow_year"].astype(str), [])
    keep = [
        *BINARY_COVARIATES, *CONTINUOUS_COVARIATES, "months_employed", "earnings_after",
        *[c for c in persons.columns if c.startswith(("employed_", "off_benefit_"))],
    ]
    for column in keep:
        if column in persons.columns:
            out[column] = persons[column].astype(float).to_numpy()
    return out.reset_index(drop=True)


def take_up_counts(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Persons per group and instrument, with totals (unchecked: for tests and
    internal use, never for display)."""
    return pd.crosstab(frame[by], frame["instrument"], margins=True, margins_name="Total",
                       dropna=False)


def _quarter(months: pd.Series) -> pd.Series:
    """``YYYY-MM`` -> ``YYYYQn``."""
    return quarter_labels(months)


def events(
    persons: pd.DataFrame, episodes: Sequence[pd.DataFrame], labels: dict[str, str]
) -> pd.DataFrame:
    """One row per event of the cohort: its inflow, and every instrument
    episode start (first and later episodes), with quarter, year, event type
    and instrument label."""
    starts = pd.concat(
        [e[["start_month", "instrument"]] for e in episodes], ignore_index=True
    )
    out = pd.concat([
        pd.DataFrame({"quarter": persons["inflow_quarter"].astype(str).to_numpy(),
                      "event": "inflow", "instrument": ""}),
        pd.DataFrame({"quarter": _quarter(starts["start_month"]).to_numpy(),
                      "event": "instrument start",
                      "instrument": starts["instrument"].astype(str).map(
                          lambda k: labels.get(k, k)).to_numpy()}),
    ], ignore_index=True)
    # every quarter and year between the first and the last event, so that a
    # quarter without any event shows as a row (of suppressed zeros), not as a gap
    span = pd.period_range(out["quarter"].min(), out["quarter"].max(), freq="Q")
    quarters = [f"{p.year}Q{p.quarter}" for p in span]
    out["year"] = _ordered(out["quarter"].str[:4], sorted({q[:4] for q in quarters}))
    out["quarter"] = pd.Categorical(out["quarter"], categories=quarters, ordered=True)
    out["event"] = _ordered(out["event"], ["inflow", "instrument start"])
    out["instrument"] = _ordered(out["instrument"], list(labels.values()))
    return out


def year_of_quarter(events_frame: pd.DataFrame) -> dict[str, str]:
    """Each quarter label of :func:`events` ("2017Q3") with its year: how a
    quarter table and a year table of the same events join (see
    :meth:`reintegration.disclosure.Register.crosstab`)."""
    return {str(q): str(q)[:4] for q in events_frame["quarter"].cat.categories}


def instrument_starts(events_frame: pd.DataFrame) -> pd.DataFrame:
    """The instrument starts of :func:`events`, without the instruments that
    never start (so a table shows no empty columns); every quarter and year of
    the span stays, so a period without starts shows as a row."""
    out = events_frame[events_frame["event"] == "instrument start"].copy()
    for column in ("instrument", "event"):
        out[column] = out[column].cat.remove_unused_categories()
    return out.reset_index(drop=True)


def outcomes_long(
    frame: pd.DataFrame, *, after_start: bool = False, horizons: Sequence[int] = HORIZONS
) -> pd.DataFrame:
    """One row per person and horizon: ``instrument``, ``horizon`` (ordered
    labels such as "6 months"), ``employed`` and ``off_benefit`` (0/1). With
    ``after_start`` the horizons count from the instrument start, persons
    without an instrument are left out, and so is a horizon beyond the
    follow-up window for a person (missing, not zero)."""
    parts = []
    for h in horizons:
        emp = f"employed_after_start_{h}" if after_start else f"employed_{h}"
        off = f"off_benefit_after_start_{h}" if after_start else f"off_benefit_{h}"
        if emp not in frame.columns:
            continue
        part = pd.DataFrame({
            "instrument": frame["instrument"],
            "horizon": f"{h} months",
            "employed": frame[emp].astype(float),
            "off_benefit": frame[off].astype(float),
        })
        parts.append(part[part["employed"].notna()])
    out = pd.concat(parts, ignore_index=True)
    out["horizon"] = _ordered(out["horizon"], [f"{h} months" for h in horizons])
    if after_start:
        out = out[out["instrument"] != NONE_LABEL].reset_index(drop=True)
        out["instrument"] = out["instrument"].cat.remove_unused_categories()
    return out


def balance_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long frames for the balance tables: one row per person and covariate
    with ``covariate`` (readable, ordered), ``instrument`` and ``value``;
    0/1 covariates and continuous ones apart, so that the register applies
    the proportion rule to the first."""

    def long(columns: Sequence[str]) -> pd.DataFrame:
        parts = [
            pd.DataFrame({"covariate": COVARIATE_LABELS[c], "instrument": frame["instrument"],
                          "value": frame[c].astype(float)})
            for c in columns
        ]
        out = pd.concat(parts, ignore_index=True)
        out = out[out["value"].notna()].reset_index(drop=True)
        out["covariate"] = _ordered(out["covariate"], [COVARIATE_LABELS[c] for c in columns])
        return out

    return long(BINARY_COVARIATES), long(CONTINUOUS_COVARIATES)


#: balance covariates that are one level of a characteristic of a take-up
#: table (covariate label -> (characteristic, level)); their shares are
#: computed from those released tables, so they show nothing the counts hide
SHARE_OF_LEVEL: dict[str, tuple[str, str]] = {
    COVARIATE_LABELS[c]: level
    for c, level in {
        "female": ("sex", "female"),
        "age_under_27": ("age group", "under 27"),
        "age_50_plus": ("age group", "50 and over"),
        "education_low": ("education", "low"),
        "education_high": ("education", "high"),
        "education_missing": ("education", "not registered"),
        "single_parent": ("household", "single parent"),
        "couple_children": ("household", "couple with children"),
        "health_chronic": ("health", "yes"),
        "language_low": ("language", "below B1"),
        "distance_short": ("distance", "short"),
        "distance_large": ("distance", "large"),
    }.items()
}


def shares_from_counts(by_group: dict[str, Any], decimals: int = 3) -> pd.DataFrame:
    """The shares of :data:`SHARE_OF_LEVEL` per first instrument, computed
    from the released take-up tables only: the level's count over the
    column's total less its "unknown" count (the balance covariates are
    missing where the characteristic is unknown). A share whose count or
    denominator is suppressed there is not shown. A share times its
    instrument's size (published) is a count, so a share computed from the
    person-level data would give away every complementary-suppressed count;
    computed this way it adds nothing to what the tables publish."""
    rows = {}
    for covariate, (group, level) in SHARE_OF_LEVEL.items():
        if group not in by_group:
            continue
        table = getattr(by_group[group], "table", by_group[group]).astype(float)
        if level not in table.index or "Total" not in table.index:
            continue
        known = table.loc["Total"] - (table.loc["unknown"] if "unknown" in table.index else 0)
        rows[covariate] = (table.loc[level] / known).drop("Total", errors="ignore")
    out = pd.DataFrame(rows).T.round(decimals)
    out.index.name, out.columns.name = "covariate", "instrument"
    return out


def other_covariates(binary: pd.DataFrame, from_counts: Any) -> pd.DataFrame:
    """The rows of :func:`balance_frames`' 0/1 frame whose covariate has no
    share computed from the take-up tables (unused categories dropped)."""
    done = set(getattr(from_counts, "table", from_counts).index.astype(str))
    out = binary[~binary["covariate"].astype(str).isin(done)].copy()
    out["covariate"] = out["covariate"].cat.remove_unused_categories()
    return out.reset_index(drop=True)


def stack(*tables: Any) -> pd.DataFrame:
    """Released share tables one under the other, in the order of
    :data:`COVARIATE_LABELS`."""
    frames = [_released(t) for t in tables]
    out = pd.concat([f for f in frames if not f.empty])
    order = [c for c in COVARIATE_LABELS.values() if c in out.index]
    return out.loc[order]


def _released(table: Any) -> pd.DataFrame:
    """The table of a released output (or a frame), without its margins."""
    frame = getattr(table, "table", table)
    if frame is None:
        return pd.DataFrame()
    frame = frame.drop(index="Total", errors="ignore").drop(columns="Total", errors="ignore")
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    return frame.astype(float)


def standardised_differences(
    binary_means: Any, continuous_means: Any, continuous_sds: Any,
    *, reference: str = NONE_LABEL,
) -> pd.DataFrame:
    """Standardised differences of each instrument group against ``reference``.

    .. math:: d_j = (\\bar x_j - \\bar x_0) / \\sqrt{(s_j^2 + s_0^2) / 2}

    with :math:`s^2 = \\bar x (1 - \\bar x)` for a 0/1 covariate and the
    released standard deviation for a continuous one. The inputs are released
    outputs (or their tables): covariates in rows, instruments in columns;
    NaN (a suppressed cell) gives NaN. Returns covariates x instruments
    without the reference column, rounded to 3 decimals. An absolute
    difference above 0.1 is the usual sign of imbalance.
    """
    bm = _released(binary_means)
    cm, cs = _released(continuous_means), _released(continuous_sds)
    rows = []
    if not bm.empty and reference in bm.columns:
        var = bm * (1 - bm)
        rows.append((bm.sub(bm[reference], axis=0)).div(
            np.sqrt((var.add(var[reference], axis=0)) / 2)))
    if not cm.empty and reference in cm.columns and reference in cs.columns:
        cs = cs.reindex(index=cm.index, columns=cm.columns)
        var = cs**2
        rows.append((cm.sub(cm[reference], axis=0)).div(
            np.sqrt((var.add(var[reference], axis=0)) / 2)))
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows).drop(columns=reference)
    out = out.replace([np.inf, -np.inf], np.nan).round(3)
    out.index.name = "covariate"
    out.columns.name = "instrument"
    return out


def person_groups(rows: pd.DataFrame, persons: pd.DataFrame, groups: np.ndarray) -> np.ndarray:
    """The group (``groups``, aligned with ``persons``) of each row's person,
    NaN for a person not in ``persons``: rows and persons matched on the
    texts of RINPERSOONS and RINPERSOON, as the key ``"S:N"`` matches them
    when no RINPERSOONS holds a colon (else by that key,
    :func:`person_groups_reference`)."""
    if persons["RINPERSOONS"].astype(str).str.contains(":").any():
        return person_groups_reference(rows, persons, groups)

    def pairs(df: pd.DataFrame) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays(
            [df[c].astype(str).to_numpy(dtype=object) for c in ("RINPERSOONS", "RINPERSOON")])

    at = pairs(persons).get_indexer(pairs(rows))  # raises when a person appears twice
    out = np.asarray(groups, dtype=object)[at]
    out[at < 0] = np.nan
    return out


def person_groups_reference(rows: pd.DataFrame, persons: pd.DataFrame, groups: np.ndarray
                            ) -> np.ndarray:
    """:func:`person_groups` by the joined key ``"S:N"``."""
    group = pd.Series(
        groups,
        index=persons["RINPERSOONS"].astype(str) + ":" + persons["RINPERSOON"].astype(str),
    )
    keys = rows["RINPERSOONS"].astype(str) + ":" + rows["RINPERSOON"].astype(str)
    return keys.map(group).to_numpy()


def employment_by_month(
    person_months: pd.DataFrame, frame: pd.DataFrame, persons: pd.DataFrame, threshold: int
) -> pd.DataFrame:
    """Counts behind the employment-by-month figure: per month since inflow
    (rows) and instrument group, persons, employed and not employed (columns
    ``(group, count)``). Where a group has fewer than ``threshold`` persons in
    a month, or fewer than ``threshold`` are employed or not employed, all
    three are NaN: the point is not drawn. ``frame`` is :func:`labelled` of
    ``persons`` (same row order)."""
    keys = person_groups(person_months, persons, frame["instrument"].astype(str).to_numpy())
    g = pd.DataFrame({"group": keys, "month": person_months["month"].to_numpy(),
                      "employed": person_months["employed"].to_numpy(dtype=float)})
    agg = g.groupby(["month", "group"], sort=True)["employed"].agg(["size", "sum"])
    n = agg["size"].unstack("group").astype(float)
    yes = agg["sum"].unstack("group").astype(float)
    no = n - yes
    small = (n < threshold) | (yes < threshold) | (no < threshold)
    order = [c for c in frame["instrument"].cat.categories if c in n.columns]
    columns = {}
    for name in order:
        for count, table in (("persons", n), ("employed", yes), ("not employed", no)):
            columns[(name, count)] = table[name].where(~small[name])
    out = pd.DataFrame(columns)
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["instrument", "count"])
    return out


# ---------------------------------------------------------------------------
# figures: drawn from released tables or masked counts only
# ---------------------------------------------------------------------------

_COLOURS = ("#8c8c8c", "#2f5d8c", "#d08c60", "#6a9f58", "#b05c8a", "#c9a227", "#5aa3a8",
            "#7a5195", "#444444")


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def take_up_figure(released: Any, *, title: str, threshold: int | None = None) -> Any:
    """Shares of each group starting each instrument, from a released
    group x instrument count table with totals. A suppressed cell is drawn
    in its place in the stack as a hatched box of a nominal width (not its
    value, see :mod:`reintegration.disclosure.figures`); a group whose total is
    suppressed has every segment hatched."""
    import matplotlib.pyplot as plt

    threshold = figures.threshold_of(released, threshold)
    table = getattr(released, "table", released)
    counts = table.drop(index="Total", errors="ignore").astype(float)
    totals = counts["Total"] if "Total" in counts.columns else counts.sum(axis=1)
    counts = counts.drop(columns=["Total", NONE_LABEL], errors="ignore")
    shares = counts.div(totals, axis=0)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(shares) + 1.8))
    left = np.zeros(len(shares))
    y = np.arange(len(shares))[::-1]
    nominal = TAKE_UP_NOMINAL
    for i, column in enumerate(shares.columns):
        left = figures.bar_or_suppressed(ax, y, shares[column].to_numpy(), nominal=nominal,
                                         base=left, horizontal=True, label=column,
                                         colour=_COLOURS[(i + 1) % len(_COLOURS)])
    ax.set_yticks(y, [str(i) for i in shares.index])
    ax.set_xlabel("share of the group that started the instrument\n"
                  f"(hatched x: suppressed, drawn {nominal:.2f} wide whatever its value)")
    ax.set_title(title)
    figures.legend(ax, shares.isna().to_numpy().any(), threshold, frameon=False, fontsize=8,
                   loc="lower right", bbox_to_anchor=(1, 1.08), ncol=3)
    _style(ax)
    fig.tight_layout()
    return fig


#: width of a suppressed segment of a take-up bar (a share; a nominal size, not a value)
TAKE_UP_NOMINAL = 0.03


def _lines(ax: Any, x: Any, series: dict[str, Any], colours: Sequence[str],
           widths: dict[str, float] | None = None, marker: str | None = "o") -> int:
    """Draw one line per series; mark its suppressed points in the strip at
    the bottom (one strip row per series that has any). Returns the number of
    suppressed points marked."""
    drawn, slot = 0, 0
    for i, (name, values) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        ax.plot(x, values, marker=marker, markersize=3, color=colour, label=name,
                linewidth=(widths or {}).get(name, 1.4))
        k = figures.mark_suppressed(ax, x, values, colour=colour, slot=slot)
        slot += bool(k)
        drawn += k
    return drawn


def coverage_figure(released: Any, *, threshold: int | None = None) -> Any:
    """Inflows and instrument starts per quarter, from a released
    quarter x event count table; a suppressed quarter is a gap in the line,
    marked by a hatched box at the bottom."""
    import matplotlib.pyplot as plt

    threshold = figures.threshold_of(released, threshold)
    table = _released(released).drop(index="Total", columns="Total", errors="ignore")
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(table))
    series = {str(c): table[c].to_numpy(dtype=float) for c in table.columns}
    drawn = _lines(ax, x, series, _COLOURS[1:])
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], list(table.index[::step]), rotation=45, ha="right")
    ax.set_ylabel("persons or episodes")
    ax.set_ylim(bottom=0)
    ax.set_title("Inflow into bijstand and instrument starts per quarter")
    figures.legend(ax, drawn, threshold, frameon=False)
    _style(ax)
    fig.tight_layout()
    return fig


def outcome_figure(released: Any, *, ylabel: str, title: str,
                   threshold: int | None = None) -> Any:
    """Outcome rates by horizon for each instrument, from a released
    instrument x horizon table of means; suppressed cells are marked by
    hatched boxes at the bottom, edged in the instrument's colour."""
    import matplotlib.pyplot as plt

    threshold = figures.threshold_of(released, threshold)
    table = _released(released)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = [int(str(c).split()[0]) for c in table.columns]
    series = {str(name): row.to_numpy(dtype=float) for name, row in table.iterrows()}
    drawn = _lines(ax, x, series, _COLOURS, widths={NONE_LABEL: 2.2})
    ax.set_xticks(x)
    ax.set_xlabel("months since inflow")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    figures.legend(ax, drawn, threshold, frameon=False, fontsize=8, ncol=2)
    _style(ax)
    fig.tight_layout()
    return fig


def balance_figure(smd: Any, *, threshold: int | None = None) -> Any:
    """Standardised differences against no instrument, one panel column of
    points per instrument (a 'love plot'); dashed lines at +-0.1. A
    difference that cannot be computed because a cell behind it was
    suppressed is marked by a hatched box at the left edge."""
    import matplotlib.pyplot as plt

    threshold = figures.threshold_of(smd, threshold)
    table = getattr(smd, "table", smd).astype(float)
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(table) + 2.2))
    y = np.arange(len(table))[::-1]
    drawn, slot = 0, 0
    for i, column in enumerate(table.columns):
        colour = _COLOURS[(i + 1) % len(_COLOURS)]
        ax.scatter(table[column].to_numpy(), y, s=18, color=colour, label=column)
        k = figures.mark_suppressed(ax, y, table[column].to_numpy(), colour=colour, slot=slot,
                                    along="y")
        slot += bool(k)
        drawn += k
    for x in (-0.1, 0.1):
        ax.axvline(x, color="#999999", linestyle="--", linewidth=0.8)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_yticks(y, list(table.index))
    ax.set_xlabel(f"standardised difference against '{NONE_LABEL}'")
    ax.set_title("Covariate balance between instruments")
    handles, names = figures.add_key(*ax.get_legend_handles_labels(), drawn, threshold)
    fig.legend(handles, names, frameon=False, fontsize=8, loc="lower center", ncol=3)
    _style(ax)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def employment_figure(counts: pd.DataFrame, *, threshold: int | None = None) -> Any:
    """Share employed by month since inflow for each instrument group, drawn
    only where :func:`employment_by_month` kept the counts; months whose
    counts were masked are marked by hatched boxes at the bottom."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    groups = list(dict.fromkeys(counts.columns.get_level_values(0)))
    series = {str(name): (counts[(name, "employed")] / counts[(name, "persons")]).to_numpy(
        dtype=float) for name in groups}
    drawn = _lines(ax, counts.index.to_numpy(dtype=float), series, _COLOURS,
                   widths={NONE_LABEL: 2.2}, marker=None)
    ax.axvline(0, color="#444444", linewidth=1)
    ax.set_xlabel("months since the inflow month")
    ax.set_ylabel("share employed")
    ax.set_ylim(0, 1)
    ax.set_title("Employment around inflow by the instrument started later")
    figures.legend(ax, drawn, threshold, frameon=False, fontsize=8, ncol=2, loc="upper left")
    _style(ax)
    fig.tight_layout()
    return fig

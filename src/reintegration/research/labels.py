"""The one label table: what the book calls each column, key and design.

The code speaks in column names and configuration keys (``employed_24``,
``rollout_did``, ``wage_subsidy``); the book speaks in words. :func:`table`
is the single mapping between the two, built from

* the configuration's own descriptions: outcomes and subgroups of
  ``config/effects.yml``, instrument labels of ``config/instruments.yml``;
* :data:`DESIGNS` (the three designs of Phase 1 and 2);
* :data:`COLUMNS`: the panel's columns and covariates, with the horizons of
  ``employed_<h>``-style columns filled in.

Display code takes its words from here: :func:`label` for one name,
:func:`relabel` for a sentence that may hold names, :func:`relabel_figure`
for every text of a Matplotlib figure (axis labels, ticks, titles, legends)
drawn by a module that speaks in names, :func:`display_frame` for a table
shown (not released) on a page. The numbers helpers (:func:`number`,
:func:`pp`) give thousands separators, at most three decimals and effects
in percentage points.

:func:`raw_names` collects the names a reader must never meet in a heading,
a table header, an axis or a legend: every code-like column name and key of
``config/*.yml``, the cities' files and the data dictionary. The tests scan
the built book for them (:func:`scan_html`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..core.config import list_cities, load_city, load_instruments, read_yaml
from ..core.paths import repo_root

#: the designs of Phase 1 and Phase 2
DESIGNS: dict[str, str] = {
    "selection_on_observables": "Selection on observables",
    "rollout_did": "Staggered roll-out (difference in differences)",
    "case_manager_iv": "Case-manager instrumental variable",
}

#: the designs in a few words, for legends
DESIGN_SHORT: dict[str, str] = {
    "selection_on_observables": "selection on observables",
    "rollout_did": "roll-out",
    "case_manager_iv": "case-manager IV",
}

#: the estimands a design reports (the records' ``target``), in a few words;
#: the full descriptions are the designs' own ``targets``
TARGETS: dict[str, str] = {
    "now_vs_later": "now versus later",
    "vs_never": "versus never",
    "itt": "intention to treat",
    "per_starter": "per additional starter",
    "versus_none": "versus no instrument",
    "versus_none_controls": "versus no instrument, other propensities held fixed",
    "mixed": "versus the mix of alternatives",
}

#: horizons (months) of the panel's ``<name>_<h>`` columns
HORIZONS = (6, 12, 18, 24)

#: panel columns and covariates -> words; ``{h}`` is a horizon in months
COLUMNS: dict[str, str] = {
    "employed_{h}": "employed {h} months after inflow",
    "off_benefit_{h}": "off bijstand {h} months after inflow",
    "employed_after_start_{h}": "employed {h} months after the instrument start",
    "off_benefit_after_start_{h}": "off bijstand {h} months after the instrument start",
    "months_employed": "months employed in the 24 months after inflow",
    "months_on_benefit": "months on bijstand in the 24 months after inflow",
    "earnings_after": "earnings in the 24 months after inflow (euro)",
    "age": "age (years)",
    "female": "female",
    "age_under_27": "younger than 27",
    "age_50_plus": "50 or older",
    "age_group": "age at inflow",
    "age_band": "age at inflow",
    "migrant_first_generation": "migrant, first generation",
    "migrant_second_generation": "migrant, second generation",
    "education_low": "education low",
    "education_high": "education high",
    "education_missing": "education not registered",
    "single_parent": "single parent",
    "couple_children": "couple with children",
    "household_type": "household",
    "health_chronic": "long-term medication",
    "language_low": "Dutch below B1",
    "language_level": "Dutch language level",
    "distance_short": "distance to the labour market short",
    "distance_large": "distance to the labour market large",
    "labour_market_distance": "distance to the labour market",
    "prior_employment": "work in the 24 months before inflow",
    "prior_employment_months": "months worked in the 24 months before inflow",
    "prior_benefit_months": "months on bijstand in the 24 months before inflow",
    "prior_earnings": "earnings in the 24 months before inflow (euro)",
    "inflow_quarter": "inflow quarter",
    "inflow_month": "inflow month",
    "inflow_year": "inflow year",
    "inflow_date": "inflow date",
    "inflow_check": "municipal inflow month against CBS",
    "case_manager": "case manager",
    "instrument_start": "instrument start",
    "instrument_elapsed": "months from inflow to the instrument start",
    "on_benefit": "on bijstand",
    "in_instrument": "in an instrument",
    "not_employed": "not employed",
    "not_on_benefit": "not on bijstand",
    "not_in_instrument": "not in an instrument",
}

#: terms for counts: persons and person-months are named as such
UNITS = {"persons": "persons", "person_months": "person-months", "episodes": "episodes"}


def _expand(mapping: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, words in mapping.items():
        if "{h}" in name:
            out.update({name.format(h=h): words.format(h=h) for h in HORIZONS})
        else:
            out[name] = words
    return out


def _short(description: str) -> str:
    """A config description without its parenthesised detail."""
    return re.sub(r"\s*\(.*\)\s*$", "", str(description)).strip()


#: the names whose words need no configuration file (a step that reads no
#: config/effects.yml or config/instruments.yml can label them)
STATIC: dict[str, str] = {**TARGETS, **_expand(COLUMNS), **DESIGNS}


@lru_cache(maxsize=8)
def _instruments(root: Path) -> dict[str, str]:
    return {k: v["label"] for k, v in load_instruments(root).items()}


@lru_cache(maxsize=8)
def _effects(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    effects = root / "config" / "effects.yml"
    if effects.is_file():
        cfg = read_yaml(effects)
        out.update({k: str(v) for k, v in (cfg.get("outcomes") or {}).items()})
        out.update({k: _short(v) for k, v in (cfg.get("subgroups") or {}).items()})
    return out


def _configured(root: Path) -> dict[str, str]:
    return {**_effects(root), **_instruments(root)}


def _root(root: Path | None) -> Path:
    return Path(root or repo_root()).resolve()


def table(root: Path | None = None) -> dict[str, str]:
    """Name -> words, for every name the book may need to show (the words of
    :data:`STATIC` where both define a name)."""
    return {**_configured(_root(root)), **STATIC}


def _lookup(name: str, root: Path | None) -> str | None:
    """The words for ``name``; a configuration file is read only for a name
    that :data:`STATIC` lacks: ``config/instruments.yml`` first, then
    ``config/effects.yml``, and that only for a snake_case name (steps that
    read only one of them can label what that one defines)."""
    root_ = _root(root)
    found = STATIC.get(name) or _instruments(root_).get(name)
    if found is None and "_" in name:  # a plain word is its own label
        found = _effects(root_).get(name)
    return found


def label(name: str, root: Path | None = None) -> str:
    """The words for one name; a name not in :func:`table` with spaces for
    underscores (a plain word stays as it is)."""
    return _lookup(str(name), root) or str(name).replace("_", " ")


def substudy(sub_id: str, root: Path | None = None) -> str:
    """``design/instrument`` in words: "Selection on observables, training"."""
    design, _, instrument = str(sub_id).partition("/")
    words = label(design, root)
    if instrument == "none":  # a roll-out sub-study of a city that rolled out nothing
        return f"{words}, no instrument rolled out"
    return f"{words}, {label(instrument, root).lower()}" if instrument else words


_NAME = re.compile(r"(?<![\w-])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\w-])")


def relabel(text: str, root: Path | None = None) -> str:
    """``text`` with every snake_case name of :func:`table` in words
    (``design/instrument`` pairs as :func:`substudy`)."""
    text = re.sub(
        r"\b(" + "|".join(map(re.escape, DESIGNS)) + r")/(\w+)",
        lambda m: substudy(m.group(0), root),
        str(text),
    )
    return _NAME.sub(lambda m: _lookup(m.group(0), root) or m.group(0), text)


def _numbers_only(axis: Any) -> bool:
    """Whether an axis' formatter writes numbers only (no name to relabel)."""
    from matplotlib.ticker import LogFormatter, NullFormatter, PercentFormatter, ScalarFormatter

    return isinstance(axis.get_major_formatter(),
                      (ScalarFormatter, LogFormatter, PercentFormatter, NullFormatter))


def _fixed_ticks(axis: Any) -> bool:
    """Whether an axis' ticks sit at fixed places or categories, which do not
    depend on the size of the laid-out axes."""
    from matplotlib.category import StrCategoryLocator
    from matplotlib.ticker import FixedLocator, NullLocator

    return isinstance(axis.get_major_locator(), (FixedLocator, StrCategoryLocator, NullLocator))


def relabel_figure(fig: Any, root: Path | None = None) -> Any:
    """Every text of a Matplotlib figure (titles, axis labels, tick labels,
    legend entries, annotations) with names replaced by words; the figure.
    The title of a one-panel figure moves to the figure, where a long one
    is not cut off."""
    from matplotlib.text import Text

    # tick labels are made from the axis' formatter whenever the figure is
    # drawn; the relabelled ones are fixed where they change. An axis that
    # writes numbers only is left alone (its ticks are made at the drawing
    # that saves the figure). Unless the others all have their ticks at fixed
    # places or categories, the figure is laid out first, with the renderer a
    # PNG would be saved with and nothing painted: a locator may fit the
    # ticks to the laid-out axes
    named = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             if not _numbers_only(axis)]
    if not all(_fixed_ticks(axis) for axis in named):
        fig.draw_without_rendering()
    for axis in named:
        texts = [t.get_text() for t in axis.get_ticklabels()]
        words = [relabel(t, root) for t in texts]
        if words != texts:
            axis.set_ticks(axis.get_ticklocs(), words)
    if len(fig.axes) == 1 and fig.axes[0].get_title():  # centred on the figure, not cut off
        ax = fig.axes[0]
        fig.suptitle(ax.get_title(), fontsize="medium")
        ax.set_title("")
    for text in fig.findobj(Text):
        old = text.get_text()
        # a legend entry may be a design with spaces for underscores ("rollout did")
        new = DESIGN_SHORT.get(old.replace(" ", "_")) or relabel(old, root)
        if new != old:
            text.set_text(new)
    return fig


def figure_texts(fig: Any) -> list[str]:
    """Every non-empty text a reader sees in a figure (for tests)."""
    import io

    from matplotlib.text import Text

    fig.savefig(io.BytesIO(), format="png")  # as the register saves it: ticks are drawn
    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


# ---- numbers ----------------------------------------------------------------


def number(value: Any, decimals: int | None = None) -> str:
    """A number as the book prints it: thousands separators, whole numbers
    without decimals, others with ``decimals`` (default: 3 significant
    places after the point at most, trailing zeros dropped). Missing: ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    x = float(value)
    if decimals is None:
        if x.is_integer():
            return f"{int(x):,}"
        text = f"{x:,.3f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{x:,.{decimals}f}"


def pp(share: float, decimals: int = 1, sign: bool = True) -> str:
    """A difference in shares as percentage points: 0.053 -> '+5.3 pp'."""
    value = 100.0 * float(share)
    return f"{value:{'+' if sign else ''}.{decimals}f} pp"


def display_frame(frame: Any, root: Path | None = None) -> Any:
    """A copy of a frame for display: column names, index names and string
    index values in words (:func:`relabel`); an index value that is a whole
    instrument key or estimand, including a one-word one such as
    ``training`` that :func:`relabel` leaves alone in a sentence, by its
    label."""
    import pandas as pd

    def words(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        return TARGETS.get(v) or _instruments(_root(root)).get(v) or relabel(v, root)

    out = frame.copy()
    out.columns = [relabel(str(c), root) for c in out.columns]
    if isinstance(out.index, pd.MultiIndex):
        out.index = pd.MultiIndex.from_tuples(
            [tuple(words(v) for v in key) for key in out.index], names=out.index.names
        )
    else:
        out.index = out.index.map(words)
    out.index.names = [relabel(n, root) if n else n for n in out.index.names]
    return out


# ---- raw names and the built book --------------------------------------------


def _code_like(name: str) -> bool:
    """A column name or key no reader should meet as a label: snake_case, or
    a CBS-style capitalised name (RINPERSOON, GBAGESLACHT, SBASISLOON)."""
    if "_" in name.strip("<>"):
        return True
    return bool(re.fullmatch(r"[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*", name)) and len(name) >= 5


def _dictionary_names() -> set[str]:
    from ..synth import schema
    from .panel import CONTRACT

    names = {c.name for t in schema.TABLES for c in t.columns}
    names |= set(schema.COVARIATES)
    names |= {c for spec in CONTRACT.values() for c, _, _ in spec["columns"]}
    return names


def _config_names(root: Path) -> set[str]:
    names: set[str] = set()
    effects = root / "config" / "effects.yml"
    if effects.is_file():
        cfg = read_yaml(effects)
        names |= set(cfg.get("outcomes") or {}) | set(cfg.get("covariates") or [])
        names |= set(cfg.get("subgroups") or {})
        names |= set((cfg.get("case_manager_iv") or {}).get("cells") or [])
        names |= {k for k in cfg if isinstance(cfg[k], dict)}
    feas = root / "config" / "feasibility.yml"
    if feas.is_file():
        cfg = read_yaml(feas)
        names |= {str(cfg.get("outcome", ""))} | set(cfg.get("covariates") or [])
        names |= set(cfg.get("health_data_columns") or [])
        names |= set((cfg.get("theoretical") or {}).keys())
    names |= set(load_instruments(root))
    for city in list_cities(root):
        files = load_city(city, root)["exports"]["files"]
        for spec in files.values():
            for canon, export in (spec.get("columns") or {}).items():
                names |= {canon} | ({export} if export else set())
    return names


def raw_names(root: Path | None = None) -> set[str]:
    """Every code-like column name or key of ``config/*.yml``, the cities'
    files and the data dictionary, with ``<h>`` horizons filled in and other
    placeholders dropped."""
    root = _root(root)
    out: set[str] = set()
    for name in _config_names(root) | _dictionary_names():
        name = str(name)
        names = [name.replace("<h>", str(h)) for h in HORIZONS] if "<h>" in name else [name]
        out |= {n for n in names if "<" not in n and _code_like(n)}
    return out


def find_names(text: str, names: Iterable[str]) -> list[str]:
    """The names of ``names`` that occur in ``text`` as whole words."""
    found = []
    for name in names:
        if name in text and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            found.append(name)
    return sorted(found)


def scan_html(html: str, names: Iterable[str]) -> list[tuple[str, str, str]]:
    """Where a page shows a raw name or code: ``(where, text, name)`` for
    every heading (h1-h6), column header (``thead th``), image alt text and
    output title holding a name of ``names``, and every code input cell
    (``where`` = "code cell")."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    names = sorted(set(names))
    hits: list[tuple[str, str, str]] = []
    for cell in soup.select("div.cell_input"):
        hits.append(("code cell", cell.get_text(" ", strip=True)[:80], ""))
    main = soup.select_one("main") or soup
    places = [
        ("heading", main.select("h1, h2, h3, h4, h5, h6")),
        ("column header", main.select("thead th")),
        ("output title", main.select("p.disclosure-title strong")),
        ("figure caption", main.select("figcaption")),
    ]
    for where, elements in places:
        for el in elements:
            text = el.get_text(" ", strip=True)
            hits += [(where, text, n) for n in find_names(text, names)]
    for img in main.select("img[alt]"):
        text = img.get("alt", "")
        hits += [("image alt text", text, n) for n in find_names(text, names)]
    return hits


# ---- effects as a reader reads them -------------------------------------------

#: what an effect estimate's ``n`` counts, and what its clusters are, per design
OBSERVATIONS = {
    "selection_on_observables": ("person-months (risk-set rows)", "persons"),
    "rollout_did": ("persons", "teams"),
    "case_manager_iv": ("persons", "case managers"),
    # the same designs under the names the estimators record (reintegration.effects)
    "event_study": ("persons", "teams"),
    "instrumental_variable": ("persons", "case managers"),
}


def outcome_scale(outcome: str) -> tuple[float, str]:
    """Scale and unit of an effect on ``outcome``: months stay months, effects
    on employment shares are shown in percentage points."""
    return (1.0, "months") if "months" in outcome else (100.0, "percentage points")


def interval_method(record: Mapping[str, Any]) -> str:
    """How a released 95% interval was computed, in words: the roll-out's
    randomisation interval where it is the one given, else the standard
    error it rests on (clustered on what, or robust)."""
    rand = (record.get("diagnostics") or {}).get("ci_randomization")

    def ends(values: Iterable[Any]) -> list[float | None]:   # None: an unbounded end
        return [None if v is None else float(v) for v in values]

    if rand and ends([record["ci_low"], record["ci_high"]]) == ends(rand):
        return "randomisation inference over roll-out dates"
    cov = str(record.get("cov_type") or "")
    cluster = OBSERVATIONS.get(str(record.get("design")), ("", ""))[1]
    if cov == "clustered" and cluster:
        return f"standard error clustered on {cluster}"
    return f"{cov} standard error".strip()


def effects_table(records: Mapping[str, Mapping[str, Any]], root: Path | None = None) -> Any:
    """One row per outcome of one sub-study (records: outcome -> the
    estimate's ``to_record()``): the effect in percentage points (months for
    months employed), its 95% interval with the interval's method, and what
    the estimate's observations and clusters count."""
    import pandas as pd

    rows = []
    for outcome, rec in records.items():
        scale, unit = outcome_scale(outcome)
        unit_n, unit_c = OBSERVATIONS.get(str(rec.get("design")), ("observations", "clusters"))
        lo, hi = scale * float(rec["ci_low"]), scale * float(rec["ci_high"])
        rows.append(
            {
                "outcome": label(outcome, root),
                "effect": f"{scale * float(rec['estimate']):+.1f} {unit}",
                "95% interval": f"{lo:+.1f} to {hi:+.1f}",
                "interval method": interval_method(rec),
                "observations": f"{number(rec['n'])} {unit_n}",
                "clusters": f"{number(rec['n_clusters'])} {unit_c}"
                if rec.get("n_clusters")
                else "",
            }
        )
    return pd.DataFrame(rows).set_index("outcome")


def pp_axis(ax: Any, axis: str = "x") -> Any:
    """Show an axis of shares (0.05) in percentage points (5): the tick
    labels are rescaled, the data are not; the axis label says so."""
    from matplotlib.ticker import FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.0f}" if v else "0"))
    text = target.get_label().get_text()
    if "percentage points" not in text:
        target.set_label_text(f"{text} (percentage points)" if text else "percentage points")
    return ax

"""The Phase 1 chapter and the tables and figures of the feasibility step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import designs
from ..core.config import list_cities, load_city, load_instruments
from ..core.paths import Paths
from ..designs.base import (
    criterion_verdict,
)
from .criteria import (
    CRITERIA,
    DECISIONS,
    DESIGN_LABELS,
    DESIGN_SHORT,
    DESIGNS,
    NO_INSTRUMENT,
    STAKEHOLDER_LABELS,
    STEP,
    Assessment,
    offered_instruments,
    substudy_ids,
)
from .record import _all_records


def matrix_columns(root: Path | None = None) -> list[tuple[str, str | None]]:
    """The columns of the feasibility matrix: selection on observables per
    instrument, the roll-out (one column, whatever the city rolled out), the
    case-manager IV per instrument."""
    instruments = list(load_instruments(root))
    return [(name, i) for name, d in designs.REGISTRY.items()
            for i in ([None] if d.per_city_instrument else instruments)]


def _cell(rec: dict[str, Any] | None, design: str, instrument: str | None) -> dict | None:
    if rec is None:
        return None
    for s in rec["substudies"]:
        if s["design"] == design and (designs.get(design).per_city_instrument
                                      or s["instrument"] == instrument):
            return s
    return None


_SYMBOL = {"go": "go", "conditional": "cond.", "no-go": "no-go"}


def phase1_markdown(paths: Paths) -> str:
    """The generated part of the Phase 1 chapter: the city x sub-study matrix
    (decisions only) and the advice per city with the reasons and conditions
    of every sub-study, from the released tables of each city's feasibility
    step (:func:`released_record`)."""
    root = paths.root
    labels = {k: v["label"] for k, v in load_instruments(root).items()}
    records = _all_records(paths)
    cols = matrix_columns(root)
    lines = [
        f"Decisions of this build (synthetic data, size `{paths.size}`), from the "
        "feasibility step of each city. *go*: run in Phase 2; *cond.*: run, under the "
        "conditions listed below; *no-go*: not run, for the reasons listed below.",
        "",
    ]
    for design in DESIGNS:
        dcols = [c for c in cols if c[0] == design]
        head = ["city"] + [labels[i] if i else "instrument rolled out" for _, i in dcols]
        lines += [f"**{DESIGN_LABELS[design]}**", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for city, rec in records.items():
            name = rec["display_name"] if rec else load_city(city, root)["display_name"]
            cells = []
            for d, i in dcols:
                s = _cell(rec, d, i)
                if s is None:
                    cells.append("not assessed")
                elif designs.get(d).per_city_instrument and s["instrument"]:
                    cells.append(f"{_SYMBOL[s['decision']]} ({s['instrument_label']})")
                else:
                    cells.append(_SYMBOL[s["decision"]])
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Advice per city", ""]
    for city, rec in records.items():
        if rec is None:
            name = load_city(city, root)["display_name"]
            lines += [f"### {name}", "", "Not assessed in this build: the feasibility step "
                      "has not run for this city.", ""]
            continue
        lines += [f"### {rec['display_name']}", "", city_advice(rec), ""]
        lines += _city_details(rec)
    return "\n".join(lines)


def _shared(lists: list[list[str]]) -> list[str]:
    """Items present in every list, in the order of the first."""
    if not lists:
        return []
    common = set(lists[0]).intersection(*map(set, lists[1:]))
    return [x for x in lists[0] if x in common]


def _city_details(rec: dict[str, Any]) -> list[str]:
    """Conditions shared by the city's running sub-studies (once), those
    shared within a design (once per design), then per sub-study what is
    left: the reasons of a no-go, the remaining conditions of a conditional."""
    subs = rec["substudies"]
    running = [s for s in subs if s["decision"] != "no-go"]
    city_wide = _shared([s["conditions"] for s in running]) if len(running) > 1 else []
    lines = []
    if city_wide:
        lines += ["Conditions for every sub-study of the city that runs:", ""]
        lines += [f"- {c}" for c in city_wide]
        lines.append("")
    for design in DESIGNS:
        dsubs = [s for s in subs if s["design"] == design]
        drun = [s for s in dsubs if s["decision"] != "no-go"]
        design_wide = [c for c in _shared([s["conditions"] for s in drun])
                       if c not in city_wide] if len(drun) > 1 else []
        dstop = [s for s in dsubs if s["decision"] == "no-go"]
        stop_wide = _shared([s["reasons"] for s in dstop]) if len(dstop) > 1 else []
        lines += [f"*{DESIGN_LABELS[design]}*", ""]
        if design_wide:
            lines.append("- conditions for every sub-study of this design that runs: "
                         + "; ".join(design_wide))
        if stop_wide:
            lines.append("- reasons for every no-go of this design: " + "; ".join(stop_wide))
        for s in dsubs:
            name = (s["instrument_label"] if s["instrument"] else "none rolled out")
            if s["decision"] == "no-go":
                rest = [r for r in s["reasons"] if r not in stop_wide]
                lines.append(f"- **{name}**: **no-go**" + (": " + "; ".join(rest) if rest
                                                            else "") + ".")
            else:
                rest = [c for c in s["conditions"] if c not in city_wide and
                        c not in design_wide]
                tail = (": " + "; ".join(rest)) if rest else ""
                lines.append(f"- **{name}**: **{s['decision']}**{tail}.")
        lines.append("")
    return lines


def city_advice(rec: dict[str, Any]) -> str:
    """One paragraph of advice for a city, from its records."""
    subs = rec["substudies"]
    by = {d: [s for s in subs if s["decision"] == d] for d in DECISIONS}
    allowed_fail = [s for s in subs if s["criteria"]["allowed"]["verdict"] == "fail"]
    parts = []
    if subs and len(allowed_fail) == len(subs):
        legal = sorted({r.split(": ", 1)[1] for s in allowed_fail for r in s["reasons"]
                        if r.startswith("allowed: ")})
        parts.append("No sub-study may start: the legal checklist is not complete ("
                     + "; ".join(legal) + ").")
    go = [_short(s) for s in by["go"]]
    cond = [_short(s) for s in by["conditional"]]
    if go:
        parts.append("Go: " + ", ".join(go) + ".")
    if cond:
        parts.append("Conditional: " + ", ".join(cond) + ".")
    for design in DESIGNS:
        nogo = [s for s in by["no-go"] if s["design"] == design]
        total = [s for s in subs if s["design"] == design]
        if nogo and len(nogo) == len(total):
            first = _common_reasons(nogo)
            why = ("; ".join(first) if first else "see the reasons per sub-study")
            parts.append(f"No-go for every {DESIGN_SHORT[design]} sub-study: {why}.")
        elif nogo:
            parts.append(f"No-go for {DESIGN_SHORT[design]}: "
                         + ", ".join(s["instrument_label"].lower() for s in nogo) + ".")
    return " ".join(parts) if parts else "No sub-studies."


def _short(s: dict[str, Any]) -> str:
    if designs.get(s["design"]).per_city_instrument:
        return f"{DESIGN_SHORT[s['design']]} of {s['instrument_label'].lower()}"
    return f"{DESIGN_SHORT[s['design']]} for {s['instrument_label'].lower()}"


def _common_reasons(subs: list[dict[str, Any]]) -> list[str]:
    common = set(subs[0]["reasons"])
    for s in subs[1:]:
        common &= set(s["reasons"])
    return [r for r in subs[0]["reasons"] if r in common]


_COLOURS = {"go": "#4c9a5b", "conditional": "#e2b33c", "no-go": "#c8553d", None: "#dddddd"}


def matrix_figure(paths: Paths, out_png: str | Path) -> Path:
    """Draw the city x sub-study matrix (decisions only, no counts) to
    ``out_png`` with matplotlib; returns the path. Deterministic bytes (no
    timestamp in the PNG), written only when they change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..core import atomic

    root = paths.root
    labels = {k: v["label"] for k, v in load_instruments(root).items()}
    records = _all_records(paths)
    cols = matrix_columns(root)
    cities = list(records)
    fig, ax = plt.subplots(figsize=(2.2 + 0.62 * len(cols), 2.2 + 0.45 * len(cities)))
    for r, city in enumerate(cities):
        rec = records[city]
        for c, (design, instrument) in enumerate(cols):
            s = _cell(rec, design, instrument)
            decision = s["decision"] if s else None
            ax.add_patch(plt.Rectangle((c, r), 0.94, 0.9, color=_COLOURS[decision]))
            text = _SYMBOL.get(decision, "–") if decision else "–"
            ax.text(c + 0.47, r + 0.45, text, ha="center", va="center", fontsize=7,
                    color="white" if decision in ("go", "no-go") else "black")
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(cities), 0)
    ax.set_yticks([i + 0.45 for i in range(len(cities))])
    names = [(records[c] or {}).get("display_name") or load_city(c, root)["display_name"]
             for c in cities]
    ax.set_yticklabels(names)
    xl = [labels[i] if i else "rolled-out instrument" for _, i in cols]
    ax.set_xticks([i + 0.47 for i in range(len(cols))])
    ax.set_xticklabels(xl, rotation=55, ha="right", fontsize=8)
    start = 0
    for design in DESIGNS:
        width = sum(1 for d, _ in cols if d == design)
        ax.text(start + width / 2, -0.25, DESIGN_LABELS[design].replace(" (", "\n("),
                ha="center", va="bottom", fontsize=8, fontweight="bold")
        if start:
            ax.axvline(start - 0.03, color="black", linewidth=1)
        start += width
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    handles = [Patch(color=_COLOURS[d], label=d) for d in DECISIONS]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, title="decision", title_fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic.write_if_changed(out, buf.getvalue())
    return out


# ---------------------------------------------------------------------------
# tables for the step's page (configuration and verdicts; no person counts)
# ---------------------------------------------------------------------------


def substudy_table(city: dict[str, Any], labels: dict[str, str], instruments: Sequence[str]
                   ) -> pd.DataFrame:
    """The sub-studies of a city, from its configuration."""
    offered = offered_instruments(city)
    rows = []
    for design, instrument in substudy_ids(city, instruments):
        rows.append({
            "sub-study": f"{design}/{instrument or NO_INSTRUMENT}",
            "design": DESIGN_LABELS[design],
            "instrument": labels.get(instrument, "none rolled out") if instrument
            else "none rolled out",
            "offered by the city": ("yes" if instrument in offered else "no")
            if instrument else "–",
        })
    return pd.DataFrame(rows).set_index("sub-study")


def decision_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    """Verdict per criterion and the decision per sub-study: categories only."""
    rows = []
    for s in assessment.substudies:
        decision, _, _ = s.decision()
        row = {"sub-study": s.id}
        for c in CRITERIA:
            row[c] = criterion_verdict(s.criteria.get(c, []))
        row["decision"] = decision
        rows.append(row)
    return pd.DataFrame(rows).set_index("sub-study")


def power_table(assessment: Assessment) -> pd.DataFrame:
    """Per sub-study with an estimator: Phase 1's minimum detectable effect
    (from the design's own variance), the one Phase 2's interval for the same
    outcome realises, their ratio and, for the roll-out, the range (10% to
    90%) the realised one takes over other roll-out dates. In percentage
    points; statistics of the design, no counts. Registered by the step; the
    Phase 1 chapter reads it."""
    rows = []
    for s in assessment.substudies:
        ev = s.evidence.get("practical", {})
        if ev.get("mde") is None:
            continue
        band = ev.get("mde_realised_band") or [None, None]
        rows.append({
            "sub-study": s.id,
            "MDE, Phase 1 (pp)": _pp_value(ev.get("mde")),
            "MDE realised by Phase 2's interval (pp)": _pp_value(ev.get("mde_realised")),
            "ratio": ev.get("mde_ratio"),
            "realised MDE over other roll-out dates, 10% (pp)": _pp_value(band[0]),
            "realised MDE over other roll-out dates, 90% (pp)": _pp_value(band[1]),
            "realised inside that range": (None if band[0] is None else
                                           "yes" if ev.get("realised_in_band") else "no"),
        })
    cols = ["sub-study", "MDE, Phase 1 (pp)", "MDE realised by Phase 2's interval (pp)", "ratio",
            "realised MDE over other roll-out dates, 10% (pp)",
            "realised MDE over other roll-out dates, 90% (pp)", "realised inside that range"]
    return pd.DataFrame(rows, columns=cols).set_index("sub-study")


def _pp_value(x: float | None) -> float | None:
    return None if x is None else round(100 * float(x), 1)


def power_markdown(paths: Paths) -> str:
    """The chapter's power section: per city, the MDE table of
    :func:`power_table` for the roll-out and case-manager sub-studies, as
    released."""
    from ..disclosure import released

    lines: list[str] = []
    for city in list_cities(paths.root):
        table = released.read_table(paths, city, f"{STEP}/power")
        if table is None:
            continue
        inside = table.get("realised inside that range", pd.Series("", index=table.index))
        for col in table.columns.drop(["sub-study", "realised inside that range"],
                                      errors="ignore"):
            table[col] = pd.to_numeric(table[col], errors="coerce")
        table["inside"] = inside.fillna("")
        table = table[table["MDE realised by Phase 2's interval (pp)"].notna()]
        if table.empty:
            continue
        lines += [f"**{load_city(city, paths.root)['display_name']}**", "",
                  "| sub-study | decision | MDE, Phase 1 (percentage points) | MDE realised | "
                  "ratio | range of the realised MDE | realised inside the range |",
                  "|---|---|---|---|---|---|---|"]
        realised = "MDE realised by Phase 2's interval (pp)"
        dec = released.read_table(paths, city, f"{STEP}/decisions")
        decisions = {} if dec is None else dict(zip(dec["sub-study"], dec["decision"],
                                                    strict=True))
        for row in table.to_dict("records"):
            design, instrument = row["sub-study"].split("/", 1)
            lo = row["realised MDE over other roll-out dates, 10% (pp)"]
            hi = row["realised MDE over other roll-out dates, 90% (pp)"]
            rng = "" if pd.isna(lo) else f"{_num(lo)} to {_num(hi)}"
            lines.append(f"| {DESIGN_SHORT[design]}, {instrument.replace('_', ' ')} | "
                         f"{decisions.get(row['sub-study'], '')} | "
                         f"{_num(row['MDE, Phase 1 (pp)'])} | "
                         f"{_num(row[realised])} | "
                         f"{_num(row['ratio'])} | {rng} | {row['inside']} |")
        lines.append("")
    return "\n".join(lines)


def _num(x: Any) -> str:
    if x is None or pd.isna(x):
        return ""
    return "unbounded" if math.isinf(float(x)) else f"{float(x):g}"


def reasons_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    """Reasons and conditions per sub-study, one row each (``kind`` is
    *reason* or *condition*): the texts of the checks, in which counts of
    persons below the disclosure threshold are written as "fewer than ...".
    Registered by the step; the Phase 1 chapter reads it."""
    rows = []
    for s in assessment.substudies:
        decision, reasons, conditions = s.decision()
        for kind, items in (("reason", reasons), ("condition", conditions)):
            rows += [{"sub-study": s.id, "decision": decision, "kind": kind, "text": t}
                     for t in items]
    return pd.DataFrame(rows, columns=["sub-study", "decision", "kind", "text"]).set_index(
        "sub-study")


def reasons_markdown(assessment: Assessment, labels: dict[str, str]) -> str:
    """Reasons and conditions per sub-study, as Markdown text (they contain no
    count of persons below the disclosure threshold)."""
    lines = []
    for s in assessment.substudies:
        decision, reasons, conditions = s.decision()
        label = labels.get(s.instrument or "", "no roll-out")
        lines.append(f"- **{DESIGN_LABELS[s.design]}, {label.lower()}**: {decision}")
        lines += [f"  - reason, {r}" for r in reasons]
        lines += [f"  - condition, {c}" for c in conditions]
    return "\n".join(lines)


def checks_markdown(assessment: Assessment, substudy_id: str, criterion: str) -> str:
    """The checks of one criterion of one sub-study, as Markdown bullets."""
    s = assessment.get(substudy_id)
    return "\n".join(f"- *{c.verdict}*: {c.text}" for c in s.criteria.get(criterion, []))


def legal_table(assessment: Assessment) -> pd.DataFrame:
    return pd.DataFrame(assessment.legal).set_index("item")


def relevance_table(assessment: Assessment, labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for r in assessment.relevance:
        over = r.get("instruments") or {}
        rows.append({
            "stakeholder": STAKEHOLDER_LABELS.get(r["stakeholder"], r["stakeholder"]),
            "relevance": r["level"] or "not established",
            "except": ", ".join(f"{labels.get(k, k).lower()}: {v}" for k, v in over.items())
            or "–",
            "note": r["note"] or "–",
            "evidence": r["evidence"] or "–",
        })
    return pd.DataFrame(rows).set_index("stakeholder")


def concerns_table(assessment: Assessment) -> pd.DataFrame:
    rows = [{"concern of the client council": c["concern"],
             "safeguard": ", ".join(c["safeguards"]) or "none",
             "enforced in": ", ".join(f"{w}" for w in c["where"]) or "–"}
            for c in assessment.concerns]
    return pd.DataFrame(rows).set_index("concern of the client council")


def safeguards_table(settings: dict[str, Any]) -> pd.DataFrame:
    rows = [{"safeguard": s["label"], "where the code enforces it": ", ".join(s["where"]),
             "how": " ".join(str(s["how"]).split())}
            for s in settings["wanted"]["safeguards"].values()]
    return pd.DataFrame(rows).set_index("safeguard")


def thresholds_table(settings: dict[str, Any]) -> pd.DataFrame:
    """Every threshold of ``config/feasibility.yml`` as (setting, value)."""
    rows = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append({"setting": prefix, "value": _flat(node)})

    for section in ("theoretical", "practical"):
        walk(section, settings[section])
    rows.append({"setting": "outcome", "value": settings["outcome"]})
    return pd.DataFrame(rows).set_index("setting")


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str):
        return " ".join(value.split())
    return str(value)


def criterion_markdown(assessment: Assessment, criterion: str, labels: dict[str, str],
                       designs: Sequence[str] | None = None) -> str:
    """The checks of one criterion as Markdown bullets: checks that are the
    same for every sub-study listed once, then the rest per sub-study (of
    ``designs``, default all). Checks not assessed (because an earlier check
    failed) are left out."""
    subs = [s for s in assessment.substudies if designs is None or s.design in designs]
    if not subs:
        return ""
    texts = [[(c.verdict, c.text) for c in s.criteria.get(criterion, [])
              if c.verdict != "not_assessed"] for s in subs]
    shared = [t for t in texts[0] if all(t in other for other in texts[1:])]
    lines = []
    if shared and len(subs) > 1:
        lines.append("For every sub-study below:")
        lines += [f"- *{v}*: {t}" for v, t in shared]
        lines.append("")
    for s, own in zip(subs, texts, strict=True):
        rest = [(v, t) for v, t in own if (v, t) not in shared or len(subs) == 1]
        if not rest:
            continue
        label = labels.get(s.instrument or "", "no roll-out")
        lines.append(f"- **{DESIGN_SHORT[s.design]}, {label.lower()}**:")
        lines += [f"  - *{v}*: {t}" for v, t in rest]
    return "\n".join(lines)


def quoted_counts(assessment: Assessment, labels: dict[str, str], threshold: int) -> pd.DataFrame:
    """Every count of persons the checks' sentences quote (group sizes such
    as "1 270 persons in the comparison group"), one row per sub-study and
    check, so the sentences' numbers are a registered, checked output too;
    a count below ``threshold`` is quoted as "fewer than" and is empty here."""
    rows = []
    for s in assessment.substudies:
        label = labels.get(s.instrument or "", "no roll-out")
        for criterion, checks in s.criteria.items():
            for c in checks:
                quoted = c.verdict != "not_assessed" and "persons" in c.text
                if not (quoted and c.name.startswith("n_") and isinstance(c.value, int | float)):
                    continue
                rows.append({
                    "sub-study": f"{DESIGN_SHORT[s.design]}, {label.lower()}",
                    "criterion": criterion,
                    "check": c.name,
                    "persons": int(c.value) if c.value >= threshold else None,
                })
    return pd.DataFrame(rows, columns=["sub-study", "criterion", "check", "persons"]).astype(
        {"persons": "Int64"}
    )


def labelled(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """An evidence frame with instrument labels (in taxonomy order) instead
    of keys, for tables a reader sees."""
    out = frame.copy()
    if "instrument" in out.columns:
        order = [labels[k] for k in labels if k in set(out["instrument"])]
        out["instrument"] = pd.Categorical(out["instrument"].map(labels), categories=order,
                                           ordered=True)
    for col, order in (("propensity", None), ("clients per case manager", CASELOAD_BANDS),
                       ("propensity tercile", ("low", "middle", "high")),
                       ("group", None)):
        if col in out.columns and order is not None:
            present = [b for b in order if b in set(out[col])]
            out[col] = pd.Categorical(out[col], categories=present, ordered=True)
    return out


CASELOAD_BANDS = ("1-9", "10-19", "20-29", "30-49", "50-99", "100 or more")


#: how the overlap table's blocks join the cohort's other tables (see
#: :func:`reintegration.disclosure.protection.split_blocks`): per instrument, its
#: "treated" are the persons whose first instrument it is and its "no
#: instrument" the persons without one, so each block's columns add up to
#: counts the take-up table publishes
OVERLAP_BLOCKS = {
    "by": "instrument",
    "rename": {"group": "instrument"},
    "relabel": {"group": {"treated": "{block}", "no instrument": "No instrument"}},
}


def overlap_figure(released: Any, *, threshold: int | None = None) -> Any:
    """Small multiples of the propensity-score distribution of the treated
    and of the persons without an instrument, per instrument, drawn from the
    released overlap table. Shares are of the persons in the cells shown; a
    suppressed cell is a hatched box of one nominal height for the whole
    figure (see :mod:`reintegration.disclosure.figures`), not a share."""
    import matplotlib.pyplot as plt

    from ..disclosure import figures

    threshold = figures.threshold_of(released, threshold)
    table = getattr(released, "table", released)
    instruments = list(dict.fromkeys(table.index.get_level_values(0)))
    groups = [g for g in ("no instrument", "treated") if g in table.columns]
    shares = {}
    for instrument in instruments:
        part = table.xs(instrument, level=0)
        for group in groups:
            counts = part[group].astype(float)
            shares[(instrument, group)] = counts / counts.sum(skipna=True)
    nominal = figures.nominal_size(np.concatenate([v.to_numpy() for v in shares.values()])
                                   if shares else [])
    cols = 3
    rows = max(1, math.ceil(len(instruments) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.6 * rows), sharey=True, squeeze=False)
    for ax in axes.ravel()[len(instruments):]:
        ax.set_visible(False)
    colours = {"treated": "#2f5d8c", "no instrument": "#d08c60"}
    drawn = 0
    for ax, instrument in zip(axes.ravel(), instruments, strict=False):
        bands = [str(b) for b in table.xs(instrument, level=0).index]
        x = np.arange(len(bands))
        for k, group in enumerate(["no instrument", "treated"]):
            if group not in groups:
                continue
            share = shares[(instrument, group)].to_numpy()
            figures.bar_or_suppressed(ax, x + (k - 0.5) * 0.4, share, nominal=nominal,
                                      width=0.4, colour=colours[group], label=group)
            drawn += int(np.isnan(share).sum())
        ax.set_title(str(instrument), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(bands, rotation=45, ha="right", fontsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for row in axes:
        row[0].set_ylabel("share of the group\n(in the bands shown)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    keep = dict(zip(names, handles, strict=True))  # one entry per group
    handles, names = figures.add_key(list(keep.values()), list(keep), drawn, threshold)
    axes[0, 0].legend(handles, names, frameon=False, fontsize=8)
    fig.suptitle("Propensity scores of the treated and of persons without an instrument",
                 fontsize=10)
    fig.tight_layout()
    return fig

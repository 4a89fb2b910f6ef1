"""The cross-city synthesis: one step over every city's release bundle.

This step reads RELEASE BUNDLES ONLY: ``release/<size>/<city>/register.json``,
the effect models that the effects step registered there
(``06_effects/<design>__<instrument>.json``) and the sub-study tables of the
feasibility and effects steps (``05_feasibility/substudies.csv``,
``05_feasibility/decisions.csv``, ``06_effects/substudies.csv``). Every file is
read under the ``publisher`` role and checked against the SHA-256 its register
recorded, so the synthesis shows only estimates that already passed output
checking: it computes no new person-level count.

The cities are those of ``config/cities/*.yml``: a city added by one YAML file
(and its pipeline run) appears here with no code change. Per design,
instrument and outcome it

* pools, with a random-effects meta-analysis (:mod:`reintegration.phase2.meta`, REML),
  the estimates of the cities where Phase 1 allowed the sub-study (decision
  ``go`` or ``conditional`` and Phase 2 ``run``), when there are at least two;
* draws a forest plot of those cities, the pooled effect and its prediction
  interval;
* lists where cities disagree (Cochran's Q test) and where designs disagree
  within a city;
* gives per city a verdict whether the study can be repeated there with
  sufficient quality, by fixed rules from the Phase 1 decisions.

The result is Markdown and SVG text that :func:`reintegration.book.generate.generated_pages`
writes to ``book/_generated/``.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import designs
from ..core import atomic
from ..core.config import list_cities, load_city, policy_effect, read_yaml
from ..core.custody import DomainMap, check_access
from ..core.paths import Paths
from .meta import random_effects, uncertainty_word

ROLE = "publisher"
#: Phase 1 decisions under which a city's estimate enters the pooled effect
POOLED_DECISIONS = ("go", "conditional")
#: Cochran's Q p-value below which the cities are said to disagree (choice)
Q_ALPHA = 0.10
#: |z| of a difference between two designs above which they disagree (choice)
DESIGN_Z = 1.96
#: the design that rests on no unobserved confounding (it has no check of its own)
OBSERVATIONAL = "selection_on_observables"
METHOD = "REML"

#: the normal quantile of a two-sided 95% interval
Z95 = 1.959963984540054


class SynthesisError(RuntimeError):
    """A release bundle is missing a file its register names, or a file
    differs from its register."""


@dataclass(frozen=True)
class Bundle:
    """One city's release bundle."""

    city: str
    folder: Path
    register: dict[str, Any]
    dmap: DomainMap

    def entry(self, output_id: str) -> dict[str, Any] | None:
        return next((e for e in self.register["outputs"] if e["id"] == output_id), None)

    def read(self, entry: dict[str, Any]) -> bytes:
        """The bytes of a registered file, checked against its SHA-256."""
        rel = Path(entry["file"])
        if rel.parts[0] == "outputs":
            rel = Path(*rel.parts[1:])
        path = self.folder / rel
        check_access(ROLE, path, "read", self.dmap)
        if not path.is_file():
            raise SynthesisError(f"{self.city}: {path} is registered as {entry['id']} but missing")
        raw = path.read_bytes()
        if atomic.sha256_bytes(raw) != entry["sha256"]:
            raise SynthesisError(
                f"{self.city}: {path} differs from its register ({entry['id']}: checksum differs)"
            )
        return raw

    def table(self, output_id: str) -> pd.DataFrame | None:
        entry = self.entry(output_id)
        if entry is None or entry.get("status") == "fail" or not entry.get("file"):
            return None
        return pd.read_csv(io.BytesIO(self.read(entry)), dtype=str, keep_default_na=False)


def release_root(paths: Paths) -> Path:
    return paths.root / "release" / paths.size


def open_bundle(paths: Paths, city: str) -> Bundle | None:
    """The release bundle of a city, or None when the city has none yet."""
    root = release_root(paths)
    folder = root / city
    dmap = DomainMap.for_paths(paths, extra={str(root): "release"})
    reg_path = folder / "register.json"
    if not reg_path.is_file():
        return None
    check_access(ROLE, reg_path, "read", dmap)
    return Bundle(city, folder, json.loads(reg_path.read_text(encoding="utf-8")), dmap)


# ---------------------------------------------------------------- collecting


def _outcome_labels(paths: Paths) -> dict[str, str]:
    path = paths.config_dir / "effects.yml"
    return dict(read_yaml(path).get("outcomes", {})) if path.is_file() else {}


def outcome_unit(outcome: str) -> tuple[float, str]:
    """Scale and unit of an outcome: months stay months, the employment
    shares are shown in percentage points."""
    return (1.0, "months") if "months" in outcome else (100.0, "percentage points")


def _substudies(bundle: Bundle) -> pd.DataFrame:
    """Sub-studies with their labels and Phase 1 decision, one row each."""
    labels = bundle.table("05_feasibility/substudies")
    decided = bundle.table("06_effects/substudies")
    if decided is None:
        raise SynthesisError(
            f"{bundle.city}: the release bundle has no 06_effects/substudies table "
            f"({bundle.folder / 'register.json'})"
        )
    out = decided.rename(columns={"sub-study": "substudy", "Phase 2": "phase2"})
    if labels is not None:
        lab = labels.rename(columns={"sub-study": "substudy"})[["substudy", "design", "instrument"]]
        out = out.merge(
            lab.rename(columns={"design": "design_label", "instrument": "instrument_label"}),
            on="substudy",
            how="left",
        )
    criteria = bundle.table("05_feasibility/decisions")
    if criteria is not None and "allowed" in criteria.columns:
        crit = criteria.rename(columns={"sub-study": "substudy"})
        out = out.merge(crit[["substudy", "allowed"]], on="substudy", how="left")
    else:
        out["allowed"] = None
    out[["design", "instrument"]] = out["substudy"].str.split("/", n=1, expand=True)
    return out


def _interval_method(eff: dict[str, Any]) -> str:
    """How a released interval was computed: the roll-out's randomisation
    interval when it is the one released, else the model's standard error."""
    rand = (eff.get("diagnostics") or {}).get("ci_randomization")
    if rand and [float(eff["ci_low"]), float(eff["ci_high"])] == [float(x) for x in rand]:
        return "randomisation inference"
    return f"{eff.get('cov_type', '')} standard error".strip()


def city_estimates(bundle: Bundle, name: str) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Every released whole-cohort estimate of one city's release bundle
    (one row per design, instrument and outcome), and its sub-studies."""
    rows: list[dict[str, Any]] = []
    sub = _substudies(bundle).assign(city=bundle.city, city_label=name)
    by_id = sub.set_index("substudy")
    for entry in bundle.register["outputs"]:
        if entry.get("step") != "06_effects" or entry.get("kind") != "model":
            continue
        if entry.get("status") == "fail" or "__" not in entry["name"]:
            continue
        substudy = entry["name"].replace("__", "/", 1)
        if substudy not in by_id.index:
            continue
        model = json.loads(bundle.read(entry).decode("utf-8"))
        info = by_id.loc[substudy]
        for outcome, eff in sorted(model.get("effects", {}).items()):
            rows.append(
                {
                    "city": bundle.city,
                    "city_label": name,
                    "substudy": substudy,
                    "design": info["design"],
                    "instrument": info["instrument"],
                    "design_label": info.get("design_label") or info["design"],
                    "instrument_label": info.get("instrument_label") or info["instrument"],
                    "outcome": outcome,
                    "estimate": float(eff["estimate"]),
                    "std_error": float(eff["std_error"]),
                    "ci_low": float(eff["ci_low"]),
                    "ci_high": float(eff["ci_high"]),
                    "interval": _interval_method(eff),
                    "decision": info["decision"],
                    "phase2": info["phase2"],
                    "pooled": info["decision"] in POOLED_DECISIONS and info["phase2"] == "run",
                }
            )
    return rows, sub


COLUMNS = [
    "city", "city_label", "substudy", "design", "instrument", "design_label",
    "instrument_label", "outcome", "estimate", "std_error", "ci_low", "ci_high",
    "interval", "decision", "phase2", "pooled",
]  # fmt: skip


def collect(paths: Paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every released whole-cohort estimate of every city (one row per city,
    design, instrument and outcome), and every city's sub-studies."""
    rows: list[dict[str, Any]] = []
    subs: list[pd.DataFrame] = []
    for city in list_cities(paths.root):
        bundle = open_bundle(paths, city)
        if bundle is None:
            continue
        name = load_city(city, paths.root)["display_name"]
        city_rows, sub = city_estimates(bundle, name)
        rows += city_rows
        subs.append(sub)
    est = pd.DataFrame(rows, columns=COLUMNS)
    sub = pd.concat(subs, ignore_index=True) if subs else pd.DataFrame()
    return est, sub


# ---------------------------------------------------------------- analysis


def meta_table(est: pd.DataFrame) -> pd.DataFrame:
    """One random-effects meta-analysis per design, instrument and outcome
    with at least two pooled cities."""
    rows = []
    pooled = est[est["pooled"]]
    for (design, instrument, outcome), grp in pooled.groupby(
        ["design", "instrument", "outcome"], sort=True
    ):
        if len(grp) < 2:
            continue
        res = random_effects(grp["estimate"], interval_se(grp), method=METHOD)
        rows.append(
            {
                "design": design,
                "instrument": instrument,
                "outcome": outcome,
                "design_label": grp["design_label"].iloc[0],
                "instrument_label": grp["instrument_label"].iloc[0],
                "cities": ", ".join(grp["city_label"]),
                **res.as_dict(),
            }
        )
    return pd.DataFrame(rows)


def interval_se(rows: Any) -> Any:
    """The standard error a released 95% interval implies (half its width
    over 1.96), for a row or a frame. The roll-out's randomisation interval
    is wider than its clustered standard error says; pooling and comparing
    with the interval the reader sees keeps the synthesis consistent with
    the cities' pages."""
    return (rows["ci_high"] - rows["ci_low"]) / (2 * Z95)


def design_disagreements(est: pd.DataFrame) -> pd.DataFrame:
    """Within a city, instrument and outcome: every pair of designs, the
    difference of their estimates and its z (as if independent), with the
    standard errors the released intervals imply."""
    rows = []
    for (_city, _instrument, outcome), grp in est.groupby(
        ["city", "instrument", "outcome"], sort=True
    ):
        recs = grp.sort_values("design").to_dict("records")
        for i, a in enumerate(recs):
            for b in recs[i + 1 :]:
                diff = a["estimate"] - b["estimate"]
                z = diff / math.hypot(interval_se(a), interval_se(b))
                rows.append(
                    {
                        "city_label": a["city_label"],
                        "instrument_label": a["instrument_label"],
                        "outcome": outcome,
                        "key_a": a["design"],
                        "key_b": b["design"],
                        "design_a": a["design_label"],
                        "estimate_a": a["estimate"],
                        "design_b": b["design_label"],
                        "estimate_b": b["estimate"],
                        "z": z,
                        "disagree": abs(z) > DESIGN_Z,
                    }
                )
    return pd.DataFrame(rows)


def verdicts(sub: pd.DataFrame, est: pd.DataFrame, metas: pd.DataFrame) -> pd.DataFrame:
    """Per city: can the study be repeated there with sufficient quality?

    Fixed rules on the Phase 1 decisions of the city's sub-studies:

    * **yes**: at least one design-based sub-study (roll-out or case-manager
      instrument) ran, so the selection-on-observables estimates have a check
      on unobserved confounding;
    * **partly**: only selection on observables ran; the effects rest on the
      assumption of no unobserved confounding, which the data cannot test;
    * **yes, designs disagree**: as yes, but a design-based estimate and
      another design's estimate of the same instrument differ by more than
      :data:`DESIGN_Z` standard errors, so one of them is biased;
    * **no**: no sub-study ran.

    A sub-study that ran although Phase 1 judged 'allowed' only conditional
    (a legal document still to be produced) is named in the verdict's text.
    """
    rows = []
    for city, grp in sub.groupby("city", sort=True):
        ran = grp[grp["phase2"] == "run"]
        design_based = ran[ran["design"] != OBSERVATIONAL]
        if ran.empty:
            verdict = "no"
        elif design_based.empty:
            verdict = "partly"
        else:
            verdict = "yes"
        stopped = grp[grp["phase2"] != "run"]
        reasons = sorted({_short_reason(r) for r in stopped.get("first reason or condition", [])})
        outliers = _outlying(city, est, metas)
        dd = design_disagreements(est[est["city"] == city]) if not est.empty else pd.DataFrame()
        clashes = [] if dd.empty else sorted(
            {f"{r.instrument_label} ({r.design_a} vs {r.design_b.lower()})"
             for r in dd[dd["disagree"]].itertuples()}
        )  # fmt: skip
        if verdict == "yes" and clashes:
            verdict = "yes, designs disagree"
        rows.append(
            {
                "city": city,
                "city_label": grp["city_label"].iloc[0],
                "verdict": verdict,
                "run": len(ran),
                "design_based": ", ".join(sorted(set(design_based["design_label"].fillna("")))),
                "not_run": len(stopped),
                "reasons": reasons,
                "outlying": outliers,
                "clashes": clashes,
                "legal_open": bool((ran["allowed"] == "conditional").any()),
            }
        )
    return pd.DataFrame(rows)


def _short_reason(text: str) -> str:
    """The first clause of a Phase 1 reason, without the criterion prefix
    and the city-specific numbers' tail."""
    body = text.split(": ", 1)[1] if ": " in text else text
    return body.split(": ", 1)[0]


def _outlying(city: str, est: pd.DataFrame, metas: pd.DataFrame) -> list[str]:
    """Pooled effects whose prediction interval excludes this city's estimate."""
    out = []
    if metas.empty:
        return out
    mine = est[(est["city"] == city) & est["pooled"]]
    for m in metas.itertuples():
        if m.pi_low is None or (isinstance(m.pi_low, float) and math.isnan(m.pi_low)):
            continue
        row = mine[
            (mine["design"] == m.design)
            & (mine["instrument"] == m.instrument)
            & (mine["outcome"] == m.outcome)
        ]
        for r in row.itertuples():
            if not (m.pi_low <= r.estimate <= m.pi_high):
                out.append(f"{m.instrument_label}, {m.design_label}, {m.outcome}")
    return out


# ---------------------------------------------------------------- figures


def forest_svg(grp: pd.DataFrame, metas: pd.DataFrame, outcome_labels: dict[str, str]) -> str:
    """A forest plot of one design and instrument: one panel per outcome,
    one row per city (estimate and its released 95% interval, hollow when
    the city is not pooled), the pooled effect as a diamond and its
    prediction interval as a line. Deterministic SVG text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outcomes = sorted(grp["outcome"].unique())
    cities = list(dict.fromkeys(grp.sort_values("city")["city_label"]))
    with plt.rc_context({"svg.hashsalt": "synthesis", "svg.fonttype": "none"}):
        fig, axes = plt.subplots(
            1, len(outcomes), figsize=(2.6 * len(outcomes) + 1.4, 0.45 * len(cities) + 1.7),
            squeeze=False, sharey=True,
        )  # fmt: skip
        for ax, outcome in zip(axes[0], outcomes, strict=True):
            scale, unit = outcome_unit(outcome)
            sel = grp[grp["outcome"] == outcome].set_index("city_label")
            for i, name in enumerate(cities):
                if name not in sel.index:
                    continue
                r = sel.loc[name]
                y = len(cities) - i
                ax.plot([r["ci_low"] * scale, r["ci_high"] * scale], [y, y], color="black", lw=1)
                ax.plot(
                    r["estimate"] * scale, y, "s", color="black",
                    markerfacecolor="black" if r["pooled"] else "white",
                )  # fmt: skip
            m = metas[metas["outcome"] == outcome]
            if not m.empty:
                m = m.iloc[0]
                est, lo, hi = (m[c] * scale for c in ("estimate", "ci_low", "ci_high"))
                ax.fill([lo, est, hi, est], [0, 0.25, 0, -0.25], color="tab:blue")
                if m["pi_low"] is not None and not pd.isna(m["pi_low"]):
                    ax.plot([m["pi_low"] * scale, m["pi_high"] * scale], [0, 0], color="tab:blue",
                            lw=1, ls="--")  # fmt: skip
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_title(textwrap.fill(outcome_labels.get(outcome, outcome), 26), fontsize=10)
            ax.set_xlabel(f"effect ({unit})", fontsize=9)
            ax.tick_params(labelsize=9)
        axes[0][0].set_yticks([*range(len(cities), 0, -1), 0], [*cities, f"pooled ({METHOD})"])
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------- page


def _fmt(value: float | None, scale: float, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value * scale:+.{digits}f}".replace("-", "−")


def _interval(lo: float | None, hi: float | None, scale: float) -> str:
    if lo is None or pd.isna(lo):
        return "– (needs three cities)"
    return f"{_fmt(lo, scale)} to {_fmt(hi, scale)}"


def _meta_block(metas: pd.DataFrame, grp: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    lines = [
        "| outcome | cities pooled | pooled effect | 95% confidence interval "
        "| 95% prediction interval | tau² | I² | Q test p |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for m in metas.itertuples():
        scale, unit = outcome_unit(m.outcome)
        tau2 = m.tau2 * scale * scale
        lines.append(
            f"| {labels.get(m.outcome, m.outcome)} ({unit}) | {m.k} | {_fmt(m.estimate, scale)} "
            f"| {_interval(m.ci_low, m.ci_high, scale)} | {_interval(m.pi_low, m.pi_high, scale)} "
            f"| {tau2:.2f} | {m.i2:.0%} | {m.q_pvalue:.3f} |"
        )
    left_out = grp[~grp["pooled"]].drop_duplicates("city")
    lines.append("")
    if not left_out.empty:
        names = ", ".join(f"{r.city_label} (Phase 1: {r.decision})" for r in left_out.itertuples())
        lines += [f"Shown but not pooled, because Phase 1 did not allow it: {names}.", ""]
    return lines


def markdown(paths: Paths, est: pd.DataFrame, sub: pd.DataFrame, metas: pd.DataFrame,
             figures: dict[str, str]) -> str:  # fmt: skip
    labels = _outcome_labels(paths)
    lines: list[str] = []
    cities = sorted(set(sub["city_label"])) if not sub.empty else []
    lines += [
        f"This synthesis read the release bundles of {len(cities)} "
        f"{'city' if len(cities) == 1 else 'cities'} ({', '.join(cities) or 'none yet'}), "
        f"data size `{paths.size}`. Pooled: {METHOD} random effects; intervals are 95%.",
        "",
    ]
    if est.empty:
        return "\n".join([*lines, "No city has released effect estimates yet.", ""])
    for (design, instrument), grp in est.groupby(["design", "instrument"], sort=True):
        m = metas[(metas["design"] == design) & (metas["instrument"] == instrument)]
        if m.empty:
            continue
        title = f"{grp['instrument_label'].iloc[0]}: {grp['design_label'].iloc[0].lower()}"
        fig = figures[f"{design}__{instrument}"]
        lines += [
            f"### {title}",
            "",
            f"```{{figure}} ../_generated/{fig}",
            f":alt: Forest plot of {title} across cities",
            "",
            f"{title}. Squares: each city's released estimate with its 95% interval "
            "(hollow: not pooled). Diamond: the pooled effect and its 95% confidence interval; "
            "dashed line: the 95% prediction interval for a new city.",
            "```",
            "",
            *_meta_block(m, grp, labels),
        ]
    single = _single_city(est, metas)
    if single:
        lines += [
            "### Sub-studies with one city only",
            "",
            "Not pooled, because only one city could run them:",
            "",
            *[f"- {s}" for s in single],
            "",
        ]
    return "\n".join(lines)


def _single_city(est: pd.DataFrame, metas: pd.DataFrame) -> list[str]:
    done = set(zip(metas.get("design", []), metas.get("instrument", []), strict=True))
    out = []
    for (design, instrument), grp in est.groupby(["design", "instrument"], sort=True):
        if (design, instrument) in done:
            continue
        names = ", ".join(sorted(set(grp["city_label"])))
        out.append(
            f"{grp['instrument_label'].iloc[0]}, {grp['design_label'].iloc[0].lower()}: {names}"
        )
    return out


def disagreement_markdown(est: pd.DataFrame, metas: pd.DataFrame, labels: dict[str, str]) -> str:
    """Where cities disagree (Cochran's Q) and where designs disagree within
    a city (difference of two designs' estimates)."""
    lines = [
        f"**Between cities.** A pooled effect whose Q test gives p < {Q_ALPHA:.2f}: the cities' "
        "estimates differ more than sampling error explains.",
        "",
    ]
    split = metas[metas["q_pvalue"] < Q_ALPHA] if not metas.empty else metas
    if split.empty:
        lines += ["None: wherever cities were pooled, their estimates are compatible.", ""]
    else:
        lines += ["| instrument | design | outcome | cities | I² | Q test p |",
                  "|---|---|---|---|---:|---:|"]  # fmt: skip
        for m in split.itertuples():
            lines.append(
                f"| {m.instrument_label} | {m.design_label} | {labels.get(m.outcome, m.outcome)} "
                f"| {m.cities} | {m.i2:.0%} | {m.q_pvalue:.3f} |"
            )
        lines.append("")
    dd = design_disagreements(est)
    lines += [
        f"**Between designs.** Within one city, two designs' estimates of the same instrument "
        f"and outcome whose difference exceeds {DESIGN_Z} standard errors (computed as if the "
        "two estimates were independent; they share the city's data, so this is a rough "
        "screen, not a test).",
        "",
    ]
    if dd.empty:
        lines += ["No city estimated one instrument with two designs.", ""]
        return "\n".join(lines)
    lines += ["| city | instrument | outcome | design | effect | design | effect | z | disagree |",
              "|---|---|---|---|---:|---|---:|---:|---|"]  # fmt: skip
    for r in dd.itertuples():
        scale, unit = outcome_unit(r.outcome)
        lines.append(
            f"| {r.city_label} | {r.instrument_label} | {labels.get(r.outcome, r.outcome)} "
            f"| {r.design_a} | {_fmt(r.estimate_a, scale)} | {r.design_b} "
            f"| {_fmt(r.estimate_b, scale)} | {_fmt(r.z, 1.0, 2)} "
            f"| {'yes' if r.disagree else 'no'} |"
        )
    lines += ["", "Effects in percentage points, months employed in months.", ""]
    return "\n".join(lines)


_VERDICT_TEXT = {
    "yes": "Yes (with a design-based check)",
    "yes, designs disagree": "Yes, with a warning (its designs disagree)",
    "partly": "Partly (selection on observables only)",
    "no": "No (no sub-study could run)",
}


def verdict_markdown(v: pd.DataFrame, pending: list[str] | None = None) -> str:
    tail = (
        [f"Not yet in the synthesis (no release bundle): {', '.join(pending)}.", ""]
        if pending
        else []
    )
    if v.empty:
        return "\n".join(["No city has a release bundle yet.", "", *tail])
    lines = ["| city | verdict | sub-studies run | design-based | not run |",
             "|---|---|---:|---|---:|"]  # fmt: skip
    for r in v.itertuples():
        lines.append(
            f"| {r.city_label} | {_VERDICT_TEXT[r.verdict]} | {r.run} "
            f"| {r.design_based or 'none'} | {r.not_run} |"
        )
    lines.append("")
    for r in v.itertuples():
        yes = (
            f"{r.city_label} ran {r.run} sub-studies, among them a design-based one "
            f"({r.design_based}). It rests on another assumption than selection on "
            "observables, one the data can partly check (pre-trends, first stage), and so "
            "checks the selection-on-observables estimate of the same instrument."
        )
        why = {
            "yes, designs disagree": f"{yes} The check fails for: {'; '.join(r.clashes)}; "
            "read these instruments' effects from the design-based estimate, and the "
            "selection-on-observables estimates of other instruments with care.",
            "yes": yes,
            "partly": f"{r.city_label} ran {r.run} sub-studies, all by selection on observables; "
            "they rest on the assumption that no unobserved difference between starters and "
            "non-starters drives both, which the data cannot test.",
            "no": f"{r.city_label} could run no sub-study.",
        }[r.verdict]
        stops = "; ".join(r.reasons) if r.reasons else "none"
        if r.legal_open:
            why += (
                " Phase 1 judged 'allowed' only conditional for sub-studies that ran: the "
                "legal checklist's open documents must be in place before real data are used."
            )
        extra = (
            f" Its estimate falls outside the prediction interval of: {'; '.join(r.outlying)}."
            if r.outlying else ""
        )  # fmt: skip
        lines += [
            f"- **{r.city_label}: {_VERDICT_TEXT[r.verdict].lower()}.** {why} "
            f"Why the other {r.not_run} stopped (Phase 1): {stops}.{extra}",
        ]
    return "\n".join([*lines, "", *tail])


def generated_pages(paths: Paths) -> dict[str, str]:
    """The synthesis's pages and figures for ``book/_generated/``."""
    est, sub = collect(paths)
    metas = meta_table(est) if not est.empty else pd.DataFrame()
    labels = _outcome_labels(paths)
    pages: dict[str, str] = {}
    figures: dict[str, str] = {}
    for m in (
        metas.drop_duplicates(["design", "instrument"]).itertuples() if not metas.empty else []
    ):
        key = f"{m.design}__{m.instrument}"
        grp = est[(est["design"] == m.design) & (est["instrument"] == m.instrument)]
        name = f"synthesis_forest_{key}.svg"
        sel = metas[(metas["design"] == m.design) & (metas["instrument"] == m.instrument)]
        pages[name] = forest_svg(grp, sel, labels)
        figures[key] = name
    pages["synthesis.md"] = markdown(paths, est, sub, metas, figures)
    pages["synthesis_disagreements.md"] = (
        disagreement_markdown(est, metas, labels) if not est.empty else "No estimates yet.\n"
    )
    v = verdicts(sub, est, metas) if not sub.empty else pd.DataFrame()
    pending = [
        load_city(c, paths.root)["display_name"]
        for c in list_cities(paths.root)
        if not (release_root(paths) / c / "register.json").is_file()
    ]
    pages["synthesis_verdicts.md"] = verdict_markdown(v, pending)
    pages["synthesis_summary.md"] = summary_markdown(metas, labels, policy_effect(paths.root))
    return pages


def summary_markdown(
    metas: pd.DataFrame, labels: dict[str, str], policy: float | None = None
) -> str:
    """Per instrument, the pooled effects in words by the fixed rules of the
    city summaries (:func:`reintegration.phase2.meta.uncertainty_word`), with the
    prediction interval's verdict: an effect is said to hold in every city
    only when that interval excludes zero too."""
    policy = policy_effect() if policy is None else policy
    if metas.empty:
        return "No pooled effect yet.\n"
    lines = [
        "| instrument | design | outcome | pooled effect | in words |",
        "|---|---|---|---:|---|",
    ]
    for m in metas.itertuples():
        scale, unit = outcome_unit(m.outcome)
        word = uncertainty_word(m.ci_low, m.ci_high, m.estimate, policy)
        direction = "higher" if m.estimate > 0 else "lower"
        if word == "unclear":
            words = "no clear effect (interval includes zero)"
        elif word == "clear":
            words = f"{direction}, clearly (interval excludes zero; at least {policy:.0%} in size)"
        else:
            words = f"{direction}, probably (interval excludes zero; smaller than {policy:.0%})"
        lo, hi = m.pi_low, m.pi_high
        if word == "unclear":
            pass
        elif lo is None or pd.isna(lo):
            words += "; too few cities to say whether it holds in every city"
        elif not (lo > 0 or hi < 0):
            words += "; not shown to hold in every city (prediction interval includes zero)"
        if designs.get(m.design).observational:
            words += "; an observational design: with care"
        lines.append(
            f"| {m.instrument_label} | {m.design_label} | {labels.get(m.outcome, m.outcome)} "
            f"| {_fmt(m.estimate, scale)} {unit} | {words} |"
        )
    return "\n".join([*lines, ""])

"""The summary page that opens each city's results: one headline per instrument.

Read from the city's RELEASE BUNDLE only (``release/<size>/<city>/``), with the
bundle-reading functions of :mod:`reintegration.phase2.synthesis`: every file is read
under the ``publisher`` role and checked against the SHA-256 its register
recorded. The page therefore shows only estimates that passed output checking
and computes no new person-level count.

Per instrument the page gives one headline on the outcome Phase 1's power
rule is about (employed 12 months after inflow):

* the **design** it rests on, chosen by a fixed rule (:func:`headline_design`):
  among the designs that ran for the instrument (without selection on
  observables when a design-based estimate contradicts it), the one Phase 1
  judged most credible on theoretical grounds (``pass`` before
  ``conditional``), and among equals the most precise (narrowest released
  interval);
* the **direction and size** in percentage points;
* the **uncertainty in words**, by fixed rules (:func:`uncertainty_word`)
  against the effect that would matter for policy (``practical.power.policy_effect`` in
  ``config/feasibility.yml``);
* whether Phase 1 judged the design credible there, with its caution;
* where two designs' estimates of the instrument differ by more than
  :data:`reintegration.phase2.synthesis.DESIGN_Z` standard errors (the synthesis's
  disagreement screen), that they disagree, and why designs can differ.

An overview figure (PNG) shows every released estimate with its interval, by
design; a table below it lists the same numbers with each interval's method.
Instruments and designs that Phase 1 left without an estimate are named with
its reason.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import atomic
from ..core.config import list_cities, load_city, policy_effect
from ..core.paths import Paths
from ..phase2 import synthesis
from ..phase2.meta import uncertainty_word

#: the outcome of the headline: the one the policy effect of Phase 1's power rule is about
HEADLINE_OUTCOME = "employed_12"
#: order of Phase 1's theoretical judgement, most credible first
CREDIBILITY = ("pass", "conditional")
#: why a design can give another answer than the others (the methods pages' reasons)
DESIGN_REASON = {
    "selection_on_observables": "Selection on observables compares starters with similar "
    "clients who did not start. It cannot rule out that starters differ in employability "
    "in ways the data do not show, such as motivation or health.",
    "rollout_did": "The staggered roll-out measures what the instrument's availability does "
    "to a whole team, not the effect of starting it, and with few teams its estimate is "
    "uncertain.",
    "case_manager_iv": "The case-manager comparison measures the effect only for clients who "
    "start because their case manager often uses the instrument. They may gain more or less "
    "than others.",
}
#: the words for each uncertainty class (see :func:`uncertainty_word`)
WORDS = {
    "clear": "clearly",
    "probably": "probably",
    "unclear": "unclear",
}


class SummaryError(RuntimeError):
    """A city's release bundle lacks what the summary page needs."""


@dataclass(frozen=True)
class Headline:
    instrument: str
    text: str


def load(paths: Paths, city: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The city's released estimates and sub-studies (with Phase 1's
    theoretical judgement), or None when the city has no release bundle."""
    bundle = synthesis.open_bundle(paths, city)
    if bundle is None:
        return None
    name = load_city(city, paths.root)["display_name"]
    rows, sub = synthesis.city_estimates(bundle, name)
    decisions = bundle.table("05_feasibility/decisions")
    if decisions is None or "theoretical" not in decisions.columns:
        raise SummaryError(
            f"{city}: the release bundle has no 05_feasibility/decisions table with a "
            f"'theoretical' column ({bundle.folder / 'register.json'})"
        )
    theory = decisions.rename(columns={"sub-study": "substudy"})[["substudy", "theoretical"]]
    sub = sub.merge(theory, on="substudy", how="left")
    est = pd.DataFrame(rows, columns=synthesis.COLUMNS)
    est = est.merge(sub[["substudy", "theoretical", "first reason or condition"]], on="substudy")
    return est, sub


def _observational_refuted(rows: pd.DataFrame) -> bool:
    """Whether the selection-on-observables estimate disagrees with a
    design-based estimate of the same instrument and outcome."""
    dd = synthesis.design_disagreements(rows)
    if dd.empty:
        return False
    obs = synthesis.OBSERVATIONAL
    clash = dd[dd["disagree"] & ((dd["key_a"] == obs) | (dd["key_b"] == obs))]
    return not clash.empty


def headline_design(rows: pd.DataFrame) -> pd.Series:
    """The estimate a headline rests on (rows: one instrument and outcome).

    Of the designs that ran: when selection on observables disagrees with a
    design-based estimate, the design-based ones only (the disagreement is
    evidence against its assumption of no unobserved confounding, as in the
    synthesis's verdicts); then the design Phase 1 judged most credible on
    theoretical grounds; then the most precise (narrowest released interval).
    """
    ran = rows[rows["phase2"] == "run"].copy()
    if ran.empty:
        raise SummaryError(f"no sub-study of {rows['instrument'].iloc[0]} ran")
    if _observational_refuted(ran):
        ran = ran[ran["design"] != synthesis.OBSERVATIONAL].copy()
    rank = {v: i for i, v in enumerate(CREDIBILITY)}
    ran["_rank"] = ran["theoretical"].map(lambda v: rank.get(v, len(rank)))
    ran["_width"] = ran["ci_high"] - ran["ci_low"]
    return ran.sort_values(["_rank", "_width", "design"]).iloc[0]


def pp(value: float) -> str:
    """A share as percentage points with one decimal, sign shown."""
    return synthesis._fmt(value, 100.0)


def _credibility(row: pd.Series) -> str:
    if row["theoretical"] == "pass":
        return "Phase 1 judged this design credible here."
    reason = synthesis._short_reason(str(row["first reason or condition"]))
    return f"Phase 1 judged this design credible here only with a caution: {reason}."


def headline(rows: pd.DataFrame, sub: pd.DataFrame, policy: float) -> Headline:
    """One plain-language headline for one instrument (rows: its estimates of
    every outcome and design)."""
    main = rows[rows["outcome"] == HEADLINE_OUTCOME]
    r = headline_design(main)
    word = uncertainty_word(r["ci_low"], r["ci_high"], r["estimate"], policy)
    up = r["estimate"] > 0
    size = f"{abs(r['estimate']) * 100:.1f} percentage points"
    what = "the share with a job a year later"
    verb = "raises" if up else "lowers"
    name = r["instrument_label"]
    if word == "clear":
        lead = f"**{name} clearly {verb} {what}, by {size}.**"
    elif word == "probably":
        lead = (
            f"**{name} probably {verb} {what}, by {size}.** That is less than the "
            f"{policy * 100:.0f} percentage points that would matter for policy."
        )
    else:
        lead = (
            f"**{name}: it is unclear whether it raises or lowers {what}.** The estimate is "
            f"{pp(r['estimate'])} percentage points, but the data also fit no effect."
        )
    interval = (
        f"The 95% interval runs from {pp(r['ci_low'])} to {pp(r['ci_high'])} percentage points "
        f"({r['interval']})."
    )
    design = f"This rests on the design *{r['design_label'].lower()}*"
    if r["design"] != synthesis.OBSERVATIONAL and _observational_refuted(main):
        design += ", not on selection on observables, whose estimate disagrees with it (see below)"
    design += f". {_credibility(r)}"
    parts = [lead, interval, design, *_other_designs(main, r, policy)]
    parts += _disagreement(rows, r)
    parts += _not_run(sub, r["instrument"])
    return Headline(r["instrument"], " ".join(parts))


def _other_designs(main: pd.DataFrame, r: pd.Series, policy: float) -> list[str]:
    others = main[(main["design"] != r["design"]) & (main["phase2"] == "run")]
    return [
        f"The design *{o.design_label.lower()}* gives {pp(o.estimate)} percentage points "
        f"({pp(o.ci_low)} to {pp(o.ci_high)}; "
        f"{WORDS[uncertainty_word(o.ci_low, o.ci_high, o.estimate, policy)]})."
        for o in others.itertuples()
    ]


def _disagreement(rows: pd.DataFrame, r: pd.Series) -> list[str]:
    dd = synthesis.design_disagreements(rows[rows["outcome"] == HEADLINE_OUTCOME])
    if dd.empty or not dd["disagree"].any():
        return []
    pairs = dd[dd["disagree"]]
    names = "; ".join(f"{p.design_a.lower()} and {p.design_b.lower()}" for p in pairs.itertuples())
    designs = sorted({d for p in pairs.itertuples() for d in (p.key_a, p.key_b)})
    why = " ".join(DESIGN_REASON[d] for d in designs if d in DESIGN_REASON)
    return [
        f"The designs disagree ({names}: the difference is more than "
        f"{synthesis.DESIGN_Z} standard errors). Why can they differ? {why}"
    ]


def _not_run(sub: pd.DataFrame, instrument: str) -> list[str]:
    stopped = sub[(sub["instrument"] == instrument) & (sub["phase2"] != "run")]
    return [
        f"Phase 1 did not allow *{str(s['design_label']).lower()}* here. Its reason: "
        f"{_body(str(s['first reason or condition']))}."
        for s in stopped.to_dict("records")
    ]


def _body(reason: str) -> str:
    """A Phase 1 reason without its criterion prefix ('theoretical: ...')."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


def _without_estimate(sub: pd.DataFrame) -> list[str]:
    """Instruments (or whole designs) for which no sub-study ran, with
    Phase 1's reason."""
    ran = set(sub.loc[sub["phase2"] == "run", "instrument"])
    rest = sub[~sub["instrument"].isin(ran)]
    if rest.empty:
        return []
    lines = ["## Not estimated here", ""]
    for r in rest.to_dict("records"):
        label = str(r.get("instrument_label") or r["instrument"])
        what = (
            f"The design *{str(r['design_label']).lower()}* could not be used"
            if r["instrument"] == "none"
            else f"{label} could not be estimated (*{str(r['design_label']).lower()}*)"
        )
        lines.append(f"- {what}: Phase 1 found {_body(str(r['first reason or condition']))}.")
    return [*lines, ""]


# ---------------------------------------------------------------- figure and table


def overview_png(est: pd.DataFrame, labels: dict[str, str]) -> bytes:
    """Every released estimate with its 95% interval: one panel per outcome,
    one row per instrument, one marker per design. Drawn from the released
    estimates only (no person-level count). Deterministic PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outcomes = sorted(est["outcome"].unique())
    instruments = list(dict.fromkeys(est.sort_values("instrument_label")["instrument_label"]))
    designs = list(dict.fromkeys(est.sort_values("design")["design_label"]))
    markers = ["o", "s", "^", "D", "v"]
    step = 0.6 / max(len(designs), 1)
    fig, axes = plt.subplots(
        1, len(outcomes), figsize=(3.2 * len(outcomes) + 1.6, 0.55 * len(instruments) + 2.0),
        squeeze=False, sharey=True,
    )  # fmt: skip
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        scale, unit = synthesis.outcome_unit(outcome)
        sel = est[est["outcome"] == outcome]
        for j, design in enumerate(designs):
            d = sel[sel["design_label"] == design]
            ys = [len(instruments) - instruments.index(i) - 0.3 + (j + 0.5) * step
                  for i in d["instrument_label"]]  # fmt: skip
            x, lo, hi = (d[c].to_numpy(float) * scale for c in ("estimate", "ci_low", "ci_high"))
            ax.errorbar(
                x, ys, xerr=[x - lo, hi - x],
                fmt=markers[j % len(markers)], color=f"C{j}", ms=5, lw=1, capsize=2,
                label=design,
            )  # fmt: skip
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(textwrap.fill(labels.get(outcome, outcome), 28), fontsize=10)
        ax.set_xlabel(f"effect ({unit})", fontsize=9)
        ax.tick_params(labelsize=9)
    axes[0][0].set_yticks(range(len(instruments), 0, -1), instruments)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(designs), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def estimates_table(est: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """Every released estimate of the city as a Markdown table."""
    lines = [
        "| instrument | design | outcome | effect | 95% interval | interval from |",
        "|---|---|---|---:|---|---|",
    ]
    for r in est.sort_values(["instrument_label", "design", "outcome"]).itertuples():
        scale, unit = synthesis.outcome_unit(r.outcome)
        lines.append(
            f"| {r.instrument_label} | {r.design_label} | {labels.get(r.outcome, r.outcome)} "
            f"({unit}) | {synthesis._fmt(r.estimate, scale)} "
            f"| {synthesis._fmt(r.ci_low, scale)} to {synthesis._fmt(r.ci_high, scale)} "
            f"| {r.interval} |"
        )
    return lines


# ---------------------------------------------------------------- page


def rules_markdown(policy: float) -> list[str]:
    p = f"{policy * 100:.0f}"
    return [
        "How to read the headlines. Each headline is about the share of clients with a job "
        '12 months after they started on benefits ("a job a year later"). '
        "The size is in percentage points: "
        f"+{p} means {p} more clients in every 100 have a job. The words follow fixed rules:",
        "",
        f"- **clearly**: the 95% interval lies wholly above or below zero, and the effect is "
        f"at least {p} percentage points, the size that would matter for policy "
        "(`config/feasibility.yml`, the same value Phase 1 used for its power check);",
        "- **probably**: the interval lies wholly above or below zero, but the effect is "
        f"smaller than {p} percentage points;",
        "- **unclear**: the interval includes zero: the data fit no effect as well.",
        "",
        "When several designs estimated an instrument, the headline rests on the design "
        "Phase 1 judged most credible here on theoretical grounds, and among equals on the "
        "most precise one (the narrowest interval); the other designs follow in the same "
        f"paragraph. Two designs disagree when their estimates differ by more than "
        f"{synthesis.DESIGN_Z} standard errors (a rough screen: both use the same clients). "
        "When selection on observables disagrees with a design that does not rest on it "
        "(the roll-out or the case-manager comparison), the headline rests on the latter: "
        "the disagreement suggests that clients who start differ in ways the data do not show. "
        "The methods pages explain each design: "
        "{doc}`selection on observables </methods/design_selection_on_observables>`, "
        "{doc}`staggered roll-out </methods/design_event_study>` and "
        "{doc}`case-manager instrument </methods/design_case_manager_iv>`; "
        "{doc}`the cross-city synthesis </synthesis/index>` compares the cities.",
        "",
    ]


def page_markdown(paths: Paths, city: str) -> str:
    """The summary page of one city (MyST Markdown)."""
    name = load_city(city, paths.root)["display_name"]
    head = [f"# {name}: summary of results", ""]
    loaded = load(paths, city)
    if loaded is None:
        return "\n".join([*head, "This city has no release bundle yet.", ""])
    est, sub = loaded
    if est.empty:
        return "\n".join([*head, "This city has released no effect estimates yet.", ""])
    policy = policy_effect(paths.root)
    labels = synthesis._outcome_labels(paths)
    lines = [
        *head,
        f"What the effect estimates of {name} say, one paragraph per instrument. Every "
        f"number on this page is read from the city's release bundle "
        f"(`release/{paths.size}/{city}/`), checked against its register's checksums; "
        "nothing is typed by hand. The step pages that follow show how each number was made.",
        "",
        *rules_markdown(policy),
        "## Headlines",
        "",
    ]
    for _, rows in est.groupby("instrument_label", sort=True):
        if (rows[rows["outcome"] == HEADLINE_OUTCOME]["phase2"] != "run").all():
            continue
        h = headline(rows, sub, policy)
        label = rows["instrument_label"].iloc[0]
        lines += [f"({city}-summary-{h.instrument})=", f"### {label}", "", h.text, ""]
    lines += _without_estimate(sub)
    lines += [
        "## All estimates",
        "",
        f"```{{figure}} summary_{city}.png",
        f":alt: Every released effect estimate of {name} with its 95% interval, by design",
        "",
        f"Every released effect estimate of {name} with its 95% interval, one colour per "
        "design. Drawn from the released estimates only: the figure adds no new count of "
        "persons.",
        "```",
        "",
        *estimates_table(est, labels),
        "",
        "Effects on the employment shares are in percentage points, months employed in months.",
        "",
    ]
    return "\n".join(lines)


def generated_pages(paths: Paths) -> dict[str, str]:
    """The summary page of every city, for ``book/_generated/``."""
    return {f"summary_{c}.md": page_markdown(paths, c) for c in list_cities(paths.root)}


def write_figures(paths: Paths, folder: Path) -> list[Path]:
    """Write each city's overview figure next to its page; return what changed."""
    changed = []
    for city in list_cities(paths.root):
        loaded = load(paths, city)
        if loaded is None or loaded[0].empty:
            continue
        path = folder / f"summary_{city}.png"
        if atomic.write_if_changed(path, overview_png(loaded[0], synthesis._outcome_labels(paths))):
            changed.append(path)
    return changed

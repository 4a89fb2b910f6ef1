"""The "Advice for case managers" page: the rule drawn and in words, its
value, the fairness audit and the minimisation table, each as effect results
for disclosure control and as tables in words built from the released ones.

No per-person advice leaves the research domain: the page shows the rule (a
few questions), group averages of at least the disclosure threshold, and
leaf sizes rounded to five percent of the starters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .advice import Advice
from .policy_tree import TODAY

Z = 1.959964


def _result(
    estimate: float,
    se: float,
    n: int,
    n_changed: int,
    what: str,
    outcome: str,
    treatment: str = "advice rule",
    n_other: int | None = None,
):
    from ..effects import EffectResult

    r = EffectResult(
        estimate=float(estimate),
        std_error=float(se),
        n=int(n),
        design="selection_on_observables",
        estimand=what,
        method="cross-fitted doubly robust scores, held-out folds",
        outcome=outcome,
        treatment=treatment,
        cov_type="robust",
    )
    # the persons behind a comparison: those whose instrument the rule changes and
    # those it leaves as they are (or: the group and the other starters)
    r.n_treated = int(n_changed)
    r.n_control = int(n - n_changed) if n_other is None else int(n_other)
    return r


def shown(items: dict[str, Any], threshold: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The effect results whose groups all reach the threshold, and for the
    others why they are not shown (checked here so that one small group does
    not withhold a whole table; the register checks the rest again)."""
    keep, held = {}, {}
    for key, r in items.items():
        small = [k for k in ("n_treated", "n_control") if getattr(r, k) < threshold]
        if small:
            held[key] = f"not shown: fewer than {threshold} starters " + (
                "change instrument" if "n_treated" in small else "stay as they are"
            )
        else:
            keep[key] = r
    return keep, held


def _changed(adv: Advice) -> np.ndarray:
    advised = np.array(adv.actions)[adv.rule.heldout.argmax(axis=1)]
    today = np.array(adv.scores.actions)[adv.scores.action]
    return (advised != TODAY) & (advised != today)


def value_results(adv: Advice) -> dict[str, Any]:
    """The comparisons of the rule (differences only; the levels follow
    from today's employment, published with the effects) as effect results."""
    changed, n = _changed(adv), len(adv.scores.y)
    out = {}
    for r in adv.values.itertuples(index=False):
        if r.versus is None or not math.isfinite(r.estimate):
            continue
        out[f"the rule versus {r.versus}"] = _result(
            r.estimate,
            r.std_error,
            n,
            int(changed.sum()),
            f"employment under the rule minus under {r.versus} (starters)",
            adv.settings.outcome,
        )
    return out


def _shown(est: float, se: float) -> bool:
    """Whether :func:`_pp` shows a value with its interval (not too uncertain)."""
    return bool(
        est is not None and math.isfinite(est) and math.isfinite(se)
        and est - Z * se >= -1 and est + Z * se <= 1
    )


def _pp(est: float, se: float | None = None, sign: bool = True) -> str:
    if est is None or not math.isfinite(est):
        return "–"
    text = f"{100 * est:+.1f}" if sign else f"{100 * est:.1f}"
    if se is None or not math.isfinite(se):
        return text
    if not _shown(est, se):  # beyond what a share can change: too few starters to say
        return "too uncertain to show (the interval is wider than the scale)"
    return f"{text} ({100 * (est - Z * se):+.1f} to {100 * (est + Z * se):+.1f})"


def whole(items: dict[str, Any], held: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Fairness results shown whole per characteristic or not at all: with
    one group of a characteristic held back, its gain would follow from the
    others' gains, their changes of the gap and the overall gain."""
    blocked = {k.split("=", 1)[0] for k in held}
    keep = {k: v for k, v in items.items() if k.split("=", 1)[0] not in blocked}
    more = {
        k: "not shown: another group of this characteristic is not shown, and its "
        "values would follow from these"
        for k in items
        if k not in keep
    }
    return keep, {**held, **more}


def values_in_words(adv: Advice, label) -> pd.DataFrame:
    """The rule against the alternatives, in percentage points with 95% intervals."""
    rows = []
    for r in adv.values.itertuples(index=False):
        if r.versus is None:
            continue
        versus = str(r.versus)
        if versus.startswith("everybody: "):
            versus = (
                f"every starter starting {label(versus.split(': ', 1)[1])} (no limit on places)"
            )
        elif versus == "nobody treated":
            versus = "nobody starting an instrument"
        low, high = r.estimate - Z * r.std_error, r.estimate + Z * r.std_error
        verdict = (
            "better"
            if low > 0
            else "worse"
            if high < 0
            else "cannot tell: the interval includes zero"
        )
        rows.append(
            {
                "the rule compared with": versus,
                "difference in employment (pp, 95% interval)": _pp(r.estimate, r.std_error),
                "reading": verdict,
            }
        )
    return pd.DataFrame(rows).set_index("the rule compared with")


# ---------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------


def leaf_results(adv: Advice) -> dict[str, Any]:
    """Each leaf's in-sample gain over today's allocation as an effect result."""
    out = {}
    for r in adv.leaves.itertuples(index=False):
        if r.n < 2 or r.advice == TODAY:  # as today: no change, a gain of exactly zero
            continue
        out[f"advice group {r.leaf}"] = _result(
            r.gain_estimate,
            r.gain_std_error,
            r.n,
            r.n_changed,
            "employment under the advice minus today's, in the group (in-sample)",
            adv.settings.outcome,
            treatment=str(r.advice),
        )
    return out


def _feature(adv: Advice, name: str) -> str:
    """A data item in the configuration's words."""
    return str(adv.settings.features.get(name, {}).get("label", name))


def _advice_words(action: str, label) -> str:
    return (
        "no specific advice: the case manager decides as today"
        if action == TODAY
        else label(action)
    )


def rule_in_words(adv: Advice, label, released: set[str], held: dict[str, str]) -> pd.DataFrame:
    """The leaves for readers: the answers that lead there, the advice, the
    share of starters (rounded to 5%) and the in-sample gain (released ones
    only)."""
    rows = []
    for r in adv.leaves.itertuples(index=False):
        key = f"advice group {r.leaf}"
        gain = (
            "0.0 (as today)"
            if r.advice == TODAY
            else _pp(r.gain_estimate, r.gain_std_error)
            if key in released
            else held.get(key, "not shown")
        )
        rows.append(
            {
                "advice group": int(r.leaf),
                "who": "; ".join(r.path) if r.path else "every starter",
                "advice": _advice_words(r.advice, label),
                "share of starters": f"about {5 * round(20 * r.share):.0f}%",
                "gain over today (pp, in-sample)": gain,
            }
        )
    return pd.DataFrame(rows).set_index("advice group")


def tree_figure(adv: Advice, label):
    """The rule as a tree: questions in boxes, yes to the left, advice in the leaves."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    ax.set_axis_off()
    root = adv.rule.tree.root
    leaves = adv.leaves
    box = {"boxstyle": "round,pad=0.4", "fc": "#f2f2f2", "ec": "0.4"}
    leaf_box = {"boxstyle": "round,pad=0.4", "fc": "#deebf7", "ec": "#2166ac"}
    counter = iter(range(1, len(leaves) + 1))

    def wrap(text: str, width: int = 26) -> str:
        words, lines, line = text.split(), [], ""
        for w in words:
            if len(line) + len(w) + 1 > width and line:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}".strip()
        return "\n".join([*lines, line])

    def draw(node, x: float, y: float, dx: float) -> None:
        if node.split is None:
            k = next(counter)
            row = leaves[leaves["leaf"] == k].iloc[0]
            text = (
                f"{k}. {wrap(_advice_words(row['advice'], label), 24)}\n"
                f"about {5 * round(20 * row['share']):.0f}% of starters"
            )
            ax.text(x, y, text, ha="center", va="center", fontsize=8, bbox=leaf_box)
            return
        ax.text(x, y, wrap(node.split.text + "?"), ha="center", va="center", fontsize=8, bbox=box)
        for child, sx, word in ((node.yes, -1, "yes"), (node.no, 1, "no")):
            cx, cy = x + sx * dx, y - 1.0
            ax.annotate(
                "",
                xy=(cx, cy + 0.25),
                xytext=(x, y - 0.25),
                arrowprops={"arrowstyle": "->", "color": "0.4"},
            )
            ax.text((x + cx) / 2 + 0.02 * sx, y - 0.5, word, fontsize=8, color="0.3", ha="center")
            draw(child, cx, cy, dx / 2)

    draw(root, 0.0, 0.0, 1.0)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-2.6, 0.6)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# fairness and minimisation
# ---------------------------------------------------------------------------


def fairness_results(adv: Advice) -> dict[str, Any]:
    """Per group level three effect results: the gain under the rule (behind
    it: the group's starters whose instrument changes and those it leaves),
    the gap in employment to the other starters today and its change under
    the rule (behind them: the group and the other starters)."""
    from .whom import group_frame

    changed = _changed(adv)
    shown_rule = np.array(adv.actions)[adv.rule.tree.advice(adv.frame)]
    today = np.array(adv.scores.actions)[adv.scores.action]
    moved = (shown_rule != TODAY) & (shown_rule != today)
    groups = group_frame(adv.persons, list(adv.settings.fairness))
    y = adv.scores.y
    out = {}
    for r in adv.fairness.itertuples(index=False):
        inside = (groups[r.group] == r.level).fillna(False).to_numpy()
        rest = groups[r.group].notna().to_numpy() & ~inside
        key = f"{r.group}={r.level}"
        # the gain rests on the starters the held-out rules move; the share moved
        # shown beside it on those the rule shown moves: both must reach the threshold
        held_out, by_shown = int(changed[inside].sum()), int(moved[inside].sum())
        n_moved = held_out if abs(held_out - r.n / 2) > abs(by_shown - r.n / 2) else by_shown
        out[f"{key}: gain"] = _result(
            r.gain_estimate,
            r.gain_std_error,
            r.n,
            n_moved,
            "employment under the rule minus today's, in the group",
            adv.settings.outcome,
        )
        gap_se = float(
            np.sqrt(y[inside].var(ddof=1) / inside.sum() + y[rest].var(ddof=1) / rest.sum())
        )
        out[f"{key}: gap today"] = _result(
            r.gap_today,
            gap_se,
            r.n,
            r.n,
            "employment today: the group minus the other starters",
            adv.settings.outcome,
            treatment="today's allocation",
            n_other=r.n_rest,
        )
        out[f"{key}: change of the gap"] = _result(
            r.gap_change_estimate,
            r.gap_change_std_error,
            r.n,
            r.n,
            "the gap under the rule minus the gap today",
            adv.settings.outcome,
            n_other=r.n_rest,
        )
    return out


def _reverses_clearly(r) -> bool:
    """A reversed gap whose change has an interval that excludes zero."""
    return bool(r.reverses and (r.gap_change_ci_low > 0 or r.gap_change_ci_high < 0))


def fairness_in_words(adv: Advice, label, released: set[str]) -> pd.DataFrame:
    """The fairness audit for readers, from the released results only: per
    group, the share whose instrument changes (rounded to 5%), the
    instrument most advised, the gain, the gap to the other starters today
    and under the rule, flagged where the rule widens it."""
    rows = []
    for r in adv.fairness.itertuples(index=False):
        key = f"{r.group}={r.level}"
        if not {f"{key}: gain", f"{key}: gap today", f"{key}: change of the gap"} <= released:
            continue
        flag = (
            "widens the gap, clearly"
            if r.widens_clearly
            else "widens the gap (may be chance)"
            if r.widens
            else "reverses the gap, clearly (the group overtakes or falls behind the others)"
            if _reverses_clearly(r)
            else "reverses the gap (may be chance; the group overtakes or falls behind the "
            "others)"
            if r.reverses
            else "narrows the gap"
        )
        change = _pp(r.gap_change_estimate, r.gap_change_std_error)
        sure = _shown(r.gap_change_estimate, r.gap_change_std_error)
        rows.append(
            {
                "characteristic": label(r.group),
                "group": label(r.level),
                "instrument changed (share)": f"about {5 * round(20 * r.changed):.0f}%",
                "most advised": _advice_words(r.main_advice, label),
                "gain (pp, 95% interval)": _pp(r.gain_estimate, r.gain_std_error),
                "gap to the other starters today (pp)": _pp(r.gap_today),
                # today's gap plus the change: as uncertain as the change
                "gap under the rule (pp)": _pp(r.gap_rule) if sure else change,
                "change of the gap (pp, 95% interval)": change,
                "the rule": flag if sure else "too uncertain to say",
            }
        )
    return pd.DataFrame(rows).set_index(["characteristic", "group"]) if rows else pd.DataFrame()


def minimisation_results(adv: Advice) -> dict[str, Any]:
    """What each data item adds to the rule's value, as effect results
    (behind each: the starters whose advice differs between the two rules,
    and the others). A row whose rule is the default rule differs by
    exactly zero and is not an estimate: it is left out here."""
    out = {}
    for r in adv.minimisation.itertuples(index=False):
        if r.n_changed == 0:
            continue
        out[r.data] = _result(
            r.adds_estimate,
            r.adds_std_error,
            r.n,
            r.n_changed,
            "the default rule's value minus the rule's without the data "
            "(with it, for a protected item)",
            adv.settings.outcome,
        )
    return out


def minimisation_in_words(
    adv: Advice, label, released: set[str], held: dict[str, str]
) -> pd.DataFrame:
    """The minimisation table for readers (the evidence a DPIA needs for
    "necessary data"), from the released results. Each row's difference is
    the value of the rule with more data minus the rule with less: without
    an item, the default rule minus the rule without it; with a protected
    item, the rule with it minus the default; from one source only, the
    default rule minus the rule from that source."""
    rows = []
    for r in adv.minimisation.itertuples(index=False):
        what = {
            "without": f"without {r.data}",
            "with": f"with {r.data} (a protected item the rule does not use)",
            "only": f"from {r.data.removeprefix('only ')} only (the difference is what the "
            "other data add)",
        }[r.how]
        low, high = r.adds_ci_low, r.adds_ci_high
        if r.n_changed == 0:
            adds = "0.0 (the same advice for every starter)"
            reading = "no difference: the rule does not need it"
        elif r.data not in released:
            adds, reading = held.get(r.data, "not shown"), "–"
        else:
            adds = _pp(r.adds_estimate, r.adds_std_error)
            if low > 0:
                reading = "more data, clearly more employment: the data are needed"
            elif high < 0:
                reading = "more data, clearly less employment: the larger rule overfits"
            else:
                reading = (
                    "no clear difference: not shown to be needed (nor shown to be "
                    "unneeded; the interval is wide)"
                )
        used = (
            "none"
            if r.used_by_rule == "none"
            else ", ".join(_feature(adv, f) for f in r.used_by_rule.split(", "))
        )
        rows.append(
            {
                "the rule learned": what,
                "questions it then asks": used,
                "more data minus less (pp, 95% interval)": adds,
                "reading": reading,
            }
        )
    return pd.DataFrame(rows).set_index("the rule learned")


def sentences(adv: Advice, label) -> list[str]:
    """The page's summary in plain words, from the numbers with fixed rules."""
    v = adv.values.set_index(["policy", "versus"], drop=False)
    out = []
    today = v[(v["policy"] == "the rule") & (v["versus"] == "today's allocation")]
    if len(today):
        r = today.iloc[0]
        low, high = r.ci_low, r.ci_high
        word = (
            "clearly raises" if low > 0 else "clearly lowers" if high < 0 else "may raise or lower"
        )
        out.append(
            f"Following the rule {word} the share of starters in work after 24 months "
            f"compared with today's choices: {_pp(r.estimate, r.std_error)} percentage "
            "points (95% interval), estimated on starters the rule was not learned on."
        )
    used = sorted(adv.rule.tree.root.features())
    out.append(
        "The rule asks about: "
        + (", ".join(_feature(adv, f) for f in used) or "nothing")
        + ". It never asks about sex, migration background or health unless the "
        "configuration allows it."
    )
    return out


def in_short(adv: Advice | None, label, value_released: bool, held: dict[str, str]) -> str:
    """The page's answer in two or three sentences for its top: what the
    rule is worth against today's choices (only when that comparison was
    released), which questions it asks, and where the rest is."""
    if adv is None:
        return (
            "Phase 1 let fewer than two instruments be studied by selection on observables "
            "in this city, so there is no rule to learn: nothing to choose between."
        )
    said = sentences(adv, label)
    first = (
        said[0]
        if value_released and len(said) > 1
        else "The rule's value is not shown: " + ("; ".join(held.values()) or "withheld") + "."
    )
    return (
        f"{first} {said[-1]} Below: the rule, what it is worth, who gains and who loses, "
        "and which data it needs; every number comes with its 95% interval."
    )


def fairness_sentences(adv: Advice, label, released: set[str]) -> list[str]:
    """The fairness audit in plain words, over the released groups only:
    gaps the rule widens clearly, gaps it may widen, and groups that may lose."""
    rows = [
        r for r in adv.fairness.itertuples(index=False) if f"{r.group}={r.level}: gain" in released
    ]
    if not rows:
        return []

    def names(items) -> str:
        return "; ".join(f"{label(r.group)}: {label(r.level)}" for r in items)

    unsure = [r for r in rows if not _shown(r.gap_change_estimate, r.gap_change_std_error)]
    rows_sure = [r for r in rows if r not in unsure]
    clearly = [r for r in rows_sure if r.widens_clearly]
    maybe = [r for r in rows_sure if r.widens and not r.widens_clearly]
    turned = [r for r in rows_sure if _reverses_clearly(r)]
    may_turn = [r for r in rows_sure if r.reverses and not _reverses_clearly(r)]
    lose = [r for r in rows if r.gain_ci_low < -0.05]
    out = [
        f"The rule clearly widens the gap in employment for: {names(clearly)}."
        if clearly
        else "No gap between the groups audited clearly widens."
    ]
    if maybe:
        out.append(f"It may widen the gap (this may be chance) for: {names(maybe)}.")
    if turned:
        out.append(
            "It clearly reverses the gap (the group overtakes the others, or falls behind "
            f"them) for: {names(turned)}."
        )
    if may_turn:
        out.append(
            "It may reverse the gap (the group would overtake the others, or fall behind "
            f"them; this may be chance) for: {names(may_turn)}."
        )
    if unsure:
        out.append(f"Too uncertain to say what the rule does to the gap for: {names(unsure)}.")
    if lose and len(lose) == len(rows):
        out.append(
            "For none of the groups audited can a loss of 5 percentage points be ruled out "
            "(every group's interval of its gain reaches below -5 percentage points)."
        )
    elif lose:
        out.append(
            "These groups may lose from the rule (the interval of their gain reaches "
            f"below -5 percentage points; the data cannot rule a loss out): "
            f"{names(lose)}."
        )
    return out

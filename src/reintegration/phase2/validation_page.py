"""The validation page for readers: its tables in words and percentage
points, and its answer in a few sentences for the top of the page.

The validation step (notebook ``09_validation``) holds every estimate
against the synthetic world's true values. This module turns what the step
computes into what a methods reviewer and a municipal policy maker read:
estimands, designs and instruments by name; effects, bias and standard
errors in percentage points; verdicts as yes or no; each rejection rate of
the placebo roll-outs with its exact 95% interval over the number of draws;
and :func:`in_short`, the page's findings in plain words from the numbers the
page releases (no counts of persons). It reads no data itself and wraps the
outputs of :mod:`reintegration.phase2.estimates`,
:func:`reintegration.designs.rollout.placebo_summary`,
:mod:`reintegration.phase2.sensitivity`, :mod:`reintegration.phase2.whom_truth`
and :mod:`reintegration.phase2.advice_truth`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from .. import designs
from ..designs.base import pct
from ..designs.rollout import Rollout
from ..montecarlo.shares import clopper_pearson
from ..research import labels

#: the nominal level of every test and interval on the page
LEVEL = 0.05

#: what the page says on real data (no truth files)
NO_TRUTH = ("This city has no truth files: its data are real, not synthetic, so there is "
            "nothing to validate the estimates against. The page stops here.")


def _observational(name: object) -> bool:
    """Whether a design rests on observed characteristics only (biased by
    construction in the synthetic world, where a hidden factor drives starts)."""
    try:
        return bool(designs.get(str(name)).observational)
    except KeyError:
        return False


#: the designs valid in the synthetic world (not observational), in report order
VALID_DESIGNS = tuple(n for n in designs.names() if not _observational(n))

Label = Callable[[str], str]


def yes_no(value: Any) -> str:
    """True -> 'yes', False -> 'no', missing -> '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "yes" if bool(value) else "no"


def _pp(share: Any, decimals: int = 1) -> float | None:
    """A share in percentage points (None when missing)."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return None
    return round(100 * float(share), decimals)


def _percent(share: Any) -> str:
    """A share as a whole per cent ('83%'), '–' when missing."""
    if share is None or pd.isna(share):
        return "–"
    return pct(float(share), 0)


def _scaled(value: Any, outcome: str, decimals: int = 1) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(labels.outcome_scale(outcome)[0] * float(value), decimals)


def _interval(low: Any, high: Any, outcome: str) -> str:
    lo, hi = _scaled(low, outcome), _scaled(high, outcome)
    if lo is None or hi is None:
        return "unbounded"
    return f"{lo:+.1f} to {hi:+.1f}"


def _truth_rows(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The whole-cohort rows of a validation frame with a known truth."""
    if frame is None or not len(frame):
        return pd.DataFrame()
    return frame[(frame["subgroup"] == "all") & frame["truth"].notna()]


# ---- tables ---------------------------------------------------------------------


def coverage_in_words(coverage: pd.DataFrame) -> pd.DataFrame:
    """:func:`reintegration.phase2.estimates.coverage_table` for readers: the
    mean bias and standard error in percentage points (months for months
    employed), estimands, designs and outcomes by name."""
    out = coverage.copy()
    outcomes = out.index.get_level_values("outcome") if len(out) else []
    scale = [labels.outcome_scale(str(o))[0] for o in outcomes]
    out = pd.DataFrame({
        "estimates": out["estimates"],
        "intervals containing the truth": out["covered"],
        "share containing the truth": [_percent(v) for v in out["coverage"]],
        "mean bias (percentage points)": (out["mean bias"] * scale).round(1),
        "mean standard error (percentage points)": (out["mean std. error"] * scale).round(1),
    }, index=out.index)
    out.index = out.index.rename({"target": "estimand"})
    return labels.display_frame(out)


def estimates_in_words(frame: pd.DataFrame) -> pd.DataFrame:
    """Every whole-cohort estimate with a known true value, in percentage
    points (months for months employed): the estimate, its 95% interval, the
    true value, the estimate minus the truth, and whether the interval
    contains the truth (yes/no)."""
    f = _truth_rows(frame)
    rows = []
    for r in f.to_dict(orient="records"):
        o = str(r["outcome"])
        rows.append({"design": r["design"], "instrument": r["instrument"],
                     "estimand": r.get("target") or "", "outcome": o,
                     "estimate": _scaled(r["estimate"], o),
                     "95% interval": _interval(r["ci_low"], r["ci_high"], o),
                     "true value": _scaled(r["truth"], o),
                     "estimate minus truth": _scaled(r["bias"], o),
                     "interval contains the truth": yes_no(r["covered"])})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).set_index(["design", "instrument", "outcome", "estimand"])
    return labels.display_frame(out)


def _rate(share: float, draws: int) -> tuple[int, float, float]:
    """Draws rejecting (a share of ``draws`` back to a count) and the share's
    exact 95% interval."""
    k = int(round(float(share) * draws))
    lo, hi = clopper_pearson(k, draws)
    return k, lo, hi


def rate_text(share: float, draws: int) -> str:
    """'15% (3% to 38%)': a rejection rate with its exact 95% interval."""
    if share is None or not math.isfinite(float(share)):
        return "–"
    _, lo, hi = _rate(share, draws)
    return f"{100 * share:.0f}% ({100 * lo:.0f}% to {100 * hi:.0f}%)"


#: the placebo summary's columns (rollout.placebo_summary) in words; the
#: rejection rates are shares of draws with their 95% interval
PLACEBO_COLUMNS = {
    "effect_rejected_randomization": "zero effect rejected: randomisation test",
    "effect_rejected_clustered": "zero effect rejected: cluster-robust",
    "pretrend_rejected_randomization": "parallel pre-trends rejected: randomisation test",
    "pretrend_rejected_clustered": "parallel pre-trends rejected: cluster-robust",
    "sd_estimate_over_mean_se_randomization": "spread over standard error: randomisation",
    "sd_estimate_over_mean_se": "spread over standard error: cluster-robust",
}


def placebo_in_words(summary: pd.DataFrame) -> pd.DataFrame:
    """The placebo summary for readers: per outcome, the draws and each
    rejection rate with its exact (Clopper-Pearson) 95% interval over the
    draws, the randomisation test first; the spreads over the standard
    errors (1 when the standard errors are right)."""
    rows = []
    for outcome, r in summary.iterrows():
        n = int(r["draws"])
        row: dict[str, Any] = {"outcome": outcome, "draws": n}
        for col, words in PLACEBO_COLUMNS.items():
            if col not in r or pd.isna(r[col]):
                continue
            row[words] = (round(float(r[col]), 2) if col.startswith("sd_")
                          else rate_text(float(r[col]), n))
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return labels.display_frame(pd.DataFrame(rows).set_index("outcome"))


def _verdict(share: float, draws: int) -> str:
    """'about right' when the rate's 95% interval holds the nominal 5%,
    'too often' when it lies above it."""
    _, lo, hi = _rate(share, draws)
    if lo > LEVEL:
        return "too often"
    return "about right" if hi >= LEVEL else "too rarely"


def _rates(summary: pd.DataFrame, col: str) -> str:
    return " and ".join(f"{100 * float(r[col]):.0f}%" for _, r in summary.iterrows())


def _meanings(summary: pd.DataFrame) -> list[str]:
    """What each distinct rejection rate of the table means over its draws."""
    seen: dict[tuple[int, int], str] = {}
    for col in ("effect_rejected_randomization", "effect_rejected_clustered"):
        for _, r in summary.iterrows():
            n = int(r["draws"])
            k, lo, hi = _rate(float(r[col]), n)
            if k and (k, n) not in seen:
                where = "lies above" if lo > LEVEL else "holds"
                many = ("s", "have") if k > 1 else ("", "has")
                seen[(k, n)] = (f"{k} rejection{many[0]} in {n} ({100 * k / n:.0f}%) {many[1]} "
                                f"a 95% interval from {100 * lo:.0f}% to {100 * hi:.0f}%, "
                                f"which {where} the 5% a well-sized test should show")
    return [seen[key] for key in sorted(seen)] or [
        f"no rejection in {int(summary['draws'].min())} draws is consistent with 5%"]


def placebo_sentences(summary: pd.DataFrame | None) -> str:
    """What the placebo roll-outs show, in words: each method's rejection
    rates, what a rate means over this few draws, and which intervals of the
    effects page to trust."""
    if summary is None or not len(summary):
        return "This city rolled out no instrument, so there is no placebo roll-out to run."
    n = int(summary["draws"].min())
    rand = [_verdict(float(r["effect_rejected_randomization"]), int(r["draws"]))
            for _, r in summary.iterrows()]
    clus = [_verdict(float(r["effect_rejected_clustered"]), int(r["draws"]))
            for _, r in summary.iterrows()]
    out = [f"Over {n} placebo roll-outs with no true effect, the randomisation test "
           f"rejected in {_rates(summary, 'effect_rejected_randomization')} of draws "
           f"({', '.join(labels.label(str(o)) for o in summary.index)}), the cluster-robust "
           f"test in {_rates(summary, 'effect_rejected_clustered')}.",
           f"{n} draws measure a rate only roughly: " + "; ".join(_meanings(summary)) + "."]
    if all(v == "about right" for v in rand):
        head = "The randomisation test's rates are consistent with 5%"
        if any(v == "too often" for v in clus):
            out.append(head + ", the cluster-robust test rejects a true zero too often: "
                       "this check finds no sign that the roll-out intervals, which the "
                       "effects page takes from the randomisation test, are too narrow "
                       "(so few draws would only show a clear excess); cluster-robust ones "
                       "would be too narrow.")
        else:
            out.append(head + ", and so are the cluster-robust test's: neither rejects a "
                       "true zero clearly too often.")
    else:
        out.append("Even the randomisation test rejects a true zero more often than 5% here: "
                   "read the roll-out intervals on the effects page as too narrow.")
    return " ".join(out)


def groups_in_words(coverage: pd.DataFrame, threshold: int = 200) -> tuple[pd.DataFrame, str]:
    """:func:`reintegration.phase2.whom_truth.coverage_by_size` for readers
    (instruments by name, the mean bias in percentage points) and a sentence;
    when no group reaches ``threshold`` starters the two columns about such
    groups are left out and the sentence says so."""
    big, big_cov = f"with {threshold}+ starters", f"covered ({threshold}+)"
    if coverage is None or not len(coverage):
        return pd.DataFrame(), "No group effect of the Who benefits step has a true value here."
    out = pd.DataFrame({
        "group effects": coverage["group effects"],
        "share whose interval contains the truth": [_percent(v) for v in coverage["covered"]],
        f"group effects with {threshold}+ starters": coverage[big],
        f"share containing the truth ({threshold}+ starters)":
            [_percent(v) for v in coverage[big_cov]],
        "mean bias (percentage points)": (100 * coverage["mean bias"]).round(1),
    }, index=coverage.index)
    if int(coverage[big].sum()) == 0:
        out = out.drop(columns=[f"group effects with {threshold}+ starters",
                                f"share containing the truth ({threshold}+ starters)"])
        text = (f"No group reaches {threshold} starters in this city's data, so the table "
                "shows coverage over all group effects only (the columns for groups of "
                f"{threshold} or more starters are left out).")
    else:
        text = (f"The columns marked {threshold}+ count only the groups resting on at least "
                f"{threshold} starters.")
    return labels.display_frame(out), text


def sensitivity_in_words(at_truth: pd.DataFrame, label: Label) -> pd.DataFrame:
    """:func:`reintegration.phase2.sensitivity.at_truth` for readers: effects
    and bounds in percentage points, shares explained in per cent beside the
    strongest yardstick's at three times its strength, verdicts as yes/no."""
    rows = []
    for r in at_truth.to_dict(orient="records"):
        rows.append({
            "sub-study": labels.substudy(str(r["sub-study"])), "outcome": label(r["outcome"]),
            "linear estimate": _pp(r["estimate"]),
            "hidden factor: % of starting explained": round(100 * r["r2_treatment"], 2),
            "hidden factor: % of the outcome explained": round(100 * r["r2_outcome"], 1),
            "strongest yardstick x3: % of the outcome explained":
                round(100 * r["benchmark_r2_outcome"], 1)
                if "benchmark_r2_outcome" in r else None,
            "bounds at the true strength": f"{_pp(r['bound_low']):+.1f} to "
                                           f"{_pp(r['bound_high']):+.1f}",
            "true value": _pp(r["truth"]),
            "the bounds contain the truth": yes_no(r["contains_truth"]),
            "a yardstick range of the effects page contains the truth":
                yes_no(r["a benchmark range contains the truth"]),
        })
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(["sub-study", "outcome"]).dropna(axis=1, how="all")


def sensitivity_sentences(at_truth: pd.DataFrame) -> str:
    """Why a yardstick (benchmark) range can miss the truth, from the rows."""
    if at_truth is None or not len(at_truth):
        return ""
    n = len(at_truth)
    inside = int(at_truth["contains_truth"].fillna(False).astype(bool).sum())
    ranges = int(at_truth["a benchmark range contains the truth"].fillna(False)
                 .astype(bool).sum())
    out = [f"At the hidden factor's true strength the bounds contain the true effect in "
           f"{inside} of {n} rows. The yardstick ranges of the effects page contain it in "
           f"{ranges} of {n}."]
    if ranges < n:
        out.append(
            "A yardstick range is not an interval for the effect: it moves the estimate by "
            "the bias that a hidden factor up to three times as strong as an observed "
            "characteristic could cause, and leaves out chance (the estimate's own 95% "
            "margin), so the truth can lie outside it even when no factor confounds the "
            "estimate.")
        if "benchmark_r2_outcome" in at_truth:
            hidden = 100 * float(at_truth["r2_outcome"].min())
            yard = 100 * float(at_truth["benchmark_r2_outcome"].max())
            if hidden > yard:
                out.append(
                    f"And the real hidden factor is stronger than the yardsticks: it explains "
                    f"at least {hidden:.1f}% of the outcome beyond the covariates, while "
                    f"three times the strongest observed characteristic explains at most "
                    f"{yard:.1f}%.")
        out.append("For a reader of the effects page's sensitivity section: read a yardstick "
                   "range together with the 95% interval, and as what a hidden factor as "
                   "strong as the observed ones could do, not as a bound on what a hidden factor "
                   "could do.")
    return " ".join(out)


def _in_sentence(text: Any) -> str:
    """A row name with every snake_case key in words, lower case as inside a
    sentence ("started work_placement" -> "started work placement")."""
    def words(m: re.Match[str]) -> str:
        found = labels.label(m.group(0))
        return found[0].lower() + found[1:] if found != m.group(0) else found

    return re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b", words, str(text))


def advice_in_words(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`reintegration.phase2.advice_truth.validation_table` with
    instruments by name and verdicts as yes/no."""
    out = table.copy()
    out.index = out.index.map(_in_sentence)
    col = "interval covers the truth"
    if col in out:
        out[col] = [yes_no(v) if v is not None and not pd.isna(v) else "" for v in out[col]]
        out = out.rename(columns={col: "interval contains the truth"})
    return out


# ---- in short ---------------------------------------------------------------------


def _coverage_line(frame: pd.DataFrame, label: Label) -> list[str]:
    f = _truth_rows(frame)
    if not len(f):
        return ["No whole-cohort estimate has a true value to compare with."]
    parts = [f"{int(g['covered'].astype(bool).sum())} of {len(g)} for {label(str(d)).lower()}"
             for d, g in f.groupby("design", sort=False)]
    out = ["Of the whole-cohort 95% intervals, " + "; ".join(parts)
           + " contain their true value."]
    observational = f["design"].map(_observational).astype(bool)
    if observational.any():
        soo = f[observational]
        means = soo.groupby(["target", "outcome"])["bias"].mean() * 100
        worst = soo.loc[soo["bias"].abs().idxmax()]
        missed = soo[~soo["covered"].astype(bool)]
        above = int((missed["bias"] > 0).sum())
        out.append(
            f"{label(str(worst['design']))} is biased by construction: the synthetic world "
            "gives instruments to clients with lower hidden employability, which the design "
            "cannot see, so its estimates should lie below the truth (its mean bias in the "
            f"coverage table: {means.min():+.1f} to {means.max():+.1f} percentage points). "
            "Its intervals are wide, so most contain the truth even so, but a single "
            f"estimate is off by up to {100 * abs(float(worst['bias'])):.1f} points "
            f"({label(str(worst['instrument'])).lower()}, {label(str(worst['outcome']))}): "
            "no decision should rest on one such estimate alone.")
        if above and len(missed) == 1:
            out.append("Its one miss lies above the truth, which the hidden factor does not "
                       "explain: read that estimate with extra care.")
        elif above:
            out.append(f"{above} of its {len(missed)} misses lie above the truth, which the "
                       "hidden factor does not explain: read those estimates with extra care.")
    valid = [d for d in VALID_DESIGNS if (f["design"] == d).any()]
    absent = [d for d in VALID_DESIGNS if d not in valid]
    if valid:
        out.append(f"For {' and '.join(label(d).lower() for d in valid)}, valid in this "
                   "world, about 95% should contain it.")
    if absent:
        out.append(f"The {' and '.join(label(d).lower() for d in absent)} "
                   f"design{'s have' if len(absent) > 1 else ' has'} no estimate to check on "
                   "these data, so this page gives no evidence about "
                   f"{'their' if len(absent) > 1 else 'its'} estimates.")
    return [" ".join(out)]


def _ranks_line(ranks: pd.DataFrame | None, min_starters: int, label: Label) -> list[str]:
    if ranks is None or not len(ranks):
        return []
    ok = ranks[(ranks["starters"] >= min_starters) & ranks["rank_correlation"].notna()]
    if not len(ok):
        return ["Too few starters to check the Who benefits predictions against the truth."]
    above = [label(str(i)).lower() for i in ok.loc[ok["above_zero"].fillna(False).astype(bool),
                                                   "instrument"]]
    head = (f"The Who benefits predictions rank starters better than chance (a rank "
            f"correlation with their true effects whose 95% interval lies above zero) for "
            f"{len(above)} of {len(ok)} instruments")
    if not above:
        return [f"The Who benefits predictions rank starters clearly better than chance for "
                f"none of the {len(ok)} instruments: every rank correlation with their true "
                "effects has a 95% interval that reaches zero. Such predictions must not "
                "decide about an individual client."]
    rest = "; for the others the interval reaches zero" if len(above) < len(ok) else ""
    best = float(ok["rank_correlation"].max())
    return [f"{head}: {', '.join(above)}{rest}. The best rank correlation is {best:.2f} "
            "(1 would be a perfect ordering): predictions this weak describe groups, and must "
            "not decide about an individual client."]


def _advice_line(truth: Mapping[str, Any] | None) -> list[str]:
    from .advice_truth import validation_sentence

    if truth is None:
        return ["No advice rule was learned in this city, so there is none to check."]
    text = validation_sentence(dict(truth))
    return ["The advice rule against its truth: " + text[0].lower() + text[1:]]


def in_short(frame: pd.DataFrame | None, placebo: pd.DataFrame | None,
             at_truth: pd.DataFrame | None, ranks: pd.DataFrame | None,
             advice: Mapping[str, Any] | None, label: Label, *,
             min_starters: int = 0, has_truth: bool = True) -> str:
    """The page's answer for its top, as a Markdown list: coverage per
    design (and why selection on observables misses), the placebo roll-outs,
    the sensitivity bounds at the truth, the Who benefits predictions, and
    the advice rule against its truth; on real data, :data:`NO_TRUTH`. Only
    numbers the page releases (rates, shares, numbers of estimates)."""
    if not has_truth or frame is None:
        return NO_TRUTH
    items = _coverage_line(frame, label)
    # the placebo roll-outs check the design that owns them (designs.rollout)
    rollout = bool(frame["design"].eq(Rollout.name).any()) if len(frame) else False
    items.append(_placebo_short(placebo, rollout) if placebo is not None and len(placebo) else
                 "This city rolled out no instrument, so there are no placebo roll-outs.")
    if at_truth is not None and len(at_truth):
        n = len(at_truth)
        inside = int(at_truth["contains_truth"].fillna(False).astype(bool).sum())
        ranges = int(at_truth["a benchmark range contains the truth"].fillna(False)
                     .astype(bool).sum())
        items.append(f"The sensitivity bounds at the hidden factor's true strength contain "
                     f"the true effect for {inside} of {n} instruments"
                     + (" (as they should)" if inside == n else ": where they miss, the "
                        "sensitivity analysis understates what the hidden factor can do")
                     + (f"; the hidden factor explains at most "
                        f"{100 * float(at_truth['r2_treatment'].max()):.2g}% of who starts, so "
                        "these bounds are close to the ordinary intervals and check the "
                        "arithmetic more than the method's reach."
                        if float(at_truth["r2_treatment"].max()) < 0.01 else ".")
                     + f" The yardstick ranges of the effects page contain it for {ranges} "
                     f"of {n}" + ("." if ranges == n else ": they leave out chance and "
                                  "measure a hidden factor only as strong as the observed "
                                  "characteristics, so they do not bound what a hidden "
                                  "factor could do."))
    items += _ranks_line(ranks, min_starters, label)
    items += _advice_line(advice)
    return "\n".join(f"* {i}" for i in items)


def _placebo_short(summary: pd.DataFrame, estimated: bool = True) -> str:
    """The placebo roll-outs in one or two sentences (``estimated``: the
    effects page shows a roll-out estimate of this city)."""
    n = int(summary["draws"].min())
    rand = summary["effect_rejected_randomization"].astype(float)
    clus = summary["effect_rejected_clustered"].astype(float)
    lo, hi = zip(*(clopper_pearson(_rate(v, n)[0], n) for v in rand), strict=True)
    rand_ok = all(_verdict(v, n) == "about right" for v in rand)
    clus_bad = any(_verdict(v, n) == "too often" for v in clus)
    text = (f"Placebo roll-outs ({n} draws with no true effect): the randomisation test, which "
            "gives the roll-out intervals, rejected in "
            f"{_rates(summary, 'effect_rejected_randomization')} of draws (95% intervals from "
            f"{100 * min(lo):.0f}% to {100 * max(hi):.0f}%"
            + (": consistent with the 5% it should show" if rand_ok else "") + "); the "
            f"cluster-robust test in {_rates(summary, 'effect_rejected_clustered')}"
            + (", too often." if clus_bad else "."))
    if not rand_ok:
        return text + (" Even the randomisation test rejects too often here: read the roll-out "
                       "intervals as too narrow.")
    out = [text, ("So this check finds no sign that the roll-out intervals from the "
                  f"randomisation test are too narrow ({n} draws would only show a clear "
                  "excess)" + ("; cluster-robust ones would be too narrow." if clus_bad
                               else "."))]
    if not estimated:
        out.append("This city's roll-out was not estimated on these data, so its effects page "
                   "shows none.")
    return " ".join(out)

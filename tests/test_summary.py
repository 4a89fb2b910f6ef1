"""The summary page that opens each city's results (reintegration.book.summary) and
the synthetic-data banner (reintegration.book.banner)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from reintegration.book import banner, summary
from reintegration.book.readability import split_sentences, words
from reintegration.core.config import ConfigError, list_cities
from reintegration.core.paths import Paths
from reintegration.phase2 import synthesis

POLICY = 0.05


@pytest.mark.parametrize(
    ("lo", "hi", "est", "word"),
    [
        (0.02, 0.12, 0.07, "clear"),  # excludes zero, at least the policy effect
        (-0.12, -0.06, -0.09, "clear"),  # the same below zero
        (0.01, 0.05, 0.03, "probably"),  # excludes zero, smaller than the policy effect
        (-0.05, -0.001, -0.025, "probably"),
        (-0.01, 0.30, 0.14, "unclear"),  # includes zero, however large
        (-0.30, 0.0, -0.15, "unclear"),  # touches zero: not excluded
        (0.0001, 0.0999, 0.05, "clear"),  # exactly the policy effect counts as clear
    ],
)
def test_uncertainty_word_follows_the_fixed_rules(lo, hi, est, word):
    assert summary.uncertainty_word(lo, hi, est, POLICY) == word


def _row(design, estimate, se, theoretical="conditional", phase2="run", outcome="employed_12"):
    return {
        "city": "x", "city_label": "X", "substudy": f"{design}/job_coaching", "design": design,
        "instrument": "job_coaching", "design_label": design.replace("_", " ").capitalize(),
        "instrument_label": "Job coaching", "outcome": outcome, "estimate": estimate,
        "std_error": se, "ci_low": estimate - 1.96 * se, "ci_high": estimate + 1.96 * se,
        "interval": "clustered standard error", "decision": "conditional", "phase2": phase2,
        "pooled": True, "theoretical": theoretical,
        "first reason or condition": "theoretical: few teams: use randomisation inference",
    }  # fmt: skip


def test_headline_rests_on_the_most_credible_then_most_precise_design():
    rows = pd.DataFrame(
        [
            _row("selection_on_observables", 0.05, 0.01),
            _row("rollout_did", -0.10, 0.08, theoretical="pass"),
            _row("case_manager_iv", 0.30, 0.001, phase2="not run"),
        ]
    )
    assert summary.headline_design(rows)["design"] == "rollout_did"
    rows.loc[1, "theoretical"] = "conditional"
    # equally credible, designs agree (z = 1.86): the narrowest interval
    assert summary.headline_design(rows)["design"] == "selection_on_observables"
    # the released interval, not the standard error, measures precision
    rows.loc[0, ["ci_low", "ci_high"]] = [-0.5, 0.6]
    assert summary.headline_design(rows)["design"] == "rollout_did"


def test_headline_leaves_selection_on_observables_when_a_design_based_estimate_refutes_it():
    rows = pd.DataFrame(
        [_row("selection_on_observables", 0.05, 0.01), _row("rollout_did", -0.20, 0.08)]
    )
    assert summary.headline_design(rows)["design"] == "rollout_did"  # z = 3.1


def test_headline_says_direction_size_words_design_and_disagreement():
    rows = pd.DataFrame(
        [_row("selection_on_observables", 0.12, 0.02), _row("rollout_did", -0.20, 0.05)]
    )
    sub = pd.DataFrame(
        [
            {"instrument": "job_coaching", "phase2": "not run",
             "design_label": "Case-manager instrumental variable",
             "first reason or condition": "theoretical: first-stage F 2.0 below 10: weak"},
        ]
    )  # fmt: skip
    h = summary.headline(rows, sub, POLICY)
    assert h.text.startswith("**Job coaching clearly lowers the share")
    assert "by 20.0 percentage points" in h.text
    assert "from −29.8 to −10.2 percentage points (clustered standard error)" in h.text
    assert "rests on the design *rollout did*, not on selection on observables" in h.text
    assert "only with a caution: few teams" in h.text
    assert "*selection on observables* gives +12.0 percentage points (+8.1 to +15.9; clearly)" in (
        h.text
    )
    assert "The designs disagree" in h.text
    assert "differ in employability" in h.text and "availability" in h.text
    assert "Phase 1 did not allow *case-manager instrumental variable* here." in h.text
    assert "Its reason: first-stage F 2.0 below 10: weak." in h.text
    # agreeing designs: the narrower interval, and no disagreement sentence
    rows.loc[1, "estimate"] = 0.10
    agreed = summary.headline(rows, sub, POLICY).text
    assert agreed.startswith("**Job coaching clearly raises the share")
    assert "by 12.0 percentage points" in agreed and "disagree" not in agreed
    # a small effect whose interval excludes zero: probably
    rows.loc[0, ["estimate", "ci_low", "ci_high"]] = [0.03, 0.01, 0.05]
    assert "Job coaching probably raises" in summary.headline(rows, sub, POLICY).text


def test_policy_effect_is_read_from_the_feasibility_config(root, tmp_root):
    assert summary.policy_effect(root) == 0.05
    path = tmp_root / "config" / "feasibility.yml"
    path.write_text(path.read_text().replace("policy_effect: 0.05", "policy_effect: 0.10"))
    assert summary.policy_effect(tmp_root) == 0.10
    path.write_text(path.read_text().replace("policy_effect: 0.10", "policy_effect: [1]"))
    with pytest.raises(ConfigError, match="feasibility.yml: practical.power"):
        summary.policy_effect(tmp_root)


def test_banner_is_added_under_the_first_heading_of_results_pages_only():
    def doc(text):
        d = new_document("x", get_default_settings(Parser))
        Parser().parse(text, d)
        return d

    page = doc("Rotterdam\n=========\n\nSome text.\n")
    assert banner.add_banner(page, "results/rotterdam/06_effects")
    section = next(iter(page.findall(nodes.section)))
    assert isinstance(section[1], nodes.admonition)
    assert banner.CSS_CLASS in section[1]["classes"]
    assert section[1].astext() == f"{banner.TITLE}\n\n{banner.BANNER}"
    assert banner.add_banner(doc("Text only.\n"), "_generated/summary_rotterdam")
    other = doc("Methods\n=======\n\nText.\n")
    assert not banner.add_banner(other, "methods/06_effects")
    assert banner.BANNER not in other.astext()


# ---------------------------------------------------------------- on the release bundles

_NUMBER = re.compile(r"[+−-]?\d+\.\d")


def _released(release: Path) -> dict[tuple[str, str, str], tuple[float, float, float]]:
    """Every whole-cohort estimate in a release bundle, read straight from its files."""
    out = {}
    labels = pd.read_csv(release / "05_feasibility" / "substudies.csv")
    names = {r["sub-study"]: (r["instrument"], r["design"]) for _, r in labels.iterrows()}
    for path in sorted((release / "06_effects").glob("*__*.json")):
        instrument, design = names[path.stem.replace("__", "/", 1)]
        for outcome, eff in json.loads(path.read_text())["effects"].items():
            out[(instrument, design, outcome)] = (eff["estimate"], eff["ci_low"], eff["ci_high"])
    return out


def _page_table(text: str) -> dict[tuple[str, str, str], tuple[float, ...]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 6 or not _NUMBER.fullmatch(cells[3]):
            continue
        outcome = re.sub(r" \((percentage points|months)\)$", "", cells[2])
        nums = [float(x.replace("−", "-")) for x in (cells[3], *cells[4].split(" to "))]
        rows[(cells[0], cells[1], outcome)] = tuple(nums)
    return rows


@pytest.mark.pipeline
@pytest.mark.parametrize("city", list_cities(Path(__file__).resolve().parents[1]))
def test_summary_numbers_equal_the_release_bundle(small: Paths, city):
    release = small.root / "release" / "small" / city
    assert (release / "register.json").is_file(), f"{release} is missing: run the pipeline"
    released = _released(release)
    outcomes = synthesis._outcome_labels(small)
    text = summary.page_markdown(small, city)
    table = _page_table(text)
    assert len(table) == len(released) > 0
    for (instrument, design, outcome), (est, lo, hi) in released.items():
        scale = 1.0 if "months" in outcome else 100.0
        got = table[(instrument, design, outcomes[outcome])]
        assert got == pytest.approx((est * scale, lo * scale, hi * scale), abs=0.051)
    # each headline's numbers are released numbers of the headline outcome
    head = {
        f"{v[0] * 100:.1f}".lstrip("-")
        for k, v in released.items()
        if k[2] == summary.HEADLINE_OUTCOME
    }
    for para in re.findall(r"^\*\*.*$", text, re.MULTILINE):
        lead = re.search(r"by (\d+\.\d) percentage points|estimate is ([+−]\d+\.\d)", para)
        assert lead, para
        value = lead.group(1) or lead.group(2)
        assert value.lstrip("+−") in head, para
        # plain language: the headline sentence itself stays short
        first = split_sentences(para.split("**")[1])[0]
        assert len(words(first)) <= 20, first


@pytest.mark.pipeline
def test_summary_refuses_a_bundle_that_differs_from_its_register(small: Paths, tmp_path):
    city = list_cities(small.root)[0]
    root = tmp_path
    shutil.copytree(small.root / "config", root / "config")
    shutil.copytree(small.root / "release" / "small" / city, root / "release" / "small" / city)
    model = next((root / "release" / "small" / city / "06_effects").glob("*__*.json"))
    model.write_text(model.read_text().replace('"estimate": 0', '"estimate": 1', 1))
    with pytest.raises(synthesis.SynthesisError, match=f"{model.name}.*checksum differs"):
        summary.page_markdown(Paths.for_size("small", root), city)


@pytest.mark.pipeline
def test_every_results_page_shows_the_synthetic_data_banner(small: Paths, built_book: Path):
    pages = sorted((built_book / "results").rglob("*.html"))
    pages += sorted((built_book / "_generated").glob("summary_*.html"))
    assert len(pages) >= len(list_cities(small.root)) * 2
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert banner.CSS_CLASS in html and banner.BANNER in html, page
        assert f'<p class="admonition-title">{banner.TITLE}</p>' in html, page
    assert banner.BANNER not in (built_book / "intro.html").read_text(encoding="utf-8")


def test_released_interval_is_labelled_with_its_method():
    eff = {"ci_low": -0.5, "ci_high": 0.1, "cov_type": "clustered"}
    assert synthesis._interval_method(eff) == "clustered standard error"
    eff["diagnostics"] = {"ci_randomization": [-0.5, 0.1], "ci_clustered": [-0.3, -0.1]}
    assert synthesis._interval_method(eff) == "randomisation inference"
    eff["diagnostics"]["ci_randomization"] = [-0.6, 0.2]  # not the released one
    assert synthesis._interval_method(eff) == "clustered standard error"


def test_overview_figure_is_a_deterministic_png_of_every_estimate():
    est = pd.DataFrame(
        [
            _row("selection_on_observables", 0.05, 0.01),
            _row("rollout_did", -0.10, 0.08),
            _row("selection_on_observables", 1.2, 0.4, outcome="months_employed"),
        ]
    )
    labels = {"employed_12": "employed 12 months after inflow"}
    png = summary.overview_png(est, labels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert summary.overview_png(est, labels) == png


def test_city_without_a_release_bundle_gets_a_page_that_says_so(tmp_root):
    pages = summary.generated_pages(Paths.for_size("small", tmp_root))
    assert set(pages) == {f"summary_{c}.md" for c in list_cities(tmp_root)}
    assert all("has no release bundle yet" in t for t in pages.values())
    assert pages["summary_rotterdam.md"].startswith("# Rotterdam: summary of results")


def test_instruments_and_designs_without_any_estimate_are_named_with_the_reason():
    sub = pd.DataFrame(
        [
            {"instrument": "job_coaching", "instrument_label": "Job coaching",
             "design_label": "Selection on observables", "phase2": "run",
             "first reason or condition": "theoretical: fine"},
            {"instrument": "training", "instrument_label": "Training",
             "design_label": "Selection on observables", "phase2": "not run",
             "first reason or condition": "practical: 12 persons started, fewer than 50"},
            {"instrument": "none", "instrument_label": "none rolled out",
             "design_label": "Staggered roll-out", "phase2": "not run",
             "first reason or condition": "theoretical: no team-by-team roll-out"},
        ]
    )  # fmt: skip
    lines = summary._without_estimate(sub)
    assert lines[0] == "## Not estimated here"
    assert lines[2] == (
        "- Training could not be estimated (*selection on observables*): Phase 1 found "
        "12 persons started, fewer than 50."
    )
    assert lines[3].startswith("- The design *staggered roll-out* could not be used")
    assert summary._without_estimate(sub.iloc[:1]) == []

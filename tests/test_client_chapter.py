"""The chapter for clients, in Dutch and English: plain language (B1), every
concern of the data dialogue answered, and the right to object explained."""

from __future__ import annotations

import pytest

from reintegration import feasibility
from reintegration.book import readability
from reintegration.book.generate import toc
from reintegration.core.config import list_cities, load_steps
from reintegration.core.paths import Paths

PAGES = {"nl": "book/clients/nl.md", "en": "book/clients/en.md"}


@pytest.mark.parametrize("language", sorted(PAGES))
def test_client_page_passes_the_readability_check(root, language):
    report = readability.check((root / PAGES[language]).read_text(), language)
    assert report.problems == []
    assert report.words >= 600
    assert report.mean_words <= readability.RULES[language]["max_mean_words"]
    assert report.max_words <= readability.RULES[language]["max_sentence_words"]


@pytest.mark.parametrize("language", sorted(PAGES))
def test_every_client_concern_in_config_is_answered(root, language):
    text = (root / PAGES[language]).read_text()
    concerns = feasibility.load_settings(root)["wanted"]["client_concerns"]
    missing = [key for key in concerns if f"({language}-concern-{key})=" not in text]
    assert missing == []


def test_both_pages_explain_objection_pseudonymisation_and_the_game(root):
    nl = (root / PAGES["nl"]).read_text()
    en = (root / PAGES["en"]).read_text()
    for needle in ("artikel 21", "Pseudonimisering betekent", "databasespel", "(en.md)"):
        assert needle in nl, needle
    for needle in ("Article 21", "Pseudonymisation means", "database game", "(nl.md)"):
        assert needle in en, needle


def test_both_pages_are_in_the_table_of_contents(tmp_root):
    for city in list_cities(tmp_root):
        for step in load_steps(tmp_root):
            nb = tmp_root / "book" / "results" / city / f"{step['name']}.ipynb"
            nb.parent.mkdir(parents=True, exist_ok=True)
            nb.write_text("{}")
        summary = tmp_root / "book" / "_generated" / f"summary_{city}.md"
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text("# summary\n")  # generated at build time; opens the city's chapter
    contents = toc(Paths.for_size("small", tmp_root))
    intro = next(p for p in contents["parts"] if p["caption"] == "Introduction")
    assert {"file": "clients/nl"} in intro["chapters"]
    assert {"file": "clients/en"} in intro["chapters"]


def _page(sentences: list[str], extra: str = "") -> str:
    return "# Titel\n\n" + " ".join(sentences) + "\n" + extra


def test_check_flags_a_long_sentence_and_a_high_mean():
    long = "Dit " + "woord " * 30 + "eindigt hier."
    report = readability.check(_page(["Korte zin."] * 600 + [long]), "nl")
    assert any(p.startswith("sentence of 33 words") for p in report.problems)
    report = readability.check(
        _page(["Een zin van precies zestien woorden " * 3 + "is dit."] * 40), "nl"
    )
    assert report.mean_words == 20.0
    assert any(p.startswith("mean sentence length 20.0") for p in report.problems)


def test_check_flags_banned_and_unexplained_jargon_but_not_explained_terms():
    filler = ["Dit is een korte zin."] * 130
    report = readability.check(_page(filler + ["Wij gebruiken microdata van het CBS."]), "nl")
    assert any("jargon 'microdata'" in p for p in report.problems)
    report = readability.check(_page(filler + ["Wij doen aan pseudonimisering."]), "nl")
    assert any("'pseudonimisering' is not explained" in p for p in report.problems)
    explained = [
        "Pseudonimisering betekent: uw naam wordt een nummer.",
        "Wij doen aan pseudonimisering.",
    ]
    assert readability.check(_page(filler + explained), "nl").problems == []


def test_check_ignores_code_labels_and_link_targets_and_counts_short_pages():
    text = (
        "(label-x)=\n# Title\n\nA short page. See [the other page](https://example.org/x).\n\n"
        "```python\nregression = estimand + microdata  # code is not text\n```\n"
    )
    report = readability.check(text, "en")
    assert report.problems == [f"{report.words} words, fewer than 600"]
    assert report.words == 8  # Title / A short page / See the other page
    with pytest.raises(ValueError, match="no readability rules for language 'de'"):
        readability.check(text, "de")

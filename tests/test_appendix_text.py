"""Facts in the legal appendix and the glossary that code can check."""

from __future__ import annotations

import re

from reintegration.linking import bsn
from reintegration.synth.schema import CANONICAL_CODES


def _entry(text: str, term: str) -> str:
    start = text.index(f"*{term}*\n: ")
    end = text.find("\n\n", start)
    return text[start : end if end >= 0 else len(text)]


def test_glossary_elfproef_formula_matches_the_implementation(root):
    entry = _entry((root / "book/appendices/glossary.md").read_text(), "Elfproef")
    formula = re.search(r"\$(9d_1[^$]*)\$", entry).group(1)
    terms = re.findall(r"([+-])?\s*(\d*)d_(\d)", formula)
    weights = [int(f"{sign or '+'}{coef or 1}") for sign, coef, _ in terms]
    assert [int(i) for _, _, i in terms] == list(range(1, 10))
    assert weights == bsn.WEIGHTS.tolist()
    digits = re.search(r"the digits ((?:\d, )+\d) give", entry).group(1).replace(", ", "")
    assert len(digits) == 9 and bsn.elfproef(digits)
    assert not re.search(r"\d{9}", entry)  # the release audit would flag a valid BSN


def test_glossary_entries_do_not_start_a_line_with_a_list_marker(root):
    # a continuation line starting with "+ " or "- " renders as a bullet list
    for line in (root / "book/appendices/glossary.md").read_text().splitlines():
        assert not re.match(r"^\s+[+*-]\s", line), line


def test_glossary_distance_levels_are_the_canonical_codes(root):
    entry = _entry(
        (root / "book/appendices/glossary.md").read_text(), "Afstand tot de arbeidsmarkt"
    )
    codes = re.findall(r"`(\w+)`", entry)
    assert codes == list(CANONICAL_CODES["labour_market_distance"])
    assert "three levels" in entry


def test_legal_appendix_covers_objection_profiling_and_the_cbs_route(root):
    text = (root / "book/appendices/legal.md").read_text()
    for needle in (
        "**Article 21: the right to object.**",
        "21(6)",
        "**Article 22 and profiling: the advice rule.**",
        "C-634/21",
        "## From the municipality to CBS: the delivery route",
        "Stcrt. 2021,\n36083",
        "## Participatiewet article 17 and what GDPR allows a municipality to ask",
    ):
        assert needle in text, needle
    # what could not be checked stays marked as such
    uavg = text[text.index("## UAVG") : text.index("## From the municipality")]
    assert "could not be checked" in uavg and "*unverified*" in uavg

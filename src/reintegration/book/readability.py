"""A plain-language check for the book's pages for clients.

The client chapter is written at language level B1: short sentences and no
jargon. This module measures a MyST Markdown page the way a reader meets it:

* code blocks, directives' option lines, MyST labels (``(name)=``), HTML
  comments and link targets are not text; a link counts as its visible words;
* headings, list items and table cells each count as (the end of) a sentence,
  so a long table cell cannot hide a long sentence;
* words are runs of letters and digits (with inner hyphens and apostrophes).

:func:`check` compares a page with the limits of its language: the mean and
the maximum sentence length, the minimum length of the page, words that must
not appear at all, and words that may appear only when the page explains them
where they first occur in running text (in a sentence with a cue such as
"betekent" or "means"; a heading may ask the question the next sentence
answers). The limits are this compendium's choices after common plain-language
advice (short sentences, one idea each, no technical terms), not an official
B1 standard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: per language: limits, banned words, words that must be explained where they first occur
RULES: dict[str, dict] = {
    "nl": {
        "max_mean_words": 13.0,
        "max_sentence_words": 25,
        "min_words": 600,
        "banned": (
            "estimand",
            "microdata",
            "verwerkingsgrondslag",
            "rinpersoon",
            "propensity",
            "instrumentele variabele",
            "regressie",
            "significant",
            "cohort",
            "panel",
            "dpia",
            "verwerkingsverantwoordelijke",
            "betrokkene",
            "aggregaat",
            "geaggregeerd",
            "disclosure",
            "trusted third party",
            "remote access",
        ),
        "explain": ("pseudonimisering", "profilering", "avg", "koppelen", "algoritme"),
        "cues": ("betekent", "dat wil zeggen", "noemen we", "heet", "is een", "is de", "is het"),
    },
    "en": {
        "max_mean_words": 14.0,
        "max_sentence_words": 25,
        "min_words": 600,
        "banned": (
            "estimand",
            "microdata",
            "legal basis",
            "rinpersoon",
            "propensity",
            "instrumental variable",
            "regression",
            "significant",
            "cohort",
            "panel data",
            "dpia",
            "controller",
            "data subject",
            "aggregate",
            "disclosure",
            "trusted third party",
            "remote access",
        ),
        "explain": ("pseudonymisation", "profiling", "gdpr", "link", "algorithm"),
        "cues": ("means", "that is", "we call", "is called", "is a ", "is the", "stands for"),
    },
}

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_FENCE = re.compile(r"^(```|~~~|:::)")


@dataclass
class Report:
    """What :func:`check` measured, and what breaks the rules (``problems``)."""

    language: str
    words: int
    sentences: list[str]
    mean_words: float  # over prose sentences; headings and table headers excluded
    max_words: int
    longest: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def plain_text(markdown: str) -> list[tuple[str, str]]:
    """The page's text as ``(kind, text)`` blocks with markup removed: kind
    "title" for headings, table header cells and admonition titles, "prose"
    for paragraphs, list items and table body cells."""
    blocks: list[tuple[str, str]] = []
    current: list[str] = []
    fence: str | None = None
    in_comment = False
    header_cells = 0  # cells of the last table row, re-labelled when a separator follows

    def flush() -> None:
        if current:
            blocks.append(("prose", " ".join(current)))
            current.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        if in_comment or line.startswith("<!--"):
            in_comment = "-->" not in line
            continue
        if _FENCE.match(line):
            flush()
            if fence is None:
                # admonitions are text (their title too); code and other directives are not
                m = re.match(r"^(?:```|:::)\{(?:admonition|note|tip|important)\}\s*(.*)$", line)
                fence = "text" if m else "skip"
                if m and m.group(1):
                    blocks.append(("title", m.group(1)))
            elif re.fullmatch(r"`{3,}|~{3,}|:{3,}", line):
                fence = None
            continue
        if fence == "skip" or (fence == "text" and re.match(r"^:\w+:", line)):
            continue  # code, or a directive option such as :class: tip
        if not line or re.match(r"^\([\w:-]+\)=$", line):
            flush()
            continue
        if line.startswith("|"):
            flush()
            if re.match(r"^\|[\s:|-]+\|$", line):
                for i in range(len(blocks) - header_cells, len(blocks)):
                    blocks[i] = ("title", blocks[i][1])
                continue
            cells = [c.strip() for c in line.strip("|").split("|") if c.strip()]
            blocks += [("prose", c) for c in cells]
            header_cells = len(cells)
            continue
        if line.startswith("#"):
            flush()
            blocks.append(("title", re.sub(r"^#+\s*", "", line)))
            continue
        if re.match(r"^([-*+]|\d+\.)\s", line):
            flush()
            line = re.sub(r"^([-*+]|\d+\.)\s+", "", line)
        current.append(line)
    flush()
    out = [(kind, _strip_inline(text)) for kind, text in blocks]
    return [(kind, text) for kind, text in out if text]


def _strip_inline(text: str) -> str:
    text = re.sub(r"\{\w+\}`([^`<]*?)\s*(<[^>]*>)?`", r"\1", text)  # {doc}`words <target>`
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [words](target)
    text = re.sub(r"[*_`]", "", text)
    return " ".join(text.split())


def split_sentences(block: str) -> list[str]:
    """Sentences of one block: split after . ! ? followed by a space and a
    capital letter or an opening quote (so "art. 21" stays whole)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý“\"(])", block)
    return [p.strip() for p in parts if _WORD.search(p)]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _contains(sentence: str, term: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(term)}", sentence.lower()) is not None


def check(markdown: str, language: str) -> Report:
    """Measure a page against the rules of ``language`` ("nl" or "en")."""
    if language not in RULES:
        raise ValueError(f"no readability rules for language {language!r}: {', '.join(RULES)}")
    rules = RULES[language]
    blocks = plain_text(markdown)
    sentences = [s for _, b in blocks for s in split_sentences(b)]
    prose = [len(words(s)) for kind, b in blocks if kind == "prose" for s in split_sentences(b)]
    counts = [len(words(s)) for s in sentences]
    total = sum(counts)
    mean = sum(prose) / len(prose) if prose else 0.0
    longest_i = max(range(len(counts)), key=counts.__getitem__) if counts else 0
    report = Report(
        language,
        total,
        sentences,
        round(mean, 2),
        counts[longest_i] if counts else 0,
        sentences[longest_i] if sentences else "",
    )
    if total < rules["min_words"]:
        report.problems.append(f"{total} words, fewer than {rules['min_words']}")
    if mean > rules["max_mean_words"]:
        report.problems.append(
            f"mean sentence length {mean:.1f} words, above {rules['max_mean_words']}"
        )
    for s, n in zip(sentences, counts, strict=True):
        if n > rules["max_sentence_words"]:
            report.problems.append(
                f"sentence of {n} words (limit {rules['max_sentence_words']}): {s}"
            )
    for term in rules["banned"]:
        hits = [s for s in sentences if _contains(s, term)]
        if hits:
            report.problems.append(f"jargon {term!r} in: {hits[0]}")
    prose_sentences = [s for kind, b in blocks if kind == "prose" for s in split_sentences(b)]
    for term in rules["explain"]:
        first = next((s for s in prose_sentences if _contains(s, term)), None)
        if first is not None and not any(c in first.lower() for c in rules["cues"]):
            report.problems.append(f"{term!r} is not explained where it first occurs: {first}")
    return report

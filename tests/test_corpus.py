"""The malformed-export corpus (``tests/malformed_corpus.py``) as tests: every
case reaches its declared outcome, and the corpus covers what it must."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from malformed_corpus import OUTCOMES, Case, cases, problems, run

from reintegration.intake import screening

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.format}-{c.table}-{c.name}" for c in CASES])
def test_case_reaches_its_declared_outcome(case: Case, tmp_path: Path):
    result = run(case, tmp_path / "delivery")
    assert problems(case, result) == [], result


def test_the_corpus_covers_every_table_both_formats_and_every_outcome():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES), "case names are unique"
    tables = {"clients", "benefit_spells", "instruments", "caseload"}
    for fmt in ("csv", "sav"):
        assert {c.table for c in CASES if c.format == fmt} == tables, fmt
    assert {c.outcome for c in CASES} == set(OUTCOMES)
    for fmt in ("csv", "sav"):
        assert {c.outcome for c in CASES if c.format == fmt} == set(OUTCOMES), fmt


def test_an_over_long_field_is_found_in_bounded_memory(tmp_path: Path):
    """A 20 MB line: the scan reads 1 MiB at a time and stops at the limit."""
    path = tmp_path / "big.csv"
    with open(path, "wb") as fh:
        fh.write(b"a;b;c\r\n1;2;3\r\n4;")
        block = b"x" * (1 << 20)
        for _ in range(20):
            fh.write(block)
        fh.write(b";6\r\n")
    tracemalloc.start()
    try:
        found = screening.longest_field_over(path, b";", 4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found is not None
    line, index, seen = found
    assert (line, index) == (3, 1) and seen > 4096
    assert peak < 8 * (1 << 20), f"peak {peak / 2**20:.1f} MiB"


def test_the_field_scan_follows_quotes_and_passes_normal_files(tmp_path: Path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'a;b\r\n"x;y;z";2\r\n3;"' + b"q" * 5000 + b'"\r\n')
    assert screening.longest_field_over(path, b";", 4096)[:2] == (3, 1)
    assert screening.longest_field_over(path, b";", 10_000) is None
    path.write_bytes(b'a;b;c\r\n"x;y";' + b"q" * 5000 + b";3\r\n")
    assert screening.longest_field_over(path, b";", 4096)[:2] == (2, 1), "quoted delimiters"

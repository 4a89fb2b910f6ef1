"""Formula neutralisation and encoding sniffing (tests/test_corpus.py runs them
through the reader)."""

from __future__ import annotations

import codecs
import io

import numpy as np
import pandas as pd

from reintegration.intake import screening


def test_formulas_are_recognised_and_numbers_are_not():
    for text in (
        "=1+1",
        '=HYPERLINK("http://x";"y")',
        "+31 6 1234",
        "-cmd",
        "@SUM(A1)",
        "\t=1",
        "=cmd|' /C calc'!A0",
    ):
        assert screening.is_formula(text), text
    for value in ("-5", "+3.5", "-0,25", "1e-3", "-", "Jansen", "", None, 5, "a=b"):
        assert not screening.is_formula(value), value


def test_every_csv_written_neutralises_formulas_in_cells_labels_and_header():
    df = pd.DataFrame(
        {"=label": ["=cmd|' /C calc'!A0", "ok"], "count": [-5, 12], "share": ["-0.5", "@x"]},
        index=pd.Index(["+evil", "row"], name="group"),
    )
    raw = screening.csv_bytes(df)
    back = pd.read_csv(io.BytesIO(raw), index_col=0, dtype=str)
    assert list(back.columns) == ["'=label", "count", "share"]
    assert list(back.index) == ["'+evil", "row"]
    assert back.iloc[0, 0] == "'=cmd|' /C calc'!A0"
    assert list(back["count"]) == ["-5", "12"], "numbers are left alone"
    assert list(back["share"]) == ["-0.5", "'@x"]
    assert b"\r" not in raw


def test_neutralising_a_frame_changes_the_cells_a_value_by_value_pass_changes():
    """Columns of texts are searched in one go; the frame equals the one
    neutralised cell by cell (texts with and without formulas, numbers written
    as text, missing values, a mixed column, a pandas string column, numbers)."""
    rng = np.random.default_rng(3)
    words = np.array(["Jansen", "-5", "=1+1", "@x", "a=b", "+31 6", "\t=1", "", "ok"],
                     dtype=object)
    df = pd.DataFrame({
        "mixed_texts": rng.choice(words, 500),
        "plain_texts": rng.choice(words[[0, 4, 8]], 500),
        "with_none": np.where(rng.random(500) < 0.2, None, rng.choice(words, 500)),
        "mixed_types": pd.Series(rng.choice(np.array([1, "=x", 2.5, None], dtype=object), 500)),
        "string": pd.Series(rng.choice(words, 500), dtype="string"),
        "number": rng.normal(size=500),
    })
    got = screening.neutralise_frame(df)
    expected = df.copy()
    for col in ["mixed_texts", "plain_texts", "with_none", "mixed_types", "string"]:
        expected[col] = df[col].map(screening.neutralise)
    pd.testing.assert_frame_equal(got, expected)
    assert (got["mixed_texts"] == "'=1+1").any() and not (got["plain_texts"].str[0] == "'").any()
    assert screening.csv_bytes(df) == expected.to_csv(lineterminator="\n").encode("utf-8")


def test_actual_encodings_are_named():
    declared = "cp1252"
    assert screening.actual_encoding(codecs.BOM_UTF8 + b"a;b", declared).startswith("UTF-8")
    assert screening.actual_encoding(codecs.BOM_UTF8 + b"a;b", "utf-8") is None
    assert "UTF-16" in screening.actual_encoding("a;b\r\n1;2".encode("utf-16"), declared)
    assert "big-endian" in screening.actual_encoding("a;b\r\n1;2".encode("utf-16-be"), declared)
    assert screening.actual_encoding(b"a;b\r\n1;2", declared) is None
    assert screening.utf8_in_single_byte("naïve".encode(), declared) == 2
    assert screening.utf8_in_single_byte("naïve".encode("cp1252"), declared) is None
    assert screening.utf8_in_single_byte("naïve".encode(), "utf-8") is None


def test_every_csv_the_package_writes_goes_through_the_neutraliser(root):
    """``to_csv`` appears only in the neutraliser and in the synthetic-data
    writer, which neutralises the frame first."""
    src = root / "src" / "reintegration"
    users = sorted(
        p.relative_to(src).as_posix()
        for p in src.rglob("*.py")
        if ".to_csv(" in p.read_text(encoding="utf-8")
    )
    assert users == ["intake/screening.py", "synth/writers.py"]
    writer = (src / "synth" / "writers.py").read_text(encoding="utf-8")
    assert "out = neutralise_frame(out)" in writer


def test_the_vectorised_masks_agree_with_the_value_checks():
    values = pd.Series(
        ["=1+1", "-5", "Jan", None, "Sil\x00va", "@x", "-", 3.0, -1.0, "\tx", "a\x1bb", ""],
        dtype=object,
    )
    assert list(screening.formula_mask(values)) == [screening.is_formula(v) for v in values]
    assert list(screening.control_mask(values)) == [screening.has_control(v) for v in values]


def test_the_joined_search_finds_what_the_string_methods_find():
    """A column of texts is searched in one joined text: the same masks as
    pandas' string methods value by value, with line ends, formula starts
    after a line end, empty texts and missing values in the column."""
    rng = np.random.default_rng(11)
    alphabet = list("ab-+=@1.,e ") + ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x0b", "é"]
    values = []
    for _ in range(3000):
        k = int(rng.integers(0, 6))
        values.append(None if k == 0 else "".join(rng.choice(alphabet, size=k - 1)))
    values += ["\n=1+x", "x\n@y", "-5", "+31", "=", "\r\r", "\t9", "", "\x00"]
    column = pd.Series(values, dtype=object)
    control, formula = screening.control_mask(column), screening.formula_mask(column)
    assert list(control) == list(screening.control_mask_reference(column))
    assert list(formula) == list(screening.formula_mask_reference(column))
    assert list(formula) == [screening.is_formula(v) for v in values]
    assert list(control) == [screening.has_control(v) for v in values]
    assert 0 < control.sum() < len(values) and 0 < formula.sum() < len(values)
    assert not formula[values.index("\n=1+x")] and formula[values.index("\r\r")]
    # a column that is not all texts goes value by value
    mixed = pd.Series(["=a", 3, None, "b\x00"], dtype=object)
    assert list(screening.formula_mask(mixed)) == [True, False, False, False]
    assert list(screening.control_mask(mixed)) == [False, False, False, True]

"""The pure parts of disclosure control, without a step run or a register:
cell suppression of one table (``reintegration.disclosure.suppression``) and the checks
of models and counts (``reintegration.disclosure.checks``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reintegration.disclosure import checks as C
from reintegration.disclosure import suppression as S
from reintegration.disclosure.rules import DisclosureError, Rules

RULES = Rules()  # threshold 10, residual dof 10, zeros disclosive


def persons(spec: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = [(r, c) for (r, c), k in spec.items() for _ in range(k)]
    return pd.DataFrame(rows, columns=["sex", "instrument"])


def no_acro(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame("ok", index=raw.index, columns=raw.columns)


def test_a_request_names_the_output_and_the_column_it_refuses() -> None:
    df = persons({("f", "a"): 12})
    with pytest.raises(DisclosureError, match=r"^03_panel/t: no column\(s\) \['age'\]"):
        S.table_request("03_panel/t", df, "age", None, None, None, False, RULES)
    df.loc[0, "sex"] = None
    with pytest.raises(DisclosureError, match="column 'sex' has missing values"):
        S.table_request("03_panel/t", df, "sex", "instrument", None, None, False, RULES)


def test_a_one_way_request_counts_in_one_statistic_column() -> None:
    req = S.table_request("s/t", persons({("f", "a"): 12}), "sex", None, None, None, True, RULES)
    assert req.oneway and req.cols == ["statistic"] and req.dims == ["sex", "statistic"]
    assert req.statistic == "count" and set(req.data["statistic"]) == {"count"}


def test_small_cells_and_zeros_are_flagged_structural_zeros_cleared() -> None:
    df = persons({("f", "a"): 30, ("f", "b"): 4, ("m", "a"): 25, ("m", "b"): 20, ("x", "a"): 11})
    req = S.table_request("s/t", df, "sex", "instrument", None, None, False, RULES)
    raw, n = S.tabulate(req)
    counts = n.to_numpy(dtype=float)
    flags = S.primary_flags(req, raw, counts, no_acro(raw), RULES)
    assert flags.tolist() == [["", "threshold"], ["", ""], ["", "threshold"]]  # x/b is 0
    structural = S.mark_structural(raw, counts, [("x", "b")], flags, "t", "s")
    assert structural[2, 1] and flags[2, 1] == ""
    with pytest.raises(DisclosureError, match="'a'\\) is declared a structural zero but is not"):
        S.mark_structural(raw, counts, [("m", "a")], flags, "t", "s")


def test_a_share_needs_enough_persons_with_and_without_the_outcome() -> None:
    df = persons({("f", "a"): 40, ("m", "a"): 40})
    df["employed"] = [1] * 35 + [0] * 5 + [1] * 20 + [0] * 20  # f: 5 without the outcome
    req = S.table_request("s/t", df, "sex", "instrument", "employed", "mean", False, RULES)
    assert req.binary
    raw, n = S.tabulate(req)
    flags = S.primary_flags(req, raw, n.to_numpy(dtype=float), no_acro(raw), RULES)
    assert flags.tolist() == [["proportion"], [""]]


def test_a_magnitude_total_leaves_out_the_persons_of_suppressed_cells() -> None:
    df = persons({("f", "a"): 20, ("f", "b"): 3, ("m", "a"): 20, ("m", "b"): 20})
    df["earnings"] = [100.0] * 20 + [1000.0] * 3 + [200.0] * 20 + [300.0] * 20
    req = S.table_request("s/t", df, "sex", "instrument", "earnings", "mean", True, RULES)
    raw, n = S.tabulate(req)
    flags = S.primary_flags(req, raw, n.to_numpy(dtype=float), no_acro(raw), RULES)
    released = S.protect_magnitude_margins(req, raw, flags, RULES)
    assert raw.loc["f", "Total"] == pytest.approx((20 * 100 + 3 * 1000) / 23)
    assert released.loc["f", "Total"] == pytest.approx(100.0)  # f/b's persons left out
    assert released.loc["Total", "Total"] == pytest.approx((2000 + 4000 + 6000) / 60)
    cells = S.mask_released(raw, released, flags, np.zeros(raw.shape, bool), 2)
    assert np.isnan(cells.released.loc["f", "b"]) and cells.suppressed.sum() == 1
    status, reasons = S.table_status(cells, [], RULES)
    assert status == "review" and reasons[0].startswith("threshold: 1 cell suppressed")


def test_a_table_with_every_cell_suppressed_fails() -> None:
    df = persons({("f", "a"): 3})
    req = S.table_request("s/t", df, "sex", "instrument", None, None, False, RULES)
    raw, n = S.tabulate(req)
    flags = S.primary_flags(req, raw, n.to_numpy(dtype=float), no_acro(raw), RULES)
    cells = S.mask_released(raw, raw.astype(float), flags, np.zeros(raw.shape, bool), None)
    status, reasons = S.table_status(cells, [], RULES)
    assert status == "fail" and reasons[0] == "every cell would be suppressed: nothing to release"


def test_model_check_counts_persons_per_group_not_rows() -> None:
    placed_persons = list(range(9)) * 3 + [0, 1, 2]  # 30 rows of 9 persons
    groups = pd.DataFrame(
        {"placed": [1] * 30 + [0] * 30, "person": placed_persons + list(range(100, 130))}
    )
    status, reasons, checks = C.check_model(50, groups, "person", RULES)
    assert status == "fail" and checks["group_cells"] == {"0": 30, "1": None}  # 9 persons
    assert "1 of 2 (1)" in reasons[0]
    status, reasons, _ = C.check_model(50, None, None, RULES)
    assert status == "review" and "cell counts were not checked" in reasons[0]
    status, _, checks = C.check_model(9, groups[["placed"]], None, RULES, acro_failed=False)
    assert status == "fail" and checks["residual_dof"] is None


def test_counts_behind_a_figure_cannot_be_partly_suppressed() -> None:
    status, reasons, checks = C.check_counts(pd.Series([12.0, np.nan, 4.0]), (), RULES)
    assert status == "fail" and checks == {"counts": 2, "below_threshold_or_zero": 1}
    assert reasons[0].startswith("1 of 2 counts below 10 or zero")
    assert C.check_counts(pd.Series([12.0, 0.0], index=["a", "b"]), [("b", None)], RULES)[0] == (
        "pass"
    )

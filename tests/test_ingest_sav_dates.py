"""SPSS date variables: the vectorised conversion gives what the value-by-value
route gives (timestamps, range errors with their rows, sentinel notes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reintegration.intake import ingest


def _export(values: list, canon: str) -> ingest.Export:
    frame = pd.DataFrame({canon: pd.Series(values, dtype=object)})
    return ingest.Export(table="instruments", path=Path("x.sav"), format="sav",
                         columns={canon: "DATEINDE"}, frame=frame,
                         city_exports={"open_end_sentinels": ["9999-12-31", "2099-01-01"]})


def _by_value(values: list, canon: str) -> tuple[pd.Series, list, list]:
    export = _export(values, canon)
    raw = export.frame[canon].to_numpy(dtype=object)
    sentinels = set(ingest._sentinels(export.city_exports)) if canon in ingest.END_COLUMNS \
        else set()
    out, n_open = ingest._sav_dates_by_value(export, canon, raw, sentinels)
    ingest._note_open_ends(export, canon, n_open)
    series = pd.Series(pd.to_datetime(pd.Series(out, dtype=object)),
                       index=export.frame.index).astype("datetime64[ns]")
    return series, export.cell_errors, export.notes


def _values(seed: int, n: int = 400) -> list:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, 7, n)
    values: list = []
    for k, days in zip(pick, rng.integers(0, 40_000, n), strict=True):
        base = dt.date(1950, 1, 1) + dt.timedelta(days=int(days))
        values.append([
            base, dt.datetime.combine(base, dt.time(13, 5)), None, float("nan"),
            dt.date(9999, 12, 31), dt.date(2300, 5, 1) if days % 2 else dt.date(1500, 1, 1),
            dt.datetime(2099, 1, 1, 0, 0),
        ][k])
    return values


@pytest.mark.parametrize("canon", ["end_date", "start_date"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_sav_dates_equal_the_value_by_value_route(canon: str, seed: int) -> None:
    values = _values(seed)
    export = _export(values, canon)
    fast = ingest._sav_dates(export, canon)
    slow, errors, notes = _by_value(values, canon)
    pd.testing.assert_series_equal(fast, slow)
    assert fast.dtype == "datetime64[ns]"
    assert export.cell_errors == errors
    assert export.notes == notes
    # the sentinels are open ends only in an end column; elsewhere 9999-12-31 is out of range
    out_of_range = sum(isinstance(v, dt.date) and v.year in (1500, 2300) for v in values)
    sentinel_9999 = sum(isinstance(v, dt.date) and v.year == 9999 for v in values)
    expected = out_of_range + (0 if canon in ingest.END_COLUMNS else sentinel_9999)
    assert len(errors) == expected > 0
    assert [e.row for e in errors] == sorted(e.row for e in errors)
    assert (len(notes) == 1) == (canon in ingest.END_COLUMNS)


def test_values_that_are_not_dates_take_the_value_by_value_route() -> None:
    values = [dt.date(2020, 1, 1), "2020-02-03", None]
    export = _export(values, "start_date")
    fast = ingest._sav_dates(export, "start_date")
    slow, errors, _ = _by_value(values, "start_date")
    pd.testing.assert_series_equal(fast, slow)
    assert fast.iloc[1] == pd.Timestamp("2020-02-03") and export.cell_errors == errors == []

"""Descriptive frames: they add up, they keep every person once, and the
figures and standardised differences use released numbers only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_panel import linked_sources

from reintegration import disclosure
from reintegration.core import step
from reintegration.research import describe, panel, panel_contract

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> panel.Panel:
    cfg, src = linked_sources("utrecht", tmp_path_factory.mktemp("data"))
    return panel.build(src, cfg["study"])


@pytest.fixture(scope="module")
def labels() -> dict[str, str]:
    return describe.instrument_labels(ROOT)


@pytest.fixture(scope="module")
def frame(built: panel.Panel, labels: dict[str, str]) -> pd.DataFrame:
    return describe.labelled(built.persons, labels)


def test_take_up_counts_add_up_to_the_cohort(built, frame) -> None:
    n = len(built.persons)
    assert len(frame) == n
    for group in describe.GROUPS:
        counts = describe.take_up_counts(frame, group)
        assert counts.loc["Total", "Total"] == n, group
        inner = counts.drop(index="Total", columns="Total")
        assert (inner.sum(axis=1) == counts["Total"].drop("Total")).all(), group
        assert (inner.sum(axis=0) == counts.loc["Total"].drop("Total")).all(), group
        assert frame[group].notna().all(), group
    # instrument columns: the persons with each first instrument
    per_instrument = describe.take_up_counts(frame, "sex").loc["Total"].drop("Total")
    expected = built.persons["instrument"].map(describe.instrument_labels(ROOT)).value_counts()
    assert per_instrument.to_dict() == expected.to_dict()


def test_labels_are_ordered_with_no_instrument_first(frame, labels) -> None:
    cats = list(frame["instrument"].cat.categories)
    assert cats[0] == describe.NONE_LABEL
    assert cats == [v for v in labels.values() if v in cats]
    assert list(frame["age group"].cat.categories)[:3] == ["under 27", "27-49", "50 and over"]


def test_events_count_every_inflow_and_every_episode(built, labels) -> None:
    ev = describe.events(built.persons, [built.episodes, built.episodes_later], labels)
    assert (ev["event"] == "inflow").sum() == len(built.persons)
    starts = describe.instrument_starts(ev)
    assert len(starts) == len(built.episodes) + len(built.episodes_later)
    assert "" not in starts["instrument"].cat.categories
    assert ev["quarter"].astype(str).str.fullmatch(r"\d{4}Q[1-4]").all()
    # Utrecht's data start in 2018
    assert ev.loc[ev["event"] == "inflow", "year"].astype(int).min() == 2018
    # a quarter without any event stays a row of the coverage table
    gap = "2019Q2"
    persons = built.persons[built.persons["inflow_quarter"] != gap]
    episodes = [e[describe._quarter(e["start_month"]) != gap]
                for e in (built.episodes, built.episodes_later)]
    ev = describe.events(persons, episodes, labels)
    assert gap not in set(ev["quarter"].astype(str))
    assert gap in ev["quarter"].cat.categories
    table = pd.crosstab(ev["quarter"], ev["event"], dropna=False)
    assert (table.loc[gap] == 0).all()


def test_outcomes_long_has_one_row_per_person_and_observed_horizon(built, frame) -> None:
    n = len(built.persons)
    long = describe.outcomes_long(frame)
    assert len(long) == 4 * n
    assert list(long["horizon"].cat.categories) == ["6 months", "12 months", "18 months",
                                                    "24 months"]
    six = long[long["horizon"] == "6 months"]
    assert six["employed"].sum() == built.persons["employed_6"].sum()
    after = describe.outcomes_long(frame, after_start=True)
    treated = built.persons["instrument"] != panel_contract.NO_INSTRUMENT
    assert describe.NONE_LABEL not in after["instrument"].cat.categories
    observed = sum(built.persons.loc[treated, f"employed_after_start_{h}"].notna().sum()
                   for h in (6, 12, 18, 24))
    assert len(after) == observed
    assert after["employed"].isin([0, 1]).all()


def test_balance_frames_split_binary_and_continuous(built, frame) -> None:
    binary, continuous = describe.balance_frames(frame)
    assert set(binary["value"].unique()) <= {0.0, 1.0}
    assert len(binary) == len(describe.BINARY_COVARIATES) * len(built.persons)
    assert not set(continuous["value"].unique()) <= {0.0, 1.0}
    assert continuous["covariate"].nunique() == len(describe.CONTINUOUS_COVARIATES)


def test_standardised_differences_by_hand() -> None:
    ref, other = describe.NONE_LABEL, "Training"
    shares = pd.DataFrame({ref: [0.5, 0.2, np.nan], other: [0.6, np.nan, 0.3]},
                          index=["female", "education high", "single parent"])
    means = pd.DataFrame({ref: [10.0], other: [12.0], "Total": [11.0]}, index=["age (years)"])
    sds = pd.DataFrame({ref: [2.0], other: [4.0]}, index=["age (years)"])
    smd = describe.standardised_differences(shares, means, sds)
    assert list(smd.columns) == [other]
    assert smd.loc["female", other] == pytest.approx(0.1 / np.sqrt((0.25 + 0.24) / 2), abs=1e-3)
    assert np.isnan(smd.loc["education high", other])  # a suppressed share leaves it empty
    assert np.isnan(smd.loc["single parent", other])
    assert smd.loc["age (years)", other] == pytest.approx(2 / np.sqrt(10), abs=1e-3)


def test_employment_by_month_shows_only_counts_that_pass(built, frame) -> None:
    counts = describe.employment_by_month(built.person_months, frame, built.persons, 10)
    assert list(counts.index) == list(range(-24, 25))
    shown = counts.to_numpy()[~np.isnan(counts.to_numpy())]
    assert (shown >= 10).all()
    for group in counts.columns.get_level_values(0).unique():
        g = counts[group]
        both = g["employed"] + g["not employed"]
        assert (both.dropna() == g["persons"].dropna()).all()
    # without masking, the persons per month are the cohort
    raw = describe.employment_by_month(built.person_months, frame, built.persons, 0)
    totals = raw.xs("persons", axis=1, level="count").sum(axis=1)
    assert (totals == len(built.persons)).all()


def test_frames_pass_through_the_register(built, frame, tmp_path, monkeypatch) -> None:
    """The notebook's calls: tables are checked, figures drawn from released
    tables, the standardised differences registered from released tables."""
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_path))
    ctx = step.start("04_describe", city="utrecht", size="small", root=ROOT)
    reg = disclosure.register(ctx)
    table = reg.crosstab("take_up_by_distance", frame, index="distance", columns="instrument",
                         margins=True)
    assert table.released
    fig = reg.figure("take_up_figure", describe.take_up_figure(table, title="t"), counts=table)
    # a figure drawn from a table with suppressed cells goes to an output checker
    suppressed = bool(table.table.isna().to_numpy().any())
    assert fig.status == ("review" if suppressed else "pass")
    binary, continuous = describe.balance_frames(frame)
    shares = reg.table("shares", binary, index="covariate", columns="instrument",
                       values="value", aggfunc="mean", decimals=3)
    means = reg.table("means", continuous, index="covariate", columns="instrument",
                      values="value", aggfunc="mean", decimals=1)
    sds = reg.table("sds", continuous, index="covariate", columns="instrument",
                    values="value", aggfunc="std", decimals=1)
    smd = describe.standardised_differences(shares, means, sds)
    suppressed = shares.table.drop(columns=describe.NONE_LABEL).isna()
    assert smd.loc[suppressed.index, suppressed.columns][suppressed].isna().all().all()
    out = reg.public_table("smd", smd, reason="from released tables")
    assert reg.figure("smd_figure", describe.balance_figure(smd), counts=out).released
    monthly = describe.employment_by_month(built.person_months, frame, built.persons,
                                           reg.rules.cell_threshold)
    assert reg.figure("monthly", describe.employment_figure(monthly), counts=monthly).released


def test_person_groups_match_rows_as_the_joined_key_does():
    """Rows find their person's group by the pair of texts as by the key
    ``"S:N"`` (NaN for a person not in the cohort); with a colon in a
    RINPERSOONS the key itself is used, and a person listed twice is an error."""
    rng = np.random.default_rng(5)
    persons = pd.DataFrame(
        {
            "RINPERSOONS": pd.array(rng.choice(["R", "S"], 50), dtype="string"),
            "RINPERSOON": pd.array([f"{n:09d}" for n in rng.permutation(900)[:50]],
                                   dtype="string"),
        }
    )
    groups = rng.choice(["none", "training", "wage"], 50).astype(object)
    rows = persons.sample(400, replace=True, random_state=2).astype(object)
    rows.loc[rows.index[:7], "RINPERSOON"] = "999999999"  # not in the cohort
    rows = rows.reset_index(drop=True)
    got = describe.person_groups(rows, persons, groups)
    want = describe.person_groups_reference(rows, persons, groups)
    assert got.dtype == want.dtype == object
    assert pd.isna(got).sum() == pd.isna(want).sum() > 0
    assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in want]
    # "a:b" + "c" and "a" + "b:c" are one key: the key decides, as before
    odd = pd.DataFrame({"RINPERSOONS": ["a:b", "x"], "RINPERSOON": ["c", "y"]})
    lookup = pd.DataFrame({"RINPERSOONS": ["a"], "RINPERSOON": ["b:c"]})
    assert list(describe.person_groups(lookup, odd, np.array(["g1", "g2"], dtype=object))) == [
        "g1"
    ]
    with pytest.raises(Exception, match="unique"):
        describe.person_groups(rows, pd.concat([persons, persons.iloc[:1]]), np.append(groups, "x"))

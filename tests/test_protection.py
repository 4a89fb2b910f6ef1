"""The differencing attack and the complementary suppression of linked tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reintegration.disclosure import protection as P
from reintegration.disclosure.audit import scan_differencing
from reintegration.disclosure.rules import load_rules

T = 10
NA = np.nan


def _frame(rows: dict[str, list[float]], columns: list[str], index_name: str, col_name: str):
    f = pd.DataFrame(rows, index=columns).T
    f.index.name, f.columns.name = index_name, col_name
    return f


def _age_table(**cells: float) -> pd.DataFrame:
    """Instrument x age with the true totals (the issue's Rotterdam example:
    training, 50 and over = 119 - 21 - 90 = 8)."""
    values = {
        "wage": [38, cells.get("w2", 13), cells.get("w3", 8), 59],
        "training": [cells.get("t1", 21), 90, cells.get("t3", 8), 119],
        "Total": [59, 103, 16, 178],
    }
    return _frame(values, ["<27", "27-49", "50+", "Total"], "instrument", "age")


def test_total_row_gives_a_suppressed_cell_away():
    truth = _age_table()
    shown = truth.copy()
    shown.loc["training", "50+"] = NA
    shown.loc["wage", "50+"] = NA
    table = P.from_frame("a", "persons", shown, sensitive=[("training", "50+"), ("wage", "50+")])
    found = {i.cell: (i.lower, i.upper) for i in P.attack([table])}
    assert found[("training", "50+")] == pytest.approx((8, 8))
    assert found[("wage", "50+")] == pytest.approx((8, 8))
    assert {i.cell for i in P.leaks([table], T)} == {("training", "50+"), ("wage", "50+")}


def test_protect_adds_complements_until_no_cell_can_be_narrowed():
    truth = _age_table()
    shown = truth.copy()
    shown.loc["training", "50+"] = NA
    shown.loc["wage", "50+"] = NA
    table = P.from_frame(
        "a", "persons", shown, sensitive=[("training", "50+"), ("wage", "50+")], truth=truth
    )
    added = P.protect(table, [], T)
    assert added  # the 50+ column total (16) alone pins both cells
    assert P.leaks([table], T) == []
    for i in P.attack([table]):
        if i.sensitive:
            assert i.upper >= T and i.upper - i.lower >= T


def test_margin_in_another_table_is_joined():
    # table 1 publishes the instrument totals; table 2 has no total column,
    # but its rows are the same persons: training 50+ = 119 - 21 - 90
    totals = pd.DataFrame(
        {"count": [59, 119]}, index=pd.Index(["wage", "training"], name="instrument")
    )
    split = _age_table().drop(index="Total", columns="Total")
    split.loc["training", "50+"] = NA
    split.loc["wage", "27-49"] = NA
    split.loc["wage", "50+"] = NA
    one = P.from_frame("take_up", "persons", totals)
    two = P.from_frame("by_age", "persons", split, sensitive=[("training", "50+"), ("wage", "50+")])
    bad = {i.cell for i in P.leaks([one, two], T)}
    assert ("training", "50+") in bad
    # on its own the second table leaks nothing about training
    alone = {i.cell for i in P.leaks([two], T)}
    assert ("training", "50+") not in alone
    # and a table of another population is not joined
    other = P.from_frame("take_up", "other persons", totals)
    assert ("training", "50+") not in {i.cell for i in P.leaks([other, two], T)}


def test_slice_and_coarsened_tables_join_on_their_levels():
    # starts per quarter (with an inflow column) and starts per year: the
    # year table is the "instrument start" slice, the quarter table coarsens
    quarters = pd.DataFrame(
        {"inflow": [40, 50, 45, 55], "instrument start": [12, NA, 20, 15]},
        index=pd.Index(["2015Q1", "2015Q2", "2016Q1", "2016Q2"], name="quarter"),
    )
    quarters.columns.name = "event"
    years = pd.DataFrame({"count": [19, 35]}, index=pd.Index(["2015", "2016"], name="year"))
    q = P.from_frame(
        "q",
        "events",
        quarters,
        sensitive=[("2015Q2", "instrument start")],
        coarsen={
            "quarter": (
                "year",
                {"2015Q1": "2015", "2015Q2": "2015", "2016Q1": "2016", "2016Q2": "2016"},
            )
        },
    )
    y = P.from_frame("y", "events", years, fixed={"event": "instrument start"})
    (interval,) = P.attack([q, y])
    assert (interval.lower, interval.upper) == pytest.approx((7, 7))
    # alone the quarter table bounds nothing; the inflow column is not part of
    # the slice, so the join does not force it to zero (which would be infeasible)
    assert P.attack([q])[0].upper == float("inf") and P.leaks([q], T) == []


def test_a_count_quoted_elsewhere_is_joined():
    # a count quoted in prose or drawn in a figure is a one-way table of its
    # population; with it, the split's row gives the suppressed cell away
    split = _age_table().drop(index="Total", columns="Total").loc[["training"]]
    split.loc["training", "50+"] = NA
    split.loc["training", "<27"] = NA
    quoted = pd.DataFrame({"count": [119]}, index=pd.Index(["training"], name="instrument"))
    two = P.from_frame("split", "persons", split, sensitive=[("training", "50+")])
    assert P.attack([two])[0].upper == float("inf")
    three = P.from_frame("quoted", "persons", quoted)
    cell = {i.cell: i for i in P.attack([two, three])}[("training", "50+")]
    assert (cell.lower, cell.upper) == pytest.approx((0, 29))
    assert not cell.protected(30) and cell.protected(T)


def test_audit_attacks_a_release_bundle(tmp_path: Path):
    """A bundle whose second table publishes the true instrument totals
    while the first suppresses one cell per row: the audit finds it."""
    bundle = tmp_path / "bundle"
    (bundle / "04_describe").mkdir(parents=True)
    split = pd.DataFrame(
        {"<27": [38, 21], "27-49": [13, 90], "50+": [None, None]},
        index=pd.Index(["wage", "training"], name="instrument"),
    )
    split.to_csv(bundle / "04_describe" / "by_age.csv", lineterminator="\n")
    totals = pd.DataFrame(
        {"count": [59, 119]}, index=pd.Index(["wage", "training"], name="instrument")
    )
    totals.to_csv(bundle / "04_describe" / "take_up.csv", lineterminator="\n")

    def entry(name, dims, cols, suppressed):
        return {
            "id": f"04_describe/{name}",
            "file": f"outputs/04_describe/{name}.csv",
            "status": "review",
            "checks": {
                "population": "cohort persons",
                "dims": dims,
                "index_levels": 1,
                "column_levels": cols,
                "suppressed_cells": suppressed,
            },
        }

    register = {
        "outputs": [
            entry(
                "by_age",
                ["instrument", "age"],
                1,
                [
                    {"key": ["wage", "50+"], "reasons": ["threshold"]},
                    {"key": ["training", "50+"], "reasons": ["threshold"]},
                ],
            ),
            entry("take_up", ["instrument"], 0, []),
        ]
    }
    (bundle / "register.json").write_text(json.dumps(register), encoding="utf-8")
    found, summary = scan_differencing(bundle, T, tmp_path)
    assert len(found) == 2
    assert all(f.kind == "differencing" for f in found)
    assert "[8, 8]" in found[0].detail
    assert summary["primary"] == 2 and summary["tables"] == 2
    # the same bundle without the totals table passes
    register["outputs"] = register["outputs"][:1]
    (bundle / "register.json").write_text(json.dumps(register), encoding="utf-8")
    assert scan_differencing(bundle, T, tmp_path)[0] == []


def test_inconsistent_tables_are_an_error_not_a_pass():
    a = pd.DataFrame({"count": [10, NA]}, index=pd.Index(["x", "y"], name="k"))
    b = pd.DataFrame({"count": [12, 20]}, index=pd.Index(["x", "y"], name="k"))
    one = P.from_frame("a", "p", a, sensitive=[("y",)])
    two = P.from_frame("b", "p", b)
    with pytest.raises(ValueError, match="inconsistent"):
        P.attack([one, two])


# ---- the release bundles of SIZE=small ---------------------------------------


def _bundle_tables(small, city: str) -> list[P.CountTable]:
    bundle = small.root / "release" / "small" / city
    if not (bundle / "register.json").exists():
        pytest.fail(f"{bundle} is missing: run `make SIZE=small book` first")
    register = json.loads((bundle / "register.json").read_text(encoding="utf-8"))
    return P.tables_from_register(register, lambda rel: bundle / Path(rel).relative_to("outputs"))


@pytest.mark.pipeline
@pytest.mark.parametrize("city", ["amsterdam", "den_haag", "rotterdam", "utrecht"])
def test_every_margin_has_one_value_everywhere(small, city: str) -> None:
    """Within a population, every shown total and every total implied by
    fully shown cells agree across tables: the attack's system of equations
    has a solution (it raises on a contradiction), and the cohort's size is
    the same in every table that shows it whole."""
    tables = _bundle_tables(small, city)
    populations = {t.population for t in tables}
    assert {"cohort persons", "delivered rows", "events"} <= populations
    P.attack(tables)  # raises ValueError("... inconsistent ...") on a contradiction
    cohort = []
    for t in tables:
        if t.population != "cohort persons" or t.partial:  # slices and blocks
            continue
        grand = t.cells.get((P.MARGIN,) * len(t.dims))
        if grand is None and all(v is not None for v in (t.cells[k] for k in t.interior())):
            grand = sum(t.cells[k] for k in t.interior())
        if grand is not None:
            cohort.append((t.id, grand))
    assert len(cohort) >= 5, cohort
    assert len({g for _, g in cohort}) == 1, cohort


@pytest.mark.pipeline
@pytest.mark.parametrize("city", ["amsterdam", "den_haag", "rotterdam", "utrecht"])
def test_no_suppressed_cell_of_a_bundle_can_be_narrowed(small, city: str) -> None:
    tables = _bundle_tables(small, city)
    assert sum(len(t.sensitive) for t in tables) > 0  # there is something to protect
    assert P.leaks(tables, T) == []


def test_audit_joins_the_data_behind_a_figure(tmp_path: Path):
    """A figure's released data (its CSV) publishes the instrument totals;
    the table it sits beside suppresses one cell per row: caught."""
    bundle = tmp_path / "bundle"
    (bundle / "04_describe").mkdir(parents=True)
    split = pd.DataFrame(
        {"<27": [38, 21], "27-49": [13, 90], "50+": [None, None]},
        index=pd.Index(["wage", "training"], name="instrument"),
    )
    split.to_csv(bundle / "04_describe" / "by_age.csv", lineterminator="\n")
    drawn = pd.DataFrame({"persons": [59, 119]}, index=pd.Index(["wage", "training"], name="x"))
    drawn.to_csv(bundle / "04_describe" / "bars.csv", lineterminator="\n")
    layout = {"population": "cohort persons", "index_levels": 1}
    register = {
        "outputs": [
            {
                "id": "04_describe/by_age",
                "file": "outputs/04_describe/by_age.csv",
                "status": "review",
                "checks": {
                    **layout,
                    "dims": ["instrument", "age"],
                    "column_levels": 1,
                    "suppressed_cells": [
                        {"key": ["wage", "50+"], "reasons": ["threshold"]},
                        {"key": ["training", "50+"], "reasons": ["threshold"]},
                    ],
                },
            },
            {
                "id": "04_describe/bars",
                "kind": "figure",
                "file": "outputs/04_describe/bars.png",
                "data_file": "outputs/04_describe/bars.csv",
                "status": "pass",
                "checks": {"data": {**layout, "dims": ["instrument"], "column_levels": 0}},
            },
        ]
    }
    (bundle / "register.json").write_text(json.dumps(register), encoding="utf-8")
    found, summary = scan_differencing(bundle, T, tmp_path)
    assert len(found) == 2 and summary["tables"] == 2
    assert all("by_age.csv" in f.file for f in found)


def test_audit_joins_counts_quoted_in_text(tmp_path: Path):
    """Counts quoted in prose are registered as a public table with an index
    and one count column (``Register.public_table(..., population=, index=)``);
    joined with a table that hides one cell per row, they give it away."""
    bundle = tmp_path / "bundle"
    (bundle / "05_feasibility").mkdir(parents=True)
    split = pd.DataFrame(
        {"<27": [38, 21], "27-49": [13, 90], "50+": [None, None]},
        index=pd.Index(["wage", "training"], name="instrument"),
    )
    split.to_csv(bundle / "05_feasibility" / "by_age.csv", lineterminator="\n")
    quoted = pd.DataFrame(
        {
            "instrument": ["wage", "training"],
            "text": ["59 starters", "119 starters"],
            "persons": [59, 119],
        }
    )
    quoted.to_csv(bundle / "05_feasibility" / "quoted.csv", lineterminator="\n")
    register = {
        "outputs": [
            {
                "id": "05_feasibility/by_age",
                "file": "outputs/05_feasibility/by_age.csv",
                "status": "review",
                "checks": {
                    "population": "cohort persons",
                    "dims": ["instrument", "age"],
                    "index_levels": 1,
                    "column_levels": 1,
                    "suppressed_cells": [
                        {"key": ["training", "50+"], "reasons": ["threshold"]},
                        {"key": ["wage", "50+"], "reasons": ["threshold"]},
                    ],
                },
            },
            {
                "id": "05_feasibility/quoted",
                "file": "outputs/05_feasibility/quoted.csv",
                "status": "pass",
                "checks": {
                    "population": "cohort persons",
                    "dims": ["instrument"],
                    "index_column": "instrument",
                    "count_column": "persons",
                    "index_levels": 1,
                    "column_levels": 0,
                },
            },
        ]
    }
    (bundle / "register.json").write_text(json.dumps(register), encoding="utf-8")
    found, _ = scan_differencing(bundle, T, tmp_path)
    assert sorted(f.detail.split(":")[1].strip()[:30] for f in found) == [
        "suppressed cell training / 50+",
        "suppressed cell wage / 50+ can",
    ]


def test_stacked_blocks_join_the_population_block_by_block():
    """A table stacking one sub-table per instrument (propensity bands of its
    starters and of the persons without an instrument): each block's columns
    add up to counts another table publishes, so a block with one hidden
    cell per column gives it away; declared as blocks, the attack sees it and
    the protection hides more."""
    take_up = pd.DataFrame(
        {"count": [300, 40, 55]},
        index=pd.Index(["No instrument", "Training", "Coaching"], name="instrument"),
    )
    truth = pd.DataFrame(
        {"no instrument": [200, 93, 7, 180, 112, 8], "treated": [20, 14, 6, 30, 16, 9]},
        index=pd.MultiIndex.from_product(
            [["Training", "Coaching"], ["low", "mid", "high"]], names=["instrument", "band"]
        ),
    )
    truth.columns.name = "group"
    shown = truth.astype(float).copy()
    primary = [
        ("Training", "high", "no instrument"),
        ("Training", "high", "treated"),
        ("Coaching", "high", "no instrument"),
        ("Coaching", "high", "treated"),
    ]
    for r1, r2, c in primary:
        shown.loc[(r1, r2), c] = NA
    blocks = {
        "by": "instrument",
        "rename": {"group": "instrument"},
        "relabel": {"group": {"treated": "{block}", "no instrument": "No instrument"}},
    }
    stacked = P.from_frame("ov", "persons", shown, sensitive=primary, truth=truth)
    counts = P.from_frame("take_up", "persons", take_up)
    # undeclared, the stacked table alone hides everything ...
    assert P.leaks([stacked], T) == []
    # ... but its blocks' columns add up to take_up: 40 - 20 - 14 = 6
    parts = P.split_blocks(stacked, blocks)
    assert [p.dims for p in parts] == [
        ("band (Training)", "instrument"),
        ("band (Coaching)", "instrument"),
    ]
    found = {(i.table, i.cell): (i.lower, i.upper) for i in P.attack([counts, *parts])}
    assert found[("ov [Training]", ("high", "Training"))] == pytest.approx((6, 6))
    # protected block by block, nothing can be narrowed any more
    earlier = [counts]
    for part in parts:
        P.protect(part, earlier, T)
        earlier.append(part)
    assert P.leaks(earlier, T) == []
    # a block is a slice of the population: no grand-total join with a table
    # that shares none of its variables (that join would be infeasible)
    other = P.from_frame(
        "bands",
        "persons",
        pd.DataFrame({"count": [395]}, index=pd.Index(["all"], name="whole cohort")),
    )
    P.attack([other, *parts])


def test_shares_are_computed_from_the_released_counts():
    from reintegration.research import describe

    table = pd.DataFrame(
        {
            "No instrument": [50, 40, 10, 100],
            "Training": [np.nan, 30, np.nan, 40],
            "Total": [58, 70, 12, 140],
        },
        index=pd.Index(["under 27", "27-49", "unknown", "Total"], name="age group"),
    )
    shares = describe.shares_from_counts({"age group": table})
    assert shares.loc["younger than 27", "No instrument"] == pytest.approx(50 / 90, abs=5e-4)
    # the count is hidden, so is its share (a share times the published group
    # size would give the count back)
    assert np.isnan(shares.loc["younger than 27", "Training"])
    assert "Total" not in shares.columns
    assert list(shares.index) == ["younger than 27"]  # no "50 and over" level here


def _random_tables(seed: int) -> list[tuple[pd.DataFrame, pd.DataFrame, list]]:
    """Instrument x characteristic tables of one population of persons, with
    margins, cells below the threshold suppressed."""
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame(
        {
            "instrument": rng.choice(list("abcd"), 300, p=[0.5, 0.3, 0.15, 0.05]),
            "age": rng.choice(["y", "m", "o"], 300, p=[0.2, 0.6, 0.2]),
            "sex": rng.choice(["f", "m"], 300),
            "dist": rng.choice(["s", "m", "l"], 300, p=[0.1, 0.5, 0.4]),
        }
    )
    out = []
    for name in ("age", "sex", "dist"):
        truth = pd.crosstab(
            persons["instrument"], persons[name], margins=True, margins_name="Total"
        ).astype(float)
        shown = truth.copy()
        small = [
            (i, c) for i in truth.index[:-1] for c in truth.columns[:-1] if 0 < truth.loc[i, c] < T
        ]
        for i, c in small:
            shown.loc[i, c] = NA
        out.append((shown, truth, small))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_protect_skips_cells_already_protected_and_finds_the_same_suppressions(
    seed: int, monkeypatch
) -> None:
    """Cells found protected in one round stay protected (later rounds only
    suppress more): skipping them gives the suppressions of solving every
    cell again each round, with fewer linear programs."""
    solved = {"n": 0}
    bounds = P._System.bounds

    def counted(self, t, key):
        solved["n"] += 1
        return bounds(self, t, key)

    monkeypatch.setattr(P._System, "bounds", counted)

    def run(first_leak) -> tuple[list, int]:
        monkeypatch.setattr(P, "_first_leak", first_leak)
        solved["n"], published, added = 0, [], []
        for k, (shown, truth, small) in enumerate(_random_tables(seed)):
            table = P.from_frame(f"t{k}", "persons", shown.copy(), sensitive=small, truth=truth)
            added.append(P.protect(table, published, T))
            published.append(table)
        assert P.leaks(published, T) == []
        return added, solved["n"]

    first_leak = P._first_leak
    cached, n_cached = run(first_leak)
    every, n_every = run(
        lambda system, order, threshold, safe=None: first_leak(system, order, threshold)
    )
    assert cached == every
    assert any(cached) and n_cached < n_every


def _passing_bundle(bundle: Path) -> None:
    """A bundle of one count table with a suppressed cell nothing gives away."""
    (bundle / "04_describe").mkdir(parents=True)
    split = pd.DataFrame(
        {"<27": [38, 21], "27-49": [13, 90], "50+": [None, None]},
        index=pd.Index(["wage", "training"], name="instrument"),
    )
    split.to_csv(bundle / "04_describe" / "by_age.csv", lineterminator="\n")
    entry = {
        "id": "04_describe/by_age",
        "file": "outputs/04_describe/by_age.csv",
        "status": "review",
        "checks": {
            "population": "cohort persons",
            "dims": ["instrument", "age"],
            "index_levels": 1,
            "column_levels": 1,
            "suppressed_cells": [
                {"key": ["wage", "50+"], "reasons": ["threshold"]},
                {"key": ["training", "50+"], "reasons": ["threshold"]},
            ],
        },
    }
    (bundle / "register.json").write_text(json.dumps({"outputs": [entry]}), encoding="utf-8")


def test_the_attack_on_a_bundle_is_recorded_and_reused_only_for_the_same_files(
    tmp_path: Path, monkeypatch
):
    """The differencing attack's result without findings is recorded under a
    key of the bundle's files; the same files give the recorded result without
    attacking again, and a changed byte, another threshold or a bundle with
    findings is attacked afresh."""
    from reintegration.core.paths import Paths
    from reintegration.disclosure import audit

    paths = Paths.for_size("small", tmp_path)
    bundle = tmp_path / "release" / "small" / "utrecht"
    _passing_bundle(bundle)
    found, summary = audit.differencing(paths, "utrecht", bundle, T)
    assert found == [] and summary["primary"] == 2 and summary["tables"] == 1
    record = json.loads(audit.attack_record(paths, "utrecht").read_text(encoding="utf-8"))
    assert record["key"] == audit.attack_key(bundle, T)

    attacked = []
    real_attack = P.attack

    def attack(*args):
        attacked.append(args)
        return real_attack(*args)

    monkeypatch.setattr(P, "attack", attack)
    assert audit.differencing(paths, "utrecht", bundle, T) == ([], summary)
    assert attacked == []
    assert audit.attack_key(bundle, T + 1) != record["key"]
    with monkeypatch.context() as m:  # another SciPy (and so HiGHS) is another key
        real_version = audit.version
        m.setattr(audit, "version", lambda name: "0.0" if name == "scipy" else real_version(name))
        assert audit.attack_key(bundle, T) != record["key"]
    audit.differencing(paths, "utrecht", bundle, T + 1)
    assert len(attacked) == 1
    table = bundle / "04_describe" / "by_age.csv"
    table.write_text(table.read_text(encoding="utf-8").replace("38", "39"), encoding="utf-8")
    assert audit.attack_key(bundle, T) != record["key"]
    assert audit.differencing(paths, "utrecht", bundle, T)[1]["cells"] == summary["cells"]
    assert len(attacked) == 2
    # a result with findings is never recorded: the next audit attacks again
    leaky = tmp_path / "release" / "small" / "leaky"
    _passing_bundle(leaky)
    pd.DataFrame(
        {"count": [59, 119]}, index=pd.Index(["wage", "training"], name="instrument")
    ).to_csv(leaky / "04_describe" / "take_up.csv", lineterminator="\n")
    register = json.loads((leaky / "register.json").read_text(encoding="utf-8"))
    register["outputs"].append({
        "id": "04_describe/take_up", "file": "outputs/04_describe/take_up.csv",
        "status": "review", "checks": {"population": "cohort persons", "dims": ["instrument"],
                                       "index_levels": 1, "column_levels": 0,
                                       "suppressed_cells": []}})
    (leaky / "register.json").write_text(json.dumps(register), encoding="utf-8")
    assert len(audit.differencing(paths, "leaky", leaky, T)[0]) == 2
    assert not audit.attack_record(paths, "leaky").exists()
    # a record that cannot be read is attacked again and written anew
    from conftest import ROOT

    shutil.copytree(ROOT / "config", tmp_path / "config")
    assert load_rules(tmp_path).cell_threshold == T
    audit.attack_record(paths, "utrecht").write_text("{not json", encoding="utf-8")
    assert audit.recorded_differencing(paths, "utrecht") is None
    assert audit.differencing(paths, "utrecht", bundle, T)[0] == []
    assert len(attacked) == 4  # the leaky bundle was the third
    assert audit.recorded_differencing(paths, "utrecht") == (0, audit.differencing(
        paths, "utrecht", bundle, T)[1])

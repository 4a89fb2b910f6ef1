"""Figures draw suppressed cells as suppressed (hatched, labelled, never as
zero), and the register releases the data behind every figure as a CSV that
the bundle carries and the audit checks like a table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from reintegration import disclosure, feasibility
from reintegration.core import atomic, step
from reintegration.disclosure import audit, figures
from reintegration.disclosure.release_bundle import finalise
from reintegration.linking import linkage
from reintegration.research import describe, panel

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
STEP = "00_city_profile"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    monkeypatch.delenv("REINTEGRATION_ROOT", raising=False)
    return tmp_path


@pytest.fixture
def reg(root: Path) -> disclosure.Register:
    return disclosure.register(step.start(STEP, city="rotterdam", size="small", root=root))


def persons(spec: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = [(g, i) for (g, i), k in spec.items() for _ in range(k)]
    return pd.DataFrame(rows, columns=["group", "instrument"])


#: group b x training holds 3 persons: suppressed
SPEC = {("a", "training"): 40, ("a", "coaching"): 25, ("b", "training"): 3, ("b", "coaching"): 30}


def hatched(fig) -> list:
    return [a for a in figures.suppressed_artists(fig) if hasattr(a, "get_hatch") and a.get_hatch()]


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_a_suppressed_bar_is_hatched_labelled_and_not_zero(reg: disclosure.Register) -> None:
    import matplotlib.pyplot as plt

    table = reg.crosstab("uptake", persons(SPEC), index="group", columns="instrument")
    assert table.status == "review" and pd.isna(table.table.loc["b", "training"])
    fig, ax = plt.subplots()
    shown = table.table.loc[:, "training"].to_numpy(dtype=float)
    nominal = figures.nominal_size(shown)
    figures.bar_or_suppressed(ax, [0, 1], shown, nominal=nominal, colour="C0", label="training")
    figures.legend(ax, np.isnan(shown).sum(), figures.threshold_of(table))
    boxes = hatched(fig)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.get_hatch() == figures.HATCH
    assert box.get_height() == pytest.approx(0.15 * 40) and box.get_height() > 0
    assert box.get_x() + box.get_width() / 2 == pytest.approx(1.0)  # at group b
    # every bar of the axes: the released one at its value, the suppressed one not zero
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == [pytest.approx(6.0), 40.0]
    assert "x" in texts(fig) and "suppressed (<10)" in texts(fig)  # on the box, in the key

    out = reg.figure("uptake_figure", fig, counts=table)
    assert out.status == "review" and "hatched" in out.reasons[0]
    csv = out.path.with_suffix(".csv")
    data = pd.read_csv(csv, index_col=0)
    assert np.isnan(data.loc["b", "training"]) and data.loc["a", "training"] == 40
    assert csv.read_text().splitlines()[2].split(",")[2] == ""  # the empty cell
    entry = reg.entries["uptake_figure"]
    assert entry["data_file"] == f"outputs/{STEP}/uptake_figure.csv"
    assert entry["data_sha256"] == atomic.sha256_file(csv)
    assert entry["checks"]["data"]["statistic"] == "count"
    assert entry["checks"]["data"]["from"] == f"{STEP}/uptake"


def test_figure_data_of_counts_is_written_with_hidden_cells_empty(
    reg: disclosure.Register,
) -> None:
    import matplotlib.pyplot as plt

    counts = pd.DataFrame(
        {"persons": [30.0, np.nan, 25.0], "employed": [12.0, np.nan, 11.0]},
        index=pd.Index([-1, 0, 1], name="month"),
    )
    fig = panel_like(counts)
    out = reg.figure("monthly", fig, counts=counts)
    assert out.status == "pass"
    lines = out.path.with_suffix(".csv").read_text().splitlines()
    assert lines == ["month,persons,employed", "-1,30.0,12.0", "0,,", "1,25.0,11.0"]
    # the audit reads the counts, not the month labels in the first column
    assert reg.entries["monthly"]["checks"]["data"]["index_columns"] == 1
    assert audit.scan_release_counts(reg.as_dict(), reg.ctx.out_dir, 10, reg.ctx.paths.root) == []
    plt.close("all")


def panel_like(counts: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    share = (counts["employed"] / counts["persons"]).to_numpy()
    ax.plot(counts.index, share)
    assert figures.mark_suppressed(ax, counts.index, share) == 1
    figures.legend(ax, 1, 10)
    return fig


def test_a_withheld_figure_writes_no_data(reg: disclosure.Register) -> None:
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    out = reg.figure("small", fig, counts=pd.Series([20, 4], index=["a", "b"]))
    assert out.status == "fail"
    assert not (reg.dir / "small.csv").exists()
    assert reg.entries["small"]["data_file"] is None


def test_bundle_carries_and_audit_checks_the_figure_data(
    root: Path, reg: disclosure.Register
) -> None:
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    reg.figure("line", fig, counts=pd.DataFrame({"n": [12.0, np.nan]}, index=["p", "q"]))
    bundle = finalise("rotterdam", "small", root=root)
    assert (bundle / STEP / "line.csv").read_text() == ",n\np,12.0\nq,\n"
    assert f"{STEP}/line.csv" in (bundle / "SHA256SUMS").read_text()
    assert "`00_city_profile/line.csv`" in (bundle / "README.md").read_text()
    register = json.loads((bundle / "register.json").read_text())
    build = root / "build" / "small" / "rotterdam"
    assert audit.scan_release_counts(register, build, 10, root) == []
    # a figure's data that shows a small count is caught like a table's
    (build / "outputs" / STEP / "line.csv").write_text(",n\np,12.0\nq,3\n")
    found = audit.scan_release_counts(register, build, 10, root)
    assert len(found) == 1 and "row 'q'" in found[0].detail


def test_rerunning_a_figure_replaces_its_data(reg: disclosure.Register) -> None:
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    reg.figure("twice", fig, counts=pd.Series([20, 30], index=["a", "b"]))
    fig, _ = plt.subplots()
    out = reg.figure("twice", fig, counts=pd.Series([20, 4], index=["a", "b"]))
    assert out.status == "fail" and not (reg.dir / "twice.csv").exists()


# ---- every figure of the notebooks draws suppressed cells the same way ---------


def test_funnel_draws_a_suppressed_count_as_a_labelled_box() -> None:
    released = pd.DataFrame(
        {"count": [np.nan, 1200.0, 40.0, 25.0]},
        index=[
            "not linked",
            "linked by BSN",
            "linked by fallback",
            "quarantined in delivery check",
        ],
    )
    fig = linkage.funnel_figure(released, threshold=10)
    boxes = hatched(fig)
    assert len(boxes) == 1 and boxes[0].get_width() > 0
    assert "suppressed (<10)" in texts(fig)


def test_take_up_figure_hatches_suppressed_segments(reg: disclosure.Register) -> None:
    table = reg.crosstab(
        "take_up_by_group", persons(SPEC), index="group", columns="instrument", margins=True
    )
    fig = describe.take_up_figure(table, title="t")
    boxes = hatched(fig)
    assert boxes and all(b.get_width() == pytest.approx(describe.TAKE_UP_NOMINAL) for b in boxes)
    assert "suppressed (<10)" in texts(fig)


def test_line_and_point_figures_mark_suppressed_cells() -> None:
    table = pd.DataFrame(
        {"6 months": [0.4, np.nan], "12 months": [0.5, 0.6]}, index=["training", "coaching"]
    )
    fig = describe.outcome_figure(table, ylabel="share", title="t", threshold=10)
    assert len(hatched(fig)) == 1 and "suppressed (<10)" in texts(fig)
    fig = describe.coverage_figure(table.T, threshold=10)
    assert len(hatched(fig)) == 1
    fig = describe.balance_figure(table, threshold=10)
    assert len(hatched(fig)) == 1 and "suppressed (<10)" in texts(fig)
    counts = pd.DataFrame(
        {
            "persons": [30.0, np.nan],
            "employed": [12.0, np.nan],
            "on_benefit": [15.0, np.nan],
            "in_instrument": [np.nan, np.nan],
        },
        index=[0, 1],
    )
    fig = panel.status_figure(counts, horizons=(), threshold=10)
    # month 1 is masked for every status, month 0 only for "in an instrument"
    assert len(hatched(fig)) == 1 + 1 + 2
    monthly = pd.DataFrame(
        {("a", "persons"): [20.0, np.nan], ("a", "employed"): [8.0, np.nan]}, index=[0, 1]
    )
    fig = describe.employment_figure(monthly, threshold=10)
    assert len(hatched(fig)) == 1


def test_overlap_figure_hatches_suppressed_bands() -> None:
    index = pd.MultiIndex.from_product(
        [["training"], ["0-0.2", "0.2-0.4"]], names=["instrument", "propensity"]
    )
    table = pd.DataFrame({"no instrument": [50.0, 30.0], "treated": [np.nan, 20.0]}, index=index)
    fig = feasibility.overlap_figure(table, threshold=10)
    boxes = hatched(fig)
    assert len(boxes) == 1 and boxes[0].get_height() > 0
    assert "suppressed (<10)" in texts(fig)


#: figures drawn from tables that may hold suppressed cells: each is rendered
#: with one above and must hatch it
DRAWS_SUPPRESSED = {
    "linkage.funnel_figure",
    "panel.status_figure",
    "describe.take_up_figure",
    "describe.coverage_figure",
    "describe.outcome_figure",
    "describe.employment_figure",
    "describe.balance_figure",
    "feasibility.overlap_figure",
}
#: figures released whole or withheld (their counts are given directly, and one
#: count below the threshold withholds the figure): nothing in them is suppressed
ALL_OR_NOTHING = {"es.plot", "estimates.subgroup_figure", "estimates.bias_figure",
                  # drawn from released tables of statistics, which hold no counts
                  "sensitivity.contour_figure", "whom.calibration_figure",
                  # the rule's questions and advice, with leaf shares rounded to 5%
                  "advice_page.tree_figure"}


def test_every_registered_figure_is_known_to_draw_suppressed_cells() -> None:
    """Every figure a notebook registers is drawn by a function tested above
    (or is released whole or not at all): a new figure must join one list."""
    import re

    import nbformat

    call = re.compile(r"\b([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\(")
    found = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            src = cell.source
            if cell.cell_type != "code" or "reg.figure(" not in src:
                continue
            names = {n for n in call.findall(src) if n.split(".")[0] != "reg"}
            drawers = names & (DRAWS_SUPPRESSED | ALL_OR_NOTHING)
            assert drawers, f"{path.name}: figure drawn by none of the known functions: {src}"
            found |= drawers
    assert found == DRAWS_SUPPRESSED | ALL_OR_NOTHING

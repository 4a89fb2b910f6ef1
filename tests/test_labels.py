"""The one label table: every name the configuration gives has words, the
figures and tables the results pages show speak in them, and numbers are
formatted for readers."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from reintegration import feasibility
from reintegration.core.config import load_instruments, read_yaml
from reintegration.phase2 import estimates
from reintegration.research import labels

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw() -> set[str]:
    return labels.raw_names(ROOT)


def test_raw_names_come_from_the_configs_and_the_data_dictionary(raw):
    # effects.yml outcomes and subgroups, instruments.yml keys, feasibility designs,
    # the panel contract (with horizons), CBS names and a city's export names
    for name in (
        "employed_24",
        "age_band",
        "wage_subsidy",
        "rollout_did",
        "off_benefit_6",
        "labour_market_distance",
        "RINPERSOON",
        "SBASISLOON",
        "afstand_arbeidsmarkt",
    ):
        assert name in raw, name
    # plain words are not raw names, and no placeholder is left
    assert not {"sex", "team", "education", "instrument", "age"} & raw
    assert not [n for n in raw if "<" in n]


def test_every_configured_name_has_words_without_a_raw_name(raw):
    effects = read_yaml(ROOT / "config" / "effects.yml")
    feas = read_yaml(ROOT / "config" / "feasibility.yml")
    names = [
        *effects["outcomes"], *effects["covariates"], *effects["subgroups"],
        *feas["covariates"], feas["outcome"], *load_instruments(ROOT), *labels.DESIGNS,
    ]  # fmt: skip
    table = labels.table(ROOT)
    missing = [n for n in names if n not in table]
    assert missing == [], f"names without an entry in the label table: {missing}"
    still_raw = {n: table[n] for n in names if labels.find_names(table[n], raw)}
    assert still_raw == {}


def test_labels_come_from_the_configuration():
    effects = read_yaml(ROOT / "config" / "effects.yml")
    assert labels.label("employed_12", ROOT) == effects["outcomes"]["employed_12"]
    assert labels.label("job_coaching", ROOT) == load_instruments(ROOT)["job_coaching"]["label"]
    assert labels.label("age_band", ROOT) == "age at inflow"  # without "(under 27, ...)"
    assert labels.label("off_benefit_18", ROOT) == "off bijstand 18 months after inflow"


def test_design_labels_are_the_feasibility_steps():
    assert labels.DESIGNS == feasibility.DESIGN_LABELS


def test_relabel_puts_words_for_names_and_sub_studies():
    text = labels.relabel("rollout_did/job_coaching: effect on employed_24, team", ROOT)
    assert text == (
        "Staggered roll-out (difference in differences), job coaching: "
        "effect on employed 24 months after inflow, team"
    )
    assert labels.relabel("not_a_known_name stays", ROOT) == "not_a_known_name stays"
    assert labels.substudy("rollout_did/none", ROOT) == (
        "Staggered roll-out (difference in differences), no instrument rolled out"
    )


def test_numbers_have_separators_and_at_most_three_decimals():
    assert labels.number(11011) == "11,011"
    assert labels.number(1234567.0) == "1,234,567"
    assert labels.number(0.123456) == "0.123"
    assert labels.number(1234.5) == "1,234.5"
    assert labels.number(-0.0001) == "0"
    assert labels.number(math.nan) == ""
    assert labels.number(0.5, decimals=2) == "0.50"
    assert labels.pp(0.0534) == "+5.3 pp"
    assert labels.pp(-0.17) == "-17.0 pp"


def _record(design: str, estimate: float, lo: float, hi: float, **extra) -> dict:
    return {
        "design": design,
        "estimate": estimate,
        "ci_low": lo,
        "ci_high": hi,
        "n": 11011,
        "n_clusters": 1359,
        "cov_type": "clustered",
        "diagnostics": {},
        **extra,
    }


def test_effects_table_in_percentage_points_with_the_interval_method():
    recs = {
        "employed_12": _record("selection_on_observables", 0.0534, 0.01, 0.0968),
        "months_employed": _record("selection_on_observables", 1.25, 0.5, 2.0),
    }
    t = labels.effects_table(recs, ROOT)
    assert list(t.index) == [
        labels.label("employed_12", ROOT),
        labels.label("months_employed", ROOT),
    ]
    row = t.iloc[0]
    assert row["effect"] == "+5.3 percentage points"
    assert row["95% interval"] == "+1.0 to +9.7"
    assert row["interval method"] == "standard error clustered on persons"
    assert row["observations"] == "11,011 person-months (risk-set rows)"
    assert row["clusters"] == "1,359 persons"
    assert t.iloc[1]["effect"] == "+1.2 months"
    # the estimators record their own design names; the words are the same
    rollout = _record(
        "event_study", 0.05, -0.02, 0.12, diagnostics={"ci_randomization": [-0.02, 0.12]}
    )
    rollout.update(n=1312, n_clusters=7)
    assert labels.interval_method(rollout) == "randomisation inference over roll-out dates"
    row = labels.effects_table({"employed_24": rollout}).iloc[0]
    assert (row["observations"], row["clusters"]) == ("1,312 persons", "7 teams")
    iv = _record("instrumental_variable", 0.1, -0.3, 0.5)
    assert labels.interval_method(iv) == "standard error clustered on case managers"


def _subgroup_records(substudy: str) -> list[dict]:
    rows = [
        ("all", "all", 0.05),
        ("age_band", "27-49", 0.04),
        ("prior_employment", "some", 0.1),
        ("sex", "female", 0.02),
    ]
    return [
        {
            "substudy": substudy,
            "outcome": "employed_24",
            "status": "estimated",
            "subgroup": sg,
            "group": g,
            "estimate": e,
            "ci_low": e - 0.05,
            "ci_high": e + 0.05,
            "n_treated": 40,
            "n_control": 400,
        }
        for sg, g, e in rows
    ]


def test_relabelled_figures_show_no_raw_name(raw):
    """The notebooks pass the effects step's figures through relabel_figure
    and pp_axis: what the reader sees has words and percentage points."""
    sub = "case_manager_iv/wage_subsidy"
    drawn, _ = estimates.subgroup_figure(_subgroup_records(sub), sub, "employed_24")
    before = labels.figure_texts(drawn)
    assert any(labels.find_names(t, raw) for t in before)  # the module speaks in names
    # relabelled before it is ever drawn, as in the notebook (tick labels do not exist yet)
    fig, _ = estimates.subgroup_figure(_subgroup_records(sub), sub, "employed_24")
    labels.pp_axis(labels.relabel_figure(fig, ROOT).axes[0], "x")
    after = labels.figure_texts(fig)
    assert [t for t in after if labels.find_names(t, raw)] == []
    assert "age at inflow: 27-49" in after
    assert any("percentage points" in t for t in after)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert any(t.startswith("+") for t in ticks)  # 0.05 is drawn as +5


def test_display_frame_relabels_every_level():
    frame = pd.DataFrame(
        {"estimate": [0.1], "ci_low": [0.0]},
        index=pd.MultiIndex.from_tuples(
            [("rollout_did", "job_coaching", "employed_12")],
            names=["design", "instrument", "outcome"],
        ),
    )
    shown = labels.display_frame(frame, ROOT)
    assert shown.index[0] == (
        "Staggered roll-out (difference in differences)",
        "Job coaching",
        labels.label("employed_12", ROOT),
    )
    assert np.isclose(shown.iloc[0, 0], 0.1)


def test_scan_html_finds_code_and_raw_names_in_headers_only():
    html = """<main><h2>Effects on employed_24</h2>
    <div class="cell_input docutils container"><pre>x = 1</pre></div>
    <table><thead><tr><th>mean of months_employed</th></tr></thead>
    <tbody><tr><th>employed_12</th><td>employed_12</td></tr></tbody></table>
    <p class="disclosure-title"><strong>rollout_did/job_coaching: whole cohort</strong></p>
    <p>prose may name employed_12</p><img alt="effect on employed_6" src="x.png"/></main>"""
    hits = labels.scan_html(
        html,
        {
            "employed_24",
            "months_employed",
            "employed_12",
            "rollout_did",
            "job_coaching",
            "employed_6",
        },
    )
    assert sorted((w, n) for w, _, n in hits) == [
        ("code cell", ""),
        ("column header", "months_employed"),
        ("heading", "employed_24"),
        ("image alt text", "employed_6"),
        ("output title", "job_coaching"),
        ("output title", "rollout_did"),
    ]


def test_static_words_agree_with_the_configuration():
    """Names labelled without reading a config file (for steps that do not
    read it) carry the words the configuration gives them."""
    effects = read_yaml(ROOT / "config" / "effects.yml")
    for name, words in effects["outcomes"].items():
        if name in labels.STATIC:
            assert labels.STATIC[name] == words, name


@pytest.mark.parametrize("ticks", ["categories", "names_from_numbers"])
def test_relabelling_gives_the_pixels_of_relabelling_a_drawn_figure(ticks):
    """relabel_figure gives, byte for byte, the PNG (and texts) of relabelling
    the figure after drawing it whole: the tick labels a draw makes. It lays
    the figure out first only where an axis could show names that depend on
    the layout (a formatter that writes names at places a locator fits to the
    axes), not for categories and numbers. (The figure has no constrained
    layout: that layout starts from the axes where the last drawing left them,
    so a figure drawn twice can differ from one drawn once by a fraction of a
    pixel.)"""
    import io

    from matplotlib.testing.decorators import _cleanup_cm
    from matplotlib.ticker import FuncFormatter

    names = ["job_coaching", "wage_subsidy", "training", "work_placement"]

    def saved(draw_first):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        if ticks == "categories":  # their labels exist only once the figure is drawn
            ax.bar(names[:3], [0.02, -0.01, 0.04])
        else:  # names written by a formatter at places the locator chooses
            ax.plot([0, 1, 2, 3], [0.02, -0.01, 0.04, 0.0])
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda x, _: names[int(x)] if float(x).is_integer() and 0 <= x < 4 else ""))
        ax.set_title("employed_24 by instrument")
        if draw_first:  # the reference: a whole PNG drawn and thrown away
            fig.savefig(io.BytesIO(), format="png")
        layouts = []
        fig.draw_without_rendering = lambda: layouts.append(type(fig).draw_without_rendering(fig))
        labels.relabel_figure(fig, ROOT)
        labels.pp_axis(fig.axes[0], "y")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        texts = labels.figure_texts(fig)
        matplotlib.pyplot.close(fig)
        return buf.getvalue(), texts, len(layouts)

    with _cleanup_cm():
        png, texts, _ = saved(True)
        got, got_texts, layouts = saved(False)
        assert (got, got_texts) == (png, texts)
        assert layouts == (0 if ticks == "categories" else 1)
        # the tick labels drawn from the names are in words
        assert {"Job coaching", "Wage-cost subsidy"} <= set(texts)
        assert "job_coaching" not in texts

"""Sensitivity to an unobserved confounder (Cinelli and Hazlett 2020) on the
stacked risk sets: the bias formula is exact for the linear comparison, the
benchmark bound matches a confounder as strong as a covariate, and the
bounds at a known confounder's strength contain the effect."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reintegration.phase2 import sensitivity as sa


def _world(n=40_000, gamma=0.6, seed=1):
    """Stacked-like data: elapsed month, two covariates, a hidden z, a start
    indicator and an outcome with a true effect of 0.10."""
    rng = np.random.default_rng(seed)
    month = rng.integers(1, 6, n)
    x1 = rng.standard_normal(n)
    x2 = rng.binomial(1, 0.4, n).astype(float)
    z = rng.standard_normal(n)
    d = (0.4 * x1 + 0.3 * x2 + gamma * z + 0.05 * month + rng.standard_normal(n) > 1.2)
    y = 0.10 * d + 0.5 * x1 + 0.2 * x2 + gamma * z + rng.standard_normal(n)
    return pd.DataFrame({"elapsed_month": month, "x1": x1, "x2": x2, "z": z,
                         "treated": d.astype(float), "y": y})


def test_the_bias_formula_is_exact_for_the_linear_comparison():
    data = _world()
    short = sa.analyse(data, "y", ["x1", "x2"], benchmarks=[])
    long = sa.analyse(data, "y", ["x1", "x2", "z"], benchmarks=[])
    r2dz, r2yz = sa.at_confounder(data, "y", ["x1", "x2"], "z")
    assert abs(short.estimate - long.estimate) == pytest.approx(
        sa.bias_bound(short.se, short.dof, r2dz, r2yz), rel=1e-8)
    assert long.se == pytest.approx(sa.adjusted_se(short.se, short.dof, r2dz, r2yz), rel=1e-6)
    # the hidden z pushes the estimate up; with z the estimate is near the truth
    assert short.estimate > 0.2 and abs(long.estimate - 0.10) < 0.03
    low, high = short.interval_at(r2dz, r2yz)
    assert low <= 0.10 <= high


def test_a_design_matrix_built_once_serves_both_fits_unchanged():
    """The validation builds the design matrix once for the analysis and the
    confounder's strength: the same numbers as each building its own."""
    data = _world(n=5_000).assign(y=lambda f: f["y"].where(f.index % 7 > 0))  # some missing
    design = sa._design(data[data["y"].notna()], ["x1", "x2"])
    own = sa.analyse(data, "y", ["x1", "x2"], benchmarks=["x1"])
    given = sa.analyse(data, "y", ["x1", "x2"], benchmarks=["x1"], design=design)
    assert (given.estimate, given.se, given.dof) == (own.estimate, own.se, own.dof)
    pd.testing.assert_frame_equal(given.benchmarks, own.benchmarks)
    assert sa.at_confounder(data, "y", ["x1", "x2"], "z", design=design) == \
        sa.at_confounder(data, "y", ["x1", "x2"], "z")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_confounders_strength_from_one_decomposition_equals_two_separate_fits(seed):
    """at_confounder reads both fits off one QR of [X, z, d, y]: the partial R^2
    of the two separate least-squares fits, to rounding."""
    data = _world(n=3_000, seed=seed)
    X, names = sa._design(data, ["x1", "x2"])
    z, d, y = (data[c].to_numpy(dtype=float) for c in ("z", "treated", "y"))
    fit_d = sa.ols(d, np.column_stack([z, X]), ["z", *names])
    fit_y = sa.ols(y, np.column_stack([d, z, X]), [sa.TREATED, "z", *names])
    separate = (sa.partial_r2(fit_d.t("z"), fit_d.dof), sa.partial_r2(fit_y.t("z"), fit_y.dof))
    together = sa.at_confounder(data, "y", ["x1", "x2"], "z")
    assert together == pytest.approx(separate, rel=1e-10, abs=1e-14)
    # the two strengths differ, so exchanging them would fail
    assert abs(separate[0] - separate[1]) > 1e-3


def test_a_confounder_as_strong_as_a_covariate_gets_that_covariates_strength():
    # z is built exactly like x1 (same coefficients, independent of it)
    rng = np.random.default_rng(7)
    n = 60_000
    x1, z, x2 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    d = (0.5 * x1 + 0.5 * z + 0.2 * x2 + rng.standard_normal(n) > 0.8).astype(float)
    y = 0.1 * d + 0.4 * x1 + 0.4 * z + 0.3 * x2 + rng.standard_normal(n)
    data = pd.DataFrame({"elapsed_month": 1, "x1": x1, "x2": x2, "z": z, "treated": d, "y": y})
    sens = sa.analyse(data, "y", ["x1", "x2"], benchmarks=["x1"], multiples=[1])
    bound = sens.benchmarks.iloc[0]
    r2dz, r2yz = sa.at_confounder(data, "y", ["x1", "x2"], "z")
    assert bound["r2_treatment"] == pytest.approx(r2dz, rel=0.15)
    assert bound["r2_outcome"] == pytest.approx(r2yz, rel=0.15)
    assert bound["estimate_low"] <= 0.1 + 0.02


def test_partial_r2_bound_matches_the_papers_formulas_and_refuses_impossible_multiples():
    r2dz, r2yz = sa.partial_r2_bound(0.02, 0.05, kd=1)
    assert r2dz == pytest.approx(0.02 / 0.98)
    r2zxj = 0.02**2 / (0.98 * 0.98)
    assert r2yz == pytest.approx(((1 + math.sqrt(r2zxj)) / math.sqrt(1 - r2zxj)) ** 2
                                 * 0.05 / 0.95)
    assert all(math.isnan(v) for v in sa.partial_r2_bound(0.6, 0.05, kd=2))
    assert sa.partial_r2_bound(0.01, 0.9, kd=3)[1] == 1.0


def test_robustness_value_is_where_the_bias_bound_reaches_the_estimate():
    data = _world(gamma=0.2)
    sens = sa.analyse(data, "y", ["x1", "x2"], benchmarks=["x1", "x2"])
    rv = sens.robustness_value
    assert sa.bias_bound(sens.se, sens.dof, rv, rv) == pytest.approx(abs(sens.estimate),
                                                                      rel=1e-6)
    assert set(sens.benchmarks["covariate"]) == {"x1", "x2"}
    assert (sens.benchmarks["estimate_low"] <= sens.estimate).all()


def test_the_contour_figure_marks_the_benchmarks():
    import matplotlib

    matplotlib.use("Agg")
    data = _world(n=5_000, gamma=0.2)
    sens = sa.analyse(data, "y", ["x1", "x2"], benchmarks=["x1"])
    fig = sa.contour_figure(sens, labels={"x1": "prior employment"})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("prior employment (1x, 2x, 3x)") for t in texts)


def test_every_selection_sub_study_of_a_generated_city_gets_its_analysis(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_panel import linked_sources

    from reintegration.designs import Inputs
    from reintegration.phase2 import estimates
    from reintegration.research import panel

    cfg, src = linked_sources("utrecht", tmp_path)
    built = panel.build(src, cfg["study"])
    settings = estimates.load_settings()
    inputs = Inputs(persons=built.persons, city=cfg, effects=settings,
                    person_months=built.person_months)
    subs = [{"id": f"selection_on_observables/{i}", "design": "selection_on_observables",
             "instrument": i, "decision": "go"} for i in ("job_coaching", "training")]
    subs.append({"id": "case_manager_iv/training", "design": "case_manager_iv",
                 "instrument": "training", "decision": "go"})
    table, found = sa.city_analyses(inputs, subs, settings)
    cfg_s = settings["sensitivity"]
    per = len(cfg_s["benchmarks"]) * len(cfg_s["multiples"]) * len(cfg_s["outcomes"])
    assert sorted(found) == ["selection_on_observables/job_coaching|employed_24",
                             "selection_on_observables/training|employed_24"]
    assert len(table) == 2 * per
    ok = table.dropna(subset=["estimate_low"])
    assert ((ok["estimate_low"] <= ok["estimate"]) & (ok["estimate"] <= ok["estimate_high"])).all()
    # a stronger hidden factor moves the estimate further
    one = table[table["multiple"] == 1].set_index(["sub-study", "covariate"])
    three = table[table["multiple"] == 3].set_index(["sub-study", "covariate"])
    width = lambda t: t["estimate_high"] - t["estimate_low"]  # noqa: E731
    both = width(one).to_frame("one").join(width(three).to_frame("three")).dropna()
    assert (both["three"] > both["one"]).all()

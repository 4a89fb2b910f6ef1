"""The DR-learner of the predicted individual effects (phase2.whom_dr): it
recovers a planted effect that varies with a covariate and the start month,
and the prediction for a fold never depends on that fold's outcomes or
starts (the split-rule BLP test needs that)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reintegration.phase2 import whom, whom_dr


def _risk_sets(persons=12_000, seed=5):
    """Stacked risk sets: each person at risk for months 1..6 until a rare
    start (selected on x1, x2); the effect of a start is 0.12 * x1 + 0.02 *
    (6 - month), the outcome a probability of work."""
    rng = np.random.default_rng(seed)
    x1 = rng.binomial(1, 0.4, persons).astype(float)
    x2 = rng.standard_normal(persons)
    rows = []
    for m in range(1, 7):
        e = 1 / (1 + np.exp(-(-2.8 + 0.7 * x1 - 0.4 * x2)))
        d = rng.random(persons) < e
        tau = 0.12 * x1 + 0.02 * (6 - m)
        p0 = 1 / (1 + np.exp(-(-0.4 + 0.6 * x2 - 0.3 * x1 - 0.05 * m)))
        y = (rng.random(persons) < np.clip(p0 + d * tau, 0, 1)).astype(float)
        rows.append(pd.DataFrame({"elapsed_month": m, "x1": x1, "x2": x2,
                                  "treated": d.astype(int), "employed_24": y,
                                  "_pid": np.arange(persons), "tau": tau}))
    return pd.concat(rows, ignore_index=True)


def _proxy(data, kind, folds=3):
    return whom.cross_fit(data, "employed_24", ["x1", "x2"], folds=folds, seed=1,
                          learner="linear", iate=kind)


def test_the_dr_learner_recovers_the_planted_effect_per_covariate_and_month():
    data = _risk_sets()
    fitted = _proxy(data, "dr_linear")
    assert fitted["mu1"].isna().all()  # no outcome model of the starters
    starters = fitted["d"].to_numpy() == 1
    tau = data["tau"].to_numpy()[starters]
    proxy = fitted["proxy"].to_numpy()[starters]
    assert stats.spearmanr(proxy, tau).statistic > 0.6
    # the second stage is linear in x1, x2 and the month: its x1 and month slopes
    x1 = data["x1"].to_numpy()[starters]
    month = data["elapsed_month"].to_numpy()[starters]
    slope = np.linalg.lstsq(np.column_stack([np.ones_like(x1), x1, month]), proxy,
                            rcond=None)[0]
    assert slope[1] == pytest.approx(0.12, abs=0.05)
    assert slope[2] == pytest.approx(-0.02, abs=0.012)
    # the T-learner's proxy is the difference of its outcome models
    t = _proxy(data, "t_learner")
    assert np.allclose(t["proxy"], t["mu1"] - t["mu0"])
    with pytest.raises(ValueError, match="heterogeneity.iate"):
        _proxy(data, "s_learner")


@pytest.mark.parametrize(("kind", "folds"), [("dr_linear", 3), ("dr_linear", 2),
                                             ("dr_boosting", 3)])
def test_the_prediction_for_a_fold_never_uses_that_folds_outcomes(kind, folds):
    data = _risk_sets(persons=4_000)
    before = _proxy(data, kind, folds)
    rng = np.random.default_rng(0)
    for k in range(folds):
        inside = (before["fold"] == k).to_numpy()
        changed = data.copy()
        # fold k's outcomes and starts permuted among its rows
        for col in ("employed_24", "treated"):
            changed.loc[inside, col] = rng.permutation(changed.loc[inside, col].to_numpy())
        after = _proxy(changed, kind, folds)
        assert (after["fold"] == before["fold"]).all()
        assert np.array_equal(after["proxy"].to_numpy()[inside],
                              before["proxy"].to_numpy()[inside])
        # the other folds' predictions did use fold k's data: the check can fail
        assert not np.allclose(after["proxy"].to_numpy()[~inside],
                               before["proxy"].to_numpy()[~inside])


def test_pseudo_outcomes_pooled_from_the_usual_cross_fit_would_leak():
    """The reason for the nested scheme: a second stage on the scores of the
    ordinary cross-fit (nuisance models of a fold j fitted on the other folds,
    fold k among them) changes fold k's prediction when fold k's outcomes
    change."""
    data = _risk_sets(persons=4_000)
    cov = ["x1", "x2"]

    def leaky(frame):
        f = whom.cross_fit(frame, "employed_24", cov, folds=3, seed=1, learner="linear",
                           iate="t_learner")
        psi, e = whom.scores(f), f["e"].to_numpy()
        Z = frame[["x1", "x2", "elapsed_month"]].to_numpy(dtype=float)
        out = np.empty(len(f))
        for k in range(3):
            m = (f["fold"] == k).to_numpy()
            out[m] = whom_dr.second_stage("dr_linear", 0)(Z[~m], psi[~m] / e[~m], e[~m], Z[m])
        return f, out

    f, before = leaky(data)
    inside = (f["fold"] == 0).to_numpy()
    changed = data.copy()
    changed.loc[inside, "employed_24"] = np.random.default_rng(0).permutation(
        changed.loc[inside, "employed_24"].to_numpy())
    _, after = leaky(changed)
    assert not np.allclose(after[inside], before[inside])


def test_the_weighted_second_stage_is_the_blp_moment():
    """Weighted least squares of psi / e on Z with weights e solves
    sum Z (psi - e Z'b) = 0, the moment of the BLP."""
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((500, 2))
    e = rng.uniform(0.01, 0.2, 500)
    psi = e * (0.1 + Z @ [0.05, -0.02]) + 0.1 * rng.standard_normal(500)
    pred = whom_dr.second_stage("dr_linear", 0)(Z, psi / e, e, Z)
    A = np.column_stack([np.ones(500), Z])
    assert np.allclose(A.T @ (psi - e * pred), 0, atol=1e-10)

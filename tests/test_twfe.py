"""The event study's regression (entity and period effects absorbed in
closed form, :mod:`reintegration.effects._twfe`) gives linearmodels'
``PanelOLS`` numbers to 1e-8: coefficients, covariance and degrees of
freedom, and through them the whole result (headline, standard error,
event-time path, pre-trend test), on unbalanced panels, repeated
cross-sections (several rows per entity and period), collapsed cells with
weights, clustered and robust covariances, with and without the
small-sample factor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from linearmodels import PanelOLS

from reintegration.effects import EffectInputError, event_study, staggered
from reintegration.effects._twfe import PanelFit, absorb_two_way

KW = {
    "outcome": "y",
    "entity": "unit",
    "time": "t",
    "treatment_start": "start",
    "leads": 3,
    "lags": 3,
    "wild_bootstrap": 0,
}


def world(
    seed: int, *, per_cell: int = 1, units: int = 24, periods: int = 16, drop: float = 0.15
) -> pd.DataFrame:
    """Units adopting at 5, 8 or 11 (a quarter never), unit and period
    effects, effects growing with event time, ``per_cell`` rows per unit and
    period, a share ``drop`` of the rows missing (unbalanced), a region
    column of four (for clustering) and a covariate."""
    rng = np.random.default_rng(seed)
    starts = rng.choice([5.0, 8.0, 11.0, np.nan], size=units)
    unit = np.repeat(np.arange(units), periods * per_cell)
    t = np.tile(np.repeat(np.arange(periods), per_cell), units)
    start = starts[unit]
    rel = t - start
    effect = np.where(np.nan_to_num(rel, nan=-1) >= 0, 0.1 * (np.nan_to_num(rel) + 1), 0.0)
    y = (
        rng.normal(size=units)[unit]
        + rng.normal(size=periods)[t]
        + effect
        + rng.normal(0, 0.5, len(t))
    )
    df = pd.DataFrame(
        {
            "unit": unit,
            "t": t,
            "start": start,
            "y": y,
            "region": unit % 4,
            "x": rng.normal(size=len(t)),
        }
    )
    return df.loc[rng.random(len(df)) > drop].reset_index(drop=True)


def panelols_fit(y, exog, *, entity, period, weights, clusters, debiased) -> PanelFit:
    """The reference: the same regression in linearmodels' ``PanelOLS``, as
    the event study fitted it before (entity and time effects on a panel,
    the entity as an other effect with several rows per cell)."""
    unique = not pd.DataFrame({"g": entity, "t": period}).duplicated().any()
    if unique:
        index = pd.MultiIndex.from_arrays([entity, period.astype(np.int64)], names=["g", "t"])
        effects = {"entity_effects": True, "time_effects": True}
    else:
        index = pd.MultiIndex.from_arrays(
            [np.arange(len(y)), period.astype(np.int64)], names=["row", "t"]
        )
        effects = {"time_effects": True, "other_effects": pd.DataFrame({"g": entity}, index=index)}
    if np.any(weights != 1):
        effects["weights"] = pd.Series(weights, index=index)
    cov = (
        {"cov_type": "robust"}
        if clusters is None
        else {"cov_type": "clustered", "clusters": pd.DataFrame({"c": clusters}, index=index)}
    )
    x = exog.copy()
    x.index = index
    res = PanelOLS(pd.Series(y, index=index), x, **effects).fit(debiased=debiased, **cov)
    return PanelFit(
        params=res.params,
        cov=res.cov,
        nobs=int(res.nobs),
        df_model=int(res.df_model),
        df_resid=int(res.df_resid),
        cov_type=cov["cov_type"],
        dependent=np.asarray(y),
        exog=exog,
        entity=entity,
        period=period,
        weights=weights,
        resids=np.asarray(res.resids),
        demeaned=(np.asarray(y), exog.to_numpy()),
    )


CASES = {
    "panel, clustered on the unit": ({}, {}),
    "panel, robust, not debiased": ({}, {"cluster": False, "debiased": False}),
    "panel, clustered on regions, binned endpoints, covariate": (
        {},
        {"cluster": "region", "bin": "endpoints", "controls": ["x"]},
    ),
    "rows within cells, clustered": ({"per_cell": 3}, {"baseline": "pre_mean"}),
    "rows within cells, robust": ({"per_cell": 3}, {"cluster": False}),
    "collapsed cells, weighted": ({"per_cell": 3}, {"collapse": True, "debiased": False}),
    "last-treated cohort as control": ({"units": 18}, {"control_cohort": "last"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_event_study_gives_panelols_numbers(case, monkeypatch):
    shape, options = CASES[case]
    df = world(3, **shape)
    if options.get("control_cohort") == "last":
        df = df.dropna(subset=["start"])
    ours = event_study(df, **KW, **options)
    monkeypatch.setattr(staggered, "fit_two_way", panelols_fit)
    ref = event_study(df, **KW, **options)
    a, b = ours.model_results, ref.model_results
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.cov.to_numpy(), b.cov.to_numpy(), rtol=0, atol=1e-8)
    assert (a.nobs, a.df_model, a.df_resid) == (b.nobs, b.df_model, b.df_resid)
    assert ours.estimate == pytest.approx(ref.estimate, abs=1e-8)
    assert ours.std_error == pytest.approx(ref.std_error, abs=1e-8)
    cols = ["estimate", "std_error", "n_obs"]
    np.testing.assert_allclose(
        ours.event_time[cols].to_numpy(), ref.event_time[cols].to_numpy(), rtol=0, atol=1e-8
    )
    for key in ("stat", "pvalue", "pvalue_f"):
        assert ours.pretrend.get(key, 0.0) == pytest.approx(ref.pretrend.get(key, 0.0), abs=1e-8)
    assert ours.pretrend["df"] == ref.pretrend["df"] > 0
    assert np.isfinite(ours.estimate) and ours.std_error > 0


def test_absorbing_equals_least_squares_on_the_indicators():
    """Two-way absorption equals the residuals of weighted least squares on
    both sets of indicators, whichever set is the larger."""
    rng = np.random.default_rng(0)
    n = 500
    g1, g2 = rng.integers(0, 30, n), rng.integers(0, 7, n)
    g1 = np.unique(g1, return_inverse=True)[1]
    w = rng.uniform(0.5, 3, n)
    a = rng.normal(size=(n, 3))
    d = np.column_stack([np.eye(g1.max() + 1)[g1], np.eye(7)[g2]])
    root = np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(d * root, a * root, rcond=None)[0]
    want = a - d @ coef
    np.testing.assert_allclose(absorb_two_way(a, g1, g2, w), want, atol=1e-10)
    np.testing.assert_allclose(absorb_two_way(a, g2, g1, w), want, atol=1e-10)
    np.testing.assert_allclose(absorb_two_way(a[:, 0], g1, g2, w), want[:, 0], atol=1e-10)


def test_a_regressor_the_effects_absorb_is_an_error():
    df = world(1)
    df["x"] = df["unit"] * 0.5 + df["t"]  # unit plus period: absorbed
    with pytest.raises(EffectInputError, match="absorbed"):
        event_study(df, **KW, controls=["x"])


def test_the_pretrend_wald_statistic_ignores_rounding_noise():
    """A covariance of rank one with eigenvalues of 1e-20 from rounding: the
    statistic uses the one direction with variance and has one degree of
    freedom."""
    u = np.array([1.0, 2.0, 2.0]) / 3
    v = 4e-4 * np.outer(u, u) + 1e-20 * np.diag([1.0, -1.0, 1.0])
    b = np.array([0.02, 0.01, -0.03])
    stat, df = staggered._wald(b, v)
    assert df == 1
    assert stat == pytest.approx(float(u @ b) ** 2 / 4e-4, rel=1e-12)


def test_least_squares_uses_lstsq_when_the_design_is_ill_conditioned():
    from reintegration.effects._twfe import _least_squares

    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=200)
    np.testing.assert_allclose(
        _least_squares(x, y), np.linalg.lstsq(x, y, rcond=None)[0], atol=1e-12
    )
    bad = np.column_stack([x[:, 0], x[:, 0] + 1e-9 * x[:, 1], x[:, 2]])
    np.testing.assert_allclose(
        _least_squares(bad, y), np.linalg.lstsq(bad, y, rcond=None)[0], rtol=1e-6
    )

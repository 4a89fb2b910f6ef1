"""The case-manager IV shares what does not read the outcome between the
outcomes of one frame (first stage, first-stage F, the Anderson-Rubin
pieces of X and Z) and the propensities between the instruments of one
persons frame. These tests compare every shared path with the one-outcome
path computed afresh (memos off) and the matrix-product Anderson-Rubin
pieces with the einsums they replace."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_iv import simulated_persons

from reintegration import designs
from reintegration.designs import iv
from reintegration.effects import _memo, numerics
from reintegration.phase2 import estimates


def _einsum_pieces(y, x, z, clusters):
    """The Anderson-Rubin pieces as first written (einsums over units)."""
    rho = np.linalg.lstsq(z, y, rcond=None)[0]
    pi = np.linalg.lstsq(z, x, rcond=None)[0]
    ey, ex = y - z @ rho, x - z @ pi
    a = z * ey[:, None]
    b = z[:, :, None] * ex[:, None, :]
    if clusters is not None:
        codes = pd.factorize(pd.Series(clusters))[0]
        g = codes.max() + 1
        a = np.stack([np.bincount(codes, weights=a[:, p], minlength=g)
                      for p in range(a.shape[1])], axis=1)
        b = np.stack([np.stack([np.bincount(codes, weights=b[:, p, q], minlength=g)
                                for q in range(b.shape[2])], axis=1)
                      for p in range(b.shape[1])], axis=1)
    return {"c": z.T @ y, "d": z.T @ x, "p0": a.T @ a,
            "p1": np.einsum("up,uqr->pqr", a, b), "p2": np.einsum("upl,uqr->plqr", b, b)}


def _joint_data(seed=4, n=3000):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z @ np.array([[1.0, 0.3, 0.0], [0.2, 0.8, 0.1], [0.0, 0.4, 0.9]]) + rng.normal(size=(n, 3))
    y = x @ np.array([0.1, -0.2, 0.05]) + rng.normal(size=n)
    return y - y.mean(), x - x.mean(axis=0), z - z.mean(axis=0), rng.integers(0, 60, n)


@pytest.mark.parametrize("clustered", [False, True])
def test_anderson_rubin_pieces_equal_the_einsums(clustered):
    y, x, z, cl = _joint_data()
    cl = cl if clustered else None
    new = numerics._ar_pieces(y, x, z, cl)
    ref = _einsum_pieces(y, x, z, cl)
    for key in ref:
        np.testing.assert_allclose(new[key], ref[key], rtol=1e-12, atol=1e-12 * np.abs(
            ref[key]).max())
    # the statistic and its gradient from either set of pieces
    beta = np.array([0.3, -0.1, 0.2])
    v_new, g_new = numerics._ar_full_grad(beta, new)
    v_ref, g_ref = numerics._ar_full_grad_reference(beta, ref)
    assert v_new == pytest.approx(v_ref, rel=1e-10)
    np.testing.assert_allclose(g_new, g_ref, rtol=1e-9)


def test_anderson_rubin_projection_with_a_kept_cache_equals_one_without():
    """Two outcomes through one cache give the sets each gives alone, bit for
    bit, and the cache holds the outcome-free pieces after the first."""
    y, x, z, cl = _joint_data()
    y2 = y + 0.5 * x[:, 1] + np.random.default_rng(1).normal(size=len(y))
    cache: dict = {}
    for yy in (y, y2):
        kept = numerics.anderson_rubin_projection(yy, x, z, clusters=cl, cache=cache)
        alone = numerics.anderson_rubin_projection(yy, x, z, clusters=cl)
        assert kept.intervals == alone.intervals and kept.kind == alone.kind
        assert set(cache) == {"x", "z", "pieces"}
        (lo, hi), = alone.intervals
        assert math.isfinite(lo) and lo < hi


def test_two_stage_least_squares_from_a_kept_first_stage_equals_the_whole_fit():
    y, x, z, cl = _joint_data()
    w = np.random.default_rng(2).normal(size=(len(y), 2))
    first = numerics.tsls_first_stage(x[:, :1], z[:, :1], w)
    for yy in (y, y + x[:, 2]):
        kept = numerics.tsls(yy, x[:, :1], z[:, :1], w=w, clusters=cl, first=first)
        whole = numerics.tsls(yy, x[:, :1], z[:, :1], w=w, clusters=cl)
        for field in ("params", "cov_robust", "cov_clustered", "first_stage", "reduced_form",
                      "resid"):
            np.testing.assert_array_equal(getattr(kept, field), getattr(whole, field))


def _flat(value, prefix=""):
    """Every number and text of a record, keyed by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}/{key}")
                .items()}
    if isinstance(value, list | tuple):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}/{i}")
                .items()}
    return {prefix: value}


def _assert_records_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        fa, fb = _flat(a), _flat(b)
        assert fa.keys() == fb.keys()
        for key, va in fa.items():
            vb = fb[key]
            if isinstance(va, float) and isinstance(vb, float) and not (
                    math.isnan(va) and math.isnan(vb)):
                assert va == pytest.approx(vb, rel=1e-8, abs=1e-12), key
            else:
                assert va == vb or (va != va and vb != vb), key


@pytest.fixture(scope="module")
def persons():
    p = simulated_persons(n=9000, managers=48)
    rng = np.random.default_rng(5)
    p["y2"] = p["y"] + rng.normal(0, 0.3, len(p))
    p["y_missing"] = p["y"].where(rng.random(len(p)) > 0.1)   # its own rows
    p["y_text"] = "x"                                          # the estimator fails
    return p


def test_every_record_of_all_outcomes_equals_each_outcome_alone(persons):
    """Records of every target, outcome and subgroup with the shared work
    equal those of each outcome estimated alone without any memo (to 1e-8;
    in fact bit for bit), with an outcome on its own rows and one whose
    estimator fails; the failure stays that outcome's."""
    settings = estimates.load_settings()
    settings["case_manager_iv"] = {**settings["case_manager_iv"],
                                   "monotonicity_subgroups": ["grp"]}
    outcomes = ["y", "y_text", "y_missing", "y2"]
    settings = {**settings, "outcomes": dict.fromkeys(outcomes, "outcome"),
                "subgroups": {"grp": "a group"}}
    design = designs.get("case_manager_iv")
    sub = {"id": "case_manager_iv/a", "design": "case_manager_iv", "instrument": "a",
           "decision": "go"}
    data = iv.iv_data(persons, "a")
    together, _ = estimates.run_substudy("sim", sub, data, design, settings,
                                         subgroups=data[["grp"]])
    alone = []
    with _memo.disabled():
        fresh = iv.iv_data(persons, "a")
        for outcome in outcomes:
            one = {**settings, "outcomes": {outcome: "outcome"}}
            alone += estimates.run_substudy("sim", sub, fresh, design, one,
                                            subgroups=fresh[["grp"]])[0]
    key = [(r["outcome"], r["subgroup"], r["group"], r["target"]) for r in together]
    order = sorted(range(len(alone)), key=lambda i: key.index(
        (alone[i]["outcome"], alone[i]["subgroup"], alone[i]["group"], alone[i]["target"])))
    _assert_records_close(together, [alone[i] for i in order])
    status = {(r["outcome"], r["subgroup"], r["target"]): r["status"] for r in together}
    assert {s for (o, *_), s in status.items() if o == "y_text"} == {"failed"}
    assert {s for (o, *_), s in status.items() if o != "y_text"} == {"estimated"}
    head = {r["outcome"]: r for r in together
            if r["subgroup"] == "all" and r["target"] == "versus_none"}
    assert head["y_missing"]["n"] < 0.95 * head["y"]["n"]
    assert head["y_missing"]["diagnostics"]["ar_kind"] == "interval"


def test_prepared_data_with_kept_propensities_equals_a_fresh_one(persons):
    """The propensities for every instrument are computed once per persons
    frame; each instrument's prepared data equals one prepared afresh."""
    kept = {j: iv.iv_data(persons, j) for j in ("a", "b")}
    with _memo.disabled():
        fresh = {j: iv.iv_data(persons, j) for j in ("a", "b")}
    for j in kept:
        pd.testing.assert_frame_equal(kept[j], fresh[j])
        assert kept[j]["_z"].notna().mean() > 0.9
    # a's own propensity is b's propensity for the other alternative, and vice versa
    np.testing.assert_array_equal(kept["a"]["_z"].to_numpy(), kept["b"]["_z:a"].to_numpy())


def test_subgroup_first_stage_from_the_frame_codes_equals_coding_the_group_again(persons):
    """controlled_first_stage with the cell and case-manager codes of the
    whole frame gives what coding the group's rows afresh gives, bit for bit."""
    data = iv.iv_data(persons, "a")
    cols = ["_d", "_z", "_cell", "case_manager", "_d:b", "_z:b"]
    base = data[cols].dropna()
    codes = (iv.group_codes(base, ["_cell"]),
             pd.factorize(base["case_manager"].astype(str))[0])
    for level in ("x", "y"):
        mask = (data.loc[base.index, "grp"] == level).to_numpy()
        fresh = iv.controlled_first_stage(base.loc[mask])
        coded = iv.controlled_first_stage(base.loc[mask], (codes[0][mask], codes[1][mask]))
        assert coded == fresh and fresh[0] > 0 and fresh[1] > 0


def test_counts_kept_per_frame_equal_the_counts_of_each_outcome(persons):
    design = designs.get("case_manager_iv")
    data = iv.iv_data(persons, "a")
    for outcome in ("y", "y2", "y_missing", "y"):
        want = designs.base.Design.counts(design, data, outcome)
        assert design.counts(data, outcome) == want
    assert design.counts(data, "y_missing")[:2] != design.counts(data, "y")[:2]
    assert design.counts(data, "y")[2] == data["case_manager"].nunique()


def test_cell_codes_after_dropping_singletons_equal_coding_the_rows_left():
    """_frame_arrays ranks the codes of the cells left instead of coding the
    rows again: the same codes, with two cell columns and singleton cells."""
    from reintegration.effects import iv as effects_iv
    from reintegration.effects._data import codes

    rng = np.random.default_rng(6)
    n = 400
    df = pd.DataFrame({"y": rng.normal(size=n), "d": rng.normal(size=n), "z": rng.normal(size=n),
                       "team": rng.choice(["b", "a", "c"], n), "q": rng.integers(0, 40, n),
                       "cm": rng.integers(0, 30, n)})
    base = effects_iv._frame_arrays(df, "y", "d", "z", [], ["team", "q"], "cm")
    assert base["n_singletons"] > 0
    kept = df.iloc[base["rows"]]
    np.testing.assert_array_equal(base["grp"], codes(kept, ["team", "q"]))
    assert base["n_cells"] == kept.groupby(["team", "q"]).ngroups

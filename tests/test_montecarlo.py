"""The Monte Carlo harness: its statistics on hand-made rows, one real
replication per kind of world, and the same rows from joblib and from a Dask
cluster."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reintegration.montecarlo import harness as mc

TINY = {"city": "rotterdam", "size": "small", "clients": 500, "outcomes": ("employed_24",),
        "permutations": 19}


def _rows(estimates, lows, highs, truth=0.1, se=0.05, mode="planted"):
    n = len(estimates)
    return pd.DataFrame({
        "mode": mode, "replication": range(1, n + 1), "design": "d", "instrument": "i",
        "target": "t", "outcome": "employed_24", "status": "estimated",
        "estimate": estimates, "std_error": se, "ci_low": lows, "ci_high": highs,
        "truth": truth,
    })


def test_summary_counts_coverage_bias_and_unbounded_intervals():
    est = [0.10, 0.20, 0.00, 0.15]
    rows = _rows(est, [0.0, 0.15, -0.1, np.nan], [0.2, 0.3, 0.05, 0.3])
    s = mc.summarise(rows).iloc[0]
    # covered: 1st (0.0..0.2), 4th (unbounded below .. 0.3); not 2nd, not 3rd
    assert s["replications"] == 4 and s["coverage"] == 0.5 and s["unbounded"] == 1
    assert s["bias"] == pytest.approx(np.mean(est) - 0.1)
    assert s["sd_over_se"] == pytest.approx(np.std(est, ddof=1) / 0.05)
    assert s["interval_length"] == pytest.approx(np.median([0.2, 0.15, 0.15]))
    assert s["reject_zero"] == 0.25  # only the second excludes zero
    lo, hi = stats.binomtest(2, 4).proportion_ci(method="exact")
    assert (s["coverage_low"], s["coverage_high"]) == pytest.approx((lo, hi))


def test_failed_replications_are_counted_not_dropped_silently():
    rows = _rows([0.1, 0.1], [0.0, 0.0], [0.2, 0.2])
    rows.loc[1, ["status", "estimate"]] = ["failed: singular", np.nan]
    s = mc.summarise(rows).iloc[0]
    assert s["replications"] == 1 and s["failed"] == 1


def test_clopper_pearson_and_the_nominal_band():
    assert mc.clopper_pearson(95, 100) == pytest.approx(
        stats.binomtest(95, 100).proportion_ci(method="exact"))
    assert mc.clopper_pearson(0, 10)[0] == 0.0 and mc.clopper_pearson(10, 10)[1] == 1.0
    lo, hi = mc.nominal_band(100)
    assert (lo, hi) == pytest.approx((0.90, 0.99))
    # the lower end is the 2.5% quantile of the count: P(X <= 89) < 2.5% <= P(X <= 90)
    assert stats.binom.cdf(89, 100, 0.95) < 0.025 <= stats.binom.cdf(90, 100, 0.95)


def test_acceptance_flags_coverage_outside_the_band_and_null_rejections():
    summary = pd.DataFrame([
        {"mode": "planted", "design": "d", "instrument": "i", "target": "t",
         "outcome": "employed_24", "replications": 100, "coverage": 0.90, "sd_over_se": 1.0,
         "reject_zero": 0.6},
        {"mode": "null", "design": "d", "instrument": "i", "target": "t",
         "outcome": "employed_24", "replications": 100, "coverage": 0.95, "sd_over_se": 1.0,
         "reject_zero": 0.08},
    ])
    checks = mc.acceptance(summary, valid=[("planted", "d", "t")])
    got = {(c.check, c.mode): c.met for c in checks.itertuples()}
    assert got == {("coverage", "planted"): False, ("sd_over_se", "planted"): True,
                   ("null_rejection", "null"): False}


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown Monte Carlo mode"):
        mc.Plan(city="rotterdam", modes=("planted", "placebo"))


@pytest.fixture(scope="module")
def one_of_each() -> pd.DataFrame:
    plan = mc.Plan(replications=1, **TINY)
    return pd.DataFrame([row for mode in mc.MODES for row in mc.replicate(plan, mode, 1)])


def test_a_replication_estimates_every_design_against_its_truth(one_of_each):
    planted = one_of_each[one_of_each["mode"] == "planted"]
    assert set(planted["design"]) == {"selection_on_observables", "rollout_did",
                                      "case_manager_iv"}
    assert (planted["status"] == "estimated").mean() > 0.8
    soo = planted[planted["design"] == "selection_on_observables"]
    assert soo["truth"].notna().all() and (soo["truth"] != 0).any()


def test_the_null_world_has_zero_truths_and_the_oracle_only_selection(one_of_each):
    null = one_of_each[one_of_each["mode"] == "null"]
    known = null["truth"].dropna()
    assert len(known) > 0 and np.allclose(known, 0.0)
    oracle = one_of_each[one_of_each["mode"] == "oracle"]
    assert set(oracle["design"]) == {"selection_on_observables"}


def test_a_new_replication_is_a_new_world(one_of_each):
    plan = mc.Plan(replications=1, modes=("planted",), **TINY)
    first = one_of_each[one_of_each["mode"] == "planted"].reset_index(drop=True)
    second = pd.DataFrame(mc.replicate(plan, "planted", 2))
    assert list(first["design"]) == list(second["design"])
    assert not np.allclose(first["truth"].astype(float).fillna(0),
                           second["truth"].astype(float).fillna(0))


def test_dask_cluster_and_joblib_give_the_same_rows():
    distributed = pytest.importorskip("distributed")
    # the same world twice, in two executors: the rows are equal (determinism)
    plan = mc.Plan(replications=1, modes=("null",), **TINY)
    local, cost, local_het = mc.run(plan, n_jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote, rcost, remote_het = mc.run(plan, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(local, remote)
    pd.testing.assert_frame_equal(local_het, remote_het)
    assert cost["tasks"] == rcost["tasks"] == 1 and rcost["where"].startswith("dask")
    assert math.isfinite(cost["seconds"])


def test_decomposition_adds_mismatch_and_confounding_up_to_the_old_error():
    base = {"design": "selection_on_observables", "outcome": "employed_24",
            "status": "estimated", "instrument": "training"}
    rows = pd.DataFrame([
        {**base, "mode": "planted", "replication": 1, "target": "now_vs_later",
         "estimate": 0.02, "truth": 0.05},
        {**base, "mode": "planted", "replication": 1, "target": "vs_never",
         "estimate": 0.03, "truth": 0.07},
        {**base, "mode": "oracle", "replication": 1, "target": "now_vs_later",
         "estimate": 0.052, "truth": 0.05},
    ])
    d = mc.decomposition(rows).iloc[0]
    assert d["error_vs_never"] == pytest.approx(0.02 - 0.07)
    assert d["estimand_mismatch"] == pytest.approx(0.05 - 0.07)
    assert d["confounding"] == pytest.approx(0.02 - 0.05)
    assert d["estimand_mismatch"] + d["confounding"] == pytest.approx(d["error_vs_never"])
    assert d["oracle_error"] == pytest.approx(0.002)


@pytest.fixture(scope="module")
def het_worlds() -> dict[str, mc.Replication]:
    plan = mc.Plan(replications=1, **{**TINY, "clients": 2000})
    return {mode: mc.replication_rows(plan, mode, 1) for mode in ("null", "oracle", "null_oracle")}


def test_every_world_runs_who_benefits_against_its_truths(het_worlds):
    from reintegration.montecarlo import whom as mw

    for mode, rep in het_worlds.items():
        het = mw.frame(rep.heterogeneity)
        assert list(het.columns) == list(mw.HET_FIELDS) and rep.heterogeneity_seconds > 0
        soo = {r["instrument"] for r in rep.rows if r["design"] == "selection_on_observables"}
        blp = het[het["kind"] == "blp"]
        assert set(blp["instrument"]) == soo and (blp["status"] == "estimated").all()
        assert blp["pvalue"].between(0, 1).all() and blp["std_error"].gt(0).all()
        split = het[het["kind"] == "blp_split"]
        assert list(split["instrument"]) == list(blp["instrument"])
        assert split["pvalue"].between(0, 1).all()
        gate = het[het["kind"] == "gate"]
        assert len(gate) > 0 and gate["truth"].notna().all()
        assert (gate["ci_high"] - gate["ci_low"]).round(9).eq(
            (2 * 1.96 * gate["std_error"]).round(9)).all()
        rank = het[het["kind"] == "rank"]
        assert set(rank["instrument"]) == soo
        if mode in mc.NULL_MODES:  # no effects: every truth zero, no ranks to correlate
            assert np.allclose(gate["truth"], 0.0) and rank["estimate"].isna().all()
        else:
            assert rank["estimate"].between(-1, 1).all() and (gate["truth"] != 0).any()


def _het_rows(mode, pvalues, covered_large, covered_small=0):
    rows = []
    for r, p in enumerate(pvalues, start=1):
        rows.append({"mode": mode, "replication": r, "instrument": "training",
                     "outcome": "employed_24", "kind": "blp", "status": "estimated",
                     "estimate": 0.1, "std_error": 0.1, "pvalue": p})
        rows.append({"mode": mode, "replication": r, "instrument": "training",
                     "outcome": "employed_24", "kind": "rank", "status": "estimated",
                     "estimate": 0.05 if r % 2 else -0.01})
    for k in range(10):  # ten cells of 250 starters, ten of 50
        for n, covered in ((250, k < covered_large), (50, k < covered_small)):
            rows.append({"mode": mode, "replication": 1, "instrument": "training",
                         "outcome": "employed_24", "kind": "gate", "group": "sex",
                         "level": str(k), "status": "estimated", "n_treated": n,
                         "estimate": 0.1, "std_error": 0.01, "ci_low": 0.08, "ci_high": 0.12,
                         "truth": 0.1 if covered else 0.3})
    from reintegration.montecarlo import whom as mw

    return mw.frame(rows)


def test_heterogeneity_summary_and_its_two_criteria():
    from reintegration.montecarlo import whom as mw

    null = _het_rows("null", [0.01] * 6 + [0.5] * 94, covered_large=9)
    oracle = _het_rows("oracle", [0.5] * 100, covered_large=9, covered_small=2)
    s = mw.summarise(pd.concat([null, oracle], ignore_index=True))
    assert s["null"]["blp"]["rejection"] == pytest.approx(0.06)
    assert s["null"]["blp"]["sd_t"] == pytest.approx(0.0)  # every slope 0.1 with SE 0.1
    assert s["null"]["blp"]["per_instrument"] == [
        {"instrument": "training", "tests": 100, "rejection": pytest.approx(0.06)}]
    g = s["oracle"]["gate"]
    assert (g["cells"], g["cells_large"]) == (20, 10)
    assert g["coverage_large"] == pytest.approx(0.9) and g["coverage"] == pytest.approx(0.55)
    assert s["oracle"]["rank"][0]["positive"] == pytest.approx(0.5)
    assert s["null"]["blp_split"]["tests"] == 0  # no split rows in these hand-made ones
    checks = {c["check"]: c for c in mw.acceptance(s)}
    assert "blp_size_split" not in checks
    assert checks["blp_size"]["met"] and checks["gate_coverage"]["met"]
    # seven rejections in 100 worlds, or 6% in only 50 worlds: not met
    worse = mw.summarise(_het_rows("null", [0.01] * 7 + [0.5] * 93, 9))
    assert not mw.acceptance(worse)[0]["met"]
    few = mw.acceptance(mw.summarise(_het_rows("null", [0.01] * 3 + [0.5] * 47, 9)))[0]
    assert few["value"] == pytest.approx(0.06) and not few["enough_worlds"] and not few["met"]
    low = mw.summarise(_het_rows("oracle", [0.5] * 10, covered_large=8))
    assert not mw.acceptance(low)[0]["met"]
    text = "\n".join(mw.markdown({"heterogeneity": {"summary": s, "acceptance": mw.acceptance(s),
                                                    "cost": {"share": 0.25,
                                                             "seconds_mean": 3.0}}}))
    assert "6% of 100" in text and "90% of 10" in text and "not met" not in text


def test_the_null_world_seen_by_the_oracle_runs_only_selection_with_zero_truths(het_worlds):
    rows = pd.DataFrame(het_worlds["null_oracle"].rows)
    assert set(rows["design"]) == {"selection_on_observables"}
    assert set(rows["target"]) == {"now_vs_later"} and np.allclose(rows["truth"], 0.0)
    # the same world as the plain null one, other estimates (the factor is a covariate)
    plain = pd.DataFrame(het_worlds["null"].rows)
    plain = plain[plain["design"] == "selection_on_observables"].reset_index(drop=True)
    assert list(plain["instrument"]) == list(rows["instrument"])
    assert not np.allclose(plain["estimate"].astype(float), rows["estimate"].astype(float))
    assert "null_oracle" not in mc.Plan(city="rotterdam").modes  # only when asked for

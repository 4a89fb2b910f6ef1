"""Phase 1's conditions as obligations: what fulfils each, the checks on
Phase 2's outputs, and the release audit that refuses an unmet one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reintegration.designs import Inputs
from reintegration.designs.base import Check
from reintegration.designs.selection import robustness_value
from reintegration.disclosure import audit
from reintegration.feasibility.criteria import SubStudy
from reintegration.phase2 import estimates, obligations


def test_robustness_value_against_hand_computation():
    # f = 4 / sqrt(100) = 0.4; RV = (sqrt(0.4^4 + 4 * 0.4^2) - 0.4^2) / 2
    assert robustness_value(4.0, 100) == pytest.approx(
        0.5 * (math.sqrt(0.0256 + 0.64) - 0.16), abs=1e-12)
    assert robustness_value(-4.0, 100) == robustness_value(4.0, 100)
    # an estimate whose interval already includes zero has no robustness at 5%
    assert robustness_value(1.5, 400, alpha=0.05) == 0.0
    assert 0 < robustness_value(5.0, 400, alpha=0.05) < robustness_value(5.0, 400)
    assert math.isnan(robustness_value(float("nan"), 100))


def test_conditions_carry_their_obligation_in_the_record():
    sub = SubStudy("selection_on_observables", "training")
    sub.criteria = {
        "theoretical": [Check("unconfoundedness", "conditional", "report a sensitivity")],
        "practical": [Check("column_completeness", "conditional", "end dates",
                            {"instruments.end_date": 0.8})],
        "allowed": [Check("legal_privacy_notice", "conditional", "in progress")],
        "wanted": [Check("relevance_policy", "pass", "high")],
    }
    rec = sub.as_dict({"training": "Training"})
    got = {o["check"]: o["obligation"] for o in rec["obligations"]}
    assert got == {"unconfoundedness": "sensitivity_analysis",
                   "column_completeness": "no_dependence_on_incomplete_columns",
                   "legal_privacy_notice": "resolved_in_configuration"}
    assert rec["obligations"][1]["value"] == {"instruments.end_date": 0.8}


def _persons(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    persons = pd.DataFrame({
        "RINPERSOONS": ["R"] * n,
        "RINPERSOON": [f"{i:09d}" for i in range(n)],
        "instrument": np.where(rng.random(n) < 0.3, "training", "none"),
        "instrument_elapsed": pd.array(rng.integers(1, 4, n), dtype="Int16"),
        "instrument_end": pd.Timestamp("2020-01-01"),
        "instrument_end_imputed": rng.random(n) < 0.2,
        "employed_12": rng.integers(0, 2, n),
    })
    persons.loc[persons["instrument"] == "none", "instrument_elapsed"] = pd.NA
    months = persons[["RINPERSOONS", "RINPERSOON"]].merge(
        pd.DataFrame({"month": range(0, 6)}), how="cross")
    months["on_benefit"] = 1
    months["in_instrument"] = 0
    return persons, months


def _sub(conditions: list[dict]) -> dict:
    return {"id": "selection_on_observables/training", "design": "selection_on_observables",
            "instrument": "training", "decision": "conditional", "obligations": conditions}


def _record(**diagnostics) -> dict:
    return {"substudy": "selection_on_observables/training", "status": "estimated",
            "subgroup": "all", "diagnostics": diagnostics}


def test_evaluate_meets_what_phase2_did_and_not_what_it_did_not():
    persons, months = _persons()
    inputs = Inputs(persons=persons, city={"name": "x"}, effects=estimates.load_settings(),
                    person_months=months)
    conds = [{"check": "unconfoundedness"}, {"check": "mde"},
             {"check": "column_completeness", "value": {"instruments.end_date": 0.8}},
             {"check": "column_completeness", "value": {"clients.team": 0.7}},
             {"check": "balance"}, {"check": "legal_privacy_notice"}]
    rows = obligations.evaluate([_sub(conds)], [_record(robustness_value=0.12,
                                                        mde_phase1=0.08)], inputs)
    status = list(zip(rows["condition"], rows["status"], strict=True))
    assert status == [("unconfoundedness", "met"), ("mde", "met"),
                      ("column_completeness", "met"), ("column_completeness", "unmet"),
                      ("balance", "unmet"), ("legal_privacy_notice", "unmet")]
    assert "instrument_end" in rows["evidence"].iloc[2]
    # without the robustness value the sensitivity obligation is not met
    rows = obligations.evaluate([_sub(conds[:2])], [_record(mde_phase1=0.08)], inputs)
    assert rows["status"].tolist() == ["unmet", "met"]
    # a no-go sub-study has no obligations to meet
    nogo = {**_sub(conds), "decision": "no-go"}
    assert obligations.evaluate([nogo], [], inputs).empty


def test_the_sensitivity_condition_needs_the_benchmarked_analysis_when_given():
    persons, months = _persons()
    inputs = Inputs(persons=persons, city={"name": "x"}, effects=estimates.load_settings(),
                    person_months=months)
    conds = [{"check": "unconfoundedness"}]
    table = pd.DataFrame([{"sub-study": "selection_on_observables/training",
                           "outcome": "employed_24", "estimate": 0.05, "multiple": 1,
                           "covariate": "prior_employment", "estimate_low": -0.01,
                           "estimate_high": 0.11}])
    rows = obligations.evaluate([_sub(conds)], [_record(robustness_value=0.04)], inputs,
                                sensitivity=table)
    assert rows["status"].tolist() == ["met"]
    assert "between -1.0 and +11.0" in rows["evidence"].iloc[0]
    other = table.assign(**{"sub-study": "selection_on_observables/wage_subsidy"})
    rows = obligations.evaluate([_sub(conds)], [_record(robustness_value=0.04)], inputs,
                                sensitivity=other)
    assert rows["status"].tolist() == ["unmet"]


def test_release_audit_refuses_an_unmet_condition(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "06_effects").mkdir(parents=True)
    table = pd.DataFrame({"sub-study": ["a/b", "c/d"], "condition": ["mde", "balance"],
                          "obligation": ["x", "y"], "status": ["met", "unmet"],
                          "evidence": ["ok", "not carried out"]})
    table.to_csv(bundle / "06_effects" / "obligations.csv", index=False)
    found = audit.scan_obligations(bundle, tmp_path)
    assert len(found) == 1 and "c/d: condition balance is not met" in str(found[0])
    table["status"] = "met"
    table.to_csv(bundle / "06_effects" / "obligations.csv", index=False)
    assert audit.scan_obligations(bundle, tmp_path) == []

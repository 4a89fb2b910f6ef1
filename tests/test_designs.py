"""The design interface both phases use: a registry, one module per design,
and no code that picks a design by comparing its name."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from reintegration import designs
from reintegration.designs.base import Design, Inputs

SRC = Path(__file__).resolve().parents[1] / "src" / "reintegration"


def test_registry_lists_each_design_once_in_report_order():
    assert designs.names() == ("selection_on_observables", "rollout_did", "case_manager_iv")
    for name, design in designs.REGISTRY.items():
        assert isinstance(design, Design) and design.name == name
        assert design.label and design.short and design.treated
        assert callable(type(design).fit)
    with pytest.raises(KeyError, match="known: selection_on_observables, rollout_did"):
        designs.get("regression_discontinuity")


def test_no_code_outside_the_designs_branches_on_a_design_name():
    names = "|".join(designs.names())
    branch = re.compile(rf"""(==|!=)\s*["']({names})["']|startswith\(["']({names})""")
    hits = []
    for path in sorted(SRC.rglob("*.py")):
        if "designs" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if branch.search(line):
                hits.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert hits == []


def test_counts_come_from_the_designs_own_columns():
    data = pd.DataFrame({"y": [1.0, 0.0, None, 1.0], "_d": [1, 0, 1, 0],
                         "case_manager": ["a", "a", "b", "b"]})
    assert designs.get("case_manager_iv").counts(data, "y") == (1, 2, 2)
    data = data.rename(columns={"_d": "treated"})
    assert designs.get("selection_on_observables").counts(data, "y") == (1, 2, None)


def test_a_city_without_roll_out_has_one_placeholder_sub_study():
    rollout = designs.get("rollout_did")
    assert rollout.instruments({"name": "x"}, ["training", "job_coaching"]) == [None]
    city = {"rollout": {"instrument": "job_coaching", "teams": {"A": "2019-01"}}}
    assert rollout.instruments(city, ["training", "job_coaching"]) == ["job_coaching"]
    inputs = Inputs(persons=pd.DataFrame({"team": ["A"]}), city={"name": "x"}, effects={},
                    feasibility={"theoretical": {"rollout_did": {}}, "practical": {}})
    diag = rollout.diagnose(inputs, None, outcome="employed_12", threshold=10)
    assert [(c.name, c.verdict) for c in diag.theoretical][0] == ("rollout_present", "fail")


def test_selection_power_comes_from_the_stacked_comparison_when_the_panel_is_there():
    import numpy as np

    from reintegration import feasibility
    from reintegration.phase2 import estimates

    rng = np.random.default_rng(3)
    n = 3000
    persons = pd.DataFrame({
        "RINPERSOONS": ["R"] * n, "RINPERSOON": [f"{i:09d}" for i in range(n)],
        "instrument": np.where(rng.random(n) < 0.2, "training", "none"),
        "instrument_elapsed": pd.array(rng.integers(1, 6, n), dtype="Int16"),
        "female": rng.integers(0, 2, n), "prior_employment": rng.random(n),
    })
    persons.loc[persons["instrument"] == "none", "instrument_elapsed"] = pd.NA
    persons["employed_12"] = (rng.random(n) < 0.3 + 0.2 * persons["prior_employment"]).astype(int)
    months = persons[["RINPERSOONS", "RINPERSOON"]].merge(
        pd.DataFrame({"month": range(0, 8)}), how="cross").assign(on_benefit=1)
    settings = feasibility.load_settings()
    effects = {**estimates.load_settings(), "covariates": ["female", "prior_employment"]}
    design = designs.get("selection_on_observables")
    plain = design.diagnose(Inputs(persons=persons, city={}, effects=effects,
                                   feasibility=settings), "training",
                            outcome="employed_12", threshold=10)
    stacked = design.diagnose(Inputs(persons=persons, city={}, effects=effects,
                                     feasibility=settings, person_months=months), "training",
                              outcome="employed_12", threshold=10)
    ev = stacked.evidence_practical
    assert "mde_difference_in_means" not in plain.evidence_practical
    assert ev["mde_difference_in_means"] == plain.evidence_practical["mde"]
    # the stacked comparison holds every risk set, so it is more precise here
    assert 0 < ev["mde"] < ev["mde_difference_in_means"]
    assert [c.name for c in stacked.practical].count("mde") == 1

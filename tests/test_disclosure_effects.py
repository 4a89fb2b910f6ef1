"""Disclosure control of effect estimates: ``Register.effect`` and
``check_effect`` over the results objects of ``reintegration.effects``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reintegration import disclosure, effects
from reintegration.core import step

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> disclosure.Register:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    monkeypatch.delenv("REINTEGRATION_ROOT", raising=False)
    ctx = step.start("04_describe", city="rotterdam", size="small", root=tmp_path)
    return disclosure.register(ctx)


def selection(n_treated: int, n: int = 400, seed: int = 0) -> effects.SelectionResult:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    d = np.zeros(n, dtype=int)
    d[rng.choice(n, n_treated, replace=False)] = 1
    y = 0.5 * x + 0.3 * d + rng.normal(size=n)
    data = pd.DataFrame({"y": y, "d": d, "x": x})
    return effects.selection_on_observables(data, outcome="y", treatment="d",
                                            covariates=["x"], method="ra")


def test_effect_released_with_record(reg: disclosure.Register) -> None:
    res = selection(60)
    out = reg.effect("att", res)
    assert out.status == "pass" and out.kind == "model"
    saved = json.loads(out.path.read_text(encoding="utf-8"))
    assert saved["id"] == "04_describe/att"
    assert saved["params"]["att"] == pytest.approx(res.estimate)
    assert saved["effects"]["att"]["n"] == res.n
    entry = reg.entries["att"]
    assert entry["checks"]["att"]["group_cells"]["n_treated"] == 60
    data, meta = out.mimebundle()
    assert meta["reintegration"]["output_id"] == "04_describe/att"
    assert "estimate" in data["text/plain"]
    # a record of effects is many estimates on their own rows: no "n = ...; residual
    # df" footer, which would read as the table's size (it held the smallest count)
    assert "residual df" not in data["text/html"] and f"n = {res.n}" not in data["text/html"]


def test_effect_small_group_withheld(reg: disclosure.Register) -> None:
    out = reg.effect("att_small", {"employed_12": selection(60), "employed_24": selection(5)})
    assert out.status == "fail" and out.path is None and out.model is None
    assert any("n_treated" in r for r in out.reasons)
    assert "Withheld" in out.to_html()


def test_check_effect_counts_event_times(reg: disclosure.Register) -> None:
    res = selection(60)
    res.diagnostics["n_treated"] = 60
    status, reasons, checks = disclosure.check_effect(res, reg.rules)
    assert status == "pass" and not reasons
    fake = effects.EventStudyResult(
        estimate=0.1, std_error=0.05, n=500, design="event_study", estimand="x",
        method="sun_abraham", outcome="y", treatment="d", cov_type="clustered",
        event_time=pd.DataFrame({"estimate": [0.0, 0.1, 0.2], "std_error": [np.nan, 1, 1],
                                 "n_obs": [50, 40, 3], "n_cohorts": [2, 2, 1]},
                                index=pd.Index([-1, 0, 1], name="event_time")),
        reference=-1)
    status, reasons, checks = disclosure.check_effect(fake, reg.rules)
    assert status == "fail"
    assert checks["group_cells"]["event_time_1"] is None
    assert checks["group_cells"]["event_time_0"] == 40
    assert "event_time_-1" not in checks["group_cells"]


def test_effect_refuses_other_objects(reg: disclosure.Register) -> None:
    with pytest.raises(disclosure.DisclosureError):
        reg.effect("not_an_effect", object())


def test_an_effect_without_group_sizes_goes_to_review_with_the_others(
        reg: disclosure.Register) -> None:
    rng = np.random.default_rng(2)
    n = 500
    z = rng.normal(size=n)
    d = (z + rng.normal(size=n) > 0).astype(float)
    data = pd.DataFrame({"y": d + rng.normal(size=n), "d": d, "z": z})
    iv = effects.instrumental_variable(data, outcome="y", treatment="d", instrument="z")
    assert "n_treated" not in (iv.diagnostics or {})   # the estimator alone knows no groups
    alone = reg.effect("iv_alone", iv)
    assert alone.status == "review"
    assert any("no group sizes known" in r for r in alone.reasons)
    # mixed with a result whose groups are known, the table still needs review
    both = reg.effect("iv_and_att", {"att": selection(60), "iv": iv})
    assert both.status == "review" and both.path is not None

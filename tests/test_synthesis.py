"""The random-effects meta-analysis and the cross-city synthesis."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from reintegration.core.paths import Paths
from reintegration.phase2 import meta, synthesis

# BCG vaccine trials (dat.bcg of the R package metafor): tpos, tneg, cpos, cneg
BCG = [
    (4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619),
    (33, 5036, 47, 5761), (180, 1361, 372, 1079), (8, 2537, 10, 619),
    (505, 87886, 499, 87892), (29, 7470, 45, 7232), (17, 1699, 65, 1600),
    (186, 50448, 141, 27197), (5, 2493, 3, 2338), (27, 16886, 29, 17825),
]  # fmt: skip


def _bcg() -> tuple[list[float], list[float]]:
    y = [math.log((a / (a + b)) / (c / (c + d))) for a, b, c, d in BCG]
    s = [math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)) for a, b, c, d in BCG]
    return y, s


def test_bcg_dersimonian_laird_matches_metafor_and_stata():
    # metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r (RE, DL, RR)
    y, s = _bcg()
    assert meta.cochran_q(y, s) == pytest.approx(152.2330, abs=1e-4)
    res = meta.random_effects(y, s, method="DL")
    assert res.estimate == pytest.approx(-0.7141, abs=1e-4)
    assert res.ci_low == pytest.approx(-1.0644, abs=1e-4)
    assert res.ci_high == pytest.approx(-0.3638, abs=1e-4)
    assert res.estimate / res.std_error == pytest.approx(-3.9952, abs=1e-3)
    assert res.tau2 == pytest.approx(0.3088, abs=1e-4)
    assert res.i2 * 100 == pytest.approx(92.1173, abs=1e-3)


def test_bcg_reml_matches_metafor():
    y, s = _bcg()
    res = meta.random_effects(y, s, method="REML")
    assert res.tau2 == pytest.approx(0.3132, abs=1e-4)
    assert res.estimate == pytest.approx(-0.7145, abs=1e-4)
    assert res.i2 == pytest.approx(0.9222139, abs=1e-5)


def test_hand_computed_two_studies():
    # w = 100 each; Q = 2; C = 200 - 20000/200 = 100; tau2 = (2 - 1)/100
    res = meta.random_effects([0.1, 0.3], [0.1, 0.1], method="DL")
    assert res.q == pytest.approx(2.0)
    assert res.tau2 == pytest.approx(0.01)
    assert res.estimate == pytest.approx(0.2)
    assert res.std_error == pytest.approx(0.1)  # 1 / sqrt(2 * 1/(0.01 + 0.01))
    assert res.i2 == pytest.approx(0.5)  # s2 = 1 * 200 / (200^2 - 2 * 100^2) = 0.01
    assert res.pi_low is None and res.pi_high is None  # needs three studies


def test_hand_computed_three_studies_prediction_interval():
    # Q = 100 * (0.04 + 0 + 0.04) = 8; C = 300 - 30000/300 = 200; tau2 = 6/200;
    # with equal variances REML gives sum (y - mean)^2 / (k - 1) - v = 0.04 - 0.01
    y, s = [0.0, 0.2, 0.4], [0.1, 0.1, 0.1]
    for method in ("DL", "REML"):
        res = meta.random_effects(y, s, method=method)
        assert res.tau2 == pytest.approx(0.03, abs=1e-9)
        assert res.std_error == pytest.approx(math.sqrt(0.04 / 3))
        half = 12.706204736 * math.sqrt(0.03 + 0.04 / 3)  # t(0.975, df=1)
        assert res.pi_low == pytest.approx(0.2 - half, abs=1e-6)
        assert res.pi_high == pytest.approx(0.2 + half, abs=1e-6)


def test_homogeneous_estimates_give_zero_tau2():
    res = meta.random_effects([0.2, 0.2, 0.2], [0.1, 0.2, 0.3])
    assert res.tau2 == 0.0 and res.i2 == 0.0
    assert res.estimate == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [([0.1], [0.1], "at least two"), ([0.1, 0.2], [0.1, 0.0], "positive"),
     ([0.1, float("nan")], [0.1, 0.1], "finite")],
)  # fmt: skip
def test_bad_input_is_refused(y, s, match):
    with pytest.raises(meta.MetaError, match=match):
        meta.random_effects(y, s)


# ---------------------------------------------------------------- bundles

SUBSTUDIES = [
    ("selection_on_observables/job_coaching", "Selection on observables", "Job coaching"),
    ("selection_on_observables/training", "Selection on observables", "Training"),
    ("case_manager_iv/training", "Case-manager instrumental variable", "Training"),
]


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def write_bundle(
    folder: Path, city: str, shift: float, iv_decision: str = "no-go", allowed: str = "pass"
) -> None:
    """A minimal release bundle: two sub-study tables and the effect models."""
    outputs = []

    def put(step: str, name: str, kind: str, raw: bytes, ext: str) -> None:
        path = folder / step / f"{name}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        outputs.append({"id": f"{step}/{name}", "step": step, "name": name, "kind": kind,
                        "file": f"outputs/{step}/{name}.{ext}", "sha256": _sha(raw),
                        "status": "pass"})  # fmt: skip

    labels = "sub-study,design,instrument,offered by the city\n" + "".join(
        f"{s},{d},{i},yes\n" for s, d, i in SUBSTUDIES
    )
    put("05_feasibility", "substudies", "table", labels.encode(), "csv")
    decisions = "sub-study,decision,Phase 2,first reason or condition\n"
    for sid, _, _ in SUBSTUDIES:
        dec = iv_decision if sid.startswith("case_manager") else "conditional"
        run = "run" if dec != "no-go" else "not run"
        decisions += f"{sid},{dec},{run},theoretical: a reason: detail\n"
    put("06_effects", "substudies", "table", decisions.encode(), "csv")
    criteria = "sub-study,theoretical,practical,allowed,wanted,decision\n" + "".join(
        f"{sid},pass,pass,{allowed},pass,conditional\n" for sid, _, _ in SUBSTUDIES
    )
    put("05_feasibility", "decisions", "table", criteria.encode(), "csv")
    for sid, _, _ in SUBSTUDIES:
        design, instrument = sid.split("/")
        base = {"job_coaching": 0.05, "training": -0.01}[instrument] + shift
        effects = {
            out: {"estimate": base * k, "std_error": 0.02 * k, "ci_low": (base - 0.04) * k,
                  "ci_high": (base + 0.04) * k, "cov_type": "clustered"}
            for out, k in (("employed_12", 1.0), ("months_employed", 20.0))
        }  # fmt: skip
        put("06_effects", f"{design}__{instrument}", "model",
            json.dumps({"effects": effects}).encode(), "json")  # fmt: skip
    (folder / "register.json").write_text(json.dumps({"city": city, "outputs": outputs}))


@pytest.fixture
def synth_root(tmp_path: Path, root: Path) -> Paths:
    (tmp_path / "config" / "cities").mkdir(parents=True)
    for shared in (root / "config").glob("*.yml"):  # a city file is checked against them
        shutil.copy(shared, tmp_path / "config" / shared.name)
    for i, city in enumerate(("rotterdam", "utrecht")):
        shutil.copy(root / "config" / "cities" / f"{city}.yml", tmp_path / "config" / "cities")
        write_bundle(tmp_path / "release" / "small" / city, city, shift=0.01 * i)
    return Paths.for_size("small", tmp_path)


def test_synthesis_pools_every_design_instrument_with_two_cities(synth_root: Paths):
    pages = synthesis.generated_pages(synth_root)
    page = pages["synthesis.md"]
    for key in ("selection_on_observables__job_coaching", "selection_on_observables__training"):
        svg = pages[f"synthesis_forest_{key}.svg"]
        assert svg.startswith("<?xml") and "Rotterdam" in svg and "Utrecht" in svg
        assert f"../_generated/synthesis_forest_{key}.svg" in page
    # case-manager sub-study is no-go in both cities: shown nowhere as pooled
    assert "synthesis_forest_case_manager_iv__training.svg" not in pages
    est, _ = synthesis.collect(synth_root)
    metas = synthesis.meta_table(est)
    assert set(metas["k"]) == {2}
    row = metas[(metas["instrument"] == "job_coaching") & (metas["outcome"] == "employed_12")]
    # equal standard errors: the pooled effect is the mean of 0.05 and 0.06
    assert row["estimate"].iloc[0] == pytest.approx(0.055)
    assert "| employed 12 months after inflow (percentage points) | 2 | +5.5 |" in page
    # no raw outcome code in the page's table headers or rows
    assert "employed_12" not in page


def test_copying_a_city_yaml_adds_it_without_code_change(synth_root: Paths, root: Path):
    cities = synth_root.root / "config" / "cities"
    text = (root / "config" / "cities" / "rotterdam.yml").read_text()
    new = text.replace("name: rotterdam", "name: gouda", 1)
    new = new.replace("display_name: Rotterdam", "display_name: Gouda", 1)
    (cities / "gouda.yml").write_text(new)
    write_bundle(synth_root.root / "release" / "small" / "gouda", "gouda", shift=0.02)
    pages = synthesis.generated_pages(synth_root)
    assert "Gouda" in pages["synthesis.md"]
    assert "Gouda" in pages["synthesis_forest_selection_on_observables__job_coaching.svg"]
    assert "| Gouda |" in pages["synthesis_verdicts.md"]
    est, _ = synthesis.collect(synth_root)
    assert set(synthesis.meta_table(est)["k"]) == {3}


def test_phase1_no_go_is_shown_but_not_pooled(synth_root: Paths):
    # both cities released a case-manager estimate, but Phase 1 said no-go in Utrecht
    write_bundle(synth_root.root / "release" / "small" / "rotterdam", "rotterdam", 0.0, "go")
    est, _ = synthesis.collect(synth_root)
    iv = est[est["design"] == "case_manager_iv"].drop_duplicates("city").set_index("city")
    assert bool(iv.loc["rotterdam", "pooled"]) and not bool(iv.loc["utrecht", "pooled"])
    assert "case_manager_iv" not in set(synthesis.meta_table(est)["design"])
    # the city with a design-based check gets the stronger verdict
    pages = synthesis.generated_pages(synth_root)
    verdicts = pages["synthesis_verdicts.md"]
    assert "| Rotterdam | Yes (with a design-based check) |" in verdicts
    assert "| Utrecht | Partly (selection on observables only) |" in verdicts


def test_a_changed_released_file_stops_the_synthesis(synth_root: Paths):
    path = (
        synth_root.root / "release/small/utrecht/06_effects/selection_on_observables__training.json"
    )
    path.write_text(path.read_text().replace("0.02", "0.01"))
    with pytest.raises(synthesis.SynthesisError, match="checksum differs"):
        synthesis.collect(synth_root)


def test_designs_that_disagree_are_listed():
    import pandas as pd

    def rows(half_width_rollout):
        return pd.DataFrame([
            {"city": "x", "city_label": "X", "instrument": "i", "instrument_label": "I",
             "outcome": "employed_12", "design": d, "design_label": d.title(), "estimate": e,
             "std_error": 0.03, "ci_low": e - h, "ci_high": e + h}
            for d, e, h in (("rollout_did", -0.17, half_width_rollout),
                            ("selection_on_observables", 0.05, 1.96 * 0.03))
        ])  # fmt: skip

    dd = synthesis.design_disagreements(rows(1.96 * 0.03))
    assert len(dd) == 1
    assert dd["z"].iloc[0] == pytest.approx(-0.22 / math.hypot(0.03, 0.03), rel=1e-3)
    assert bool(dd["disagree"].iloc[0])
    # the z uses the interval the reader sees: a wide randomisation interval
    # (Rotterdam's job coaching: -53 to +8 pp) does not disagree with +5 pp
    wide = synthesis.design_disagreements(rows(0.30))
    assert not bool(wide["disagree"].iloc[0])


def test_verdict_names_open_legal_conditions_and_cities_still_to_run(synth_root: Paths, root):
    write_bundle(synth_root.root / "release/small/utrecht", "utrecht", 0.0, allowed="conditional")
    text = (root / "config" / "cities" / "rotterdam.yml").read_text()
    new = text.replace("name: rotterdam", "name: gouda", 1)
    (synth_root.root / "config/cities/gouda.yml").write_text(
        new.replace("display_name: Rotterdam", "display_name: Gouda", 1)
    )
    verdicts = synthesis.generated_pages(synth_root)["synthesis_verdicts.md"]
    utrecht = next(line for line in verdicts.splitlines() if line.startswith("- **Utrecht"))
    rotterdam = next(line for line in verdicts.splitlines() if line.startswith("- **Rotterdam"))
    assert "'allowed' only conditional" in utrecht
    assert "'allowed' only conditional" not in rotterdam
    assert "Not yet in the synthesis (no release bundle): Gouda." in verdicts

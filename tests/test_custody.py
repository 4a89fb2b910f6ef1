from __future__ import annotations

import pytest

from reintegration.config import ConfigError
from reintegration.custody import ROLE_ACCESS, CustodyError, DomainMap, check_access
from reintegration.paths import Paths
from reintegration.step import StepContext, UndeclaredWrite


@pytest.fixture
def dmap(tmp_root):
    return DomainMap.for_paths(Paths.for_size("small", tmp_root))


@pytest.mark.parametrize(
    ("rel", "domain"),
    [
        ("synthetic_data/small/municipal/rotterdam/klanten.csv", "municipal"),
        ("synthetic_data/small/ttp/rotterdam/koppeltabel.csv", "ttp"),
        ("synthetic_data/small/research/cbs/rotterdam/GBAPERSOONTAB.sav", "research"),
        ("synthetic_data/small/truth/rotterdam/effects.json", "truth"),
        ("synthetic_data/small/manifest.json", "public"),
        ("synthetic_data/small/manifests/rotterdam.json", "public"),
        ("config/cities/rotterdam.yml", "public"),
        ("build/small/rotterdam/profile.json", "release"),
        ("build/small/rotterdam/research/panel.parquet", "research"),
        ("build/small/rotterdam/municipal/quarantine.csv", "municipal"),
        ("book/results/rotterdam/00_city_profile.ipynb", "release"),
    ],
)
def test_domain_of_layout(tmp_root, dmap, rel, domain):
    assert dmap.domain_of(tmp_root / rel) == domain


def test_path_outside_every_domain_is_refused(dmap):
    with pytest.raises(CustodyError, match="not inside any custody domain"):
        dmap.domain_of("/etc/passwd")


@pytest.mark.parametrize(
    "rel",
    [
        "synthetic_data/small/municipal/rotterdam/klanten.csv",
        "synthetic_data/small/ttp/rotterdam/koppeltabel.csv",
        "synthetic_data/small/truth/rotterdam/effects.json",
    ],
)
def test_researcher_cannot_read_identifying_or_truth_files(tmp_root, dmap, rel):
    path = tmp_root / rel
    with pytest.raises(CustodyError) as err:
        check_access("researcher", path, "read", dmap)
    msg = str(err.value)
    assert "role 'researcher'" in msg and str(path) in msg
    assert f"'{rel.split('/')[2]}' domain" in msg


def test_only_the_validator_reads_truth(tmp_root, dmap):
    truth = tmp_root / "synthetic_data/small/truth/rotterdam/effects.json"
    readers = {r for r in ROLE_ACCESS if "truth" in ROLE_ACCESS[r][0]}
    assert readers == {"validator"}
    assert check_access("validator", truth, "read", dmap) == "truth"


def test_nobody_but_the_generator_writes_municipal_inputs_to_ttp(tmp_root, dmap):
    key = tmp_root / "synthetic_data/small/ttp/rotterdam/koppeltabel.csv"
    writers = {r for r in ROLE_ACCESS if "ttp" in ROLE_ACCESS[r][1]}
    assert writers == {"generator", "linking_unit"}
    with pytest.raises(CustodyError, match="may not write"):
        check_access("researcher", key, "write", dmap)


def test_publisher_step_cannot_open_person_data(tmp_root):
    ctx = StepContext("00_city_profile", city="rotterdam", size="small", root=tmp_root)
    assert ctx.role == "publisher"
    target = tmp_root / "synthetic_data/small/research/cbs/rotterdam/GBAPERSOONTAB.sav"
    with pytest.raises(CustodyError, match="role 'publisher' may not read"):
        ctx.check_read(target)
    with pytest.raises(CustodyError, match="role 'publisher' may not write"):
        ctx.write_parquet("panel.parquet", None, domain="research")


def test_step_context_logs_reads_for_provenance(tmp_root, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    ctx = StepContext("00_city_profile", city="rotterdam", size="small", root=tmp_root)
    cfg = tmp_root / "config" / "instruments.yml"
    ctx.check_read(cfg)
    out = ctx.write_json("profile.json", {"a": 1})
    log = ctx.io_log()
    city = tmp_root / "config" / "cities" / "rotterdam.yml"
    assert log["reads"] == {str(cfg.resolve()): "public", str(city.resolve()): "public"}
    assert log["writes"] == {str(out.resolve()): "release"}


def test_config_read_by_any_module_is_logged_for_provenance(tmp_root, monkeypatch):
    """A module the notebook calls reads config/effects.yml and
    config/disclosure.yml without the context: the context still logs both."""
    from reintegration import disclosure, phase2

    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    ctx = StepContext("06_effects", city="rotterdam", size="small", root=tmp_root)
    phase2.load_settings(tmp_root)
    disclosure.register(ctx)
    reads = set(ctx.io_log()["reads"])
    config = (tmp_root / "config").resolve()
    assert {str(config / "effects.yml"), str(config / "disclosure.yml")} <= reads
    # the runner fails a step that read a config file it does not declare
    from reintegration.runner import StepFailed, check_config_reads

    check_config_reads(ctx.spec, "rotterdam", ctx.paths, ctx.io_log()["reads"])
    undeclared = {**ctx.io_log()["reads"], str(config / "feasibility.yml"): "public"}
    with pytest.raises(StepFailed, match="read config/feasibility.yml, which config/steps.yml"):
        check_config_reads(ctx.spec, "rotterdam", ctx.paths, undeclared)


def test_settings_only_for_declared_reads(tmp_root, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    ctx = StepContext("06_effects", city="rotterdam", size="small", root=tmp_root)
    assert ctx.settings("effects").rollout_did.period == "quarter"
    with pytest.raises(ConfigError, match="config/feasibility.yml but config/steps.yml"):
        ctx.settings("feasibility")


def test_a_write_not_declared_in_steps_yml_is_refused(tmp_root, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    ctx = StepContext("06_effects", city="rotterdam", size="small", root=tmp_root)
    ctx.write_json("estimates.json", {"a": 1})  # declared
    ctx.write_json("outputs/06_effects/tables/t.json", {"a": 1})  # declared pattern
    msg = r"step 06_effects may not write notes.json \(release\)"
    with pytest.raises(UndeclaredWrite, match=msg):
        ctx.write_json("notes.json", {"a": 1})
    with pytest.raises(UndeclaredWrite, match="persons.parquet"):
        ctx.write_parquet("persons.parquet", None, domain="research")
    assert not (ctx.out_dir / "notes.json").exists()

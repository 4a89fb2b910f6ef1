from __future__ import annotations

import pytest

from reintegration.custody import ROLE_ACCESS, CustodyError, DomainMap, check_access
from reintegration.paths import Paths
from reintegration.step import StepContext


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
    assert log["reads"] == {str(cfg.resolve()): "public"}
    assert log["writes"] == {str(out.resolve()): "release"}


def test_symlink_into_a_municipal_folder_is_judged_by_its_target(tmp_root, dmap):
    export = tmp_root / "synthetic_data/small/municipal/rotterdam/klanten.csv"
    export.parent.mkdir(parents=True)
    export.write_text("bsn\n123456782\n", encoding="utf-8")
    research = tmp_root / "build/small/rotterdam/research"
    research.mkdir(parents=True)
    (research / "panel.csv").symlink_to(export)
    assert dmap.domain_of(research / "panel.csv") == "municipal"
    dotted = research / ".." / ".." / ".." / ".." / "synthetic_data/small/municipal/rotterdam"
    assert dmap.domain_of(dotted / "klanten.csv") == "municipal"
    with pytest.raises(CustodyError, match="'municipal' domain"):
        check_access("researcher", research / "panel.csv", "read", dmap)


def test_step_context_and_domain_map_are_read_only(tmp_root):
    ctx = StepContext("03_panel", city="rotterdam", size="small", root=tmp_root)
    with pytest.raises(AttributeError, match="read-only"):
        ctx.role = "linking_unit"
    with pytest.raises(AttributeError, match="read-only"):
        del ctx.role
    with pytest.raises(AttributeError):
        ctx.domains.roots = ()
    assert ctx.role == "researcher"


def test_under_the_runner_a_notebook_cannot_take_another_steps_role(tmp_root, monkeypatch):
    from reintegration import step

    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    monkeypatch.setenv(step.STEP_ENV, "03_panel")
    monkeypatch.setenv(step.CITY_ENV, "rotterdam")
    monkeypatch.setenv(step.SIZE_ENV, "small")
    with pytest.raises(CustodyError, match="step '03_panel'.*asked for '02_pseudonymise_link'"):
        step.start("02_pseudonymise_link", city="rotterdam", size="small", root=tmp_root)
    with pytest.raises(CustodyError, match="city 'rotterdam'"):
        step.start("03_panel", city="utrecht", size="small", root=tmp_root)
    assert (
        step.start("03_panel", city="rotterdam", size="small", root=tmp_root).role == "researcher"
    )

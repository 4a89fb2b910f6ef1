from __future__ import annotations

import os
from pathlib import Path

import pytest

from reintegration.core.config import ConfigError
from reintegration.core.custody import (
    RESEARCH_RECORDS,
    ROLE_ACCESS,
    CustodyError,
    DomainMap,
    check_access,
)
from reintegration.core.paths import Paths
from reintegration.core.step import StepContext, UndeclaredWrite


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


# ---- step records with exact counts are research, and the book never reads them ---


@pytest.mark.parametrize("name", sorted(RESEARCH_RECORDS))
def test_step_records_are_research(tmp_root, dmap, name):
    build = tmp_root / "build" / "small" / "rotterdam"
    assert dmap.domain_of(build / "research" / name) == "research"
    # a stale copy where older builds wrote it is research too, never release
    assert dmap.domain_of(build / name) == "research"
    # a registered output that happens to share the name is a checked release
    assert dmap.domain_of(build / "outputs" / "06_effects" / name) == "release"


def test_steps_write_their_records_to_research_only(tmp_root, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    written = {}
    for step_name, record in (
        ("01_delivery_check", "quality.json"),
        ("02_pseudonymise_link", "linkage.json"),
        ("05_feasibility", "feasibility.json"),
        ("06_effects", "estimates.json"),
        ("09_validation", "validation.json"),
    ):
        ctx = StepContext(step_name, city="rotterdam", size="small", root=tmp_root)
        with pytest.raises(ValueError, match="would be in domain 'research'"):
            ctx.write_json(record, {"n": 12})  # the release domain: refused
        written[record] = ctx.write_json(record, {"n": 12}, domain="research")
        assert ctx.io_log()["writes"] == {str(written[record].resolve()): "research"}
    # the reads of the steps that need them are role-checked
    validator = StepContext("09_validation", city="rotterdam", size="small", root=tmp_root)
    assert validator.read_json(validator.upstream_path("estimates.json", "research")) == {"n": 12}
    for role in ("publisher", "municipality"):
        with pytest.raises(CustodyError, match=f"role '{role}' may not read"):
            check_access(role, written["feasibility.json"], "read", validator.domains)


def test_a_release_domain_scan_finds_no_step_record(tmp_root, monkeypatch):
    """Every file a build leaves under build/: those in the release domain
    include none of the step records, wherever they were written."""
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    paths = Paths.for_size("small", tmp_root)
    city = paths.city_build("rotterdam")
    for rel in ("research", ".", "outputs/05_feasibility", "provenance"):
        for name in RESEARCH_RECORDS:
            (city / rel).mkdir(parents=True, exist_ok=True)
            if rel != "outputs/05_feasibility":
                (city / rel / name).write_text("{}")
    (city / "outputs" / "05_feasibility" / "decisions.csv").write_text("sub-study\n")
    dmap = DomainMap.for_paths(paths)
    release = {
        p for p in paths.build_dir.rglob("*") if p.is_file() and dmap.domain_of(p) == "release"
    }
    assert {p.name for p in release} == {"decisions.csv"}


def test_the_book_reads_no_research_file(tmp_root, monkeypatch):
    """Build the book's generated pages while recording every file opened:
    nothing opened is in a person-level domain, and the Phase 1 chapter comes
    from the registered tables even when feasibility.json is present."""
    import builtins
    import io

    import pandas as pd

    from reintegration import disclosure, feasibility
    from reintegration.book import generate

    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    paths = Paths.for_size("small", tmp_root)
    research = feasibility.feasibility_path("rotterdam", "small", tmp_root)
    research.parent.mkdir(parents=True)
    research.write_text('{"substudies": [], "secret": "research record"}')
    ctx = StepContext("05_feasibility", city="rotterdam", size="small", root=tmp_root)
    reg = disclosure.register(ctx)
    sid = "selection_on_observables/training"
    reg.public_table(
        "decisions",
        pd.DataFrame(
            [
                {
                    "sub-study": sid,
                    "theoretical": "pass",
                    "practical": "pass",
                    "allowed": "pass",
                    "wanted": "pass",
                    "decision": "go",
                }
            ]
        ).set_index("sub-study"),
        reason="categories",
    )
    reg.public_table(
        "reasons",
        pd.DataFrame(
            [
                {
                    "sub-study": sid,
                    "decision": "go",
                    "kind": "condition",
                    "text": "released condition text",
                }
            ]
        ).set_index("sub-study"),
        reason="texts",
    )

    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def recording(real):
        def open_(file, *args, **kwargs):
            if isinstance(file, str | bytes | os.PathLike):
                opened.append(os.fsdecode(file))
            return real(file, *args, **kwargs)

        return open_

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", recording(real_open))
        m.setattr(io, "open", recording(real_io_open))
        pages = generate.generated_pages(paths)

    assert "released condition text" in pages["phase1.md"]
    assert "Selection on observables" in pages["phase1.md"]
    dmap = DomainMap.for_paths(paths)
    inside = [p for p in opened if Path(p).resolve().is_relative_to(tmp_root.resolve())]
    assert any(p.endswith("decisions.csv") for p in inside)
    domains = {p: dmap.domain_of(p) for p in inside}
    assert not {p: d for p, d in domains.items() if d not in ("public", "release")}
    # and with the registered tables gone, the research record does not stand in
    for f in (reg.dir / "decisions.csv", reg.dir / "reasons.csv", reg.dir / "register.json"):
        f.unlink()
    assert "Not assessed in this build" in feasibility.phase1_markdown(paths)


def test_book_pages_include_only_generated_pages():
    """The hand-written pages pull numbers in only through the generated pages
    (which book.generated_pages makes from released files, tested above): no
    include, table or code cell of a page reads a file of build/ or release/."""
    import re

    root = Path(__file__).resolve().parents[1] / "book"
    directive = re.compile(r"^```\{(include|literalinclude|csv-table|code-cell)\}\s*(\S*)", re.M)
    found = []
    for page in sorted(root.rglob("*.md")):
        if {"_build", "results", "_generated"} & set(page.relative_to(root).parts):
            continue
        for kind, target in directive.findall(page.read_text(encoding="utf-8")):
            found.append((page.name, kind, target))
            assert kind == "include" and target.startswith("../_generated/"), (page, target)
    assert found  # the check saw the includes it is about


def test_config_read_by_any_module_is_logged_for_provenance(tmp_root, monkeypatch):
    """A module the notebook calls reads config/effects.yml and
    config/disclosure.yml without the context: the context still logs both."""
    from reintegration import disclosure
    from reintegration.phase2 import estimates

    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    ctx = StepContext("06_effects", city="rotterdam", size="small", root=tmp_root)
    estimates.load_settings(tmp_root)
    disclosure.register(ctx)
    reads = set(ctx.io_log()["reads"])
    config = (tmp_root / "config").resolve()
    assert {str(config / "effects.yml"), str(config / "disclosure.yml")} <= reads
    # the runner fails a step that read a config file it does not declare
    from reintegration.pipeline.runner import StepFailed, check_config_reads

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
    ctx.write_json("estimates.json", {"a": 1}, domain="research")  # declared
    ctx.write_json("outputs/06_effects/tables/t.json", {"a": 1})  # declared pattern
    msg = r"step 06_effects may not write notes.json \(release\)"
    with pytest.raises(UndeclaredWrite, match=msg):
        ctx.write_json("notes.json", {"a": 1})
    with pytest.raises(UndeclaredWrite, match="persons.parquet"):
        ctx.write_parquet("persons.parquet", None, domain="research")
    assert not (ctx.out_dir / "notes.json").exists()


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
    from reintegration.core import step

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

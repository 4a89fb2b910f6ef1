"""Where the CBS files are (config/cbs_files.yml): the synthetic layout, the
Remote Access layout (a folder per table, a .sav file per year, CBS's column
names) and the panel built from each.

One small city is generated twice from the same seed: once with one .sav per
table (the default configuration), once in the layout of the shipped Remote
Access example (config/examples/cbs_files.remote_access.yml, its root moved
to a temporary folder and its years set to those the city's study period
needs). The linked delivery is the same; the panel built from either layout
must be the same, row for row and value for value.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
import yaml

from reintegration.core.config import ConfigError, load_city, validate
from reintegration.core.config_settings import CbsFiles
from reintegration.core.custody import DomainMap
from reintegration.core.paths import Paths
from reintegration.intake import ingest, quality
from reintegration.linking import linkage
from reintegration.pipeline import cli
from reintegration.research import cbs_files, panel, panel_sources
from reintegration.synth import generate_city

ROOT = Path(__file__).resolve().parents[1]
CITY = "utrecht"
EXAMPLE = ROOT / "config" / "examples" / "cbs_files.remote_access.yml"


def remote_access_config(tmp: Path, years: tuple[int, int]) -> tuple[Path, CbsFiles]:
    """The shipped Remote Access example with its root in ``tmp`` (the
    generator's data folder) and the given years, validated as a file."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["root"] = "{data_dir}/G"
    data["years"] = {"first": years[0], "last": years[1]}
    # a renamed person key too, as a file with lower-case names would have it
    data["tables"]["MEDICIJNTAB"]["columns"] = {"RINPERSOON": "rinpersoon"}
    path = tmp / "cbs_files.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path, validate(path, CbsFiles)


def _delivery(data_dir: Path) -> dict[str, pd.DataFrame]:
    cfg = load_city(CITY, ROOT)
    exports = ingest.read_delivery(cfg, data_dir / "municipal" / CITY)
    checked = quality.check_delivery(exports, cfg, root=ROOT)
    key_table = pd.read_parquet(data_dir / "ttp" / CITY / "key_table.parquet")
    register = pd.read_parquet(data_dir / "ttp" / CITY / "person_register.parquet")
    result = linkage.link(checked.tables, checked.quarantine, key_table, register, key=b"test")
    return {t: result.research[t] for t in panel_sources.DELIVERY}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory):
    """(study, delivery, default data folder, Remote Access data folder, its config)."""
    study = load_city(CITY, ROOT)["study"]
    plain = tmp_path_factory.mktemp("plain")
    generate_city(CITY, "small", root=ROOT, data_dir=plain)
    remote = tmp_path_factory.mktemp("remote")
    _, cfg = remote_access_config(remote, cbs_files.years_needed(study))
    generate_city(CITY, "small", root=ROOT, data_dir=remote, cbs_files=cfg)
    return study, _delivery(plain), plain, remote, cfg


def _panel(study, delivery, cfg, data_dir) -> panel.Panel:
    src = cbs_files.read_sources_config(delivery, cfg, city=CITY, data_dir=data_dir, root=ROOT)
    return panel.build(src, study)


def test_the_default_configuration_reads_the_synthetic_files_as_before(worlds) -> None:
    study, delivery, plain, _, _ = worlds
    cfg = cbs_files.load(ROOT)
    src = cbs_files.read_sources_config(delivery, cfg, city=CITY, data_dir=plain, root=ROOT)
    keys = panel_sources.cohort_keys(delivery["clients"])
    folder = plain / "research" / "cbs" / CITY
    for field, table in panel_sources.SOURCE_TABLES.items():
        before = panel_sources.read_cbs_file(folder / f"{table}.sav", table, keys=keys)
        pd.testing.assert_frame_equal(getattr(src, field), before)


def test_the_generator_writes_a_file_per_year_with_cbs_names(worlds) -> None:
    study, _, _, remote, cfg = worlds
    first, last = cbs_files.years_needed(study)
    assert (first, last) == (2016, 2023)  # 24 months before 2018-01, 24 after 2021-12
    spolis = remote / "G" / "Spolis" / "SPOLISBUS"
    assert sorted(p.name for p in spolis.glob("*/*.sav")) == [
        f"SPOLISBUS{y}{'V5' if y == 2020 else 'V4' if y == 2023 else 'V3'}.sav"
        for y in range(first, last + 1)
    ]
    # a year file holds the part of each job in that year
    jobs, _ = pyreadstat.read_sav(str(spolis / "2019" / "SPOLISBUS2019V3.sav"))
    assert len(jobs) > 100
    assert (pd.to_datetime(jobs["SDATUMAANVANGIKO"]) >= "2019-01-01").all()
    assert (pd.to_datetime(jobs["SDATUMEINDEIKO"]) <= "2019-12-31").all()
    # CBS's column names, and no year column where the year is in the name
    bij = remote / "G/Socialezekerheid/BIJSTANDUITKERINGTAB/2020/BIJSTANDUITKERINGTAB2020V1.sav"
    names = pyreadstat.read_sav(str(bij), metadataonly=True)[1].column_names
    assert "BIJSTANDStatistiekcodeA" in names and "BIJSTANDSTATCODE" not in names
    med = remote / "G/GezondheidWelzijn/MEDICIJNTAB/2017/MEDICIJN2017TABV1.sav"
    names = pyreadstat.read_sav(str(med), metadataonly=True)[1].column_names
    assert "JAAR" not in names and "rinpersoon" in names
    gba = remote / "G/Bevolking/GBAPERSOONTAB/2023/geconverteerde data/GBAPERSOON2023TABV1.sav"
    assert gba.is_file()
    # nothing in the default place
    assert not list((remote / "research" / "cbs" / CITY).glob("*.sav"))


def test_the_panel_from_the_remote_access_layout_is_the_same(worlds) -> None:
    study, delivery, plain, remote, cfg = worlds
    a = _panel(study, delivery, cbs_files.load(ROOT), plain)
    b = _panel(study, delivery, cfg, remote)
    assert len(a.persons) > 100 and len(a.person_months) == len(a.persons) * 49
    assert a.persons["earnings_after"].sum() > 0 and a.persons["health_chronic"].sum() > 0
    for name, frame in a.frames.items():
        pd.testing.assert_frame_equal(b.frames[name], frame, check_exact=True, obj=name)
    pd.testing.assert_frame_equal(b.accounting, a.accounting)
    assert panel.check(b) == panel.check(a) and all(panel.check(b).values())


def test_a_missing_year_file_names_table_year_and_path(worlds, tmp_path) -> None:
    study, delivery, _, remote, cfg = worlds
    copy = tmp_path / "remote"
    shutil.copytree(remote / "G", copy / "G")
    gone = copy / "G" / "Spolis" / "SPOLISBUS" / "2019" / "SPOLISBUS2019V3.sav"
    gone.unlink()
    with pytest.raises(cbs_files.CbsFileMissing) as info:
        _panel(study, delivery, cfg, copy)
    text = str(info.value)
    assert "CBS table SPOLISBUS, year 2019: no file" in text and str(gone) in text
    rows, problems = cbs_files.check(cfg, city=CITY, study=study, data_dir=copy, root=ROOT)
    assert problems == [f"SPOLISBUS 2019: no file {gone}"]
    assert sum(r["exists"] for r in rows) == len(rows) - 1


def test_the_check_finds_missing_columns_and_years_that_fall_short(worlds) -> None:
    study, _, _, remote, cfg = worlds
    assert cbs_files.check(cfg, city=CITY, study=study, data_dir=remote, root=ROOT)[1] == []
    data = cfg.model_dump(mode="python")
    data["years"] = {"first": 2017, "last": 2023}
    data["tables"]["SPOLISBUS"]["columns"] = {"SBASISLOON": "SLNINGLD"}
    short = CbsFiles.model_validate(data)
    problems = cbs_files.check(short, city=CITY, study=study, data_dir=remote, root=ROOT)[1]
    assert problems[0] == (
        "HOOGSTEOPLTAB: years 2017-2023 do not cover 2016-2023, the years the study period "
        "of utrecht needs"
    )
    assert any(p.startswith("SPOLISBUS 2017: ") and p.endswith("lacks the columns SLNINGLD")
               for p in problems)  # fmt: skip


def test_a_column_the_file_lacks_names_table_year_file_and_setting(worlds) -> None:
    study, delivery, _, remote, cfg = worlds
    data = cfg.model_dump(mode="python")
    data["tables"]["SPOLISBUS"]["columns"] = {"SBASISLOON": "SLNINGLD"}
    wrong = CbsFiles.model_validate(data)
    path = remote / "G" / "Spolis" / "SPOLISBUS" / "2016" / "SPOLISBUS2016V3.sav"
    with pytest.raises(ValueError) as info:
        _panel(study, delivery, wrong, remote)
    assert str(info.value) == (
        f"CBS table SPOLISBUS 2016: {path} has no column SLNINGLD; where the file names it "
        "differently, set it under tables.SPOLISBUS.columns in config/cbs_files.yml"
    )


def test_the_check_command(worlds, tmp_path, monkeypatch, capsys) -> None:
    _, _, _, remote, _ = worlds
    path, _ = remote_access_config(tmp_path, (2016, 2023))
    text = path.read_text(encoding="utf-8").replace("{data_dir}/G", str(remote / "G"))
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(ROOT)
    assert cli.main(["cbs-files", "--city", CITY, "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "the study period needs 2016-2023" in out and "cbs-files: all files found" in out
    assert f"{'SPOLISBUS':<21} 2020  ok" in out
    assert cli.main(["cbs-files", "--city", CITY, "--config", str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert (
        "error: utrecht: SPOLISBUS 2016: no file G:/Spolis/SPOLISBUS/2016/SPOLISBUS2016V3.sav"
        in err
    )


def test_the_data_command_writes_the_remote_access_layout(tmp_root, tmp_path, monkeypatch):
    """A rehearsal from the command line: the generator writes the example's
    layout under a folder of its own, and the check finds every file."""
    monkeypatch.setenv("REINTEGRATION_ROOT", str(tmp_root))
    path, _ = remote_access_config(tmp_path, (2016, 2023))
    text = path.read_text(encoding="utf-8").replace("{data_dir}/G", str(tmp_path / "G"))
    path.write_text(text, encoding="utf-8")
    assert cli.main(["data", "--city", CITY, "--cbs-files", str(path)]) == 0
    spolis = sorted((tmp_path / "G" / "Spolis" / "SPOLISBUS").glob("*/*.sav"))
    assert [p.parent.name for p in spolis] == [str(y) for y in range(2016, 2024)]
    assert not list((tmp_root / "synthetic_data" / "small" / "research").rglob("*.sav"))
    assert cli.main(["cbs-files", "--city", CITY, "--config", str(path)]) == 0


# ---------------------------------------------------------------------------
# the configuration
# ---------------------------------------------------------------------------


def test_the_example_and_the_default_are_valid() -> None:
    example = cbs_files.load(ROOT, EXAMPLE)
    spolis = cbs_files.files(example, "SPOLISBUS", city=CITY, data_dir=Path("x"), root=ROOT)
    assert [(f.year, f.path.as_posix()) for f in spolis][7:9] == [
        (2020, "G:/Spolis/SPOLISBUS/2020/SPOLISBUS2020V5.sav"),
        (2021, "G:/Spolis/SPOLISBUS/2021/SPOLISBUS2021V3.sav"),
    ]
    default = cbs_files.load(ROOT)
    data_dir = Paths.for_size("small", ROOT).data_dir
    (gba,) = cbs_files.files(default, "GBAPERSOONTAB", city=CITY, data_dir=data_dir, root=ROOT)
    assert gba.year is None and gba.path == data_dir / "research/cbs/utrecht/GBAPERSOONTAB.sav"


PROBLEMS = {
    "a misspelled key": (
        lambda d: d["tables"]["SPOLISBUS"].update(fiel="x.sav"),
        "tables.SPOLISBUS.fiel: unknown key (did you mean file?)",
    ),
    "a misspelled table": (
        lambda d: d["tables"].update(SPOLISBUSS=d["tables"].pop("SPOLISBUS")),
        "tables.SPOLISBUSS: unknown key (did you mean SPOLISBUS?)",
    ),
    "an unknown placeholder": (
        lambda d: d["tables"]["SPOLISBUS"].update(file="SPOLISBUS{jaar}V3.sav"),
        "tables.SPOLISBUS.file: unknown placeholder {jaar} in 'SPOLISBUS{jaar}V3.sav'; "
        "use {table}, {year}, {version}",
    ),
    "another format": (
        lambda d: d["tables"]["SPOLISBUS"].update(file="SPOLISBUS{year}V3.csv"),
        "tables.SPOLISBUS.file: 'SPOLISBUS{year}V3.csv': a CBS file name ends in .sav or .parquet",
    ),
    "years per file but none given": (
        lambda d: d.pop("years"),
        "(top level): tables.HOOGSTEOPLTAB has a file per year ({year}) but no years: set "
        "years (or the table's years)",
    ),
    "a version without {version}": (
        lambda d: d["tables"]["SPOLISBUS"].update(file="SPOLISBUS{year}V3.sav"),
        "tables.SPOLISBUS: version or versions set, but the file name has no {version}",
    ),
    "{version} without a version": (
        lambda d: d["tables"]["SPOLISBUS"].pop("version"),
        "tables.SPOLISBUS: the file name has {version}: set version",
    ),
    "years for a table in one file": (
        lambda d: d["tables"]["GBAPERSOONTAB"].update(years={"first": 2020, "last": 2021}),
        "tables.GBAPERSOONTAB: years needs a file per year",
    ),
    "a column the panel does not read": (
        lambda d: d["tables"]["SPOLISBUS"].update(columns={"SBASISUREN": "x"}),
        "tables.SPOLISBUS.columns: 'SBASISUREN' is no column the panel reads",
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_a_bad_configuration_is_one_line_naming_file_and_key(tmp_path, problem) -> None:
    change, message = PROBLEMS[problem]
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "cbs_files.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        cbs_files.load(ROOT, path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)


def test_cbs_folders_outside_every_domain_become_research(tmp_path) -> None:
    paths = Paths.for_size("small", ROOT)
    known = DomainMap.for_paths(paths)
    example = cbs_files.load(ROOT, EXAMPLE)
    data = example.model_dump(mode="python")
    data["root"] = str(tmp_path / "G")
    outside = CbsFiles.model_validate(data)
    where = {"city": CITY, "data_dir": paths.data_dir, "root": ROOT}
    roots = cbs_files.research_roots(outside, known=known, **where)
    assert roots[str(tmp_path / "G" / "Spolis" / "SPOLISBUS")] == "research"
    assert len(roots) == 5 and set(roots.values()) == {"research"}
    # a folder of another domain keeps it: the researcher stays refused there
    data["root"] = str(paths.data_dir / "municipal" / CITY)
    inside = CbsFiles.model_validate(data)
    assert cbs_files.research_roots(inside, known=known, **where) == {}
    # the default folders are research already
    assert cbs_files.research_roots(cbs_files.load(ROOT), known=known, **where) == {}


def test_a_job_cut_at_year_ends_keeps_its_days_and_wage() -> None:
    from reintegration.synth.cbs_layout import spell_part

    jobs = pd.DataFrame(
        {
            "RINPERSOONS": ["R", "R"],
            "RINPERSOON": ["000000001", "000000002"],
            "SDATUMAANVANGIKO": pd.to_datetime(["2019-11-01", "2020-12-01"]),
            "SDATUMEINDEIKO": pd.to_datetime(["2021-01-31", None]),
            "SBASISLOON": [4560.0, 1000.0],  # 457 days; the open job runs to 2021-12-31
            "SBASISUREN": [914.0, 0.0],
        }
    )
    parts = {y: spell_part(jobs, "SPOLISBUS", y, last_year=2021) for y in (2019, 2020, 2021)}
    first = [p[p["RINPERSOON"] == "000000001"] for p in parts.values()]
    assert [str(p["SDATUMAANVANGIKO"].iloc[0].date()) for p in first] == [
        "2019-11-01",
        "2020-01-01",
        "2021-01-01",
    ]
    assert [str(p["SDATUMEINDEIKO"].iloc[0].date()) for p in first] == [
        "2019-12-31",
        "2020-12-31",
        "2021-01-31",
    ]
    # 61, 366 and 31 days of 458: the wage and hours follow the days
    assert [round(p["SBASISLOON"].iloc[0], 6) for p in first] == [
        round(4560 * d / 458, 6) for d in (61, 366, 31)
    ]
    assert sum(p["SBASISUREN"].iloc[0] for p in first) == pytest.approx(914)
    # the open job: closed at the end of 2020, open in the last year
    second = [p[p["RINPERSOON"] == "000000002"] for p in parts.values()]
    assert [len(p) for p in second] == [0, 1, 1]
    assert str(second[1]["SDATUMEINDEIKO"].iloc[0].date()) == "2020-12-31"
    assert pd.isna(second[2]["SDATUMEINDEIKO"].iloc[0])
    assert second[1]["SBASISLOON"].iloc[0] + second[2]["SBASISLOON"].iloc[0] == pytest.approx(1000)


def test_the_same_panel_from_parquet_year_files(worlds, tmp_path) -> None:
    study, delivery, plain, _, _ = worlds
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["root"] = "{data_dir}/G"
    data["years"] = dict(zip(("first", "last"), cbs_files.years_needed(study), strict=True))
    for spec in data["tables"].values():
        spec["file"] = spec["file"].replace(".sav", ".parquet")
    cfg = CbsFiles.model_validate(data)
    generate_city(CITY, "small", root=ROOT, data_dir=tmp_path, cbs_files=cfg)
    assert len(list((tmp_path / "G").rglob("*.parquet"))) == 1 + 4 * 8
    a = _panel(study, delivery, cbs_files.load(ROOT), plain)
    b = _panel(study, delivery, cfg, tmp_path)
    for name, frame in a.frames.items():
        pd.testing.assert_frame_equal(b.frames[name], frame, check_exact=True, obj=name)


def test_the_panel_step_may_read_the_configured_folders(tmp_root, tmp_path, monkeypatch):
    """In a step that declares config/cbs_files.yml, the configured folders are
    research data; other steps do not see them, and a folder of another domain
    keeps it."""
    from reintegration.core.custody import CustodyError
    from reintegration.core.step import StepContext

    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["root"] = str(tmp_path / "G")
    (tmp_root / "config" / "cbs_files.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    year_file = tmp_path / "G" / "Spolis" / "SPOLISBUS" / "2020" / "SPOLISBUS2020V5.sav"
    year_file.parent.mkdir(parents=True)
    year_file.write_bytes(b"")
    ctx = StepContext("03_panel", city=CITY, size="small", root=tmp_root)
    assert ctx.check_read(year_file) == year_file
    assert ctx.io_log()["reads"][str(year_file.resolve())] == "research"
    other = StepContext("04_describe", city=CITY, size="small", root=tmp_root)
    with pytest.raises(CustodyError, match="not inside any custody domain"):
        other.check_read(year_file)
    # pointed at the municipal exports, the folders stay municipal: refused
    data["root"] = str(tmp_root / "synthetic_data" / "small" / "municipal" / CITY)
    config = tmp_root / "config" / "cbs_files.yml"
    before = config.stat().st_mtime_ns
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    os.utime(config, ns=(before + 10**9, before + 10**9))  # a new version for the cache
    municipal = Path(data["root"]) / "Spolis" / "SPOLISBUS" / "2020" / "SPOLISBUS2020V5.sav"
    ctx = StepContext("03_panel", city=CITY, size="small", root=tmp_root)
    with pytest.raises(CustodyError, match="role 'researcher' may not read"):
        ctx.check_read(municipal)

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from reintegration.core import config_reference
from reintegration.core.config import (
    SHARED,
    ConfigError,
    list_cities,
    load_city,
    load_city_model,
    load_instruments,
    load_shared,
    load_steps,
    validate_all,
)
from reintegration.core.config_models import City
from reintegration.core.config_reference import SCHEMA_PATH, city_schema_text, reference_markdown


def test_cities_are_discovered_from_the_folder(root):
    assert list_cities(root) == ["amsterdam", "den_haag", "rotterdam", "utrecht"]


def test_every_city_loads_and_maps_its_codes_to_the_taxonomy(root):
    taxonomy = load_instruments(root)
    for name in list_cities(root):
        city = load_city(name, root)
        codes = city["exports"]["instrument_codes"]
        assert set(codes.values()) == set(taxonomy), name


def _write_city(tmp_root, name, **changes):
    path = tmp_root / "config" / "cities" / f"{name}.yml"
    cfg = yaml.safe_load((tmp_root / "config" / "cities" / "rotterdam.yml").read_text())
    cfg["name"] = name
    for key, value in changes.items():
        if value is None:
            cfg.pop(key)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_new_city_file_is_a_new_city(tmp_root):
    _write_city(tmp_root, "zwolle")
    assert "zwolle" in list_cities(tmp_root)
    assert load_city("zwolle", tmp_root)["study"]["inflow_from"] == "2015-01"


def test_missing_key_names_file_and_key(tmp_root):
    path = _write_city(tmp_root, "zwolle", exports=None)
    with pytest.raises(ConfigError, match=rf"^{path}: exports: missing required key$"):
        load_city("zwolle", tmp_root)


def test_name_must_match_file(tmp_root):
    path = tmp_root / "config" / "cities" / "zwolle.yml"
    path.write_text((tmp_root / "config" / "cities" / "rotterdam.yml").read_text())
    with pytest.raises(ConfigError, match="name: is 'rotterdam' but the file is named 'zwolle'"):
        load_city("zwolle", tmp_root)


def test_bad_month_is_rejected(tmp_root):
    _write_city(tmp_root, "zwolle", study={"inflow_from": "2015-13", "inflow_to": "2021-12"})
    with pytest.raises(ConfigError, match=r"study.inflow_from: must be a month YYYY-MM, got '2015"):
        load_city("zwolle", tmp_root)


def test_bad_city_file_name_is_rejected(tmp_root):
    (tmp_root / "config" / "cities" / "Den Bosch.yml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="lower-case letters"):
        list_cities(tmp_root)


def test_steps_must_declare_needs_in_order(tmp_root):
    path = tmp_root / "config" / "steps.yml"
    steps = yaml.safe_load(path.read_text())
    steps["steps"].append(
        {"name": "01_next", "title": "Next", "role": "researcher", "needs": ["02_later"]}
    )
    path.write_text(yaml.safe_dump(steps))
    with pytest.raises(ConfigError, match=r"steps\[10\]: needs '02_later', which is not declared"):
        load_steps(tmp_root)


def test_steps_reject_unknown_role(tmp_root):
    path = tmp_root / "config" / "steps.yml"
    steps = yaml.safe_load(path.read_text())
    steps["steps"][0]["role"] = "case_manager"
    path.write_text(yaml.safe_dump(steps))
    with pytest.raises(
        ConfigError,
        match=r"steps\[0\].role: Input should be 'generator', .*"
        r"got 'case_manager'",
    ):
        load_steps(tmp_root)


# ---------------------------------------------------------------------------
# typed validation: one line naming the file, the key path and the nearest key
# ---------------------------------------------------------------------------

CITY_PROBLEMS = {
    "unknown key": (
        lambda c: c.update(colour="blue"),
        "colour: unknown key (valid keys: name, display_name, description, study,",
    ),
    "misspelled key": (
        lambda c: c["study"].update(inflow_fom=c["study"].pop("inflow_from")),
        "study.inflow_fom: unknown key (did you mean inflow_from?)",
    ),
    "misspelled nested key": (
        lambda c: c["synthetic"]["assignment"].update(case_manager_sdd=0.7),
        "synthetic.assignment.case_manager_sdd: unknown key (did you mean case_manager_sd?)",
    ),
    "inflow_to before inflow_from": (
        lambda c: c["study"].update(inflow_to="2014-12"),
        "study.inflow_to: 2014-12 is before inflow_from 2015-01",
    ),
    "roll-out team that is no team": (
        lambda c: c["rollout"]["teams"].update({"Zuid": "2019-01"}),
        "rollout.teams.Zuid: not one of the city's teams (Centrum, Charlois, Delfshaven,",
    ),
    "roll-out of an unknown instrument": (
        lambda c: c["rollout"].update(instrument="job_coachin"),
        "rollout.instrument: 'job_coachin' is not a key of config/instruments.yml "
        "(did you mean job_coaching?)",
    ),
    "wrong type": (
        lambda c: c["study"].update(follow_up_months="two years"),
        "study.follow_up_months: Input should be a valid integer",
    ),
    "a list where a code belongs": (
        lambda c: c["exports"]["codes"]["sex"].update(male=["M"]),
        "exports.codes.sex.male: Input should be a valid string, got ['M']",
    ),
    "share above one": (
        lambda c: c["synthetic"]["defects"].update(bsn_typo_rate=1.5),
        "synthetic.defects.bsn_typo_rate: Input should be less than or equal to 1, got 1.5",
    ),
    "unknown export format": (
        lambda c: c["exports"].update(format="xlsx"),
        "exports.format: Input should be 'csv' or 'sav', got 'xlsx'",
    ),
    "code of no instrument": (
        lambda c: c["exports"]["instrument_codes"].update(XX="coaching"),
        "exports.instrument_codes.XX: 'coaching' is not a key of config/instruments.yml",
    ),
    "unknown legal item": (
        lambda c: c["legal"].update(dpai=c["legal"]["dpia"]),
        "legal.dpai: not one of config/feasibility.yml allowed.items (did you mean dpia?)",
    ),
    "unknown concern": (
        lambda c: c["relevance"]["client_council"]["concerns"].append("profilng"),
        "relevance.client_council.concerns.profilng: not one of config/feasibility.yml "
        "wanted.client_concerns (did you mean profiling?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CITY_PROBLEMS))
def test_a_bad_city_file_is_one_line_naming_file_and_key(tmp_root, case):
    change, message = CITY_PROBLEMS[case]
    path = tmp_root / "config" / "cities" / "rotterdam.yml"
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        validate_all(tmp_root)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {message}"), text


SHARED_PROBLEMS = {
    "effects": (
        lambda d: d["rollout_did"].update(permutatons=499),
        "rollout_did.permutatons: unknown key (did you mean permutations?)",
    ),
    "feasibility": (
        lambda d: d["practical"]["power"].update(alpha=1.5),
        "practical.power.alpha: Input should be less than 1, got 1.5",
    ),
    "disclosure": (
        lambda d: d.update(cell_treshold=d.pop("cell_threshold")),
        "cell_treshold: unknown key (did you mean cell_threshold?)",
    ),
    "steps": (
        lambda d: d["steps"][2].update(reeds=["config/effects.yml"]),
        "steps[2].reeds: unknown key (did you mean reads?)",
    ),
    "synthetic": (
        lambda d: d["defaults"].update(populaton={}),
        "defaults.populaton: unknown key (did you mean population?)",
    ),
    "instruments": (
        lambda d: d["instruments"]["training"].pop("dutch"),
        "instruments.training.dutch: missing required key",
    ),
    "cbs_files": (
        lambda d: d["tables"]["SPOLISBUS"].update(fiel="SPOLISBUS.sav"),
        "tables.SPOLISBUS.fiel: unknown key (did you mean file?)",
    ),
}


@pytest.mark.parametrize("kind", sorted(SHARED_PROBLEMS))
def test_a_bad_shared_file_is_one_line_naming_file_and_key(tmp_root, kind):
    change, message = SHARED_PROBLEMS[kind]
    path = tmp_root / "config" / f"{kind}.yml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        validate_all(tmp_root)
    assert str(info.value) == f"{path}: {message}"


def test_the_typed_city_is_frozen_and_its_dict_view_is_the_file(root):
    city = load_city_model("amsterdam", root)
    assert city.rollout.teams["Nieuw-West"] == "2016-10"
    with pytest.raises(ValidationError):
        city.study.inflow_from = "2016-01"  # frozen
    raw = yaml.safe_load((root / "config/cities/amsterdam.yml").read_text())
    view = load_city("amsterdam", root)
    assert set(view) - {"_path"} == set(raw)
    assert view["synthetic"] == raw["synthetic"] and view["legal"] == raw["legal"]


def test_shared_settings_load_as_typed_objects(root):
    effects = load_shared("effects", root)
    assert effects.rollout_did.permutations == 499
    assert load_shared("disclosure", root).cell_threshold == 10
    assert load_shared("feasibility", root).practical.power.no_go_factor == 10
    with pytest.raises(ConfigError, match="unknown config file kind 'effect'"):
        load_shared("effect", root)


def test_check_config_command(root):
    out = subprocess.run(
        [sys.executable, "-m", "reintegration", "check-config"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"config: {len(list_cities(root)) + 7} files valid"


# ---------------------------------------------------------------------------
# the JSON Schema and the configuration reference
# ---------------------------------------------------------------------------


def test_committed_city_schema_is_up_to_date(root):
    committed = (root / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == city_schema_text(), (
        "config/schema/city.schema.json is stale: run `python -m reintegration config-schema`"
    )


def test_the_schema_accepts_every_city_and_rejects_a_misspelled_key(root):
    schema = json.loads((root / SCHEMA_PATH).read_text(encoding="utf-8"))
    for name in list_cities(root):
        cfg = yaml.safe_load((root / "config/cities" / f"{name}.yml").read_text())
        jsonschema.validate(cfg, schema)
        assert (
            (root / "config/cities" / f"{name}.yml")
            .read_text()
            .startswith("# yaml-language-server: $schema=../schema/city.schema.json\n")
        )
    cfg["study"]["inflow_fom"] = cfg["study"].pop("inflow_from")
    with pytest.raises(jsonschema.ValidationError, match="inflow_fom"):
        jsonschema.validate(cfg, schema)


def _key_paths(node, prefix=""):
    """Every key path of a YAML mapping, lists of mappings included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from _key_paths(value, f"{prefix}{key}.")


def test_the_reference_documents_every_key_of_every_file(root):
    page = reference_markdown()
    documented = {}
    for model in (City, *SHARED.values()):
        for path, _kind, _status, desc in config_reference.rows(model):
            assert desc, f"{model.__name__}: {path} has no description"
            documented.setdefault(model, set()).add(path)
            assert f"| `{path}` |" in page
    for name in list_cities(root):
        cfg = yaml.safe_load((root / "config/cities" / f"{name}.yml").read_text())
        for key in _key_paths(cfg):
            generic = _generic(key, documented[City])
            assert generic, f"{name}.yml: {key} is not in the reference"


def _generic(key: str, documented: set[str]) -> str | None:
    """The documented path a concrete key path falls under (mapping keys
    become <name>); a key inside a free mapping is covered by the mapping."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        for candidate in _variants(parts[:n]):
            if candidate in documented:
                return candidate
    return None


def _variants(parts: list[str]) -> list[str]:
    out = [""]
    for part in parts:
        out = [f"{o}.{p}" if o else p for o in out for p in (part, "<name>")]
    return out


def test_the_book_has_the_configuration_reference(root):
    from reintegration.book.generate import BACK

    appendices = dict(BACK)["Appendices"]
    assert "appendices/configuration" in appendices
    text = (root / "book/appendices/configuration.md").read_text(encoding="utf-8")
    assert "../_generated/config_reference.md" in text

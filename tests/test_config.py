from __future__ import annotations

import pytest
import yaml

from reintegration.config import (
    ConfigError,
    list_cities,
    load_city,
    load_instruments,
    load_steps,
)


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
    with pytest.raises(ConfigError, match=r"steps\[8\]: needs '02_later', which is not declared"):
        load_steps(tmp_root)


def test_steps_reject_unknown_role(tmp_root):
    path = tmp_root / "config" / "steps.yml"
    steps = yaml.safe_load(path.read_text())
    steps["steps"][0]["role"] = "case_manager"
    path.write_text(yaml.safe_dump(steps))
    with pytest.raises(ConfigError, match=r"steps\[0\].role: Input should be 'generator', .*"
                       r"got 'case_manager'"):
        load_steps(tmp_root)

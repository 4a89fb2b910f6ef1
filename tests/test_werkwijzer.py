"""The werkwijzer: its checklists and criteria come from configuration, and it
is long enough to guide a municipality."""

from __future__ import annotations

import re

import pytest
import yaml

from reintegration import feasibility
from reintegration.book import werkwijzer
from reintegration.core.config import load_city
from reintegration.core.paths import Paths
from reintegration.synth.schema import MUNICIPAL


def _edit_settings(root, edit):
    path = root / "config" / "feasibility.yml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-zÀ-ÿ0-9]+(?:['’-][A-Za-zÀ-ÿ0-9]+)*", text))


def test_werkwijzer_has_at_least_1500_words(root):
    page = werkwijzer.assembled_page(Paths.for_size("small", root))
    assert "{include}" not in page
    assert _words(page) >= 1500, _words(page)


def test_every_include_of_the_page_is_generated(root):
    text = (root / "book" / "werkwijzer" / "index.md").read_text()
    included = re.findall(r"\{include\}\s+\.\./_generated/(\S+)", text)
    pages = werkwijzer.generated_pages(Paths.for_size("small", root))
    assert included and set(included) <= set(pages)
    assert f"<../_generated/{werkwijzer.TEMPLATE_NAME}>" in text


def test_a_changed_legal_item_in_config_changes_the_page(tmp_root):
    paths = Paths.for_size("small", tmp_root)
    before = werkwijzer.assembled_page(paths)
    assert "data protection impact assessment, GDPR art. 35" in before

    def edit(data):
        items = data["allowed"]["items"]
        items["dpia"]["label"] = "impact assessment (DPIA), GDPR art. 35(1)"
        items["ethics_review"] = {"label": "ethics committee approval", "mandatory": True}
        items["privacy_notice"]["mandatory"] = True

    _edit_settings(tmp_root, edit)
    after = werkwijzer.assembled_page(paths)
    assert "data protection impact assessment, GDPR art. 35 |" not in after
    assert "| impact assessment (DPIA), GDPR art. 35(1) | yes |" in after
    assert "| ethics committee approval | yes | the document the item names" in after
    assert "Items without a description here: ethics_review." in after
    assert re.search(r"\| public privacy notice [^|]*\| yes \|", after)


def test_changed_thresholds_change_criteria_and_delivery_checklist(tmp_root):
    paths = Paths.for_size("small", tmp_root)

    def edit(data):
        data["practical"]["min_treated"] = 80
        data["practical"]["linkage_rate"] = {"no_go": 0.7, "conditional": 0.9}
        data["practical"]["columns"]["clients"].append("language_level")

    _edit_settings(tmp_root, edit)
    pages = werkwijzer.generated_pages(paths)
    assert "| at least 80 and 50 |" in pages["werkwijzer_criteria.md"]
    assert "| at least 90% | 70% to 90% | below 70% |" in pages["werkwijzer_criteria.md"]
    assert (
        "clients: team, labour_market_distance, language_level;" in pages["werkwijzer_checklist.md"]
    )
    assert (
        "| `language_level` | code | Dutch proficiency (below_b1, b1_or_higher) | analysis; "
        "at least 90% filled |" in pages["werkwijzer_delivery.md"]
    )


def test_health_data_make_the_art9_item_mandatory_only_while_used(tmp_root):
    paths = Paths.for_size("small", tmp_root)
    legal = werkwijzer.generated_pages(paths)["werkwijzer_legal.md"]
    assert "yes, because health data are used (health_chronic)" in legal

    _edit_settings(tmp_root, lambda d: d["covariates"].remove("health_chronic"))
    legal = werkwijzer.generated_pages(paths)["werkwijzer_legal.md"]
    assert "only when health data are used (not with the current covariates)" in legal


def test_delivery_spec_lists_every_municipal_column(root):
    settings = feasibility.load_settings(root)
    spec = werkwijzer.delivery_spec_markdown(settings)
    for table in MUNICIPAL:
        assert f"### File: {table.table.replace('_', ' ')}" in spec
        for col in table.columns:
            assert f"| `{col.name}` |" in spec, (table.table, col.name)
    row = next(line for line in spec.splitlines() if line.startswith("| `bsn` |"))
    assert row.endswith("| linkage; dropped at the linking unit |")


def test_roles_follow_the_steps_and_custody_rules(root):
    text = werkwijzer.roles_markdown(root)
    row = next(line for line in text.splitlines() if line.startswith("| Analysis panel |"))
    assert "pseudonymised research files" in row
    assert "municipality's files" not in row and "key table" not in row
    row = next(line for line in text.splitlines() if line.startswith("| Delivery check |"))
    assert "the municipality's files" in row and "research files" not in row


def test_city_template_is_accepted_by_the_loader_and_the_legal_checklist(tmp_root):
    settings = feasibility.load_settings(tmp_root)
    text = werkwijzer.city_template_yaml(settings, tmp_root)
    target = tmp_root / "config" / "cities" / "zwolle.yml"
    target.write_text(text.replace("name: new_city", "name: zwolle"))
    city = load_city("zwolle", tmp_root)
    assert set(city["exports"]["files"]) == {t.table for t in MUNICIPAL}
    rows, checks = feasibility.legal_checklist(city, settings, uses_health_data=True)
    assert len(rows) == len(settings["allowed"]["items"])
    # an empty template is no-go on "allowed" until the documents exist
    assert {c.verdict for c in checks} == {"fail", "conditional"}
    concerns = city["relevance"]["client_council"]["concerns"]
    assert concerns == list(settings["wanted"]["client_concerns"])


def test_assembled_page_names_a_missing_include(tmp_root):
    paths = Paths.for_size("small", tmp_root)
    with pytest.raises(KeyError, match=r"includes werkwijzer_\w+\.md, which is not generated"):
        werkwijzer.assembled_page(paths, pages={})


def test_outcomes_and_groups_follow_the_effects_configuration(tmp_root):
    paths = Paths.for_size("small", tmp_root)
    text = werkwijzer.generated_pages(paths)["werkwijzer_outcomes.md"]
    assert "| effect on: employed 12 months after inflow | in percentage points |" in text
    path = tmp_root / "config" / "effects.yml"
    cfg = yaml.safe_load(path.read_text())
    cfg["subgroups"]["household"] = "household type (single, couple, with children)"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    text = werkwijzer.generated_pages(paths)["werkwijzer_outcomes.md"]
    assert "| the same, by group: household type (single, couple, with children) |" in text


def check_built_werkwijzer(html_dir, root) -> None:
    page = (html_dir / "werkwijzer" / "index.html").read_text()
    for spec in feasibility.load_settings(root)["allowed"]["items"].values():
        assert spec["label"] in page, spec["label"]
    link = re.search(r'href="(\.\./_downloads/[^"]+/city_template\.yml)"', page)
    assert link, "no download link to the city template"
    template = (html_dir / "werkwijzer" / link.group(1)).resolve()
    assert yaml.safe_load(template.read_text())["name"] == "new_city"
    for language in ("nl", "en"):
        assert (html_dir / "clients" / f"{language}.html").exists()


@pytest.mark.pipeline
def test_built_book_has_the_werkwijzer_with_its_template_and_the_client_chapter(root, built_book):
    check_built_werkwijzer(built_book, root)

"""The architecture appendix: its figure, its package map and its change table."""

from __future__ import annotations

import re

import pytest
import yaml

from reintegration.book import architecture
from reintegration.book.architecture import PACKAGE_DIR, ROOMS, ArchitectureError
from reintegration.book.generate import toc
from reintegration.core.config import list_cities, load_steps
from reintegration.core.custody import DOMAINS
from reintegration.core.paths import Paths


def test_flow_figure_is_a_png(root, tmp_path):
    out = architecture.flow_figure(tmp_path / "flow.png", root)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a drawn grid, not an empty canvas
    # deterministic bytes: drawing twice writes the same file
    again = architecture.flow_figure(tmp_path / "again.png", root)
    assert again.read_bytes() == data


def test_every_domain_is_a_column():
    assert set(architecture.DOMAIN_LABELS) == set(DOMAINS)


def test_flows_follow_steps_yml_and_custody(root):
    rows = {r["name"]: r for r in architecture.flows(root)}
    steps = yaml.safe_load((root / "config" / "steps.yml").read_text())["steps"]
    assert list(rows)[1:] == [s["name"] for s in steps]
    # the delivery check reads the exports, never the linking unit's key table
    assert rows["01_delivery_check"]["reads"] == ["municipal", "public"]
    assert rows["02_pseudonymise_link"]["writes"] == {"research": 5, "ttp": 2, "release": 1}
    assert "municipal" not in rows["03_panel"]["reads"]
    assert rows["09_validation"]["reads"] == ["research", "release", "truth", "public"]


def test_person_level_data_flow_one_way(root):
    """What the page tells a reviewer to look at: no arrow points back, only the
    delivery check and the linking unit read the exports, only the linking unit
    its key table, only validation the truth."""
    order = ["municipal", "ttp", "research", "release"]
    rows = architecture.flows(root)[1:]
    for row in rows:
        for src in (d for d in row["reads"] if d in order[:3]):
            for dst in (d for d in row["writes"] if d in order):
                assert order.index(dst) >= order.index(src), (row["name"], src, dst)
    readers = {
        d: [r["name"] for r in rows if d in r["reads"]] for d in ("municipal", "ttp", "truth")
    }
    assert readers == {
        "municipal": ["01_delivery_check", "02_pseudonymise_link"],
        "ttp": ["02_pseudonymise_link"],
        "truth": ["09_validation"],
    }


def test_a_write_the_role_may_not_make_is_an_error(tmp_root):
    path = tmp_root / "config" / "steps.yml"
    data = yaml.safe_load(path.read_text())
    panel = next(s for s in data["steps"] if s["name"] == "03_panel")
    panel["writes"].append({"path": "leak.parquet", "domain": "municipal"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ArchitectureError, match="03_panel.*municipal.*researcher"):
        architecture.flows(tmp_root)


def test_every_module_is_in_exactly_one_room():
    mods = architecture.modules(PACKAGE_DIR)
    assert "designs/rollout" in mods and "feasibility/assess" in mods
    rooms = {m: architecture.room_of(m) for m in mods}
    assert rooms["linking/linkage"] == "Linking"
    assert rooms["designs/iv"] == "Designs and estimators"
    # no pattern of a room is stale
    for room, (_, patterns) in ROOMS.items():
        for pattern in patterns.split():
            assert any(re.fullmatch(pattern.replace("*", ".*"), m) for m in mods), (room, pattern)


def test_an_unplaced_or_doubly_placed_module_is_an_error(monkeypatch):
    with pytest.raises(ArchitectureError, match="brand_new.py is in no room"):
        architecture.room_of("brand_new")
    monkeypatch.setitem(ROOMS, "Linking", (ROOMS["Linking"][0], "linking/* intake/quality"))
    with pytest.raises(ArchitectureError, match="quality.py is in rooms Intake, Linking"):
        architecture.room_of("intake/quality")


def test_package_map_lists_every_module_with_its_docstring():
    text = architecture.package_markdown(PACKAGE_DIR)
    n_modules = len(architecture.modules(PACKAGE_DIR))
    assert text.count("| `reintegration") == n_modules
    numerics = "The numerics the designs share, each implemented once."
    assert f"| `reintegration.effects.numerics` | {numerics}" in text
    assert ":class:" not in text and "``" not in text


def test_the_appendix_is_in_the_table_of_contents(tmp_root):
    for city in list_cities(tmp_root):  # the results pages toc() requires
        for s in load_steps(tmp_root):
            nb = tmp_root / "book" / "results" / city / f"{s['name']}.ipynb"
            nb.parent.mkdir(parents=True, exist_ok=True)
            nb.write_text("{}")
        (tmp_root / "book" / "_generated").mkdir(exist_ok=True)
        (tmp_root / "book" / "_generated" / f"summary_{city}.md").write_text("# summary\n")
    parts = {p["caption"]: p["chapters"] for p in toc(Paths.for_size("small", tmp_root))["parts"]}
    assert {"file": "appendices/architecture"} in parts["Appendices"]


def test_every_path_in_the_page_exists(root):
    text = (root / "book" / "appendices" / "architecture.md").read_text()
    named = [
        t
        for t in re.findall(r"`([^`\s]+)`", text)
        if "/" in t and not t.startswith("{") and not t.startswith("build/")
    ]
    assert len(named) >= 15
    for path in named:
        pattern = re.sub(r"<[a-z]+>", "*", path)
        assert list(root.glob(pattern)), f"book/appendices/architecture.md names {path}"
    for include in re.findall(r"\.\./_generated/(\S+)", text):
        assert include in architecture.generated_pages(Paths.for_size("small", root)) or (
            include == "architecture_flow.png"
        )


def test_no_module_sits_loose_at_the_top_of_the_package():
    """Every module lives in the folder of its part of the pipeline; only the
    package's face and ``python -m reintegration`` stay at the top."""
    mods = architecture.modules(PACKAGE_DIR)
    assert sorted(m for m in mods if "/" not in m) == ["__init__", "__main__"]
    folders = {m.split("/")[0] for m in mods if "/" in m}
    assert {"core", "intake", "linking", "research", "designs", "effects", "feasibility",
            "phase2", "disclosure", "book", "synth", "montecarlo", "pipeline"} == folders

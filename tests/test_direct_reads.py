"""Static custody check: notebook templates and the modules researcher-role
steps run read files only through the step context.

A direct read (``open``, a pandas/pyarrow/pyreadstat/numpy reader,
``Path.read_text`` and the like) is allowed only when its path comes straight
from ``ctx.check_read(...)`` or the call is the context's own (``ctx.read_*``).
A line may carry ``# custody: <reason>``, or a function be listed in
:data:`ALLOWED` with its reason, when the path was checked by the caller, is
public configuration, or lies in the release domain every role may read: the
reasons are here so a reviewer can read every exemption in one place. The
operating-system sandbox (``reintegration.pipeline.sandbox``) stops what this scan
cannot see, such as a path built at run time."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "reintegration"
READERS = {
    "read_csv", "read_parquet", "read_table", "read_excel", "read_json", "read_sav",
    "read_dta", "read_sas", "read_por", "read_spss", "read_stata", "read_feather",
    "read_fwf", "read_pickle", "read_orc", "read_hdf", "read_text", "read_bytes",
    "ParquetFile", "read_schema", "read_metadata", "loadtxt", "genfromtxt", "fromfile",
    "open", "read_file_in_chunks", "dataset",
}  # fmt: skip
#: modules that are the context and its configuration, not research code
INFRASTRUCTURE = {"core.step", "core.custody", "core.paths", "core.config", "core.atomic",
                  "core.provenance", ""}
#: (module, function) -> why its direct read is within custody
ALLOWED = {
    ("panel_sources.py", "read_sav_file"): "reached through read_cbs_file, to which "
    "cbs_files.read_cbs_table passes the path after the step's ctx.check_read(path)",
    ("panel_sources.py", "_read_sav_filtered"): "reached from read_cbs_file only: "
    "cbs_files.read_cbs_table passes ctx.check_read(path); read_sources_from and "
    "read_sources_config serve the benchmark's and tests' own temporary files",
    ("panel_sources.py", "_arrow_scan"): "the same as _read_sav_filtered (through "
    "_read_parquet)",
    ("phase2.py", "load_settings"): "config/effects.yml: public configuration",
    ("record.py", "read"): "build/<size>/<city>/research/feasibility.json: the research "
    "domain a researcher step reads (Phase 2 and tests)",
    ("release_bundle.py", "step_registers"): "outputs/<step>/register.json: release domain",
    ("register_core.py", "_flush_acro"): "ACRO's own files in a temporary folder this step made",
    ("protection.py", "tables_from_register"): "released CSVs via the caller's open_file, "
    "which checks (disclosure) or reads a release bundle (audit)",
    ("register_figures.py", "_figure_data"): "the CSV this register itself just released "
    "(a figure's data is the bytes of the table it was drawn from)",
    ("released.py", "_read_bytes"): "checks the publisher's access first (check_access)",
    ("released.py", "read_table"): "parses bytes _read_bytes returned, after the checksum "
    "of the register matched",
    ("record.py", "released_record"): "released.read_table: release-domain tables, "
    "access-checked and checksum-verified",
    ("page.py", "power_markdown"): "released.read_table: release-domain tables, "
    "access-checked and checksum-verified",
    ("screening.py", "header_names"): "its caller, ingest's CSV reader, reads the export "
    "under the municipality role after ctx.check_read",
    ("screening.py", "longest_field_over"): "the same: ingest passes a path it checked",
    ("screening.py", "_has_long_run"): "the same: ingest passes a path it checked",
}
EXEMPT = re.compile(r"#\s*custody:\s*(\S.{10,})")


def _is_ctx(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "ctx") or (
        isinstance(node, ast.Attribute) and node.attr == "ctx"
    )


def _checked(node: ast.AST) -> bool:
    """``ctx.check_read(...)``, possibly wrapped as ``str(...)`` or ``Path(...)``."""
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "check_read":
            return True
        if isinstance(f, ast.Name) and f.id in {"str", "Path"} and node.args:
            return _checked(node.args[0])
    return False


def _enclosing(tree: ast.AST) -> dict[int, str]:
    """id of each call node -> the innermost function it is in."""
    owner: dict[int, str] = {}

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            owner[id(child)] = name
            visit(child, name)

    visit(tree, "<module>")
    return owner


def direct_reads(source: str, module: str = "") -> list[tuple[int, str]]:
    """(line, call) of every unguarded read in ``source``."""
    lines = source.splitlines()
    tree = ast.parse(source)
    owner = _enclosing(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if (module, owner.get(id(node))) in ALLOWED:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name not in READERS:
            continue
        if isinstance(f, ast.Attribute) and (_is_ctx(f.value) or _checked(f.value)):
            continue
        if node.args and (_checked(node.args[0]) or _is_ctx(node.args[0])):
            continue  # a checked path, or the context itself (the callee checks)
        if EXEMPT.search(lines[node.lineno - 1]):
            continue
        found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def _cells(template: Path) -> str:
    nb = json.loads(template.read_text(encoding="utf-8"))
    code = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            code.append(
                "\n".join(
                    "" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()
                )
            )
    return "\n".join(code)


def _imports(source: str, module: str | None) -> set[str]:
    """Modules of the package that ``source`` imports, as dotted names relative to
    ``reintegration`` (``research.panel``); ``module`` is the importing module's
    own name (None for a notebook: only absolute imports)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        mod = node.module or ""
        if node.level == 0:
            if not (mod == "reintegration" or mod.startswith("reintegration.")):
                continue
            base = mod.split(".")[1:]
        elif module is not None:
            here = module.split(".")
            if not (PKG / module.replace(".", "/")).is_dir():
                here = here[:-1]  # a module's package
            base = here[: len(here) - (node.level - 1)] + (mod.split(".") if mod else [])
        else:
            continue
        for a in node.names:
            sub = ".".join([*base, a.name])
            if _module_files(sub):
                out.add(sub)
            elif base:
                out.add(".".join(base))
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def research_modules() -> list[Path]:
    steps = yaml.safe_load((ROOT / "config" / "steps.yml").read_text(encoding="utf-8"))
    todo = set()
    for s in steps["steps"]:
        if s["role"] == "researcher":
            todo |= _imports(_cells(ROOT / "notebooks" / f"{s['name']}.ipynb"), None)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in INFRASTRUCTURE:
            continue
        seen.add(name)
        for path in _module_files(name):
            todo |= _imports(path.read_text(encoding="utf-8"), _module_name(path))
    return sorted({p for name in seen for p in _module_files(name)})


def _module_files(name: str) -> list[Path]:
    """A module's file, or a package's ``__init__.py`` (its modules are scanned when
    they are imported)."""
    path = PKG / name.replace(".", "/")
    if path.is_dir():
        return [path / "__init__.py"]
    return [path.with_suffix(".py")] if path.with_suffix(".py").exists() else []


TEMPLATES = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_templates_read_only_through_the_step_context(template):
    assert direct_reads(_cells(template)) == []


def test_research_modules_read_only_through_the_step_context():
    modules = research_modules()
    assert PKG / "research/panel.py" in modules and PKG / "phase2/estimates.py" in modules
    found = {
        f"{p.relative_to(ROOT)}:{line}: {call}"
        for p in modules
        for line, call in direct_reads(p.read_text(encoding="utf-8"), p.name)
    }
    assert found == set()


def test_the_scan_finds_what_it_must():
    src = (
        "import pandas as pd\n"
        "a = pd.read_csv('synthetic_data/small/municipal/x/klanten.csv')\n"
        "b = open(p).read()\n"
        "c = Path(p).read_text()\n"
        "d = ctx.read_parquet(p)\n"
        "e = pd.read_csv(ctx.check_read(p))\n"
        "f = ctx.check_read(p).read_text()\n"
        "g = pyreadstat.read_sav(str(ctx.check_read(p)))\n"
        "h = pq.read_table(p)  # custody: p was checked by the caller, see read_x\n"
    )
    assert sorted(line for line, _ in direct_reads(src)) == [2, 3, 4]

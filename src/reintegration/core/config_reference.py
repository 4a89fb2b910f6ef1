"""The JSON Schema of the city file and the book's configuration reference.

Both are generated from the typed models (:mod:`reintegration.core.config_models`,
:mod:`reintegration.core.config_settings`), so they cannot drift from what the
validator accepts. The schema is committed as
``config/schema/city.schema.json`` (an editor with a YAML language server
validates a city file against it: see the comment line in each city file);
a test checks that the committed copy is up to date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import config_models as cm
from .config import SHARED

SCHEMA_PATH = Path("config") / "schema" / "city.schema.json"


def city_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``config/cities/<city>.yml``."""
    schema = cm.City.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "City configuration (config/cities/<city>.yml)",
    }


def city_schema_text() -> str:
    return json.dumps(city_schema(), indent=2, ensure_ascii=False) + "\n"


def write_city_schema(root: Path) -> Path:
    path = root / SCHEMA_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(city_schema_text(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# reference tables
# ---------------------------------------------------------------------------


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = defs[node["$ref"].rsplit("/", 1)[1]]
        node = {**ref, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _members(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a node (anyOf/oneOf), resolved."""
    alts = node.get("anyOf") or node.get("oneOf") or [node]
    return [_resolve(a, defs) for a in alts if a.get("type") != "null"]


def _type_text(node: dict[str, Any], defs: dict[str, Any]) -> str:
    parts = []
    for m in _members(node, defs):
        if "enum" in m:
            parts.append(" \\| ".join(f"`{v}`" for v in m["enum"]))
        elif "const" in m:
            parts.append(f"`{json.dumps(m['const'])}`")
        elif m.get("type") == "array":
            parts.append(f"list of {_type_text(m.get('items', {}), defs)}")
        elif m.get("type") == "object" and "properties" not in m:
            value = m.get("additionalProperties")
            parts.append(
                f"mapping to {_type_text(value, defs)}" if isinstance(value, dict) else "mapping"
            )
        elif m.get("type") == "object":
            parts.append("section")
        elif "pattern" in m and m.get("type") == "string":
            parts.append("month YYYY-MM" if "\\d{4}-" in m["pattern"] else "text")
        else:
            parts.append(
                {
                    "string": "text",
                    "integer": "integer",
                    "number": "number",
                    "boolean": "true/false",
                }.get(m.get("type", ""), "any")
            )
    if "integer" in parts and "number" in parts:  # int | float: a number as written
        parts.remove("integer")
    optional = any(a.get("type") == "null" for a in node.get("anyOf", []))
    text = " or ".join(dict.fromkeys(parts)) or "any"
    return f"{text} or null" if optional else text


def _limits(node: dict[str, Any], defs: dict[str, Any]) -> str:
    out = []
    for m in _members(node, defs):
        for key, sign in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        ):
            if key in m:
                out.append(f"{sign} {m[key]}")
    return ", ".join(out)


def rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key path, type, required or default, description) for every key of
    ``model``, nested sections and mapping values included. A mapping's own
    keys are shown as ``<name>``, a list's items as ``[]``."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    out: list[tuple[str, str, str, str]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        node = _resolve(node, defs)
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            described = _resolve(prop, defs)
            if "default" in prop:
                status = f"default `{json.dumps(prop['default'])}`"
            else:
                status = "required" if key in required else "optional"
            limits = _limits(prop, defs)
            desc = prop.get("description") or described.get("description", "")
            desc = " ".join(desc.split())
            kind = _type_text(prop, defs) + (f" ({limits})" if limits else "")
            out.append((path, kind, status, desc))
            for m in _members(prop, defs):  # the models are not recursive
                if "properties" in m:
                    walk(m, f"{path}.")
                elif m.get("type") == "object" and isinstance(m.get("additionalProperties"), dict):
                    value = _resolve(m["additionalProperties"], defs)
                    if "properties" in value:
                        walk(value, f"{path}.<name>.")
                elif m.get("type") == "array":
                    item = _resolve(m.get("items", {}), defs)
                    if "properties" in item:
                        walk(item, f"{path}[].")

    walk(schema, "")
    return out


def reference_markdown() -> str:
    """The configuration reference: one table per file, every key."""
    files = [("config/cities/<city>.yml", cm.City)]
    files += [(f"config/{kind}.yml", model) for kind, model in SHARED.items()]
    lines = []
    for name, model in files:
        doc = " ".join((model.__doc__ or "").split())
        lines += [f"## `{name}`", "", doc, "", "| key | type | | meaning |", "|---|---|---|---|"]
        for path, kind, status, desc in rows(model):
            desc = desc.replace("|", "\\|")
            lines.append(f"| `{path}` | {kind} | {status} | {desc} |")
        lines.append("")
    return "\n".join(lines)

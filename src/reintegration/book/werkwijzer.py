"""The werkwijzer's generated parts: what a municipality must deliver and decide.

The practical guide for a municipality that wants to join the study
(``book/werkwijzer/index.md``) is hand-written narrative around pieces that
are generated here from the same configuration the pipeline checks against,
so the guide cannot drift from the code:

* the go/no-go criteria, from ``config/feasibility.yml`` (the thresholds the
  feasibility step applies);
* the legal checklist with the document each item asks for, from
  ``allowed.items`` of the same file;
* the roles and steps, from ``config/steps.yml`` and the custody rules;
* the data delivery specification, from the schema of the municipal exports
  (``reintegration.synth.schema.MUNICIPAL``, the data dictionary's source);
* a delivery checklist, from the same thresholds;
* a city configuration template (YAML, downloadable from the book) that the
  configuration loader and the legal checklist accept as it is.

Every function returns MyST Markdown (or YAML) text; :func:`generated_pages`
collects them for ``python -m reintegration book``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .. import feasibility
from ..core.config import load_instruments, load_steps, read_yaml
from ..core.custody import ROLE_ACCESS
from ..core.paths import Paths, repo_root
from ..linking.linkage import DIRECT_IDENTIFIERS, FALLBACK_FIELDS
from ..synth.schema import CANONICAL_CODES, MUNICIPAL

#: the file the book offers for download
TEMPLATE_NAME = "city_template.yml"

#: what a municipality produces for each legal checklist item it recognises; an
#: item added to config/feasibility.yml without an entry here is listed with its
#: label alone (the page says so), never dropped
DOCUMENTS: dict[str, str] = {
    "legal_basis": "a short legal memo by the municipality's lawyer naming the public task "
    "(Participatiewet) and the further-processing test of GDPR art. 6(4) and 5(1)(b)",
    "art9_condition": "a paragraph of the DPIA or the legal memo showing the research "
    "exception for health data applies (public interest, consent impossible or "
    "disproportionate, safeguards)",
    "dpia": "the data protection impact assessment, signed off after advice of the data "
    "protection officer (DPO)",
    "cbs_permission": "the CBS project application (research proposal and annexes) and "
    "CBS's project permission, under the research institution's CBS authorisation",
    "processing_agreement": "the agreement between municipality and research institution "
    "(processing agreement, or joint-controller arrangement) and the delivery agreement "
    "with CBS",
    "retention_period": "the retention period and deletion procedure, written into the DPIA "
    "and the agreement",
    "privacy_notice": "a public privacy notice on the municipality's website, in plain "
    "language, with how to object (see the client chapter of this book)",
}

ROLE_TEXT: dict[str, str] = {
    "municipality": "the municipality (social services and its data team)",
    "linking_unit": "CBS's linking unit, the trusted third party",
    "researcher": "the researcher, inside CBS Remote Access",
    "validator": "validation against the planted truth (synthetic data only)",
    "publisher": "the publisher of the book (aggregates only)",
}

_DOMAIN_TEXT = {
    "municipal": "the municipality's files",
    "ttp": "the linking unit's key table",
    "research": "pseudonymised research files",
    "truth": "the planted truth",
    "public": "configuration",
    "release": "checked aggregates",
}


def _pct(x: float) -> str:
    return f"{100 * float(x):g}%"


def _words(text: str) -> str:
    return " ".join(str(text).split())


def _mandatory_text(spec: dict[str, Any], settings: dict[str, Any]) -> str:
    flag = spec["mandatory"]
    if flag == "when_health_data":
        used = [c for c in settings["health_data_columns"] if c in settings["covariates"]]
        if used:
            return f"yes, because health data are used ({', '.join(used)})"
        return "only when health data are used (not with the current covariates)"
    return "yes" if flag else "no: missing makes sub-studies conditional"


def criteria_markdown(settings: dict[str, Any]) -> str:
    """The go/no-go rules of Phase 1, in words, with the thresholds in force."""
    th = settings["theoretical"]
    soo, iv, ro = th["selection_on_observables"], th["case_manager_iv"], th["rollout_did"]
    pr = settings["practical"]
    power, cov = pr["power"], pr["coverage"]
    wanted = settings["wanted"]
    factor = power.get("no_go_factor")
    power_fail = (
        f"no-go when it is above {factor} times that effect"
        if factor
        else "never a no-go on power alone"
    )
    cpm = iv["clients_per_case_manager"]
    link = pr["linkage_rate"]
    tps = ro["teams_per_side"]
    lines = [
        "Each sub-study (one design applied to one instrument) gets **go**, **conditional** "
        "or **no-go**. A criterion takes the worst verdict of its checks; one failed "
        "criterion makes the sub-study no-go.",
        "",
        "| criterion | check | go | conditional | no-go |",
        "|---|---|---|---|---|",
        f"| theoretical | treated persons outside the propensity bounds "
        f"{soo['trim_bounds'][0]}-{soo['trim_bounds'][1]} (comparison on observables) "
        f"| at most {_pct(soo['share_treated_trimmed']['conditional'])} "
        f"| up to {_pct(soo['share_treated_trimmed']['no_go'])} "
        f"| more than {_pct(soo['share_treated_trimmed']['no_go'])} |",
        f"| theoretical | case-manager identifiers delivered (case-manager design) "
        f"| at least {_pct(iv['min_identifier_coverage'])} of the cohort | | "
        f"below {_pct(iv['min_identifier_coverage'])} |",
        f"| theoretical | median clients per case manager | at least {cpm['conditional']} "
        f"| {cpm['no_go']} to {cpm['conditional']} | fewer than {cpm['no_go']} |",
        f"| theoretical | clients in team-quarter cells with two or more case managers "
        f"| at least {_pct(iv['min_share_multi_manager_cells'])} | | "
        f"below {_pct(iv['min_share_multi_manager_cells'])} |",
        f"| theoretical | strength of the case managers' differences (first-stage F) "
        f"| at least {iv['min_first_stage_f']} | | below {iv['min_first_stage_f']} |",
        f"| theoretical | teams that rolled out, and teams that did not (roll-out design) "
        f"| at least {tps['conditional']} each | {tps['no_go']} to {tps['conditional'] - 1} "
        f"| fewer than {tps['no_go']} on a side |",
        f"| theoretical | months of inflow before the first and after the last roll-out "
        f"| at least {ro['min_pre_months']} and {ro['min_post_months']} | | fewer |",
        f"| practical | clients linked to CBS data | at least {_pct(link['conditional'])} "
        f"| {_pct(link['no_go'])} to {_pct(link['conditional'])} "
        f"| below {_pct(link['no_go'])} |",
        f"| practical | completeness of each delivered table, and of the columns the "
        f"analysis needs | at least {_pct(pr['min_table_completeness'])} and "
        f"{_pct(pr['min_column_completeness'])} | below | |",
        f"| practical | persons with the instrument, and in the comparison group "
        f"| at least {pr['min_treated']} and {pr['min_comparison']} | | fewer |",
        f"| practical | smallest effect the sample can detect ({_pct(power['power'])} power, "
        f"{_pct(power['alpha'])} significance) | at most {_pct(power['policy_effect'])} points "
        f"| above | {power_fail} |",
        f"| practical | cohort with {cov['cbs_history_from']} to {cov['cbs_data_to']} CBS data "
        f"covering the window around inflow | at least {_pct(cov['min_share'])} | below | |",
        "| allowed | every item of the legal checklist below | all complete "
        "| an optional item missing | a mandatory item not complete |",
        f"| wanted | relevance to {', '.join(s.replace('_', ' ') for s in wanted['stakeholders'])} "
        f"(scale {', '.join(wanted['levels'])}) | at least {wanted['min_level']} for all "
        f"| below {wanted['min_level']} for one | below {wanted['min_level']} for both policy "
        "and the executing organisation |",
        "",
    ]
    standing = soo.get("standing_condition")
    if standing:
        lines += [
            "Every sub-study that compares on observables carries one standing condition: "
            f"{_words(standing)}.",
            "",
        ]
    return "\n".join(lines)


def outcomes_markdown(root: Path | None = None) -> str:
    """The outcomes and pre-specified groups of Phase 2, from ``config/effects.yml``."""
    path = (root or repo_root()) / "config" / "effects.yml"
    cfg = read_yaml(path)
    outcomes = cfg.get("outcomes") or {}
    groups = cfg.get("subgroups") or {}
    if not outcomes:
        raise KeyError(f"{path}: no 'outcomes' to describe in the werkwijzer")
    lines = ["| the municipality gets | as configured |", "|---|---|"]
    for key, text in outcomes.items():
        unit = "in months" if key.startswith("months") else "in percentage points"
        lines.append(f"| effect on: {_words(text)} | {unit} |")
    lines += [
        f"| the same, by group: {_words(text)} | where the group is large enough |"
        for text in groups.values()
    ]
    return "\n".join(lines) + "\n"


def legal_checklist_markdown(settings: dict[str, Any]) -> str:
    """The legal checklist: item, whether it is mandatory, the document to produce."""
    lines = [
        "| checklist item | mandatory | document to produce |",
        "|---|---|---|",
    ]
    unlisted = []
    for key, spec in settings["allowed"]["items"].items():
        doc = DOCUMENTS.get(key)
        if doc is None:
            unlisted.append(key)
            doc = "the document the item names (no description in the werkwijzer yet)"
        lines.append(f"| {_words(spec['label'])} | {_mandatory_text(spec, settings)} | {doc} |")
    lines.append("")
    if unlisted:
        lines += [
            f"Items without a description here: {', '.join(unlisted)}.",
            "",
        ]
    return "\n".join(lines)


def roles_markdown(root: Path | None = None) -> str:
    """Who runs which step, and what each role may read, from the step list and
    the custody rules the code enforces."""
    lines = ["| step | who runs it | may read |", "|---|---|---|"]
    for s in load_steps(root):
        role = s["role"]
        readable = ROLE_ACCESS[role][0] - {"public"}
        reads = ", ".join(_DOMAIN_TEXT.get(d, d) for d in sorted(readable))
        lines.append(f"| {s['title']} | {ROLE_TEXT.get(role, role)} | {reads} |")
    return "\n".join(lines) + "\n"


def _column_role(table: str, column: str, settings: dict[str, Any]) -> str:
    needed = settings["practical"]["columns"].get(table, [])
    roles = []
    if column in ("client_id", "spell_id", "episode_id"):
        roles.append("joins the files")
    if column in FALLBACK_FIELDS or column == "bsn":
        roles.append("linkage")
    if column in DIRECT_IDENTIFIERS:
        roles.append("dropped at the linking unit")
    if column in needed:
        roles.append(
            f"analysis; at least {_pct(settings['practical']['min_column_completeness'])} filled"
        )
    elif column not in DIRECT_IDENTIFIERS:
        roles.append("analysis")
    return "; ".join(roles)


def delivery_spec_markdown(settings: dict[str, Any]) -> str:
    """Per municipal file, every column with type, meaning and use."""
    out = [
        "Column names below are the canonical names; the city configuration maps each to "
        "the name in the municipality's own export, and each code value to the city's code. "
        "A column the municipality does not have is mapped to `null`.",
        "",
    ]
    for t in MUNICIPAL:
        out += [f"### File: {t.table.replace('_', ' ')}", "", _words(t.meaning), ""]
        out += ["| column | type | meaning | used for |", "|---|---|---|---|"]
        for c in t.columns:
            meaning = _words(c.meaning).replace("|", "\\|")
            use = _column_role(t.table, c.name, settings)
            out.append(f"| `{c.name}` | {c.dtype} | {meaning} | {use} |")
        out.append("")
    out += ["### Code lists", "", "| column | canonical values |", "|---|---|"]
    out += [f"| `{k}` | {', '.join(v)} |" for k, v in CANONICAL_CODES.items()]
    out.append("")
    return "\n".join(out)


def delivery_checklist_markdown(settings: dict[str, Any]) -> str:
    """What the municipality checks before it sends the files to CBS."""
    pr = settings["practical"]
    iv = settings["theoretical"]["case_manager_iv"]
    files = ", ".join(t.table.replace("_", " ") for t in MUNICIPAL)
    items = [
        f"Every file is there ({files}; the case-manager file only where case managers are "
        "recorded), in one format (CSV with a stated delimiter, encoding and date format, or "
        "SPSS), exactly as the city configuration declares.",
        "The BSN is a text column of nine digits; numbers that lost a leading zero are "
        "repaired or reported. The delivery check counts BSNs that fail the eleven test.",
        f"Each table is at least {_pct(pr['min_table_completeness'])} complete, and these "
        "columns at least "
        f"{_pct(pr['min_column_completeness'])}: "
        + "; ".join(
            f"{table.replace('_', ' ')}: {', '.join(cols)}" for table, cols in pr["columns"].items()
        )
        + ".",
        "Every instrument code in the instrument file appears in the configuration's "
        "instrument code list, mapped to one instrument of the shared list or left out "
        "on purpose.",
        "Every code value (sex, household, language level, distance to the labour market, "
        "benefit type) is mapped to a canonical value.",
        f"Where case managers are recorded: an identifier for at least "
        f"{_pct(iv['min_identifier_coverage'])} of clients, and a team for every case "
        "manager with the period on the post.",
        f"The inflow period lies within the CBS data ({pr['coverage']['cbs_history_from']} to "
        f"{pr['coverage']['cbs_data_to']}) with 24 months of history before and the follow-up "
        "after.",
        f"Expected linkage: at least {_pct(pr['linkage_rate']['conditional'])} of clients with "
        "a BSN found by CBS; for clients without a usable BSN, sex, birth date, postcode and "
        "house number are delivered.",
        "The legal checklist is complete for the mandatory items, with document references.",
        "The files go to CBS's linking unit over the channel CBS prescribes, never to the "
        "researcher.",
    ]
    return "\n".join(f"- ☐ {i}" for i in items) + "\n"


def city_template(settings: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """A city configuration with every key the pipeline reads, to fill in."""
    files: dict[str, Any] = {}
    for t in MUNICIPAL:
        files[t.table] = {
            "file": f"{t.table}.csv",
            "description": _words(t.meaning),
            "columns": {c.name: c.name for c in t.columns},
        }
    codes = {k: {v: v for v in vals} for k, vals in CANONICAL_CODES.items()}
    instruments = load_instruments(root)
    legal = {
        key: {
            "status": "missing",
            "mandatory": _mandatory_text(spec, settings).startswith("yes"),
            "evidence": "",
        }
        for key, spec in settings["allowed"]["items"].items()
    }
    wanted = settings["wanted"]
    relevance: dict[str, Any] = {
        who: {"level": wanted["min_level"], "note": "", "evidence": ""}
        for who in wanted["stakeholders"]
    }
    if "client_council" in relevance:
        relevance["client_council"]["concerns"] = list(wanted["client_concerns"])
    return {
        "name": "new_city",
        "display_name": "New City",
        "description": "One paragraph: who delivers, from which systems, what is special.",
        "study": {"inflow_from": "2018-01", "inflow_to": "2021-12", "follow_up_months": 24},
        "exports": {
            "format": "csv",
            "encoding": "utf-8",
            "delimiter": ";",
            "date_format": "%d-%m-%Y",
            "files": files,
            "codes": codes,
            "instrument_codes": {f"CODE{i + 1:02d}": key for i, key in enumerate(instruments)},
        },
        "quirks": [],
        "legal": legal,
        "relevance": relevance,
    }


_HEADER = """\
# City configuration template for the re-integration compendium.
# Save as config/cities/<name>.yml (lower case, no spaces); set `name` to <name>.
# Generated from config/feasibility.yml, config/instruments.yml and the schema of the
# municipal exports; `make all` picks the city up with no code change.
#
# exports.files.*.columns: canonical name -> the column name in YOUR export; null when
#   the municipality does not have the column (e.g. no case managers: drop the caseload
#   file and set clients.columns.case_manager to null).
# exports.codes: canonical value -> YOUR code. exports.instrument_codes: YOUR code ->
#   one instrument of config/instruments.yml.
# legal: statuses complete, in_progress, missing, not_applicable, with a document
#   reference as evidence. relevance: levels {levels}.
# Optional: `rollout:` (instrument and the start month per team) when an instrument was
#   introduced team by team; `synthetic:` only to generate synthetic data for the city.
"""


def city_template_yaml(settings: dict[str, Any], root: Path | None = None) -> str:
    header = _HEADER.format(levels=", ".join(settings["wanted"]["levels"]))
    body = yaml.safe_dump(city_template(settings, root), sort_keys=False, allow_unicode=True)
    return header + body


def generated_pages(paths: Paths) -> dict[str, str]:
    """The werkwijzer's generated includes, by file name in ``book/_generated``."""
    settings = feasibility.load_settings(paths.root)
    return {
        "werkwijzer_roles.md": roles_markdown(paths.root),
        "werkwijzer_outcomes.md": outcomes_markdown(paths.root),
        "werkwijzer_criteria.md": criteria_markdown(settings),
        "werkwijzer_legal.md": legal_checklist_markdown(settings),
        "werkwijzer_delivery.md": delivery_spec_markdown(settings),
        "werkwijzer_checklist.md": delivery_checklist_markdown(settings),
        TEMPLATE_NAME: city_template_yaml(settings, paths.root),
    }


_INCLUDE = re.compile(r"```\{include\}\s+\.\./_generated/(\S+)\s*\n```")


def assembled_page(paths: Paths, pages: dict[str, str] | None = None) -> str:
    """The werkwijzer page as a reader sees it: the hand-written text with its
    generated includes filled in (for word counts and tests)."""
    pages = generated_pages(paths) if pages is None else pages
    text = (paths.book_dir / "werkwijzer" / "index.md").read_text(encoding="utf-8")

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in pages:
            raise KeyError(f"book/werkwijzer/index.md includes {name}, which is not generated")
        return pages[name]

    return _INCLUDE.sub(fill, text)

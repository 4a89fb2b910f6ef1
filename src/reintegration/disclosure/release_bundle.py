"""The city register and the release bundle a human output checker reviews.

Each step's register (``outputs/<step>/register.json``, written by
:mod:`reintegration.disclosure`) lists the outputs it checked. At the end of a
city's run :func:`finalise` joins them into the city register and copies every
released file, checked against its registered checksum, into
``release/<size>/<city>/`` with ACRO's records, a README for the checker and
``SHA256SUMS``; the release audit can refuse the staged bundle before it is
published.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.config import load_steps
from ..core.lockfile import write_environment
from ..core.paths import Paths
from .rules import STATUSES, load_rules


def step_registers(city_build: Path) -> list[dict[str, Any]]:
    """The registers of the steps of one city (``outputs/<step>/register.json``),
    in step order."""
    folder = Path(city_build) / "outputs"
    found = []
    for path in sorted(folder.glob("*/register.json")):
        found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


def city_register(city: str, size: str, *, root: Path | None = None) -> dict[str, Any]:
    """The union of the step registers of a city: steps declared in
    ``config/steps.yml`` only, outputs sorted by id, no timestamps."""
    paths = Paths.for_size(size, root)
    declared = {s["name"] for s in load_steps(paths.root)}
    regs = [r for r in step_registers(paths.city_build(city)) if r["step"] in declared]
    outputs = sorted((e for r in regs for e in r["outputs"]), key=lambda e: e["id"])
    return {
        "city": city,
        "size": size,
        "rules": {r["step"]: r["rules"] for r in regs},
        "steps": [r["step"] for r in regs],
        "outputs": outputs,
    }


def finalise(
    city: str,
    size: str,
    *,
    root: Path | None = None,
    release_dir: Path | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write the city's register and build its release bundle.

    The union register goes to ``build/<size>/<city>/outputs/register.json``;
    the bundle to ``release/<size>/<city>/``: the released files per step,
    ACRO's ``results.json`` (and the files it lists) where ACRO produced one,
    ``register.json``, a ``README.md`` listing every output with its status
    and reasons, and ``SHA256SUMS`` over all of it. Every released file is
    checked against the checksum in its register first. ``check`` (the
    release audit, from the command line) is called on the complete staged
    bundle before it replaces the published one; when it raises, nothing is
    published. Returns the bundle folder.
    """
    paths = Paths.for_size(size, root)
    reg = city_register(city, size, root=paths.root)
    build = paths.city_build(city)
    atomic.write_json(build / "outputs" / "register.json", reg)

    target = Path(release_dir) if release_dir else paths.root / "release" / size / city
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for entry, rel, digest in _released_files(reg):
            src = build / rel
            if not src.exists():
                raise FileNotFoundError(f"{entry['id']}: released file {src} is missing")
            if atomic.sha256_file(src) != digest:
                raise RuntimeError(
                    f"{entry['id']}: {src} changed after it was registered (checksum differs)"
                )
            dst = staging / Path(rel).relative_to("outputs")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        for step_name in reg["steps"]:
            acro_dir = build / "outputs" / step_name / "acro"
            if acro_dir.is_dir():
                shutil.copytree(acro_dir, staging / step_name / "acro")
        (staging / "register.json").write_text(atomic.dumps_json(reg), encoding="utf-8")
        (staging / "README.md").write_text(_bundle_readme(reg, paths), encoding="utf-8")
        write_environment(staging, paths.root)  # the lock's checksum and package versions
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        sums = "".join(f"{atomic.sha256_file(staging / f)}  {f}\n" for f in files)
        (staging / "SHA256SUMS").write_text(sums, encoding="utf-8")
        if check is not None:
            check(staging)  # the staged bundle is audited before it is published
        atomic.replace_dir(staging, target)  # one atomic exchange, after an fsync
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _released_files(reg: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """(entry, file, sha256) of every released file of a register: the file of
    each output, and the data file behind each figure."""
    files = []
    for entry in reg["outputs"]:
        for key, digest in (("file", "sha256"), ("data_file", "data_sha256")):
            if entry.get(key):
                files.append((entry, entry[key], entry[digest]))
    return files


def _bundle_readme(reg: dict[str, Any], paths: Paths) -> str:
    rules = load_rules(paths.root)
    by_status = {s: sum(1 for e in reg["outputs"] if e["status"] == s) for s in STATUSES}
    lines = [
        f"# Output release request: {reg['city']} ({reg['size']})",
        "",
        "The outputs this city's analysis steps want to show, each checked automatically",
        "against the disclosure-control rules of `config/disclosure.yml`. The automatic",
        "checks support the output checker; they do not replace the checker's judgement.",
        "",
        f"Outputs: {len(reg['outputs'])} ({by_status['pass']} pass, {by_status['review']} "
        f"review, {by_status['fail']} fail).",
        "",
        "- **pass**: every check passed; released as computed.",
        "- **review**: released with suppressed cells (empty in the CSV, `x` in the book), or",
        "  with a note the checker should confirm.",
        "- **fail**: refused; nothing of it is in this folder or in the book.",
        "",
        "## Rules applied",
        "",
        f"- threshold: at least {rules.cell_threshold} persons per released cell",
        f"- dominance: nk rule n={rules.nk_n}, k={rules.nk_k}; p-ratio {rules.p_ratio}",
        f"- models: at least {rules.residual_dof} residual degrees of freedom and at least "
        f"{rules.cell_threshold} persons in every treatment or group cell",
        "- no minima or maxima; zeros suppressed unless declared structural"
        if rules.zeros_disclosive
        else "- no minima or maxima",
        "",
        "These are usual rules of trusted research environments kept as configuration; they",
        "are not official CBS figures.",
        "",
        "## Outputs",
        "",
        "| output | kind | status | reasons | file |",
        "|---|---|---|---|---|",
    ]
    for e in reg["outputs"]:
        reasons = "; ".join(e["reasons"]) or "all checks passed"
        file = (
            ", ".join(
                f"`{Path(e[k]).relative_to('outputs').as_posix()}`"
                for k in ("file", "data_file")
                if e.get(k)
            )
            or "–"
        )
        reasons = reasons.replace("|", "\\|")
        lines.append(f"| `{e['id']}` | {e['kind']} | {e['status']} | {reasons} | {file} |")
    lines += [
        "",
        "## Files",
        "",
        "- `<step>/<name>.csv|.png|.json`: the released tables, figures and model results;",
        "  beside each figure's PNG, `<name>.csv` holds the data behind it (suppressed cells",
        "  empty), checked like a table.",
        "- `<step>/acro/results.json`: ACRO's record of the same outputs (checks, per-cell",
        "  outcomes, comments), for the output checker. Its cell outcomes can say which",
        "  suppressed cells are zero: it is addressed to the checker, not for publication.",
        "- `register.json`: the compendium's register of every output, including refused ones.",
        "- `ENVIRONMENT.json`: the SHA-256 of the lock file the environment was installed",
        "  from, the Python version and the version of every installed package.",
        "- `SHA256SUMS`: checksums of every file here; verify with `sha256sum -c SHA256SUMS`.",
        "",
        "Count tables declare the population they count (`checks.population` in",
        "`register.json`). Tables of one population were protected together: cells were",
        "suppressed in addition (shown as `x (n)` like the cells they protect) until no",
        "suppressed cell could be narrowed by subtraction below the protection interval,",
        "and the release audit repeats that attack on this folder. Tables whose population",
        "is not declared were protected on their own: the checker should still compare",
        "tables that share categories. `register.json` says why each cell was suppressed",
        "and `acro/` which cells are zero: both are for the checker, not for publication.",
        "",
    ]
    return "\n".join(lines)

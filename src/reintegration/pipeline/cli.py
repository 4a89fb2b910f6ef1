"""Command line of the compendium, used by the Makefile.

python -m reintegration cities
python -m reintegration makefile --size small -o build/small/steps.mk
python -m reintegration data --size small --city rotterdam [--cbs-files FILE]
python -m reintegration data-manifest --size small
python -m reintegration run-step --size small --city rotterdam --step 00_city_profile
python -m reintegration book --size small
python -m reintegration publish --size small [--verify]
python -m reintegration run [--size small] [--city NAME]... [--steps STEP...] [--jobs N]
python -m reintegration cbs-files [--size small] [--city NAME]... [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import __version__
from ..core import atomic
from ..core.paths import SIZES, Paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reintegration", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"reintegration {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    sub.add_parser("cities", help="list the configured cities")
    sub.add_parser("check-config", help="validate every config file (one line per problem)")
    sub.add_parser("config-schema", help="write config/schema/city.schema.json")
    mk = sub.add_parser("makefile", help="write the generated per-city make rules")
    mk.add_argument("-o", "--output", type=Path, required=True)
    data = sub.add_parser("data", help="generate one city's synthetic data")
    data.add_argument("--city", required=True)
    data.add_argument(
        "--cbs-files",
        type=Path,
        metavar="FILE",
        help="write the CBS files where this configuration says (for example a .sav per "
        "year, as in config/examples/cbs_files.remote_access.yml)",
    )
    sub.add_parser("data-manifest", help="merge the per-city data manifests")
    run = sub.add_parser("run-step", help="execute one step's notebook for one city")
    run.add_argument("--city", required=True)
    run.add_argument("--step", required=True)
    run.add_argument("--kernel", default=None)
    rel = sub.add_parser("release", help="finalise a city's output register into release/")
    rel.add_argument("--city", required=True)
    aud = sub.add_parser("audit", help="scan notebooks, release bundles and the book for leaks")
    aud.add_argument("--no-html", action="store_true", help="skip the built book")
    aud.add_argument("--jobs", type=int, default=1,
                     help="read and scan the cities in this many processes (default 1)")
    sub.add_parser("book", help="write the table of contents and generated pages")
    pub = sub.add_parser(
        "publish", help="build the book aside, audit it, and publish it only if the audit passes"
    )
    pub.add_argument(
        "--verify", action="store_true", help="only check the published book is the audited one"
    )
    cbs = sub.add_parser(
        "cbs-files",
        help="check the CBS files config/cbs_files.yml names: every table, year and column",
    )
    cbs.add_argument(
        "--city", action="append", metavar="NAME", help="one city (repeat for more); default all"
    )
    cbs.add_argument("--config", type=Path, help="another file than config/cbs_files.yml")
    tpl = sub.add_parser(
        "refresh-templates", help="store the outputs of NBVAL_CHECK_OUTPUT cells, strip the rest"
    )
    tpl.add_argument("templates", nargs="+", type=Path)
    for s in (mk, data, run, rel, aud, pub, cbs, sub.choices["data-manifest"], sub.choices["book"]):
        s.add_argument("--size", choices=SIZES, default="small")
    return p


def _run_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="run the pipeline without make: data, steps, release bundles, audit, book",
        description="Bring the pipeline up to date, as `make all` does (the PDF with --pdf), "
        "on any operating system: a task runs when its target is missing or older than one "
        "of its prerequisites (the graph of the Makefile's generated rules). With --city or "
        "--steps, only those cities' steps (and the steps they need); a city's release "
        "bundle too when all its steps are chosen.",
    )
    run.add_argument("--size", choices=SIZES, default="small")
    run.add_argument(
        "--city", action="append", metavar="NAME", help="one city (repeat for more); default all"
    )
    run.add_argument("--steps", nargs="+", metavar="STEP", help="only these steps (and needs)")
    run.add_argument("--jobs", "-j", type=_jobs, default=2, help="tasks at a time (default 2)")
    run.add_argument("--dry-run", "-n", action="store_true", help="only say what would run")
    run.add_argument(
        "--pdf", action="store_true", help="also the book as one PDF (needs Chromium), as make all"
    )
    run.add_argument("--version", action="version", version=f"reintegration {__version__}")


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def check_choices(args: argparse.Namespace) -> str | None:
    """The error for a city or a step that is not configured, with the valid
    choices; None when every name given is known."""
    from ..core.config import list_cities, load_steps

    cities = getattr(args, "city", None)
    if cities:
        known = list_cities()
        bad = [c for c in ([cities] if isinstance(cities, str) else cities) if c not in known]
        if bad:
            return f"unknown city {bad[0]!r}; choose from: {', '.join(known)}"
    steps = getattr(args, "steps", None) or ([args.step] if getattr(args, "step", None) else [])
    if steps:
        known = [s["name"] for s in load_steps()]
        bad = [s for s in steps if s not in known]
        if bad:
            return f"unknown step {bad[0]!r}; choose from: {', '.join(known)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        problem = check_choices(args)
        if problem:
            print(f"reintegration {args.command}: error: {problem}", file=sys.stderr)
            return 2
        return _dispatch(args)
    except Exception as exc:  # known errors in one line, not a traceback
        # imported here: the modules that define them are slow to import, and a
        # step's process (run once per notebook) needs none of them. A config
        # error (the first thing `make` can hit) is answered before the slow ones.
        from ..core.config import ConfigError
        from ..core.custody import CustodyError

        if isinstance(exc, ConfigError | CustodyError | FileNotFoundError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from ..book.generate import BookError
        from ..intake.ingest import ExportError
        from .publish import PublishError
        from .run import RunError
        from .runner import StepFailed
        from .sandbox import SandboxError

        if isinstance(exc, BookError | ExportError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, StepFailed | PublishError | SandboxError | RunError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from .run import run

        run(
            args.size,
            cities=args.city,
            steps=args.steps,
            jobs=args.jobs,
            dry_run=args.dry_run,
            pdf=args.pdf,
        )
    elif args.command == "cities":
        from ..core.config import list_cities

        print("\n".join(list_cities()))
    elif args.command == "check-config":
        from ..core.config import validate_all

        print(f"config: {len(validate_all())} files valid")
    elif args.command == "config-schema":
        from ..core.config_reference import write_city_schema
        from ..core.paths import repo_root

        print(f"schema: {write_city_schema(repo_root())}")
    elif args.command == "makefile":
        from .makefile import render

        atomic.write_if_changed(args.output, render())
    elif args.command == "data":
        from ..synth import generate_city

        cbs = None
        if args.cbs_files is not None:
            from ..research.cbs_files import load

            cbs = load(path=args.cbs_files)
        started = time.perf_counter()
        manifest = generate_city(args.city, args.size, cbs_files=cbs)
        print(
            f"{args.city}: synthetic data ({args.size}) in {time.perf_counter() - started:.1f} s"
            f" -> {manifest}"
        )
    elif args.command == "data-manifest":
        from ..synth import merge_manifests

        print(f"manifest: {merge_manifests(args.size)}")
    elif args.command == "run-step":
        from ..core.steplog import step_line
        from .runner import KERNEL, run_step

        started = time.perf_counter()
        out = run_step(args.step, city=args.city, size=args.size, kernel=args.kernel or KERNEL)
        paths = Paths.for_size(args.size)
        record = paths.provenance_dir(args.city) / f"{args.step}.json"
        custody = json.loads(record.read_text(encoding="utf-8")).get("custody", {})
        how = {"os": "sandboxed", "code": "checks in code only"}.get(custody.get("enforced_by"))
        seconds = time.perf_counter() - started
        print(step_line(paths, args.city, args.step, seconds, how) + f" -> {out}")
    elif args.command == "release":
        from ..disclosure.release_bundle import finalise
        from .publish import audit_bundle

        bundle = finalise(args.city, args.size, check=audit_bundle(args.city, args.size))
        print(f"{args.city}: release bundle audited and published -> {bundle}")
    elif args.command == "audit":
        from ..disclosure.audit import run

        report = run(args.size, html=not args.no_html, jobs=args.jobs)
        print(
            f"audit ({args.size}): scanned {report['scanned']}; checked for "
            f"{report['identifiers_checked']}"
        )
        for f in report["findings"]:
            where = f"{f['file']}: cell {f['cell']}" if f["cell"] is not None else f["file"]
            print(f"  {where}: {f['kind']}: {f['detail']}", file=sys.stderr)
        print(
            f"audit: {'passed' if report['passed'] else 'FAILED'}, "
            f"{len(report['findings'])} findings"
        )
        return 0 if report["passed"] else 1
    elif args.command == "book":
        from ..book.generate import prepare, write_pages_record
        from .graph import PAGES_RECORD

        paths = Paths.for_size(args.size)
        for path in prepare(paths):
            print(f"updated {path}")
        write_pages_record(paths, paths.build_dir / PAGES_RECORD)
    elif args.command == "publish":
        from .publish import publish, published, verify

        paths = Paths.for_size(args.size)
        if not args.verify:
            rec = publish(paths)
            print(
                f"book: audited and published version {rec['version']} ({rec['files']} files, "
                f"file list {rec['file_list_sha256'][:12]}) at {published(paths)}"
            )
        problems = verify(paths)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if not problems and args.verify:
            print(f"book: {published(paths)} is the audited build")
        return 1 if problems else 0
    elif args.command == "cbs-files":
        from ..research.cbs_files import run_check

        return run_check(args.size, cities=args.city, config=args.config)
    elif args.command == "refresh-templates":
        from .runner import refresh_checked_outputs

        for template, n in refresh_checked_outputs(args.templates).items():
            print(f"{template}: {n} checked cells stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())

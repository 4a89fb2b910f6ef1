"""Interrupt ``make all`` with SIGKILL at five points and check that nothing
unaudited is left in place and that the next ``make all`` reaches the same
bytes as an uninterrupted run (``make kill-check``; not part of ``make test``).

The check works on a fresh clone of the repository's committed state in a
work folder (never on the working tree): it runs ``make all`` once without
interruption and records the digest of every output that matters (the
synthetic data, the executed notebooks, the release bundles, the published
book and its audit record). Then, for each point, it makes that stage due
again (removing or touching one input, as an edit would), starts ``make all``
in its own session, waits until a process of that stage runs, and kills make
and every process under it at once with SIGKILL (a power cut, as far as the
build can tell). Right after the kill it checks:

* the published book is the build its audit record names, file for file
  (:func:`reintegration.pipeline.publish.verify`), and its record is not older than
  the audit;
* every release bundle in place is complete: each file its ``SHA256SUMS``
  lists is there with that digest, and nothing else is;

then runs ``make all`` to the end and compares every digest with the
uninterrupted run. Executed notebooks are compared after removing the one
run-time field (the run time in the provenance cell); JSON records after
removing keys that hold run times; book pages after removing the rendered run
times (the provenance line and the run-time column); Sphinx's search index,
which lists the pages' words and numbers, is not compared (the pages are).

Points: ``data`` (the generator writing a city's files), ``step`` (a
notebook executing), ``book`` (Jupyter Book building the next version),
``audit`` (the release audit) and ``release`` (a city's bundle being
finalised). The result goes to ``build/killcheck.json``; the exit status is
non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.paths import Paths, repo_root

#: JSON keys that hold run times (removed before comparing)
RUNTIME_KEY = re.compile(r"(seconds|duration|elapsed|run_time|runtime|start_time|end_time|"
                         r"started|finished|timestamp)", re.IGNORECASE)
#: text of a run time in a rendered provenance cell or log line
RUNTIME_TEXT = re.compile(r"\b\d+(\.\d+)?\s*(s|seconds)\b")
#: table columns of the book that hold run times (the provenance table)
RUNTIME_COLUMNS = ("run time (s)",)
#: files not compared: Sphinx's search index lists the words and numbers of the
#: pages (run times included); the pages themselves are compared
NOT_COMPARED = ("searchindex.js",)


@dataclass(frozen=True)
class Point:
    """One place to interrupt: how to make it due, and which process shows it runs."""

    name: str
    due: Callable[[Path, str, str], None]
    process: re.Pattern[str]
    #: seconds to let the stage work before the kill (it is killed earlier if it ends)
    delay: float


def _remove_manifest(tree: Path, size: str, city: str) -> None:
    (tree / "synthetic_data" / size / "manifests" / f"{city}.json").unlink()


def _touch(*parts: str) -> Callable[[Path, str, str], None]:
    def touch(tree: Path, size: str, city: str) -> None:
        path = tree.joinpath(*(p.format(size=size, city=city) for p in parts))
        path.touch()

    return touch


POINTS = (
    Point("data", _remove_manifest, re.compile(r"reintegration data .*--city"), 1.0),
    Point("step", _touch("book", "results", "{city}", "03_panel.ipynb"),
          re.compile(r"reintegration run-step"), 3.0),
    Point("book", _touch("book", "intro.md"), re.compile(r"jupyter[-_]book|sphinx"), 5.0),
    Point("audit", _touch("release", "{size}", "{city}", "SHA256SUMS"),
          re.compile(r"reintegration audit"), 1.0),
    Point("release", _touch("book", "results", "{city}", "09_validation.ipynb"),
          re.compile(r"reintegration release"), 0.5),
)


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(pid)
    return kids


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (from /proc)."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def kill_when(proc: subprocess.Popen, pattern: re.Pattern[str], delay: float,
              timeout: float = 3600) -> dict[str, Any]:
    """Wait until a process under ``proc`` matches ``pattern``, let it work
    ``delay`` seconds, then SIGKILL every process under ``proc`` at once."""
    started = time.monotonic()
    seen_at = None
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            return {"reached": seen_at is not None, "killed": False,
                    "note": f"make ended (status {proc.returncode}) before the kill"}
        tree = descendants(proc.pid)
        hit = [p for p in tree if pattern.search(_cmdline(p))]
        if hit and seen_at is None:
            seen_at = time.monotonic()
        if seen_at is not None and (time.monotonic() - seen_at >= delay or not hit):
            alive = bool(hit)
            for p in tree:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            return {"reached": True, "killed": True, "stage_running_at_kill": alive,
                    "seconds_into_make": round(time.monotonic() - started, 1)}
        time.sleep(0.1)
    raise TimeoutError(f"no process matching {pattern.pattern!r} within {timeout} s")


# ---------------------------------------------------------------------------
# digests
# ---------------------------------------------------------------------------


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not RUNTIME_KEY.search(str(k))}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    if isinstance(obj, str):
        return RUNTIME_TEXT.sub("<run time>", obj)
    return obj


def normalised_html(text: str) -> str:
    """A book page without its run times: the "in 3.3 s." of a step's
    provenance line and the cells of run-time columns."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for table in soup.find_all("table"):
        heads = [th.get_text(" ", strip=True) for th in table.find_all("th")]
        cols = [i for i, h in enumerate(heads) if h in RUNTIME_COLUMNS]
        for row in table.find_all("tr"):
            cells = row.find_all("td")
            for i in cols:
                if i < len(cells):
                    cells[i].string = "<run time>"
    return RUNTIME_TEXT.sub("<run time>", str(soup))


def file_digest(path: Path) -> str:
    """SHA-256 of a file; of its content without run-time fields for JSON
    records, executed notebooks and book pages."""
    data = path.read_bytes()
    if path.suffix in (".json", ".ipynb"):
        try:
            data = json.dumps(_strip(json.loads(data)), sort_keys=True).encode()
        except ValueError:
            pass
    elif path.suffix == ".html":
        data = normalised_html(data.decode("utf-8", errors="replace")).encode()
    return hashlib.sha256(data).hexdigest()


def snapshot(tree: Path, size: str) -> dict[str, str]:
    """Digest of every output the check compares, by path relative to ``tree``."""
    paths = Paths.for_size(size, tree)
    roots = [tree / "synthetic_data" / size, tree / "release" / size,
             paths.book_dir / "results"]
    html = paths.book_dir / "_build" / "html"
    if html.exists():
        roots.append(html.resolve())
    out = {}
    for root in roots:
        for f in sorted(root.rglob("*")):
            if (f.is_file() and ".doctrees" not in f.parts and f.name != ".buildinfo"
                    and f.name not in NOT_COMPARED):
                key = (f"book-html/{f.relative_to(html.resolve())}" if root == html.resolve()
                       else str(f.relative_to(tree)))
                out[key] = file_digest(f)
    return out


def bundles_complete(tree: Path, size: str) -> list[str]:
    """Problems with the release bundles in place (empty when each is whole)."""
    problems = []
    for bundle in sorted((tree / "release" / size).glob("*")):
        sums = bundle / "SHA256SUMS"
        if not bundle.is_dir():
            continue
        if not sums.exists():
            problems.append(f"{bundle.name}: no SHA256SUMS")
            continue
        listed = {}
        for line in sums.read_text(encoding="utf-8").splitlines():
            digest, name = line.split(maxsplit=1)
            listed[name.lstrip("*")] = digest
        present = {str(f.relative_to(bundle)) for f in bundle.rglob("*")
                   if f.is_file() and f.name != "SHA256SUMS"}
        for name in sorted(set(listed) - present):
            problems.append(f"{bundle.name}: {name} is listed but missing")
        for name in sorted(present - set(listed)):
            problems.append(f"{bundle.name}: {name} is not listed")
        for name in sorted(set(listed) & present):
            if hashlib.sha256((bundle / name).read_bytes()).hexdigest() != listed[name]:
                problems.append(f"{bundle.name}: {name} differs from its listed digest")
    return problems


def published_ok(tree: Path, size: str) -> list[str]:
    from .publish import verify

    return verify(Paths.for_size(size, tree))


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


def _make(tree: Path, size: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    with log.open("ab") as out:
        return subprocess.Popen(["make", "all", f"SIZE={size}"], cwd=tree, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _make_to_end(tree: Path, size: str, log: Path) -> tuple[int, float]:
    started = time.monotonic()
    proc = _make(tree, size, log)
    return proc.wait(), round(time.monotonic() - started, 1)


def run(work: Path, *, size: str = "small", city: str = "utrecht",
        points: tuple[str, ...] = tuple(p.name for p in POINTS),
        source: Path | None = None) -> dict[str, Any]:
    source = (source or repo_root()).resolve()
    tree = work / "tree"
    if not tree.exists():
        subprocess.run(["git", "clone", "--quiet", str(source), str(tree)], check=True)
    log = work / "make.log"
    status, seconds = _make_to_end(tree, size, log)
    if status != 0:
        raise RuntimeError(f"the uninterrupted make all failed (status {status}); see {log}")
    baseline = snapshot(tree, size)
    result: dict[str, Any] = {"size": size, "city": city, "baseline_seconds": seconds,
                              "files_compared": len(baseline), "points": {}}
    for point in (p for p in POINTS if p.name in points):
        point.due(tree, size, city)
        kill = kill_when(_make(tree, size, log), point.process, point.delay)
        after_kill = published_ok(tree, size) + bundles_complete(tree, size)
        status, seconds = _make_to_end(tree, size, log)
        again = snapshot(tree, size)
        differ = sorted(k for k in set(baseline) | set(again) if baseline.get(k) != again.get(k))
        result["points"][point.name] = {
            **kill, "problems_after_kill": after_kill, "rerun_status": status,
            "rerun_seconds": seconds, "problems_after_rerun": published_ok(tree, size)
            + bundles_complete(tree, size), "differing_files": differ,
            "passed": bool(kill.get("killed")) and not after_kill and status == 0
            and not differ,
        }
        print(f"{point.name}: {json.dumps(result['points'][point.name])[:400]}", flush=True)
    result["passed"] = all(p["passed"] for p in result["points"].values())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reintegration.pipeline.killcheck",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--city", default="utrecht")
    parser.add_argument("--work", type=Path, required=True,
                        help="an empty folder for the clone (kept, with make.log)")
    parser.add_argument("--points", nargs="*", default=[p.name for p in POINTS],
                        choices=[p.name for p in POINTS])
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    result = run(args.work.resolve(), size=args.size, city=args.city,
                 points=tuple(args.points))
    out = Paths.for_size(args.size, repo_root()).build_dir / "killcheck.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{'passed' if result['passed'] else 'FAILED'}; wrote {out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

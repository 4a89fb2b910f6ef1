"""Release audit: scan everything that would leave the secure environment.

``make audit`` (and ``make all`` before and after building the book, and so
``make test``) runs this over the executed notebooks in ``book/results/``, the
release bundles in ``release/<size>/``, and the built HTML of the book. It fails,
naming the file and the cell, on:

- a nine-digit number that passes the BSN eleven test (``elfproef``);
- a RINPERSOON value that occurs in the research files;
- a full name, a street name or an exact birth date from the municipal exports;
- a table or figure shown in an executed notebook that is not in the output
  register (``reintegration.disclosure.release_check``);
- a released count below the cell threshold (or a zero not declared structural).

It also scans the notebooks of failed runs kept in ``build/<size>/<city>/<domain>/failed/``
(sources, outputs and tracebacks), so an error message that quotes a delivered
value fails the audit; those in domains the auditor may not read are counted.

It runs under the ``auditor`` role, the only role besides the municipality's
that may read the exports, because it must know what to look for. Its report
masks every identifier it finds, so the audit's own output leaks nothing; it
is written to ``build/<size>/audit.json`` (the audit of a book build before it
is published: ``build/<size>/book_audit.json``). The differencing attack on a
city's bundle runs once per bundle: its result is kept in
``build/<size>/differencing/<city>.json`` under a key of every file of the
bundle, the threshold and the attack's code (:func:`differencing`), and the
later audits of the same files reuse it.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import inspect
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

from ..core import atomic
from ..core.config import list_cities, load_city
from ..core.custody import CustodyError, DomainMap, check_access, failed_notebooks
from ..core.paths import Paths
from ..intake import ingest
from ..linking import bsn
from . import lp, protection, release_check
from .rules import load_rules

ROLE = "auditor"
_NINE = re.compile(r"(?<![0-9A-Za-z.])(\d{9})(?![0-9A-Za-z])")
_TAG = re.compile(r"<[^>]+>")
_DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y%m%d")
_DATE = re.compile(
    r"(?<![0-9A-Za-z])(\d{4}-\d{2}-\d{2}|\d{2}[-/.]\d{2}[-/.]\d{4}|\d{8})(?![0-9A-Za-z])"
)
_WORD = re.compile(r"[\w'’-]+")
_ELISION = re.compile(r"['’][a-z]")  # 't, 's as in "Van 't Hoffstraat"


@dataclass(frozen=True)
class Finding:
    file: str
    cell: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.file}: cell {self.cell}" if self.cell is not None else self.file
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class Identifiers:
    """What must never appear in an output, gathered from the custody domains."""

    rins: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    streets: set[str] = field(default_factory=set)
    birth_dates: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in asdict(self).items()}

    def max_words(self) -> int:
        return max((len(w.split()) for w in self.names | self.streets), default=0)


def _mask(value: str) -> str:
    return value[:2] + "*" * max(len(value) - 2, 1)


def gather_identifiers(paths: Paths, cities: Iterable[str], dmap: DomainMap) -> Identifiers:
    ids = Identifiers()
    for city in cities:
        cfg = load_city(city, paths.root)
        # the names, streets and birth dates are in the clients file only
        path = ingest.export_path(cfg, "clients", paths.data_domain_dir("municipal", city))
        check_access(ROLE, path, "read", dmap)
        _add_people(ids, ingest.read_export(path, "clients", cfg).frame)
        for research in _research_files(paths, city):
            check_access(ROLE, research, "read", dmap)
            ids.rins.update(_rin_values(research))
    return ids


def _add_people(ids: Identifiers, clients: pd.DataFrame) -> None:
    def col(name: str) -> pd.Series:
        if name not in clients:
            return pd.Series("", index=clients.index)
        return clients[name].fillna("").astype(str).str.strip()

    first, prefix, last = col("first_name"), col("surname_prefix"), col("last_name")
    full = (first + " " + prefix + " " + last).str.split().str.join(" ")
    ids.names.update(n for n in full if len(n.split()) >= 2)
    ids.streets.update(s for s in col("street") if len(s) >= 5)
    if "birth_date" in clients:
        dates = pd.to_datetime(clients["birth_date"], errors="coerce").dropna().drop_duplicates()
        for fmt in _DATE_FORMATS:
            ids.birth_dates.update(dates.dt.strftime(fmt))


def _research_files(paths: Paths, city: str) -> list[Path]:
    files = sorted(paths.data_domain_dir("research", city).glob("*.sav"))
    build = paths.city_build_domain(city, "research")
    if build.is_dir():
        files += sorted(build.glob("*.parquet"))
    return files


def _rin_values(path: Path) -> set[str]:
    if path.suffix == ".sav":
        import pyreadstat

        frame, _ = pyreadstat.read_sav(str(path), usecols=["RINPERSOON"])
    else:
        import pyarrow.parquet as pq

        if "RINPERSOON" not in pq.read_schema(path).names:
            return set()
        frame = pd.read_parquet(path, columns=["RINPERSOON"])
    # each distinct value once (a panel holds a person in many rows): the same set
    return set(pd.Series(frame["RINPERSOON"].unique()).dropna().astype(str))


class Scanner:
    """Scans text for identifiers; findings name the file and cell."""

    def __init__(self, ids: Identifiers):
        self.ids = ids
        self.span = ids.max_words()
        # the first word of every name and street: a run of words can only be
        # one of them when it starts with one of these
        self.starts = {p.split(" ")[0] for p in ids.names | ids.streets}

    def text(self, text: str, file: str, cell: int | None) -> Iterator[Finding]:
        for number in set(_NINE.findall(text)):
            if number in self.ids.rins:
                detail = f"value {_mask(number)} of the research files"
                yield Finding(file, cell, "RINPERSOON", detail)
            elif bsn.elfproef(number):
                detail = f"nine-digit number {_mask(number)} passes the elfproef"
                yield Finding(file, cell, "BSN", detail)
        for phrase in self._phrases(text):
            for kind, pool in (("name", self.ids.names), ("street", self.ids.streets)):
                if phrase in pool:
                    yield Finding(file, cell, kind, f"{kind} {_mask(phrase)} from the exports")
        for date in set(_DATE.findall(text)):
            if date in self.ids.birth_dates:
                yield Finding(file, cell, "birth date", f"{_mask(date)} from the exports")

    def _phrases(self, text: str) -> set[str]:
        """Every run of 1 to ``span`` consecutive words, joined by one space,
        that starts with the first word of a name or street: looked up in sets,
        so thousands of names cost no more than a few. (A run that starts with
        another word equals no name or street, so leaving it out changes no
        finding.)"""
        words = [w if _ELISION.fullmatch(w) else w.strip("'’-") for w in _WORD.findall(text)]
        last = len(words)
        return {
            " ".join(words[i : i + n])
            for i, word in enumerate(words)
            if word in self.starts
            for n in range(1, min(self.span, last - i) + 1)
        }


def _output_texts(cell: Any) -> Iterator[str]:
    yield cell.source
    for out in cell.get("outputs", []):
        if "text" in out:
            yield "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield value if isinstance(value, str) else str(value)
        if "traceback" in out:
            yield "\n".join(out["traceback"])


def scan_notebook(path: Path, scanner: Scanner, register: set[str], root: Path) -> list[Finding]:
    rel = _rel(path, root)
    found = _scan_cells(path, scanner, rel)
    for index, description in release_check.unregistered_outputs(path, register):
        found.append(Finding(rel, index, "unregistered output", description))
    return found


def scan_failed(
    path: Path, scanner: Scanner, dmap: DomainMap, root: Path
) -> tuple[list[Finding], bool]:
    """Scan a kept failed notebook (sources, outputs and tracebacks) for
    identifiers: a failed run must leak nothing either. A notebook in a domain
    the auditor may not read (the linking unit's, the truth) is counted, not
    read; (findings, whether it was read)."""
    try:
        check_access(ROLE, path, "read", dmap)
    except CustodyError:
        return [], False
    return _scan_cells(path, scanner, _rel(path, root)), True


def _scan_cells(path: Path, scanner: Scanner, rel: str) -> list[Finding]:
    """Every text of every cell of a notebook (outputs, tracebacks), scanned."""
    nb = nbformat.read(path, as_version=4)
    found: list[Finding] = []
    for i, cell in enumerate(nb.cells):
        for text in _output_texts(cell):
            found += scanner.text(text, rel, i)
    return found


def scan_html(path: Path, scanner: Scanner, root: Path) -> list[Finding]:
    raw = path.read_text(encoding="utf-8", errors="replace")
    text = htmllib.unescape(_TAG.sub(" ", raw))
    return list(scanner.text(text, _rel(path, root), None))


def scan_release_counts(
    register: dict[str, Any], build: Path, threshold: int, root: Path
) -> list[Finding]:
    """Released count tables: every count shown is 0 (declared structural) or
    at least the threshold; suppressed cells are empty."""
    found = []
    for entry, rel, checks in count_files(register):
        path = build / rel
        table = pd.read_csv(path)
        structural = {(z["row"], z["column"]) for z in checks.get("structural_zeros", [])}
        # the first columns hold the row labels (the index of the table)
        values = table.iloc[:, int(checks.get("index_columns", 1)) :].select_dtypes("number")
        for col in values.columns:
            for r, v in values[col].items():
                if pd.isna(v):
                    continue
                label = str(table.iloc[r, 0])
                if v == 0 and (label, str(col)) in structural:
                    continue
                if v < threshold:
                    found.append(
                        Finding(
                            _rel(path, root),
                            None,
                            "small count",
                            f"output {entry['id']}: row {label!r}, column {col!r} shows a count "
                            f"below {threshold}",
                        )
                    )
    return found


def scan_differencing(bundle: Path, threshold: int, root: Path) -> tuple[list[Finding], dict]:
    """Attack the city's release bundle as an outsider would: every released
    count table (and figure data) of one population becomes one system of
    linear constraints, and each suppressed cell's derivable interval must
    be at least the protection interval (see :mod:`reintegration.disclosure.protection`).
    Returns the findings and a summary (cells, primary and secondary
    suppressions, the narrowest interval width of a sensitive cell)."""
    reg_path = bundle / "register.json"
    if not reg_path.exists():
        return [], {}
    register = json.loads(reg_path.read_text(encoding="utf-8"))

    def open_file(rel: str) -> Path:
        return bundle / Path(rel).relative_to("outputs")

    tables = protection.tables_from_register(register, open_file)
    intervals = protection.attack(tables)
    found = [
        Finding(
            _rel(open_file(_file_of(register, i.table)), root),
            None,
            "differencing",
            f"output {i.table}: suppressed cell {' / '.join(map(str, i.cell))} can be derived "
            f"to lie in [{_g(i.lower)}, {_g(i.upper)}] from the released tables of its "
            f"population, narrower than the protection interval (upper bound at least "
            f"{threshold}, width at least {threshold})",
        )
        for i in intervals
        if not i.protected(threshold)
    ]
    sensitive = [i for i in intervals if i.sensitive]
    summary = {
        **protection.summary(tables, threshold),
        "tables": len(tables),
        "populations": len({t.population for t in tables}),
        "narrowest_width": min((i.upper - i.lower for i in sensitive), default=None),
    }
    return found, summary


def bundle_digest(bundle: Path) -> str | None:
    """The SHA-256 of a release bundle's checksum list (so of every file in it),
    or None when it has none."""
    sums = Path(bundle) / "SHA256SUMS"
    return hashlib.sha256(sums.read_bytes()).hexdigest() if sums.is_file() else None


def attack_key(bundle: Path, threshold: int) -> str:
    """What the differencing attack's result on a bundle depends on, as one
    SHA-256: every file of the bundle (relative path and SHA-256 of its
    content, read afresh, not taken from ``SHA256SUMS``), the cell threshold,
    the source of the attack (:mod:`.protection`, :mod:`.lp` and
    :func:`scan_differencing`) and the versions of NumPy, SciPy (whose HiGHS
    solves the programs) and pandas."""
    lines = [
        f"{f.relative_to(bundle).as_posix()} {atomic.sha256_file(f)}\n"
        for f in sorted(p for p in Path(bundle).rglob("*") if p.is_file())
    ]
    lines.append(f"threshold {threshold}\n")
    # the attack's modules (the steps depend on them too, so a change of them
    # reruns the releases) and the function here that runs it
    lines += [atomic.sha256_file(Path(m)) + "\n" for m in (protection.__file__, lp.__file__)]
    lines.append(hashlib.sha256(inspect.getsource(scan_differencing).encode()).hexdigest())
    # and the libraries that solve its programs
    lines += [f"\n{name} {version(name)}" for name in ("numpy", "scipy", "pandas")]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def attack_record(paths: Paths, city: str) -> Path:
    """Where the differencing attack's result on ``city``'s bundle is kept:
    ``build/<size>/differencing/<city>.json`` (its key and summary; no
    identifier is in it)."""
    return paths.build_dir / "differencing" / f"{city}.json"


def differencing(paths: Paths, city: str, bundle: Path, threshold: int
                 ) -> tuple[list[Finding], dict]:
    """:func:`scan_differencing` on ``city``'s bundle, or its recorded result
    when the record's key (:func:`attack_key`) is that of this bundle now: the
    same attack on the same files gives the same result. The release audit
    of a staged bundle records a result without findings; the release audit
    and the protection page reuse it, so the attack runs once per bundle."""
    key = attack_key(Path(bundle), threshold)
    record = attack_record(paths, city)
    got = _read_record(record)
    if got.get("key") == key:
        return [], got["summary"]
    found, summary = scan_differencing(Path(bundle), threshold, paths.root)
    if summary and not found:
        atomic.write_json(record, {"key": key, "summary": summary})
    return found, summary


def recorded_differencing(paths: Paths, city: str) -> tuple[int, dict] | None:
    """The differencing attack's result on ``city``'s release bundle as the
    release audit recorded it (:func:`attack_record`): (number of findings,
    summary), or None when there is no record of the bundle now in
    ``release/<size>/<city>/``, its files and the attack's code as they are."""
    got = _read_record(attack_record(paths, city))
    bundle = paths.root / "release" / paths.size / city
    if not got or not bundle.is_dir():
        return None
    if got.get("key") != attack_key(bundle, load_rules(paths.root).cell_threshold):
        return None
    return 0, got["summary"]


def _read_record(path: Path) -> dict[str, Any]:
    """A record of the attack, or {} when there is none that can be read (the
    attack then runs again)."""
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) and "summary" in got else {}


def _file_of(register: dict[str, Any], output_id: str) -> str:
    """The released file of a table, or of a figure's data ("<id> (data)")."""
    base = output_id.removesuffix(" (data)")
    entry = next(e for e in register["outputs"] if e["id"] == base)
    return entry["data_file"] if output_id != base else entry["file"]


def _g(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:g}"


def count_files(register: dict[str, Any]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(entry, file, checks) of every released file that holds counts: count
    tables, and the data file behind each figure drawn from counts."""
    out = []
    for entry in register["outputs"]:
        checks = entry.get("checks") or {}
        if checks.get("statistic") == "count" and entry.get("file"):
            out.append((entry, entry["file"], checks))
        data = checks.get("data") or {}
        if data.get("statistic") == "count" and entry.get("data_file"):
            out.append((entry, entry["data_file"], data))
    return out


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def scan_bundle(city: str, size: str, bundle: Path, *, root: Path | None = None) -> list[Finding]:
    """Audit one city's release bundle where it is staged, before it is
    published: every file for the city's identifiers (and any BSN), and the
    differencing attack on its count tables."""
    paths = Paths.for_size(size, root)
    scanner = Scanner(gather_identifiers(paths, [city], DomainMap.for_paths(paths)))
    found: list[Finding] = []
    for f in sorted(p for p in Path(bundle).rglob("*") if p.is_file()):
        text = f.read_text(encoding="utf-8", errors="replace")
        found += scanner.text(text, _rel(f, paths.root), None)
    found += differencing(paths, city, Path(bundle), load_rules(paths.root).cell_threshold)[0]
    found += scan_obligations(Path(bundle), paths.root)
    return sorted(set(found), key=str)


def scan_obligations(bundle: Path, root: Path) -> list[Finding]:
    """Every Phase 1 condition of an estimated sub-study must be met: a
    finding for each row of the effects step's ``obligations`` table whose
    status is not *met* (see :mod:`reintegration.phase2.obligations`)."""
    table = bundle / "06_effects" / "obligations.csv"
    if not table.exists():
        return []
    rows = pd.read_csv(table, dtype=str, keep_default_na=False)
    return [Finding(_rel(table, root), None, "unmet condition",
                    f"{r['sub-study']}: condition {r['condition']} is not met "
                    f"({r['evidence']}); required: {r['obligation']}")
            for r in rows.to_dict("records") if r.get("status") != "met"]


def scan_pages(size: str, html_dir: Path, *, root: Path | None = None) -> list[Finding]:
    """The identifier scan of :func:`run` over the HTML pages of one folder
    (a build that is not the published book, such as the one-page HTML the
    PDF is printed from); no record is written."""
    paths = Paths.for_size(size, root)
    return scan_pages_with(size_scanner(size, root=root), html_dir, paths.root)


def size_scanner(size: str, *, root: Path | None = None) -> Scanner:
    """The identifier scanner of :func:`run` for every city of ``size``."""
    paths = Paths.for_size(size, root)
    dmap = DomainMap.for_paths(paths)
    return Scanner(gather_identifiers(paths, list_cities(paths.root), dmap))


def scan_pages_with(scanner: Scanner, html_dir: Path, root: Path) -> list[Finding]:
    """:func:`scan_pages` with a scanner gathered before."""
    found: list[Finding] = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        found += scan_html(page, scanner, root)
    return found


def run(
    size: str, *, root: Path | None = None, html: bool = True, html_dir: Path | None = None,
    record: str = "audit.json", jobs: int = 1,
) -> dict[str, Any]:
    """Audit every city's executed notebooks and release bundle, and the built
    book when ``html`` (the published one, or ``html_dir``: a build not yet
    published); write the report to ``build/<size>/<record>`` and return it.
    With ``jobs`` above 1 the cities are read and scanned in that many
    processes (the same report)."""
    paths = Paths.for_size(size, root)
    cities = list_cities(paths.root)
    with _pool(jobs, len(cities)) as pool:
        parts = list(pool.map(_city_identifiers, [(size, paths.root, c) for c in cities]))
        ids = Identifiers()
        for part in parts:
            for name in ("rins", "names", "streets", "birth_dates"):
                getattr(ids, name).update(getattr(part, name))
        scanner = Scanner(ids)
        audited = dict(zip(cities, pool.map(_audit_city, [(size, paths.root, c, scanner)
                                                           for c in cities]), strict=True))
    findings: list[Finding] = []
    scanned = {"notebooks": 0, "html_pages": 0, "release_files": 0, "count_tables": 0,
               "failed_notebooks": 0, "failed_notebooks_unreadable": 0}
    protection_summary: dict[str, Any] = {}
    for city in cities:
        found, counts, protection_summary[city] = audited[city]
        findings += found
        for key, n in counts.items():
            scanned[key] += n
    html_dir = html_dir or paths.book_dir / "_build" / "html"
    if html and html_dir.is_dir():
        for page in sorted(html_dir.rglob("*.html")):
            findings += scan_html(page, scanner, paths.root)
            scanned["html_pages"] += 1
    report = {
        "size": size,
        "passed": not findings,
        "scanned": scanned,
        "identifiers_checked": ids.counts(),
        "protection": protection_summary,
        "findings": [asdict(f) for f in sorted(set(findings), key=str)],
    }
    atomic.write_json(paths.build_dir / record, report)
    return report


class _InProcess:
    """An executor's ``map`` in this process (one job)."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, items: Iterable[Any]) -> Iterator[Any]:
        return map(fn, items)


def _pool(jobs: int, n: int) -> Any:
    if jobs <= 1 or n <= 1:
        return _InProcess()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=min(jobs, n),
                               mp_context=multiprocessing.get_context(method))


def _city_identifiers(args: tuple[str, Path, str]) -> Identifiers:
    size, root, city = args
    paths = Paths.for_size(size, root)
    return gather_identifiers(paths, [city], DomainMap.for_paths(paths))


def _audit_city(args: tuple[str, Path, str, Scanner]
                ) -> tuple[list[Finding], dict[str, int], dict[str, Any]]:
    """One city's part of :func:`run`: (findings, what was scanned, the
    differencing attack's summary with its bundle's digest)."""
    size, root, city, scanner = args
    paths = Paths.for_size(size, root)
    dmap = DomainMap.for_paths(paths)
    threshold = load_rules(paths.root).cell_threshold
    findings: list[Finding] = []
    scanned: dict[str, int] = defaultdict(int)
    build = paths.city_build(city)
    registered = release_check.registered_output_ids(build)
    for nb in sorted(paths.results_dir(city).glob("*.ipynb")):
        check_access(ROLE, nb, "read", dmap)
        findings += scan_notebook(nb, scanner, registered, paths.root)
        scanned["notebooks"] += 1
    for nb in failed_notebooks(paths, city):
        found, ok = scan_failed(nb, scanner, dmap, paths.root)
        findings += found
        scanned["failed_notebooks" if ok else "failed_notebooks_unreadable"] += 1
    bundle = paths.root / "release" / size / city
    for f in sorted(p for p in bundle.rglob("*") if p.is_file()):
        text = f.read_text(encoding="utf-8", errors="replace")
        findings += scanner.text(text, _rel(f, paths.root), None)
        scanned["release_files"] += 1
    leaks, protected = differencing(paths, city, bundle, threshold)
    findings += leaks + scan_obligations(bundle, paths.root)
    summary = {**protected, "differencing_findings": len(leaks),
               "bundle": bundle_digest(bundle)} if protected else {}
    reg_path = build / "outputs" / "register.json"
    if reg_path.exists():
        register = json.loads(reg_path.read_text(encoding="utf-8"))
        scanned["count_tables"] += len(count_files(register))
        findings += scan_release_counts(register, build, threshold, paths.root)
    return findings, dict(scanned), summary

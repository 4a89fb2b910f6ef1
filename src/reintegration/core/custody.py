"""Custody domains, enforced in code.

Clients told the original researchers they fear that arbitrary staff can read
their file. The compendium answers with roles: every step declares one (in
``config/steps.yml``) and may only open files of the custody domains its role
is allowed to read or write. Asking for anything else raises
:class:`CustodyError`, naming the role, the file and the domain.

Domains (where a file lives decides its domain):

``municipal``  the municipality's exports: BSN, name, address, birth date
``ttp``        the linking unit's key table BSN <-> RINPERSOON
``research``   pseudonymised data keyed by RINPERSOONS + RINPERSOON, and the
               steps' machine-readable records with exact counts
               (:data:`RESEARCH_RECORDS`)
``release``    aggregates that passed (or await) output checking
``truth``      planted potential outcomes; synthetic data only
``public``     configuration, templates, manifests: nothing about persons
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .paths import Paths

DOMAINS = ("municipal", "ttp", "research", "release", "truth", "public")

#: role -> (domains it may read, domains it may write)
ROLE_ACCESS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # The synthetic-data generator writes every domain, including its manifests
    # (public); it exists only outside the secure environment.
    "generator": (frozenset({"public"}), frozenset(DOMAINS)),
    # The delivery check's aggregate report travels with the delivery into the
    # research environment: the municipality writes it there, and reads nothing there.
    "municipality": (
        frozenset({"municipal", "public", "release"}),
        frozenset({"municipal", "research", "release"}),
    ),
    "linking_unit": (
        frozenset({"municipal", "ttp", "public", "release"}),
        frozenset({"ttp", "research", "release"}),
    ),
    "researcher": (
        frozenset({"research", "public", "release"}),
        frozenset({"research", "release"}),
    ),
    # Validation exists only for synthetic data: it compares the estimates
    # (research records with exact counts) with the planted truth, and keeps
    # its comparison in the research domain too.
    "validator": (
        frozenset({"truth", "research", "public", "release"}),
        frozenset({"research", "release"}),
    ),
    "publisher": (frozenset({"public", "release"}), frozenset({"release"})),
    # The release audit must know what to look for: identifiers in the exports
    # and the pseudonyms in the research files. It writes only its report.
    "auditor": (
        frozenset({"municipal", "research", "public", "release"}),
        frozenset({"release"}),
    ),
}

_PERSON_DOMAINS = ("municipal", "ttp", "research", "truth")

#: the steps' machine-readable records: they hold exact counts (rows delivered
#: and quarantined, links per route, group sizes, estimates with their numbers of
#: treated and controls), so they stay in the research domain. Written by the
#: steps to ``build/<size>/<city>/research/``; a stale copy directly under
#: ``build/<size>/<city>/`` is research too, never release.
RESEARCH_RECORDS = frozenset(
    {
        "quality.json",
        "linkage.json",
        "feasibility.json",
        "estimates.json",
        "validation.json",
        "placebo.json",
    }
)


class CustodyError(PermissionError):
    """A role asked for a file of a custody domain it may not access."""


@dataclass(frozen=True)
class DomainMap:
    """Maps a path to its custody domain by the longest matching root.

    Inside ``build/<size>/<city>/``, a sub-folder named after a person-level
    domain (``municipal``, ``ttp``, ``research``, ``truth``) keeps that domain,
    and so does a step record of :data:`RESEARCH_RECORDS` (research) wherever
    it lies in the city's folder; everything else under ``build/`` is release.
    """

    roots: tuple[tuple[Path, str], ...] = ()
    build_dir: Path | None = None

    @classmethod
    def for_paths(cls, paths: Paths, extra: dict[str, str] | None = None) -> DomainMap:
        """The layout of one data size: synthetic inputs, build outputs, the
        book. ``extra`` maps further roots (for example the folders of real
        exports inside a secure environment) to their domains."""
        data = paths.data_dir
        roots: list[tuple[Path, str]] = [
            (paths.root / "config", "public"),
            (paths.root / "notebooks", "public"),
            (data / "manifest.json", "public"),
            (data / "manifests", "public"),
            (data / "municipal", "municipal"),
            (data / "ttp", "ttp"),
            (data / "research", "research"),
            (data / "truth", "truth"),
            (paths.book_dir, "release"),
            (paths.build_dir, "release"),
        ]
        roots += [(Path(r), d) for r, d in (extra or {}).items()]
        return cls(tuple((_abs(r), d) for r, d in roots), build_dir=_abs(paths.build_dir))

    def domain_of(self, path: str | os.PathLike) -> str:
        target = _abs(path)
        best: tuple[int, str] | None = None
        for root, dom in self.roots:
            if target == root or root in target.parents:
                if best is None or len(root.parts) > best[0]:
                    best = (len(root.parts), dom)
        if best is None:
            raise CustodyError(f"{target}: not inside any custody domain of this compendium")
        if self.build_dir is not None and self.build_dir in target.parents:
            rel = target.relative_to(self.build_dir).parts
            if len(rel) >= 3 and rel[1] in _PERSON_DOMAINS:
                return rel[1]
            if len(rel) >= 2 and rel[-1] in RESEARCH_RECORDS and rel[1] != "outputs":
                return "research"
        return best[1]


def _abs(path: str | os.PathLike) -> Path:
    """The real location of ``path``: symlinks and ``..`` resolved, so a link
    under a research folder to a municipal file is judged as municipal."""
    return Path(os.path.realpath(path))


def check_access(role: str, path: str | os.PathLike, mode: str, dmap: DomainMap) -> str:
    """Return the domain of ``path`` if ``role`` may ``mode`` ('read' or
    'write') it; raise :class:`CustodyError` otherwise."""
    if role not in ROLE_ACCESS:
        raise CustodyError(f"unknown role {role!r}; roles are {', '.join(ROLE_ACCESS)}")
    domain = dmap.domain_of(path)
    readable, writable = ROLE_ACCESS[role]
    allowed = readable if mode == "read" else writable
    if domain not in allowed:
        raise CustodyError(
            f"role '{role}' may not {mode} {path}: the file is in the '{domain}' domain, "
            f"and this role may {mode} only {', '.join(sorted(allowed))}"
        )
    return domain


#: the person-level domain a failed run of a role is kept in: the domain of the
#: data the step could read, so a failed notebook never moves data to a wider audience
FAILED_DOMAIN = {"municipality": "municipal", "linking_unit": "ttp", "validator": "truth"}


def failed_dir(paths: Paths, city: str, role: str) -> Path:
    """``build/<size>/<city>/<domain>/failed``: where a failed run of a step
    with ``role`` is kept (owner-only), and where it runs."""
    domain = FAILED_DOMAIN.get(role, "research")
    return paths.city_build_domain(city, domain) / "failed"


def failed_notebooks(paths: Paths, city: str) -> list[Path]:
    """Every failed notebook kept for ``city``, in any domain."""
    domains = {*FAILED_DOMAIN.values(), "research"}
    found = [
        p
        for d in sorted(domains)
        for p in (paths.city_build_domain(city, d) / "failed").glob("*.ipynb")
    ]
    legacy = paths.city_build(city) / "failed"  # before failed runs were kept per domain
    return sorted(found + list(legacy.glob("*.ipynb")))

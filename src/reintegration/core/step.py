"""The context a notebook step runs in: its role, its city, guarded file access.

A notebook starts with::

    ctx = step.start("01_delivery_check", city=city, size=size)

and from then on reads and writes only through ``ctx``. Every access is checked
against the role the step declares in ``config/steps.yml`` (a notebook cannot
choose its own role) and logged, so the runner can record the SHA-256 of every
input in the step's provenance.

Configuration is read through the context too: it logs its city's file, and
while it is open every config file read through :mod:`reintegration.core.config`
(by the notebook or by any module it calls) is logged as well, so the
provenance lists every config file the step read. :meth:`StepContext.settings`
hands out the typed content of a shared config file the step declares under
``reads``. A write must match one of the outputs the step declares under
``writes`` (path and custody domain); any other write is refused.
"""

from __future__ import annotations

import fnmatch
import json
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import atomic
from . import config as configuration
from .config import ConfigError, as_dict, get_step, load_city_model, load_shared
from .custody import CustodyError, DomainMap, check_access
from .paths import Paths

if TYPE_CHECKING:  # pandas is imported where a frame is read: the runner needs none
    import pandas as pd

IO_LOG_SUFFIX = ".io.json"

#: Set by the runner in the kernel's environment (see :mod:`reintegration.pipeline.kernel`):
#: the step, city and size it executes. When set, :func:`start` refuses any other.
STEP_ENV, CITY_ENV, SIZE_ENV = "REINTEGRATION_STEP", "REINTEGRATION_CITY", "REINTEGRATION_SIZE"


class UndeclaredWrite(CustodyError):
    """A step wrote a file it does not declare under ``writes`` in config/steps.yml."""


class StepContext:
    """Guarded, logged file access for one step of one city."""

    def __init__(self, name: str, *, city: str, size: str, root: Path | None = None):
        self.paths = Paths.for_size(size, root)
        self.spec = get_step(name, self.paths.root)
        self.name = name
        self.role: str = self.spec["role"]
        self.size = size
        self.city_name = city
        #: the city's configuration, typed (:class:`reintegration.core.config_models.City`)
        self.city_config = load_city_model(city, self.paths.root)
        city_file = self.paths.cities_dir / f"{city}.yml"
        #: the same as a dict (the view most modules still take)
        self.city = as_dict(self.city_config, city_file)
        self.out_dir = self.paths.city_build(city)
        self.domains = step_domains(self.paths, self.city.get("data_roots"), self.spec, city)
        self._reads: dict[str, str] = {}
        self._writes: dict[str, str] = {}
        self._log_path = self.paths.provenance_dir(city) / f"{name}{IO_LOG_SUFFIX}"
        self._log_path.unlink(missing_ok=True)
        self._reads[str(city_file.resolve())] = check_access(
            self.role, city_file, "read", self.domains
        )
        # from here on, every config file read in this process is this step's
        ref = weakref.ref(self)
        configuration.set_read_observer(lambda path: _observe(ref, path))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"the step context is read-only: cannot set {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the step context is read-only: cannot delete {name!r}")

    # ---- paths -------------------------------------------------------------
    def output_path(self, name: str, domain: str = "release") -> Path:
        """Where this step writes ``name``: ``build/<size>/<city>/`` for
        release files, ``build/<size>/<city>/<domain>/`` otherwise."""
        base = self.out_dir if domain == "release" else self.out_dir / domain
        path = base / name
        got = self.domains.domain_of(path)
        if got != domain:
            raise ValueError(f"{path} would be in domain {got!r}, not {domain!r}")
        return path

    def upstream_path(self, name: str, domain: str = "release") -> Path:
        """An output of an earlier step of the same city (see output_path)."""
        return self.output_path(name, domain)

    # ---- guarded access ----------------------------------------------------
    def check_read(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        domain = check_access(self.role, p, "read", self.domains)
        if not p.exists():
            raise FileNotFoundError(f"{self.name} ({self.city_name}): input {p} does not exist")
        self._reads[str(p.resolve())] = domain
        self._flush()
        return p

    def check_write(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        domain = check_access(self.role, p, "write", self.domains)
        self._check_declared(p, domain)
        self._writes[str(p.resolve())] = domain
        return p

    def _check_declared(self, path: Path, domain: str) -> None:
        """Refuse a write that ``writes`` in config/steps.yml does not declare."""
        try:
            rel = path.resolve().relative_to(self.out_dir.resolve()).as_posix()
        except ValueError:
            rel = str(path)
        if domain != "release":
            rel = rel.removeprefix(f"{domain}/")
        for out in self.spec["writes"]:
            if out["domain"] == domain and fnmatch.fnmatchcase(rel, out["path"]):
                return
        declared = ", ".join(f"{o['path']} ({o['domain']})" for o in self.spec["writes"])
        raise UndeclaredWrite(
            f"step {self.name} may not write {rel} ({domain}): config/steps.yml declares "
            f"only {declared or 'no outputs'} under its writes"
        )

    def config_read(self, path: str | os.PathLike) -> None:
        """Log that the step read config file ``path`` (for its provenance)."""
        p = Path(path).resolve()
        if self.paths.config_dir.resolve() not in p.parents:
            return  # another tree's configuration (tests): not this step's input
        self._reads[str(p)] = check_access(self.role, p, "read", self.domains)
        try:
            self._flush()
        except OSError:  # the build folder is gone (a finished test): nothing to log
            pass

    def settings(self, kind: str) -> Any:
        """The typed content of ``config/<kind>.yml`` (see
        :data:`reintegration.core.config.SHARED`), which the step must declare
        under ``reads``."""
        rel = f"config/{kind}.yml"
        if rel not in self.spec["reads"]:
            raise ConfigError(
                f"step {self.name} reads {rel} but config/steps.yml does not list it under "
                "its reads"
            )
        return load_shared(kind, self.paths.root)

    def read_json(self, path: str | os.PathLike) -> Any:
        return json.loads(self.check_read(path).read_text(encoding="utf-8"))

    def read_parquet(self, path: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        return pd.read_parquet(self.check_read(path), **kwargs)

    def write_json(self, name: str, obj: Any, domain: str = "release") -> Path:
        path = self.check_write(self.output_path(name, domain))
        atomic.write_json(path, obj)
        self._flush()
        return path

    def write_parquet(self, name: str, df: pd.DataFrame, domain: str) -> Path:
        path = self.check_write(self.output_path(name, domain))
        atomic.write_via_temp(path, lambda tmp: df.to_parquet(tmp, index=False))
        self._flush()
        return path

    # ---- log ---------------------------------------------------------------
    def io_log(self) -> dict[str, dict[str, str]]:
        return {"reads": dict(self._reads), "writes": dict(self._writes)}

    def _flush(self) -> None:
        atomic.write_json(self._log_path, self.io_log())


def step_domains(
    paths: Paths, data_roots: dict[str, str] | None, spec: dict[str, Any], city: str
) -> DomainMap:
    """The custody domains of a step: the compendium's, the city's
    ``data_roots`` and, for a step that reads config/cbs_files.yml, the
    folders of the CBS files outside every other domain as research
    (:func:`reintegration.research.cbs_files.research_roots`)."""
    base = DomainMap.for_paths(paths, data_roots)
    if "config/cbs_files.yml" not in spec["reads"]:
        return base
    from ..research import cbs_files

    cfg = cbs_files.load(paths.root)
    where = {"city": city, "data_dir": paths.data_dir, "root": paths.root}
    extra = cbs_files.research_roots(cfg, known=base, **where)
    return DomainMap.for_paths(paths, {**extra, **(data_roots or {})}) if extra else base


def _observe(ref: weakref.ref[StepContext], path: Path) -> None:
    ctx = ref()
    if ctx is not None:
        ctx.config_read(path)


def start(name: str, *, city: str, size: str, root: Path | None = None) -> StepContext:
    """Open the context of step ``name`` for ``city`` at data size ``size``.

    Under the runner the step, city and size come from the runner (the kernel's
    environment), not from the notebook: a notebook that names another step
    (to take its role) or another city is refused."""
    assigned = {STEP_ENV: name, CITY_ENV: city, SIZE_ENV: size}
    for var, asked in assigned.items():
        given = os.environ.get(var)
        if given is not None and given != asked:
            raise CustodyError(
                f"this kernel runs {var.split('_')[1].lower()} {given!r} (set by the runner), "
                f"but the notebook asked for {asked!r}; a step cannot choose its role"
            )
    return StepContext(name, city=city, size=size, root=root)


def read_io_log(paths: Paths, city: str, name: str) -> dict[str, dict[str, str]]:
    path = paths.provenance_dir(city) / f"{name}{IO_LOG_SUFFIX}"
    if not path.exists():
        return {"reads": {}, "writes": {}}
    return json.loads(path.read_text(encoding="utf-8"))

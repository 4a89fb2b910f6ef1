"""The bookkeeping of a step's output register: files, entries, ACRO's record.

:class:`RegisterCore` holds what every kind of output shares: the step's
output folder, the register entries and ``register.json``, the step's ACRO
session and the files it writes for the output checker. The outputs
themselves are added by the mixins of :mod:`reintegration.disclosure.register_tables`,
:mod:`reintegration.disclosure.register_models` and
:mod:`reintegration.disclosure.register_figures`,
which :class:`reintegration.disclosure.Register` combines.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import atomic
from ..core.custody import check_access
from .acro import new_acro_session, quiet_acro
from .linked_tables import PublishedTables
from .output import Output, publish
from .rules import NAME, STATUSES, DisclosureError, Rules, load_rules

if TYPE_CHECKING:  # pragma: no cover
    from ..core.step import StepContext


class RegisterCore:
    """The outputs one step shows for one city, each checked and recorded."""

    def __init__(self, ctx: StepContext, *, rules: Rules | None = None):
        self.ctx = ctx
        self.rules = rules or load_rules(ctx.paths.root)
        self.step = ctx.name
        self.rel_dir = f"outputs/{ctx.name}"
        self.dir = ctx.output_path(self.rel_dir)
        self.entries: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Output] = {}
        self._session: Any = None
        #: the checksum of each file of ``acro/`` as this register last wrote it
        self._acro_files: dict[str, str] = {}
        self._linked = PublishedTables(ctx)
        if self.dir.exists():
            check_access(ctx.role, self.dir, "write", ctx.domains)
            shutil.rmtree(self.dir)
        self._flush()

    @property
    def output_ids(self) -> list[str]:
        return sorted(e["id"] for e in self.entries.values())

    # ---- ACRO's record -----------------------------------------------------------
    def session(self) -> Any:
        """The step's ACRO session (created on first use)."""
        if self._session is None:
            self._session = new_acro_session(self.rules)
        return self._session

    def _acro_record_custom(self, name: str, out: Output, what: str) -> None:
        if not out.released or out.path is None:
            return
        s = self.session()
        comment = f"{what} checked by the compendium ({out.status})"
        if out.reasons:
            comment += ": " + "; ".join(out.reasons)
        with quiet_acro():
            s.custom_output(str(out.path), comment=comment)
        uid = f"output_{s.results.output_id - 1}"
        s.rename_output(uid, name)
        rec = s.results.get(name)
        rec.timestamp = ""
        rec.command = f"register.{what}({out.output_id!r})"
        self._flush_acro()

    def _flush_acro(self) -> None:
        """Write ACRO's results.json (and the files it lists) to
        ``outputs/<step>/acro/``."""
        s = self._session
        if s is None or not s.results.results:
            return
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "acro"
            with quiet_acro():
                s.results.finalise_json(str(folder))
            (folder / "config.json").write_text(
                json.dumps(s.config, indent=4, sort_keys=True) + "\n", encoding="utf-8"
            )
            written = {p.name for p in folder.iterdir() if p.is_file()}
            target = self.dir / "acro"
            if target.exists():
                for old in target.iterdir():
                    if old.name not in written:
                        check_access(self.ctx.role, old, "write", self.ctx.domains)
                        old.unlink()
                        self._acro_files.pop(old.name, None)
            # ACRO writes every output it holds again; a file this register
            # already wrote with the same bytes is left as it is
            for fname in sorted(written):
                payload = (folder / fname).read_bytes()
                if self._acro_files.get(fname) == atomic.sha256_bytes(payload):
                    continue
                self._acro_files[fname] = self._write_file(f"acro/{fname}", payload)[1]

    # ---- bookkeeping -------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not NAME.match(name):
            raise DisclosureError(
                f"output name {name!r} must be lower-case letters, digits and underscores"
            )
        if name in self.entries:  # a cell run again: replace the earlier output
            old = self.entries.pop(name)
            self.outputs.pop(name, None)
            for rel in (old.get("file"), old.get("data_file")):
                if rel:
                    path = self.ctx.output_path(rel)
                    check_access(self.ctx.role, path, "write", self.ctx.domains)
                    path.unlink(missing_ok=True)
            if self._session is not None and name in self._session.results.results:
                self._session.remove_output(name)
                self._flush_acro()

    def _output(
        self,
        name: str,
        kind: str,
        status: str,
        reasons: list[str],
        title: str | None,
        **fields: Any,
    ) -> Output:
        """A new output of this step; without ``title``, its name in words."""
        return Output(
            output_id=f"{self.step}/{name}",
            kind=kind,
            status=status,
            reasons=reasons,
            title=title or name.replace("_", " "),
            rules=self.rules,
            **fields,
        )

    def _write_file(self, rel: str, payload: bytes) -> tuple[Path, str]:
        path = self.ctx.check_write(self.ctx.output_path(f"{self.rel_dir}/{rel}"))
        atomic.write_bytes(path, payload)
        return path, atomic.sha256_bytes(payload)

    def _entry(self, out: Output, checks: dict[str, Any]) -> dict[str, Any]:
        rel = None
        if out.path is not None:
            rel = out.path.relative_to(self.ctx.out_dir).as_posix()
        return {
            "id": out.output_id,
            "step": self.step,
            "name": out.output_id.split("/", 1)[1],
            "kind": out.kind,
            "title": out.title,
            "status": out.status,
            "reasons": list(out.reasons),
            "checks": checks,
            "file": rel,
            "sha256": out.sha256,
        }

    def _commit(self, name: str, out: Output, entry: dict[str, Any]) -> Output:
        assert out.status in STATUSES
        self.entries[name] = entry
        self.outputs[name] = out
        self._flush()
        publish(out)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "city": self.ctx.city_name,
            "size": self.ctx.size,
            "rules": self.rules.as_dict(),
            "outputs": [self.entries[k] for k in sorted(self.entries)],
        }

    def _flush(self) -> None:
        self.ctx.write_json(f"{self.rel_dir}/register.json", self.as_dict())

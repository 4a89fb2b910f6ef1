"""ACRO, contained: the SACRO project's output checker without its side effects.

ACRO 1.0.2 has process-wide side effects and quirks that this module contains:

* importing it calls ``logging.basicConfig(level=INFO)`` on the root logger and
  adds an "ignore FutureWarning" filter; the import and every call run inside
  :func:`quiet_acro`, which restores the root logger and the warning filters;
* its configuration is read from ``<acro package>/<name>.yaml`` only (a bare
  name, no path); the session is made with the packaged default and its
  thresholds are then replaced by ours, including its checker object
  (:func:`new_acro_session`).

The register (:mod:`reintegration.disclosure`) keeps one session per step and
records each output in it; :func:`align` and :func:`acro_flagged` read ACRO's
per-cell verdicts of a table.

ACRO's table checks build debugging text whatever its log level (pandas
reprs of every mask, in f-strings) and walk the caller's whole stack, reading
each frame's source, to record the calling line. :func:`acro_call` runs such
a call with pandas' display limits at their smallest (the text is logged at
debug level, which is off) in a fresh thread (a stack of a few frames; the
register replaces the recorded command anyway). The checks and their
outcomes are the same.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from .rules import ACRO_CHECK_TO_REASON, Rules

_ACRO_LOGGERS = ("acro", "acro:records", "acro:summary")


@contextlib.contextmanager
def quiet_acro() -> Iterator[None]:
    """Run ACRO code without lasting process-wide effects.

    Saves and restores the root logger's level and handlers and the warning
    filters; while inside, ACRO's own loggers report warnings only and
    warnings raised from ACRO's modules (pandas notices about its internals)
    are not shown.
    """
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    acro_loggers = [logging.getLogger(name) for name in _ACRO_LOGGERS]
    saved_acro = [(lg, lg.level) for lg in acro_loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"acro(\.|$)")
        for lg in acro_loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in saved_acro:
                lg.setLevel(level)
            root.setLevel(saved_level)
            for handler in list(root.handlers):
                if handler not in saved_handlers:
                    root.removeHandler(handler)
            for handler in saved_handlers:
                if handler not in root.handlers:
                    root.addHandler(handler)


#: pandas display limits while ACRO runs: its debugging reprs are never shown
_TERSE_REPRS = ("display.max_rows", 2, "display.max_columns", 2, "display.min_rows", 2)


def acro_call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` (an ACRO session method) inside
    :func:`quiet_acro`, with terse pandas reprs, in a thread of its own
    (ACRO's ``inspect.stack()`` then sees a few frames, not the kernel's).
    Returns its result or raises its exception."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="acro")
    with quiet_acro(), pd.option_context(*_TERSE_REPRS):
        worker.start()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def acro_module() -> Any:
    """Import ACRO once, without its side effects on logging and warnings."""
    if "acro" in sys.modules and hasattr(sys.modules["acro"], "ACRO"):
        return sys.modules["acro"]
    with quiet_acro():
        import acro  # noqa: PLC0415
    return acro


def acro_version() -> str:
    return str(acro_module().__version__)


def new_acro_session(rules: Rules) -> Any:
    """An ACRO session with our thresholds.

    ACRO reads its configuration only from a YAML file named by a bare name
    next to its package; it cannot be pointed at ``config/disclosure.yml``.
    The session is created from the packaged default and then given our
    values, and its checker (which copied the configuration when it was
    built) is rebuilt from them. Mitigation is off: ACRO checks, the register
    suppresses.
    """
    acro = acro_module()
    with quiet_acro():
        session = acro.ACRO(suppress=False)
        session.config.update(rules.acro_config())
        session.sdc_checks = acro.sdcchecks.SDCChecks(session.config)
    return session


def align(outcome: pd.DataFrame, table: pd.DataFrame, name: str) -> pd.DataFrame:
    """ACRO's per-cell outcome on the table's grid."""
    if outcome is None or outcome.empty:
        return pd.DataFrame("ok", index=table.index, columns=table.columns)
    if set(outcome.index) != set(table.index) or set(outcome.columns) != set(table.columns):
        raise RuntimeError(
            f"{name}: ACRO's cell outcomes do not line up with the table "
            f"({list(outcome.index)} x {list(outcome.columns)} vs "
            f"{list(table.index)} x {list(table.columns)})"
        )
    return outcome.reindex(index=table.index, columns=table.columns)


def acro_flagged(outcome: pd.DataFrame) -> list[str]:
    """Names of the ACRO checks that flagged at least one cell (the register
    is published: it keeps no counts, and does not tell zeros apart)."""
    names = set()
    for cell in outcome.to_numpy().ravel():
        for part in str(cell).split(";"):
            part = part.strip()
            if part and part != "ok":
                names.add(ACRO_CHECK_TO_REASON.get(part, part))
    return sorted(names)

"""Statistical disclosure control: one output register per step run.

Every table, figure and model result a notebook shows goes through a register::

    from reintegration import disclosure, step

    ctx = step.start("04_describe", city=city, size=size)
    reg = disclosure.register(ctx)
    reg.crosstab("uptake_by_sex", persons, index="sex", columns="instrument")
    reg.table("earnings_by_instrument", persons, index="instrument",
              values="earnings_12m", aggfunc="mean")
    reg.model("exit_ols", results, groups=persons[["instrument"]])
    reg.figure("uptake_over_time", fig, counts=monthly_counts)
    reg.effect("att_employed_12", result)   # an EffectResult of reintegration.effects

Each call checks the output against the rules in ``config/disclosure.yml``,
writes what may be released to ``build/<size>/<city>/outputs/<step>/`` (CSV for
tables, PNG for figures, JSON for models), records it in the step's register
(``outputs/<step>/register.json``) and displays it in the notebook with output
metadata ``{"reintegration": {"output_id": "<step>/<name>", ...}}``, so a
release audit can tell that every table or figure on a page is registered
(:mod:`reintegration.release_check`). :func:`finalise` collects the registers
of a city into the bundle a human output checker reviews.

Tables and statsmodels results are checked by ACRO, the SACRO project's
output checker; the compendium reads ACRO's per-cell verdicts and applies the
suppression itself, so that declared structural zeros, proportions and
standard deviations are handled correctly and margins never reveal a
suppressed cell. linearmodels results, figures and pre-aggregated tables are
checked by the compendium's own rules (the same thresholds).

ACRO 1.0.2 has process-wide side effects and quirks that this module contains:

* importing it calls ``logging.basicConfig(level=INFO)`` on the root logger and
  adds an "ignore FutureWarning" filter; the import and every call run inside
  :func:`quiet_acro`, which restores the root logger and the warning filters;
* its configuration is read from ``<acro package>/<name>.yaml`` only (a bare
  name, no path); the session is made with the packaged default and its
  thresholds are then replaced by ours, including its checker object;
* a standard-deviation table is blanked entirely, because the outcome of its
  degrees-of-freedom check (a table of numbers) is used as a mask; the
  compendium applies the per-cell rule itself;
* its records carry wall-clock timestamps and the calling source line; both are
  replaced so the bundle is deterministic and says what was asked.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
import math
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import atomic, protection, screening
from .config import ConfigError, load_steps, read_yaml
from .custody import check_access
from .paths import Paths, repo_root

if TYPE_CHECKING:  # pragma: no cover
    from .step import StepContext

#: key of the notebook output metadata that carries the output id
META_KEY = "reintegration"
#: name of the margin row and column of a table
MARGINS = "Total"
#: CBS's symbol for a confidential (suppressed) figure
SUPPRESSED = "x"

STATUSES = ("pass", "review", "fail")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_ALLOWED_AGG = ("count", "mean", "median", "sum", "std")
_ACRO_LOGGERS = ("acro", "acro:records", "acro:summary")

#: reason code -> (display letter, text for a reader). A zero that is not
#: structural shares the letter and wording of the threshold rule on purpose:
#: telling a reader which suppressed cells are zero would undo the suppression.
_REASONS = {
    "threshold": ("n", "fewer than {t} persons, or a zero that is not structural"),
    "dominance": ("d", "dominated by one or two persons (nk rule n={n}, k={k}; p-ratio {p})"),
    "proportion": ("p", "fewer than {t} persons with, or without, the outcome"),
    "dof": ("f", "too few persons for a standard deviation ({dof} degrees of freedom)"),
    # the same letter as the threshold rule on purpose: a reader who could tell
    # a complementary cell (10 or more) from a primary one would know the
    # primary ones are small, and so narrow them (see the protection rule)
    "secondary": ("n", "suppressed so that no other suppressed cell can be derived by subtraction"),
}
_ACRO_CHECK_TO_REASON = {
    "MinimumThresholdCheck": "threshold",
    "PresenceOfZeroCheck": "threshold",
    "NKCheck": "dominance",
    "PPercentCheck": "dominance",
}


class DisclosureError(ValueError):
    """An output that the rules refuse outright (minima, maxima, modes) or a
    request the register cannot check (unknown columns, missing group keys)."""


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """The disclosure-control thresholds (``config/disclosure.yml``)."""

    cell_threshold: int = 10
    nk_n: int = 2
    nk_k: float = 0.9
    p_ratio: float = 0.1
    residual_dof: int = 10
    zeros_disclosive: bool = True
    proportions_as_counts: bool = True
    check_missing_values: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell_threshold": self.cell_threshold,
            "dominance": {"nk_n": self.nk_n, "nk_k": self.nk_k, "p_ratio": self.p_ratio},
            "residual_dof": self.residual_dof,
            "release_minima_maxima": False,
            "zeros_disclosive": self.zeros_disclosive,
            "proportions_as_counts": self.proportions_as_counts,
            "check_missing_values": self.check_missing_values,
        }

    def acro_config(self) -> dict[str, Any]:
        """The same thresholds under ACRO's configuration keys."""
        return {
            "safe_threshold": self.cell_threshold,
            "safe_dof_threshold": self.residual_dof,
            "safe_nk_n": self.nk_n,
            "safe_nk_k": self.nk_k,
            "safe_pratio_p": self.p_ratio,
            "zeros_are_disclosive": self.zeros_disclosive,
            "check_missing_values": self.check_missing_values,
            "survival_safe_threshold": self.cell_threshold,
        }

    def reason_text(self, code: str) -> str:
        return _REASONS[code][1].format(
            t=self.cell_threshold, n=self.nk_n, k=self.nk_k, p=self.p_ratio, dof=self.residual_dof
        )


def load_rules(root: Path | None = None, path: Path | None = None) -> Rules:
    """Read and check ``config/disclosure.yml``; name the file and the key
    when something is wrong."""
    path = path or (root or repo_root()) / "config" / "disclosure.yml"
    data = read_yaml(Path(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")

    def need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
        if not isinstance(mapping, dict) or key not in mapping:
            raise ConfigError(f"{path}: missing required key '{where}{key}'")
        value = mapping[key]
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{path}: key '{where}{key}' must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise ConfigError(f"{path}: key '{where}{key}' has the wrong type: {value!r}")
        return value

    threshold = need(data, "cell_threshold", int)
    dom = need(data, "dominance", dict)
    nk_n = need(dom, "nk_n", int, "dominance.")
    nk_k = float(need(dom, "nk_k", (int, float), "dominance."))
    p_ratio = float(need(dom, "p_ratio", (int, float), "dominance."))
    dof = need(data, "residual_dof", int)
    if need(data, "release_minima_maxima", bool):
        raise ConfigError(
            f"{path}: release_minima_maxima must be false: a minimum or maximum describes one "
            "person, and CBS does not release them"
        )
    if threshold < 1 or nk_n < 1 or dof < 1:
        raise ConfigError(f"{path}: cell_threshold, dominance.nk_n and residual_dof must be >= 1")
    if not 0 < nk_k <= 1 or not 0 < p_ratio < 1:
        raise ConfigError(f"{path}: dominance.nk_k must be in (0, 1] and p_ratio in (0, 1)")
    return Rules(
        cell_threshold=threshold,
        nk_n=nk_n,
        nk_k=nk_k,
        p_ratio=p_ratio,
        residual_dof=dof,
        zeros_disclosive=need(data, "zeros_disclosive", bool),
        proportions_as_counts=bool(data.get("proportions_as_counts", True)),
        check_missing_values=bool(data.get("check_missing_values", False)),
    )


# ---------------------------------------------------------------------------
# ACRO, contained
# ---------------------------------------------------------------------------


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


def acro_module() -> Any:
    """Import ACRO once, without its side effects on logging and warnings."""
    if "acro" in sys.modules and hasattr(sys.modules["acro"], "ACRO"):
        return sys.modules["acro"]
    with quiet_acro():
        import acro  # noqa: PLC0415
    return acro


def acro_version() -> str:
    return str(acro_module().__version__)


def _new_acro_session(rules: Rules) -> Any:
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


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------


@dataclass
class Output:
    """One checked output: what may be shown, and why.

    ``table`` holds the released values of a table (NaN where a cell is
    suppressed); ``flags`` holds, per cell, the reason codes of suppressed
    cells (empty string where released). Displaying an ``Output`` shows the
    masked table (``x`` and a reason letter in suppressed cells), the figure
    or the coefficients, with the output id in the output's metadata.
    """

    output_id: str
    kind: str
    status: str
    reasons: list[str]
    title: str
    rules: Rules
    table: pd.DataFrame | None = None
    flags: pd.DataFrame | None = None
    structural: pd.DataFrame | None = None
    decimals: int | None = None
    png: bytes | None = None
    model: dict[str, Any] | None = None
    path: Path | None = None
    sha256: str | None = None
    _shown_in: int | None = field(default=None, repr=False)

    @property
    def released(self) -> bool:
        return self.status != "fail"

    # ---- display -----------------------------------------------------------
    def display_frame(self) -> pd.DataFrame:
        """The table as a reader sees it: numbers formatted, suppressed cells
        shown as ``x (letter)``, structurally empty cells as ``–``."""
        if self.table is None or self.flags is None:
            raise ValueError(f"{self.output_id} is not a table")
        shown = pd.DataFrame("", index=self.table.index, columns=self.table.columns, dtype=object)
        values = self.table.to_numpy()
        flags = self.flags.to_numpy()
        structural = (
            self.structural.to_numpy()
            if self.structural is not None
            else np.zeros(values.shape, dtype=bool)
        )
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if flags[i, j]:
                    codes = flags[i, j].split(",")
                    letters = ",".join(dict.fromkeys(_REASONS[c][0] for c in codes))
                    shown.iat[i, j] = f"{SUPPRESSED} ({letters})"
                elif structural[i, j] and _isnan(values[i, j]):
                    shown.iat[i, j] = "–"
                else:
                    shown.iat[i, j] = _fmt(values[i, j], self.decimals)
        return shown

    def legend(self) -> list[str]:
        lines = []
        if self.flags is not None:
            used = sorted(
                {c for cell in self.flags.to_numpy().ravel() if cell for c in cell.split(",")}
            )
            texts: dict[str, list[str]] = {}
            for code in used:
                texts.setdefault(_REASONS[code][0], []).append(self.rules.reason_text(code))
            for letter, said in texts.items():
                lines.append(f"{SUPPRESSED} ({letter}): suppressed, {'; or '.join(said)}")
            if self.structural is not None and self.structural.to_numpy().any():
                lines.append("0 or –: structurally empty (true by definition, not suppressed)")
        return lines

    def to_html(self) -> str:
        head = (
            f'<p class="disclosure-title"><strong>{html.escape(self.title)}</strong> '
            f"<code>{html.escape(self.output_id)}</code> · {html.escape(self.status)}</p>"
        )
        if not self.released:
            why = "; ".join(self.reasons) or "refused"
            return (
                f'<div class="disclosure-withheld">{head}<p>Withheld by disclosure control: '
                f"{html.escape(why)}. Nothing of this output is shown or released.</p></div>"
            )
        if self.kind == "table":
            body = self.display_frame().to_html(escape=True, na_rep="")
        elif self.kind == "model":
            body = _coef_frame(self.model or {}).to_html(escape=True, float_format=_g)
        else:
            body = (
                f'<img alt="{html.escape(self.title)}" '
                f'src="data:image/png;base64,{base64.b64encode(self.png or b"").decode()}"/>'
            )
        notes = [*self.legend()]
        if self.kind == "model" and self.model:
            notes.insert(0, f"n = {self.model['nobs']}; residual df = {self.model['df_resid']}")
        notes += [f"Note: {r}" for r in self.reasons]
        foot = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        foot = f'<ul class="disclosure-notes">{foot}</ul>' if foot else ""
        return f'<div class="disclosure-output">{head}{body}{foot}</div>'

    def to_text(self) -> str:
        lines = [f"{self.title} [{self.output_id}] {self.status}"]
        if not self.released:
            lines.append("withheld by disclosure control: " + "; ".join(self.reasons))
        elif self.kind == "table":
            lines.append(self.display_frame().to_string())
        elif self.kind == "model":
            lines.append(_coef_frame(self.model or {}).to_string())
        else:
            lines.append("<figure>")
        lines += self.legend() + [f"Note: {r}" for r in self.reasons]
        return "\n".join(lines)

    def mimebundle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The notebook output: data by MIME type, and metadata with the id."""
        meta = {META_KEY: {"output_id": self.output_id, "status": self.status, "kind": self.kind}}
        if self.kind == "figure" and self.released:
            data = {
                "image/png": base64.b64encode(self.png or b"").decode("ascii"),
                "text/plain": f"<figure {self.output_id}: {self.title}>",
            }
        else:
            data = {"text/html": self.to_html(), "text/plain": self.to_text()}
        return data, meta

    def _ipython_display_(self) -> None:
        # the call that made this output has displayed it already in this cell
        if self._shown_in is not None and self._shown_in == _execution_count():
            return
        publish(self)

    def __repr__(self) -> str:
        return f"<Output {self.output_id} {self.kind} {self.status}>"


def _execution_count() -> int | None:
    ip = _ipython()
    return None if ip is None else ip.execution_count


def _ipython() -> Any:
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def publish(out: Output) -> None:
    """Display an output in a running notebook, with its id in the output
    metadata; does nothing outside IPython."""
    ip = _ipython()
    if ip is None:
        return
    from IPython.display import display  # noqa: PLC0415

    data, meta = out.mimebundle()
    display(data, raw=True, metadata=meta)
    out._shown_in = ip.execution_count


def _isnan(value: Any) -> bool:
    try:
        return value is None or value is pd.NA or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: Any, decimals: int | None) -> str:
    if _isnan(value):
        return ""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):d}"
    if isinstance(value, float | np.floating):
        if decimals is not None:
            return f"{float(value):.{decimals}f}"
        return f"{int(value):d}" if float(value).is_integer() else f"{float(value):g}"
    return str(value)


def _g(value: float) -> str:
    return f"{value:.4g}"


def _coef_frame(model: dict[str, Any]) -> pd.DataFrame:
    names = list(model.get("params", {}))
    return pd.DataFrame(
        {
            "estimate": [model["params"][k] for k in names],
            "std. error": [model["std_errors"][k] for k in names],
            "95% CI lower": [model["conf_int"][k][0] for k in names],
            "95% CI upper": [model["conf_int"][k][1] for k in names],
            "p-value": [model["pvalues"][k] for k in names],
        },
        index=pd.Index(names, name="parameter"),
    )


# ---------------------------------------------------------------------------
# the register
# ---------------------------------------------------------------------------


def register(ctx: StepContext, *, rules: Rules | None = None) -> Register:
    """Open the output register of the step run behind ``ctx``.

    A rerun of the step starts from an empty register: the step's previous
    outputs in ``build/<size>/<city>/outputs/<step>/`` are removed.
    """
    return Register(ctx, rules=rules)


class Register:
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
        self._published: dict[str, list[protection.CountTable]] = {}
        if self.dir.exists():
            check_access(ctx.role, self.dir, "write", ctx.domains)
            shutil.rmtree(self.dir)
        self._flush()

    # ---- public API ----------------------------------------------------------
    @property
    def output_ids(self) -> list[str]:
        return sorted(e["id"] for e in self.entries.values())

    def crosstab(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        *,
        margins: bool = False,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        title: str | None = None,
        population: str | None = None,
        dims: Sequence[str] | None = None,
        fixed: dict[str, str] | None = None,
        coarsen: dict[str, tuple[str, dict[str, str]]] | None = None,
        blocks: dict[str, Any] | None = None,
    ) -> Output:
        """A frequency table (persons per cell), checked by ACRO.

        Cells under the threshold and zeros not declared in
        ``structural_zeros`` (pairs ``(row, column)``; a row or column of a
        multi-level table is a tuple) are suppressed. With ``margins`` the
        totals are the true totals, suppressed like any cell when small.

        ``population`` names the set of units the table counts (for example
        ``"cohort persons"``). Tables of the same population are protected
        together: complementary cells are suppressed until no suppressed
        cell of this or an earlier table of that population (in this step or
        an earlier one of the city) can be narrowed by subtraction (see
        :mod:`reintegration.protection`). Without it the table is protected
        on its own. Tables join on their variables' names: ``dims`` renames
        the row and column variables for that purpose (when two tables use
        one column name for different things), ``fixed`` declares the table a
        slice (``{"table": "clients"}``), ``coarsen`` a coarser variable
        derived from one of its own (``{"quarter": ("year", {...})}``), and
        ``blocks`` a stack of sub-tables joined one by one (see
        :func:`reintegration.protection.split_blocks`).
        """
        link = {
            "population": population,
            "dims": dims,
            "fixed": fixed,
            "coarsen": coarsen,
            "blocks": blocks,
        }
        return self._table(
            name,
            df,
            index,
            columns,
            None,
            None,
            margins,
            structural_zeros,
            title,
            None,
            link=link,
        )

    def table(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        *,
        values: str,
        aggfunc: str = "mean",
        margins: bool = False,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        decimals: int = 2,
        title: str | None = None,
    ) -> Output:
        """A table of ``aggfunc`` (mean, median, sum, std or count) of
        ``values`` per cell, checked by ACRO (threshold, dominance) and by the
        compendium (proportions, standard deviations). Minima, maxima and
        modes are refused."""
        agg = str(getattr(aggfunc, "__name__", aggfunc)).lower()
        if agg in ("min", "max", "amin", "amax", "nanmin", "nanmax", "minimum", "maximum"):
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc={aggfunc!r} refused: a minimum or maximum is the "
                "value of one person, and CBS does not release minima or maxima. Report a "
                "percentile band of a large group, or a rounded range, instead"
            )
        if agg == "mode":
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc='mode' refused: a mode is a value held by named "
                "persons, and ACRO picks one of several modes at random (not reproducible)"
            )
        if agg not in _ALLOWED_AGG:
            raise DisclosureError(
                f"{self.step}/{name}: aggfunc={aggfunc!r} is not supported; use one of "
                f"{', '.join(_ALLOWED_AGG)}"
            )
        if agg == "count":
            return self._table(
                name, df, index, columns, values, None, margins, structural_zeros, title, None
            )
        return self._table(
            name, df, index, columns, values, agg, margins, structural_zeros, title, decimals
        )

    def model(
        self,
        name: str,
        results: Any,
        *,
        groups: pd.DataFrame | pd.Series | None = None,
        unit: str | None = None,
        params: Sequence[str] | None = None,
        title: str | None = None,
    ) -> Output:
        """A fitted model: statsmodels results are checked by ACRO, linearmodels
        results by the compendium; both must have at least ``residual_dof``
        residual degrees of freedom.

        ``groups`` holds the treatment and group variables of the estimation
        sample (one row per observation); every combination must hold at least
        ``cell_threshold`` persons, counted as distinct values of ``unit`` (a
        column or index level of ``groups``) when given, else as rows. Without
        ``groups`` the output is released for review, with a note that cell
        counts were not checked. ``params`` limits the released coefficients
        (never release fixed effects of small units).
        """
        self._check_name(name)
        rules = self.rules
        family = _model_family(results)
        dof = _df_resid(results)
        reasons: list[str] = []
        checks: dict[str, Any] = {"residual_dof": dof if dof >= rules.residual_dof else None}
        status = "pass"
        # statsmodels: ACRO checks the residual degrees of freedom (the same
        # rule as below, from the same configuration)
        checked = self._acro_model_check(results) if family == "statsmodels" else None
        if checked is not None and checked.overall_status == "fail":
            status = "fail"
        if dof < rules.residual_dof:
            reasons.append(
                f"residual degrees of freedom below {rules.residual_dof}: the model would be "
                "close to a lookup table of individual values"
            )
            status = "fail"
        if groups is None:
            reasons.append(
                "no treatment or group variables declared: cell counts were not checked; "
                "an output checker must confirm every group has enough persons"
            )
            if status == "pass":
                status = "review"
        else:
            cells = _group_counts(groups, unit)
            small = cells[cells < rules.cell_threshold]
            checks["group_cells"] = {
                _label(k): (int(v) if v >= rules.cell_threshold else None) for k, v in cells.items()
            }
            if len(small):
                reasons.append(
                    f"treatment/group cells with fewer than {rules.cell_threshold} persons: "
                    f"{len(small)} of {len(cells)} ({', '.join(_label(k) for k in small.index)})"
                )
                status = "fail"
        record = _model_record(results, family, params) if status != "fail" else None
        out = Output(
            output_id=f"{self.step}/{name}",
            kind="model",
            status=status,
            reasons=reasons,
            title=title or name.replace("_", " "),
            rules=rules,
            model=record,
        )
        if record is not None:
            record["id"] = out.output_id
            payload = atomic.dumps_json(record).encode("utf-8")
            out.path, out.sha256 = self._write_file(f"{name}.json", payload)
        checks["nobs"] = record["nobs"] if record else None
        entry = self._entry(out, checks)
        if checked is not None:
            # ACRO's summary text quotes the degrees of freedom of a refused
            # model; the register keeps only its verdict per check
            entry["acro"] = {
                "status": checked.overall_status,
                "checks": dict(sorted(checked.fair_dict["check_status"].items())),
            }
        self._acro_record_model(name, out, results, checked)
        return self._commit(name, out, entry)

    def effect(
        self,
        name: str,
        results: Any,
        *,
        title: str | None = None,
    ) -> Output:
        """Effect estimates of :mod:`reintegration.effects`, checked by the
        compendium's rules and shown as a coefficient table.

        ``results`` is one :class:`~reintegration.effects.EffectResult` or a
        mapping of row labels to results. Each must have at least
        ``residual_dof`` residual degrees of freedom and at least
        ``cell_threshold`` persons in each group behind it (see
        :func:`check_effect`); if one fails, nothing is released. The
        released file holds each result's ``to_record()``.
        """
        self._check_name(name)
        items = dict(results) if isinstance(results, dict) else {name: results}
        if not items:
            raise DisclosureError(f"{self.step}/{name}: no effect results given")
        status, reasons, checks = "pass", [], {}
        for label, res in items.items():
            s, r, c = check_effect(res, self.rules)
            checks[str(label)] = c
            reasons += [f"{label}: {x}" for x in r]
            if s == "fail":
                status = "fail"
        record = None
        if status != "fail":
            recs = {str(k): v.to_record() for k, v in items.items()}
            record = {
                "estimator": "reintegration.effects",
                "library": "reintegration",
                "dependent": None,
                "params": {k: r["estimate"] for k, r in recs.items()},
                "std_errors": {k: r["std_error"] for k, r in recs.items()},
                "conf_int": {k: [r["ci_low"], r["ci_high"]] for k, r in recs.items()},
                "pvalues": {k: r["pvalue"] for k, r in recs.items()},
                "nobs": min(int(v.n) for v in items.values()),
                "df_resid": min(c["residual_dof"] for c in checks.values()),
                "effects": recs,
            }
        out = Output(
            output_id=f"{self.step}/{name}",
            kind="model",
            status=status,
            reasons=reasons,
            title=title or name.replace("_", " "),
            rules=self.rules,
            model=record,
        )
        if record is not None:
            record["id"] = out.output_id
            payload = atomic.dumps_json(record).encode("utf-8")
            out.path, out.sha256 = self._write_file(f"{name}.json", payload)
        entry = self._entry(out, checks)
        self._acro_record_custom(name, out, "effect")
        return self._commit(name, out, entry)

    def figure(
        self,
        name: str,
        fig: Any,
        *,
        counts: pd.DataFrame | pd.Series | Output,
        structural_zeros: Iterable[tuple[Any, Any]] = (),
        title: str | None = None,
        dpi: int = 100,
    ) -> Output:
        """A matplotlib figure and the data behind it, released only if every
        count it shows passes.

        ``counts`` holds every count the figure depends on (numerators and
        denominators; NaN marks something not shown), or is the :class:`Output`
        of a released table the figure was drawn from. Counts given directly
        cannot be partly suppressed: if one fails, nothing is released. A
        figure drawn from a released table with suppressed cells is released
        for review; it must draw those cells as suppressed
        (:mod:`reintegration.figures`), never as zero.

        Besides ``<name>.png``, the data behind the figure (the released table
        or the counts, suppressed cells empty) is written to ``<name>.csv``
        and recorded in the register entry (``data_file``, ``data_sha256``,
        and ``checks["data"]`` with its statistic and structural zeros), so
        the bundle and the audit check it like a table. The figure is closed,
        so the notebook does not show it a second time unchecked.
        """
        self._check_name(name)
        rules = self.rules
        reasons: list[str] = []
        checks: dict[str, Any] = {}
        if isinstance(counts, Output):
            checks["based_on"] = counts.output_id
            status = {"pass": "pass", "review": "review"}.get(counts.status, "fail")
            if status == "fail":
                reasons.append(f"drawn from {counts.output_id}, which was withheld")
            elif status == "review":
                reasons.append(
                    f"drawn from {counts.output_id} (status review); its suppressed cells are "
                    "drawn hatched and labelled as suppressed, not as values"
                )
        else:
            status, reasons, checks = _check_counts(counts, structural_zeros, rules)
        out = Output(
            output_id=f"{self.step}/{name}",
            kind="figure",
            status=status,
            reasons=reasons,
            title=title or name.replace("_", " "),
            rules=rules,
        )
        data = None
        if status != "fail":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
            out.png = buf.getvalue()
            out.path, out.sha256 = self._write_file(f"{name}.png", out.png)
            payload, checks["data"] = self._figure_data(counts, structural_zeros)
            data = self._write_file(f"{name}.csv", payload)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)
        entry = self._entry(out, checks)
        entry["data_file"] = (
            None if data is None else data[0].relative_to(self.ctx.out_dir).as_posix()
        )
        entry["data_sha256"] = None if data is None else data[1]
        self._acro_record_custom(name, out, "figure")
        return self._commit(name, out, entry)

    def _figure_data(
        self, counts: pd.DataFrame | pd.Series | Output, structural_zeros: Iterable[tuple[Any, Any]]
    ) -> tuple[bytes, dict[str, Any]]:
        """The CSV of the data behind a figure and what it holds: the released
        table it was drawn from (the same bytes as that table's CSV), or the
        counts given, with NaN (not shown) as an empty cell."""
        if isinstance(counts, Output):
            if counts.path is not None and counts.path.suffix == ".csv":
                payload = counts.path.read_bytes()
            else:
                frame = counts.table if counts.table is not None else pd.DataFrame()
                payload = screening.csv_bytes(frame, na_rep="")
            source = self.entries.get(counts.output_id.split("/", 1)[1], {})
            source_checks = (
                source.get("checks") or {} if source.get("id") == counts.output_id else {}
            )
            # the same bytes as the table: the same layout, so the audit's
            # differencing attack reads the figure's data as it reads the table
            layout = {
                k: source_checks[k]
                for k in _LAYOUT_KEYS
                if k in source_checks and source_checks.get("population")
            }
            return payload, {
                "statistic": source_checks.get("statistic"),
                "structural_zeros": source_checks.get("structural_zeros", []),
                "index_columns": 1 if counts.table is None else counts.table.index.nlevels,
                "from": counts.output_id,
                **layout,
            }
        frame = counts.to_frame() if isinstance(counts, pd.Series) else counts.copy()
        if isinstance(frame.columns, pd.MultiIndex):
            frame.columns = [_label(c) for c in frame.columns]
        payload = screening.csv_bytes(frame, na_rep="")
        zeros = [
            {"row": _label(r), "column": _label(c if c is not None else frame.columns[0])}
            for r, c in structural_zeros
        ]
        return payload, {
            "statistic": "count",
            "structural_zeros": zeros,
            "index_columns": frame.index.nlevels,
            "from": None,
        }

    def public_table(
        self,
        name: str,
        df: pd.DataFrame,
        *,
        reason: str,
        count_columns: Sequence[str] = (),
        title: str | None = None,
        population: str | None = None,
        index: str | None = None,
    ) -> Output:
        """A table that is not computed from person-level data (configuration,
        file inventories), registered so the audit knows it was looked at.

        ``reason`` says why it is not about persons. Counts it shows (for
        example rows per delivered file) go in ``count_columns`` and must pass
        the threshold and zero rules; if one fails, nothing is released.
        With ``population`` and ``index`` (the column whose values name the
        rows) the counts join the other tables of that population in the
        differencing attack of the audit (see :meth:`crosstab`).
        """
        self._check_name(name)
        if not reason.strip():
            raise DisclosureError(f"{self.step}/{name}: say why this table is not about persons")
        missing = [c for c in count_columns if c not in df.columns]
        if missing:
            raise DisclosureError(f"{self.step}/{name}: no column(s) {missing} in the table")
        if count_columns:
            status, reasons, checks = _check_counts(df[list(count_columns)], (), self.rules)
        else:
            status, reasons, checks = "pass", [], {}
        if population is not None:
            known = [*df.columns, *df.index.names]
            if index is None or index not in known or len(count_columns) != 1:
                raise DisclosureError(
                    f"{self.step}/{name}: a public table joins its population by one index "
                    "column and one count column"
                )
            checks.update(
                population=population,
                dims=[index],
                fixed={},
                coarsen={},
                index_column=index,
                count_column=count_columns[0],
                index_levels=1,
                column_levels=0,
            )
            if status != "fail":  # later tables of this step are protected against it
                counts = df.reset_index() if index not in df.columns else df
                shown = counts.set_index(index)[[count_columns[0]]].astype(float)
                published = protection.from_frame(
                    f"{self.step}/{name}", population, shown, dims=[index], oneway=True
                )
                self._published_tables(population).append(published)
        reasons = [f"not computed from person-level data: {reason.strip()}", *reasons]
        table = df.copy()
        out = Output(
            output_id=f"{self.step}/{name}",
            kind="table",
            status=status,
            reasons=reasons,
            title=title or name.replace("_", " "),
            rules=self.rules,
            table=table,
            flags=pd.DataFrame("", index=table.index, columns=table.columns, dtype=object),
            decimals=None,
        )
        if status != "fail":
            payload = screening.csv_bytes(table)  # formulas neutralised
            out.path, out.sha256 = self._write_file(f"{name}.csv", payload)
        entry = self._entry(out, checks)
        return self._commit(name, out, entry)

    # ---- tables ----------------------------------------------------------------
    def _table(
        self,
        name: str,
        df: pd.DataFrame,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None,
        values: str | None,
        agg: str | None,
        margins: bool,
        structural_zeros: Iterable[tuple[Any, Any]],
        title: str | None,
        decimals: int | None,
        link: dict[str, Any] | None = None,
    ) -> Output:
        self._check_name(name)
        rules = self.rules
        rows = [index] if isinstance(index, str) else list(index)
        cols = [] if columns is None else [columns] if isinstance(columns, str) else list(columns)
        if not rows:
            raise DisclosureError(f"{self.step}/{name}: a table needs at least one index column")
        dims = rows + cols
        needed = dims + ([values] if values else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DisclosureError(f"{self.step}/{name}: no column(s) {missing} in the data")
        if len(set(needed)) != len(needed):
            raise DisclosureError(f"{self.step}/{name}: a column is used twice: {needed}")
        data = df[needed].copy()
        for col in dims:
            if data[col].isna().any():
                raise DisclosureError(
                    f"{self.step}/{name}: column {col!r} has missing values; recode them to an "
                    "explicit category (such as 'unknown') so they are counted, not dropped"
                )
        statistic = "count" if values is None else f"{agg or 'count'} of {values}"
        oneway = not cols
        if oneway:  # one column, named after the statistic
            data["statistic"] = statistic
            cols = ["statistic"]
            dims = rows + cols
        if values is not None and data[values].dtype == bool:
            data[values] = data[values].astype(int)
        binary = (
            agg in ("mean", "sum")
            and rules.proportions_as_counts
            and values is not None
            and pd.api.types.is_numeric_dtype(data[values])
            and set(pd.unique(data[values].dropna())) <= {0, 1}
        )

        # ACRO checks the request (and records it for the output checker)
        uid, record = self._acro_table(data, rows, cols, values, agg, margins)
        try:
            outcome = record.outcome

            counts = _crosstab(data, rows, cols, None, None, margins)
            n_contrib = (
                counts if values is None else _crosstab(data, rows, cols, values, "count", margins)
            )
            raw = counts if agg is None else _crosstab(data, rows, cols, values, agg, margins)
            if values is not None and agg is None:  # aggfunc="count" of a column
                raw = n_contrib
            shape = raw.shape
            flags = np.full(shape, "", dtype=object)

            def flag(mask: np.ndarray, code: str) -> None:
                for i, j in zip(*np.nonzero(mask), strict=True):
                    if code not in flags[i, j].split(","):
                        flags[i, j] = f"{flags[i, j]},{code}" if flags[i, j] else code

            # ACRO's verdicts per cell (its std verdict is the known bug: see below)
            acro_out = _align(outcome, raw, name)
            for check, code in _ACRO_CHECK_TO_REASON.items():
                flag(acro_out.map(lambda s, c=check: c in str(s)).to_numpy(), code)
            # our own count rules, independent of ACRO (margins included)
            n = n_contrib.to_numpy(dtype=float)
            flag(n < rules.cell_threshold, "threshold")
            if agg == "std":
                # ACRO 1.0.2 uses the table of degrees of freedom as a mask and so
                # blanks every cell; the rule it means is per cell: n - 1 >= dof.
                flag(n - 1 < rules.residual_dof, "dof")
            if binary:
                ones = _crosstab(data, rows, cols, values, "sum", margins).to_numpy(dtype=float)
                zeros = n - ones
                few_ones = (ones < rules.cell_threshold) & ((ones > 0) | rules.zeros_disclosive)
                few_zeros = (zeros < rules.cell_threshold) & ((zeros > 0) | rules.zeros_disclosive)
                flag((n > 0) & (few_ones | few_zeros), "proportion")
            if not rules.zeros_disclosive:
                # a zero is not disclosive by configuration: empty count cells stay
                empty = n == 0
                for i, j in zip(*np.nonzero(empty), strict=True):
                    flags[i, j] = ",".join(c for c in flags[i, j].split(",") if c != "threshold")

            structural = np.zeros(shape, dtype=bool)
            declared = list(structural_zeros)
            for key in declared:
                i, j = _locate(raw, key, name, self.step)
                if n[i, j] != 0:
                    raise DisclosureError(
                        f"{self.step}/{name}: cell {key!r} is declared a structural zero but is "
                        "not empty; a structural zero is empty by definition"
                    )
                structural[i, j] = True
                flags[i, j] = ""

            row_margin = np.array([_is_margin(k) for k in raw.index]) if margins else None
            col_margin = np.array([_is_margin(k) for k in raw.columns]) if margins else None
            released = raw.astype(float).copy()
            is_count = agg is None
            if margins and not is_count and row_margin is not None and col_margin is not None:
                # a mean or sum over the shown cells only: a magnitude total
                # must not contain the values of suppressed cells
                inner = ~row_margin[:, None] & ~col_margin[None, :]
                drop = np.vectorize(bool)(flags) & inner
                if drop.any():
                    released, n_after = self._redact(data, rows, cols, values, agg, raw, drop)
                    margin_cells = ~inner & ~np.vectorize(bool)(flags)
                    flag(margin_cells & (n_after < rules.cell_threshold), "secondary")
            protected = None
            if is_count:
                protected = self._protect(name, raw, flags, dims, oneway, link or {})
                flag(protected, "secondary")
            suppressed = np.vectorize(bool)(flags)
            arr = released.to_numpy(dtype=float)
            arr[suppressed] = np.nan
            released = pd.DataFrame(arr, index=raw.index, columns=raw.columns)
            if decimals is not None:
                released = released.round(decimals)
            else:
                released = released.astype("Int64")

            if oneway and col_margin is not None:  # the total column repeats the only column
                keep = ~col_margin
                raw, released = raw.loc[:, keep], released.loc[:, keep]
                flags, structural, suppressed = (
                    flags[:, keep],
                    structural[:, keep],
                    suppressed[:, keep],
                )
            cell_keys = _cell_keys(raw, oneway)
            n_cells = int(suppressed.size)
            n_supp = int(suppressed.sum())
            reasons = _table_reasons(flags, rules)
            if declared:
                reasons.append(f"structural zeros declared: {len(declared)} cell(s) shown as empty")
            if n_supp == n_cells:
                status = "fail"
                reasons.insert(0, "every cell would be suppressed: nothing to release")
            elif n_supp:
                status = "review"
            else:
                status = "pass"
            out = Output(
                output_id=f"{self.step}/{name}",
                kind="table",
                status=status,
                reasons=reasons,
                title=title or name.replace("_", " "),
                rules=rules,
                table=released,
                flags=pd.DataFrame(flags, index=raw.index, columns=raw.columns),
                structural=pd.DataFrame(structural, index=raw.index, columns=raw.columns),
                decimals=decimals,
            )
            if status != "fail":
                fmt = None if decimals is None else f"%.{decimals}f"
                payload = screening.csv_bytes(released, na_rep="", float_format=fmt)
                out.path, out.sha256 = self._write_file(f"{name}.csv", payload)
            checks = {
                "statistic": statistic,
                "cells": n_cells,
                "suppressed": n_supp,
                **(self._layout(raw, dims, oneway, link or {}) if is_count else {}),
                "suppressed_cells": [
                    {
                        "row": _label(raw.index[i]),
                        "column": _label(raw.columns[j]),
                        "key": [str(x) for x in cell_keys[i][j]],
                        "reasons": flags[i, j].split(","),
                    }
                    for i, j in zip(*np.nonzero(suppressed), strict=True)
                ],
                "structural_zeros": [
                    {"row": _label(raw.index[i]), "column": _label(raw.columns[j])}
                    for i, j in zip(*np.nonzero(structural), strict=True)
                ],
            }
            entry = self._entry(out, checks)
            entry["acro"] = {"status": record.status, "flagged": _acro_flagged(acro_out)}
        except BaseException:
            # nothing half-checked may stay in ACRO's record for the checker
            self.session().remove_output(uid)
            raise
        self._acro_finish_table(uid, name, out, agg, declared, binary)
        return self._commit(name, out, entry)

    def _protect(
        self,
        name: str,
        raw: pd.DataFrame,
        flags: np.ndarray,
        dims: list[str],
        oneway: bool,
        link: dict[str, Any],
    ) -> np.ndarray:
        """The cells to suppress in addition, so that no suppressed cell of
        this table or of an earlier one of its population can be derived."""
        full = raw.shape
        if oneway:  # the total column of a one-way table repeats its only column
            raw, flags = raw.iloc[:, :1], flags[:, :1]
        primary = np.vectorize(bool)(flags)
        shown = raw.astype(float).mask(primary)
        keys = _cell_keys(raw, oneway)
        population = link.get("population")
        table = protection.from_frame(
            f"{self.step}/{name}",
            population or f"{self.step}/{name}",
            shown,
            dims=self._layout(raw, dims, oneway, link)["dims"],
            sensitive=[keys[i][j] for i, j in zip(*np.nonzero(primary), strict=True)],
            truth=raw.astype(float),
            oneway=oneway,
            fixed=link.get("fixed"),
            coarsen=link.get("coarsen"),
        )
        earlier = self._published_tables(table.population) if population else []
        parts = protection.split_blocks(table, link["blocks"]) if link.get("blocks") else [table]
        added: set[tuple[Any, ...]] = set()
        for part in parts:
            found = protection.protect(part, earlier, self.rules.cell_threshold)
            added |= {part.origin.get(k, k) for k in found}
            earlier = [*earlier, part]
        if population:
            self._published.setdefault(population, []).extend(parts)
        n_rows = raw.index.nlevels
        mask = np.zeros(full, dtype=bool)
        for i, row in enumerate(keys):
            for j, key in enumerate(row):
                mask[i, j] = protection.normal_key(key, n_rows) in added
        return mask

    def _published_tables(self, population: str) -> list[protection.CountTable]:
        """Tables of ``population`` released before this one: earlier in this
        step, and in the steps it needs, directly or not (config/steps.yml),
        which have finished before it starts. A step that runs beside this one
        is never read, so the result does not depend on the order of a
        parallel build."""
        if population not in self._published:
            found: list[protection.CountTable] = []
            folder = self.ctx.out_dir / "outputs"
            upstream = _upstream_steps(self.step, self.ctx.paths.root)
            for path in sorted(folder.glob("*/register.json")):
                if path.parent.name not in upstream:
                    continue
                reg = json.loads(self.ctx.check_read(path).read_text(encoding="utf-8"))
                found += protection.tables_from_register(
                    reg, lambda rel: self.ctx.check_read(self.ctx.out_dir / rel), population
                )
            self._published[population] = found
        return self._published[population]

    def _layout(
        self, raw: pd.DataFrame, dims: list[str], oneway: bool, link: dict[str, Any]
    ) -> dict[str, Any]:
        """How the released CSV of a count table reads back and joins other
        tables of its population, for the audit."""
        own = list(dims[:-1] if oneway else dims)
        names = list(link.get("dims") or own)
        if len(names) != len(own):
            raise DisclosureError(
                f"{self.step}: dims={names} names {len(names)} variables; the table has "
                f"{len(own)} ({own})"
            )
        coarsen = {
            f: [c, {str(k): str(v) for k, v in m.items()}]
            for f, (c, m) in (link.get("coarsen") or {}).items()
        }
        return {
            "population": link.get("population"),
            "dims": names,
            "fixed": {str(k): str(v) for k, v in (link.get("fixed") or {}).items()},
            "coarsen": coarsen,
            **({"blocks": link["blocks"]} if link.get("blocks") else {}),
            "index_levels": raw.index.nlevels,
            "column_levels": 0 if oneway else raw.columns.nlevels,
        }

    def _redact(
        self,
        data: pd.DataFrame,
        rows: list[str],
        cols: list[str],
        values: str | None,
        agg: str | None,
        raw: pd.DataFrame,
        drop: np.ndarray,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Recompute a table with margins without the persons in suppressed
        cells, so no total reveals a suppressed cell by subtraction."""
        keys = []
        for i, j in zip(*np.nonzero(drop), strict=True):
            r = raw.index[i] if len(rows) > 1 else (raw.index[i],)
            c = raw.columns[j] if len(cols) > 1 else (raw.columns[j],)
            keys.append((*r, *c))
        gone = pd.DataFrame(keys, columns=rows + cols).astype(data[rows + cols].dtypes.to_dict())
        gone["_gone"] = True
        kept = data.merge(gone, on=rows + cols, how="left")
        kept = kept[kept["_gone"].isna()].drop(columns="_gone")
        if kept.empty:
            empty = pd.DataFrame(np.nan, index=raw.index, columns=raw.columns)
            return empty, np.zeros(raw.shape)
        n_stat = "count" if values is not None else None
        table = _crosstab(kept, rows, cols, values, agg if agg else n_stat, True)
        n_after = _crosstab(kept, rows, cols, values, n_stat, True)
        table = table.reindex(index=raw.index, columns=raw.columns)
        n_after = n_after.reindex(index=raw.index, columns=raw.columns).fillna(0)
        return table.astype(float), n_after.to_numpy(dtype=float)

    # ---- ACRO records ------------------------------------------------------------
    def session(self) -> Any:
        """The step's ACRO session (created on first use)."""
        if self._session is None:
            self._session = _new_acro_session(self.rules)
        return self._session

    def _acro_table(
        self,
        data: pd.DataFrame,
        rows: list[str],
        cols: list[str],
        values: str | None,
        agg: str | None,
        margins: bool,
    ) -> tuple[str, Any]:
        s = self.session()
        index = [data[c].reset_index(drop=True) for c in rows]
        columns = [data[c].reset_index(drop=True) for c in cols]
        vals = data[values].reset_index(drop=True) if values is not None else None
        aggfunc = agg if vals is not None else None
        if vals is not None and aggfunc is None:
            aggfunc = "count"
        with quiet_acro():
            s.crosstab(
                index, columns, values=vals, aggfunc=aggfunc, margins=margins, margins_name=MARGINS
            )
        uid = f"output_{s.results.output_id - 1}"
        return uid, s.results.get(uid)

    def _acro_finish_table(
        self,
        uid: str,
        name: str,
        out: Output,
        agg: str | None,
        declared: list[Any],
        binary: bool,
    ) -> None:
        s = self.session()
        if not out.released:
            s.remove_output(uid)
            return
        s.rename_output(uid, name)
        rec = s.results.get(name)
        rec.output = [out.table]
        rec.timestamp = ""
        rec.command = f"register.{'crosstab' if agg is None else 'table'}({out.output_id!r})"
        notes = [
            "The compendium applied the suppression from these cell outcomes and its own "
            "count rules; the output is the released table."
        ]
        if agg == "std":
            notes.append(
                "ACRO 1.0.2 flags every cell of a standard-deviation table (its degrees-of-"
                "freedom outcome is used as a mask); the compendium applied the per-cell rule "
                f"n - 1 >= {self.rules.residual_dof} and the threshold rule instead."
            )
        if declared:
            notes.append(f"Structural zeros declared by the researcher: {declared!r}.")
        if binary:
            notes.append(
                "The values are 0/1: persons with and without the outcome were each held to "
                "the threshold rule."
            )
        for note in notes:
            s.add_comments(name, note)
        if out.status == "review" or rec.status != "pass":
            rec.status = "review"
            s.add_exception(name, "Suppression applied where needed; see comments.")
        self._flush_acro()

    def _acro_model_check(self, results: Any) -> Any:
        s = self.session()
        analysis = {"Logit": "Logit", "Probit": "Probit"}.get(
            type(results.model).__name__, "GeneralLinearModel"
        )
        with quiet_acro():
            evidence = s.sdc_checks.get_evidence_forall_analyses([analysis], results.model)
            checked = s.sdc_checks.run_checks_for_analysis(analysis, evidence, results.model)
        return checked

    def _acro_record_model(self, name: str, out: Output, results: Any, checked: Any) -> None:
        if not out.released:
            return
        if checked is None:  # linearmodels: ACRO cannot check it; offered as a file
            self._acro_record_custom(name, out, "model")
            return
        s = self.session()
        s.results.add(
            status=checked.overall_status,
            output_type="regression",
            properties={"method": type(results.model).__name__, "dof": _df_resid(results)},
            sdc={},
            fair=checked.fair_dict,
            command=f"register.model({out.output_id!r})",
            summary=checked.summaries,
            outcome=pd.DataFrame(),
            output=[_coef_frame(out.model or {})],
        )
        uid = f"output_{s.results.output_id - 1}"
        s.rename_output(uid, name)
        s.results.get(name).timestamp = ""
        for reason in out.reasons:
            s.add_comments(name, reason)
        self._flush_acro()

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
            for fname in sorted(written):
                self._write_file(f"acro/{fname}", (folder / fname).read_bytes())

    # ---- bookkeeping -------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not _NAME.match(name):
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


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _crosstab(
    data: pd.DataFrame,
    rows: list[str],
    cols: list[str],
    values: str | None,
    agg: str | None,
    margins: bool,
) -> pd.DataFrame:
    index = [data[c] for c in rows]
    columns = [data[c] for c in cols]
    if values is None or agg is None:
        return pd.crosstab(index, columns, margins=margins, margins_name=MARGINS, dropna=False)
    table = pd.crosstab(
        index,
        columns,
        values=data[values],
        aggfunc=agg,
        margins=margins,
        margins_name=MARGINS,
        dropna=False,
    )
    if agg in ("count", "sum"):
        table = table.fillna(0)
    return table


def _align(outcome: pd.DataFrame, table: pd.DataFrame, name: str) -> pd.DataFrame:
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


def _acro_flagged(outcome: pd.DataFrame) -> list[str]:
    """Names of the ACRO checks that flagged at least one cell (the register
    is published: it keeps no counts, and does not tell zeros apart)."""
    names = set()
    for cell in outcome.to_numpy().ravel():
        for part in str(cell).split(";"):
            part = part.strip()
            if part and part != "ok":
                names.add(_ACRO_CHECK_TO_REASON.get(part, part))
    return sorted(names)


#: what a count table's register entry says about how its CSV reads back and
#: joins the other tables of its population (see :meth:`Register._layout`)
_LAYOUT_KEYS = (
    "population",
    "dims",
    "fixed",
    "coarsen",
    "blocks",
    "index_levels",
    "column_levels",
    "suppressed_cells",
)


def _upstream_steps(step: str, root: Path) -> set[str]:
    """Every step ``step`` needs, directly or through others."""
    needs = {s["name"]: set(s["needs"]) for s in load_steps(root)}
    found: set[str] = set()
    todo = list(needs.get(step, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += needs.get(name, ())
    return found


def _cell_keys(raw: pd.DataFrame, oneway: bool) -> list[list[tuple[Any, ...]]]:
    """Each cell's key as (row levels..., column levels...)."""
    out = []
    for r in raw.index:
        rk = r if isinstance(r, tuple) else (r,)
        row = []
        for c in raw.columns:
            ck = () if oneway else (c if isinstance(c, tuple) else (c,))
            row.append((*rk, *ck))
        out.append(row)
    return out


def _is_margin(key: Any) -> bool:
    return key == MARGINS or (isinstance(key, tuple) and len(key) > 0 and key[0] == MARGINS)


def _locate(table: pd.DataFrame, key: Any, name: str, step: str) -> tuple[int, int]:
    if not isinstance(key, tuple) or len(key) != 2:
        raise DisclosureError(f"{step}/{name}: a structural zero is a pair (row, column): {key!r}")
    row, col = key
    if col is None and table.shape[1] == 1:
        col = table.columns[0]
    try:
        i = table.index.get_loc(row)
        j = table.columns.get_loc(col)
    except KeyError:
        raise DisclosureError(f"{step}/{name}: structural zero {key!r} is not a cell") from None
    if not isinstance(i, int) or not isinstance(j, int):
        raise DisclosureError(f"{step}/{name}: structural zero {key!r} names several cells")
    return i, j


def _label(key: Any) -> str:
    if isinstance(key, tuple):
        return " / ".join(str(k) for k in key)
    return str(key)


def _table_reasons(flags: np.ndarray, rules: Rules) -> list[str]:
    tally: dict[str, int] = {}
    for cell in flags.ravel():
        for code in filter(None, str(cell).split(",")):
            tally[code] = tally.get(code, 0) + 1
    out = []
    for code in _REASONS:
        if code in tally:
            k = tally[code]
            out.append(
                f"{code}: {k} cell{'s' if k > 1 else ''} suppressed, {rules.reason_text(code)}"
            )
    return out


def _check_counts(
    counts: pd.DataFrame | pd.Series, structural_zeros: Iterable[tuple[Any, Any]], rules: Rules
) -> tuple[str, list[str], dict[str, Any]]:
    frame = counts.to_frame() if isinstance(counts, pd.Series) else counts
    try:
        values = frame.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise DisclosureError("counts must be numbers (NaN for something not shown)") from None
    structural = np.zeros(values.shape, dtype=bool)
    for key in structural_zeros:
        i, j = _locate(frame, key, "counts", "figure")
        if values[i, j] != 0:
            raise DisclosureError(f"structural zero {key!r} is not zero in the counts")
        structural[i, j] = True
    shown = ~np.isnan(values)
    small = shown & (values < rules.cell_threshold) & ~structural
    if not rules.zeros_disclosive:
        small &= values != 0
    k = int(small.sum())
    checks = {"counts": int(shown.sum()), "below_threshold_or_zero": k}
    if k:
        reasons = [
            f"{k} of {int(shown.sum())} counts below {rules.cell_threshold} or zero: "
            "a figure cannot be partly suppressed, so it is withheld"
        ]
        return "fail", reasons, checks
    return "pass", [], checks


def effect_counts(result: Any) -> dict[str, int]:
    """The group sizes behind an effect estimate: treated and controls
    (selection on observables), starters and non-starters (IV, from the
    diagnostics when the pipeline put them there), treated observations per
    shown event time (event study), and clusters."""
    counts: dict[str, int] = {}
    for key in ("n_treated", "n_control"):
        value = getattr(result, key, None)
        if value is None:
            value = (getattr(result, "diagnostics", None) or {}).get(key)
        if value is not None:
            counts[key] = int(value)
    et = getattr(result, "event_time", None)
    if et is not None and "n_obs" in et:
        ref = getattr(result, "reference", None)
        for k, v in et["n_obs"].items():
            if k != ref:
                counts[f"event_time_{int(k)}"] = int(v)
    return counts


def check_effect(result: Any, rules: Rules) -> tuple[str, list[str], dict[str, Any]]:
    """Disclosure check of one effect estimate: residual degrees of freedom
    (of the fitted model where there is one, else ``n`` minus 2) and the
    group sizes of :func:`effect_counts` against the thresholds."""
    for attr in ("estimate", "std_error", "n", "to_record"):
        if not hasattr(result, attr):
            raise DisclosureError(
                f"cannot check a {type(result).__name__}: not an effect result of "
                "reintegration.effects"
            )
    model = getattr(result, "model_results", None)
    dof = getattr(model, "df_resid", None) if model is not None else None
    dof = int(dof) if dof is not None else int(result.n) - 2
    counts = effect_counts(result)
    reasons: list[str] = []
    status = "pass"
    if dof < rules.residual_dof:
        reasons.append(f"residual degrees of freedom below {rules.residual_dof}")
        status = "fail"
    small = sorted(k for k, v in counts.items() if v < rules.cell_threshold)
    if small:
        reasons.append(f"groups with fewer than {rules.cell_threshold} persons: {', '.join(small)}")
        status = "fail"
    if not counts:
        reasons.append("no group sizes known: an output checker must confirm them")
        status = "review" if status == "pass" else status
    checks = {
        "residual_dof": dof if dof >= rules.residual_dof else None,
        "group_cells": {k: (v if v >= rules.cell_threshold else None) for k, v in counts.items()},
    }
    return status, reasons, checks


def _group_counts(groups: pd.DataFrame | pd.Series, unit: str | None) -> pd.Series:
    frame = groups.to_frame() if isinstance(groups, pd.Series) else groups.copy()
    if unit is not None:
        if unit in frame.columns:
            ids = frame.pop(unit)
        elif unit in (frame.index.names or []):
            ids = pd.Series(frame.index.get_level_values(unit), index=frame.index)
        else:
            raise DisclosureError(f"unit {unit!r} is neither a column nor an index level of groups")
    if frame.shape[1] == 0:
        raise DisclosureError("groups has no group variables")
    if frame.isna().any().any():
        raise DisclosureError("groups has missing values; recode them to a category first")
    keys = [frame[c].to_numpy() for c in frame.columns]
    if unit is None:
        counts = frame.groupby(keys, sort=True).size()
    else:
        counts = pd.Series(ids.to_numpy(), index=frame.index).groupby(keys, sort=True).nunique()
    return counts


def _model_family(results: Any) -> str:
    module = type(results).__module__
    if module.startswith("statsmodels"):
        return "statsmodels"
    if module.startswith("linearmodels"):
        return "linearmodels"
    raise DisclosureError(
        f"cannot check a {type(results).__name__} result: the register knows statsmodels and "
        "linearmodels results"
    )


def _df_resid(results: Any) -> int:
    dof = getattr(results, "df_resid", None)
    if dof is None:
        dof = getattr(getattr(results, "model", None), "df_resid", None)
    if dof is None:
        raise DisclosureError(f"{type(results).__name__} has no residual degrees of freedom")
    return int(math.floor(float(dof)))


def _param_names(params: Any) -> list[str]:
    index = getattr(params, "index", None)
    if index is None:
        return [f"x{i}" for i in range(len(params))]
    return [str(k) for k in index]


def _model_record(results: Any, family: str, keep: Sequence[str] | None) -> dict[str, Any]:
    if family == "statsmodels":
        params, se = results.params, results.bse
        ci = results.conf_int()
        model = results.model
        estimator = type(model).__name__
        dependent = getattr(model, "endog_names", None)
        pvalues = results.pvalues
    else:
        params, se = results.params, results.std_errors
        ci = results.conf_int()
        estimator = type(getattr(results, "model", results)).__name__
        try:
            dependent = results.model.dependent.cols[0]
        except (AttributeError, IndexError, TypeError):
            dependent = None
        pvalues = results.pvalues
    params = pd.Series(np.asarray(params, dtype=float), index=_param_names(params))
    names = list(params.index)
    if keep is not None:
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise DisclosureError(f"params {unknown} are not parameters of the model")
        names = list(keep)
    se = pd.Series(np.asarray(se), index=params.index)
    pvalues = pd.Series(np.asarray(pvalues), index=params.index)
    ci = np.asarray(ci)

    def r(x: Any) -> float:
        return float(round(float(x), 10))

    pos = {k: i for i, k in enumerate(params.index)}
    record = {
        "estimator": estimator,
        "library": family,
        "dependent": str(dependent) if dependent is not None else None,
        "params": {k: r(params[k]) for k in names},
        "std_errors": {k: r(se[k]) for k in names},
        "conf_int": {k: [r(ci[pos[k], 0]), r(ci[pos[k], 1])] for k in names},
        "pvalues": {k: r(pvalues[k]) for k in names},
        "nobs": int(results.nobs),
        "df_resid": _df_resid(results),
    }
    rsq = getattr(results, "rsquared", None)
    if rsq is not None:
        record["rsquared"] = r(rsq)
    return record


# ---------------------------------------------------------------------------
# the city register and the release bundle
# ---------------------------------------------------------------------------


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

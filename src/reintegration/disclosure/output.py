"""One checked output and how a notebook shows it.

An :class:`Output` holds what the register may release of one table, figure
or model result and why; displayed in a notebook it shows the masked table
(``x`` and a reason letter in suppressed cells), the figure or the
coefficients, with the output id in the output metadata
(:data:`~reintegration.disclosure.rules.META_KEY`) so the release audit can
tell that every output on a page is registered. Nothing here checks or
writes files.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .rules import EFFECTS_ESTIMATOR, META_KEY, REASONS, SUPPRESSED, Rules


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
                    letters = ",".join(dict.fromkeys(REASONS[c][0] for c in codes))
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
                texts.setdefault(REASONS[code][0], []).append(self.rules.reason_text(code))
            for letter, said in texts.items():
                lines.append(f"{SUPPRESSED} ({letter}): suppressed, {'; or '.join(said)}")
            if self.structural is not None and self.structural.to_numpy().any():
                lines.append("0 or –: structurally empty (true by definition, not suppressed)")
        return lines

    def to_html(self) -> str:
        head = (
            f'<p class="disclosure-title"><strong>{html.escape(self.title)}</strong> '
            f"<code>{html.escape(self.output_id)}</code> · disclosure check: "
            f"{html.escape(self.status)}</p>"
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
            body = coef_frame(self.model or {}).to_html(escape=True, float_format=_g)
        else:
            body = (
                f'<img alt="{html.escape(self.title)}" '
                f'src="data:image/png;base64,{base64.b64encode(self.png or b"").decode()}"/>'
            )
        notes = [*self.legend()]
        if self.kind == "model" and self.model and self.model.get("estimator") != EFFECTS_ESTIMATOR:
            # a fitted model's own size; a record of effects holds many estimates,
            # each on its own rows, whose smallest count would read as the table's n
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
            lines.append(coef_frame(self.model or {}).to_string())
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
    """A cell as a reader sees it: thousands separators, ``decimals`` places
    when given, else whole numbers plain and at most three decimals."""
    if _isnan(value):
        return ""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,d}"
    if isinstance(value, float | np.floating):
        x = float(value)
        if decimals is not None:
            return f"{x:,.{decimals}f}"
        if x.is_integer():
            return f"{int(x):,d}"
        text = f"{x:,.3f}".rstrip("0").rstrip(".")  # at most three decimals
        return f"{x:.3g}" if text in ("0", "-0") else text
    return str(value)


def _g(value: float) -> str:
    return f"{value:.4g}"


def coef_frame(model: dict[str, Any]) -> pd.DataFrame:
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

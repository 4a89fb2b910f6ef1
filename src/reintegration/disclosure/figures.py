"""Suppressed cells in figures: drawn, hatched and labelled, never as zero.

A cell that disclosure control suppressed is NaN in a released table. Drawn
naively it becomes a bar of height zero or a gap in a line, and a reader
takes it for "none" or overlooks it. Every figure of the compendium draws such
cells through this module instead, so they look the same everywhere:

- bars (:func:`bar_or_suppressed`): a grey hatched box of a fixed nominal size
  with CBS's symbol ``x`` on it; its size is not a value (the same size for
  every suppressed bar of a figure, see :func:`nominal_size`);
- lines and points (:func:`mark_suppressed`): a grey hatched box in a strip
  along the axis, at each position where a series is suppressed, edged in the
  colour of that series;
- the key (:func:`add_key`): a legend entry ``suppressed (<10)`` (the
  threshold of ``config/disclosure.yml``) whenever a figure drew one.

Every artist that marks a suppressed cell carries ``gid = "suppressed"``
(:data:`GID`), so a test (or a reviewer with the figure object) can find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: gid of every artist that marks a suppressed cell
GID = "suppressed"
#: face, edge and hatch of a suppressed box
FACE = "#e4e4e4"
EDGE = "#5f5f5f"
HATCH = "////"
#: CBS's symbol for a confidential figure, written on suppressed bars
SYMBOL = "x"
#: height of one row of the marker strip of line and point figures (axes fraction)
STRIP = 0.04
#: nominal size of a suppressed bar, as a share of the largest bar drawn
NOMINAL_SHARE = 0.15


def label(threshold: int | None = None) -> str:
    """The legend text of a suppressed cell: ``suppressed (<10)``."""
    return f"suppressed (<{threshold})" if threshold else "suppressed"


def threshold_of(released: Any, default: int | None = None) -> int | None:
    """The cell threshold of a released output (its rules), else ``default``."""
    rules = getattr(released, "rules", None)
    return getattr(rules, "cell_threshold", default) if rules is not None else default


def nominal_size(values: Any, share: float = NOMINAL_SHARE) -> float:
    """The size every suppressed bar of one figure is drawn at: ``share`` of
    the largest finite value drawn (``share`` itself when nothing is shown)."""
    arr = np.abs(np.asarray(values, dtype=float)).ravel()
    arr = arr[np.isfinite(arr)]
    top = float(arr.max()) if arr.size and arr.max() > 0 else 1.0
    return share * top


def _pick(colour: Any, mask: np.ndarray) -> Any:
    """A colour, or the colours of the masked positions of a per-bar list."""
    if isinstance(colour, Sequence) and not isinstance(colour, str) and len(colour) == len(mask):
        return [c for c, m in zip(colour, mask, strict=True) if m]
    return colour


def bar_or_suppressed(
    ax: Any,
    positions: Any,
    values: Any,
    *,
    nominal: float,
    width: float = 0.8,
    base: Any = None,
    horizontal: bool = False,
    colour: Any = None,
    label: str | None = None,
    text: str = SYMBOL,
    fontsize: float = 7,
) -> np.ndarray:
    """Draw one bar per value: finite values as ordinary bars, NaN values as
    hatched grey boxes of size ``nominal`` with ``text`` on them.

    ``base`` is where each bar starts (stacked bars); ``colour`` one colour or
    one per bar (a suppressed box is edged in it). Returns where each bar
    ends (``base`` plus the value, or plus ``nominal`` where suppressed), the
    base of the next segment of a stack.
    """
    pos = np.asarray(positions, dtype=float)
    vals = np.asarray(values, dtype=float)
    if pos.shape != vals.shape:
        raise ValueError(f"{len(pos)} positions but {len(vals)} values")
    start = np.zeros(len(vals)) if base is None else np.asarray(base, dtype=float)
    missing = np.isnan(vals)
    draw = ax.barh if horizontal else ax.bar
    size = "height" if horizontal else "width"
    offset = "left" if horizontal else "bottom"
    if (~missing).any():
        kw = {size: width, offset: start[~missing], "label": label}
        if colour is not None:
            kw["color"] = _pick(colour, ~missing)
        draw(pos[~missing], vals[~missing], **kw)
    if missing.any():
        edge = EDGE if colour is None else _pick(colour, missing)
        kw = {size: width, offset: start[missing]}
        boxes = draw(
            pos[missing],
            np.full(int(missing.sum()), nominal),
            facecolor=FACE,
            edgecolor=edge,
            hatch=HATCH,
            linewidth=0.8,
            **kw,
        )
        for box in boxes:
            box.set_gid(GID)
        for p, s in zip(pos[missing], start[missing], strict=True):
            mid = s + nominal / 2 if text == SYMBOL else s + nominal * 1.05
            xy = (mid, p) if horizontal else (p, mid)
            ha = "center" if text == SYMBOL or not horizontal else "left"
            ax.text(*xy, text, ha=ha, va="center", fontsize=fontsize, color=EDGE, gid=GID)
    return start + np.where(missing, nominal, vals)


def mark_suppressed(
    ax: Any,
    positions: Any,
    values: Any,
    *,
    colour: Any = EDGE,
    slot: int = 0,
    along: str = "x",
    width: float | None = None,
) -> int:
    """Mark each position where ``values`` is NaN with a hatched grey box in a
    strip along the ``along`` axis (the bottom for ``"x"``, the left for
    ``"y"``), row ``slot`` of the strip, edged in ``colour``. Returns the
    number of boxes drawn."""
    from matplotlib.patches import Rectangle

    if along not in ("x", "y"):
        raise ValueError(f"along must be 'x' or 'y', not {along!r}")
    pos = np.asarray(positions, dtype=float)
    vals = np.asarray(values, dtype=float)
    missing = np.isnan(vals)
    if not missing.any():
        return 0
    if width is None:
        steps = np.diff(np.unique(pos))
        width = 0.8 * float(steps.min()) if steps.size else 0.8
    lo, depth = slot * STRIP + 0.005, STRIP * 0.8
    transform = ax.get_xaxis_transform() if along == "x" else ax.get_yaxis_transform()
    for p in pos[missing]:
        xy, w, h = (
            ((p - width / 2, lo), width, depth)
            if along == "x"
            else ((lo, p - width / 2), depth, width)
        )
        ax.add_patch(
            Rectangle(
                xy,
                w,
                h,
                transform=transform,
                facecolor=FACE,
                edgecolor=colour,
                hatch=HATCH,
                linewidth=0.8,
                gid=GID,
                clip_on=False,
            )
        )
    return int(missing.sum())


def legend_handle(threshold: int | None = None) -> Any:
    """The legend entry of a suppressed cell."""
    from matplotlib.patches import Patch

    return Patch(facecolor=FACE, edgecolor=EDGE, hatch=HATCH, label=label(threshold))


def add_key(
    handles: list[Any], labels: list[str], drawn: int | bool, threshold: int | None = None
) -> tuple[list[Any], list[str]]:
    """``handles`` and ``labels`` of a legend, with the suppressed entry added
    when the figure ``drawn`` any suppressed cell."""
    if drawn:
        handles = [*handles, legend_handle(threshold)]
        labels = [*labels, label(threshold)]
    return handles, labels


def legend(ax: Any, drawn: int | bool, threshold: int | None = None, **kwargs: Any) -> Any:
    """``ax.legend`` with the suppressed entry added when needed."""
    handles, labels = add_key(*ax.get_legend_handles_labels(), drawn, threshold)
    return ax.legend(handles, labels, **kwargs)


def suppressed_artists(fig: Any) -> list[Any]:
    """Every artist of ``fig`` that marks a suppressed cell."""
    return [a for a in fig.findobj() if a.get_gid() == GID]

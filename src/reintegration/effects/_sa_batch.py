"""The assignment-dependent pieces of the interaction-weighted event study
(:mod:`._sa`: rows used, cohort x event-time columns, their weights) for
many assignments of the adoption dates at once.

The randomisation test refits the event study for each of its assignments;
applying :func:`._sa.assign`, :func:`._sa.interactions` and
:func:`._sa.aggregate` one assignment at a time cost more than the refits'
arithmetic. Here the same rules run on an assignments x cells array, with
integer keys and ``bincount`` in place of per-assignment ``unique`` and
``isin``. The weights are the same floats: cell sizes are whole numbers, so
every count and its sums are exact in any order; each weight is then one
division, as in :func:`._sa.aggregate`; and the one sum of fractions (a
cohort's post-period weight, for ``baseline="pre_mean"``) adds them in the
same order, by event time. Assignments these rules reject (no treated or no
control cells, a cohort too few, ...) are left to :mod:`._sa` (None here),
which raises what it always raised; so is everything when the periods or
cell sizes are not whole numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Structure:
    """One assignment's rows used (``keep``, over the cells), the indicator
    matrix of its kept cells (``rows``, ``column``: the kept cell and column
    of each one), its number of columns, the weights ``post`` of the
    post-period effect, and the event-time weights of the pre-period rows
    (``wmat_pre``, None without any)."""

    keep: np.ndarray
    rows: np.ndarray
    column: np.ndarray
    n_columns: int
    post: np.ndarray
    wmat_pre: np.ndarray | None

    def matrix(self) -> np.ndarray:
        out = np.zeros((int(self.keep.sum()), self.n_columns))
        out[self.rows, self.column] = 1.0
        return out


def _whole(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(np.array_equal(finite, np.round(finite)) and np.abs(finite).max(initial=0) < 2**40)


def structures(
    period: np.ndarray,
    entity: np.ndarray,
    weight: np.ndarray,
    starts: np.ndarray,
    *,
    leads: int,
    lags: int,
    reference: int,
    bin: str,
    control_cohort: str,
    post_weights: str,
    baseline: str,
) -> list[Structure | None]:
    """Per row of ``starts`` (adoption period per entity code, NaN: never)
    the :class:`Structure` of that assignment on the cells (``period``,
    ``entity`` code and ``weight`` per cell), or None where :mod:`._sa`
    must decide."""
    n_asg = len(starts)
    if not (_whole(period) and _whole(starts) and _whole(weight) and weight.sum() < 2**40):
        return [None] * n_asg
    e = starts[:, entity].astype(float)
    e[np.isfinite(e) & (e > period.max())] = np.nan
    finite = np.isfinite(e)
    dates = np.unique(e[finite])
    if not len(dates):
        return [None] * n_asg
    n_d = len(dates)
    code = np.where(finite, np.searchsorted(dates, np.where(finite, e, dates[0])), 0)
    rel = period[None, :] - e
    asg = np.arange(n_asg)[:, None]
    # cohorts observed at the reference event time; the others are dropped
    at_ref = finite & (rel == reference)
    has_ref = np.bincount((asg * n_d + code)[at_ref], minlength=n_asg * n_d).reshape(n_asg, n_d)
    keep = ~(finite & (has_ref[asg, code] == 0))
    never = ~finite
    ok = np.ones(n_asg, bool)
    use_never = (never & keep).any(axis=1) & (control_cohort in ("auto", "never"))
    if control_cohort == "never":
        ok &= use_never
    # the last-treated cohort as control where there is no never-treated one
    present = np.bincount((asg * n_d + code)[keep & finite], minlength=n_asg * n_d)
    present = present.reshape(n_asg, n_d) > 0
    ok &= use_never | (present.sum(axis=1) >= 2)
    last = dates[n_d - 1 - np.argmax(present[:, ::-1], axis=1)]
    by_last = ~use_never[:, None]
    keep &= ~by_last | (period[None, :] < last[:, None])
    control = never | (by_last & (e == last[:, None]))
    treated = keep & ~control
    ok &= treated.any(axis=1) & (keep & control).any(axis=1)
    binned = np.where(treated, rel, np.nan)
    if bin == "endpoints":
        binned = np.clip(binned, -leads, lags)
    else:
        outside = treated & ((rel < -leads) | (rel > lags))
        keep &= ~outside
        treated &= keep
    exact = treated & (binned == rel)
    return _columns(
        keep, treated, binned, exact, code, dates, weight, ok,
        leads=leads, lags=lags, reference=reference, post_weights=post_weights,
        baseline=baseline,
    )


def _columns(
    keep: np.ndarray,
    treated: np.ndarray,
    binned: np.ndarray,
    exact: np.ndarray,
    code: np.ndarray,
    dates: np.ndarray,
    weight: np.ndarray,
    ok: np.ndarray,
    *,
    leads: int,
    lags: int,
    reference: int,
    post_weights: str,
    baseline: str,
) -> list[Structure | None]:
    """The columns and weights of :func:`._sa.interactions` and
    :func:`._sa.aggregate`, per assignment; keys ``cohort code * W + event
    time + leads`` (W event times) are ordered as the columns are."""
    n_asg, n_d, width = len(keep), len(dates), leads + lags + 1
    asg = np.arange(n_asg)[:, None]
    dummy = treated & (binned != reference)
    key = code * width + np.where(dummy, binned, 0).astype(np.int64) + leads
    flat = (asg * (n_d * width) + key)[dummy]
    size = n_asg * n_d * width
    shape = (n_asg, n_d, width)
    used = np.bincount(flat, minlength=size).reshape(shape) > 0
    n_el = np.bincount(flat, weights=np.broadcast_to(weight, keep.shape)[dummy],
                       minlength=size).reshape(shape)
    n_own = np.bincount(flat, weights=(weight * exact)[dummy], minlength=size).reshape(shape)
    et = np.arange(width) - leads  # event time per key
    shown = used.any(axis=1) & (et != reference)  # assignments x event times
    own_total = n_own.sum(axis=1, where=used)
    count = np.where(own_total[:, None, :] > 0, n_own, n_el)
    total = count.sum(axis=1, where=used)
    with np.errstate(invalid="ignore", divide="ignore"):
        wval = np.where(used, count / total[:, None, :], 0.0)
    is_post = (et >= 0) & (et <= lags)
    n_post = (shown & is_post).sum(axis=1)
    ok = ok & (used & is_post).any(axis=(1, 2))
    if post_weights == "observations":
        wpost = np.where(used & is_post, n_own, 0.0)
        denom = wpost.sum(axis=(1, 2))
        ok &= denom > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            w = wpost / denom[:, None, None]
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(is_post, wval, 0.0) / n_post[:, None, None]
    if baseline == "pre_mean":
        w = _pre_mean(w, used, n_own, treated, binned, code, weight, et,
                      is_post=is_post, leads=leads, reference=reference)
    out: list[Structure | None] = []
    pre_et = np.flatnonzero((et < 0) & (et != reference))
    for a in range(n_asg):
        if not ok[a]:
            out.append(None)
            continue
        cols = used[a].reshape(-1)
        col_of_key = np.cumsum(cols) - 1
        k = keep[a]
        sel = dummy[a][k]
        wm = None
        rows_pre = pre_et[shown[a, pre_et]]
        if len(rows_pre):
            in_pre = used[a][:, rows_pre]  # cohorts x pre rows
            wm = np.zeros((len(rows_pre), int(cols.sum())))
            d_idx, r_idx = np.nonzero(in_pre)
            wm[r_idx, col_of_key[d_idx * width + rows_pre[r_idx]]] = \
                wval[a][d_idx, rows_pre[r_idx]]
        out.append(Structure(
            keep=k,
            rows=np.flatnonzero(sel),
            column=col_of_key[key[a][k][sel]],
            n_columns=int(cols.sum()),
            post=w[a].reshape(-1)[cols],
            wmat_pre=wm,
        ))
    return out


def _pre_mean(
    w: np.ndarray,
    used: np.ndarray,
    n_own: np.ndarray,
    treated: np.ndarray,
    binned: np.ndarray,
    code: np.ndarray,
    weight: np.ndarray,
    et: np.ndarray,
    *,
    is_post: np.ndarray,
    leads: int,
    reference: int,
) -> np.ndarray:
    """The ``baseline="pre_mean"`` correction of :func:`._sa.aggregate`: each
    cohort's post-period share spread over its pre-period coefficients
    (and the reference), by their observations."""
    n_asg, n_d, width = used.shape
    pre_k = (et < 0) & (et >= -leads)
    share = np.zeros((n_asg, n_d))
    for j in range(width):  # by event time, as the columns are summed
        share = share + np.where(used[:, :, j] & is_post[j], w[:, :, j], 0.0)
    cohort_used = used.any(axis=2)
    asg = np.arange(n_asg)[:, None]
    at_ref = (binned == reference) & treated & cohort_used[asg, code]
    n_ref = np.bincount((asg * n_d + code)[at_ref],
                        weights=np.broadcast_to(weight, treated.shape)[at_ref],
                        minlength=n_asg * n_d).reshape(n_asg, n_d)
    denom = n_ref + np.where(used & pre_k, n_own, 0.0).sum(axis=2)
    good = (share != 0) & (denom > 0)
    factor = np.divide(share, denom, out=np.zeros_like(share), where=good)
    return np.where(used & pre_k, w - factor[:, :, None] * n_own, w)

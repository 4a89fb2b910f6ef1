"""The pieces of Sun and Abraham's interaction-weighted event study that
depend on who adopts when: which rows enter, which cohort-by-event-time
indicators the regression gets, and how their coefficients aggregate.

:func:`~reintegration.effects.event_study` uses them once, on the data's
adoption dates; the randomisation test uses them again for every permuted
assignment of those dates, so both apply exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._data import EffectInputError


@dataclass(frozen=True)
class Assignment:
    """Rows used and their event time under one assignment of adoption dates.

    ``keep`` is over the input rows; the other arrays are over the kept rows.
    """

    keep: np.ndarray
    cohort: np.ndarray  # adoption period, NaN for never treated
    treated: np.ndarray  # row of an adopting (not control) unit
    binned: np.ndarray  # binned event time of treated rows, NaN otherwise
    exact: np.ndarray  # treated row whose binned event time is its own (not binned)
    control_label: str | float
    dropped_cohorts: list[float]
    n_dropped_rows: int


def assign(
    t: np.ndarray,
    e: np.ndarray,
    *,
    leads: int,
    lags: int,
    reference: int,
    bin: str,
    control_cohort: str,
    name: str = "treatment_start",
) -> Assignment:
    """Sample and event times for periods ``t`` and adoption periods ``e``
    (NaN: never), by the rules documented in ``event_study``; ``name`` is
    the adoption column, for messages."""
    tmax = t.max()
    # adoption after the last period: never treated within the data
    e = np.where(np.isfinite(e) & (e > tmax), np.nan, e)
    # cohorts without an observation at the reference event time are always
    # treated from the data's point of view: not usable
    rel = t - e
    cohorts_ref = np.unique(e[np.isfinite(e) & (rel == reference)])
    no_ref = np.isfinite(e) & ~np.isin(e, cohorts_ref)
    dropped = sorted(float(c) for c in np.unique(e[no_ref]))
    keep = ~no_ref
    never = np.isnan(e)
    if control_cohort == "never" and not never[keep].any():
        raise EffectInputError(f"no never-treated units ({name!r} missing) to compare with")
    control_label: str | float
    if never[keep].any() and control_cohort in ("auto", "never"):
        control = never
        control_label = "never treated"
    else:
        treated_cohorts = np.unique(e[keep & np.isfinite(e)])
        if len(treated_cohorts) < 2:
            raise EffectInputError(
                "without never-treated units at least two adoption cohorts are needed "
                "(the last-treated cohort serves as control)"
            )
        last = treated_cohorts.max()
        keep &= t < last
        control = (e == last) | never
        control_label = float(last)
    treated = keep & ~control
    if not treated.any():
        raise EffectInputError(f"no treated units: every {name!r} is missing or unusable")
    if not (keep & control).any():
        raise EffectInputError("no control observations remain")
    lb = np.where(treated, rel, np.nan)
    if bin == "endpoints":
        lb = np.clip(lb, -leads, lags)
    else:  # "trim"
        outside = treated & ((rel < -leads) | (rel > lags))
        keep &= ~outside
        treated &= keep
    exact = treated & (lb == rel)
    return Assignment(
        keep=keep,
        cohort=e[keep],
        treated=treated[keep],
        binned=lb[keep],
        exact=exact[keep],
        control_label=control_label,
        dropped_cohorts=dropped,
        n_dropped_rows=int(no_ref.sum()),
    )


@dataclass(frozen=True)
class Interactions:
    """One indicator per (cohort, event time) of the treated rows, the
    reference event time left out."""

    keys: list[tuple[float, float]]
    has_dummy: np.ndarray  # row gets an indicator
    column: np.ndarray  # its column, for the rows with ``has_dummy``
    cohort_of: np.ndarray  # per column
    et_of: np.ndarray  # per column

    @property
    def names(self) -> list[str]:
        return [f"cohort{ce:g}_et{int(cl):+d}" for ce, cl in self.keys]

    def matrix(self) -> np.ndarray:
        out = np.zeros((len(self.has_dummy), len(self.keys)))
        out[np.flatnonzero(self.has_dummy), self.column] = 1.0
        return out


def interactions(a: Assignment, reference: int) -> Interactions:
    has_dummy = a.treated & (a.binned != reference)
    cohort = a.cohort[has_dummy].astype(float)
    binned = a.binned[has_dummy].astype(float)
    whole = _whole_key(cohort, binned)
    if whole is None:
        pairs = np.column_stack([cohort, binned])
        # sorted by cohort, then event time
        uniq, column = np.unique(pairs.reshape(-1, 2), axis=0, return_inverse=True)
        cohort_of, et_of = uniq[:, 0].copy(), uniq[:, 1].copy()
    else:
        # whole periods: one integer per pair, ordered as the pairs are (by
        # cohort, then event time); the same columns, far cheaper than a
        # unique over rows (the randomisation test builds one per assignment)
        _, first, column = np.unique(whole, return_index=True, return_inverse=True)
        cohort_of, et_of = cohort[first], binned[first]
    return Interactions(
        keys=list(zip(cohort_of.tolist(), et_of.tolist(), strict=True)),
        has_dummy=has_dummy,
        column=column.reshape(-1).astype(int),
        cohort_of=cohort_of,
        et_of=et_of,
    )


def _whole_key(cohort: np.ndarray, binned: np.ndarray) -> np.ndarray | None:
    """``(cohort - min) * span + (binned - min)`` as integers when both hold
    whole numbers of moderate size (None otherwise, or when empty)."""
    if not len(cohort) or not (np.isfinite(cohort).all() and np.isfinite(binned).all()):
        return None
    lo_c, lo_b = cohort.min(), binned.min()
    span = binned.max() - lo_b + 1
    if (cohort.max() - lo_c + 1) * span > 2.0**52 or max(abs(lo_c), abs(lo_b)) > 2.0**52:
        return None
    c_int, b_int = cohort.astype(np.int64), binned.astype(np.int64)
    if not (np.array_equal(c_int, cohort) and np.array_equal(b_int, binned)):
        return None
    return (c_int - int(lo_c)) * int(span) + (b_int - int(lo_b))


@dataclass(frozen=True)
class Aggregation:
    """Observation counts behind each coefficient, the event-time weights
    (``wmat``, rows = event times ``shown``) and the weights ``post`` of the
    aggregated post-period effect."""

    n_el: np.ndarray
    shown: list[int]
    wmat: np.ndarray
    post: np.ndarray

    @property
    def pre_rows(self) -> list[int]:
        return [i for i, l_ in enumerate(self.shown) if l_ < 0]


def aggregate(
    a: Assignment,
    x: Interactions,
    weights: np.ndarray,
    *,
    leads: int,
    lags: int,
    reference: int,
    post_weights: str,
    baseline: str,
) -> Aggregation:
    """Interaction weights of the event-time path and of the post-period
    effect (see ``event_study`` for the formulas).

    Weights count, for a binned endpoint, only the observations at its own
    event time (``lags`` or ``-leads``), not the binned periods beyond it:
    in the cohort shares of the path, in the post-period effect and in the
    ``pre_mean`` baseline (a cohort seen only beyond the endpoint falls back
    on its binned count)."""
    n_el = np.bincount(x.column, weights=weights[x.has_dummy], minlength=len(x.keys))
    n_own = np.bincount(x.column, weights=(weights * a.exact)[x.has_dummy], minlength=len(x.keys))
    window = [l_ for l_ in range(-leads, lags + 1) if l_ != reference]
    present = set(x.et_of.tolist())
    shown = [l_ for l_ in window if l_ in present]
    wmat = np.zeros((len(shown), len(x.keys)))
    # per event time shown (row), the cohorts' shares of its own observations
    # (of the binned ones when it has none of its own)
    row = np.searchsorted(np.array(shown, dtype=float), x.et_of)
    cols = np.flatnonzero(np.isin(x.et_of, shown))
    row = row[cols]
    own_total = np.bincount(row, weights=n_own[cols], minlength=len(shown))
    count = np.where(own_total[row] > 0, n_own[cols], n_el[cols])
    wmat[row, cols] = count / np.bincount(row, weights=count, minlength=len(shown))[row]
    post = (x.et_of >= 0) & (x.et_of <= lags)
    if not post.any():
        raise EffectInputError("no treated observations at or after adoption within the window")
    if post_weights == "observations":
        w = np.where(post, n_own, 0.0)
        if not w.sum() > 0:
            raise EffectInputError("no treated observations at event times 0 to lags")
        w /= w.sum()
    else:
        # each event time 0..lags shown gets 1 / (number shown), split over
        # the cohorts by their shares at that event time
        rows_post = [i for i, l_ in enumerate(shown) if l_ >= 0]
        w = wmat[rows_post].sum(axis=0) / len(rows_post)
    if baseline == "pre_mean":
        # subtract each cohort's observation-weighted mean of its pre-period
        # coefficients (the reference, with coefficient zero, in the weights;
        # a binned first lead weighted by its own event time's observations)
        pre_k = (x.et_of < 0) & (x.et_of >= -leads)
        cohorts, col_cohort = np.unique(x.cohort_of, return_inverse=True)
        share = np.bincount(col_cohort, weights=np.where(post, w, 0.0), minlength=len(cohorts))
        at_ref = (a.binned == reference) & a.treated & np.isin(a.cohort, cohorts)
        n_ref = np.bincount(
            np.searchsorted(cohorts, a.cohort[at_ref]),
            weights=weights[at_ref],
            minlength=len(cohorts),
        )
        denom = n_ref + np.bincount(
            col_cohort, weights=np.where(pre_k, n_own, 0.0), minlength=len(cohorts)
        )
        ok = (share != 0) & (denom > 0)
        factor = np.divide(share, denom, out=np.zeros_like(share), where=ok)
        w = np.where(pre_k, w - factor[col_cohort] * n_own, w)
    return Aggregation(n_el=n_el, shown=shown, wmat=wmat, post=w)

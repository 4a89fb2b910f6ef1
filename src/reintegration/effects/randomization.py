r"""Randomisation inference for a staggered adoption with few adopting units.

With a handful of clusters (teams), cluster-robust standard errors are too
small and the wild cluster bootstrap is far from its nominal size when only
a few clusters are treated (MacKinnon and Webb 2018). When the adoption
dates could as well have fallen to any other unit, the distribution of a
statistic under the null follows from re-assigning the dates across units
and re-estimating: Fisher's randomisation test (Young 2019; for
difference-in-differences with few treated clusters, MacKinnon and Webb
2020).

Here the units are the entities of :func:`~reintegration.effects.event_study`
and an assignment is a permutation of their adoption dates (never-treated
units included, so that who is never treated is permuted too). For each
assignment the same interaction-weighted estimator is refitted and two
studentised statistics are kept:

* the post-period effect over its cluster-robust standard error,
  :math:`t(\tau) = (\hat\theta - \tau) / \widehat{se}`, computed on the
  outcome with a constant effect :math:`\tau` removed from the exposed
  observations (those at or after their actual adoption). Its p-value at
  :math:`\tau = 0` tests the sharp null of no effect; the interval collects
  every :math:`\tau` the test does not reject (test inversion). Because the
  estimator is linear in the outcome, one refit per assignment serves every
  :math:`\tau`;
* the joint Wald statistic of the pre-period coefficients, on the outcome
  with the estimated post-period path removed from the exposed observations
  (the null: no pre-trend, and the same effect path in every adoption
  cohort).

Studentised statistics keep the test close to its size when effects are
heterogeneous (Wu and Ding 2021). With a handful of teams, though, the
cluster-robust standard error that studentises the effect is itself very
noisy across assignments, and the inverted interval comes out much wider than
the spread of the estimate over the assignments (1.7 times in the synthetic
Rotterdam world at full size). ``statistic="raw"`` uses
:math:`|\hat\theta - \tau|` itself instead (Fisher's original statistic):
exact under the sharp null of a constant effect, with an interval whose
half-width is close to 1.96 times that spread; the pre-trend statistic stays
the studentised Wald statistic. The regressions are fitted on entity x
period cell means with cell sizes as weights, which gives exactly the
coefficients of the row-level regression when no covariates enter.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.stats

from . import _sa, _sa_batch
from ._data import EffectInputError
from ._memo import ContentMemo

__all__ = ["RandomizationTest"]


@dataclass(frozen=True)
class Cells:
    """Entity x period cells: codes, period, size, outcome columns (cell
    means, one column per statistic) and cluster codes; ``start`` holds the
    adoption period per entity code (NaN: never)."""

    entity: np.ndarray
    period: np.ndarray
    weight: np.ndarray
    y: np.ndarray
    cluster: np.ndarray
    start: np.ndarray


@dataclass(frozen=True)
class Spec:
    leads: int
    lags: int
    reference: int
    bin: str
    control_cohort: str
    post_weights: str
    baseline: str


@dataclass(repr=False)
class RandomizationTest:
    r"""Permutation statistics of an event study and the inference they give.

    Row 0 of every array is the actual assignment. ``theta_y``/``theta_d``
    hold each assignment's post-period estimate for the outcome and for the
    exposure indicator, ``c_y``/``c_d`` their per-cluster score
    contributions (so that :math:`t(\tau)` follows for any :math:`\tau`),
    ``pre_stat`` the pre-trend Wald statistics.

    Attributes
    ----------
    exact : bool
        True when every distinct assignment was used (the p-values are then
        exact under the null); False for a random sample of assignments.
    n_assignments : int
        Assignments used, the actual one included.
    n_possible : int
        Distinct assignments of the adoption dates to the entities.
    skipped : int
        Assignments the estimator could not fit (left out).
    """

    theta_y: np.ndarray
    theta_d: np.ndarray
    c_y: np.ndarray
    c_d: np.ndarray
    pre_stat: np.ndarray
    exact: bool
    n_possible: int
    skipped: int
    _cache: dict[float, tuple[float, float]] = field(default_factory=dict)
    #: the cells and specification the test refits (for :func:`design_power`)
    cells: Cells | None = None
    spec: Spec | None = None
    #: post-period estimates and cluster contributions of the further outcome
    #: columns of the cells (one per column after the third; e.g. take-up)
    theta_x: np.ndarray | None = None
    c_x: np.ndarray | None = None
    #: the hypotheses are about the ratio ``theta_y / theta_d`` (a Wald ratio,
    #: :meth:`ratio`) rather than a constant effect on exposed observations
    is_ratio: bool = False
    #: the effect's statistic: ``"studentized"`` (over its cluster-robust
    #: standard error) or ``"raw"`` (the estimate itself)
    statistic: str = "studentized"

    @property
    def n_assignments(self) -> int:
        return len(self.theta_y)

    def _abs_t(self, taus: np.ndarray) -> np.ndarray:
        num = self.theta_y[:, None] - taus[None, :] * self.theta_d[:, None]
        if self.statistic == "raw":
            return np.abs(num)
        syy = (self.c_y**2).sum(axis=1)[:, None]
        syd = (self.c_y * self.c_d).sum(axis=1)[:, None]
        sdd = (self.c_d**2).sum(axis=1)[:, None]
        var = np.clip(syy - 2 * taus[None, :] * syd + taus[None, :] ** 2 * sdd, 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(num) / np.sqrt(var)
        return np.where(np.isnan(t), np.inf, t)

    def pvalues(self, values: np.ndarray) -> np.ndarray:
        """Randomisation p-values of the hypotheses "the effect is a constant
        ``value`` on every exposed observation", one per value."""
        t = self._abs_t(np.asarray(values, dtype=float))
        return (t >= t[0][None, :] * (1 - 1e-10)).mean(axis=0)

    def pvalue(self, value: float = 0.0) -> float:
        """p-value of the sharp null that the effect is ``value`` (default:
        no effect) for every exposed observation."""
        return float(self.pvalues(np.array([value]))[0])

    @property
    def estimate(self) -> float:
        """The actual assignment's estimate: ``theta_y`` (its estimate of the
        exposure indicator is 1), or the ratio ``theta_y / theta_d``."""
        if self.is_ratio:
            return float(self.theta_y[0] / self.theta_d[0])
        return float(self.theta_y[0])

    def _scale(self) -> float:
        """The clustered standard error of :attr:`estimate` without the
        small-sample factor (for a ratio, by the delta method)."""
        b = self.estimate if self.is_ratio else 0.0
        den = abs(float(self.theta_d[0])) if self.is_ratio else 1.0
        return float(math.sqrt(((self.c_y[0] - b * self.c_d[0]) ** 2).sum())) / den

    def conf_int(self, level: float = 0.95) -> tuple[float, float]:
        """The effects ``tau`` not rejected at ``1 - level`` (test inversion,
        searched within 3000 clustered standard errors of the estimate, the
        span widened from 30 while its ends are not rejected); infinite ends
        when the assignments are too few to reject (or, for a ratio, when its
        denominator is not distinguishable from zero)."""
        if level in self._cache:
            return self._cache[level]
        alpha = 1 - level
        theta0 = self.estimate
        se0 = self._scale()
        if not np.isfinite(se0) or se0 == 0:
            return (math.nan, math.nan)
        for span in (30, 300, 3000):  # widened while the grid's ends are not rejected
            grid = theta0 + se0 * np.linspace(-span, span, 2401)
            ok = self.pvalues(grid) > alpha
            if not (ok[0] or ok[-1]):
                break
        if not ok.any():
            return (math.nan, math.nan)
        i_lo, i_hi = int(np.argmax(ok)), len(ok) - 1 - int(np.argmax(ok[::-1]))
        low = -math.inf if i_lo == 0 else self._edge(grid[i_lo - 1], grid[i_lo], alpha)
        high = math.inf if i_hi == len(ok) - 1 else self._edge(grid[i_hi + 1], grid[i_hi], alpha)
        self._cache[level] = (low, high)
        return (low, high)

    def _edge(self, rejected: float, accepted: float, alpha: float) -> float:
        for _ in range(50):
            mid = 0.5 * (rejected + accepted)
            if self.pvalue(mid) > alpha:
                accepted = mid
            else:
                rejected = mid
        return float(accepted)

    def interval_std_error(self, level: float = 0.95) -> float:
        """The standard error the interval implies: its half-width over
        :math:`z_{(1 + level)/2}` (1.96 at 95%), so that the estimate plus or
        minus 1.96 of it spans the interval's width (infinite with an
        unbounded interval)."""
        low, high = self.conf_int(level)
        z = float(scipy.stats.norm.ppf(0.5 + level / 2))
        return (high - low) / 2 / z

    def null_sd(self) -> float:
        """The standard deviation of the estimate over the assignments, with
        the estimated effect taken out (the outcome minus the estimate times
        the exposure indicator, or minus the ratio times the denominator's
        outcome): the spread of the estimate had the dates fallen otherwise."""
        b = self.estimate
        values = self.theta_y - b * self.theta_d
        if self.is_ratio:
            values = values / float(self.theta_d[0])
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    def ratio(self, column: int = 0) -> RandomizationTest:
        r"""The test of a Wald ratio: this test's outcome (the reduced form)
        over the further outcome column ``column`` (e.g. take-up). A value
        :math:`\beta` is rejected when the outcome minus :math:`\beta` times
        that column shows an effect of the assignment: the studentised
        statistic of :math:`\hat\theta_Y - \beta\,\hat\theta_D` against its
        distribution over the same assignments (an Anderson-Rubin-type test
        inverted by randomisation, Imbens and Rosenbaum 2005)."""
        if self.theta_x is None or self.c_x is None:
            raise EffectInputError("internal: the test has no further outcome column")
        return dataclasses.replace(
            self,
            theta_d=self.theta_x[:, column],
            c_d=self.c_x[:, :, column],
            theta_x=None,
            c_x=None,
            is_ratio=True,
            _cache={},
        )

    def column(self, column: int = 0) -> RandomizationTest:
        """The test of the effect on a further outcome column (e.g. the
        take-up change), with the same assignments."""
        if self.theta_x is None or self.c_x is None:
            raise EffectInputError("internal: the test has no further outcome column")
        return dataclasses.replace(
            self,
            theta_y=self.theta_x[:, column],
            c_y=self.c_x[:, :, column],
            theta_x=None,
            c_x=None,
            pre_stat=np.full(len(self.theta_y), math.nan),
            _cache={},
        )

    @property
    def pretrend_pvalue(self) -> float:
        """Share of assignments whose pre-trend statistic is at least the
        actual one (NaN without pre-period coefficients)."""
        s0 = self.pre_stat[0]
        if not np.isfinite(s0):
            return math.nan
        finite = self.pre_stat[np.isfinite(self.pre_stat)]
        return float((finite >= s0 * (1 - 1e-10)).mean())

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        low, high = self.conf_int(level)
        return {
            "pvalue": self.pvalue(),
            "ci_low": low,
            "ci_high": high,
            "level": level,
            "pretrend_pvalue": self.pretrend_pvalue,
            "assignments": self.n_assignments,
            "possible_assignments": self.n_possible,
            "exact": self.exact,
            "skipped": self.skipped,
        }


def _distinct(values: np.ndarray) -> int:
    keys = ["never" if not np.isfinite(v) else float(v) for v in values]
    total = math.factorial(len(keys))
    for c in Counter(keys).values():
        total //= math.factorial(c)
    return total


def _multiset_permutations(values: list[float]) -> Iterator[list[float]]:
    """Every distinct ordering of ``values`` (NaN treated as one value)."""
    keys = ["never" if not np.isfinite(v) else v for v in values]
    counts = Counter(keys)
    order = sorted(counts, key=lambda k: (isinstance(k, str), k if not isinstance(k, str) else 0))
    n = len(keys)

    def rec(prefix: list[Any]) -> Iterator[list[Any]]:
        if len(prefix) == n:
            yield list(prefix)
            return
        for k in order:
            if counts[k]:
                counts[k] -= 1
                prefix.append(k)
                yield from rec(prefix)
                prefix.pop()
                counts[k] += 1

    for perm in rec([]):
        yield [math.nan if k == "never" else float(k) for k in perm]


def assignments(start: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, bool, int]:
    """The actual assignment first, then either every other distinct one
    (when there are at most ``reps``) or ``reps`` random permutations."""
    possible = _distinct(start)
    if possible - 1 <= reps:
        actual = np.asarray(start, dtype=float)
        rows = [actual]
        for perm in _multiset_permutations(list(actual)):
            p = np.array(perm)
            if not np.array_equal(p, actual, equal_nan=True):
                rows.append(p)
        return np.vstack(rows), True, possible
    rng = np.random.default_rng(seed)
    draws = [rng.permutation(start) for _ in range(reps)]
    return np.vstack([start, *draws]), False, possible


_TRTRS = scipy.linalg.lapack.dtrtrs
_EYES: dict[int, np.ndarray] = {}


def _lower_inverse(low: np.ndarray) -> np.ndarray:
    """``scipy.linalg.solve_triangular(low, eye, lower=True)`` for a lower
    triangular ``low`` (a Cholesky factor): LAPACK's ``dtrtrs`` called as
    scipy calls it (on the transposed system, for a C-ordered factor), the
    same numbers without its checks and dispatch, which cost more than the
    solve for the small matrices of the randomisation test's refits; scipy's
    own call for anything else (and for its errors)."""
    n = len(low)
    if n > 1 and low.dtype == np.float64 and low.flags.c_contiguous and np.isfinite(low).all():
        eye = _EYES.get(n)
        if eye is None:
            eye = _EYES[n] = np.eye(n)
            eye.flags.writeable = False
        x, info = _TRTRS(low.T, eye, lower=0, trans=1, unitdiag=0)
        if info == 0:
            return x
    return scipy.linalg.solve_triangular(low, np.eye(n), lower=True)


def _inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive semi-definite matrix: by Cholesky when
    it is definite, else the pseudo-inverse."""
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a)
    inv_low = _lower_inverse(low)
    return inv_low.T @ inv_low


def _definite_inverse(a: np.ndarray, rtol: float = 1e-10) -> np.ndarray | None:
    """Inverse of a symmetric positive definite matrix by its Cholesky
    factor; None when it is not clearly definite (a pivot below ``rtol``
    times the largest diagonal element)."""
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None
    if np.diag(low).min() ** 2 < rtol * np.diag(a).max():
        return None
    inv_low = _lower_inverse(low)
    return inv_low.T @ inv_low


#: build the assignments' rows, columns and weights all at once
#: (:mod:`._sa_batch`); False: one at a time by :mod:`._sa` (the same numbers;
#: the tests compare the two)
BATCHED = True

#: the parts of a refit that depend on the assignment but not on the outcome
#: columns, per cell structure (entity, period, weight, cluster) and
#: specification: the outcomes of one sub-study and group share the cells and
#: the assignments, so each assignment's design is built once for all of them
_DESIGNS = ContentMemo(size=4)


class _Fitter:
    """Refits the interaction-weighted event study on cells for one
    assignment at a time; two-way fixed effects are partialled out with a
    projection cached per estimation sample, and each assignment's design
    (which does not depend on the outcome columns) is shared with every
    fitter of the same cells and specification."""

    def __init__(self, cells: Cells, spec: Spec):
        self.cells = cells
        self.spec = spec
        g = int(cells.entity.max()) + 1
        periods, self.pcode = np.unique(cells.period, return_inverse=True)
        n = len(cells.period)
        self.fe = np.zeros((n, g + len(periods)))
        self.fe[np.arange(n), cells.entity] = 1.0
        self.fe[np.arange(n), g + self.pcode] = 1.0
        ncl = int(cells.cluster.max()) + 1
        self.cl = np.zeros((n, ncl))
        self.cl[np.arange(n), cells.cluster] = 1.0
        self._yt: dict[bytes, np.ndarray] = {}
        self._structures: dict[bytes, _sa_batch.Structure] = {}
        self._shared: dict[bytes, Any] = _DESIGNS.get(
            [cells.entity, cells.period, cells.weight, cells.cluster], repr(spec), dict)

    def _projection(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pieces of the weighted projection on the fixed effects of the
        kept cells, :math:`F (F'WF)^+ (WF)'`, kept as its three factors (the
        cells-by-cells matrix itself is never formed); shared by every
        assignment that keeps the same cells."""
        key = b"projection" + keep.tobytes()
        if key not in self._shared:
            f = self.fe[keep]
            f = f[:, f.any(axis=0)]
            w = self.cells.weight[keep]
            # one period indicator left out (the entity indicators span the
            # constant): F'WF is then definite when the cells connect every
            # entity and period, and a Cholesky factor inverts it; the
            # projection does not depend on the generalised inverse
            fw = f[:, :-1] * w[:, None]
            inner = _definite_inverse(f[:, :-1].T @ fw)
            if inner is None:
                fw = f * w[:, None]
                inner = np.linalg.pinv(f.T @ fw)
            else:
                f = f[:, :-1]
            self._shared[key] = (f, inner, fw)
        return self._shared[key]

    def _partialled(self, keep: np.ndarray) -> np.ndarray:
        """The outcome columns of the kept cells with the fixed effects
        partialled out."""
        key = keep.tobytes()
        if key not in self._yt:
            f, inner, fw = self._projection(keep)
            y = self.cells.y[keep]
            self._yt[key] = y - f @ (inner @ (fw.T @ y))
        return self._yt[key]

    def prepare(self, rows: np.ndarray) -> None:
        """Rows used, columns and weights of the assignments ``rows`` whose
        design is not yet built, all at once (:mod:`._sa_batch`), for
        :meth:`_design`."""
        if not BATCHED:
            return
        keys = [b"design" + start.tobytes() for start in rows]
        todo = [i for i, key in enumerate(keys) if key not in self._shared]
        if not todo:
            return
        c, s = self.cells, self.spec
        found = _sa_batch.structures(
            c.period, c.entity, c.weight, rows[todo], leads=s.leads, lags=s.lags,
            reference=s.reference, bin=s.bin, control_cohort=s.control_cohort,
            post_weights=s.post_weights, baseline=s.baseline)
        for i, structure in zip(todo, found, strict=True):
            if structure is not None:
                self._structures[keys[i]] = structure

    def _structure(self, key: bytes, start: np.ndarray) -> tuple:
        """Kept cells, indicator matrix, post-period weights and pre-period
        event-time weights of one assignment: prepared, or by :mod:`._sa`."""
        found = self._structures.pop(key, None)
        if found is not None:
            return found.keep, found.matrix(), found.post, found.wmat_pre
        c, s = self.cells, self.spec
        a = _sa.assign(c.period, start[c.entity], leads=s.leads, lags=s.lags,
                       reference=s.reference, bin=s.bin, control_cohort=s.control_cohort)
        inter = _sa.interactions(a, s.reference)
        agg = _sa.aggregate(a, inter, c.weight[a.keep], leads=s.leads, lags=s.lags,
                            reference=s.reference, post_weights=s.post_weights,
                            baseline=s.baseline)
        pre = agg.pre_rows
        return a.keep, inter.matrix(), agg.post, agg.wmat[pre] if pre else None

    def _design(self, start: np.ndarray) -> tuple:
        """The assignment's kept cells, post-period weights, partialled
        interactions (and weighted), their inverted cross-product, the
        post-period leverage, the clusters of the kept cells, and the
        pre-period event-time weights and leverage (None without any)."""
        key = b"design" + start.tobytes()
        if key in self._shared:
            return self._shared[key]
        keep, x, post, r = self._structure(key, start)
        f, inner, fw = self._projection(keep)
        w = self.cells.weight[keep]
        xt = x - f @ (inner @ (fw.T @ x))
        xw = xt * w[:, None]
        b = _inverse(xt.T @ xw)
        lever = xw @ (b @ post)
        # the pre-period coefficients' leverage, shared by the outcome columns
        pre_lever = xw @ (b @ r.T) if r is not None else None
        self._shared[key] = out = (keep, post, xt, xw, b, lever, self.cl[keep], r, pre_lever)
        return out

    def fit(self, start: np.ndarray, pre_column: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Post-period estimate per outcome column, the clusters' score
        contributions to it (clusters x columns) and the pre-trend Wald
        statistic of column ``pre_column``."""
        theta, contrib, wald = self.fit_parts(start, pre_column)
        stat = math.nan
        if wald is not None:
            gram, rb = wald
            stat = float(rb @ np.linalg.pinv(gram) @ rb)
        return theta, contrib, stat

    def fit_parts(self, start: np.ndarray, pre_column: int) -> tuple:
        """:meth:`fit` with the pre-trend statistic left in its parts: the
        cross-product of the clusters' scores and the pre-period estimates
        (None without pre-period coefficients)."""
        keep, post, xt, xw, b, lever, cl, r, pre_lever = self._design(start)
        yt = self._partialled(keep)
        delta = b @ (xw.T @ yt)
        resid = yt - xt @ delta
        theta = post @ delta
        contrib = cl.T @ (lever[:, None] * resid)
        if r is None:
            return theta, contrib, None
        scores = cl.T @ (pre_lever * resid[:, [pre_column]])
        return theta, contrib, (scores.T @ scores, r @ delta[:, pre_column])


def _wald_stats(parts: list[tuple | None]) -> list[float | None]:
    """The pre-trend statistic :math:`b' G^+ b` of each assignment from its
    parts (:meth:`_Fitter.fit_parts`; NaN without any), the pseudo-inverses
    of all matrices of one size in one call of ``numpy.linalg.pinv`` (on a
    stack it is the pseudo-inverse of each matrix, by the same routines:
    the same floats, without its overhead per call); None where a
    pseudo-inverse fails (the refit of that assignment failed before)."""
    out: list[float | None] = [math.nan] * len(parts)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, part in enumerate(parts):
        if part is not None:
            by_size.setdefault(part[0].shape, []).append(i)
    for idx in by_size.values():
        try:
            invs: list[np.ndarray | None] = list(
                np.linalg.pinv(np.stack([parts[i][0] for i in idx])))
        except np.linalg.LinAlgError:
            invs = []
            for i in idx:
                try:
                    invs.append(np.linalg.pinv(parts[i][0]))
                except np.linalg.LinAlgError:
                    invs.append(None)
        for i, inv in zip(idx, invs, strict=True):
            rb = parts[i][1]
            out[i] = None if inv is None else float(rb @ inv @ rb)
    return out


STATISTICS = ("studentized", "raw")


def randomization_test(
    cells: Cells, spec: Spec, *, reps: int, seed: int, statistic: str = "studentized"
) -> RandomizationTest:
    """Run the test; ``cells.y`` holds three columns: the outcome, the
    exposure indicator of the actual assignment, and the outcome with the
    estimated post-period path removed (for the pre-trend statistic); and
    optionally further outcomes fitted with the same assignments
    (``theta_x``, ``c_x``; e.g. take-up for a Wald ratio)."""
    if cells.y.shape[1] < 3:
        raise EffectInputError("internal: at least three outcome columns expected")
    if statistic not in STATISTICS:
        raise EffectInputError(f"statistic must be one of {STATISTICS}, not {statistic!r}")
    fitter = _Fitter(cells, spec)
    rows, exact, possible = assignments(cells.start, reps, seed)
    fitter.prepare(rows)
    fits, parts = [], []
    skipped = 0
    for i, start in enumerate(rows):
        try:
            theta, contrib, wald = fitter.fit_parts(start, pre_column=2)
        except (EffectInputError, np.linalg.LinAlgError):
            if i == 0:
                raise
            skipped += 1
            continue
        fits.append((i, theta, contrib))
        parts.append(wald)
    theta_y, theta_d, c_y, c_d, pre, theta_x, c_x = [], [], [], [], [], [], []
    for (i, theta, contrib), stat in zip(fits, _wald_stats(parts), strict=True):
        if stat is None:  # the pseudo-inverse failed: the refit failed
            if i == 0:
                np.linalg.pinv(parts[0][0])  # raises, as the refit did
            skipped += 1
            continue
        theta_y.append(theta[0])
        theta_d.append(theta[1])
        c_y.append(contrib[:, 0])
        c_d.append(contrib[:, 1])
        pre.append(stat)
        theta_x.append(theta[3:])
        c_x.append(contrib[:, 3:])
    extra = cells.y.shape[1] > 3
    return RandomizationTest(
        theta_y=np.array(theta_y),
        theta_d=np.array(theta_d),
        c_y=np.vstack(c_y),
        c_d=np.vstack(c_d),
        pre_stat=np.array(pre),
        exact=exact,
        n_possible=possible,
        skipped=skipped,
        cells=cells,
        spec=spec,
        theta_x=np.vstack(theta_x) if extra else None,
        c_x=np.stack(c_x) if extra else None,
        statistic=statistic,
    )


def _exposure(cells: Cells, start: np.ndarray) -> np.ndarray:
    """Cell exposure (at or after adoption) under one assignment; adoption
    after the last period counts as never, as in the estimator."""
    e = start[cells.entity]
    late = np.isfinite(e) & (e > cells.period.max())
    rel = cells.period - np.where(late, np.nan, e)
    return (np.nan_to_num(rel, nan=-1.0) >= 0).astype(float)


@dataclass(frozen=True)
class DesignPower:
    """What the design lets the randomisation test detect, before any effect
    is estimated (:func:`design_power`)."""

    #: smallest constant effect rejected with the requested power (NaN: none found)
    mde: float
    #: quantiles 10%, 50%, 90% of the interval half-width over assignments, no effect
    halfwidth: tuple[float, float, float]
    #: spread (standard deviation) of the estimate over assignments, no effect
    null_sd: float
    draws: int


def shifted_pvalues(theta: np.ndarray, slope: np.ndarray, syy: np.ndarray, syd: np.ndarray,
                    sdd: np.ndarray, tau: np.ndarray, own: int, *, raw: bool = False
                    ) -> np.ndarray:
    """Per value of ``tau``, the share of assignments whose statistic is at
    least that of assignment ``own``: the statistic of assignment a is
    :math:`|\\theta_a + \\tau s_a| / \\sqrt{v_a(\\tau)}` with
    :math:`v_a = syy_a + 2\\tau\\, syd_a + \\tau^2 sdd_a` (infinite where
    :math:`v_a \\le 0`; 1 for the ``raw`` statistic). The assignments-by-values
    arrays are formed in place, with the same operations in the same order as
    the plain expression (tests/test_randomization_power.py holds the two equal
    bit for bit): :func:`design_power` evaluates it for every draw over a grid
    of 1,601 values."""
    tau = np.asarray(tau, dtype=float)[None, :]
    num = np.multiply(tau, slope[:, None])
    num += theta[:, None]
    np.abs(num, out=num)
    if raw:
        t = num
    else:
        var = np.multiply(2 * tau, syd[:, None])
        var += syy[:, None]
        var += np.multiply(tau ** 2, sdd[:, None])
        positive = var > 0
        with np.errstate(invalid="ignore"):
            np.sqrt(var, out=var)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(num, var, out=num, where=positive)
        num[~positive] = np.inf
        t = num
    above = t >= t[own][None, :] * (1 - 1e-10)
    return np.count_nonzero(above, axis=0) / above.shape[0]


def design_power(
    test: RandomizationTest,
    *,
    alpha: float = 0.05,
    power: float = 0.80,
    draws: int = 200,
    seed: int = 0,
) -> DesignPower:
    r"""Design-based power of the randomisation test: what it would detect,
    and how wide its interval would be, had the adoption dates fallen
    otherwise. Uses no estimate of the effect.

    The outcome without effect is the test's third column (the outcome with
    the estimated path removed where exposed). ``draws`` assignments
    :math:`b` are each taken as if they were the true one. With the outcome
    plus :math:`\tau` on the cells :math:`b` exposes, the test of no effect
    compares :math:`b`'s studentised statistic with every assignment's; the
    power at :math:`\tau` is the share of :math:`b` rejected at ``alpha``,
    and :attr:`DesignPower.mde` the smallest :math:`\tau` with at least
    ``power`` (searched up to 100 null standard deviations). With no effect,
    each :math:`b`'s interval (test inversion, as :meth:`RandomizationTest.
    conf_int`) gives a half-width; their quantiles say how wide the interval
    of the actual assignment could be. The estimator's linearity gives every
    :math:`\tau` from one refit per assignment with one outcome column per
    :math:`b`."""
    if test.cells is None or test.spec is None:
        raise EffectInputError("internal: the test keeps no cells to refit")
    cells = test.cells
    rows, _, _ = assignments(cells.start, len(test.theta_y) - 1, seed)
    rng = np.random.default_rng(seed)
    truth = rows[1:][rng.permutation(len(rows) - 1)[:draws]]
    y = np.column_stack([cells.y[:, 2], *[_exposure(cells, b) for b in truth]])
    fitter = _Fitter(dataclasses.replace(cells, y=y), test.spec)
    fitter.prepare(rows)
    theta, contrib = [], []
    index: dict[bytes, int] = {}
    for start in rows:
        try:
            th_a, cb_a, _ = fitter.fit(start, pre_column=0)
        except (EffectInputError, np.linalg.LinAlgError):
            continue
        index[np.nan_to_num(start, nan=-1.0).tobytes()] = len(theta)
        theta.append(th_a)
        contrib.append(cb_a)
    th, cb = np.array(theta), np.array(contrib)  # A x (1+K), A x G x (1+K)
    own = np.array([index.get(np.nan_to_num(b, nan=-1.0).tobytes(), -1) for b in truth])
    keep = np.flatnonzero(own >= 0)
    sd = float(np.std(th[:, 0], ddof=1))
    nan3 = (math.nan, math.nan, math.nan)
    if not len(keep) or not sd > 0:
        return DesignPower(math.nan, nan3, sd, 0)

    # per assignment and draw: the sums of squares and cross products of the
    # clusters' score contributions, so that the variance at any tau is a quadratic
    syy = (cb[:, :, 0] ** 2).sum(axis=1)  # A
    syd = np.einsum("ag,agk->ak", cb[:, :, 0], cb[:, :, 1:])
    sdd = (cb[:, :, 1:] ** 2).sum(axis=1)  # A x K

    raw = test.statistic == "raw"

    def pvalues(tau: np.ndarray, k: int) -> np.ndarray:
        """p-values of "no effect" on the outcome shifted by each tau on b_k's
        exposure (equivalently: of "effect -tau" on the unshifted outcome)."""
        return shifted_pvalues(th[:, 0], th[:, k + 1], syy, syd[:, k], sdd[:, k], tau,
                               int(own[k]), raw=raw)

    grid = sd * np.linspace(-100, 100, 1601)
    p = np.array([pvalues(grid, k) for k in keep])  # K x grid
    rejected = (p[:, grid > 0] <= alpha).mean(axis=0)
    pos = grid[grid > 0]
    hit = np.flatnonzero(rejected >= power)
    mde = float(pos[hit[0]]) if len(hit) else math.nan
    widths = []
    for row in p:
        accepted = grid[row > alpha]
        edge = len(accepted) and (accepted.min() <= grid[0] or accepted.max() >= grid[-1])
        widths.append(
            math.inf if edge else (accepted.max() - accepted.min()) / 2 if len(accepted) else 0.0
        )
    q = np.quantile(np.array(widths), [0.1, 0.5, 0.9])
    return DesignPower(mde, (float(q[0]), float(q[1]), float(q[2])), sd, len(keep))

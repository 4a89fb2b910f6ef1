"""Each starter's true conditional effect: the expected effect of their start
against that start blocked, given everything the generator knows about them.

A starter of instrument *j* at elapsed month *S* has one realised effect
(employed with the start minus employed in the not-now world, 0 or ±1), which
mixes the person's expected gain with the luck of two coin flips. The
expected effect given the person (covariates, the unobserved factor, team,
inflow month, case manager, *j* and *S*) is what a prediction per person can
at best recover; it is computed here exactly, from the monthly chain of
:mod:`.dynamics`, not by simulation:

with the start
    from "on benefit" just before *S*, the chance of work each month follows
    the two-state recursion :math:`p_k = p_{k-1}(1 - \\lambda) + (1 -
    p_{k-1}) f_k`, with :math:`\\lambda` the chance to lose a job and
    :math:`f_k` the job-finding chance with the instrument's shift (during its
    months, then after).
not now
    the start at *S* is blocked; from *S* + 1 (up to the last opportunity
    month) a person still on benefit gets an opportunity with probability *q*
    and picks instrument *j'* with the multinomial-logit probability of the
    assignment model (the Gumbel draws' choice probabilities; none has
    utility 0). The chain tracks on benefit, employed and out (only those on
    benefit can start), and every later start (*j'*, *k'*) as a cohort with
    its own two-state recursion.

The mean of these expected effects over the starters equals, up to the coin
flips, the mean of the realised ones (``att_notnow``): a check in the tests.
"""

from __future__ import annotations

import numpy as np

from .dynamics import Assignment, PathModel, sigmoid


def _shift(model: PathModel, j: np.ndarray, person: np.ndarray, start: np.ndarray,
           k: int) -> np.ndarray:
    """The instrument's shift of the job-finding log-odds in month ``k`` for
    rows started at ``start`` (during its months, then after)."""
    during = model.during[j]
    after = model.after[j, person]
    return np.where(k < start + model.months[j], during, after)


def with_start(model: PathModel, person: np.ndarray, j: np.ndarray, start: np.ndarray,
               horizons: list[int]) -> np.ndarray:
    """(rows, horizons): the chance of work at each horizon when ``j``
    (0-based) starts at ``start`` from on benefit just before it."""
    p = np.zeros(len(person))
    out = np.zeros((len(person), len(horizons)))
    lose = model.p_lose[person]
    for k in range(1, model.K + 1):
        active = k >= start
        f = sigmoid(model.base[person, k] + _shift(model, j, person, start, k))
        p = np.where(active, p * (1 - lose) + (1 - p) * f, p)
        for c, h in enumerate(horizons):
            if h == k:
                out[:, c] = p
    return out


def choice_probabilities(asg: Assignment, theta: np.ndarray, rows: np.ndarray, k: int
                         ) -> np.ndarray:
    """(rows, J): the chance that an opportunity in month ``k`` is taken for
    each instrument (Gumbel-max choices: multinomial logit, none at 0).
    ``theta`` (rows, J): the person's own case manager's propensities."""
    util = asg.base[rows] + theta + asg.elapsed * (k / 12)
    if asg.rollout_j is not None and asg.shift:
        util[:, asg.rollout_j] += asg.shift * (asg.rollout_month[rows] <= k)
    top = np.max(np.where(np.isfinite(util), util, -np.inf), axis=1, initial=0.0)
    ex = np.exp(util - top[:, None])
    return ex / (np.exp(-top) + ex.sum(axis=1))[:, None]


def not_now(model: PathModel, asg: Assignment, q: float, theta: np.ndarray,
            person: np.ndarray, start: np.ndarray, reentry: float,
            horizons: list[int]) -> np.ndarray:
    """(rows, horizons): the chance of work at each horizon when the start at
    ``start`` is blocked and later opportunities take their course."""
    n, J, K = len(person), asg.base.shape[1], model.K
    b, e, o = np.ones(n), np.zeros(n), np.zeros(n)  # not started: on benefit, employed, out
    lose = model.p_lose[person]
    # later cohorts: mass and its employed part, per (instrument, start month)
    cohort_mass = np.zeros((n, J, K + 1))
    cohort_emp = np.zeros((n, J, K + 1))
    out = np.zeros((n, len(horizons)))
    starts = np.arange(K + 1)
    for k in range(1, K + 1):
        active = k >= start
        # a start at k needs an opportunity and on benefit just before k (not at S itself)
        can = active & (k > start) & (k <= min(asg.cap, asg.K))
        if can.any():
            probs = q * choice_probabilities(asg, theta, person, k)  # (n, J)
            moved = np.where(can[:, None], b[:, None] * probs, 0.0)
            cohort_mass[:, :, k] += moved
            b = b - moved.sum(axis=1)
        # the cohorts started at k or before: their instrument's shift applies
        started = starts[None, None, :] <= k
        for jj in range(J):
            if not cohort_mass[:, jj, :k + 1].any():
                continue
            tau = np.where(k < starts[None, :] + model.months[jj], model.during[jj],
                           model.after[jj, person][:, None])  # (n, K+1)
            f = sigmoid(model.base[person, k][:, None] + tau)
            m, pe = cohort_mass[:, jj, :], cohort_emp[:, jj, :]
            upd = pe * (1 - lose[:, None]) + (m - pe) * f
            cohort_emp[:, jj, :] = np.where(started[0] & active[:, None], upd, pe)
        f0 = sigmoid(model.base[person, k])
        nb = b * (1 - f0) + e * lose * reentry
        ne = e * (1 - lose) + (b + o) * f0
        no = o * (1 - f0) + e * lose * (1 - reentry)
        b, e, o = (np.where(active, nb, b), np.where(active, ne, e), np.where(active, no, o))
        for c, h in enumerate(horizons):
            if h == k:
                out[:, c] = e + cohort_emp.sum(axis=(1, 2))
    return out


def expected_effects(model: PathModel, asg: Assignment, q: float, theta_own: np.ndarray,
                     instrument: np.ndarray, real_start: np.ndarray, horizons: list[int],
                     chunk: int = 20_000) -> np.ndarray:
    """(n, horizons): each starter's expected effect of their start against
    that start blocked (module text); NaN for persons who did not start.
    ``theta_own`` (n, J): every person's own case manager's propensities."""
    n = len(instrument)
    out = np.full((n, len(horizons)), np.nan)
    starters = np.flatnonzero(instrument > 0)
    for lo in range(0, len(starters), chunk):
        rows = starters[lo:lo + chunk]
        j, s = instrument[rows] - 1, real_start[rows]
        yes = with_start(model, rows, j, s, horizons)
        no = not_now(model, asg, q, theta_own[rows], rows, s, model.reentry, horizons)
        # two recursions of one chain: without any effect they agree to the last
        # bits only, so the difference is rounded (no spread from floating noise)
        out[rows] = np.round(yes - no, 12)
    return out

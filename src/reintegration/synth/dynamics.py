"""The dynamic assignment process and the path simulator of the synthetic world.

Assignment is memoryless: in every elapsed month :math:`k = 1, \\dots, K`
(at most ``assignment.start_month.max``) a start opportunity arrives with
probability :math:`q`, independently of everything else. At an opportunity,
a person still on benefit just before *k* who has not started anything gets a
multinomial-logit choice (none or instrument *j*) with that month's own Gumbel
draws. The first pick other than none is the start. Opportunity and Gumbel
draws are drawn once, as arrays (n, K) and (n, K, J+1), and shared by every
counterfactual schedule (another case manager, the roll-out on or off, the
start at *S* blocked), so these are coupled person by person.

Before any start every world coincides with the world without instrument, so
"on benefit just before *k*" is read from that path: a schedule (instrument,
start month) follows from the no-instrument path and the draws alone, and the
path under a schedule is simulated afterwards (:class:`PathModel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

B, E, OUT = 0, 1, 2  # states: on benefit, employed, neither


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Assignment:
    """Inputs of the choice at every opportunity month.

    ``base`` (n, J): intercept, covariates and eta (minus infinity for an
    instrument the city does not offer); ``elapsed`` (J,): coefficient per
    year on benefit; ``opportunity`` (n, K) bool and ``gumbel`` (n, K, J+1):
    the shared draws; ``rollout_month`` (n,): the elapsed month from which the
    person's team has the roll-out in place (a large number if never);
    ``rollout_j`` and ``shift``: the rolled-out instrument (0-based) and its
    utility shift; ``cap``: the last month with opportunities; ``q``: the
    chance of an opportunity in a month."""

    base: np.ndarray
    elapsed: np.ndarray
    opportunity: np.ndarray
    gumbel: np.ndarray
    rollout_month: np.ndarray
    rollout_j: int | None
    shift: float
    cap: int
    q: float = float("nan")  # the monthly chance of an opportunity (drawn into opportunity)

    @property
    def K(self) -> int:
        return self.opportunity.shape[1]

    def first_start(
        self,
        theta: np.ndarray,
        allowed: np.ndarray,
        rollout: str = "calendar",
        after: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first pick other than none at an opportunity month *k* where
        ``allowed[:, k-1]`` holds (and *k* > ``after``, per person).

        ``theta`` is (n, J) or (n, slots, J): the case managers' propensities.
        ``rollout``: ``calendar`` (the team's roll-out date), ``on`` (in place
        in every month) or ``off`` (never). Returns (instrument 1..J or 0,
        start month or 0), each of shape ``theta.shape[:-1]``."""
        n, J = self.base.shape
        extra = (1,) * (theta.ndim - 2)
        util0 = self.base.reshape(n, *extra, J) + theta
        inst = np.zeros(theta.shape[:-1], dtype=np.int64)
        start = np.zeros(theta.shape[:-1], dtype=np.int64)
        for k in range(1, min(self.cap, self.K) + 1):
            ok = self.opportunity[:, k - 1] & allowed[:, k - 1]
            if after is not None:
                ok &= k > after
            undecided = inst == 0
            if extra:
                undecided = undecided.reshape(n, -1).any(axis=1)
            idx = np.nonzero(ok & undecided)[0]
            if not len(idx):
                continue
            m = len(idx)
            util = util0[idx] + self.elapsed * (k / 12)  # (m, *slots, J)
            if self.rollout_j is not None and self.shift and rollout != "off":
                if rollout == "on":
                    status = np.ones(m)
                else:
                    status = (self.rollout_month[idx] <= k).astype(float)
                util[..., self.rollout_j] += self.shift * status.reshape(m, *extra)
            g = self.gumbel[idx, k - 1, :]
            total = util + g[:, 1:].reshape(m, *extra, J)
            best = total.argmax(axis=-1)
            top = np.take_along_axis(total, best[..., None], axis=-1)[..., 0]
            # none has utility zero plus its own draw
            pick = np.where(top > g[:, 0].reshape(m, *extra), best + 1, 0)
            sub_inst, sub_start = inst[idx], start[idx]
            hit = (pick > 0) & (sub_inst == 0)
            sub_inst[hit] = pick[hit]
            sub_start[hit] = k
            inst[idx], start[idx] = sub_inst, sub_start
        return inst, start


@dataclass
class PathModel:
    """Monthly states (B, E, O) after inflow under a per-person schedule.

    ``base`` (n, K+1): log-odds of job finding without instrument in month
    *k* (covariates, eta, team, duration, calendar); ``p_lose`` (n,);
    ``months``, ``during`` (J,) and ``after`` (J, n): the instruments'
    durations and shifts; ``U``, ``V`` (n, K+1): the shared uniform draws."""

    base: np.ndarray
    p_lose: np.ndarray
    months: np.ndarray
    during: np.ndarray
    after: np.ndarray
    U: np.ndarray
    V: np.ndarray
    reentry: float

    @property
    def K(self) -> int:
        return self.base.shape[1] - 1

    def simulate(self, person: np.ndarray, inst: np.ndarray, start: np.ndarray) -> np.ndarray:
        """States (M, K+1) of rows (person, instrument 1..J or 0 for none,
        start month). The instrument starts only if the row is on benefit
        just before its start month; its shift applies from then on."""
        M, K = len(person), self.K
        j = np.maximum(inst - 1, 0)
        treated = inst > 0
        months = np.where(treated, self.months[j], 0)
        during = np.where(treated, self.during[j], 0.0)
        after = np.where(treated, self.after[j, person], 0.0)
        p_lose = self.p_lose[person]
        out = np.zeros((M, K + 1), dtype=np.int8)
        state = np.zeros(M, dtype=np.int8)
        ok = np.zeros(M, dtype=bool)
        for k in range(1, K + 1):
            ok |= treated & (start == k) & (state == B)
            tau = np.where(ok, np.where(k < start + months, during, after), 0.0)
            pf = sigmoid(self.base[person, k] + tau)
            u = self.U[person, k]
            employed = state == E
            new = state.copy()
            new[~employed & (u < pf)] = E
            lost = employed & (u < p_lose)
            back = self.V[person, k] < self.reentry
            new[lost & back] = B
            new[lost & ~back] = OUT
            state = new
            out[:, k] = state
        return out

    def paths(self, none: np.ndarray, inst: np.ndarray, start: np.ndarray) -> np.ndarray:
        """States for schedules ``inst``, ``start`` of shape (n, ...) (persons
        first): the no-instrument path ``none`` (n, K+1) where no
        instrument is scheduled, and each distinct (person, instrument,
        start) simulated once. Returns shape ``inst.shape + (K+1,)``."""
        n = none.shape[0]
        person = np.broadcast_to(
            np.arange(n).reshape((n,) + (1,) * (inst.ndim - 1)), inst.shape
        ).ravel()
        fi, fs = inst.ravel(), start.ravel()
        out = none[person]
        sel = np.nonzero((fi > 0) & (fs >= 1) & (fs <= self.K))[0]
        if len(sel):
            J1, K2 = int(self.months.size) + 1, self.K + 2
            code = (person[sel].astype(np.int64) * J1 + fi[sel]) * K2 + fs[sel]
            uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
            rows = sel[first]
            sim = self.simulate(person[rows], fi[rows], fs[rows])
            out[sel] = sim[inverse]
        return out.reshape(inst.shape + (self.K + 1,))

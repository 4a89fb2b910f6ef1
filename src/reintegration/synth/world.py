"""The synthetic world of one city: persons, case managers, assignment to
instruments, and monthly employment and benefit paths in every treatment world.

The data-generating process (written out with equations in the book's data
chapter):

* covariates :math:`X_i` and an unobserved, time-invariant employability
  factor :math:`\\eta_i \\sim N(0, 1)`;
* 24 months of employment history before inflow (a two-state chain whose
  rates rise with :math:`\\eta_i`), so prior employment is informative about
  :math:`\\eta_i` but does not reveal it;
* after inflow, a monthly three-state chain (on benefit B, employed E, out of
  both O). The job-finding hazard has log-odds
  :math:`\\alpha + X_i'\\beta + \\lambda \\eta_i + \\delta k + c_t + u_{team}
  + \\tau_{ij}(k)`, where :math:`\\tau_{ij}(k)` is the instrument's shift:
  zero before the start, ``during`` while it runs, ``after`` plus
  heterogeneity once it ended;
* every world (no instrument, each instrument) uses the *same* uniform draws
  :math:`U_{ik}, V_{ik}`, so potential outcomes are coupled and the world of
  the assigned instrument is exactly what the observed files show;
* dynamic, memoryless assignment (:mod:`.dynamics`): in every elapsed month
  a start opportunity arrives with a fixed probability; at an opportunity a
  person still on benefit who has not started anything gets a multinomial
  logit choice (none or an instrument) in covariates, elapsed time,
  :math:`\\eta_i`, the case manager's propensity :math:`\\theta_{mj}` and the
  team's roll-out status that month, with that month's own Gumbel draws; the
  first pick other than none starts. The draws are shared by every
  counterfactual schedule (another case manager, roll-out on or off, the
  start blocked), so counterfactual assignments are defined person by person.

Worlds kept (each a path of monthly states per person): no instrument; each
instrument *j* started at :math:`S^*_i` (the realised start month of a
starter, otherwise the first opportunity on benefit); the realised schedule;
"not now" (a starter's start blocked, the process free to continue); the
realised schedule under every case manager of the client's cell; and the
roll-out in place in every month or in none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.config import ConfigError
from .dynamics import OUT, Assignment, B, E, PathModel, sigmoid
from .params import CityParams
from .schema import COVARIATES

__all__ = ["B", "E", "OUT", "World", "build_world", "sigmoid"]
PRE_MONTHS = 24


def month_first_day(months: np.ndarray) -> np.ndarray:
    """First day (datetime64[D]) of month indices (months since 1970-01)."""
    return np.asarray(months, dtype="int64").astype("datetime64[M]").astype("datetime64[D]")


def days_in_month(months: np.ndarray) -> np.ndarray:
    m = np.asarray(months, dtype="int64")
    return (month_first_day(m + 1) - month_first_day(m)).astype("int64")


def random_day(rng: np.random.Generator, months: np.ndarray) -> np.ndarray:
    """A uniformly random day within each month."""
    m = np.asarray(months, dtype="int64")
    off = np.floor(rng.random(m.shape) * days_in_month(m)).astype("int64")
    return month_first_day(m) + off.astype("timedelta64[D]")


def day_between(rng: np.random.Generator, lo: np.ndarray, months: np.ndarray) -> np.ndarray:
    """A random day in ``months`` that is not before ``lo``."""
    first = month_first_day(months)
    start = np.maximum(first, lo)
    last = month_first_day(np.asarray(months, dtype="int64") + 1) - np.timedelta64(1, "D")
    span = (last - start).astype("int64") + 1
    off = np.floor(rng.random(span.shape) * np.maximum(span, 1)).astype("int64")
    return start + off.astype("timedelta64[D]")


@dataclass
class Persons:
    """Covariates of the clients (index 0..n-1)."""

    female: np.ndarray
    age: np.ndarray  # whole years at inflow
    birth_date: np.ndarray  # datetime64[D]
    migration: np.ndarray  # category keys
    generation: np.ndarray  # 0, 1, 2
    education: np.ndarray  # low, middle, high
    education_missing: np.ndarray
    household: np.ndarray
    chronic: np.ndarray
    language_low: np.ndarray
    eta: np.ndarray
    team: np.ndarray  # index into teams
    inflow_month: np.ndarray  # month index
    inflow_date: np.ndarray  # datetime64[D]
    quarter: np.ndarray  # calendar quarter index (months // 3)


@dataclass
class World:
    p: CityParams
    persons: Persons
    X: np.ndarray  # (n, len(COVARIATES))
    distance: np.ndarray  # 0 short, 1 medium, 2 large
    pre_emp: np.ndarray  # (n, 24) bool, months -24..-1
    # case managers
    cm_of: np.ndarray  # (teams, slots, quarters) -> case-manager index
    cm_team: np.ndarray
    cm_first_q: np.ndarray
    cm_last_q: np.ndarray
    theta: np.ndarray  # (n_cm, J)
    slot: np.ndarray  # own slot per person
    cm_cells: np.ndarray  # (n, slots) case managers of the person's cell
    # assignment (start months are elapsed months 1..K; 0 = no start)
    start: np.ndarray  # S*: the realised start month of a starter, else the first
    #                    opportunity on benefit (else the first opportunity, else K+1)
    eligible: np.ndarray  # has a start opportunity while on benefit
    choice: np.ndarray  # first pick other than none were the person always on benefit
    instrument: np.ndarray  # realised instrument 1..J (0 none)
    choice_cells: np.ndarray  # (n, slots) choice under each case manager of the cell
    rollout_exposed: np.ndarray  # roll-out in place at the first opportunity on benefit
    opportunity: np.ndarray  # (n, K) bool, start opportunities within the cap
    real_start: np.ndarray  # realised start month (0 none)
    first_opportunity: np.ndarray  # first opportunity on benefit (0 none)
    notnow_instrument: np.ndarray  # starters: the start at S blocked; others: realised
    notnow_start: np.ndarray
    notnow_path: np.ndarray  # (n, K+1)
    inst_cells: np.ndarray  # (n, slots) realised instrument under each case manager
    start_cells: np.ndarray  # (n, slots)
    cell_paths: np.ndarray  # (n, slots, K+1)
    instrument_rollout: dict[str, np.ndarray] = field(default_factory=dict)  # on, off
    start_rollout: dict[str, np.ndarray] = field(default_factory=dict)
    rollout_paths: dict[str, np.ndarray] = field(default_factory=dict)  # (n, K+1)
    hist: np.ndarray | None = None  # (J+1, n, K+1): none and each j started at S*
    assignment: Assignment | None = None  # utilities and shared draws (for checks)
    model: PathModel | None = None  # the monthly chain (expected effects per starter)
    worlds: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.eta)

    @property
    def eta(self) -> np.ndarray:
        return self.persons.eta

    def covariate(self, name: str) -> np.ndarray:
        return self.X[:, list(COVARIATES).index(name)]

    def observed_path(self) -> np.ndarray:
        """(n, K+1) states in the realised world."""
        assert self.hist is not None
        return self.hist[self.instrument, np.arange(self.n), :]


def _lin(X: np.ndarray, coefs: dict[str, float] | None) -> np.ndarray:
    out = np.zeros(X.shape[0])
    names = list(COVARIATES)
    for name, b in (coefs or {}).items():
        out += float(b) * X[:, names.index(name)]
    return out


def _categorical(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    keys = np.array(list(shares), dtype=object)
    probs = np.array([float(v) for v in shares.values()])
    cum = np.cumsum(probs / probs.sum())
    idx = np.searchsorted(cum, rng.random(n), side="right")
    return keys[np.minimum(idx, len(keys) - 1)]


def draw_persons(p: CityParams, rng: np.random.Generator, n: int) -> Persons:
    pop = p.syn["population"]
    female = rng.random(n) < pop["female_share"]
    a = pop["age"]
    age_f = rng.normal(a["mean"], a["sd"], n)
    for _ in range(3):  # redraw out-of-range ages, then clip the rest
        bad = (age_f < a["min"]) | (age_f >= a["max"] + 1)
        age_f[bad] = rng.normal(a["mean"], a["sd"], bad.sum())
    age_f = np.clip(age_f, a["min"], a["max"] + 0.999)
    migration = _categorical(rng, pop["migration"], n)
    migrant = migration != "nl"
    first = migrant & (rng.random(n) < pop["first_generation_share"])
    # the second generation is young: older people with a migration background are first generation
    first |= migrant & (age_f > 45)
    generation = np.where(~migrant, 0, np.where(first, 1, 2))
    eta = rng.standard_normal(n)
    # education: thresholds on the rank of a score mildly correlated with employability,
    # so the shares are met and better-educated persons have slightly higher eta
    z = 0.3 * eta + np.sqrt(1 - 0.09) * rng.standard_normal(n)
    u = (np.argsort(np.argsort(z, kind="stable"), kind="stable") + 0.5) / n
    education = np.empty(n, dtype=object)
    for mask, shares in (
        (generation != 1, pop["education"]),
        (generation == 1, pop["education_first_generation"]),
    ):
        lo, mid = shares["low"], shares["low"] + shares["middle"]
        education[mask] = np.where(u[mask] < lo, "low", np.where(u[mask] < mid, "middle", "high"))
    em = pop["education_missing"]
    p_missing = np.where(
        (generation == 1) & (age_f > em["first_generation_over_age"]), em["rate"], em["other_rate"]
    )
    education_missing = rng.random(n) < p_missing
    household = _categorical(rng, pop["household"], n)
    # single parents are mostly women
    redo = (household == "single_parent") & ~female & (rng.random(n) < 0.8)
    household[redo] = "single"
    ch = pop["chronic_health"]
    p_chronic = ch["base"] + ch["per_decade_over_30"] * np.maximum(age_f - 30, 0) / 10
    chronic = rng.random(n) < np.clip(p_chronic, 0, 0.95)
    ll = pop["language_low"]
    p_lang = np.where(
        generation == 1, ll["first_generation"],
        np.where(generation == 2, ll["second_generation"], ll["nl"]),
    )
    language_low = rng.random(n) < p_lang
    team = rng.integers(0, len(p.syn["teams"]), n)
    inflow_month = rng.integers(p.inflow_from, p.inflow_to + 1, n)
    inflow_date = random_day(rng, inflow_month)
    birth_date = inflow_date - np.round(age_f * 365.25).astype("int64").astype("timedelta64[D]")
    age = _age(birth_date, inflow_date)
    return Persons(
        female=female, age=age, birth_date=birth_date, migration=migration,
        generation=generation, education=education, education_missing=education_missing,
        household=household, chronic=chronic, language_low=language_low, eta=eta, team=team,
        inflow_month=inflow_month, inflow_date=inflow_date, quarter=inflow_month // 3,
    )


def _age(birth: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years between two datetime64[D] arrays."""
    by, bm, bd = _ymd(birth)
    oy, om, od = _ymd(on)
    age = oy - by
    before = (om < bm) | ((om == bm) & (od < bd))
    return (age - before).astype("int64")


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = days.astype("datetime64[Y]").astype("int64") + 1970
    m = days.astype("datetime64[M]").astype("int64") % 12 + 1
    d = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype("int64") + 1
    return y, m, d


def covariate_matrix(persons: Persons, prior: np.ndarray, distance: np.ndarray) -> np.ndarray:
    pe = persons
    cols = {
        "female": pe.female,
        "age_under_27": pe.age < 27,
        "age_50_plus": pe.age >= 50,
        "migrant_first_generation": pe.generation == 1,
        "migrant_second_generation": pe.generation == 2,
        "education_low": pe.education == "low",
        "education_high": pe.education == "high",
        "education_missing": pe.education_missing,
        "single_parent": pe.household == "single_parent",
        "couple_children": pe.household == "couple_children",
        "health_chronic": pe.chronic,
        "language_low": pe.language_low,
        "distance_short": distance == 0,
        "distance_large": distance == 2,
        "prior_employment": prior,
    }
    return np.column_stack([np.asarray(cols[c], dtype=float) for c in COVARIATES])


def simulate_pre_inflow(
    p: CityParams, rng: np.random.Generator, X0: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """Employment in the 24 months before inflow (bool, months -24..-1)."""
    emp = p.syn["employment"]
    pre = emp["pre_inflow"]
    coefs = {k: v for k, v in emp["covariates"].items() if k != "prior_employment"}
    lin = _lin(X0, coefs)
    n = len(eta)
    U = rng.random((n, PRE_MONTHS + 1))
    state = U[:, 0] < sigmoid(pre["employed_intercept"] + pre["eta"] * eta + lin)
    p_find = sigmoid(pre["find_intercept"] + pre["eta"] * eta + lin)
    p_lose = sigmoid(
        pre["lose_intercept"] + emp["eta_lose"] * eta + _lin(X0, emp.get("lose_covariates"))
    )
    out = np.zeros((n, PRE_MONTHS), dtype=bool)
    for k in range(PRE_MONTHS):
        u = U[:, k + 1]
        state = np.where(state, u >= p_lose, u < p_find)
        out[:, k] = state
    out[:, -1] = False  # on bijstand from inflow: no job in the month before
    return out


def case_managers(
    p: CityParams, rng: np.random.Generator, q_lo: int, q_hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Case-manager posts per team; each post is held by a sequence of case
    managers with geometric tenures. Returns cm_of[team, slot, quarter - q_lo]
    and per case manager: team, first and last quarter."""
    n_teams = len(p.syn["teams"])
    slots = int(p.syn["case_managers_per_team"][p.size])
    nq = q_hi - q_lo + 1
    mean_tenure = float(p.syn["case_manager_tenure_quarters"])
    cm_of = np.empty((n_teams, slots, nq), dtype=np.int64)
    team_of, first_q, last_q = [], [], []
    for t in range(n_teams):
        for s in range(slots):
            q = 0
            while q < nq:
                tenure = int(rng.geometric(1.0 / mean_tenure))
                idx = len(team_of)
                cm_of[t, s, q : q + tenure] = idx
                team_of.append(t)
                first_q.append(q_lo + q)
                last_q.append(q_lo + min(q + tenure, nq) - 1)
                q += tenure
    return cm_of, np.array(team_of), np.array(first_q), np.array(last_q)


def build_world(p: CityParams, streams: dict[str, np.random.Generator]) -> World:
    n = p.n_clients
    persons = draw_persons(p, streams["population"], n)
    X0 = covariate_matrix(persons, np.zeros(n), np.ones(n, dtype=int))
    pre_emp = simulate_pre_inflow(p, streams["pre_inflow"], X0, persons.eta)
    prior = pre_emp.mean(axis=1)
    emp = p.syn["employment"]
    # the municipality's distance rating: observed prognosis plus eta plus noise, in thirds
    X1 = covariate_matrix(persons, prior, np.ones(n, dtype=int))
    prognosis = (
        _lin(X1, emp["covariates"]) + emp["eta_find"] * persons.eta
        + streams["population"].normal(0, p.syn["population"]["distance_noise_sd"], n)
    )
    cuts = np.quantile(prognosis, [1 / 3, 2 / 3])
    distance = np.where(prognosis < cuts[0], 2, np.where(prognosis < cuts[1], 1, 0))
    X = covariate_matrix(persons, prior, distance)

    # case managers and as-if random allocation within team x quarter
    rng_cm = streams["case_managers"]
    q_lo, q_hi = p.inflow_from // 3, p.inflow_to // 3
    cm_of, cm_team, cm_first, cm_last = case_managers(p, rng_cm, q_lo, q_hi)
    slots = cm_of.shape[1]
    J = len(p.instruments)
    theta = rng_cm.normal(0, p.syn["assignment"]["case_manager_sd"], (len(cm_team), J))
    slot = rng_cm.integers(0, slots, n)
    cm_cells = cm_of[persons.team, :, persons.quarter - q_lo]  # (n, slots)
    own_cm = cm_cells[np.arange(n), slot]

    model = path_model(p, streams["outcomes"], persons, X)
    K = p.follow_up
    none = model.simulate(np.arange(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    asg = assignment_inputs(p, streams["assignment"], persons, X)
    # before any start every world is the no-instrument world: on benefit just before k
    onb = none[:, :K] == B
    always = np.ones_like(onb)
    th_own = theta[own_cm]
    instrument, real_start = asg.first_start(th_own, onb)
    opp = asg.opportunity & (np.arange(1, K + 1) <= asg.cap)[None, :]
    first_on = _first_true(opp & onb)
    first_any = _first_true(opp)
    eligible = first_on > 0
    start = np.where(
        instrument > 0, real_start,
        np.where(eligible, first_on, np.where(first_any > 0, first_any, K + 1)),
    )
    exposed = asg.rollout_month <= np.where(eligible, first_on, start)
    notnow_inst, notnow_start = asg.first_start(th_own, onb, after=real_start)
    notnow_inst = np.where(instrument > 0, notnow_inst, instrument)
    notnow_start = np.where(instrument > 0, notnow_start, real_start)
    inst_cells, start_cells = asg.first_start(theta[cm_cells], onb)
    ro_inst, ro_start = {}, {}
    for tag in ("on", "off"):
        ro_inst[tag], ro_start[tag] = asg.first_start(th_own, onb, rollout=tag)

    # paths under every schedule, from the same draws
    worlds_inst = np.broadcast_to(np.arange(1, J + 1), (n, J))
    worlds_start = np.broadcast_to(start[:, None], (n, J))
    inst_paths = model.paths(none, worlds_inst, worlds_start)  # (n, J, K+1)
    hist = np.concatenate([none[None], inst_paths.transpose(1, 0, 2)], axis=0)
    ro_paths = model.paths(
        none, np.stack([ro_inst["on"], ro_inst["off"]], axis=1),
        np.stack([ro_start["on"], ro_start["off"]], axis=1),
    )
    world = World(
        p=p, persons=persons, X=X, distance=distance, pre_emp=pre_emp, cm_of=cm_of,
        cm_team=cm_team, cm_first_q=cm_first, cm_last_q=cm_last, theta=theta, slot=slot,
        cm_cells=cm_cells, start=start, eligible=eligible,
        choice=asg.first_start(th_own, always)[0], instrument=instrument,
        choice_cells=asg.first_start(theta[cm_cells], always)[0], rollout_exposed=exposed,
        hist=hist, worlds=["none", *p.instruments], opportunity=opp, real_start=real_start,
        first_opportunity=first_on, notnow_instrument=notnow_inst, notnow_start=notnow_start,
        notnow_path=model.paths(none, notnow_inst, notnow_start),
        inst_cells=inst_cells, start_cells=start_cells,
        cell_paths=model.paths(none, inst_cells, start_cells),
        instrument_rollout=ro_inst, start_rollout=ro_start,
        rollout_paths={"on": ro_paths[:, 0], "off": ro_paths[:, 1]},
        assignment=asg, model=model,
    )
    return world


def _first_true(a: np.ndarray) -> np.ndarray:
    """Per row, the 1-based index of the first True column (0 if none)."""
    return np.where(a.any(axis=1), a.argmax(axis=1) + 1, 0)


def assignment_inputs(
    p: CityParams, rng: np.random.Generator, persons: Persons, X: np.ndarray
) -> Assignment:
    """The utilities and the shared draws of the dynamic assignment
    (:mod:`.dynamics`): opportunities (n, K) and Gumbel draws (n, K, J+1)."""
    n, K, J = len(persons.eta), p.follow_up, len(p.instruments)
    asg = p.syn["assignment"]
    sm = asg["start_month"]
    if "opportunity_probability" not in sm:
        raise ConfigError(
            "synthetic.assignment.start_month must give opportunity_probability (the monthly "
            "chance of a start opportunity) and max; 'mean' is no longer read"
        )
    q = float(sm["opportunity_probability"])
    opportunity = rng.random((n, K)) < q
    gumbel = rng.gumbel(size=(n, K, J + 1))
    base = np.full((n, J), -np.inf)
    elapsed = np.zeros(J)
    for j, inst in enumerate(p.instruments):
        if inst not in p.offered:
            continue
        spec = asg["instruments"][inst]
        # no_start: the utility of not starting at an opportunity, against which every
        # instrument is chosen (one knob for the overall take-up)
        base[:, j] = (
            spec["intercept"] + _lin(X, spec.get("covariates")) + spec.get("eta", 0) * persons.eta
            - float(asg.get("no_start", 0.0))
        )
        elapsed[j] = spec.get("elapsed", 0)
    never = np.iinfo(np.int64).max // 4
    ro_month = np.full(len(p.syn["teams"]), never, dtype=np.int64)
    ro_j = None
    if p.rollout:
        from ..core.months import index as month_index

        ro_j = p.instruments.index(p.rollout["instrument"])
        for t, team in enumerate(p.syn["teams"]):
            if team in p.rollout["teams"]:
                ro_month[t] = month_index(p.rollout["teams"][team])
    rollout_month = np.where(
        ro_month[persons.team] == never, never, ro_month[persons.team] - persons.inflow_month
    )
    return Assignment(
        base=base, elapsed=elapsed, opportunity=opportunity, gumbel=gumbel,
        rollout_month=rollout_month, rollout_j=ro_j, shift=float(asg.get("rollout_shift", 0.0)),
        cap=int(sm["max"]), q=q,
    )


def path_model(
    p: CityParams, rng: np.random.Generator, persons: Persons, X: np.ndarray
) -> PathModel:
    """The monthly chain's hazards and the shared uniform draws U, V
    (n, K+1) from which every world's path is simulated."""
    emp = p.syn["employment"]
    n, K = len(persons.eta), p.follow_up
    team_eff = rng.normal(0, emp["team_sd"], len(p.syn["teams"]))
    lin_find = (
        emp["find_intercept"] + _lin(X, emp["covariates"]) + emp["eta_find"] * persons.eta
        + team_eff[persons.team]
    )
    p_lose = sigmoid(
        emp["lose_intercept"] + _lin(X, emp.get("lose_covariates")) + emp["eta_lose"] * persons.eta
    )
    cal_lo = p.inflow_from
    cal = np.zeros(p.data_end - cal_lo + 2)
    years = 1970 + (np.arange(len(cal)) + cal_lo) // 12
    for year, value in (emp.get("calendar") or {}).items():
        cal[years == int(year)] = float(value)
    ks = np.arange(K + 1)
    base = (
        lin_find[:, None] + emp["duration_per_month"] * ks[None, :]
        + cal[persons.inflow_month[:, None] + ks[None, :] - cal_lo]
    )
    eff = p.syn["effects"]
    months = np.array([int(eff[i]["months"]) for i in p.instruments])
    during = np.array([float(eff[i]["during"]) for i in p.instruments])
    after = np.stack(
        [float(eff[i]["after"]) + _lin(X, eff[i].get("heterogeneity")) for i in p.instruments]
    )  # (J, n)
    U = rng.random((n, K + 1))
    V = rng.random((n, K + 1))
    return PathModel(base=base, p_lose=p_lose, months=months, during=during, after=after, U=U,
                     V=V, reentry=float(emp["reentry_probability"]))

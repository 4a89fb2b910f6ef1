r"""Advice for case managers: a shallow assignment rule learned from doubly
robust scores, its value against today's allocation, a fairness audit and a
data-minimisation table.

The decision
    For a client a case manager has decided to offer an instrument (today's
    starters), which of the instruments Phase 1 let selection on
    observables study fits best, judged by employment 24 months after
    inflow; or no specific advice ("as today": the case manager decides as
    now). Whether and when to offer an instrument at all stays with the case
    manager: comparing starters with clients who never started mixes in
    clients who found work before any instrument was considered, a bias by
    construction of a comparison at inflow (the effects step compares at the
    month of the decision instead).
Doubly robust scores
    Per starter and instrument :math:`a`, cross-fitted over folds of persons
    (a person's own row never trains the models that score it):
    :math:`\Gamma_i(a) = \mu_a(X_i) + 1\{A_i = a\}\,(Y_i - \mu_a(X_i)) / e_a(X_i)`,
    with :math:`e_a` a multinomial logit of the instrument on the
    covariates at inflow and :math:`\mu_a` least squares per instrument (or
    gradient boosting: ``learner``). The mean of :math:`\Gamma(a)` estimates
    the starters' employment rate had they all started *a*, when either
    model is right and, given the covariates, no unobserved characteristic
    drives both the choice of instrument and the outcome (Athey and Wager
    2021). "As today" scores the observed outcome.
The rule
    A tree of depth two found by search over every tree on the scores
    (:mod:`reintegration.phase2.policy_tree`), asking only the questions of the
    configured data items, never a protected characteristic unless the
    configuration allows it, and advising no instrument to more starters
    than its places (today's take-up by default).
Its value
    Estimated out of sample: the rule is learned on all folds but one, from
    scores whose models were fitted on those folds only (nested
    cross-fitting), and scored on the held-out fold; the person-level
    held-out scores give the
    value and its interval, and the paired differences with today's
    allocation (the observed outcomes) and the best single instrument for
    every starter. Nobody treated is today's employment minus the effects
    step's effect of each instrument on its starters against never
    starting, weighted by take-up. The rule shown is learned on all
    starters; its leaf values are in-sample and therefore optimistic.
Truths (validation only)
    in :mod:`reintegration.phase2.advice_truth`: the rule's value on the starters'
    potential outcomes, the best rule of its kind, and the regret.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..research import labels
from . import policy_tree as pt
from .policy_tree import NONE, TODAY

PID = "_pid"
E_FLOOR = 0.01  # lower bound of a cross-fitted action probability (scores divide by it)


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------


@dataclass
class Settings:
    """``advice:`` of config/effects.yml."""

    outcome: str
    depth: int
    folds: int
    seed: int
    learner: str
    capacity: str | dict[str, float]
    capacity_factor: float
    min_leaf_share: float
    protected: list[str]
    allow_protected: list[str]
    features: dict[str, dict[str, Any]]
    data_groups: dict[str, list[str]]
    fairness: list[str]
    covariates: list[str] = field(default_factory=list)
    #: the fewest persons in an advice group, whatever its share (min_group.treated)
    min_leaf_persons: int = 1

    def min_leaf(self, n: int) -> float:
        """The fewest persons a leaf may hold among ``n``."""
        return max(float(self.min_leaf_persons), self.min_leaf_share * n)

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> Settings:
        cfg = settings["advice"]
        out = cls(
            **{
                k: cfg[k]
                for k in (
                    "outcome",
                    "depth",
                    "folds",
                    "seed",
                    "learner",
                    "capacity",
                    "capacity_factor",
                    "min_leaf_share",
                    "protected",
                    "allow_protected",
                    "features",
                    "data_groups",
                    "fairness",
                )
            }
        )
        out.covariates = [
            *settings["covariates"],
            *settings["selection_on_observables"].get("extra_covariates", []),
        ]
        out.min_leaf_persons = int(settings["min_group"]["treated"])
        out.check()
        return out

    def check(self) -> None:
        where = "config/effects.yml: advice"
        for name in [*self.protected, *self.allow_protected]:
            if name not in self.features:
                raise ValueError(
                    f"{where}: {name!r} is not a feature; features: {', '.join(self.features)}"
                )
        for group, items in self.data_groups.items():
            bad = [i for i in items if i not in self.features]
            if bad:
                raise ValueError(f"{where}.data_groups[{group!r}] names unknown features {bad}")
        for name, spec in self.features.items():
            if spec.get("source") not in ("register", "municipal"):
                raise ValueError(
                    f"{where}.features[{name!r}].source must be register or "
                    f"municipal, not {spec.get('source')!r}"
                )
        if self.depth not in (1, 2):
            raise ValueError(f"{where}.depth must be 1 or 2, not {self.depth}")
        if not isinstance(self.capacity, dict) and self.capacity != "today":
            raise ValueError(f"{where}.capacity must be 'today' or a share per instrument")

    def default_features(self) -> list[str]:
        """The items the rule may ask about: every feature except the
        protected ones not explicitly allowed."""
        banned = set(self.protected) - set(self.allow_protected)
        return [f for f in self.features if f not in banned]


# ---------------------------------------------------------------------------
# doubly robust scores per person and action
# ---------------------------------------------------------------------------


@dataclass
class Scores:
    """Cross-fitted scores of every person (rows of the persons file)."""

    actions: list[str]  # every instrument the starters started
    gamma: np.ndarray  # (n, A)
    action: np.ndarray  # (n,) index of today's action
    y: np.ndarray
    fold: np.ndarray
    e: np.ndarray  # (n, A) cross-fitted action probabilities (before the floor)

    def rewards(self, actions: Sequence[str]) -> np.ndarray:
        """(n, len(actions)): the scores; "as today" is the observed outcome."""
        return np.column_stack(
            [self.y if a == TODAY else self.gamma[:, self.actions.index(a)] for a in actions]
        )

    def today(self, actions: Sequence[str]) -> np.ndarray:
        """Each person's current instrument as an index into ``actions`` ("as
        today" when it is not among them)."""
        names = np.array(self.actions)[self.action]
        index = {a: k for k, a in enumerate(actions)}
        return np.array([index.get(a, index[TODAY]) for a in names])


def _propensity(kind: str, seed: int):
    if kind == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1e4))


def scores(
    persons: pd.DataFrame,
    covariates: Sequence[str],
    outcome: str,
    *,
    folds: int = 3,
    seed: int = 0,
    learner: str = "linear",
) -> Scores:
    """:class:`Scores` for ``persons`` (today's starters; their action is the
    panel's ``instrument``: the first instrument started)."""
    from ..effects.learners import learners

    if outcome not in persons:
        raise ValueError(f"persons.parquet: no outcome column {outcome!r}")
    today = persons["instrument"].astype("string").fillna(NONE).to_numpy(dtype=str)
    if (today == NONE).any():
        raise ValueError("advice scores are for starters: persons without an instrument given")
    actions = sorted(set(today))
    a = np.array([actions.index(v) for v in today])
    X = persons[list(covariates)].to_numpy(dtype=float)
    X = np.where(np.isfinite(X), X, 0.0)
    y = persons[outcome].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(y)) % folds
    A = len(actions)
    mu, e = np.zeros((len(y), A)), np.zeros((len(y), A))
    with threadpool_limits(limits=1):
        for k in range(folds):
            train, test = fold != k, fold == k
            clf = _propensity(learner, seed + k).fit(X[train], a[train])
            proba = clf.predict_proba(X[test])
            e[np.ix_(test, clf.classes_)] = proba
            for j in range(A):
                rows = train & (a == j)
                if rows.sum() < X.shape[1] + 5:  # too few to fit: the action's mean
                    mu[test, j] = y[rows].mean() if rows.any() else y[train].mean()
                    continue
                reg = learners(learner, seed=seed + 10 * k + j)["outcome_learner"]
                mu[test, j] = reg.fit(X[rows], y[rows]).predict(X[test])
    own = a[:, None] == np.arange(A)[None, :]
    gamma = mu + own * (y[:, None] - mu) / np.maximum(e, E_FLOOR)
    return Scores(actions, gamma, a, y, fold, e)


# ---------------------------------------------------------------------------
# rules and their values
# ---------------------------------------------------------------------------


def capacity(settings: Settings, sc: Scores, actions: Sequence[str]) -> np.ndarray:
    """The largest share of starters each action may be advised to:
    ``capacity_factor`` times today's take-up, or the configured shares."""
    if settings.capacity == "today":
        share = np.bincount(sc.action, minlength=len(sc.actions)) / len(sc.action)
        return np.array(
            [
                np.inf if a == TODAY else settings.capacity_factor * share[sc.actions.index(a)]
                for a in actions
            ]
        )
    cap = dict(settings.capacity)  # type: ignore[arg-type]
    return np.array([np.inf if a == TODAY else float(cap.get(a, np.inf)) for a in actions])


@dataclass
class Learned:
    """A rule with its held-out evaluation."""

    features: list[str]
    tree: pt.Tree
    heldout: np.ndarray  # (n, A): action probabilities from the rule not trained on the row
    value: np.ndarray  # (n,) held-out score under the rule


def learn(
    frame: pd.DataFrame,
    rewards: np.ndarray,
    actions: Sequence[str],
    features: Sequence[str],
    settings: Settings,
    fold: np.ndarray,
    cap: np.ndarray,
    today: np.ndarray,
    inner: dict[int, np.ndarray] | None = None,
) -> Learned:
    """The rule on all persons and the held-out probabilities (the rule
    learned without each fold, applied to it). ``inner``: per fold, the
    other folds' rewards from nuisance models fitted on those folds only
    (nested cross-fitting: no trace of the held-out fold in its rule)."""
    spec = {f: settings.features[f] for f in features}
    splits = pt.candidate_splits(frame, spec, level_label=labels.label)
    min_leaf = settings.min_leaf(len(frame))
    P = np.zeros_like(rewards)
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        tr = pt.fit(
            frame[train],
            rewards[train] if inner is None else inner[int(k)],
            actions,
            splits,
            depth=settings.depth,
            capacity=cap,
            min_leaf=settings.min_leaf(int(train.sum())),
            today=today[train],
        )
        P[test] = tr.probabilities(frame[test])
    tree = pt.fit(
        frame,
        rewards,
        actions,
        splits,
        depth=settings.depth,
        capacity=cap,
        min_leaf=min_leaf,
        today=today,
    )
    return Learned(list(features), tree, P, (P * rewards).sum(axis=1))


def interval(estimate: float, se: float) -> dict[str, float]:
    """An estimate with its standard error and normal 95% interval."""
    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": estimate - 1.959964 * se,
        "ci_high": estimate + 1.959964 * se,
    }


def mean_ci(x: np.ndarray) -> dict[str, float]:
    """Mean, standard error and 95% interval of a per-person quantity."""
    n = len(x)
    m = float(np.mean(x)) if n else math.nan
    return interval(m, float(np.std(x, ddof=1) / math.sqrt(n)) if n > 1 else math.nan)


def comparisons(
    learned: Learned,
    rewards: np.ndarray,
    actions: Sequence[str],
    y: np.ndarray,
    never: dict[str, tuple[float, float]] | None = None,
    today: np.ndarray | None = None,
) -> pd.DataFrame:
    """The rule's held-out value and its paired differences with today's
    allocation and the best single instrument; and nobody treated from the
    effects on the starters against never starting (``never``: instrument ->
    (estimate, standard error); ``today``: the starters' instruments)."""
    means = rewards.mean(axis=0)
    inst = [k for k, a in enumerate(actions) if a != TODAY]
    best = inst[int(np.argmax(means[inst]))]
    v = learned.value
    rows = [
        {"policy": "the rule", "versus": None, **mean_ci(v)},
        {"policy": "today's allocation", "versus": None, **mean_ci(y)},
        {"policy": "everybody: " + actions[best], "versus": None, **mean_ci(rewards[:, best])},
        {"policy": "the rule", "versus": "today's allocation", **mean_ci(v - y)},
        {
            "policy": "the rule",
            "versus": "everybody: " + actions[best],
            **mean_ci(v - rewards[:, best]),
        },
    ]
    nobody = nobody_treated(y, today, never) if never and today is not None else None
    if nobody is not None:
        rule_gain = mean_ci(v - y)
        rows.insert(2, {"policy": "nobody treated", "versus": None, **nobody["value"]})
        est = rule_gain["estimate"] + nobody["effect"]
        se = math.sqrt(rule_gain["std_error"] ** 2 + nobody["effect_se"] ** 2)
        rows.append({"policy": "the rule", "versus": "nobody treated", **interval(est, se)})
    out = pd.DataFrame(rows)
    out["best_single"] = actions[best]
    return out


def nobody_treated(
    y: np.ndarray, today: np.ndarray, never: dict[str, tuple[float, float]]
) -> dict[str, Any] | None:
    """The starters' employment had none of them started: today's minus the
    take-up-weighted effects against never starting. The standard error
    treats the instruments' estimates as independent of each other and of
    today's mean (they are estimated on different starters, but share the
    comparison persons: an approximation)."""
    names, counts = np.unique(today, return_counts=True)
    w = dict(zip(names, counts / len(today), strict=True))
    if any(a not in never or not math.isfinite(never[a][0]) for a in w):
        return None
    effect = sum(w[a] * never[a][0] for a in w)
    effect_se = math.sqrt(sum((w[a] * never[a][1]) ** 2 for a in w))
    base = mean_ci(y)
    est = base["estimate"] - effect
    se = math.sqrt(base["std_error"] ** 2 + effect_se**2)
    return {"effect": effect, "effect_se": effect_se, "value": interval(est, se)}


# ---------------------------------------------------------------------------
# fairness and data minimisation
# ---------------------------------------------------------------------------


def fairness(
    learned: Learned,
    y: np.ndarray,
    today: np.ndarray,
    actions: Sequence[str],
    groups: pd.DataFrame,
    frame: pd.DataFrame,
) -> pd.DataFrame:
    """Per group level: the share whose instrument the rule shown changes
    and the instrument it advises most there (``frame``: the starters'
    features); the expected employment today and under the rule, the gain,
    and the gap to the other starters today and under the rule with the
    change's interval, all estimated held out (each starter scored under
    the rule learned without their fold). ``today``: each starter's current
    instrument (names)."""
    shown = np.array(actions)[learned.tree.advice(frame)]
    changed = ((shown != TODAY) & (shown != today)).astype(float)
    gain = learned.value - y
    rows = []
    for col in groups.columns:
        known = groups[col].notna().to_numpy()
        for level in sorted(groups[col].dropna().unique()):
            g = (groups[col] == level).fillna(False).to_numpy()
            rest = known & ~g
            if not g.any() or not rest.any():
                continue
            ch = _diff(gain, g, rest)
            gap_today = float(y[g].mean() - y[rest].mean())
            gap_rule = float(learned.value[g].mean() - learned.value[rest].mean())
            main = np.array([(shown[g] == a).sum() if a != TODAY else -1 for a in actions])
            rows.append(
                {
                    "group": col,
                    "level": str(level),
                    "n": int(g.sum()),
                    "n_rest": int(rest.sum()),
                    "changed": float(changed[g].mean()),
                    "main_advice": actions[int(np.argmax(main))] if main.max() > 0 else TODAY,
                    "employment_today": float(y[g].mean()),
                    "employment_rule": float(learned.value[g].mean()),
                    **{f"gain_{k}": v for k, v in mean_ci(gain[g]).items()},
                    "gap_today": gap_today,
                    "gap_rule": gap_rule,
                    **{f"gap_change_{k}": v for k, v in ch.items()},
                    # a gap that changes sign is reversed, not widened: the group
                    # overtakes the others (or falls behind them)
                    "reverses": bool(gap_today * gap_rule < 0),
                    "widens": bool(
                        gap_today * gap_rule >= 0 and abs(gap_rule) > abs(gap_today) + 1e-12
                    ),
                    # clearly: the gap grows in its own direction with an interval
                    # of the change that excludes zero
                    "widens_clearly": bool(
                        gap_today * gap_rule >= 0
                        and abs(gap_rule) > abs(gap_today)
                        and (ch["ci_low"] > 0 or ch["ci_high"] < 0)
                        and np.sign(ch["estimate"]) == np.sign(gap_today)
                    ),
                }
            )
    return pd.DataFrame(rows)


def _diff(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    m = float(x[a].mean() - x[b].mean())
    se = (
        float(math.sqrt(x[a].var(ddof=1) / a.sum() + x[b].var(ddof=1) / b.sum()))
        if a.sum() > 1 and b.sum() > 1
        else math.nan
    )
    return interval(m, se)


def minimisation_sets(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """The minimisation table's rows: (what changes, the rule's features)."""
    base = settings.default_features()
    out: dict[str, tuple[str, list[str]]] = {}
    for group, items in settings.data_groups.items():
        if all(i in base for i in items):
            out[group] = ("without", [f for f in base if f not in items])
        else:  # a protected item the rule does not use: what adding it would change
            out[group] = ("with", [*base, *[i for i in items if i not in base]])
    for source in ("register", "municipal"):
        out[f"only {source} data"] = (
            "only",
            [f for f in base if settings.features[f]["source"] == source],
        )
    return out


def minimisation(
    frame: pd.DataFrame,
    rewards: np.ndarray,
    actions: Sequence[str],
    settings: Settings,
    fold: np.ndarray,
    cap: np.ndarray,
    today: np.ndarray,
    default: Learned,
    inner: dict[int, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, dict[str, Learned]]:
    """Each row's rule re-learned and its held-out value, with the paired
    difference from the default rule ("what this data item adds")."""
    rows, rules = [], {}
    for name, (how, features) in minimisation_sets(settings).items():
        learned = learn(frame, rewards, actions, features, settings, fold, cap, today, inner)
        rules[name] = learned
        value, diff = mean_ci(learned.value), mean_ci(default.value - learned.value)
        # the starters whose held-out advice differs: the value difference rests on them
        changed = learned.heldout.argmax(axis=1) != default.heldout.argmax(axis=1)
        rows.append(
            {
                "data": name,
                "how": how,
                "features": ", ".join(features) or "none",
                "used_by_rule": ", ".join(sorted(learned.tree.root.features())) or "none",
                **{f"value_{k}": v for k, v in value.items()},
                **{
                    f"adds_{k}": (-v if how == "with" and k != "std_error" else v)
                    for k, v in diff.items()
                },
                "n": len(frame),
                "n_changed": int(changed.sum()),
            }
        )
    out = pd.DataFrame(rows)
    # "with": the item's contribution is the new rule's value minus the default's
    swap = out["how"] == "with"
    out.loc[swap, ["adds_ci_low", "adds_ci_high"]] = out.loc[
        swap, ["adds_ci_high", "adds_ci_low"]
    ].to_numpy()
    return out, rules


# ---------------------------------------------------------------------------
# one city
# ---------------------------------------------------------------------------


@dataclass
class Advice:
    """Everything the advice step computes for one city (research domain)."""

    actions: list[str]  # the rule's actions: none and the instruments it may advise
    settings: Settings
    scores: Scores
    persons: pd.DataFrame  # today's starters (rows of persons.parquet with an instrument)
    frame: pd.DataFrame  # their feature columns
    capacity: np.ndarray
    rule: Learned
    values: pd.DataFrame
    fairness: pd.DataFrame
    minimisation: pd.DataFrame
    leaves: pd.DataFrame
    alternatives: dict[str, Learned] = field(default_factory=dict)

    def rewards(self) -> np.ndarray:
        return self.scores.rewards(self.actions)


def allowed_instruments(substudies: Sequence[dict[str, Any]]) -> list[str]:
    """The instruments whose selection-on-observables sub-study Phase 1 let run."""
    from .. import designs

    return sorted(
        {
            s["instrument"]
            for s in substudies
            if designs.get(s["design"]).observational and s["decision"] in ("go", "conditional")
        }
    )


def starters(persons: pd.DataFrame) -> pd.DataFrame:
    """Today's starters (rows with an instrument), in the persons' order."""
    inst = persons["instrument"].astype("string")
    return persons[inst.notna() & (inst != NONE)].reset_index(drop=True)


def city_advice(
    persons: pd.DataFrame,
    substudies: Sequence[dict[str, Any]],
    config: dict[str, Any],
    never: dict[str, tuple[float, float]] | None = None,
    *,
    audit: bool = True,
) -> Advice | None:
    """The rule, its values, the fairness audit and the minimisation table
    for one city's starters (None when Phase 1 let fewer than two
    selection-on-observables studies run: there is nothing to choose).
    ``audit=False`` leaves out the fairness and minimisation tables (the
    Monte Carlo harness needs the rule and its value only)."""
    from .whom import group_frame

    settings = Settings.from_config(config)
    allowed = allowed_instruments(substudies)
    group = starters(persons)
    if len(allowed) < 2 or group.empty:
        return None
    sc = scores(
        group,
        settings.covariates,
        settings.outcome,
        folds=settings.folds,
        seed=settings.seed,
        learner=settings.learner,
    )
    actions = [TODAY, *[a for a in allowed if a in sc.actions]]
    rewards = sc.rewards(actions)
    cap = capacity(settings, sc, actions)
    frame = group[[s["column"] for s in settings.features.values()]].copy()
    current = sc.today(actions)
    # nested cross-fitting: each fold's rule learns from scores whose models never saw
    # that fold (the all-persons scores' models did), so its held-out value is clean
    inner = {
        int(k): scores(
            group[sc.fold != k],
            settings.covariates,
            settings.outcome,
            folds=settings.folds,
            seed=settings.seed + 1000 + int(k),
            learner=settings.learner,
        ).rewards(actions)
        for k in np.unique(sc.fold)
    }
    rule = learn(
        frame, rewards, actions, settings.default_features(), settings, sc.fold, cap, current,
        inner,
    )
    today = np.array(sc.actions)[sc.action]
    fair, mini, alternatives = pd.DataFrame(), pd.DataFrame(), {}
    if audit:
        fair = fairness(
            rule, sc.y, today, actions, group_frame(group, list(settings.fairness)), frame
        )
        mini, alternatives = minimisation(
            frame, rewards, actions, settings, sc.fold, cap, current, rule, inner
        )
    return Advice(
        actions=actions,
        settings=settings,
        scores=sc,
        persons=group,
        frame=frame,
        capacity=cap,
        rule=rule,
        values=comparisons(rule, rewards, actions, sc.y, never, today),
        fairness=fair,
        minimisation=mini,
        leaves=leaf_table(rule.tree, frame, rewards, sc.y, today),
        alternatives=alternatives,
    )


def leaf_table(
    tree: pt.Tree, frame: pd.DataFrame, rewards: np.ndarray, y: np.ndarray, today: np.ndarray
) -> pd.DataFrame:
    """Per leaf of the rule shown: its path, advice, persons, and the
    in-sample gain over today's allocation (optimistic: the same persons
    chose the tree). ``today``: the starters' current instruments."""
    leaf = tree.leaf_of(frame)
    v = pt.value(tree, frame, rewards)
    rows = []
    for k, (path, action) in enumerate(tree.rules()):
        m = leaf == k
        gain = mean_ci(v[m] - y[m]) if m.sum() > 1 else mean_ci(np.zeros(0))
        rows.append(
            {
                "leaf": k + 1,
                "path": path,
                "advice": action,
                "n": int(m.sum()),
                "share": float(m.mean()),
                "n_changed": 0 if action == TODAY else int((today[m] != action).sum()),
                **{f"gain_{key}": val for key, val in gain.items()},
            }
        )
    return pd.DataFrame(rows)


def summary_record(adv: Advice) -> dict[str, Any]:
    """A JSON-safe record for the research domain (no per-person values)."""
    return {
        "actions": adv.actions,
        "outcome": adv.settings.outcome,
        "capacity": {
            a: (None if not math.isfinite(c) else float(c))
            for a, c in zip(adv.actions, adv.capacity, strict=True)
        },
        "rule": [{"path": p, "advice": a} for p, a in adv.rule.tree.rules()],
        "features": adv.rule.features,
        "used_by_rule": sorted(adv.rule.tree.root.features()),
        "usage": dict(
            zip(
                adv.actions,
                map(float, adv.rule.tree.usage(adv.frame, adv.scores.today(adv.actions))),
                strict=True,
            )
        ),
        "values": adv.values.to_dict(orient="records"),
        "leaves": adv.leaves.to_dict(orient="records"),
        "fairness": adv.fairness.to_dict(orient="records"),
        "minimisation": adv.minimisation.to_dict(orient="records"),
    }


def never_effects(
    records: Sequence[dict[str, Any]], outcome: str
) -> dict[str, tuple[float, float]]:
    """From the effects step's records (estimates.json): each instrument's
    effect on its starters against never starting (the observational
    design's ``vs_never`` target, whole cohort) as (estimate, standard error)."""
    from .. import designs

    out = {}
    for r in records:
        if (
            r.get("target") == "vs_never"
            and designs.get(str(r.get("design"))).observational
            and r.get("subgroup") == "all"
            and r.get("outcome") == outcome
            and r.get("status") == "estimated"
        ):
            out[str(r["instrument"])] = (float(r["estimate"]), float(r["std_error"]))
    return out

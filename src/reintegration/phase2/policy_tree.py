r"""Shallow multi-action policy trees by search over every tree, with capacity limits.

A rule assigns one action (an instrument, or "as today") to every person
from a few characteristics. Given a reward per person and action (doubly
robust scores, or in the validation the true potential outcomes), the tree of
depth at most two with the largest total reward is searched by trying every
split at the root and every split in each child (the tree search of Zhou,
Athey and Wager's multi-action policy trees, restricted to depth two so a case
manager can read the rule at a glance; with the places limited, each leaf's
actions are searched as described below).

Splits are on a fixed list of candidate questions about a person
(:class:`Split`): "is the distance to the labour market large?", "was the
person employed in at most a quarter of the 24 months before inflow?". Persons
with the same answers to every question form a *cell*; the search runs on
cell sums, so its cost depends on the number of distinct answer patterns,
not on the number of persons.

Capacity: an instrument has a limited number of places (``capacity``: the
largest share of persons it may be advised to). A rule that advises an
instrument to more persons than it has places is not allowed; a person
advised "as today" (:data:`TODAY`: the case manager decides as now) keeps
their current instrument and its place.

Per leaf the search tries the ``top`` actions with the largest reward
(always including "as today", which keeps every rule within the places), in
every combination over the four leaves; ``top=None`` tries every action in
every leaf, so the rule found is the best of its kind within the places
(ties: the first tree and combination in a fixed order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NONE = "none"  # no instrument
#: the action "as today": the case manager decides as now (the person's own current action)
TODAY = "as today"


@dataclass(frozen=True)
class Split:
    """One yes/no question: ``column <= value`` (numeric), ``column == value``
    or ``column in value`` (a tuple of levels: the lower levels of an ordered one)."""

    feature: str  # the data item the question uses (a key of the feature table)
    column: str
    op: str  # "<=", "==" or "in"
    value: Any
    text: str  # the question in words, answered "yes" on the left branch

    def answer(self, frame: pd.DataFrame) -> np.ndarray:
        col = frame[self.column]
        if self.op == "<=":
            out = pd.to_numeric(col, errors="coerce") <= self.value
        elif self.op == "in":
            out = col.astype("string").isin([str(v) for v in self.value])
        else:
            out = col.astype("string") == str(self.value)
        return out.fillna(False).to_numpy(dtype=bool)


@dataclass
class Node:
    """A leaf (``action`` set) or a split with two children (yes, no)."""

    split: Split | None = None
    yes: Node | None = None
    no: Node | None = None
    action: int | None = None

    def leaves(self) -> list[Node]:
        if self.split is None:
            return [self]
        assert self.yes is not None and self.no is not None
        return [*self.yes.leaves(), *self.no.leaves()]

    def features(self) -> set[str]:
        if self.split is None:
            return set()
        assert self.yes is not None and self.no is not None
        return {self.split.feature, *self.yes.features(), *self.no.features()}


@dataclass
class Tree:
    """A fitted rule: its root and the action names."""

    root: Node
    actions: list[str]

    def effective(self, frame: pd.DataFrame, today: np.ndarray | None) -> np.ndarray:
        """The action each row gets before the capacity draw: the advice, or
        for "as today" the row's own current action (``today``: its index in
        :attr:`actions`, or the index of none when today's action is not one)."""
        a = self.advice(frame)
        if TODAY in self.actions:
            if today is None:
                raise ValueError("a rule with the action 'as today' needs today's actions")
            a = np.where(a == self.actions.index(TODAY), today, a)
        return a

    def usage(self, frame: pd.DataFrame, today: np.ndarray | None = None) -> np.ndarray:
        """The share of rows taking a place of each action under the rule."""
        return np.bincount(self.effective(frame, today), minlength=len(self.actions)) / max(
            len(frame), 1
        )

    def leaf_of(self, frame: pd.DataFrame) -> np.ndarray:
        """The leaf number (0 .. leaves - 1, left to right) of every row."""
        out = np.zeros(len(frame), dtype=int)
        leaves = self.root.leaves()
        index = {id(leaf): k for k, leaf in enumerate(leaves)}

        def walk(node: Node, rows: np.ndarray) -> None:
            if node.split is None:
                out[rows] = index[id(node)]
                return
            assert node.yes is not None and node.no is not None
            ans = node.split.answer(frame.iloc[rows]) if len(rows) else np.zeros(0, bool)
            walk(node.yes, rows[ans])
            walk(node.no, rows[~ans])

        walk(self.root, np.arange(len(frame)))
        return out

    def advice(self, frame: pd.DataFrame) -> np.ndarray:
        """The advised action (index into :attr:`actions`) of every row."""
        actions = np.array([leaf.action for leaf in self.root.leaves()], dtype=int)
        return actions[self.leaf_of(frame)]

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, A): one where the rule's advice is (for "as today": the
        "as today" column, whose reward is the outcome under today's
        allocation)."""
        P = np.zeros((len(frame), len(self.actions)))
        P[np.arange(len(frame)), self.advice(frame)] = 1.0
        return P

    def rules(self) -> list[tuple[list[str], str]]:
        """Every leaf as (the answers leading to it, in words; the advice)."""
        out: list[tuple[list[str], str]] = []

        def walk(node: Node, path: list[str]) -> None:
            if node.split is None:
                out.append((path, self.actions[int(node.action or 0)]))
                return
            assert node.yes is not None and node.no is not None
            walk(node.yes, [*path, f"{node.split.text}: yes"])
            walk(node.no, [*path, f"{node.split.text}: no"])

        walk(self.root, [])
        return out


# ---------------------------------------------------------------------------
# exact search on cells
# ---------------------------------------------------------------------------


def _cells(
    answers: np.ndarray, rewards: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct answer patterns: (patterns (C, S) bool, reward sums (C, A),
    persons per cell (C,), the cell of every row)."""
    if answers.shape[1] == 0:
        return (
            np.zeros((1, 0), bool),
            rewards.sum(0, keepdims=True),
            np.array([len(rewards)]),
            np.zeros(len(rewards), int),
        )
    packed = np.packbits(answers, axis=1)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    C = len(first)
    sums = np.zeros((C, rewards.shape[1]))
    np.add.at(sums, inverse, rewards)
    counts = np.bincount(inverse, minlength=C)
    return answers[first], sums, counts, inverse


def _leaf_stats(
    M: np.ndarray, stats: np.ndarray, n: np.ndarray, min_leaf: float
) -> tuple[np.ndarray, list[tuple]]:
    """Every tree of depth at most two as four leaves (yes-yes, yes-no,
    no-yes, no-no; an unsplit child leaves its second leaf empty) and each
    leaf's sums of ``stats`` (cells x K). Trees with a leaf of fewer than
    ``min_leaf`` persons (and more than none) are left out. Returns (stats
    per tree and leaf (T, 4, K), shapes (root, left split, right split) with
    None for no split)."""
    S = M.shape[1]
    out, shapes = [], []
    total = stats.sum(0)
    if n.sum() >= min_leaf:  # the single leaf (depth zero)
        zero = np.zeros_like(total)
        out.append(np.stack([total, zero, zero, zero])[None])
        shapes.append((None, None, None))
    for r in range(S):
        yes = M[:, r]
        side = [stats[yes], stats[~yes]]
        masks = [M[yes], M[~yes]]
        children = []
        for k in range(2):
            tot = side[k].sum(0)
            if 0 < tot[0] < min_leaf or tot[0] == 0:
                children = []
                break
            split = masks[k].T.astype(float) @ side[k]  # (S, K)
            opts = [(None, tot, np.zeros_like(tot))]
            for s2 in range(S):
                a, b = split[s2], tot - split[s2]
                if min(a[0], b[0]) >= min_leaf:
                    opts.append((s2, a, b))
            children.append(opts)
        if not children:
            continue
        left = np.array([(a1, a2) for _, a1, a2 in children[0]])  # (nl, 2, K)
        right = np.array([(b1, b2) for _, b1, b2 in children[1]])  # (nr, 2, K)
        nl, nr = len(left), len(right)
        # every left option with every right option, left-major (copies only)
        out.append(np.concatenate([np.repeat(left, nr, axis=0), np.tile(right, (nl, 1, 1))], 1))
        shapes.extend((r, sl, sr) for sl, _, _ in children[0] for sr, _, _ in children[1])
    return (np.concatenate(out) if out else np.array([])), shapes


def _best_assignment(
    L: np.ndarray, A: int, cap_n: np.ndarray, t: int, top: int = 4, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """For every tree (leaf sums ``L`` (T, 4, K), K = 1 + 2A: persons,
    reward sums per action, persons per own current action) the best
    assignment of actions to its four leaves that stays within the places
    ``cap_n`` (persons per action; inf: unlimited). Per leaf the ``top``
    actions with the largest reward, and "as today" (column ``t``), are
    tried in every combination. The reference form: :func:`_best_tree` finds
    the same best tree and assignment without scoring every tree."""
    T = len(L)
    nl, R, own = L[:, :, 0], L[:, :, 1 : 1 + A], L[:, :, 1 + A : 1 + 2 * A]
    order = np.argsort(-R, axis=2, kind="stable")
    if t >= 0:  # "as today" first: it keeps every rule within the places
        order = np.concatenate(
            [np.full(order.shape[:2] + (1,), t), order[order != t].reshape(T, 4, A - 1)], axis=2
        )
    top = min(top, A)
    cand = order[:, :, :top]  # (T, 4, top)
    combos = np.stack(
        [g.ravel() for g in np.meshgrid(*[np.arange(top)] * 4, indexing="ij")], axis=1
    )  # (G, 4)
    best_v = np.full(T, -np.inf)
    best_a = np.zeros((T, 4), dtype=int)
    eye = np.eye(A)
    for lo in range(0, T, chunk):
        sl = slice(lo, lo + chunk)
        c = len(nl[sl])
        rows = np.arange(c)[:, None]
        asg = np.stack(
            [cand[sl, leaf, :][:, combos[:, leaf]] for leaf in range(4)], axis=2
        )  # (c, G, 4)
        value = sum(R[sl][rows, leaf, asg[:, :, leaf]] for leaf in range(4))
        is_t = asg == t if t >= 0 else np.zeros_like(asg, dtype=bool)
        usage = (eye[asg] * (nl[sl][:, None, :, None] * ~is_t[..., None])).sum(2)
        if t >= 0:
            usage += (is_t[..., None] * own[sl][:, None, :, :]).sum(2)
        value = np.where((usage <= cap_n + 1e-9).all(axis=2), value, -np.inf)
        k = value.argmax(axis=1)
        best_v[sl] = value[np.arange(c), k]
        best_a[sl] = asg[np.arange(c), k]
    return best_v, best_a


def _best_tree(
    L: np.ndarray, A: int, cap_n: np.ndarray, t: int, top: int | None = None, chunk: int = 512
) -> tuple[int, np.ndarray]:
    """The tree and leaf actions that :func:`_best_assignment` followed by an
    argmax over trees picks (the same value, the same first tree and the
    same first combination on ties), returned as (tree index, or -1 when no
    tree fits within the places; its four actions). ``top=None`` tries every
    action in every leaf. Faster in three ways: a tree's value and its use of
    places are built per leaf and candidate and added by broadcasting (the
    reference forms a one-hot array per combination); trees are visited from
    the largest upper bound down (each leaf's best candidate, places
    ignored), stopping once no tree left can reach the best value found; and
    the search over every action starts from the value of the search over
    each leaf's four best (a rule that fits), so only combinations worth at
    least that much have their places counted. Rounded addition is monotone,
    so a tree whose bound is below a value cannot reach it; places are counts
    of persons, whose sums are exact in any order."""
    top = A if top is None else min(top, A)
    floor = -np.inf
    if top > 4:
        k, a = _best_tree(L, A, cap_n, t, top=4, chunk=chunk)
        if k >= 0:
            R = L[:, :, 1 : 1 + A]
            floor = (((0.0 + R[k, 0, a[0]]) + R[k, 1, a[1]]) + R[k, 2, a[2]]) + R[k, 3, a[3]]
    return _search(L, A, cap_n, t, top, chunk, floor)


def _search(
    L: np.ndarray, A: int, cap_n: np.ndarray, t: int, top: int, chunk: int, floor: float
) -> tuple[int, np.ndarray]:
    T = len(L)
    nl, R, own = L[:, :, 0], L[:, :, 1 : 1 + A], L[:, :, 1 + A : 1 + 2 * A]
    order = np.argsort(-R, axis=2, kind="stable")
    if t >= 0:
        order = np.concatenate(
            [np.full(order.shape[:2] + (1,), t), order[order != t].reshape(T, 4, A - 1)], axis=2
        )
    cand = order[:, :, :top]  # (T, 4, top)
    reward = np.take_along_axis(R, cand, axis=2)  # (T, 4, top)
    use = np.eye(A)[cand] * nl[:, :, None, None]  # places used per candidate (T, 4, top, A)
    if t >= 0:  # "as today" uses the places its persons use now
        use = np.where((cand == t)[..., None], own[:, :, None, :], use)
    bound = reward.max(axis=2).sum(axis=1)
    visit = np.argsort(-bound, kind="stable")
    best_v, best_k, best_a = -np.inf, -1, np.zeros(4, dtype=int)
    shape = (top,) * 4
    for lo in range(0, T, chunk):
        idx = visit[lo : lo + chunk]
        if bound[idx[0]] < max(best_v, floor):
            break
        r, u = reward[idx], use[idx]
        c = len(idx)
        # combination (j0, j1, j2, j3) at flat index j0*top^3 + ... + j3, summed
        # leaf by leaf in the reference's order
        value = (
            (
                (r[:, 0, :, None, None, None] + r[:, 1, None, :, None, None])
                + r[:, 2, None, None, :, None]
            )
            + r[:, 3, None, None, None, :]
        ).reshape(c, -1)
        if floor == -np.inf:
            usage = (
                (u[:, 0, :, None, None, None] + u[:, 1, None, :, None, None])
                + u[:, 2, None, None, :, None]
            ) + u[:, 3, None, None, None, :]
            fits = (usage.reshape(c, value.shape[1], A) <= cap_n + 1e-9).all(axis=2)
        else:  # places counted only where the value reaches the best so far
            i, g = np.nonzero(value >= max(best_v, floor))
            j = np.unravel_index(g, shape)
            usage = ((u[i, 0, j[0]] + u[i, 1, j[1]]) + u[i, 2, j[2]]) + u[i, 3, j[3]]
            fits = np.zeros(value.shape, dtype=bool)
            fits[i, g] = (usage <= cap_n + 1e-9).all(axis=1)
        value = np.where(fits, value, -np.inf)
        k = value.argmax(axis=1)
        v = value[np.arange(c), k]
        m = v.max()
        if m == -np.inf or m < best_v:
            continue
        hits = np.nonzero(v == m)[0]
        h = hits[np.argmin(idx[hits])]
        if m > best_v or idx[h] < best_k:
            best_v, best_k = m, int(idx[h])
            slots = np.unravel_index(k[h], shape)
            best_a = np.array([cand[best_k, leaf, slots[leaf]] for leaf in range(4)])
    return best_k, best_a


def _node(shape: tuple, leaves: np.ndarray, splits: Sequence[Split]) -> Node:
    r, sl, sr = shape
    if r is None:
        return Node(action=int(leaves[0]))

    def child(s, a, b) -> Node:
        if s is None or a == b:
            return Node(action=int(a))
        return Node(split=splits[s], yes=Node(action=int(a)), no=Node(action=int(b)))

    yes, no = child(sl, leaves[0], leaves[1]), child(sr, leaves[2], leaves[3])
    if yes.split is None and no.split is None and yes.action == no.action:
        return Node(action=yes.action)
    return Node(split=splits[r], yes=yes, no=no)


def fit(
    frame: pd.DataFrame,
    rewards: np.ndarray,
    actions: Sequence[str],
    splits: Sequence[Split],
    *,
    depth: int = 2,
    capacity: np.ndarray | None = None,
    min_leaf: float = 1.0,
    today: np.ndarray | None = None,
    top: int | None = 4,
) -> Tree:
    """The best tree of depth at most ``depth`` (2; 1 leaves the children
    unsplit) for per-person ``rewards`` (n, A) over ``actions`` (optionally
    :data:`TODAY`, then ``today`` gives each row's current action as an
    index into ``actions``; a row whose current action is none of them
    points at "as today" itself), with at least ``min_leaf`` persons per
    leaf, advising no action to more than its ``capacity`` (share of the
    persons; inf: unlimited). Every tree is tried; per leaf its ``top`` best
    actions (and "as today") in every combination (``None``: every action)."""
    actions = list(actions)
    A, N = len(actions), len(frame)
    if rewards.shape != (N, A):
        raise ValueError(f"rewards have shape {rewards.shape}, expected {(N, A)}")
    if depth not in (1, 2):
        raise ValueError(
            f"policy trees of depth {depth}: only depth 1 or 2 is searched "
            "(a deeper tree is also harder to read)"
        )
    t = actions.index(TODAY) if TODAY in actions else -1
    if t >= 0 and (today is None or len(today) != N):
        raise ValueError("the action 'as today' needs today's action of every row")
    cap = (
        np.full(A, np.inf)
        if capacity is None
        else np.where(np.isfinite(capacity), capacity, np.inf).astype(float)
    )
    if t >= 0:
        cap[t] = np.inf
    own = np.eye(A)[np.asarray(today)] if t >= 0 else np.zeros((N, A))
    per_row = np.column_stack([np.ones(N), np.asarray(rewards, dtype=float), own])
    answers = (
        np.column_stack([s.answer(frame) for s in splits]) if splits else np.zeros((N, 0), bool)
    )
    M, stats, n, _ = _cells(answers, per_row)
    L, shapes = _leaf_stats(M, stats, n, min_leaf)
    if depth == 1:
        keep = [k for k, sh in enumerate(shapes) if sh[1] is None and sh[2] is None]
        L, shapes = L[keep], [shapes[k] for k in keep]
    places = cap * N
    if t >= 0:  # never fewer places than today's use by these persons (a sample's
        places = np.maximum(places, own.sum(0))  # shares differ from the whole's)
    k, assigned = _best_tree(L, A, places, t, top=top)
    if k < 0:
        raise ValueError("no rule fits within the places: allow 'as today' or more places")
    return Tree(_node(shapes[k], assigned, splits), actions)


def value(tree: Tree, frame: pd.DataFrame, rewards: np.ndarray) -> np.ndarray:
    """Each person's reward under the rule."""
    return rewards[np.arange(len(frame)), tree.advice(frame)]


def candidate_splits(
    frame: pd.DataFrame,
    features: dict[str, dict[str, Any]],
    quantiles: Sequence[float] = (0.2, 0.4, 0.6, 0.8),
    level_label=str,
) -> list[Split]:
    """The questions a rule may ask, from the feature table (config): an
    ``ordered`` feature is split at its observed levels (``levels``: their
    order, low to high) or, when numeric, at the given quantiles; a
    ``categorical`` one asks "is it level v?" for each level. A level is
    written by ``level_labels`` of the feature, else by ``level_label``."""
    out: list[Split] = []
    for name, spec in features.items():
        col, label = spec["column"], spec.get("label", name)
        if col not in frame:
            raise ValueError(f"advice feature {name!r}: no column {col!r} in persons.parquet")
        words = dict(spec.get("level_labels") or {})

        def said(level: str, words=words) -> str:
            return str(words.get(level, level_label(level)))

        kind = spec.get("kind", "ordered")
        if kind == "categorical":
            for level in sorted(frame[col].dropna().astype(str).unique()):
                out.append(Split(name, col, "==", level, f"{label} is {said(level)}"))
        elif "levels" in spec:
            levels = [str(v) for v in spec["levels"]]
            for k in range(len(levels) - 1):
                lower = [said(v) for v in levels[: k + 1]]
                text = lower[0] if k == 0 else f"{', '.join(lower[:-1])} or {lower[-1]}"
                out.append(Split(name, col, "in", tuple(levels[: k + 1]), f"{label} is {text}"))
        else:
            values = pd.to_numeric(frame[col], errors="coerce").dropna()
            cuts = sorted({float(np.quantile(values, q)) for q in quantiles}) if len(values) else []
            for c in cuts:
                if (values <= c).all() or (values > c).all():
                    continue
                bound = f"is {_fmt(c, spec)}" if c == 0 else f"at most {_fmt(c, spec)}"
                out.append(Split(name, col, "<=", c, f"{label} {bound}"))
    return out


def _fmt(x: float, spec: dict[str, Any]) -> str:
    unit = spec.get("unit", "")
    if unit == "share":
        return f"{100 * x:.0f}%"
    if unit == "euro":
        return f"EUR {1000 * round(x / 1000):,.0f}" if x >= 1000 else f"EUR {x:,.0f}"
    return f"{x:g}{(' ' + unit) if unit else ''}"

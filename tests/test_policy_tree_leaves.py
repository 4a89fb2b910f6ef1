"""The policy tree's leaf sums, built block by block, equal the sums built
tree by tree (the form they replaced), bit for bit and in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from reintegration.phase2 import policy_tree


def _reference(M, stats, n, min_leaf):
    """One tree at a time, as before."""
    S = M.shape[1]
    out, shapes = [], []
    total = stats.sum(0)
    if n.sum() >= min_leaf:
        z = np.zeros_like(total)
        out.append(np.stack([total, z, z, z]))
        shapes.append((None, None, None))
    for r in range(S):
        yes = M[:, r]
        side, masks, children = [stats[yes], stats[~yes]], [M[yes], M[~yes]], []
        for k in range(2):
            tot = side[k].sum(0)
            if 0 < tot[0] < min_leaf or tot[0] == 0:
                children = []
                break
            split = masks[k].T.astype(float) @ side[k]
            opts = [(None, tot, np.zeros_like(tot))]
            for s2 in range(S):
                a, b = split[s2], tot - split[s2]
                if min(a[0], b[0]) >= min_leaf:
                    opts.append((s2, a, b))
            children.append(opts)
        if not children:
            continue
        for sl, a1, a2 in children[0]:
            for sr, b1, b2 in children[1]:
                out.append(np.stack([a1, a2, b1, b2]))
                shapes.append((r, sl, sr))
    return np.array(out), shapes


@pytest.mark.parametrize("seed", range(4))
def test_leaf_sums_equal_the_tree_by_tree_form(seed):
    rng = np.random.default_rng(seed)
    sizes = set()
    for _ in range(80):
        C, S, K = int(rng.integers(1, 40)), int(rng.integers(1, 7)), int(rng.integers(2, 9))
        M = rng.random((C, S)) < rng.random()
        n = rng.integers(0, 30, C).astype(float)
        stats = np.column_stack([n, rng.normal(size=(C, K - 1)) * n[:, None]])
        min_leaf = float(rng.integers(0, 60))
        want, want_shapes = _reference(M, stats, n, min_leaf)
        got, got_shapes = policy_tree._leaf_stats(M, stats, n, min_leaf)
        assert got_shapes == want_shapes
        assert got.shape == want.shape and got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()
        sizes.add(min(len(want), 2))
    assert sizes == {0, 1, 2}  # no trees, only the single leaf, and many trees were all met

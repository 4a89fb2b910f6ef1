"""The design power's p-values over a grid of shifts
(:func:`reintegration.effects.randomization.shifted_pvalues`, formed in place)
equal the plain expression they replace, bit for bit, with the studentised and
the raw statistic and where a variance is zero or negative."""

from __future__ import annotations

import numpy as np
import pytest

from reintegration.effects.randomization import shifted_pvalues


def _plain(th0, thk, syy, syd, sdd, tau, own, raw):
    num = np.abs(th0[:, None] + tau[None, :] * thk[:, None])
    var = syy[:, None] + 2 * tau[None, :] * syd[:, None] + tau[None, :] ** 2 * sdd[:, None]
    if raw:
        var = np.ones_like(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(var > 0, num / np.sqrt(np.clip(var, 0, None)), np.inf)
    return (t >= t[own][None, :] * (1 - 1e-10)).mean(axis=0)


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_in_place_pvalues_equal_the_plain_expression(seed, raw):
    rng = np.random.default_rng(seed)
    a = int(rng.integers(50, 400))
    th0, thk = rng.normal(size=a), rng.normal(size=a)
    g = rng.normal(size=(a, 5, 2))
    syy, sdd = (g[:, :, 0] ** 2).sum(axis=1), (g[:, :, 1] ** 2).sum(axis=1)
    syd = (g[:, :, 0] * g[:, :, 1]).sum(axis=1)
    syy[:3] = 0.0  # zero and negative variances: infinite statistics
    sdd[:3] = 0.0
    syd[:3] = 0.0
    syy[3] = -1.0
    th0[5:9] = th0[4]  # ties with the own assignment
    thk[5:9] = thk[4]
    syy[5:9], syd[5:9], sdd[5:9] = syy[4], syd[4], sdd[4]
    tau = np.linspace(-100, 100, 1601) * float(rng.uniform(0.01, 1))
    for own in (0, 4, a - 1):
        got = shifted_pvalues(th0, thk, syy, syd, sdd, tau, own, raw=raw)
        want = _plain(th0, thk, syy, syd, sdd, tau, own, raw)
        assert np.array_equal(got, want)
        assert got.min() >= 1 / a and got.max() <= 1  # the own assignment always counts

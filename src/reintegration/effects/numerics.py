r"""The numerics the designs share, each implemented once.

Both phases use these: Phase 1 (the feasibility checks) and Phase 2 (the
estimators of :mod:`reintegration.effects`) call the same covariance, first
stage, logit, demeaning and bootstrap code, so a diagnostic and the estimate
it judges cannot drift apart. Reference tests compare them with
linearmodels, statsmodels and pyhdfe (``tests/test_numerics.py``).

sandwich covariance (:func:`sandwich_cov`)
    heteroskedasticity-robust (HC0) or clustered, with linearmodels'
    small-sample scaling when ``debiased``.
first stage (:func:`first_stage_f`, :func:`first_stage`)
    coefficients of excluded instruments after partialling out the included
    regressors (Frisch-Waugh-Lovell), their sandwich covariance and the Wald
    F, as linearmodels reports for robust and clustered covariances.
logit (:func:`logit`, :func:`propensity_scores`)
    maximum likelihood by Newton's method, with a tiny ridge that keeps
    separated fits finite.
demeaning (:func:`demean`, :func:`group_codes`)
    one set of fixed effects by group means.
wild cluster bootstrap (:func:`wild_cluster_pvalue`)
    the Wald test of linear restrictions with the null imposed and Webb's
    six-point weights.
two-stage least squares (:func:`tsls`)
    one fit, robust and clustered covariances from the same residuals.
Anderson-Rubin sets (:func:`anderson_rubin_set`, :func:`anderson_rubin_projection`)
    weak-instrument-robust confidence sets: closed form for one endogenous
    regressor and one instrument, the projection of the joint set for one
    coefficient of several.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

#: Webb's six-point weights for the wild cluster bootstrap
WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])


# ---------------------------------------------------------------------------
# fixed effects
# ---------------------------------------------------------------------------


def group_codes(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Integer codes of the combinations of ``columns`` (sorted; missing
    values form their own group); zeros without columns."""
    if not columns:
        return np.zeros(len(data), dtype=np.int64)
    return data.groupby(list(columns), sort=True, dropna=False).ngroup().to_numpy()


def demean(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """``values`` (a vector or the columns of a matrix) minus their group
    means; minus the overall mean without groups."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return demean(values[:, None], groups)[:, 0]
    if groups is None:
        return values - values.mean(axis=0)
    frame = pd.DataFrame(values)
    return (frame - frame.groupby(groups, sort=False).transform("mean")).to_numpy()


# ---------------------------------------------------------------------------
# covariances and the first stage
# ---------------------------------------------------------------------------


def sandwich_cov(x: np.ndarray, resid: np.ndarray, clusters: np.ndarray | None, *,
                 debiased: bool = False, extra_df: int = 0) -> np.ndarray:
    r"""Sandwich covariance of OLS coefficients of ``x``:
    :math:`(X'X)^{-1} M (X'X)^{-1}` with :math:`M = \sum_i s_i s_i'` (HC0) or
    :math:`\sum_g (\sum_{i \in g} s_i)(\sum_{i \in g} s_i)'` (clustered),
    :math:`s_i = x_i \hat u_i`. With ``debiased`` it is scaled as linearmodels
    does: :math:`n / (n - k)` robust, :math:`G/(G-1) \cdot (n-1)/(n-k)`
    clustered, where :math:`k` counts the columns of ``x`` plus ``extra_df``
    (regressors partialled out before, such as absorbed cells)."""
    n, k = x.shape
    bread = np.linalg.pinv(x.T @ x)
    scores = x * resid[:, None]
    if clusters is None:
        meat = scores.T @ scores
        scale = n / (n - k - extra_df) if debiased else 1.0
    else:
        sums = pd.DataFrame(scores).groupby(clusters, sort=False).sum().to_numpy()
        g = sums.shape[0]
        meat = sums.T @ sums
        scale = g / (g - 1) * (n - 1) / (n - k - extra_df) if debiased and g > 1 else 1.0
    return bread @ meat @ bread * scale


def first_stage_f(d: np.ndarray, z: np.ndarray, w: np.ndarray | None, *,
                  clusters: np.ndarray | None, debiased: bool, extra_df: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """First-stage coefficients of the excluded instruments ``z`` (n x q) for
    the treatment ``d``, their robust or clustered covariance and the F
    statistic (Wald / q), by Frisch-Waugh-Lovell: instruments and treatment
    are residualised on the included regressors ``w`` first."""
    q = z.shape[1]
    if w is not None and w.shape[1]:
        coef = np.linalg.lstsq(w, np.column_stack([d, z]), rcond=None)[0]
        res = np.column_stack([d, z]) - w @ coef
        dt, zt, kw = res[:, 0], res[:, 1:], w.shape[1]
    else:
        dt, zt, kw = d, z, 0
    pi = np.linalg.solve(zt.T @ zt, zt.T @ dt)
    v = sandwich_cov(zt, dt - zt @ pi, clusters, debiased=debiased, extra_df=extra_df + kw)
    try:
        f = float(pi @ np.linalg.solve(v, pi) / q)
    except np.linalg.LinAlgError:  # no residual variation: a perfect (or empty) first stage
        f = math.inf if np.any(pi != 0) else math.nan
    return pi, v, f


@dataclass
class FirstStage:
    """The first stage of one instrument with cells absorbed."""

    coef: float
    std_error: float
    f_stat: float
    nobs: int
    clusters: int | None
    sd_instrument: float
    partial_r2: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def first_stage(data: pd.DataFrame, *, treatment: str, instrument: str,
                absorb: str | Sequence[str] | None = None, cluster: str | None = None,
                debiased: bool = False) -> FirstStage:
    r"""First stage of ``treatment`` on one excluded ``instrument`` with the
    cells of ``absorb`` as fixed effects (both demeaned within cells), by
    :func:`first_stage_f`: :math:`F = \hat\pi^2 / \widehat V`, the Wald
    statistic that linearmodels reports as the first stage's ``f.stat``
    (robust and clustered covariances). Rows with a missing value are
    dropped."""
    cells = [absorb] if isinstance(absorb, str) else list(absorb or [])
    cols = [treatment, instrument, *cells] + ([cluster] if cluster else [])
    sample = data.loc[data[cols].notna().all(axis=1)]
    n = len(sample)
    nan = float("nan")
    if n < 3:
        return FirstStage(nan, nan, nan, n, None, nan, nan)
    groups = group_codes(sample, cells) if cells else None
    d = demean(sample[treatment].to_numpy(dtype=float), groups)
    z = demean(sample[instrument].to_numpy(dtype=float), groups)
    szz = float(z @ z)
    if szz <= 0:
        return FirstStage(nan, nan, 0.0, n, None, 0.0, 0.0)
    clusters = sample[cluster].to_numpy() if cluster else None
    n_cells = int(len(np.unique(groups))) if groups is not None else 1
    pi_, v_, _ = first_stage_f(d, z[:, None], None, clusters=clusters, debiased=debiased,
                               extra_df=n_cells)
    pi, v = float(pi_[0]), float(v_[0, 0])
    f = pi * pi / v if v > 0 else float("inf")
    g = int(pd.Series(clusters).nunique()) if clusters is not None else None
    sdd = float(d @ d)
    partial_r2 = (pi * pi * szz) / sdd if sdd > 0 else nan
    return FirstStage(pi, math.sqrt(v), f, n, g, math.sqrt(szz / n), partial_r2)


def cluster_ols(y: pd.Series | np.ndarray, x: pd.DataFrame, groups: np.ndarray) -> Any:
    """statsmodels OLS of ``y`` on ``x`` (no constant added) with standard
    errors clustered on ``groups`` and t / F reference distributions with
    G - 1 degrees of freedom (statsmodels' small-sample correction)."""
    import statsmodels.api as sm

    return sm.OLS(np.asarray(y, dtype=float), x).fit(
        cov_type="cluster", cov_kwds={"groups": np.asarray(groups)}, use_t=True
    )


def joint_test(results: Any, names: Sequence[str]) -> tuple[float, float]:
    """F statistic and p-value of the joint test that the coefficients
    ``names`` are zero (statsmodels ``f_test`` with the fit's covariance)."""
    params = list(results.params.index)
    r = np.zeros((len(names), len(params)))
    for i, name in enumerate(names):
        r[i, params.index(name)] = 1.0
    test = results.f_test(r)
    return float(np.squeeze(test.fvalue)), float(test.pvalue)


# ---------------------------------------------------------------------------
# logit
# ---------------------------------------------------------------------------


def logit(d: np.ndarray, xc: np.ndarray, *, max_iter: int = 50, tol: float = 1e-8
          ) -> np.ndarray:
    """Coefficients of the logit of 0/1 ``d`` on the columns of ``xc`` (a
    constant included by the caller), by Newton's method from zero. A ridge
    of 1e-8 keeps the fit finite under (quasi-)separation, where the maximum
    likelihood estimate does not exist; elsewhere it is the maximum
    likelihood estimate to ``tol``. The information matrix is the cross
    product of the columns scaled by the square root of the weights (one
    symmetric product: two thirds of the time of multiplying the weighted
    columns by the columns), written into one buffer of ``xc``'s layout each
    iteration."""
    xc = np.asarray(xc, dtype=float)
    d = np.asarray(d, dtype=float)
    beta = np.zeros(xc.shape[1])
    ridge = 1e-8 * np.eye(xc.shape[1])
    scaled = np.empty_like(xc) if xc.flags.c_contiguous or xc.flags.f_contiguous else None
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-np.clip(xc @ beta, -30, 30)))
        root = np.sqrt(p * (1 - p))[:, None]
        xw = xc * root if scaled is None else np.multiply(xc, root, out=scaled)
        step = np.linalg.solve(xw.T @ xw + ridge, xc.T @ (d - p))
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    return beta


def propensity_scores(data: pd.DataFrame, treatment: str, covariates: Sequence[str]
                      ) -> np.ndarray:
    """Logit propensity scores of ``treatment`` on ``covariates`` plus a
    constant (:func:`logit`); covariates that do not vary are left out."""
    x = data[list(covariates)].astype(float)
    x = x.loc[:, x.std(ddof=0) > 0]
    xc = np.column_stack([np.ones(len(x)), x.to_numpy()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beta = logit(data[treatment].to_numpy(dtype=float), xc)
    return 1.0 / (1.0 + np.exp(-(xc @ beta)))


# ---------------------------------------------------------------------------
# wild cluster bootstrap
# ---------------------------------------------------------------------------


def wild_cluster_pvalue(y: np.ndarray, x: np.ndarray, restriction: np.ndarray,
                        clusters: np.ndarray, *, weights: np.ndarray | None = None,
                        reps: int = 999, seed: int = 0, batch: int = 100) -> float:
    r"""Wild cluster bootstrap p-value of the Wald test :math:`R\beta = 0` in
    the (weighted) OLS regression of ``y`` on ``x``, with the null imposed
    (restricted residuals) and Webb's six-point weights (Cameron, Gelbach and
    Miller 2008; Webb 2023): reliable with few clusters, where the
    cluster-robust F over-rejects.

    Each replication draws one weight :math:`v_g` per cluster, builds
    :math:`y^* = X\hat\beta_r + v_g \hat u_r`, refits and recomputes the
    cluster-robust Wald statistic; the p-value is
    :math:`(1 + \#\{W^* \ge W\}) / (B + 1)`. The replications use
    cluster-level cross products, so their cost does not grow with the rows.
    ``clusters`` are integer codes 0 .. G - 1."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    codes = np.asarray(clusters)
    xw = x * w[:, None]
    a = np.linalg.pinv(x.T @ xw)
    beta = a @ (xw.T @ y)
    c = sparse.csr_array((np.ones(len(y)), (np.arange(len(y)), codes)))
    r = np.asarray(restriction, dtype=float)
    ra = r @ a

    def wald(resid: np.ndarray, rb: np.ndarray) -> float:
        t = (c.T @ (xw * resid[:, None])) @ ra.T
        return float(rb @ np.linalg.pinv(t.T @ t) @ rb)

    stat = wald(y - x @ beta, r @ beta)
    art = a @ r.T
    beta_r = beta - art @ np.linalg.solve(r @ art, r @ beta)
    m = c.T @ (xw * (y - x @ beta_r)[:, None])  # G x k restricted scores
    g = m.shape[0]
    h = np.empty((g, x.shape[1], x.shape[1]))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(g + 1))
    for j in range(g):
        rows = order[bounds[j]:bounds[j + 1]]
        h[j] = x[rows].T @ xw[rows]
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, reps, batch):
        v = rng.choice(WEBB, size=(min(batch, reps - start), g))
        dev = (v @ m) @ a  # beta* - beta_r
        sc = v[:, :, None] * m[None] - np.einsum("gkl,bl->bgk", h, dev)
        t = sc @ ra.T
        vr = np.einsum("bgq,bgr->bqr", t, t)
        rb = dev @ r.T
        stats_b = np.einsum("bq,bq->b", rb, (np.linalg.pinv(vr) @ rb[:, :, None])[:, :, 0])
        exceed += int((stats_b >= stat * (1 - 1e-12)).sum())
    return (1 + exceed) / (reps + 1)


# ---------------------------------------------------------------------------
# two-stage least squares and the Anderson-Rubin set
# ---------------------------------------------------------------------------


def partial_out(w: np.ndarray | None, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array (a vector or the columns of a matrix) net of its least
    squares projection on the columns of ``w`` (Frisch-Waugh-Lovell); the
    arrays unchanged when ``w`` is None or has no columns."""
    if w is None or w.ndim < 2 or w.shape[1] == 0:
        return [np.asarray(a, dtype=float) for a in arrays]
    out = []
    for a in arrays:
        a = np.asarray(a, dtype=float)
        out.append(a - w @ np.linalg.lstsq(w, a, rcond=None)[0])
    return out


@dataclass
class TwoSLS:
    """One 2SLS fit on data whose included regressors are partialled out:
    coefficients of the endogenous regressors, their robust (HC0) and
    clustered sandwich covariances from the same residuals, and the first
    stage (instruments x endogenous) and reduced form (per instrument)."""

    params: np.ndarray
    cov_robust: np.ndarray
    cov_clustered: np.ndarray | None
    first_stage: np.ndarray
    reduced_form: np.ndarray
    resid: np.ndarray
    nobs: int


def tsls_first_stage(x: np.ndarray, z: np.ndarray, w: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """What :func:`tsls` computes without the outcome: the endogenous columns
    and instruments net of ``w``, the first stage and the fitted values.
    Outcomes on the same rows share it (``tsls(..., first=...)``)."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    z = np.asarray(z, dtype=float).reshape(len(x), -1)
    if z.shape[1] < x.shape[1]:
        raise ValueError(f"{z.shape[1]} instruments for {x.shape[1]} endogenous regressors")
    x, z = partial_out(w, x, z)
    pi = np.linalg.lstsq(z, x, rcond=None)[0]           # q x m first stage
    xhat = z @ pi
    return {"x": x, "z": z, "pi": pi, "xhat": xhat, "xhx": xhat.T @ x}


def tsls(y: np.ndarray, x: np.ndarray, z: np.ndarray, *, w: np.ndarray | None = None,
         clusters: np.ndarray | None = None, first: dict[str, np.ndarray] | None = None
         ) -> TwoSLS:
    r"""Two-stage least squares of ``y`` on the endogenous columns ``x``
    instrumented by ``z`` (as many columns or more), with the columns of
    ``w`` (controls; absorbed cells are demeaned by the caller) partialled
    out first. :math:`\hat\beta = (X'P_Z X)^{-1} X'P_Z y` and the sandwich
    :math:`(\hat X'\hat X)^{-1} M (\hat X'\hat X)^{-1}` with
    :math:`\hat X = P_Z X` and scores :math:`\hat x_i \hat e_i`,
    :math:`\hat e = y - X\hat\beta`; both covariances come from this one fit.
    Without ``debiased`` scaling they equal linearmodels' ``IV2SLS`` robust
    and clustered covariances (``tests/test_numerics.py``). ``first``, from
    :func:`tsls_first_stage` of the same ``x``, ``z`` and ``w``, saves
    recomputing what does not read ``y``."""
    y = np.asarray(y, dtype=float).ravel()
    if first is None:
        first = tsls_first_stage(np.asarray(x, dtype=float).reshape(len(y), -1), z, w)
    x, z, pi, xhat = first["x"], first["z"], first["pi"], first["xhat"]
    (y,) = partial_out(w, y)
    params = np.linalg.solve(first["xhx"], xhat.T @ y)
    resid = y - x @ params
    rf = np.linalg.lstsq(z, y, rcond=None)[0]
    cov_r = sandwich_cov(xhat, resid, None)
    cov_c = sandwich_cov(xhat, resid, clusters) if clusters is not None else None
    return TwoSLS(params, cov_r, cov_c, pi, rf, resid, len(y))


@dataclass
class ARSet:
    """The Anderson-Rubin confidence set of one coefficient: a list of
    intervals (ends may be infinite). ``kind`` is ``interval`` (bounded),
    ``two_rays`` (the line without an interval: unbounded, a union of two
    half-lines), ``half_line`` (one end open; from
    :func:`anderson_rubin_projection`) or ``whole_line`` (the data rule out
    no value)."""

    intervals: list[tuple[float, float]]
    kind: str
    level: float

    @property
    def bounded(self) -> bool:
        return self.kind == "interval"

    def contains(self, b: float) -> bool:
        return any(lo <= b <= hi for lo, hi in self.intervals)


def anderson_rubin_stat(b: float | np.ndarray, y: np.ndarray, d: np.ndarray, z: np.ndarray,
                        *, w: np.ndarray | None = None,
                        clusters: np.ndarray | None = None) -> np.ndarray:
    r"""The Anderson-Rubin statistic of :math:`H_0: \beta = b` in
    :math:`y = \beta d + w'\gamma + e` with instruments ``z``: the robust or
    clustered Wald statistic of all coefficients of ``z`` in the regression
    of :math:`y - b\,d` on ``z`` and ``w`` (Anderson and Rubin 1949), a
    :math:`\chi^2_q` under the null whatever the strength of the instruments.
    Vectorised over ``b`` (brute force; :func:`anderson_rubin_set` solves it
    in closed form for one instrument)."""
    y, d, z = partial_out(w, np.asarray(y, float).ravel(), np.asarray(d, float).ravel(),
                          np.asarray(z, float).reshape(len(y), -1))
    out = []
    for bb in np.atleast_1d(np.asarray(b, dtype=float)):
        u = y - bb * d
        g = np.linalg.lstsq(z, u, rcond=None)[0]
        v = sandwich_cov(z, u - z @ g, clusters)
        out.append(float(g @ np.linalg.solve(v, g)))
    return np.array(out)


def anderson_rubin_set(y: np.ndarray, d: np.ndarray, z: np.ndarray, *,
                       w: np.ndarray | None = None, clusters: np.ndarray | None = None,
                       level: float = 0.95) -> ARSet:
    r"""The Anderson-Rubin confidence set for the coefficient of one
    endogenous regressor ``d`` with one instrument ``z``: the values
    :math:`b` the AR test (:func:`anderson_rubin_stat`) does not reject at
    ``1 - level``. With :math:`\hat\rho, \hat\pi` the reduced-form and
    first-stage coefficients of ``z`` and :math:`V_{\rho\rho}, V_{\rho\pi},
    V_{\pi\pi}` their robust or clustered (co)variances (from the same
    sandwich), :math:`AR(b) = (\hat\rho - b\hat\pi)^2 / (V_{\rho\rho} -
    2bV_{\rho\pi} + b^2V_{\pi\pi})`, so the set solves the quadratic
    :math:`(\hat\pi^2 - cV_{\pi\pi})b^2 - 2(\hat\rho\hat\pi - cV_{\rho\pi})b +
    \hat\rho^2 - cV_{\rho\rho} \le 0`, :math:`c = \chi^2_{1,level}`. It is a
    bounded interval exactly when the first stage is significant at
    ``1 - level`` (:math:`\hat\pi^2 / V_{\pi\pi} > c`); otherwise it is
    unbounded: two half-lines or the whole line (Dufour 1997: a valid set
    must be unbounded with positive probability when the instrument may be
    weak)."""
    from scipy import stats

    y, d, z = partial_out(w, np.asarray(y, float).ravel(), np.asarray(d, float).ravel(),
                          np.asarray(z, float).reshape(len(y), -1))
    if z.shape[1] != 1:
        raise ValueError("anderson_rubin_set solves the one-instrument case; use "
                         "anderson_rubin_stat over a grid for more")
    zz = z[:, 0]
    szz = float(zz @ zz)
    rho, pi = float(zz @ y) / szz, float(zz @ d) / szz
    e = np.column_stack([y - rho * zz, d - pi * zz])
    scores = zz[:, None] * e                          # n x 2: reduced form, first stage
    if clusters is None:
        meat = scores.T @ scores
    else:
        sums = pd.DataFrame(scores).groupby(clusters, sort=False).sum().to_numpy()
        meat = sums.T @ sums
    v = meat / szz ** 2
    c = float(stats.chi2.ppf(level, 1))
    a = pi * pi - c * v[1, 1]
    bq = -2.0 * (rho * pi - c * v[0, 1])
    cq = rho * rho - c * v[0, 0]
    disc = bq * bq - 4 * a * cq
    if a > 0:
        if disc < 0:  # cannot happen with one instrument (AR = 0 at rho / pi)
            return ARSet([], "empty", level)
        r = math.sqrt(disc)
        lo, hi = sorted(((-bq - r) / (2 * a), (-bq + r) / (2 * a)))
        return ARSet([(lo, hi)], "interval", level)
    if a < 0 and disc > 0:
        r = math.sqrt(disc)
        lo, hi = sorted(((-bq - r) / (2 * a), (-bq + r) / (2 * a)))
        return ARSet([(-math.inf, lo), (hi, math.inf)], "two_rays", level)
    return ARSet([(-math.inf, math.inf)], "whole_line", level)


def _ar_x_pieces(x: np.ndarray, z: np.ndarray, clusters: np.ndarray | None
                 ) -> dict[str, Any]:
    r"""The pieces of :func:`_ar_pieces` that do not read the outcome:
    :math:`Z'X`, the sums :math:`B_u` of :math:`z_i` times the residuals of X
    on Z per unit (observations, or clusters; flattened to k * m columns), the
    cluster codes, and :math:`\sum_u B_u \otimes B_u` (``p2``). Every outcome
    with the same rows, endogenous columns, instruments and clusters shares
    them."""
    n, k = z.shape
    m = x.shape[1]
    pi = np.linalg.lstsq(z, x, rcond=None)[0]
    ex = x - z @ pi
    b = (z[:, :, None] * ex[:, None, :]).reshape(n, k * m)   # n x (k m)
    codes = None
    if clusters is not None:
        codes = pd.factorize(pd.Series(clusters))[0]
        g = codes.max() + 1
        b = np.stack([np.bincount(codes, weights=b[:, j], minlength=g)
                      for j in range(k * m)], axis=1)
    return {"d": z.T @ x, "b": b, "codes": codes,
            "p2": (b.T @ b).reshape(k, m, k, m)}


def _ar_pieces(y: np.ndarray, x: np.ndarray, z: np.ndarray, clusters: np.ndarray | None,
               shared: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    r"""What the Anderson-Rubin statistic of every coefficient vector needs:
    :math:`Z'y`, :math:`Z'X` and the sandwich meat :math:`M(\beta) = \sum_u
    (a_u - B_u\beta)(a_u - B_u\beta)'` as a quadratic in :math:`\beta`
    (units u: observations, or clusters), with :math:`a_u, B_u` the sums of
    :math:`z_i` times the residuals of y and X on Z. ``shared`` holds the
    pieces that do not read y (:func:`_ar_x_pieces` of the same x, z and
    clusters); the cross products are matrix products of the unit sums."""
    xp = _ar_x_pieces(x, z, clusters) if shared is None else shared
    k, m = xp["d"].shape
    rho = np.linalg.lstsq(z, y, rcond=None)[0]
    a = z * (y - z @ rho)[:, None]                       # n x k
    if xp["codes"] is not None:
        codes = xp["codes"]
        g = codes.max() + 1
        a = np.stack([np.bincount(codes, weights=a[:, p], minlength=g)
                      for p in range(k)], axis=1)
    return {"c": z.T @ y, "d": xp["d"], "p0": a.T @ a,
            "p1": (a.T @ xp["b"]).reshape(k, k, m), "p2": xp["p2"]}


def _ar_full(beta: np.ndarray, pc: dict[str, np.ndarray]) -> float:
    r"""The Anderson-Rubin statistic of the whole coefficient vector (Wald
    form: :math:`(Z'u)' M(\beta)^{-1} (Z'u)`, :math:`u = y - X\beta`)."""
    return _ar_full_grad(beta, pc)[0]


def _ar_full_grad(beta: np.ndarray, pc: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """:func:`_ar_full` and its gradient in the coefficients (the statistic is
    evaluated some hundred times per end of the projection: matrix products
    on reshaped pieces instead of multi-operand einsums)."""
    d, p1, p2 = pc["d"], pc["p1"], pc["p2"]
    k, m = d.shape
    s = pc["c"] - d @ beta
    p1b = p1 @ beta
    p2b = p2 @ beta                                      # k x m x k: sum over r
    meat = pc["p0"] - p1b - p1b.T + beta @ p2b           # sum over l
    try:
        q = np.linalg.solve(meat, s)
    except np.linalg.LinAlgError:
        return math.inf, np.zeros_like(beta)
    grad = (-2 * d.T @ q + 2 * (q @ (q @ p1.reshape(k, k * m)).reshape(k, m))
            - 2 * ((q @ p2b.reshape(k, m * k)).reshape(m, k) @ q))
    return float(s @ q), grad


def _ar_full_grad_reference(beta: np.ndarray, pc: dict[str, np.ndarray]
                            ) -> tuple[float, np.ndarray]:
    """:func:`_ar_full_grad` written with einsums, as derived (for tests)."""
    s = pc["c"] - pc["d"] @ beta
    p1b = pc["p1"] @ beta
    meat = pc["p0"] - p1b - p1b.T + np.einsum("plqr,l,r->pq", pc["p2"], beta, beta)
    try:
        q = np.linalg.solve(meat, s)
    except np.linalg.LinAlgError:
        return math.inf, np.zeros_like(beta)
    grad = (-2 * pc["d"].T @ q + 2 * np.einsum("p,pql,q->l", q, pc["p1"], q)
            - 2 * np.einsum("p,plqr,q,r->l", q, pc["p2"], q, beta))
    return float(s @ q), grad


def anderson_rubin_projection(y: np.ndarray, x: np.ndarray, z: np.ndarray, *, index: int = 0,
                              w: np.ndarray | None = None,
                              clusters: np.ndarray | None = None, level: float = 0.95,
                              max_steps: int = 12, cache: dict[str, Any] | None = None
                              ) -> ARSet:
    r"""The projection of the joint Anderson-Rubin confidence set of all
    coefficients of the endogenous ``x`` (n x m) on coefficient ``index``:
    the values :math:`b` for which some value of the other coefficients
    passes the joint AR test at :math:`\chi^2_{k,level}` (k instruments).
    It covers the coefficient with at least the nominal probability whatever
    the strength of the instruments (Dufour and Taamouti 2005), and is
    conservative when they are strong.

    The minimum over the other coefficients is found numerically (BFGS, warm
    started along the path); the ends are found by stepping outward from the
    2SLS estimate in doubling steps of its robust standard error and
    bisecting. A side where no value up to ``2 ** max_steps`` standard
    errors is rejected is reported open (infinite end).

    ``cache``, a dict the caller keeps between calls with the same ``x``,
    ``z``, ``w`` and ``clusters`` (outcomes on the same rows), holds what does
    not read ``y``: it is computed once, with the same result."""
    from scipy import optimize, stats

    y = np.asarray(y, float).ravel()
    cache = {} if cache is None else cache
    if "x" not in cache:
        x = np.asarray(x, float).reshape(len(y), -1)
        z = np.asarray(z, float).reshape(len(y), -1)
        x, z = partial_out(w, x, z)
        cache.update(x=x, z=z, pieces=_ar_x_pieces(x, z, clusters))
    x, z = cache["x"], cache["z"]
    (y,) = partial_out(w, y)
    m = x.shape[1]
    pc = _ar_pieces(y, x, z, clusters, cache["pieces"])
    crit = float(stats.chi2.ppf(level, z.shape[1]))
    fit = tsls(y, x, z, clusters=clusters)
    est = fit.params
    scale = math.sqrt(max(fit.cov_robust[index, index], 1e-300))
    rest = [i for i in range(m) if i != index]

    def profile(b: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        if not rest:
            return _ar_full(np.array([b]), pc), start

        def f(v: np.ndarray) -> tuple[float, np.ndarray]:
            beta = np.empty(m)
            beta[index], beta[rest] = b, v
            value, grad = _ar_full_grad(beta, pc)
            return value, grad[rest]

        res = optimize.minimize(f, start, jac=True, method="BFGS", options={"gtol": 1e-7})
        return float(res.fun), res.x

    ends = []
    for sign in (1.0, -1.0):
        start = est[rest].copy()
        inside = 0.0
        outside = None
        for step in range(max_steps + 1):
            t = scale * 2.0 ** step
            value, start_t = profile(est[index] + sign * t, start)
            if value > crit:
                outside = t
                break
            inside, start = t, start_t
        if outside is None:
            ends.append(sign * math.inf)
            continue
        for _ in range(30):
            mid = 0.5 * (inside + outside)
            value, start_m = profile(est[index] + sign * mid, start)
            if value > crit:
                outside = mid
            else:
                inside, start = mid, start_m
            if outside - inside < 1e-3 * scale:
                break
        ends.append(est[index] + sign * 0.5 * (inside + outside))
    hi, lo = ends
    kind = "interval" if math.isfinite(lo) and math.isfinite(hi) else (
        "whole_line" if not (math.isfinite(lo) or math.isfinite(hi)) else "half_line")
    return ARSet([(lo, hi)], kind, level)

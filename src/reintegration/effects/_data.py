"""Input checks and small numerical helpers shared by the designs.

Every estimator validates its input here, so that a wrong column name, a
treatment that is not binary or an instrument without variation fails with
a message that names the column, before any model is fitted.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd


class EffectInputError(ValueError):
    """Raised when the data or the options of an estimator are unusable.

    It is a ``ValueError``; the message names the offending column or option.
    """


def as_list(columns: str | Iterable[str] | None) -> list[str]:
    """A column argument (a name, a sequence of names or None) as a list."""
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def require_frame(data: object) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise EffectInputError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if data.columns.duplicated().any():
        dup = list(data.columns[data.columns.duplicated()])
        raise EffectInputError(f"data has duplicated column names: {dup}")
    return data


def require_columns(data: pd.DataFrame, columns: Iterable[Hashable], *, role: str) -> None:
    """Raise if a column is missing, naming the column and its role."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise EffectInputError(
            f"{role} column {names} not found in data (columns: {list(data.columns)[:20]})"
        )


def complete_cases(data: pd.DataFrame, columns: Sequence[Hashable]) -> tuple[pd.DataFrame, int]:
    """Rows without a missing value in ``columns``; also the number dropped."""
    cols = list(dict.fromkeys(columns))
    keep = data[cols].notna().all(axis=1)
    return data.loc[keep], int((~keep).sum())


def binary(series: pd.Series, *, name: str, role: str = "treatment") -> np.ndarray:
    """A 0/1 float array; raises naming the column if it is not binary or
    does not vary."""
    values = pd.unique(series.dropna())
    if series.dtype != bool:
        try:
            as_float = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            as_float = np.array([np.nan])
        if not np.isin(as_float, (0.0, 1.0)).all():
            shown = sorted(map(str, values))[:6]
            raise EffectInputError(
                f"{role} column {name!r} must be binary (0/1 or bool); it has the values {shown}"
            )
    if len(values) < 2:
        only = values[0] if len(values) else "missing"
        raise EffectInputError(f"{role} column {name!r} has no variation: every row is {only}")
    return series.to_numpy(dtype=float)


def numeric_design(data: pd.DataFrame, columns: Sequence[str], *, role: str) -> pd.DataFrame:
    """Covariates as a float DataFrame; categorical, string and boolean
    columns become 0/1 indicators with the first category left out."""
    frame = data[list(columns)] if columns else None
    if frame is not None and all(
        isinstance(t, np.dtype) and t.kind in "biuf" for t in frame.dtypes
    ):  # numbers and booleans only: one conversion of all columns, the same values
        return pd.DataFrame(
            frame.to_numpy(dtype=float), index=data.index, columns=[str(c) for c in columns]
        )
    parts: list[pd.DataFrame] = []
    for col in columns:
        s = data[col]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == "string":
            dummies = pd.get_dummies(s, prefix=str(col), prefix_sep="=", drop_first=True)
            parts.append(dummies.astype(float))
        elif s.dtype == bool:
            parts.append(s.astype(float).to_frame(col))
        elif pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).to_frame(col))
        else:
            raise EffectInputError(
                f"{role} column {col!r} has dtype {s.dtype}, which is neither numeric nor "
                "categorical"
            )
    if not parts:
        return pd.DataFrame(index=data.index)
    out = pd.concat(parts, axis=1)
    out.columns = [str(c) for c in out.columns]
    return out


def codes(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Integer group codes for the combinations of ``columns``."""
    return data.groupby(list(columns), sort=True, observed=True).ngroup().to_numpy()


def if_variance(phi: np.ndarray, clusters: np.ndarray | None) -> float:
    """Variance of an estimator from its influence values in sum form.

    ``phi`` holds each observation's contribution to the linearised estimation
    error (the estimate minus its limit is approximately ``phi.sum()``). The
    robust variance is ``n/(n-1) * sum(phi**2)``; the cluster-robust variance is
    ``G/(G-1) * sum_g (sum_{i in g} phi_i)**2`` over the G clusters.
    """
    if clusters is None:
        n = phi.shape[0]
        return float(n / (n - 1) * np.sum(phi**2))
    codes = pd.factorize(np.asarray(clusters), sort=True)[0]
    known = codes >= 0  # a missing cluster label contributes to no cluster's sum
    return cluster_variance(phi[known], codes[known])[0]


def cluster_variance(phi: np.ndarray, clusters: np.ndarray) -> tuple[float, int]:
    """The cluster-robust variance of :func:`if_variance` with integer cluster
    codes (sums per cluster by one ``bincount``), and the number of clusters
    present."""
    sums = np.bincount(clusters, weights=phi)
    present = np.bincount(clusters) > 0
    g = int(present.sum())
    if g < 2:
        raise EffectInputError("cluster-robust standard errors need at least 2 clusters")
    return float(g / (g - 1) * np.sum(sums[present] ** 2)), g


def json_safe(value: object) -> object:
    """Plain Python values for JSON: NaN becomes None, numpy scalars floats."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return None if not np.isfinite(v) else v
    if value is None or isinstance(value, str):
        return value
    return str(value)

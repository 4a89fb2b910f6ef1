"""The disclosure-control rules: thresholds, reason codes and their wording.

Pure configuration and vocabulary, shared by the suppression logic
(:mod:`reintegration.disclosure.suppression`), the model and effect checks
(:mod:`reintegration.disclosure.checks`), the register that writes the
outputs (:mod:`reintegration.disclosure`) and the release audit. Nothing here
reads data or writes files; :func:`load_rules` reads ``config/disclosure.yml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import ConfigError, read_yaml
from ..core.paths import repo_root

#: key of the notebook output metadata that carries the output id
META_KEY = "reintegration"
#: the estimator name of a released record of effect results (not one fitted model)
EFFECTS_ESTIMATOR = "reintegration.effects"
#: name of the margin row and column of a table
MARGINS = "Total"
#: CBS's symbol for a confidential (suppressed) figure
SUPPRESSED = "x"

STATUSES = ("pass", "review", "fail")
NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
ALLOWED_AGG = ("count", "mean", "median", "sum", "std")

#: reason code -> (display letter, text for a reader). A zero that is not
#: structural shares the letter and wording of the threshold rule on purpose:
#: telling a reader which suppressed cells are zero would undo the suppression.
REASONS = {
    "threshold": ("n", "fewer than {t} persons, or a zero that is not structural"),
    "dominance": ("d", "dominated by one or two persons (nk rule n={n}, k={k}; p-ratio {p})"),
    "proportion": ("p", "fewer than {t} persons with, or without, the outcome"),
    "dof": ("f", "too few persons for a standard deviation ({dof} degrees of freedom)"),
    # the same letter as the threshold rule on purpose: a reader who could tell
    # a complementary cell (10 or more) from a primary one would know the
    # primary ones are small, and so narrow them (see the protection rule)
    "secondary": ("n", "suppressed so that no other suppressed cell can be derived by subtraction"),
}
#: ACRO's check names -> the reason codes of the register
ACRO_CHECK_TO_REASON = {
    "MinimumThresholdCheck": "threshold",
    "PresenceOfZeroCheck": "threshold",
    "NKCheck": "dominance",
    "PPercentCheck": "dominance",
}


class DisclosureError(ValueError):
    """An output that the rules refuse outright (minima, maxima, modes) or a
    request the register cannot check (unknown columns, missing group keys)."""


@dataclass(frozen=True)
class Rules:
    """The disclosure-control thresholds (``config/disclosure.yml``)."""

    cell_threshold: int = 10
    nk_n: int = 2
    nk_k: float = 0.9
    p_ratio: float = 0.1
    residual_dof: int = 10
    zeros_disclosive: bool = True
    proportions_as_counts: bool = True
    check_missing_values: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell_threshold": self.cell_threshold,
            "dominance": {"nk_n": self.nk_n, "nk_k": self.nk_k, "p_ratio": self.p_ratio},
            "residual_dof": self.residual_dof,
            "release_minima_maxima": False,
            "zeros_disclosive": self.zeros_disclosive,
            "proportions_as_counts": self.proportions_as_counts,
            "check_missing_values": self.check_missing_values,
        }

    def acro_config(self) -> dict[str, Any]:
        """The same thresholds under ACRO's configuration keys."""
        return {
            "safe_threshold": self.cell_threshold,
            "safe_dof_threshold": self.residual_dof,
            "safe_nk_n": self.nk_n,
            "safe_nk_k": self.nk_k,
            "safe_pratio_p": self.p_ratio,
            "zeros_are_disclosive": self.zeros_disclosive,
            "check_missing_values": self.check_missing_values,
            "survival_safe_threshold": self.cell_threshold,
        }

    def reason_text(self, code: str) -> str:
        return REASONS[code][1].format(
            t=self.cell_threshold, n=self.nk_n, k=self.nk_k, p=self.p_ratio, dof=self.residual_dof
        )


def load_rules(root: Path | None = None, path: Path | None = None) -> Rules:
    """Read and check ``config/disclosure.yml``; name the file and the key
    when something is wrong."""
    path = path or (root or repo_root()) / "config" / "disclosure.yml"
    data = read_yaml(Path(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")

    def need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
        if not isinstance(mapping, dict) or key not in mapping:
            raise ConfigError(f"{path}: missing required key '{where}{key}'")
        value = mapping[key]
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{path}: key '{where}{key}' must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise ConfigError(f"{path}: key '{where}{key}' has the wrong type: {value!r}")
        return value

    threshold = need(data, "cell_threshold", int)
    dom = need(data, "dominance", dict)
    nk_n = need(dom, "nk_n", int, "dominance.")
    nk_k = float(need(dom, "nk_k", (int, float), "dominance."))
    p_ratio = float(need(dom, "p_ratio", (int, float), "dominance."))
    dof = need(data, "residual_dof", int)
    if need(data, "release_minima_maxima", bool):
        raise ConfigError(
            f"{path}: release_minima_maxima must be false: a minimum or maximum describes one "
            "person, and CBS does not release them"
        )
    if threshold < 1 or nk_n < 1 or dof < 1:
        raise ConfigError(f"{path}: cell_threshold, dominance.nk_n and residual_dof must be >= 1")
    if not 0 < nk_k <= 1 or not 0 < p_ratio < 1:
        raise ConfigError(f"{path}: dominance.nk_k must be in (0, 1] and p_ratio in (0, 1)")
    return Rules(
        cell_threshold=threshold,
        nk_n=nk_n,
        nk_k=nk_k,
        p_ratio=p_ratio,
        residual_dof=dof,
        zeros_disclosive=need(data, "zeros_disclosive", bool),
        proportions_as_counts=bool(data.get("proportions_as_counts", True)),
        check_missing_values=bool(data.get("check_missing_values", False)),
    )

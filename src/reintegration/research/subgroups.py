"""The pre-registered subgroups of a person, from the panel or from the truth files.

Phase 2 reports every effect for these groups too, the case-manager IV prepares
them with its data, and Who benefits starts from them; the validation derives the
same groups from the synthetic truth, whose column names differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: the panel's migration background (origin groups) to the subgroup's three levels
MIGRATION_SUBGROUPS = {"nl": "none", "western": "western", "ma": "non-western",
                       "tr": "non-western", "sr": "non-western", "an": "non-western",
                       "other_nonwestern": "non-western"}


def subgroup_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The pre-specified subgroup columns (age_band, sex, education,
    prior_employment, migration) as strings, from the panel's persons or from
    the truth's potential outcomes (their column names differ); missing where
    unknown."""
    out = pd.DataFrame(index=frame.index)
    age = frame["age"].astype("Float64")
    out["age_band"] = pd.Series(
        np.select([age < 27, age < 50, age >= 50], ["under 27", "27-49", "50 and over"],
                  default=""), index=frame.index).replace("", pd.NA)
    if "sex" in frame:
        out["sex"] = frame["sex"].astype("string")
    else:
        out["sex"] = np.where(frame["female"].astype(int) == 1, "female", "male")
    edu = frame["education"].astype("string").fillna("missing")
    out["education"] = edu
    if "prior_employment_months" in frame:
        months = frame["prior_employment_months"].astype(float)
    else:
        months = (frame["prior_employment"].astype(float) * 24).round()
    out["prior_employment"] = np.where(months > 0, "some", "none")
    out["migration"] = frame["migration"].astype("string").map(MIGRATION_SUBGROUPS)
    return out.astype("string")

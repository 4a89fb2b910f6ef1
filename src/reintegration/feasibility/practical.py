"""Practical criterion: the data are there and good enough (checks shared
by every sub-study of a city; the design-specific ones come from each design's
``diagnose``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core import months
from ..designs.base import (
    Check,
    levels,
    pct,
)

# ---- practical data checks ---------------------------------------------------


def practical_data_checks(city: dict[str, Any], quality: dict[str, Any],
                          linkage: dict[str, Any], settings: dict[str, Any],
                          threshold: int) -> list[Check]:
    """Linkage rate and completeness from ``linkage.json`` and
    ``quality.json``: the same for every sub-study of the city."""
    pcfg = settings["practical"]
    out: list[Check] = []
    rate = (linkage.get("tables", {}).get("clients", {}) or {}).get("linked_share")
    lim = pcfg["linkage_rate"]
    if rate is None:
        out.append(Check("linkage_rate", "fail", "no linkage rate in linkage.json", None, lim))
    else:
        verdict = levels(float(rate), no_go=lim["no_go"], conditional=lim["conditional"])
        text = {
            "pass": f"{pct(rate)} of delivered clients linked to CBS (at least "
                    f"{pct(lim['conditional'], 0)})",
            "conditional": f"{pct(rate)} of delivered clients linked to CBS (below "
                           f"{pct(lim['conditional'], 0)}): compare linked and unlinked "
                           "clients for selective linkage",
            "fail": f"only {pct(rate)} of delivered clients linked to CBS (below "
                    f"{pct(lim['no_go'], 0)})",
        }[verdict]
        out.append(Check("linkage_rate", verdict, text, round(float(rate), 4), lim))
    min_table = float(pcfg["min_table_completeness"])
    min_col = float(pcfg["min_column_completeness"])
    tables = quality.get("tables", {})
    low_tables, low_cols = [], []
    for table, canon in pcfg["columns"].items():
        info = tables.get(table)
        if info is None:
            if table in city.get("exports", {}).get("files", {}):
                low_tables.append((table, None))
            continue
        comp = float(info.get("dimensions", {}).get("completeness", float("nan")))
        if not comp >= min_table:
            low_tables.append((table, comp))
        mapping = city["exports"]["files"].get(table, {}).get("columns", {}) or {}
        by_col = info.get("completeness_by_column", {}) or {}
        for col in canon:
            export_name = mapping.get(col)
            if export_name is None or export_name not in by_col:
                continue
            value = float(by_col[export_name])
            if value < min_col:
                low_cols.append((table, col, export_name, value))
    if low_tables:
        parts = [f"{t} table " + ("missing from the quality report" if c is None
                                   else f"completeness {pct(c)}") for t, c in low_tables]
        out.append(Check("table_completeness", "fail",
                         "; ".join(parts) + f" (at least {pct(min_table, 0)})",
                         {t: c for t, c in low_tables}, min_table))
    else:
        out.append(Check("table_completeness", "pass",
                         f"every delivered table at least {pct(min_table, 0)} complete",
                         None, min_table))
    if low_cols:
        parts = [f"{col} of {table} ({name}) {pct(v)} complete" for table, col, name, v in
                 low_cols]
        out.append(Check(
            "column_completeness", "conditional",
            "; ".join(parts) + f" (below {pct(min_col, 0)}): the panel imputes or drops them; "
            "show that results do not depend on the imputation",
            {f"{t}.{c}": round(v, 4) for t, c, _, v in low_cols}, min_col))
    else:
        out.append(Check("column_completeness", "pass",
                         f"the columns the analysis relies on are at least {pct(min_col, 0)} "
                         "complete", None, min_col))
    return out


def _data_evidence(quality: dict[str, Any], linkage: dict[str, Any]) -> dict[str, Any]:
    tables = quality.get("tables", {})
    return {
        "linkage_rate": (linkage.get("tables", {}).get("clients", {}) or {}).get("linked_share"),
        "completeness": {t: v.get("dimensions", {}).get("completeness")
                         for t, v in sorted(tables.items())},
    }


def coverage_check(persons: pd.DataFrame, city: dict[str, Any], quality: dict[str, Any],
                   settings: dict[str, Any]) -> tuple[list[Check], dict[str, Any]]:
    """Share of the cohort with 24 months of CBS history before inflow and
    the full follow-up after it within the data."""
    cov = settings["practical"]["coverage"]
    pre_months = 24
    follow = int(city["study"].get("follow_up_months", 24))
    history_from = months.index(str(cov["cbs_history_from"]))
    data_to = months.index(str(cov["cbs_data_to"]))
    export = quality.get("export_date")
    if export:
        data_to = min(data_to, months.index(str(export)[:7]))
    inflow = persons["inflow_month"].astype(str).map(months.index).to_numpy()
    n = len(inflow)
    pre_share = float((inflow - pre_months >= history_from).mean()) if n else 0.0
    post_share = float((inflow + follow <= data_to).mean()) if n else 0.0
    need = float(cov["min_share"])
    checks = []
    for name, share, what, fix in (
        ("pre_window", pre_share, f"{pre_months} months of CBS history before inflow",
         "restrict the cohort to inflows with a complete history"),
        ("post_window", post_share, f"{follow} months of follow-up within the data",
         "restrict the outcomes to the horizons covered"),
    ):
        if share >= need:
            checks.append(Check(name, "pass", f"{pct(share)} of the cohort have {what}",
                                round(share, 4), need))
        else:
            checks.append(Check(name, "conditional",
                                f"only {pct(share)} of the cohort have {what}: {fix}",
                                round(share, 4), need))
    evidence = {"pre_window_share": round(pre_share, 4), "post_window_share": round(post_share, 4),
                "data_to": months.text(data_to), "history_from": months.text(history_from)}
    return checks, evidence

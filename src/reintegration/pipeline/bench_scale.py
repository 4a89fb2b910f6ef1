"""The panel step at national scale: a cohort of 12,000 to 450,000 clients
read from CBS files of 1 to 10 million persons (``make bench``, entry
``panel_national``).

For each cohort size the benchmark generates full-size Rotterdam with that
many clients (``generate_city(..., clients=)``; above :data:`MAX_BASE`
clients, ``copies`` copies of a city of ``cohort / copies`` clients, each
under new keys), links its delivery as steps 01 and 02 do, and writes
national CBS files in which the city is embedded among ``persons`` other
persons (:mod:`reintegration.synth.national`). Then, in a fresh process, the
panel step's work: read the linked delivery, read the five CBS files filtered
to the cohort (:func:`reintegration.research.panel_sources.read_sources_from`), build
the panel and write its four Parquet files. That process measures its own
time and peak resident memory (its own high-water mark,
:func:`reintegration.pipeline.peak_rss.peak_mib`, at its end: the whole life of
the process, imports included; not ``ru_maxrss``, which in a spawned process
starts from the peak of the process that spawned it).

Targets (issue "national scale"): the 450,000-client cohort from files of 10
million persons within 180 s and 4 GiB; time growing at most linearly in the
cohort: the time per client at 450,000 clients within 1.5 times that at
40,000 (same file size). The grid is a parameter (``--cohorts``,
``--persons``, or the environment variables ``BENCH_COHORTS`` and
``BENCH_PERSONS``, comma-separated); a target whose cells were not run is
reported as not measured.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .peak_rss import in_fresh_process, peak_mib

#: the cohort sizes (linked clients) and national file sizes (other persons) of the table
COHORTS = (12_000, 40_000, 160_000, 450_000)
PERSONS = (1_000_000, 10_000_000)
#: the largest city generated in one piece; bigger cohorts are copies of a city
MAX_BASE = 50_000
CITY = "rotterdam"
TARGET_COHORT, TARGET_PERSONS = 450_000, 10_000_000
TARGET_SECONDS, TARGET_MIB = 180, 4096
#: time per client at the largest cohort / at this one, at most LINEAR_RATIO
LINEAR_FROM, LINEAR_RATIO = 40_000, 1.5


def grid(cohorts: str | None = None, persons: str | None = None) -> tuple[list[int], list[int]]:
    """The cohort and file sizes to run: arguments, else ``BENCH_COHORTS`` /
    ``BENCH_PERSONS``, else :data:`COHORTS` / :data:`PERSONS`."""

    def parse(text: str | None, default: tuple[int, ...], name: str) -> list[int]:
        text = text if text is not None else os.environ.get(name)
        if not text:
            return list(default)
        try:
            values = [int(float(v)) for v in text.replace(" ", "").split(",") if v]
        except ValueError as exc:
            raise ValueError(
                f"{name}: comma-separated whole numbers expected, got {text!r}"
            ) from exc
        if not values or min(values) <= 0:
            raise ValueError(f"{name}: positive sizes expected, got {text!r}")
        return sorted(set(values))

    return parse(cohorts, COHORTS, "BENCH_COHORTS"), parse(persons, PERSONS, "BENCH_PERSONS")


def copies_for(cohort: int) -> tuple[int, int]:
    """(copies, clients per copy) for a cohort of ``cohort`` clients."""
    copies = max(1, math.ceil(cohort / MAX_BASE))
    return copies, int(round(cohort / copies))


def _base_city(root: str, folder: str, clients: int) -> dict[str, Any]:
    """Generate the city with ``clients`` clients into ``folder`` and link its
    delivery (as steps 01 and 02 do) into ``folder/delivery``."""
    import pandas as pd

    from ..core.config import load_city
    from ..intake import ingest, quality
    from ..linking import linkage
    from ..synth import generate_city

    started = time.perf_counter()
    data = Path(folder)
    generate_city(CITY, "full", root=Path(root), data_dir=data, clients=clients)
    cfg = load_city(CITY, Path(root))
    exports = ingest.read_delivery(cfg, data / "municipal" / CITY)
    checked = quality.check_delivery(exports, cfg, root=Path(root))
    key_table = pd.read_parquet(data / "ttp" / CITY / "key_table.parquet")
    register = pd.read_parquet(data / "ttp" / CITY / "person_register.parquet")
    result = linkage.link(checked.tables, checked.quarantine, key_table, register, key=b"bench")
    out = data / "delivery"
    out.mkdir(exist_ok=True)
    for name in ("clients", "benefit_spells", "instruments"):
        result.research[name].to_parquet(out / f"{name}.parquet", index=False)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "linked_clients": int(len(result.research["clients"])),
    }


def _national(base: str, folder: str, persons: int, copies: int) -> dict[str, Any]:
    """Write the national files of ``copies`` copies of the base city among
    ``persons`` others into ``folder``, and the replicated delivery into
    ``folder/delivery``."""
    import pandas as pd

    from ..research.panel_sources import DELIVERY, cohort_keys
    from ..synth import national

    src = Path(base) / "delivery"
    delivery = {t: pd.read_parquet(src / f"{t}.parquet") for t in DELIVERY}
    out = Path(folder)
    summary = national.write_national(
        Path(base) / "research" / "cbs" / CITY,
        out,
        persons=persons,
        copies=copies,
        extra_keys=cohort_keys(delivery["clients"]),
    )
    keymap = pd.read_parquet(out / "keymap.parquet")
    (out / "delivery").mkdir(exist_ok=True)
    for name, frame in national.replicate_delivery(delivery, keymap).items():
        frame.to_parquet(out / "delivery" / f"{name}.parquet", index=False)
    summary["peak_rss_mib"] = round(peak_mib(), 1)
    return summary


def _panel(root: str, folder: str) -> dict[str, Any]:
    """The timed part, in a fresh process: import, read the delivery and the
    CBS files (filtered to the cohort), build the panel, write it."""
    started = time.perf_counter()
    import pandas as pd

    from ..core.config import load_city
    from ..research import panel, panel_sources

    nat = Path(folder)
    delivery = {
        t: pd.read_parquet(nat / "delivery" / f"{t}.parquet") for t in panel_sources.DELIVERY
    }
    src = panel_sources.read_sources_from(delivery, nat)
    read, peak_read = time.perf_counter() - started, peak_mib()
    built = panel.build(src, load_city(CITY, Path(root))["study"])
    build, peak_build = time.perf_counter() - started - read, peak_mib()
    out = nat / "panel"
    out.mkdir(exist_ok=True)
    for name, frame in built.frames.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "seconds_reading": round(read, 2),
        "seconds_building": round(build, 2),
        "peak_rss_mib": round(peak_mib(), 1),
        "peak_rss_mib_after_reading": round(peak_read, 1),
        "peak_rss_mib_after_building": round(peak_build, 1),
        "linked_clients": int(len(delivery["clients"])),
        "cohort_persons": int(len(built.persons)),
        "person_months": int(len(built.person_months)),
        "cbs_rows_kept": {
            t: int(len(getattr(src, f))) for f, t in panel_sources.SOURCE_TABLES.items()
        },
    }


def run_grid(
    root: Path, cohorts: list[int], persons: list[int], work: Path | None = None
) -> list[dict[str, Any]]:
    """One row per (cohort, file size): the panel's time and peak memory,
    with what was generated for it."""
    rows = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        bases: dict[int, dict[str, Any]] = {}
        for cohort in cohorts:
            copies, base = copies_for(cohort)
            base_dir = Path(tmp) / f"base_{base}"
            if base not in bases:
                bases[base] = in_fresh_process(_base_city, str(root), str(base_dir), base)
            for n in persons:
                nat_dir = Path(tmp) / f"national_{cohort}_{n}"
                gen = in_fresh_process(_national, str(base_dir), str(nat_dir), n, copies)
                result = in_fresh_process(_panel, str(root), str(nat_dir))
                result.update(
                    {
                        "cohort_target": cohort,
                        "persons_other": n,
                        "copies": copies,
                        "clients_per_copy_generated": base,
                        "persons_in_files": gen["persons_total"],
                        "cbs_rows_in_files": gen["rows"],
                        "seconds_generating_national_files": gen["seconds"],
                        "share_adults_with_job_in_year": gen["share_adults_with_job_in_year"],
                        "share_adults_on_bijstand_in_year": gen["share_adults_on_bijstand_in_year"],
                        "ms_per_client": round(
                            1000 * result["seconds"] / result["linked_clients"], 4
                        ),
                    }
                )
                rows.append(result)
                print(
                    f"panel_national: cohort {cohort:,} x {n:,} persons: "
                    f"{result['seconds']} s, {result['peak_rss_mib']} MiB",
                    flush=True,
                )
                shutil.rmtree(nat_dir)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table with the two targets: 450k from 10M within 180 s and 4 GiB;
    time per client at the largest cohort within 1.5x that at 40k."""
    cell = {(r["cohort_target"], r["persons_other"]): r for r in rows}
    target = cell.get((TARGET_COHORT, TARGET_PERSONS))
    out: dict[str, Any] = {"table": rows}
    if target is None:
        out["target_450k_from_10M"] = {"met": None, "note": "not measured: cell not in the grid"}
    else:
        out["target_450k_from_10M"] = {
            "seconds": target["seconds"],
            "peak_rss_mib": target["peak_rss_mib"],
            "target_seconds": TARGET_SECONDS,
            "target_peak_rss_mib": TARGET_MIB,
            "met": target["seconds"] <= TARGET_SECONDS and target["peak_rss_mib"] <= TARGET_MIB,
        }
    largest = max((c for c, _ in cell), default=None)
    sizes = sorted({n for c, n in cell if c == largest and (LINEAR_FROM, n) in cell})
    if largest is None or largest <= LINEAR_FROM or not sizes:
        out["linear_in_cohort"] = {
            "met": None,
            "note": f"not measured: needs {LINEAR_FROM:,} and a larger cohort",
        }
    else:
        ratios = {
            str(n): round(
                cell[(largest, n)]["ms_per_client"] / cell[(LINEAR_FROM, n)]["ms_per_client"], 3
            )
            for n in sizes
        }
        out["linear_in_cohort"] = {
            "cohorts": [LINEAR_FROM, largest],
            "ratio_by_persons_other": ratios,
            "target_ratio": LINEAR_RATIO,
            "met": all(r <= LINEAR_RATIO for r in ratios.values()),
            "note": "time per client at the largest cohort over that at 40,000, for each "
            "file size; met when every ratio is within the target",
        }
    measured = [v["met"] for k, v in out.items() if k != "table" and v["met"] is not None]
    out["met"] = all(measured) if len(measured) == 2 else None
    return out


def bench_panel_national(
    root: Path, size: str = "full", *, cohorts: str | None = None, persons: str | None = None
) -> dict[str, Any]:
    """``make bench`` entry ``panel_national`` (always full-size Rotterdam,
    whatever SIZE is)."""
    c, n = grid(cohorts, persons)
    result = summarise(run_grid(root, c, n))
    result["note"] = (
        "one run per cell on a shared 2-core machine; peak RSS of the "
        "panel's own process, imports included"
    )
    return result

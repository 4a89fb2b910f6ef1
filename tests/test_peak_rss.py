"""The benchmarks' peak memory is each process's own: not the peak of the
process that started it, nor of an earlier benchmark in the same process."""

from __future__ import annotations

import json
import resource
import sys

import numpy as np
import pytest

from reintegration.pipeline import peak_rss

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="VmHWM and the inherited ru_maxrss are Linux's"
)

BIG_MIB = 512


def _ru_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _allocate_and_report(mib: int) -> float:
    block = np.ones(mib * 2**20 // 8)
    block[:] = 2.0
    del block
    return peak_rss.peak_mib()


@linux_only
def test_a_fresh_process_reports_its_own_peak_not_its_parents():
    block = np.ones(BIG_MIB * 2**20 // 8)
    block[:] = 2.0  # resident in this process
    del block
    child_peak = peak_rss.in_fresh_process(peak_rss.peak_mib)
    # the trap this avoids: ru_maxrss of the same kind of child carries this
    # process's high-water mark over the exec
    inherited = peak_rss.in_fresh_process(_ru_maxrss_mib)
    assert inherited >= BIG_MIB
    assert child_peak < BIG_MIB / 2


@linux_only
def test_the_peak_counts_what_the_process_itself_used():
    peak = peak_rss.in_fresh_process(_allocate_and_report, 300)
    assert 300 <= peak < 300 + 250


def test_make_bench_runs_each_benchmark_in_a_fresh_process(monkeypatch, tmp_path):
    from reintegration.pipeline import bench

    calls = []

    def fresh(fn, *args):
        calls.append((fn, args[0]))
        return {"seconds": 1.0, "met": True}

    monkeypatch.setattr(bench.peak_rss, "in_fresh_process", fresh)
    out = tmp_path / "bench.json"
    rc = bench.main(["--size", "small", "--only", "noop_make", "panel_national", "-o", str(out)])
    assert rc == 0
    assert calls == [(bench.run_one, "noop_make"), (bench.run_one, "panel_national")]
    assert set(json.loads(out.read_text())) == {"noop_make", "panel_national"}

"""Peak resident memory of the benchmarks, each measured in a process of its own.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not a process's own peak on Linux: a
process started by fork and exec keeps the largest resident size of the
process it was forked from (the kernel carries the old memory's high-water
mark over the exec into ``ru_maxrss``), and within one process it is the
peak since the start, so a benchmark run after a larger one reports the
larger one's peak. Measured here: a Python process started (fork and exec)
by a parent that had used 1.5 GiB reported ``ru_maxrss`` 1,552 MiB and
``VmHWM`` 10 MiB.

:func:`peak_mib` reads the high-water mark of the process's own memory
(``VmHWM`` in ``/proc/self/status``), which starts afresh in every new
process, forked or spawned; elsewhere it falls back on ``ru_maxrss`` (bytes
on macOS, KiB on other systems). :func:`in_fresh_process` runs a function in
a spawned interpreter, so that its time and peak memory are its own.
"""

from __future__ import annotations

import multiprocessing
import re
import resource
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")


def peak_mib() -> float:
    """The peak resident memory of this process in MiB: ``VmHWM`` where the
    system reports it, else ``ru_maxrss``."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        found = None
    if found:
        return int(found.group(1)) / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def in_fresh_process(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a newly spawned interpreter (``fn`` importable by
    name), its result returned; exceptions are raised here."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(fn, *args).result()

"""The make_all bench's milestones: when make printed the first step's start,
the last step's end, the audit, the published book and the PDF."""

from __future__ import annotations

import sys

from reintegration.pipeline import bench


def test_milestones_are_the_first_matching_line_and_the_last_step_end():
    lines = [
        (1.0, ".venv/bin/python -m reintegration data --size full --city utrecht"),
        (9.5, "OMP_NUM_THREADS=1 .venv/bin/python -m reintegration run-step --size full "
              "--kernel reintegration --city utrecht --step 00_city_profile"),
        (12.25, "utrecht/00_city_profile: 2.6 s, 2 outputs registered (pass 2), custody: x"),
        (30.0, "utrecht/09_validation: 11.8 s, 7 outputs registered (pass 7), custody: x"),
        (31.0, "audit: passed, 0 findings"),
        (70.0, "book: audited and published version abc (5 files, file list abc) at x"),
        (90.04, "PDF: 1284 pages, 75 chapters, 33.2 MB in 95.9 s"),
    ]
    assert bench.milestones(lines) == {
        "first_step_started": 9.5, "audit_done": 31.0, "book_published": 70.0,
        "pdf_done": 90.0, "last_step_done": 30.0,
    }
    assert bench.milestones(lines[:2]) == {
        "first_step_started": 9.5, "audit_done": None, "book_published": None,
        "pdf_done": None, "last_step_done": None,
    }


def test_run_stamped_keeps_every_line_in_order_with_rising_times():
    code = "import sys, time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.2)\n" \
           "print('err', file=sys.stderr)"
    rc, lines = bench._run_stamped([sys.executable, "-c", code], cwd=".", env=None)
    assert rc == 0 and [line for _, line in lines] == ["0", "1", "2", "err"]
    times = [t for t, _ in lines]
    assert times == sorted(times) and times[2] - times[0] >= 0.35

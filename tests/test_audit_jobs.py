"""The release audit in two processes gives the report of one process."""

from __future__ import annotations

import json

import pytest

from reintegration.disclosure import audit


@pytest.mark.pipeline
def test_the_audit_in_two_processes_reports_what_one_process_reports(small, built_book):
    records = {}
    try:
        for jobs in (1, 2):
            name = f"audit_jobs_{jobs}.test.json"
            report = audit.run("small", root=small.root, html=False, record=name, jobs=jobs)
            records[jobs] = json.loads((small.build_dir / name).read_text())
            assert report == records[jobs]
    finally:
        for jobs in (1, 2):
            (small.build_dir / f"audit_jobs_{jobs}.test.json").unlink(missing_ok=True)
    assert records[1] == records[2]
    one = records[1]
    assert one["passed"] and one["scanned"]["notebooks"] == 40
    assert one["scanned"]["release_files"] > 500 and len(one["protection"]) == 4
    assert all(p["bundle"] and p["cells"] > 0 for p in one["protection"].values())
    assert min(one["identifiers_checked"].values()) > 0

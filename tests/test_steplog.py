"""The one line the runner prints per step."""

from __future__ import annotations

import json

from reintegration.core.paths import Paths
from reintegration.core.steplog import step_line, step_times


def test_step_line_counts_the_registered_outputs_by_status(tmp_path, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_path / "build"))
    paths = Paths.for_size("small", tmp_path)
    reg = paths.city_build("utrecht") / "outputs" / "04_describe" / "register.json"
    reg.parent.mkdir(parents=True)
    outputs = [{"status": s} for s in ("pass", "review", "pass", "fail")]
    reg.write_text(json.dumps({"outputs": outputs}), encoding="utf-8")
    line = step_line(paths, "utrecht", "04_describe", 12.34, "sandboxed")
    assert line == (
        "utrecht/04_describe: 12.3 s, 4 outputs registered (fail 1, pass 2, review 1), "
        "custody: sandboxed"
    )
    assert step_line(paths, "utrecht", "05_feasibility", 1.0, None) == (
        "utrecht/05_feasibility: 1.0 s, 0 outputs registered (none)"
    )


def test_step_times_reads_back_every_step_line_of_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_path / "build"))
    paths = Paths.for_size("small", tmp_path)
    run = "\n".join([
        "OPENBLAS_NUM_THREADS=1 .venv/bin/python -m reintegration run-step --city den_haag",
        step_line(paths, "den_haag", "06_effects", 75.06, "sandboxed"),
        "den_haag/06_effects: progress 3 of 8 sub-studies",
        step_line(paths, "utrecht", "00_city_profile", 2.0, None),
        "book: audited and published version 0961 (512 files)",
    ])
    assert step_times(run) == {"den_haag/06_effects": 75.1, "utrecht/00_city_profile": 2.0}

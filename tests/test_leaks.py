"""A failed run leaks nothing, and two clean runs give the same notebook bytes.

One real step (the delivery check) runs under papermill on a delivery with
distinctive planted values (a name, a BSN, a birth date) whose birth dates
are all in the wrong format, so the step fails. No planted value may appear in
the error message, in the failed notebook or in any file the run wrote outside
the municipal domain. After the delivery is repaired, the step succeeds, the
failed notebook is gone, and a second clean run gives a byte-identical executed
notebook apart from the run time in the provenance cell.
"""

from __future__ import annotations

import re
import shutil
import stat

import pandas as pd
import pytest

from reintegration.core import custody
from reintegration.core.config import load_city
from reintegration.core.paths import Paths
from reintegration.intake import ingest
from reintegration.pipeline import runner
from reintegration.synth import generate_city

CITY = "utrecht"
STEP = "01_delivery_check"
PLANTED = {"first_name": "Zebulonia", "last_name": "Qwertyuiopsson", "bsn": "123456782"}
PLANTED_BIRTH = "11-11-1911"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from conftest import ROOT

    root = tmp_path_factory.mktemp("leaks")
    for folder in ("config", "notebooks"):
        shutil.copytree(ROOT / folder, root / folder)
    (root / "book").mkdir()
    for cfg in (root / "config" / "cities").glob("*.yml"):
        if cfg.stem != CITY:
            cfg.unlink()
    generate_city(CITY, "small", root=root)
    return root, Paths.for_size("small", root)


def _clients_file(paths: Paths):
    city = load_city(CITY, paths.root)
    path = ingest.export_path(city, "clients", paths.data_domain_dir("municipal", CITY))
    return city, path


def _plant(paths: Paths, *, iso_dates: bool) -> None:
    """Plant the distinctive values in row 1; write every birth date in ISO
    (the wrong format) when ``iso_dates``."""
    city, path = _clients_file(paths)
    ex = city["exports"]
    names = ingest.declared_columns(city, "clients")
    raw = path.read_bytes()
    df = pd.read_csv(
        path, sep=ex["delimiter"], dtype=str, keep_default_na=False, encoding=ex["encoding"]
    )
    for canon, value in PLANTED.items():
        df.loc[0, names[canon]] = value
    df.loc[0, names["birth_date"]] = PLANTED_BIRTH
    if iso_dates:
        col = df[names["birth_date"]]
        df[names["birth_date"]] = pd.to_datetime(col, format=ex["date_format"]).dt.strftime(
            "%Y-%m-%d"
        )
    term = "\r\n" if b"\r\n" in raw else "\n"
    text = df.to_csv(index=False, sep=ex["delimiter"], lineterminator=term)
    path.write_bytes(text.encode(ex["encoding"]))


def _needles() -> list[str]:
    return [*PLANTED.values(), PLANTED_BIRTH, "1911-11-11"]


def _written_outside_municipal(paths: Paths) -> list:
    files = []
    for top in (paths.build_dir, paths.root / "book"):
        for p in top.rglob("*"):
            if p.is_file() and "municipal" not in p.relative_to(paths.root).parts:
                files.append(p)
    return files


def test_a_failed_run_leaks_nothing_and_a_rerun_cleans_up(world, monkeypatch):
    root, paths = world
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    # run_step points the kernel at its root through the environment: restore it after
    monkeypatch.setenv("REINTEGRATION_ROOT", str(root))
    _plant(paths, iso_dates=True)
    with pytest.raises(runner.StepFailed) as info:
        runner.run_step(STEP, city=CITY, size="small", root=root)
    message = str(info.value)
    assert "ExportError" in message and "exports.date_format" in message, message
    failed = custody.failed_dir(paths, CITY, "municipality") / f"{STEP}.ipynb"
    assert failed.exists() and f"at {failed}" in message
    assert stat.S_IMODE(failed.stat().st_mode) == 0o600
    assert stat.S_IMODE(failed.parent.stat().st_mode) == 0o700
    texts = {"the error message": message, str(failed): failed.read_text(encoding="utf-8")}
    assert _leaks(paths, texts) == []
    assert not (paths.results_dir(CITY) / f"{STEP}.ipynb").exists()

    _plant(paths, iso_dates=False)  # the municipality redelivers in the declared format
    first = runner.run_step(STEP, city=CITY, size="small", root=root)
    assert not failed.exists(), "a successful run removes the failed notebook"
    assert not list(failed.parent.glob("*.ipynb"))
    one = first.read_bytes()
    second = runner.run_step(STEP, city=CITY, size="small", root=root).read_bytes()
    runtime = re.compile(rb"in [0-9]+\.[0-9] s\.")
    assert runtime.sub(b"", one) == runtime.sub(b"", second)
    assert len(runtime.findall(one)) == 1, "one documented run-time field"
    assert _leaks(paths, {}) == [], "nor does a successful run"


def _leaks(paths: Paths, texts: dict[str, str]) -> list[tuple[str, str]]:
    """(where, value) for every planted value in ``texts`` or in a file the
    runs wrote outside the municipal domain."""
    outside = _written_outside_municipal(paths)
    assert outside, "the run wrote its parameters and provenance outside the municipal domain"
    texts = dict(texts)
    for p in outside:
        texts[str(p)] = p.read_bytes().decode("utf-8", errors="replace")
    return [(where, n) for where, text in texts.items() for n in _needles() if n in text]

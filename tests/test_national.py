"""National-size CBS files and the panel's cohort-filtered reader.

The panel reads the CBS files filtered to the linked clients' keys (chunked
.sav reads, or a Parquet scan with the filter pushed down). These tests check
that the filtered read gives the same panel as reading whole files, frame
for frame, on a generated small city; that the national generator embeds the
city's persons (and copies of them under new keys) among other persons in
the proportions it states; and that the panel built from the national files
is the city's panel under the new keys. Times and memory are measured by
``make bench`` (``panel_national``), never here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest
from test_panel import linked_sources

from reintegration.linking import bsn
from reintegration.research import panel, panel_sources
from reintegration.synth import national

KEY = ["RINPERSOONS", "RINPERSOON"]
TABLES = tuple(panel_sources.SOURCE_TABLES.values())


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    cfg, src = linked_sources("utrecht", data)
    delivery = {t: getattr(src, t) for t in panel_sources.DELIVERY}
    return cfg, src, delivery, data / "research" / "cbs" / "utrecht"


@pytest.fixture(scope="module")
def nation(city, tmp_path_factory: pytest.TempPathFactory):
    _, _, delivery, cbs = city
    out = tmp_path_factory.mktemp("national")
    keys = panel_sources.cohort_keys(delivery["clients"])
    summary = national.write_national(
        cbs, out, persons=20_000, copies=2, extra_keys=keys, chunk_persons=7_000
    )
    return out, summary


def _frames(built: panel.Panel) -> dict[str, pd.DataFrame]:
    return {**built.frames, "accounting": built.accounting}


def test_filtered_sav_read_keeps_exactly_the_cohort_rows(city):
    _, src, delivery, cbs = city
    keys = panel_sources.cohort_keys(delivery["clients"])
    for table in TABLES:
        whole = panel_sources.read_sav_file(cbs / f"{table}.sav", table)
        got = panel_sources.read_cbs_file(cbs / f"{table}.sav", table, keys=keys, chunk_rows=97)
        want = whole[whole["RINPERSOON"].isin(set(keys))].reset_index(drop=True)
        assert len(want) < len(whole) or table == "BIJSTANDUITKERINGTAB", table
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_panel_from_the_filtered_reader_equals_the_whole_file_panel(city):
    cfg, src, delivery, cbs = city
    old = panel.build(src, cfg["study"])
    new_src = panel_sources.read_sources_from(delivery, cbs, chunk_rows=211)
    assert len(new_src.jobs) < len(src.jobs)
    new = panel.build(new_src, cfg["study"])
    assert len(old.persons) > 100
    for name, frame in _frames(old).items():
        pd.testing.assert_frame_equal(_frames(new)[name], frame, check_exact=True, obj=name)
    assert new.settings == old.settings


def test_parquet_reads_like_the_sav_file(city, tmp_path):
    _, _, delivery, cbs = city
    keys = panel_sources.cohort_keys(delivery["clients"])
    for table in TABLES:
        sav = panel_sources.read_sav_file(cbs / f"{table}.sav", table)
        path = tmp_path / f"{table}.parquet"
        schema = national.arrow_schema(table)
        full, _ = pyreadstat.read_sav(
            str(cbs / f"{table}.sav"), usecols=schema.names, dates_as_pandas_datetime=True
        )
        pq.write_table(
            pa.Table.from_pandas(full[schema.names], schema=schema, preserve_index=False),
            path,
            row_group_size=500,
        )
        got = panel_sources.read_cbs_file(path, table)
        pd.testing.assert_frame_equal(got, sav, check_exact=True, obj=table)
        part = panel_sources.read_cbs_file(path, table, keys=keys[:50])
        want = sav[sav["RINPERSOON"].isin(set(keys[:50]))].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, want, check_exact=True, obj=table)


def test_national_files_embed_the_copies_among_the_other_persons(city, nation):
    _, _, _, cbs = city
    out, summary = nation
    gba = pq.read_table(out / "GBAPERSOONTAB.parquet").to_pandas()
    keymap = pd.read_parquet(out / "keymap.parquet")
    m = summary["city_persons"]
    assert summary["persons_total"] == 20_000 + 2 * m
    assert len(keymap) == 2 * m and keymap["national"].is_unique
    for table in TABLES:
        meta = pq.ParquetFile(out / f"{table}.parquet")
        assert meta.schema_arrow.equals(national.arrow_schema(table)), table
        assert meta.metadata.num_rows == summary["rows"][table]
        keys = pq.read_table(out / f"{table}.parquet", columns=["RINPERSOON"]).column(0)
        keys = keys.to_numpy(zero_copy_only=False)
        assert (keys[1:] >= keys[:-1]).all(), f"{table}: not in key order"
        # every copy holds exactly the city's rows of the table
        city_rows = panel_sources.read_sav_file(cbs / f"{table}.sav", table)
        inside = pd.Index(keymap["national"]).get_indexer(keys) >= 0
        assert inside.sum() == 2 * len(city_rows), table
    # the embedded persons are spread over the key range, not in one block
    # (unregistered persons, RINPERSOONS "S", have no GBA row)
    slots = np.sort(pd.Index(gba["RINPERSOON"]).get_indexer(keymap["national"]))
    slots = slots[slots >= 0]
    assert len(slots) > 0.8 * len(keymap)
    assert slots.min() < len(gba) * 0.1 and slots.max() > len(gba) * 0.9
    ints = gba["RINPERSOON"].astype(np.int64).to_numpy()
    assert gba["RINPERSOON"].str.len().eq(9).all() and not bsn.passes_as_int(ints).any()
    assert gba["RINPERSOON"].is_unique
    # stated national proportions (module text), realised
    assert 0.60 <= summary["share_adults_with_job_in_year"] <= 0.72
    assert 0.015 <= summary["share_adults_on_bijstand_in_year"] <= 0.045


def test_national_files_are_deterministic(city, nation, tmp_path):
    _, _, delivery, cbs = city
    out, _ = nation
    keys = panel_sources.cohort_keys(delivery["clients"])
    national.write_national(
        cbs, tmp_path, persons=20_000, copies=2, extra_keys=keys, chunk_persons=7_000
    )
    for table in ("SPOLISBUS", "MEDICIJNTAB"):
        a = pq.read_table(out / f"{table}.parquet")
        b = pq.read_table(tmp_path / f"{table}.parquet")
        assert a.equals(b), table


def test_panel_from_national_files_is_the_city_panel_per_copy(city, nation):
    cfg, src, delivery, _ = city
    out, _ = nation
    keymap = pd.read_parquet(out / "keymap.parquet")
    old = panel.build(src, cfg["study"])
    src_nat = panel_sources.read_sources_from(national.replicate_delivery(delivery, keymap), out)
    nat = panel.build(src_nat, cfg["study"])
    assert len(nat.persons) == 2 * len(old.persons)
    back = pd.Series(keymap["RINPERSOON"].to_numpy(), index=keymap["national"].to_numpy())
    copy = pd.Series(keymap["copy"].to_numpy(), index=keymap["national"].to_numpy())
    for name in ("persons", "person_months", "episodes", "episodes_later"):
        frame = nat.frames[name]
        c = copy.reindex(frame["RINPERSOON"].astype(str).to_numpy()).to_numpy()
        for k in (0, 1):
            part = frame[c == k].copy()
            part["RINPERSOON"] = pd.array(
                back.reindex(part["RINPERSOON"].astype(str).to_numpy()).to_numpy(),
                dtype=frame["RINPERSOON"].dtype,
            )
            order = [*KEY, "month"] if name == "person_months" else KEY
            part = part.sort_values(order, kind="stable").reset_index(drop=True)
            want = old.frames[name].sort_values(order, kind="stable").reset_index(drop=True)
            pd.testing.assert_frame_equal(part, want, check_exact=True, obj=f"{name} copy {k}")


def test_duckdb_scan_equals_the_pyarrow_scan(nation, city):
    pytest.importorskip("duckdb")
    out, _ = nation
    _, _, delivery, _ = city
    keys = panel_sources.cohort_keys(delivery["clients"])
    path = out / "SPOLISBUS.parquet"
    a = panel_sources.read_cbs_file(path, "SPOLISBUS", keys=keys)
    b = panel_sources.read_cbs_file(path, "SPOLISBUS", keys=keys, engine="duckdb")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_unknown_engine_and_missing_file_name_the_choices(tmp_path, nation):
    out, _ = nation
    with pytest.raises(ValueError, match="pyarrow"):
        panel_sources.read_cbs_file(out / "SPOLISBUS.parquet", "SPOLISBUS", engine="polars")
    with pytest.raises(FileNotFoundError, match=r"SPOLISBUS\.parquet or SPOLISBUS\.sav"):
        panel_sources.cbs_file(tmp_path, "SPOLISBUS")


def test_bench_grid_copies_and_targets():
    from reintegration.pipeline import bench_scale as b

    assert b.grid("450000, 12000", "1e7") == ([12_000, 450_000], [10_000_000])
    with pytest.raises(ValueError, match="BENCH_PERSONS"):
        b.grid(None, "ten")
    assert b.copies_for(12_000) == (1, 12_000)
    assert b.copies_for(160_000) == (4, 40_000)
    assert b.copies_for(450_000) == (9, 50_000)

    def row(cohort, persons, seconds, mib):
        return {
            "cohort_target": cohort,
            "persons_other": persons,
            "seconds": seconds,
            "peak_rss_mib": mib,
            "linked_clients": cohort,
            "ms_per_client": 1000 * seconds / cohort,
        }

    ok = b.summarise([row(40_000, 10**7, 40.0, 900), row(450_000, 10**7, 170.0, 3900)])
    assert ok["target_450k_from_10M"]["met"] is True
    ratio = ok["linear_in_cohort"]["ratio_by_persons_other"]["10000000"]
    assert ratio == pytest.approx(170 / 450 / (40 / 40), rel=1e-3)
    assert ok["met"] is True
    slow = b.summarise([row(40_000, 10**7, 10.0, 900), row(450_000, 10**7, 190.0, 3900)])
    assert slow["target_450k_from_10M"]["met"] is False
    assert slow["linear_in_cohort"]["met"] is False  # 0.42 ms against 0.25 ms per client
    # every file size must meet it: linear at 10M, not at 1M
    mixed = b.summarise(
        [
            row(40_000, 10**7, 40.0, 900),
            row(450_000, 10**7, 170.0, 3900),
            row(40_000, 10**6, 4.0, 700),
            row(450_000, 10**6, 90.0, 3500),
        ]
    )
    assert mixed["linear_in_cohort"]["ratio_by_persons_other"]["1000000"] == pytest.approx(2.0)
    assert mixed["linear_in_cohort"]["met"] is False and mixed["met"] is False
    part = b.summarise([row(12_000, 10**6, 5.0, 400)])
    assert part["met"] is None and part["target_450k_from_10M"]["met"] is None

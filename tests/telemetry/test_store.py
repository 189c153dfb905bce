"""DuckDBStore: values, checkpoints committed with the data, queries, paging, retention,
tenant isolation, sealing and reopening. Real DuckDB and Parquet files throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from plantwire.telemetry.store import (
    DuckDBStore,
    MaintenancePolicy,
    PointBatch,
    Quality,
    StaleCheckpointError,
    StoreError,
    queries,
)
from tests.telemetry.conftest import DAY, SECOND, micros, seconds_of
from tests.telemetry.test_batch import MOMENT, SAMPLES

END = DAY + timedelta(days=3)


def _all_points(store: DuckDBStore, tenant: str = "acme") -> int:
    return int(store.export(tenant, 0, micros(END) * 2).num_rows)


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("sealed", [False, True], ids=["hot", "sealed"])
def test_every_value_type_and_quality_round_trips(store: DuckDBStore, sealed: bool) -> None:
    batch = PointBatch()
    for n, (value, _) in enumerate(SAMPLES):
        batch.add("acme", "press-1", f"m{n:02d}", DAY + timedelta(seconds=n), value, Quality(n % 3))
    store.append(batch)
    if sealed:
        assert store.seal(END) == len(SAMPLES)
    for n, (value, _) in enumerate(SAMPLES):
        page = store.raw("acme", "press-1", f"m{n:02d}", DAY, END)
        [point] = page.points
        assert point.value == value
        assert type(point.value) is type(value)
        assert point.quality == Quality(n % 3)
        assert point.ts == DAY + timedelta(seconds=n)
    latest = store.latest("acme", "press-1")
    assert [p.value for p in latest] == [value for value, _ in SAMPLES]


@pytest.mark.parametrize("seal_at", [None, 1, 2], ids=["hot", "first sealed", "both sealed"])
def test_latest_keeps_the_newest_point_whatever_the_arrival_order(
    store: DuckDBStore, seal_at: int | None
) -> None:
    """The newest point wins wherever it is: sealed (kept in `latest`) or still in hot."""
    first = PointBatch()
    first.add("acme", "press-1", "temp", DAY + timedelta(minutes=5), 5.0)
    first.add("acme", "press-1", "temp", DAY + timedelta(minutes=1), 1.0)
    store.append(first)
    if seal_at == 1:
        store.seal(END)
    late = PointBatch()
    late.add("acme", "press-1", "temp", DAY, 0.0)
    store.append(late)
    if seal_at == 2:
        store.seal(END)
    [point] = store.latest("acme", "press-1")
    assert (point.ts, point.value) == (DAY + timedelta(minutes=5), 5.0)
    assert store.latest("acme", "nobody") == []
    assert store.latest("nobody", "press-1") == []


@pytest.mark.parametrize("sealed", [False, True], ids=["in hot", "sealed"])
def test_of_points_sharing_a_timestamp_the_one_stored_last_is_latest(
    store: DuckDBStore, sealed: bool
) -> None:
    for value in (1.0, 2.0):
        batch = PointBatch()
        batch.add("acme", "press-1", "temp", DAY, value)
        store.append(batch)
    if sealed:
        store.seal(END)
    assert [p.value for p in store.latest("acme", "press-1")] == [2.0]
    batch = PointBatch()
    batch.add("acme", "press-1", "temp", DAY, 3.0)  # in hot, beside the sealed one
    store.append(batch)
    assert [p.value for p in store.latest("acme", "press-1")] == [3.0]


def test_activity_counts_each_devices_recent_points_and_its_newest(store: DuckDBStore) -> None:
    """Per device: the newest point of any metric (sealed or hot) and the points stamped at
    or after the time asked about; another tenant's are not there."""
    old = PointBatch()
    old.add("acme", "press-1", "temp", DAY, 1.0)
    old.add("acme", "press-2", "temp", DAY + timedelta(minutes=1), 1.0)
    store.append(old)
    store.seal(DAY + timedelta(hours=1))  # both sealed: only the latest table knows them
    recent = PointBatch()
    for n in range(5):
        recent.add("acme", "press-1", "temp", DAY + timedelta(hours=2, seconds=n), float(n))
    recent.add("acme", "press-1", "speed", DAY + timedelta(hours=2, seconds=9), 3.0)
    recent.add("acme", "press-3", "temp", DAY + timedelta(minutes=30), 1.0)  # before `since`
    recent.add("other", "press-1", "temp", DAY + timedelta(hours=2), 1.0)
    store.append(recent)
    activity = store.activity("acme", micros(DAY + timedelta(hours=2)))
    assert activity.last_seen == {
        "press-1": micros(DAY + timedelta(hours=2, seconds=9)),
        "press-2": micros(DAY + timedelta(minutes=1)),
        "press-3": micros(DAY + timedelta(minutes=30)),
    }
    assert activity.points == {"press-1": 6}
    assert store.activity("other", 0).points == {"press-1": 1}
    assert store.activity("nobody", 0).last_seen == {}


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_moves_with_the_data_and_survives_reopening(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "ts") as store:
        assert store.checkpoint("telemetry") == 0
        store.append(seconds_of("acme", "d", "m", DAY, 10), checkpoint=("telemetry", 1234))
        store.append(PointBatch(), checkpoint=("other", 7))
        assert store.checkpoint("telemetry") == 1234
    with DuckDBStore(tmp_path / "ts") as store:
        assert (store.checkpoint("telemetry"), store.checkpoint("other")) == (1234, 7)
        assert _all_points(store) == 10


def test_a_replayed_sequence_writes_nothing(store: DuckDBStore) -> None:
    store.append(seconds_of("acme", "d", "m", DAY, 10), checkpoint=("telemetry", 5))
    for replayed in (5, 4):
        with pytest.raises(StaleCheckpointError) as caught:
            store.append(seconds_of("acme", "d", "m", DAY, 10), checkpoint=("telemetry", replayed))
        assert (caught.value.given, caught.value.committed) == (replayed, 5)
    assert _all_points(store) == 10
    assert store.checkpoint("telemetry") == 5


class _FailingCheckpoint(DuckDBStore):
    """Fails between writing the points and writing the checkpoint, inside the transaction."""

    def _commit_checkpoint(self, cursor: duckdb.DuckDBPyConnection, name: str, seq: int) -> None:
        raise RuntimeError("power cut")


def test_a_failure_between_data_and_checkpoint_leaves_neither(tmp_path: Path) -> None:
    with _FailingCheckpoint(tmp_path / "ts") as store:
        batch = seconds_of("acme", "new-device", "m", DAY, 100)
        with pytest.raises(RuntimeError, match="power cut"):
            store.append(batch, checkpoint=("telemetry", 1))
        assert store.checkpoint("telemetry") == 0
        assert _all_points(store) == 0
        assert store.latest("acme", "new-device") == []
        store.append(batch)  # the store is still usable, and the series was not half-created
        assert _all_points(store) == 100
    with DuckDBStore(tmp_path / "ts") as store:
        assert store.checkpoint("telemetry") == 0
        assert _all_points(store) == 100


_WRITER = """
import sys
from pathlib import Path
from plantwire.telemetry.store import DuckDBStore, PointBatch
store = DuckDBStore(Path(sys.argv[1]))
seq = store.checkpoint("telemetry")
while True:
    seq += 1
    batch = PointBatch()
    batch.add_numbers("acme", "d", f"m{seq % 7}", range(seq * 1000, seq * 1000 + seq % 50 + 1),
                      [float(seq)] * (seq % 50 + 1))
    store.append(batch, checkpoint=("telemetry", seq))
    print(seq, flush=True)
"""


@pytest.mark.slow
def test_killed_mid_append_the_data_and_checkpoint_agree(tmp_path: Path) -> None:
    directory = tmp_path / "ts"
    for round_ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(directory)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        for _ in range(30 + 20 * round_):
            child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        with DuckDBStore(directory) as store:
            applied = store.checkpoint("telemetry")
            assert applied >= 30 + 20 * round_
            expected = sum(seq % 50 + 1 for seq in range(1, applied + 1))
            assert _all_points(store) == expected


# --- queries -------------------------------------------------------------------------------


def test_raw_pages_cover_every_point_once_across_hot_and_sealed(store: DuckDBStore) -> None:
    batch = PointBatch()
    for n in range(50):  # three points share each timestamp, across page and day boundaries
        ts = DAY + timedelta(hours=5 * (n // 3))
        batch.add("acme", "d", "m", ts, float(n), Quality(n % 3))
    store.append(batch)
    store.seal(DAY + timedelta(hours=36))  # two days sealed in part, the rest hot
    seen: list[tuple[datetime, object]] = []
    token = None
    pages = 0
    while True:
        page = store.raw("acme", "d", "m", DAY, DAY + timedelta(days=4), limit=4, cursor=token)
        seen.extend((p.ts, p.value) for p in page.points)
        pages += 1
        token = page.cursor
        if token is None:
            break
    assert pages == 13
    expected = sorted((DAY + timedelta(hours=5 * (n // 3)), float(n)) for n in range(50))
    assert sorted(seen) == expected
    assert [ts for ts, _ in seen] == sorted(ts for ts, _ in seen)
    start, end = DAY + timedelta(hours=5), DAY + timedelta(hours=15)
    assert len(store.raw("acme", "d", "m", start, end).points) == 6
    with pytest.raises(ValueError, match="paging cursor"):
        store.raw("acme", "d", "m", DAY, END, cursor="garbage")
    with pytest.raises(ValueError, match="limit"):
        store.raw("acme", "d", "m", DAY, END, limit=0)


def test_aggregates_leave_out_bad_and_non_numeric_points(store: DuckDBStore) -> None:
    batch = PointBatch()
    batch.add("acme", "d", "m", DAY, 1.0)
    batch.add("acme", "d", "m", DAY + timedelta(seconds=1), 3)
    batch.add("acme", "d", "m", DAY + timedelta(seconds=2), True, Quality.UNCERTAIN)
    batch.add("acme", "d", "m", DAY + timedelta(seconds=3), 100.0, Quality.BAD)
    batch.add("acme", "d", "m", DAY + timedelta(seconds=4), "text")
    store.append(batch)
    [bucket] = store.aggregate("acme", "d", "m", DAY, END, timedelta(hours=1))
    assert (bucket.start, bucket.count, bucket.sum, bucket.min, bucket.max) == (DAY, 3, 5.0, 1, 3)
    assert (bucket.first, bucket.last, bucket.avg) == (1.0, 1.0, 5.0 / 3)
    assert store.aggregate("acme", "d", "nothing", DAY, END, timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="interval"):
        store.aggregate("acme", "d", "m", DAY, END, timedelta(0))


def test_export_is_arrow_with_names(store: DuckDBStore) -> None:
    batch = PointBatch()
    batch.add("acme", "b-dev", "m", DAY, 1.5, Quality.UNCERTAIN)
    batch.add("acme", "a-dev", "s", DAY + timedelta(seconds=1), "on")
    store.append(batch)
    table = store.export("acme", DAY, END)
    assert table.column_names[:5] == ["device", "metric", "ts", "quality", "kind"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    rows = table.select(["device", "metric", "quality", "kind", "v_num", "v_text"]).to_pylist()
    assert rows == [
        {"device": "a-dev", "metric": "s", "quality": "good", "kind": "string", "v_num": None,
         "v_text": "on"},
        {"device": "b-dev", "metric": "m", "quality": "uncertain", "kind": "float", "v_num": 1.5,
         "v_text": None},
    ]  # fmt: skip
    assert store.export("acme", DAY, END, device="a-dev").num_rows == 1
    assert store.export("nobody", DAY, END).num_rows == 0


@pytest.mark.parametrize("sealed", [False, True], ids=["hot", "sealed"])
def test_export_of_one_metric_and_at_most_some_rows(store: DuckDBStore, sealed: bool) -> None:
    for metric in ("a", "b"):
        store.append(seconds_of("acme", "press-1", metric, DAY, 50))
    store.append(seconds_of("acme", "press-2", "a", DAY, 50))
    if sealed:
        store.seal(END)
    one = store.export("acme", DAY, END, device="press-1", metric="a")
    assert set(one.column("metric").to_pylist()) == {"a"}
    assert one.column("v_num").to_pylist() == [float(n) for n in range(50)]
    assert store.export("acme", DAY, END, metric="a").num_rows == 100  # both devices
    first = store.export("acme", DAY, END, device="press-1", limit=70)
    assert first.num_rows == 70
    assert first.column("metric").to_pylist() == ["a"] * 50 + ["b"] * 20  # the first 70 in order
    assert store.export("acme", DAY, END, device="press-1", metric="zz").num_rows == 0


# --- tenants -------------------------------------------------------------------------------


def test_no_query_sees_another_tenants_points(store: DuckDBStore) -> None:
    for tenant, value in (("acme", 1.0), ("globex", 2.0)):
        batch = PointBatch()
        for n in range(120):
            batch.add(tenant, "press-1", "temp", DAY + timedelta(minutes=n), value)
        store.append(batch)
    store.seal(DAY + timedelta(hours=1))
    for tenant, value in (("acme", 1.0), ("globex", 2.0)):
        assert {p.value for p in store.raw(tenant, "press-1", "temp", DAY, END).points} == {value}
        assert [p.value for p in store.latest(tenant, "press-1")] == [value]
        for rollups in (True, False):
            buckets = store.aggregate(
                tenant, "press-1", "temp", DAY, END, timedelta(hours=1), use_rollups=rollups
            )
            assert {(b.min, b.max, b.count) for b in buckets} == {(value, value, 60)}
        assert set(store.export(tenant, DAY, END).column("v_num").to_pylist()) == {value}
    assert store.drop_before("acme", END) == 120
    assert _all_points(store, "acme") == 0
    assert _all_points(store, "globex") == 120
    assert store.disk_usage("globex").sealed_files == 1
    assert store.disk_usage("acme").sealed_files == 0


# --- sealing, retention, disk --------------------------------------------------------------


def _sealed_files(store: DuckDBStore) -> list[Path]:
    return sorted((store.directory / "sealed").rglob("*.parquet"))


def _tenant_files(store: DuckDBStore, folder: str) -> list[Path]:
    """Sealed files of one tenant (its folder is ``t<number>``), oldest day first."""
    root = store.directory / "sealed"
    return [p for p in _sealed_files(store) if p.relative_to(root).parts[0] == folder]


def test_retention_unlinks_whole_days_and_gives_the_disk_back(store: DuckDBStore) -> None:
    for day in range(3):
        store.append(seconds_of("acme", "d", "m", DAY + timedelta(days=day), 20_000))
    store.append(seconds_of("acme", "e", "m", DAY, 500))
    store.seal(END)
    files = _sealed_files(store)
    assert len(files) == 3
    before = store.disk_usage()
    assert before.sealed_bytes == sum(path.stat().st_size for path in files)

    dropped = store.drop_before("acme", DAY + timedelta(days=1, hours=7))  # whole days only
    assert dropped == 20_500
    assert not files[0].exists()
    assert not files[0].parent.exists()
    after = store.disk_usage()
    assert after.sealed_files == 2
    assert after.sealed_bytes < before.sealed_bytes * 0.7
    assert sum(path.stat().st_size for path in _sealed_files(store)) == after.sealed_bytes
    assert store.raw("acme", "d", "m", DAY, END, limit=1).points[0].ts == DAY + timedelta(days=1)


def test_device_retention_rewrites_the_files_without_that_device(store: DuckDBStore) -> None:
    store.append(seconds_of("acme", "keep", "m", DAY, 1000))
    store.append(seconds_of("acme", "gone", "m", DAY, 3000))
    store.append(seconds_of("acme", "gone", "m", DAY + timedelta(days=2), 10))
    store.seal(END)
    [old] = [p for p in _sealed_files(store) if DAY.date().isoformat() in str(p)]
    size = old.stat().st_size
    assert store.drop_before("acme", DAY + timedelta(days=1), device="gone") == 3000
    assert not old.exists()
    [new] = [p for p in _sealed_files(store) if DAY.date().isoformat() in str(p)]
    assert new.stat().st_size < size
    assert _all_points(store) == 1010
    assert len(store.raw("acme", "keep", "m", DAY, END, limit=5000).points) == 1000
    assert (
        store.aggregate("acme", "gone", "m", DAY, DAY + timedelta(days=1), timedelta(hours=1)) == []
    )
    assert [p.device for p in store.latest("acme", "gone")] == ["gone"]  # its newest point is kept
    assert store.drop_before("acme", END, device="never-seen") == 0
    assert store.drop_before("nobody", END) == 0


def test_tenant_retention_keeps_the_devices_with_a_retention_of_their_own(
    store: DuckDBStore,
) -> None:
    store.append(seconds_of("acme", "follows", "m", DAY, 30_000))
    store.append(seconds_of("acme", "own", "m", DAY, 10_000))
    store.append(seconds_of("acme", "follows", "m", DAY + timedelta(days=1), 20_000))
    store.append(seconds_of("globex", "follows", "m", DAY, 500))
    store.seal(END)
    shared, alone = _tenant_files(store, "t1")  # acme's two days
    before = store.disk_usage("acme").sealed_bytes

    dropped = store.drop_before("acme", DAY + timedelta(days=2), keep={"own", "never-seen"})
    assert dropped == 50_000
    assert not shared.exists()  # rewritten with "own" alone
    assert not alone.exists()  # held nothing that stays: unlinked whole
    [rewritten] = _tenant_files(store, "t1")
    assert store.disk_usage("acme").sealed_bytes == rewritten.stat().st_size < before / 2
    assert len(store.raw("acme", "own", "m", DAY, END, limit=10_000).points) == 10_000
    assert store.raw("acme", "follows", "m", DAY, END).points == []
    assert _all_points(store, "globex") == 500

    # Applied again, nothing is left to drop and nothing is rewritten.
    assert store.drop_before("acme", DAY + timedelta(days=2), keep={"own"}) == 0
    assert rewritten.exists()
    with pytest.raises(ValueError, match="keep"):
        store.drop_before("acme", END, "own", keep={"follows"})


def test_a_delete_does_not_shrink_the_database_file_so_old_points_leave_in_files(
    tmp_path: Path,
) -> None:
    """Why sealed points are files: DuckDB reuses freed blocks but never returns them."""
    path = tmp_path / "plain.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE t AS SELECT random() AS x FROM range(2000000)")
        db.execute("CHECKPOINT")
        full = path.stat().st_size
        db.execute("DELETE FROM t")
        db.execute("CHECKPOINT")
        assert path.stat().st_size >= full


def test_a_crash_mid_seal_leaves_no_orphan_file(store: DuckDBStore, tmp_path: Path) -> None:
    store.append(seconds_of("acme", "d", "m", DAY, 100))
    orphan = store.directory / "sealed" / "t1" / "2026-11-22" / "99.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash between rename and commit")
    (orphan.parent / "100.tmp").write_bytes(b"scratch")
    store.close()
    with DuckDBStore(store.directory) as reopened:
        assert not orphan.exists()
        assert not (orphan.parent / "100.tmp").exists()
        assert _all_points(reopened) == 100


def test_a_failed_seal_removes_the_files_it_wrote(store: DuckDBStore) -> None:
    """The second tenant's file cannot be written (a file stands where its folder goes): the
    seal rolls back, and the first tenant's file, already renamed into place, is removed."""
    store.append(seconds_of("acme", "d", "m", DAY, 100))
    store.append(seconds_of("globex", "d", "m", DAY, 100))

    (store.directory / "sealed" / "t2").mkdir()
    (store.directory / "sealed" / "t2" / "2026-11-22").write_text("a file where a folder goes")
    with pytest.raises((OSError, duckdb.Error)):
        store.seal(END)
    (store.directory / "sealed" / "t2" / "2026-11-22").unlink()
    assert _sealed_files(store) == []
    assert _all_points(store) == 100
    assert store.seal(END) == 200


def test_maintain_seals_by_size_and_age_and_merges_closed_days(tmp_path: Path) -> None:
    policy = MaintenancePolicy(seal_rows=1000, seal_age=timedelta(hours=1), max_files=3)
    with DuckDBStore(tmp_path / "ts", policy) as store:
        now = DAY + timedelta(hours=2)
        store.append(seconds_of("acme", "d", "m", DAY, 500))
        store.maintain(DAY + timedelta(minutes=30))  # 500 rows, 30 minutes old: stays hot
        assert store.disk_usage().sealed_files == 0
        store.maintain(now)  # older than an hour: sealed
        assert store.disk_usage().sealed_files == 1
        files = []
        for n in range(3):
            start = DAY + timedelta(hours=3 + n)
            store.append(seconds_of("acme", "d", "m", start, 1000))
            store.maintain(start + timedelta(minutes=20))  # 1000 rows: sealed at once
            files.append(store.disk_usage().sealed_files)
        assert files == [2, 1, 2]  # the third file made max_files: merged into one
        store.append(seconds_of("acme", "d", "m", DAY + timedelta(hours=9), 10))
        store.maintain(DAY + timedelta(days=1, hours=1))  # the day is closed: one file
        usage = store.disk_usage()
        assert usage.sealed_files == 1
        assert usage.total_bytes > usage.sealed_bytes
        assert _all_points(store) == 3510


def test_latest_holds_one_row_per_series_however_often_it_moves(store: DuckDBStore) -> None:
    """Appends leave `latest` alone; each seal moves it to the newest sealed point."""
    for minute in range(5):
        batch = PointBatch()
        for device in ("press-1", "press-2"):
            for metric in ("temp", "rpm"):
                batch.add("acme", device, metric, DAY + timedelta(minutes=minute), float(minute))
        store.append(batch)
        if minute % 2:
            store.seal(DAY + timedelta(minutes=minute))  # seals up to the minute before
        assert {(p.metric, p.value) for p in store.latest("acme", "press-2")} == {
            ("temp", float(minute)),
            ("rpm", float(minute)),
        }
    with store._snapshot() as cursor:
        rows = cursor.execute(
            "SELECT series, count(*), max(v_num) FROM latest GROUP BY ALL"
        ).fetchall()
    assert sorted(count for _, count, _ in rows) == [1, 1, 1, 1]
    assert {value for _, _, value in rows} == {2.0}  # the last seal took minutes 0-2


@pytest.mark.parametrize("old_format", [1, 2])
def test_an_older_store_is_migrated_on_opening(tmp_path: Path, old_format: int) -> None:
    """Format 1 kept `latest` under a primary key; format 2 has none (cheaper upserts) and
    updated it on every append; format 3 keeps there the newest sealed point. An old store
    opens with its latest values (here, the old `latest` row of a point already gone from
    hot), and they move on as before."""
    with DuckDBStore(tmp_path / "ts") as store:
        batch = PointBatch()
        batch.add("acme", "press-1", "temp", DAY, 1.0)
        store.append(batch)
    with duckdb.connect(str(tmp_path / "ts" / "telemetry.duckdb")) as db:  # as it was left
        db.execute("INSERT INTO latest SELECT * FROM hot; DELETE FROM hot")
        if old_format == 1:
            db.execute(
                "CREATE TABLE old AS SELECT * FROM latest; DROP TABLE latest;"
                " CREATE TABLE latest AS SELECT * FROM old WHERE false;"
                " ALTER TABLE latest ADD PRIMARY KEY (series);"
                " INSERT INTO latest SELECT * FROM old; DROP TABLE old"
            )
        db.execute("UPDATE store_format SET format = ?", [old_format])
    with DuckDBStore(tmp_path / "ts") as store:
        [point] = store.latest("acme", "press-1")
        assert point.value == 1.0
        batch = PointBatch()
        batch.add("acme", "press-1", "temp", DAY + timedelta(seconds=1), 2.0)
        store.append(batch)
        [point] = store.latest("acme", "press-1")
        assert point.value == 2.0
        store.seal(END)
        [point] = store.latest("acme", "press-1")
        assert point.value == 2.0
    with duckdb.connect(str(tmp_path / "ts" / "telemetry.duckdb")) as db:
        assert db.execute("SELECT format FROM store_format").fetchall() == [(3,)]


def test_a_store_of_another_format_is_refused(tmp_path: Path) -> None:
    DuckDBStore(tmp_path / "ts").close()
    with duckdb.connect(str(tmp_path / "ts" / "telemetry.duckdb")) as db:
        db.execute("UPDATE store_format SET format = 99")
    with pytest.raises(StoreError, match="format 99"):
        DuckDBStore(tmp_path / "ts")


# --- concurrency ---------------------------------------------------------------------------


def test_reads_see_each_point_once_while_seals_run(store: DuckDBStore) -> None:
    for hour in range(24):
        store.append(seconds_of("acme", "d", "m", DAY + timedelta(hours=hour), 600))
    errors: list[BaseException] = []
    done = threading.Event()

    def seal_hour_by_hour() -> None:
        try:
            for hour in range(1, 25):
                store.seal(DAY + timedelta(hours=hour))
                if hour % 6 == 0:
                    store.compact("acme", DAY.date())
        except BaseException as error:  # handed to the test thread
            errors.append(error)
        finally:
            done.set()

    sealer = threading.Thread(target=seal_hour_by_hour)
    sealer.start()
    counts = []
    while not done.is_set():
        [bucket] = store.aggregate(
            "acme", "d", "m", DAY, DAY + timedelta(days=1), timedelta(days=1), use_rollups=False
        )
        counts.append(bucket.count)
        counts.append(_all_points(store))
    sealer.join()
    assert not errors
    assert set(counts) == {24 * 600}
    assert store.disk_usage().sealed_files == 1


def test_a_query_racing_a_merge_runs_again(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge that commits and unlinks the old files after a query read the catalogue but
    before it opened them: the query fails to open a file and runs again at a new snapshot."""
    for hour in range(2):
        store.append(seconds_of("acme", "d", "m", DAY + timedelta(hours=hour), 3600))
        store.seal(DAY + timedelta(hours=hour + 1))
    listed = queries._sealed_paths
    lists: list[list[str]] = []

    def listed_then_merged(cursor: duckdb.DuckDBPyConnection, *args: int) -> list[str]:
        paths = listed(cursor, *args)
        lists.append(paths)
        if len(lists) == 1:
            merger = threading.Thread(target=store.compact, args=("acme", DAY.date()))
            merger.start()
            merger.join()
        return paths

    monkeypatch.setattr(queries, "_sealed_paths", listed_then_merged)
    [bucket] = store.aggregate("acme", "d", "m", DAY, END, timedelta(days=1), use_rollups=False)
    assert bucket.count == 7200
    assert len(lists) == 2
    assert len(lists[0]) == 2
    assert len(lists[1]) == 1


def test_appends_continue_while_a_seal_runs(store: DuckDBStore) -> None:
    store.append(seconds_of("acme", "d", "m", DAY, 50_000))
    sealer = threading.Thread(target=store.seal, args=(DAY + timedelta(days=1),))
    sealer.start()
    for n in range(20):
        store.append(seconds_of("acme", "d", "late", DAY + timedelta(hours=n), 100))
    sealer.join()
    store.seal(END)
    assert _all_points(store) == 52_000


def test_retention_and_appends_run_at_once(store: DuckDBStore) -> None:
    """Retention deletes old latest values and hot points while appends go on. Neither
    fails."""
    store.append(seconds_of("acme", "d", "m", DAY, 10))
    errors: list[BaseException] = []

    def drop_repeatedly() -> None:
        try:
            for n in range(20):
                store.drop_before("acme", DAY + timedelta(days=1 + n))
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    dropper = threading.Thread(target=drop_repeatedly)
    dropper.start()
    for n in range(60):
        store.append(seconds_of("acme", "d", "m", DAY + timedelta(hours=n), 10))
    dropper.join()
    assert not errors


def test_naive_datetimes_are_utc(store: DuckDBStore) -> None:
    store.append(seconds_of("acme", "d", "m", DAY, 10))
    naive = datetime(2026, 11, 22, 0, 0, 5)
    assert len(store.raw("acme", "d", "m", naive, END).points) == 5
    assert store.raw("acme", "d", "m", micros(DAY) + 5 * SECOND, END).points[0].ts == naive.replace(
        tzinfo=UTC
    )
    assert MOMENT.tzinfo is UTC


def test_duckdb_memory_is_bounded_and_a_big_seal_spills_into_the_store_folder(
    tmp_path: Path,
) -> None:
    """A seal whose sort needs more than the memory limit spills to the store folder instead of
    failing (DuckDB's own default would be 80 % of the machine's memory)."""
    folder = tmp_path / "ts"
    with DuckDBStore(folder, memory_limit=32 << 20) as store:
        limit, spill = store._read(
            lambda db: db.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
            ).fetchone()
        ) or ("", "")
        assert (limit, spill) == ("32.0 MiB", str(folder / "telemetry.duckdb.tmp"))
        for device in range(40):
            store.append(seconds_of("acme", f"d{device}", "m", DAY, 50_000))
        assert store.seal(END) == 2_000_000
        (sealed,) = store._read(
            lambda db: db.execute("SELECT sum(rows) FROM sealed").fetchone()
        ) or (0,)
        assert sealed == 2_000_000
        assert len(store.raw("acme", "d7", "m", DAY, END, limit=60_000).points) == 50_000
    with DuckDBStore(folder, memory_limit=None) as store:
        (limit,) = store._read(
            lambda db: db.execute("SELECT current_setting('memory_limit')").fetchone()
        ) or ("",)
        assert limit != "32.0 MiB"

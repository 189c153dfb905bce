"""DuckDBStore.maintain seals a backlog in chunks of at most about ``seal_rows`` points, each its
own transaction, oldest first: what is left is under the policy's thresholds, every point is
found exactly once, rollups agree with the points, many points sharing one timestamp do not
stop it, and a chunk that fails leaves the chunks before it committed. Real DuckDB and Parquet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plantwire.telemetry.store import DuckDBStore, MaintenancePolicy, PointBatch, sealing
from plantwire.telemetry.store.model import from_micros
from tests.telemetry.conftest import DAY, SECOND, micros

SEAL_ROWS = 1000
POLICY = MaintenancePolicy(
    seal_rows=SEAL_ROWS,
    seal_age=timedelta(hours=1),
    grace=timedelta(minutes=5),
    max_files=10**6,  # no merging, unless a test asks for it: each chunk's files stay apart
)
START = DAY + timedelta(hours=23)  # the backlog crosses midnight: two tenant-days
SERIES = [("acme", "d0", "m"), ("acme", "d1", "m"), ("globex", "g", "m")]
Key = tuple[str, str, str]
Points = dict[Key, list[tuple[int, float]]]


class _RecordingStore(DuckDBStore):
    """Records how many points each seal (one transaction) moved."""

    def __init__(self, directory: Path, policy: MaintenancePolicy) -> None:
        super().__init__(directory, policy)
        self.seals: list[int] = []

    def seal(self, before: datetime | int) -> int:
        moved = super().seal(before)
        self.seals.append(moved)
        return moved


def _backlog(seconds: int) -> tuple[list[PointBatch], Points]:
    """A second's point of every series for ``seconds`` from START, in batches of a minute in
    time order, but every 97th point of d1 comes late, in the last batch. Values are whole
    numbers, so sums compare exactly."""
    expected: Points = defaultdict(list)
    batches, late = [], PointBatch()
    for minute in range(0, seconds, 60):
        batch = PointBatch()
        for second in range(minute, min(seconds, minute + 60)):
            ts = micros(START) + second * SECOND
            for n, key in enumerate(SERIES):
                value = float(second * 3 + n)
                expected[key].append((ts, value))
                (late if key[1] == "d1" and second % 97 == 0 else batch).add(*key, ts, value)
        batches.append(batch)
    return [*batches, late], expected


def _hot(store: DuckDBStore) -> tuple[int, int]:
    """(points in the hot table, the oldest one's timestamp)."""
    rows, oldest = store._read(
        lambda db: db.execute("SELECT count(*), coalesce(epoch_us(min(ts)), 0) FROM hot").fetchone()
    ) or (0, 0)
    return int(rows), int(oldest)


def _sealed_rows(store: DuckDBStore, day: str = "") -> list[int]:
    """Points in each sealed file (of ``day`` if given), oldest file first."""
    rows = store._read(
        lambda db: db.execute(
            "SELECT rows FROM sealed WHERE ? = '' OR day = CAST(? AS DATE) ORDER BY id", [day, day]
        ).fetchall()
    )
    return [int(count) for (count,) in rows]


def _buckets(points: list[tuple[int, float]], width: int) -> list[tuple[float, ...]]:
    """(start, count, sum, min, max, first, last) per bucket of ``width`` µs, in Python."""
    grouped: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for ts, value in points:
        grouped[ts - ts % width].append((ts, value))
    result: list[tuple[float, ...]] = []
    for start, members in sorted(grouped.items()):
        values = [value for _, value in members]
        first, last = min(members)[1], max(members)[1]
        result.append((start, len(values), sum(values), min(values), max(values), first, last))
    return result


def _assert_each_point_once(store: DuckDBStore, expected: Points) -> None:
    """Raw pages, exports and aggregates (from rollups and from raw points) find every point
    exactly once."""
    span = (DAY, DAY + timedelta(days=3))
    total = sum(len(points) for points in expected.values())
    exported = sum(store.export(tenant, *span).num_rows for tenant in {"acme", "globex"})
    assert exported == total
    for key, points in expected.items():
        seen: list[tuple[int, Any]] = []
        token = None
        while True:
            page = store.raw(*key, *span, limit=1500, cursor=token)
            seen += [(micros(p.ts), p.value) for p in page.points]
            if (token := page.cursor) is None:
                break
        assert sorted(seen) == sorted(points)
        for width in (timedelta(hours=1), timedelta(minutes=1)):
            want = _buckets(points, width // timedelta(microseconds=1))
            for use_rollups in (True, False):
                got = [
                    (micros(b.start), b.count, b.sum, b.min, b.max, b.first, b.last)
                    for b in store.aggregate(*key, *span, width, use_rollups=use_rollups)
                ]
                assert got == want, (key, width, use_rollups)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Callable[[MaintenancePolicy], _RecordingStore]]:
    opened: list[DuckDBStore] = []

    def open_store(policy: MaintenancePolicy) -> _RecordingStore:
        store = _RecordingStore(tmp_path / "telemetry", policy)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_a_backlog_is_sealed_in_chunks_until_under_the_thresholds(
    recording: Callable[[MaintenancePolicy], _RecordingStore],
) -> None:
    store = recording(POLICY)
    batches, expected = _backlog(4000)  # 12,000 points, 12 times seal_rows
    for batch in batches:
        store.append(batch)
    newest = max(ts for points in expected.values() for ts, _ in points)
    now = newest + 2 * 60 * SECOND
    store.maintain(from_micros(now))

    assert len(store.seals) >= 11
    assert max(store.seals) <= SEAL_ROWS
    open_day = _sealed_rows(store, "2026-11-23")  # the closed day's files are merged
    assert len(open_day) > 2
    assert max(open_day) <= SEAL_ROWS
    rows, oldest = _hot(store)
    assert rows < SEAL_ROWS
    assert oldest >= now - 3600 * SECOND
    assert rows + sum(store.seals) == 12_000
    _assert_each_point_once(store, expected)

    # Everything but the grace period sealed once the rest has aged, still in chunks.
    store.maintain(from_micros(now + 3600 * SECOND))
    assert _hot(store)[0] == 0
    assert max(store.seals) <= SEAL_ROWS
    assert sum(store.seals) == 12_000
    _assert_each_point_once(store, expected)


def test_a_late_point_of_a_sealed_day_is_sealed_into_a_new_file_then_merged(
    recording: Callable[[MaintenancePolicy], _RecordingStore],
) -> None:
    store = recording(MaintenancePolicy(seal_rows=SEAL_ROWS, max_files=8))
    batches, expected = _backlog(4000)
    for batch in batches:
        store.append(batch)
    later = START + timedelta(hours=3)
    store.maintain(later)  # the first day is closed: its chunks' files merged into one
    first_day = [p for p in (store.directory / "sealed").rglob("*.parquet") if "11-22" in str(p)]
    assert len(first_day) == 2  # one per tenant

    late = PointBatch()
    ts = micros(START) + 1800 * SECOND + SECOND // 2  # between two points of a sealed day
    late.add("acme", "d0", "m", ts, -1.0)
    store.append(late)
    expected[("acme", "d0", "m")].append((ts, -1.0))
    seals = len(store.seals)
    store.maintain(later + timedelta(hours=2))  # sealed alone (its age), then merged
    assert store.seals[seals:] == [1]
    assert len(list((store.directory / "sealed" / "t1" / "2026-11-22").iterdir())) == 1
    assert _hot(store)[0] == 0
    _assert_each_point_once(store, expected)


def test_many_points_at_one_timestamp_are_sealed_together(
    recording: Callable[[MaintenancePolicy], _RecordingStore],
) -> None:
    """500 points at one timestamp, then 2,500 sharing the next: the first chunk cuts before
    the crowd, the second takes all of it (a seal cuts between timestamps), then the rest.
    A series' points at one timestamp share their value, so first and last are defined."""
    store = recording(POLICY)
    first, crowded = micros(START), micros(START) + SECOND
    expected: Points = defaultdict(list)
    batch = PointBatch()
    for n in range(3100):
        ts = first if n < 500 else crowded if n < 3000 else crowded + (n - 2999) * SECOND
        key = ("acme", f"d{n % 50}", "m")
        value = float((ts - first) // SECOND * 100 + n % 50)
        batch.add(*key, ts, value)
        expected[key].append((ts, value))
    store.append(batch)
    store.maintain(START + timedelta(hours=2))
    assert store.seals == [500, 2500, 100]
    assert _hot(store)[0] == 0
    _assert_each_point_once(store, expected)


def test_a_failed_chunk_leaves_the_chunks_before_it_committed(
    recording: Callable[[MaintenancePolicy], _RecordingStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = recording(POLICY)
    batches, expected = _backlog(4000)
    for batch in batches:
        store.append(batch)
    real_seal = sealing.seal
    calls = []

    def third_fails(*args: object, **kwargs: object) -> int:
        calls.append(real_seal(*args, **kwargs))  # type: ignore[arg-type]
        if len(calls) == 3:  # its files written, its points deleted, not yet committed
            raise OSError("disk full")
        return calls[-1]

    monkeypatch.setattr(sealing, "seal", third_fails)
    later = START + timedelta(hours=3)
    with pytest.raises(OSError, match="disk full"):
        store.maintain(later)
    assert store.seals == calls[:2]
    assert sum(_sealed_rows(store)) == sum(calls[:2]) == 12_000 - _hot(store)[0]
    catalogued = store._read(lambda db: db.execute("SELECT path FROM sealed").fetchall())
    on_disk = sorted((store.directory / "sealed").rglob("*"))
    files = [p.relative_to(store.directory / "sealed").as_posix() for p in on_disk if p.is_file()]
    assert sorted(files) == sorted(path for (path,) in catalogued)
    _assert_each_point_once(store, expected)

    monkeypatch.setattr(sealing, "seal", real_seal)
    store.maintain(later)
    assert _hot(store)[0] == 0
    assert sum(store.seals) == 12_000
    _assert_each_point_once(store, expected)

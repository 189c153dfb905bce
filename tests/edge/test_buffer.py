"""The store-and-forward buffer keeps points in order across restarts and kills, within its
bounds, and counts what the bounds drop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.edge.buffer import BufferedPoint, PointBuffer, PointValue

DOUBLE, BOOLEAN, STRING, UINT64, INT64, BYTES, DOUBLE_ARRAY = 10, 11, 12, 8, 4, 17, 23


def _points(count: int, start: int = 0, device: str = "press-1") -> list[BufferedPoint]:
    return [
        BufferedPoint(device, "Temperature", DOUBLE, 1_764_000_000_000 + n, n * 0.5)
        for n in range(start, start + count)
    ]


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.lists(st.floats(allow_nan=False), max_size=5),
    st.lists(st.booleans(), max_size=5),
    st.lists(st.text(max_size=5), max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, st.sampled_from([0, 64, 192])), min_size=1, max_size=20))
def test_every_value_comes_back_as_it_went_in(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[PointValue | None, int]]
) -> None:
    path = tmp_path_factory.mktemp("buffer") / "buffer.sqlite"
    sent = [
        BufferedPoint("d", f"m{n}", DOUBLE, n, value, quality)
        for n, (value, quality) in enumerate(items)
    ]
    with PointBuffer(path) as buffer:
        buffer.append(sent)
        got = [point for _, point in buffer.peek(len(sent) + 1)]
    assert got == sent
    for point, original in zip(got, sent, strict=True):
        assert type(point.value) is type(original.value)  # True stays a bool, 1 an int


def test_points_leave_in_order_and_only_ack_removes_them(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    with PointBuffer(path) as buffer:
        buffer.append(_points(5))
        buffer.append(_points(5, start=5, device="press-2"))
        first = buffer.peek(3)
        assert [p.timestamp - 1_764_000_000_000 for _, p in first] == [0, 1, 2]
        again = buffer.peek(3)
        assert again == first  # not acked: still there
        rest = buffer.peek(100, after=first[-1][0])
        assert [p.timestamp - 1_764_000_000_000 for _, p in rest] == [3, 4, 5, 6, 7, 8, 9]
        assert rest[2][1].device == "press-2"
        buffer.ack(first[-1][0])
        assert len(buffer) == 7
    with PointBuffer(path) as reopened:  # a restart keeps what was not acked, in order
        kept = reopened.peek(100)
        assert [p for _, p in kept] == [p for _, p in rest]
        assert [seq for seq, _ in kept] == [seq for seq, _ in rest]
        reopened.append(_points(1, start=10))
        assert reopened.peek(100)[-1][0] > kept[-1][0]  # sequences never go back


def test_the_byte_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    limit = 256 * 1024
    appended = 0
    with PointBuffer(path, max_bytes=limit, wal_bytes=64 * 1024) as buffer:
        dropped = 0
        for batch in range(60):
            dropped += buffer.append(_points(500, start=batch * 500))
            appended += 500
            assert buffer.stats().used_bytes <= limit
        stats = buffer.stats()
        assert dropped > 0
        assert stats.dropped == dropped
        assert stats.dropped_bytes > 0
        assert stats.points == appended - dropped
        kept = buffer.peek(appended)
        # the newest survive, contiguous: exactly the oldest were dropped
        stamps = [p.timestamp - 1_764_000_000_000 for _, p in kept]
        assert stamps == list(range(appended - len(kept), appended))
    files = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert files <= limit + 128 * 1024 + 64 * 1024  # database, its log, and a page or two
    with PointBuffer(path, max_bytes=limit) as reopened:
        assert reopened.stats().dropped == dropped  # the count survives a restart


def test_the_age_bound_drops_what_waited_too_long(tmp_path: Path) -> None:
    now = 1_764_000_000_000
    with PointBuffer(tmp_path / "buffer.sqlite", max_age=3600) as buffer:
        assert buffer.append(_points(10), now_ms=now - 7_200_000) == 0  # in bounds then
        assert buffer.enforce_bounds(now_ms=now - 7_200_000 + 3_600_000) == 0  # just in time
        assert buffer.enforce_bounds(now_ms=now - 7_200_000 + 3_600_001) == 10
        buffer.append(_points(5, start=10), now_ms=now - 60_000)
        assert buffer.enforce_bounds(now_ms=now) == 0
        assert [p.timestamp - 1_764_000_000_000 for _, p in buffer.peek(100)] == [
            10,
            11,
            12,
            13,
            14,
        ]
        assert buffer.stats().dropped == 10
        assert buffer.enforce_bounds(now_ms=now + 3_600_000) == 5
        assert len(buffer) == 0
        assert buffer.stats().oldest_stored_at is None


@pytest.mark.parametrize(
    ("options", "message"),
    [({"max_bytes": 1000}, "max_bytes"), ({"max_age": 0}, "max_age")],
)
def test_bounds_that_make_no_sense_are_refused(
    tmp_path: Path, options: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PointBuffer(tmp_path / "buffer.sqlite", **options)  # type: ignore[arg-type]


def test_kill_9_keeps_every_committed_point_in_order(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite"
    writer = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from plantwire.edge.buffer import BufferedPoint, PointBuffer
        buffer = PointBuffer(Path({str(path)!r}))
        n = 0
        while True:
            buffer.append(
                [BufferedPoint("d", "m", 10, n + k, float(n + k)) for k in range(100)]
            )
            n += 100
            print(n, flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", writer],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    assert child.stdout is not None
    committed = 0
    deadline = time.monotonic() + 30
    while committed < 20_000 and time.monotonic() < deadline:
        committed = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with PointBuffer(path) as buffer:
        kept = [p.timestamp for _, p in buffer.peek(10**7)]
    assert len(kept) >= committed  # everything it said was appended (and maybe one more)
    assert len(kept) % 100 == 0  # whole appends only
    assert kept == list(range(len(kept)))

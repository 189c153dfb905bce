"""Benchmark: the gateway's store-and-forward buffer (``plantwire.edge.buffer.PointBuffer``).

Appends ``--points`` points in appends of ``--batch`` (what a gateway offline for a while
writes), then replays them: ``peek`` of ``--batch`` and ``ack`` of each, in order, until the
buffer is empty (what the gateway does when the uplink returns, before it publishes). The
baseline, measured in the same run: the same rows inserted with ``executemany`` into a plain
SQLite table in the same WAL mode, one transaction a batch, and read back by rowid ranges with
no delete — SQLite's own speed for this shape, without the buffer's bounds and counters.

Run: ``.venv/bin/python bench/edge_buffer.py [--points N] [--batch N]``
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from plantwire.edge.buffer import BufferedPoint, PointBuffer

DOUBLE = 10


def _points(batch: int, start: int) -> list[BufferedPoint]:
    return [
        BufferedPoint(f"press-{n % 4}", f"metric-{n % 50}", DOUBLE, 1_764_000_000_000 + n, n * 0.5)
        for n in range(start, start + batch)
    ]


def baseline(directory: Path, points: int, batch: int) -> tuple[float, float]:
    db = sqlite3.connect(directory / "baseline.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE p (device TEXT, metric TEXT, datatype INT, ts INT, value, q INT)")
    rows = [
        (p.device, p.metric, p.datatype, p.timestamp, p.value, p.quality) for p in _points(batch, 0)
    ]
    started = time.perf_counter()
    for _ in range(points // batch):
        db.execute("BEGIN")
        db.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    appended = time.perf_counter()
    read = 0
    while read < points:
        read += len(
            db.execute(
                "SELECT * FROM p WHERE rowid > ? ORDER BY rowid LIMIT ?", (read, batch)
            ).fetchall()
        )
    replayed = time.perf_counter()
    db.close()
    return points / (appended - started), points / (replayed - appended)


def buffer_rates(directory: Path, points: int, batch: int) -> tuple[float, float]:
    batches = [_points(batch, start) for start in range(0, points, batch)]
    with PointBuffer(directory / "buffer.sqlite", max_bytes=8 << 30) as buffer:
        started = time.perf_counter()
        for chunk in batches:
            buffer.append(chunk)
        appended = time.perf_counter()
        replayed_points = 0
        while taken := buffer.peek(batch):
            buffer.ack(taken[-1][0])
            replayed_points += len(taken)
        replayed = time.perf_counter()
        assert replayed_points == points, (replayed_points, points)
        assert buffer.stats().dropped == 0
    return points / (appended - started), points / (replayed - appended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    points = args.points // args.batch * args.batch
    with tempfile.TemporaryDirectory(prefix="pw-bench-buffer-") as name:
        base_append, base_read = baseline(Path(name), points, args.batch)
        append, replay = buffer_rates(Path(name), points, args.batch)
    print(f"== {points:,} points in appends and replays of {args.batch:,}")
    for name, rate, base in (
        ("baseline: SQLite executemany", base_append, base_append),
        ("buffer append", append, base_append),
        ("baseline: SQLite read by rowid", base_read, base_read),
        ("buffer replay (peek + ack, in order)", replay, base_read),
    ):
        print(f"{name:40} {rate:12,.0f} points/s   {rate / base:.2f}x")


if __name__ == "__main__":
    main()

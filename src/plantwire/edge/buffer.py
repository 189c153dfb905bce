"""The gateway's store-and-forward buffer: points that could not go up while the uplink was
down, kept in a local SQLite database (WAL) that survives a gateway restart, read back in the
order they were taken, and bounded by bytes on disk and by age.

What users of other gateways lost is what this is for: an offline cache that grew until it
filled the disk (tens of GB), and points dropped without a word. Here:

- **bounded**: the database's used pages are kept under ``max_bytes`` and its write-ahead log
  under ``wal_bytes``; points older than ``max_age`` seconds are dropped;
- **drop-oldest, counted**: making room drops the oldest points first, and every dropped
  point is counted in the database itself (``dropped`` in :meth:`PointBuffer.stats`, kept
  across restarts) and reported by the gateway — never silent;
- **in order, never lost**: points leave in the order they were appended, and only
  :meth:`PointBuffer.ack` removes them, after the uplink confirmed them, so a crash while a
  batch is on its way (published, not yet all acknowledged and acked here) sends that batch
  again rather than losing it — the only way a point goes up twice.

Blocking: SQLite calls take milliseconds (an append or a peek of 1,000 points about 2 ms), and
the gateway makes them on its event loop, between polls and publishes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = ["BufferStats", "BufferedPoint", "PointBuffer", "PointValue"]

#: A point's value: what a Sparkplug metric carries for the gateway's types (arrays as lists).
PointValue = bool | int | float | str | bytes | list[bool] | list[int] | list[float] | list[str]

# How a value is kept: SQLite holds int64, float, text and blob natively; the rest are marked.
_PLAIN, _BOOL, _BIGINT, _JSON, _NULL = 0, 1, 2, 3, 4
_INT64 = range(-(2**63), 2**63)
#: bytes a row costs beyond its strings and value (rowid, integers, record header), roughly
_ROW_OVERHEAD = 40

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stored_at INTEGER NOT NULL,      -- gateway wall clock, ms: the age bound
    device TEXT NOT NULL,            -- '' for the edge node's own metrics
    metric TEXT NOT NULL,
    datatype INTEGER NOT NULL,       -- the Sparkplug B data type
    ts INTEGER NOT NULL,             -- the point's own time, epoch ms
    kind INTEGER NOT NULL,
    value,                           -- no affinity: stored as given
    quality INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0), ('dropped_bytes', 0);
"""


@dataclass(frozen=True, slots=True)
class BufferedPoint:
    """One point waiting for the uplink: a metric of a device (``""``: of the edge node itself)
    with its Sparkplug data type, its own timestamp (epoch ms), value (``None``: null) and
    quality (192 good, 64 uncertain, 0 bad, as Sparkplug's ``Quality`` property)."""

    device: str
    metric: str
    datatype: int
    timestamp: int
    value: PointValue | None
    quality: int = 192


@dataclass(frozen=True, slots=True)
class BufferStats:
    points: int
    used_bytes: int  # pages of the database in use (its free pages are reused)
    oldest_stored_at: int | None  # ms
    dropped: int  # points dropped to keep the bounds, since the buffer was made
    dropped_bytes: int


class PointBuffer:
    """A store-and-forward buffer in one SQLite file (see the module's docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        max_age: float = 7 * 86_400.0,
        wal_bytes: int = 16 << 20,
    ) -> None:
        if max_bytes < 64 * 1024:
            raise ValueError("max_bytes must be at least 64 KiB")
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives a gateway crash; an OS crash may lose the last ones
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA journal_size_limit={int(wal_bytes)}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={max(wal_bytes // 2 // 4096, 16)}")
        self._db.executescript(_SCHEMA)
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # --- writing -------------------------------------------------------------------------

    def append(self, points: Iterable[BufferedPoint], *, now_ms: int | None = None) -> int:
        """Keeps ``points`` (one transaction), then enforces the bounds; returns how many
        points the bounds dropped (the oldest first, counted)."""
        stored_at = _now_ms() if now_ms is None else now_ms
        rows = [
            (stored_at, p.device, p.metric, p.datatype, p.timestamp, *_encode(p.value), p.quality)
            for p in points
        ]
        if not rows:
            return 0
        with self._transaction():
            self._db.executemany(
                "INSERT INTO points (stored_at, device, metric, datatype, ts, kind, value,"
                " quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return self.enforce_bounds(now_ms=stored_at)

    def enforce_bounds(self, *, now_ms: int | None = None) -> int:
        """Drops points older than ``max_age``, then the oldest until the used bytes are
        under ``max_bytes``; returns how many it dropped."""
        now = _now_ms() if now_ms is None else now_ms
        dropped = 0
        cutoff = now - int(self.max_age * 1000)
        first_young = self._db.execute(
            "SELECT seq FROM points WHERE stored_at >= ? ORDER BY seq LIMIT 1", (cutoff,)
        ).fetchone()
        if first_young is None:
            dropped += self._drop_through(2**63 - 1)
        else:
            dropped += self._drop_through(first_young[0] - 1)
        while self._used_bytes() > self.max_bytes:
            count = self._db.execute("SELECT count(*) FROM points").fetchone()[0]
            if count == 0:
                break
            # a tenth over the limit's worth of the oldest points at a time, at least 100
            excess = self._used_bytes() - self.max_bytes * 9 // 10
            per_point = max(self._used_bytes() // count, 1)
            limit = min(count, max(100, excess // per_point))
            last = self._db.execute(
                "SELECT seq FROM points ORDER BY seq LIMIT 1 OFFSET ?", (limit - 1,)
            ).fetchone()[0]
            dropped += self._drop_through(last)
        return dropped

    def _drop_through(self, seq: int) -> int:
        """Drops the points up to and including ``seq``, counted; returns how many."""
        with self._transaction():
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(length(device) + length(metric)"
                " + coalesce(length(value), 8)), 0) FROM points WHERE seq <= ?",
                (seq,),
            ).fetchone()
            count, size = int(row[0]), int(row[1]) + int(row[0]) * _ROW_OVERHEAD
            if count:
                self._db.execute("DELETE FROM points WHERE seq <= ?", (seq,))
                self._db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (count,)
                )
                self._db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped_bytes'", (size,)
                )
        return count

    # --- reading -------------------------------------------------------------------------

    def peek(self, limit: int, after: int = 0) -> list[tuple[int, BufferedPoint]]:
        """Up to ``limit`` of the oldest points after sequence ``after``, with their sequence
        numbers, in the order they were appended; they stay until :meth:`ack`."""
        rows = self._db.execute(
            "SELECT seq, device, metric, datatype, ts, kind, value, quality FROM points"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            (seq, BufferedPoint(device, metric, datatype, ts, _decode(kind, value), quality))
            for seq, device, metric, datatype, ts, kind, value, quality in rows
        ]

    def ack(self, through: int) -> None:
        """Removes every point up to and including sequence ``through``: the uplink has them."""
        with self._transaction():
            self._db.execute("DELETE FROM points WHERE seq <= ?", (through,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM points").fetchone()[0])

    def stats(self) -> BufferStats:
        count, oldest = self._db.execute("SELECT count(*), min(stored_at) FROM points").fetchone()
        counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return BufferStats(
            points=int(count),
            used_bytes=self._used_bytes(),
            oldest_stored_at=oldest,
            dropped=int(counters["dropped"]),
            dropped_bytes=int(counters["dropped_bytes"]),
        )

    def _used_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _encode(value: PointValue | None) -> tuple[int, object]:
    if value is None:
        return _NULL, None
    if isinstance(value, bool):
        return _BOOL, int(value)
    if isinstance(value, int):
        return (_PLAIN, value) if value in _INT64 else (_BIGINT, str(value))
    if isinstance(value, float | str | bytes):
        return _PLAIN, value
    return _JSON, json.dumps(value)


def _decode(kind: int, stored: object) -> PointValue | None:
    if kind == _NULL:
        return None
    if kind == _BOOL:
        return bool(stored)
    if kind == _BIGINT:
        return int(str(stored))
    if kind == _JSON:
        decoded: list[bool] | list[int] | list[float] | list[str] = json.loads(str(stored))
        return decoded
    if isinstance(stored, int | float | str | bytes):
        return stored
    raise ValueError(f"a buffered value of kind {kind} is {type(stored).__name__}")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

"""What the time-series store holds and answers, as plain typed values (no I/O).

A *point* is (tenant, device, metric, ts, value, quality). Timestamps are UTC; inside the store
and in batches they are integers of microseconds since the Unix epoch, and queries hand back
timezone-aware ``datetime`` objects. Values keep their type (`ValueKind`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

__all__ = [
    "EPOCH",
    "Activity",
    "Bucket",
    "DiskUsage",
    "Point",
    "Quality",
    "RawPage",
    "StaleCheckpointError",
    "StoreError",
    "Value",
    "ValueKind",
    "from_micros",
    "to_micros",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

#: A point's value: a scalar, or a list of one scalar type.
Value = (
    float
    | int
    | bool
    | str
    | bytes
    | datetime
    | list[float]
    | list[int]
    | list[bool]
    | list[str]
    | list[datetime]
)


class Quality(IntEnum):
    """How far a value can be trusted (OPC UA's and Sparkplug's three classes)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class ValueKind(IntEnum):
    """The type a value was written with; stored with each point so it reads back the same."""

    FLOAT = 0
    INT = 1
    BOOL = 2
    STRING = 3
    BYTES = 4
    DATETIME = 5
    FLOAT_ARRAY = 6
    INT_ARRAY = 7
    BOOL_ARRAY = 8
    STRING_ARRAY = 9
    DATETIME_ARRAY = 10


class StoreError(Exception):
    """The store cannot do what was asked; the message says why."""


class StaleCheckpointError(StoreError):
    """An append carried a stream sequence at or below the one already committed: those
    messages were applied before, so nothing was written."""

    def __init__(self, name: str, given: int, committed: int) -> None:
        super().__init__(
            f"checkpoint {name!r}: sequence {given} is not after the committed {committed}"
        )
        self.name = name
        self.given = given
        self.committed = committed


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class Point:
    """One stored point of a known series (device and metric)."""

    device: str
    metric: str
    ts: datetime
    value: Value
    quality: Quality


@dataclass(frozen=True, slots=True)
class RawPage:
    """Raw points of one metric in time order; ``cursor`` fetches the next page (None: done)."""

    points: list[Point]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of the numeric points (float, int, bool as 0/1) of one interval, bad-quality
    points left out. ``start`` is the interval's start; intervals are aligned on the epoch."""

    start: datetime
    count: int
    sum: float
    min: float
    max: float
    first: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count


@dataclass(frozen=True, slots=True)
class Activity:
    """A tenant's devices by the time of their newest point (epoch µs, any metric), and the
    points of each stamped at or after the time asked about."""

    last_seen: dict[str, int]
    points: dict[str, int]


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Bytes on disk: the live database file (recent points, rollups, catalogues; space freed in
    it is reused, not returned) and the sealed partition files (freed when dropped)."""

    database_bytes: int
    sealed_bytes: int
    sealed_files: int

    @property
    def total_bytes(self) -> int:
        return self.database_bytes + self.sealed_bytes

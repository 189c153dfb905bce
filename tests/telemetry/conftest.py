"""A time-series store on a temporary directory, and helpers to fill it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plantwire.telemetry.store import DuckDBStore, PointBatch
from plantwire.telemetry.store.model import to_micros

DAY = datetime(2026, 11, 22, tzinfo=UTC)
SECOND = 1_000_000


def micros(moment: datetime) -> int:
    return to_micros(moment)


def seconds_of(tenant: str, device: str, metric: str, start: datetime, count: int) -> PointBatch:
    """``count`` float points one second apart from ``start``, value = the second's number."""
    batch = PointBatch()
    first = micros(start)
    batch.add_numbers(
        tenant,
        device,
        metric,
        [first + n * SECOND for n in range(count)],
        [float(n) for n in range(count)],
    )
    return batch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(tmp_path / "telemetry") as opened:
        yield opened


__all__ = ["DAY", "SECOND", "micros", "seconds_of", "timedelta"]

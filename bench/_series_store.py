"""A time-series store filled with days of 1 Hz float series, sealed a day per file: built
once per size under ``bench-data/`` and reused (``bench/tsstore.py`` measures the store,
``bench/query_http.py`` the query API over it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from plantwire.telemetry.store import DuckDBStore, PointBatch
from plantwire.telemetry.store.model import to_micros

__all__ = [
    "DATA",
    "DAY0",
    "PER_DAY",
    "SECOND",
    "TENANT",
    "build_store",
    "built_before",
    "series_count",
    "series_name",
]

DATA = Path(__file__).resolve().parent.parent / "bench-data"
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
SECOND = 1_000_000
PER_DAY = 86_400
TENANT = "acme"


def series_name(n: int) -> tuple[str, str]:
    """(device, metric) of series ``n``: ten metrics a device."""
    return f"machine-{n // 10:04d}", f"metric-{n % 10}"


def built_before(directory: Path, size: str) -> bool:
    """Whether ``directory`` holds data built before for ``size`` (its ``built.txt`` says so);
    if not, it is removed for a new build, which writes ``size`` there when it is done."""
    marker = directory / "built.txt"
    if marker.exists() and marker.read_text() == size:
        return True
    if directory.exists():
        shutil.rmtree(directory)
    return False


def series_count(points: int, days: int) -> int:
    return max(1, points // (days * PER_DAY))


def build_store(
    directory: Path,
    points: int,
    days: int,
    tenant: str = TENANT,
    name: Callable[[int], tuple[str, str]] = series_name,
) -> int:
    """A store of ``points`` points in ``directory``: ``days`` days of 1 Hz floats of as many
    series as that takes (``name`` gives each its device and metric), each day sealed into
    one sorted file. Kept if built before with the same size; returns the number of series."""
    series = series_count(points, days)
    if built_before(directory, f"{series} {days}"):
        return series
    generator = duckdb.connect()
    started = time.perf_counter()
    with DuckDBStore(directory) as store:
        for day in range(days):
            first = to_micros(DAY0 + timedelta(days=day))
            for group in range(0, series, 10):
                batch = PointBatch()
                for n in range(group, min(series, group + 10)):
                    device, metric = name(n)
                    signal = generator.sql(
                        f"SELECT {first} + range * {SECOND} AS ts, "  # noqa: S608 (numbers only)
                        f"round(50 + 10 * sin(range / 600 + {n}) + random() * 2, 3) AS v "
                        f"FROM range({PER_DAY})"
                    ).to_arrow_table()
                    batch.add_numbers(
                        tenant,
                        device,
                        metric,
                        signal.column("ts").combine_chunks(),
                        signal.column("v").combine_chunks(),
                    )
                store.append(batch)
            store.seal(DAY0 + timedelta(days=day + 1))
            print(
                f"   day {day + 1}/{days}: {series * PER_DAY * (day + 1):,} points "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        store.checkpoint_database()
    generator.close()
    (directory / "built.txt").write_text(f"{series} {days}")
    return series

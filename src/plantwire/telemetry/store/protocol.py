"""`TimeSeriesStore`: what ingest, queries and retention need from a time-series store,
whatever holds the points (DuckDB and Parquet embedded; PostgreSQL later)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from plantwire.telemetry.store.batch import PointBatch
from plantwire.telemetry.store.model import Activity, Bucket, DiskUsage, Point, RawPage

__all__ = ["TimeSeriesStore"]


class TimeSeriesStore(Protocol):
    """Every method that reads takes the tenant and sees only that tenant's points.
    Times are aware datetimes or epoch microseconds; ranges are [start, end)."""

    def append(
        self,
        batch: PointBatch,
        checkpoint: tuple[str, int] | None = None,
        states: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Write the batch, move the named stream checkpoint to ``seq`` and set the ``states``
        (opaque values by key; None removes one) in one transaction; a ``seq`` not after the
        committed one raises `StaleCheckpointError`, writing nothing. States are what a
        consumer must resume from exactly where its data stops (Sparkplug birth
        certificates and sequence numbers), whatever backend holds them."""

    def states(self, prefix: str) -> dict[str, bytes]:
        """The states committed under keys that start with ``prefix``."""

    def checkpoint(self, name: str) -> int:
        """The last sequence committed under ``name`` with its data; 0 when there is none."""

    def latest(self, tenant: str, device: str) -> list[Point]:
        """The latest point of each metric of the device."""

    def raw(
        self,
        tenant: str,
        device: str,
        metric: str,
        start: datetime | int,
        end: datetime | int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> RawPage:
        """One page of a metric's points, oldest first."""

    def aggregate(
        self,
        tenant: str,
        device: str,
        metric: str,
        start: datetime | int,
        end: datetime | int,
        interval: timedelta,
        *,
        use_rollups: bool = True,
    ) -> list[Bucket]:
        """Per-interval avg, min, max, sum, count, first, last of the numeric points."""

    def export(
        self,
        tenant: str,
        start: datetime | int,
        end: datetime | int,
        device: str | None = None,
        *,
        metric: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """The points of a range (of one device and metric, if given; at most ``limit``) as an
        Arrow table, for CSV and Parquet downloads."""

    def drop_before(
        self,
        tenant: str,
        before: datetime,
        device: str | None = None,
        *,
        keep: Collection[str] = (),
    ) -> int:
        """Retention: drop old points of a tenant (but those of the devices in ``keep``) or of
        one of its devices, giving their disk space back; how many."""

    def activity(self, tenant: str, since: int) -> Activity:
        """Each of the tenant's devices with points: its newest point's time, and how many
        points it has stamped at or after ``since`` (epoch µs) — recent points only, which
        are all in the live database."""

    def disk_usage(self, tenant: str | None = None) -> DiskUsage:
        """Bytes the store holds on disk."""

    def maintain(self, now: datetime | None = None) -> None:
        """Periodic upkeep (sealing, merging, rollups), called by the owning process."""

    def backup(self, destination: Path) -> list[str]:
        """Copy the store, consistently while it runs, into ``destination`` (a new folder);
        the files written, relative to it."""

    def ping(self) -> None:
        """Raise if the store cannot answer a query (readiness)."""

    def close(self) -> None:
        """Release files and connections."""

"""The time-series store: the `TimeSeriesStore` protocol, `PointBatch`, and the embedded
DuckDB implementation `DuckDBStore`."""

from plantwire.telemetry.store.batch import PointBatch, SeriesKey
from plantwire.telemetry.store.duckdb_store import DuckDBStore, MaintenancePolicy
from plantwire.telemetry.store.model import (
    Activity,
    Bucket,
    DiskUsage,
    Point,
    Quality,
    RawPage,
    StaleCheckpointError,
    StoreError,
    Value,
    ValueKind,
)
from plantwire.telemetry.store.protocol import TimeSeriesStore

__all__ = [
    "Activity",
    "Bucket",
    "DiskUsage",
    "DuckDBStore",
    "MaintenancePolicy",
    "Point",
    "PointBatch",
    "Quality",
    "RawPage",
    "SeriesKey",
    "StaleCheckpointError",
    "StoreError",
    "TimeSeriesStore",
    "Value",
    "ValueKind",
]

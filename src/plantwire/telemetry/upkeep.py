"""The time-series store's upkeep in a running platform: ``store.maintain()`` (sealing hot
points, merging sealed files) every few seconds, in a worker thread, for as long as the app's
lifespan runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from plantwire.telemetry.store import TimeSeriesStore

__all__ = ["RETENTION_EVERY_SECONDS", "Retention", "UpkeepMetrics", "maintain_periodically"]

#: Retention runs at most this often (it walks every tenant's catalogue of sealed days).
RETENTION_EVERY_SECONDS = 3600.0

_log = structlog.get_logger("plantwire.telemetry.upkeep")


class Retention:
    """Drops every tenant's points older than ``days`` whole UTC days, at most once every
    ``every`` seconds (the store gives the disk back by unlinking whole sealed days)."""

    def __init__(
        self,
        tenants: Callable[[], Iterable[str]],
        days: int,
        every: float = RETENTION_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tenants, self.days, self.every, self.clock = tenants, days, every, clock
        self._last: float | None = None

    def __call__(self, store: TimeSeriesStore, metrics: UpkeepMetrics | None) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        before = datetime.now(UTC) - timedelta(days=self.days)
        dropped = sum(store.drop_before(tenant, before) for tenant in self.tenants())
        if metrics is not None:
            metrics.dropped.inc(dropped)
        if dropped:
            _log.info("store.retention", dropped=dropped, before=before.isoformat())


class UpkeepMetrics:
    """Runs of the store's upkeep by outcome, and how long they took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "plantwire_store_maintenance_runs",
            "Runs of the time-series store's upkeep (sealing, merging), by outcome",
            ["outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "plantwire_store_maintenance_seconds",
            "Duration of the time-series store's upkeep runs",
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=registry,
        )
        self.dropped = Counter(
            "plantwire_store_retention_dropped_points",
            "Points dropped by the retention setting (telemetry_retention_days)",
            registry=registry,
        )


async def maintain_periodically(
    store: TimeSeriesStore,
    interval: float,
    metrics: UpkeepMetrics | None = None,
    retention: Retention | None = None,
) -> None:
    """Call ``store.maintain()`` every ``interval`` seconds until cancelled.

    A run happens in a worker thread; cancelling waits for a run in progress to finish, so the
    store can be closed right after. A run that fails is logged and counted, and the next one
    comes as usual: a full disk or a damaged file must not end the upkeep for good."""
    while True:
        await anyio.sleep(interval)
        began = time.perf_counter()
        try:
            await anyio.to_thread.run_sync(store.maintain)
            if retention is not None:
                await anyio.to_thread.run_sync(retention, store, metrics)
        except Exception as error:  # the loop is the boundary that can act: log, retry later
            _log.error("store.maintenance_failed", error=repr(error), exc_info=error)
            outcome = "failed"
        else:
            outcome = "ok"
        if metrics is not None:
            metrics.runs.labels(outcome).inc()
            metrics.seconds.observe(time.perf_counter() - began)

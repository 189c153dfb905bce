"""The time-series store's upkeep in a running platform: ``store.maintain()`` (sealing hot
points, merging sealed files) every few seconds, and retention at most once an hour, in a
worker thread, for as long as the app's lifespan runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from plantwire.telemetry.retention import RetentionPlan
from plantwire.telemetry.store import TimeSeriesStore

__all__ = [
    "RETENTION_EVERY_SECONDS",
    "Retention",
    "UpkeepMetrics",
    "apply_plan",
    "maintain_periodically",
]

#: Retention runs at most this often (it walks every tenant's catalogue of sealed days).
RETENTION_EVERY_SECONDS = 3600.0

_log = structlog.get_logger("plantwire.telemetry.upkeep")


class Retention:
    """Applies the retention plans (platform default, tenant and device settings; see
    ``telemetry.retention``) at most once every ``every`` seconds: a tenant's points older
    than its days go, but those of its devices with a setting of their own, which go after
    theirs. The store gives the disk back: whole sealed days are unlinked, and files that
    hold points that stay are rewritten without the others."""

    def __init__(
        self,
        plans: Callable[[], Iterable[RetentionPlan]],
        every: float = RETENTION_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.plans, self.every, self.clock, self.now = plans, every, clock, now
        self._last: float | None = None

    def __call__(self, store: TimeSeriesStore, metrics: UpkeepMetrics | None) -> None:
        tick = self.clock()
        if self._last is not None and tick - self._last < self.every:
            return
        self._last = tick
        now = self.now()
        dropped = sum(apply_plan(store, plan, now) for plan in self.plans())
        if metrics is not None:
            metrics.dropped.inc(dropped)
        if dropped:
            _log.info("store.retention", dropped=dropped)


def apply_plan(store: TimeSeriesStore, plan: RetentionPlan, now: datetime) -> int:
    """Drop what ``plan`` says is too old at ``now``; how many points went."""
    dropped = 0
    if plan.days is not None:
        before = now - timedelta(days=plan.days)
        dropped += store.drop_before(plan.tenant, before, keep=plan.devices.keys())
    for device, days in plan.devices.items():
        dropped += store.drop_before(plan.tenant, now - timedelta(days=days), device)
    return dropped


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
            "Points dropped by retention (the platform's, tenants' and devices' settings)",
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

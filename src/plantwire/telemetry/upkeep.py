"""The time-series store's upkeep in a running platform: ``store.maintain()`` (sealing hot
points, merging sealed files) every few seconds, in a worker thread, for as long as the app's
lifespan runs it."""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from plantwire.telemetry.store import TimeSeriesStore

__all__ = ["UpkeepMetrics", "maintain_periodically"]

_log = structlog.get_logger("plantwire.telemetry.upkeep")


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


async def maintain_periodically(
    store: TimeSeriesStore, interval: float, metrics: UpkeepMetrics | None = None
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
        except Exception as error:  # the loop is the boundary that can act: log, retry later
            _log.error("store.maintenance_failed", error=repr(error), exc_info=error)
            outcome = "failed"
        else:
            outcome = "ok"
        if metrics is not None:
            metrics.runs.labels(outcome).inc()
            metrics.seconds.observe(time.perf_counter() - began)

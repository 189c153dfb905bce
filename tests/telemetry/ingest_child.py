"""Ingest in a process of its own, for the kill tests: ``python ingest_child.py CONFIG.json``.

The config names the broker endpoint, the store directory, the devices, and optionally
``kill_after_commit``: the number of the append after whose commit the process kills itself
with SIGKILL, before acking (the window a crash must not turn into duplicates)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from plantwire.observability import configure_logging
from plantwire.telemetry.broker import BrokerEndpoint
from plantwire.telemetry.ingest import Ingest, IngestMetrics, IngestOptions
from plantwire.telemetry.store import DuckDBStore, PointBatch


class Directory:
    def __init__(self, devices: list[list[str]]) -> None:
        self.devices = {(tenant_id, device_id) for tenant_id, device_id in devices}

    def declared(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, str] | None]:
        return {key: ({} if key in self.devices else None) for key in keys}


class KillingStore:
    """The real store; after the ``kill_after``-th committed append, SIGKILL ourselves."""

    def __init__(self, store: DuckDBStore, kill_after: int | None) -> None:
        self.store = store
        self.kill_after = kill_after
        self.appends = 0

    def append(
        self,
        batch: PointBatch,
        checkpoint: tuple[str, int] | None = None,
        states: Mapping[str, bytes | None] | None = None,
    ) -> None:
        self.store.append(batch, checkpoint, states)
        self.appends += 1
        if self.appends == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def main(config: dict[str, Any]) -> None:
    configure_logging("console", "warning")  # stdout carries "ready" alone
    store = DuckDBStore(Path(config["store"]))
    endpoint = BrokerEndpoint(**config["endpoint"])
    options = IngestOptions(batch=50, fetch_seconds=0.2, ack_wait_seconds=1.0)
    ingest = Ingest(
        endpoint,
        KillingStore(store, config.get("kill_after_commit")),
        Directory(config["devices"]),
        IngestMetrics(CollectorRegistry()),
        options,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(ingest.run(stop))
    await ingest.ready.wait()
    print("ready", flush=True)
    await task
    store.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))

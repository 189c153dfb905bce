"""An identifier for each finished part: ``88.101.5/<serial>`` registered through the
platform's Handle API with the prefix administrator's credentials, holding what was made,
where, when and how well, and a link to the part's page in the console.

The simulator hands over parts on its event loop and must not wait, so parts go into a
bounded queue (full: the part is counted as dropped) and one task registers them. A failed
registration is logged and counted, never allowed to stop the demo."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from plantwire.ids.names import prefix_record, url_path
from plantwire.sim.plant import PartRecord

__all__ = ["PartRegistrar", "RegistrarStats", "part_handle", "part_values", "product_url"]

_log = structlog.get_logger("plantwire.demo")

#: value types of a part's record, at fixed indexes
FIELDS = (
    (1, "URL"),
    (2, "PRODUCT_TYPE"),
    (3, "LINE"),
    (4, "MACHINE"),
    (5, "PRODUCTION_START"),
    (6, "PRODUCTION_END"),
    (7, "QUALITY"),
)


def part_handle(prefix: str, part: PartRecord) -> str:
    return f"{prefix}/{part.serial}"


def product_url(console_url: str, handle: str) -> str:
    """The part's page in the console."""
    return f"{console_url.rstrip('/')}/products/{url_path(handle)}"


def _iso(moment: Any) -> str:
    return str(moment.isoformat().replace("+00:00", "Z"))


def part_values(prefix: str, part: PartRecord, console_url: str) -> list[dict[str, Any]]:
    """The Handle.net JSON values of a part's record, with an HS_ADMIN naming the prefix's
    administrators."""
    handle = part_handle(prefix, part)
    data = {
        "URL": product_url(console_url, handle),
        "PRODUCT_TYPE": part.product_type,
        "LINE": part.line,
        "MACHINE": part.machine,
        "PRODUCTION_START": _iso(part.started_at),
        "PRODUCTION_END": _iso(part.finished_at),
        "QUALITY": str(part.quality.value),
    }
    values: list[dict[str, Any]] = [
        {"index": index, "type": kind, "data": {"format": "string", "value": data[kind]}}
        for index, kind in FIELDS
    ]
    admin = {"handle": str(prefix_record(prefix)), "index": 200, "permissions": "011111110011"}
    values.append({"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}})
    return values


@dataclass(slots=True)
class RegistrarStats:
    registered: int = 0
    failed: int = 0
    dropped: int = 0  # parts the full queue could not take
    last_handle: str | None = None
    traced_handle: str | None = None  # the first part made while the gateway forwarded


class PartRegistrar:
    """Registers finished parts' identifiers on ``node_url`` (the platform) as ``identity``
    (``300:0.NA/<prefix>``) with its secret key. `add` is the simulator's part listener;
    `run` registers until cancelled."""

    def __init__(
        self,
        node_url: str,
        prefix: str,
        identity: str,
        secret: str,
        console_url: str,
        *,
        queue_size: int = 10_000,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.prefix = prefix
        self.console_url = console_url
        self.stats = RegistrarStats()
        self.first = asyncio.Event()  # set once a part's identifier is registered
        self.traced = asyncio.Event()  # set once a part started since trace_from() is in
        self._traced_from: datetime | None = None
        self._queue: asyncio.Queue[PartRecord] = asyncio.Queue(queue_size)
        self._http = httpx.AsyncClient(
            base_url=node_url,
            auth=httpx.BasicAuth(quote(identity, safe="/"), secret),
            timeout=timeout,
            transport=transport,
        )

    def trace_from(self, moment: datetime) -> None:
        """Parts started at or after ``moment`` (simulated time: when the gateway began to
        forward the machines' data) have machine data for their whole production window; the
        first of them registered sets ``traced`` and ``stats.traced_handle``."""
        self._traced_from = moment

    def add(self, part: PartRecord) -> None:
        try:
            self._queue.put_nowait(part)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                _log.warning("demo.part_dropped", serial=part.serial, dropped=self.stats.dropped)

    async def register(self, part: PartRecord) -> bool:
        """One part's identifier; False (logged, counted) when the node refused or failed."""
        handle = part_handle(self.prefix, part)
        body = {"values": part_values(self.prefix, part, self.console_url)}
        try:
            response = await self._http.put(f"/api/handles/{url_path(handle)}", json=body)
        except httpx.HTTPError as error:
            return self._failed(handle, f"{type(error).__name__}: {error}")
        if response.status_code not in (200, 201):
            return self._failed(handle, f"HTTP {response.status_code}: {response.text[:200]}")
        self.stats.registered += 1
        self.stats.last_handle = handle
        self.first.set()
        traced_from = self._traced_from
        if traced_from is not None and part.started_at >= traced_from and not self.traced.is_set():
            self.stats.traced_handle = handle
            self.traced.set()
        return True

    def _failed(self, handle: str, why: str) -> bool:
        self.stats.failed += 1
        _log.warning("demo.part_not_registered", handle=handle, error=why, failed=self.stats.failed)
        return False

    async def run(self) -> None:
        """Register queued parts one after the other until cancelled."""
        while True:
            await self.register(await self._queue.get())

    async def aclose(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self._http.aclose()

"""The live stream's hub: the points of each batch ingest committed, handed to whoever watches
their device, as Server-Sent Events frames (no HTTP here; ``api.py`` serves the stream).

Ingest calls `LiveHub.publish` on the event loop right after the store committed a batch. With
nobody watching, that is a look at an empty dict. Otherwise the batch's points of each watched
device are turned into JSON once, and each subscription of that device gets them (only its
metrics, if it named some) as one event in a buffer of its own, bounded in points. A subscriber
that does not keep up loses its oldest events and never slows ingest or the other subscribers:
the next thing it reads is an ``overflow`` event saying how many points it missed.

Frames (``text/event-stream``; ``data`` is one line of JSON)::

    event: latest                      the device's newest values, first (no id)
    data: {"points":[{"metric":"t","ts":"2026-11-30T10:00:00.000000Z","value":20.5,
                      "quality":"good"}]}             (one line on the wire)

    event: points                      the device's points of one committed batch
    id: 1234                           the batch's last stream sequence (increasing)
    data: {"points":[...]}

    event: overflow                    points dropped since the last event read
    data: {"dropped":120}

    : ping                             nothing for a while (keeps proxies from closing)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter, Gauge

from plantwire.telemetry.query import iso, json_value
from plantwire.telemetry.store import PointBatch, Quality
from plantwire.telemetry.store.batch import VALUE_COLUMNS, value_from_columns
from plantwire.telemetry.store.model import from_micros

__all__ = [
    "PING",
    "HubClosedError",
    "LiveHub",
    "LiveMetrics",
    "LiveOptions",
    "StreamLimitError",
    "Subscription",
    "latest_frame",
]

#: A comment line: sent after a quiet interval so proxies and browsers keep the stream open.
PING = b": ping\n\n"
_QUALITY = {int(quality): quality.name.lower() for quality in Quality}

#: (tenant, device)
DeviceKey = tuple[str, str]


class StreamLimitError(Exception):
    """The tenant has as many live streams open as it may."""


class HubClosedError(Exception):
    """The platform is shutting down: no new streams."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    streams_per_tenant: int = 100
    buffer_points: int = 10_000  # points waiting in one subscription's buffer, at most


class LiveMetrics:
    """Prometheus metrics of the live streams, in the platform's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.streams = Gauge(
            "plantwire_live_streams", "Live streams of devices' points open.", registry=registry
        )
        self.dropped = Counter(
            "plantwire_live_dropped_points",
            "Points live streams dropped because their client did not read them fast enough.",
            registry=registry,
        )


def _frame(event: str, data: bytes, event_id: int | None = None) -> bytes:
    head = f"event: {event}\n" if event_id is None else f"event: {event}\nid: {event_id}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def _points_data(fragments: Iterable[bytes]) -> bytes:
    return b'{"points":[' + b",".join(fragments) + b"]}"


def _point(metric: str, ts: str, value: Any, quality: str) -> bytes:
    """One point as JSON, the same shape in every event."""
    point = {"metric": metric, "ts": ts, "value": value, "quality": quality}
    return json.dumps(point, separators=(",", ":"), allow_nan=False).encode()


def latest_frame(latest: Mapping[str, Mapping[str, Any]], metrics: frozenset[str] | None) -> bytes:
    """The first event of a stream, from ``query.latest``'s answer: the newest value of each
    metric (of ``metrics`` only, if given)."""
    fragments = [
        _point(metric, point["ts"], point["value"], point["quality"])
        for metric, point in latest.items()
        if metrics is None or metric in metrics
    ]
    return _frame("latest", _points_data(fragments))


class Subscription:
    """One stream's view of one device: a buffer of events, at most ``capacity`` points in
    it. Filled by the hub, read through `frames`; `close` it when the stream ends."""

    __slots__ = (
        "_buffered",
        "_dropped",
        "_events",
        "_hub",
        "_wake",
        "capacity",
        "closed",
        "device",
        "metrics",
        "tenant",
    )

    def __init__(
        self,
        hub: LiveHub,
        tenant: str,
        device: str,
        metrics: frozenset[str] | None,
        capacity: int,
    ) -> None:
        self._hub = hub
        self.tenant = tenant
        self.device = device
        self.metrics = metrics
        self.capacity = capacity
        self.closed = False
        self._events: deque[tuple[int, list[bytes]]] = deque()  # (sequence, points)
        self._buffered = 0  # points in _events
        self._dropped = 0  # points dropped since the last overflow event was read
        self._wake = asyncio.Event()

    def offer(self, sequence: int, points: list[bytes]) -> int:
        """Buffer one batch's points; the oldest events go when it would hold more than
        ``capacity`` points (and the oldest points of a batch larger than that). Never
        blocks. The number of points dropped."""
        dropped = 0
        if len(points) > self.capacity:
            dropped = len(points) - self.capacity
            points = points[dropped:]
        while self._events and self._buffered + len(points) > self.capacity:
            _, old = self._events.popleft()
            self._buffered -= len(old)
            dropped += len(old)
        self._events.append((sequence, points))
        self._buffered += len(points)
        self._dropped += dropped
        self._wake.set()
        return dropped

    async def frames(self, heartbeat: float) -> AsyncGenerator[bytes, None]:
        """The stream's frames as they come: an ``overflow`` event before the events that
        follow a loss, ``points`` events, and `PING` after ``heartbeat`` seconds of quiet.
        Ends when the subscription is closed (events still buffered then are not sent)."""
        while not self.closed:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                yield _frame("overflow", b'{"dropped":%d}' % dropped)
            elif self._events:
                sequence, points = self._events.popleft()
                self._buffered -= len(points)
                yield _frame("points", _points_data(points), sequence)
            else:
                self._wake.clear()
                try:
                    async with asyncio.timeout(heartbeat):
                        await self._wake.wait()
                except TimeoutError:
                    yield PING

    def close(self) -> None:
        """End the stream: `frames` returns, and the hub forgets the subscription."""
        if not self.closed:
            self.closed = True
            self._wake.set()
            self._hub.forget(self)


class LiveHub:
    """Subscriptions by (tenant, device), and the fan-out of committed batches to them.
    Used on the event loop only (ingest's commits and the stream handlers run there)."""

    def __init__(self, metrics: LiveMetrics, options: LiveOptions | None = None) -> None:
        self.metrics = metrics
        self.options = options or LiveOptions()
        self.closed = False
        self._watched: dict[DeviceKey, set[Subscription]] = {}
        self._open: dict[str, int] = {}  # open subscriptions per tenant
        self._last = 0  # the last sequence published: events' ids only ever increase

    def subscribe(self, tenant: str, device: str, metrics: frozenset[str] | None) -> Subscription:
        """A new subscription to the device's points (of ``metrics`` only, if given).
        `StreamLimitError` when the tenant has its most streams open; `HubClosedError` once
        the platform is shutting down."""
        if self.closed:
            raise HubClosedError
        if self._open.get(tenant, 0) >= self.options.streams_per_tenant:
            raise StreamLimitError
        subscription = Subscription(self, tenant, device, metrics, self.options.buffer_points)
        self._watched.setdefault((tenant, device), set()).add(subscription)
        self._open[tenant] = self._open.get(tenant, 0) + 1
        self.metrics.streams.inc()
        return subscription

    def forget(self, subscription: Subscription) -> None:
        """Drop a closed subscription (`Subscription.close` calls this)."""
        key = (subscription.tenant, subscription.device)
        watching = self._watched.get(key)
        if watching is None or subscription not in watching:
            return
        watching.discard(subscription)
        if not watching:
            del self._watched[key]
        left = self._open[subscription.tenant] - 1
        if left:
            self._open[subscription.tenant] = left
        else:
            del self._open[subscription.tenant]
        self.metrics.streams.dec()

    def publish(self, points: PointBatch, sequence: int) -> None:
        """Hand the points of a committed batch (``sequence``: its last stream sequence) to
        the subscriptions of their devices. A sequence at or below one published already
        (a batch the store had applied before) is ignored."""
        if sequence <= self._last:
            return
        self._last = sequence
        if not self._watched:  # nobody listens: the whole cost
            return
        keys = points.keys
        wanted = [
            i for i, (tenant, device, _) in enumerate(keys) if (tenant, device) in self._watched
        ]
        if not wanted:
            return
        for device, fragments in _device_points(points, keys, wanted).items():
            for subscription in self._watched[device]:
                chosen = subscription.metrics
                mine = [f for metric, f in fragments if chosen is None or metric in chosen]
                if mine:
                    self.metrics.dropped.inc(subscription.offer(sequence, mine))

    def close(self) -> None:
        """End every stream and take no new ones (the platform is shutting down)."""
        self.closed = True
        for watching in list(self._watched.values()):
            for subscription in list(watching):
                subscription.close()


def _device_points(
    points: PointBatch, keys: list[tuple[str, str, str]], wanted: list[int]
) -> dict[DeviceKey, list[tuple[str, bytes]]]:
    """The batch's points of the series ``wanted`` (indexes into ``keys``), as (metric, JSON)
    by device, in the batch's order."""
    table = points.to_arrow(list(range(len(keys))))  # series id = index into keys
    rows = table.filter(pc.is_in(table["series"], value_set=pa.array(wanted, pa.int32())))
    # columns without nulls: these are ints
    series = cast(list[int], rows["series"].to_pylist())
    stamps = cast(list[int], rows["ts"].cast(pa.int64()).to_pylist())
    qualities = cast(list[int], rows["quality"].to_pylist())
    kinds = cast(list[int], rows["kind"].to_pylist())
    cells = zip(*(rows[name].to_pylist() for name in VALUE_COLUMNS), strict=True)
    found: dict[DeviceKey, list[tuple[str, bytes]]] = {}
    for index, micros, quality, kind, values in zip(
        series, stamps, qualities, kinds, cells, strict=True
    ):
        tenant, device, metric = keys[index]
        value = json_value(value_from_columns(kind, values))
        fragment = _point(metric, iso(from_micros(micros)), value, _QUALITY[quality])
        found.setdefault((tenant, device), []).append((metric, fragment))
    return found

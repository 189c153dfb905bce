"""The live stream of a device's points.

The hub on its own: fan-out by tenant and device, metric filters, a slow subscriber's bounded
buffer and its overflow event, the per-tenant limit, heartbeats, shutdown, and no work at all
when nobody listens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from plantwire.telemetry.live import (
    PING,
    HubClosedError,
    LiveHub,
    LiveMetrics,
    LiveOptions,
    StreamLimitError,
    Subscription,
)
from plantwire.telemetry.store import PointBatch, Quality, Value

A, B = "tenant-a", "tenant-b"
T0 = 1_764_496_800_000_000  # 2025-11-30T10:00:00Z in epoch microseconds
DEVICES = "/api/v1/devices"


# --- reading Server-Sent Events ----------------------------------------------------------------


@dataclass
class Event:
    name: str  # "message" when the frame names none; "comment" for a ':' line
    data: str = ""
    id: str | None = None

    def points(self) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = json.loads(self.data)["points"]
        return points


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """Events as the EventSource specification reads them, comments included."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                yield Event(
                    fields.get("event", "message"), fields.get("data", ""), fields.get("id")
                )
            fields = {}
        elif line.startswith(":"):
            yield Event("comment", line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = (
                f"{fields[name]}\n{value}" if name == "data" and name in fields else value
            )


def frames_text(*frames: bytes) -> Iterator[str]:
    return iter(b"".join(frames).decode().split("\n"))


# --- the hub ---------------------------------------------------------------------------------


def batch(*points: tuple[str, str, str, int, Value]) -> PointBatch:
    made = PointBatch()
    for tenant, device, metric, micros, value in points:
        made.add(tenant, device, metric, micros, value)
    return made


def hub(**options: int) -> LiveHub:
    return LiveHub(LiveMetrics(CollectorRegistry()), LiveOptions(**options))


async def read(subscription: Subscription, count: int, heartbeat: float = 5.0) -> list[Event]:
    """The next ``count`` events (pings included) of the subscription."""
    events: list[Event] = []
    frames = subscription.frames(heartbeat)
    async with asyncio.timeout(10):
        while len(events) < count:
            events.extend(parse(frames_text(await anext(frames))))
    await frames.aclose()
    return events


def point(metric: str, seconds: int, value: Any, quality: str = "good") -> dict[str, Any]:
    stamp = datetime.fromtimestamp(T0 / 1e6 + seconds, UTC).isoformat(timespec="microseconds")
    return {"metric": metric, "ts": stamp[:-6] + "Z", "value": value, "quality": quality}


async def test_points_reach_the_subscribers_of_their_device_only() -> None:
    live = hub()
    press = live.subscribe(A, "press", None)
    temperature = live.subscribe(A, "press", frozenset({"t", "missing"}))
    other_tenant = live.subscribe(B, "press", None)
    oven = live.subscribe(A, "oven", None)
    stored = batch(
        (A, "press", "t", T0, 20.5),
        (A, "press", "mode", T0, "auto"),
        (B, "press", "t", T0, 99.0),
        (A, "press", "t", T0 + 1_000_000, 21),
        (A, "press", "on", T0 + 1_000_000, True),
        (A, "press", "raw", T0 + 1_000_000, b"\x00\xff"),
        (A, "press", "nan", T0 + 1_000_000, float("nan")),
        (A, "press", "list", T0 + 1_000_000, [1.5, 2.5]),
    )
    stored.add(A, "press", "q", T0 + 2_000_000, 1.0, quality=Quality.UNCERTAIN)
    live.publish(stored, 7)

    [event] = await read(press, 1)
    assert (event.name, event.id) == ("points", "7")
    assert event.points() == [
        point("t", 0, 20.5),
        point("mode", 0, "auto"),
        point("t", 1, 21),
        point("on", 1, True),
        point("raw", 1, "AP8="),
        point("nan", 1, None),
        point("list", 1, [1.5, 2.5]),
        point("q", 2, 1.0, "uncertain"),
    ]
    [event] = await read(temperature, 1)
    assert event.points() == [point("t", 0, 20.5), point("t", 1, 21)]
    [event] = await read(other_tenant, 1)
    assert event.points() == [point("t", 0, 99.0)]
    [event] = await read(oven, 1, heartbeat=0.05)  # nothing of the oven was in the batch
    assert event == Event("comment", "ping")


async def test_a_filter_that_matches_nothing_sends_nothing() -> None:
    live = hub()
    mode = live.subscribe(A, "press", frozenset({"mode"}))
    live.publish(batch((A, "press", "t", T0, 1.0)), 1)
    live.publish(batch((A, "press", "mode", T0, "auto")), 2)
    [event] = await read(mode, 1)
    assert (event.id, event.points()) == ("2", [point("mode", 0, "auto")])


class CountingBatch(PointBatch):
    """A batch that counts what is asked of it."""

    __slots__ = ("arrow_built", "keys_read")

    def __init__(self) -> None:
        super().__init__()
        self.keys_read = 0
        self.arrow_built = 0

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        self.keys_read += 1
        return super().keys

    def to_arrow(self, series_ids: Any) -> Any:
        self.arrow_built += 1
        return super().to_arrow(series_ids)


async def test_nobody_listening_costs_nothing_but_a_look_at_a_dict() -> None:
    live = hub()
    stored = CountingBatch()
    stored.add(A, "press", "t", T0, 1.0)
    live.publish(stored, 1)
    assert (stored.keys_read, stored.arrow_built) == (0, 0)
    oven = live.subscribe(A, "oven", None)  # someone listens, to another device
    live.publish(stored, 2)
    assert (stored.keys_read, stored.arrow_built) == (1, 0)  # the batch's series, no points
    oven.close()
    live.publish(stored, 3)
    assert (stored.keys_read, stored.arrow_built) == (1, 0)


async def test_a_slow_subscriber_loses_its_oldest_events_and_is_told() -> None:
    live = hub(buffer_points=5)
    slow = live.subscribe(A, "press", None)
    fast = live.subscribe(A, "press", None)
    for sequence in (1, 2, 3):
        live.publish(
            batch(*((A, "press", "t", T0 + n * 1_000_000, float(sequence)) for n in range(3))),
            sequence,
        )
        [event] = await read(fast, 1)  # a subscriber that keeps up loses nothing
        assert event.id == str(sequence)
    overflow, newest = await read(slow, 2)
    assert (overflow.name, json.loads(overflow.data)) == ("overflow", {"dropped": 6})
    assert (newest.name, newest.id) == ("points", "3")
    assert [p["value"] for p in newest.points()] == [3.0, 3.0, 3.0]

    # a batch larger than the whole buffer keeps its newest points
    live.publish(batch(*((A, "press", "t", T0 + n, float(n)) for n in range(7))), 4)
    overflow, newest = await read(slow, 2)
    assert json.loads(overflow.data) == {"dropped": 2}
    assert [p["value"] for p in newest.points()] == [2.0, 3.0, 4.0, 5.0, 6.0]
    [event, _] = await read(fast, 2)
    assert json.loads(event.data) == {"dropped": 2}  # it too could not hold 7 in 5
    assert live.metrics.dropped._value.get() == 6 + 2 + 2


async def test_event_ids_only_increase() -> None:
    live = hub()
    press = live.subscribe(A, "press", None)
    live.publish(batch((A, "press", "t", T0, 1.0)), 5)
    live.publish(batch((A, "press", "t", T0, 2.0)), 5)  # the same batch again (a replay)
    live.publish(batch((A, "press", "t", T0, 3.0)), 4)
    live.publish(batch((A, "press", "t", T0, 4.0)), 6)
    events = await read(press, 2)
    assert [(e.id, e.points()[0]["value"]) for e in events] == [("5", 1.0), ("6", 4.0)]


async def test_open_streams_are_limited_per_tenant_and_counted() -> None:
    live = hub(streams_per_tenant=2)
    first = live.subscribe(A, "press", None)
    live.subscribe(A, "oven", None)
    with pytest.raises(StreamLimitError):
        live.subscribe(A, "press", None)
    live.subscribe(B, "press", None)  # another tenant has its own limit
    assert live.metrics.streams._value.get() == 3
    first.close()
    first.close()  # closing twice frees one place, once
    live.subscribe(A, "press", None)
    with pytest.raises(StreamLimitError):
        live.subscribe(A, "press", None)
    assert live.metrics.streams._value.get() == 3


async def test_quiet_streams_send_pings() -> None:
    live = hub()
    press = live.subscribe(A, "press", None)
    frames = press.frames(0.05)
    assert await asyncio.wait_for(anext(frames), 5) == PING
    assert await asyncio.wait_for(anext(frames), 5) == PING
    live.publish(batch((A, "press", "t", T0, 1.0)), 1)
    assert (await asyncio.wait_for(anext(frames), 5)).startswith(b"event: points\nid: 1\n")
    await frames.aclose()


async def test_closing_the_hub_ends_every_stream_and_refuses_new_ones() -> None:
    live = hub()
    press = live.subscribe(A, "press", None)
    received: list[bytes] = []

    async def consume() -> None:
        async for frame in press.frames(60):
            received.append(frame)

    reader = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    live.close()
    await asyncio.wait_for(reader, 5)  # ended, not a heartbeat later
    assert received == []
    with pytest.raises(HubClosedError):
        live.subscribe(A, "press", None)
    assert live.metrics.streams._value.get() == 0

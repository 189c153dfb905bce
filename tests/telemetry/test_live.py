"""The live stream of a device's points.

The hub on its own: fan-out by tenant and device, metric filters, a slow subscriber's bounded
buffer and its overflow event, the per-tenant limit, heartbeats, shutdown, and no work at all
when nobody listens. Then end to end: a real MQTT device publishes through the bundled broker,
ingest stores the points, and a real HTTP client reads ``GET /api/v1/devices/{id}/stream``
from the platform served by uvicorn (as ``plantwire up`` serves it) on an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.platform import Platform
from plantwire.serving import PlatformServer
from plantwire.telemetry.broker import BundledBroker
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
from tests.conftest import ADMIN_PASSWORD, PASSWORD, Seed, make_settings, seed_platform
from tests.security.helpers import SESSION_COOKIE, assert_problem
from tests.telemetry.conftest import app_with_broker, broker_settings, mqtt_device, wait_for

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


# --- the stream of a served platform ------------------------------------------------------------


@dataclass
class Served:
    """The platform with its bundled broker, served by uvicorn in a thread of its own."""

    url: str
    seed: Seed
    broker: BundledBroker
    platform: Platform
    devices: dict[str, dict[str, Any]]  # "press", "oven" (tenant a), "b-press" (tenant b)
    server: PlatformServer
    thread: threading.Thread
    http: httpx2.Client = field(default_factory=lambda: httpx2.Client(timeout=10))

    def stop(self) -> float:
        """Stop the server as a signal would; the seconds it took."""
        started = time.monotonic()
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server did not stop"
        return time.monotonic() - started

    def path(self, device: str) -> str:
        return f"{self.url}{DEVICES}/{self.devices[device]['id']}/stream"

    def publish(self, device: str, *payloads: dict[str, Any] | list[Any]) -> None:
        mqtt = self.devices[device]["mqtt"]
        with mqtt_device(self.broker, mqtt["username"], mqtt["password"]) as client:
            assert client.connack == "Success"
            for payload in payloads:
                client.publish(
                    self.devices[device]["topics"]["telemetry"], json.dumps(payload).encode()
                )

    def latest(self, device: str, tenant: str = "a") -> dict[str, Any]:
        headers = self.seed.tenants[tenant].headers["viewer"]
        answer = self.http.get(
            f"{self.url}{DEVICES}/{self.devices[device]['id']}/latest", headers=headers
        )
        assert answer.status_code == 200, answer.text
        latest: dict[str, Any] = answer.json()
        return latest

    def open_streams(self) -> float:
        for line in self.http.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith("plantwire_live_streams "):
                return float(line.split()[1])
        raise AssertionError("no plantwire_live_streams in /metrics")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    settings = broker_settings(
        tmp_path / "data",
        live_heartbeat_seconds=0.2,
        live_streams_per_tenant=3,
        live_stream_max_seconds=600,  # far beyond any test: ends come from elsewhere
    )
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:  # seeding
        seed = seed_platform(client)
        devices = {}
        for name, tenant in (("press", "a"), ("oven", "a"), ("b-press", "b")):
            made = client.post(
                DEVICES,
                json={"name": name, "metrics": [{"name": "t", "data_type": "float"}]},
                headers=seed.tenants[tenant].headers["engineer"],
            )
            assert made.status_code == 201, made.text
            devices[name] = made.json()

    with app_with_broker(settings) as (app, platform, broker):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, http="h11"
        )
        server = PlatformServer(config, platform)
        thread = threading.Thread(target=server.run, name="plantwire-served")
        thread.start()
        try:
            wait_for(
                lambda: server.started or not thread.is_alive(), "the server to start", timeout=20
            )
            assert server.started, "the server did not start"
            port = server.servers[0].sockets[0].getsockname()[1]
            wait_for(
                lambda: platform.ingest is not None and platform.ingest.ready.is_set(),
                "ingest to be ready",
                timeout=20,
            )
            running = Served(
                f"http://127.0.0.1:{port}", seed, broker, platform, devices, server, thread
            )
            with running.http:
                yield running
        finally:
            server.should_exit = True
            thread.join(30)


class Stream:
    """An open stream, read event by event (comments skipped unless asked for)."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.events = parse(response.iter_lines())

    def next(self, comments: bool = False) -> Event | None:
        """The next event; None at the end of the stream."""
        for event in self.events:
            if comments or event.name != "comment":
                return event
        return None

    def points(self, count: int) -> list[dict[str, Any]]:
        """Points of ``points`` events until ``count`` have come; ids must increase."""
        points: list[dict[str, Any]] = []
        last = 0
        while len(points) < count:
            event = self.next()
            assert event is not None, "the stream ended"
            assert event.name == "points", event
            assert event.id is not None
            assert int(event.id) > last
            last = int(event.id)
            points.extend(event.points())
        assert len(points) == count, points
        return points

    def quiet(self) -> None:
        """Nothing but a ping comes next: no event was waiting."""
        event = self.next(comments=True)
        assert event == Event("comment", "ping"), event


@contextlib.contextmanager
def stream(served: Served, device: str, headers: dict[str, str], **params: Any) -> Iterator[Stream]:
    with served.http.stream("GET", served.path(device), headers=headers, params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        yield Stream(response)


def test_the_stream_carries_exactly_the_points_stored(served: Served) -> None:
    viewer = served.seed.tenants["a"].headers["viewer"]
    with (
        stream(served, "press", viewer) as everything,
        stream(served, "press", viewer, metric=["t"]) as only_t,
    ):
        for opened in (everything, only_t):
            assert opened.next() == Event("latest", '{"points":[]}')
        # points of another device of the tenant, and of another tenant's device
        served.publish("oven", {"ts": T0 // 1000, "values": {"t": 1.0}})
        served.publish("b-press", {"ts": T0 // 1000, "values": {"t": 2.0}})
        wait_for(lambda: "t" in served.latest("oven"), "the oven's point", timeout=15)
        wait_for(lambda: "t" in served.latest("b-press", "b"), "tenant b's point", timeout=15)
        served.publish(
            "press",
            {"ts": T0 // 1000, "values": {"t": 20.5, "mode": "auto"}},
            [
                {"ts": T0 // 1000 + 1000, "values": {"t": 21}},
                {"ts": T0 // 1000 + 2000, "values": {"t": 22.5, "running": True}},
            ],
            {"t": "hot"},  # declared float: a dead letter, never on the stream
        )
        assert everything.points(5) == [
            point("t", 0, 20.5),
            point("mode", 0, "auto"),
            point("t", 1, 21.0),
            point("t", 2, 22.5),
            point("running", 2, True),
        ]
        assert only_t.points(3) == [point("t", 0, 20.5), point("t", 1, 21.0), point("t", 2, 22.5)]
        everything.quiet()
        only_t.quiet()

    # a stream opened now starts with the newest values
    with stream(served, "press", viewer, metric=["t", "running"]) as again:
        latest = again.next()
        assert latest is not None
        assert (latest.name, latest.id) == ("latest", None)
        assert sorted(latest.points(), key=lambda p: p["metric"]) == [
            point("running", 2, True),
            point("t", 2, 22.5),
        ]
    wait_for(lambda: served.open_streams() == 0, "the closed streams to be forgotten")


def test_the_console_streams_with_its_session_cookie(served: Served) -> None:
    login = served.http.post(
        f"{served.url}/api/v1/auth/login", json={"username": "a-operator", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    assert SESSION_COOKIE in served.http.cookies  # kept by the client, as a browser does
    # EventSource sends the page's cookies and an Accept header, nothing else
    with served.http.stream(
        "GET", served.path("press"), headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200, response.read()
        assert Stream(response).next() == Event("latest", '{"points":[]}')


def test_streams_are_refused_rightly(served: Served) -> None:
    a, b = served.seed.tenants["a"], served.seed.tenants["b"]
    http = served.http
    anonymous = assert_problem(http.get(served.path("press")), 401)
    assert anonymous["type"] == "urn:plantwire:problem:unauthenticated"
    assert_problem(http.get(served.path("press"), headers={"Authorization": "Bearer nope"}), 401)
    other = assert_problem(http.get(served.path("press"), headers=b.headers["tenant-admin"]), 404)
    missing_url = f"{served.url}{DEVICES}/no-such-device/stream"
    missing = assert_problem(http.get(missing_url, headers=b.headers["tenant-admin"]), 404)
    assert other["detail"].replace(served.devices["press"]["id"], "x") == missing["detail"].replace(
        "no-such-device", "x"
    )
    assert_problem(
        http.get(served.path("press"), headers=a.headers["viewer"], params={"metric": ""}), 422
    )
    too_many = {"metric": [f"m{n}" for n in range(101)]}
    assert_problem(
        http.get(served.path("press"), headers=a.headers["viewer"], params=too_many), 422
    )

    # three streams a tenant, here
    with contextlib.ExitStack() as stack:
        # kept referenced: a reader that is garbage-collected closes its connection
        streams = [
            stack.enter_context(stream(served, device, a.headers["viewer"]))
            for device in ("press", "press", "oven")
        ]
        assert all(opened.next() is not None for opened in streams)
        refused = assert_problem(http.get(served.path("oven"), headers=a.headers["engineer"]), 429)
        assert refused["type"] == "urn:plantwire:problem:too-many-streams"
        with stream(served, "b-press", b.headers["viewer"]) as other_tenant:
            assert other_tenant.next() is not None
            assert served.open_streams() == 4
    wait_for(lambda: served.open_streams() == 0, "the streams to close with their clients")
    with stream(served, "oven", a.headers["viewer"]) as again:
        assert again.next() is not None


def test_quiet_streams_are_kept_open_by_pings(served: Served) -> None:
    viewer = served.seed.tenants["a"].headers["viewer"]
    with stream(served, "press", viewer) as opened:
        assert opened.next() is not None
        started = time.monotonic()
        for _ in range(3):
            opened.quiet()
        assert 0.4 < time.monotonic() - started < 5  # every 0.2 s here


def test_shutdown_ends_open_streams_instead_of_waiting_for_them(served: Served) -> None:
    viewer = served.seed.tenants["a"].headers["viewer"]
    with stream(served, "press", viewer) as opened:
        assert opened.next() is not None
        stopped_in = served.stop()
        assert opened.next() is None  # the stream ended cleanly
    # uvicorn waits for open responses before the app's shutdown: without ending the streams
    # it would have waited out live_stream_max_seconds (600 s here)
    assert stopped_in < 15
    assert served.platform.store is None  # the app's shutdown ran to its end


def test_a_stream_ends_after_its_time(tmp_path: Path) -> None:
    """Bounded: the client reconnects (and authenticates again). Starlette's TestClient reads
    whole bodies, so a stream that ends is one it can read."""
    settings = make_settings(tmp_path / "data", live_stream_max_seconds=0.3)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        seed = seed_platform(client)
        made = client.post(
            DEVICES, json={"name": "p"}, headers=seed.tenants["a"].headers["engineer"]
        )
        started = time.monotonic()
        answer = client.get(
            f"{DEVICES}/{made.json()['id']}/stream", headers=seed.tenants["a"].headers["viewer"]
        )
        assert 0.3 <= time.monotonic() - started < 5
    assert answer.status_code == 200
    assert list(parse(iter(answer.text.split("\n")))) == [Event("latest", '{"points":[]}')]

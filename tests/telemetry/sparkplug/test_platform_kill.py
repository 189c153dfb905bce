"""The whole platform killed with SIGKILL under a Sparkplug edge node (issue 5: "kill -9 of
the platform after NBIRTH was acked, then NDATA after restart still decodes and no rebirth
storm follows").

``plantwire up`` runs as a subprocess (as in ``tests/telemetry/test_platform_kill.py``, whose
site and kill helpers this uses); an edge node made through the API publishes with paho at
QoS 1 through the bundled broker, which outlives each kill. First its NBIRTH and DBIRTH are
stored and acked, the platform is killed and started again, and NDATA/DDATA sent by alias
alone (no new birth) must decode and be stored. Then the node publishes steadily while the
platform is killed again and again (at random moments, and right after a store commit before
its ack): every message the stream accepted is stored exactly once, its seq follows on across
the restarts (through 255 → 0), and the node never receives a rebirth request."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from plantwire.telemetry.ingest import TELEMETRY_STREAM
from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from plantwire.telemetry.store import DuckDBStore
from tests.telemetry.test_platform_kill import (
    Site,
    admin_and_tenant,
    consumer_state,
    gauge,
    kill,
    new_site,
    settle,
)

pytestmark = pytest.mark.slow

T = DataType
G = "Plant1"
SEED = 5  # the number
PER_SECOND = 60  # messages a second from the node while it is killed
PLAN = ["ingesting", "commit", "ingesting", "commit"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with new_site(tmp_path) as made:
        yield made


class EdgeNode:
    """A Sparkplug edge node on paho: publishes at QoS 1 with its own seq, and keeps every
    NCMD it receives."""

    def __init__(self, port: int, node: dict[str, Any]) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"edge-{node['id']}", protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set(node["mqtt"]["username"], node["mqtt"]["password"])
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self.client.on_subscribe = self._subscribed
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.commands: list[tuple[str, bytes]] = []
        self.sent: list[mqtt.MQTTMessageInfo] = []
        self.disconnects = 0
        self.seq = 0

    def _connected(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        if not code.is_failure:
            self.connected.set()

    def _disconnected(self, _c: Any, _u: Any, _f: Any, _code: ReasonCode, _p: Any) -> None:
        self.disconnects += 1

    def _subscribed(self, _c: Any, _u: Any, _m: Any, codes: list[ReasonCode], _p: Any) -> None:
        assert not codes[0].is_failure
        self.subscribed.set()

    def _message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.commands.append((message.topic, bytes(message.payload)))

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        self.client.subscribe(f"spBv1.0/{G}/NCMD/Edge1", qos=1)
        assert self.subscribed.wait(10), "no SUBACK"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, kind: str, metrics: list[Metric], device: str | None = None) -> None:
        birth = kind.endswith("BIRTH")
        payload = Payload(timestamp=int(time.time() * 1000), metrics=metrics, seq=self.seq)
        self.seq = (self.seq + 1) % 256
        topic = f"spBv1.0/{G}/{kind}/Edge1" + (f"/{device}" if device else "")
        data = encode_payload(payload, include_datatypes=birth)
        self.sent.append(self.client.publish(topic, data, qos=1))

    def births(self) -> None:
        self.publish(
            "NBIRTH",
            [
                Metric(name="bdSeq", datatype=T.Int64, value=0),
                Metric(name="Count", alias=1, datatype=T.Int64, value=-1),
            ],
        )
        self.publish("DBIRTH", [Metric(name="Speed", alias=10, datatype=T.Double, value=-0.5)], "d")

    def data(self, n: int) -> None:
        """Message ``n``: NDATA with Count = n when n is even, else DDATA with Speed = n + 0.5,
        by alias only, as after a birth long acked."""
        if n % 2 == 0:
            self.publish("NDATA", [Metric(alias=1, datatype=T.Int64, value=n)])
        else:
            self.publish("DDATA", [Metric(alias=10, datatype=T.Double, value=n + 0.5)], "d")


class Steady(threading.Thread):
    """The node publishing message after message, paced, until ``stop`` is set."""

    def __init__(self, edge: EdgeNode, first: int, stop: threading.Event) -> None:
        super().__init__(name="edge-node-data", daemon=True)
        self.edge, self.first, self.stop = edge, first, stop
        self.count = 0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            while not self.stop.is_set():
                self.edge.data(self.first + self.count)
                self.count += 1
                ahead = started + self.count / PER_SECOND - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as error:  # handed to the test, which fails with it
            self.error = error


def stored(site: Site, admin: dict[str, str], device: str, metric: str) -> list[Any]:
    end = str(int(time.time() * 1000) + 60_000)
    answer = httpx.get(
        f"{site.url}/api/v1/devices/{device}/telemetry",
        params={"metric": metric, "start": "0", "end": end, "limit": "10000"},
        headers=admin,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("next") is None, "more points than one page"
    return [value for _, value in body["points"]]


async def until(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def find_device(site: Site, admin: dict[str, str], name: str) -> str | None:
    answer = httpx.get(
        f"{site.url}/api/v1/devices", params={"search": name}, headers=admin, timeout=10
    )
    items = [item for item in answer.json()["items"] if item["name"] == name]
    return items[0]["id"] if items else None


def make_node(site: Site, admin: dict[str, str], tenant: str) -> dict[str, Any]:
    body = {"name": f"{G}/Edge1", "kind": "sparkplug-node", "tenant": tenant}
    made = httpx.post(f"{site.url}/api/v1/devices", json=body, headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    node: dict[str, Any] = made.json()
    return node


def dead_letters(site: Site, admin: dict[str, str], device: str) -> int:
    url = f"{site.url}/api/v1/devices/{device}/dead-letters"
    count: int = httpx.get(url, headers=admin, timeout=10).json()["count"]
    return count


async def host_states(site: Site, tenant: str) -> int:
    """The host's STATE messages the stream holds of a tenant (its own, which ingest
    ignores)."""
    subject = f"tenant.{tenant}.spBv1//0.STATE.plantwire"
    client = await site.connect()
    try:
        info = await client.jetstream().stream_info(TELEMETRY_STREAM, subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0)
    finally:
        await client.close()


def scrape(site: Site) -> str:
    return httpx.get(f"{site.url}/metrics", timeout=10).text


async def test_a_killed_platform_decodes_ndata_of_an_old_birth_without_rebirth_requests(
    site: Site,
) -> None:
    chance = random.Random(SEED)
    first = site.start()
    first.wait_for('"ingest.started"')
    how, server = first.broker_line() or ("nothing", 0)
    assert how == "started", first.output()
    admin, tenant = admin_and_tenant(site)
    node = make_node(site, admin, tenant["id"])
    edge = EdgeNode(site.mqtt, node)
    edge.start()
    stop = threading.Event()
    steady = Steady(edge, 1, stop)
    try:
        # the births, stored and acked; then the platform is killed
        edge.births()
        await until(lambda: stored(site, admin, node["id"], "Count") == [-1], "the NBIRTH")
        await until(lambda: find_device(site, admin, f"{G}/Edge1/d") is not None, "the DBIRTH")
        device = find_device(site, admin, f"{G}/Edge1/d")
        assert device is not None
        floor, _, _, last = await consumer_state(site)
        while floor < last:  # the births acked (ingest acks right after the commit)
            await asyncio.sleep(0.1)
            floor, _, _, last = await consumer_state(site)
        first.kill()
        assert site.brokers() == [server], "the broker did not outlive the platform alone"

        # after the restart: data by alias, no new birth: decoded, stored, no rebirth request
        again = site.start()
        again.wait_for('"ingest.started"')
        edge.data(0)
        await until(lambda: stored(site, admin, node["id"], "Count") == [-1, 0], "NDATA")
        steady.start()  # DDATA with message 1, then on and on
        await until(lambda: len(stored(site, admin, device, "Speed")) >= 2, "DDATA")
        await asyncio.sleep(3)  # a rebirth request would have come by now
        assert edge.commands == []

        # killed again and again while the node publishes
        again.kill()
        for how in PLAN:
            await kill(site, how, chance, server)
        final = site.start()
        final.wait_for('"ingest.started"')
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        if steady.is_alive():
            steady.join(30)
    assert steady.error is None, steady.error
    for message in edge.sent:  # every PUBACK
        message.wait_for_publish(10)
    assert edge.disconnects == 0, "the broker cut the edge node off"
    await settle(site)

    sent = 2 + 1 + steady.count  # the births, message 0, the steady ones
    assert len(edge.sent) == sent
    _, _, _, last = await consumer_state(site)
    states = await host_states(site, tenant["id"])  # births and wills of the host's STATE
    assert states >= 2, "no STATE of the host in the stream"
    assert last == sent + states, "the stream accepted every message, once"
    numbers = range(steady.count + 1)
    counts = [-1] + [n for n in numbers if n % 2 == 0]
    speeds = [-0.5] + [n + 0.5 for n in numbers if n % 2]
    assert Counter(stored(site, admin, node["id"], "Count")) == Counter(counts)
    assert Counter(stored(site, admin, device, "Speed")) == Counter(speeds)
    assert edge.commands == [], "a rebirth request was sent"
    assert dead_letters(site, admin, node["id"]) == 0
    metrics = scrape(site)
    assert gauge(metrics, "plantwire_sparkplug_seq_gaps_total") == 0
    assert gauge(metrics, "plantwire_sparkplug_rebirth_requests_total") == 0
    assert "plantwire_ingest_bad_messages_total{" not in metrics, "the host's STATE refused"
    edge.stop()

    final.process.send_signal(signal.SIGTERM)
    assert final.process.wait(30) in (0, -signal.SIGTERM), final.output()
    key = f"sparkplug/{tenant['id']}/{G}/Edge1"
    with DuckDBStore(site.data / "telemetry") as store:
        state = store.states(key)[key]
    assert b'"seq":%d,' % ((sent - 1) % 256) in state, state
    assert steady.count > 256, "the seq did not wrap"

"""The whole platform killed with SIGKILL again and again while devices publish, and started
again on the same data dir and ports each time.

``plantwire up`` runs as a subprocess (HTTP API, bundled broker, ingest, upkeep) while three
devices made through the API publish at QoS 1. The platform process alone is killed (its
nats-server, in a session of its own, keeps serving the devices, as after a real crash) at
seeded random moments: while it starts, while it ingests, and from inside right after a
store commit and before the ack (``up_child.py``). Every restart must adopt the server the
pid file names, without cutting the devices off. At the end the points the platform serves
through its export API must be exactly the points of the messages the TELEMETRY stream
accepted, each once, and each refused message must be a dead letter once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import paho.mqtt.client as mqtt
import psutil
import pyarrow.parquet as pq
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from plantwire.telemetry.ingest import (
    CHECKPOINT,
    CONSUMER,
    TELEMETRY_STREAM,
    parse_telemetry_subject,
    stream_position,
)
from plantwire.telemetry.natsconf import PLATFORM_USER
from plantwire.telemetry.payloads import PayloadError, decode_json
from plantwire.telemetry.store import DuckDBStore
from plantwire.telemetry.store.model import to_micros
from tests.conftest import ADMIN_PASSWORD, free_ports

pytestmark = pytest.mark.slow

SEED = 4  # the number; another seed gives other kill moments
PLANTWIRE = Path(sys.executable).with_name("plantwire")  # the installed console script
CHILD = Path(__file__).with_name("up_child.py")
DEVICES = 3
PER_SECOND = 100  # messages a second from each device
BAD_EVERY = 97  # every 97th message of a device is refused (a string for an int metric)
TYPES = {"seq": "int", "temp": "float"}
# How each run after the first ends (the first is killed at a random moment while it
# ingests): killed from inside right after its N-th store commit, before the ack; at a
# random moment while it ingests; at a random moment from its start, often before it serves.
PLAN = ["commit"] * 4 + ["ingesting"] * 5 + ["starting"] * 2

Stored = tuple[str, str, int, object]  # device, metric, ts in epoch µs, value


@dataclass
class Run:
    """One ``plantwire up`` process and its output (stdout and stderr, in a file)."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None:
                pytest.fail(f"plantwire up exited ({self.process.returncode}): {self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} from plantwire up within {timeout} s: {self.output()}")
            time.sleep(0.02)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def broker_line(self) -> tuple[str, int] | None:
        """('started' or 'reused', pid) from the line ``plantwire up`` prints about its broker,
        if it got that far."""
        found = re.search(
            r"broker: +(started|reused the running) nats-server \(pid (\d+)\)", self.output()
        )
        if found is None:
            return None
        return found.group(1).split()[0], int(found.group(2))


@dataclass
class Site:
    """A data dir with fixed ports, where ``plantwire up`` is started again and again."""

    data: Path
    http: int
    nats: int
    monitor: int
    mqtt: int
    runs: list[Run] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def nats_conf(self) -> Path:
        return self.data / "broker" / "nats.conf"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PLANTWIRE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PLANTWIRE_ARGON2_TIME_COST": "1",
            "PLANTWIRE_ARGON2_MEMORY_KIB": "8",
            "PLANTWIRE_BROKER_MONITOR_PORT": str(self.monitor),  # no option for it
            "PLANTWIRE_LOG_FORMAT": "json",
            "PLANTWIRE_STORE_MAINTENANCE_SECONDS": "1",  # the upkeep runs, and is killed too
        }

    def init(self) -> None:
        command = [str(PLANTWIRE), "init", "--data-dir", str(self.data)]
        done = subprocess.run(command, capture_output=True, env=self.env(), timeout=60)
        assert done.returncode == 0, done.stderr

    def start(self, kill_after_commit: int | None = None) -> Run:
        """``plantwire up`` on this data dir and these ports; with ``kill_after_commit``,
        through ``up_child.py``."""
        options = [
            *("up", "--data-dir", str(self.data), "--http-port", str(self.http)),
            *("--mqtt-port", str(self.mqtt), "--nats-port", str(self.nats)),
        ]
        command = [str(PLANTWIRE), *options]
        if kill_after_commit is not None:
            command = [sys.executable, str(CHILD), str(kill_after_commit), *options]
        log = self.data.parent / f"up-{len(self.runs)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=self.env()
            )
        run = Run(process, log)
        self.runs.append(run)
        return run

    def brokers(self) -> list[int]:
        """The live nats-servers running this data dir's config."""
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                if process.info["status"] != psutil.STATUS_ZOMBIE and str(self.nats_conf) in (
                    process.info["cmdline"] or []
                ):
                    found.append(process.pid)
        return found

    def platform_password(self) -> str:
        return (self.data / "broker" / "platform-password").read_text(encoding="ascii").strip()

    async def connect(self) -> NatsClient:
        """The broker, as the platform's own NATS user."""
        return await nats.connect(
            f"nats://127.0.0.1:{self.nats}", user=PLATFORM_USER, password=self.platform_password()
        )

    def clean_up(self) -> None:
        """End every platform process and the broker they leave behind."""
        for run in self.runs:
            if run.process.poll() is None:
                run.kill()
        for pid in self.brokers():
            with contextlib.suppress(psutil.NoSuchProcess):
                server = psutil.Process(pid)
                server.kill()
                server.wait(10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    http, nats_port, monitor, mqtt_port = free_ports(4)
    made = Site(tmp_path / "data", http, nats_port, monitor, mqtt_port)
    try:
        made.init()
        yield made
    finally:
        made.clean_up()


class Publisher(threading.Thread):
    """A device publishing at QoS 1, paced, until ``stop`` is set. Message ``n`` carries
    ``seq = n``: even ones with the device's timestamp and a float beside it, odd ones flat
    (stamped by the platform when the stream stored them), every ``BAD_EVERY``-th refused.
    Counts the times the broker dropped the connection."""

    def __init__(self, port: int, device: dict[str, Any], stop: threading.Event) -> None:
        super().__init__(name=f"publisher-{device['name']}", daemon=True)
        self.port, self.stop = port, stop
        self.topic = device["topics"]["telemetry"]
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device["id"], protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set(device["mqtt"]["username"], device["mqtt"]["password"])
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.reconnect_delay_set(1, 1)
        self.connected = threading.Event()
        self.disconnects = 0
        self.sent: list[mqtt.MQTTMessageInfo] = []
        self.error: Exception | None = None

    def _connected(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        if not code.is_failure:
            self.connected.set()

    def _disconnected(self, _c: Any, _u: Any, _f: Any, _code: ReasonCode, _p: Any) -> None:
        if not self.stop.is_set():
            self.disconnects += 1

    @staticmethod
    def refused(n: int) -> bool:
        return n % BAD_EVERY == BAD_EVERY - 1

    @staticmethod
    def payload(n: int) -> bytes:
        if Publisher.refused(n):
            return json.dumps({"seq": f"bad-{n}"}).encode()
        if n % 2:
            return json.dumps({"seq": n}).encode()
        values = {"seq": n, "temp": n + 0.5}
        return json.dumps({"ts": int(time.time() * 1000), "values": values}).encode()

    def run(self) -> None:
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
            self.client.loop_start()
            if not self.connected.wait(10):
                raise RuntimeError(f"{self.name}: no CONNACK")
            started = time.monotonic()
            while not self.stop.is_set():
                n = len(self.sent)
                self.sent.append(self.client.publish(self.topic, self.payload(n), qos=1))
                ahead = started + (n + 1) / PER_SECOND - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            for message in self.sent:  # every PUBACK, before disconnecting
                message.wait_for_publish(10)
        except Exception as error:  # handed to the test, which fails with it
            self.error = error
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def acked(self) -> int:
        """How many messages the broker acknowledged (all of them, if it kept them all)."""
        return sum(message.is_published() for message in self.sent)


async def stream_points(site: Site) -> tuple[list[Stored], dict[str, list[bytes]], int]:
    """Every message the TELEMETRY stream holds, decoded as ingest decodes it: the points,
    the refused payloads of each device, and the stream's last sequence."""
    client = await site.connect()
    try:
        js = client.jetstream()
        state = (await js.stream_info(TELEMETRY_STREAM)).state
        reader = ConsumerConfig(
            durable_name="kill-test-reader",
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
        )
        await js.add_consumer(TELEMETRY_STREAM, reader)
        subscription = await js.pull_subscribe_bind("kill-test-reader", TELEMETRY_STREAM)
        points: list[Stored] = []
        refused: dict[str, list[bytes]] = {}
        read = 0
        while read < state.messages:
            for message in await subscription.fetch(1000, timeout=5):
                read += 1
                key = parse_telemetry_subject(message.subject)
                assert key is not None
                # as ingest stamps a flat payload: the time the stream stored the message,
                # floored to the millisecond (nats-py's metadata rounds to microseconds first)
                _, arrived = stream_position(message)
                try:
                    decoded = decode_json(message.data, arrived, declared=TYPES)
                except PayloadError:
                    refused.setdefault(key[1], []).append(message.data)
                    continue
                points += [(key[1], metric, ms * 1000, value) for metric, ms, value in decoded]
        await subscription.unsubscribe()
        await js.delete_consumer(TELEMETRY_STREAM, "kill-test-reader")
        return points, refused, state.last_seq
    finally:
        await client.close()


async def consumer_state(site: Site) -> tuple[int, int, int, int]:
    """The ingest consumer's (ack floor, pending, ack pending) and the stream's last sequence."""
    client = await site.connect()
    try:
        js = client.jetstream()
        consumer = await js.consumer_info(TELEMETRY_STREAM, CONSUMER)
        last = (await js.stream_info(TELEMETRY_STREAM)).state.last_seq
        floor = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else 0
        return floor or 0, consumer.num_pending or 0, consumer.num_ack_pending or 0, last
    finally:
        await client.close()


def gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


async def settle(site: Site) -> None:
    """Until ingest has stored and acked everything the stream holds, and /metrics says so."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=site.url, timeout=5) as http:
        while True:
            _floor, pending, ack_pending, last = await consumer_state(site)
            if not pending and not ack_pending:
                metrics = (await http.get("/metrics")).text
                lag = gauge(metrics, "plantwire_ingest_lag_messages")
                if not lag and gauge(metrics, "plantwire_ingest_stream_messages") == last:
                    return
            assert time.monotonic() < deadline, "ingest did not catch up"
            await asyncio.sleep(0.2)


def stored_points(site: Site, admin: dict[str, str], device: str, start_ms: int) -> list[Stored]:
    """What the platform holds for the device, through its Parquet export."""
    end_ms = int(time.time() * 1000) + 60_000
    answer = httpx.get(
        f"{site.url}/api/v1/devices/{device}/export",
        params={"format": "parquet", "start": str(start_ms), "end": str(end_ms)},
        headers=admin,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    points: list[Stored] = []
    for row in pq.read_table(io.BytesIO(answer.content)).to_pylist():
        value = row["v_int"] if row["kind"] == "int" else row["v_num"]
        points.append((row["device"], row["metric"], to_micros(row["ts"]), value))
    return points


def dead_letters(site: Site, admin: dict[str, str], device: str) -> list[bytes]:
    url = f"{site.url}/api/v1/devices/{device}/dead-letters"
    answer = httpx.get(url, params={"limit": 100}, headers=admin, timeout=10).json()
    assert answer["next_after"] is None, "more dead letters than one page"
    assert answer["count"] == len(answer["items"])
    return [item["payload"].encode() for item in answer["items"]]


def admin_and_tenant(site: Site) -> tuple[dict[str, str], dict[str, Any]]:
    """The admin's headers, and a new tenant made through the API."""
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    token = httpx.post(f"{site.url}/api/v1/auth/login", json=login, timeout=10).json()["token"]
    admin = {"Authorization": f"Bearer {token}"}
    tenant = httpx.post(
        f"{site.url}/api/v1/tenants", json={"name": "Plant"}, headers=admin, timeout=10
    ).json()
    return admin, tenant


def make_devices(site: Site) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The admin's headers, and devices of a new tenant made through the API."""
    admin, tenant = admin_and_tenant(site)
    metrics = [{"name": name, "data_type": kind} for name, kind in TYPES.items()]
    devices = []
    for number in range(DEVICES):
        body = {"name": f"press-{number}", "tenant": tenant["id"], "metrics": metrics}
        made = httpx.post(f"{site.url}/api/v1/devices", json=body, headers=admin, timeout=10)
        assert made.status_code == 201, made.text
        devices.append(made.json())
    return admin, devices


async def kill(site: Site, how: str, chance: random.Random, server: int) -> Run:
    """Start the platform and kill it with SIGKILL the ``how`` way (see ``PLAN``); check
    that it adopted the broker it found, if it got that far."""
    if how == "commit":
        run = site.start(kill_after_commit=chance.randint(1, 3))
        run.process.wait(30)  # kills itself: the stream has a backlog to commit
        found = re.search(r"killed after committing sequence (\d+)", run.output())
        assert found is not None, run.output()
        floor, _, _, _ = await consumer_state(site)
        assert floor < int(found.group(1)), "the batch committed last was acked"
    else:
        run = site.start()
        if how == "ingesting":
            run.wait_for('"ingest.started"')
            await asyncio.sleep(chance.uniform(0.0, 1.5))
        else:
            await asyncio.sleep(chance.uniform(0.2, 2.5))
        run.kill()
    assert run.process.returncode == -signal.SIGKILL, run.output()
    assert run.broker_line() in (None, ("reused", server)), run.output()
    assert site.brokers() == [server], "the broker did not outlive the platform alone"
    return run


async def test_the_platform_killed_again_and_again_stores_each_accepted_point_once(
    site: Site,
) -> None:
    chance = random.Random(SEED)
    plan = chance.sample(PLAN, len(PLAN))
    started_ms = int(time.time() * 1000)
    first = site.start()
    first.wait_for('"ingest.started"')
    admin, devices = make_devices(site)
    stop = threading.Event()
    publishers = [Publisher(site.mqtt, device, stop) for device in devices]
    for publisher in publishers:
        publisher.start()
    try:
        how, server = first.broker_line() or ("nothing", 0)
        assert how == "started", first.output()
        await asyncio.sleep(chance.uniform(0.5, 1.5))
        first.kill()
        assert site.brokers() == [server], "the broker did not outlive the platform alone"
        for how in plan:
            run = await kill(site, how, chance, server)
            for publisher in publishers:  # the broker kept serving them all along
                assert publisher.is_alive(), publisher.error
                assert not publisher.disconnects, f"{publisher.name} cut off: {run.output()}"
        final = site.start()
        final.wait_for('"ingest.started"')
        assert final.broker_line() == ("reused", server)
        await asyncio.sleep(1.0)  # a restart under load, left to run
    finally:
        stop.set()
        for publisher in publishers:
            publisher.join(30)
    assert 1 + len(plan) >= 10
    assert plan.count("commit") >= 3
    for publisher in publishers:
        assert publisher.error is None, publisher.error
        assert publisher.disconnects == 0, publisher.name
        assert publisher.acked() == len(publisher.sent)  # every message has its PUBACK

    await settle(site)
    accepted, refused, last_sequence = await stream_points(site)
    stored: list[Stored] = []
    for publisher, device in zip(publishers, devices, strict=True):
        stored += stored_points(site, admin, device["id"], started_ms - 60_000)
        # the stream accepted every message the device sent, once
        sent = range(len(publisher.sent))
        good = Counter(n for n in sent if not Publisher.refused(n))
        assert Counter(v for d, m, _, v in accepted if (d, m) == (device["id"], "seq")) == good
        bad = Counter(Publisher.payload(n) for n in sent if Publisher.refused(n))
        assert Counter(refused.get(device["id"], [])) == bad
        # and each refused one is a dead letter, once
        assert Counter(dead_letters(site, admin, device["id"])) == bad
    twice = [point for point, count in Counter(stored).items() if count > 1]
    assert not twice, f"{len(twice)} points stored twice, {twice[:3]}…"
    missing, extra = set(accepted) - set(stored), set(stored) - set(accepted)
    assert not missing, f"{len(missing)} accepted points not stored, {sorted(missing)[:3]}…"
    assert not extra, f"{len(extra)} points stored but never accepted, {sorted(extra)[:3]}…"
    assert len(stored) == len(accepted)

    final.process.send_signal(signal.SIGTERM)
    assert final.process.wait(30) in (0, -signal.SIGTERM), final.output()
    assert not psutil.pid_exists(server), "plantwire up left its broker running"
    assert not (site.data / "broker" / "nats.pid").exists()
    with DuckDBStore(site.data / "telemetry") as store:
        assert store.checkpoint(CHECKPOINT) == last_sequence

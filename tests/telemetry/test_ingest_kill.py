"""Ingest killed with SIGKILL again and again under load, then left to finish: the points
stored are exactly the messages the telemetry stream accepted, none missing, none twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from plantwire.telemetry.accounts import device_username, telemetry_topic
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.ingest import CONSUMER, TELEMETRY_STREAM
from plantwire.telemetry.store import DuckDBStore
from tests.telemetry.conftest import TENANT_A, mqtt_device, tenant

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("ingest_child.py")
PRESS = "press-1"
KILLS = 10


def start_child(config: Path) -> subprocess.Popen[str]:
    """Run ingest in its own process and wait until its stream and consumer exist."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(config)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        finish(child)
        pytest.fail(f"ingest child said {line!r} (exit {child.returncode})")
    return child


def finish(child: subprocess.Popen[str], seconds: float = 30) -> int:
    code = child.wait(timeout=seconds)
    assert child.stdout is not None
    child.stdout.close()
    return code


class Publisher(threading.Thread):
    """One device publishing ``{"n": i}`` at QoS 1, paced, counting what the broker acked."""

    def __init__(self, broker: BundledBroker, count: int, per_second: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.count, self.per_second = broker, count, per_second
        self.acked = 0

    def run(self) -> None:
        with mqtt_device(self.broker, device_username(TENANT_A, PRESS)) as press:
            assert press.connack == "Success"
            started = time.monotonic()
            for n in range(self.count):
                press.publish(telemetry_topic(PRESS), json.dumps({"n": n}).encode())
                self.acked += 1
                ahead = started + n / self.per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)


async def accepted_and_settled(broker: BundledBroker) -> tuple[list[int], bool]:
    """The values of every message in the telemetry stream, and whether ingest has applied
    and acked all of them."""
    endpoint = broker.endpoint
    client = await nats.connect(endpoint.url, user=endpoint.user, password=endpoint.password)
    try:
        js = client.jetstream()
        stream = await js.stream_info(TELEMETRY_STREAM)
        consumer = await js.consumer_info(TELEMETRY_STREAM, CONSUMER)
        settled = not consumer.num_pending and not consumer.num_ack_pending
        values = []
        for sequence in range(stream.state.first_seq, stream.state.last_seq + 1):
            message = await js.get_msg(TELEMETRY_STREAM, sequence)
            values.append(json.loads(message.data or b"{}")["n"])
        return values, settled
    finally:
        await client.close()


async def test_kill_9_again_and_again_loses_nothing_and_doubles_nothing(
    broker: BundledBroker, tmp_path: Path
) -> None:
    broker.apply([tenant(TENANT_A, PRESS)])
    config = tmp_path / "ingest.json"
    base: dict[str, Any] = {
        "store": str(tmp_path / "telemetry"),
        "endpoint": {
            "url": broker.endpoint.url,
            "user": broker.endpoint.user,
            "password": broker.endpoint.password,
        },
        "devices": [[TENANT_A, PRESS]],
    }
    chance = random.Random()
    publisher = Publisher(broker, count=4000, per_second=200)
    kills_between_commit_and_ack = 0
    child = None
    try:
        for round_ in range(KILLS):
            # rounds 0, 2 and 4 kill themselves right after a commit, before the ack
            between = round_ in (0, 2, 4)
            config.write_text(json.dumps({**base, "kill_after_commit": 2 if between else None}))
            child = start_child(config)
            if round_ == 0:
                publisher.start()
            if between:
                try:
                    finish(child, seconds=20)  # killed itself once two batches committed
                    kills_between_commit_and_ack += 1
                except subprocess.TimeoutExpired:  # nothing left to commit: kill it here
                    child.send_signal(signal.SIGKILL)
                    finish(child)
            else:
                await asyncio.sleep(chance.uniform(0.2, 1.2))
                child.send_signal(signal.SIGKILL)
                finish(child)
            assert child.returncode == -signal.SIGKILL
        publisher.join(timeout=60)
        assert not publisher.is_alive()
        config.write_text(json.dumps(base))
        child = start_child(config)
        deadline = time.monotonic() + 60
        while True:
            values, settled = await accepted_and_settled(broker)
            if settled:
                break
            assert time.monotonic() < deadline, "ingest did not catch up"
            await asyncio.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        assert finish(child) == 0
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            finish(child)
    assert kills_between_commit_and_ack >= 3
    assert publisher.acked == 4000
    assert sorted(values) == list(range(4000))  # the stream accepted every message once
    with DuckDBStore(tmp_path / "telemetry") as store:
        start, end = 0, int(time.time() * 1_000_000) + 3_600_000_000
        page = store.raw(TENANT_A, PRESS, "n", start, end, limit=10_000)
        assert sorted(point.value for point in page.points) == sorted(values)

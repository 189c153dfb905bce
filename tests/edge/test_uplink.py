"""The gateway's uplink through the real bundled broker into the platform: births and data
by alias reach the store, the primary host's STATE is waited for, commands come back as
writes, and points read while the broker is down are buffered and delivered after it
returns, in order, with their own timestamps, none lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from plantwire.edge.buffer import BufferedPoint, PointBuffer
from plantwire.edge.node import EdgeNodeSession, MetricSpec, Write
from plantwire.edge.uplink import SparkplugUplink, UplinkSettings
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.sparkplug import DataType
from tests.conftest import Seed
from tests.telemetry.sparkplug.test_host import eventually, got, ingest_started, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node

T = DataType
G, EDGE = "Plant1", "Gateway1"
NOW = 1_764_500_000_000


def _session() -> EdgeNodeSession:
    return EdgeNodeSession(
        G,
        EDGE,
        {
            "Press1": [
                MetricSpec("Temperature", T.Double, unit="degC"),
                MetricSpec("Setpoint", T.Float),
                MetricSpec("Running", T.Boolean),
            ]
        },
    )


@contextlib.asynccontextmanager
async def running(uplink: SparkplugUplink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _uplink(
    broker: BundledBroker,
    node: dict[str, Any],
    buffer: PointBuffer,
    tmp_path: Path,
    on_write: Callable[[Write], Awaitable[bool]] | None = None,
    **options: Any,
) -> SparkplugUplink:
    credentials: dict[str, str] = node["mqtt"]
    settings = UplinkSettings(
        "127.0.0.1",
        broker.options.mqtt_port,
        username=credentials["username"],
        password=credentials["password"],
        reconnect_min=0.2,
        reconnect_max=1.0,
        **options,
    )
    return SparkplugUplink(
        _session(), buffer, settings, bd_seq_file=tmp_path / "bdseq", on_write=on_write
    )


def _stored(client: TestClient, headers: dict[str, str], device: str, metric: str) -> list[Any]:
    answer = client.get(
        f"{DEVICES}/{device}/telemetry",
        params={"metric": metric, "start": "0", "end": str(NOW + 86_400_000), "limit": 10000},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    points: list[Any] = answer.json()["points"]
    return points


async def with_node(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> tuple[TestClient, dict[str, str], BundledBroker, dict[str, Any]]:
    """The platform, an engineer's headers, the broker, and the gateway's edge node made."""
    client, seed, broker = with_broker
    headers = seed.tenants["a"].headers["engineer"]
    node = make_node(client, headers, f"{G}/{EDGE}")
    await ingest_started(client)
    return client, headers, broker, node


async def command_confirmed(
    client: TestClient,
    headers: dict[str, str],
    device_id: str,
    metric: str,
    value: object,
    keep: tuple[str, ...] = (),
) -> None:
    """Marks ``metric`` writable (``keep``: other metrics the device's list keeps) and sends
    a command through the platform's API, waiting for it to be confirmed by the read-back."""
    metrics = [{"name": metric, "writable": True}] + [{"name": name} for name in keep]
    patched = client.patch(f"{DEVICES}/{device_id}", json={"metrics": metrics}, headers=headers)
    assert patched.status_code == 200, patched.text
    answer = await asyncio.to_thread(
        client.post,
        f"{DEVICES}/{device_id}/commands?wait=15",
        json={"metric": metric, "value": value},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "confirmed", answer.text


async def test_points_reach_the_platform_after_the_hosts_state_and_commands_come_back(
    with_broker: tuple[TestClient, Seed, BundledBroker], tmp_path: Path
) -> None:
    client, headers, broker, node = await with_node(with_broker)
    writes: list[Write] = []

    with PointBuffer(tmp_path / "buffer.sqlite") as buffer:

        async def write(command: Write) -> bool:  # the device takes it; its next read shows it
            writes.append(command)
            uplink.submit([BufferedPoint(command.device, command.metric, T.Float, NOW + 9, 7.5)])
            return True

        uplink = _uplink(broker, node, buffer, tmp_path, write, primary_host="plantwire")
        async with running(uplink):
            await eventually(lambda: uplink.stats.online, "births after the host's STATE", 15)
            assert uplink.stats.sessions == 1
            assert (tmp_path / "bdseq").read_text() == "1"
            uplink.submit(
                [
                    BufferedPoint("Press1", "Temperature", T.Double, NOW + 1, 71.5),
                    BufferedPoint("Press1", "Running", T.Boolean, NOW + 1, True),
                    BufferedPoint("Press1", "Setpoint", T.Float, NOW + 1, 5.0),
                    BufferedPoint("Press1", "Temperature", T.Double, NOW + 2, 71.5),  # same
                    BufferedPoint("Press1", "Temperature", T.Double, NOW + 3, 72.0),
                ]
            )
            press = await made(client, headers, f"{G}/{EDGE}/Press1")
            await eventually(
                lambda: len(_stored(client, headers, press["id"], "Temperature")) == 2,
                "the temperature stored",
            )
            assert _stored(client, headers, press["id"], "Temperature") == [
                ["2025-11-30T10:53:20.001000Z", 71.5],
                ["2025-11-30T10:53:20.003000Z", 72.0],
            ]  # by exception: the repeat at +2 ms was not sent
            units = {
                m["name"]: m.get("unit")
                for m in got(client, f"{DEVICES}/{press['id']}", headers)["metrics"]
            }
            assert units["Temperature"] == "degC"
            status = got(client, f"{DEVICES}/{node['id']}", headers)["sparkplug"]
            assert status["online"] is True
            assert status["bd_seq"] == 1
            # a command through the platform's API comes back as a typed write
            await command_confirmed(
                client, headers, press["id"], "Setpoint", 7.5, keep=("Temperature",)
            )
            assert writes == [Write("Press1", "Setpoint", 7.5)]
        assert uplink.stats.published == 5 - 1 + 1  # the repeat held back, the read-back sent
    # the clean stop published the death: the node is offline
    await eventually(
        lambda: got(client, f"{DEVICES}/{node['id']}", headers)["sparkplug"]["online"] is False,
        "the NDEATH",
    )


async def test_waiting_for_a_silent_primary_host_asks_for_its_state_again(
    with_broker: tuple[TestClient, Seed, BundledBroker], tmp_path: Path
) -> None:
    """A subscription made just as the host publishes its birth can miss it on nats-server;
    while no STATE has come, the uplink subscribes again (the broker then re-sends the
    retained one), less often as the wait goes on, and publishes nothing."""
    _, _, broker, node = await with_node(with_broker)
    with PointBuffer(tmp_path / "buffer.sqlite") as buffer:
        uplink = _uplink(broker, node, buffer, tmp_path, primary_host="not-running", host_wait=0.1)
        async with running(uplink):
            await eventually(lambda: uplink.stats.state_resubscribes >= 3, "three re-subscribes")
            uplink.submit([BufferedPoint("Press1", "Temperature", T.Double, NOW + 1, 71.5)])
            assert uplink.stats.connected
            assert not uplink.stats.online
            assert uplink.stats.births == 0
            assert uplink.stats.published == 0
        assert len(buffer) == 1  # kept for when the host comes


async def test_points_read_while_the_broker_is_down_arrive_after_in_order_once(
    with_broker: tuple[TestClient, Seed, BundledBroker], tmp_path: Path
) -> None:
    client, headers, broker, node = await with_node(with_broker)
    with PointBuffer(tmp_path / "buffer.sqlite") as buffer:
        uplink = _uplink(broker, node, buffer, tmp_path)
        async with running(uplink):
            await eventually(lambda: uplink.stats.online, "the births")
            uplink.submit([BufferedPoint("Press1", "Temperature", T.Double, NOW, 0.0)])
            press = await made(client, headers, f"{G}/{EDGE}/Press1")
            tenants = broker.tenants
            await asyncio.to_thread(broker.stop)
            await eventually(lambda: not uplink.stats.connected, "the uplink down")
            for n in range(1, 3001):  # read while the broker is away
                uplink.submit([BufferedPoint("Press1", "Temperature", T.Double, NOW + n, n * 0.5)])
            assert uplink.stats.buffered == 3000
            assert len(buffer) == 3000
            await asyncio.to_thread(broker.start, tenants)
            await eventually(lambda: len(buffer) == 0, "the buffer replayed", 30)
            assert uplink.stats.replayed == 3000
            uplink.submit([BufferedPoint("Press1", "Temperature", T.Double, NOW + 3001, -1.0)])
            await eventually(
                lambda: len(_stored(client, headers, press["id"], "Temperature")) == 3002,
                "every point stored",
                30,
            )
        stored = _stored(client, headers, press["id"], "Temperature")
        assert [value for _, value in stored] == [n * 0.5 for n in range(3001)] + [-1.0]
        assert uplink.stats.sessions >= 2
        # each connection attempt took the next bdSeq (a refused one too), kept in the file
        assert int((tmp_path / "bdseq").read_text()) == uplink.session.bd_seq
        assert uplink.session.bd_seq >= uplink.stats.sessions

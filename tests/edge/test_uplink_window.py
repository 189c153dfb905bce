"""The uplink's window of batches in flight, against a stand-in MQTT client whose PUBACKs the
test gives or refuses: confirmed batches are counted in order, a failed one ends the session
and every batch not confirmed goes back, in order, to what the buffer takes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from plantwire.edge.buffer import BufferedPoint, PointBuffer
from plantwire.edge.node import EdgeNodeSession, MetricSpec
from plantwire.edge.uplink import SparkplugUplink, UplinkSettings
from plantwire.telemetry.sparkplug import DataType, decode_payload

NOW = 1_764_500_000_000


class _Broker:
    """Publishes of births are acknowledged at once; each data message waits for the test."""

    def __init__(self) -> None:
        self.data: list[tuple[bytes, asyncio.Future[None]]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        if "BIRTH" in topic:
            return
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.data.append((payload, acked))
        await acked


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


async def test_batches_in_flight_land_in_order_and_the_unconfirmed_go_back_in_order(
    tmp_path: Path,
) -> None:
    session = EdgeNodeSession("Plant1", "Gateway1", {"Press1": [MetricSpec("n", DataType.Int32)]})
    with PointBuffer(tmp_path / "buffer.sqlite") as buffer:
        uplink = SparkplugUplink(session, buffer, UplinkSettings("unused", batch=2, window=2))
        broker = _Broker()
        uplink._host_online.set()
        sender = asyncio.create_task(uplink._send(broker))  # type: ignore[arg-type]
        await _until(lambda: uplink.stats.online)
        points = [BufferedPoint("Press1", "n", DataType.Int32, NOW + n, n) for n in range(6)]
        uplink.submit(points)
        await _until(lambda: len(broker.data) == 2)  # two batches of two: the window is full
        assert [m.value for m in decode_payload(broker.data[0][0]).metrics] == [0, 1]
        broker.data[0][1].set_result(None)
        await _until(lambda: len(broker.data) == 3)  # the first landed: the third goes out
        assert uplink.stats.published == 2
        broker.data[2][1].set_result(None)  # the third confirmed before the second: waits
        await asyncio.sleep(0.05)
        assert uplink.stats.published == 2
        broker.data[1][1].set_exception(aiomqtt.MqttError("connection lost"))
        with pytest.raises(aiomqtt.MqttError):
            await sender
        # the third was confirmed, but after the second, which was not: it goes back too
        # (sent again rather than out of order)
        assert uplink.stats.published == 2
        assert uplink._live == points[2:]
        uplink._go_offline()
        assert [point for _, point in buffer.peek(10)] == points[2:]

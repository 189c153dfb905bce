"""A load generator's MQTT 3.1.1 publisher: CONNECT, QoS 1 PUBLISH, PUBACK, DISCONNECT over
asyncio streams, with every packet encoded before the clock starts.

Benchmarks measure the platform, not the load generator. paho-mqtt spends ~150 µs of Python
per QoS 1 message (measured here); on a 2-core machine two paho publishers took most of a core
that the broker and ingest needed. This client writes pre-built packets (encoded by the
platform's own ``mqtt_packets``) and counts PUBACKs, a few microseconds per message. The
platform's own tests use paho: this is for benches only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from plantwire.telemetry.mqtt_packets import connect as connect_packet
from plantwire.telemetry.mqtt_packets import publish as publish_packet

__all__ = ["MqttError", "QoS1Publisher", "publish_packet"]

MAX_PACKET_ID = 65_535


class MqttError(RuntimeError):
    pass


class QoS1Publisher:
    """One MQTT connection that sends pre-encoded QoS 1 PUBLISH packets with at most
    ``inflight`` unacknowledged (fewer than 65,535: packet ids must stay unique in flight)."""

    def __init__(self, inflight: int = 2000) -> None:
        if not 0 < inflight < MAX_PACKET_ID:
            raise ValueError("inflight must be in 1..65534")
        self.inflight = inflight
        self.sent = 0
        self.acked = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._progress = asyncio.Event()

    async def connect(
        self, host: str, port: int, client_id: str, username: str, password: str
    ) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self._writer.write(connect_packet(client_id, username, password))
        connack = await asyncio.wait_for(self._reader.readexactly(4), 30)
        if connack[0] != 0x20 or connack[3] != 0:
            raise MqttError(f"connection refused: CONNACK {connack.hex()}")

    async def publish_all(self, packets: Sequence[bytes]) -> int:
        """Send every packet, wait for their PUBACKs; how many were acknowledged."""
        assert self._writer is not None
        reading = asyncio.create_task(self._count_acks(len(packets)))
        try:
            for packet in packets:
                while self.sent - self.acked >= self.inflight:
                    self._progress.clear()
                    if reading.done():
                        reading.result()  # raises what ended the reader
                        raise MqttError("the broker closed the connection")
                    await self._progress.wait()
                self._writer.write(packet)
                self.sent += 1
                if self.sent % 64 == 0:
                    await self._writer.drain()
            await self._writer.drain()
            await reading
        finally:
            reading.cancel()
        return self.acked

    async def _count_acks(self, expected: int) -> None:
        assert self._reader is not None
        pending = b""
        while self.acked < expected:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise MqttError("the broker closed the connection")
            data = pending + chunk
            whole = len(data) - len(data) % 4
            for offset in range(0, whole, 4):
                if data[offset] != 0x40 or data[offset + 1] != 2:  # PUBACK, length 2
                    raise MqttError(f"unexpected packet {data[offset : offset + 4].hex()}")
            self.acked += whole // 4
            pending = data[whole:]
            self._progress.set()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.write(b"\xe0\x00")  # DISCONNECT
            await self._writer.drain()
            self._writer.close()
            await self._writer.wait_closed()

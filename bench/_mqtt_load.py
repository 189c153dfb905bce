"""Load for ``bench/devices.py``: thousands of MQTT devices from a few processes, each
running all its connections on one event loop (uvloop) with a minimal MQTT 3.1.1 client
written for benchmarks: CONNECT, PUBLISH at QoS 1, PUBACK, DISCONNECT — a few bytes each,
so the load generator stays cheap on cores it shares with the platform it measures.

Each device publishes a pre-encoded JSON message once a second at its own offset in the
second (its index over the device count), so the load is spread evenly over the second and
over the processes. The processes report through shared counters (``LoadGenerators``)."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from typing import Any, cast

from plantwire.telemetry import mqtt_packets

__all__ = ["LoadGenerators", "connect_packet", "payloads", "publish_head", "raise_fd_limit"]

KEEPALIVE = 600  # seconds: the first devices connected wait idle for the last ones
# Per generator process, in the shared counters: connected, connect failures, connections
# lost, messages published, PUBACKs, connect latency p50 and p99 (µs), and when its connect
# phase began and ended (epoch µs).
CONNECTED, FAILED, LOST, SENT, ACKED, CONNECT_P50, CONNECT_P99, CONNECT_START, CONNECT_END = range(
    9
)
SLOTS = 9


def raise_fd_limit() -> int:
    """Open-file soft limit up to the hard limit (each connection is a descriptor, and
    nats-server inherits the limit through the platform process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- MQTT 3.1.1: the platform's own encoder (plantwire.telemetry.mqtt_packets) --------------


def connect_packet(client_id: str, username: str, password: str, keepalive: int) -> bytes:
    """CONNECT with clean session, username and password (MQTT 3.1.1 § 3.1)."""
    return mqtt_packets.connect(client_id, username, password, keepalive=keepalive)


def publish_head(topic: str, payload_length: int) -> bytes:
    """PUBLISH at QoS 1 (§ 3.3) up to its packet identifier, which follows, then the payload:
    the generator splices identifiers and pre-encoded payloads after it."""
    return mqtt_packets.publish(topic, bytes(payload_length), 1)[: -(2 + payload_length)]


DISCONNECT = mqtt_packets.disconnect()


@dataclass(slots=True)
class Counts:
    connected: int = 0
    failed: int = 0
    lost: int = 0
    sent: int = 0
    acked: int = 0


class Meter(asyncio.Protocol):
    """One device's connection: sends CONNECT, then counts CONNACK and PUBACKs."""

    def __init__(self, hello: bytes, counts: Counts, accepted: asyncio.Future[int]) -> None:
        self.hello = hello
        self.counts = counts
        self.accepted = accepted
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.packet_id = 0
        self.closing = False  # we hang up: not a lost connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.hello)

    def data_received(self, data: bytes) -> None:
        buffer = self.pending + data if self.pending else data
        at = 0
        while len(buffer) - at >= 2:
            kind = buffer[at] >> 4
            length, used = 0, 1
            for shift in range(4):  # Remaining Length, up to 4 bytes
                if at + used >= len(buffer):
                    self.pending = buffer[at:]
                    return
                byte = buffer[at + used]
                length |= (byte & 0x7F) << (7 * shift)
                used += 1
                if not byte & 0x80:
                    break
            if len(buffer) - at < used + length:
                break
            if kind == 4:  # PUBACK
                self.counts.acked += 1
            elif kind == 2 and not self.accepted.done():  # CONNACK: its return code
                self.accepted.set_result(buffer[at + used + 1])
            at += used + length
        self.pending = buffer[at:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.accepted.done():
            self.accepted.set_exception(ConnectionError(f"closed before CONNACK: {exc}"))
        elif not self.closing:
            self.counts.lost += 1

    def publish(self, head: bytes, payload: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.packet_id = self.packet_id % 65535 + 1
        self.transport.write(head + self.packet_id.to_bytes(2, "big") + payload)
        return True


# --- a load-generator process ----------------------------------------------------------------


def payloads(values: int, variants: int = 16) -> list[bytes]:
    """Pre-encoded flat JSON messages (``{"m0":20.25,…}``; the platform stamps them with the
    time the stream stored them), a few variants so values differ, all of one length (so
    one PUBLISH header serves them all)."""
    encoded = [
        (
            "{"
            + ",".join(f'"m{k}":{20 + (v * 7 + k * 3) % 17 * 0.25:.2f}' for k in range(values))
            + "}"
        ).encode()
        for v in range(variants)
    ]
    assert len({len(payload) for payload in encoded}) == 1
    return encoded


def run_generator(
    config: dict[str, Any],
    devices: list[dict[str, Any]],
    counters: SynchronizedArray[int],
    slot: int,
    go: Synchronized[float],
) -> None:
    """Child: connect ``devices`` (entries of index, id, username, password), wait for the
    shared start time ``go``, then publish on schedule until the run ends."""
    import uvloop

    raise_fd_limit()
    uvloop.run(_generate(config, devices, counters, slot * SLOTS, go))


async def _generate(
    config: dict[str, Any],
    devices: list[dict[str, Any]],
    counters: SynchronizedArray[int],
    base: int,
    go: Synchronized[float],
) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts()
    gate = asyncio.Semaphore(config["connect_concurrency"])
    meters: list[tuple[Meter, bytes, float]] = []  # (connection, PUBLISH head, offset in s)
    latencies: list[float] = []
    total = config["devices"]

    def share() -> None:
        counters[base + CONNECTED] = counts.connected
        counters[base + FAILED] = counts.failed
        counters[base + LOST] = counts.lost
        counters[base + SENT] = counts.sent
        counters[base + ACKED] = counts.acked

    async def connect(device: dict[str, Any]) -> None:
        hello = connect_packet(device["id"], device["username"], device["password"], KEEPALIVE)
        head = publish_head(device["topic"], len(messages[0]))
        for attempt in range(config["connect_retries"] + 1):
            async with gate:
                accepted: asyncio.Future[int] = loop.create_future()
                meter = Meter(hello, counts, accepted)
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(_open(meter, config["mqtt_port"]), 30)
                    code = await asyncio.wait_for(accepted, 30)
                except (OSError, TimeoutError):
                    code = -1
                if code == 0:
                    latencies.append(time.perf_counter() - started)
                    counts.connected += 1
                    meters.append((meter, head, device["index"] / total))
                    return
                if meter.transport is not None:
                    meter.transport.close()
            await asyncio.sleep(0.5 * (attempt + 1))
        counts.failed += 1

    async def keep_sharing() -> None:
        while True:
            share()
            await asyncio.sleep(0.5)

    messages = payloads(config["values"])
    sharer = asyncio.create_task(keep_sharing())
    counters[base + CONNECT_START] = int(time.time() * 1e6)
    await asyncio.gather(*(connect(device) for device in devices))
    latencies.sort()
    if latencies:
        counters[base + CONNECT_P50] = int(latencies[len(latencies) // 2] * 1e6)
        counters[base + CONNECT_P99] = int(latencies[int(len(latencies) * 0.99)] * 1e6)
    counters[base + CONNECT_END] = int(time.time() * 1e6)
    share()
    while go.value == 0:  # noqa: ASYNC110 - set by the parent process
        await asyncio.sleep(0.05)
    if go.value > 0:  # not called off
        await _publish(meters, messages, counts, go, config)
        share()
        await asyncio.sleep(config["drain_seconds"])  # the last PUBACKs
    for meter, _, _ in meters:
        if meter.transport is not None:
            meter.closing = True
            meter.transport.write(DISCONNECT)
            meter.transport.close()
    await asyncio.sleep(0.2)
    share()
    sharer.cancel()


async def _open(meter: Meter, port: int) -> None:
    await asyncio.get_running_loop().create_connection(lambda: meter, "127.0.0.1", port)


async def _publish(
    meters: list[tuple[Meter, bytes, float]],
    payloads: Sequence[bytes],
    counts: Counts,
    go: Synchronized[float],
    config: dict[str, Any],
) -> None:
    """Each device once a second from ``go`` on, at its own offset in the second (its index
    over the device count: evenly spread over all processes), woken every ``tick`` seconds;
    until ``seconds`` are over or the parent calls it off (``go`` below 0)."""
    meters.sort(key=lambda entry: entry[2])
    start, seconds, tick = go.value, config["seconds"], config["tick"]
    index, second = 0, 0
    variants = len(payloads)
    while meters and second < seconds and go.value > 0:
        now = time.time()
        while second < seconds:
            meter, head, offset = meters[index]
            if start + second + offset > now:
                break
            if meter.publish(head, payloads[(index + second) % variants]):
                counts.sent += 1
            index += 1
            if index == len(meters):
                index, second = 0, second + 1
        await asyncio.sleep(tick)


class LoadGenerators:
    """``processes`` load-generator processes (spawned) sharing out the devices, and the
    counters they report in. ``start`` has them connect; ``go(at)`` has them publish from
    that time on; ``stop`` calls them off (if still going) and waits for them."""

    def __init__(self, processes: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.processes = processes
        self.counters = self.context.Array("q", processes * SLOTS)
        self.start_at = self.context.Value("d", 0.0)
        self.children: list[BaseProcess] = []

    def start(self, devices: Sequence[dict[str, Any]], config: dict[str, Any]) -> None:
        """``devices``: dicts of index (0 … count - 1), id, username, password, topic."""
        for p in range(self.processes):
            share = list(devices[p :: self.processes])
            child = self.context.Process(
                target=run_generator,
                args=(config, share, self.counters, p, self.start_at),
                daemon=True,
            )
            child.start()
            self.children.append(child)

    def total(self, index: int) -> int:
        """A counter summed over the processes (``CONNECTED``, ``SENT``, ``ACKED``…)."""
        return sum(self.counters[p * SLOTS + index] for p in range(self.processes))

    def each(self, index: int) -> list[int]:
        return [self.counters[p * SLOTS + index] for p in range(self.processes)]

    def alive(self) -> bool:
        return all(child.is_alive() for child in self.children)

    def go(self, at: float) -> None:
        self.start_at.value = at

    def stop(self, timeout: float = 30) -> None:
        self.start_at.value = -1.0  # waiting or publishing still: call it off
        for child in self.children:
            child.join(timeout)
            if child.is_alive():
                child.terminate()
                child.join()

"""Benchmark: 10,000 devices connected at once, each publishing every second, held for 10
minutes (issue 4): no growth in ingest lag, and the platform process under 1 GiB resident.

The real platform: ``plantwire up`` in a subprocess on a temporary data dir and free ports,
with its bundled nats-server. The script

1. creates a tenant and ``--devices`` devices through the HTTP API (``--create-concurrency``
   requests in flight), each declaring its ``--values`` float metrics, and reports the rate,
   the latency, how many broker reloads they cost, and a create done alone once all exist
   (what a reload of the full config costs);
2. connects every device over MQTT 3.1.1 from ``--processes`` load-generator processes, each
   running all its connections on one event loop with a minimal client written for this
   bench (CONNECT, PUBLISH at QoS 1, PUBACK: a few bytes each, so the generator stays cheap
   on the 2 cores it shares with the platform), and reports how long the connect storm took
   (nats-server checks a bcrypt hash per connect) against the baseline of the same number of
   bcrypt checks in this process;
3. has each device publish a pre-encoded JSON message of ``--values`` values every second,
   spread evenly over the second, for ``--seconds``;
4. every ``--sample-seconds`` prints: resident memory of the platform process and of the
   broker process (apart), their CPU, messages published / PUBACKed / in the TELEMETRY stream,
   the ingest lag (messages in the stream ingest has not applied, read from the stream's
   consumer, beside the platform's own ``plantwire_ingest_lag_messages``), points stored
   (``plantwire_ingest_points_total``);
5. prints a verdict: the slope of the lag over the second half of the run (no growth: what it
   adds over that half stays under one second of messages), the largest platform RSS (under
   1 GiB), and whether every PUBACKed message was stored.

Points stored per second are printed with their ratio to the baseline of the issue, measured
in the same run: DuckDB appending Arrow tables into a plain table (``baselines.py``).

Run: ``.venv/bin/python bench/devices.py`` (10,000 devices for 10 minutes); smoke test:
``.venv/bin/python bench/devices.py --devices 500 --seconds 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from pathlib import Path
from typing import Any, cast

import bcrypt
import httpx
import nats
import psutil
from nats.js import JetStreamContext

from baselines import arrow_append_rate
from platform_process import PlatformProcess, parse_metrics, telemetry_backlog

GiB = 1024**3
MiB = 1024**2
PASSWORD_PROBE = "a-device-secret-of-256-random-bits-in-base64url"
KEEPALIVE = 600  # seconds: the first devices connected wait idle for the last ones
# Per generator process, in the shared counters: connected, connect failures, connections
# lost, messages published, PUBACKs, connect latency p50 and p99 (µs), and when its connect
# phase began and ended (epoch µs).
CONNECTED, FAILED, LOST, SENT, ACKED, CONNECT_P50, CONNECT_P99, CONNECT_START, CONNECT_END = range(
    9
)
SLOTS = 9


def _raise_fd_limit() -> int:
    """Open-file soft limit up to the hard limit (each connection is a descriptor, and
    nats-server inherits the limit through the platform process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- MQTT 3.1.1, the few packets a publishing device needs -----------------------------------


def _varint(length: int) -> bytes:
    """MQTT's Remaining Length: 7 bits a byte, high bit set while more follow."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _text(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id: str, username: str, password: str, keepalive: int) -> bytes:
    """CONNECT with clean session, username and password (MQTT 3.1.1 § 3.1)."""
    flags = 0x80 | 0x40 | 0x02
    body = _text("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big")
    body += _text(client_id) + _text(username) + _text(password)
    return b"\x10" + _varint(len(body)) + body


def publish_head(topic: str, payload_length: int) -> bytes:
    """PUBLISH at QoS 1 (§ 3.3) up to its packet identifier, which follows, then the payload."""
    topic_bytes = _text(topic)
    return b"\x32" + _varint(len(topic_bytes) + 2 + payload_length) + topic_bytes


DISCONNECT = b"\xe0\x00"


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

    _raise_fd_limit()
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
    await _publish(meters, messages, counts, go.value, config)
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
    start: float,
    config: dict[str, Any],
) -> None:
    """Each device once a second, at its own offset in the second (its index over the device
    count: evenly spread over all processes), woken every ``tick`` seconds."""
    meters.sort(key=lambda entry: entry[2])
    seconds, tick = config["seconds"], config["tick"]
    if not meters:
        await asyncio.sleep(max(0.0, start + seconds - time.time()))
        return
    index, second = 0, 0
    variants = len(payloads)
    while second < seconds:
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


# --- the platform side -----------------------------------------------------------------------


async def create_devices(
    platform: PlatformProcess, count: int, values: int, concurrency: int
) -> tuple[list[dict[str, Any]], list[float], float, str]:
    """A tenant and ``count`` devices through the API. Returns their credentials, each
    create's latency, the time it all took, and the tenant id."""
    metrics = [{"name": f"m{k}", "data_type": "float"} for k in range(values)]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=platform.url, headers=platform.headers, timeout=600, limits=limits
    ) as client:
        answer = await client.post("/api/v1/tenants", json={"name": "bench-devices"})
        answer.raise_for_status()
        tenant = answer.json()["id"]
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        made: list[dict[str, Any]] = [{} for _ in range(count)]

        async def create(index: int) -> None:
            body = {"name": f"meter-{index:05d}", "tenant": tenant, "metrics": metrics}
            async with gate:
                started = time.perf_counter()
                answer = await client.post("/api/v1/devices", json=body)
                latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
            device = answer.json()
            made[index] = {
                "index": index,
                "id": device["id"],
                "username": device["mqtt"]["username"],
                "password": device["mqtt"]["password"],
                "topic": device["topics"]["telemetry"],
            }

        started = time.perf_counter()
        await asyncio.gather(*(create(n) for n in range(count)))
        return made, latencies, time.perf_counter() - started, tenant


async def create_alone(platform: PlatformProcess, tenant: str, count: int) -> list[float]:
    """Latencies of ``count`` creates one after another, nothing else in flight: each pays
    a whole reload of the broker's config."""
    latencies = []
    async with httpx.AsyncClient(
        base_url=platform.url, headers=platform.headers, timeout=600
    ) as client:
        for n in range(count):
            started = time.perf_counter()
            answer = await client.post(
                "/api/v1/devices", json={"name": f"alone-{n}", "tenant": tenant}
            )
            latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
    return latencies


def broker_reloads(platform: PlatformProcess) -> int:
    """Reloads nats-server has logged (its log rotates at 10 MB; counted over all files)."""
    folder = platform.data_dir / "broker"
    return sum(
        path.read_text(errors="replace").count("Reloaded server configuration")
        for path in folder.glob("nats*.log*")
    )


def bcrypt_checks_per_second(rounds: int = 4, checks: int = 200) -> float:
    """The baseline of a connect storm: bcrypt checks at the devices' cost, one core."""
    hashed = bcrypt.hashpw(PASSWORD_PROBE.encode(), bcrypt.gensalt(rounds))
    started = time.perf_counter()
    for _ in range(checks):
        bcrypt.checkpw(PASSWORD_PROBE.encode(), hashed)
    return checks / (time.perf_counter() - started)


@dataclass(slots=True)
class Sample:
    t: float
    platform_rss: int
    broker_rss: int
    platform_cpu: float
    broker_cpu: float
    sent: int
    acked: int
    in_stream: int
    lag: int
    lag_gauge: float
    points: float
    messages: float
    appends: float
    append_seconds: float


def _sum(counters: SynchronizedArray[int], processes: int, index: int) -> int:
    return sum(counters[p * SLOTS + index] for p in range(processes))


class Sampler:
    """Reads both processes, the generators' counters, the stream and /metrics."""

    def __init__(
        self,
        platform: PlatformProcess,
        counters: SynchronizedArray[int],
        processes: int,
        js: JetStreamContext,
        client: httpx.AsyncClient,
    ) -> None:
        self.platform_process = psutil.Process(platform.pid)
        self.broker_process = psutil.Process(platform.broker_pid)
        for process in (self.platform_process, self.broker_process):
            process.cpu_percent()  # starts the interval
        self.platform = platform
        self.counters = counters
        self.processes = processes
        self.js = js
        self.client = client

    async def sample(self, t: float) -> Sample:
        last, _, waiting = await telemetry_backlog(self.js)
        values = parse_metrics((await self.client.get(f"{self.platform.url}/metrics")).text)
        return Sample(
            t=t,
            platform_rss=self.platform_process.memory_info().rss,
            broker_rss=self.broker_process.memory_info().rss,
            platform_cpu=self.platform_process.cpu_percent(),
            broker_cpu=self.broker_process.cpu_percent(),
            sent=_sum(self.counters, self.processes, SENT),
            acked=_sum(self.counters, self.processes, ACKED),
            in_stream=last,
            lag=waiting,
            lag_gauge=values.get("plantwire_ingest_lag_messages", float("nan")),
            points=values.get("plantwire_ingest_points_total", 0.0),
            messages=values.get("plantwire_ingest_messages_total", 0.0),
            appends=values.get("plantwire_ingest_store_seconds_count", 0.0),
            append_seconds=values.get("plantwire_ingest_store_seconds_sum", 0.0),
        )


HEADER = (
    f"{'t s':>6} {'platform RSS':>13} {'CPU':>5} {'broker RSS':>11} {'CPU':>5} "
    f"{'published':>11} {'PUBACKed':>11} {'in stream':>11} {'lag':>8} {'lag gauge':>9} "
    f"{'points stored':>14}"
)


def _row(sample: Sample) -> str:
    return (
        f"{sample.t:6.0f} {sample.platform_rss / MiB:10,.0f} MiB {sample.platform_cpu:4.0f}% "
        f"{sample.broker_rss / MiB:7,.0f} MiB {sample.broker_cpu:4.0f}% {sample.sent:11,} "
        f"{sample.acked:11,} {sample.in_stream:11,} {sample.lag:8,} {sample.lag_gauge:9,.0f} "
        f"{sample.points:14,.0f}"
    )


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, directory: Path) -> None:
    points_per_second = args.devices * args.values
    print(f"== baseline: DuckDB Arrow appends of {points_per_second * 10:,} points", flush=True)
    baseline = arrow_append_rate(points_per_second * 10)
    print(f"baseline: DuckDB Arrow append            {baseline:12,.0f} points/s   1.00x")
    checks = bcrypt_checks_per_second()
    print(f"baseline: bcrypt check at cost 4, 1 core {checks:12,.0f} checks/s")

    platform = PlatformProcess(directory / "data")
    started = time.perf_counter()
    platform.start()
    print(
        f"== platform up in {time.perf_counter() - started:.1f} s (pid {platform.pid}, broker "
        f"pid {platform.broker_pid}, MQTT port {platform.ports.mqtt})",
        flush=True,
    )
    generators: list[Any] = []
    try:
        await _measure(args, platform, baseline, checks, generators)
    finally:
        for generator in generators:
            generator.join(30)
            if generator.is_alive():
                generator.terminate()
                generator.join()
        platform.stop()


async def _measure(
    args: argparse.Namespace,
    platform: PlatformProcess,
    baseline: float,
    checks: float,
    generators: list[Any],
) -> None:
    print(
        f"== creating {args.devices:,} devices, {args.create_concurrency} requests in flight",
        flush=True,
    )
    reloads_before = broker_reloads(platform)
    devices, latencies, took, tenant = await create_devices(
        platform, args.devices, args.values, args.create_concurrency
    )
    reloads = broker_reloads(platform) - reloads_before
    latencies.sort()
    print(
        f"created {args.devices:,} devices in {took:.1f} s ({args.devices / took:,.0f}/s); "
        f"latency p50 {_ms(latencies, 0.5)} p99 {_ms(latencies, 0.99)}; {reloads:,} broker "
        f"reloads ({args.devices / max(reloads, 1):.1f} creates per reload)"
    )
    alone = await create_alone(platform, tenant, args.alone_creates)
    if alone:
        print(
            f"a create alone with {args.devices:,} devices registered: median "
            f"{statistics.median(alone) * 1000:,.0f} ms (one whole reload of the broker config)"
        )

    print(
        f"== connecting {args.devices:,} devices from {args.processes} processes "
        f"({args.connect_concurrency} connects in flight each)",
        flush=True,
    )
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", args.processes * SLOTS)
    go = context.Value("d", 0.0)
    config = {
        "devices": args.devices,
        "values": args.values,
        "seconds": args.seconds,
        "tick": args.tick,
        "mqtt_port": platform.ports.mqtt,
        "connect_concurrency": args.connect_concurrency,
        "connect_retries": 2,
        "drain_seconds": 5.0,
    }
    for p in range(args.processes):
        share = devices[p :: args.processes]
        process = context.Process(
            target=run_generator, args=(config, share, counters, p, go), daemon=True
        )
        process.start()
        generators.append(process)
    while True:
        connected = _sum(counters, args.processes, CONNECTED)
        failed = _sum(counters, args.processes, FAILED)
        if connected + failed >= args.devices:
            break
        if any(not process.is_alive() for process in generators):
            raise RuntimeError("a load generator died while connecting")
        await asyncio.sleep(0.1)
    ends = [counters[p * SLOTS + CONNECT_END] for p in range(args.processes)]
    while not all(ends):
        await asyncio.sleep(0.05)
        ends = [counters[p * SLOTS + CONNECT_END] for p in range(args.processes)]
    storm = (
        max(ends) - min(counters[p * SLOTS + CONNECT_START] for p in range(args.processes))
    ) / 1e6
    p50 = max(counters[p * SLOTS + CONNECT_P50] for p in range(args.processes)) / 1000
    p99 = max(counters[p * SLOTS + CONNECT_P99] for p in range(args.processes)) / 1000
    print(
        f"connected {connected:,} of {args.devices:,} ({failed:,} failed) in {storm:.1f} s "
        f"({connected / storm:,.0f} connects/s, {connected / storm / checks:.2f}x the bcrypt "
        f"baseline); connect latency p50 {p50:,.0f} ms, p99 {p99:,.0f} ms (the worse "
        f"process's)"
    )

    if not connected:
        raise RuntimeError("no device could connect; see the broker's log")
    nats_client = await nats.connect(
        platform.nats_url, user="platform", password=platform.nats_password
    )
    async with httpx.AsyncClient(timeout=30) as client:
        sampler = Sampler(platform, counters, args.processes, nats_client.jetstream(), client)
        before = await sampler.sample(0)
        start = time.time() + 1.0
        go.value = start
        print(
            f"== publishing: {args.devices:,} devices x 1 msg/s x {args.values} values "
            f"for {args.seconds} s (target {args.devices * args.values:,} points/s)",
            flush=True,
        )
        print(HEADER)
        samples: list[Sample] = []
        while True:
            await asyncio.sleep(args.sample_seconds - (time.time() - start) % args.sample_seconds)
            t = time.time() - start
            sample = await sampler.sample(t)
            samples.append(sample)
            print(_row(sample), flush=True)
            if t >= args.seconds - 0.5:
                break
        # after publishing: the last PUBACKs, then ingest drains what the stream holds
        drain_started = time.time()
        while time.time() - drain_started < args.drain_timeout:
            await asyncio.sleep(1.0)
            final = await sampler.sample(time.time() - start)
            if final.lag == 0 and time.time() - drain_started > 6:  # generators acked
                break
        print(_row(final), "(drained)")
    await nats_client.close()
    lost = _sum(counters, args.processes, LOST)
    _verdict(args, before, samples, final, baseline, lost, drain_started - start)


def _verdict(
    args: argparse.Namespace,
    before: Sample,
    samples: list[Sample],
    final: Sample,
    baseline: float,
    lost: int,
    publish_end: float,
) -> None:
    half = [s for s in samples if s.t >= args.seconds / 2]
    lag_slope = slope([(s.t, s.lag) for s in half])
    rss_slope = slope([(s.t, s.platform_rss) for s in half])
    growth = lag_slope * (args.seconds / 2)
    max_rss = max(s.platform_rss for s in [*samples, final])
    max_broker = max(s.broker_rss for s in [*samples, final])
    end = samples[-1]
    stored_rate = (end.points - before.points) / end.t
    steady = [s for s in samples if s.t >= args.seconds / 2]
    steady_rate = (
        (steady[-1].points - steady[0].points) / (steady[-1].t - steady[0].t)
        if len(steady) > 1
        else stored_rate
    )
    stored_messages = final.messages - before.messages
    print("== verdict")
    print(
        f"points stored per second over the run   {stored_rate:12,.0f} points/s   "
        f"{stored_rate / baseline:.3f}x baseline (target {args.devices * args.values:,})"
    )
    print(
        f"the same over the second half           {steady_rate:12,.0f} points/s   "
        f"{steady_rate / baseline:.3f}x baseline"
    )
    holds = growth < args.devices
    print(
        f"ingest lag, second half: slope {lag_slope:+,.1f} msg/s, {growth:+,.0f} messages over "
        f"{args.seconds / 2:.0f} s (bound: one second of messages, {args.devices:,}); "
        f"largest {max(s.lag for s in half) if half else 0:,}: "
        f"{'NO GROWTH' if holds else 'GROWS'}"
    )
    print(
        f"platform RSS: largest {max_rss / MiB:,.0f} MiB (bound 1,024 MiB): "
        f"{'UNDER 1 GiB' if max_rss < GiB else 'OVER 1 GiB'}; second half slope "
        f"{rss_slope * 60 / MiB:+,.1f} MiB/min; broker RSS largest {max_broker / MiB:,.0f} MiB"
    )
    appends = end.appends - before.appends
    if appends:
        appending = end.append_seconds - before.append_seconds
        each = (end.messages - before.messages) / appends
        print(
            f"ingest: {appends:,.0f} store appends of {each:,.1f} messages on average, "
            f"{appending / appends * 1000:.1f} ms each; appending took {appending / end.t:.0%} "
            "of the run"
        )
    complete = stored_messages >= final.acked
    print(
        f"messages: published {final.sent:,}, PUBACKed {final.acked:,}, accepted by the "
        f"stream {final.in_stream - before.in_stream:,}, applied by ingest "
        f"{stored_messages:,.0f}, points stored {final.points - before.points:,.0f} of "
        f"{final.acked * args.values:,}; connections lost {lost:,}: "
        f"{'ALL STORED' if complete else 'MISSING'} (drained {final.t - publish_end:.0f} s "
        f"after publishing ended)"
    )


def _ms(values: Sequence[float], quantile: float) -> str:
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, int(len(values) * quantile))] * 1000:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=600, help="how long they publish")
    parser.add_argument("--values", type=int, default=10, help="values per message")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--create-concurrency", type=int, default=32)
    parser.add_argument("--alone-creates", type=int, default=3)
    parser.add_argument("--connect-concurrency", type=int, default=200, help="per process")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--tick", type=float, default=0.01, help="publisher wake-up, seconds")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the data dir (prints it)")
    args = parser.parse_args()
    limit = _raise_fd_limit()
    if limit < args.devices + 1000:
        parser.error(f"open-file hard limit {limit} is too low for {args.devices:,} connections")
    print(f"{os.cpu_count()} CPUs; open-file limit {limit:,}")
    if args.keep:
        directory = Path(tempfile.mkdtemp(prefix="pw-bench-devices-"))
        print(f"data dir kept: {directory / 'data'}")
        asyncio.run(run(args, directory))
    else:
        with tempfile.TemporaryDirectory(prefix="pw-bench-devices-") as name:
            asyncio.run(run(args, Path(name)))


if __name__ == "__main__":
    main()

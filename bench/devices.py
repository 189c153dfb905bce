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
in the same run: DuckDB appending Arrow tables into a plain table (``bench/_baselines.py``).

Run: ``.venv/bin/python bench/devices.py`` (10,000 devices for 10 minutes); smoke test:
``.venv/bin/python bench/devices.py --devices 500 --seconds 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import nats
import psutil
from nats.js import JetStreamContext

from _baselines import arrow_append_rate
from _mqtt_load import (
    ACKED,
    CONNECT_END,
    CONNECT_P50,
    CONNECT_P99,
    CONNECT_START,
    CONNECTED,
    FAILED,
    LOST,
    SENT,
    LoadGenerators,
    raise_fd_limit,
)
from _platform_process import PlatformProcess, parse_metrics, telemetry_backlog

GiB = 1024**3
MiB = 1024**2
PASSWORD_PROBE = "a-device-secret-of-256-random-bits-in-base64url"


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
    t: float  # seconds since publishing began
    platform_rss: int
    broker_rss: int
    platform_cpu: float  # percent of one core since the previous sample
    broker_cpu: float
    sent: int  # messages the devices published
    acked: int  # PUBACKs they received
    in_stream: int  # the TELEMETRY stream's last sequence
    lag: int  # messages in the stream ingest has not applied (from its consumer)
    lag_gauge: float  # the platform's own plantwire_ingest_lag_messages
    points: float  # plantwire_ingest_points_total
    messages: float  # plantwire_ingest_messages_total
    appends: float  # store appends (plantwire_ingest_store_seconds_count)
    append_seconds: float  # and their time (…_sum)


class Sampler:
    """Reads both processes, the generators' counters, the stream and /metrics."""

    def __init__(
        self,
        platform: PlatformProcess,
        load: LoadGenerators,
        js: JetStreamContext,
        client: httpx.AsyncClient,
    ) -> None:
        self.platform_process = psutil.Process(platform.pid)
        self.broker_process = psutil.Process(platform.broker_pid)
        for process in (self.platform_process, self.broker_process):
            process.cpu_percent()  # starts the interval
        self.platform = platform
        self.load = load
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
            sent=self.load.total(SENT),
            acked=self.load.total(ACKED),
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
        f"{sample.t:6.0f} {sample.platform_rss / MiB:9,.0f} MiB {sample.platform_cpu:4.0f}% "
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


def _ms(values: Sequence[float], quantile: float) -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000:,.0f} ms"


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
    load = LoadGenerators(args.processes)
    try:
        devices = await create_phase(args, platform)
        await connect_phase(args, platform, load, devices, checks)
        before, samples, final, ended = await publish_phase(args, platform, load)
        verdict(args, before, samples, final, baseline, load.total(LOST), ended)
    except BaseException:
        print(
            f"-- platform log:\n{platform.log_tail()}\n-- broker log:\n{platform.broker_log_tail()}"
        )
        raise
    finally:
        load.stop()
        platform.stop()


async def create_phase(args: argparse.Namespace, platform: PlatformProcess) -> list[dict[str, Any]]:
    print(
        f"== creating {args.devices:,} devices, {args.create_concurrency} requests in flight",
        flush=True,
    )
    reloads_before = broker_reloads(platform)
    devices, latencies, took, tenant = await create_devices(
        platform, args.devices, args.values, args.create_concurrency
    )
    reloads = broker_reloads(platform) - reloads_before
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
    return devices


async def connect_phase(
    args: argparse.Namespace,
    platform: PlatformProcess,
    load: LoadGenerators,
    devices: list[dict[str, Any]],
    checks: float,
) -> None:
    print(
        f"== connecting {args.devices:,} devices from {args.processes} processes "
        f"({args.connect_concurrency} connects in flight each)",
        flush=True,
    )
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
    load.start(devices, config)
    while not all(load.each(CONNECT_END)):  # every process has tried all its devices
        if not load.alive():
            raise RuntimeError("a load generator died while connecting")
        await asyncio.sleep(0.1)
    connected, failed = load.total(CONNECTED), load.total(FAILED)
    storm = (max(load.each(CONNECT_END)) - min(load.each(CONNECT_START))) / 1e6
    print(
        f"connected {connected:,} of {args.devices:,} ({failed:,} failed) in {storm:.1f} s "
        f"({connected / storm:,.0f} connects/s, {connected / storm / checks:.2f}x the bcrypt "
        f"baseline); connect latency p50 {max(load.each(CONNECT_P50)) / 1000:,.0f} ms, p99 "
        f"{max(load.each(CONNECT_P99)) / 1000:,.0f} ms (the worse process's)",
        flush=True,
    )
    if not connected:
        raise RuntimeError("no device could connect")


async def publish_phase(
    args: argparse.Namespace, platform: PlatformProcess, load: LoadGenerators
) -> tuple[Sample, list[Sample], Sample, float]:
    """Publishing for ``--seconds``, sampled; then until ingest has drained the stream.
    Returns the sample before, those during, the last (drained), and when publishing ended
    (seconds since it began)."""
    nats_client = await nats.connect(
        platform.nats_url, user="platform", password=platform.nats_password
    )
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            sampler = Sampler(platform, load, nats_client.jetstream(), client)
            before = await sampler.sample(0)
            start = time.time() + 1.0
            load.go(start)
            print(
                f"== publishing: {args.devices:,} devices x 1 msg/s x {args.values} values for "
                f"{args.seconds} s (target {args.devices * args.values:,} points/s)",
                flush=True,
            )
            print(HEADER)
            samples: list[Sample] = []
            while not samples or samples[-1].t < args.seconds - 0.5:
                now = time.time() - start  # next: a multiple of sample_seconds, or the end
                due = min(now - now % args.sample_seconds + args.sample_seconds, args.seconds)
                await asyncio.sleep(max(0.0, due - now))
                samples.append(await sampler.sample(time.time() - start))
                print(_row(samples[-1]), flush=True)
            ended = time.time() - start
            while True:  # the generators' last PUBACKs (5 s), then ingest drains the stream
                await asyncio.sleep(1.0)
                final = await sampler.sample(time.time() - start)
                if (final.lag == 0 and final.t - ended > 6) or final.t - ended > args.drain_timeout:
                    break
            print(_row(final), "(drained)" if final.lag == 0 else "(NOT drained)")
    finally:
        await nats_client.close()
    return before, samples, final, ended


def verdict(
    args: argparse.Namespace,
    before: Sample,
    samples: list[Sample],
    final: Sample,
    baseline: float,
    lost: int,
    ended: float,
) -> None:
    half = [s for s in samples if s.t >= args.seconds / 2]
    lag_slope = slope([(s.t, s.lag) for s in half])
    rss_slope = slope([(s.t, s.platform_rss) for s in half])
    growth = lag_slope * (args.seconds / 2)
    max_rss = max(s.platform_rss for s in [*samples, final])
    max_broker = max(s.broker_rss for s in [*samples, final])
    end = samples[-1]
    stored_rate = (end.points - before.points) / end.t
    steady_rate = (
        (half[-1].points - half[0].points) / (half[-1].t - half[0].t)
        if len(half) > 1
        else stored_rate
    )
    print("== verdict")
    print(
        f"points stored per second over the run   {stored_rate:12,.0f} points/s   "
        f"{stored_rate / baseline:.3f}x baseline (target {args.devices * args.values:,})"
    )
    print(
        f"the same over the second half           {steady_rate:12,.0f} points/s   "
        f"{steady_rate / baseline:.3f}x baseline"
    )
    print(
        f"ingest lag, second half: slope {lag_slope:+,.1f} msg/s, {growth:+,.0f} messages over "
        f"{args.seconds / 2:.0f} s (bound: one second of messages, {args.devices:,}); largest "
        f"{max((s.lag for s in half), default=0):,}: "
        f"{'NO GROWTH' if growth < args.devices else 'GROWS'}"
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
    applied = final.messages - before.messages
    scheduled = args.devices * args.seconds
    print(
        f"messages: scheduled {scheduled:,}, published {final.sent:,}, PUBACKed {final.acked:,}, "
        f"accepted by the stream {final.in_stream - before.in_stream:,}, applied by ingest "
        f"{applied:,.0f}, points stored {final.points - before.points:,.0f} of "
        f"{final.acked * args.values:,}; connections lost {lost:,}: "
        + (
            f"ALL STORED (drained {final.t - ended:.0f} s after publishing ended)"
            if applied >= final.acked
            else f"MISSING {final.acked - applied:,.0f}"
            if final.lag == 0
            else f"NOT DRAINED: {final.lag:,} still in the stream {final.t - ended:.0f} s after "
            "publishing ended"
        )
    )


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
    limit = raise_fd_limit()
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

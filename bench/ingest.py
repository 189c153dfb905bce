"""Benchmark: telemetry ingest end to end — MQTT → bundled broker → TELEMETRY stream →
ingest → DuckDB store — in points stored per second.

Publishers (``--publishers`` processes, one MQTT connection each, QoS 1 with up to
``--inflight`` messages unacknowledged) replay pre-encoded MQTT packets of JSON messages of 20
values each with a minimal client (``_mqtt.py``), so that the platform, not the load
generator, is measured. With ``--sparkplug`` each publisher is a Sparkplug B edge node
instead: an NBIRTH, a DBIRTH of one device with 100 Double metrics (aliases 1-100), then DDATA
messages of all 100 by alias, each with its timestamp and data type. Ingest runs in a process of its
own, as in the platform. Each publisher makes its packets and connects before the clock
starts; the figure is the points stored divided by the time from the first publish (all
publishers told to go at once) until ingest has applied the last accepted message. Printed
beside it, as the baseline measured in the same run: DuckDB appending the same number of
points from Arrow tables into a plain table (the store's raw write speed). Also printed:
messages the publishers had acknowledged, messages the stream accepted, points stored — the
broker may drop under overload, and it must show — and the CPU the ingest process, the
broker and the publishers used over the run.

Run: ``.venv/bin/python bench/ingest.py [--messages N] [--publishers N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from _baselines import arrow_append_rate
from _platform_process import free_ports, telemetry_backlog

ROOT = Path(__file__).resolve().parent.parent
TENANT = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
PASSWORD = "bench-device-password"
VALUES = 20
SPARKPLUG_VALUES = 100
GROUP = "Bench"


def _device(n: int) -> str:
    return f"meter-{n}"


def _sparkplug_device(n: int) -> str:
    return f"{GROUP}/{_device(n)}/D1"


# --- the processes ---------------------------------------------------------------------------


def run_ingest(config: dict[str, Any]) -> None:
    """Child: ingest from the broker into the store until SIGTERM; prints the CPU seconds
    it used."""
    import resource
    import signal
    from collections.abc import Iterable, Mapping, Sequence

    from prometheus_client import CollectorRegistry

    from plantwire.ids.server import run_loop
    from plantwire.observability import configure_logging
    from plantwire.telemetry.broker import BrokerEndpoint
    from plantwire.telemetry.ingest import Ingest, IngestMetrics
    from plantwire.telemetry.sparkplug_intake import SparkplugIntake, SparkplugMetrics
    from plantwire.telemetry.store import DuckDBStore

    class Everyone:
        def declared(
            self, keys: Iterable[tuple[str, str]]
        ) -> dict[tuple[str, str], Mapping[str, str] | None]:
            return {key: {} for key in keys}

    class EveryNode:  # the registry: every edge node is known, its devices by their names
        def node(self, tenant: str, group: str, edge_node: str) -> str | None:
            return f"{group}/{edge_node}"

        def device(self, tenant: str, node_id: str, name: str) -> str | None:
            return name

        def describe(self, births: Mapping[tuple[str, str], Sequence[Any]]) -> int:
            return 0  # births are rare: their metadata is not what this measures

    async def main() -> None:
        configure_logging("console", "warning")
        store = DuckDBStore(Path(config["store"]))
        sparkplug = SparkplugIntake(EveryNode(), SparkplugMetrics(CollectorRegistry()))
        ingest = Ingest(
            BrokerEndpoint(**config["endpoint"]),
            store,
            Everyone(),
            IngestMetrics(CollectorRegistry()),
            sparkplug=sparkplug if config["sparkplug"] else None,
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        task = asyncio.create_task(ingest.run(stop))
        await ingest.ready.wait()
        print("ready", flush=True)
        await task
        store.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"cpu {usage.ru_utime + usage.ru_stime}", flush=True)

    run_loop(main())  # uvloop, as under the platform's HTTP server


def run_publisher(config: dict[str, Any], index: int) -> None:
    """Child: one device publishing its share of pre-encoded messages at QoS 1 (a minimal
    MQTT client, so that the load generator leaves the CPU to the platform)."""
    from _mqtt import QoS1Publisher, publish_packet
    from plantwire.telemetry.accounts import device_username, telemetry_topic

    device = _device(index)
    count = config["messages"] // config["publishers"]
    base = 1_764_000_000_000
    if config["sparkplug"]:
        packets = [
            publish_packet(topic, payload, n % 65_535 + 1)
            for n, (topic, payload) in enumerate(_sparkplug_messages(device, count, base))
        ]
    else:
        topic = telemetry_topic(device)
        packets = [
            publish_packet(
                topic,
                json.dumps(
                    {"ts": base + n, "values": {f"m{k}": n * 0.5 + k for k in range(VALUES)}}
                ).encode(),
                n % 65_535 + 1,
            )
            for n in range(count)
        ]

    async def publish() -> tuple[int, float]:
        client = QoS1Publisher(config["inflight"])
        await client.connect(
            "127.0.0.1", config["mqtt_port"], device, device_username(TENANT, device), PASSWORD
        )
        try:
            print("ready", flush=True)  # the packets are made: wait for the clock to start
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            before = _cpu_seconds()
            acked = await client.publish_all(packets)
            return acked, _cpu_seconds() - before
        finally:
            await client.close()

    acked, cpu = asyncio.run(publish())
    print(acked, cpu, flush=True)


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sparkplug_messages(edge_node: str, count: int, base: int) -> list[tuple[str, bytes]]:
    """An edge node's NBIRTH, its device's DBIRTH, then ``count`` DDATA messages."""
    from plantwire.telemetry.sparkplug.codec import encode_payload
    from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload

    prefix = f"spBv1.0/{GROUP}"
    names = [f"m{k}" for k in range(SPARKPLUG_VALUES)]
    birth = Payload(base, [Metric("bdSeq", None, base, DataType.Int64, 0)], seq=0)
    device_birth = Payload(
        base,
        [Metric(name, k + 1, base, DataType.Double, 0.0) for k, name in enumerate(names)],
        seq=1,
    )
    messages = [
        (f"{prefix}/NBIRTH/{edge_node}", encode_payload(birth)),
        (f"{prefix}/DBIRTH/{edge_node}/D1", encode_payload(device_birth)),
    ]
    for n in range(count):
        ts = base + 1 + n
        data = Payload(
            ts,
            [
                Metric(None, k + 1, ts, DataType.Double, n * 0.5 + k)
                for k in range(SPARKPLUG_VALUES)
            ],
            seq=(n + 2) % 256,
        )
        messages.append((f"{prefix}/DDATA/{edge_node}/D1", encode_payload(data)))
    return messages


# --- the measurement -------------------------------------------------------------------------


async def stream_state(endpoint: dict[str, Any]) -> tuple[int, int, int]:
    """(last sequence of the stream, messages in it, messages not yet applied)."""
    import nats

    client = await nats.connect(
        endpoint["url"], user=endpoint["user"], password=endpoint["password"]
    )
    try:
        return await telemetry_backlog(client.jetstream())
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=2000)
    parser.add_argument(
        "--sparkplug", action="store_true", help="Sparkplug B DDATA of 100 metrics, not JSON"
    )
    args = parser.parse_args()
    values = SPARKPLUG_VALUES if args.sparkplug else VALUES
    kind = (
        f"Sparkplug B, {values} metrics/DDATA" if args.sparkplug else f"JSON, {values} values/msg"
    )

    from plantwire.config import load_settings
    from plantwire.observability import configure_logging
    from plantwire.telemetry.accounts import Device, TenantAccount, hash_device_password
    from plantwire.telemetry.broker import BundledBroker
    from plantwire.telemetry.store import DuckDBStore

    configure_logging("console", "warning")
    points = args.messages // args.publishers * args.publishers * values
    print(f"== baseline: DuckDB Arrow appends of {points:,} points", flush=True)
    raw = arrow_append_rate(points)
    print(f"baseline: DuckDB Arrow append            {raw:12,.0f} points/s   1.00x", flush=True)

    with tempfile.TemporaryDirectory(prefix="pw-bench-ingest-") as directory:
        ports = free_ports(3)
        settings = load_settings(
            Path(directory) / "data",
            broker_nats_port=ports[0],
            broker_monitor_port=ports[1],
            broker_mqtt_port=ports[2],
            log_level="warning",
        )
        secret = hash_device_password(PASSWORD, rounds=4)
        group = GROUP if args.sparkplug else None
        devices = tuple(Device(_device(n), secret, group) for n in range(args.publishers))
        broker = BundledBroker.from_settings(settings)
        broker.start([TenantAccount(TENANT, devices)])
        try:
            endpoint = broker.endpoint
            config: dict[str, Any] = {
                "store": str(Path(directory) / "telemetry"),
                "endpoint": {
                    "url": endpoint.url,
                    "user": endpoint.user,
                    "password": endpoint.password,
                },
                "messages": args.messages,
                "publishers": args.publishers,
                "inflight": args.inflight,
                "mqtt_port": settings.broker_mqtt_port,
                "sparkplug": args.sparkplug,
            }
            assert broker.pid is not None
            broker_times = psutil.Process(broker.pid).cpu_times()
            broker_cpu_before = broker_times.user + broker_times.system
            config_file = Path(directory) / "bench.json"
            config_file.write_text(json.dumps(config))
            ingest = _child("ingest", config_file)
            assert ingest.stdout is not None
            assert ingest.stdout.readline().strip() == "ready"
            publishers = [_child("publish", config_file, str(n)) for n in range(args.publishers)]
            for publisher in publishers:  # each has made its packets and connected
                assert publisher.stdout is not None
                assert publisher.stdout.readline().strip() == "ready"
            started = time.perf_counter()
            for publisher in publishers:
                assert publisher.stdin is not None
                publisher.stdin.write("go\n")
                publisher.stdin.flush()
            acked = 0
            publishers_cpu = 0.0
            for publisher in publishers:
                out, _ = publisher.communicate(timeout=900)
                fields = out.split()
                acked += int(fields[0]) if fields else 0
                publishers_cpu += float(fields[1]) if len(fields) > 1 else 0.0
            published = time.perf_counter() - started
            while True:
                last, in_stream, waiting = asyncio.run(stream_state(config["endpoint"]))
                if not waiting:
                    break
                if ingest.poll() is not None:
                    raise SystemExit(f"ingest ended ({ingest.returncode}) with {waiting:,} left")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            ingest.terminate()
            out, _ = ingest.communicate(timeout=60)
            cpu = float(out.split()[-1])
            assert broker.pid is not None
            broker_times = psutil.Process(broker.pid).cpu_times()
            broker_cpu = broker_times.user + broker_times.system - broker_cpu_before
        finally:
            broker.stop()
        with DuckDBStore(Path(config["store"])) as store:
            applied = store.checkpoint("telemetry")
            name = _sparkplug_device if args.sparkplug else _device
            stored = sum(
                len(store.latest(TENANT, name(n))) for n in range(args.publishers)
            )  # metrics per device: a sanity check that every device arrived
            exported = store.export(TENANT, 0, 2**62)
            stored_points = exported.num_rows
    rate = stored_points / elapsed
    print(
        f"ingest end to end ({kind})  {rate:12,.0f} points/s   "
        f"{rate / raw:.2f}x   ({stored_points / values / elapsed:,.0f} msg/s; publishing took "
        f"{published:.1f} s, all applied after {elapsed:.1f} s)",
        flush=True,
    )
    print(
        f"   ingest process CPU {cpu:.1f} s: {cpu / stored_points * 1e6:.2f} µs per point, "
        f"{cpu / (stored_points / values) * 1e6:.0f} µs per message (start-up included)",
        flush=True,
    )
    print(
        f"   CPU over the run: ingest {cpu / elapsed:.2f} cores, "
        f"broker {broker_cpu / elapsed:.2f}, publishers {publishers_cpu / elapsed:.2f} "
        f"(of {os.cpu_count()})",
        flush=True,
    )
    print(
        f"   messages acked to MQTT publishers {acked:,}; accepted by the stream {in_stream:,} "
        f"(last sequence {last:,}, applied {applied:,}); points stored {stored_points:,} "
        f"of {acked * values:,}{' (and the births)' if args.sparkplug else ''}; "
        f"{stored} series seen",
        flush=True,
    )


def _child(mode: str, config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, mode, str(config), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "ingest":
        run_ingest(json.loads(Path(sys.argv[2]).read_text()))
    elif len(sys.argv) > 3 and sys.argv[1] == "publish":
        run_publisher(json.loads(Path(sys.argv[2]).read_text()), int(sys.argv[3]))
    else:
        main()

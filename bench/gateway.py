"""Benchmark: the edge gateway (``plantwire.edge.gateway.Gateway``) against a local Modbus
server and the bundled broker, all on this machine's cores.

1. **Modbus polled and forwarded**: a pymodbus TCP server (its own process) whose holding
   registers count up on every read, so every value changes every poll and is forwarded;
   ``--devices`` gateway devices of ``--registers`` uint16 points each (reads of 125),
   polled as fast as they answer, for ``--seconds``. The figures: registers polled a
   second, and points the uplink published and the broker acknowledged (QoS 1) a second.
   Baseline in the same run: one pymodbus client reading 125 registers in a loop from the
   same server (pymodbus's own speed), for a third of the time.
2. **OPC UA subscribed and forwarded**: an asyncua server (its own process, built like the
   simulator's: variables written with ``write_attribute_value``) whose ``--variables``
   Double variables, ten devices' worth, all change every ``--period`` seconds; the gateway
   subscribes to each (sampling interval = period, publishing interval 100 ms). The figures:
   data changes the connector received a second, and points the uplink published and the
   broker acknowledged a second, beside the changes the server made a second (it prints
   them). Baseline in the same run: one asyncua client subscribed to the same variables,
   counting its data change notifications (asyncua's own speed), for a third of the time.
3. **Resident memory** of the gateway's process over each run (sampled every
   ``--seconds``/10): its growth from the first sample after warming up to the last.
   ``--sections both --seconds 1800`` is the issue's 30-minute run: one gateway with the
   Modbus devices and the OPC UA server at once.
4. **Buffer replay**: ``--replay`` points put into the buffer while the uplink is down, then
   the uplink started: points a second from its start until the buffer is empty (every batch
   acknowledged by the broker). Baseline in the same run: the same DDATA messages published by
   one aiomqtt client at QoS 1, awaited the same way (the transport's speed).

Run: ``.venv/bin/python bench/gateway.py [--seconds N] [--devices N] [--registers N]
[--variables N] [--period S] [--replay N] [--sections modbus,opcua,replay|both]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from _platform_process import free_ports

ROOT = Path(__file__).resolve().parent.parent
TENANT = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
PASSWORD = "bench-gateway-password"
GROUP, EDGE = "Bench", "Gateway1"
REGISTERS = 10_000


# --- the Modbus server (a child process) ---------------------------------------------------


def run_server(port: int) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def count_up(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: object,
    ) -> None:
        first = address - start_address
        for index in range(first, first + count):
            current[index] = (current[index] + 1) & 0xFFFF

    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # "Cancel send" on each close

    async def main() -> None:
        words = [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        device = SimDevice(1, simdata=(bits, list(bits), words, list(words)), action=count_up)
        server = ModbusTcpServer([device], address=("127.0.0.1", port))
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def run_opcua_server(port: int, variables: int, period: float) -> None:
    """``variables`` Double variables ``ns=2;s=v<n>`` that all change every ``period``
    seconds; prints ``ready``, then every second the changes a second it made."""
    import logging
    from datetime import UTC, datetime

    from asyncua import Server, ua

    from plantwire.sim._ua import data_value, string_node

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)

    async def serve() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace("urn:plantwire:bench")
        folder = await server.nodes.objects.add_object(ns, "Bench")
        nodes = [
            (await folder.add_variable(string_node(f"v{n}", ns), f"v{n}", 0.0)).nodeid
            for n in range(variables)
        ]
        loop = asyncio.get_running_loop()
        async with server:
            print("ready", flush=True)
            step, written, reported = 0, 0, loop.time()
            while True:
                started = loop.time()
                step += 1
                now = datetime.now(UTC)
                for n, node in enumerate(nodes):
                    value = float(step * variables + n)
                    await server.write_attribute_value(
                        node, data_value(value, ua.VariantType.Double, when=now)
                    )
                written += variables
                if started - reported >= 1.0:
                    print(f"changes {written / (started - reported):.0f}", flush=True)
                    written, reported = 0, started
                await asyncio.sleep(max(0.0, period - (loop.time() - started)))

    asyncio.run(serve())


# --- the measurements ------------------------------------------------------------------------


def _gateway_toml(
    data: Path,
    mqtt_port: int,
    modbus: tuple[int, int, int] | None = None,
    opcua: tuple[int, int, float] | None = None,
) -> str:
    """The gateway's configuration: Modbus (port, devices, registers) and OPC UA (port,
    variables, period), either or both."""
    lines = [
        f'[node]\ngroup = "{GROUP}"\nedge_node = "{EDGE}"\ndata_dir = "{data}"',
        "health_interval = 5.0",
        f'[uplink]\nport = {mqtt_port}\nusername = "{_username()}"\npassword = "{PASSWORD}"',
    ]
    if modbus is not None:
        lines += _modbus_toml(*modbus)
    if opcua is not None:
        port, variables, period = opcua
        lines.append(
            f'[[opcua.servers]]\nname = "bench"\nendpoint = "opc.tcp://127.0.0.1:{port}/bench"\n'
            "publishing_interval_ms = 100"
        )
        for n in range(variables):
            lines.append(
                f'[[opcua.servers.nodes]]\nmetric = "v{n}"\ndevice = "machine-{n % 10}"\n'
                f'node_id = "ns=2;s=v{n}"\nsampling_interval_ms = {period * 1000:g}'
            )
    return "\n".join(lines) + "\n"


def _modbus_toml(modbus_port: int, devices: int, registers: int) -> list[str]:
    lines = []
    for device in range(devices):
        lines.append(
            f'[[modbus.devices]]\nname = "meter-{device}"\nhost = "127.0.0.1"\n'
            f"port = {modbus_port}\npoll_interval = 0.001\ntimeout = 5.0"
        )
        base = device * registers
        for register in range(registers):
            lines.append(
                f'[[modbus.devices.points]]\nname = "r{register}"\n'
                f'table = "holding_register"\naddress = {base + register}\ntype = "uint16"'
            )
    return lines


def _username() -> str:
    from plantwire.telemetry.accounts import device_username

    return device_username(TENANT, "gateway")


async def modbus_baseline(port: int, seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while not await client.connect():  # the server prints "ready" before it listens
        if time.monotonic() > deadline:
            raise SystemExit("the Modbus server does not answer")
        await asyncio.sleep(0.1)
    read = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        answer = await client.read_holding_registers(read % 8000, count=125, device_id=1)
        read += len(answer.registers)
    elapsed = time.perf_counter() - started
    client.close()
    return read / elapsed


async def opcua_baseline(port: int, variables: int, period: float, seconds: float) -> float:
    """Data change notifications a second one asyncua client receives, subscribed to every
    variable as the gateway is."""
    from asyncua import Client, ua

    received = 0

    class Handler:
        def datachange_notification(self, node: object, value: object, data: object) -> None:
            nonlocal received
            received += 1

    client = Client(f"opc.tcp://127.0.0.1:{port}/bench", timeout=30)
    await client.connect()
    try:
        subscription = await client.create_subscription(100, Handler())
        nodes = [client.get_node(f"ns=2;s=v{n}") for n in range(variables)]
        await subscription.subscribe_data_change(
            nodes, sampling_interval=ua.Double(period * 1000), queuesize=10
        )
        await asyncio.sleep(min(3.0, seconds / 3))  # the initial values, then steady state
        before, started = received, time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (received - before) / (time.perf_counter() - started)
        await subscription.delete()
    finally:
        await client.disconnect()
    return rate


async def gateway_run(config_text: str, base: Path, seconds: float) -> dict[str, Any]:
    from plantwire.edge.config import parse_config
    from plantwire.edge.gateway import Gateway

    gateway = Gateway(parse_config(config_text), base)
    stop = asyncio.Event()
    process = psutil.Process()
    task = asyncio.create_task(gateway.run(stop))
    await _until(lambda: gateway.uplink.stats.online, 30)
    await asyncio.sleep(min(5.0, seconds / 5))  # warm up: connections, births, first polls
    rss: list[float] = []
    polled_before, published_before = gateway.polled, gateway.uplink.stats.published
    started = time.perf_counter()
    for _ in range(10):
        await asyncio.sleep(seconds / 10)
        rss.append(process.memory_info().rss / 2**20)
    elapsed = time.perf_counter() - started
    result = {
        "polled": (gateway.polled - polled_before) / elapsed,
        "published": (gateway.uplink.stats.published - published_before) / elapsed,
        "rss": rss,
        "buffered": gateway.uplink.stats.buffered,
        "dropped": gateway.buffer.stats().dropped,
    }
    stop.set()
    await task
    return result


async def replay_run(mqtt_port: int, base: Path, points: int) -> tuple[float, float]:
    import aiomqtt

    from plantwire.edge.buffer import BufferedPoint, PointBuffer
    from plantwire.edge.node import EdgeNodeSession, MetricSpec
    from plantwire.edge.uplink import SparkplugUplink, UplinkSettings
    from plantwire.telemetry.sparkplug import DataType

    specs = {"meter-0": [MetricSpec(f"r{n}", DataType.UInt16) for n in range(100)]}
    rows = [
        BufferedPoint("meter-0", f"r{n % 100}", DataType.UInt16, 1_764_000_000_000 + n, n & 0xFFFF)
        for n in range(points)
    ]
    # the baseline: the same DDATA messages, one client, QoS 1, awaited in batches alike
    session = EdgeNodeSession(GROUP, EDGE, specs)
    messages = [
        message
        for start in range(0, points, 1000)
        for message in session.data(rows[start : start + 1000], 0, historical=True)
    ]
    async with aiomqtt.Client(
        "127.0.0.1",
        mqtt_port,
        identifier="bench-baseline",
        username=_username(),
        password=PASSWORD,
        max_inflight_messages=200,
    ) as client:
        started = time.perf_counter()
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
        baseline = points / (time.perf_counter() - started)
    with PointBuffer(base / "replay.sqlite", max_bytes=8 << 30) as buffer:
        buffer.append(rows)
        uplink = SparkplugUplink(
            EdgeNodeSession(GROUP, EDGE, specs),
            buffer,
            UplinkSettings("127.0.0.1", mqtt_port, username=_username(), password=PASSWORD),
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(uplink.run(stop))
        await _until(lambda: len(buffer) == 0, 600)
        rate = points / (time.perf_counter() - started)
        assert uplink.stats.replayed == points, uplink.stats
        stop.set()
        await task
    return baseline, rate


async def _until(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.02)


class _ServerProcess:
    """A server run as this script's child (``server`` / ``opcua-server``), its stdout
    read by a thread: ``ready`` first, then what it reports."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *arguments],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {arguments[0]} did not start")
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def changes(self, since: float) -> float:
        """The mean of the changes a second the OPC UA server reported after ``since``."""
        rates = [float(line.split()[1]) for at, line in self.lines if at > since]
        return sum(rates) / len(rates) if rates else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _rss_line(result: dict[str, Any]) -> str:
    rss = result["rss"]
    return (
        f"   gateway RSS MiB over the run: {' '.join(f'{v:.0f}' for v in rss)} "
        f"(growth {100 * (rss[-1] / rss[0] - 1):+.1f}% first to last); "
        f"buffered {result['buffered']:,}, dropped {result['dropped']:,}"
    )


def _report(what: str, unit: str, result: dict[str, Any], raw: float, extra: str = "") -> None:
    """A gateway run's figures beside the baseline's ``raw`` rate."""
    polled, published = result["polled"], result["published"]
    print(f"gateway: {what:<32}{polled:12,.0f} {unit}   {polled / raw:.2f}x{extra}")
    print(
        f"gateway: {'points forwarded (PUBACKed)':<32}{published:12,.0f} points/s   "
        f"{published / raw:.2f}x"
    )
    print(_rss_line(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--registers", type=int, default=1000)
    parser.add_argument("--variables", type=int, default=1000)
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--replay", type=int, default=200_000)
    parser.add_argument(
        "--sections",
        default="modbus,opcua,replay",
        help="comma-separated: modbus, opcua, replay, both (one gateway with both connectors)",
    )
    args = parser.parse_args()
    # a SIGTERM (a timeout, pkill) unwinds like Ctrl-C: the finally below stops the servers and
    # the broker, which would outlive the bench otherwise
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sections = set(args.sections.split(","))
    if sections - {"modbus", "opcua", "replay", "both"}:
        raise SystemExit(
            f"unknown sections: {sorted(sections - {'modbus', 'opcua', 'replay', 'both'})}"
        )
    if args.devices * args.registers > REGISTERS:
        raise SystemExit(f"at most {REGISTERS} registers in all")

    from plantwire.config import load_settings
    from plantwire.edge.gateway import quiet_protocol_libraries
    from plantwire.observability import configure_logging
    from plantwire.telemetry.accounts import Device, TenantAccount, hash_device_password
    from plantwire.telemetry.broker import BundledBroker

    configure_logging("console", "warning")
    quiet_protocol_libraries()
    with tempfile.TemporaryDirectory(prefix="pw-bench-gateway-") as name:
        directory = Path(name)
        ports = free_ports(5)
        settings = load_settings(
            directory / "platform",
            broker_nats_port=ports[0],
            broker_monitor_port=ports[1],
            broker_mqtt_port=ports[2],
            log_level="warning",
        )
        broker = BundledBroker.from_settings(settings)
        node = Device("gateway", hash_device_password(PASSWORD, rounds=4), GROUP)
        broker.start([TenantAccount(TENANT, (node,))])
        servers: list[_ServerProcess] = []
        try:
            modbus = opcua = None
            if sections & {"modbus", "both"}:
                servers.append(_ServerProcess("server", str(ports[3])))
                modbus = (ports[3], args.devices, args.registers)
            if sections & {"opcua", "both"}:
                opcua_server = _ServerProcess(
                    "opcua-server", str(ports[4]), str(args.variables), str(args.period)
                )
                servers.append(opcua_server)
                opcua = (ports[4], args.variables, args.period)
            if "modbus" in sections:
                assert modbus is not None
                print(
                    f"== Modbus: {args.devices} devices x {args.registers} uint16 registers, "
                    f"{args.seconds:g} s",
                    flush=True,
                )
                raw = asyncio.run(modbus_baseline(ports[3], args.seconds / 3))
                print(
                    f"baseline: pymodbus client, reads of 125  {raw:12,.0f} registers/s   1.00x",
                    flush=True,
                )
                config = _gateway_toml(directory / "gateway-modbus", ports[2], modbus=modbus)
                result = asyncio.run(gateway_run(config, directory, args.seconds))
                _report("Modbus registers polled  ", "registers/s", result, raw)
            if "opcua" in sections:
                assert opcua is not None
                print(
                    f"== OPC UA: {args.variables} Double variables changing every "
                    f"{args.period:g} s ({args.variables / args.period:,.0f} changes/s asked), "
                    f"{args.seconds:g} s",
                    flush=True,
                )
                since = time.monotonic()
                raw = asyncio.run(
                    opcua_baseline(ports[4], args.variables, args.period, args.seconds / 3)
                )
                offered = opcua_server.changes(since)
                print(
                    f"baseline: asyncua client subscribed      {raw:12,.0f} changes/s   1.00x"
                    f"   (server made {offered:,.0f}/s)",
                    flush=True,
                )
                config = _gateway_toml(directory / "gateway-opcua", ports[2], opcua=opcua)
                since = time.monotonic()
                result = asyncio.run(gateway_run(config, directory, args.seconds))
                offered = opcua_server.changes(since)
                made = f"   (server made {offered:,.0f}/s)"
                _report("OPC UA data changes received", "changes/s", result, raw, made)
            if "both" in sections:
                print(
                    f"== both connectors in one gateway, {args.seconds:g} s: Modbus "
                    f"{args.devices} x {args.registers} registers, OPC UA {args.variables} "
                    f"variables every {args.period:g} s",
                    flush=True,
                )
                config = _gateway_toml(
                    directory / "gateway-both", ports[2], modbus=modbus, opcua=opcua
                )
                result = asyncio.run(gateway_run(config, directory, args.seconds))
                print(
                    f"gateway: values read (polled + changes)   {result['polled']:12,.0f} /s; "
                    f"forwarded {result['published']:,.0f} points/s",
                    flush=True,
                )
                print(_rss_line(result), flush=True)
            if "replay" in sections:
                print(f"== buffer replay: {args.replay:,} points, 1,000 a message", flush=True)
                baseline, replay = asyncio.run(replay_run(ports[2], directory, args.replay))
                print(
                    f"baseline: aiomqtt QoS 1 publishing         {baseline:12,.0f} points/s"
                    "   1.00x",
                    flush=True,
                )
                print(
                    f"gateway: buffer replayed to the broker     {replay:12,.0f} points/s   "
                    f"{replay / baseline:.2f}x",
                    flush=True,
                )
        finally:
            for server in servers:
                server.stop()
            broker.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "server":
        run_server(int(sys.argv[2]))
    elif len(sys.argv) > 4 and sys.argv[1] == "opcua-server":
        run_opcua_server(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()

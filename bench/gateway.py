"""Benchmark: the edge gateway (``plantwire.edge.gateway.Gateway``) against a local Modbus
server and the bundled broker, all on this machine's cores.

1. **Modbus polled and forwarded**: a pymodbus TCP server (its own process) whose holding
   registers count up on every read, so every value changes every poll and is forwarded;
   ``--devices`` gateway devices of ``--registers`` uint16 points each (reads of 125),
   polled as fast as they answer, for ``--seconds``. The figures: registers polled a
   second, and points the uplink published and the broker acknowledged (QoS 1) a second.
   Baseline in the same run: one pymodbus client reading 125 registers in a loop from the
   same server (pymodbus's own speed), for a third of the time.
2. **Resident memory** of the gateway's process over that run (sampled every
   ``--seconds``/10): its growth from the first sample after warming up to the last.
   ``--seconds 1800`` is the issue's 30-minute run.
3. **Buffer replay**: ``--replay`` points put into the buffer while the uplink is down, then
   the uplink started: points a second from its start until the buffer is empty (every batch
   acknowledged by the broker). Baseline in the same run: the same DDATA messages published by
   one aiomqtt client at QoS 1, awaited the same way (the transport's speed).

Run: ``.venv/bin/python bench/gateway.py [--seconds N] [--devices N] [--registers N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
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


# --- the measurements ------------------------------------------------------------------------


def _gateway_toml(
    data: Path, mqtt_port: int, modbus_port: int, devices: int, registers: int
) -> str:
    lines = [
        f'[node]\ngroup = "{GROUP}"\nedge_node = "{EDGE}"\ndata_dir = "{data}"',
        "health_interval = 5.0",
        f'[uplink]\nport = {mqtt_port}\nusername = "{_username()}"\npassword = "{PASSWORD}"',
    ]
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
    return "\n".join(lines) + "\n"


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--registers", type=int, default=1000)
    parser.add_argument("--replay", type=int, default=200_000)
    args = parser.parse_args()
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
        ports = free_ports(4)
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
        server = subprocess.Popen(
            [sys.executable, __file__, "server", str(ports[3])],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
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
            config = _gateway_toml(
                directory / "gateway", ports[2], ports[3], args.devices, args.registers
            )
            result = asyncio.run(gateway_run(config, directory, args.seconds))
            print(
                f"gateway: Modbus registers polled          {result['polled']:12,.0f} "
                f"registers/s   {result['polled'] / raw:.2f}x",
                flush=True,
            )
            print(
                f"gateway: points forwarded (PUBACKed)      {result['published']:12,.0f} "
                f"points/s   {result['published'] / raw:.2f}x",
                flush=True,
            )
            rss = result["rss"]
            print(
                f"   gateway RSS MiB over the run: {' '.join(f'{v:.0f}' for v in rss)} "
                f"(growth {100 * (rss[-1] / rss[0] - 1):+.1f}% first to last); "
                f"buffered {result['buffered']:,}, dropped {result['dropped']:,}",
                flush=True,
            )
            print(f"== buffer replay: {args.replay:,} points, 1,000 a message", flush=True)
            baseline, replay = asyncio.run(replay_run(ports[2], directory, args.replay))
            print(
                f"baseline: aiomqtt QoS 1 publishing         {baseline:12,.0f} points/s   1.00x",
                flush=True,
            )
            print(
                f"gateway: buffer replayed to the broker     {replay:12,.0f} points/s   "
                f"{replay / baseline:.2f}x",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(10)
            broker.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "server":
        run_server(int(sys.argv[2]))
    else:
        main()

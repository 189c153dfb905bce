"""The whole gateway: a real pymodbus device → Modbus connector → Sparkplug uplink → the
platform's bundled broker → stored; connector health as metrics; a platform command written
back to the device's register and confirmed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer

from plantwire.edge.config import load_config
from plantwire.edge.gateway import Gateway
from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.edge.test_modbus import servers, start_server
from tests.edge.test_uplink import EDGE, G, command_confirmed, with_node
from tests.telemetry.sparkplug.test_host import eventually, got, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES

__all__ = ["servers"]


def write_config(
    tmp_path: Path, node: dict[str, Any], mqtt_port: int, device: str, points: str
) -> Path:
    """A gateway.toml in ``tmp_path`` for the edge node ``node`` (its password in a file
    beside it) with one Modbus device ``meter-1``: ``device`` its connection keys, ``points``
    its ``[[modbus.devices.points]]`` tables."""
    credentials: dict[str, str] = node["mqtt"]
    (tmp_path / "secret").write_text(credentials["password"] + "\n")
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[node]
group = "{G}"
edge_node = "{EDGE}"
data_dir = "data"
health_interval = 0.5

[uplink]
port = {mqtt_port}
username = "{credentials["username"]}"
password_file = "secret"
primary_host = "plantwire"

[[modbus.devices]]
name = "meter-1"
{device}
{points}"""
    )
    return path


def _config(tmp_path: Path, node: dict[str, Any], mqtt_port: int, modbus_port: int) -> Path:
    return write_config(
        tmp_path,
        node,
        mqtt_port,
        f'host = "127.0.0.1"\nport = {modbus_port}\npoll_interval = 0.1',
        """
[[modbus.devices.points]]
name = "voltage"
table = "holding_register"
address = 0
type = "float32"

[[modbus.devices.points]]
name = "setpoint"
table = "holding_register"
address = 10
type = "int16"
scale = 0.1
writable = true
""",
    )


async def test_a_modbus_device_reaches_the_platform_and_takes_its_commands(
    with_broker: tuple[TestClient, Seed, BundledBroker],
    servers: list[ModbusTcpServer],
    tmp_path: Path,
) -> None:
    client, headers, broker, node = await with_node(with_broker)
    server, port = await start_server()
    servers.append(server)
    device = AsyncModbusTcpClient("127.0.0.1", port=port)
    await device.connect()
    try:
        # 230.5 V as a big-endian float32 in holding registers 0-1; setpoint 21.5 (215)
        await device.write_registers(0, [0x4366, 0x8000], device_id=1)
        await device.write_register(10, 215, device_id=1)
        config = load_config(_config(tmp_path, node, broker.options.mqtt_port, port))
        gateway = Gateway(config, tmp_path)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        try:
            meter = await made(client, headers, f"{G}/{EDGE}/meter-1")

            def latest() -> dict[str, Any]:
                answer: dict[str, Any] = got(client, f"{DEVICES}/{meter['id']}/latest", headers)
                return answer

            await eventually(lambda: "voltage" in latest() and "setpoint" in latest(), "values")
            values = latest()
            assert values["voltage"]["value"] == 230.5
            assert values["setpoint"]["value"] == 21.5
            await eventually(  # the first report may predate the connection
                lambda: latest()["Connector/Connected"]["value"] is True, "connected reported"
            )
            edge = got(client, f"{DEVICES}/{node['id']}/latest", headers)
            assert edge["Buffer/Dropped"]["value"] == 0
            # a command through the platform is written to the register and read back
            await command_confirmed(client, headers, meter["id"], "setpoint", 23.0)
            register = await device.read_holding_registers(10, count=1, device_id=1)
            assert register.registers == [230]
            # the device goes away: its health says so on the platform
            await server.shutdown()
            servers.remove(server)
            await eventually(
                lambda: latest()["Connector/Connected"]["value"] is False, "the device down", 15
            )
            assert latest()["Connector/Last Error"]["value"] != ""
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
    finally:
        device.close()
    assert (tmp_path / "data" / "buffer.sqlite").exists()
    assert (tmp_path / "data" / "bdseq").read_text() == "1"

"""The whole gateway against the factory simulator's OPC UA server: a machine's variables
reach the platform with their OPC UA types, connector health is reported, and a platform
command is written to the machine's setpoint and confirmed by the value read back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from plantwire.edge.config import parse_config
from plantwire.edge.gateway import Gateway
from plantwire.sim.runner import Simulator
from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.edge.test_uplink import EDGE, G, command_confirmed, with_node
from tests.telemetry.sparkplug.test_host import eventually, got, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES


def _config(node: dict[str, Any], mqtt_port: int, opcua_url: str, data: Path) -> str:
    credentials: dict[str, str] = node["mqtt"]
    nodes = "".join(
        f'[[opcua.servers.nodes]]\nmetric = "{name}"\nnode_id = "ns=2;s=cnc-cell.cnc-1.{name}"\n'
        f"sampling_interval_ms = 100\n{extra}\n"
        for name, extra in [
            ("SpindleSpeed", ""),
            ("Temperature", ""),
            ("State", ""),
            ("PartCount", ""),
            ("SpindleSpeedSetpoint", "writable = true"),
        ]
    )
    return f"""
[node]
group = "{G}"
edge_node = "{EDGE}"
data_dir = "{data}"
health_interval = 0.5

[uplink]
port = {mqtt_port}
username = "{credentials["username"]}"
password = "{credentials["password"]}"

[[opcua.servers]]
name = "sim"
endpoint = "{opcua_url}"
device = "cnc-1"
publishing_interval_ms = 100
keepalive_seconds = 1

{nodes}"""


async def test_a_simulated_machine_reaches_the_platform_over_opc_ua(
    with_broker: tuple[TestClient, Seed, BundledBroker], tmp_path: Path
) -> None:
    client, headers, broker, node = await with_node(with_broker)
    simulator = Simulator(seed=3, speed=5.0, host="127.0.0.1", opcua_port=0, modbus_port=0)
    endpoints = await simulator.start()
    try:
        config = parse_config(
            _config(node, broker.options.mqtt_port, endpoints.opcua_url, tmp_path / "data")
        )
        gateway = Gateway(config, tmp_path)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        try:
            machine = await made(client, headers, f"{G}/{EDGE}/cnc-1")

            def latest() -> dict[str, Any]:
                answer: dict[str, Any] = got(client, f"{DEVICES}/{machine['id']}/latest", headers)
                return answer

            wanted = {"SpindleSpeed", "Temperature", "State", "PartCount", "SpindleSpeedSetpoint"}
            await eventually(lambda: wanted <= latest().keys(), "the machine's values", 20)
            values = latest()
            assert isinstance(values["SpindleSpeed"]["value"], float)
            assert values["State"]["value"] in {"running", "idle", "setup", "fault"}
            assert isinstance(values["PartCount"]["value"], int)
            await eventually(  # the first report may predate the connection
                lambda: latest()["Connector/Connected"]["value"] is True, "connected reported"
            )
            described = got(client, f"{DEVICES}/{machine['id']}", headers)["metrics"]
            types = {metric["name"]: metric.get("data_type") for metric in described}
            assert types["SpindleSpeed"] == "float"
            assert types["State"] == "string"
            await command_confirmed(client, headers, machine["id"], "SpindleSpeedSetpoint", 1234.0)
            await eventually(
                lambda: latest()["SpindleSpeedSetpoint"]["value"] == 1234.0, "the setpoint"
            )
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
    finally:
        await simulator.stop()

"""``plantwire up --demo``: starts everything, registers parts' identifiers that resolve
through the recursive node, stops cleanly on Ctrl-C, and starts again on the same data dir."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from plantwire.demo.gateway_config import (
    Uplink,
    gateway_toml,
    modbus_section,
    opcua_section,
    point_names,
)
from plantwire.edge.config import parse_config
from plantwire.sim.plant import MACHINES
from plantwire.sim.registers import REGISTER_MAP
from tests.conftest import free_ports

PLANTWIRE = [sys.executable, "-m", "plantwire"]
KEYS = {
    "console_url",
    "username",
    "password",
    "resolver_url",
    "example_identifier",
    "mqtt_url",
    "ids_nodes",
    "opcua_url",
    "modbus_url",
}


def _start(data: Path, mqtt: int, nats: int, monitor: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PLANTWIRE_LOG_LEVEL": "warning",
        "PLANTWIRE_BROKER_MONITOR_PORT": str(monitor),
        "PLANTWIRE_ARGON2_MEMORY_KIB": "1024",  # the platform's users: a quicker login
    }
    return subprocess.Popen(
        [
            *PLANTWIRE,
            "up",
            "--demo",
            "--data-dir",
            str(data),
            "--http-port",
            "0",
            "--mqtt-port",
            str(mqtt),
            "--nats-port",
            str(nats),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_for_demo_json(process: subprocess.Popen[str], path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if path.exists():
            info = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(info, dict)
            return info
        if process.poll() is not None:
            output, _ = process.communicate()
            pytest.fail(f"plantwire up --demo exited with {process.returncode}:\n{output}")
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    pytest.fail(f"no demo.json within 45 s:\n{output}")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "plantwire demo stopped." in output
    return output


def _values(answer: dict[str, Any]) -> dict[str, Any]:
    return {value["type"]: value["data"]["value"] for value in answer["values"]}


def _check_resolves(info: dict[str, Any]) -> str:
    handle = info["example_identifier"]
    assert isinstance(handle, str)
    assert handle.startswith("88.101.5/")
    resolved = httpx.get(f"{info['resolver_url']}/api/handles/{handle}", timeout=10)
    assert resolved.status_code == 200, resolved.text
    answer = resolved.json()
    assert answer["responseCode"] == 1
    values = _values(answer)
    serial = handle.split("/", 1)[1]
    assert values["PRODUCT_TYPE"] in ("PW-BRACKET-3", "PW-SHAFT-20")
    assert values["LINE"] in ("press-line", "cnc-cell")
    machines = {"CNC1": "cnc-1", "CNC2": "cnc-2", "PRS1": "press-1", "PRS2": "press-2"}
    assert values["MACHINE"] == machines[serial.split("-")[-2]]  # <start>-<machine>-<count>
    start = datetime.fromisoformat(values["PRODUCTION_START"])
    end = datetime.fromisoformat(values["PRODUCTION_END"])
    assert start <= end
    assert values["QUALITY"] in ("good", "scrap")
    assert values["URL"] == f"{info['console_url']}/products/{handle}"
    # the proxy of the recursive node sends a browser to the part's page
    proxied = httpx.get(f"{info['resolver_url']}/hdl/{handle}", timeout=10)
    assert proxied.status_code == 302
    assert proxied.headers["location"] == values["URL"]
    return handle


def _check_machine_data(info: dict[str, Any], token: str, devices: list[Any]) -> None:
    """The example part was made while the gateway forwarded: its machine's data during its
    production window is in the store, so its product page shows its production history."""
    handle = info["example_identifier"]
    values = _values(httpx.get(f"{info['resolver_url']}/api/handles/{handle}", timeout=10).json())
    machine = next(d for d in devices if d["name"] == f"Plant1/Gateway1/{values['MACHINE']}")
    headers = {"Authorization": f"Bearer {token}"}
    window = {"start": values["PRODUCTION_START"], "end": values["PRODUCTION_END"]}
    deadline = time.monotonic() + 20
    while True:  # the points of its last seconds may still be on their way
        points = httpx.get(
            f"{info['console_url']}/api/v1/devices/{machine['id']}/telemetry",
            params={"metric": "MotorCurrent", **window},
            headers=headers,
            timeout=10,
        ).json()["points"]
        if points or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert points, f"no machine data for {handle} between {window}"


def test_demo_starts_registers_resolvable_parts_and_stops_cleanly(tmp_path: Path) -> None:
    """The demo command starts, produces identifiers that resolve through the recursive
    node, and stops cleanly; started again on its data dir it finds what it made."""
    data = tmp_path / "demo-data"
    mqtt, nats, monitor = free_ports(3)
    process = _start(data, mqtt, nats, monitor)
    try:
        info = _wait_for_demo_json(process, data / "demo.json")
        assert set(info) >= KEYS
        assert info["username"] == "demo"
        assert info["mqtt_url"] == f"mqtt://127.0.0.1:{mqtt}"
        assert set(info["ids_nodes"]) == {"root", "top", "secondary", "enterprise", "recursive"}
        assert info["ids_nodes"]["enterprise"] == info["console_url"]
        assert info["opcua_url"].startswith("opc.tcp://")
        assert info["modbus_url"].startswith("modbus+tcp://")
        first = _check_resolves(info)
        # the demo user logs in with the printed password
        login = httpx.post(
            f"{info['console_url']}/api/v1/auth/login",
            json={"username": info["username"], "password": info["password"]},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        # the gateway's edge node is the demo tenant's; its meters appear when it is born
        node = "Plant1/Gateway1"
        wanted = {node, f"{node}/press-line-meter", f"{node}/cnc-cell-meter", f"{node}/press-1"}
        deadline = time.monotonic() + 20
        while True:
            devices = httpx.get(
                f"{info['console_url']}/api/v1/devices",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).json()["items"]
            if wanted <= {d["name"] for d in devices} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert wanted <= {d["name"] for d in devices}
        _check_machine_data(info, token, devices)
    finally:
        output = _stop(process) if process.poll() is None else ""
    assert "Ctrl-C stops it." in output
    broker = re.search(r"nats-server \(pid (\d+)\)", output)
    assert broker is not None, output
    assert not psutil.pid_exists(int(broker.group(1))), "the demo left its broker running"

    # a second run on the same data dir reuses the tenant, user, password and edge node
    (data / "demo.json").unlink()
    process = _start(data, mqtt, nats, monitor)
    try:
        again = _wait_for_demo_json(process, data / "demo.json")
        assert again["password"] == info["password"]
        second = _check_resolves(again)
        assert second != first
        # the first run's parts still resolve, through the new run's hierarchy
        resolved = httpx.get(f"{again['resolver_url']}/api/handles/{first}", timeout=10)
        assert resolved.status_code == 200, resolved.text
    finally:
        if process.poll() is None:
            _stop(process)

    # without its secrets file the demo makes new secrets and its hierarchy anew
    (data / "demo.json").unlink()
    (data / "demo" / "secrets.json").unlink()
    process = _start(data, mqtt, nats, monitor)
    try:
        third = _wait_for_demo_json(process, data / "demo.json")
        assert third["password"] != info["password"]
        _check_resolves(third)
        resolved = httpx.get(f"{third['resolver_url']}/api/handles/{first}", timeout=10)
        assert resolved.status_code == 200, resolved.text
    finally:
        if process.poll() is None:
            _stop(process)


def test_gateway_config_covers_every_meter_register_and_machine() -> None:
    uplink = Uplink("127.0.0.1", 1883, "user", Path("/x/secret"), "plantwire")
    meters = modbus_section("127.0.0.1", 5020, {"press-line": 2, "cnc-cell": 1})
    machines = opcua_section("opc.tcp://127.0.0.1:4840/plantwire/sim", MACHINES)
    config = parse_config(
        gateway_toml("Plant1", "Gateway1", Path("data"), uplink, [meters, machines])
    )
    assert [d.name for d in config.modbus_devices] == ["press-line-meter", "cnc-cell-meter"]
    names = point_names(REGISTER_MAP)
    assert len(set(names)) == len(REGISTER_MAP)
    for device in config.modbus_devices:
        assert [p.name for p in device.register_map.points] == names
    assert config.uplink.primary_host == "plantwire"
    (server,) = config.opcua_servers
    assert {node.device for node in server.nodes} == {m.name for m in MACHINES}
    press = {node.metric: node for node in server.nodes if node.device == "press-1"}
    assert press["StrokeRate"].node_id == "ns=2;s=press-line.press-1.StrokeRate"
    assert [name for name, node in press.items() if node.writable] == ["StrokeRateSetpoint"]
    assert {"State", "Temperature", "PartCount"} <= press.keys()


def test_demo_ports_need_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [*PLANTWIRE, "up", "--data-dir", str(tmp_path / "d"), "--demo-opcua-port", "4841"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "need --demo" in result.stderr
    assert not (tmp_path / "d").exists()

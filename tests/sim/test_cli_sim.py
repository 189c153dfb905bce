"""``plantwire sim`` as users run it: a subprocess that prints its endpoints, serves real
clients and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient

pytestmark = pytest.mark.slow

SIM = [sys.executable, "-m", "plantwire", "sim"]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SIM, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLANTWIRE_LOG_LEVEL": "warning"},
    )


async def test_sim_serves_on_ephemeral_ports_until_ctrl_c() -> None:
    process = _start("--opcua-port", "0", "--modbus-port", "0", "--speed", "30", "--seed", "4")
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops it." in line:
                break
        else:
            pytest.fail("plantwire sim exited: " + "".join(lines))
        text = "".join(lines)
        opcua = re.search(r"OPC UA:\s+(opc\.tcp://127\.0\.0\.1:(\d+)/plantwire/sim)", text)
        modbus = re.search(r"Modbus:\s+modbus\+tcp://127\.0\.0\.1:(\d+)", text)
        assert opcua is not None, text
        assert modbus is not None, text
        assert int(opcua.group(2)) > 0
        assert "namespace urn:plantwire:sim" in text
        assert "unit 1 cnc-cell, unit 2 press-line" in text
        async with Client(opcua.group(1)) as client:
            ns = await client.get_namespace_index("urn:plantwire:sim")
            assert await client.get_node(f"ns={ns};s=plant.Step").read_value() >= 0
        meters = AsyncModbusTcpClient("127.0.0.1", port=int(modbus.group(1)))
        try:
            assert await meters.connect()
            assert not (await meters.read_input_registers(0, count=12, device_id=2)).isError()
        finally:
            meters.close()
    finally:
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "plantwire sim stopped." in rest
    assert "Traceback" not in errors


@pytest.mark.parametrize(
    ("server", "option"), [("OPC UA", "--opcua-port"), ("Modbus", "--modbus-port")]
)
def test_a_port_in_use_is_an_operator_error(server: str, option: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = {"--opcua-port": "0", "--modbus-port": "0", option: str(port)}
        process = _start(*(part for pair in ports.items() for part in pair))
        out, errors = process.communicate(timeout=60)
    assert process.returncode == 2, out + errors
    assert f"plantwire: {server} server cannot listen on 127.0.0.1:{port}" in errors
    assert "Traceback" not in errors


def test_sim_help_names_its_options() -> None:
    result = subprocess.run([*SIM, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for option in ("--opcua-port", "--modbus-port", "--seed", "--speed", "--host"):
        assert option in result.stdout

"""The demo gateway's ``gateway.toml``, made from what the simulator serves (no I/O).

Each source of data is a section of its own: `modbus_section` for the energy meters (from
`plantwire.sim.registers.REGISTER_MAP`), `opcua_section` for the machines (from the
simulator's node tree, `plantwire.sim.opcua.machine_variables`); `gateway_toml` joins the
node, the uplink and whatever sections it is given."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantwire.sim.opcua import machine_variables
from plantwire.sim.plant import MachineSpec
from plantwire.sim.registers import REGISTER_MAP, MeterRegister, RegisterTable

__all__ = [
    "SIM_NAMESPACE_INDEX",
    "Uplink",
    "gateway_toml",
    "meter_device_name",
    "modbus_section",
    "opcua_section",
    "point_names",
]

#: the simulator's namespace (urn:plantwire:sim) on its own fresh server (docs/simulator.md)
SIM_NAMESPACE_INDEX = 2
_MACHINE_STATUS = ("State", "Fault", "PartCount", "GoodCount", "ScrapCount")

_TABLES = {RegisterTable.INPUT: "input_register", RegisterTable.HOLDING: "holding_register"}


@dataclass(frozen=True, slots=True)
class Uplink:
    """The platform's MQTT listener and the edge node's credentials there."""

    host: str
    port: int
    username: str
    password_file: Path
    primary_host: str | None


def _q(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string for what we write


def meter_device_name(line: str) -> str:
    return f"{line}-meter"


def point_names(registers: Sequence[MeterRegister]) -> list[str]:
    """Metric names of the registers, unique: a value's first register gets its plain name
    (``power_kw``), the others that show it again say where they are
    (``power_kw (holding 0)``)."""
    seen: set[str] = set()
    names = []
    for register in registers:
        name = register.name
        if name in seen:
            name = f"{name} ({register.table.value} {register.address})"
        seen.add(register.name)
        names.append(name)
    return names


def _point(name: str, register: MeterRegister) -> list[str]:
    lines = [
        "[[modbus.devices.points]]",
        f"name = {_q(name)}",
        f"table = {_q(_TABLES[register.table])}",
        f"address = {register.address}",
        f"type = {_q(register.type.value)}",
        f"byte_order = {_q('little' if register.order.bytes_swapped else 'big')}",
        f"word_order = {_q('little' if register.order.words_swapped else 'big')}",
    ]
    if register.scale != 1.0:  # the meter holds value * scale; the gateway reports raw * scale
        lines.append(f"scale = {1.0 / register.scale!r}")
    return lines


def modbus_section(
    host: str,
    port: int,
    units: Mapping[str, int],
    registers: Sequence[MeterRegister] = REGISTER_MAP,
    poll_interval: float = 1.0,
) -> str:
    """``[[modbus.devices]]``: one device per line's energy meter (``units``: line → unit id
    behind ``host:port``), its points the meter's registers."""
    lines: list[str] = []
    for line, unit in units.items():
        lines += [
            "[[modbus.devices]]",
            f"name = {_q(meter_device_name(line))}",
            f"host = {_q(host)}",
            f"port = {port}",
            f"unit = {unit}",
            f"poll_interval = {poll_interval!r}",
            "",
        ]
        for name, register in zip(point_names(registers), registers, strict=True):
            lines += [*_point(name, register), ""]
    return "\n".join(lines)


def opcua_section(
    endpoint: str,
    machines: Sequence[MachineSpec],
    namespace_index: int = SIM_NAMESPACE_INDEX,
    sampling_interval_ms: int = 1000,
) -> str:
    """``[[opcua.servers]]``: the simulator's OPC UA server, one Sparkplug device per machine
    (its name), its metrics the machine's analog variables (the speed setpoint writable),
    state, fault and part counts."""
    lines = [
        "[[opcua.servers]]",
        'name = "simulator"',
        f"endpoint = {_q(endpoint)}",
        f"publishing_interval_ms = {sampling_interval_ms}",
        "",
    ]
    for machine in machines:
        analog = [node.name for node in machine_variables(machine).values()]
        for variable in [*analog, *_MACHINE_STATUS]:
            node_id = f"ns={namespace_index};s={machine.line}.{machine.name}.{variable}"
            lines += [
                "[[opcua.servers.nodes]]",
                f"device = {_q(machine.name)}",
                f"metric = {_q(variable)}",
                f"node_id = {_q(node_id)}",
                f"sampling_interval_ms = {sampling_interval_ms}",
            ]
            if variable.endswith("Setpoint"):
                lines.append("writable = true")
            lines.append("")
    return "\n".join(lines)


def gateway_toml(
    group: str, edge_node: str, data_dir: Path, uplink: Uplink, sections: Sequence[str]
) -> str:
    """The whole file: the node, its uplink, then ``sections`` (e.g. `modbus_section`)."""
    head = [
        "# Made by plantwire up --demo at each start; changes are overwritten.",
        "[node]",
        f"group = {_q(group)}",
        f"edge_node = {_q(edge_node)}",
        f"data_dir = {_q(str(data_dir))}",
        "health_interval = 10.0",
        "",
        "[uplink]",
        f"host = {_q(uplink.host)}",
        f"port = {uplink.port}",
        f"username = {_q(uplink.username)}",
        f"password_file = {_q(str(uplink.password_file))}",
    ]
    if uplink.primary_host is not None:
        head.append(f"primary_host = {_q(uplink.primary_host)}")
    return "\n".join([*head, "", *sections]).rstrip("\n") + "\n"

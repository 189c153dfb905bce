"""The plant's OPC UA server (asyncua): one folder per line, one object per machine.

Node ids are strings in the namespace ``urn:plantwire:sim`` that spell the path, such as
``ns=2;s=cnc-cell.cnc-1.SpindleSpeed``, so a gateway's configuration can name them directly
(the namespace index is whatever the server's namespace array says; look it up by URI).
Analog values carry ``EngineeringUnits`` (UNECE codes, OPC UA Part 8) and ``EURange``
properties; the setpoints are the only variables a client may write, and the plant clips them
to the machine's range (the clipped value is written back).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server

from plantwire.sim._ua import (
    GOOD,
    SENSOR_FAILURE,
    ObjectIds,
    data_value,
    standard_node,
    string_node,
)
from plantwire.sim.plant import MachineKind, MachineSnapshot, MachineSpec, PartRecord, PlantSnapshot

__all__ = ["NAMESPACE_URI", "AnalogNode", "PlantOpcUaServer", "machine_variables"]

NAMESPACE_URI = "urn:plantwire:sim"
_UNITS_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"
_NO_TIME = datetime(1601, 1, 1, tzinfo=UTC)  # OPC UA's null DateTime


@dataclass(frozen=True, slots=True)
class AnalogNode:
    """An analog variable of a machine: its browse name, engineering unit and range."""

    name: str
    unit_code: str  # UNECE Recommendation 20 common code
    unit_symbol: str
    unit_name: str
    low: float
    high: float


def machine_variables(spec: MachineSpec) -> dict[str, AnalogNode]:
    """The analog variables of a machine by the snapshot field they publish."""
    if spec.kind is MachineKind.CNC:
        speed = AnalogNode(
            "SpindleSpeed", "RPM", "r/min", "revolutions per minute", 0.0, spec.speed_max
        )
    else:
        speed = AnalogNode("StrokeRate", "C94", "1/min", "strokes per minute", 0.0, spec.speed_max)
    return {
        "speed": speed,
        "speed_setpoint": AnalogNode(
            f"{speed.name}Setpoint",
            speed.unit_code,
            speed.unit_symbol,
            speed.unit_name,
            0.0,
            spec.speed_max,
        ),
        "motor_current_a": AnalogNode(
            "MotorCurrent", "AMP", "A", "ampere", 0.0, spec.current_max_a
        ),
        "temperature_c": AnalogNode(
            "Temperature", "CEL", "°C", "degree Celsius", -40.0, spec.temperature_max_c
        ),
        "vibration_mm_s": AnalogNode(
            "Vibration", "C16", "mm/s", "millimetre per second", 0.0, spec.vibration_max_mm_s
        ),
    }


def _unit_id(code: str) -> int:
    """OPC UA Part 8 5.6.3: the UNECE common code's characters packed into an Int32."""
    value = 0
    for char in code:
        value = (value << 8) | ord(char)
    return value


_COUNTS = {"part_count": "PartCount", "good_count": "GoodCount", "scrap_count": "ScrapCount"}
_PART_FIELDS = (
    ("serial", "Serial", ua.VariantType.String),
    ("product_type", "ProductType", ua.VariantType.String),
    ("line", "Line", ua.VariantType.String),
    ("machine", "Machine", ua.VariantType.String),
    ("started_at", "StartedAt", ua.VariantType.DateTime),
    ("finished_at", "FinishedAt", ua.VariantType.DateTime),
    ("quality", "Quality", ua.VariantType.String),
)


@dataclass(slots=True)
class _MachineNodes:
    analog: dict[str, ua.NodeId]
    setpoint: ua.NodeId
    state: ua.NodeId
    fault: ua.NodeId
    counts: dict[str, ua.NodeId]
    part: dict[str, ua.NodeId]
    published_part: str | None = None


def _not_start_failure(record: logging.LogRecord) -> bool:
    return "error starting server" not in record.getMessage()


@contextmanager
def _without_start_failure_log() -> Iterator[None]:
    """Keep asyncua from logging a traceback for a failure to listen, which the caller
    reports itself (a port in use is an operator's error, not a crash)."""
    logger = logging.getLogger("asyncua.server.server")
    logger.addFilter(_not_start_failure)
    try:
        yield
    finally:
        logger.removeFilter(_not_start_failure)


class PlantOpcUaServer:
    """An asyncua server showing a plant's snapshots. ``start`` builds the address space from
    the first snapshot and listens; ``publish`` writes a snapshot's values (subscribers see
    them change); ``setpoints`` reads what clients wrote."""

    def __init__(self, machines: Sequence[MachineSpec], host: str, port: int) -> None:
        self._specs = {spec.name: spec for spec in machines}
        self._host = host
        self._port = port
        self._server = Server()
        self._nodes: dict[str, _MachineNodes] = {}
        self._namespace = 0
        self._time_node: ua.NodeId | None = None
        self._step_node: ua.NodeId | None = None
        self._started = False

    @property
    def namespace_index(self) -> int:
        return self._namespace

    @property
    def url(self) -> str:
        """The endpoint URL, with the port actually bound (``port`` 0 picks a free one)."""
        bound = self._server.bserver.port if self._server.bserver is not None else self._port
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"opc.tcp://{host}:{bound}/plantwire/sim"

    async def start(self, snapshot: PlantSnapshot) -> str:
        server = self._server
        await server.init()
        server.set_server_name("plantwire factory simulator")
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])  # a demo: no users
        self._namespace = await server.register_namespace(NAMESPACE_URI)
        await self._build(snapshot)
        try:
            with _without_start_failure_log():
                await server.start()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise OSError(
                error.errno, f"OPC UA server cannot listen on {self._host}:{self._port}: {reason}"
            ) from error
        self._started = True
        return self.url

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._server.stop()

    def _id(self, path: str) -> ua.NodeId:
        return string_node(path, self._namespace)

    async def _variable(
        self, parent: Node, path: str, name: str, value: object, kind: ua.VariantType
    ) -> Node:
        return await parent.add_variable(
            self._id(f"{path}.{name}"), ua.QualifiedName(name, self._namespace), value, kind
        )

    async def _analog(self, parent: Node, path: str, node: AnalogNode, value: float) -> Node:
        variable = await self._variable(parent, path, node.name, value, ua.VariantType.Double)
        await variable.delete_reference(
            standard_node(ObjectIds.BaseDataVariableType), ObjectIds.HasTypeDefinition
        )
        await variable.add_reference(
            standard_node(ObjectIds.AnalogItemType), ObjectIds.HasTypeDefinition
        )
        units = ua.EUInformation(
            NamespaceUri=_UNITS_NAMESPACE,
            UnitId=_unit_id(node.unit_code),
            DisplayName=ua.LocalizedText(node.unit_symbol),
            Description=ua.LocalizedText(node.unit_name),
        )
        where = f"{path}.{node.name}"
        await variable.add_property(
            self._id(f"{where}.EngineeringUnits"), ua.QualifiedName("EngineeringUnits", 0), units
        )
        await variable.add_property(
            self._id(f"{where}.EURange"),
            ua.QualifiedName("EURange", 0),
            ua.Range(Low=node.low, High=node.high),
        )
        return variable

    async def _build(self, snapshot: PlantSnapshot) -> None:
        ns = self._namespace
        root = await self._server.nodes.objects.add_folder(
            self._id("plant"), ua.QualifiedName("Plant", ns)
        )
        self._time_node = (
            await self._variable(
                root, "plant", "SimulationTime", snapshot.time, ua.VariantType.DateTime
            )
        ).nodeid
        self._step_node = (
            await self._variable(root, "plant", "Step", snapshot.step, ua.VariantType.UInt64)
        ).nodeid
        folders: dict[str, Node] = {}
        for machine in snapshot.machines:
            if machine.line not in folders:
                folders[machine.line] = await root.add_folder(
                    self._id(machine.line), ua.QualifiedName(machine.line, ns)
                )
            path = f"{machine.line}.{machine.name}"
            obj = await folders[machine.line].add_object(
                self._id(path), ua.QualifiedName(machine.name, ns)
            )
            self._nodes[machine.name] = await self._build_machine(obj, path, machine)

    async def _build_machine(self, obj: Node, path: str, machine: MachineSnapshot) -> _MachineNodes:
        spec = self._specs[machine.name]
        analog: dict[str, ua.NodeId] = {}
        setpoint: ua.NodeId | None = None
        for field, node in machine_variables(spec).items():
            value = float(getattr(machine, field))
            variable = await self._analog(obj, path, node, value)
            analog[field] = variable.nodeid
            if field == "speed_setpoint":
                await variable.set_writable()
                setpoint = variable.nodeid
        assert setpoint is not None
        state = await self._variable(obj, path, "State", machine.state.value, ua.VariantType.String)
        fault = await self._variable(obj, path, "Fault", "", ua.VariantType.String)
        counts = {}
        for field, name in _COUNTS.items():
            variable = await self._variable(
                obj, path, name, getattr(machine, field), ua.VariantType.UInt32
            )
            counts[field] = variable.nodeid
        part_path = f"{path}.LastPart"
        part_obj = await obj.add_object(
            self._id(part_path), ua.QualifiedName("LastPart", self._namespace)
        )
        part = {}
        for field, name, kind in _PART_FIELDS:
            empty: object = _NO_TIME if kind is ua.VariantType.DateTime else ""
            variable = await self._variable(part_obj, part_path, name, empty, kind)
            part[field] = variable.nodeid
        return _MachineNodes(analog, setpoint, state.nodeid, fault.nodeid, counts, part)

    def setpoints(self) -> dict[str, float]:
        """The speed setpoints as the server holds them (clients may have written them)."""
        result = {}
        for name, nodes in self._nodes.items():
            value = self._server.read_attribute_value(nodes.setpoint).Value
            if value is not None and isinstance(value.Value, float):
                result[name] = value.Value
        return result

    async def write_setpoint(self, machine: str, value: float) -> None:
        nodes = self._nodes[machine]
        data = data_value(value, ua.VariantType.Double)
        await self._server.write_attribute_value(nodes.setpoint, data)

    async def _write(
        self,
        node: ua.NodeId,
        value: object,
        kind: ua.VariantType,
        when: datetime,
        status: int = GOOD,
    ) -> None:
        await self._server.write_attribute_value(node, data_value(value, kind, status, when))

    async def publish(self, snapshot: PlantSnapshot) -> None:
        """Write a snapshot's values; source timestamps are the plant's simulated time."""
        when = snapshot.time
        if self._time_node is not None and self._step_node is not None:
            await self._write(self._time_node, when, ua.VariantType.DateTime, when)
            await self._write(self._step_node, snapshot.step, ua.VariantType.UInt64, when)
        for machine in snapshot.machines:
            nodes = self._nodes[machine.name]
            for field, node in nodes.analog.items():
                if field == "speed_setpoint":  # clients write it; the runner reads it
                    continue
                status = GOOD
                if field == "vibration_mm_s" and not machine.vibration_ok:
                    status = SENSOR_FAILURE
                value = float(getattr(machine, field))
                await self._write(node, value, ua.VariantType.Double, when, status)
            await self._write(nodes.state, machine.state.value, ua.VariantType.String, when)
            fault = machine.fault.value if machine.fault is not None else ""
            await self._write(nodes.fault, fault, ua.VariantType.String, when)
            for field, node in nodes.counts.items():
                await self._write(node, getattr(machine, field), ua.VariantType.UInt32, when)
            part = machine.last_part
            if part is not None and part.serial != nodes.published_part:
                await self._publish_part(nodes, part)
                nodes.published_part = part.serial

    async def _publish_part(self, nodes: _MachineNodes, part: PartRecord) -> None:
        for field, _, kind in _PART_FIELDS:
            value = getattr(part, field)
            if kind is ua.VariantType.String:
                value = str(value)
            await self._write(nodes.part[field], value, kind, part.finished_at)

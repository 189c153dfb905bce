"""The simulator's servers, through real clients on ephemeral loopback ports: asyncua reads,
subscribes and writes setpoints; pymodbus reads and decodes the meters per the map."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from pymodbus.client import AsyncModbusTcpClient

from plantwire.sim._ua import standard_node
from plantwire.sim.plant import FaultKind, PartRecord, Plant, PlantSnapshot
from plantwire.sim.registers import REGISTER_MAP, ByteOrder, RegisterTable, RegisterType
from plantwire.sim.runner import Simulator

START = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
ANALOG = ("SpindleSpeed", "MotorCurrent", "Temperature", "Vibration")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator the test steps itself (speed 0)."""
    async with Simulator(seed=21, speed=0, opcua_port=0, modbus_port=0, start=START) as running:
        yield running


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[Client]:
    async with Client(sim.endpoints.opcua_url) as connected:
        yield connected


async def _node(client: Client, path: str) -> Node:
    ns = await client.get_namespace_index("urn:plantwire:sim")
    return client.get_node(f"ns={ns};s={path}")


async def _read(client: Client, path: str) -> Any:
    return await (await _node(client, path)).read_value()


async def _attribute(node: Node, attribute: AttributeIds) -> Any:
    data = await node.read_attribute(attribute)
    assert data.Value is not None
    return data.Value.Value


async def test_endpoints_are_the_bound_ephemeral_ports(sim: Simulator) -> None:
    endpoints = sim.endpoints
    assert endpoints.opcua_url.startswith("opc.tcp://127.0.0.1:")
    assert not endpoints.opcua_url.startswith("opc.tcp://127.0.0.1:0/")
    assert endpoints.modbus_port > 0
    assert endpoints.modbus_url == f"modbus+tcp://127.0.0.1:{endpoints.modbus_port}"
    assert endpoints.modbus_units == {"cnc-cell": 1, "press-line": 2}
    # what discovery tells clients: the bound port, anonymous access
    described = await Client(endpoints.opcua_url).connect_and_get_server_endpoints()
    assert [e.EndpointUrl for e in described] == [endpoints.opcua_url]
    tokens = [t.TokenType for e in described for t in e.UserIdentityTokens]
    assert tokens == [ua.UserTokenType.Anonymous]


async def test_opcua_nodes_types_and_engineering_units(sim: Simulator, client: Client) -> None:
    await sim.advance(120)
    snapshot = sim.snapshot
    machine = snapshot.machine("cnc-1")
    assert await _read(client, "cnc-cell.cnc-1.State") == machine.state.value
    assert await _read(client, "cnc-cell.cnc-1.Fault") == ""
    assert await _read(client, "cnc-cell.cnc-1.SpindleSpeed") == machine.speed
    assert await _read(client, "cnc-cell.cnc-1.PartCount") == machine.part_count
    assert await _read(client, "press-line.press-2.StrokeRate") == (
        snapshot.machine("press-2").speed
    )
    assert await _read(client, "plant.Step") == 120
    assert await _read(client, "plant.SimulationTime") == snapshot.time

    speed = await _node(client, "cnc-cell.cnc-1.SpindleSpeed")
    assert await speed.read_data_type_as_variant_type() is ua.VariantType.Double
    count = await _node(client, "cnc-cell.cnc-1.PartCount")
    assert await count.read_data_type_as_variant_type() is ua.VariantType.UInt32
    assert (await speed.read_type_definition()) == standard_node(ObjectIds.AnalogItemType)
    units = await (await speed.get_child("0:EngineeringUnits")).read_value()
    assert units.DisplayName.Text == "r/min"
    assert units.UnitId == int.from_bytes(b"RPM", "big")
    rate = await _node(client, "press-line.press-1.StrokeRate")
    units = await (await rate.get_child("0:EngineeringUnits")).read_value()
    assert units.DisplayName.Text == "1/min"
    span = await (await rate.get_child("0:EURange")).read_value()
    assert (span.Low, span.High) == (0.0, 60.0)
    assert await _attribute(speed, AttributeIds.UserAccessLevel) == 1  # read
    setpoint = await _node(client, "cnc-cell.cnc-1.SpindleSpeedSetpoint")
    assert await _attribute(setpoint, AttributeIds.UserAccessLevel) == 3  # read and write

    source = (await speed.read_data_value()).SourceTimestamp
    assert source == snapshot.time  # simulated time


class _Changes:
    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {}

    def datachange_notification(self, node: Node, val: Any, data: object) -> None:
        self.values.setdefault(node.nodeid.to_string(), []).append(val)


async def test_a_subscription_sees_the_clock_driven_plant_change() -> None:
    async with (
        Simulator(seed=3, speed=60, opcua_port=0, modbus_port=0, start=START) as sim,
        Client(sim.endpoints.opcua_url) as client,
    ):
        changes = _Changes()
        subscription = await client.create_subscription(50, changes)
        nodes = [
            await _node(client, "plant.Step"),
            await _node(client, "cnc-cell.cnc-1.Temperature"),
        ]
        await subscription.subscribe_data_change(nodes)
        loop = asyncio.get_running_loop()
        began = loop.time()
        while (
            min((len(v) for v in changes.values.values()), default=0) < 5 or len(changes.values) < 2
        ):
            assert loop.time() - began < 10, f"too few changes: {changes.values}"
            await asyncio.sleep(0.05)
        steps = changes.values[nodes[0].nodeid.to_string()]
        assert steps == sorted(set(steps))
        temperatures = changes.values[nodes[1].nodeid.to_string()]
        assert len(set(temperatures)) > 1
        await subscription.delete()
        elapsed = loop.time() - began
        assert sim.plant.steps == pytest.approx(60 * elapsed, rel=0.5, abs=20)


async def test_a_written_setpoint_is_honoured(sim: Simulator, client: Client) -> None:
    await sim.advance(120)
    assert sim.snapshot.machine("press-1").speed == pytest.approx(30.0, abs=1.0)
    setpoint = await _node(client, "press-line.press-1.StrokeRateSetpoint")
    await setpoint.write_value(ua.DataValue(ua.Variant(50.0, ua.VariantType.Double)))
    await sim.advance(1)
    assert sim.plant.speed_setpoints()["press-1"] == 50.0
    await sim.advance(60)
    assert await _read(client, "press-line.press-1.StrokeRate") == pytest.approx(50.0, abs=1.0)
    # out of range: clipped, and the clipped value is what a client reads back
    await setpoint.write_value(ua.DataValue(ua.Variant(1000.0, ua.VariantType.Double)))
    await sim.advance(1)
    assert await setpoint.read_value() == 60.0
    # not a number: refused, the setpoint stays
    await setpoint.write_value(ua.DataValue(ua.Variant(math.nan, ua.VariantType.Double)))
    await sim.advance(1)
    assert await setpoint.read_value() == 60.0
    # another type than Double: refused by the server
    with pytest.raises(UaStatusCodeError, match="BadTypeMismatch"):
        await setpoint.write_value(ua.DataValue(ua.Variant(5, ua.VariantType.Int32)))
    # stopped
    await setpoint.write_value(ua.DataValue(ua.Variant(0.0, ua.VariantType.Double)))
    await sim.advance(60)
    assert await _read(client, "press-line.press-1.State") == "idle"
    assert await _read(client, "press-line.press-1.StrokeRate") == 0.0
    # the measured speed is not writable
    speed = await _node(client, "press-line.press-1.StrokeRate")
    with pytest.raises(UaStatusCodeError):
        await speed.write_value(ua.DataValue(ua.Variant(5.0, ua.VariantType.Double)))


async def test_a_failed_sensor_reads_bad(sim: Simulator, client: Client) -> None:
    await sim.advance(60)
    sim.plant.inject_fault("cnc-2", FaultKind.SENSOR)
    await sim.advance(1)
    vibration = await _node(client, "cnc-cell.cnc-2.Vibration")
    value = await vibration.read_data_value(raise_on_bad_status=False)
    assert value.StatusCode is not None
    assert value.StatusCode.value == StatusCodes.BadSensorFailure
    assert await _read(client, "cnc-cell.cnc-2.State") == "fault"
    assert await _read(client, "cnc-cell.cnc-2.Fault") == "sensor"
    temperature = await _node(client, "cnc-cell.cnc-2.Temperature")
    status = (await temperature.read_data_value()).StatusCode
    assert status is not None
    assert status.is_good()


async def test_finished_parts_reach_listeners_and_last_part_nodes(
    sim: Simulator, client: Client
) -> None:
    parts: list[PartRecord] = []
    sim.add_part_listener(parts.append)
    await sim.advance(900)
    assert len(parts) == sum(m.part_count for m in sim.snapshot.machines)
    for machine, line in (("cnc-1", "cnc-cell"), ("press-2", "press-line")):
        last = [p for p in parts if p.machine == machine][-1]
        where = f"{line}.{machine}.LastPart"
        assert await _read(client, f"{where}.Serial") == last.serial
        assert await _read(client, f"{where}.ProductType") == last.product_type
        assert await _read(client, f"{where}.Line") == line
        assert await _read(client, f"{where}.Machine") == machine
        assert await _read(client, f"{where}.Quality") == last.quality.value
        assert await _read(client, f"{where}.StartedAt") == last.started_at
        assert await _read(client, f"{where}.FinishedAt") == last.finished_at


def _decode(registers: Sequence[int], kind: RegisterType, order: ByteOrder) -> float:
    """Decode as a gateway would, with pymodbus' own converter where it can."""
    convert = AsyncModbusTcpClient.convert_from_registers
    types = AsyncModbusTcpClient.DATATYPE
    words = list(registers)
    if order in (ByteOrder.BADC, ByteOrder.DCBA):  # pymodbus has no byte swap: do it here
        words = [int.from_bytes(w.to_bytes(2, "big")[::-1], "big") for w in words]
    word_order: Literal["big", "little"] = (
        "little" if order in (ByteOrder.CDAB, ByteOrder.DCBA) else "big"
    )
    data_type = {
        RegisterType.UINT16: types.UINT16,
        RegisterType.UINT32: types.UINT32,
        RegisterType.FLOAT32: types.FLOAT32,
        RegisterType.FLOAT64: types.FLOAT64,
    }[kind]
    value = convert(words, data_type, word_order=word_order)
    assert isinstance(value, int | float)
    return float(value)


async def _read_meters(port: int) -> dict[tuple[int, RegisterTable], list[int]]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    try:
        assert await client.connect()
        tables: dict[tuple[int, RegisterTable], list[int]] = {}
        for unit in (1, 2):
            inputs = await client.read_input_registers(0, count=12, device_id=unit)
            holding = await client.read_holding_registers(0, count=14, device_id=unit)
            assert not inputs.isError()
            assert not holding.isError()
            tables[unit, RegisterTable.INPUT] = list(inputs.registers)
            tables[unit, RegisterTable.HOLDING] = list(holding.registers)
        return tables
    finally:
        client.close()


async def test_modbus_meters_decode_per_the_register_map(sim: Simulator) -> None:
    await sim.advance(600)
    tables = await _read_meters(sim.endpoints.modbus_port)
    for line, unit in sim.endpoints.modbus_units.items():
        meter = sim.snapshot.meter(line)
        for register in REGISTER_MAP:
            words = tables[unit, register.table][
                register.address : register.address + register.count
            ]
            decoded = _decode(words, register.type, register.order) / register.scale
            expected = getattr(meter, register.name)
            if register.type is RegisterType.FLOAT64:
                assert decoded == expected
            elif register.type is RegisterType.FLOAT32:
                assert decoded == pytest.approx(expected, rel=1e-6)
            else:
                assert decoded == pytest.approx(expected, abs=0.5 / register.scale)
        assert meter.energy_kwh > 0
        assert 380 < meter.voltage_v < 420
    assert tables[1, RegisterTable.INPUT] != tables[2, RegisterTable.INPUT]


async def test_modbus_refuses_writes_and_reads_beyond_the_map(sim: Simulator) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.endpoints.modbus_port)
    try:
        assert await client.connect()
        assert (await client.write_register(0, 1, device_id=1)).isError()
        assert (await client.read_holding_registers(12, count=4, device_id=1)).isError()
        assert (await client.read_input_registers(0, count=13, device_id=2)).isError()
    finally:
        client.close()


async def _read_all(client: Client, snapshot: PlantSnapshot) -> list[object]:
    """Every machine variable's value and status."""
    values: list[object] = []
    for machine in snapshot.machines:
        base = f"{machine.line}.{machine.name}"
        speed = "SpindleSpeed" if machine.line == "cnc-cell" else "StrokeRate"
        for name in (speed, *ANALOG[1:], "State", "PartCount", "GoodCount", "ScrapCount"):
            node = await _node(client, f"{base}.{name}")
            data = await node.read_data_value(raise_on_bad_status=False)
            assert data.Value is not None
            assert data.StatusCode is not None
            values.append((data.Value.Value, data.StatusCode.value))
    return values


async def test_same_seed_same_values_on_the_wire() -> None:
    seen = []
    for _ in range(2):
        async with Simulator(seed=42, speed=0, opcua_port=0, modbus_port=0, start=START) as sim:
            await sim.advance(1800)
            async with Client(sim.endpoints.opcua_url) as client:
                opcua = await _read_all(client, sim.snapshot)
            seen.append((opcua, await _read_meters(sim.endpoints.modbus_port)))
    assert seen[0] == seen[1]
    model = Plant(seed=42, start=START)
    model.run(1800)
    cnc = model.snapshot().machine("cnc-1")
    good = StatusCodes.Good
    assert seen[0][0][:5] == [
        (cnc.speed, good),
        (cnc.motor_current_a, good),
        (cnc.temperature_c, good),
        (cnc.vibration_mm_s, good if cnc.vibration_ok else StatusCodes.BadSensorFailure),
        (cnc.state.value, good),
    ]
    power = REGISTER_MAP[2]
    assert power.name == "power_kw"
    words = seen[0][1][1, RegisterTable.INPUT][power.address : power.address + 2]
    assert struct.unpack(">f", struct.pack(">HH", *words))[0] == pytest.approx(
        model.snapshot().meter("cnc-cell").power_kw, rel=1e-6
    )


async def test_a_listener_that_raises_stops_the_simulator_and_stop_says_why() -> None:
    def broken(part: PartRecord) -> None:
        raise LookupError(part.serial)

    sim = Simulator(seed=1, speed=2000, opcua_port=0, modbus_port=0, start=START)
    sim.add_part_listener(broken)
    await sim.start()
    try:
        await asyncio.wait_for(sim.wait(), timeout=30)
    finally:
        with pytest.raises(LookupError, match="260504080000-"):
            await sim.stop()


async def test_a_port_in_use_fails_the_start_and_leaves_nothing_running() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        sim = Simulator(seed=1, speed=0, opcua_port=port, modbus_port=0)
        with pytest.raises(OSError, match=f"OPC UA server cannot listen on 127.0.0.1:{port}"):
            await sim.start()
        sim = Simulator(seed=1, speed=0, opcua_port=0, modbus_port=port)
        with pytest.raises(OSError, match=f"Modbus server cannot listen on 127.0.0.1:{port}"):
            await sim.start()

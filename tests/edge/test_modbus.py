"""The Modbus connector against a real pymodbus server on an ephemeral loopback port: every type
and order read back from registers set to golden vectors, exception responses, timeouts, a
server stopped and started again, write-back, and the gateway.toml device entries."""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from plantwire.edge.buffer import BufferedPoint
from plantwire.edge.modbus import (
    ModbusConnector,
    ModbusDevice,
    SerialLink,
    TcpLink,
    WriteResult,
    parse_devices,
)
from plantwire.edge.modbus_map import (
    DataType,
    MapError,
    Order,
    Point,
    ReadLimits,
    RegisterMap,
    Table,
)
from plantwire.edge.modbus_plan import plan_reads
from plantwire.edge.node import EdgeNodeSession, MetricSpec
from plantwire.edge.samples import Quality, Sample
from plantwire.telemetry.sparkplug import DataType as SparkplugType
from plantwire.telemetry.sparkplug import decode_payload
from tests.edge.test_modbus_codec import GOLDEN

HR, IR, CO, DI = Table.HOLDING_REGISTER, Table.INPUT_REGISTER, Table.COIL, Table.DISCRETE_INPUT
REGISTERS = 400  # addresses 0..399 of each register table exist; 400 and up are refused
BITS = 64
FAST = 0.05  # seconds between polls

Action = Callable[[int, int, int, int, list[int], Any], Coroutine[None, None, ExcCodes | None]]


async def start_server(
    port: int = 0, *, action: Action | None = None, framer: FramerType = FramerType.SOCKET
) -> tuple[ModbusTcpServer, int]:
    """A pymodbus server with units 1 and 2, all values 0; its port."""

    def unit(unit_id: int) -> SimDevice:
        bits = [SimData(0, count=BITS, values=False, datatype=SimType.BITS)]
        words = [SimData(0, count=REGISTERS, values=0, datatype=SimType.REGISTERS)]
        return SimDevice(unit_id, simdata=(bits, list(bits), words, list(words)), action=action)

    server = ModbusTcpServer([unit(1), unit(2)], address=("127.0.0.1", port), framer=framer)
    await server.serve_forever(background=True)
    listener = cast(asyncio.Server, server.transport)
    return server, listener.sockets[0].getsockname()[1]


@pytest.fixture
async def servers() -> AsyncIterator[list[ModbusTcpServer]]:
    """Servers a test starts go in this list, and are shut down after it."""
    started: list[ModbusTcpServer] = []
    yield started
    for server in started:
        await server.shutdown()
    await until(lambda: not _server_tasks(), seconds=5)  # handlers finish being cancelled


def _server_tasks() -> list[asyncio.Task[Any]]:
    """The server's request handlers still running (cancelled on shutdown, not yet ended)."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "ServerRequestHandler" in repr(task.get_coro())
    ]


@dataclass
class Collected:
    """What the connector handed over: every sample, and each metric's latest."""

    samples: list[Sample] = field(default_factory=list)
    batches: int = 0

    def __call__(self, batch: Sequence[Sample]) -> None:
        self.batches += 1
        self.samples.extend(batch)

    def latest(self, metric: str) -> Sample | None:
        for sample in reversed(self.samples):
            if sample.metric == metric:
                return sample
        return None


async def until(condition: Callable[[], object], seconds: float = 10.0) -> None:
    """Wait for ``condition`` on the connector's or the server's state, looking every 10 ms
    (they change inside pymodbus, which has no event to wait on)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def device(port: int, points: Sequence[Point], **options: Any) -> ModbusDevice:
    limits = options.pop("limits", ReadLimits())
    options.setdefault("timeout", 0.5)
    options.setdefault("reconnect_delay", 0.05)
    options.setdefault("reconnect_delay_max", 0.2)
    return ModbusDevice(
        "dev", TcpLink("127.0.0.1", port), RegisterMap(tuple(points), limits), **options
    )


async def test_every_type_and_order_reads_back(servers: list[ModbusTcpServer]) -> None:
    server, port = await start_server()
    servers.append(server)
    points: list[Point] = []
    expected: dict[str, Any] = {}
    address = 0
    for kind, value, layouts in GOLDEN:
        for (byte, word), registers in layouts.items():
            name = f"{kind}_{byte}_{word}_{address}"
            table = HR if address < 150 else IR
            points.append(
                Point(
                    name, table, address, kind, byte_order=byte, word_order=word, poll_interval=FAST
                )
            )
            await server.async_setValues(1, 3 if table is HR else 4, address, registers)
            expected[name] = value
            address += len(registers) + 1  # one unused register between points
    text = [0x5057, 0x2D37, 0x0000]  # "PW-7", NUL-padded
    await server.async_setValues(1, 3, 300, text)
    await server.async_setValues(1, 3, 310, [0x4241, 0x4443])  # "ABCD", bytes swapped
    await server.async_setValues(1, 4, 320, [0x0010])  # bit 4
    await server.async_setValues(1, 3, 330, [0xFF9C])  # -100 → -10.0 at scale 0.1
    await server.async_setValues(1, 1, 5, [True])
    await server.async_setValues(1, 2, 7, [True])
    await server.async_setValues(2, 3, 0, [0x1234])  # unit 2
    points += [
        Point("text", HR, 300, DataType.STRING, length=3, poll_interval=FAST),
        Point(
            "text_le",
            HR,
            310,
            DataType.STRING,
            length=2,
            byte_order=Order.LITTLE,
            poll_interval=FAST,
        ),
        Point("flag", IR, 320, DataType.BOOL, bit=4, poll_interval=FAST),
        Point("flag_off", IR, 320, DataType.BOOL, bit=3, poll_interval=FAST),
        Point("tenths", HR, 330, DataType.INT16, scale=0.1, poll_interval=FAST),
        Point("coil5", CO, 5, DataType.BOOL, poll_interval=FAST),
        Point("coil6", CO, 6, DataType.BOOL, poll_interval=FAST),
        Point("input7", DI, 7, DataType.BOOL, poll_interval=FAST),
        Point("unit2", HR, 0, DataType.UINT16, unit=2, poll_interval=FAST),
    ]
    expected |= {
        "text": "PW-7",
        "text_le": "ABCD",
        "flag": True,
        "flag_off": False,
        "tenths": pytest.approx(-10.0),
        "coil5": True,
        "coil6": False,
        "input7": True,
        "unit2": 0x1234,
    }
    collected = Collected()
    limits = ReadLimits(max_gap_registers=1, max_gap_bits=8)
    plan = plan_reads(points, limits)
    # holding registers: 0-150 in two reads (≤ 125 each), 300, 310, 330; input registers:
    # 150-165, 320; coils; discrete inputs; unit 2
    assert len(plan) == 10
    dev = device(port, points, limits=limits)
    async with ModbusConnector([dev], collected) as connector:
        await until(lambda: all(collected.latest(name) for name in expected))
        health, batches = connector.health()["dev"], collected.batches
    for name, value in expected.items():
        sample = collected.latest(name)
        assert sample is not None
        assert (sample.device, sample.quality, sample.value) == ("dev", Quality.GOOD, value), name
        assert type(sample.value) is type(value) or name == "tenths"
    assert health.connected
    assert health.exception_responses == health.timeouts == health.decode_errors == 0
    assert health.last_error is None
    # every request answered well, the one of the next cycle perhaps still in flight (a
    # loaded machine let one be sent before the snapshot was taken)
    assert health.requests - health.good_responses in (0, 1)
    assert len(plan) * batches <= health.good_responses < len(plan) * (batches + 1)


async def test_an_exception_response_is_bad_and_polling_goes_on(
    servers: list[ModbusTcpServer],
) -> None:
    server, port = await start_server()
    servers.append(server)
    await server.async_setValues(1, 3, 10, [42])
    points = [
        Point("good", HR, 10, DataType.UINT16, poll_interval=FAST),
        Point("missing", HR, REGISTERS + 100, DataType.UINT16, poll_interval=FAST),
    ]
    collected = Collected()
    async with ModbusConnector([device(port, points)], collected) as connector:
        await until(lambda: len([s for s in collected.samples if s.metric == "missing"]) >= 3)
        await server.async_setValues(1, 3, 10, [43])
        await until(lambda: (s := collected.latest("good")) is not None and s.value == 43)
        health = connector.health()["dev"]
    missing = [s for s in collected.samples if s.metric == "missing"]
    assert {(s.value, s.quality) for s in missing} == {(None, Quality.BAD)}
    assert health.connected
    assert health.exception_responses >= 3
    assert health.last_error is not None
    assert "exception 2 (illegal address)" in health.last_error
    assert f"holding_register {REGISTERS + 100} (+1) on unit 1" in health.last_error
    assert health.good_responses >= 3


async def test_a_timeout_is_uncertain_with_the_last_value(servers: list[ModbusTcpServer]) -> None:
    slow = asyncio.Event()

    async def action(code: int, _start: int, address: int, *_rest: Any) -> ExcCodes | None:
        if slow.is_set() and code == 3 and address == 20:
            await asyncio.sleep(0.4)  # longer than the client waits
        return None

    server, port = await start_server(action=action)
    servers.append(server)
    await server.async_setValues(1, 3, 20, [7])
    points = [Point("slow", HR, 20, DataType.INT16, poll_interval=FAST)]
    collected = Collected()
    dev = device(port, points, timeout=0.15, retries=0)
    async with ModbusConnector([dev], collected) as connector:
        await until(lambda: (s := collected.latest("slow")) and s.quality is Quality.GOOD)
        slow.set()
        await until(lambda: (s := collected.latest("slow")) and s.quality is Quality.UNCERTAIN)
        uncertain = collected.latest("slow")
        slow.clear()
        await server.async_setValues(1, 3, 20, [8])
        await until(lambda: (s := collected.latest("slow")) and s.value == 8, seconds=15)
        health = connector.health()["dev"]
    assert uncertain is not None
    assert uncertain.value == 7  # the last good value, marked uncertain
    assert health.timeouts >= 1
    assert collected.latest("slow") == Sample(
        "dev", "slow", 8, Quality.GOOD, cast(Sample, collected.latest("slow")).timestamp
    )


async def test_reconnects_after_the_server_comes_back(servers: list[ModbusTcpServer]) -> None:
    server, port = await start_server()
    await server.async_setValues(1, 4, 0, [0x42F6, 0xE979])
    points = [
        Point("temperature", IR, 0, DataType.FLOAT32, poll_interval=FAST),
        Point("count", IR, 2, DataType.UINT16, poll_interval=FAST),
    ]
    collected = Collected()
    async with ModbusConnector([device(port, points)], collected) as connector:
        await until(lambda: collected.latest("temperature") is not None)
        assert connector.health()["dev"].connected
        await server.shutdown()
        await until(lambda: not connector.health()["dev"].connected)
        await until(lambda: (s := collected.latest("count")) and s.quality is Quality.BAD)
        down = connector.health()["dev"]
        await until(lambda: connector.health()["dev"].connect_failures >= 2)
        failures = connector.health()["dev"].connect_failures
        bad = [s for s in collected.samples if s.quality is Quality.BAD]

        server, _ = await start_server(port)
        servers.append(server)
        await server.async_setValues(1, 4, 0, [0xC020, 0x0000, 5])  # -2.5, then count 5
        await until(lambda: (s := collected.latest("count")) and s.value == 5)
        up = connector.health()["dev"]
    assert down.disconnects == 1
    assert down.last_error is not None
    assert failures >= 2
    assert {s.metric for s in bad} == {"temperature", "count"}
    assert len(bad) == 2  # every point BAD once, not once per failed reconnect
    assert up.connected
    assert up.connects == 2
    assert collected.latest("temperature") is not None
    assert cast(Sample, collected.latest("temperature")).value == -2.5


async def test_an_unreachable_device_keeps_trying(servers: list[ModbusTcpServer]) -> None:
    server, port = await start_server()
    await server.shutdown()  # the port is free now: nothing listens
    collected = Collected()
    points = [Point("x", HR, 0, DataType.UINT16, poll_interval=FAST, writable=True)]
    async with ModbusConnector([device(port, points)], collected) as connector:
        await until(lambda: connector.health()["dev"].connect_failures >= 3)
        health = connector.health()["dev"]
        result = await connector.write("dev", "x", 1)
    assert not health.connected
    assert health.last_error is not None
    assert health.last_error.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert [(s.metric, s.value, s.quality) for s in collected.samples] == [("x", None, Quality.BAD)]
    assert result == WriteResult(False, "not connected")


async def test_write_back(servers: list[ModbusTcpServer]) -> None:
    server, port = await start_server()
    servers.append(server)
    points = [
        Point("setpoint", HR, 30, DataType.INT16, scale=0.1, writable=True),
        Point("limit", HR, 40, DataType.FLOAT32, word_order=Order.LITTLE, writable=True),
        Point("label", HR, 50, DataType.STRING, length=2, writable=True),
        Point("pump", CO, 3, DataType.BOOL, writable=True),
        Point("beyond", HR, REGISTERS + 5, DataType.UINT16, writable=True, poll_interval=60),
        Point("reading", IR, 0, DataType.UINT16),
    ]
    collected = Collected()
    dev = device(port, points, write_multiple=False)
    async with ModbusConnector([dev], collected) as connector:
        await until(lambda: connector.health()["dev"].connected)
        assert await connector.write("dev", "setpoint", -12.3) == WriteResult(True)
        assert await connector.write("dev", "limit", 123.456) == WriteResult(True)
        assert await connector.write("dev", "label", "OK") == WriteResult(True)
        assert await connector.write("dev", "pump", True) == WriteResult(True)
        refused = [
            await connector.write("dev", "setpoint", 5000.0),
            await connector.write("dev", "reading", 1),
            await connector.write("dev", "nothing", 1),
            await connector.write("nobody", "pump", 1),
            await connector.write("dev", "beyond", 1),
            await connector.write("dev", "pump", "on"),
        ]
        health = connector.health()["dev"]
    assert await server.async_getValues(1, 3, 30, 1) == [0xFF85]  # -123 raw
    assert await server.async_getValues(1, 3, 40, 2) == [0xE979, 0x42F6]  # CDAB
    assert await server.async_getValues(1, 3, 50, 2) == [0x4F4B, 0x0000]
    assert (await server.async_getValues(1, 1, 0, 8))[3] is True
    assert [r.ok for r in refused] == [False] * 6
    errors = [r.error or "" for r in refused]
    assert "out of range for int16" in errors[0]
    assert errors[1] == "the point is not writable"
    assert errors[2] == "no such point"
    assert errors[3] == "no device 'nobody'"
    assert errors[4] == "exception 2 (illegal address)"
    assert "true or false" in errors[5]
    assert (health.writes, health.failed_writes) == (4, 5)


GATEWAY_TOML = """
[[modbus.devices]]
name = "meter-1"
host = "10.0.0.7"
port = 5020
unit = 3
timeout = 2
retries = 2
word_order = "little"

[[modbus.devices.points]]
name = "voltage"
table = "input_register"
address = 0
type = "float32"

[[modbus.devices]]
name = "drive"
serial_port = "/dev/ttyUSB0"
baudrate = 9600
parity = "E"
write_multiple = true

[[modbus.devices.points]]
name = "speed"
table = "holding_register"
address = 1
type = "uint16"
writable = true
"""


def test_device_entries() -> None:
    meter, drive = parse_devices(tomllib.loads(GATEWAY_TOML)["modbus"])
    assert meter.link == TcpLink("10.0.0.7", 5020)
    assert (meter.timeout, meter.retries, meter.write_multiple) == (2.0, 2, False)
    assert meter.register_map.point("voltage").unit == 3
    assert meter.register_map.point("voltage").word_order is Order.LITTLE
    assert drive.link == SerialLink("/dev/ttyUSB0", baudrate=9600, parity="E")
    assert drive.write_multiple
    assert drive.register_map.point("speed").writable


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a"}, "give either host"),
        ({"name": "a", "host": "h", "serial_port": "/dev/x"}, "give either host"),
        ({"name": "a", "host": "h", "baudrate": 9600}, "are for serial_port"),
        ({"name": "a", "serial_port": "/dev/x", "port": 1}, "port is for host"),
        ({"name": "a", "serial_port": "/dev/x", "parity": "X"}, "parity is N, E or O"),
        ({"name": "a", "host": "h", "port": 70000}, "not a TCP port"),
        ({"name": "a", "host": "h", "timeout": "1"}, "timeout must be float"),
        ({"name": "a", "host": "h", "retries": -1}, "retries not negative"),
        ({"name": "a", "host": "h", "hots": 1}, "'a': unknown keys: hots"),
        ({"name": "a", "host": "h", "points": [{"name": "p"}]}, "device 'a': point 'p': table"),
        ({"host": "h"}, "with a name"),
    ],
)
def test_bad_device_entries(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(MapError, match=message):
        parse_devices({"devices": [entry]})


def test_device_names_are_unique() -> None:
    with pytest.raises(MapError, match="'a': the name is used twice"):
        parse_devices({"devices": [{"name": "a", "host": "h"}, {"name": "a", "host": "i"}]})


async def test_rtu_framing_over_a_serial_url(servers: list[ModbusTcpServer]) -> None:
    """The serial code path (AsyncModbusSerialClient, RTU frames with CRC) for real: pyserial
    opens ``socket://`` URLs, here to a server speaking RTU over TCP, as serial device servers
    (RS-485 to Ethernet converters) do. No serial port exists on the test machines."""
    server, port = await start_server(framer=FramerType.RTU)
    servers.append(server)
    await server.async_setValues(1, 3, 0, [0xF8A4, 0x32EB])
    points = [
        Point("count", HR, 0, DataType.INT32, poll_interval=FAST),
        Point("valve", CO, 2, DataType.BOOL, writable=True, poll_interval=FAST),
    ]
    rtu = ModbusDevice(
        "rtu",
        SerialLink(f"socket://127.0.0.1:{port}", baudrate=19200),
        RegisterMap(tuple(points)),
        timeout=0.5,
    )
    collected = Collected()
    async with ModbusConnector([rtu], collected) as connector:
        await until(lambda: collected.latest("count") is not None)
        assert await connector.write("rtu", "valve", True) == WriteResult(True)
        await until(lambda: (s := collected.latest("valve")) and s.value is True)
    assert cast(Sample, collected.latest("count")).value == -123456789
    assert (await server.async_getValues(1, 1, 0, 8))[2] is True


def test_the_example_in_docs_edge_md() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "edge.md").read_text("utf-8")
    (example,) = [  # the Modbus section's example (the doc has others)
        block for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL) if "drive-7" in block
    ]
    meter, drive = parse_devices(tomllib.loads(example)["modbus"])
    assert meter.link == TcpLink("10.0.4.21", 502)
    assert meter.register_map.point("voltage_l1").word_order is Order.LITTLE
    assert meter.register_map.point("energy_total").value_type is DataType.FLOAT64
    assert isinstance(drive.link, SerialLink)
    assert drive.register_map.point("speed").unit == 7


def test_a_connector_is_made_outside_the_event_loop() -> None:
    """pymodbus makes its clients on the running loop; the connector makes them in run()."""
    connector = ModbusConnector([device(502, [])], Collected())
    assert connector.health()["dev"].connected is False


async def test_a_gateway_without_its_target_is_uncertain(servers: list[ModbusTcpServer]) -> None:
    """Exception 0x0B (a Modbus gateway got no answer from its target) means "no answer", not
    "no": the last value, uncertain. Other exception codes are a refusal: BAD."""
    answer: dict[int, ExcCodes] = {}

    async def action(_code: int, _start: int, address: int, *_rest: Any) -> ExcCodes | None:
        return answer.get(address)

    server, port = await start_server(action=action)
    servers.append(server)
    await server.async_setValues(1, 4, 60, [11, 12])
    points = [
        Point("behind_gateway", IR, 60, DataType.UINT16, poll_interval=FAST),
        Point("busy", IR, 62, DataType.UINT16, poll_interval=FAST),
    ]
    collected = Collected()
    async with ModbusConnector([device(port, points)], collected) as connector:
        await until(lambda: collected.latest("busy") is not None)
        answer[60] = ExcCodes.GATEWAY_NO_RESPONSE
        answer[62] = ExcCodes.DEVICE_BUSY
        await until(lambda: (s := collected.latest("busy")) and s.quality is Quality.BAD)
        await until(
            lambda: (s := collected.latest("behind_gateway")) and s.quality is Quality.UNCERTAIN
        )
        health = connector.health()["dev"]
    assert cast(Sample, collected.latest("behind_gateway")).value == 11
    assert cast(Sample, collected.latest("busy")).value is None
    assert health.exception_responses >= 2
    assert health.connected


async def test_samples_go_into_the_buffer_and_out_as_sparkplug(
    servers: list[ModbusTcpServer],
) -> None:
    """A poll's samples as the gateway will pass them on: into `BufferedPoint` (Sparkplug type
    from the point's value type, quality as is) and out as a DDATA of the edge node session,
    read back by the Sparkplug codec."""
    server, port = await start_server()
    servers.append(server)
    await server.async_setValues(1, 3, 0, [0xFEDC, 0xBA98, 0x7654, 0x3210, 0x42F6, 0xE979, 250])
    points = [
        Point("energy", HR, 0, DataType.UINT64),
        Point("flow", HR, 4, DataType.FLOAT32),
        Point("level", HR, 6, DataType.UINT16, scale=0.1),
        Point("gone", HR, REGISTERS + 1, DataType.INT16),
    ]
    collected = Collected()
    async with ModbusConnector([device(port, points)], collected):
        await until(lambda: collected.batches >= 1)
    specs = {p.name: MetricSpec(p.name, SparkplugType[p.value_type.sparkplug_name]) for p in points}
    session = EdgeNodeSession("plant", "gateway-1", {"dev": list(specs.values())})
    session.births(0)
    buffered = [
        BufferedPoint(
            s.device,
            s.metric,
            specs[s.metric].datatype,
            s.timestamp,
            s.value,
            int(s.quality),  # a plain int: the Sparkplug codec takes no int subclasses
        )
        for s in collected.samples[: len(points)]
    ]
    ((topic, payload),) = session.data(session.changes(buffered), now_ms=1)
    assert topic == "spBv1.0/plant/DDATA/gateway-1/dev"
    metrics = {m.alias: m for m in decode_payload(payload).metrics}
    by_name = {name: metrics[session.alias("dev", name)] for name in ("energy", "flow", "level")}
    assert by_name["energy"].value == 0xFEDCBA9876543210
    assert by_name["energy"].datatype is SparkplugType.UInt64
    assert by_name["flow"].value == pytest.approx(123.456, rel=1e-6)
    assert by_name["flow"].datatype is SparkplugType.Float
    assert by_name["level"].value == pytest.approx(25.0)
    assert by_name["level"].datatype is SparkplugType.Double
    gone = metrics[session.alias("dev", "gone")]
    assert gone.value is None
    assert gone.properties["Quality"].value == int(Quality.BAD) == 0

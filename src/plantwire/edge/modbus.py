"""The Modbus connector: polls devices with pymodbus's asyncio clients (Modbus TCP, or RTU on a
serial line) and hands each poll's `Sample` records to the gateway.

Each device gets one connection and one task. The task connects (retrying with exponential
backoff from ``reconnect_delay`` up to ``reconnect_delay_max``), then runs the device's planned
reads (`plantwire.edge.modbus_plan.plan_polls`), each group at its interval, one request at a
time (pymodbus runs one transaction at a time on a connection anyway). Per request:

* an answer → each point decoded, GOOD (a point whose registers do not decode: BAD);
* an exception response → its points BAD, except codes 0x0A/0x0B (a Modbus gateway found no
  path or no answer from its target): UNCERTAIN;
* no answer within ``timeout``, after ``retries`` more tries → its points UNCERTAIN with their
  last good value;
* the connection gone → every point of the device BAD (once), then reconnecting.

Nothing a device does ends the task; `DeviceHealth` counts what happened and keeps the last
error. `ModbusConnector.write` encodes a value through the map and writes a coil (function 5)
or holding registers (6 for one register, 16 for more or when ``write_multiple``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from plantwire.edge.modbus_codec import CodecError, decode, encode, encode_bit
from plantwire.edge.modbus_map import (
    MAP_KEYS,
    DataType,
    MapError,
    Order,
    Point,
    RegisterMap,
    Table,
)
from plantwire.edge.modbus_map import parse_register_map as _parse_map
from plantwire.edge.modbus_plan import PollGroup, ReadRequest, plan_polls
from plantwire.edge.samples import Quality, Sample, SampleSink, SampleValue

__all__ = [
    "DeviceHealth",
    "ModbusConnector",
    "ModbusDevice",
    "SerialLink",
    "TcpLink",
    "WriteResult",
    "parse_devices",
]

_log = structlog.get_logger("plantwire.edge.modbus")

#: exception codes that mean a Modbus gateway could not reach its target: no answer, not "no"
_GATEWAY_CODES = frozenset({ExcCodes.GATEWAY_PATH_UNAVIABLE, ExcCodes.GATEWAY_NO_RESPONSE})
_PARITIES = frozenset({"N", "E", "O"})


@dataclass(frozen=True, slots=True)
class TcpLink:
    """Modbus TCP to ``host``:``port``."""

    host: str
    port: int = 502


@dataclass(frozen=True, slots=True)
class SerialLink:
    """Modbus RTU on a serial line (``port`` is a device such as ``/dev/ttyUSB0``, or any URL
    pyserial opens, such as ``socket://host:port`` for RTU carried over TCP)."""

    port: str
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1


@dataclass(frozen=True, slots=True)
class ModbusDevice:
    """One device (or one serial line's worth of units behind one link) and how to talk to it.

    ``timeout``: seconds to wait for each answer; ``retries``: further tries of a request that
    got none. ``write_multiple``: write even a single register with function 16, for devices
    without function 6."""

    name: str
    link: TcpLink | SerialLink
    register_map: RegisterMap
    timeout: float = 1.0
    retries: int = 1
    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 30.0
    write_multiple: bool = False

    def __post_init__(self) -> None:
        where = f"device {self.name!r}"
        if not self.name:
            raise MapError("a device needs a name")
        if not (self.timeout > 0 and self.retries >= 0):
            raise MapError(f"{where}: timeout must be positive and retries not negative")
        if not 0 < self.reconnect_delay <= self.reconnect_delay_max:
            raise MapError(f"{where}: 0 < reconnect_delay <= reconnect_delay_max, please")
        link = self.link
        if isinstance(link, TcpLink) and not 0 < link.port < 65536:
            raise MapError(f"{where}: port {link.port} is not a TCP port")
        if isinstance(link, SerialLink) and (
            link.parity not in _PARITIES
            or link.bytesize not in (7, 8)
            or link.stopbits not in (1, 2)
        ):
            raise MapError(f"{where}: parity is N, E or O, bytesize 7 or 8, stopbits 1 or 2")


_LINK_KEYS = {
    "host": str,
    "port": int,
    "serial_port": str,
    "baudrate": int,
    "bytesize": int,
    "parity": str,
    "stopbits": int,
}
_DEVICE_KEYS = {
    "timeout": float,
    "retries": int,
    "reconnect_delay": float,
    "reconnect_delay_max": float,
    "write_multiple": bool,
}


def parse_devices(section: Mapping[str, Any]) -> list[ModbusDevice]:
    """The devices of ``gateway.toml``'s ``[modbus]`` section (``[[modbus.devices]]``, each with
    its ``[[modbus.devices.points]]``; see docs/edge.md). A `MapError` names what is wrong."""
    entries = section.get("devices", [])
    if not isinstance(entries, list):
        raise MapError("modbus.devices must be a list of tables")
    devices = [_parse_device(entry) for entry in entries]
    names = [device.name for device in devices]
    for name in names:
        if names.count(name) > 1:
            raise MapError(f"device {name!r}: the name is used twice")
    return devices


def _parse_device(entry: object) -> ModbusDevice:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise MapError("each modbus device must be a table with a name")
    name: str = entry["name"]
    where = f"device {name!r}"
    options: dict[str, Any] = {}
    for key, kind in (_LINK_KEYS | _DEVICE_KEYS).items():
        if key in entry:
            value = entry[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise MapError(f"{where}: {key} must be {kind.__name__}, not {value!r}")
            options[key] = value
    unknown = set(entry) - set(_LINK_KEYS) - set(_DEVICE_KEYS) - MAP_KEYS - {"name"}
    if unknown:
        raise MapError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
    link: TcpLink | SerialLink
    if ("host" in options) == ("serial_port" in options):
        raise MapError(f"{where}: give either host (Modbus TCP) or serial_port (RTU)")
    if "host" in options:
        if any(key in options for key in ("baudrate", "bytesize", "parity", "stopbits")):
            raise MapError(f"{where}: baudrate, bytesize, parity, stopbits are for serial_port")
        link = TcpLink(options.pop("host"), options.pop("port", 502))
    else:
        if "port" in options:
            raise MapError(f"{where}: port is for host; a serial line is serial_port")
        serial = {
            key: options.pop(key)
            for key in ("baudrate", "bytesize", "stopbits", "parity")
            if key in options
        }
        link = SerialLink(options.pop("serial_port"), **serial)
    try:
        register_map = _parse_map({key: entry[key] for key in MAP_KEYS if key in entry})
    except MapError as exc:
        raise MapError(f"{where}: {exc}") from None
    return ModbusDevice(name=name, link=link, register_map=register_map, **options)


@dataclass(slots=True)
class DeviceHealth:
    """How a device's connection is doing. Times are milliseconds since the epoch (UTC)."""

    device: str
    connected: bool = False
    last_error: str | None = None
    last_error_at: int | None = None
    last_good_at: int | None = None
    #: read requests sent, and how they ended
    requests: int = 0
    good_responses: int = 0
    exception_responses: int = 0
    timeouts: int = 0
    #: points whose registers did not decode
    decode_errors: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    writes: int = 0
    failed_writes: int = 0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Whether a write was acknowledged by the device, and if not, why."""

    ok: bool
    error: str | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


#: how `_DeviceLink._decoded` reads a point of a register table: one register as an unsigned
#: or signed 16-bit integer, unscaled, bytes high first (the commonest points: no `decode`
#: call), or through `modbus_codec.decode` (any other)
_PLAIN_UINT16, _PLAIN_INT16, _PLAIN_OTHER = 0, 1, 2


def _layout(request: ReadRequest) -> tuple[tuple[Point, int, int], ...]:
    """Each point of a request with where its registers start in the answer and how it is
    read (see `_PLAIN_UINT16`)."""
    layout = []
    for point in request.points:
        kind = _PLAIN_OTHER
        if point.count == 1 and not point.scaled and point.byte_order is Order.BIG:
            if point.data_type is DataType.UINT16:
                kind = _PLAIN_UINT16
            elif point.data_type is DataType.INT16:
                kind = _PLAIN_INT16
        layout.append((point, point.address - request.address, kind))
    return tuple(layout)


def _exception_text(code: int) -> str:
    try:
        return f"exception {code} ({ExcCodes(code).name.lower().replace('_', ' ')})"
    except ValueError:
        return f"exception {code}"


class _DeviceLink:
    """One device's connection, polling loop, health and last good values."""

    def __init__(self, device: ModbusDevice, sink: SampleSink) -> None:
        self.device = device
        self.sink = sink
        self.health = DeviceHealth(device.name)
        self.groups = plan_polls(device.register_map)
        #: each request's points as `_decoded` reads them, by the request's id (the requests
        #: live as long as ``groups``)
        self._layouts = {
            id(request): _layout(request) for group in self.groups for request in group.requests
        }
        self.last: dict[str, SampleValue] = {}
        self.down_reported = False
        self._client: ModbusBaseClient | None = None

    @property
    def client(self) -> ModbusBaseClient:
        """The pymodbus client, which `run` makes (pymodbus wants the running event loop)."""
        if self._client is None:
            raise RuntimeError(f"the connection to {self.device.name!r} is not running")
        return self._client

    def _make_client(self) -> ModbusBaseClient:
        device, link = self.device, self.device.link
        # reconnect_delay=0: pymodbus does not reconnect on its own; run() does, with backoff
        common: dict[str, Any] = {
            "name": device.name,
            "timeout": device.timeout,
            "retries": device.retries,
            "reconnect_delay": 0,
        }
        if isinstance(link, TcpLink):
            return AsyncModbusTcpClient(link.host, port=link.port, **common)
        return AsyncModbusSerialClient(
            link.port,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
            **common,
        )

    async def run(self) -> None:
        """Connect, poll until the connection is lost, and again, until cancelled."""
        delay = self.device.reconnect_delay
        self._client = self._make_client()
        try:
            while True:
                if await self._connect():
                    delay = self.device.reconnect_delay
                    await self._poll_while_connected()
                    self._lost("connection lost")
                # also after a loss: a device that drops every connection is not hammered
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.device.reconnect_delay_max)
        finally:
            self.client.close()
            self._client = None
            self.health.connected = False

    async def _connect(self) -> bool:
        link = self.device.link
        where = f"{link.host}:{link.port}" if isinstance(link, TcpLink) else link.port
        try:
            connected = await self.client.connect()
        except (ModbusException, OSError) as exc:
            connected, reason = False, str(exc)
        else:
            reason = "no connection"
        if connected:
            self.health.connected = True
            self.health.connects += 1
            self.down_reported = False
            _log.info("modbus device connected", device=self.device.name, link=where)
            return True
        self.health.connect_failures += 1
        self._lost(f"cannot connect to {where}: {reason}")
        return False

    def _lost(self, reason: str) -> None:
        """The connection is gone (or never came): every point BAD, reported once."""
        if self.health.connected:
            self.health.disconnects += 1
            _log.warning("modbus device disconnected", device=self.device.name, reason=reason)
        self.health.connected = False
        now = _now_ms()
        self._error(reason, now)
        self.client.close()
        if self.down_reported:
            return
        self.down_reported = True
        name = self.device.name
        points = self.device.register_map.points
        if points:
            self.sink([Sample(name, point.name, None, Quality.BAD, now) for point in points])

    def _error(self, text: str, now: int) -> None:
        """Keep ``text`` as the last error, logged when it differs from the one before."""
        if text != self.health.last_error:
            _log.warning("modbus device error", device=self.device.name, error=text)
        self.health.last_error, self.health.last_error_at = text, now

    async def _poll_while_connected(self) -> None:
        """Poll each group at its interval until the connection is lost."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        due = [loop.time()] * len(self.groups)
        while self.client.connected:
            if task is not None and task.cancelling():
                # Python 3.11's asyncio.wait_for (in pymodbus's reads) returns the answer and
                # drops a cancellation that arrives as the answer does; polling without pause,
                # the task would never stop
                raise asyncio.CancelledError
            now = loop.time()
            index = min(range(len(due)), key=due.__getitem__, default=None)
            if index is None or due[index] > now:
                wait = 1.0 if index is None else due[index] - now
                await asyncio.sleep(min(wait, 1.0))  # and look at the connection now and then
                continue
            group = self.groups[index]
            if not await self._poll(group):
                return
            due[index] = max(due[index] + group.interval, loop.time())

    async def _poll(self, group: PollGroup) -> bool:
        """Read one group and hand its samples over; False if the connection was lost."""
        samples: list[Sample] = []
        lost = False
        for request in group.requests:
            self.health.requests += 1
            try:
                response = await self._read(request)
            except ModbusIOException as exc:
                if not self.client.connected:  # pymodbus gave up on the connection
                    lost = True
                    break
                self.health.timeouts += 1
                self._failed(request, Quality.UNCERTAIN, f"no response ({exc})", samples)
                continue
            except ConnectionException:
                lost = True
                break
            except ModbusException as exc:  # the library's other refusals: unusable answer
                self._failed(request, Quality.BAD, str(exc), samples)
                continue
            if response.isError():
                code = response.exception_code
                self.health.exception_responses += 1
                quality = Quality.UNCERTAIN if code in _GATEWAY_CODES else Quality.BAD
                self._failed(request, quality, _exception_text(code), samples)
                continue
            self._decoded(request, response, samples)
        if samples:
            self.sink(samples)
        return not lost

    def _read(self, request: ReadRequest) -> Awaitable[ModbusPDU]:
        client, address, count, unit = self.client, request.address, request.count, request.unit
        if request.table is Table.COIL:
            return client.read_coils(address, count=count, device_id=unit)
        if request.table is Table.DISCRETE_INPUT:
            return client.read_discrete_inputs(address, count=count, device_id=unit)
        if request.table is Table.HOLDING_REGISTER:
            return client.read_holding_registers(address, count=count, device_id=unit)
        return client.read_input_registers(address, count=count, device_id=unit)

    def _failed(
        self, request: ReadRequest, quality: Quality, reason: str, samples: list[Sample]
    ) -> None:
        now = _now_ms()
        where = f"{request.table} {request.address} (+{request.count}) on unit {request.unit}"
        self._error(f"{where}: {reason}", now)
        name = self.device.name
        for point in request.points:
            value = self.last.get(point.name) if quality is Quality.UNCERTAIN else None
            samples.append(Sample(name, point.name, value, quality, now))

    def _decoded(self, request: ReadRequest, response: ModbusPDU, samples: list[Sample]) -> None:
        now = _now_ms()
        self.health.good_responses += 1
        self.health.last_good_at = now
        name = self.device.name
        values: Sequence[int] | Sequence[bool]
        values = response.bits if request.table.holds_bits else response.registers
        if len(values) < request.count:
            self._failed(request, Quality.BAD, f"{len(values)} values in the answer", samples)
            return
        if request.table.holds_bits:
            for point in request.points:
                value: SampleValue = bool(values[point.address - request.address])
                self.last[point.name] = value
                samples.append(Sample(name, point.name, value, Quality.GOOD, now))
            return
        last, good = self.last, Quality.GOOD
        for point, start, kind in self._layouts[id(request)]:
            if kind != _PLAIN_OTHER:  # one register as it is: what decode does, inline
                register = values[start]
                if type(register) is int and 0 <= register <= 0xFFFF:
                    value = (
                        register - 0x10000
                        if kind == _PLAIN_INT16 and register & 0x8000
                        else register
                    )
                    last[point.name] = value
                    samples.append(Sample(name, point.name, value, good, now))
                    continue
            try:
                value = decode(point, values[start : start + point.count])
            except CodecError as exc:
                self.health.decode_errors += 1
                self._error(str(exc), now)
                samples.append(Sample(name, point.name, None, Quality.BAD, now))
                continue
            last[point.name] = value
            samples.append(Sample(name, point.name, value, good, now))

    async def write(self, point_name: str, value: SampleValue) -> WriteResult:
        result = await self._write(point_name, value)
        if result.ok:
            self.health.writes += 1
        else:
            self.health.failed_writes += 1
            self._error(f"write {point_name}: {result.error}", _now_ms())
        return result

    async def _write(self, point_name: str, value: SampleValue) -> WriteResult:
        try:
            point = self.device.register_map.point(point_name)
        except KeyError:
            return WriteResult(False, "no such point")
        if not point.writable:
            return WriteResult(False, "the point is not writable")
        try:
            encoded = (
                encode_bit(point, value) if point.table is Table.COIL else encode(point, value)
            )
        except CodecError as exc:
            return WriteResult(False, str(exc))
        client = self._client
        if client is None or not client.connected:
            return WriteResult(False, "not connected")
        try:
            response = await self._write_request(client, point, encoded)
        except ModbusIOException as exc:
            return WriteResult(False, f"no response ({exc})")
        except ConnectionException:
            return WriteResult(False, "not connected")
        except ModbusException as exc:
            return WriteResult(False, str(exc))
        if response.isError():
            return WriteResult(False, _exception_text(response.exception_code))
        return WriteResult(True)

    def _write_request(
        self, client: ModbusBaseClient, point: Point, encoded: bool | tuple[int, ...]
    ) -> Awaitable[ModbusPDU]:
        """The client call that writes the encoded value: function 5, 6 or 16 (pymodbus raises
        `ConnectionException` here, before any await, when the connection is gone)."""
        unit = point.unit
        if isinstance(encoded, bool):
            return client.write_coil(point.address, encoded, device_id=unit)
        if len(encoded) == 1 and not self.device.write_multiple:
            return client.write_register(point.address, encoded[0], device_id=unit)
        return client.write_registers(point.address, list(encoded), device_id=unit)


class ModbusConnector:
    """Polls ``devices`` and hands samples to ``sink``; `run` until cancelled, or use it as an
    async context manager (which runs it in a task). `health` and `write` work meanwhile."""

    def __init__(self, devices: Sequence[ModbusDevice], sink: SampleSink) -> None:
        self._links: dict[str, _DeviceLink] = {}
        for device in devices:
            if device.name in self._links:
                raise MapError(f"device {device.name!r}: the name is used twice")
            self._links[device.name] = _DeviceLink(device, sink)
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Poll every device until cancelled."""
        async with asyncio.TaskGroup() as group:
            for name, link in self._links.items():
                group.create_task(link.run(), name=f"modbus {name}")

    async def __aenter__(self) -> ModbusConnector:
        self._task = asyncio.create_task(self.run(), name="modbus connector")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def health(self) -> dict[str, DeviceHealth]:
        """A copy of each device's health, by device name."""
        return {name: dataclasses.replace(link.health) for name, link in self._links.items()}

    async def write(self, device: str, point: str, value: SampleValue) -> WriteResult:
        """Write ``value`` to a writable point (encoded through its map: scale and offset
        inverted, range checked); the result says whether the device acknowledged it."""
        link = self._links.get(device)
        if link is None:
            return WriteResult(False, f"no device {device!r}")
        return await link.write(point, value)

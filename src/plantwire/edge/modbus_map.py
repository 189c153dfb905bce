"""A Modbus device's register map: its points, checked, and read from configuration (no I/O).

A `Point` names a value in one of the four Modbus tables (Modbus Application Protocol
Specification V1.1b3, §4.3): coils and discrete inputs hold bits, holding and input registers
16-bit words. Addresses are the protocol's own, 0 to 65535 (a manual's "40001" is holding
register 0). A point's type says how many registers it spans and how they decode; multi-register
values follow the point's byte order (within each register) and word order (of the registers).
`RegisterMap` is the points of one device with the limits its reads are planned under
(`plantwire.edge.modbus_plan`); `plantwire.edge.modbus_codec` turns registers into values and
back. Everything here is checked when built: a bad map fails at start with a `MapError` that
names the point, never mid-poll."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "DataType",
    "MapError",
    "Order",
    "Point",
    "ReadLimits",
    "RegisterMap",
    "Table",
    "parse_register_map",
]

#: Read Coils / Read Discrete Inputs may ask for 1 to 2000 bits (spec §6.1, §6.2).
MAX_READ_BITS = 2000
#: Read Holding / Input Registers may ask for 1 to 125 registers (spec §6.3, §6.4).
MAX_READ_REGISTERS = 125
_MAX_ADDRESS = 65535
_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


class MapError(ValueError):
    """A register map or device entry that cannot be used; the message names the device or
    point and the problem."""


class Table(StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"

    @property
    def holds_bits(self) -> bool:
        """Coils and discrete inputs hold single bits; the other two, 16-bit registers."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        """Coils and holding registers can be written; inputs only read."""
        return self in (Table.COIL, Table.HOLDING_REGISTER)


class DataType(StrEnum):
    """How a point's registers decode."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"

    @property
    def registers(self) -> int:
        """Registers a value of this type spans (a string's length is its point's)."""
        return _REGISTERS[self]

    @property
    def is_integer(self) -> bool:
        return self in _INTEGER_RANGES

    @property
    def is_numeric(self) -> bool:
        return self.is_integer or self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def integer_range(self) -> tuple[int, int]:
        """Smallest and largest value of an integer type."""
        return _INTEGER_RANGES[self]

    @property
    def sparkplug_name(self) -> str:
        """The name of the Sparkplug B data type of these values, as in
        ``plantwire.telemetry.sparkplug.DataType`` (kept apart: this module imports nothing)."""
        return _SPARKPLUG_NAMES[self]


_REGISTERS = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.STRING: 0,
}
_SPARKPLUG_NAMES = {
    DataType.BOOL: "Boolean",
    DataType.INT16: "Int16",
    DataType.UINT16: "UInt16",
    DataType.INT32: "Int32",
    DataType.UINT32: "UInt32",
    DataType.INT64: "Int64",
    DataType.UINT64: "UInt64",
    DataType.FLOAT32: "Float",
    DataType.FLOAT64: "Double",
    DataType.STRING: "String",
}
_INTEGER_RANGES = {
    DataType.INT16: (-(1 << 15), (1 << 15) - 1),
    DataType.UINT16: (0, (1 << 16) - 1),
    DataType.INT32: (-(1 << 31), (1 << 31) - 1),
    DataType.UINT32: (0, (1 << 32) - 1),
    DataType.INT64: (-(1 << 63), (1 << 63) - 1),
    DataType.UINT64: (0, (1 << 64) - 1),
}


class Order(StrEnum):
    """Byte order within a register, or word order of a value's registers.

    The protocol sends each register high byte first (big endian) and says nothing about values
    wider than a register; devices differ. With A the most significant byte of a 32-bit value:
    byte big + word big is ABCD, byte little + word big BADC, byte big + word little CDAB, and
    both little DCBA."""

    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class Point:
    """One named value of a device.

    * ``length``: registers of a ``string`` (two bytes each); only strings have one.
    * ``bit``: for a ``bool`` in a register table, which bit of the register (0 is the least
      significant, counted in the register's value after byte order).
    * ``scale``, ``offset``: numeric values are reported as ``raw * scale + offset``, and
      written back through the inverse. With the defaults an integer stays an integer.
    * ``poll_interval``: seconds between reads.
    * ``writable``: whether the gateway may write it (a whole coil or holding register value).
    """

    name: str
    table: Table
    address: int
    data_type: DataType
    unit: int = 1
    length: int | None = None
    bit: int | None = None
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    scale: float = 1.0
    offset: float = 0.0
    poll_interval: float = 1.0
    writable: bool = False

    def __post_init__(self) -> None:
        problem = _point_problem(self)
        if problem is not None:
            raise MapError(f"point {self.name!r}: {problem}")

    @property
    def count(self) -> int:
        """Registers (or bits, in a bit table) the point spans."""
        if self.data_type is DataType.STRING:
            assert self.length is not None  # checked when built
            return self.length
        return 1 if self.table.holds_bits else self.data_type.registers

    @property
    def end(self) -> int:
        """The address after the point's last register or bit."""
        return self.address + self.count

    @property
    def scaled(self) -> bool:
        """Whether scale or offset change the raw value."""
        return self.scale != 1.0 or self.offset != 0.0

    @property
    def value_type(self) -> DataType:
        """The type of the values reported: the point's own, or float64 once scaled."""
        return DataType.FLOAT64 if self.scaled else self.data_type


def _point_problem(point: Point) -> str | None:
    """What is wrong with a point, or None."""
    if not point.name or point.name != point.name.strip():
        return "a name must be non-empty, without surrounding spaces"
    if not 0 <= point.unit <= 255:
        return f"unit {point.unit} is not a unit identifier (0 to 255)"
    if not 0 <= point.address <= _MAX_ADDRESS:
        return f"address {point.address} is outside 0 to {_MAX_ADDRESS}"
    kind = point.data_type
    if point.table.holds_bits and kind is not DataType.BOOL:
        return f"a {point.table} holds one bit, so its type can only be bool, not {kind}"
    if kind is DataType.STRING:
        if point.length is None or not 1 <= point.length <= MAX_READ_REGISTERS:
            return f"a string needs a length of 1 to {MAX_READ_REGISTERS} registers"
    elif point.length is not None:
        return f"length is for strings; a {kind} always spans {kind.registers} register(s)"
    if point.bit is not None:
        if kind is not DataType.BOOL or point.table.holds_bits:
            return "bit is for a bool in a holding or input register"
        if not 0 <= point.bit <= 15:
            return f"bit {point.bit} is outside 0 to 15"
    elif kind is DataType.BOOL and not point.table.holds_bits:
        return f"a bool in a {point.table} needs the bit (0 to 15) it is"
    if point.address + point.count - 1 > _MAX_ADDRESS:
        return f"its {point.count} registers run past address {_MAX_ADDRESS}"
    if not (math.isfinite(point.scale) and point.scale != 0.0 and math.isfinite(point.offset)):
        return "scale must be finite and non-zero, offset finite"
    if point.scaled and not kind.is_numeric:
        return f"scale and offset are for numbers, not {kind}"
    if not (math.isfinite(point.poll_interval) and point.poll_interval > 0):
        return "poll_interval must be a positive number of seconds"
    if point.writable:
        if not point.table.writable:
            return f"a {point.table} cannot be written"
        if point.bit is not None:
            return "a bit of a register cannot be written on its own"
    return None


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How reads are planned: the most a request may ask for (a device may accept less than the
    protocol's 125 registers / 2000 bits) and the widest run of unwanted addresses a request
    may read through to join two points into one request. Gaps are 0 by default: a device
    may refuse a read that touches an address it does not have."""

    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS
    max_gap_registers: int = 0
    max_gap_bits: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_registers <= MAX_READ_REGISTERS:
            raise MapError(f"max_registers must be 1 to {MAX_READ_REGISTERS}")
        if not 1 <= self.max_bits <= MAX_READ_BITS:
            raise MapError(f"max_bits must be 1 to {MAX_READ_BITS}")
        if self.max_gap_registers < 0 or self.max_gap_bits < 0:
            raise MapError("max_gap_registers and max_gap_bits cannot be negative")


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """The points of one device (names unique, each readable within the limits)."""

    points: tuple[Point, ...]
    limits: ReadLimits = field(default_factory=ReadLimits)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise MapError(f"point {point.name!r}: the name is used twice")
            seen.add(point.name)
            if not point.table.holds_bits and point.count > self.limits.max_registers:
                raise MapError(
                    f"point {point.name!r}: {point.count} registers do not fit in one read"
                    f" of at most max_registers = {self.limits.max_registers}"
                )

    def point(self, name: str) -> Point:
        """The point of that name; `KeyError` if there is none."""
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(name)


# --- configuration ------------------------------------------------------------------------------

#: Keys of a device entry the map reads: defaults for its points, and the read limits.
MAP_KEYS = frozenset(
    {
        "unit",
        "byte_order",
        "word_order",
        "poll_interval",
        "max_registers",
        "max_bits",
        "max_gap_registers",
        "max_gap_bits",
        "points",
    }
)
_POINT_KEYS = frozenset(
    {
        "name",
        "table",
        "address",
        "type",
        "unit",
        "length",
        "bit",
        "byte_order",
        "word_order",
        "scale",
        "offset",
        "poll_interval",
        "writable",
    }
)


def parse_register_map(entry: Mapping[str, Any]) -> RegisterMap:
    """The register map of a device entry of ``gateway.toml`` (``[[modbus.devices]]`` with its
    ``[[modbus.devices.points]]``; the entry's connection keys are the caller's to take off
    first). The device's ``unit``, ``byte_order``, ``word_order`` and ``poll_interval`` are
    defaults its points may override. Unknown keys and wrong types are `MapError`s."""
    unknown = set(entry) - MAP_KEYS
    if unknown:
        raise MapError(f"unknown device keys: {', '.join(sorted(unknown))}")
    limits = ReadLimits(
        max_registers=_or(_get(entry, "max_registers", int, "device"), MAX_READ_REGISTERS),
        max_bits=_or(_get(entry, "max_bits", int, "device"), MAX_READ_BITS),
        max_gap_registers=_or(_get(entry, "max_gap_registers", int, "device"), 0),
        max_gap_bits=_or(_get(entry, "max_gap_bits", int, "device"), 0),
    )
    defaults = {
        key: entry[key]
        for key in ("unit", "byte_order", "word_order", "poll_interval")
        if key in entry
    }
    raw_points = entry.get("points", [])
    if not isinstance(raw_points, Sequence) or isinstance(raw_points, str):
        raise MapError("points must be a list of tables")
    return RegisterMap(tuple(_parse_point(raw, defaults) for raw in raw_points), limits)


def _parse_point(raw: object, defaults: Mapping[str, Any]) -> Point:
    if not isinstance(raw, Mapping):
        raise MapError("each point must be a table")
    name = raw.get("name")
    if not isinstance(name, str):
        raise MapError("each point needs a name (a string)")
    where = f"point {name!r}"
    unknown = set(raw) - _POINT_KEYS
    if unknown:
        raise MapError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
    merged = {**defaults, **raw}
    for key in ("table", "address", "type"):
        if key not in merged:
            raise MapError(f"{where}: {key} is missing")
    return Point(
        name=name,
        table=_enum(Table, merged["table"], where, "table"),
        address=_or(_get(merged, "address", int, where), 0),
        data_type=_enum(DataType, merged["type"], where, "type"),
        unit=_or(_get(merged, "unit", int, where), 1),
        length=_get(merged, "length", int, where),
        bit=_get(merged, "bit", int, where),
        byte_order=_enum(Order, merged.get("byte_order", "big"), where, "byte_order"),
        word_order=_enum(Order, merged.get("word_order", "big"), where, "word_order"),
        scale=_or(_get(merged, "scale", float, where), 1.0),
        offset=_or(_get(merged, "offset", float, where), 0.0),
        poll_interval=_or(_get(merged, "poll_interval", float, where), 1.0),
        writable=_or(_get(merged, "writable", bool, where), False),
    )


def _get(entry: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T | None:
    """``entry[key]`` if it is of ``kind`` (an int is a float too; a bool is not an int), None
    if the key is absent."""
    if key not in entry:
        return None
    value = entry[key]
    if isinstance(value, bool) and kind is not bool:
        raise MapError(f"{where}: {key} must be {kind.__name__}, not {value!r}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise MapError(f"{where}: {key} must be {kind.__name__}, not {value!r}")
    return value


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _enum(kind: type[_E], value: object, where: str, key: str) -> _E:
    if isinstance(value, str) and value in kind._value2member_map_:
        return kind(value)
    names = ", ".join(member.value for member in kind)
    raise MapError(f"{where}: {key} {value!r} is not one of {names}")

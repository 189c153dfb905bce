"""The energy meters' Modbus register map, and its codec (no I/O).

One three-phase meter per line, each its own Modbus unit (device) id behind one TCP server,
as meters on an RS-485 segment behind a gateway are. The map deliberately mixes encodings —
float32 in all four byte/word orders, float64 and uint32 with swapped words, scaled uint16 —
because real meters do, and the gateway's decoding has to get every one of them right.
``REGISTER_MAP`` is the one source of truth: docs/simulator.md shows it as a table (a test
checks they agree) and the demo's gateway configuration can be generated from it.

Orders name the bytes of the value, most significant first, as ``A B C D``: ``ABCD`` is big
endian throughout (Modbus' own order), ``CDAB`` swaps the 16-bit words (low word first),
``BADC`` swaps the bytes within each word, ``DCBA`` is little endian throughout. For a
float64 the same words/bytes rule applies to all four registers (``CDAB`` means the word
order is reversed: ``GH EF CD AB``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "REGISTER_MAP",
    "ByteOrder",
    "MeterRegister",
    "RegisterTable",
    "RegisterType",
    "table_image",
]


class RegisterTable(StrEnum):
    INPUT = "input"  # function code 4
    HOLDING = "holding"  # function code 3


class RegisterType(StrEnum):
    UINT16 = "uint16"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


class ByteOrder(StrEnum):
    ABCD = "ABCD"  # big-endian words, big-endian bytes
    CDAB = "CDAB"  # little-endian words (low word first), big-endian bytes
    BADC = "BADC"  # big-endian words, bytes swapped within each word
    DCBA = "DCBA"  # little endian throughout

    @property
    def words_swapped(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)


_STRUCT = {
    RegisterType.UINT16: ">H",
    RegisterType.UINT32: ">I",
    RegisterType.FLOAT32: ">f",
    RegisterType.FLOAT64: ">d",
}


@dataclass(frozen=True, slots=True)
class MeterRegister:
    """One value in a meter's register map. An integer register holds
    ``round(value * scale)`` (modulo its range: counters wrap); a float holds the value."""

    table: RegisterTable
    address: int
    name: str  # the MeterSnapshot field it shows
    type: RegisterType
    order: ByteOrder
    unit: str
    scale: float = 1.0
    description: str = ""

    @property
    def count(self) -> int:
        """How many 16-bit registers the value takes."""
        return struct.calcsize(_STRUCT[self.type]) // 2

    def encode(self, value: float) -> list[int]:
        """The registers holding ``value``, in the order they are read."""
        if self.type in (RegisterType.UINT16, RegisterType.UINT32):
            if not math.isfinite(value):
                raise ValueError(f"{self.name}: cannot encode {value}")
            data = struct.pack(
                _STRUCT[self.type], round(value * self.scale) % (1 << (16 * self.count))
            )
        else:
            data = struct.pack(_STRUCT[self.type], value)
        return _reorder(
            [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)], self.order
        )

    def decode(self, registers: Sequence[int]) -> float:
        """The value registers read from the device hold."""
        if len(registers) != self.count:
            raise ValueError(f"{self.name} takes {self.count} registers, got {len(registers)}")
        words = _reorder(list(registers), self.order)  # its own inverse
        data = b"".join(word.to_bytes(2, "big") for word in words)
        (raw,) = struct.unpack(_STRUCT[self.type], data)
        if self.type in (RegisterType.UINT16, RegisterType.UINT32):
            return float(raw) / self.scale
        return float(raw)


def _reorder(words: list[int], order: ByteOrder) -> list[int]:
    if order.bytes_swapped:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order.words_swapped:
        words.reverse()
    return words


_I, _H = RegisterTable.INPUT, RegisterTable.HOLDING
_F32, _F64 = RegisterType.FLOAT32, RegisterType.FLOAT64
_U16, _U32 = RegisterType.UINT16, RegisterType.UINT32

REGISTER_MAP: tuple[MeterRegister, ...] = (
    MeterRegister(
        _I, 0, "voltage_v", _F32, ByteOrder.ABCD, "V", description="line-to-line voltage"
    ),
    MeterRegister(_I, 2, "current_a", _F32, ByteOrder.ABCD, "A", description="phase current"),
    MeterRegister(_I, 4, "power_kw", _F32, ByteOrder.ABCD, "kW", description="active power"),
    MeterRegister(_I, 6, "power_factor", _F32, ByteOrder.ABCD, "", description="power factor"),
    MeterRegister(_I, 8, "frequency_hz", _F32, ByteOrder.ABCD, "Hz", description="frequency"),
    MeterRegister(
        _I,
        10,
        "energy_kwh",
        _U32,
        ByteOrder.ABCD,
        "kWh",
        scale=10.0,
        description="active energy imported, in 0.1 kWh (wraps at 2³²)",
    ),
    MeterRegister(_H, 0, "power_kw", _F32, ByteOrder.CDAB, "kW", description="active power"),
    MeterRegister(
        _H, 2, "energy_kwh", _F64, ByteOrder.CDAB, "kWh", description="active energy imported"
    ),
    MeterRegister(
        _H,
        6,
        "energy_kwh",
        _U32,
        ByteOrder.CDAB,
        "kWh",
        scale=1000.0,
        description="active energy imported, in Wh (wraps at 2³²)",
    ),
    MeterRegister(
        _H, 8, "voltage_v", _F32, ByteOrder.DCBA, "V", description="line-to-line voltage"
    ),
    MeterRegister(_H, 10, "current_a", _F32, ByteOrder.BADC, "A", description="phase current"),
    MeterRegister(
        _H,
        12,
        "voltage_v",
        _U16,
        ByteOrder.ABCD,
        "V",
        scale=10.0,
        description="line-to-line voltage, in 0.1 V",
    ),
    MeterRegister(
        _H,
        13,
        "frequency_hz",
        _U16,
        ByteOrder.ABCD,
        "Hz",
        scale=100.0,
        description="frequency, in 0.01 Hz",
    ),
)


def table_image(
    table: RegisterTable,
    values: dict[str, float],
    registers: Sequence[MeterRegister] = REGISTER_MAP,
) -> list[int]:
    """All registers of ``table`` from address 0, filled with ``values`` (by field name)."""
    entries = [r for r in registers if r.table is table]
    size = max(r.address + r.count for r in entries)
    image = [0] * size
    for register in entries:
        image[register.address : register.address + register.count] = register.encode(
            values[register.name]
        )
    return image

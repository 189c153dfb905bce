"""Registers to point values and back (no I/O).

A register is an unsigned 16-bit integer as the protocol carries it (high byte first on the
wire). To decode a point, its registers are put in word order (most significant first: with
word order ``little`` the list is reversed), each split into two bytes in byte order (``little``
swaps them), and the bytes read as a big-endian integer or IEEE 754 float
(`plantwire.edge.modbus_map.Order` shows the four 32-bit layouts). Integers and floats are then
scaled (``raw * scale + offset``). Strings take byte order only: two bytes a register, the first
character in the high byte, UTF-8, ending at the first NUL (the rest padding). Encoding is the
exact inverse, checked against the type's range."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from plantwire.edge.modbus_map import DataType, Order, Point
from plantwire.edge.samples import SampleValue

__all__ = ["CodecError", "decode", "encode", "encode_bit"]

_STRUCT = {
    DataType.INT16: struct.Struct(">h"),
    DataType.UINT16: struct.Struct(">H"),
    DataType.INT32: struct.Struct(">i"),
    DataType.UINT32: struct.Struct(">I"),
    DataType.INT64: struct.Struct(">q"),
    DataType.UINT64: struct.Struct(">Q"),
    DataType.FLOAT32: struct.Struct(">f"),
    DataType.FLOAT64: struct.Struct(">d"),
}


class CodecError(ValueError):
    """Registers that do not decode as the point says, or a value that does not fit it."""


def decode(point: Point, registers: Sequence[int]) -> SampleValue:
    """The value of a register-table point from its registers (as many as ``point.count``)."""
    if len(registers) != point.count:
        raise CodecError(f"{point.name}: {len(registers)} registers, {point.count} expected")
    for register in registers:
        if not 0 <= register <= 0xFFFF:
            raise CodecError(f"{point.name}: {register} is not a 16-bit register value")
    kind = point.data_type
    if kind is DataType.BOOL:
        assert point.bit is not None  # a bool in a register has its bit (checked by Point)
        (word,) = _swap_bytes(registers) if point.byte_order is Order.LITTLE else registers
        return bool((word >> point.bit) & 1)
    if kind is DataType.STRING:
        text = _to_bytes(registers, point.byte_order, Order.BIG).split(b"\0", 1)[0]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"{point.name}: not UTF-8 text ({exc.reason})") from None
    raw: int | float = _STRUCT[kind].unpack(
        _to_bytes(registers, point.byte_order, point.word_order)
    )[0]
    if point.scaled:
        return raw * point.scale + point.offset
    return raw


def encode(point: Point, value: SampleValue) -> tuple[int, ...]:
    """The registers that hold ``value`` in a register-table point: the inverse of `decode`.
    A value the point cannot hold (wrong type, out of range, too long) is a `CodecError`."""
    kind = point.data_type
    if kind is DataType.BOOL:
        raise CodecError(f"{point.name}: a bit of a register is not written on its own")
    if kind is DataType.STRING:
        if not isinstance(value, str):
            raise CodecError(f"{point.name}: a string point takes text, not {value!r}")
        data = value.encode("utf-8")
        if b"\0" in data:
            raise CodecError(f"{point.name}: the text contains NUL")
        if len(data) > 2 * point.count:
            raise CodecError(
                f"{point.name}: {len(data)} bytes do not fit in {point.count} registers"
            )
        return _from_bytes(data.ljust(2 * point.count, b"\0"), point.byte_order, Order.BIG)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CodecError(f"{point.name}: a {kind} point takes a number, not {value!r}")
    try:
        data = _STRUCT[kind].pack(_unscale(point, value))
    except (struct.error, OverflowError):
        raise CodecError(f"{point.name}: {value!r} is out of range for {kind}") from None
    return _from_bytes(data, point.byte_order, point.word_order)


def encode_bit(point: Point, value: SampleValue) -> bool:
    """The bit that holds ``value`` in a coil point: it takes a bool, or 0 or 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CodecError(f"{point.name}: a coil takes true or false, not {value!r}")


def _unscale(point: Point, value: int | float) -> int | float:
    """The raw number for a value: ``(value - offset) / scale``, rounded to the nearest integer
    for an integer type when scaled (an unscaled integer point takes integers only)."""
    kind = point.data_type
    if not kind.is_integer:
        return (value - point.offset) / point.scale if point.scaled else float(value)
    if point.scaled:
        raw = (value - point.offset) / point.scale
        if not math.isfinite(raw):
            raise CodecError(f"{point.name}: {value!r} has no {kind} value")
        number = round(raw)
    elif isinstance(value, int):
        number = value
    elif math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        raise CodecError(f"{point.name}: a {kind} point takes an integer, not {value!r}")
    low, high = kind.integer_range
    if not low <= number <= high:
        raise CodecError(f"{point.name}: {value!r} is out of range for {kind}")
    return number


def _swap_bytes(registers: Sequence[int]) -> list[int]:
    return [((register & 0xFF) << 8) | (register >> 8) for register in registers]


def _to_bytes(registers: Sequence[int], byte_order: Order, word_order: Order) -> bytes:
    words = reversed(registers) if word_order is Order.LITTLE else registers
    if byte_order is Order.LITTLE:
        words = _swap_bytes(list(words))
    return b"".join(word.to_bytes(2, "big") for word in words)


def _from_bytes(data: bytes, byte_order: Order, word_order: Order) -> tuple[int, ...]:
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if byte_order is Order.LITTLE:
        words = _swap_bytes(words)
    if word_order is Order.LITTLE:
        words.reverse()
    return tuple(words)

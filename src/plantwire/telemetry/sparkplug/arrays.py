"""The Sparkplug array types packed into a metric's ``bytes_value`` and back (no I/O).

Eclipse Sparkplug 3.0.0, "Datatype Details", array types: the items are packed little-endian
one after the other (Int8Array … DoubleArray; DateTimeArray as 8-byte milliseconds since the
epoch). A BooleanArray is a 4-byte little-endian count followed by the values one bit each,
the first value in the highest bit of the first byte, the last byte padded; a StringArray is
UTF-8 strings each ended by a NUL byte. (The specification's worked examples for FloatArray
and DoubleArray show big-endian bytes; its text, Eclipse Tahu and pysparkplug pack them
little-endian, as here.)

Errors are `PayloadError` with reason ``value``: packed bytes of the wrong length, a string
that is not UTF-8 or holds a NUL, a number out of its type's range."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.model import ArrayValue, DataType

__all__ = ["from_datetime", "pack_array", "to_datetime", "unpack_array"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
#: The last millisecond of the year 9999: the latest time a DateTime (or a point) may have.
MAX_MS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MILLISECOND
_MAX_MS = MAX_MS

#: struct format letter of each fixed-size array type
_FORMATS = {
    DataType.Int8Array: "b",
    DataType.Int16Array: "h",
    DataType.Int32Array: "i",
    DataType.Int64Array: "q",
    DataType.UInt8Array: "B",
    DataType.UInt16Array: "H",
    DataType.UInt32Array: "I",
    DataType.UInt64Array: "Q",
    DataType.FloatArray: "f",
    DataType.DoubleArray: "d",
    DataType.DateTimeArray: "Q",
}
_INTEGER_ARRAYS = frozenset(_FORMATS) - {
    DataType.FloatArray,
    DataType.DoubleArray,
    DataType.DateTimeArray,
}


def to_datetime(ms: int) -> datetime:
    """A DateTime value (milliseconds since the epoch) as an aware UTC datetime."""
    if not 0 <= ms <= _MAX_MS:
        raise PayloadError("value", f"DateTime {ms} ms is beyond the year 9999")
    return _EPOCH + timedelta(milliseconds=ms)


def from_datetime(moment: datetime) -> int:
    """Milliseconds since the epoch of a datetime (naive: UTC), sub-milliseconds dropped."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = (moment - _EPOCH) // _MILLISECOND
    if ms < 0:
        raise PayloadError("value", f"DateTime {moment.isoformat()} is before 1970")
    return ms


def unpack_array(datatype: DataType, packed: bytes) -> ArrayValue:
    """The items of an array metric's ``bytes_value``."""
    if datatype is DataType.BooleanArray:
        return _unpack_booleans(packed)
    if datatype is DataType.StringArray:
        return _unpack_strings(packed)
    letter = _FORMATS[datatype]
    size = struct.calcsize(letter)
    count, extra = divmod(len(packed), size)
    if extra:
        raise PayloadError(
            "value", f"{datatype.name} of {len(packed)} bytes: not a whole number of {size}"
        )
    items: list[Any] = list(struct.unpack(f"<{count}{letter}", packed))
    if datatype is DataType.DateTimeArray:
        return [to_datetime(ms) for ms in items]
    return items


def pack_array(datatype: DataType, items: Sequence[Any]) -> bytes:
    """An array value as the ``bytes_value`` of its data type."""
    if datatype is DataType.BooleanArray:
        _check_items(datatype, items, lambda item: type(item) is bool)
        return _pack_booleans(items)
    if datatype is DataType.StringArray:
        _check_items(datatype, items, lambda item: type(item) is str)
        return _pack_strings(items)
    letter = _FORMATS[datatype]
    if datatype is DataType.DateTimeArray:
        _check_items(datatype, items, lambda item: isinstance(item, datetime))
        items = [from_datetime(item) for item in items]
    elif datatype in _INTEGER_ARRAYS:
        _check_items(datatype, items, lambda item: type(item) is int)
    else:
        _check_items(datatype, items, lambda item: type(item) is float)
    try:
        return struct.pack(f"<{len(items)}{letter}", *items)
    except (struct.error, OverflowError) as error:
        raise PayloadError("value", f"{datatype.name}: an item is out of range ({error})") from None


def _check_items(datatype: DataType, items: Sequence[Any], good: Callable[[Any], bool]) -> None:
    if not isinstance(items, list | tuple):
        raise PayloadError("value", f"{datatype.name} takes a list, not {type(items).__name__}")
    for item in items:
        if not good(item):
            shown = type(item).__name__
            raise PayloadError("value", f"{datatype.name} cannot hold an item of type {shown}")


def _unpack_booleans(packed: bytes) -> list[bool]:
    if len(packed) < 4:
        raise PayloadError("value", f"BooleanArray of {len(packed)} bytes has no 4-byte count")
    count = int.from_bytes(packed[:4], "little")
    bits = packed[4:]
    if len(bits) != (count + 7) // 8:
        raise PayloadError(
            "value", f"BooleanArray of {count} values needs {(count + 7) // 8} bytes of bits"
        )
    number = int.from_bytes(bits, "big")
    total = len(bits) * 8
    return [bool(number >> (total - 1 - index) & 1) for index in range(count)]


def _pack_booleans(items: Sequence[bool]) -> bytes:
    count = len(items)
    size = (count + 7) // 8
    number = 0
    for item in items:
        number = number << 1 | item
    number <<= size * 8 - count  # pad the last byte's low bits
    return count.to_bytes(4, "little") + number.to_bytes(size, "big")


def _unpack_strings(packed: bytes) -> list[str]:
    if not packed:
        return []
    if not packed.endswith(b"\0"):
        raise PayloadError("value", "StringArray does not end with a NUL byte")
    try:
        return packed[:-1].decode().split("\0")
    except UnicodeDecodeError:
        raise PayloadError("value", "StringArray holds bytes that are not UTF-8") from None


def _pack_strings(items: Sequence[str]) -> bytes:
    if any("\0" in item for item in items):
        raise PayloadError("value", "a StringArray item cannot hold a NUL character")
    try:
        return b"".join(item.encode() + b"\0" for item in items)
    except UnicodeEncodeError:  # a lone surrogate
        raise PayloadError("value", "a StringArray item is not encodable as UTF-8") from None

"""Sparkplug scalar values in and out of protobuf's ``value`` oneof fields (no I/O).

Metrics, property values, DataSet cells and Template parameters all carry a basic type's
value in one of ``int_value`` (uint32), ``long_value`` (uint64), ``float_value``,
``double_value``, ``boolean_value`` or ``string_value``; this module holds the one rule for
each type ("Datatype Details"). Errors are `PayloadError` without a location; the codec adds
where the value was."""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.arrays import from_datetime, to_datetime
from plantwire.telemetry.sparkplug.model import CellValue, DataType

__all__ = [
    "datatype_of",
    "decoded_text",
    "misplaced",
    "read_scalar",
    "text",
    "type_name",
    "uint64",
    "value_field",
    "write_scalar",
]

_UINT64 = 1 << 64
#: (bits, signed) of the integer types
_INTEGERS = {
    DataType.Int8: (8, True),
    DataType.Int16: (16, True),
    DataType.Int32: (32, True),
    DataType.Int64: (64, True),
    DataType.UInt8: (8, False),
    DataType.UInt16: (16, False),
    DataType.UInt32: (32, False),
    DataType.UInt64: (64, False),
}
_FIELD_BITS = {"int_value": 32, "long_value": 64}
#: the field of each other scalar type
_FIELDS = {
    DataType.Float: "float_value",
    DataType.Double: "double_value",
    DataType.Boolean: "boolean_value",
    DataType.String: "string_value",
    DataType.Text: "string_value",
    DataType.UUID: "string_value",
    DataType.DateTime: "long_value",
}
_TEXT_TYPES = frozenset({DataType.String, DataType.Text, DataType.UUID})
_BY_NUMBER = tuple(DataType)
_FLOAT32 = struct.Struct("<f")


def datatype_of(number: int) -> DataType:
    """The data type of a wire number; PayloadError (``datatype``) for one that has none."""
    if 0 <= number < len(_BY_NUMBER):
        return _BY_NUMBER[number]
    raise PayloadError("datatype", f"unknown datatype {number}")


def type_name(number: int) -> str:
    return _BY_NUMBER[number].name if 0 <= number < len(_BY_NUMBER) else f"datatype {number}"


def misplaced(datatype: DataType, which: str) -> PayloadError:
    return PayloadError("datatype", f"a {datatype.name} value cannot be in {which}")


def value_field(datatype: DataType) -> str | None:
    """The oneof field `write_scalar` puts a value of ``datatype`` in (``int_value`` for the
    integers of up to 32 bits, ``long_value`` for the 64-bit ones); None for a type that is
    not a basic one (or UUID)."""
    integer = _INTEGERS.get(datatype)
    if integer is not None:
        return "int_value" if integer[0] <= 32 else "long_value"
    return _FIELDS.get(datatype)


def read_scalar(datatype: DataType, which: str, raw: Any) -> CellValue:
    """The value of a basic type (or UUID) that arrived in the oneof field ``which``.

    Integers come in their type's width of two's complement, or sign-extended to the field's
    width (Tahu's Java encoder), and types of 8-32 bits also in ``long_value`` (Tahu sends
    UInt32 there); 64-bit types only in ``long_value``."""
    integer = _INTEGERS.get(datatype)
    if integer is not None:
        bits, signed = integer
        width = _FIELD_BITS.get(which)
        if width is None or width < bits:
            raise misplaced(datatype, which)
        return _from_wire(raw, bits, signed, width, datatype)
    if _FIELDS.get(datatype) != which:
        raise misplaced(datatype, which)
    if datatype is DataType.DateTime:
        return to_datetime(raw)
    if datatype in _TEXT_TYPES:
        return decoded_text(raw)
    result: float | bool = raw
    return result


def _from_wire(raw: int, bits: int, signed: bool, width: int, datatype: DataType) -> int:
    if not signed:
        if raw >> bits:
            raise PayloadError("value", f"{raw} is out of the {datatype.name} range")
        return raw
    half = 1 << (bits - 1)
    if raw < half:
        return raw
    if raw < 1 << bits:  # two's complement of the type's width
        return raw - (1 << bits)
    if raw >= (1 << width) - half:  # sign-extended to the field's width
        return raw - (1 << width)
    raise PayloadError("value", f"{raw} is out of the {datatype.name} range")


def write_scalar(proto: Any, datatype: DataType, value: Any) -> None:
    """Put a basic type's (or UUID's) value into its field of ``proto``: integers in their
    type's width of two's complement (Int8 -1 is ``int_value`` 255), as pysparkplug writes
    them and as Eclipse Tahu reads them."""
    integer = _INTEGERS.get(datatype)
    if integer is not None:
        bits, signed = integer
        if type(value) is not int:
            raise wrong_type(datatype, value)
        low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
        if not low <= value < high:
            raise PayloadError("value", f"{value} is out of the {datatype.name} range")
        setattr(proto, "int_value" if bits <= 32 else "long_value", value & ((1 << bits) - 1))
        return
    field = _FIELDS.get(datatype)
    if field is None:
        raise PayloadError("datatype", f"{datatype.name} is not a basic type")
    if datatype is DataType.DateTime:
        if not isinstance(value, datetime):
            raise wrong_type(datatype, value)
        proto.long_value = uint64(from_datetime(value))
    elif field in ("float_value", "double_value"):
        if type(value) not in (float, int):
            raise wrong_type(datatype, value)
        try:  # an int past a double's range too
            number = float(value)
            if datatype is DataType.Float:
                _FLOAT32.pack(number)
        except OverflowError:
            raise PayloadError(
                "value", f"{_shown(value)} is too large for a {datatype.name}"
            ) from None
        setattr(proto, field, number)
    elif datatype is DataType.Boolean:
        if type(value) is not bool:
            raise wrong_type(datatype, value)
        proto.boolean_value = value
    else:
        proto.string_value = text(value)


def _shown(number: float) -> str:
    """A number in a message (an int past a double's range has too many digits to print)."""
    if isinstance(number, float):
        return str(number)
    return f"an integer of {number.bit_length()} bits"


def wrong_type(datatype: DataType, value: Any) -> PayloadError:
    return PayloadError("value", f"a {datatype.name} cannot be {type(value).__name__}")


def decoded_text(raw: str | bytes) -> str:
    """A proto2 string field as parsed: a str, or bytes when what was sent is not UTF-8."""
    if isinstance(raw, bytes):
        raise PayloadError("value", "a string is not UTF-8")
    return raw


def text(value: Any) -> str:
    """A str that protobuf can send (UTF-8, so no lone surrogate)."""
    if type(value) is not str:
        raise PayloadError("value", f"{type(value).__name__} is not a string")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise PayloadError("value", "a string is not encodable as UTF-8") from None
    return value


def uint64(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _UINT64:
        raise PayloadError("value", f"{value!r} is not an unsigned 64-bit integer")
    return value

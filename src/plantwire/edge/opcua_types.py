"""OPC UA values as Sparkplug B metrics and back, sans-I/O.

OPC UA Part 6 §5.1.2 (built-in types) and Part 4 §7.34 (StatusCode) on one side, Sparkplug B
3.0 "Data Types" and "Quality Codes" on the other:

- :func:`declared_type` reads a node's DataType attribute as a built-in type;
- :func:`metric_value` turns a Variant's type and value into a Sparkplug data type and a plain
  Python value (what :class:`plantwire.edge.buffer.BufferedPoint` holds), or raises
  :class:`UnsupportedValue` with the reason;
- :func:`quality` is the Sparkplug quality of a StatusCode (its severity bits);
- :func:`epoch_ms` is a DataValue's time in epoch milliseconds;
- :func:`write_variant` checks a value written back to a node against the node's own
  built-in type and makes the Variant to write;
- :func:`parse_browse_path` reads ``0:Objects/2:Plant/2:Press1`` into qualified names.

Nothing here opens a socket; only ``asyncua.ua``'s plain types are used.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua

from plantwire.edge.buffer import PointValue
from plantwire.telemetry.sparkplug.model import QUALITY_BAD, QUALITY_GOOD, DataType

__all__ = [
    "ARRAY_TYPES",
    "QUALITY_UNCERTAIN",
    "SCALAR_TYPES",
    "UnsupportedValue",
    "browse_path_text",
    "declared_type",
    "epoch_ms",
    "metric_type",
    "metric_value",
    "parse_browse_path",
    "quality",
    "write_variant",
]

V = ua.VariantType

#: The Sparkplug data type of each supported scalar built-in type.
SCALAR_TYPES: dict[ua.VariantType, DataType] = {
    V.Boolean: DataType.Boolean,
    V.SByte: DataType.Int8,
    V.Byte: DataType.UInt8,
    V.Int16: DataType.Int16,
    V.UInt16: DataType.UInt16,
    V.Int32: DataType.Int32,
    V.UInt32: DataType.UInt32,
    V.Int64: DataType.Int64,
    V.UInt64: DataType.UInt64,
    V.Float: DataType.Float,
    V.Double: DataType.Double,
    V.String: DataType.String,
    V.DateTime: DataType.DateTime,
    V.ByteString: DataType.Bytes,
    V.Guid: DataType.UUID,
}

#: The Sparkplug array type of each built-in type whose one-dimensional arrays have one.
ARRAY_TYPES: dict[ua.VariantType, DataType] = {
    V.Boolean: DataType.BooleanArray,
    V.SByte: DataType.Int8Array,
    V.Byte: DataType.UInt8Array,
    V.Int16: DataType.Int16Array,
    V.UInt16: DataType.UInt16Array,
    V.Int32: DataType.Int32Array,
    V.UInt32: DataType.UInt32Array,
    V.Int64: DataType.Int64Array,
    V.UInt64: DataType.UInt64Array,
    V.Float: DataType.FloatArray,
    V.Double: DataType.DoubleArray,
    V.String: DataType.StringArray,
    V.DateTime: DataType.DateTimeArray,
}

_INTEGER_RANGES: dict[ua.VariantType, range] = {
    V.SByte: range(-(2**7), 2**7),
    V.Byte: range(2**8),
    V.Int16: range(-(2**15), 2**15),
    V.UInt16: range(2**16),
    V.Int32: range(-(2**31), 2**31),
    V.UInt32: range(2**32),
    V.Int64: range(-(2**63), 2**63),
    V.UInt64: range(2**64),
}
#: Sparkplug's quality for "uncertain" (Good 192 and Bad 0 are the model's)
QUALITY_UNCERTAIN = 64
_FLOAT32_MAX = 3.4028234663852886e38
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


#: The DataType attribute's NodeId (namespace 0) of the built-in types and of the two
#: subtypes servers use most; the connector learns other types from the first value.
_DECLARED: dict[int, ua.VariantType] = {
    **{int(variant_type): variant_type for variant_type in SCALAR_TYPES},
    290: V.Double,  # Duration
    294: V.DateTime,  # UtcTime
}


class UnsupportedValue(ValueError):
    """A value that has no Sparkplug form, or that does not fit the node it is written to;
    the message says why."""


def metric_type(variant_type: ua.VariantType, array: bool) -> DataType:
    """The Sparkplug data type of a built-in type, scalar or a one-dimensional array."""
    table = ARRAY_TYPES if array else SCALAR_TYPES
    found = table.get(variant_type)
    if found is None:
        kind = "arrays of " if array else ""
        raise UnsupportedValue(f"OPC UA {kind}{variant_type.name} has no Sparkplug B data type")
    return found


def declared_type(data_type: object) -> ua.VariantType | None:
    """The built-in type a node's DataType attribute names (Duration and UtcTime count as
    Double and DateTime), or None for any other type."""
    if not isinstance(data_type, ua.NodeId) or data_type.NamespaceIndex != 0:
        return None
    identifier = data_type.Identifier
    return _DECLARED.get(identifier) if isinstance(identifier, int) else None


def metric_value(variant: ua.Variant) -> tuple[DataType, PointValue | None]:
    """A Variant as (Sparkplug data type, plain value): integers and floats as they are,
    DateTime as epoch ms, Guid as its string, ByteString as bytes, one-dimensional arrays as
    lists. A Null variant raises (its type is the node's, which only the caller knows)."""
    variant_type = variant.VariantType
    if variant_type == V.Null:
        raise UnsupportedValue("a Null value carries no type")
    if variant.Dimensions is not None and len(variant.Dimensions) > 1:
        raise UnsupportedValue(
            f"a {len(variant.Dimensions)}-dimensional array has no Sparkplug B data type"
        )
    if not isinstance(variant_type, ua.VariantType):  # a custom type the server declared
        raise UnsupportedValue(f"OPC UA type {variant_type!r} has no Sparkplug B data type")
    value = variant.Value
    if variant.is_array:
        datatype = metric_type(variant_type, array=True)
        if value is None:
            return datatype, None
        if isinstance(value, bytes | bytearray):  # a Byte array may come as bytes
            return datatype, list(value)
        return datatype, [_scalar(variant_type, item) for item in value]
    datatype = metric_type(variant_type, array=False)
    if value is None:
        return datatype, None
    return datatype, _scalar(variant_type, value)


def _scalar(variant_type: ua.VariantType, value: Any) -> Any:
    if variant_type == V.DateTime:
        return epoch_ms(value)
    if variant_type == V.Guid:
        return str(value)
    if variant_type == V.ByteString:
        return bytes(value)
    if variant_type == V.Boolean:
        return bool(value)
    if variant_type in (V.Float, V.Double):
        return float(value)
    if variant_type in _INTEGER_RANGES:
        return int(value)
    return value  # String


def epoch_ms(moment: datetime) -> int:
    """A datetime (naive: UTC, as OPC UA times are) in whole epoch milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def quality(status: int) -> int:
    """The Sparkplug quality of an OPC UA StatusCode: Good 192, Uncertain 64, Bad 0 (the two
    severity bits, Part 4 §7.34.1; severity 11, reserved, counts as Bad)."""
    severity = (status >> 30) & 0b11
    if severity == 0:
        return QUALITY_GOOD
    if severity == 1:
        return QUALITY_UNCERTAIN
    return QUALITY_BAD


# --- write-back ------------------------------------------------------------------------


def write_variant(value: object, variant_type: ua.VariantType, array: bool) -> ua.Variant:
    """The Variant that writes ``value`` to a node of built-in type ``variant_type`` (a
    one-dimensional array of it if ``array``). Integers must fit the type, floats may be
    given as integers, DateTime as epoch ms or an aware datetime, Guid as a UUID or its
    string; anything else raises :class:`UnsupportedValue`."""
    if variant_type not in SCALAR_TYPES:
        raise UnsupportedValue(f"writing OPC UA {variant_type.name} is not supported")
    if array:
        if not isinstance(value, list | tuple):
            raise UnsupportedValue(f"the node holds an array of {variant_type.name}: give a list")
        items = [_write_scalar(item, variant_type) for item in value]
        return ua.Variant(items, variant_type, is_array=True)
    return ua.Variant(_write_scalar(value, variant_type), variant_type)


def _write_scalar(value: object, variant_type: ua.VariantType) -> Any:
    name = variant_type.name
    if variant_type == V.Boolean:
        if isinstance(value, bool):
            return value
    elif variant_type in _INTEGER_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            if value not in _INTEGER_RANGES[variant_type]:
                raise UnsupportedValue(f"{value} is out of range for {name}")
            return value
    elif variant_type in (V.Float, V.Double):
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if variant_type == V.Float and math.isfinite(number) and abs(number) > _FLOAT32_MAX:
                raise UnsupportedValue(f"{value} is out of range for Float")
            return number
    elif variant_type == V.String:
        if isinstance(value, str):
            return value
    elif variant_type == V.DateTime:
        if isinstance(value, int) and not isinstance(value, bool):
            return _EPOCH + value * _MS
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value
    elif variant_type == V.ByteString:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
    elif variant_type == V.Guid:
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                raise UnsupportedValue(f"{value!r} is not a GUID") from None
    raise UnsupportedValue(f"a {type(value).__name__} cannot be written to a {name} node")


# --- browse paths ----------------------------------------------------------------------


def parse_browse_path(path: str) -> list[ua.QualifiedName]:
    """``0:Objects/2:Plant/2:Press1`` (from the Root node, each element a browse name with its
    namespace index) as qualified names. Raises ``ValueError`` for a malformed path."""
    if not path.strip():
        raise ValueError("a browse path must not be empty")
    names = []
    for element in path.split("/"):
        index, colon, name = element.partition(":")
        if not colon or not index.isdigit() or not name:
            raise ValueError(
                f"browse path element {element!r} is not <namespace index>:<browse name>"
            )
        names.append(ua.QualifiedName(name, int(index)))
    return names


def browse_path_text(names: Sequence[ua.QualifiedName]) -> str:
    """The text form :func:`parse_browse_path` reads."""
    return "/".join(f"{name.NamespaceIndex}:{name.Name}" for name in names)

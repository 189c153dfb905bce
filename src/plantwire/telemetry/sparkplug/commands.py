"""Writes to a Sparkplug metric: the NCMD or DCMD payload, typed by the birth (sans-I/O).

Eclipse Sparkplug 3.0.0, 6.4.6 "Metric": an NCMD/DCMD metric of a node that uses aliases
carries the alias only ("NDATA, DDATA, NCMD, and DCMD messages MUST only include an alias
and the metric name MUST be excluded"); without an alias, the name. The data type is
sent too, although the specification says it SHOULD NOT be in commands: the issue asks for
"the metric's type", and a node that decodes commands without its own birth (pysparkplug's
decoder does, without ``birth=``) needs it to read the value. There is no ``seq``
(commands are the host's, not part of the node's sequence).

Commands write the scalar types (the integer types, Float, Double, Boolean, String, Text,
UUID), DateTime, Bytes, File and the array types; DataSet and Template are refused. A value
comes as JSON gives it and must be of the birth's type exactly as the codec encodes it: an
integer for an integer type, in its range; a number for Float and Double; a boolean; a
string; a DateTime as epoch milliseconds or ISO 8601 with a zone; Bytes and File as base64;
an array as a list of its items' values (DateTimeArray items as DateTime).
`CommandPayload.value` is then what the store will hold when the node reports that value
back (a Float rounded to 32 bits, an integer written to a Double as a float, a DateTime to
the millisecond), so the read-back can be compared exactly."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plantwire.telemetry.payloads import PayloadError, zoned_time
from plantwire.telemetry.sparkplug.arrays import from_datetime, to_datetime
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import ARRAY_TYPES, DataType, Metric, MetricValue, Payload
from plantwire.telemetry.sparkplug.points import store_value
from plantwire.telemetry.store.model import Value

__all__ = ["COMMAND_TYPES", "CommandPayload", "CommandValue", "command_payload"]

T = DataType
_BLOBS = frozenset({T.Bytes, T.File})
#: The data types a command may write.
COMMAND_TYPES = frozenset(
    {
        *(T.Int8, T.Int16, T.Int32, T.Int64, T.UInt8, T.UInt16, T.UInt32, T.UInt64),
        *(T.Float, T.Double, T.Boolean, T.String, T.Text, T.UUID, T.DateTime),
        *_BLOBS,
        *ARRAY_TYPES,
    }
)
#: What a command's value may be, as JSON gives it.
CommandValue = bool | int | float | str | list[bool | int | float | str]


@dataclass(frozen=True, slots=True)
class CommandPayload:
    """An encoded NCMD/DCMD payload, the metric's data type, and the value as the store
    keeps it (what a read-back must equal)."""

    data: bytes
    datatype: DataType
    value: Value


def command_payload(
    certificate: Certificate, metric: str, value: CommandValue, timestamp_ms: int
) -> CommandPayload:
    """The payload that writes ``value`` to ``metric`` of the node or device whose birth
    ``certificate`` is. PayloadError: ``alias`` (the birth has no such metric), ``datatype``
    (not a type commands write) or ``value`` (of the wrong type, or out of its range)."""
    datatype = certificate.types.get(metric)
    if datatype is None:
        raise PayloadError("alias", f"the birth certificate has no metric {metric!r}")
    if datatype not in COMMAND_TYPES:
        raise PayloadError(
            "datatype", f"metric {metric!r} is a {datatype.name}, which commands do not write"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError("value", "not a finite number")
    alias = next((a for a, name in certificate.names.items() if name == metric), None)
    written = Metric(
        name=metric if alias is None else None,
        alias=alias,
        timestamp=timestamp_ms,
        datatype=datatype,
        value=_native(datatype, value),  # the codec checks it against the type
    )
    data = encode_payload(Payload(timestamp=timestamp_ms, metrics=[written]))
    (sent,) = decode_payload(data).metrics  # the value exactly as the node reads it
    stored = store_value(sent)
    assert stored is not None  # a value was given
    return CommandPayload(data, datatype, stored)


def _native(datatype: DataType, value: CommandValue) -> MetricValue:
    """A value as JSON gives it, in the form the codec takes for ``datatype``."""
    if datatype is T.DateTime:
        return _moment(value)
    if datatype in _BLOBS:
        if type(value) is not str:
            raise PayloadError("value", f"a {datatype.name} value is sent as base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise PayloadError("value", "not base64 text") from None
    if datatype in ARRAY_TYPES:
        if not isinstance(value, list):
            raise PayloadError("value", f"a {datatype.name} value is a list")
        if datatype is T.DateTimeArray:
            return [_moment(item) for item in value]
        items: Any = list(value)  # the codec checks each item against the type
        if datatype in (T.FloatArray, T.DoubleArray):  # JSON writes 2.0 as 2
            items = [_float(item, datatype) if type(item) is int else item for item in items]
        return items  # type: ignore[no-any-return]
    if isinstance(value, list):
        raise PayloadError("value", f"a {datatype.name} value is not a list")
    return value


def _float(number: int, datatype: DataType) -> float:
    try:
        return float(number)
    except OverflowError:  # JSON integers have no bound
        raise PayloadError(
            "value", f"an integer of {number.bit_length()} bits is too large for a {datatype.name}"
        ) from None


def _moment(value: object) -> datetime:
    """A DateTime from epoch milliseconds or ISO 8601 text with a zone."""
    if type(value) is int:
        return to_datetime(value)
    if type(value) is str:
        return to_datetime(from_datetime(zoned_time(value, "value", "the time")))
    raise PayloadError("value", "a DateTime is epoch milliseconds or ISO 8601 text")

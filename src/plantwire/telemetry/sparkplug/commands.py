"""Writes to a Sparkplug metric: the NCMD or DCMD payload, typed by the birth (sans-I/O).

Eclipse Sparkplug 3.0.0, 6.4.6 "Metric": an NCMD/DCMD metric of a node that uses aliases
carries the alias only ("NDATA, DDATA, NCMD, and DCMD messages MUST only include an alias
and the metric name MUST be excluded"); without an alias, the name. The data type is
sent too, although the specification says it SHOULD NOT be in commands: the issue asks for
"the metric's type", and a node that decodes commands without its own birth (pysparkplug's
decoder does, without ``birth=``) needs it to read the value. There is no ``seq``
(commands are the host's, not part of the node's sequence).

Only scalar metrics take commands here: the integer types, Float, Double, Boolean, String,
Text and UUID. The value must be of the birth's type exactly as the codec encodes it (an
integer for an integer type, in its range; a number for Float and Double; a boolean; a
string); `CommandPayload.value` is then what the store will hold when the node reports that
value back (a Float rounded to 32 bits, an integer written to a Double as a float), so the
read-back can be compared exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from plantwire.telemetry.sparkplug.points import store_value
from plantwire.telemetry.store.model import Value

__all__ = ["COMMAND_TYPES", "CommandPayload", "command_payload"]

T = DataType
#: The data types a command may write.
COMMAND_TYPES = frozenset(
    {
        *(T.Int8, T.Int16, T.Int32, T.Int64, T.UInt8, T.UInt16, T.UInt32, T.UInt64),
        *(T.Float, T.Double, T.Boolean, T.String, T.Text, T.UUID),
    }
)


@dataclass(frozen=True, slots=True)
class CommandPayload:
    """An encoded NCMD/DCMD payload, the metric's data type, and the value as the store
    keeps it (what a read-back must equal)."""

    data: bytes
    datatype: DataType
    value: Value


def command_payload(
    certificate: Certificate, metric: str, value: bool | int | float | str, timestamp_ms: int
) -> CommandPayload:
    """The payload that writes ``value`` to ``metric`` of the node or device whose birth
    ``certificate`` is. PayloadError: ``alias`` (the birth has no such metric), ``datatype``
    (not a type commands write) or ``value`` (of the wrong type, or out of its range)."""
    datatype = certificate.types.get(metric)
    if datatype is None:
        raise PayloadError("alias", f"the birth certificate has no metric {metric!r}")
    if datatype not in COMMAND_TYPES:
        raise PayloadError("datatype", f"metric {metric!r} is a {datatype.name}, not a scalar")
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError("value", "not a finite number")
    alias = next((a for a, name in certificate.names.items() if name == metric), None)
    written = Metric(
        name=metric if alias is None else None,
        alias=alias,
        timestamp=timestamp_ms,
        datatype=datatype,
        value=value,  # the codec checks it against the type
    )
    data = encode_payload(Payload(timestamp=timestamp_ms, metrics=[written]))
    (sent,) = decode_payload(data).metrics  # the value exactly as the node reads it
    stored = store_value(sent)
    assert stored is not None  # a value was given
    return CommandPayload(data, datatype, stored)

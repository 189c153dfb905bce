"""Writes to a Sparkplug metric: the NCMD or DCMD payload, typed by the birth (sans-I/O).

Eclipse Sparkplug 3.0.0, 6.4.6 "Metric": an NCMD/DCMD metric of a node that uses aliases
carries the alias only ("NDATA, DDATA, NCMD, and DCMD messages MUST only include an alias
and the metric name MUST be excluded"); without an alias, the name. The data type is
sent too, although the specification says it SHOULD NOT be in commands: the issue asks for
"the metric's type", and a node that decodes commands without its own birth (pysparkplug's
decoder does, without ``birth=``) needs it to read the value. There is no ``seq``
(commands are the host's, not part of the node's sequence).

Commands write every data type a metric may have. A value comes as JSON gives it and must be
of the birth's type exactly as the codec encodes it (`command_values`): an integer for an
integer type, in its range; a number for Float and Double; a boolean; a string; a DateTime as
epoch milliseconds or ISO 8601 with a zone; Bytes and File as base64; an array as a list of
its items' values; a DataSet or Template as the query API shows a stored one, checked
against the birth's shape of it (`shapes`). `CommandPayload.value` is then what the store
will hold when the node reports that value back (a Float rounded to 32 bits, an integer
written to a Double as a float, a DateTime to the millisecond, a DataSet or Template as its
JSON text), so the read-back can be compared exactly; `CommandPayload.expected` is what the
read-back is compared with: that value, or for a Template a `MembersReadBack`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.command_values import CommandValue, native, unlocated
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import METRIC_TYPES, DataType, Metric, Payload, Template
from plantwire.telemetry.sparkplug.points import store_value, structured
from plantwire.telemetry.store.model import Value

__all__ = [
    "COMMAND_TYPES",
    "CommandPayload",
    "CommandValue",
    "MembersReadBack",
    "command_payload",
]

#: The data types a command may write: every metric's.
COMMAND_TYPES = METRIC_TYPES - {DataType.Unknown}


@dataclass(frozen=True, slots=True)
class MembersReadBack:
    """What confirms a Template command. A node reports an instance in NDATA/DDATA with all
    its members or only those that changed (Eclipse Sparkplug 3.0.0, "Template": such an
    instance "MAY include only a subset of the members" of its definition), so a stored
    instance `matches` when it is of the same template and holds every member and parameter
    the command wrote, of the same type and at the written value — compared in the stored
    JSON (`points.structured`), nested templates likewise."""

    written: dict[str, Any]

    def matches(self, reported: object) -> bool:
        if not isinstance(reported, str):
            return False
        try:
            instance = json.loads(reported)
        except ValueError:
            return False
        return _holds(instance, self.written)


@dataclass(frozen=True, slots=True)
class CommandPayload:
    """An encoded NCMD/DCMD payload, the metric's data type, the value as the store keeps it,
    and what a read-back must be to confirm it (``value`` itself, or a `MembersReadBack`)."""

    data: bytes
    datatype: DataType
    value: Value
    expected: object


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
    alias = next((a for a, name in certificate.names.items() if name == metric), None)
    written = Metric(
        name=metric if alias is None else None,
        alias=alias,
        timestamp=timestamp_ms,
        datatype=datatype,
        # the codec checks it against the type
        value=native(datatype, value, certificate.shapes.get(metric)),
    )
    try:
        data = encode_payload(Payload(timestamp=timestamp_ms, metrics=[written]))
    except PayloadError as error:  # located at the metric: the caller knows which it is
        raise unlocated(error, written) from None
    (sent,) = decode_payload(data).metrics  # the value exactly as the node reads it
    stored = store_value(sent)
    assert stored is not None  # a value was given
    if isinstance(sent.value, Template):
        return CommandPayload(data, datatype, stored, MembersReadBack(structured(sent.value)))
    return CommandPayload(data, datatype, stored, stored)


def _holds(reported: Any, written: dict[str, Any]) -> bool:
    """Whether the reported instance (stored JSON) holds what the written one does."""
    if not isinstance(reported, dict) or reported.get("template_ref") != written["template_ref"]:
        return False
    for part, kind in (("metrics", "datatype"), ("parameters", "type")):
        items = reported.get(part)
        by_name = (
            {item.get("name"): item for item in items if isinstance(item, dict)}
            if isinstance(items, list)
            else {}
        )
        for item in written[part]:
            got = by_name.get(item["name"])
            if got is None or got.get(kind) != item[kind]:
                return False
            if item[kind] == "Template" and item["value"] is not None:
                if not _holds(got.get("value"), item["value"]):
                    return False
            elif not _same(got.get("value"), item["value"]):
                return False
    return True


def _same(a: Any, b: Any) -> bool:
    """JSON values equal, a boolean never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return bool(a == b)

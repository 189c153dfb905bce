"""NDATA and DDATA the short way (sans-I/O): a message's metrics straight from protobuf into
samples, (epoch ms, {metric name: value}), without a `Metric` object per metric.

Taken only when every metric is plain: named by a name or alias of the birth, a scalar type
(the integers, Float, Double, Boolean, String, Text, UUID, DateTime) in that type's field, with
no properties (no Quality), no metadata, not null, not historical, not transient, and no name
twice at one timestamp. Anything else returns None and the message takes the full path of
`codec.decode_payload` and `host._samples`, which also says what is wrong with a bad one; so
both paths store the same points (hypothesis tests compare them).

Two ways, the first that applies: *column-wise*, when every metric of the message is of one
Float, Double or Boolean field and all are named alike (all by alias or all by name), the
message is read a second time through `sparkplug_columns.proto`, which hands each field as a
column over all metrics — no Python per metric but a dict lookup of its name; *metric-wise*
otherwise, a few protobuf attribute reads per metric. The full path spends about 5 µs of
Python per metric, metric-wise about 1, column-wise about 0.1.

One difference from the full path, for malformed input only: a column takes a field by its
number whatever its wire type, so a scalar field sent length-delimited (packed), which
protobuf's own Metric keeps as an unknown field, is read as the value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from google.protobuf.message import DecodeError

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug import sparkplug_columns_pb2 as columns_pb
from plantwire.telemetry.sparkplug.arrays import MAX_MS
from plantwire.telemetry.sparkplug.codec import MAX_METRICS
from plantwire.telemetry.sparkplug.model import DataType
from plantwire.telemetry.sparkplug.points import stored_int
from plantwire.telemetry.sparkplug.scalars import read_scalar, value_field
from plantwire.telemetry.store.model import Value

if TYPE_CHECKING:
    from plantwire.telemetry.sparkplug.host import Certificate

__all__ = ["Entry", "Group", "Layout", "Plan", "plan", "quick_samples"]

#: (name, data type number, the oneof field its value comes in, whether the raw value is the
#: stored one: Float, Double and Boolean)
Entry = tuple[str, int, str, bool]
#: how a message's metrics, named by a tuple of aliases or of names (as bytes), are read
#: column-wise: their names, the one field of their values, their data types, whether the
#: values are floats; None: they are not
Layout = tuple[list[str], str, tuple[int, ...], bool] | None
#: a certificate's entries by alias, by name, and by name as UTF-8 bytes (the columns' form),
#: and the layouts found so far
Plan = tuple[
    dict[int, Entry], dict[str, Entry], dict[bytes, Entry], dict[tuple[int | bytes, ...], Layout]
]


class Group(NamedTuple):
    """Values of one device (or node) at one time: ``values[i]`` is metric ``names[i]``'s;
    ``floats``: every value is a float."""

    ms: int
    names: list[str]
    values: list[Value]
    floats: bool


#: the types whose value is stored as protobuf reads it (the others go through read_scalar)
_RAW = frozenset({DataType.Float, DataType.Double, DataType.Boolean})


def plan(certificate: Certificate) -> Plan:
    """The entries of a certificate's metrics of scalar types (others take the full path)."""
    by_name: dict[str, Entry] = {}
    for name, datatype in certificate.types.items():
        field = value_field(datatype)
        if field is not None:
            by_name[name] = (name, int(datatype), field, datatype in _RAW)
    by_alias = {
        alias: by_name[name] for alias, name in certificate.names.items() if name in by_name
    }
    return by_alias, by_name, {name.encode(): entry for name, entry in by_name.items()}, {}


def quick_samples(data: bytes, known: Plan, received_ms: int) -> tuple[int, list[Group]] | None:
    """(seq, samples) of an NDATA or DDATA whose metrics are all plain, under the plan of the
    birth that declared them; None when the full path must decide."""
    try:
        proto = pb.Payload.FromString(data)
    except DecodeError:
        return None
    if not proto.HasField("seq") or proto.seq > 255 or proto.HasField("uuid"):
        return None
    metrics = proto.metrics
    if len(metrics) > MAX_METRICS:
        return None
    default_ms = proto.timestamp if proto.HasField("timestamp") else received_ms
    if default_ms > MAX_MS:
        return None  # the full path says which metric it would stamp so
    samples = _column_wise(data, len(metrics), known, default_ms)
    if samples is None:
        samples = _metric_wise(metrics, known, default_ms)
    return None if samples is None else (proto.seq, samples)


_LAYOUTS = 64  # per certificate: a node sends few shapes of message


def _column_wise(data: bytes, count: int, known: Plan, default_ms: int) -> list[Group] | None:
    """The samples of ``count`` metrics that all carry their value in one Float, Double or
    Boolean field, all named alike, read column by column; None when they are not."""
    if not count:
        return None
    column = columns_pb.Columns.FromString(data).metrics  # parsed once already: no error
    if (
        column.is_null
        or column.is_historical
        or column.is_transient
        or column.metadata
        or column.properties
    ):
        return None
    by_alias, _, by_bytes, layouts = known
    key: tuple[int | bytes, ...]
    lookup: Mapping[Any, Entry]
    if len(column.name) == count:
        key, lookup = tuple(column.name), by_bytes
    elif not column.name and len(column.alias) == count:
        key, lookup = tuple(column.alias), by_alias
    else:
        return None
    if key in layouts:
        layout = layouts[key]
    else:
        if len(layouts) >= _LAYOUTS:
            layouts.clear()
        layout = layouts[key] = _layout(key, lookup)
    if layout is None:
        return None
    names, field, numbers, floats = layout
    values = getattr(column, field)
    if len(values) != count or _values_in(column) != count:
        return None
    declared = column.datatype
    if (
        declared
        and tuple(declared) != numbers
        and (
            len(declared) != count
            or any(
                datatype and datatype != number
                for datatype, number in zip(declared, numbers, strict=True)
            )
        )
    ):
        return None
    # (a container's [:] is its quickest copy to a list; min and max took three times as long)
    stamps = column.timestamp[:]
    if not stamps:
        return [Group(default_ms, names, values[:], floats)]
    if stamps.count(stamps[0]) == count and stamps[0] <= MAX_MS:
        return [Group(stamps[0], names, values[:], floats)]
    return None


def _values_in(column: Any) -> int:
    """How many values the metrics carry, in all the value fields (written out: a loop over
    the field names took five times as long)."""
    return (
        len(column.int_value)
        + len(column.long_value)
        + len(column.float_value)
        + len(column.double_value)
        + len(column.boolean_value)
        + len(column.string_value)
        + len(column.bytes_value)
        + len(column.dataset_value)
        + len(column.template_value)
        + len(column.extension_value)
    )


def _layout(key: tuple[int | bytes, ...], lookup: Mapping[Any, Entry]) -> Layout:
    entries = [lookup.get(name) for name in key]
    first = entries[0]
    if first is None or not first[3]:
        return None
    field = first[2]
    found = [entry for entry in entries if entry is not None and entry[2] == field]
    names = [entry[0] for entry in found]
    if len(found) != len(key) or len(set(names)) != len(names):
        return None  # another field, a name unknown or twice
    floats = field in ("float_value", "double_value")
    return names, field, tuple(entry[1] for entry in found), floats


def _metric_wise(metrics: Any, known: Plan, default_ms: int) -> list[Group] | None:
    """The samples of plain metrics read one by one; None at the first that is not."""
    by_alias, by_name, _, _ = known
    samples: list[tuple[int, dict[str, Value]]] = []
    values: dict[str, Value] = {}
    at = -1
    for metric in metrics:
        name = metric.name
        if name:
            entry = by_name.get(name)
        elif metric.HasField("name") or not metric.HasField("alias"):
            return None
        else:
            entry = by_alias.get(metric.alias)
        if entry is None:
            return None
        name, number, field, raw = entry
        declared = metric.datatype
        if (declared and declared != number) or metric.WhichOneof("value") != field:
            return None
        if metric.is_null or metric.is_historical or metric.is_transient:
            return None
        if metric.HasField("properties") or metric.HasField("metadata"):
            return None
        value: Value = getattr(metric, field)
        if not raw:
            try:
                scalar = read_scalar(DataType(number), field, value)
            except PayloadError:
                return None
            if scalar is None:
                return None
            value = stored_int(scalar) if isinstance(scalar, int) else scalar
        ms = metric.timestamp
        if not ms and not metric.HasField("timestamp"):
            ms = default_ms
        elif ms > MAX_MS:
            return None
        if ms != at:
            values = {}
            samples.append((ms, values))
            at = ms
        elif name in values:
            return None
        values[name] = value
    return [Group(ms, list(values), list(values.values()), False) for ms, values in samples]

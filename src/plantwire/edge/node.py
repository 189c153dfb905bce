"""The gateway's Sparkplug B edge node, sans-I/O: what it publishes (births with every metric
and its alias, data by alias, the death it leaves as its will) and what commands ask of it.

Eclipse Sparkplug 3.0.0: an edge node's session starts with an MQTT connection whose will is
the NDEATH carrying ``bdSeq``; the NBIRTH (``seq`` 0) repeats that ``bdSeq`` and declares the
node's metrics, each DBIRTH a device's; every later message of the session takes the next
``seq`` (0-255, wrapping). Data and commands name metrics by alias. A new connection is a new
session with the next ``bdSeq``; the caller keeps it across restarts (:attr:`bd_seq`), so the
host can tell the new session's death from an old one's.

The session remembers each metric's last value read, so that
:meth:`EdgeNodeSession.changes` keeps of a poll only what changed (report by exception), and
its last value published, which births carry with its own timestamp and ``is_transient``: a
host shows it as the current value but does not store it again (it already has it; a birth's
values would otherwise be stored twice after every reconnection or rebirth). A metric with
nothing published yet is null in a birth (its points may be waiting in the buffer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from plantwire.edge.buffer import BufferedPoint, PointValue
from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import (
    DataType,
    MetaData,
    Metric,
    Payload,
    PropertyValue,
    decode_payload,
    encode_payload,
)
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.codec import encode_metric
from plantwire.telemetry.sparkplug.model import QUALITY_GOOD, QUALITY_PROPERTY, MetricValue
from plantwire.telemetry.sparkplug.scalars import uint64, write_scalar
from plantwire.telemetry.sparkplug.topics import MessageType, Topic, parse_topic

__all__ = [
    "BD_SEQ",
    "REBIRTH",
    "CommandError",
    "EdgeNodeSession",
    "MetricSpec",
    "Rebirth",
    "Write",
]

BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_TYPES = frozenset({DataType.DateTime, DataType.DateTimeArray})


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric the node declares in its births: its name and Sparkplug data type, and the
    engineering unit (property ``engUnit``) and description (metadata) the platform shows."""

    name: str
    datatype: DataType
    unit: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Rebirth:
    """NCMD ``Node Control/Rebirth``: publish every birth again."""


@dataclass(frozen=True, slots=True)
class Write:
    """A command to set a metric (``device`` ``""``: one of the node's own) to ``value``,
    typed as its birth declared it (DateTime as epoch milliseconds)."""

    device: str
    metric: str
    value: PointValue | None


class CommandError(ValueError):
    """An NCMD or DCMD the node cannot act on; the message says why."""


class EdgeNodeSession:
    """One edge node's metrics, aliases, sequence numbers and last values (see the module's
    docstring). ``devices`` maps each device's id to its metrics; ``node_metrics`` are the
    node's own, besides ``bdSeq`` and ``Node Control/Rebirth``, which it always has."""

    def __init__(
        self,
        group: str,
        edge_node: str,
        devices: Mapping[str, Sequence[MetricSpec]],
        *,
        node_metrics: Sequence[MetricSpec] = (),
        bd_seq: int = 0,
    ) -> None:
        Topic(MessageType.NBIRTH, group, edge_node)  # TopicError for ids Sparkplug refuses
        for device in devices:
            Topic(MessageType.DBIRTH, group, edge_node, device)
        self.group = group
        self.edge_node = edge_node
        self.bd_seq = bd_seq % 256
        self._seq = 0
        self._specs: dict[str, dict[str, MetricSpec]] = {"": {}}
        self._aliases: dict[tuple[str, str], int] = {}
        self._by_alias: dict[int, tuple[str, MetricSpec]] = {}
        self._last: dict[tuple[str, str], tuple[PointValue | None, int]] = {}
        self._sent: dict[tuple[str, str], BufferedPoint] = {}
        for spec in node_metrics:
            self.declare("", spec)
        for device, specs in devices.items():
            self._specs.setdefault(device, {})
            for spec in specs:
                self.declare(device, spec)

    # --- metrics -------------------------------------------------------------------------

    def declare(self, device: str, spec: MetricSpec) -> bool:
        """Adds a metric (or changes its spec); True when births must be sent again for the
        host to know it (a new metric, or a new type)."""
        if spec.name in (BD_SEQ, REBIRTH) and device == "":
            raise ValueError(f"{spec.name!r} is the node's own Sparkplug metric")
        if device:
            Topic(MessageType.DBIRTH, self.group, self.edge_node, device)
        metrics = self._specs.setdefault(device, {})
        old = metrics.get(spec.name)
        metrics[spec.name] = spec
        key = (device, spec.name)
        if key not in self._aliases:
            alias = len(self._aliases) + 1
            self._aliases[key] = alias
            self._by_alias[alias] = (device, spec)
        else:
            self._by_alias[self._aliases[key]] = (device, spec)
        return old is None or old.datatype != spec.datatype

    @property
    def devices(self) -> list[str]:
        return [device for device in self._specs if device]

    def alias(self, device: str, metric: str) -> int:
        return self._aliases[(device, metric)]

    # --- publishing ----------------------------------------------------------------------

    def next_session(self) -> None:
        """A new MQTT connection: the next ``bdSeq``."""
        self.bd_seq = (self.bd_seq + 1) % 256

    def will(self, now_ms: int) -> tuple[str, bytes]:
        """The NDEATH to register as the connection's MQTT will."""
        death = Payload(
            timestamp=now_ms,
            metrics=[Metric(name=BD_SEQ, datatype=DataType.Int64, value=self.bd_seq)],
        )
        return str(Topic(MessageType.NDEATH, self.group, self.edge_node)), encode_payload(death)

    def births(self, now_ms: int) -> list[tuple[str, bytes]]:
        """NBIRTH (``seq`` 0) and a DBIRTH for every device, with every metric by name and
        alias and its last value (null when none was read yet)."""
        self._seq = 0
        node = [
            Metric(name=BD_SEQ, datatype=DataType.Int64, value=self.bd_seq, timestamp=now_ms),
            Metric(name=REBIRTH, datatype=DataType.Boolean, value=False, timestamp=now_ms),
            *self._birth_metrics("", now_ms),
        ]
        messages = [
            self._message(Topic(MessageType.NBIRTH, self.group, self.edge_node), node, now_ms)
        ]
        for device in self.devices:
            topic = Topic(MessageType.DBIRTH, self.group, self.edge_node, device)
            messages.append(self._message(topic, self._birth_metrics(device, now_ms), now_ms))
        return messages

    def device_death(self, device: str, now_ms: int) -> tuple[str, bytes]:
        """DDEATH: the device is gone (its connector lost it); its metrics become stale."""
        topic = Topic(MessageType.DDEATH, self.group, self.edge_node, device)
        return self._message(topic, [], now_ms)

    def changes(self, points: Iterable[BufferedPoint]) -> list[BufferedPoint]:
        """Of ``points`` (read from the connectors, oldest first), those whose value or
        quality differs from the metric's last one; remembers them as the last ones."""
        changed = []
        for point in points:
            key = (point.device, point.metric)
            last = self._last.get(key)
            if (
                last is not None
                and last[0] == point.value
                and type(last[0]) is type(point.value)  # 1 == 1.0 == True: types matter
                and last[1] == point.quality
            ):
                continue
            self._last[key] = (point.value, point.quality)
            changed.append(point)
        return changed

    def forget(self, device: str, metric: str) -> None:
        """Forgets a metric's last value, so that the next point of it counts as a change
        (after a write: the read-back must be reported even if the value did not change)."""
        self._last.pop((device, metric), None)

    def data(
        self, points: Sequence[BufferedPoint], now_ms: int, *, historical: bool = False
    ) -> list[tuple[str, bytes]]:
        """NDATA/DDATA of ``points``, one message per device in the order they first
        appear, metrics by alias with their own timestamps; ``historical`` marks buffered
        points that were read while the uplink was down. KeyError for an undeclared metric;
        PayloadError or ValueError for a value its metric's type cannot carry (then nothing
        is published: no ``seq`` is taken, no point counts as sent).

        Each metric goes straight into protobuf: a good, non-null value of a scalar type
        (integers, Float, Double, Boolean, String, Text) the quick way, a few field sets;
        any other (null, a quality, DateTime, arrays, bytes) through the codec's full model.
        Both write the same bytes (a hypothesis test compares them with `encode_payload`)."""
        specs, aliases = self._specs, self._aliases
        protos: dict[str, pb.Payload] = {}
        for point in points:
            device = point.device
            alias = aliases[(device, point.metric)]
            datatype = specs[device][point.metric].datatype
            proto = protos.get(device)
            if proto is None:
                proto = protos[device] = pb.Payload()
            metrics = proto.metrics
            if not _quick_metric(metrics.add(), alias, datatype, point, historical):
                del metrics[-1]
                encode_metric(
                    metrics.add(),
                    Metric(
                        alias=alias,
                        timestamp=point.timestamp,
                        datatype=datatype,
                        value=_metric_value(datatype, point.value),
                        is_historical=historical,
                        properties=_quality(point.quality),
                    ),
                )
        sent = self._sent
        for point in points:  # encoded: they are the last published, unless older
            key = (point.device, point.metric)
            last = sent.get(key)
            if last is None or last.timestamp <= point.timestamp:
                sent[key] = point
        stamp = uint64(now_ms)
        messages = []
        for device, proto in protos.items():
            topic = (
                Topic(MessageType.DDATA, self.group, self.edge_node, device)
                if device
                else Topic(MessageType.NDATA, self.group, self.edge_node)
            )
            proto.timestamp = stamp
            proto.seq = self._seq
            self._seq = (self._seq + 1) % 256
            messages.append((str(topic), proto.SerializeToString()))
        return messages

    # --- commands ------------------------------------------------------------------------

    def command(self, topic: str, payload: bytes) -> list[Rebirth | Write]:
        """What an NCMD or DCMD asks: a rebirth and/or writes, in the payload's order.
        CommandError for a topic or payload that is not one for this node, or a metric it
        does not have."""
        device = self._command_device(topic)
        try:
            decoded = decode_payload(
                payload,
                datatypes={
                    alias: spec.datatype
                    for alias, (owner, spec) in self._by_alias.items()
                    if owner == device
                },
            )
        except PayloadError as error:
            raise CommandError(f"undecodable command: {error}") from None
        wanted: list[Rebirth | Write] = []
        for metric in decoded.metrics:
            if device == "" and metric.name == REBIRTH:
                if metric.value is True:
                    wanted.append(Rebirth())
                continue
            spec = self._command_metric(device, metric)
            if metric.value is None:
                raise CommandError(f"the command sets {spec.name!r} to null")
            wanted.append(Write(device, spec.name, _point_value(spec.datatype, metric.value)))
        return wanted

    def _command_device(self, topic: str) -> str:
        try:
            parsed = parse_topic(topic)
        except PayloadError as error:
            raise CommandError(str(error)) from None
        if (
            not isinstance(parsed, Topic)
            or parsed.message_type not in (MessageType.NCMD, MessageType.DCMD)
            or (parsed.group_id, parsed.edge_node_id) != (self.group, self.edge_node)
            or (parsed.device_id is not None and parsed.device_id not in self._specs)
        ):
            raise CommandError(f"{topic!r} is no command topic of this node's")
        return parsed.device_id or ""

    def _command_metric(self, device: str, metric: Metric) -> MetricSpec:
        if metric.alias is not None:
            owner, spec = self._by_alias.get(metric.alias, (None, None))
            if owner != device or spec is None:
                raise CommandError(f"no metric with alias {metric.alias} here")
            return spec
        if metric.name is not None and metric.name in self._specs.get(device, {}):
            return self._specs[device][metric.name]
        raise CommandError(f"no metric {metric.label} here")

    # --- messages ------------------------------------------------------------------------

    def _birth_metrics(self, device: str, now_ms: int) -> list[Metric]:
        metrics = []
        for name, spec in self._specs.get(device, {}).items():
            sent = self._sent.get((device, name))
            properties = _quality(QUALITY_GOOD if sent is None else sent.quality)
            if spec.unit is not None:
                properties["engUnit"] = PropertyValue(DataType.String, spec.unit)
            metrics.append(
                Metric(
                    name=name,
                    alias=self._aliases[(device, name)],
                    timestamp=now_ms if sent is None else sent.timestamp,
                    datatype=spec.datatype,
                    value=None if sent is None else _metric_value(spec.datatype, sent.value),
                    is_transient=sent is not None,  # published already: not to be stored again
                    properties=properties,
                    metadata=(
                        None if spec.description is None else MetaData(description=spec.description)
                    ),
                )
            )
        return metrics

    def _message(self, topic: Topic, metrics: list[Metric], now_ms: int) -> tuple[str, bytes]:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return str(topic), encode_payload(Payload(timestamp=now_ms, metrics=metrics, seq=seq))


#: the integer types: (lowest, past the highest, mask of their two's complement, 64-bit)
_INTEGERS = {
    DataType.Int8: (-(1 << 7), 1 << 7, (1 << 8) - 1, False),
    DataType.Int16: (-(1 << 15), 1 << 15, (1 << 16) - 1, False),
    DataType.Int32: (-(1 << 31), 1 << 31, (1 << 32) - 1, False),
    DataType.Int64: (-(1 << 63), 1 << 63, (1 << 64) - 1, True),
    DataType.UInt8: (0, 1 << 8, (1 << 8) - 1, False),
    DataType.UInt16: (0, 1 << 16, (1 << 16) - 1, False),
    DataType.UInt32: (0, 1 << 32, (1 << 32) - 1, False),
    DataType.UInt64: (0, 1 << 64, (1 << 64) - 1, True),
}
#: the other types whose values `write_scalar` takes as points carry them
_QUICK_SCALARS = frozenset(
    {DataType.Float, DataType.Double, DataType.Boolean, DataType.String, DataType.Text}
)
_UINT64_END = 1 << 64


def _quick_metric(
    proto: pb.Payload.Metric, alias: int, datatype: int, point: BufferedPoint, historical: bool
) -> bool:
    """Fills ``proto`` as the codec would from the point's `Metric` when the point is plain
    (good, not null, a scalar type, a value that type carries); False when it is not (then
    ``proto`` is half filled, to be dropped)."""
    value, timestamp = point.value, point.timestamp
    if (
        value is None
        or point.quality != QUALITY_GOOD
        or type(timestamp) is not int
        or not 0 <= timestamp < _UINT64_END
    ):
        return False
    integer = _INTEGERS.get(datatype)  # type: ignore[call-overload]
    if integer is not None:
        low, end, mask, wide = integer
        if type(value) is not int or not low <= value < end:
            return False
        proto.alias = alias
        proto.timestamp = timestamp
        proto.datatype = datatype
        if historical:
            proto.is_historical = True
        if wide:
            proto.long_value = value & mask
        else:
            proto.int_value = value & mask
        return True
    if datatype not in _QUICK_SCALARS:
        return False
    proto.alias = alias
    proto.timestamp = timestamp
    proto.datatype = datatype
    if historical:
        proto.is_historical = True
    try:
        write_scalar(proto, DataType(datatype), value)
    except PayloadError:
        return False
    return True


def _quality(quality: int) -> dict[str, PropertyValue]:
    if quality == QUALITY_GOOD:
        return {}
    return {QUALITY_PROPERTY: PropertyValue(DataType.Int32, quality)}


def _metric_value(datatype: DataType, value: PointValue | None) -> MetricValue:
    """A point's value as the codec takes it: DateTime epoch ms become datetimes."""
    if datatype not in _DATETIME_TYPES or value is None:
        return value
    if isinstance(value, list):
        return [_EPOCH + timedelta(milliseconds=int(item)) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + timedelta(milliseconds=value)
    raise ValueError(f"a DateTime value must be epoch milliseconds, not {value!r}")


def _point_value(datatype: DataType, value: MetricValue) -> PointValue:
    """A command's value as connectors take it: datetimes become epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, list) and value and isinstance(value[0], datetime):
        return [
            (item - _EPOCH) // timedelta(milliseconds=1)
            for item in value
            if isinstance(item, datetime)
        ]
    if isinstance(value, bool | int | float | str | bytes | list):
        return value  # type: ignore[return-value]  # lists of one item type, as decoded
    raise CommandError(f"a {datatype.name} command cannot be written by the gateway")

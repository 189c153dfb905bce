"""The gateway's Sparkplug B edge node, sans-I/O: what it publishes (births with every metric
and its alias, data by alias, the death it leaves as its will) and what commands ask of it.

Eclipse Sparkplug 3.0.0: an edge node's session starts with an MQTT connection whose will is
the NDEATH carrying ``bdSeq``; the NBIRTH (``seq`` 0) repeats that ``bdSeq`` and declares the
node's metrics, each DBIRTH a device's; every later message of the session takes the next
``seq`` (0-255, wrapping). Data and commands name metrics by alias. A new connection is a new
session with the next ``bdSeq``; the caller keeps it across restarts (:attr:`bd_seq`), so the
host can tell the new session's death from an old one's.

The session remembers each metric's last value and quality: births carry them, and
:meth:`EdgeNodeSession.changes` keeps of a poll only what changed (report by exception).
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
from plantwire.telemetry.sparkplug.model import QUALITY_GOOD, QUALITY_PROPERTY, MetricValue
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
        self._last: dict[tuple[str, str], tuple[PointValue | None, int, int]] = {}
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
            self._last[key] = (point.value, point.quality, point.timestamp)
            changed.append(point)
        return changed

    def data(
        self, points: Sequence[BufferedPoint], now_ms: int, *, historical: bool = False
    ) -> list[tuple[str, bytes]]:
        """NDATA/DDATA of ``points``, one message per device in the order they first
        appear, metrics by alias with their own timestamps; ``historical`` marks buffered
        points that were read while the uplink was down. KeyError for an undeclared metric."""
        by_device: dict[str, list[Metric]] = {}
        for point in points:
            alias = self._aliases[(point.device, point.metric)]
            spec = self._specs[point.device][point.metric]
            by_device.setdefault(point.device, []).append(
                Metric(
                    alias=alias,
                    timestamp=point.timestamp,
                    datatype=spec.datatype,
                    value=_metric_value(spec.datatype, point.value),
                    is_historical=historical,
                    properties=_quality(point.quality),
                )
            )
        messages = []
        for device, metrics in by_device.items():
            topic = (
                Topic(MessageType.DDATA, self.group, self.edge_node, device)
                if device
                else Topic(MessageType.NDATA, self.group, self.edge_node)
            )
            messages.append(self._message(topic, metrics, now_ms))
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
            value, quality, stamp = self._last.get((device, name), (None, QUALITY_GOOD, now_ms))
            properties = _quality(quality)
            if spec.unit is not None:
                properties["engUnit"] = PropertyValue(DataType.String, spec.unit)
            metrics.append(
                Metric(
                    name=name,
                    alias=self._aliases[(device, name)],
                    timestamp=stamp,
                    datatype=spec.datatype,
                    value=_metric_value(spec.datatype, value),
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

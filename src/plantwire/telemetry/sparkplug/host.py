"""The Sparkplug B host application's state machine (sans-I/O): messages of edge nodes in,
points to store, refusals, and rebirth requests out.

Eclipse Sparkplug 3.0.0, chapter 5 "Operational Behavior": per edge node the host keeps
whether it is online, the ``bdSeq`` of its NBIRTH, the ``seq`` of its last message (0-255,
wrapping) and its *birth certificate* — each metric's name, alias and data type, and the
shape of its DataSets and Templates (`shapes`) — and one certificate per device from its
DBIRTH.

* NBIRTH replaces the node's certificate (its devices must be born again); DBIRTH a device's.
  The outcome of a birth also describes its metrics (`descriptions`: unit, description) for
  the registry; the certificate keeps only what decoding needs.
* NDATA and DDATA are decoded through the certificate: metrics sent by alias get their name,
  metrics sent without a data type get the birth's.
* NDEATH counts only when its ``bdSeq`` is the NBIRTH's (an older session's will arriving
  late is ignored); it takes the node and its devices offline. DDEATH takes a device offline.
* Every message after the NBIRTH but NDEATH carries the next ``seq``; one that does not is a
  *gap*: its data is still stored, and a rebirth is requested.
* Data before a birth (or after a death), an unknown alias or name, a metric of another type
  than its birth declared, a birth that names an alias or a metric twice: the message is
  refused (`PayloadError`, with reason ``birth``, ``alias``, ``datatype`` or ``seq``) and a
  rebirth is requested. Rebirth requests are rate-limited per node.

The state of a node serialises to bytes (`NodeState.to_bytes`), so the caller can commit it
with the points it decoded and resume after a restart exactly where the data stops."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import shapes
from plantwire.telemetry.sparkplug.arrays import MAX_MS
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.descriptions import MetricDescription, describe
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from plantwire.telemetry.sparkplug.points import store_quality, store_value
from plantwire.telemetry.sparkplug.quick import Group, Plan, plan, quick_samples
from plantwire.telemetry.sparkplug.shapes import Shape, shape_of
from plantwire.telemetry.sparkplug.topics import MessageType, Topic
from plantwire.telemetry.store.model import Quality, Value

__all__ = [
    "BDSEQ",
    "REBIRTH",
    "Certificate",
    "NodeKey",
    "NodeState",
    "Outcome",
    "Sample",
    "SparkplugHost",
    "rebirth_request",
]

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

#: (tenant id, group id, edge node id)
NodeKey = tuple[str, str, str]


@dataclass(slots=True)
class Certificate:
    """What a birth declared: each metric's data type by name, names by alias, and the shape
    of DataSet and Template metrics born with a value (`shapes`; what commands check)."""

    types: dict[str, DataType] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    shapes: dict[str, Shape] = field(default_factory=dict)
    _plan: Plan | None = field(default=None, repr=False, compare=False)

    def plan(self) -> Plan:
        """Its metrics as `quick_samples` looks them up (made once: a certificate does not
        change once made)."""
        if self._plan is None:
            self._plan = plan(self)
        return self._plan

    @classmethod
    def of(cls, metrics: list[Metric]) -> Certificate:
        """The certificate of a birth's metrics; PayloadError (``birth``) for a metric
        without a name, or a name or alias twice."""
        certificate = cls()
        for metric in metrics:
            if metric.name is None:
                raise PayloadError("birth", f"a birth metric ({metric.label}) has no name")
            if metric.name in certificate.types:
                raise PayloadError("birth", f"the birth names metric {metric.name!r} twice")
            if metric.alias is not None:
                if metric.alias in certificate.names:
                    raise PayloadError("birth", f"the birth gives alias {metric.alias} twice")
                certificate.names[metric.alias] = metric.name
            certificate.types[metric.name] = metric.datatype
            shape = shape_of(metric)
            if shape is not None:
                certificate.shapes[metric.name] = shape
        return certificate

    def datatypes(self) -> dict[int | str, DataType]:
        """For `decode_payload`: data types by alias and by name."""
        known: dict[int | str, DataType] = {}
        known.update(self.types)
        known.update((alias, self.types[name]) for alias, name in self.names.items())
        return known

    def to_json(self) -> list[list[Any]]:
        """``[name, alias, type]`` a metric, and its shape fourth when it has one."""
        aliases = {name: alias for alias, name in self.names.items()}
        rows: list[list[Any]] = []
        for name, kind in self.types.items():
            row: list[Any] = [name, aliases.get(name), int(kind)]
            shape = self.shapes.get(name)
            if shape is not None:
                row.append(shapes.to_json(shape))
            rows.append(row)
        return rows

    @classmethod
    def from_json(cls, rows: list[list[Any]]) -> Certificate:
        certificate = cls()
        for name, alias, kind, *shape in rows:  # states before shapes were kept have none
            certificate.types[name] = DataType(kind)
            if alias is not None:
                certificate.names[alias] = name
            if shape:
                certificate.shapes[name] = shapes.from_json(shape[0])
        return certificate


@dataclass(slots=True)
class DeviceState:
    online: bool = False
    birth: Certificate | None = None
    birth_ms: int | None = None
    death_ms: int | None = None  # when it last went offline


@dataclass(slots=True)
class NodeState:
    """What the host knows of one edge node."""

    online: bool = False
    bd_seq: int | None = None
    seq: int | None = None  # of the last message applied
    birth: Certificate | None = None
    birth_ms: int | None = None
    devices: dict[str, DeviceState] = field(default_factory=dict)
    death_ms: int | None = None  # when it last went offline
    rebirths: int = 0  # rebirth requests sent to it
    seq_gaps: int = 0  # messages whose seq did not follow

    def to_bytes(self) -> bytes:
        devices = {
            name: {
                "online": device.online,
                "birth_ms": device.birth_ms,
                "death_ms": device.death_ms,
                "metrics": device.birth.to_json() if device.birth is not None else None,
            }
            for name, device in self.devices.items()
        }
        state = {
            "online": self.online,
            "bd_seq": self.bd_seq,
            "seq": self.seq,
            "birth_ms": self.birth_ms,
            "metrics": self.birth.to_json() if self.birth is not None else None,
            "devices": devices,
            "death_ms": self.death_ms,
            "rebirths": self.rebirths,
            "seq_gaps": self.seq_gaps,
        }
        return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeState:
        state = json.loads(data)
        node = cls(
            online=state["online"],
            bd_seq=state["bd_seq"],
            seq=state["seq"],
            birth=_certificate(state["metrics"]),
            birth_ms=state["birth_ms"],
            death_ms=state.get("death_ms"),  # states written before status was kept lack them
            rebirths=state.get("rebirths", 0),
            seq_gaps=state.get("seq_gaps", 0),
        )
        for name, device in state["devices"].items():
            node.devices[name] = DeviceState(
                device["online"],
                _certificate(device["metrics"]),
                device["birth_ms"],
                device.get("death_ms"),
            )
        return node


def _certificate(rows: list[list[Any]] | None) -> Certificate | None:
    return None if rows is None else Certificate.from_json(rows)


@dataclass(frozen=True, slots=True)
class Sample:
    """A point to store: of the node itself (``device`` None) or of one of its devices."""

    device: str | None
    metric: str
    ms: int
    value: Value
    quality: Quality


@dataclass(slots=True)
class Outcome:
    """What one message did. ``refused``: why it is a dead letter (its samples are empty);
    ``rebirth``: send the node a rebirth request now (already rate-limited); ``born``: the
    device (or the node, "") that a birth just registered, and ``described`` its metrics.
    ``grouped``: samples of good quality, of the message's device (or node), from the quick
    path (`quick.quick_samples`)."""

    samples: list[Sample] = field(default_factory=list)
    grouped: list[Group] = field(default_factory=list)
    refused: PayloadError | None = None
    rebirth: bool = False
    gap: bool = False
    stale_death: bool = False
    born: str | None = None
    described: list[MetricDescription] | None = None


class SparkplugHost:
    """The state of every edge node the host has heard of, and the rules above. Not thread
    safe: one ingest applies messages in stream order. ``rebirth_seconds``: at most one
    rebirth request per node in that time."""

    def __init__(self, rebirth_seconds: float = 5.0) -> None:
        self.rebirth_seconds = rebirth_seconds
        self.nodes: dict[NodeKey, NodeState] = {}
        self._dirty: set[NodeKey] = set()
        self._asked: dict[NodeKey, float] = {}

    # --- durability -------------------------------------------------------------------------

    def load(self, states: Mapping[NodeKey, bytes]) -> None:
        """Start over from committed states (what the store holds with its checkpoint)."""
        self.nodes = {key: NodeState.from_bytes(data) for key, data in states.items()}
        self._dirty.clear()

    def changes(self) -> Iterator[tuple[NodeKey, bytes]]:
        """The nodes changed since the last call, serialised; forgets them."""
        for key in sorted(self._dirty):
            yield key, self.nodes[key].to_bytes()
        self._dirty.clear()

    # --- messages ---------------------------------------------------------------------------

    def apply(
        self, tenant: str, topic: Topic, data: bytes, received_ms: int, now: float
    ) -> Outcome:
        """Apply one message of an edge node; ``now`` is a monotonic clock for the rate
        limit of rebirth requests."""
        key = (tenant, topic.group_id, topic.edge_node_id)
        node = self.nodes.get(key)
        outcome = Outcome()
        try:
            if topic.message_type is MessageType.NBIRTH:
                node = self.nodes[key] = self._node_birth(data, received_ms, outcome, node)
                self._dirty.add(key)
            elif topic.message_type is MessageType.NDEATH:
                if node is not None and self._node_death(node, data, received_ms, outcome):
                    self._dirty.add(key)
            else:
                if node is None or not node.online or node.birth is None:
                    raise _wants_rebirth("birth", f"{topic.message_type} before the NBIRTH")
                self._dirty.add(key)
                self._in_session(node, topic, data, received_ms, outcome)
        except _Rebirth as error:
            outcome.refused, outcome.samples, outcome.grouped = error.error, [], []
            outcome.described = None
            outcome.rebirth = True
        except PayloadError as error:
            outcome.refused, outcome.samples, outcome.grouped = error, [], []
            outcome.described = None
        if outcome.refused is not None and topic.message_type is MessageType.NBIRTH:
            if node is not None:  # its old certificate no longer holds
                _offline(node, received_ms)
                self._dirty.add(key)
            outcome.rebirth = True
        if outcome.rebirth or outcome.gap:
            outcome.rebirth = self._may_ask(key, now)
        if outcome.rebirth:  # counted for its status, of a node not heard of before too
            if node is None:
                node = self.nodes[key] = NodeState()
            node.rebirths += 1
            self._dirty.add(key)
        return outcome

    def _node_birth(
        self, data: bytes, received_ms: int, outcome: Outcome, old: NodeState | None
    ) -> NodeState:
        """A new session of the node; its devices are offline until their DBIRTH, and its
        counts and last death carry over."""
        payload = decode_payload(data)
        if payload.seq is None:
            raise _wants_rebirth("seq", "the NBIRTH has no seq")
        try:
            certificate = Certificate.of(payload.metrics)
        except PayloadError as error:
            raise _Rebirth(error) from None
        node = NodeState(True, _bd_seq(payload), payload.seq, certificate, received_ms)
        if old is not None:
            _offline(old, received_ms)
            node.death_ms, node.rebirths, node.seq_gaps = old.death_ms, old.rebirths, old.seq_gaps
            node.devices = {
                name: DeviceState(False, None, device.birth_ms, device.death_ms)
                for name, device in old.devices.items()
            }
        outcome.samples = _samples(None, payload, certificate, received_ms)
        outcome.born, outcome.described = "", describe(payload.metrics)
        return node

    def _node_death(self, node: NodeState, data: bytes, received_ms: int, outcome: Outcome) -> bool:
        payload = decode_payload(data)
        bd_seq = _bd_seq(payload)
        if node.bd_seq is not None and bd_seq != node.bd_seq:
            outcome.stale_death = True  # an older session's will: the node lives on
            return False
        _offline(node, received_ms)
        return True

    def _in_session(
        self, node: NodeState, topic: Topic, data: bytes, received_ms: int, outcome: Outcome
    ) -> None:
        """NDATA, DBIRTH, DDATA, DDEATH of a node that is online."""
        assert node.birth is not None
        kind = topic.message_type
        device = node.devices.get(topic.device_id) if topic.device_id is not None else None
        if kind is MessageType.NDATA:
            certificate: Certificate | None = node.birth
        elif kind in (MessageType.DDATA, MessageType.DDEATH):
            if device is None or not device.online or device.birth is None:
                raise _wants_rebirth("birth", f"{kind} of {topic.device_id!r} before its DBIRTH")
            certificate = device.birth
        else:
            certificate = None  # DBIRTH: the message declares its own
        if certificate is not None and kind is not MessageType.DDEATH:
            quick = quick_samples(data, certificate.plan(), received_ms)
            if quick is not None:
                seq, outcome.grouped = quick
                self._follow(node, seq, outcome)
                return
        try:
            payload = decode_payload(
                data, datatypes=certificate.datatypes() if certificate else None
            )
        except PayloadError as error:
            if error.reason == "datatype" and "the birth gave it none" in error.detail:
                # a metric sent without a data type that the birth did not declare
                raise _wants_rebirth("alias", error.detail) from None
            raise
        if payload.seq is None:
            raise _wants_rebirth("seq", f"the {kind} has no seq")
        self._follow(node, payload.seq, outcome)
        if kind is MessageType.DBIRTH:
            assert topic.device_id is not None
            try:
                certificate = Certificate.of(payload.metrics)
            except PayloadError as error:
                raise _Rebirth(error) from None
            node.devices[topic.device_id] = DeviceState(True, certificate, received_ms)
            outcome.born, outcome.described = topic.device_id, describe(payload.metrics)
        elif kind is MessageType.DDEATH:
            assert device is not None
            device.online, device.death_ms = False, received_ms
            return
        assert certificate is not None
        outcome.samples = _samples(topic.device_id, payload, certificate, received_ms)

    @staticmethod
    def _follow(node: NodeState, seq: int, outcome: Outcome) -> None:
        """The node's seq moves to ``seq``; a gap unless it is the one after the last."""
        outcome.gap = seq != (node.seq + 1) % 256 if node.seq is not None else True
        if outcome.gap:
            node.seq_gaps += 1
        node.seq = seq

    def _may_ask(self, key: NodeKey, now: float) -> bool:
        asked = self._asked.get(key)
        if asked is not None and now - asked < self.rebirth_seconds:
            return False
        if len(self._asked) > 100_000:
            self._asked.clear()
        self._asked[key] = now
        return True


def _offline(node: NodeState, received_ms: int) -> None:
    """The node and its devices go offline (those online now die at ``received_ms``)."""
    if node.online:
        node.online, node.death_ms = False, received_ms
    for device in node.devices.values():
        if device.online:
            device.online, device.death_ms = False, received_ms


class _Rebirth(Exception):
    """A refusal that asks the node to be born again."""

    def __init__(self, error: PayloadError) -> None:
        super().__init__(error.detail)
        self.error = error


def _wants_rebirth(reason: str, detail: str) -> _Rebirth:
    return _Rebirth(PayloadError(reason, detail))


def _bd_seq(payload: Payload) -> int | None:
    for metric in payload.metrics:
        if metric.name == BDSEQ and isinstance(metric.value, int):
            return metric.value
    return None


def _samples(
    device: str | None, payload: Payload, certificate: Certificate, received_ms: int
) -> list[Sample]:
    """The points of a message's metrics, named and typed by the certificate. Transient
    and null metrics store nothing; a metric's own timestamp wins over the payload's."""
    default_ms = payload.timestamp if payload.timestamp is not None else received_ms
    samples = []
    for metric in payload.metrics:
        name = metric.name
        if name is None and metric.alias is not None:
            name = certificate.names.get(metric.alias)
        if name is None:
            raise _wants_rebirth("alias", f"metric {metric.label} is not in the birth")
        declared = certificate.types.get(name)
        if declared is None:
            raise _wants_rebirth("alias", f"metric {name!r} is not in the birth")
        if metric.datatype is not declared:
            raise PayloadError(
                "datatype",
                f"metric {name!r} is {metric.datatype.name}, its birth says {declared.name}",
            )
        if metric.is_transient:
            continue
        value = store_value(metric)
        if value is None:
            continue
        ms = metric.timestamp if metric.timestamp is not None else default_ms
        if ms > MAX_MS:  # the store keeps microseconds in 64 bits
            raise PayloadError("timestamp", f"metric {name!r}: {ms} ms is after the year 9999")
        samples.append(Sample(device, name, ms, value, store_quality(metric)))
    return samples


def rebirth_request(timestamp_ms: int) -> bytes:
    """The NCMD payload that asks an edge node to publish its births again."""
    metric = Metric(name=REBIRTH, timestamp=timestamp_ms, datatype=DataType.Boolean, value=True)
    return encode_payload(Payload(timestamp=timestamp_ms, metrics=[metric]))

"""Sparkplug B in durable ingest: the messages of every tenant's edge nodes, taken from the
``TELEMETRY`` stream in order, applied to the host application (`sparkplug.host`), their
points added to ingest's batch under the registry's device ids, and the host's state
committed with them (store states ``sparkplug/<tenant>/<group>/<edge node>``). The births of
a batch set the metric metadata of their node or device in the registry, once per batch.

Ingest calls `SparkplugIntake.decode` for the Sparkplug messages of a batch (in a worker
thread: the registry is SQL) and gets back the dead letters, the rebirth requests to
publish and the states to commit with the batch's checkpoint.

A host application's STATE (``spBv1.0/STATE/<host id>``) in a tenant's account reaches the
stream too: the platform's own (its host id, its payload) is acked and ignored; any other —
another host's, which an external NATS may let through, or a payload on the platform's topic
that it did not publish — is a dead letter (reason ``state``) and stops nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from plantwire.telemetry.accounts import COMMAND_PREFIX, SPARKPLUG_NAMESPACE, TELEMETRY_PREFIX
from plantwire.telemetry.commands import CommandWatch
from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.descriptions import MetricDescription
from plantwire.telemetry.sparkplug.host import NodeKey, SparkplugHost, rebirth_request
from plantwire.telemetry.sparkplug.topics import (
    HostStateTopic,
    MessageType,
    Topic,
    parse_subject,
    topic_to_subject,
)
from plantwire.telemetry.sparkplug_state import is_state_payload
from plantwire.telemetry.store import PointBatch, TimeSeriesStore

__all__ = [
    "SPARKPLUG_SUBJECTS",
    "STATE_PREFIX",
    "DirectoryError",
    "SparkplugBatch",
    "SparkplugDirectory",
    "SparkplugIntake",
    "SparkplugMetrics",
]

#: What the TELEMETRY stream captures of Sparkplug: edge nodes' and devices' own messages
#: (not commands), and host applications' STATE, of every tenant.
SPARKPLUG_SUBJECTS = [
    *(
        f"{TELEMETRY_PREFIX}.*.{SPARKPLUG_NAMESPACE}.*.{kind}.*"
        for kind in ("NBIRTH", "NDEATH", "NDATA")
    ),
    *(
        f"{TELEMETRY_PREFIX}.*.{SPARKPLUG_NAMESPACE}.*.{kind}.*.*"
        for kind in ("DBIRTH", "DDEATH", "DDATA")
    ),
    f"{TELEMETRY_PREFIX}.*.{SPARKPLUG_NAMESPACE}.STATE.*",
]
STATE_PREFIX = "sparkplug/"
#: Dead letters of a node the registry does not know go under this device level.
UNKNOWN_NODE = "_sparkplug"

_log = structlog.get_logger("plantwire.sparkplug")
_HEAD = f"{TELEMETRY_PREFIX}."


class DirectoryError(Exception):
    """The registry could not be read or written; the message says why."""


class SparkplugDirectory(Protocol):
    """Registry ids of edge nodes, and of their devices (made on first sight); the metric
    metadata births declare."""

    def node(self, tenant: str, group: str, edge_node: str) -> str | None: ...

    def device(self, tenant: str, node_id: str, name: str) -> str | None: ...

    def describe(self, births: Mapping[tuple[str, str], Sequence[MetricDescription]]) -> int:
        """Make the metric metadata of each (tenant, device id) the one its birth
        declares; how many devices changed. DirectoryError when the registry fails."""
        ...


class SparkplugMetrics:
    """Prometheus counters of the host application (totals, not per node)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.births = Counter(
            "plantwire_sparkplug_births", "NBIRTH and DBIRTH messages applied.", registry=registry
        )
        self.deaths = Counter(
            "plantwire_sparkplug_deaths",
            "NDEATH and DDEATH messages that took a node or device offline.",
            registry=registry,
        )
        self.stale_deaths = Counter(
            "plantwire_sparkplug_stale_deaths",
            "NDEATH messages of an older session (bdSeq not the NBIRTH's), ignored.",
            registry=registry,
        )
        self.seq_gaps = Counter(
            "plantwire_sparkplug_seq_gaps",
            "Messages whose seq did not follow the node's last one.",
            registry=registry,
        )
        self.rebirths = Counter(
            "plantwire_sparkplug_rebirth_requests",
            "Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes.",
            registry=registry,
        )
        self.metadata_changes = Counter(
            "plantwire_sparkplug_metadata_changes",
            "Edge nodes and devices whose metric metadata a birth changed in the registry.",
            registry=registry,
        )
        self.metadata_errors = Counter(
            "plantwire_sparkplug_metadata_errors",
            "Batches whose births' metric metadata the registry failed to take (their next "
            "birth tries again).",
            registry=registry,
        )
        self.nodes_online = Gauge(
            "plantwire_sparkplug_nodes_online",
            "Edge nodes online (born, not dead since), as committed with the data.",
            registry=registry,
        )


@dataclass(slots=True)
class SparkplugBatch:
    """What a batch of Sparkplug messages leaves to do: ``letters`` as (index of the message,
    device level of the dead-letter subject, reason, detail); ``rebirths`` as (subject,
    payload) to publish; ``states`` to commit with the batch; ``reports``: the values stored
    of metrics a command waits for ((tenant, device id, metric), value), as JSON decoding
    reports them."""

    letters: list[tuple[int, str, str, str]] = field(default_factory=list)
    rebirths: list[tuple[str, bytes]] = field(default_factory=list)
    states: dict[str, bytes | None] = field(default_factory=dict)
    reports: list[tuple[tuple[str, str, str], object]] = field(default_factory=list)


class SparkplugIntake:
    """The host application inside ingest. ``host_id`` is the platform's Sparkplug host id;
    ``publishes_state``: the platform publishes its STATE on this broker (the bundled one, or
    an external one's MQTT listener), so a STATE on its own topic with its payload is its
    own; any other STATE is a dead letter."""

    def __init__(
        self,
        directory: SparkplugDirectory,
        metrics: SparkplugMetrics,
        host: SparkplugHost | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        host_id: str = "plantwire",
        publishes_state: bool = False,
    ) -> None:
        self.directory = directory
        self.metrics = metrics
        self.host = host or SparkplugHost()
        self.host_id = host_id
        self.publishes_state = publishes_state
        self._clock = clock

    @staticmethod
    def takes(subject: str) -> bool:
        """Whether a stream subject is a Sparkplug message (``tenant.<t>.spBv1//0.…``)."""
        head, _, rest = subject.partition(".")
        return head == TELEMETRY_PREFIX and rest.partition(".")[2].startswith(
            f"{SPARKPLUG_NAMESPACE}."
        )

    def load(self, store: TimeSeriesStore) -> None:
        """Resume from the states committed with the store's checkpoint."""
        states = {}
        for key, data in store.states(STATE_PREFIX).items():
            tenant, group, edge = key.removeprefix(STATE_PREFIX).split("/", 2)
            states[(tenant, group, edge)] = data
        self.host.load(states)
        self._count_online()
        _log.info("sparkplug.resumed", nodes=len(states))

    def decode(
        self,
        messages: list[tuple[str, bytes, int]],
        points: PointBatch,
        watch: CommandWatch | None = None,
    ) -> SparkplugBatch:
        """Apply (subject, data, received ms) messages in order, adding their points; with
        a ``watch``, report the values of the metrics it watches (command read-backs)."""
        batch = SparkplugBatch()
        now = self._clock()
        moved = False  # a node born or dead: count the nodes online again
        # what the batch's births declare, by (tenant, device id): the last birth wins
        described: dict[tuple[str, str], list[MetricDescription]] = {}
        for index, (subject, data, received_ms) in enumerate(messages):
            _, tenant, local = subject.split(".", 2)
            try:
                topic = parse_subject(local)
            except PayloadError as error:
                batch.letters.append((index, UNKNOWN_NODE, error.reason, error.detail))
                continue
            if isinstance(topic, HostStateTopic):
                refused_state = self._foreign_state(topic, data)
                if refused_state is not None:
                    batch.letters.append((index, UNKNOWN_NODE, "state", refused_state))
                continue  # the platform's own: nothing to apply
            if topic.message_type in (MessageType.NCMD, MessageType.DCMD):
                batch.letters.append((index, UNKNOWN_NODE, "topic", f"{local} is not taken"))
                continue
            node_id = self.directory.node(tenant, topic.group_id, topic.edge_node_id)
            if node_id is None:
                detail = f"no edge node {topic.group_id}/{topic.edge_node_id} (deleted?)"
                batch.letters.append((index, UNKNOWN_NODE, "device", detail))
                continue
            outcome = self.host.apply(tenant, topic, data, received_ms, now)
            moved |= topic.message_type in (MessageType.NBIRTH, MessageType.NDEATH)
            key = (tenant, topic.group_id, topic.edge_node_id)
            if outcome.rebirth:
                batch.rebirths.append(self._rebirth(key))
            if outcome.gap:
                self.metrics.seq_gaps.inc()
            if outcome.stale_death:
                self.metrics.stale_deaths.inc()
            if outcome.refused is not None:
                refused = outcome.refused
                batch.letters.append((index, node_id, refused.reason, refused.detail))
                continue
            if outcome.born is not None:
                self.metrics.births.inc()
            elif (
                topic.message_type in (MessageType.NDEATH, MessageType.DDEATH)
                and not outcome.stale_death
            ):
                self.metrics.deaths.inc()
            if topic.device_id is not None and (
                outcome.samples or outcome.grouped or topic.message_type is MessageType.DBIRTH
            ):
                name = f"{topic.group_id}/{topic.edge_node_id}/{topic.device_id}"
                device_id = self.directory.device(tenant, node_id, name)
                if device_id is None:
                    detail = f"the name {name!r} is another device's, or no device name"
                    batch.letters.append((index, node_id, "device", detail))
                    continue
            else:
                device_id = node_id
            if outcome.described is not None:
                described[(tenant, device_id)] = outcome.described
            for sample in outcome.samples:
                points.add(
                    tenant, device_id, sample.metric, sample.ms * 1000, sample.value, sample.quality
                )
            for values in outcome.grouped:
                points.add_values(
                    tenant, device_id, values.ms * 1000, values.names, values.values, values.floats
                )
            if watch is not None:
                stored = [(sample.metric, sample.value) for sample in outcome.samples]
                for values in outcome.grouped:
                    stored += zip(values.names, values.values, strict=True)
                batch.reports += watch.watched(tenant, device_id, stored)
        for (tenant, group, edge), state in self.host.changes():
            batch.states[f"{STATE_PREFIX}{tenant}/{group}/{edge}"] = state
        if moved:
            self._count_online()
        if described:
            self._describe(described)
        return batch

    def _foreign_state(self, topic: HostStateTopic, data: bytes) -> str | None:
        """None for the platform's own STATE (only the host's user may publish on its topic:
        the bundled broker's permissions, an external one's operator; and it publishes exactly
        ``state_payload``); else why this STATE is refused."""
        if topic.host_id != self.host_id:
            theirs, ours = topic.host_id, self.host_id
            return f"STATE of another host application {theirs!r} (this one is {ours!r})"
        if not self.publishes_state:
            return (
                f"STATE on this platform's host id {self.host_id!r}, which it does not publish "
                "on this broker: another application uses the id"
            )
        if not is_state_payload(data):
            return (
                'not the STATE this host publishes ({"online": <bool>, "timestamp": <ms>}): '
                "another application uses the id, or the payload was changed"
            )
        return None

    def _describe(self, births: Mapping[tuple[str, str], Sequence[MetricDescription]]) -> None:
        """The births' metric metadata into the registry. A failing registry stops nothing:
        the points are stored all the same, and the next birth tries again."""
        try:
            changed = self.directory.describe(births)
        except DirectoryError as error:
            self.metrics.metadata_errors.inc()
            _log.error("sparkplug.metadata_failed", devices=len(births), error=str(error))
            return
        self.metrics.metadata_changes.inc(changed)

    def _count_online(self) -> None:
        self.metrics.nodes_online.set(sum(node.online for node in self.host.nodes.values()))

    def _rebirth(self, key: NodeKey) -> tuple[str, bytes]:
        tenant, group, edge = key
        self.metrics.rebirths.inc()
        _log.info("sparkplug.rebirth_requested", tenant=tenant, group=group, edge_node=edge)
        subject = topic_to_subject(Topic(MessageType.NCMD, group, edge))
        return f"{COMMAND_PREFIX}.{tenant}.{subject}", rebirth_request(int(time.time() * 1000))

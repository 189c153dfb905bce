"""Sparkplug B topics parsed and built, and the NATS subjects they travel as (no I/O).

Eclipse Sparkplug 3.0.0, chapter 4 "Topics and Messages":

* ``spBv1.0/{group_id}/{message_type}/{edge_node_id}`` for NBIRTH, NDEATH, NDATA, NCMD;
* ``spBv1.0/{group_id}/{message_type}/{edge_node_id}/{device_id}`` for DBIRTH, DDEATH,
  DDATA, DCMD;
* ``spBv1.0/STATE/{sparkplug_host_id}`` for a host application's STATE (3.0's form; the
  ``STATE/{host_id}`` of Sparkplug 2.2 is not taken).

Each id is a non-empty UTF-8 string without ``+``, ``/`` or ``#`` (the specification's
reserved characters) and without NUL (which MQTT forbids in topics). Anything else is refused
with `TopicError` (a `PayloadError` of reason ``topic``).

nats-server's MQTT gateway carries a topic as a subject: ``/`` between levels becomes ``.``
and a ``.`` inside a level becomes ``//`` (``spBv1.0/Plant1/NBIRTH/Edge7`` is
``spBv1//0.Plant1.NBIRTH.Edge7``). It cannot carry a level with a space, and ``*`` or ``>``
would be wildcards in a subject: such ids are valid Sparkplug but cannot pass through the
bundled broker, which `topic_to_subject` says."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from plantwire.telemetry.accounts import mqtt_topic_to_subject
from plantwire.telemetry.payloads import PayloadError

__all__ = [
    "DEVICE_MESSAGES",
    "NAMESPACE",
    "NODE_MESSAGES",
    "HostStateTopic",
    "MessageType",
    "Topic",
    "TopicError",
    "parse_subject",
    "parse_topic",
    "subject_to_topic",
    "topic_to_subject",
]

NAMESPACE = "spBv1.0"
_RESERVED = frozenset("+/#\0")


class MessageType(StrEnum):
    """The ``message_type`` level of a topic."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    NDATA = "NDATA"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    DDATA = "DDATA"
    DCMD = "DCMD"
    STATE = "STATE"


#: Messages of an edge node itself (no device id) and of one of its devices.
NODE_MESSAGES = frozenset(
    {MessageType.NBIRTH, MessageType.NDEATH, MessageType.NDATA, MessageType.NCMD}
)
DEVICE_MESSAGES = frozenset(
    {MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA, MessageType.DCMD}
)


class TopicError(PayloadError):
    """A topic or subject that is not a Sparkplug B one; the message says what is wrong."""

    def __init__(self, detail: str) -> None:
        super().__init__("topic", detail)


def _check_id(what: str, value: str) -> None:
    if not value:
        raise TopicError(f"the {what} is empty")
    reserved = _RESERVED.intersection(value)
    if reserved:
        shown = ", ".join(repr(char) for char in sorted(reserved))
        raise TopicError(f"the {what} {value[:60]!r} holds {shown}, which Sparkplug reserves")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        raise TopicError(f"the {what} {value[:60]!r} is not valid UTF-8") from None


@dataclass(frozen=True, slots=True)
class Topic:
    """The topic of an edge node's message (``device_id`` None) or a device's;
    ``str(topic)`` is the MQTT topic."""

    message_type: MessageType
    group_id: str
    edge_node_id: str
    device_id: str | None = None

    def __post_init__(self) -> None:
        if self.message_type not in NODE_MESSAGES | DEVICE_MESSAGES:
            raise TopicError(f"{self.message_type} is no edge node or device message type")
        _check_id("group id", self.group_id)
        _check_id("edge node id", self.edge_node_id)
        if self.message_type in DEVICE_MESSAGES:
            if self.device_id is None:
                raise TopicError(f"{self.message_type} topics need a device id")
            _check_id("device id", self.device_id)
        elif self.device_id is not None:
            raise TopicError(f"{self.message_type} topics have no device id")

    def __str__(self) -> str:
        topic = f"{NAMESPACE}/{self.group_id}/{self.message_type}/{self.edge_node_id}"
        return topic if self.device_id is None else f"{topic}/{self.device_id}"


@dataclass(frozen=True, slots=True)
class HostStateTopic:
    """``spBv1.0/STATE/{host_id}``: where a host application says whether it is online."""

    host_id: str

    def __post_init__(self) -> None:
        _check_id("host id", self.host_id)

    @property
    def message_type(self) -> MessageType:
        return MessageType.STATE

    def __str__(self) -> str:
        return f"{NAMESPACE}/{MessageType.STATE}/{self.host_id}"


def parse_topic(topic: str) -> Topic | HostStateTopic:
    """The parts of a Sparkplug B topic; TopicError if it is not one."""
    levels = topic.split("/")
    if levels[0] != NAMESPACE:
        raise TopicError(f"topic {topic[:80]!r} is not under {NAMESPACE}/")
    if len(levels) == 3 and levels[1] == MessageType.STATE:
        return HostStateTopic(levels[2])
    if len(levels) not in (4, 5):
        raise TopicError(
            f"topic {topic[:80]!r} is not {NAMESPACE}/group/type/edge_node[/device] "
            f"or {NAMESPACE}/STATE/host_id"
        )
    try:
        message_type = MessageType(levels[2])
    except ValueError:
        raise TopicError(f"topic {topic[:80]!r}: {levels[2][:20]!r} is no message type") from None
    device_id = levels[4] if len(levels) == 5 else None
    return Topic(message_type, levels[1], levels[3], device_id)


def topic_to_subject(topic: str | Topic | HostStateTopic) -> str:
    """The NATS subject nats-server carries an MQTT topic as (``.`` in a level → ``//``,
    ``/`` → ``.``). TopicError for a topic the bundled broker cannot carry: an empty level,
    a space or other whitespace, ``*``, ``>``, ``+``, ``#`` or NUL."""
    try:
        return mqtt_topic_to_subject(str(topic))
    except ValueError:
        raise TopicError(
            f"topic {str(topic)[:80]!r} cannot pass through nats-server (an empty level, "
            "whitespace, a wildcard or NUL)"
        ) from None


def subject_to_topic(subject: str) -> str:
    """The MQTT topic of a subject nats-server made of one (the reverse of
    `topic_to_subject`). TopicError for a subject no concrete topic maps to."""
    levels = []
    for token in subject.split("."):
        level = token.replace("//", ".")
        if not level or "/" in level:
            raise TopicError(f"subject {subject[:80]!r} is no MQTT topic of plantwire's")
        levels.append(level)
    return "/".join(levels)


def parse_subject(subject: str) -> Topic | HostStateTopic:
    """`parse_topic` of the topic a subject carries (without the platform's
    ``tenant.<id>.`` prefix)."""
    return parse_topic(subject_to_topic(subject))

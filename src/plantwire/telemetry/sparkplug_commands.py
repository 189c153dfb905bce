"""Where a command to a Sparkplug node or device goes, and the birth it is typed by.

An edge node (kind ``sparkplug-node``, named ``<group>/<edge node>``) is written with an
NCMD on ``spBv1.0/<group>/NCMD/<edge node>``; a Sparkplug device (``<group>/<edge
node>/<device>``) with a DCMD on ``spBv1.0/<group>/DCMD/<edge node>/<device>``. The platform
publishes them under ``cmd.<tenant>.`` — the command services the tenant's account exports —
as it does rebirth requests. The birth certificate is the one the host application
committed with the data (`sparkplug_intake`: store state ``sparkplug/<tenant>/<group>/<edge
node>``): a node or device that is offline, or has never been born, has none, and a command
to it is refused (`NotBorn`) — it could not apply it, or not with a type the platform
knows."""

from __future__ import annotations

from dataclasses import dataclass

from plantwire.telemetry.accounts import COMMAND_PREFIX
from plantwire.telemetry.schemas import DeviceKind
from plantwire.telemetry.sparkplug.host import Certificate, NodeState
from plantwire.telemetry.sparkplug.topics import MessageType, Topic, topic_to_subject
from plantwire.telemetry.sparkplug_intake import STATE_PREFIX
from plantwire.telemetry.store import TimeSeriesStore

__all__ = ["SPARKPLUG_KINDS", "NotBorn", "SparkplugTarget", "sparkplug_target"]

SPARKPLUG_KINDS = frozenset({DeviceKind.SPARKPLUG_NODE, DeviceKind.SPARKPLUG_DEVICE})


class NotBorn(Exception):
    """The node or device is offline or was never born: no certificate to command by."""


@dataclass(frozen=True, slots=True)
class SparkplugTarget:
    """The subject a command is published to, and the certificate that types it."""

    subject: str
    certificate: Certificate


def sparkplug_target(
    store: TimeSeriesStore, tenant_id: str, kind: str, name: str
) -> SparkplugTarget:
    """The target of a command to the tenant's Sparkplug node or device ``name``; NotBorn
    when it is not online with a birth certificate."""
    levels = name.split("/")
    if kind == DeviceKind.SPARKPLUG_NODE and len(levels) == 2:
        group, edge = levels
        device = None
        topic = Topic(MessageType.NCMD, group, edge)
    elif kind == DeviceKind.SPARKPLUG_DEVICE and len(levels) == 3:
        group, edge, device = levels
        topic = Topic(MessageType.DCMD, group, edge, device)
    else:  # the device API makes no other names of these kinds
        raise ValueError(f"{name!r} is no Sparkplug {kind} name")
    key = f"{STATE_PREFIX}{tenant_id}/{group}/{edge}"
    data = store.states(key).get(key)
    node = NodeState.from_bytes(data) if data is not None else None
    if node is None or not node.online or node.birth is None:
        raise NotBorn(f"The edge node {group}/{edge} is offline or has not sent its NBIRTH.")
    certificate = node.birth
    if device is not None:
        born = node.devices.get(device)
        if born is None or not born.online or born.birth is None:
            raise NotBorn(f"The device {name} is offline or has not sent its DBIRTH.")
        certificate = born.birth
    return SparkplugTarget(f"{COMMAND_PREFIX}.{tenant_id}.{topic_to_subject(topic)}", certificate)

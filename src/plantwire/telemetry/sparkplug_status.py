"""The Sparkplug status of an edge node or Sparkplug device as the device API shows it: what
the host application committed with the data (store state ``sparkplug/<tenant>/<group>/<edge
node>``), so it is exactly as current as the stored points."""

from __future__ import annotations

from datetime import UTC, datetime

from plantwire.telemetry.schemas import DeviceKind, SparkplugStatus
from plantwire.telemetry.sparkplug.host import NodeState
from plantwire.telemetry.sparkplug_intake import STATE_PREFIX
from plantwire.telemetry.store import TimeSeriesStore

__all__ = ["sparkplug_status"]


def sparkplug_status(
    store: TimeSeriesStore, tenant: str, kind: str, name: str
) -> SparkplugStatus | None:
    """The status of the tenant's device ``name`` of ``kind``; None for a device that is not
    Sparkplug. A node the host has not heard of yet is offline with nothing counted."""
    if kind == DeviceKind.SPARKPLUG_NODE:
        group, edge = name.split("/", 1)
        device = None
    elif kind == DeviceKind.SPARKPLUG_DEVICE:
        group, edge, device = name.split("/", 2)
    else:
        return None
    key = f"{STATE_PREFIX}{tenant}/{group}/{edge}"
    data = store.states(key).get(key)  # a prefix read: Edge1 must not find Edge10
    node = NodeState.from_bytes(data) if data is not None else NodeState()
    online, birth_ms, death_ms = node.online, node.birth_ms, node.death_ms
    if device is not None:
        found = node.devices.get(device)
        online = node.online and found is not None and found.online
        birth_ms = found.birth_ms if found is not None else None
        death_ms = found.death_ms if found is not None else None
    return SparkplugStatus(
        online=online,
        birth=_when(birth_ms),
        last_death=_when(death_ms),
        bd_seq=node.bd_seq,
        rebirths=node.rebirths,
        seq_gaps=node.seq_gaps,
    )


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)

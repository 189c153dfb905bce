"""Sparkplug edge nodes and devices in the device registry, as the host application finds
and makes them: an edge node is the device of kind ``sparkplug-node`` named
``<group>/<edge node>``; a Sparkplug device is made on its first DBIRTH as a device of kind
``sparkplug-device`` named ``<group>/<edge node>/<device>`` under its node."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from plantwire.security.tables import name_key, utcnow
from plantwire.telemetry.schemas import DeviceKind
from plantwire.telemetry.tables import Device

__all__ = ["RegistrySparkplug"]

_log = structlog.get_logger("plantwire.sparkplug")
_KEPT = 100_000


class RegistrySparkplug:
    """Registry ids of edge nodes and their devices (``sparkplug_intake.SparkplugDirectory``).
    Answers are kept for ``ttl_seconds``, so a busy node costs one registry read per that
    time, and its deletion is seen within it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._clock = clock
        self._kept: dict[tuple[str, str], tuple[float, str | None]] = {}

    def node(self, tenant: str, group: str, edge_node: str) -> str | None:
        """The id of the tenant's edge node ``group/edge_node``; None if there is none."""
        return self._cached(
            tenant, f"{group}/{edge_node}", lambda: self._find_node(tenant, group, edge_node)
        )

    def device(self, tenant: str, node_id: str, name: str) -> str | None:
        """The id of the node's Sparkplug device ``name`` (``<group>/<edge>/<device>``), made
        if it does not exist yet; None when another device of the tenant holds that name or
        the name is not one a device can have."""
        return self._cached(tenant, name, lambda: self._device(tenant, node_id, name))

    def _cached(self, tenant: str, name: str, find: Callable[[], str | None]) -> str | None:
        now = self._clock()
        kept = self._kept.get((tenant, name))
        if kept is not None and kept[0] > now:
            return kept[1]
        if len(self._kept) > _KEPT:
            self._kept.clear()
        found = find()
        self._kept[(tenant, name)] = (now + self._ttl, found)
        return found

    def _named(self, session: Session, tenant: str, name: str) -> Device | None:
        query = select(Device).where(Device.tenant_id == tenant, Device.name_key == name_key(name))
        return session.scalars(query).first()

    def _find_node(self, tenant: str, group: str, edge_node: str) -> str | None:
        name = f"{group}/{edge_node}"
        with self._sessions() as session:
            found = self._named(session, tenant, name)
            if found is None or found.kind != DeviceKind.SPARKPLUG_NODE or found.name != name:
                return None
            return found.id

    def _device(self, tenant: str, node_id: str, name: str) -> str | None:
        if len(name) > 200 or any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
            return None  # no device name (schemas.DeviceName)
        for _ in range(2):  # a second try if another writer made it meanwhile
            try:
                with self._sessions() as session, session.begin():
                    found = self._named(session, tenant, name)
                    if found is not None:
                        mine = found.kind == DeviceKind.SPARKPLUG_DEVICE and found.name == name
                        return found.id if mine and found.parent_id == node_id else None
                    node = session.get(Device, node_id)
                    if node is None:
                        return None
                    now = utcnow()
                    device = Device(
                        tenant_id=tenant,
                        name=name,
                        name_key=name_key(name),
                        kind=DeviceKind.SPARKPLUG_DEVICE,
                        parent_id=node_id,
                        place=node.place,
                        attributes={},
                        secret_sha256="",
                        secret_bcrypt="",
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(device)
                    session.flush()
                    _log.info("sparkplug.device_made", tenant=tenant, device=device.id, name=name)
                    return device.id
            except IntegrityError:
                continue
        return None

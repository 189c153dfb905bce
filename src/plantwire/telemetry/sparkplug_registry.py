"""Sparkplug edge nodes and devices in the device registry, as the host application finds
and makes them: an edge node is the device of kind ``sparkplug-node`` named
``<group>/<edge node>``; a Sparkplug device is made on its first DBIRTH as a device of kind
``sparkplug-device`` named ``<group>/<edge node>/<device>`` under its node.

Their births also set their metric metadata (`RegistrySparkplug.describe`): each metric born
is a ``DeviceMetric`` with the data type of `PLATFORM_TYPES` and the unit and description
the birth gives (`sparkplug.descriptions`); metrics no longer born go. A birth has no
"writable" flag, so a metric's ``writable`` stays what the device API set. Anything else a
user changed through the API (a unit, a metric added or removed) lasts until the next
birth, which puts back what it declares: births are compared with the registry as it is."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantwire.db import transaction
from plantwire.security.tables import name_key, utcnow
from plantwire.telemetry.schemas import (
    MAX_DESCRIPTION,
    MAX_METRIC_NAME,
    MAX_METRICS,
    MAX_UNIT,
    DataType,
    DeviceKind,
)
from plantwire.telemetry.sparkplug.descriptions import MetricDescription
from plantwire.telemetry.sparkplug.model import ARRAY_TYPES
from plantwire.telemetry.sparkplug.model import DataType as SparkplugType
from plantwire.telemetry.sparkplug_intake import DirectoryError
from plantwire.telemetry.tables import Device, DeviceMetric

__all__ = ["PLATFORM_TYPES", "RegistrySparkplug"]

_log = structlog.get_logger("plantwire.sparkplug")
_KEPT = 100_000  # answers kept at most; past it the least recently used go
_KINDS = (DeviceKind.SPARKPLUG_NODE, DeviceKind.SPARKPLUG_DEVICE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The device API's data type of each Sparkplug metric type: the kind of value the store
#: keeps of it (`sparkplug.points`). DataSet and Template are stored as JSON text.
PLATFORM_TYPES: dict[SparkplugType, DataType] = {
    **dict.fromkeys(map(SparkplugType, range(1, 9)), DataType.INT),  # Int8 … UInt64
    SparkplugType.Float: DataType.FLOAT,
    SparkplugType.Double: DataType.FLOAT,
    SparkplugType.Boolean: DataType.BOOL,
    SparkplugType.String: DataType.STRING,
    SparkplugType.Text: DataType.STRING,
    SparkplugType.UUID: DataType.STRING,
    SparkplugType.DataSet: DataType.STRING,
    SparkplugType.Template: DataType.STRING,
    SparkplugType.DateTime: DataType.DATETIME,
    SparkplugType.Bytes: DataType.BYTES,
    SparkplugType.File: DataType.BYTES,
    **dict.fromkeys(ARRAY_TYPES, DataType.ARRAY),
}

#: A metric's metadata as the registry holds it: name → (data type, unit, description).
_Metadata = dict[str, tuple[str, str, str]]


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
        self._kept: TTLCache[tuple[str, str], str | None] = TTLCache(
            _KEPT, ttl_seconds, timer=clock
        )

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
        try:
            return self._kept[(tenant, name)]
        except KeyError:  # not asked lately (or too long ago)
            pass
        try:
            found = self._kept[(tenant, name)] = find()
        except SQLAlchemyError as error:  # ingest waits and tries the batch again
            raise DirectoryError(f"looking up {name!r}: {error}") from error
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

    def describe(self, births: Mapping[tuple[str, str], Sequence[MetricDescription]]) -> int:
        """Make the metric metadata of each (tenant, device id) what its birth declares, and
        return how many devices changed. Read first, written only where it differs (a
        rebirth that declares the same changes nothing, not even ``updated_at``); a device
        gone meanwhile is skipped. DirectoryError when the registry fails."""
        wanted = {key: _metadata(key, metrics) for key, metrics in births.items()}
        try:
            with self._sessions() as session:
                held = _held(session, {device_id for _, device_id in wanted})
            differ = {key: meta for key, meta in wanted.items() if held.get(key, meta) != meta}
            if not differ:
                return 0
            for _ in range(2):  # a second try if a PATCH wrote the same metric meanwhile
                try:
                    return self._write(differ)
                except IntegrityError:
                    continue
        except SQLAlchemyError as error:
            raise DirectoryError(f"metric metadata of {len(births)} devices: {error}") from error
        raise DirectoryError(f"metric metadata of {len(births)} devices: written concurrently")

    def _write(self, differ: Mapping[tuple[str, str], _Metadata]) -> int:
        changed = 0
        with transaction(self._sessions) as session:
            ids = {device_id for _, device_id in differ}
            for device in session.scalars(select(Device).where(Device.id.in_(ids))):
                wanted = differ.get((device.tenant_id, device.id))
                if wanted is None or device.kind not in _KINDS:
                    continue
                kept = {metric.name: metric for metric in device.metrics}
                if _of(kept.values()) == wanted:
                    continue
                rows = []
                for name, (data_type, unit, description) in wanted.items():
                    row = kept.get(name) or DeviceMetric(name=name, writable=False)
                    row.data_type, row.unit, row.description = data_type, unit, description
                    rows.append(row)
                device.metrics = rows  # the rows of metrics no longer born are deleted
                device.updated_at = utcnow()
                changed += 1
                _log.info(
                    "sparkplug.metadata_changed",
                    tenant=device.tenant_id,
                    device=device.id,
                    metrics=len(rows),
                )
        return changed


def _metadata(key: tuple[str, str], metrics: Sequence[MetricDescription]) -> _Metadata:
    """What the registry is to hold of a birth's metrics. A name the device API cannot
    carry (empty, too long, control characters) is left out, and so is every metric past
    ``MAX_METRICS``; units and descriptions lose control characters and are cut to fit."""
    metadata: _Metadata = {}
    left_out = 0
    for metric in metrics:
        name = metric.name
        named = 0 < len(name) <= MAX_METRIC_NAME and not _CONTROL.search(name)
        if not named or len(metadata) >= MAX_METRICS:
            left_out += 1
            continue
        metadata[name] = (
            PLATFORM_TYPES[metric.datatype].value,
            _fit(metric.unit, MAX_UNIT),
            _fit(metric.description, MAX_DESCRIPTION),
        )
    if left_out:
        tenant, device = key
        _log.warning("sparkplug.metrics_left_out", tenant=tenant, device=device, metrics=left_out)
    return metadata


def _fit(text: str, limit: int) -> str:
    return _CONTROL.sub(" ", text)[:limit].strip()


def _of(metrics: Iterable[DeviceMetric]) -> _Metadata:
    return {metric.name: (metric.data_type, metric.unit, metric.description) for metric in metrics}


def _held(session: Session, ids: set[str]) -> dict[tuple[str, str], _Metadata]:
    """The metric metadata the registry holds of these Sparkplug nodes and devices, as plain
    rows; devices that are not (or no longer) there are missing."""
    query = (
        select(
            Device.tenant_id,
            Device.id,
            DeviceMetric.name,
            DeviceMetric.data_type,
            DeviceMetric.unit,
            DeviceMetric.description,
        )
        .outerjoin(DeviceMetric, DeviceMetric.device_id == Device.id)
        .where(Device.id.in_(ids), Device.kind.in_(_KINDS))
    )
    held: dict[tuple[str, str], _Metadata] = {}
    for tenant, device, name, data_type, unit, description in session.execute(query):
        metadata = held.setdefault((tenant, device), {})
        if name is not None:  # None: no metric at all yet
            metadata[name] = (data_type, unit, description)
    return held

"""The device registry: rows to API shapes, MQTT secrets, and the rules names and places
follow. The HTTP routes (``routes.py``) and the broker's account config both read it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import groupby

import structlog
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantwire.security.tables import Tenant, name_key
from plantwire.telemetry import accounts
from plantwire.telemetry.accounts import commands_topic, hash_device_password, telemetry_topic
from plantwire.telemetry.broker import BrokerError, BundledBroker
from plantwire.telemetry.schemas import (
    DataType,
    DeviceKind,
    DeviceOut,
    MetricSpec,
    Topics,
    sparkplug_node_ids,
)
from plantwire.telemetry.sparkplug.topics import MessageType, Topic
from plantwire.telemetry.sparkplug_intake import DirectoryError
from plantwire.telemetry.tables import Device, DeviceMetric

__all__ = [
    "MqttSecret",
    "RegistryAccounts",
    "RegistryDevices",
    "broker_accounts",
    "broker_follower",
    "device_out",
    "device_topics",
    "metric_rows",
    "mqtt_username",
    "new_secret",
    "place_filter",
    "search_key",
]

# bcrypt's lowest cost: the secret has 256 random bits, so guessing it is hopeless however
# fast the hash, and the broker checks every connecting device against it.
_BCRYPT_ROUNDS = 4
_log = structlog.get_logger("plantwire.devices")


class MqttSecret:
    """A new device secret: the password (shown once) and the two hashes stored."""

    __slots__ = ("bcrypt", "password", "sha256")

    def __init__(self, password: str) -> None:
        self.password = password
        self.sha256 = hashlib.sha256(password.encode()).hexdigest()
        self.bcrypt = hash_device_password(password, rounds=_BCRYPT_ROUNDS)


def new_secret() -> MqttSecret:
    """256 random bits, URL-safe base64 without padding (43 characters)."""
    return MqttSecret(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())


def mqtt_username(device: Device) -> str:
    """The device's MQTT username: its id and its tenant's (nats-server's user names are
    global across accounts)."""
    return accounts.device_username(device.tenant_id, device.id)


def _tenant_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Tenant.id).order_by(Tenant.id)))


def broker_accounts(session: Session) -> list[accounts.TenantAccount]:
    """Every tenant with the devices the broker is to admit in its name."""
    rows = session.execute(
        select(Device.tenant_id, Device.id, Device.kind, Device.name, Device.secret_bcrypt)
        .where(Device.kind != DeviceKind.SPARKPLUG_DEVICE)  # they use their node's connection
        .order_by(Device.tenant_id, Device.id)
    ).all()
    devices = {
        tenant_id: tuple(
            _broker_device(row.id, row.kind, row.name, row.secret_bcrypt) for row in group
        )
        for tenant_id, group in groupby(rows, key=lambda row: row.tenant_id)
    }
    return [
        accounts.TenantAccount(tenant_id, devices.get(tenant_id, ()))
        for tenant_id in _tenant_ids(session)
    ]


def _broker_device(device_id: str, kind: str, name: str, bcrypt_hash: str) -> accounts.Device:
    if kind == DeviceKind.SPARKPLUG_NODE:
        group, edge = sparkplug_node_ids(name)
        return accounts.Device(device_id, bcrypt_hash, group, edge)
    return accounts.Device(device_id, bcrypt_hash)


def broker_follower(sessions: sessionmaker[Session], broker: BundledBroker) -> Callable[[], None]:
    """A device listener that gives the broker the registry's devices as they are now, and
    returns once a reload that read the registry after the call has finished: a device can
    connect as soon as the API has answered its creation. A broker that cannot take the
    change is logged: the change itself is committed, and the next one (or a restart) brings
    the broker in step."""
    return _BrokerFollower(sessions, broker)


class _BrokerFollower:
    """Changes that arrive while a reload runs share the next one (a group commit). A reload
    re-renders and checks the whole config and has the server parse it: at 10,000 devices
    that is about a second, so one reload per change made creating devices in bulk cost
    hours (``bench/devices.py``); now concurrent creates share them. One reload runs at a
    time, and it reads the registry after every change it covers was committed, so it can
    never leave the broker with an older view than a caller's."""

    def __init__(self, sessions: sessionmaker[Session], broker: BundledBroker) -> None:
        self._sessions = sessions
        self._broker = broker
        self._turn = threading.Condition()
        self._asked = 0  # changes announced so far (calls)
        self._covered = 0  # changes a finished reload has covered
        self._running = False

    def __call__(self) -> None:
        with self._turn:
            self._asked += 1
            mine = self._asked
            while self._running:
                self._turn.wait()
            if self._covered >= mine:  # a reload that began after this call covered it
                return
            self._running = True
            covers = self._asked
        done = False
        try:
            self._reload()
            done = True
        finally:  # a failed reading of the registry covers nothing: the next caller retries
            with self._turn:
                if done:
                    self._covered = covers
                self._running = False
                self._turn.notify_all()

    def _reload(self) -> None:
        with self._sessions() as session:
            tenants = broker_accounts(session)
        try:
            self._broker.apply(tenants)
        except BrokerError as error:
            _log.error("broker.out_of_step", error=str(error), tenants=len(tenants))


class RegistryAccounts:
    """The registry's tenant accounts as they were at the last ``refresh()`` (call it from a
    thread that may block, e.g. as an account listener): what the Sparkplug host publishes its
    STATE to on an external broker, which plantwire reads nothing of and does not configure."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.tenants: tuple[accounts.TenantAccount, ...] = ()

    def refresh(self) -> None:
        """Read them again; a registry that cannot be read keeps the last ones (logged)."""
        try:
            with self._sessions() as session:
                self.tenants = tuple(broker_accounts(session))
        except SQLAlchemyError as error:
            _log.error("devices.accounts_unread", error=str(error))

    def __call__(self) -> tuple[accounts.TenantAccount, ...]:
        return self.tenants


class RegistryDevices:
    """Ingest's view of the registry (``ingest.DeviceDirectory``): the declared metric types
    of each device, or None for a device that does not exist. Answers are kept for
    ``ttl_seconds``, so a busy device costs one registry read per that time, and a change
    of its metadata or its deletion is seen within it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._kept: TTLCache[tuple[str, str], Mapping[str, str] | None] = TTLCache(
            _KEPT, ttl_seconds, timer=clock
        )

    def declared(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, str] | None]:
        found: dict[tuple[str, str], Mapping[str, str] | None] = {}
        missing: list[tuple[str, str]] = []
        for key in keys:
            try:
                found[key] = self._kept[key]
            except KeyError:  # not asked lately (or too long ago)
                missing.append(key)
        if missing:
            # plain rows, not ORM objects: at 5,000 devices publishing once a second, loading
            # Device and DeviceMetric objects took a quarter of the ingest process's time
            query = (
                select(Device.tenant_id, Device.id, DeviceMetric.name, DeviceMetric.data_type)
                .outerjoin(DeviceMetric, DeviceMetric.device_id == Device.id)
                .where(Device.id.in_({device_id for _, device_id in missing}))
            )
            devices: dict[tuple[str, str], dict[str, str]] = {}
            try:
                with self._sessions() as session:
                    for tenant_id, device_id, metric, data_type in session.execute(query):
                        types = devices.setdefault((tenant_id, device_id), {})
                        if metric is not None:  # None: a device that declares no metric
                            types[metric] = data_type
            except SQLAlchemyError as error:  # ingest waits and tries the batch again
                raise DirectoryError(f"looking up {len(missing)} devices: {error}") from error
            for key in missing:
                found[key] = self._kept[key] = devices.get(key)
        return found


_KEPT = 100_000  # answers kept at most; past it the least recently used go


def search_key(text: str) -> str:
    """What ``?search=`` compares: the name folded as names are for uniqueness."""
    return name_key(text.strip())


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def place_filter(place: str) -> tuple[str, str]:
    """(exact, LIKE pattern) matching ``place`` and every place below it, level by level:
    'Plant1/Line3' matches 'Plant1/Line3' and 'Plant1/Line3/Press1', not 'Plant1/Line30'."""
    place = place.strip("/")
    return place, like_escape(place) + "/%"


def metric_rows(metrics: list[MetricSpec]) -> list[DeviceMetric]:
    return [
        DeviceMetric(
            name=metric.name,
            unit=metric.unit,
            data_type=metric.data_type.value,
            description=metric.description,
            writable=metric.writable,
        )
        for metric in metrics
    ]


def device_topics(device: Device) -> Topics:
    """A JSON device's own topics; an edge node's NDATA and NCMD, a Sparkplug device's
    DDATA and DCMD (its name is ``<group>/<edge node>[/<device>]``)."""
    if device.kind == DeviceKind.SPARKPLUG_NODE:
        group, edge = device.name.split("/")
        return Topics(
            telemetry=str(Topic(MessageType.NDATA, group, edge)),
            commands=str(Topic(MessageType.NCMD, group, edge)),
        )
    if device.kind == DeviceKind.SPARKPLUG_DEVICE:
        group, edge, name = device.name.split("/", 2)
        return Topics(
            telemetry=str(Topic(MessageType.DDATA, group, edge, name)),
            commands=str(Topic(MessageType.DCMD, group, edge, name)),
        )
    return Topics(telemetry=telemetry_topic(device.id), commands=commands_topic(device.id))


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        tenant=device.tenant_id,
        name=device.name,
        kind=device.kind,
        place=device.place,
        attributes=device.attributes,
        metrics=[
            MetricSpec(
                name=metric.name,
                data_type=DataType(metric.data_type),
                unit=metric.unit,
                description=metric.description,
                writable=metric.writable,
            )
            for metric in sorted(device.metrics, key=lambda metric: metric.name)
        ],
        parent=device.parent_id,
        topics=device_topics(device),
        retention_days=device.retention_days,
        created_at=device.created_at,
        updated_at=device.updated_at,
    )

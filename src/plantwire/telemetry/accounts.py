"""Who may connect to the broker and what each may publish and subscribe to: tenants, their
devices, and the subjects both sides of the broker use (no I/O).

Each tenant is its own NATS account, so tenants share no subject space; the platform's own
account imports every tenant's device subjects under ``tenant.<tenant_id>.`` and reaches each
tenant's command subjects under ``cmd.<tenant_id>.``. Two tenants may both have a device
``press-1``: inside each account its topics are the same, on the platform side the tenant
prefix tells them apart.

nats-server's MQTT gateway turns a topic into a subject by replacing ``/`` with ``.`` and a
``.`` inside a topic level with ``//``: ``spBv1.0/Plant1/NBIRTH/Edge7`` is the subject
``spBv1//0.Plant1.NBIRTH.Edge7``. Permissions are written on those subjects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bcrypt

__all__ = [
    "COMMAND_PREFIX",
    "SPARKPLUG_NAMESPACE",
    "TELEMETRY_PREFIX",
    "TENANT_ACCOUNT_PREFIX",
    "Device",
    "DevicePermissions",
    "TenantAccount",
    "account_name",
    "check_sparkplug_id",
    "command_subject",
    "commands_topic",
    "device_permissions",
    "device_username",
    "hash_device_password",
    "host_permissions",
    "host_username",
    "mqtt_topic_to_subject",
    "telemetry_subject",
    "telemetry_topic",
    "tenant_of_account",
]

#: Platform-side prefix of the subjects devices publish: ``tenant.<tenant_id>.<subject>``.
TELEMETRY_PREFIX = "tenant"
#: Platform-side prefix of the subjects the platform publishes to devices: ``cmd.<tenant_id>.…``.
COMMAND_PREFIX = "cmd"
#: The Sparkplug B topic namespace, as a subject token (``spBv1.0`` in MQTT).
SPARKPLUG_NAMESPACE = "spBv1//0"
#: A tenant's NATS account is this and its id.
TENANT_ACCOUNT_PREFIX = "tenant-"
#: Tenant ids are the registry's UUIDs; any id that is one plain NATS token will do.
_TENANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A device id or Sparkplug group id: one MQTT topic level that is also safe as a NATS token
#: after the ``.`` → ``//`` rewrite (no wildcards, spaces, ``/``, ``$`` or control characters).
_LEVEL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.:-]{0,127}")
_BAD_TOPIC_CHARS = re.compile(r"[\s+#*>\x00]")

_SPARKPLUG_NODE_MESSAGES = ("NBIRTH", "NDEATH", "NDATA")
_SPARKPLUG_DEVICE_MESSAGES = ("DBIRTH", "DDEATH", "DDATA")


def mqtt_topic_to_subject(topic: str) -> str:
    """The NATS subject nats-server's MQTT gateway gives a concrete MQTT topic name."""
    levels = topic.split("/")
    if not topic or any(not level for level in levels) or _BAD_TOPIC_CHARS.search(topic):
        raise ValueError(f"{topic!r} is not a topic plantwire uses (empty level or wildcard)")
    return ".".join(level.replace(".", "//") for level in levels)


def telemetry_topic(device_id: str) -> str:
    """The MQTT topic a JSON device publishes its readings to."""
    return f"plantwire/v1/devices/{device_id}/telemetry"


def commands_topic(device_id: str) -> str:
    """The MQTT topic a JSON device subscribes to for commands."""
    return f"plantwire/v1/devices/{device_id}/commands"


def telemetry_subject(tenant_id: str, device_id: str) -> str:
    """Where the platform's account receives ``device_id``'s telemetry."""
    return f"{TELEMETRY_PREFIX}.{tenant_id}.{mqtt_topic_to_subject(telemetry_topic(device_id))}"


def command_subject(tenant_id: str, device_id: str) -> str:
    """Where the platform publishes a command for ``device_id`` of ``tenant_id``."""
    return f"{COMMAND_PREFIX}.{tenant_id}.{mqtt_topic_to_subject(commands_topic(device_id))}"


def account_name(tenant_id: str) -> str:
    """The NATS account of a tenant."""
    return f"{TENANT_ACCOUNT_PREFIX}{tenant_id}"


def tenant_of_account(name: str) -> str | None:
    """The tenant whose NATS account ``name`` is; None for any other account."""
    tenant_id = name.removeprefix(TENANT_ACCOUNT_PREFIX)
    if tenant_id == name or not _TENANT_ID.fullmatch(tenant_id):
        return None
    return tenant_id


def device_username(tenant_id: str, device_id: str) -> str:
    """A device's broker (MQTT) username. User names are global across accounts in
    nats-server, so the tenant is part of it: two tenants' ``press-1`` are different users."""
    return f"{device_id}@{tenant_id}"


def hash_device_password(password: str, rounds: int = 11) -> str:
    """A bcrypt hash of a device password, as nats-server checks it. nats-server runs bcrypt
    on every connect, so the cost is paid per (re)connection, not per message."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


@dataclass(frozen=True, slots=True)
class Device:
    """A device that connects to the broker. ``sparkplug_group`` set: the device is also a
    Sparkplug B edge node of that group, its edge node id being ``edge_node_id`` (by
    default ``device_id``)."""

    device_id: str
    password_hash: str  # bcrypt ($2a$/$2b$), see hash_device_password
    sparkplug_group: str | None = None
    edge_node_id: str | None = None

    def __post_init__(self) -> None:
        _check_level("device id", self.device_id)
        if self.sparkplug_group is not None:
            check_sparkplug_id("Sparkplug group id", self.sparkplug_group)
            check_sparkplug_id("edge node id", self.edge_node)
        elif self.edge_node_id is not None:
            raise ValueError(f"device {self.device_id!r}: an edge node id needs a group id")
        if not self.password_hash.startswith(("$2a$", "$2b$", "$2y$")):
            raise ValueError(f"device {self.device_id!r}: password_hash is not a bcrypt hash")

    @property
    def edge_node(self) -> str:
        """The Sparkplug edge node id of its topics."""
        return self.edge_node_id if self.edge_node_id is not None else self.device_id


@dataclass(frozen=True, slots=True)
class TenantAccount:
    """A tenant and every device allowed to connect in its name."""

    tenant_id: str
    devices: tuple[Device, ...] = ()

    @property
    def has_sparkplug(self) -> bool:
        """Whether it has a Sparkplug edge node: then the host publishes its STATE here."""
        return any(device.sparkplug_group is not None for device in self.devices)

    def __post_init__(self) -> None:
        if not _TENANT_ID.fullmatch(self.tenant_id):
            raise ValueError(f"tenant id {self.tenant_id!r} is not 1-64 of [A-Za-z0-9_-]")
        ids = [device.device_id for device in self.devices]
        if len(ids) != len(set(ids)):
            raise ValueError(f"tenant {self.tenant_id!r} lists a device id twice")


@dataclass(frozen=True, slots=True)
class DevicePermissions:
    """The subjects, inside its tenant's account, a device may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def device_permissions(device: Device) -> DevicePermissions:
    """Exactly the device's own topics: its telemetry out, its commands in, and with
    Sparkplug its edge node's and devices' messages out, their commands and host state in.
    (Only exact subjects and ``*`` for one token are used: ``>`` never matches zero tokens.)"""
    publish = [mqtt_topic_to_subject(telemetry_topic(device.device_id))]
    subscribe = [mqtt_topic_to_subject(commands_topic(device.device_id))]
    if device.sparkplug_group is not None:
        node = mqtt_topic_to_subject(f"{device.sparkplug_group}/{device.edge_node}")
        group, edge = node.split(".")
        base = f"{SPARKPLUG_NAMESPACE}.{group}"
        publish += [f"{base}.{kind}.{edge}" for kind in _SPARKPLUG_NODE_MESSAGES]
        publish += [f"{base}.{kind}.{edge}.*" for kind in _SPARKPLUG_DEVICE_MESSAGES]
        subscribe += [f"{base}.NCMD.{edge}", f"{base}.DCMD.{edge}.*"]
        subscribe.append(f"{SPARKPLUG_NAMESPACE}.STATE.*")
    return DevicePermissions(tuple(publish), tuple(subscribe))


def host_username(tenant_id: str) -> str:
    """The MQTT user the platform's Sparkplug host connects as in a tenant's account, to
    publish its STATE there. A ``/`` is in no device id, so no device can hold the name."""
    return f"sparkplug-host/{tenant_id}"


def host_permissions(host_id: str) -> DevicePermissions:
    """The host's user may publish its own STATE and subscribe to nothing."""
    check_sparkplug_id("Sparkplug host id", host_id)
    return DevicePermissions((f"{SPARKPLUG_NAMESPACE}.STATE.{host_id}",), ())


def check_sparkplug_id(what: str, value: str) -> None:
    """A Sparkplug group or edge node id the bundled broker carries and permissions can name
    exactly: the rule of device ids (1-128 of ``A-Z a-z 0-9 _ . : -``). Sparkplug allows
    more (spaces, other characters), which nats-server's MQTT gateway cannot pass or a
    permission subject could not hold safely; ValueError says which."""
    _check_level(what, value)


def _check_level(what: str, value: str) -> None:
    if not _LEVEL.fullmatch(value) or value.endswith("."):
        raise ValueError(
            f"{what} {value!r} must be 1-128 of [A-Za-z0-9_.:-], not starting or ending with '.'"
        )

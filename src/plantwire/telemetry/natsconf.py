"""The bundled nats-server's configuration file, rendered from plain data (no I/O).

Layout (see docs/telemetry.md): one server with JetStream and MQTT on; an account
``PLATFORM`` holding the platform's own user; one account per tenant holding its devices,
each device limited to its own subjects; the tenant account exports its device subjects as
streams and its command subjects as services to ``PLATFORM`` alone, which imports them under
``tenant.<tenant_id>.`` and ``cmd.<tenant_id>.``. A *retired* tenant (one taken off the
broker whose account still holds JetStream state) keeps an account with JetStream and
nothing else, until that state is purged: nats-server's health check fails for good on
JetStream state of an account it does not know. The system account ``$SYS`` holds one user
of the platform's, which may make that purge request and nothing else. A tenant with a
Sparkplug edge node also holds the platform's Sparkplug host user (MQTT only), which may
publish the host's STATE in that account and nothing else (see ``sparkplug_state``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantwire.telemetry.accounts import (
    COMMAND_PREFIX,
    SPARKPLUG_NAMESPACE,
    TELEMETRY_PREFIX,
    TenantAccount,
    account_name,
    device_permissions,
    device_username,
    host_permissions,
    host_username,
    tenant_of_account,
)

__all__ = [
    "ACCOUNT_PURGE_SUBJECT",
    "PLATFORM_ACCOUNT",
    "PLATFORM_USER",
    "SYSTEM_ACCOUNT",
    "SYSTEM_USER",
    "MqttTls",
    "ServerOptions",
    "configured_tenants",
    "fingerprint_of",
    "render_config",
]

PLATFORM_ACCOUNT = "PLATFORM"
PLATFORM_USER = "platform"
#: nats-server's default system account; declaring it (rather than naming another with
#: ``system_account``) keeps the config reloadable from one written without it
SYSTEM_ACCOUNT = "$SYS"
#: The platform's user in the system account (same password as ``PLATFORM_USER``)
SYSTEM_USER = "platform-system"
#: ``<subject>.<account>``: delete an account's streams and its JetStream folder (a request
#: of the system account only)
ACCOUNT_PURGE_SUBJECT = "$JS.API.ACCOUNT.PURGE"
SERVER_NAME = "plantwire"

#: What a tenant account offers the platform: device-published subjects (streams) ...
_DEVICE_STREAMS = ("plantwire.>", f"{SPARKPLUG_NAMESPACE}.>")
#: ... and the subjects the platform may publish into it (services): commands only.
_COMMAND_SERVICES = (
    "plantwire.v1.devices.*.commands",
    f"{SPARKPLUG_NAMESPACE}.*.NCMD.*",
    f"{SPARKPLUG_NAMESPACE}.*.DCMD.*.*",
)
_FINGERPRINT_LINE = "# plantwire listeners: "
#: The first line of an account in a rendered config (its name as ``_q`` writes it).
_ACCOUNT_LINE = re.compile(r'  ("[^"\\]*"): \{')


@dataclass(frozen=True, slots=True)
class MqttTls:
    cert: Path
    key: Path
    ca: Path | None = None  # set: clients must present a certificate signed by it
    #: set (with ``ca``): the CA file the server is given instead, ``ca`` followed by the
    #: Sparkplug host's own client certificate (``mqtt_tls.write_client_cas``)
    clients_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything about the server except its accounts: what a reload cannot change."""

    directory: Path  # absolute; holds nats.conf, nats.pid, nats.log and jetstream/
    nats_port: int
    monitor_port: int
    mqtt_host: str
    mqtt_port: int
    max_payload: int
    tenant_max_memory: int  # -1: no limit of its own; > 0: reserved at start (see below)
    tenant_max_store: int  # the same, for file storage
    tenant_max_streams: int = 8
    tenant_max_consumers: int = -1
    max_memory_store: int | None = None  # None: nats-server's default (75% of the RAM)
    max_file_store: int | None = None  # None: nats-server's default (the disk's free space)
    mqtt_tls: MqttTls | None = None

    @property
    def config_file(self) -> Path:
        return self.directory / "nats.conf"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nats.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "nats.log"

    @property
    def host_client_cert(self) -> tuple[Path, Path]:
        """The Sparkplug host's MQTT client certificate and key, when clients need one."""
        return self.directory / "mqtt-host-cert.pem", self.directory / "mqtt-host-key.pem"

    @property
    def jetstream_dir(self) -> Path:
        """Where JetStream keeps each account's state, a folder per account that has any
        (nats-server puts ``jetstream/`` inside the configured ``store_dir``)."""
        return self.directory / "jetstream"

    @property
    def fingerprint(self) -> str:
        """Changes when a setting that needs a restart (not a reload) changes."""
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:32]


def fingerprint_of(config_text: str) -> str | None:
    """The ``ServerOptions.fingerprint`` a rendered config was made with."""
    first = config_text.split("\n", 1)[0]
    return first.removeprefix(_FINGERPRINT_LINE) if first.startswith(_FINGERPRINT_LINE) else None


def configured_tenants(config_text: str) -> set[str]:
    """The tenants a rendered config has accounts for (retired ones too)."""
    found = (_ACCOUNT_LINE.fullmatch(line) for line in config_text.splitlines())
    return {
        tenant_id
        for match in found
        if match is not None and (tenant_id := tenant_of_account(json.loads(match[1])))
    }


def render_config(
    options: ServerOptions,
    platform_password_hash: str,
    tenants: Sequence[TenantAccount],
    retired: Sequence[str] = (),
    host: tuple[str, str] | None = None,
) -> str:
    """The whole nats-server configuration file: ``tenants`` with their devices, and for
    each tenant id in ``retired`` an account that nobody can use, holding its JetStream state
    until that is purged. ``host``: (Sparkplug host id, bcrypt hash of the platform's
    password) of the host user put into each tenant account with a Sparkplug edge node."""
    ids = [tenant.tenant_id for tenant in tenants]
    if len(set(ids) | set(retired)) != len(ids) + len(retired):
        raise ValueError("a tenant is listed twice")
    lines = [
        f"{_FINGERPRINT_LINE}{options.fingerprint}",
        "# Written by plantwire; changes are overwritten. See docs/telemetry.md.",
        f"server_name: {_q(SERVER_NAME)}",
        f"listen: {_q(f'127.0.0.1:{options.nats_port}')}",
        f"http: {_q(f'127.0.0.1:{options.monitor_port}')}",
        f"max_payload: {options.max_payload}",
        f"pid_file: {_q(str(options.pid_file))}",
        f"log_file: {_q(str(options.log_file))}",
        "logfile_size_limit: 10MB",
        "logfile_max_num: 5",
        "jetstream {",
        f"  store_dir: {_q(str(options.directory))}",
        *_store_limits(options),
        "}",
        *_mqtt_block(options),
        "accounts {",
        *_system_account(platform_password_hash),
        *_platform_account(platform_password_hash, ids),
        *(line for tenant in tenants for line in _tenant_account(options, tenant, host)),
        *(line for tenant_id in retired for line in _retired_account(options, tenant_id)),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _mqtt_block(options: ServerOptions) -> list[str]:
    block = ["mqtt {", f"  listen: {_q(_host_port(options.mqtt_host, options.mqtt_port))}"]
    tls = options.mqtt_tls
    if tls is not None:
        block += [
            "  tls {",
            f"    cert_file: {_q(str(tls.cert))}",
            f"    key_file: {_q(str(tls.key))}",
        ]
        ca = tls.clients_ca or tls.ca
        if ca is not None:
            block += [f"    ca_file: {_q(str(ca))}", "    verify: true"]
        block.append("  }")
    block.append("}")
    return block


def _system_account(password_hash: str) -> list[str]:
    user = {
        "user": SYSTEM_USER,
        "password": password_hash,
        "allowed_connection_types": ["STANDARD"],
        "permissions": {
            "publish": {"allow": [f"{ACCOUNT_PURGE_SUBJECT}.*"]},
            "subscribe": {"allow": ["_INBOX.>"]},
        },
    }
    return [f"  {_q(SYSTEM_ACCOUNT)}: {{", f"    users: [{_value(user)}]", "  }"]


def _platform_account(password_hash: str, tenant_ids: Iterable[str]) -> list[str]:
    user = {
        "user": PLATFORM_USER,
        "password": password_hash,
        "allowed_connection_types": ["STANDARD"],
    }
    imports: list[str] = []
    for tenant_id in tenant_ids:
        account = account_name(tenant_id)
        imports += [
            f"      {{stream: {{account: {_q(account)}, subject: {_q(subject)}}}, "
            f"prefix: {_q(f'{TELEMETRY_PREFIX}.{tenant_id}')}}}"
            for subject in _DEVICE_STREAMS
        ]
        imports += [
            f"      {{service: {{account: {_q(account)}, subject: {_q(subject)}}}, "
            f"to: {_q(f'{COMMAND_PREFIX}.{tenant_id}.{subject}')}}}"
            for subject in _COMMAND_SERVICES
        ]
    return [
        f"  {PLATFORM_ACCOUNT}: {{",
        "    jetstream: enabled",
        f"    users: [{_value(user)}]",
        "    imports: [",
        *imports,
        "    ]",
        "  }",
    ]


def _tenant_account(
    options: ServerOptions, tenant: TenantAccount, host: tuple[str, str] | None
) -> list[str]:
    users = []
    for device in tenant.devices:
        permissions = device_permissions(device)
        user = {
            "user": device_username(tenant.tenant_id, device.device_id),
            "password": device.password_hash,
            "allowed_connection_types": ["MQTT"],
            "permissions": {
                "publish": {"allow": list(permissions.publish)},
                "subscribe": {"allow": list(permissions.subscribe)},
            },
        }
        users.append(f"      {_value(user)}")
    if host is not None and tenant.has_sparkplug:
        host_id, password_hash = host
        allowed = host_permissions(host_id)
        user = {
            "user": host_username(tenant.tenant_id),
            "password": password_hash,
            "allowed_connection_types": ["MQTT"],
            "permissions": {
                "publish": {"allow": list(allowed.publish)},
                "subscribe": {"deny": [">"]},
            },
        }
        users.append(f"      {_value(user)}")
    exports = [
        f"      {{stream: {_q(subject)}, accounts: [{_q(PLATFORM_ACCOUNT)}]}}"
        for subject in _DEVICE_STREAMS
    ] + [
        f"      {{service: {_q(subject)}, accounts: [{_q(PLATFORM_ACCOUNT)}]}}"
        for subject in _COMMAND_SERVICES
    ]
    return [
        f"  {_q(account_name(tenant.tenant_id))}: {{",
        f"    jetstream: {_value(_tenant_limits(options))}",
        "    users: [",
        *users,
        "    ]",
        "    exports: [",
        *exports,
        "    ]",
        "  }",
    ]


def _retired_account(options: ServerOptions, tenant_id: str) -> list[str]:
    """JetStream on, so nats-server recovers the account's streams and can purge them; no
    users, exports or imports."""
    TenantAccount(tenant_id)  # a tenant id, or ValueError
    return [
        f"  {_q(account_name(tenant_id))}: {{",
        f"    jetstream: {_value(_tenant_limits(options))}",
        "  }",
    ]


def _store_limits(options: ServerOptions) -> list[str]:
    limits = [("max_memory_store", options.max_memory_store)]
    limits.append(("max_file_store", options.max_file_store))
    return [f"  {name}: {value}" for name, value in limits if value is not None]


def _tenant_limits(options: ServerOptions) -> dict[str, object]:
    """A tenant account's JetStream limits. nats-server *reserves* each positive byte limit
    out of the server's store at start and reload (and refuses JetStream when the sum does
    not fit), so the defaults are none in bytes (``-1``; ``0`` forbids memory streams, which
    MQTT does not use) and a tenant is held by its count of streams and consumers instead
    (docs/telemetry.md, "JetStream limits of an account")."""
    return {
        "max_memory": options.tenant_max_memory,
        "max_file": options.tenant_max_store,
        "max_streams": options.tenant_max_streams,
        "max_consumers": options.tenant_max_consumers,
    }


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _q(text: str) -> str:
    """A double-quoted string of the config language (its escapes are JSON's). Quoted
    strings are taken literally: ``$`` starts a variable only in unquoted values, so
    bcrypt hashes stay intact."""
    if any(ord(char) < 0x20 for char in text):
        raise ValueError(f"control character in config value {text!r}")
    return json.dumps(text, ensure_ascii=False)


def _value(value: object) -> str:
    """A map, list, string or number in the config language (JSON-like, one line)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, bool | int):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} into the broker config")

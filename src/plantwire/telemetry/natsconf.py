"""The bundled nats-server's configuration file, rendered from plain data (no I/O).

Layout (see docs/telemetry.md): one server with JetStream and MQTT on; an account
``PLATFORM`` holding the platform's own user; one account per tenant holding its devices,
each device limited to its own subjects; the tenant account exports its device subjects as
streams and its command subjects as services to ``PLATFORM`` alone, which imports them under
``tenant.<tenant_id>.`` and ``cmd.<tenant_id>.``.
"""

from __future__ import annotations

import hashlib
import json
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
)

__all__ = [
    "PLATFORM_ACCOUNT",
    "PLATFORM_USER",
    "MqttTls",
    "ServerOptions",
    "fingerprint_of",
    "render_config",
]

PLATFORM_ACCOUNT = "PLATFORM"
PLATFORM_USER = "platform"
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


@dataclass(frozen=True, slots=True)
class MqttTls:
    cert: Path
    key: Path
    ca: Path | None = None  # set: clients must present a certificate signed by it


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything about the server except its accounts: what a reload cannot change."""

    directory: Path  # absolute; holds nats.conf, nats.pid, nats.log and jetstream/
    nats_port: int
    monitor_port: int
    mqtt_host: str
    mqtt_port: int
    max_payload: int
    tenant_max_memory: int
    tenant_max_store: int
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
    def fingerprint(self) -> str:
        """Changes when a setting that needs a restart (not a reload) changes."""
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:32]


def fingerprint_of(config_text: str) -> str | None:
    """The ``ServerOptions.fingerprint`` a rendered config was made with."""
    first = config_text.split("\n", 1)[0]
    return first.removeprefix(_FINGERPRINT_LINE) if first.startswith(_FINGERPRINT_LINE) else None


def render_config(
    options: ServerOptions, platform_password_hash: str, tenants: Sequence[TenantAccount]
) -> str:
    """The whole nats-server configuration file."""
    ids = [tenant.tenant_id for tenant in tenants]
    if len(ids) != len(set(ids)):
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
        "}",
        *_mqtt_block(options),
        "accounts {",
        *_platform_account(platform_password_hash, ids),
        *(line for tenant in tenants for line in _tenant_account(options, tenant)),
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
        if tls.ca is not None:
            block += [f"    ca_file: {_q(str(tls.ca))}", "    verify: true"]
        block.append("  }")
    block.append("}")
    return block


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


def _tenant_account(options: ServerOptions, tenant: TenantAccount) -> list[str]:
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
    exports = [
        f"      {{stream: {_q(subject)}, accounts: [{_q(PLATFORM_ACCOUNT)}]}}"
        for subject in _DEVICE_STREAMS
    ] + [
        f"      {{service: {_q(subject)}, accounts: [{_q(PLATFORM_ACCOUNT)}]}}"
        for subject in _COMMAND_SERVICES
    ]
    limits = {"max_memory": options.tenant_max_memory, "max_file": options.tenant_max_store}
    return [
        f"  {_q(account_name(tenant.tenant_id))}: {{",
        f"    jetstream: {_value(limits)}",
        "    users: [",
        *users,
        "    ]",
        "    exports: [",
        *exports,
        "    ]",
        "  }",
    ]


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

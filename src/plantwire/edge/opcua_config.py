"""What the gateway's OPC UA connector reads, as checked dataclasses (no I/O).

The gateway's ``gateway.toml`` holds one ``[[opcua.servers]]`` table per server, each with its
``[[opcua.servers.nodes]]``; :func:`servers_from_toml` turns the parsed document into
:class:`OpcUaServerConfig` values, or raises :class:`OpcUaConfigError` naming the key at
fault. docs/edge.md ("OPC UA connector") shows a whole file.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from asyncua import ua

from plantwire.edge.opcua_types import parse_browse_path

__all__ = [
    "SECURITY_POLICIES",
    "NodeConfig",
    "OpcUaConfigError",
    "OpcUaServerConfig",
    "SecurityMode",
    "server_from_mapping",
    "servers_from_toml",
]

#: The security policies a secured connection may use (asyncua's names; the deprecated
#: Basic128Rsa15 and Basic256 are left out on purpose).
SECURITY_POLICIES = ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")


class OpcUaConfigError(ValueError):
    """A configuration that cannot work; the message starts with the key at fault."""


class SecurityMode(enum.StrEnum):
    """OPC UA's MessageSecurityMode (Part 4 §7.20)."""

    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One variable to subscribe to: by ``node_id`` (``ns=2;s=Press1.Temperature``) or by
    ``browse_path`` from the Root node (``0:Objects/2:Plant/2:Press1/2:Temperature``,
    resolved at each connect), published as ``metric`` of the Sparkplug ``device``."""

    metric: str
    device: str
    node_id: str | None = None
    browse_path: str | None = None
    sampling_ms: float = 1000.0
    #: absolute deadband: changes smaller than this are not reported (numeric nodes only)
    deadband: float | None = None
    #: whether commands may write this node
    writable: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.metric)

    @property
    def address(self) -> str:
        """The node as configured: its NodeId or its browse path."""
        return self.node_id if self.node_id is not None else f"path {self.browse_path}"


@dataclass(frozen=True, slots=True)
class OpcUaServerConfig:
    """One OPC UA server and the nodes the gateway subscribes to on it."""

    endpoint: str
    nodes: tuple[NodeConfig, ...]
    name: str = ""
    security_mode: SecurityMode = SecurityMode.NONE
    security_policy: str = "None"
    #: the gateway's application instance certificate and key (PEM or DER), for Sign and
    #: SignAndEncrypt
    certificate: Path | None = None
    private_key: Path | None = None
    #: the server's certificate; without it the one the server's endpoints list is taken
    server_certificate: Path | None = None
    username: str | None = None
    password: str | None = None
    #: must equal the URI in the certificate's subjectAltName
    application_uri: str = "urn:plantwire:gateway"
    publishing_ms: float = 1000.0
    #: how long a request may take
    timeout_s: float = 4.0
    #: how often the connection is probed (a read of the server's state), which is also how
    #: long a probe may take: asyncua uses the interval as the probe's timeout
    keepalive_s: float = 5.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.endpoint)
        _check_server(self)

    def node(self, device: str, metric: str) -> NodeConfig | None:
        for node in self.nodes:
            if node.device == device and node.metric == metric:
                return node
        return None


def _check_server(config: OpcUaServerConfig) -> None:
    def fail(key: str, message: str) -> None:
        raise OpcUaConfigError(f"{key}: {message}")

    if not config.endpoint.startswith("opc.tcp://"):
        fail("endpoint", f"{config.endpoint!r} is not an opc.tcp:// URL")
    secured = config.security_mode != SecurityMode.NONE
    if secured and config.security_policy not in SECURITY_POLICIES:
        fail("security_policy", f"{config.security_policy!r} is not one of {SECURITY_POLICIES}")
    if not secured and config.security_policy != "None":
        fail("security_policy", "a policy needs security_mode Sign or SignAndEncrypt")
    if secured and (config.certificate is None or config.private_key is None):
        fail("certificate", f"security_mode {config.security_mode} needs certificate and key")
    if (config.username is None) != (config.password is None):
        fail("username", "username and password go together")
    for key in ("publishing_ms", "timeout_s", "keepalive_s", "reconnect_min_s"):
        if not 0 < getattr(config, key) < math.inf:
            fail(key, "must be a positive number")
    if not config.reconnect_min_s <= config.reconnect_max_s < math.inf:
        fail("reconnect_max_s", "must be at least reconnect_min_s")
    if not config.nodes:
        fail("nodes", "no nodes to subscribe to")
    seen: set[tuple[str, str]] = set()
    for index, node in enumerate(config.nodes):
        where = f"nodes[{index}]"
        if not node.metric:
            fail(f"{where}.metric", "must not be empty")
        if node.key in seen:
            fail(f"{where}.metric", f"{node.metric!r} of device {node.device!r} appears twice")
        seen.add(node.key)
        if (node.node_id is None) == (node.browse_path is None):
            fail(where, "give exactly one of node_id and browse_path")
        if node.node_id is not None:
            try:
                ua.NodeId.from_string(node.node_id)
            except (ValueError, ua.UaStringParsingError) as error:
                fail(f"{where}.node_id", f"{node.node_id!r} is not a NodeId ({error})")
        if node.browse_path is not None:
            try:
                parse_browse_path(node.browse_path)
            except ValueError as error:
                fail(f"{where}.browse_path", str(error))
        if not 0 <= node.sampling_ms < math.inf:
            fail(f"{where}.sampling_ms", "must be a number, 0 or more")
        if node.deadband is not None and not 0 <= node.deadband < math.inf:
            fail(f"{where}.deadband", "must be a number, 0 or more")


# --- from gateway.toml ---------------------------------------------------------------------

# TOML key → (field, type)
_SERVER_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "endpoint": ("endpoint", str),
    "name": ("name", str),
    "security_mode": ("security_mode", str),
    "security_policy": ("security_policy", str),
    "certificate": ("certificate", str),
    "private_key": ("private_key", str),
    "server_certificate": ("server_certificate", str),
    "username": ("username", str),
    "password": ("password", str),
    "application_uri": ("application_uri", str),
    "publishing_interval_ms": ("publishing_ms", (int, float)),
    "timeout_seconds": ("timeout_s", (int, float)),
    "keepalive_seconds": ("keepalive_s", (int, float)),
    "reconnect_min_seconds": ("reconnect_min_s", (int, float)),
    "reconnect_max_seconds": ("reconnect_max_s", (int, float)),
}
_NODE_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "metric": ("metric", str),
    "device": ("device", str),
    "node_id": ("node_id", str),
    "browse_path": ("browse_path", str),
    "sampling_interval_ms": ("sampling_ms", (int, float)),
    "deadband": ("deadband", (int, float)),
    "writable": ("writable", bool),
}
_PATHS = {"certificate", "private_key", "server_certificate"}


def _fields(
    table: Mapping[str, Any],
    keys: Mapping[str, tuple[str, type | tuple[type, ...]]],
    where: str,
    ignore: set[str],
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in table.items():
        if key in ignore:
            continue
        if key not in keys:
            raise OpcUaConfigError(f"{where}.{key}: unknown key")
        field, kind = keys[key]
        numeric = kind == (int, float)
        if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
            raise OpcUaConfigError(f"{where}.{key}: {value!r} is not a {_kind_name(kind)}")
        fields[field] = float(cast(float, value)) if numeric else value
    return fields


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "number"
    return {"str": "string", "bool": "boolean"}.get(kind.__name__, kind.__name__)


def server_from_mapping(
    table: Mapping[str, Any], where: str = "opcua.servers[0]", base: Path | None = None
) -> OpcUaServerConfig:
    """One ``[[opcua.servers]]`` table; relative certificate paths are taken from ``base``
    (the folder of gateway.toml)."""
    fields = _fields(table, _SERVER_KEYS, where, {"nodes", "device"})
    if "endpoint" not in fields:
        raise OpcUaConfigError(f"{where}.endpoint: missing")
    for key in _PATHS & fields.keys():
        path = Path(fields[key])
        fields[key] = path if base is None or path.is_absolute() else base / path
    if "security_mode" in fields:
        try:
            fields["security_mode"] = SecurityMode(fields["security_mode"])
        except ValueError:
            choices = ", ".join(mode.value for mode in SecurityMode)
            raise OpcUaConfigError(
                f"{where}.security_mode: {fields['security_mode']!r} is not one of {choices}"
            ) from None
    default_device = table.get("device", "")
    if not isinstance(default_device, str):
        raise OpcUaConfigError(f"{where}.device: {default_device!r} is not a string")
    raw_nodes = table.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise OpcUaConfigError(f"{where}.nodes: not an array of tables")
    nodes = []
    for index, raw in enumerate(raw_nodes):
        node_where = f"{where}.nodes[{index}]"
        if not isinstance(raw, Mapping):
            raise OpcUaConfigError(f"{node_where}: not a table")
        node_fields = _fields(raw, _NODE_KEYS, node_where, set())
        node_fields.setdefault("device", default_device)
        if "metric" not in node_fields:
            raise OpcUaConfigError(f"{node_where}.metric: missing")
        nodes.append(NodeConfig(**node_fields))
    try:
        return OpcUaServerConfig(nodes=tuple(nodes), **fields)
    except OpcUaConfigError as error:
        raise OpcUaConfigError(f"{where}.{error}") from None


def servers_from_toml(
    document: Mapping[str, Any], base: Path | None = None
) -> list[OpcUaServerConfig]:
    """The ``[[opcua.servers]]`` of a parsed gateway.toml (none if it has no ``opcua``)."""
    section = document.get("opcua", {})
    if not isinstance(section, Mapping):
        raise OpcUaConfigError("opcua: not a table")
    servers = section.get("servers", [])
    if not isinstance(servers, list):
        raise OpcUaConfigError("opcua.servers: not an array of tables")
    configs = []
    for index, table in enumerate(servers):
        where = f"opcua.servers[{index}]"
        if not isinstance(table, Mapping):
            raise OpcUaConfigError(f"{where}: not a table")
        configs.append(server_from_mapping(table, where, base))
    names = [config.name for config in configs]
    for name in names:
        if names.count(name) > 1:
            raise OpcUaConfigError(f"opcua.servers: two servers are named {name!r}")
    return configs

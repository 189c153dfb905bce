"""``gateway.toml``: the edge gateway's configuration, its JSON schema, and errors that name
the key and the line.

The structure — every section, key and type, unknown keys refused — is pydantic models, so
that the JSON schema (``plantwire gateway --schema``; editors validate ``gateway.toml``
against it) and the checks are one thing. What needs more than a type (a Modbus point's
table, type and address together; an OPC UA node id) is checked by the connectors' own
parsers afterwards (`plantwire.edge.modbus.parse_devices`), whose errors name the device and
point. Either way a bad configuration stops the gateway before it connects to anything.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plantwire.edge.modbus import ModbusDevice, parse_devices
from plantwire.edge.modbus_map import MapError
from plantwire.edge.opcua_config import OpcUaConfigError, OpcUaServerConfig, servers_from_toml
from plantwire.telemetry.sparkplug.topics import MessageType, Topic, TopicError

__all__ = ["ConfigError", "GatewayConfig", "json_schema", "load_config"]

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Section):
    """The gateway as a Sparkplug B edge node: ``group``/``edge_node`` is its name on the
    platform (a device of kind ``sparkplug-node``)."""

    group: str = Field(description="Sparkplug group id, e.g. Plant1")
    edge_node: str = Field(description="Sparkplug edge node id, e.g. Gateway1")
    data_dir: Path = Field(
        Path("gateway-data"),
        description="where the buffer and the bdSeq live (relative: to the config file)",
    )
    health_interval: Seconds = Field(10.0, description="seconds between health reports")


class UplinkSection(_Section):
    """The MQTT broker the edge node publishes to (the platform's)."""

    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password: str | None = Field(None, description="or password_file")
    password_file: Path | None = Field(None, description="a file holding the password")
    client_id: str | None = None
    primary_host: str | None = Field(
        None, description="host application id whose STATE births wait for, e.g. plantwire"
    )
    tls: bool = False
    ca_file: Path | None = Field(None, description="CA to verify the broker with (TLS)")
    qos: Literal[0, 1] = 1
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30


class BufferSection(_Section):
    """The store-and-forward buffer's bounds."""

    max_bytes: Annotated[int, Field(ge=65_536)] = 1 << 30
    max_age: Seconds = 7 * 86_400.0


class ModbusPointSchema(_Section):
    name: str
    table: Literal["coil", "discrete_input", "holding_register", "input_register"]
    address: Annotated[int, Field(ge=0, le=65535)]
    type: Literal[
        "bool",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
        "string",
    ]
    unit: Annotated[int, Field(ge=0, le=255)] | None = None
    length: Annotated[int, Field(ge=1)] | None = None
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    scale: float | None = None
    offset: float | None = None
    poll_interval: Seconds | None = None
    writable: bool = False


class ModbusDeviceSchema(_Section):
    name: str
    host: str | None = None
    port: Port | None = None
    serial_port: str | None = None
    baudrate: int | None = None
    bytesize: Literal[7, 8] | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    timeout: Seconds | None = None
    retries: Annotated[int, Field(ge=0)] | None = None
    reconnect_delay: Seconds | None = None
    reconnect_delay_max: Seconds | None = None
    write_multiple: bool | None = None
    unit: Annotated[int, Field(ge=0, le=255)] | None = None
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    poll_interval: Seconds | None = None
    max_registers: Annotated[int, Field(ge=1, le=125)] | None = None
    max_bits: Annotated[int, Field(ge=1, le=2000)] | None = None
    max_gap_registers: Annotated[int, Field(ge=0)] | None = None
    max_gap_bits: Annotated[int, Field(ge=0)] | None = None
    points: list[ModbusPointSchema] = []


class ModbusSection(_Section):
    devices: list[ModbusDeviceSchema] = []


class OpcUaNodeSchema(_Section):
    metric: str
    device: str | None = Field(None, description="default: the server's device")
    node_id: str | None = Field(None, description="e.g. ns=2;s=Press1.Temperature")
    browse_path: str | None = Field(None, description="e.g. 0:Objects/2:Plant/2:Press1/2:Temp")
    sampling_interval_ms: Annotated[float, Field(ge=0)] | None = None
    deadband: Annotated[float, Field(ge=0)] | None = Field(None, description="absolute")
    writable: bool = False


class OpcUaServerSchema(_Section):
    endpoint: str = Field(description="e.g. opc.tcp://10.0.0.5:4840")
    name: str | None = None
    device: str | None = Field(None, description="the Sparkplug device of nodes naming none")
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] | None = None
    security_policy: str | None = Field(None, description="e.g. Basic256Sha256")
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    username: str | None = None
    password: str | None = None
    application_uri: str | None = None
    publishing_interval_ms: Annotated[float, Field(gt=0)] | None = None
    timeout_seconds: Seconds | None = None
    keepalive_seconds: Seconds | None = None
    reconnect_min_seconds: Seconds | None = None
    reconnect_max_seconds: Seconds | None = None
    nodes: list[OpcUaNodeSchema] = []


class OpcUaSection(_Section):
    servers: list[OpcUaServerSchema] = []


class GatewayConfig(_Section):
    """The whole of ``gateway.toml``; :attr:`modbus_devices` are the Modbus devices as the
    connector takes them, checked."""

    node: NodeSection
    uplink: UplinkSection = UplinkSection()
    buffer: BufferSection = BufferSection()
    modbus: ModbusSection = ModbusSection()
    opcua: OpcUaSection = OpcUaSection()

    #: set by `load_config` from the same text (not part of the file's schema)
    modbus_devices: tuple[ModbusDevice, ...] = Field((), exclude=True)
    opcua_servers: tuple[OpcUaServerConfig, ...] = Field((), exclude=True)

    def password(self, base: Path) -> str | None:
        """The uplink's password: given, or read from ``password_file``."""
        if self.uplink.password_file is None:
            return self.uplink.password
        path = self.uplink.password_file
        path = path if path.is_absolute() else base / path
        return path.read_text(encoding="utf-8").strip()


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and, where it can, the
    line, for each problem."""


def json_schema() -> dict[str, Any]:
    """The JSON schema of ``gateway.toml`` (as TOML parses to JSON's model)."""
    schema = GatewayConfig.model_json_schema(mode="validation")
    schema["properties"].pop("modbus_devices", None)
    schema["properties"].pop("opcua_servers", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "plantwire gateway.toml"
    return schema


def load_config(path: Path) -> GatewayConfig:
    """Reads and checks ``gateway.toml``; ConfigError naming every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None
    return parse_config(text, str(path), path.resolve().parent)


def parse_config(
    text: str, source: str = "gateway.toml", base: Path | None = None
) -> GatewayConfig:
    """Checks a gateway.toml's text; ``base`` is the folder relative certificate paths are
    taken from (the file's)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not TOML: {error}") from None
    try:
        config = GatewayConfig.model_validate(_without_derived(raw))
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            key = _key_path(item["loc"])
            line = _line_of(text, item["loc"])
            where = f"{source}:{line}" if line is not None else source
            problems.append(f"{where}: {key}: {item['msg']}")
        raise ConfigError("\n".join(problems)) from None
    try:
        Topic(MessageType.NBIRTH, config.node.group, config.node.edge_node)
    except TopicError as error:
        raise ConfigError(f"{source}: node: {error.detail}") from None
    try:
        devices = parse_devices(raw.get("modbus", {}))
    except MapError as error:
        raise ConfigError(f"{source}: modbus: {error}") from None
    try:
        servers = servers_from_toml(raw, base)
    except OpcUaConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    metrics = Counter(
        [(device.name, point.name) for device in devices for point in device.register_map.points]
        + [node.key for server in servers for node in server.nodes]
    )
    twice = sorted(f"{device}/{metric}" for (device, metric), n in metrics.items() if n > 1)
    if twice:
        raise ConfigError(f"{source}: metrics configured twice: {', '.join(twice)}")
    return config.model_copy(
        update={"modbus_devices": tuple(devices), "opcua_servers": tuple(servers)}
    )


def _without_derived(raw: dict[str, Any]) -> dict[str, Any]:
    derived = {"modbus_devices", "opcua_servers"} & raw.keys()
    return {**raw, **dict.fromkeys(derived, "not a key of gateway.toml")}  # refused, named


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\- ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line (1-based) of what a validation error names, found by walking the table
    headers: ``("modbus", "devices", 1, "points", 0, "type")`` is the ``type =`` line after
    the first ``[[modbus.devices.points]]`` after the second ``[[modbus.devices]]``; a key
    that is missing is shown at its table's header. None when the layout is not one this
    follows (inline tables, dotted keys)."""
    path: list[str] = []
    steps: list[tuple[str, int]] = []  # array tables to find: (name, occurrence)
    for index, item in enumerate(loc):
        if isinstance(item, int):
            continue
        path.append(item)
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(following, int):
            steps.append((".".join(path), following))
    if isinstance(loc[-1], int) if loc else False:
        key, table = None, steps[-1][0]  # the whole table is wrong (a key missing)
    else:
        key, table = (path[-1], ".".join(path[:-1])) if path else (None, "")
    matched, seen = 0, 0
    inside = not steps and table == ""
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = ".".join(part.strip() for part in header.group(1).split("."))
            if inside:
                return header_line  # the table ended without the key
            if matched < len(steps) and name == steps[matched][0]:
                if seen == steps[matched][1]:
                    matched, seen = matched + 1, 0
                else:
                    seen += 1
                    continue
            if matched == len(steps) and name == table:
                inside, header_line = True, number
                if key is None:
                    return number
            continue
        found = _KEY.match(line)
        if inside and key is not None and found and found.group(1) == key:
            return number
    return header_line


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"

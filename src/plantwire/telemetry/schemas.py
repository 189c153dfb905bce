"""JSON shapes of the device API (pydantic models; they also make its OpenAPI document)."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from plantwire.security.schemas import Id
from plantwire.telemetry.accounts import check_sparkplug_id

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_METRICS",
    "MAX_METRIC_NAME",
    "MAX_UNIT",
    "DataType",
    "DeviceCreated",
    "DeviceIn",
    "DeviceKind",
    "DeviceOut",
    "DevicePage",
    "DevicePatch",
    "MetricSpec",
    "MqttCredentials",
    "RetentionDays",
    "TenantRetentionIn",
    "TenantRetentionOut",
    "Topics",
    "sparkplug_node_ids",
]

MAX_METRICS = 1000  # per device
MAX_METRIC_NAME, MAX_UNIT, MAX_DESCRIPTION = 200, 32, 500  # characters
MAX_ATTRIBUTES_BYTES = 16 * 1024

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
DeviceName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=_PRINTABLE)
]
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME, pattern=_PRINTABLE)
]
# An ISA-95 place as a path, "site/area/line/machine" or any leading part of it: levels of
# printable characters without "/", at most 8 of them (enterprise … cell, with room).
Place = Annotated[
    str,
    StringConstraints(max_length=400, pattern=r"^([^\x00-\x1f\x7f/]+(/[^\x00-\x1f\x7f/]+){0,7})?$"),
]

#: Days telemetry is kept, in whole UTC days (as the platform's telemetry_retention_days); the
#: most a hundred years, which keeps a device's points under a tenant that drops its others.
#: Strict: a JSON integer, since ``true`` or ``"1"`` read as 1 would delete nearly everything.
RetentionDays = Annotated[int, Field(ge=1, le=36_500, strict=True)]


class DataType(enum.StrEnum):
    """The type a metric's values have; the store keeps each value in its type."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"
    BYTES = "bytes"
    DATETIME = "datetime"
    ARRAY = "array"


class DeviceKind(enum.StrEnum):
    """How a device talks: JSON over MQTT, or as a Sparkplug B edge node; a Sparkplug
    device is made by the platform when its edge node first sends its DBIRTH."""

    JSON = "json"
    SPARKPLUG_NODE = "sparkplug-node"
    SPARKPLUG_DEVICE = "sparkplug-device"


def sparkplug_node_ids(name: str) -> tuple[str, str]:
    """(group id, edge node id) of an edge node's device name ``<group>/<edge_node>``;
    ValueError says what is wrong with it."""
    parts = name.split("/")
    if len(parts) != 2:
        raise ValueError("a Sparkplug edge node is named '<group id>/<edge node id>'")
    check_sparkplug_id("Sparkplug group id", parts[0])
    check_sparkplug_id("edge node id", parts[1])
    return parts[0], parts[1]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricSpec(_In):
    name: MetricName
    data_type: DataType = DataType.FLOAT
    unit: Annotated[str, StringConstraints(max_length=MAX_UNIT, pattern=r"^[^\x00-\x1f\x7f]*$")] = (
        ""
    )
    description: Annotated[
        str, StringConstraints(max_length=MAX_DESCRIPTION, pattern=r"^[^\x00-\x1f\x7f]*$")
    ] = ""
    writable: bool = Field(False, description="Commands may write this metric.")


def _unique_metrics(metrics: list[MetricSpec] | None) -> list[MetricSpec] | None:
    if metrics is not None:
        names = [metric.name for metric in metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
    return metrics


def _small_attributes(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    if attributes is not None:
        try:
            text = json.dumps(attributes, allow_nan=False)
        except ValueError as error:
            raise ValueError("attributes must be plain JSON (no NaN or infinity)") from error
        if len(text) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes must stay under {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    return attributes


class DeviceIn(_In):
    name: DeviceName
    kind: Literal["json", "sparkplug-node"] = Field(
        "json",
        description="How the device talks: 'json' (JSON over MQTT) or 'sparkplug-node' "
        "(a Sparkplug B edge node named '<group id>/<edge node id>').",
    )
    place: Place = Field("", description="ISA-95 place, e.g. 'Plant1/Assembly/Line3/Press1'.")
    attributes: dict[str, Any] = Field(default_factory=dict)
    metrics: Annotated[list[MetricSpec], Field(max_length=MAX_METRICS)] = Field(
        default_factory=list
    )
    tenant: Id | None = Field(None, description="Platform admins: the tenant it belongs to.")
    retention_days: RetentionDays | None = Field(
        None,
        description="Days its telemetry is kept, whatever its tenant's retention; null: the "
        "tenant's. Needs tenant:update.",
    )

    _metrics_unique = field_validator("metrics")(_unique_metrics)
    _attributes_small = field_validator("attributes")(_small_attributes)

    @model_validator(mode="after")
    def _sparkplug_name(self) -> DeviceIn:
        if self.kind == "sparkplug-node":
            sparkplug_node_ids(self.name)
        return self


class DevicePatch(_In):
    name: DeviceName | None = None
    place: Place | None = None
    attributes: dict[str, Any] | None = Field(None, description="Replaces all attributes.")
    metrics: Annotated[list[MetricSpec], Field(max_length=MAX_METRICS)] | None = Field(
        None, description="Replaces all metric metadata."
    )
    retention_days: RetentionDays | None = Field(
        None,
        description="Days its telemetry is kept, whatever its tenant's retention; null: back "
        "to the tenant's; absent: unchanged. Needs tenant:update.",
    )

    _metrics_unique = field_validator("metrics")(_unique_metrics)
    _attributes_small = field_validator("attributes")(_small_attributes)


class Topics(BaseModel):
    telemetry: str = Field(
        description="MQTT topic the device publishes its data on (Sparkplug: its NDATA or "
        "DDATA topic; its edge node also publishes the births and deaths beside it)."
    )
    commands: str = Field(
        description="MQTT topic the device subscribes to for commands (Sparkplug: NCMD/DCMD)."
    )


class SparkplugStatus(BaseModel):
    """What the Sparkplug host application knows of an edge node or Sparkplug device, as
    committed with the stored data. ``bd_seq``, ``rebirths`` and ``seq_gaps`` are the edge
    node's (Sparkplug numbers messages and asks for rebirths per node)."""

    online: bool = Field(description="Born and not dead since (a device: its node too).")
    birth: datetime | None = Field(description="When the stream took its last NBIRTH/DBIRTH.")
    last_death: datetime | None = Field(
        description="When it last went offline (NDEATH, DDEATH, a new NBIRTH, a bad birth)."
    )
    bd_seq: int | None = Field(description="The bdSeq of the node's NBIRTH.")
    rebirths: int = Field(description="Rebirth requests sent to the node.")
    seq_gaps: int = Field(description="The node's messages whose seq did not follow.")


class DeviceOut(BaseModel):
    id: str
    tenant: str
    name: str
    kind: str
    parent: str | None = Field(
        None, description="A Sparkplug device's edge node (its device id); null otherwise."
    )
    place: str
    attributes: dict[str, Any]
    metrics: list[MetricSpec]
    topics: Topics
    retention_days: int | None = Field(
        description="Days its telemetry is kept, overriding its tenant's; null: the tenant's."
    )
    created_at: datetime
    updated_at: datetime
    sparkplug: SparkplugStatus | None = Field(
        None,
        description="Sparkplug status of an edge node or Sparkplug device, in GET "
        "/api/v1/devices/{id} only; null otherwise.",
    )


class MqttCredentials(BaseModel):
    username: str
    password: str = Field(description="Shown this once; only its hashes are stored.")


class DeviceCreated(DeviceOut):
    mqtt: MqttCredentials


class DevicePage(BaseModel):
    items: list[DeviceOut]
    limit: int
    offset: int


class TenantRetentionIn(_In):
    days: RetentionDays | None = Field(
        description="Days the tenant's telemetry is kept; null: the platform's default."
    )


class TenantRetentionOut(BaseModel):
    tenant: str
    days: int | None = Field(description="The tenant's own setting; null: the platform's.")
    platform_days: int | None = Field(
        description="The platform's default (telemetry_retention_days); null: keep all."
    )
    effective_days: int | None = Field(
        description="What applies to devices without a setting of their own; null: keep all."
    )

"""Registry tables of the telemetry pillar: devices and their metrics, commands, and the
tenants' telemetry retention (SQLAlchemy 2 declarative; migrations in
``plantwire/migrations``, kept equal to these by a test)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plantwire.db import Base
from plantwire.security.tables import UTCDateTime, new_id, utcnow

__all__ = ["Device", "DeviceCommand", "DeviceMetric", "TenantRetention"]


class Device(Base):
    """A machine or sensor of a tenant that sends telemetry. Its id is also its MQTT
    username and the device level of its topics; its name is unique within the tenant only
    (two tenants may both have a ``press-1``)."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name_key", name="uq_devices_tenant_name"),
        Index("ix_devices_tenant_place", "tenant_id", "place"),
        Index("ix_devices_parent", "parent_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(800))  # security.tables.name_key(name)
    kind: Mapped[str] = mapped_column(String(32))  # schemas.DeviceKind
    # A Sparkplug device's edge node (no foreign key, see migration 0005: deleting an edge
    # node through the API deletes its devices).
    parent_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # ISA-95 place: "site/area/line/machine" (any leading part of it), "" if not placed.
    place: Mapped[str] = mapped_column(String(400), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The MQTT secret: SHA-256 for the platform's own checks, and a bcrypt hash (low cost:
    # the secret has 256 random bits, so slowness adds nothing) for the broker's config.
    # Both "" for a Sparkplug device, which talks through its edge node's connection.
    secret_sha256: Mapped[str] = mapped_column(String(64))
    secret_bcrypt: Mapped[str] = mapped_column(String(60))
    # Days its telemetry is kept, overriding its tenant's retention; None: the tenant's.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    metrics: Mapped[list[DeviceMetric]] = relationship(
        cascade="all, delete-orphan",
        order_by="DeviceMetric.name",
        lazy="selectin",
        passive_deletes=True,
    )


class DeviceMetric(Base):
    """What a device reports under one metric name: unit, data type, description, and
    whether commands may write it."""

    __tablename__ = "device_metrics"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    unit: Mapped[str] = mapped_column(String(32), default="")
    data_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(500), default="")
    writable: Mapped[bool] = mapped_column(Boolean, default=False)


class DeviceCommand(Base):
    """A write sent to a device's metric, and its outcome: ``sent``, then ``confirmed`` once
    the device reports the metric at the commanded value (the read-back), or ``failed``
    when it could not be sent. A command still ``sent`` after its deadline is reported
    as ``unconfirmed``."""

    __tablename__ = "device_commands"
    __table_args__ = (Index("ix_device_commands_device_sent", "device_id", "sent_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(200))
    value: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TenantRetention(Base):
    """How many days a tenant's telemetry is kept, overriding the platform's
    ``telemetry_retention_days``; no row: the platform's. Devices may override it in turn
    (``Device.retention_days``). Goes with its tenant."""

    __tablename__ = "tenant_retention"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""How long telemetry is kept: the platform's default (``telemetry_retention_days``), a
tenant's own setting, a device's own setting. The most specific one wins: a device's setting
applies to its points whether it is shorter or longer than its tenant's, and a tenant's to its
other devices whatever the platform's. The store's upkeep applies the plans read here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from plantwire.security.tables import Tenant
from plantwire.telemetry.tables import Device, TenantRetention

__all__ = ["RetentionPlan", "retention_plans", "tenant_days"]


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What retention drops of one tenant: its points older than ``days`` (None: keep them),
    but for the devices in ``devices``, whose points go after their own number of days."""

    tenant: str
    days: int | None
    devices: Mapping[str, int] = field(default_factory=dict)


def tenant_days(session: Session, tenant_id: str) -> int | None:
    """The tenant's own setting; None: it follows the platform's."""
    return session.scalar(
        select(TenantRetention.days).where(TenantRetention.tenant_id == tenant_id)
    )


def retention_plans(
    sessions: sessionmaker[Session], platform_days: int | None
) -> list[RetentionPlan]:
    """A plan for every tenant with something to drop: all tenants when the platform has a
    default, else those with a setting of their own or with devices that have one."""
    with sessions() as session:
        own = dict(session.execute(select(TenantRetention.tenant_id, TenantRetention.days)).all())
        devices: dict[str, dict[str, int]] = {}
        for tenant_id, device_id, days in session.execute(
            select(Device.tenant_id, Device.id, Device.retention_days).where(
                Device.retention_days.is_not(None)
            )
        ):
            if days is not None:  # always, by the query
                devices.setdefault(tenant_id, {})[device_id] = days
        tenants = (
            list(session.scalars(select(Tenant.id).order_by(Tenant.id)))
            if platform_days is not None
            else sorted(own.keys() | devices.keys())
        )
    return [
        RetentionPlan(tenant, own.get(tenant, platform_days), devices.get(tenant, {}))
        for tenant in tenants
    ]

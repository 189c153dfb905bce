"""A tenant's telemetry retention: ``GET`` and ``PUT /api/v1/tenants/{tenant_id}/telemetry/
retention``. Devices carry their own (``retention_days`` in the device API); the store's
upkeep applies both (``telemetry.retention``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import IntegrityError

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import READ_ERRORS, WRITE_ERRORS, audited
from plantwire.security.routes.tenants import reachable_tenant
from plantwire.security.tables import utcnow
from plantwire.telemetry.retention import tenant_days
from plantwire.telemetry.schemas import TenantRetentionIn, TenantRetentionOut
from plantwire.telemetry.tables import TenantRetention

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], route_class=AuthenticateFirst)


def _out(platform: Platform, tenant_id: str, days: int | None) -> TenantRetentionOut:
    default = platform.settings.telemetry_retention_days
    return TenantRetentionOut(
        tenant=tenant_id,
        days=days,
        platform_days=default,
        effective_days=days if days is not None else default,
    )


@router.get(
    "/{tenant_id}/telemetry/retention",
    response_model=TenantRetentionOut,
    responses=READ_ERRORS,
    summary="How long the tenant's telemetry is kept",
)
def get_retention(
    tenant_id: str,
    principal: Principal = Depends(require(Permission.TENANT_READ)),
    platform: Platform = Depends(get_platform),
) -> TenantRetentionOut:
    with platform.sessions() as session:
        reachable_tenant(session, principal, tenant_id)
        return _out(platform, tenant_id, tenant_days(session, tenant_id))


@router.put(
    "/{tenant_id}/telemetry/retention",
    response_model=TenantRetentionOut,
    responses=WRITE_ERRORS,
    summary="Set how long the tenant's telemetry is kept (null: the platform's default)",
)
def put_retention(
    tenant_id: str,
    body: TenantRetentionIn,
    request: Request,
    principal: Principal = Depends(require(Permission.TENANT_UPDATE)),
    platform: Platform = Depends(get_platform),
) -> TenantRetentionOut:
    try:
        _set_days(platform, principal, request, tenant_id, body.days)
    except IntegrityError:  # set meanwhile by another request (or the tenant went away)
        _set_days(platform, principal, request, tenant_id, body.days)
    return _out(platform, tenant_id, body.days)


def _set_days(
    platform: Platform, principal: Principal, request: Request, tenant_id: str, days: int | None
) -> None:
    with transaction(platform.sessions) as session:
        reachable_tenant(session, principal, tenant_id)
        row = session.get(TenantRetention, tenant_id)
        old = row.days if row is not None else None
        if days == old:
            return
        if row is None:
            session.add(TenantRetention(tenant_id=tenant_id, days=days))
        elif days is None:
            session.delete(row)
        else:
            row.days, row.updated_at = days, utcnow()
        detail = {"telemetry_retention_days": [old, days]}
        audited(
            session, request, principal, "tenant.retention", "tenant", tenant_id, tenant_id, detail
        )

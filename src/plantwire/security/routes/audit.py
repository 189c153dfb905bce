"""Reading the audit log: tenant admins see their tenant's entries, platform admins all."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from sqlalchemy import select

from plantwire.platform import Platform, get_platform
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import READ_ERRORS, Limit, TenantFilter, invalid
from plantwire.security.schemas import AuditPage
from plantwire.security.tables import AuditEntry
from plantwire.security.views import audit_out

router = APIRouter(prefix="/audit", tags=["audit"], route_class=AuthenticateFirst)

_Filter = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]


@router.get("", response_model=AuditPage, responses=READ_ERRORS, summary="Read the audit log")
def read_audit(
    tenant: TenantFilter = None,
    action: _Filter = None,
    actor: _Filter = None,
    target_type: _Filter = None,
    target_id: _Filter = None,
    outcome: Annotated[str | None, Query(pattern="^(success|denied|failure)$")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 100,
    principal: Principal = Depends(require(Permission.AUDIT_READ)),
    platform: Platform = Depends(get_platform),
) -> AuditPage:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if not principal.is_platform_admin:
        query = query.where(AuditEntry.tenant_id == principal.tenant_id)
    elif tenant is not None:
        query = query.where(AuditEntry.tenant_id == tenant)
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.actor, actor),
        (AuditEntry.target_type, target_type),
        (AuditEntry.target_id, target_id),
        (AuditEntry.outcome, outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    try:  # a date whose UTC form falls outside years 1..9999 cannot be compared
        if since is not None:
            query = query.where(AuditEntry.at >= since.astimezone(UTC))
        if until is not None:
            query = query.where(AuditEntry.at < until.astimezone(UTC))
    except OverflowError as error:
        raise invalid("since/until must fall within the years 1 to 9999 in UTC.") from error
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    with platform.sessions() as session:
        items = [audit_out(e) for e in session.scalars(query)]
    next_before = items[-1].id if len(items) == limit else None
    return AuditPage(items=items, next_before_id=next_before)

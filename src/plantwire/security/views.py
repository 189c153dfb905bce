"""Rows to API shapes."""

from __future__ import annotations

from plantwire.security.roles import Role
from plantwire.security.schemas import AuditEntryOut, TenantOut, TokenOut, UserOut
from plantwire.security.tables import ApiToken, AuditEntry, Tenant, User

__all__ = ["audit_out", "tenant_out", "token_out", "user_out"]


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        tenant=user.tenant_id,
        disabled=user.disabled,
        created_at=user.created_at,
    )


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        kind=token.kind,
        role=Role(token.role),
        user_id=token.user_id,
        tenant=token.tenant_id,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


def audit_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        at=entry.at,
        tenant=entry.tenant_id,
        actor=entry.actor,
        actor_id=entry.actor_id,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        source=entry.source,
        outcome=entry.outcome,
        detail=entry.detail,
    )

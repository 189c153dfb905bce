"""Who is calling: the authenticated identity every request handler receives."""

from __future__ import annotations

from dataclasses import dataclass

from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``role`` is the effective role: the lower of the user's role
    and the role of the token it presented. ``tenant_id`` is None for platform admins."""

    user_id: str
    username: str
    tenant_id: str | None
    role: Role
    token_id: str
    via: str  # "bearer" or "cookie"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    def reaches(self, tenant_id: str | None) -> bool:
        """Whether a resource of ``tenant_id`` is within this caller's scope."""
        return self.is_platform_admin or (tenant_id is not None and tenant_id == self.tenant_id)

"""Roles and the permission matrix: the one table that says who may do what.

Permissions say *what* a role may do; tenant scoping (a caller only ever reaches its own
tenant's resources, platform admins reach all) is enforced separately, for every permission."""

from __future__ import annotations

import enum

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role"]


class Role(enum.StrEnum):
    """User and token roles, from most to least powerful."""

    PLATFORM_ADMIN = "platform-admin"
    TENANT_ADMIN = "tenant-admin"
    ENGINEER = "engineer"
    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        """Higher is more powerful; a token's role may not out-rank its creator's."""
        return _RANK[self]

    def at_most(self, other: Role) -> bool:
        return self.rank <= other.rank

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    @property
    def is_platform(self) -> bool:
        """Platform admins belong to no tenant; every other role belongs to exactly one."""
        return self is Role.PLATFORM_ADMIN


_RANK = {
    Role.VIEWER: 1,
    Role.OPERATOR: 2,
    Role.ENGINEER: 3,
    Role.TENANT_ADMIN: 4,
    Role.PLATFORM_ADMIN: 5,
}


class Permission(enum.StrEnum):
    """Actions a caller may be allowed. Pillars add theirs here, in the same commit as the API."""

    TENANT_CREATE = "tenant:create"
    TENANT_READ = "tenant:read"
    TENANT_UPDATE = "tenant:update"
    TENANT_DELETE = "tenant:delete"
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    TOKEN_OWN = "token:own"  # create, list and revoke one's own tokens
    TOKEN_ADMIN = "token:admin"  # list and revoke every token of the tenant
    AUDIT_READ = "audit:read"
    PREFIX_READ = "prefix:read"  # see the identifier prefixes the tenant owns
    PREFIX_HOME = "prefix:home"  # home a prefix on the platform's node for a tenant
    HANDLE_ADMIN = "handle:admin"  # administer the tenant's handles through the Handle API
    DEVICE_READ = "device:read"  # see the tenant's devices, their metric metadata and telemetry
    DEVICE_WRITE = "device:write"  # create, change and delete devices; rotate their secrets
    DEVICE_OPERATE = "device:operate"  # send commands to devices (writable metrics)


_P = Permission
_ALL = frozenset(Permission)
_TENANT_ADMIN = frozenset(
    {_P.TENANT_READ, _P.TENANT_UPDATE, _P.USER_READ, _P.USER_WRITE}
    | {_P.TOKEN_OWN, _P.TOKEN_ADMIN, _P.AUDIT_READ, _P.PREFIX_READ, _P.HANDLE_ADMIN}
    | {_P.DEVICE_READ, _P.DEVICE_WRITE, _P.DEVICE_OPERATE}
)
_MEMBER = frozenset({_P.TENANT_READ, _P.TOKEN_OWN, _P.PREFIX_READ, _P.DEVICE_READ})

#: The permission matrix (docs/security.md renders this same table; a test keeps them equal).
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PLATFORM_ADMIN: _ALL,
    Role.TENANT_ADMIN: _TENANT_ADMIN,
    Role.ENGINEER: _MEMBER | {_P.USER_READ, _P.DEVICE_WRITE, _P.DEVICE_OPERATE},
    Role.OPERATOR: _MEMBER | {_P.DEVICE_OPERATE},
    Role.VIEWER: _MEMBER,
}

"""Tenants, users, roles, tokens, sessions and the audit log: the security core of every pillar."""

from plantwire.security.principal import Principal
from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

__all__ = ["ROLE_PERMISSIONS", "Permission", "Principal", "Role"]

"""``/admin/roles``: what each role may do, read from the permission matrix the API enforces
(``plantwire.security.roles``), one row per permission."""

from __future__ import annotations

from nicegui import ui

from plantwire.console.frame import Console, console_page
from plantwire.console.pages.admin_frame import admin_tabs
from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

__all__ = ["PERMISSION_WORDS", "roles"]

#: Each permission in words, for people deciding whom to give which role.
PERMISSION_WORDS: dict[Permission, str] = {
    Permission.TENANT_CREATE: "Create tenants",
    Permission.TENANT_READ: "See their tenant",
    Permission.TENANT_UPDATE: "Change their tenant (name, data retention)",
    Permission.TENANT_DELETE: "Delete tenants",
    Permission.USER_READ: "See the users",
    Permission.USER_WRITE: "Create, change, disable and delete users",
    Permission.TOKEN_OWN: "Make, list and revoke their own API tokens",
    Permission.TOKEN_ADMIN: "List and revoke everyone's API tokens",
    Permission.AUDIT_READ: "Read the audit log",
    Permission.PREFIX_READ: "See the identifier prefixes",
    Permission.PREFIX_HOME: "Home identifier prefixes on this platform's node",
    Permission.HANDLE_ADMIN: "Create, change and delete identifiers (handles)",
    Permission.DEVICE_READ: "See devices and their telemetry",
    Permission.DEVICE_WRITE: "Create, change and delete devices; rotate their credentials",
    Permission.DEVICE_OPERATE: "Send commands to devices",
}


@console_page("/admin/roles", title="Roles", permission=Permission.USER_READ)
async def roles(console: Console) -> None:
    admin_tabs(console, "/admin/roles")
    ui.label(
        "What each role may do. Everyone except platform admins reaches only their own "
        "tenant's data."
    ).classes("text-body2")
    columns: list[dict[str, object]] = [
        {"name": "permission", "label": "Permission", "field": "permission", "align": "left"},
        {"name": "code", "label": "Code", "field": "code", "align": "left"},
    ]
    columns += [
        {"name": role.value, "label": role.value, "field": role.value, "align": "center"}
        for role in Role
    ]
    rows = [
        {
            "permission": PERMISSION_WORDS.get(permission, permission.value),
            "code": permission.value,
            **{role.value: "✓" if permission in ROLE_PERMISSIONS[role] else "—" for role in Role},
        }
        for permission in Permission
    ]
    ui.table(columns=columns, rows=rows, row_key="code").classes("w-full").props(
        "flat bordered dense hide-pagination data-testid=roles :pagination='{rowsPerPage: 0}'"
    )

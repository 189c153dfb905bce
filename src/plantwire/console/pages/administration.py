"""``/admin``: the tenant's users (the Administration section grows from here: roles, tokens,
devices, audit)."""

from __future__ import annotations

from nicegui import ui

from plantwire.console.frame import Console, NavItem, console_page
from plantwire.security.roles import Permission

__all__ = ["administration"]


@console_page(
    "/admin",
    title="Administration",
    permission=Permission.USER_WRITE,
    nav=NavItem("Administration", "admin_panel_settings", order=90),
)
async def administration(console: Console) -> None:
    page = await console.api.get("/api/v1/users", limit=200)
    columns: list[dict[str, object]] = [
        {"name": "username", "label": "User", "field": "username", "sortable": True},
        {"name": "role", "label": "Role", "field": "role", "sortable": True},
        {"name": "tenant", "label": "Tenant", "field": "tenant"},
        {"name": "disabled", "label": "Disabled", "field": "disabled"},
    ]
    ui.label("Users").classes("text-h6")
    ui.table(columns=columns, rows=page["items"], row_key="id").classes("w-full").props(
        "flat bordered data-testid=users"
    )

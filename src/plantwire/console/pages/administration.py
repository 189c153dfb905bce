"""``/admin``: the tenant's users (platform admins: all users): create one, change a role,
disable or enable, delete. The other Administration pages are ``admin_*.py``; the API
decides every change (who may grant which role, tenant scoping, the last platform admin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.frame import Console, NavItem, console_page
from plantwire.console.pages.admin_frame import (
    CreateForm,
    admin_row,
    admin_tabs,
    confirm,
    grantable_roles,
    tenant_choices,
    tenant_select,
)
from plantwire.security.roles import Permission, Role
from plantwire.security.schemas import MIN_PASSWORD_LENGTH

__all__ = ["administration"]

MAX_USERS = 500


@console_page(
    "/admin",
    title="Administration",
    permission=Permission.USER_WRITE,
    nav=NavItem("Administration", "admin_panel_settings", order=90),
)
async def administration(console: Console) -> None:
    admin_tabs(console, "/admin")
    tenants = await tenant_choices(console)
    roles = grantable_roles(console)
    _new_user_form(console, roles, tenants, on_created=lambda: users.refresh())

    @ui.refreshable
    async def users() -> None:
        try:  # refreshed in a task of its own: a refusal is said here, not lost
            page = await console.api.get("/api/v1/users", limit=MAX_USERS)
        except ConsoleError as error:
            console.fail_here(error)
            return
        with ui.column().classes("w-full gap-0").props("data-testid=users"):
            for user in page["items"]:
                _user_row(console, user, roles, tenants, users.refresh)
            if not page["items"]:
                ui.label("No users.")
        if len(page["items"]) >= MAX_USERS:
            ui.label(f"The first {MAX_USERS} users are shown.").classes("text-caption")

    ui.label("Users").classes("text-h6")
    await users()


def _new_user_form(
    console: Console, roles: list[Role], tenants: dict[str, str], on_created: Callable[[], object]
) -> None:
    form = CreateForm(console, "user")

    async def create() -> None:
        body: dict[str, Any] = {
            "username": (username.value or "").strip(),
            "password": password.value or "",
            "role": role.value,
        }
        if tenant is not None and role.value != Role.PLATFORM_ADMIN:
            body["tenant"] = tenant.value
        created = await form.post("/api/v1/users", body)
        if created is None:
            return
        ui.notify(f"User {created['username']} created.", type="positive")
        username.set_value("")
        password.set_value("")
        on_created()

    with form.build("New user", "Create user", create):
        username = ui.input("Username").props(
            "outlined dense autocomplete=off data-testid=new-username"
        )
        password = ui.input("Password", password=True, password_toggle_button=True).props(
            f"outlined dense autocomplete=new-password data-testid=new-password "
            f"hint='At least {MIN_PASSWORD_LENGTH} characters'"
        )
        role = (
            ui.select({r.value: r.value for r in roles}, label="Role", value=Role.VIEWER.value)
            .props("outlined dense data-testid=new-role")
            .classes("min-w-[10rem]")
        )
        tenant = tenant_select(tenants, "new-tenant")


def _user_row(
    console: Console,
    user: dict[str, Any],
    roles: list[Role],
    tenants: dict[str, str],
    refresh: Callable[[], object],
) -> None:
    user_id, name = str(user["id"]), str(user["username"])
    base = f"/api/v1/users/{user_id}"
    myself = user_id == console.user.id
    manageable = not myself and Role(user["role"]) in roles

    async def change(body: dict[str, Any], done: str) -> None:
        try:
            await console.api.patch(base, json=body)
        except ConsoleError as error:
            console.fail(error)
        else:
            ui.notify(done, type="positive")
        refresh()

    async def delete() -> None:
        await console.api.delete(base)
        ui.notify(f"User {name} deleted.", type="positive")
        refresh()

    with admin_row(f"user-{name}", name):
        if manageable:
            chooser = ui.select(
                {r.value: r.value for r in roles},
                value=user["role"],
                label="Role",
                on_change=lambda e: change({"role": e.value}, f"{name} is now {e.value}."),
            ).props("dense borderless")
            chooser.classes("min-w-[10rem]")
            # set as a value, never parsed from a props string: a name is data, not markup
            chooser.props["aria-label"] = f"Role of {name}"
        else:
            ui.label(str(user["role"])).classes("min-w-[10rem]")
        if tenants:
            ui.label(tenants.get(str(user["tenant"]), "platform")).classes("min-w-[8rem]")
        disabled = bool(user["disabled"])
        ui.label("disabled" if disabled else "active").classes(
            "min-w-[5rem] " + ("text-negative" if disabled else "text-positive")
        )
        if myself:
            ui.label("(you)").classes("text-caption")
        elif manageable:
            ui.button(
                "Enable" if disabled else "Disable",
                on_click=lambda: change(
                    {"disabled": not disabled},
                    f"{name} {'enabled' if disabled else 'disabled: their sessions ended'}.",
                ),
            ).props("flat dense no-caps")
            ui.button(
                "Delete",
                on_click=lambda: confirm(
                    console, f"Delete the user {name}? This cannot be undone.", "Delete", delete
                ),
            ).props("flat dense no-caps color=negative")

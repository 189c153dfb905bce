"""``/admin/tokens``: API tokens for scripts and machines. A user lists, makes and revokes
their own; token admins also see and revoke the tenant's. A new token's secret is shown
once, in a dialog; the platform keeps only its hash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
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
    show_once,
)
from plantwire.security.roles import Permission, Role

__all__ = ["tokens"]

DEFAULT_DAYS = 90
MAX_TOKENS = 500


def when(moment: str | None) -> str:
    """An API timestamp as ``2026-12-01 00:10 UTC``."""
    if not moment:
        return "—"
    return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M UTC")


@console_page(
    "/admin/tokens",
    title="API tokens",
    permission=Permission.TOKEN_OWN,
    nav=NavItem("API tokens", "key", order=91),  # everyone's own tokens, not only admins'
)
async def tokens(console: Console) -> None:
    admin_tabs(console, "/admin/tokens")
    everyone = console.can(Permission.TOKEN_ADMIN)
    usernames: dict[str, str] = {}
    if everyone and console.can(Permission.USER_READ):
        users = await console.api.get("/api/v1/users", limit=MAX_TOKENS)
        usernames = {str(u["id"]): str(u["username"]) for u in users["items"]}
    roles = grantable_roles(console)
    if console.user.role is Role.PLATFORM_ADMIN:  # the API gives a platform admin's tokens its role
        roles = [Role.PLATFORM_ADMIN]

    form = CreateForm(console, "token")

    async def create() -> None:
        body = {"name": name.value or "", "role": role.value, "expires_in_days": days.value}
        created = await form.post("/api/v1/tokens", body)
        if created is None:
            return
        name.set_value("")
        show_once(
            f"API token “{created['name']}”",
            {"Token": str(created["token"])},
            {
                "Use it as": "Authorization: Bearer <token>",
                "Role": str(created["role"]),
                "Expires": when(created["expires_at"]),
            },
        )
        listing.refresh()

    with form.build("New API token", "Create token", create):
        name = ui.input("Name").props("outlined dense data-testid=token-name")
        role = (
            ui.select(
                {r.value: r.value for r in roles}, label="Role", value=console.user.role.value
            )
            .props("outlined dense data-testid=token-role")
            .classes("min-w-[10rem]")
        )
        days = ui.number(
            "Expires in (days)", value=DEFAULT_DAYS, min=1, precision=0, format="%d"
        ).props("outlined dense data-testid=token-days")

    @ui.refreshable
    async def listing() -> None:
        scope = "tenant" if everyone else "own"
        try:  # refreshed in a task of its own: a refusal is said here, not lost
            page = await console.api.get("/api/v1/tokens", scope=scope, limit=MAX_TOKENS)
        except ConsoleError as error:
            console.fail_here(error)
            return
        items = [t for t in page["items"] if t["kind"] == "api"]
        with ui.column().classes("w-full gap-0").props("data-testid=tokens"):
            for token in items:
                _token_row(console, token, usernames, listing.refresh)
            if not items:
                ui.label("No active API tokens.")

    ui.label("Active API tokens" + (" of the tenant" if everyone else "")).classes("text-h6")
    ui.label(
        "The platform does not record when a token was last used; revoke the ones you do not "
        "recognise."
    ).classes("text-caption")
    await listing()


def _token_row(
    console: Console,
    token: dict[str, Any],
    usernames: dict[str, str],
    refresh: Callable[[], object],
) -> None:
    name = str(token["name"])

    async def revoke() -> None:
        await console.api.delete(f"/api/v1/tokens/{token['id']}")
        ui.notify(f"Token {name} revoked.", type="positive")
        refresh()

    with admin_row(f"token-{token['id']}", name):
        ui.label(str(token["role"])).classes("min-w-[8rem]")
        if usernames:
            owner = usernames.get(str(token["user_id"]), str(token["user_id"]))
            ui.label(f"of {owner}").classes("min-w-[8rem]")
        ui.label(f"created {when(token['created_at'])}")
        ui.label(f"expires {when(token['expires_at'])}")
        ui.button(
            "Revoke",
            on_click=lambda: confirm(
                console,
                f"Revoke the token {name}? Scripts using it stop working at once.",
                "Revoke",
                revoke,
            ),
        ).props("flat dense no-caps color=negative")

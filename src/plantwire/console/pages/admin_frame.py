"""What the Administration pages share: their tabs, the confirmation of a destructive
action, and the dialog that shows a secret (token, device password) the one time the API
returns it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.frame import Console
from plantwire.security.roles import Permission, Role

__all__ = [
    "ADMIN_TABS",
    "AdminTab",
    "CreateForm",
    "admin_row",
    "admin_tabs",
    "confirm",
    "grantable_roles",
    "reported",
    "show_once",
    "tenant_choices",
    "tenant_select",
]


@dataclass(frozen=True, slots=True)
class AdminTab:
    label: str
    path: str
    permission: Permission


ADMIN_TABS = (
    AdminTab("Users", "/admin", Permission.USER_WRITE),
    AdminTab("Roles", "/admin/roles", Permission.USER_READ),
    AdminTab("API tokens", "/admin/tokens", Permission.TOKEN_OWN),
    AdminTab("Devices", "/admin/devices", Permission.DEVICE_WRITE),
    AdminTab("Audit log", "/admin/audit", Permission.AUDIT_READ),
)


def admin_tabs(console: Console, current: str) -> None:
    """Links between the Administration pages the user's role may use."""
    with ui.row().classes("gap-1").props("role=navigation aria-label=Administration"):
        for tab in ADMIN_TABS:
            if not console.can(tab.permission):
                continue
            here = tab.path == current
            slug = tab.path.removeprefix("/admin").strip("/") or "users"
            ui.button(tab.label, on_click=lambda path=tab.path: ui.navigate.to(path)).props(
                f"{'unelevated' if here else 'flat'} no-caps data-testid=admin-tab-{slug}"
                + (" aria-current=page" if here else "")
            )


class CreateForm:
    """A card with a form that creates something through the API: Enter in a field or its
    button submits, and the API's refusal (problem title, detail, which field) is said under
    it. Test ids: ``new-<slug>`` (the card), ``create-<slug>``, ``new-<slug>-error``."""

    def __init__(self, console: Console, slug: str) -> None:
        self.console = console
        self.slug = slug
        self.error: ui.label | None = None

    @contextmanager
    def build(
        self, title: str, button: str, on_submit: Callable[[], Awaitable[None]]
    ) -> Iterator[None]:
        """Put the fields inside ``with form.build(...):``; the button follows them."""
        with ui.card().classes("w-full").props(f"flat bordered data-testid=new-{self.slug}"):
            ui.label(title).classes("text-subtitle1")
            form = ui.element("form").classes("row items-start gap-3 w-full")
            with form.on("submit.prevent", on_submit):
                yield
                ui.button(button).props(f"type=submit color=primary data-testid=create-{self.slug}")
            self.error = ui.label("").classes("text-negative")
            self.error.props(f"role=alert aria-live=assertive data-testid=new-{self.slug}-error")

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """The API's answer, or None when it refused (said in the form)."""
        if self.error is not None:
            self.error.set_text("")
        try:
            return await self.console.api.post(path, json=body)
        except ConsoleError as problem:
            if problem.status == 401 or self.error is None:
                self.console.fail(problem)
            else:
                self.error.set_text(problem.message)
            return None


def admin_row(testid: str, name: str) -> ui.row:
    """A line of a listing (a user, token, device), its name first; its columns and buttons
    go inside ``with``."""
    line = ui.row().classes("w-full items-center gap-4 q-py-xs border-b border-gray-300")
    line.props["data-testid"] = testid  # a value, never parsed: testids carry names
    with line:
        ui.label(name).classes("min-w-[12rem] text-weight-medium")
    return line


def grantable_roles(console: Console) -> list[Role]:
    """Roles the user may give (at most their own; a tenant's user never a platform role);
    the API checks the same."""
    mine = console.user.role
    return [
        role
        for role in Role
        if role.at_most(mine) and (mine is Role.PLATFORM_ADMIN or not role.is_platform)
    ]


async def tenant_choices(console: Console) -> dict[str, str]:
    """Tenant id → name, for a platform admin's forms (tenant users have only their own)."""
    if console.user.role is not Role.PLATFORM_ADMIN:
        return {}
    page = await console.api.get("/api/v1/tenants", limit=500)
    return {str(t["id"]): str(t["name"]) for t in page["items"]}


def tenant_select(tenants: dict[str, str], testid: str) -> ui.select | None:
    """A platform admin's choice of tenant (None for tenant users: the API uses theirs)."""
    if not tenants:
        return None
    choice = ui.select(tenants, label="Tenant", value=next(iter(tenants)))
    return choice.props(f"outlined dense data-testid={testid}").classes("min-w-[10rem]")


def reported(
    console: Console, action: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """``action`` for a callback or timer: an API error becomes ``console.fail`` (a
    notification, or the login page when the session ended)."""

    async def run() -> None:
        try:
            await action()
        except ConsoleError as error:
            console.fail(error)

    return run


def confirm(
    console: Console, question: str, action_label: str, action: Callable[[], Awaitable[None]]
) -> None:
    """Ask before a destructive action; run it on "yes", and say if the API refused it."""
    with ui.context.client.layout, ui.dialog() as dialog, ui.card().props("data-testid=confirm"):
        ui.label(question).classes("text-body1")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat data-testid=confirm-no")

            async def yes() -> None:
                dialog.close()
                await reported(console, action)()

            ui.button(action_label, on_click=yes).props("color=negative data-testid=confirm-yes")
    dialog.on("hide", dialog.delete)  # closed: gone from the page, not hidden in it
    dialog.open()


_COPY_JS = """
const text = %s;
if (navigator.clipboard && window.isSecureContext) {
  try { await navigator.clipboard.writeText(text); return true; } catch (error) {}
}
const area = document.createElement('textarea');
area.value = text;
document.body.appendChild(area);
area.select();
let copied = false;
try { copied = document.execCommand('copy'); } catch (error) {}
area.remove();
return copied;
"""


async def _copy(text: str) -> None:
    """To the clipboard (plain HTTP in a plant has no Clipboard API: the older way then)."""
    copied = await ui.run_javascript(_COPY_JS % json.dumps(text))
    if copied:
        ui.notify("Copied to the clipboard.", type="positive")
    else:
        ui.notify("The browser did not let us copy: select the text and copy it.", type="warning")


def show_once(title: str, secrets: dict[str, str], notes: dict[str, str] | None = None) -> None:
    """A dialog with ``secrets`` (label → value, each with a copy button) and ``notes``
    (label → value, to read), saying plainly that it is the only time they are shown."""
    with (
        ui.context.client.layout,
        ui.dialog().props("persistent") as dialog,
        ui.card()
        .style("width: min(48rem, 95vw); max-width: none")
        .props("data-testid=secret-dialog"),
    ):
        ui.label(title).classes("text-h6")
        ui.label(
            "Copy it now: you will not see it again. The platform keeps only a hash of it; "
            "if it is lost, make a new one."
        ).classes("text-body2 text-weight-bold text-negative").props("role=alert")
        for label, value in secrets.items():
            slug = label.lower().replace(" ", "-")
            with ui.row().classes("w-full items-center no-wrap"):
                ui.input(label, value=value).props(
                    f"readonly outlined dense data-testid=secret-{slug}"
                ).classes("grow font-mono")
                ui.button(icon="content_copy", on_click=lambda v=value: _copy(v)).props(
                    f"flat round aria-label='Copy {label}' data-testid=copy-{slug}"
                )
        for label, value in (notes or {}).items():
            with ui.column().classes("gap-0"):
                ui.label(label).classes("text-caption text-grey-7")
                ui.label(value).classes("font-mono")
        with ui.row().classes("w-full justify-end"):
            ui.button("I have copied it", on_click=dialog.close).props(
                "color=primary data-testid=secret-done"
            )
    # closed: the secret leaves the page (and the browser's DOM), not only the screen
    dialog.on("hide", dialog.delete)
    dialog.open()

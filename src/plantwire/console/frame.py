"""The frame every console page lives in, and the decorator that registers a page.

A page author writes::

    from plantwire.console.frame import Console, NavItem, console_page
    from plantwire.security.roles import Permission

    @console_page("/devices", title="Devices", permission=Permission.DEVICE_READ,
                  nav=NavItem("Devices", "sensors", order=20))
    async def devices(console: Console) -> None:
        page = await console.api.get("/api/v1/devices")   # raises ConsoleError
        ...

and imports the module in ``plantwire/console/pages/__init__.py``. ``console_page`` does the
rest: no session → the login page; the API refuses the session → the login page saying it
expired; the role lacks ``permission`` → a "forbidden" page in the frame; an API error while
building the page → its message in the page, never a blank screen or a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from plantwire.console.api import ApiClient, ConsoleError, SessionExpired
from plantwire.console.mount import SCOPE_KEY, ConsoleRequest
from plantwire.console.sessions import ConsoleSession, ConsoleUser, Theme
from plantwire.security.roles import Permission

__all__ = ["Console", "NavItem", "console_page", "login_redirect", "show_error"]

log = logging.getLogger(__name__)

#: Why the login page is shown (``/login?reason=...``), in words.
LOGIN_REASONS = {
    "expired": "Your session has expired or was ended. Please sign in again.",
    "signed-out": "You have signed out.",
    "required": "Please sign in to continue.",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    """An entry of the left navigation; shown only to users whose role holds the page's
    permission. Lower ``order`` comes first."""

    label: str
    icon: str  # a Material icon name (bundled with NiceGUI)
    order: int = 50


@dataclass(frozen=True, slots=True)
class _NavEntry:
    item: NavItem
    path: str
    permission: Permission | None


_NAV: list[_NavEntry] = []


@dataclass(slots=True)
class Console:
    """What a page gets: who is logged in, the API as them, and the browser's session."""

    user: ConsoleUser
    api: ApiClient
    request: ConsoleRequest
    tenant_name: str | None = None  # the user's tenant's name; None for platform admins

    def can(self, permission: Permission) -> bool:
        """Whether to show a control that needs ``permission`` (the API checks again)."""
        return self.user.can(permission)

    def fail(self, error: ConsoleError) -> None:
        """For callbacks (buttons, timers): an expired session goes to the login page,
        anything else is a notification with the problem's title and detail."""
        if isinstance(error, SessionExpired):
            self.request.state.sessions.drop(self.request.browser_id)
            ui.navigate.to(login_redirect(None, "expired"))
            return
        ui.notify(error.message, type="negative", multi_line=True)

    def fail_here(self, error: ConsoleError) -> None:
        """For content built after the page (a refreshable's body): an expired session goes
        to the login page, anything else is shown where the content would have been."""
        if isinstance(error, SessionExpired):
            self.fail(error)
        else:
            show_error(error)


def safe_next(next_path: str | None) -> str | None:
    """``next_path`` if it is a path of this site, query included; None for anything a
    browser could take for another site (``//host``, ``/\\host``, a scheme): no open
    redirect."""
    if next_path and next_path.startswith("/") and next_path[1:2] not in ("/", "\\"):
        return next_path
    return None


def asked_for(request: Request) -> str:
    """The page the browser asked for: its path and query."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def login_redirect(next_path: str | None, reason: str) -> str:
    target = f"/login?reason={reason}"
    wanted = safe_next(next_path)
    if wanted is not None:
        target += f"&next={quote(wanted, safe='/')}"
    return target


def console_request(request: Request) -> ConsoleRequest:
    found = request.scope.get(SCOPE_KEY)
    if not isinstance(found, ConsoleRequest):  # only if mounted without mount_console
        raise RuntimeError("console page served outside the console mount")
    return found


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def show_error(error: ConsoleError) -> None:
    """An inline banner with the problem's title and detail."""
    with ui.card().classes("w-full bg-red-1 text-red-10").props("role=alert flat bordered"):
        ui.label(error.title).classes("text-subtitle1 text-weight-bold")
        if error.detail:
            ui.label(error.detail)


def _apply_theme(console: Console) -> ui.dark_mode:
    theme = console.request.state.themes.get(console.user.id)
    return ui.dark_mode(None if theme is None else theme == "dark")


def _frame(console: Console, title: str, current: str) -> None:
    """Header (title, user, tenant, role, theme toggle, sign out) and the left navigation."""
    dark = _apply_theme(console)
    ui.page_title(f"{title} · plantwire")
    user = console.user
    # open beside the page on wide screens, folded away (the menu button) on tablets
    drawer = ui.left_drawer(value=None, bordered=True).classes("q-pa-none")
    with drawer, ui.list().props("padding").classes("w-full"):
        for entry in sorted(_NAV, key=lambda e: (e.item.order, e.item.label)):
            if entry.permission is not None and not user.can(entry.permission):
                continue
            active = "active" if entry.path == current else ""
            testid = f"nav-{entry.path.strip('/') or 'overview'}"
            with ui.item(on_click=functools.partial(ui.navigate.to, entry.path)).props(
                f"clickable {active} data-testid={testid}"
            ):
                with ui.item_section().props("avatar"):
                    ui.icon(entry.item.icon)
                with ui.item_section():
                    ui.item_label(entry.item.label)
    with ui.header(elevated=True).classes("items-center justify-between q-px-md"):
        with ui.row().classes("items-center no-wrap"):
            ui.button(icon="menu", on_click=lambda: drawer.toggle()).props(
                "flat round color=white aria-label='Toggle navigation'"
            )
            ui.label("plantwire").classes("text-h6")
        with ui.row().classes("items-center no-wrap gap-2"):
            who = f"{user.username} · {user.role.value}"
            if console.tenant_name is not None:
                who += f" · {console.tenant_name}"
            ui.label(who).classes("text-body2").props("data-testid=who")
            ui.button(icon="dark_mode", on_click=lambda: _toggle(console, dark)).props(
                "flat round color=white aria-label='Switch light or dark theme'"
            ).props("data-testid=theme")
            ui.button("Sign out", on_click=lambda: _sign_out(console)).props(
                "flat color=white data-testid=sign-out"
            )


async def _toggle(console: Console, dark: ui.dark_mode) -> None:
    now_dark = dark.value
    if now_dark is None:  # following the browser: ask it what it shows now
        now_dark = bool(
            await ui.run_javascript("window.matchMedia('(prefers-color-scheme: dark)').matches")
        )
    theme: Theme = "light" if now_dark else "dark"
    dark.set_value(theme == "dark")
    console.request.state.themes.set(console.user.id, theme)


async def _sign_out(console: Console) -> None:
    try:
        await console.api.post("/api/v1/auth/logout")
    except ConsoleError as error:  # the session is dropped here whatever the API said
        log.info("console sign-out: the API answered %s", error)
    console.request.state.sessions.drop(console.request.browser_id)
    ui.navigate.to(login_redirect(None, "signed-out"))


_PAGE_FAILED = ConsoleError(
    500, "This page failed", "The platform's log has the details; other pages still work."
)

#: ``async def page(console, **path_parameters)``: a page at ``/devices/{device_id}`` takes
#: ``device_id: str`` after ``console``.
PageBody = Callable[..., Awaitable[None]]


def console_page(
    path: str,
    *,
    title: str,
    permission: Permission | None = None,
    nav: NavItem | None = None,
) -> Callable[[PageBody], PageBody]:
    """Register ``body`` as the console page at ``path``: logged in users only, in the frame,
    forbidden to roles without ``permission``; listed in the navigation if ``nav`` is given."""

    def register(body: PageBody) -> PageBody:
        if nav is not None:
            _NAV.append(_NavEntry(nav, path, permission))

        @ui.page(path, title=f"{title} · plantwire")
        async def page(request: Request) -> RedirectResponse | None:
            here = console_request(request)
            session = here.state.sessions.get(here.browser_id)
            if session is None:
                return RedirectResponse(login_redirect(asked_for(request), "required"), 303)
            api = ApiClient(here.state.api, session.token, client_address(request))
            try:  # the API's view of the user now (role or tenant may have changed)
                user = ConsoleUser.from_api(await api.get("/api/v1/auth/me"))
            except SessionExpired:
                here.state.sessions.drop(here.browser_id)
                return RedirectResponse(login_redirect(asked_for(request), "expired"), 303)
            here.state.sessions.put(
                here.browser_id, ConsoleSession(session.token, user, session.expires_at)
            )
            console = Console(user, api, here)
            try:
                if user.tenant is not None:
                    tenant = await api.get(f"/api/v1/tenants/{user.tenant}")
                    console.tenant_name = str(tenant["name"])
            except SessionExpired:
                here.state.sessions.drop(here.browser_id)
                return RedirectResponse(login_redirect(asked_for(request), "expired"), 303)
            except ConsoleError as error:  # the frame still shows; the page says what failed
                console.tenant_name = user.tenant
                log.warning("console: the tenant of %s: %s", user.username, error)
            _frame(console, title, path)
            with ui.column().classes("w-full q-pa-md gap-4").props("role=main"):
                ui.label(title).classes("text-h5").props("data-testid=page-title")
                if permission is not None and not user.can(permission):
                    _forbidden(title)
                    return None
                try:
                    await body(console, **request.path_params)
                except SessionExpired:
                    here.state.sessions.drop(here.browser_id)
                    return RedirectResponse(login_redirect(asked_for(request), "expired"), 303)
                except ConsoleError as error:
                    show_error(error)
                except Exception:  # a bug of the page: logged with its trace, said in words
                    log.exception("console page %s failed for %s", path, user.username)
                    show_error(_PAGE_FAILED)
            return None

        return body

    return register


def _forbidden(title: str) -> None:
    with ui.card().classes("w-full").props("role=alert flat bordered data-testid=forbidden"):
        ui.label("Forbidden").classes("text-subtitle1 text-weight-bold")
        ui.label(
            f"Your role may not use {title}. Ask an administrator of your tenant if you need it."
        )

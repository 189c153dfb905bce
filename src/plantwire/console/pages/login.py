"""``/login``: sign in with a platform user (``POST /api/v1/auth/login``)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from nicegui import ui

from plantwire.console.api import ApiClient, ConsoleError
from plantwire.console.frame import (
    LOGIN_REASONS,
    client_address,
    console_request,
    login_redirect,
    safe_next,
)
from plantwire.console.mount import browser_cookie
from plantwire.console.sessions import ConsoleSession, ConsoleUser

__all__ = ["complete_login", "login_page"]


def _safe_next(next_path: str | None) -> str:
    """Only a path of this site (see ``safe_next``), else the overview."""
    return safe_next(next_path) or "/"


@ui.page("/login/complete", title="Signing in · plantwire")
def complete_login(request: Request, ticket: str = "", next: str | None = None) -> Response:
    """Exchanges a sign-in's ticket for a new browser id (set as cookie), then opens
    ``next``; a used, stale or foreign ticket goes back to the login page."""
    here = console_request(request)
    new_id = here.state.sessions.redeem(ticket, here.browser_id)
    if new_id is None:
        return RedirectResponse(login_redirect(_safe_next(next), "required"), 303)
    response = RedirectResponse(_safe_next(next), 303)
    response.headers.append("set-cookie", browser_cookie(new_id, secure=here.state.cookie_secure))
    return response


@ui.page("/login", title="Sign in · plantwire")
async def login_page(request: Request, reason: str | None = None, next: str | None = None) -> None:
    here = console_request(request)
    target = _safe_next(next)
    api = ApiClient(here.state.api, None, client_address(request))
    ui.dark_mode(None)

    async def sign_in() -> None:
        message.set_text("")
        if not username.value or not password.value:
            message.set_text("Enter your username and password.")
            return
        submit.disable()
        try:
            body = await api.post(
                "/api/v1/auth/login",
                json={"username": username.value, "password": password.value},
            )
        except ConsoleError as error:
            message.set_text(error.detail or error.title)
            password.set_value("")
            return
        finally:
            submit.enable()
        session = ConsoleSession(
            token=body["token"],
            user=ConsoleUser.from_api(body["user"]),
            expires_at=datetime.fromisoformat(body["expires_at"]),
        )
        ticket = here.state.sessions.issue_ticket(here.browser_id, session)
        ui.navigate.to(f"/login/complete?ticket={ticket}&next={quote(target, safe='/')}")

    outer = ui.column().classes("absolute-center items-stretch").style("width: min(24rem, 92vw)")
    with outer, ui.card().classes("w-full q-pa-lg").props("role=main"):
        ui.label("plantwire").classes("text-h5")
        ui.label("Sign in with your platform account.").classes("text-body2 q-mb-md")
        if reason in LOGIN_REASONS:
            ui.label(LOGIN_REASONS[reason]).classes("text-body2 q-mb-sm").props(
                "role=status data-testid=login-reason"
            )
        with ui.element("form").classes("column gap-3 w-full").on("submit.prevent", sign_in):
            username = ui.input("Username").props(
                "autofocus autocomplete=username name=username data-testid=username"
            )
            password = ui.input("Password", password=True).props(
                "autocomplete=current-password name=password data-testid=password"
            )
            message = (
                ui.label("")
                .classes("text-negative")
                .props("role=alert aria-live=assertive data-testid=login-error")
            )
            submit = ui.button("Sign in").props("type=submit data-testid=sign-in")

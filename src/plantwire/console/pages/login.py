"""``/login``: sign in with a platform user (``POST /api/v1/auth/login``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from nicegui import ui

from plantwire.console.api import ApiClient, ConsoleError
from plantwire.console.frame import LOGIN_REASONS, client_address, console_request
from plantwire.console.sessions import ConsoleSession, ConsoleUser

__all__ = ["login_page"]


def _safe_next(next_path: str | None) -> str:
    """Only a path of this site (no ``//host`` or scheme): no open redirect."""
    if next_path and next_path.startswith("/") and not next_path.startswith("//"):
        return next_path
    return "/"


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
        here.state.sessions.put(here.browser_id, session)
        ui.navigate.to(target)

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

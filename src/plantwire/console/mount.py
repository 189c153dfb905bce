"""Mounting NiceGUI on the platform's FastAPI app at ``/`` without taking over the APIs.

NiceGUI keeps one app per process (``nicegui.app``: its pages, its socket.io server, its
event loop), so a process serves at most one console: ``plantwire up`` mounts it; the test
suite's many in-process apps are built without it (``create_app(..., console=False)``)."""

from __future__ import annotations

import http.cookies
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from nicegui import ui
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantwire.console.sessions import ConsoleSessions, ThemePreferences, new_browser_id

__all__ = ["BROWSER_COOKIE", "ConsoleState", "browser_cookie", "mount_console"]

BROWSER_COOKIE = "plantwire_console"
SCOPE_KEY = "plantwire.console"


class ConsoleMountError(RuntimeError):
    """The console is mounted once per process (NiceGUI's app is a process singleton)."""


@dataclass(slots=True)
class ConsoleState:
    """What the console's pages need of the platform that serves them."""

    api: ASGIApp  # the platform's own app, called in-process by ApiClient
    sessions: ConsoleSessions
    themes: ThemePreferences
    cookie_secure: bool


@dataclass(frozen=True, slots=True)
class ConsoleRequest:
    """Put in each console request's scope: the platform's state and the browser's id."""

    state: ConsoleState
    browser_id: str


def _browser_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies = http.cookies.SimpleCookie()
            try:
                cookies.load(value.decode("latin-1"))
            except http.cookies.CookieError:
                continue
            if BROWSER_COOKIE in cookies and len(cookies[BROWSER_COOKIE].value) == 43:
                return cookies[BROWSER_COOKIE].value
    return None


def browser_cookie(browser_id: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value giving a browser its id."""
    cookie = f"{BROWSER_COOKIE}={browser_id}; Path=/; HttpOnly; SameSite=Strict"
    return cookie + "; Secure" if secure else cookie


class _WithBrowserId:
    """Gives each browser an opaque id cookie (set on its first HTTP answer) and puts the
    console's state and that id in the scope for the pages."""

    def __init__(self, app: ASGIApp, state: ConsoleState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        known = _browser_id(scope)
        browser_id = known or new_browser_id()
        scope[SCOPE_KEY] = ConsoleRequest(self.state, browser_id)
        if known is not None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = browser_cookie(browser_id, secure=self.state.cookie_secure)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class _ConsoleMount(Mount):
    """NiceGUI at ``/``, matching nothing under the platform's own paths: those keep their
    routes' answers (problem+json 404 and 405, the Handle API, metrics) as if no console
    were there."""

    def __init__(self, app: ASGIApp, platform_paths: tuple[str, ...]) -> None:
        super().__init__("", app=app)
        self.platform_paths = platform_paths

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if any(path == p or path.startswith(p + "/") for p in self.platform_paths):
            return Match.NONE, {}
        return super().matches(scope)


_mounted = False


def mount_console(
    app: FastAPI, *, data_dir: Path, cookie_secure: bool, platform_paths: tuple[str, ...]
) -> ConsoleState:
    """Serve the console from ``app`` at ``/``, leaving ``platform_paths`` (and everything
    under them) to the platform. Once per process."""
    global _mounted
    if _mounted:
        raise ConsoleMountError("the web console is already mounted in this process")
    _mounted = True
    from plantwire.console import pages  # noqa: F401  (registers the pages with NiceGUI)

    state = ConsoleState(
        api=app,
        sessions=ConsoleSessions(),
        themes=ThemePreferences(data_dir / "console" / "preferences.json"),
        cookie_secure=cookie_secure,
    )
    ui.run_with(
        app,
        title="plantwire",
        dark=None,  # follows the browser until the user chooses
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
    nicegui_mount = app.router.routes.pop()  # what run_with just mounted at "/"
    assert isinstance(nicegui_mount, Mount)  # run_with's contract
    app.router.routes.append(
        _ConsoleMount(_WithBrowserId(nicegui_mount.app, state), platform_paths)
    )
    return state

"""Who is logged in to the console, and their theme.

A browser holds only an opaque random id (the ``plantwire_console`` cookie, HttpOnly,
SameSite=Strict); the API token it stands for stays in this process's memory, never in the
browser (no localStorage, no readable cookie) and never on disk. A restart of the platform
therefore logs console users out, which is the safe default for a token holder. Theme choices
are harmless and kept in ``<data dir>/console/preferences.json`` so they survive restarts."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

__all__ = [
    "TICKET_SECONDS",
    "ConsoleSession",
    "ConsoleSessions",
    "ConsoleUser",
    "Theme",
    "ThemePreferences",
    "new_browser_id",
]

Theme = Literal["light", "dark"]


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The logged-in user as ``GET /api/v1/auth/me`` describes them."""

    id: str
    username: str
    role: Role
    tenant: str | None

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> ConsoleUser:
        return cls(
            id=str(body["id"]),
            username=str(body["username"]),
            role=Role(body["role"]),
            tenant=body.get("tenant"),
        )

    def can(self, permission: Permission) -> bool:
        """Whether the user's role holds ``permission`` (the API's own matrix). For showing
        or hiding controls only: the API decides again on every call."""
        return permission in ROLE_PERMISSIONS[self.role]


@dataclass(slots=True)
class ConsoleSession:
    token: str
    user: ConsoleUser
    expires_at: datetime


#: How long a signed-in browser has to exchange its ticket for a fresh id (one redirect).
TICKET_SECONDS = 60


class ConsoleSessions:
    """Browser id → session, in memory; an entry past its token's expiry is gone.

    A sign-in happens over the page's websocket, which cannot set a cookie; so it leaves the
    session under a one-time ticket bound to the browser's id, and the browser, redirected to
    ``/login/complete?ticket=…``, gets a new id for it (no session fixation through a planted
    id)."""

    def __init__(self) -> None:
        self._sessions: dict[str, ConsoleSession] = {}
        self._tickets: dict[str, tuple[str, ConsoleSession, float]] = {}
        self._lock = threading.Lock()

    def issue_ticket(self, browser_id: str, session: ConsoleSession) -> str:
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tickets = {k: v for k, v in self._tickets.items() if v[2] > now}
            self._tickets[ticket] = (browser_id, session, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str, browser_id: str) -> str | None:
        """The new browser id holding the ticket's session, if the ticket is valid, unused
        and presented by the browser it was issued to."""
        with self._lock:
            found = self._tickets.pop(ticket, None)
            if found is None or found[0] != browser_id or found[2] <= time.monotonic():
                return None
            new_id = new_browser_id()
            self._forget_expired()  # at each sign-in
            self._sessions.pop(browser_id, None)
            self._sessions[new_id] = found[1]
            return new_id

    def get(self, browser_id: str) -> ConsoleSession | None:
        with self._lock:
            session = self._sessions.get(browser_id)
            if session is not None and session.expires_at <= datetime.now(UTC):
                del self._sessions[browser_id]
                return None
            return session

    def put(self, browser_id: str, session: ConsoleSession) -> None:
        with self._lock:
            self._sessions[browser_id] = session

    def _forget_expired(self) -> None:
        """Drops every session whose token has expired (the lock held): a browser that
        never comes back does not keep its entry for ever."""
        now = datetime.now(UTC)
        self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}

    def drop(self, browser_id: str) -> ConsoleSession | None:
        with self._lock:
            return self._sessions.pop(browser_id, None)


class ThemePreferences:
    """Each user's light/dark choice (absent: follow the browser), in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._themes: dict[str, Theme] = {}
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        if isinstance(stored, dict):
            self._themes = {k: v for k, v in stored.items() if v in ("light", "dark")}

    def get(self, user_id: str) -> Theme | None:
        with self._lock:
            return self._themes.get(user_id)

    def set(self, user_id: str, theme: Theme) -> None:
        with self._lock:
            self._themes[user_id] = theme
            self._path.parent.mkdir(parents=True, exist_ok=True)
            partial = self._path.with_suffix(".tmp")
            partial.write_text(json.dumps(self._themes), encoding="utf-8")
            os.replace(partial, self._path)

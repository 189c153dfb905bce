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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

__all__ = [
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


class ConsoleSessions:
    """Browser id → session, in memory; an entry past its token's expiry is gone."""

    def __init__(self) -> None:
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

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

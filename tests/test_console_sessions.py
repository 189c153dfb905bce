"""The console's in-memory sessions: a ticket is redeemed once, by the browser it was issued
to, for a new browser id; and sessions whose token expired are forgotten at the next
sign-in, so browsers that never come back do not pile up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plantwire.console.frame import login_redirect, safe_next
from plantwire.console.sessions import ConsoleSession, ConsoleSessions, ConsoleUser
from plantwire.security.roles import Role

USER = ConsoleUser("u1", "alice", Role.VIEWER, "t1")


def _session(minutes: float) -> ConsoleSession:
    return ConsoleSession("token", USER, datetime.now(UTC) + timedelta(minutes=minutes))


def test_a_ticket_is_redeemed_once_by_its_browser_for_a_new_id() -> None:
    sessions = ConsoleSessions()
    ticket = sessions.issue_ticket("browser-1", _session(10))
    assert sessions.redeem(ticket, "browser-2") is None  # another browser
    ticket = sessions.issue_ticket("browser-1", _session(10))
    new_id = sessions.redeem(ticket, "browser-1")
    assert new_id is not None
    assert new_id != "browser-1"
    assert sessions.get(new_id) is not None
    assert sessions.redeem(ticket, "browser-1") is None  # used


def test_expired_sessions_are_forgotten_at_the_next_sign_in() -> None:
    sessions = ConsoleSessions()
    sessions.put("gone", _session(-1))  # a browser whose token expired, never back
    sessions.put("here", _session(10))
    new_id = sessions.redeem(sessions.issue_ticket("b", _session(10)), "b")
    assert new_id is not None
    assert set(sessions._sessions) == {"here", new_id}


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/identifiers?handle=88.101.5%2Fx", "/identifiers?handle=88.101.5%2Fx"),
        ("/admin", "/admin"),
        ("//evil.example/", None),
        ("/\\evil.example/", None),
        ("https://evil.example/", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_path_of_this_site_is_returned_to_after_login(
    asked: str | None, kept: str | None
) -> None:
    assert safe_next(asked) == kept
    redirect = login_redirect(asked, "required")
    assert redirect.startswith("/login?reason=required")
    assert ("&next=" in redirect) is (kept is not None)

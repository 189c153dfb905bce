"""Authentication: login, sessions (bearer and cookie), logout, expiry, revocation, the CSRF
guard on cookie writes, failed-login limits and what a password change does to sessions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.security.tables import ApiToken
from tests.conftest import ADMIN_PASSWORD, PASSWORD, Seed, login, make_settings
from tests.security.helpers import (
    SESSION_COOKIE,
    assert_problem,
    assert_unauthenticated,
    bearer,
    create_token,
    platform_of,
    secret_of,
    sha256_hex,
    token_row,
    usernames,
    whoami,
)

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"


def _login_response(client: TestClient, username: str, password: str) -> httpx2.Response:
    return client.post(LOGIN, json={"username": username, "password": password})


def _set_expiry(client: TestClient, secret: str, expires_at: datetime) -> None:
    with platform_of(client).sessions() as session, session.begin():
        session.execute(
            update(ApiToken)
            .where(ApiToken.secret_hash == sha256_hex(secret))
            .values(expires_at=expires_at)
        )


# --- login -----------------------------------------------------------------------------------


def test_login_returns_a_session_token(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    before = datetime.now(UTC)
    response = _login_response(client, "a-engineer", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_at", "user"}
    assert body["token_type"] == "bearer"
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 32
    user = body["user"]
    assert user["username"] == "a-engineer"
    assert user["role"] == "engineer"
    assert user["tenant"] == seed.tenants["a"].id
    assert user["id"] == seed.tenants["a"].users["engineer"]["id"]
    assert "password" not in response.text
    assert "password_hash" not in user

    ttl = timedelta(seconds=platform_of(client).settings.session_ttl_seconds)
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + ttl - timedelta(seconds=5) <= expires_at <= datetime.now(UTC) + ttl

    # The console gets the same secret as an HttpOnly, SameSite=Strict cookie.
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={body['token']};")
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()

    # The session is stored as a session-kind token with the user's role, and it works.
    row = token_row(client, body["token"])
    assert (row.kind, row.role, row.user_id) == ("session", "engineer", user["id"])
    assert whoami(client, bearer(body["token"]))["username"] == "a-engineer"


def test_wrong_password_and_unknown_user_answer_alike(seeded: tuple[TestClient, Seed]) -> None:
    client, _ = seeded
    client.cookies.clear()
    wrong_password = _login_response(client, "a-engineer", "not-the-password")
    unknown_user = _login_response(client, "nobody-here", "not-the-password")
    wrong_body = assert_problem(wrong_password, 401)
    assert_problem(unknown_user, 401)
    assert wrong_password.json() == unknown_user.json()
    assert "set-cookie" not in wrong_password.headers
    assert "set-cookie" not in unknown_user.headers
    assert "token" not in wrong_body


def test_disabled_user_cannot_log_in_and_its_tokens_stop_working(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    session_headers = tenant.headers["operator"]
    _, api_headers = create_token(client, session_headers)
    assert whoami(client, session_headers)["username"] == "a-operator"
    assert whoami(client, api_headers)["username"] == "a-operator"
    reference = _login_response(client, "a-operator", "not-the-password").json()

    user_id = tenant.users["operator"]["id"]
    response = client.patch(f"/api/v1/users/{user_id}", json={"disabled": True}, headers=seed.admin)
    assert response.status_code == 200, response.text
    assert response.json()["disabled"] is True

    refused = _login_response(client, "a-operator", PASSWORD)
    assert_problem(refused, 401)
    assert refused.json() == reference  # indistinguishable from a wrong password
    assert_unauthenticated(client.get(ME, headers=session_headers))
    assert_unauthenticated(client.get(ME, headers=api_headers))
    assert_unauthenticated(client.get("/api/v1/tokens", headers=api_headers))


# --- presenting credentials ------------------------------------------------------------------


def test_bearer_and_cookie_authenticate_reads(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    assert_unauthenticated(client.get(ME))

    headers = seed.tenants["b"].headers["viewer"]
    assert whoami(client, headers)["username"] == "b-viewer"

    client.cookies.set(SESSION_COOKIE, secret_of(seed.tenants["a"].headers["engineer"]))
    response = client.get(ME)
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "a-engineer"
    listed = client.get("/api/v1/users")
    assert listed.status_code == 200, listed.text
    assert {u["tenant"] for u in listed.json()["items"]} == {seed.tenants["a"].id}

    # A bearer header wins over the cookie.
    assert whoami(client, headers)["username"] == "b-viewer"


def test_bad_credentials_are_refused_with_a_challenge(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    secret = secret_of(seed.tenants["a"].headers["tenant-admin"])
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    client.cookies.set(SESSION_COOKIE, tampered)
    assert_unauthenticated(client.get(ME))
    assert_unauthenticated(client.get("/api/v1/users"))
    client.cookies.clear()

    for header in (
        "Bearer garbage",
        f"Bearer {tampered}",
        f"Bearer {secret}x",
        "Bearer ",
        "Bearer",
        "Basic x",
        f"Basic {secret}",
        f"Token {secret}",
        secret,
        "",
    ):
        response = client.get(ME, headers={"Authorization": header})
        assert_unauthenticated(response)

    # A malformed header is refused even when a valid cookie is present: no silent fallback.
    client.cookies.set(SESSION_COOKIE, secret)
    assert whoami(client, {})["username"] == "a-tenant-admin"
    assert_unauthenticated(client.get(ME, headers={"Authorization": "Basic x"}))
    assert_unauthenticated(client.get(ME, headers={"Authorization": "Bearer garbage"}))


def test_cookie_writes_from_a_foreign_origin_are_refused(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["tenant-admin"]
    client.cookies.set(SESSION_COOKIE, secret_of(headers))

    def new_user(name: str) -> dict[str, str]:
        return {"username": name, "password": PASSWORD, "role": "viewer"}

    for origin in ("https://evil.example", "http://testserver.evil.example", "null"):
        response = client.post(
            "/api/v1/users", json=new_user("csrf-victim"), headers={"Origin": origin}
        )
        assert_problem(response, 403)
        victim = seed.tenants["a"].users["viewer"]["id"]
        response = client.delete(f"/api/v1/users/{victim}", headers={"Origin": origin})
        assert_problem(response, 403)
        response = client.post("/api/v1/auth/logout", headers={"Origin": origin})
        assert_problem(response, 403)
        # Reads are not state-changing: a foreign origin does not matter to them.
        assert client.get(ME, headers={"Origin": origin}).status_code == 200
    names = usernames(client, seed.admin)
    assert "csrf-victim" not in names
    assert "a-viewer" in names
    assert whoami(client, headers)["username"] == "a-tenant-admin"  # not logged out

    # From the platform's own origin (or a client sending none) cookie writes work.
    same = client.post(
        "/api/v1/users", json=new_user("same-origin"), headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 201, same.text
    no_origin = client.post("/api/v1/users", json=new_user("no-origin"))
    assert no_origin.status_code == 201, no_origin.text

    # Bearer tokens cannot be sent by a browser on its own: no origin check for them.
    client.cookies.clear()
    response = client.post(
        "/api/v1/users",
        json=new_user("bearer-user"),
        headers={**headers, "Origin": "https://elsewhere.example"},
    )
    assert response.status_code == 201, response.text


# --- ending sessions -------------------------------------------------------------------------


def test_logout_revokes_the_session(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = login(client, "a-engineer", PASSWORD)
    client.cookies.clear()
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert_unauthenticated(client.get(ME, headers=headers))
    assert_unauthenticated(client.post("/api/v1/auth/logout", headers=headers))
    assert token_row(client, secret_of(headers)).revoked_at is not None
    # Only that session ends: the user's other session goes on.
    assert whoami(client, seed.tenants["a"].headers["engineer"])["username"] == "a-engineer"

    # Logging out of a cookie session also clears the cookie.
    secret = login(client, "a-engineer", PASSWORD)["Authorization"].removeprefix("Bearer ")
    assert client.cookies.get(SESSION_COOKIE) == secret
    response = client.post("/api/v1/auth/logout")
    assert response.status_code == 204, response.text
    cleared = response.headers["set-cookie"]
    assert cleared.startswith(f"{SESSION_COOKIE}=")
    assert "Max-Age=0" in cleared or "expires=" in cleared.lower()
    assert client.cookies.get(SESSION_COOKIE) is None
    assert_unauthenticated(client.get(ME, headers=bearer(secret)))


def test_expired_tokens_are_refused(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    session_headers = login(client, "a-operator", PASSWORD)
    client.cookies.clear()
    _, api_headers = create_token(client, session_headers)
    assert whoami(client, session_headers)["username"] == "a-operator"
    assert whoami(client, api_headers)["username"] == "a-operator"

    past = datetime.now(UTC) - timedelta(seconds=1)
    _set_expiry(client, secret_of(session_headers), past)
    body = assert_unauthenticated(client.get(ME, headers=session_headers))
    assert "expired" in body["detail"]
    assert whoami(client, api_headers)["username"] == "a-operator"  # only that one expired

    _set_expiry(client, secret_of(api_headers), past)
    assert_unauthenticated(client.get(ME, headers=api_headers))

    # A token a moment from its end still works; the boundary is the stored expiry.
    _set_expiry(client, secret_of(api_headers), datetime.now(UTC) + timedelta(minutes=1))
    assert whoami(client, api_headers)["username"] == "a-operator"
    assert whoami(client, seed.tenants["a"].headers["operator"])["username"] == "a-operator"


def test_revoked_tokens_are_refused(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["viewer"]
    created, api_headers = create_token(client, headers)
    assert whoami(client, api_headers)["username"] == "a-viewer"
    response = client.delete(f"/api/v1/tokens/{created['id']}", headers=headers)
    assert response.status_code == 204, response.text
    body = assert_unauthenticated(client.get(ME, headers=api_headers))
    assert "revoked" in body["detail"]

    # A login session can be revoked by id too (e.g. from another session of the user).
    other = login(client, "a-viewer", PASSWORD)
    client.cookies.clear()
    session_id = token_row(client, secret_of(other)).id
    response = client.delete(f"/api/v1/tokens/{session_id}", headers=headers)
    assert response.status_code == 204, response.text
    assert_unauthenticated(client.get(ME, headers=other))
    assert whoami(client, headers)["username"] == "a-viewer"


def test_password_change_revokes_the_users_sessions(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    first = tenant.headers["operator"]
    second = login(client, "a-operator", PASSWORD)
    client.cookies.clear()
    bystander = tenant.headers["viewer"]

    user_id = tenant.users["operator"]["id"]
    new_password = "a-brand-new-password"
    response = client.patch(
        f"/api/v1/users/{user_id}",
        json={"password": new_password},
        headers=tenant.headers["tenant-admin"],
    )
    assert response.status_code == 200, response.text
    assert_unauthenticated(client.get(ME, headers=first))
    assert_unauthenticated(client.get(ME, headers=second))
    assert whoami(client, bystander)["username"] == "a-viewer"  # other users keep theirs

    assert_problem(_login_response(client, "a-operator", PASSWORD), 401)
    fresh = login(client, "a-operator", new_password)
    assert whoami(client, fresh)["username"] == "a-operator"

    # Changing one's own password ends one's own sessions, including the current one.
    admin_session = tenant.headers["tenant-admin"]
    admin_id = tenant.users["tenant-admin"]["id"]
    response = client.patch(
        f"/api/v1/users/{admin_id}", json={"password": new_password}, headers=admin_session
    )
    assert response.status_code == 200, response.text
    assert_unauthenticated(client.get(ME, headers=admin_session))


# --- failed-login limits (one backend: the limiter lives in the process) --------------------


@pytest.fixture
def limited_client(tmp_path: Path) -> Iterator[TestClient]:
    """SQLite platform with small failed-login limits: 3 per username, 6 per address."""
    settings = make_settings(
        tmp_path / "data",
        login_max_failures_per_user=3,
        login_max_failures_per_address=6,
        login_failure_window_seconds=300,
    )
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _make_tenant_user(client: TestClient, username: str) -> dict[str, str]:
    admin = login(client, "admin", ADMIN_PASSWORD)
    tenant = client.post("/api/v1/tenants", json={"name": f"T {username}"}, headers=admin)
    assert tenant.status_code == 201, tenant.text
    body = {
        "username": username,
        "password": PASSWORD,
        "role": "viewer",
        "tenant": tenant.json()["id"],
    }
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    return admin


def _assert_rate_limited(response: httpx2.Response, window: int) -> int:
    assert_problem(response, 429)
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, response.headers
    assert retry_after.isdigit(), retry_after
    seconds = int(retry_after)
    assert 1 <= seconds <= window
    assert "token" not in response.json()
    return seconds


def test_failed_logins_lock_the_username(limited_client: TestClient) -> None:
    client = limited_client
    _make_tenant_user(client, "victim")
    limit = platform_of(client).settings.login_max_failures_per_user
    assert limit == 3
    for _ in range(limit):
        assert_problem(_login_response(client, "victim", "wrong-password"), 401)
    # Locked: even the right password is refused, without being checked.
    _assert_rate_limited(_login_response(client, "victim", PASSWORD), 300)
    _assert_rate_limited(_login_response(client, "VICTIM", PASSWORD), 300)
    # The lock is per username: others from the same address still log in.
    assert _login_response(client, "admin", ADMIN_PASSWORD).status_code == 200


def test_a_successful_login_resets_the_username_count(limited_client: TestClient) -> None:
    client = limited_client
    _make_tenant_user(client, "forgetful")
    for _ in range(2):
        assert_problem(_login_response(client, "forgetful", "wrong-password"), 401)
    assert _login_response(client, "forgetful", PASSWORD).status_code == 200
    for _ in range(2):
        assert_problem(_login_response(client, "forgetful", "wrong-password"), 401)
    assert _login_response(client, "forgetful", PASSWORD).status_code == 200


def test_failed_logins_lock_the_source_address(limited_client: TestClient) -> None:
    client = limited_client
    limit = platform_of(client).settings.login_max_failures_per_address
    assert limit == 6
    for number in range(limit):  # one failure each: below the per-username limit
        # Headers a client makes up do not change its address (no proxy is trusted).
        spoofed = {"X-Forwarded-For": f"203.0.113.{number}", "X-Real-IP": f"198.51.100.{number}"}
        response = client.post(
            LOGIN, json={"username": f"guess-{number}", "password": "wrong"}, headers=spoofed
        )
        assert_problem(response, 401)
    _assert_rate_limited(_login_response(client, "admin", ADMIN_PASSWORD), 300)
    _assert_rate_limited(_login_response(client, "someone-else", "whatever-pw"), 300)
    response = client.post(
        LOGIN,
        json={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": "192.0.2.1"},
    )
    _assert_rate_limited(response, 300)


def test_the_lock_ends_with_the_window(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", login_max_failures_per_user=2, login_failure_window_seconds=1
    )
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for _ in range(2):
            assert_problem(_login_response(client, "admin", "wrong-password"), 401)
        _assert_rate_limited(_login_response(client, "admin", ADMIN_PASSWORD), 1)
        time.sleep(1.1)  # the window is one second long
        assert whoami(client, login(client, "admin", ADMIN_PASSWORD))["username"] == "admin"


def test_usernames_are_case_insensitive(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = login(client, "A-Viewer", PASSWORD)
    assert whoami(client, headers)["username"] == "a-viewer"
    body = {"username": "A-VIEWER", "password": PASSWORD, "role": "viewer"}
    tenant_admin = seed.tenants["a"].headers["tenant-admin"]
    assert client.post("/api/v1/users", json=body, headers=tenant_admin).status_code == 409


def test_the_database_itself_refuses_case_variants(seeded: tuple[TestClient, Seed]) -> None:
    """Two concurrent creates both pass the handler's check; the unique index still holds."""
    from sqlalchemy.exc import IntegrityError

    from plantwire.db import transaction
    from plantwire.security.tables import Tenant

    client, _ = seeded
    with pytest.raises(IntegrityError), transaction(platform_of(client).sessions) as session:
        session.add(Tenant(name="TENANT A"))


def test_ended_sessions_are_pruned_at_login(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    old = secret_of(login(client, "a-operator", PASSWORD))
    api, api_headers = create_token(client, seed.tenants["a"].headers["operator"], name="kept")
    assert client.delete(f"/api/v1/tokens/{api['id']}", headers=api_headers).status_code == 204
    long_ago = datetime.now(UTC) - timedelta(days=3)
    _set_expiry(client, old, long_ago)
    sessions = platform_of(client).sessions
    with sessions() as session, session.begin():
        session.execute(
            update(ApiToken).where(ApiToken.id == api["id"]).values(revoked_at=long_ago)
        )
    login(client, "a-operator", PASSWORD)
    with sessions() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == api["user_id"]))
        hashes = {row.secret_hash for row in rows}
    assert sha256_hex(old) not in hashes  # the long-ended session is gone
    assert sha256_hex(api["token"]) in hashes  # revoked API tokens stay listed for their owner

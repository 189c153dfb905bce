"""Small helpers shared by the security suites: reaching the app's real platform object,
making tokens, and asserting RFC 9457 problem answers."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from plantwire.platform import Platform
from plantwire.security.tables import ApiToken

PROBLEM_JSON = "application/problem+json"
SESSION_COOKIE = "plantwire_session"
SOURCE = "testclient"  # the client host TestClient reports


def platform_of(client: TestClient) -> Platform:
    """The running app's platform (engine, sessions, settings)."""
    app = client.app
    assert isinstance(app, FastAPI)
    platform = app.state.platform
    assert isinstance(platform, Platform)
    return platform


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def secret_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_row(client: TestClient, secret: str) -> ApiToken:
    """The api_tokens row of ``secret`` (looked up by its SHA-256)."""
    with platform_of(client).sessions() as session:
        query = select(ApiToken).where(ApiToken.secret_hash == sha256_hex(secret))
        return session.scalars(query).one()


def create_token(
    client: TestClient, headers: dict[str, str], name: str = "script", **extra: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Create an API token as ``headers``; returns (create response, its bearer headers)."""
    response = client.post("/api/v1/tokens", json={"name": name, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body, bearer(body["token"])


def whoami(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def media_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert media_type(response) == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


def assert_unauthenticated(response: httpx2.Response) -> dict[str, Any]:
    """A 401 problem that tells the client how to authenticate."""
    body = assert_problem(response, 401)
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers
    return body


def user_status(client: TestClient, admin: dict[str, str], user_id: str) -> dict[str, Any] | None:
    """A user as the platform admin sees it, or None if it does not exist."""
    response = client.get(f"/api/v1/users/{user_id}", headers=admin)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def usernames(client: TestClient, admin: dict[str, str]) -> set[str]:
    response = client.get("/api/v1/users", params={"limit": 1000}, headers=admin)
    assert response.status_code == 200, response.text
    return {user["username"] for user in response.json()["items"]}

"""The console's API client against the platform's app in-process (no browser): answers as
JSON, refusals as ConsoleError with the problem's words, a refused token as SessionExpired."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from plantwire.console.api import ApiClient, ConsoleError, SessionExpired
from tests.conftest import ADMIN_PASSWORD


async def test_login_and_a_read(client: TestClient) -> None:
    anonymous = ApiClient(client.app, None, "127.0.0.1")
    body = await anonymous.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    admin = ApiClient(client.app, body["token"], "127.0.0.1")
    assert (await admin.get("/api/v1/auth/me"))["username"] == "admin"
    assert (await admin.get("/api/v1/tenants", limit=5))["items"] == []


async def test_a_wrong_password_is_the_problems_detail(client: TestClient) -> None:
    anonymous = ApiClient(client.app, None, "127.0.0.1")
    with pytest.raises(ConsoleError) as refused:
        await anonymous.post("/api/v1/auth/login", json={"username": "admin", "password": "x"})
    assert refused.value.status == 401
    assert refused.value.detail == "Wrong username or password."


async def test_a_refused_token_is_an_expired_session(client: TestClient) -> None:
    stranger = ApiClient(client.app, "not-a-token", "127.0.0.1")
    with pytest.raises(SessionExpired):
        await stranger.get("/api/v1/auth/me")


async def test_a_missing_resource_says_so(client: TestClient) -> None:
    anonymous = ApiClient(client.app, None, "127.0.0.1")
    with pytest.raises(ConsoleError) as missing:
        await anonymous.get("/api/v1/nope")
    assert (missing.value.status, missing.value.title) == (404, "Not Found")
    assert missing.value.message == "Not Found: No resource at /api/v1/nope"


async def test_an_invalid_request_names_the_field_and_what_is_wrong(client: TestClient) -> None:
    anonymous = ApiClient(client.app, None, "127.0.0.1")
    body = await anonymous.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    admin = ApiClient(client.app, body["token"], "127.0.0.1")
    weak = {"username": "someone", "password": "short", "role": "platform-admin"}
    with pytest.raises(ConsoleError) as refused:
        await admin.post("/api/v1/users", json=weak)
    assert refused.value.status == 422
    assert refused.value.detail.endswith("password: String should have at least 8 characters.")

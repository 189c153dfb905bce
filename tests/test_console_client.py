"""The console's API client against the platform's app in-process (no browser): answers as
JSON, refusals as ConsoleError with the problem's words, a refused token as SessionExpired."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from plantwire.console.api import ApiClient, ConsoleError, SessionExpired
from plantwire.console.handle_api import HandleApi
from plantwire.ids.names import url_path
from tests.conftest import ADMIN_PASSWORD, Seed


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


async def test_a_handle_named_with_dot_segments_is_the_handle_not_another_path(
    seeded: tuple[TestClient, Seed],
) -> None:
    """A tenant admin may name a handle ``<prefix>/../../v1/users/<id>``; the console's
    Delete of that handle, as a platform admin, must delete the handle, never the user (an
    HTTP client removes ``..`` segments unless they are encoded)."""
    client, seed = seeded
    a = seed.tenants["a"]
    homed = client.post(
        "/api/v1/ids/prefixes", json={"prefix": "88.101.5", "tenant": a.id}, headers=seed.admin
    )
    assert homed.status_code == 201, homed.text
    victim = client.get("/api/v1/auth/me", headers=a.headers["viewer"]).json()["id"]
    crafted = f"88.101.5/../../v1/users/{victim}"
    made = client.put(
        f"/api/handles/{url_path(crafted)}",
        json=[{"index": 1, "type": "URL", "data": {"format": "string", "value": "x"}}],
        headers=a.headers["tenant-admin"],
    )
    assert made.status_code == 201, made.text
    admin = HandleApi(ApiClient(client.app, seed.admin["Authorization"].split()[1], "127.0.0.1"))
    assert (await admin.resolve(crafted))[0]["data"]["value"] == "x"
    await admin.delete(crafted)
    assert client.get(f"/api/v1/users/{victim}", headers=seed.admin).status_code == 200
    gone = client.get(f"/api/handles/{url_path(crafted)}")
    assert gone.json()["responseCode"] == 100  # the handle went, and only it
    assert url_path("88.101.5/./a b/..") == "88.101.5/%2E/a%20b/%2E%2E"


async def test_a_platform_error_is_a_console_error_not_an_exception(client: TestClient) -> None:
    """A 500 of the platform (a failing route) reaches pages as a ConsoleError they show."""

    app = client.app
    assert isinstance(app, FastAPI)

    @app.get("/api/v1/test-fails")
    def fails() -> None:
        raise RuntimeError("the store broke")

    anonymous = ApiClient(client.app, None, "127.0.0.1")
    with pytest.raises(ConsoleError) as failed:
        await anonymous.get("/api/v1/test-fails")
    assert failed.value.status == 500

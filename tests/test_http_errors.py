"""Every error on the HTTP surface is an RFC 9457 problem document, never HTML or a trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.security.auth import source_address
from tests.conftest import ADMIN_PASSWORD, login, make_settings

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int) -> dict[str, object]:
    from httpx2 import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert "type" in body
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    "path", ["/api/nothing-here", "/api/v1/nope", "/api/v1/tenants/x/y/z", "/nothing"]
)
def test_unknown_paths_are_404_problems(client: TestClient, path: str) -> None:
    body = assert_problem(client.get(path), 404)
    assert body["instance"] == path


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    body = assert_problem(client.put("/api/v1/auth/login", json={}), 405)
    assert "PUT" in str(body["detail"])


def test_malformed_json_is_400_problem(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/login", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert body["type"] == "urn:plantwire:problem:malformed-json"


def test_wrong_types_are_422_problem_without_echoing_input(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", json={"username": 5, "password": "s3cret-pw"})
    body = assert_problem(response, 422)
    assert body["type"] == "urn:plantwire:problem:validation"
    assert any(error["loc"][-1] == "username" for error in body["errors"])  # type: ignore[attr-defined]
    assert "s3cret-pw" not in response.text


def test_unknown_fields_are_rejected(client: TestClient) -> None:
    headers = login(client, "admin", ADMIN_PASSWORD)
    response = client.post("/api/v1/tenants", json={"name": "T", "colour": "red"}, headers=headers)
    assert_problem(response, 422)


def test_unauthenticated_is_401_problem(client: TestClient) -> None:
    response = client.get("/api/v1/tenants")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_conflict_is_409_problem(client: TestClient) -> None:
    headers = login(client, "admin", ADMIN_PASSWORD)
    assert client.post("/api/v1/tenants", json={"name": "Acme"}, headers=headers).status_code == 201
    body = assert_problem(
        client.post("/api/v1/tenants", json={"name": "ACME"}, headers=headers), 409
    )
    assert body["type"] == "urn:plantwire:problem:conflict"


@pytest.fixture
def small_body_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "data", max_body_bytes=2048)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_oversize_body_is_413_and_writes_nothing(small_body_client: TestClient) -> None:
    headers = login(small_body_client, "admin", ADMIN_PASSWORD)
    big = {"name": "x" * 5000}
    assert_problem(small_body_client.post("/api/v1/tenants", json=big, headers=headers), 413)

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    streamed = small_body_client.post(
        "/api/v1/tenants",
        content=chunks(),
        headers={**headers, "content-type": "application/json"},
    )
    assert_problem(streamed, 413)
    listed = small_body_client.get("/api/v1/tenants", headers=headers).json()
    assert listed["items"] == []


def test_bad_content_length_is_400(small_body_client: TestClient) -> None:
    response = small_body_client.post(
        "/api/v1/auth/login", content=b"{}", headers={"content-length": "-5"}
    )
    assert response.status_code == 400


def test_bug_is_500_problem_without_trace(initialised: object) -> None:
    from plantwire.config import Settings

    assert isinstance(initialised, Settings)
    app = create_app(initialised)

    def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/api/v1/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/api/v1/explode")
    body = assert_problem(response, 500)
    assert "secret internal detail" not in response.text
    assert body["detail"]


def test_request_id_header(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/api/missing").headers["x-request-id"]
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize(
    ("host", "recorded"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("testclient", "testclient"),
        ("proxy-1.plant.local", "proxy-1.plant.local"),
        ("h" * 64, "h" * 64),
        ("h" * 65, "invalid"),
        ("h" * 70, "invalid"),
        ("", "invalid"),
        ("10.0.0.1, 10.0.0.2", "invalid"),
        ("<script>", "invalid"),
        ("a\x00b", "invalid"),
        (None, "unknown"),
    ],
)
def test_source_address(host: str | None, recorded: str) -> None:
    scope: dict[str, object] = {
        "type": "http",
        "headers": [],
        "client": None if host is None else (host, 1),
    }
    assert source_address(Request(scope)) == recorded


def test_overlong_client_address_does_not_break_login(
    tmp_path: Path, database_url: str | None
) -> None:
    """A 70-character client host (e.g. from X-Forwarded-For) used to overflow the audit log's
    64-character source column: a 500 on PostgreSQL."""
    settings = make_settings(tmp_path / "data", database_url=database_url)
    initialise(settings, ADMIN_PASSWORD)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, client=("h" * 70, 1)) as odd_client:
        wrong = {"username": "admin", "password": "not-the-password"}
        assert_problem(odd_client.post("/api/v1/auth/login", json=wrong), 401)
        headers = login(odd_client, "admin", ADMIN_PASSWORD)
        entries = odd_client.get("/api/v1/audit", headers=headers).json()["items"]
    logins = [entry["source"] for entry in entries if entry["action"] == "auth.login"]
    assert logins == ["invalid", "invalid"]  # the successful and the failed login
    assert all(len(entry["source"]) <= 64 for entry in entries)

"""Bad input never reaches the database as a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PASSWORD, Seed


def test_nul_in_a_login_username_is_422(seeded: tuple[TestClient, Seed]) -> None:
    client, _ = seeded
    response = client.post("/api/v1/auth/login", json={"username": "a\u0000b", "password": "x"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "path", ["/api/v1/tenants/%00", "/api/v1/tokens/%00", "/api/v1/users/a%00b"]
)
def test_nul_in_an_id_is_a_client_error(seeded: tuple[TestClient, Seed], path: str) -> None:
    client, seed = seeded
    response = client.get(path, headers=seed.tenants["a"].headers["tenant-admin"])
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"


def test_a_refused_write_with_nul_in_its_path_is_still_audited(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    viewer = seed.tenants["a"].headers["viewer"]
    assert client.delete("/api/v1/users/x%00y", headers=viewer).status_code == 403
    entries = client.get(
        "/api/v1/audit", params={"outcome": "denied", "limit": 1}, headers=seed.admin
    ).json()["items"]
    assert entries[0]["detail"]["path"] == "/api/v1/users/x\\x00y"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/audit", {"actor": "\u0000"}),
        ("/api/v1/audit", {"tenant": "\u0000"}),
        ("/api/v1/users", {"tenant": "a\u0000"}),
    ],
)
def test_nul_in_a_filter_is_422(
    seeded: tuple[TestClient, Seed], path: str, params: dict[str, str]
) -> None:
    client, seed = seeded
    assert client.get(path, params=params, headers=seed.admin).status_code == 422


def test_nul_in_a_tenant_reference_is_422(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    body = {"username": "nully", "password": PASSWORD, "role": "viewer", "tenant": "\u0000"}
    assert client.post("/api/v1/users", json=body, headers=seed.admin).status_code == 422


def test_a_body_that_is_not_utf8_is_malformed_json(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    response = client.post(
        "/api/v1/tenants",
        content=b'{"name": "\xff\xfe"}',
        headers={**seed.admin, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "urn:plantwire:problem:malformed-json"


def test_platform_admins_cannot_narrow_tokens_to_a_tenant_role(
    seeded: tuple[TestClient, Seed],
) -> None:
    """A tenant-role token without a tenant would read platform-level data as a 'tenant'."""
    client, seed = seeded
    response = client.post(
        "/api/v1/tokens", json={"name": "narrow", "role": "tenant-admin"}, headers=seed.admin
    )
    assert response.status_code == 422
    ok = client.post(
        "/api/v1/tokens", json={"name": "full", "role": "platform-admin"}, headers=seed.admin
    )
    assert ok.status_code == 201


def test_the_openapi_document_says_how_to_authenticate(seeded: tuple[TestClient, Seed]) -> None:
    client, _ = seeded
    document = client.get("/api/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["session"]["in"] == "cookie"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = (path, method) == ("/api/v1/auth/login", "post")
            if path.startswith("/api/v1/"):
                assert ("security" in operation) is not public, (method, path)

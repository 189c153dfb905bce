"""API tokens: the secret is shown once and stored only as its SHA-256; a token's role never
exceeds its creator's, and the role it acts with is the lower of its own and its user's;
lifetimes are capped; revocation is immediate; tenant admins manage their tenant's tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import PASSWORD, Seed
from tests.security.helpers import (
    assert_problem,
    assert_unauthenticated,
    bearer,
    create_token,
    platform_of,
    sha256_hex,
    whoami,
)

TOKENS = "/api/v1/tokens"


def _new_user(client: TestClient, headers: dict[str, str], username: str) -> int:
    body = {"username": username, "password": PASSWORD, "role": "viewer"}
    return client.post("/api/v1/users", json=body, headers=headers).status_code


def _listed_ids(client: TestClient, headers: dict[str, str], **params: Any) -> set[str]:
    response = client.get(TOKENS, params={"limit": 1000, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {token["id"] for token in response.json()["items"]}


def test_the_secret_is_shown_once(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["engineer"]
    created, token_headers = create_token(client, headers, name="deploy script")
    secret = created["token"]
    assert secret.startswith("pw_")
    assert created["name"] == "deploy script"
    assert created["kind"] == "api"
    assert created["role"] == "engineer"  # the creator's role by default
    assert created["user_id"] == seed.tenants["a"].users["engineer"]["id"]
    assert created["tenant"] == seed.tenants["a"].id
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    assert whoami(client, token_headers)["username"] == "a-engineer"

    readings = [
        client.get(f"{TOKENS}/{created['id']}", headers=headers),
        client.get(TOKENS, headers=headers),
        client.get(TOKENS, params={"include_inactive": True}, headers=headers),
        client.get(
            TOKENS, params={"scope": "tenant"}, headers=seed.tenants["a"].headers["tenant-admin"]
        ),
        client.get(TOKENS, params={"scope": "tenant"}, headers=seed.admin),
        client.get("/api/v1/audit", headers=seed.admin),
    ]
    for response in readings:
        assert response.status_code == 200, response.text
        assert secret not in response.text
        assert created["id"] in response.text
    single = readings[0].json()
    assert "token" not in single
    assert {k: v for k, v in created.items() if k != "token"} == single
    for listing in readings[1:5]:
        assert all("token" not in item for item in listing.json()["items"])


def test_the_secret_is_stored_as_its_sha256(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    created, _ = create_token(client, seed.tenants["a"].headers["operator"], name="hashed")
    secret = created["token"]
    with platform_of(client).engine.connect() as connection:
        row = (
            connection.execute(
                text("SELECT * FROM api_tokens WHERE id = :id"), {"id": created["id"]}
            )
            .mappings()
            .one()
        )
    assert row["secret_hash"] == sha256_hex(secret)
    assert len(row["secret_hash"]) == 64
    for column, value in row.items():
        assert secret not in str(value), f"column {column} holds the plaintext secret"
        assert secret.removeprefix("pw_") not in str(value), column


def test_a_token_cannot_outrank_its_creator(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["engineer"]
    before = _listed_ids(client, headers, include_inactive=True)
    for role in ("tenant-admin", "platform-admin"):
        response = client.post(TOKENS, json={"name": "greedy", "role": role}, headers=headers)
        assert_problem(response, 403)
    assert _listed_ids(client, headers, include_inactive=True) == before
    for role in ("engineer", "operator", "viewer"):
        created, token_headers = create_token(client, headers, name=f"as {role}", role=role)
        assert created["role"] == role
        assert whoami(client, token_headers)["role"] == role
    # A token cannot mint a token above its own role either.
    _, viewer_token = create_token(client, headers, name="viewer", role="viewer")
    response = client.post(TOKENS, json={"name": "up", "role": "engineer"}, headers=viewer_token)
    assert_problem(response, 403)


def test_a_token_acts_with_the_lower_of_its_role_and_its_users(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    admin_session = tenant.headers["tenant-admin"]
    _, viewer_token = create_token(client, admin_session, name="read-only", role="viewer")
    _, admin_token = create_token(client, admin_session, name="full", role="tenant-admin")

    assert whoami(client, viewer_token)["role"] == "viewer"
    assert_problem(client.post("/api/v1/users", json={}, headers=viewer_token), 403)
    assert _new_user(client, viewer_token, "via-viewer-token") == 403
    assert_problem(client.get("/api/v1/audit", headers=viewer_token), 403)
    assert _new_user(client, admin_token, "via-admin-token") == 201  # the user may

    # Demote the user: the tenant-admin token now acts as the new, lower role.
    user_id = tenant.users["tenant-admin"]["id"]
    response = client.patch(
        f"/api/v1/users/{user_id}", json={"role": "operator"}, headers=seed.admin
    )
    assert response.status_code == 200, response.text
    assert whoami(client, admin_token)["role"] == "operator"
    assert _new_user(client, admin_token, "after-demotion") == 403
    assert_problem(client.get("/api/v1/users", headers=admin_token), 403)
    assert_problem(client.get(TOKENS, params={"scope": "tenant"}, headers=admin_token), 403)
    response = client.post(TOKENS, json={"name": "x", "role": "tenant-admin"}, headers=admin_token)
    assert_problem(response, 403)
    assert whoami(client, viewer_token)["role"] == "viewer"  # lower than the user still


def test_token_lifetime_is_capped(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["viewer"]
    cap = platform_of(client).settings.token_max_ttl_days
    before = _listed_ids(client, headers, include_inactive=True)
    for days in (cap + 1, 3650):
        response = client.post(
            TOKENS, json={"name": "long", "expires_in_days": days}, headers=headers
        )
        assert_problem(response, 422)
    for days in (0, -1, 3651):  # outside what the schema accepts at all
        response = client.post(
            TOKENS, json={"name": "bad", "expires_in_days": days}, headers=headers
        )
        assert_problem(response, 422)
    assert _listed_ids(client, headers, include_inactive=True) == before

    created, _ = create_token(client, headers, name="longest", expires_in_days=cap)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=cap))) < timedelta(minutes=1)


def test_revoking_ones_own_token(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["operator"]
    created, token_headers = create_token(client, headers)
    kept, kept_headers = create_token(client, headers, name="kept")
    assert created["id"] in _listed_ids(client, headers)

    response = client.delete(f"{TOKENS}/{created['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_unauthenticated(client.get("/api/v1/auth/me", headers=token_headers))
    assert created["id"] not in _listed_ids(client, headers)
    assert created["id"] in _listed_ids(client, headers, include_inactive=True)
    revoked = client.get(f"{TOKENS}/{created['id']}", headers=headers).json()
    assert revoked["revoked_at"] is not None
    assert whoami(client, kept_headers)["username"] == "a-operator"

    # A token can revoke itself (e.g. a script cleaning up after itself).
    response = client.delete(f"{TOKENS}/{kept['id']}", headers=kept_headers)
    assert response.status_code == 204, response.text
    assert_unauthenticated(client.get("/api/v1/auth/me", headers=kept_headers))


def test_tenant_admin_manages_its_tenants_tokens_only(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    a, b = seed.tenants["a"], seed.tenants["b"]
    a_admin = a.headers["tenant-admin"]
    a_token, a_token_headers = create_token(client, a.headers["engineer"], name="a engineer")
    b_token, b_token_headers = create_token(client, b.headers["engineer"], name="b engineer")
    platform_token, platform_headers = create_token(client, seed.admin, name="platform")

    listing = client.get(TOKENS, params={"scope": "tenant", "limit": 1000}, headers=a_admin)
    assert listing.status_code == 200, listing.text
    items = listing.json()["items"]
    assert a_token["id"] in {t["id"] for t in items}
    assert {t["tenant"] for t in items} == {a.id}
    a_user_ids = {u["id"] for u in a.users.values()}
    assert {t["user_id"] for t in items} == a_user_ids  # every A user has a session

    # Another tenant's token, and a platform admin's, are out of reach: 404, untouched.
    for token in (b_token, platform_token):
        assert_problem(client.get(f"{TOKENS}/{token['id']}", headers=a_admin), 404)
        assert_problem(client.delete(f"{TOKENS}/{token['id']}", headers=a_admin), 404)
    assert whoami(client, b_token_headers)["username"] == "b-engineer"
    assert whoami(client, platform_headers)["username"] == "admin"

    # A's member token: the tenant admin can read and revoke it.
    response = client.get(f"{TOKENS}/{a_token['id']}", headers=a_admin)
    assert response.status_code == 200, response.text
    response = client.delete(f"{TOKENS}/{a_token['id']}", headers=a_admin)
    assert response.status_code == 204, response.text
    assert_unauthenticated(client.get("/api/v1/auth/me", headers=a_token_headers))

    # The platform admin reaches every tenant's tokens.
    response = client.delete(f"{TOKENS}/{b_token['id']}", headers=seed.admin)
    assert response.status_code == 204, response.text
    assert_unauthenticated(client.get("/api/v1/auth/me", headers=b_token_headers))


def test_members_see_and_revoke_only_their_own_tokens(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    a = seed.tenants["a"]
    other, other_headers = create_token(client, a.headers["operator"], name="operator's")
    for role in ("engineer", "operator", "viewer"):
        headers = a.headers[role]
        response = client.get(TOKENS, params={"scope": "tenant"}, headers=headers)
        assert_problem(response, 403)
        if role == "operator":
            continue
        assert other["id"] not in _listed_ids(client, headers, include_inactive=True)
        assert_problem(client.get(f"{TOKENS}/{other['id']}", headers=headers), 404)
        assert_problem(client.delete(f"{TOKENS}/{other['id']}", headers=headers), 404)
    assert whoami(client, other_headers)["username"] == "a-operator"
    assert whoami(client, bearer(other["token"]))["role"] == "operator"


def test_deleting_users_ends_their_tokens(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    b = seed.tenants["b"]
    tokens = {role: create_token(client, headers)[1] for role, headers in b.headers.items()}
    with platform_of(client).engine.connect() as connection:
        count = text("SELECT COUNT(*) FROM api_tokens WHERE tenant_id = :t")
        assert connection.execute(count, {"t": b.id}).scalar_one() == 8  # 4 sessions, 4 tokens
    for role in ("viewer", "operator", "engineer", "tenant-admin"):
        response = client.delete(f"/api/v1/users/{b.users[role]['id']}", headers=seed.admin)
        assert response.status_code == 204, response.text
        assert_unauthenticated(client.get("/api/v1/auth/me", headers=b.headers[role]))
        assert_unauthenticated(client.get("/api/v1/auth/me", headers=tokens[role]))
    with platform_of(client).engine.connect() as connection:
        assert connection.execute(count, {"t": b.id}).scalar_one() == 0
    # With its users (and so their tokens) gone, the tenant can be deleted.
    response = client.delete(f"/api/v1/tenants/{b.id}", headers=seed.admin)
    assert response.status_code == 204, response.text
    assert_problem(client.get(f"/api/v1/tenants/{b.id}", headers=seed.admin), 404)

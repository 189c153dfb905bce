"""The role matrix, checked through the HTTP API: every role against every security action,
against a table written out here by hand (not read from ``ROLE_PERMISSIONS``: the point is to
catch that table drifting). Plus the limits on what a tenant admin may grant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, PASSWORD, Seed, login
from tests.security.helpers import (
    assert_problem,
    bearer,
    user_status,
    usernames,
    whoami,
)

ROLES = ("platform-admin", "tenant-admin", "engineer", "operator", "viewer")

Y, N = True, False
#: What each role may do.          platform  tenant-admin  engineer  operator  viewer
EXPECTED: dict[str, tuple[bool, bool, bool, bool, bool]] = {
    "tenant.list": (Y, Y, Y, Y, Y),
    "tenant.get": (Y, Y, Y, Y, Y),
    "tenant.create": (Y, N, N, N, N),
    "tenant.update": (Y, Y, N, N, N),
    "tenant.delete": (Y, N, N, N, N),
    "user.list": (Y, Y, Y, N, N),
    "user.get": (Y, Y, Y, N, N),
    "user.create": (Y, Y, N, N, N),
    "user.update": (Y, Y, N, N, N),
    "user.delete": (Y, Y, N, N, N),
    "token.create-own": (Y, Y, Y, Y, Y),
    "token.list-own": (Y, Y, Y, Y, Y),
    "token.revoke-own": (Y, Y, Y, Y, Y),
    "token.list-tenant": (Y, Y, N, N, N),
    "audit.read": (Y, Y, N, N, N),
}


@dataclass
class Ctx:
    """One role acting in tenant A (the platform admin acts on tenant A's resources too)."""

    client: TestClient
    seed: Seed
    role: str
    headers: dict[str, str]

    @property
    def admin(self) -> dict[str, str]:
        return self.seed.admin

    @property
    def tenant_id(self) -> str:
        return self.seed.tenants["a"].id

    @property
    def slug(self) -> str:
        return self.role.replace("-", "")

    def admin_makes_user(self, username: str, role: str = "operator") -> str:
        body = {"username": username, "password": PASSWORD, "role": role, "tenant": self.tenant_id}
        response = self.client.post("/api/v1/users", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        user_id: str = response.json()["id"]
        return user_id


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _tenant_names(ctx: Ctx) -> set[str]:
    response = ctx.client.get("/api/v1/tenants", params={"limit": 1000}, headers=ctx.admin)
    assert response.status_code == 200, response.text
    return {tenant["name"] for tenant in response.json()["items"]}


# --- one function per action: act as ctx.role, check the effect, return the status --------


def tenant_list(ctx: Ctx) -> int:
    response = ctx.client.get("/api/v1/tenants", headers=ctx.headers)
    if response.status_code == 200:
        assert ctx.tenant_id in {t["id"] for t in response.json()["items"]}
    return response.status_code


def tenant_get(ctx: Ctx) -> int:
    response = ctx.client.get(f"/api/v1/tenants/{ctx.tenant_id}", headers=ctx.headers)
    if response.status_code == 200:
        assert response.json()["id"] == ctx.tenant_id
    return response.status_code


def tenant_create(ctx: Ctx) -> int:
    name = f"Made by {ctx.role}"
    response = ctx.client.post("/api/v1/tenants", json={"name": name}, headers=ctx.headers)
    assert (name in _tenant_names(ctx)) == _ok(response.status_code)
    return response.status_code


def tenant_update(ctx: Ctx) -> int:
    before = ctx.client.get(f"/api/v1/tenants/{ctx.tenant_id}", headers=ctx.admin).json()["name"]
    name = f"Renamed by {ctx.role}"
    response = ctx.client.patch(
        f"/api/v1/tenants/{ctx.tenant_id}", json={"name": name}, headers=ctx.headers
    )
    after = ctx.client.get(f"/api/v1/tenants/{ctx.tenant_id}", headers=ctx.admin).json()["name"]
    assert after == (name if _ok(response.status_code) else before)
    return response.status_code


def tenant_delete(ctx: Ctx) -> int:
    # An empty tenant, so that the only reason to refuse is the role.
    name = f"Empty for {ctx.role}"
    created = ctx.client.post("/api/v1/tenants", json={"name": name}, headers=ctx.admin)
    assert created.status_code == 201, created.text
    response = ctx.client.delete(f"/api/v1/tenants/{created.json()['id']}", headers=ctx.headers)
    assert (name not in _tenant_names(ctx)) == _ok(response.status_code)
    return response.status_code


def user_list(ctx: Ctx) -> int:
    response = ctx.client.get("/api/v1/users", headers=ctx.headers)
    if response.status_code == 200:
        assert "a-viewer" in {u["username"] for u in response.json()["items"]}
    return response.status_code


def user_get(ctx: Ctx) -> int:
    user_id = ctx.seed.tenants["a"].users["viewer"]["id"]
    response = ctx.client.get(f"/api/v1/users/{user_id}", headers=ctx.headers)
    if response.status_code == 200:
        assert response.json()["username"] == "a-viewer"
    return response.status_code


def user_create(ctx: Ctx) -> int:
    username = f"made-by-{ctx.slug}"
    body = {"username": username, "password": PASSWORD, "role": "viewer", "tenant": ctx.tenant_id}
    response = ctx.client.post("/api/v1/users", json=body, headers=ctx.headers)
    assert (username in usernames(ctx.client, ctx.admin)) == _ok(response.status_code)
    return response.status_code


def user_update(ctx: Ctx) -> int:
    user_id = ctx.admin_makes_user(f"to-demote-{ctx.slug}", role="operator")
    response = ctx.client.patch(
        f"/api/v1/users/{user_id}", json={"role": "viewer"}, headers=ctx.headers
    )
    user = user_status(ctx.client, ctx.admin, user_id)
    assert user is not None
    assert user["role"] == ("viewer" if _ok(response.status_code) else "operator")
    return response.status_code


def user_delete(ctx: Ctx) -> int:
    user_id = ctx.admin_makes_user(f"to-delete-{ctx.slug}", role="viewer")
    response = ctx.client.delete(f"/api/v1/users/{user_id}", headers=ctx.headers)
    exists = user_status(ctx.client, ctx.admin, user_id) is not None
    assert exists != _ok(response.status_code)
    return response.status_code


def token_create_own(ctx: Ctx) -> int:
    response = ctx.client.post("/api/v1/tokens", json={"name": "matrix"}, headers=ctx.headers)
    if _ok(response.status_code):
        assert whoami(ctx.client, bearer(response.json()["token"]))["role"] == ctx.role
    return response.status_code


def token_list_own(ctx: Ctx) -> int:
    response = ctx.client.get("/api/v1/tokens", headers=ctx.headers)
    if response.status_code == 200:
        me = whoami(ctx.client, ctx.headers)["id"]
        owners = {t["user_id"] for t in response.json()["items"]}
        assert owners == {me}  # at least the current session, and only one's own
    return response.status_code


def token_revoke_own(ctx: Ctx) -> int:
    made = ctx.client.post("/api/v1/tokens", json={"name": "to revoke"}, headers=ctx.headers)
    assert made.status_code == 201, made.text
    response = ctx.client.delete(f"/api/v1/tokens/{made.json()['id']}", headers=ctx.headers)
    probe = ctx.client.get("/api/v1/auth/me", headers=bearer(made.json()["token"]))
    assert (probe.status_code == 401) == _ok(response.status_code)
    return response.status_code


def token_list_tenant(ctx: Ctx) -> int:
    response = ctx.client.get("/api/v1/tokens", params={"scope": "tenant"}, headers=ctx.headers)
    if response.status_code == 200:
        owners = {t["user_id"] for t in response.json()["items"]}
        assert ctx.seed.tenants["a"].users["viewer"]["id"] in owners
    return response.status_code


def audit_read(ctx: Ctx) -> int:
    response = ctx.client.get("/api/v1/audit", headers=ctx.headers)
    if response.status_code == 200:
        assert response.json()["items"]
    return response.status_code


ACTIONS: dict[str, Callable[[Ctx], int]] = {
    "tenant.list": tenant_list,
    "tenant.get": tenant_get,
    "tenant.create": tenant_create,
    "tenant.update": tenant_update,
    "tenant.delete": tenant_delete,
    "user.list": user_list,
    "user.get": user_get,
    "user.create": user_create,
    "user.update": user_update,
    "user.delete": user_delete,
    "token.create-own": token_create_own,
    "token.list-own": token_list_own,
    "token.revoke-own": token_revoke_own,
    "token.list-tenant": token_list_tenant,
    "audit.read": audit_read,
}


def test_every_action_of_the_matrix_is_exercised() -> None:
    assert set(ACTIONS) == set(EXPECTED)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(seeded: tuple[TestClient, Seed], role: str) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.admin if role == "platform-admin" else seed.tenants["a"].headers[role]
    ctx = Ctx(client=client, seed=seed, role=role, headers=headers)
    column = ROLES.index(role)

    observed: dict[str, int] = {}
    for action, perform in ACTIONS.items():
        observed[action] = perform(ctx)

    def verdict(status: int) -> str:
        return "allowed" if _ok(status) else ("denied" if status == 403 else f"HTTP {status}")

    wrong = {
        action: f"expected {'allowed' if EXPECTED[action][column] else 'denied'}, "
        f"got {verdict(status)}"
        for action, status in observed.items()
        if verdict(status) != ("allowed" if EXPECTED[action][column] else "denied")
    }
    assert not wrong, f"role {role}: {wrong}"


# --- what a tenant admin may grant -----------------------------------------------------------


def test_tenant_admin_cannot_create_a_platform_admin(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    headers = tenant.headers["tenant-admin"]
    for number, extra in enumerate(({}, {"tenant": tenant.id})):
        body = {"username": f"sneaky-{number}", "password": PASSWORD, "role": "platform-admin"}
        response = client.post("/api/v1/users", json={**body, **extra}, headers=headers)
        assert_problem(response, 403)
    assert not {"sneaky-0", "sneaky-1"} & usernames(client, seed.admin)
    # Roles up to its own are fine.
    for role in ("tenant-admin", "engineer", "operator", "viewer"):
        body = {"username": f"fine-{role}", "password": PASSWORD, "role": role}
        response = client.post("/api/v1/users", json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["tenant"] == tenant.id


def test_tenant_admin_cannot_raise_a_role_above_its_own(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    headers = tenant.headers["tenant-admin"]
    for role in ("viewer", "tenant-admin"):  # someone else, and itself
        user_id = tenant.users[role]["id"]
        response = client.patch(
            f"/api/v1/users/{user_id}", json={"role": "platform-admin"}, headers=headers
        )
        assert_problem(response, 403)
        user = user_status(client, seed.admin, user_id)
        assert user is not None
        assert user["role"] == role
    # Within its rank it may change roles.
    viewer_id = tenant.users["viewer"]["id"]
    response = client.patch(
        f"/api/v1/users/{viewer_id}", json={"role": "tenant-admin"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "tenant-admin"


def test_lower_roles_cannot_grant_at_all(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    tenant = seed.tenants["a"]
    for role in ("engineer", "operator", "viewer"):
        target = tenant.users["viewer"]["id"]
        response = client.patch(
            f"/api/v1/users/{target}", json={"role": "engineer"}, headers=tenant.headers[role]
        )
        assert_problem(response, 403)
        own = tenant.users[role]["id"]
        response = client.patch(
            f"/api/v1/users/{own}", json={"role": "tenant-admin"}, headers=tenant.headers[role]
        )
        assert_problem(response, 403)
        assert whoami(client, tenant.headers[role])["role"] == role


def test_tenant_admin_cannot_modify_a_user_who_outranks_it(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    client.cookies.clear()
    headers = seed.tenants["a"].headers["tenant-admin"]
    admin_id = whoami(client, seed.admin)["id"]
    for body in ({"disabled": True}, {"password": "taken-over-pw"}, {"role": "viewer"}):
        response = client.patch(f"/api/v1/users/{admin_id}", json=body, headers=headers)
        assert response.status_code in (403, 404), response.text
        assert_problem(response, response.status_code)
    response = client.delete(f"/api/v1/users/{admin_id}", headers=headers)
    assert response.status_code in (403, 404), response.text
    assert_problem(response, response.status_code)

    admin = user_status(client, seed.admin, admin_id)
    assert admin is not None
    assert (admin["role"], admin["disabled"]) == ("platform-admin", False)
    assert whoami(client, seed.admin)["username"] == "admin"  # sessions not revoked
    assert whoami(client, login(client, "admin", ADMIN_PASSWORD))["username"] == "admin"

"""The audit log: every write, login and refused write leaves one entry naming actor, tenant,
action, target, source address and outcome; tenant admins read their tenant's entries only;
the table refuses UPDATE and DELETE at the database level, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from plantwire.security.tables import AuditEntry
from tests.conftest import PASSWORD, Seed
from tests.security.helpers import (
    SOURCE,
    assert_problem,
    create_token,
    platform_of,
    token_row,
    whoami,
)

AUDIT = "/api/v1/audit"


def _read(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get(AUDIT, params={"limit": 1000, **params}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _latest_id(client: TestClient, admin: dict[str, str]) -> int:
    items = _read(client, admin, limit=1)
    return int(items[0]["id"]) if items else 0


def _one_new_entry(
    client: TestClient, admin: dict[str, str], act: Callable[[], httpx2.Response], status: int
) -> tuple[httpx2.Response, dict[str, Any]]:
    """Do ``act`` (expecting ``status``); it must have added exactly one audit entry."""
    mark = _latest_id(client, admin)
    response = act()
    assert response.status_code == status, response.text
    new = [entry for entry in _read(client, admin) if entry["id"] > mark]
    assert len(new) == 1, new
    return response, new[0]


def _check(entry: dict[str, Any], **expected: Any) -> None:
    expected.setdefault("source", SOURCE)
    expected.setdefault("outcome", "success")
    actual = {key: entry[key] for key in expected}
    assert actual == expected, entry


def test_every_write_is_audited(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    admin = seed.admin
    admin_id = whoami(client, admin)["id"]
    a = seed.tenants["a"]
    a_admin, a_admin_id = a.headers["tenant-admin"], a.users["tenant-admin"]["id"]

    # Tenants.
    response, entry = _one_new_entry(
        client,
        admin,
        lambda: client.post("/api/v1/tenants", json={"name": "Audited"}, headers=admin),
        201,
    )
    tenant_id = response.json()["id"]
    _check(
        entry,
        actor="admin",
        actor_id=admin_id,
        tenant=tenant_id,
        action="tenant.create",
        target_type="tenant",
        target_id=tenant_id,
    )
    _, entry = _one_new_entry(
        client,
        admin,
        lambda: client.patch(
            f"/api/v1/tenants/{tenant_id}", json={"name": "Audited 2"}, headers=admin
        ),
        200,
    )
    _check(entry, actor="admin", tenant=tenant_id, action="tenant.update", target_id=tenant_id)
    assert entry["detail"] == {"name": ["Audited", "Audited 2"]}
    _, entry = _one_new_entry(
        client, admin, lambda: client.delete(f"/api/v1/tenants/{tenant_id}", headers=admin), 204
    )
    _check(entry, actor="admin", tenant=tenant_id, action="tenant.delete", target_id=tenant_id)

    # Users, by a tenant admin.
    body = {"username": "audited-user", "password": PASSWORD, "role": "operator"}
    response, entry = _one_new_entry(
        client, admin, lambda: client.post("/api/v1/users", json=body, headers=a_admin), 201
    )
    user_id = response.json()["id"]
    _check(
        entry,
        actor="a-tenant-admin",
        actor_id=a_admin_id,
        tenant=a.id,
        action="user.create",
        target_type="user",
        target_id=user_id,
    )
    assert entry["detail"] == {"username": "audited-user", "role": "operator"}
    assert PASSWORD not in str(entry)
    _, entry = _one_new_entry(
        client,
        admin,
        lambda: client.patch(
            f"/api/v1/users/{user_id}",
            json={"role": "viewer", "password": "another-password"},
            headers=a_admin,
        ),
        200,
    )
    _check(entry, actor="a-tenant-admin", tenant=a.id, action="user.update", target_id=user_id)
    assert entry["detail"]["role"] == ["operator", "viewer"]
    assert "another-password" not in str(entry)
    _, entry = _one_new_entry(
        client, admin, lambda: client.delete(f"/api/v1/users/{user_id}", headers=a_admin), 204
    )
    _check(
        entry,
        actor="a-tenant-admin",
        actor_id=a_admin_id,
        tenant=a.id,
        action="user.delete",
        target_type="user",
        target_id=user_id,
    )

    # Tokens.
    engineer = a.headers["engineer"]
    engineer_id = a.users["engineer"]["id"]
    response, entry = _one_new_entry(
        client,
        admin,
        lambda: client.post("/api/v1/tokens", json={"name": "ci"}, headers=engineer),
        201,
    )
    token = response.json()
    _check(
        entry,
        actor="a-engineer",
        actor_id=engineer_id,
        tenant=a.id,
        action="token.create",
        target_type="token",
        target_id=token["id"],
    )
    assert token["token"] not in str(entry)
    _, entry = _one_new_entry(
        client, admin, lambda: client.delete(f"/api/v1/tokens/{token['id']}", headers=engineer), 204
    )
    _check(
        entry,
        actor="a-engineer",
        actor_id=engineer_id,
        tenant=a.id,
        action="token.revoke",
        target_type="token",
        target_id=token["id"],
    )


def test_logins_logouts_and_refusals_are_audited(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    admin = seed.admin
    a = seed.tenants["a"]
    viewer_id = a.users["viewer"]["id"]

    def attempt(username: str, password: str) -> httpx2.Response:
        return client.post("/api/v1/auth/login", json={"username": username, "password": password})

    response, entry = _one_new_entry(client, admin, lambda: attempt("a-viewer", PASSWORD), 200)
    session_id = token_row(client, response.json()["token"]).id
    _check(
        entry,
        actor="a-viewer",
        actor_id=viewer_id,
        tenant=a.id,
        action="auth.login",
        target_type="session",
        target_id=session_id,
    )
    session = {"Authorization": f"Bearer {response.json()['token']}"}
    client.cookies.clear()

    _, entry = _one_new_entry(client, admin, lambda: attempt("a-viewer", "wrong-password"), 401)
    _check(
        entry,
        actor="a-viewer",
        actor_id=viewer_id,  # the account someone tried to log in to
        tenant=a.id,
        action="auth.login",
        target_type="session",
        target_id=None,
        outcome="failure",
    )
    _, entry = _one_new_entry(client, admin, lambda: attempt("no-such-user", "wrong-pw"), 401)
    _check(entry, actor="no-such-user", actor_id=None, tenant=None, outcome="failure")
    assert "wrong-pw" not in str(entry)

    _, entry = _one_new_entry(
        client, admin, lambda: client.post("/api/v1/auth/logout", headers=session), 204
    )
    _check(
        entry,
        actor="a-viewer",
        actor_id=viewer_id,
        tenant=a.id,
        action="auth.logout",
        target_type="session",
        target_id=session_id,
    )

    # A write the caller's role does not allow: refused, and recorded as denied.
    body = {"username": "not-allowed", "password": PASSWORD, "role": "viewer"}
    viewer = a.headers["viewer"]
    _, entry = _one_new_entry(
        client, admin, lambda: client.post("/api/v1/users", json=body, headers=viewer), 403
    )
    _check(
        entry,
        actor="a-viewer",
        actor_id=viewer_id,
        tenant=a.id,
        action="user:write",
        target_type="user",
        outcome="denied",
    )
    assert entry["detail"] == {
        "method": "POST",
        "path": "/api/v1/users",
        "status": 403,
        "reason": "Role 'viewer' does not grant 'user:write'.",
    }
    assert not _read(client, admin, action="user.create", target_type="user", actor="a-viewer")


def test_tenant_admins_read_their_own_tenants_entries(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    a, b = seed.tenants["a"], seed.tenants["b"]
    for key, tenant in seed.tenants.items():
        assert_problem(
            client.post("/api/v1/tenants", json={"name": "x"}, headers=tenant.headers["viewer"]),
            403,
        )
        refused = client.post(
            "/api/v1/auth/login", json={"username": f"{key}-viewer", "password": "nope-nope"}
        )
        assert refused.status_code == 401
    create_token(client, b.headers["engineer"])

    for own, other in ((a, b), (b, a)):
        headers = own.headers["tenant-admin"]
        for params in ({}, {"tenant": other.id}, {"tenant": other.id, "outcome": "denied"}):
            entries = _read(client, headers, **params)
            assert entries, params
            assert {e["tenant"] for e in entries} == {own.id}, params
        actions = {e["action"] for e in _read(client, headers)}
        assert {"user.create", "auth.login", "tenant.create", "tenant:create"} <= actions
        assert {e["outcome"] for e in _read(client, headers)} == {"success", "denied", "failure"}

    # The platform admin reads every entry, and filters by tenant, action and outcome.
    everything = _read(client, seed.admin)
    assert {None, a.id, b.id} <= {e["tenant"] for e in everything}
    with platform_of(client).sessions() as session:
        assert len(everything) == session.scalar(select(func.count()).select_from(AuditEntry))
    only_b = _read(client, seed.admin, tenant=b.id)
    assert only_b
    assert {e["tenant"] for e in only_b} == {b.id}
    assert only_b == [e for e in everything if e["tenant"] == b.id]
    creates = _read(client, seed.admin, action="user.create")
    assert {e["action"] for e in creates} == {"user.create"}
    assert len(creates) == 9  # the first admin, by `plantwire init`, and the 8 seeded users
    assert next(e for e in creates if e["tenant"] is None)["source"] == "cli"
    for outcome in ("success", "denied", "failure"):
        entries = _read(client, seed.admin, outcome=outcome)
        assert entries
        assert {e["outcome"] for e in entries} == {outcome}
        assert entries == [e for e in everything if e["outcome"] == outcome]
    failures_in_a = _read(client, seed.admin, tenant=a.id, action="auth.login", outcome="failure")
    assert [e["actor"] for e in failures_in_a] == ["a-viewer"]


def test_paging_with_before_id(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    for headers in (seed.admin, seed.tenants["a"].headers["tenant-admin"]):
        everything = _read(client, headers)
        ids = [e["id"] for e in everything]
        assert len(ids) > 8
        assert ids == sorted(ids, reverse=True)
        assert len(set(ids)) == len(ids)

        pages: list[list[dict[str, Any]]] = []
        params: dict[str, Any] = {"limit": 4}
        while True:
            response = client.get(AUDIT, params=params, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page["items"])
            assert len(page["items"]) <= 4
            if page["next_before_id"] is None:
                break
            assert page["next_before_id"] == page["items"][-1]["id"]
            params["before_id"] = page["next_before_id"]
            assert len(pages) < 100
        assert [e for page in pages for e in page] == everything
        assert len(pages) >= 3

        middle = ids[len(ids) // 2]
        assert [e["id"] for e in _read(client, headers, before_id=middle)] == [
            i for i in ids if i < middle
        ]


def test_members_cannot_read_the_audit_log(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    mark = _latest_id(client, seed.admin)
    for role in ("engineer", "operator", "viewer"):
        headers = seed.tenants["a"].headers[role]
        assert_problem(client.get(AUDIT, headers=headers), 403)
        assert_problem(
            client.get(AUDIT, params={"tenant": seed.tenants["a"].id}, headers=headers), 403
        )
    assert _latest_id(client, seed.admin) == mark  # refused reads change nothing


TAMPERING = (
    "UPDATE audit_log SET outcome = 'success', actor = 'nobody'",
    "UPDATE audit_log SET detail = NULL WHERE id = (SELECT MAX(id) FROM audit_log)",
    "DELETE FROM audit_log WHERE id = (SELECT MIN(id) FROM audit_log)",
    "DELETE FROM audit_log",
)


def test_the_audit_log_is_append_only_in_the_database(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    engine = platform_of(client).engine
    query = text("SELECT * FROM audit_log ORDER BY id")
    with engine.connect() as connection:
        before = [dict(row) for row in connection.execute(query).mappings()]
    assert len(before) > 8

    for statement in TAMPERING:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))

    # Through the ORM, as application code would try it, too.
    with platform_of(client).sessions() as session:
        entry = session.get(AuditEntry, before[0]["id"])
        assert entry is not None
        entry.outcome = "denied"
        with pytest.raises(DBAPIError, match="append-only"):
            session.commit()
        session.rollback()
        session.delete(session.get(AuditEntry, before[-1]["id"]))
        with pytest.raises(DBAPIError, match="append-only"):
            session.commit()

    with engine.connect() as connection:
        after = [dict(row) for row in connection.execute(query).mappings()]
    assert after == before
    # Appending still works.
    logout = client.post("/api/v1/auth/logout", headers=seed.tenants["a"].headers["viewer"])
    assert logout.status_code == 204, logout.text
    assert _latest_id(client, seed.admin) > before[-1]["id"]


def test_writes_refused_or_failed_in_the_handler_are_audited(
    seeded: tuple[TestClient, Seed],
) -> None:
    """Not only a missing permission: a write that reaches its handler and is refused there
    (out of the caller's scope, a role it may not grant) or fails (a conflict) is recorded too,
    though the write itself rolled back."""
    client, seed = seeded
    a, b = seed.tenants["a"], seed.tenants["b"]
    a_admin = a.headers["tenant-admin"]
    b_user = b.users["viewer"]["id"]

    _, entry = _one_new_entry(
        client,
        seed.admin,
        lambda: client.patch(f"/api/v1/users/{b_user}", json={"disabled": True}, headers=a_admin),
        404,
    )
    _check(entry, actor="a-tenant-admin", tenant=a.id, target_id=b_user, outcome="denied")
    assert entry["detail"]["status"] == 404

    too_high = {"username": "sneaky", "password": PASSWORD, "role": "platform-admin"}
    _, entry = _one_new_entry(
        client,
        seed.admin,
        lambda: client.post("/api/v1/users", json=too_high, headers=a_admin),
        403,
    )
    _check(entry, actor="a-tenant-admin", action="user:write", outcome="denied")

    taken = {"username": "a-viewer", "password": PASSWORD, "role": "viewer"}
    _, entry = _one_new_entry(
        client, seed.admin, lambda: client.post("/api/v1/users", json=taken, headers=a_admin), 409
    )
    _check(entry, actor="a-tenant-admin", action="user:write", outcome="failure")
    assert "taken" in entry["detail"]["reason"]
    # and nothing of the refused writes happened
    user = client.get(f"/api/v1/users/{b_user}", headers=seed.admin).json()
    assert user["disabled"] is False

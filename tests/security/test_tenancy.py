"""Tenant isolation, generated from the OpenAPI document so that routes added later are
covered without anyone listing them here.

* Every /api/v1 operation with a path parameter is called by each of tenant A's users with the
  id of a tenant-B resource: the answer must be 404 or 403, and B must be unchanged.
* Every /api/v1 GET without path parameters is called by each of A's users (with query
  parameters that try to select B's data): no id of B may appear anywhere in the answers.

A new path parameter name needs a factory in ``B_RESOURCES``; the test fails until it has one."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from plantwire.security.tables import ApiToken, User
from plantwire.telemetry.tables import DeviceCommand
from tests.conftest import PASSWORD, Seed
from tests.security.helpers import (
    PROBLEM_JSON,
    create_token,
    media_type,
    platform_of,
    whoami,
)

API_PREFIX = "/api/v1/"
METHODS = ("get", "put", "post", "patch", "delete")
A_ROLES = ("tenant-admin", "engineer", "operator", "viewer")


# --- tenant B's resources, by path parameter name --------------------------------------------


def _b_tenant(client: TestClient, seed: Seed) -> str:
    return seed.tenants["b"].id


def _b_user(client: TestClient, seed: Seed) -> str:
    # The lowest-ranked user of B: every rank check would let A's tenant admin at it, so only
    # tenant scoping stands between them.
    user_id: str = seed.tenants["b"].users["viewer"]["id"]
    return user_id


def _b_token(client: TestClient, seed: Seed) -> str:
    created, _ = create_token(client, seed.tenants["b"].headers["viewer"], name="b's token")
    token_id: str = created["id"]
    return token_id


def _b_prefix(client: TestClient, seed: Seed) -> str:
    body = {"prefix": "88.101.66", "tenant": seed.tenants["b"].id}
    homed = client.post("/api/v1/ids/prefixes", json=body, headers=seed.admin)
    assert homed.status_code == 201, homed.text
    return "88.101.66"


def _b_device(client: TestClient, seed: Seed) -> str:
    body = {"name": "b-press", "metrics": [{"name": "setpoint", "writable": True}]}
    made = client.post("/api/v1/devices", json=body, headers=seed.tenants["b"].headers["engineer"])
    assert made.status_code == 201, made.text
    device_id: str = made.json()["id"]
    return device_id


def _b_command(client: TestClient, seed: Seed) -> str:
    # Sending needs a broker; the tenancy suite runs without one, so B's command is
    # written to the registry directly, as the command route would record it.
    body = {"name": "b-commanded", "metrics": [{"name": "setpoint", "writable": True}]}
    made = client.post("/api/v1/devices", json=body, headers=seed.tenants["b"].headers["engineer"])
    assert made.status_code == 201, made.text
    device_id = made.json()["id"]
    now = datetime.now(UTC)
    with platform_of(client).sessions() as session, session.begin():
        command = DeviceCommand(
            device_id=device_id,
            metric="setpoint",
            value=1.0,
            status="sent",
            sent_at=now,
            deadline=now,
        )
        session.add(command)
        session.flush()
        command_id: str = command.id
    return command_id


#: Path parameter name -> a factory making (or finding) a tenant-B resource of that kind.
B_RESOURCES: dict[str, Callable[[TestClient, Seed], str]] = {
    "tenant_id": _b_tenant,
    "user_id": _b_user,
    "token_id": _b_token,
    "prefix": _b_prefix,
    "device_id": _b_device,
    "command_id": _b_command,
}

#: Request body field naming a resource -> tenant B's value for it. Every id-like body field
#: of an operation needs an entry (the test fails until it has one).
B_BODY_PROBES: dict[str, Callable[[Seed], str]] = {
    "tenant": lambda seed: seed.tenants["b"].id,
}
_ID_LIKE = re.compile(r"^(id|tenant|user|owner|parent)$|_ids?$")

#: Query parameter name -> a value that tries to select tenant B's data.
B_QUERY_PROBES: dict[str, Callable[[Seed], str]] = {
    "tenant": lambda seed: seed.tenants["b"].id,
    "actor": lambda seed: "b-tenant-admin",
    "target_id": lambda seed: seed.tenants["b"].users["viewer"]["id"],
    "action": lambda seed: "user.create",
}


# --- reading the OpenAPI document ------------------------------------------------------------


def _openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation under /api/v1, path-level parameters
    merged into each operation's."""
    for path, item in document["paths"].items():
        if not path.startswith(API_PREFIX):
            continue
        for method in METHODS:
            if method in item:
                operation = dict(item[method])
                operation["parameters"] = [
                    *item.get("parameters", []),
                    *operation.get("parameters", []),
                ]
                yield method, path, operation


def _params(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation["parameters"] if p["in"] == where]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _example(document: dict[str, Any], schema: dict[str, Any], where: str) -> Any:
    """A valid value for ``schema`` that asks for as much as the schema allows to change,
    so that an operation reached across tenants would really do something. Enums take their
    last value: roles are listed from most to least powerful, and the least powerful one
    keeps rank checks from masking a missing tenant check. An enum with a default takes it
    (a device's ``kind``: other kinds ask more of the rest of the body)."""
    schema = _resolve(document, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_resolve(document, s) for s in schema[key]]
            chosen = [s for s in branches if s.get("type") != "null"] or branches
            return _example(document, chosen[0], where)
    if "allOf" in schema:
        return _example(document, schema["allOf"][0], where)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema.get("default", schema["enum"][-1])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: _example(document, sub, f"{where}.{name}") for name, sub in properties.items()
        }
    if kind == "array":
        return [_example(document, schema.get("items", {}), f"{where}[]")]
    if kind == "boolean":
        return True
    if kind == "integer":  # FastAPI's document writes integer bounds as floats (1.0)
        return int(schema.get("default", schema.get("minimum", 1)))
    if kind == "number":
        return schema.get("default", schema.get("minimum", 1))
    if kind == "string":
        if schema.get("format") == "date-time":
            return datetime.now(UTC).isoformat()
        value = "probe".ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", 100)]
        if "pattern" in schema and not re.search(schema["pattern"], value):
            pytest.fail(f"{where}: teach _example a value matching {schema['pattern']!r}")
        return value
    pytest.fail(f"{where}: _example cannot make a value for schema {schema!r}")


def _required_query(
    document: dict[str, Any], operation: dict[str, Any], where: str
) -> dict[str, Any]:
    """Valid values of the operation's required query parameters, so that the request is
    judged on its target and not refused for a missing parameter."""
    return {
        p["name"]: _example(document, p.get("schema", {}), f"{where} ?{p['name']}")
        for p in _params(operation, "query")
        if p.get("required")
    }


def _body(document: dict[str, Any], operation: dict[str, Any], where: str) -> Any:
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return None
    if "application/json" not in content:
        pytest.fail(f"{where}: teach this test to send {sorted(content)}")
    return _example(document, content["application/json"]["schema"], f"{where} body")


# --- tenant B before and after ---------------------------------------------------------------


def _b_state(client: TestClient, seed: Seed) -> dict[str, Any]:
    """Everything of tenant B, as the platform admin lists it, plus what the API never shows
    (password hashes, every token row)."""
    tenant_b = seed.tenants["b"].id
    admin = seed.admin
    tenant = client.get(f"/api/v1/tenants/{tenant_b}", headers=admin)
    users = client.get("/api/v1/users", params={"tenant": tenant_b, "limit": 1000}, headers=admin)
    tokens = client.get(
        "/api/v1/tokens",
        params={"scope": "tenant", "include_inactive": True, "limit": 1000},
        headers=admin,
    )
    prefixes = client.get("/api/v1/ids/prefixes", headers=admin)
    devices = client.get(
        "/api/v1/devices", params={"tenant": tenant_b, "limit": 1000}, headers=admin
    )
    retention = client.get(f"/api/v1/tenants/{tenant_b}/telemetry/retention", headers=admin)
    for response in (tenant, users, tokens, prefixes, devices, retention):
        assert response.status_code == 200, response.text
    with platform_of(client).sessions() as session:
        hashes = dict(
            session.execute(
                select(User.id, User.password_hash).where(User.tenant_id == tenant_b)
            ).all()
        )
        token_rows = sorted(
            (t.id, t.user_id, t.role, t.revoked_at, t.expires_at)
            for t in session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_b))
        )
    return {
        "tenant": tenant.json(),
        "users": users.json()["items"],
        "tokens": [t for t in tokens.json()["items"] if t["tenant"] == tenant_b],
        "password_hashes": hashes,
        "token_rows": token_rows,
        "prefixes": [p for p in prefixes.json()["items"] if p["tenant_id"] == tenant_b],
        "devices": devices.json()["items"],
        "retention": retention.json(),
    }


def _b_secrets(client: TestClient, seed: Seed) -> set[str]:
    """Strings that only tenant B's data contains: ids, usernames, the tenant's name."""
    tenant_b = seed.tenants["b"].id
    secrets = {tenant_b}
    with platform_of(client).sessions() as session:
        for user in session.scalars(select(User).where(User.tenant_id == tenant_b)):
            secrets |= {user.id, user.username}
        secrets |= set(session.scalars(select(ApiToken.id).where(ApiToken.tenant_id == tenant_b)))
    name = client.get(f"/api/v1/tenants/{tenant_b}", headers=seed.admin).json()["name"]
    secrets.add(name)
    assert len(secrets) > 10
    return secrets


def _busy_tenant_b(client: TestClient, seed: Seed) -> None:
    """Give B data of every kind: users, API tokens, audit entries of each outcome."""
    b = seed.tenants["b"]
    body = {"username": "b-extra", "password": PASSWORD, "role": "operator"}
    assert client.post("/api/v1/users", json=body, headers=b.headers["tenant-admin"]).is_success
    create_token(client, b.headers["engineer"], name="b engineer's script")
    refused = client.post("/api/v1/users", json=body, headers=b.headers["viewer"])
    assert refused.status_code == 403
    failed = client.post(
        "/api/v1/auth/login", json={"username": "b-operator", "password": "wrong-password"}
    )
    assert failed.status_code == 401
    renamed = client.patch(
        f"/api/v1/tenants/{b.id}", json={"name": "Bravo Works"}, headers=b.headers["tenant-admin"]
    )
    assert renamed.status_code == 200, renamed.text


# --- the tests -------------------------------------------------------------------------------


def test_operations_on_tenant_b_ids_are_refused(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    document = _openapi(client)

    targeted = [
        (method, path, operation)
        for method, path, operation in _operations(document)
        if _params(operation, "path")
    ]
    assert targeted, "no /api/v1 operation has a path parameter: is the document complete?"
    missing = sorted(
        {
            f"{p['name']!r} (in {method.upper()} {path})"
            for method, path, operation in targeted
            for p in _params(operation, "path")
            if p["name"] not in B_RESOURCES
        }
    )
    if missing:
        pytest.fail(
            "No tenant-B resource factory for path parameter(s) "
            + ", ".join(missing)
            + ": add one to B_RESOURCES in tests/security/test_tenancy.py that returns the id "
            "of a resource belonging to tenant B."
        )
    resources = {name: factory(client, seed) for name, factory in B_RESOURCES.items()}

    before = _b_state(client, seed)
    answers: dict[str, int] = {}
    for role in A_ROLES:
        headers = seed.tenants["a"].headers[role]
        for method, path, operation in targeted:
            where = f"{role}: {method.upper()} {path}"
            url = path.format(
                **{p["name"]: resources[p["name"]] for p in _params(operation, "path")}
            )
            body = _body(document, operation, where)
            response = client.request(
                method.upper(),
                url,
                params=_required_query(document, operation, where),
                headers=headers,
                json=body if body is not None else None,
            )
            answers[where] = response.status_code
            assert response.status_code in (403, 404), f"{where} -> {response.status_code}"
            assert media_type(response) == PROBLEM_JSON
            # The refusal says nothing about B's resource.
            assert seed.tenants["b"].name not in response.text
            assert "b-viewer" not in response.text
    assert _b_state(client, seed) == before

    # B's users and their tokens still work.
    for role, headers in seed.tenants["b"].headers.items():
        assert whoami(client, headers)["username"] == f"b-{role}"
    # A's tenant admin was refused by scope (404), not merely by role, on B's tenant and users.
    assert answers["tenant-admin: GET /api/v1/users/{user_id}"] == 404
    assert answers["tenant-admin: GET /api/v1/tenants/{tenant_id}"] == 404


def test_writes_naming_tenant_b_in_the_body_are_refused(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    client.cookies.clear()
    document = _openapi(client)
    probed: list[tuple[str, str, dict[str, Any]]] = []
    missing: set[str] = set()
    for method, path, operation in _operations(document):
        if _params(operation, "path"):
            continue  # covered, with tenant B's ids in the path, by the test above
        where = f"{method.upper()} {path}"
        body = _body(document, operation, where)
        if not isinstance(body, dict):
            continue
        fields = [name for name in body if _ID_LIKE.search(name)]
        missing |= {f"{name!r} (in {where})" for name in fields if name not in B_BODY_PROBES}
        probes = {name: B_BODY_PROBES[name](seed) for name in fields if name in B_BODY_PROBES}
        if probes:
            probed.append((method, path, {**body, **probes}))
    if missing:
        pytest.fail(
            "No tenant-B value for request body field(s) "
            + ", ".join(sorted(missing))
            + ": add one to B_BODY_PROBES in tests/security/test_tenancy.py."
        )
    assert probed, "no request body names a tenant resource: is the document complete?"

    before = _b_state(client, seed)
    users_before = len(_all_users(client, seed))
    for role in A_ROLES:
        headers = seed.tenants["a"].headers[role]
        for method, path, body in probed:
            where = f"{role}: {method.upper()} {path} {body}"
            response = client.request(method.upper(), path, headers=headers, json=body)
            assert response.status_code in (403, 404), f"{where} -> {response.status_code}"
            assert media_type(response) == PROBLEM_JSON
    assert _b_state(client, seed) == before
    assert len(_all_users(client, seed)) == users_before  # nor was it made in tenant A


def _all_users(client: TestClient, seed: Seed) -> list[dict[str, Any]]:
    response = client.get("/api/v1/users", params={"limit": 1000}, headers=seed.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _query_variants(
    document: dict[str, Any], operation: dict[str, Any], seed: Seed
) -> list[dict[str, Any]]:
    """The default query, one variant per parameter worth trying, and all of them at once."""
    single: list[dict[str, Any]] = []
    for param in _params(operation, "query"):
        name = param["name"]
        schema = _resolve(document, param.get("schema", {}))
        branches = [_resolve(document, s) for s in schema.get("anyOf", [schema])]
        if name in B_QUERY_PROBES:
            single.append({name: B_QUERY_PROBES[name](seed)})
        elif any("enum" in s for s in branches):
            values = [v for s in branches for v in s.get("enum", [])]
            single.extend({name: value} for value in values)
        elif any(s.get("type") == "boolean" for s in branches):
            single.append({name: True})
    combined: dict[str, Any] = {}
    for variant in single:
        combined.update(variant)
    return [{}, *single, combined] if single else [{}]


def test_collections_show_tenant_a_nothing_of_tenant_b(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    client.cookies.clear()
    _busy_tenant_b(client, seed)
    document = _openapi(client)
    secrets = _b_secrets(client, seed)
    before = _b_state(client, seed)

    collections = [
        (path, operation)
        for method, path, operation in _operations(document)
        if method == "get" and not _params(operation, "path")
    ]
    assert collections, "no GET collection under /api/v1: is the document complete?"
    for path, operation in collections:
        served = 0
        for variant in _query_variants(document, operation, seed):
            for role in A_ROLES:
                headers = seed.tenants["a"].headers[role]
                response = client.get(path, params=variant, headers=headers)
                where = f"{role}: GET {path} {variant}"
                assert response.status_code in (200, 403), f"{where} -> {response.text}"
                text = json.dumps(response.json())
                leaked = sorted(s for s in secrets if s in text or s in response.text)
                assert not leaked, f"{where} shows tenant B's {leaked}"
                served += response.status_code == 200
        assert served, f"GET {path}: no user of tenant A may read it, so the check is vacuous"
    assert _b_state(client, seed) == before

    # The same reads as the platform admin do show B's data: the check above can fail.
    response = client.get("/api/v1/users", headers=seed.admin)
    assert "b-viewer" in response.text
    response = client.get(
        "/api/v1/audit", params={"tenant": seed.tenants["b"].id}, headers=seed.admin
    )
    assert "b-extra" in response.text

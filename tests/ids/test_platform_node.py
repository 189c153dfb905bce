"""The identifier node inside the platform: prefixes homed for tenants through the platform
API, tenant admins administering their handles with platform tokens, tenants kept apart,
Handle identities working beside them, every write in the audit log, and the Handle paths
answering in Handle JSON (not problem+json)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Seed

UNIT = "88.101.5/SN-1"
VALUES = [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a.example/u/1"}},
]
SECRET = "tenant-a-handle-admin-secret"


def home(client: TestClient, seed: Seed, prefix: str, tenant: str, **extra: Any) -> Any:
    body = {"prefix": prefix, "tenant": seed.tenants[tenant].id, **extra}
    return client.post("/api/v1/ids/prefixes", json=body, headers=seed.admin)


def test_tenant_admins_administer_their_own_prefixes(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    a, b = seed.tenants["a"], seed.tenants["b"]
    homed = home(client, seed, "88.101.5", "a", admin_secret=SECRET)
    assert homed.status_code == 201, homed.text
    assert homed.json()["record"] == "0.NA/88.101.5"
    assert home(client, seed, "88.101.5", "b").status_code == 409
    assert home(client, seed, "88.101.6", "b").status_code == 201
    refused_home = client.post(
        "/api/v1/ids/prefixes",
        json={"prefix": "88.101.7", "tenant": a.id},
        headers=a.headers["tenant-admin"],
    )
    assert refused_home.status_code == 403

    listed = client.get("/api/v1/ids/prefixes", headers=a.headers["viewer"]).json()["items"]
    assert [p["prefix"] for p in listed] == ["88.101.5"]

    created = client.put(f"/api/handles/{UNIT}", json=VALUES, headers=a.headers["tenant-admin"])
    assert created.status_code == 201, created.text
    assert created.json() == {"responseCode": 1, "handle": UNIT}
    for headers in (b.headers["tenant-admin"], a.headers["viewer"], a.headers["engineer"]):
        refused = client.put(f"/api/handles/{UNIT}", json=VALUES, headers=headers)
        assert (refused.status_code, refused.json()["responseCode"]) == (403, 400)
        deleted = client.delete(f"/api/handles/{UNIT}", headers=headers)
        assert deleted.status_code == 403
    other = client.put("/api/handles/88.101.6/x", json=VALUES, headers=a.headers["tenant-admin"])
    assert other.status_code == 403  # B's prefix
    resolved = client.get(f"/api/handles/{UNIT}")  # public values are public
    assert resolved.json()["values"][0]["data"]["value"] == "https://a.example/u/1"
    redirected = client.get(f"/hdl/{UNIT}", follow_redirects=False)
    assert (redirected.status_code, redirected.headers["location"]) == (
        302,
        "https://a.example/u/1",
    )

    audit = client.get(
        "/api/v1/audit", params={"action": "handle.create"}, headers=a.headers["tenant-admin"]
    ).json()["items"]
    assert [(e["actor"], e["target_id"], e["outcome"]) for e in audit] == [
        ("a-tenant-admin", UNIT, "success")
    ]
    b_audit = client.get("/api/v1/audit", headers=b.headers["tenant-admin"]).json()["items"]
    assert not any(e["target_id"] == UNIT for e in b_audit)


def test_handle_identities_work_beside_platform_users(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    assert home(client, seed, "88.101.5", "a", admin_secret=SECRET).status_code == 201
    token = base64.b64encode(f"300%3A0.NA/88.101.5:{SECRET}".encode()).decode()
    basic = {"Authorization": f"Basic {token}"}
    # TestClient's peer is not a loopback address: credentials need HTTPS.
    in_clear = client.put(f"/api/handles/{UNIT}", json=VALUES, headers=basic)
    assert (in_clear.status_code, in_clear.json()["responseCode"]) == (401, 402)
    secure = TestClient(client.app, base_url="https://testserver")
    created = secure.put(f"/api/handles/{UNIT}", json=VALUES, headers=basic)
    assert created.status_code == 201, created.text


def test_handle_paths_answer_in_handle_json(seeded: tuple[TestClient, Seed]) -> None:
    client, _ = seeded
    missing = client.get("/api/handles/99.1/nothing")
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json()["responseCode"] in (100, 301)
    listing = client.get("/api/handles")
    assert listing.json()["responseCode"] == 102
    sessions = client.get("/api/sessions")
    assert sessions.json()["responseCode"] in (4, 402)
    unknown_api = client.get("/api/v1/nothing-here")
    assert unknown_api.headers["content-type"].startswith("application/problem+json")
    document = client.get("/api/openapi.json").json()
    assert "/api/v1/ids/prefixes" in document["paths"]


def test_a_parent_tenant_cannot_take_a_child_tenants_prefix(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    a, b = seed.tenants["a"], seed.tenants["b"]
    assert home(client, seed, "88.101", "a").status_code == 201
    assert home(client, seed, "88.101.5", "b", admin_secret=SECRET).status_code == 201
    admin_a = a.headers["tenant-admin"]
    takeover = [
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": "0.NA/88.101.5", "index": 300, "permissions": "111111111111"},
            },
        },
        {"index": 300, "type": "HS_SECKEY", "data": "a-owns-this-now"},
    ]
    refused = client.put("/api/handles/0.NA/88.101.5", json=takeover, headers=admin_a)
    assert (refused.status_code, refused.json()["responseCode"]) == (403, 400)
    assert client.delete("/api/handles/0.NA/88.101.5", headers=admin_a).status_code == 403
    listing = client.get("/api/handles", params={"prefix": "88.101.5"}, headers=admin_a)
    assert listing.status_code == 403
    prefixes = client.get("/api/prefixes", headers=admin_a).json()["prefixes"]
    assert prefixes == ["0.NA/88.101"]
    # A's own listing works, and A may still grant a prefix under its own that nobody homes.
    assert (
        client.get("/api/handles", params={"prefix": "88.101"}, headers=admin_a).status_code == 200
    )
    derived = client.put("/api/handles/0.NA/88.101.9", json=VALUES, headers=admin_a)
    assert derived.status_code == 201, derived.text
    # B administers its own prefix's record.
    own = client.put(
        "/api/handles/0.NA/88.101.5",
        json=VALUES,
        params={"index": "1"},
        headers=b.headers["tenant-admin"],
    )
    assert own.status_code == 201, own.text


def test_the_newest_handles_of_the_tenants_prefixes_come_first(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    a, b = seed.tenants["a"], seed.tenants["b"]
    for prefix, tenant in (("88.101.5", "a"), ("88.101.55", "a"), ("88.101.6", "b")):
        assert home(client, seed, prefix, tenant).status_code == 201
    made = ["88.101.5/SN-2", "88.101.55/LOT-1", "88.101.5/SN-1", "88.101.5/SN-3"]
    for handle in made:  # in this order: creation time, not name, orders them
        answer = client.put(
            f"/api/handles/{handle}", json=VALUES, headers=a.headers["tenant-admin"]
        )
        assert answer.status_code == 201, answer.text
    theirs = client.put("/api/handles/88.101.6/B-1", json=VALUES, headers=b.headers["tenant-admin"])
    assert theirs.status_code == 201, theirs.text

    newest = client.get(
        "/api/v1/ids/handles/newest", params={"limit": 3}, headers=a.headers["viewer"]
    )
    assert newest.status_code == 200, newest.text
    items = newest.json()["items"]
    assert [(i["handle"], i["prefix"]) for i in items] == [
        ("88.101.5/SN-3", "88.101.5"),
        ("88.101.5/SN-1", "88.101.5"),
        ("88.101.55/LOT-1", "88.101.55"),
    ]
    stamps = [i["created_at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    of_b = client.get("/api/v1/ids/handles/newest", headers=b.headers["viewer"]).json()["items"]
    assert [i["handle"] for i in of_b] == ["88.101.6/B-1"]  # never tenant a's
    every = client.get("/api/v1/ids/handles/newest", headers=seed.admin).json()["items"]
    assert len(every) == 5
    refused = client.get("/api/v1/ids/handles/newest", params={"limit": 0}, headers=seed.admin)
    assert refused.status_code == 422

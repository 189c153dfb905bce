"""The device API: credentials shown once and stored hashed, names unique per tenant,
search and place filters, metric metadata, roles, and tenant scoping."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import bcrypt
from fastapi.testclient import TestClient
from sqlalchemy import select

from plantwire.security.tables import AuditEntry
from plantwire.telemetry.accounts import TenantAccount
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.devices import RegistryDevices, broker_follower
from plantwire.telemetry.tables import Device
from tests.conftest import Seed
from tests.security.helpers import assert_problem, platform_of

DEVICES = "/api/v1/devices"
PRESS_METRICS = [
    {"name": "temperature", "unit": "°C", "data_type": "float", "description": "Oil"},
    {"name": "setpoint", "unit": "bar", "data_type": "float", "writable": True},
]


def create(client: TestClient, headers: dict[str, str], name: str, **extra: Any) -> Any:
    response = client.post(DEVICES, json={"name": name, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def names(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get(DEVICES, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [device["name"] for device in response.json()["items"]]


def test_a_device_gets_credentials_once_and_only_their_hashes_are_kept(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    admin = seed.tenants["a"].headers["tenant-admin"]
    created = create(client, admin, "press-1", place="Plant1/Press", metrics=PRESS_METRICS)
    device_id, password = created["id"], created["mqtt"]["password"]
    tenant_id = seed.tenants["a"].id
    assert created["mqtt"]["username"] == f"{device_id}@{tenant_id}"
    assert len(password) == 43  # 256 random bits, base64url
    assert created["topics"] == {
        "telemetry": f"plantwire/v1/devices/{device_id}/telemetry",
        "commands": f"plantwire/v1/devices/{device_id}/commands",
    }
    assert [m["name"] for m in created["metrics"]] == ["setpoint", "temperature"]
    assert created["metrics"][0]["writable"] is True
    shown = client.get(f"{DEVICES}/{device_id}", headers=admin).json()
    assert "mqtt" not in shown
    assert shown["tenant"] == seed.tenants["a"].id
    with platform_of(client).sessions() as session:
        row = session.get(Device, device_id)
        assert row is not None
        assert row.secret_sha256 == hashlib.sha256(password.encode()).hexdigest()
        assert bcrypt.checkpw(password.encode(), row.secret_bcrypt.encode())
        assert password not in (row.secret_sha256, row.secret_bcrypt)
    rotated = client.post(f"{DEVICES}/{device_id}/credentials", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["username"] == f"{device_id}@{tenant_id}"
    new_password = rotated.json()["password"]
    assert new_password != password
    with platform_of(client).sessions() as session:
        row = session.get(Device, device_id)
        assert row is not None
        assert not bcrypt.checkpw(password.encode(), row.secret_bcrypt.encode())
        assert bcrypt.checkpw(new_password.encode(), row.secret_bcrypt.encode())


def test_names_are_unique_within_a_tenant_only(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    a, b = seed.tenants["a"].headers["engineer"], seed.tenants["b"].headers["engineer"]
    first = create(client, a, "press-1")
    other = create(client, b, "press-1")  # another tenant may use the name
    assert first["id"] != other["id"]
    again = client.post(DEVICES, json={"name": "PRESS-1"}, headers=a)
    assert "press-1" in assert_problem(again, 409)["detail"].lower()
    second = create(client, a, "press-2")
    renamed = client.patch(f"{DEVICES}/{second['id']}", json={"name": "Press-1"}, headers=a)
    assert_problem(renamed, 409)
    assert names(client, a) == ["press-1", "press-2"]
    assert names(client, b) == ["press-1"]


def test_search_and_place_filter(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["tenant-admin"]
    create(client, headers, "Press 1", place="Plant1/Assembly/Line3/Press1")
    create(client, headers, "press 2", place="Plant1/Assembly/Line30")
    create(client, headers, "CNC_7", place="Plant2")
    create(client, headers, "100% meter")
    assert names(client, headers, search="PRESS") == ["Press 1", "press 2"]
    assert names(client, headers, search="c_7") == ["CNC_7"]
    assert names(client, headers, search="_") == ["CNC_7"]  # a literal underscore
    assert names(client, headers, search="%") == ["100% meter"]  # a literal percent
    assert names(client, headers, place="Plant1/Assembly/Line3") == ["Press 1"]
    assert names(client, headers, place="Plant1") == ["Press 1", "press 2"]
    assert names(client, headers, place="Plant1/Assembly/Line3/Press1") == ["Press 1"]
    assert names(client, headers, place="Plant") == []
    assert_problem(client.get(DEVICES, params={"place": "a//b"}, headers=headers), 422)
    page = client.get(DEVICES, params={"limit": 2, "offset": 1}, headers=headers).json()
    assert [d["name"] for d in page["items"]] == ["CNC_7", "Press 1"]


def test_changes_replace_metadata_and_are_audited(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["engineer"]
    device = create(client, headers, "oven", metrics=PRESS_METRICS, attributes={"vendor": "X"})
    change = {
        "place": "Plant1/Bake",
        "attributes": {"vendor": "Y", "year": 2019},
        "metrics": [{"name": "temperature", "unit": "K", "data_type": "int"}],
    }
    changed = client.patch(f"{DEVICES}/{device['id']}", json=change, headers=headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["place"] == "Plant1/Bake"
    assert body["attributes"] == {"vendor": "Y", "year": 2019}
    assert body["metrics"] == [
        {
            "name": "temperature",
            "unit": "K",
            "data_type": "int",
            "description": "",
            "writable": False,
        }
    ]
    assert body["updated_at"] > device["updated_at"]
    assert client.delete(f"{DEVICES}/{device['id']}", headers=headers).status_code == 204
    assert_problem(client.get(f"{DEVICES}/{device['id']}", headers=headers), 404)
    with platform_of(client).sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_id == device["id"])
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["device.create", "device.update", "device.delete"]


def test_roles_decide_who_may_change_devices(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    device = create(client, tenant.headers["tenant-admin"], "press-1")
    for role in ("operator", "viewer"):
        headers = tenant.headers[role]
        assert names(client, headers) == ["press-1"]
        assert_problem(client.post(DEVICES, json={"name": f"by-{role}"}, headers=headers), 403)
        path = f"{DEVICES}/{device['id']}"
        assert_problem(client.patch(path, json={"name": "x"}, headers=headers), 403)
        assert_problem(client.post(f"{path}/credentials", headers=headers), 403)
        assert_problem(client.delete(path, headers=headers), 403)
    client.cookies.clear()  # the seed's logins left a session cookie
    assert_problem(client.get(DEVICES), 401)
    assert_problem(client.post(DEVICES, json={"name": "anonymous"}), 401)


def test_tenants_cannot_reach_each_others_devices(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    theirs = create(client, seed.tenants["b"].headers["tenant-admin"], "secret-press")
    mine = seed.tenants["a"].headers["tenant-admin"]
    path = f"{DEVICES}/{theirs['id']}"
    assert_problem(client.get(path, headers=mine), 404)
    assert_problem(client.patch(path, json={"name": "stolen"}, headers=mine), 404)
    assert_problem(client.post(f"{path}/credentials", headers=mine), 404)
    assert_problem(client.delete(path, headers=mine), 404)
    assert names(client, mine, tenant=seed.tenants["b"].id) == []
    refused = client.post(
        DEVICES, json={"name": "planted", "tenant": seed.tenants["b"].id}, headers=mine
    )
    assert_problem(refused, 404)
    theirs_now = client.get(path, headers=seed.tenants["b"].headers["viewer"]).json()
    assert theirs_now["name"] == "secret-press"
    assert names(client, seed.tenants["b"].headers["viewer"]) == ["secret-press"]


def test_platform_admins_name_the_tenant(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    assert_problem(client.post(DEVICES, json={"name": "x"}, headers=seed.admin), 422)
    made = create(client, seed.admin, "x", tenant=seed.tenants["b"].id)
    assert made["tenant"] == seed.tenants["b"].id
    assert names(client, seed.admin, tenant=seed.tenants["b"].id) == ["x"]
    # a tenant with devices cannot be deleted
    refused = client.delete(f"/api/v1/tenants/{seed.tenants['b'].id}", headers=seed.admin)
    assert_problem(refused, 409)


def test_bad_device_bodies_get_clear_errors(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["tenant-admin"]
    twice = [{"name": "t"}, {"name": "t"}]
    for body in (
        {"name": ""},
        {"name": "bad\nname"},
        {"name": "x", "kind": "modbus"},
        {"name": "x", "metrics": twice},
        {"name": "x", "metrics": [{"name": "t", "data_type": "complex"}]},
        {"name": "x", "place": "/Plant1"},
        {"name": "x", "attributes": {"blob": "x" * 20_000}},
        {"name": "x", "unknown": 1},
    ):
        assert_problem(client.post(DEVICES, json=body, headers=headers), 422)
    assert names(client, headers) == []


def test_account_changes_reach_the_listeners(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["tenant-admin"]
    calls: list[str] = []
    platform_of(client).account_listeners.append(lambda: calls.append("changed"))
    device = create(client, headers, "press-1")
    client.post(f"{DEVICES}/{device['id']}/credentials", headers=headers)
    client.patch(f"{DEVICES}/{device['id']}", json={"place": "P"}, headers=headers)
    client.delete(f"{DEVICES}/{device['id']}", headers=headers)
    assert calls == ["changed"] * 3  # create, rotate, delete: not a metadata change
    tenants = "/api/v1/tenants"
    assert client.delete(f"{tenants}/{seed.tenants['a'].id}", headers=seed.admin).status_code == 409
    empty = client.post(tenants, json={"name": "Empty"}, headers=seed.admin).json()["id"]
    assert client.delete(f"{tenants}/{empty}", headers=seed.admin).status_code == 204
    assert calls == ["changed"] * 4  # a deleted tenant too; not a refused deletion


def test_changes_made_during_a_broker_reload_share_the_next_one(
    seeded: tuple[TestClient, Seed],
) -> None:
    """A reload costs about a second at 10,000 devices: changes that come while one runs
    wait for the next, which reads the registry after all of them and serves them all."""
    client, seed = seeded
    headers = seed.tenants["a"].headers["tenant-admin"]
    first_began, release = threading.Event(), threading.Event()
    reloads: list[int] = []  # devices the broker was given, per reload

    class SlowBroker:
        def apply(self, tenants: Sequence[TenantAccount]) -> None:
            reloads.append(sum(len(tenant.devices) for tenant in tenants))
            if len(reloads) == 1:
                first_began.set()
                release.wait(10)

    follow = broker_follower(platform_of(client).sessions, cast(BundledBroker, SlowBroker()))
    first = threading.Thread(target=follow)
    first.start()
    assert first_began.wait(10)
    for n in range(5):  # created (committed) while the first reload runs
        create(client, headers, f"press-{n}")
    waiting = [threading.Thread(target=follow) for _ in range(5)]
    for thread in waiting:
        thread.start()
    time.sleep(0.3)  # all five are waiting for the reload in progress
    release.set()
    for thread in [first, *waiting]:
        thread.join(10)
    assert reloads == [0, 5]
    follow()  # a change after them all gets a reload of its own
    assert reloads == [0, 5, 5]


def test_ingest_learns_each_devices_declared_types_from_the_registry(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    press = create(client, tenant_a.headers["tenant-admin"], "press-1", metrics=PRESS_METRICS)
    bare = create(client, tenant_a.headers["tenant-admin"], "bare")
    theirs = create(client, tenant_b.headers["tenant-admin"], "press-1")
    keys = [
        (tenant_a.id, press["id"]),
        (tenant_a.id, bare["id"]),
        (tenant_a.id, theirs["id"]),  # another tenant's device under this tenant: none
        (tenant_a.id, "no-such-device"),
    ]
    assert RegistryDevices(platform_of(client).sessions).declared(keys) == {
        keys[0]: {"temperature": "float", "setpoint": "float"},
        keys[1]: {},
        keys[2]: None,
        keys[3]: None,
    }

"""Retention per tenant and per device: the API that sets it (roles, validation, audit, tenant
scope), the plans read from the registry, and the upkeep applying the platform's default, a
tenant's and a device's setting to a real store, giving the disk back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.security.tables import AuditEntry
from plantwire.telemetry.retention import RetentionPlan, retention_plans
from plantwire.telemetry.store import DuckDBStore
from plantwire.telemetry.upkeep import Retention, UpkeepMetrics
from tests.conftest import ADMIN_PASSWORD, Seed, make_settings, seed_platform
from tests.security.helpers import assert_problem, platform_of
from tests.telemetry.conftest import seconds_of, wait_for
from tests.telemetry.test_devices import DEVICES, create


def _path(tenant_id: str) -> str:
    return f"/api/v1/tenants/{tenant_id}/telemetry/retention"


def _audit(client: TestClient, *where: Any) -> list[tuple[str, str, Any]]:
    """(outcome, actor, detail) of the audit entries matching ``where``, oldest first."""
    with platform_of(client).sessions() as session:
        rows = session.execute(
            select(AuditEntry.outcome, AuditEntry.actor, AuditEntry.detail)
            .where(*where)
            .order_by(AuditEntry.id)
        ).all()
    return [tuple(row) for row in rows]


# --- the tenant's retention ------------------------------------------------------------------


def test_a_tenant_admin_sets_the_tenants_retention_and_everyone_reads_it(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    path = _path(tenant.id)
    unset = {"tenant": tenant.id, "days": None, "platform_days": None, "effective_days": None}
    assert client.get(path, headers=tenant.headers["viewer"]).json() == unset

    changed = client.put(path, json={"days": 30}, headers=tenant.headers["tenant-admin"])
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**unset, "days": 30, "effective_days": 30}
    for role in ("engineer", "operator", "viewer"):
        assert client.get(path, headers=tenant.headers[role]).json()["days"] == 30
    again = client.put(path, json={"days": 30}, headers=tenant.headers["tenant-admin"])
    assert again.status_code == 200  # no change, nothing audited
    back = client.put(path, json={"days": None}, headers=seed.admin)  # platform admins too
    assert back.json() == unset
    assert client.get(path, headers=tenant.headers["viewer"]).json() == unset
    assert _audit(client, AuditEntry.action == "tenant.retention") == [
        ("success", "a-tenant-admin", {"telemetry_retention_days": [None, 30]}),
        ("success", "admin", {"telemetry_retention_days": [30, None]}),
    ]


def test_only_tenant_admins_change_retention(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    for role in ("engineer", "operator", "viewer"):
        refused = client.put(_path(tenant.id), json={"days": 1}, headers=tenant.headers[role])
        assert assert_problem(refused, 403)["type"] == "urn:plantwire:problem:forbidden"
    assert client.get(_path(tenant.id), headers=seed.admin).json()["days"] is None
    assert [outcome for outcome, _, _ in _audit(client, AuditEntry.action == "tenant:update")] == [
        "denied"
    ] * 3
    client.cookies.clear()
    assert_problem(client.get(_path(tenant.id)), 401)
    assert_problem(client.put(_path(tenant.id), json={"days": 1}), 401)


@pytest.mark.parametrize(
    "body",
    # a JSON integer, strictly: true or "1" read as 1 day would delete nearly everything
    [{"days": 0}, {"days": 36_501}, {"days": "30"}, {"days": 30.0}, {"days": True}, {}, {"x": 1}],
)
def test_bad_retention_is_a_problem(seeded: tuple[TestClient, Seed], body: Any) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    refused = client.put(_path(tenant.id), json=body, headers=tenant.headers["tenant-admin"])
    assert assert_problem(refused, 422)["type"] == "urn:plantwire:problem:validation"
    assert client.get(_path(tenant.id), headers=seed.admin).json()["days"] is None


def test_the_bounds_are_accepted(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["tenant-admin"]
    for days in (1, 36_500):
        answer = client.put(_path(seed.tenants["a"].id), json={"days": days}, headers=headers)
        assert answer.json()["days"] == days


def test_another_tenants_retention_is_out_of_reach(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    theirs = _path(seed.tenants["b"].id)
    client.put(theirs, json={"days": 90}, headers=seed.tenants["b"].headers["tenant-admin"])
    mine = seed.tenants["a"].headers["tenant-admin"]
    assert_problem(client.get(theirs, headers=mine), 404)
    assert_problem(client.put(theirs, json={"days": 1}, headers=mine), 404)
    assert client.get(theirs, headers=seed.admin).json()["days"] == 90
    assert_problem(
        client.get(_path("00000000-0000-0000-0000-000000000000"), headers=seed.admin), 404
    )
    missing = client.put(_path("no-such-tenant"), json={"days": 1}, headers=seed.admin)
    assert_problem(missing, 404)


def test_the_platform_default_shows_and_a_tenants_setting_goes_with_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", telemetry_retention_days=400)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings)) as client:
        seed = seed_platform(client)
        tenant_id = seed.tenants["a"].id
        shown = client.get(_path(tenant_id), headers=seed.admin).json()
        assert (shown["days"], shown["platform_days"], shown["effective_days"]) == (None, 400, 400)
        answer = client.put(_path(tenant_id), json={"days": 7}, headers=seed.admin).json()
        assert (answer["days"], answer["platform_days"], answer["effective_days"]) == (7, 400, 7)
        # deleting the tenant takes its retention along
        for user in seed.tenants["a"].users.values():
            gone = client.delete(f"/api/v1/users/{user['id']}", headers=seed.admin)
            assert gone.status_code == 204
        assert client.delete(f"/api/v1/tenants/{tenant_id}", headers=seed.admin).status_code == 204
        plans = retention_plans(platform_of(client).sessions, 400)
        assert plans == [RetentionPlan(seed.tenants["b"].id, 400, {})]


# --- a device's retention --------------------------------------------------------------------


def test_a_devices_retention_is_set_with_the_device(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    admin, engineer = tenant.headers["tenant-admin"], tenant.headers["engineer"]
    made = create(client, admin, "press-1", retention_days=3650)
    assert made["retention_days"] == 3650
    path = f"{DEVICES}/{made['id']}"
    plain = create(client, engineer, "press-2")  # engineers make devices without one
    assert plain["retention_days"] is None

    renamed = client.patch(path, json={"name": "press-one"}, headers=engineer)
    assert renamed.status_code == 200, renamed.text  # absent: unchanged, no permission needed
    assert renamed.json()["retention_days"] == 3650
    shorter = client.patch(path, json={"retention_days": 7}, headers=admin)
    assert shorter.json()["retention_days"] == 7
    cleared = client.patch(path, json={"retention_days": None}, headers=admin)
    assert cleared.json()["retention_days"] is None
    assert client.get(path, headers=tenant.headers["viewer"]).json()["retention_days"] is None

    details = [detail for _, _, detail in _audit(client, AuditEntry.target_id == made["id"])]
    assert details == [
        {"name": "press-1", "retention_days": 3650},
        {"name": ["press-1", "press-one"]},
        {"retention_days": [3650, 7]},
        {"retention_days": [7, None]},
    ]


def test_engineers_may_not_set_a_devices_retention(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    tenant = seed.tenants["a"]
    engineer = tenant.headers["engineer"]
    refused = client.post(DEVICES, json={"name": "x", "retention_days": 1}, headers=engineer)
    assert "tenant:update" in assert_problem(refused, 403)["detail"]
    device = create(client, engineer, "press-1")
    path = f"{DEVICES}/{device['id']}"
    for value in (1, None):  # clearing it is a decision on data too
        change = {"name": "renamed", "retention_days": value}
        assert_problem(client.patch(path, json=change, headers=engineer), 403)
    assert client.get(path, headers=engineer).json()["name"] == "press-1"  # nothing changed
    assert [outcome for outcome, _, _ in _audit(client, AuditEntry.action == "device:write")] == [
        "denied"
    ] * 3


@pytest.mark.parametrize("value", [0, 36_501, "30", 2.5, True])
def test_bad_device_retention_is_a_problem(seeded: tuple[TestClient, Seed], value: Any) -> None:
    client, seed = seeded
    admin = seed.tenants["a"].headers["tenant-admin"]
    refused = client.post(DEVICES, json={"name": "x", "retention_days": value}, headers=admin)
    assert_problem(refused, 422)
    device = create(client, admin, "press-1")
    path = f"{DEVICES}/{device['id']}"
    assert_problem(client.patch(path, json={"retention_days": value}, headers=admin), 422)


def test_the_registry_makes_one_plan_per_tenant_with_something_to_drop(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    a, b = seed.tenants["a"], seed.tenants["b"]
    long = create(client, a.headers["tenant-admin"], "long", retention_days=3650)
    create(client, a.headers["tenant-admin"], "follows")
    client.put(_path(b.id), json={"days": 30}, headers=b.headers["tenant-admin"])
    sessions = platform_of(client).sessions

    assert sorted(retention_plans(sessions, None), key=lambda plan: plan.tenant) == sorted(
        [RetentionPlan(a.id, None, {long["id"]: 3650}), RetentionPlan(b.id, 30, {})],
        key=lambda plan: plan.tenant,
    )
    with_default = {plan.tenant: plan for plan in retention_plans(sessions, 90)}
    assert with_default == {
        a.id: RetentionPlan(a.id, 90, {long["id"]: 3650}),
        b.id: RetentionPlan(b.id, 30, {}),
    }


# --- the upkeep applies the plans to a real store -----------------------------------------


NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)  # noon: "2 days ago" is well inside its day
TENANTS = ("platform", "short", "long", "kept", "free")


def _fill(store: DuckDBStore, tenant: str, device: str, *days_ago: int) -> None:
    for days in days_ago:
        store.append(seconds_of(tenant, device, "m", NOW - timedelta(days=days), 5000))


def _points(store: DuckDBStore, tenant: str, device: str) -> int:
    table = store.export(tenant, 0, 2**62, device)
    return int(table.num_rows)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_most_specific_retention_wins_and_the_disk_comes_back(tmp_path: Path) -> None:
    """The platform keeps 10 days; tenant "short" keeps 3, "long" 40 with a device "brief" of
    1 day, "kept" keeps all but a device "week" of 7 days; "free" has no plan at all."""
    with DuckDBStore(tmp_path / "telemetry") as store:
        for tenant in TENANTS:
            _fill(store, tenant, "press", 20, 5, 2, 0)
        _fill(store, "long", "brief", 20, 5, 2, 0)
        _fill(store, "kept", "week", 20, 5, 2, 0)
        store.seal(NOW - timedelta(hours=1))
        usage = {tenant: store.disk_usage(tenant).sealed_bytes for tenant in TENANTS}
        plans = [
            RetentionPlan("platform", 10, {}),
            RetentionPlan("short", 3, {}),
            RetentionPlan("long", 40, {"brief": 1}),
            RetentionPlan("kept", None, {"week": 7}),
        ]
        clock, registry = _Clock(), CollectorRegistry()
        retention = Retention(lambda: plans, every=3600, clock=clock, now=lambda: NOW)
        retention(store, UpkeepMetrics(registry))

        assert _points(store, "platform", "press") == 3 * 5000  # 20 days ago went
        assert _points(store, "short", "press") == 2 * 5000  # so did 5 days ago
        assert _points(store, "long", "press") == 4 * 5000  # 40 days: all stay
        assert _points(store, "long", "brief") == 5000  # its own 1 day: today's only
        assert _points(store, "kept", "press") == 4 * 5000  # the tenant keeps all...
        assert _points(store, "kept", "week") == 3 * 5000  # ...but this device 7 days
        assert _points(store, "free", "press") == 4 * 5000  # no plan: untouched
        dropped = registry.get_sample_value("plantwire_store_retention_dropped_points_total")
        assert dropped == (1 + 2 + 3 + 1) * 5000
        # Every tenant that lost points has fewer bytes on disk (whole days unlinked, or the
        # files it shares with devices that stay rewritten without the others); "free" has
        # as many as before, and the catalogue's count is what the folder holds.
        after = {tenant: store.disk_usage(tenant).sealed_bytes for tenant in TENANTS}
        assert all(after[tenant] < usage[tenant] for tenant in ("platform", "short", "long"))
        assert after["kept"] < usage["kept"]
        assert after["free"] == usage["free"]
        folder = store.directory / "sealed"
        on_disk = sum(path.stat().st_size for path in folder.rglob("*.parquet"))
        assert on_disk == store.disk_usage().sealed_bytes

        plans.append(RetentionPlan("free", 1, {}))
        retention(store, UpkeepMetrics(CollectorRegistry()))  # within the hour: no run
        assert _points(store, "free", "press") == 4 * 5000
        clock.now += 3600
        retention(store, UpkeepMetrics(CollectorRegistry()))
        assert _points(store, "free", "press") == 5000
        assert _points(store, "platform", "press") == 3 * 5000  # nothing more to drop there


def test_the_running_platform_applies_tenant_and_device_settings(tmp_path: Path) -> None:
    """Through the API, end to end: the platform drops after 2 days, tenant b keeps 30, and a
    device of tenant a keeps 10; the upkeep's first run after a restart applies all three."""
    data = tmp_path / "data"
    settings = make_settings(data, store_maintenance_seconds=3600, telemetry_retention_days=2)
    initialise(settings, ADMIN_PASSWORD)
    now = datetime.now(UTC)
    with TestClient(create_app(settings)) as client:  # no upkeep run while it is set up
        seed = seed_platform(client)
        a, b = seed.tenants["a"], seed.tenants["b"]
        keeper = create(client, a.headers["tenant-admin"], "keeper", retention_days=10)["id"]
        answer = client.put(_path(b.id), json={"days": 30}, headers=b.headers["tenant-admin"])
        assert answer.status_code == 200, answer.text
        store = platform_of(client).store
        assert isinstance(store, DuckDBStore)
        for tenant, device in ((a.id, "press"), (a.id, keeper), (b.id, "press")):
            store.append(seconds_of(tenant, device, "t", now - timedelta(days=5), 100))
            store.append(seconds_of(tenant, device, "t", now - timedelta(hours=3), 10))
        store.seal(now - timedelta(hours=1))
        before = {tenant: store.disk_usage(tenant).sealed_bytes for tenant in (a.id, b.id)}

    running = make_settings(data, store_maintenance_seconds=1, telemetry_retention_days=2)
    with TestClient(create_app(running)) as client:
        registry = platform_of(client).metrics
        wait_for(
            lambda: (
                registry.get_sample_value("plantwire_store_retention_dropped_points_total") == 100
            ),
            "retention to drop the old points of tenant a's press",
            timeout=10,
        )
        store = platform_of(client).store
        assert isinstance(store, DuckDBStore)
        assert store.export(a.id, 0, 2**62, "press").num_rows == 10
        assert store.export(a.id, 0, 2**62, keeper).num_rows == 110
        assert store.export(b.id, 0, 2**62, "press").num_rows == 110
        assert store.disk_usage(a.id).sealed_bytes < before[a.id]
        assert store.disk_usage(b.id).sealed_bytes == before[b.id]

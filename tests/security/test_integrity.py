"""Rules the database and the API keep together, on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from plantwire.ids.store import SqlHandleStore
from tests.conftest import PASSWORD, Seed
from tests.security.helpers import platform_of


def test_a_tenant_with_other_pillars_resources_is_not_deleted(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    created = client.post("/api/v1/tenants", json={"name": "Prefix owner"}, headers=seed.admin)
    tenant = created.json()["id"]
    SqlHandleStore(platform_of(client).engine).home("88.101.77", tenant)
    response = client.delete(f"/api/v1/tenants/{tenant}", headers=seed.admin)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"/api/v1/tenants/{tenant}", headers=seed.admin).status_code == 200


def test_deleting_a_tenant_while_a_user_is_added_never_fails_with_500(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    for trial in range(8):
        tenant = client.post(
            "/api/v1/tenants", json={"name": f"Race {trial}"}, headers=seed.admin
        ).json()["id"]
        body = {
            "username": f"racer-{trial}",
            "password": PASSWORD,
            "role": "viewer",
            "tenant": tenant,
        }
        with ThreadPoolExecutor(2) as pool:
            deleting = pool.submit(client.delete, f"/api/v1/tenants/{tenant}", headers=seed.admin)
            adding = pool.submit(client.post, "/api/v1/users", json=body, headers=seed.admin)
            codes = {deleting.result().status_code, adding.result().status_code}
        assert codes in ({204, 404}, {409, 201}), codes


@pytest.mark.parametrize(
    ("first", "second"), [("Ärzte eG", "ärzte eg"), ("Straße AG", "STRASSE AG")]
)
def test_tenant_names_collide_regardless_of_case_on_every_backend(
    seeded: tuple[TestClient, Seed], first: str, second: str
) -> None:
    client, seed = seeded
    assert (
        client.post("/api/v1/tenants", json={"name": first}, headers=seed.admin).status_code == 201
    )
    clash = client.post("/api/v1/tenants", json={"name": second}, headers=seed.admin)
    assert clash.status_code == 409


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_audit_dates_beyond_the_calendar_are_422(
    seeded: tuple[TestClient, Seed], moment: str
) -> None:
    client, seed = seeded
    response = client.get(
        "/api/v1/audit", params={"since": moment}, headers=seed.tenants["a"].headers["tenant-admin"]
    )
    assert response.status_code == 422

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Seed


def test_seeded_platform_answers_on_both_backends(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    response = client.get("/api/v1/users", headers=seed.admin)
    assert response.status_code == 200
    names = {u["username"] for u in response.json()["items"]}
    assert {"admin", "a-viewer", "b-tenant-admin"} <= names

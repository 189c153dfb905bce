"""Backup while the platform runs, restore into a new data dir, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwire.app import create_app
from plantwire.backup import MANIFEST, BackupError, make_backup, restore_backup
from plantwire.config import Settings, load_settings
from plantwire.datadir import FORMAT_VERSION, read_format
from plantwire.lifecycle import initialise
from plantwire.telemetry.store import DuckDBStore, PointBatch
from tests.conftest import ADMIN_PASSWORD, PASSWORD, login, make_settings, seed_platform
from tests.security.helpers import platform_of
from tests.test_cli import run


def _snapshot(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    tenants = client.get("/api/v1/tenants?limit=1000", headers=headers).json()["items"]
    users = client.get("/api/v1/users?limit=1000", headers=headers).json()["items"]
    audit = client.get("/api/v1/audit?limit=1000", headers=headers).json()["items"]
    return {"tenants": tenants, "users": users, "audit": audit}


def _write_while(client: TestClient, headers: dict[str, str], stop: threading.Event) -> int:
    written = 0
    while not stop.is_set() and written < 200:
        response = client.post("/api/v1/tenants", json={"name": f"busy {written}"}, headers=headers)
        assert response.status_code == 201
        written += 1
    return written


def test_backup_while_writing_then_restore(tmp_path: Path, database_url: str | None) -> None:
    settings = make_settings(tmp_path / "live", database_url=database_url)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        seed_platform(client)
        admin = login(client, "admin", ADMIN_PASSWORD)
        stop = threading.Event()
        counts: list[int] = []
        writer = threading.Thread(target=lambda: counts.append(_write_while(client, admin, stop)))
        writer.start()
        try:
            manifest = make_backup(settings, tmp_path / "backup", platform_of(client).store)
        finally:
            stop.set()
            writer.join()
        live_after = _snapshot(client, admin)

    assert manifest["format"] == FORMAT_VERSION
    tenants_in_backup = manifest["tables"]["tenants"]
    assert 2 <= tenants_in_backup <= 2 + counts[0]

    target = make_settings(tmp_path / "restored")
    restore_backup(tmp_path / "backup", target)
    assert read_format(target.data_dir) is not None
    with TestClient(create_app(target), raise_server_exceptions=False) as restored:
        admin_r = login(restored, "admin", ADMIN_PASSWORD)
        login(restored, "a-engineer", PASSWORD)  # password hashes survived
        snapshot = _snapshot(restored, admin_r)
    # the restored registry is one consistent state: a prefix of what the live one holds
    assert len(snapshot["tenants"]) == tenants_in_backup
    live_tenants = {t["id"]: t for t in live_after["tenants"]}
    for tenant in snapshot["tenants"]:
        assert live_tenants[tenant["id"]] == tenant
    live_users = {u["id"]: u for u in live_after["users"]}
    assert all(live_users[u["id"]] == u for u in snapshot["users"])
    restored_tenant_ids = {t["id"] for t in snapshot["tenants"]}
    assert all(u["tenant"] in restored_tenant_ids | {None} for u in snapshot["users"])


@pytest.mark.postgres
def test_restore_moves_sqlite_to_postgres(tmp_path: Path, postgres_url: str) -> None:
    source = make_settings(tmp_path / "sqlite")
    initialise(source, ADMIN_PASSWORD)
    with TestClient(create_app(source), raise_server_exceptions=False) as client:
        seed_platform(client)
        before = _snapshot(client, login(client, "admin", ADMIN_PASSWORD))
    make_backup(source, tmp_path / "backup")
    target = make_settings(tmp_path / "pg", database_url=postgres_url)
    restore_backup(tmp_path / "backup", target)
    with TestClient(create_app(target), raise_server_exceptions=False) as client:
        admin = login(client, "admin", ADMIN_PASSWORD)
        after = _snapshot(client, admin)
        # new audit entries get fresh ids after the restored ones
        created = client.post("/api/v1/tenants", json={"name": "after move"}, headers=admin)
        assert created.status_code == 201
        newest = client.get("/api/v1/audit?limit=1", headers=admin).json()["items"][0]
    assert after["tenants"] == before["tenants"]
    assert after["users"] == before["users"]
    assert after["audit"][0]["action"] == "auth.login"  # the login that took this snapshot
    assert after["audit"][1:] == before["audit"]
    assert newest["id"] > max(e["id"] for e in before["audit"])


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[Settings, Path]:
    settings = make_settings(tmp_path / "live")
    initialise(settings, ADMIN_PASSWORD)
    make_backup(settings, tmp_path / "backup")
    return settings, tmp_path / "backup"


def test_restore_refuses_an_initialised_data_dir(backed_up: tuple[Settings, Path]) -> None:
    settings, backup = backed_up
    with pytest.raises(BackupError, match="initialised data dir"):
        restore_backup(backup, settings)


def test_restore_refuses_a_tampered_backup(
    backed_up: tuple[Settings, Path], tmp_path: Path
) -> None:
    _, backup = backed_up
    users = backup / "registry" / "users.jsonl"
    users.write_text(users.read_text().replace("platform-admin", "platform-admix"))
    with pytest.raises(BackupError, match="checksum"):
        restore_backup(backup, make_settings(tmp_path / "new"))
    assert read_format(tmp_path / "new") is None


def test_restore_refuses_a_newer_backup(backed_up: tuple[Settings, Path], tmp_path: Path) -> None:
    _, backup = backed_up
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["format"] = FORMAT_VERSION + 1
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="reads up to"):
        restore_backup(backup, make_settings(tmp_path / "new"))


def test_backup_refuses_a_non_empty_destination(
    backed_up: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, backup = backed_up
    with pytest.raises(BackupError, match="not empty"):
        make_backup(settings, backup)
    with pytest.raises(BackupError, match="not an initialised"):
        make_backup(make_settings(tmp_path / "nothing"), tmp_path / "b2")


def test_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not a plantwire backup"):
        restore_backup(tmp_path, make_settings(tmp_path / "new"))
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(BackupError, match="damaged"):
        restore_backup(tmp_path, make_settings(tmp_path / "new"))


@pytest.mark.slow
def test_cli_backup_and_restore(tmp_path: Path) -> None:
    env = {"PLANTWIRE_ADMIN_PASSWORD": "cli-backup-pw"}
    live, backup, restored = tmp_path / "live", tmp_path / "bk", tmp_path / "restored"
    assert run("init", "--data-dir", str(live), env=env).returncode == 0
    made = run("backup", str(backup), "--data-dir", str(live))
    assert made.returncode == 0, made.stderr
    assert "Backed up" in made.stdout
    again = run("backup", str(backup), "--data-dir", str(live))
    assert again.returncode == 2
    assert "not empty" in again.stderr
    done = run("restore", str(backup), "--data-dir", str(restored))
    assert done.returncode == 0, done.stderr
    assert read_format(restored) is not None


def test_restored_data_dir_points_at_the_registry_it_was_restored_into(
    backed_up: tuple[Settings, Path], tmp_path: Path
) -> None:
    """The backup's own database_url (here: some PostgreSQL) must not follow it into the new
    data dir, or a later `plantwire up` would open the old registry instead of the restored."""
    _, backup = backed_up
    config = backup / "plantwire.toml"
    config.write_text('http_port = 9123\ndatabase_url = "postgresql://old@elsewhere/db"\n')
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["files"]["plantwire.toml"] = hashlib.sha256(config.read_bytes()).hexdigest()
    (backup / MANIFEST).write_text(json.dumps(manifest))

    target = make_settings(tmp_path / "new")
    restore_backup(backup, target)
    reloaded = load_settings(tmp_path / "new")
    assert reloaded.http_port == 9123
    assert reloaded.database_url is None
    assert reloaded.registry_url == target.registry_url


@pytest.mark.postgres
def test_move_to_postgres_is_recorded_in_the_new_config(
    backed_up: tuple[Settings, Path], tmp_path: Path, postgres_url: str
) -> None:
    _, backup = backed_up
    restore_backup(backup, make_settings(tmp_path / "pg", database_url=postgres_url))
    assert load_settings(tmp_path / "pg").database_url == postgres_url
    assert (tmp_path / "pg" / "plantwire.toml").stat().st_mode & 0o077 == 0


def test_backup_of_an_unknown_schema_is_refused_before_writing(
    backed_up: tuple[Settings, Path], tmp_path: Path
) -> None:
    _, backup = backed_up
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["schema_revision"] = "9999_from_the_future"
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="newer than this plantwire knows"):
        restore_backup(backup, make_settings(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def _write_manifest(backup: Path, manifest: object) -> None:
    (backup / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        {"files": {}},
        {"files": {}, "format": "1"},
        {"files": {}, "format": True},
        {"files": [], "format": 1},
        {"files": {"/etc/hostname": "x"}, "format": 1},
        {"files": {"../outside.jsonl": "x"}, "format": 1},
    ],
)
def test_malformed_manifests_are_refused(
    backed_up: tuple[Settings, Path], tmp_path: Path, manifest: object
) -> None:
    _, backup = backed_up
    _write_manifest(backup, manifest)
    with pytest.raises(BackupError):
        restore_backup(backup, make_settings(tmp_path / "new"))
    assert read_format(tmp_path / "new") is None


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(row_file=st.binary(max_size=300))
def test_any_row_file_restores_or_fails_clearly(
    backed_up: tuple[Settings, Path], tmp_path_factory: pytest.TempPathFactory, row_file: bytes
) -> None:
    """Even a backup whose checksums were re-made to match damaged rows never crashes the
    restore nor leaves a half-restored data dir behind."""
    _, backup = backed_up
    copy = tmp_path_factory.mktemp("bk")
    shutil.copytree(backup, copy, dirs_exist_ok=True)
    rows = copy / "registry" / "tenants.jsonl"
    rows.write_bytes(row_file)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["registry/tenants.jsonl"] = hashlib.sha256(row_file).hexdigest()
    _write_manifest(copy, manifest)
    target = tmp_path_factory.mktemp("target") / "data"
    try:
        restore_backup(copy, make_settings(target))
    except BackupError:
        assert read_format(target) is None
    else:
        assert read_format(target) is not None


# --- the time-series store -----------------------------------------------------------------

DAY = datetime(2026, 11, 22, tzinfo=UTC)


def _append_while(store: DuckDBStore, stop: threading.Event) -> int:
    """Batches of 100 points, each committed with checkpoint ("test", n): a store restored
    from a consistent copy holds exactly the batches up to its checkpoint."""
    sequence = 0
    while not stop.is_set() and sequence < 2000:
        sequence += 1
        batch = PointBatch()
        for n in range(100):
            batch.add("t", "live", "m", datetime.now(UTC), sequence * 1000 + n)
        store.append(batch, checkpoint=("test", sequence))
    return sequence


def test_backup_and_restore_carry_the_telemetry_store(tmp_path: Path) -> None:
    """Points sealed in Parquet files and hot in DuckDB come back; a backup taken while
    appends and a seal run is one consistent state of the store."""
    settings = make_settings(tmp_path / "live")
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings)) as client:
        store = platform_of(client).store
        assert isinstance(store, DuckDBStore)
        for day in range(3):  # three sealed days, the last one sealed twice
            start = DAY + timedelta(days=day)
            store.append(_seconds("t", "press", "temp", start, 600))
            store.seal(start + timedelta(hours=1))
        store.append(_seconds("t", "press", "temp", DAY + timedelta(days=2, hours=2), 60))
        store.seal(DAY + timedelta(days=3))
        store.append(_seconds("t", "press", "temp", DAY + timedelta(days=4), 30))  # hot
        store.append(_seconds("other", "press", "temp", DAY, 5))
        assert store.disk_usage().sealed_files == 4
        stop = threading.Event()
        appended: list[int] = []
        writer = threading.Thread(target=lambda: appended.append(_append_while(store, stop)))
        writer.start()
        try:
            time.sleep(0.2)
            store.seal(DAY + timedelta(days=5))  # seals the hot day meanwhile
            manifest = make_backup(settings, tmp_path / "backup", store)
        finally:
            stop.set()
            writer.join()
        before = store.export("t", 0, 2**62, device="press")

    assert manifest["telemetry_files"] >= 5
    assert "telemetry/telemetry.duckdb" in manifest["files"]
    assert any(name.endswith(".parquet") for name in manifest["files"])
    target = make_settings(tmp_path / "restored")
    restore_backup(tmp_path / "backup", target)
    with TestClient(create_app(target)) as restored_client:
        restored = platform_of(restored_client).store
        assert isinstance(restored, DuckDBStore)
        assert restored.export("t", 0, 2**62, device="press").equals(before)
        assert restored.export("other", 0, 2**62).num_rows == 5
        committed = restored.checkpoint("test")
        assert 0 < committed <= appended[0]
        live = restored.export("t", 0, 2**62, device="live")["v_int"].to_pylist()
        assert sorted(value or 0 for value in live) == [
            s * 1000 + n for s in range(1, committed + 1) for n in range(100)
        ]
        page = restored.raw("t", "press", "temp", DAY, DAY + timedelta(days=5), limit=10_000)
        assert len(page.points) == 600 * 3 + 60 + 30


def _seconds(tenant: str, device: str, metric: str, start: datetime, count: int) -> PointBatch:
    batch = PointBatch()
    for n in range(count):
        batch.add(tenant, device, metric, start + timedelta(seconds=n), float(n))
    return batch


def test_a_backup_without_a_running_platform_opens_the_store_itself(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "live")
    initialise(settings, ADMIN_PASSWORD)
    make_backup(settings, tmp_path / "before")  # no platform ran yet: no store to copy
    assert not (tmp_path / "before" / "telemetry").exists()
    with TestClient(create_app(settings)) as client:
        store = platform_of(client).store
        assert store is not None
        store.append(_seconds("t", "d", "m", DAY, 10))
    manifest = make_backup(settings, tmp_path / "after")
    assert manifest["telemetry_files"] == 1
    target = make_settings(tmp_path / "restored")
    restore_backup(tmp_path / "after", target)
    with DuckDBStore(target.data_dir / "telemetry") as restored:
        assert restored.export("t", 0, 2**62).num_rows == 10


def test_a_store_held_by_another_process_is_not_copied_behind_its_back(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "live")
    initialise(settings, ADMIN_PASSWORD)
    script = (
        "import sys, time; from pathlib import Path\n"
        "from plantwire.telemetry.store import DuckDBStore\n"
        "with DuckDBStore(Path(sys.argv[1])):\n"
        "    print('open', flush=True); time.sleep(60)\n"
    )
    command = [sys.executable, "-c", script, str(settings.data_dir / "telemetry")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "open\n"
            with pytest.raises(BackupError, match="held by a running process"):
                make_backup(settings, tmp_path / "backup")
        finally:
            holder.kill()


def test_restore_refuses_a_target_with_a_store_and_takes_its_copy_back_on_failure(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "live")
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings)):
        pass  # the store exists from now on
    make_backup(settings, tmp_path / "backup")
    occupied = make_settings(tmp_path / "occupied")
    (occupied.data_dir / "telemetry").mkdir(parents=True)
    (occupied.data_dir / "telemetry" / "telemetry.duckdb").write_bytes(b"someone's")
    with pytest.raises(BackupError, match="exists already"):
        restore_backup(tmp_path / "backup", occupied)
    assert (occupied.data_dir / "telemetry" / "telemetry.duckdb").read_bytes() == b"someone's"
    # a registry that refuses the rows: the copied store goes away again
    refusing = make_settings(tmp_path / "refusing")
    initialise(refusing, ADMIN_PASSWORD)
    (refusing.data_dir / "plantwire-format.json").unlink()
    with pytest.raises(BackupError, match="already holds"):
        restore_backup(tmp_path / "backup", refusing)
    assert not (refusing.data_dir / "telemetry").exists()

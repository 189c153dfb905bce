"""Bringing a data dir into service: ``plantwire init`` and the checks ``plantwire up`` runs."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
from prometheus_client import CollectorRegistry

from plantwire.config import Settings
from plantwire.datadir import (
    TELEMETRY_DIR,
    DataDirError,
    ensure_current,
    read_format,
    write_format,
)
from plantwire.db import make_engine, make_sessionmaker, migrate
from plantwire.platform import Platform
from plantwire.security.bootstrap import FirstAdmin, ensure_first_admin
from plantwire.security.hashing import PasswordHashing
from plantwire.security.ratelimit import LoginLimiter
from plantwire.telemetry.store import DuckDBStore, StoreError

__all__ = ["InitResult", "build_platform", "initialise", "open_store", "prepare"]

_CONFIG_TEMPLATE = """\
# plantwire settings for this data dir. Every key is optional; PLANTWIRE_<KEY> environment
# variables override these. See docs/configuration.md.
# http_host = "127.0.0.1"
# http_port = 8080
# database_url = "postgresql://user@host/plantwire"
"""


@dataclass(frozen=True, slots=True)
class InitResult:
    created: bool  # False: the dir was initialised already; format and schema were updated
    admin: FirstAdmin | None = None  # for a new data dir: whether an admin was created

    @property
    def admin_password(self) -> str | None:
        """A generated admin password, to show once."""
        return self.admin.generated_password if self.admin is not None else None


def build_platform(settings: Settings) -> Platform:
    engine = make_engine(settings.registry_url)
    return Platform(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        passwords=PasswordHashing(settings.argon2_time_cost, settings.argon2_memory_kib),
        login_limiter=LoginLimiter(
            settings.login_max_failures_per_user,
            settings.login_max_failures_per_address,
            settings.login_failure_window_seconds,
        ),
        metrics=CollectorRegistry(),
    )


def initialise(settings: Settings, admin_password: str | None = None) -> InitResult:
    """Create the data dir, its databases and the first platform admin. Idempotent: on an
    initialised dir it only brings the format and schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    existing = read_format(settings.data_dir)
    if existing is not None:
        prepare(settings)
        return InitResult(created=False)
    config = settings.data_dir / "plantwire.toml"
    if not config.exists():
        config.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
    platform = build_platform(settings)
    try:
        migrate(platform.engine)
        admin = ensure_first_admin(platform.sessions, platform.passwords, admin_password)
    finally:
        platform.engine.dispose()
    write_format(settings.data_dir)  # last: a dir with a format file is complete
    return InitResult(created=True, admin=admin)


def prepare(settings: Settings) -> None:
    """Check the data dir's format (migrating an older one) and migrate the registry schema."""
    ensure_current(settings.data_dir)
    engine = make_engine(settings.registry_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def open_store(settings: Settings) -> DuckDBStore:
    """The data dir's time-series store, for the one process that owns it (DuckDB lets one
    process write a database file)."""
    folder = settings.data_dir / TELEMETRY_DIR
    try:
        return DuckDBStore(folder, memory_limit=settings.store_memory_limit_bytes)
    except duckdb.IOException as error:  # most often: another process holds the file's lock
        raise DataDirError(
            f"The telemetry store in {folder} cannot be opened ({error}). Only one process may "
            "open it: is another plantwire running on this data dir?"
        ) from error
    except (StoreError, duckdb.Error) as error:
        raise DataDirError(f"The telemetry store in {folder} cannot be opened: {error}") from error

"""The registry database: engine setup for SQLite (WAL) and PostgreSQL, sessions, migrations.

The registry holds tenants, users, tokens and the audit log (and, later, devices and handles).
SQLite in the data dir is the default; a ``postgresql://`` URL moves it to PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

__all__ = [
    "Base",
    "alembic_config",
    "current_revision",
    "head_revision",
    "known_revision",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "ping",
    "transaction",
    "writing",
]


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


WRITE = "plantwire_write"  # execution option marking a connection whose transaction writes


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs to serve many concurrent requests.
    SQL parameters are kept out of error messages and logs: they may be secrets' hashes."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy, not the sqlite3 module, says when transactions begin (below)
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            # A transaction that writes takes SQLite's write lock at its start, so it waits
            # its turn (busy_timeout) instead of failing on a stale snapshot when it first
            # writes, and its checks cannot race another writer's.
            write = connection.get_execution_options().get(WRITE, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 3},
        hide_parameters=True,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_turn(engine: Engine | None) -> threading.RLock | contextlib.nullcontext[None]:
    """SQLite has one writer at a time. Writers of this process queue on a lock instead of
    on SQLite's busy handler, which sleeps in growing steps while it polls the file lock (under
    load that sleeping, not the writing, was most of a write's time). Other processes writing
    the same file still wait in busy_timeout. Server databases need no such turn."""
    if engine is None or engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.RLock()
    return lock


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work that writes: commits if the block succeeds, rolls back everything if
    it raises."""
    bind = factory.kw.get("bind")
    turn = _write_turn(bind if isinstance(bind, Engine) else None)
    with turn, factory() as session, session.begin():
        session.connection(execution_options={WRITE: True})
        yield session


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a transaction that writes (see ``transaction``)."""
    with _write_turn(engine), engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            yield connection


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's config for plantwire's migrations (there is no alembic.ini), bound to
    ``engine`` for commands that touch a database."""
    config = Config()
    config.set_main_option("script_location", "plantwire:migrations")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default)."""
    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations package has no revisions"
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this plantwire's migrations."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

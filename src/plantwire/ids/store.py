"""Where a node keeps the handles it is authoritative for.

``HandleStore`` is the interface the authority and the REST API use; ``SqlHandleStore``
implements it on the registry database (SQLite by default, PostgreSQL by URL). Every write is
one transaction. Values are stored as the JSON the REST API answers with (``handle_json``),
with their index, type and public-read flag beside them so reads can filter without parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from plantwire.db import writing
from plantwire.ids.codes import HandleError, ResponseCode
from plantwire.ids.handle_json import value_from_json, value_to_json
from plantwire.ids.model import HandleValue
from plantwire.ids.names import PREFIX_AUTHORITY, Handle, match_key, parse_prefix
from plantwire.ids.tables import handle_values, handles, homed_prefixes
from plantwire.security.tables import utcnow

__all__ = [
    "BatchingWriter",
    "Creation",
    "HandleStore",
    "HomedPrefix",
    "SqlHandleStore",
    "StoredValue",
]


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A value as stored: its JSON fragment plus what reads filter on."""

    index: int
    type_key: str
    public_read: bool
    json: str

    def decode(self) -> HandleValue:
        return value_from_json(json.loads(self.json))


@dataclass(frozen=True, slots=True)
class HomedPrefix:
    prefix: str
    tenant_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Creation:
    """One create-or-replace of a batch (``SqlHandleStore.create_many``)."""

    handle: Handle
    values: Sequence[HandleValue]
    overwrite: bool


class HandleStore(Protocol):
    @property
    def reads_inline(self) -> bool:
        """Whether ``get`` is a local read of microseconds that may run on an event loop."""
        ...

    def get(self, handle: Handle) -> list[StoredValue] | None: ...

    def public_json(self, key: str) -> list[str] | None:
        """The JSON fragments of the publicly readable values of the handle with match key
        ``key``, in index order; None if there is no such handle. The resolution fast path."""
        ...

    def create(self, handle: Handle, values: Sequence[HandleValue], *, overwrite: bool) -> bool: ...

    def create_many(self, items: Sequence[Creation]) -> list[bool | HandleError]: ...

    def add_values(
        self, handle: Handle, values: Sequence[HandleValue], *, overwrite: bool
    ) -> bool: ...

    def remove_values(self, handle: Handle, indexes: Iterable[int]) -> None: ...

    def delete(self, handle: Handle) -> None: ...

    def list_handles(self, prefix: str, offset: int, limit: int | None) -> list[str]: ...

    def count_handles(self, prefix: str) -> int: ...

    def newest_handles(self, prefix: str, limit: int) -> list[tuple[str, datetime]]: ...

    def home(self, prefix: str, tenant_id: str | None) -> None: ...

    def unhome(self, prefix: str) -> None: ...

    def homed(self) -> list[HomedPrefix]: ...


# A handle and its values in one read: no row, no handle; one row of NULLs, no values.
_VALUES_OF = (
    select(
        handle_values.c.idx,
        handle_values.c.type_key,
        handle_values.c.public_read,
        handle_values.c.value_json,
    )
    .select_from(
        handles.outerjoin(handle_values, handle_values.c.handle_key == handles.c.handle_key)
    )
    .where(handles.c.handle_key == bindparam("key"))
    .order_by(handle_values.c.idx)
)


_VALUES_SQL = (
    "SELECT idx, type_key, public_read, value_json FROM handle_values "
    "WHERE handle_key = ? ORDER BY idx"
)
_EXISTS_SQL = "SELECT 1 FROM handles WHERE handle_key = ?"
_MMAP_BYTES = 2**31 - 2**16  # SQLite's default compile-time ceiling
_CACHE_KIB = 32 * 1024  # per reading thread


class _SqliteReader:
    """Read-only ``sqlite3`` connections to the registry file, one per thread, for the
    resolution path. WAL lets them read while a writer writes."""

    def __init__(self, engine: Engine) -> None:
        self._path = engine.url.database or ""
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []

    def rows(self, key: str) -> list[tuple[Any, ...]]:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                f"file:{self._path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,  # used by its own thread only; closed by close()
                timeout=30,
            )
            # Reads through a memory map and a bigger page cache: at ten million handles a
            # lookup walks a deeper B-tree, and syscalls per page were what that cost.
            connection.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            connection.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        # The values alone are one range read of one B-tree; only a handle without values
        # needs the second look (as the LEFT JOIN's row of NULLs says elsewhere).
        rows: list[tuple[Any, ...]] = connection.execute(_VALUES_SQL, (key,)).fetchall()
        if rows:
            return rows
        if connection.execute(_EXISTS_SQL, (key,)).fetchone() is None:
            return []
        return [(None, None, None, None)]

    def close(self) -> None:
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()
        self._local = threading.local()


def _encode(value: HandleValue, now: datetime) -> dict[str, object]:
    stamped = replace(value, timestamp=now)  # the node, not the client, says when
    return {
        "idx": value.index,
        "type_key": match_key(value.type),
        "public_read": value.permissions.public_read,
        "value_json": json.dumps(value_to_json(stamped), ensure_ascii=False, separators=(",", ":")),
    }


_IN_CHUNK = 500  # keys per IN (…) list
_RECORD_KEY_START = match_key(PREFIX_AUTHORITY) + "/"  # match keys of prefix records
_RECORDS_KEPT = 4096
_VALUE_COLUMNS = ("handle_key", "idx", "type_key", "public_read", "value_json")  # _Plan.rows


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _IN_CHUNK):
        yield keys[start : start + _IN_CHUNK]


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


@dataclass(slots=True)
class _Plan:
    """What one batch of creations writes, decided from the handles that exist."""

    outcomes: list[bool | HandleError]
    new_handles: list[tuple[str, str, str]]  # key, handle as written, prefix key
    replaced: list[str]
    rows: list[tuple[str, int, str, bool, str]]  # in _VALUE_COLUMNS order


def _plan(items: Sequence[Creation], existing: set[str], now: datetime) -> _Plan:
    plan = _Plan([], [], [], [])
    for item in items:
        key = item.handle.key
        if key in existing and not item.overwrite:
            plan.outcomes.append(
                HandleError(
                    ResponseCode.HANDLE_ALREADY_EXISTS, f"Handle {item.handle} already exists."
                )
            )
            continue
        if key in existing:
            plan.replaced.append(key)
        else:
            plan.new_handles.append((key, str(item.handle), match_key(item.handle.prefix)))
        for value in item.values:
            encoded = _encode(value, now)
            plan.rows.append(
                (
                    key,
                    value.index,
                    str(encoded["type_key"]),
                    value.permissions.public_read,
                    str(encoded["value_json"]),
                )
            )
        plan.outcomes.append(key not in existing)
    return plan


class SqlHandleStore:
    """``HandleStore`` on the registry database."""

    # How long a prefix record read here may be reused. Writes through this store forget
    # it at once; a write by another process (another server of a site on PostgreSQL) is
    # seen within this time, as homed prefixes are (``HandleNode.homed_keys``).
    RECORD_SECONDS = 2.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = _SqliteReader(engine) if engine.dialect.name == "sqlite" else None
        self._records: dict[str, tuple[float, list[StoredValue] | None]] = {}
        self._records_generation = 0
        self._records_lock = threading.Lock()
        # A moment as SQLAlchemy writes it into a ``UTCDateTime`` column of this database
        # (for the statements that bypass SQLAlchemy).
        column_type = handles.c.created_at.type.dialect_impl(engine.dialect)
        convert = column_type.bind_processor(engine.dialect)
        self._time_column: Callable[[datetime], Any] = convert or (lambda moment: moment)

    @property
    def reads_inline(self) -> bool:
        return self._reader is not None

    def close(self) -> None:
        """Close the read connections this store opened (the engine is the caller's)."""
        if self._reader is not None:
            self._reader.close()

    # --- reads ------------------------------------------------------------------------

    def _rows(self, key: str) -> Sequence[Any]:
        """(index, type key, public read, JSON) rows of the handle with match key ``key``:
        none if there is no such handle, one row of NULLs if it has no values. One indexed
        read: on SQLite through a plain ``sqlite3`` connection of this thread's (no layer
        between the query and the caller), elsewhere through one prebuilt Core statement."""
        if self._reader is not None:
            return self._reader.rows(key)
        with self.engine.connect() as connection:
            return connection.execute(_VALUES_OF, {"key": key}).all()

    def get(self, handle: Handle) -> list[StoredValue] | None:
        """The handle's values in index order; None if there is no such handle. Prefix
        records — read by every write they govern — are kept for ``RECORD_SECONDS``, and
        forgotten at once when this store writes one (see ``_forget_records``)."""
        if not handle.is_prefix_record:
            return self._read(handle)
        now = time.monotonic()
        kept = self._records.get(handle.key)
        if kept is not None and kept[0] > now:
            return None if kept[1] is None else list(kept[1])
        generation = self._records_generation
        found = self._read(handle)
        with self._records_lock:
            if generation == self._records_generation:  # no write of a record meanwhile
                if len(self._records) >= _RECORDS_KEPT:
                    self._records.clear()
                self._records[handle.key] = (now + self.RECORD_SECONDS, found)
        return None if found is None else list(found)

    @contextlib.contextmanager
    def _writing(self, *keys: str) -> Iterator[Connection]:
        """A write transaction on the handles with match keys ``keys``."""
        try:
            with writing(self.engine) as connection:
                yield connection
        finally:
            self._forget_records(keys)

    def _forget_records(self, keys: Iterable[str]) -> None:
        """After a committed write: drop the kept prefix records if it touched one."""
        if any(key.startswith(_RECORD_KEY_START) for key in keys):
            with self._records_lock:
                self._records_generation += 1
                self._records.clear()

    def _read(self, handle: Handle) -> list[StoredValue] | None:
        rows = self._rows(handle.key)
        if not rows:
            return None
        return [
            StoredValue(row[0], row[1], bool(row[2]), row[3]) for row in rows if row[0] is not None
        ]

    def public_json(self, key: str) -> list[str] | None:
        rows = self._rows(key)
        if not rows:
            return None
        return [row[3] for row in rows if row[0] is not None and row[2]]

    @staticmethod
    def _exists(connection: Connection, handle: Handle) -> bool:
        found = connection.execute(
            select(handles.c.handle_key).where(handles.c.handle_key == handle.key)
        ).first()
        return found is not None

    def list_handles(self, prefix: str, offset: int = 0, limit: int | None = None) -> list[str]:
        """Handles under ``prefix`` (not its derived prefixes), in match-key order."""
        query = (
            select(handles.c.handle)
            .where(handles.c.prefix_key == match_key(parse_prefix(prefix)))
            .order_by(handles.c.handle_key)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def count_handles(self, prefix: str) -> int:
        query = select(func.count()).where(handles.c.prefix_key == match_key(parse_prefix(prefix)))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def newest_handles(self, prefix: str, limit: int) -> list[tuple[str, datetime]]:
        """The ``limit`` handles under ``prefix`` created last, newest first, with when
        (an index walk: ``ix_handles_prefix_created``)."""
        query = (
            select(handles.c.handle, handles.c.created_at)
            .where(handles.c.prefix_key == match_key(parse_prefix(prefix)))
            .order_by(handles.c.created_at.desc(), handles.c.handle_key.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(str(h), created) for h, created in connection.execute(query)]

    # --- writes -----------------------------------------------------------------------

    def create(self, handle: Handle, values: Sequence[HandleValue], *, overwrite: bool) -> bool:
        """Make ``handle`` hold exactly ``values``. Returns True if the handle is new; an
        existing handle is replaced when ``overwrite``, else HANDLE_ALREADY_EXISTS."""
        try:
            (outcome,) = self.create_many([Creation(handle, values, overwrite)])
        except IntegrityError as error:  # a concurrent create of the same handle won
            raise HandleError(
                ResponseCode.HANDLE_ALREADY_EXISTS, f"Handle {handle} already exists."
            ) from error
        if isinstance(outcome, HandleError):
            raise outcome
        return outcome

    def create_many(self, items: Sequence[Creation]) -> list[bool | HandleError]:
        """``create`` for many handles in one transaction (one commit for all): each item's
        outcome is True (created), False (replaced) or the HandleError it ended with; a
        handle may appear once per batch."""
        now = utcnow()
        keys = [item.handle.key for item in items]
        if len(set(keys)) != len(keys):
            raise ValueError("A batch names one handle at most once.")
        with self._writing(*keys) as connection:
            if self._reader is not None:
                # The registration hot path on SQLite: the same statements on the
                # transaction's own sqlite3 connection, without SQLAlchemy's per-row work
                # (which cost ten times the inserts).
                driver = connection.connection.driver_connection
                assert isinstance(driver, sqlite3.Connection)
                outcomes = self._create_sqlite(driver.cursor(), items, keys, now)
            else:
                outcomes = self._create_core(connection, items, keys, now)
        return outcomes

    def _create_sqlite(
        self, cursor: sqlite3.Cursor, items: Sequence[Creation], keys: list[str], now: datetime
    ) -> list[bool | HandleError]:
        existing: set[str] = set()
        for chunk in _chunks(keys):
            query = f"SELECT handle_key FROM handles WHERE handle_key IN ({_marks(chunk)})"  # noqa: S608 (only ? marks)
            existing.update(row[0] for row in cursor.execute(query, chunk))
        plan = _plan(items, existing, now)
        stamp = self._time_column(now)
        for chunk in _chunks(plan.replaced):
            dropping = f"DELETE FROM handle_values WHERE handle_key IN ({_marks(chunk)})"  # noqa: S608 (only ? marks)
            cursor.execute(dropping, chunk)
            touching = f"UPDATE handles SET updated_at = ? WHERE handle_key IN ({_marks(chunk)})"  # noqa: S608 (only ? marks)
            cursor.execute(touching, [stamp, *chunk])
        cursor.executemany(
            "INSERT INTO handles (handle_key, handle, prefix_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(key, text, prefix, stamp, stamp) for key, text, prefix in plan.new_handles],
        )
        cursor.executemany(
            "INSERT INTO handle_values (handle_key, idx, type_key, public_read, value_json)"
            " VALUES (?, ?, ?, ?, ?)",
            plan.rows,
        )
        return plan.outcomes

    @staticmethod
    def _create_core(
        connection: Connection, items: Sequence[Creation], keys: list[str], now: datetime
    ) -> list[bool | HandleError]:
        existing: set[str] = set()
        for chunk in _chunks(keys):
            existing.update(
                connection.execute(
                    select(handles.c.handle_key).where(handles.c.handle_key.in_(chunk))
                ).scalars()
            )
        plan = _plan(items, existing, now)
        if plan.replaced:
            connection.execute(
                delete(handle_values).where(handle_values.c.handle_key.in_(plan.replaced))
            )
            connection.execute(
                update(handles)
                .where(handles.c.handle_key.in_(plan.replaced))
                .values(updated_at=now)
            )
        if plan.new_handles:
            connection.execute(
                insert(handles),
                [
                    {
                        "handle_key": key,
                        "handle": text,
                        "prefix_key": prefix,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for key, text, prefix in plan.new_handles
                ],
            )
        if plan.rows:
            connection.execute(
                insert(handle_values),
                [dict(zip(_VALUE_COLUMNS, row, strict=True)) for row in plan.rows],
            )
        return plan.outcomes

    def add_values(self, handle: Handle, values: Sequence[HandleValue], *, overwrite: bool) -> bool:
        """Add ``values`` to an existing handle. A value at an index already used replaces
        it when ``overwrite``, else VALUE_ALREADY_EXISTS. Returns True if no value was
        replaced."""
        now = utcnow()
        indexes = [v.index for v in values]
        with self._writing(handle.key) as connection:
            if not self._exists(connection, handle):
                raise HandleError(ResponseCode.HANDLE_NOT_FOUND, f"Handle {handle} not found.")
            taken = set(
                connection.execute(
                    select(handle_values.c.idx).where(
                        handle_values.c.handle_key == handle.key,
                        handle_values.c.idx.in_(indexes),
                    )
                ).scalars()
            )
            if taken and not overwrite:
                raise HandleError(
                    ResponseCode.VALUE_ALREADY_EXISTS,
                    f"Handle {handle} has values at index {', '.join(map(str, sorted(taken)))}.",
                )
            if taken:
                connection.execute(
                    delete(handle_values).where(
                        handle_values.c.handle_key == handle.key,
                        handle_values.c.idx.in_(taken),
                    )
                )
            connection.execute(
                insert(handle_values),
                [{"handle_key": handle.key, **_encode(v, now)} for v in values],
            )
            connection.execute(
                update(handles).where(handles.c.handle_key == handle.key).values(updated_at=now)
            )
        return not taken

    def remove_values(self, handle: Handle, indexes: Iterable[int]) -> None:
        """Remove the values at ``indexes``: all of them, or none (VALUES_NOT_FOUND)."""
        wanted = set(indexes)
        with self._writing(handle.key) as connection:
            if not self._exists(connection, handle):
                raise HandleError(ResponseCode.HANDLE_NOT_FOUND, f"Handle {handle} not found.")
            result = connection.execute(
                delete(handle_values).where(
                    handle_values.c.handle_key == handle.key,
                    handle_values.c.idx.in_(wanted),
                )
            )
            if result.rowcount != len(wanted):  # raising rolls the deletion back
                raise HandleError(
                    ResponseCode.VALUES_NOT_FOUND,
                    f"Handle {handle} has no value at some of {sorted(wanted)}.",
                )
            connection.execute(
                update(handles)
                .where(handles.c.handle_key == handle.key)
                .values(updated_at=utcnow())
            )

    def delete(self, handle: Handle) -> None:
        with self._writing(handle.key) as connection:
            connection.execute(
                delete(handle_values).where(handle_values.c.handle_key == handle.key)
            )
            result = connection.execute(delete(handles).where(handles.c.handle_key == handle.key))
            if result.rowcount == 0:
                raise HandleError(ResponseCode.HANDLE_NOT_FOUND, f"Handle {handle} not found.")

    # --- homed prefixes ---------------------------------------------------------------

    def home(self, prefix: str, tenant_id: str | None) -> None:
        """Make this node authoritative for ``prefix``'s handles (idempotent)."""
        key = match_key(parse_prefix(prefix))
        try:
            with writing(self.engine) as connection:
                found = connection.execute(
                    select(homed_prefixes.c.prefix_key).where(homed_prefixes.c.prefix_key == key)
                ).first()
                if found is None:
                    connection.execute(
                        insert(homed_prefixes).values(
                            prefix_key=key, prefix=prefix, tenant_id=tenant_id, created_at=utcnow()
                        )
                    )
        except IntegrityError:
            return  # homed concurrently: the outcome is the same

    def unhome(self, prefix: str) -> None:
        key = match_key(parse_prefix(prefix))
        with writing(self.engine) as connection:
            connection.execute(delete(homed_prefixes).where(homed_prefixes.c.prefix_key == key))

    def homed(self) -> list[HomedPrefix]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    homed_prefixes.c.prefix, homed_prefixes.c.tenant_id, homed_prefixes.c.created_at
                ).order_by(homed_prefixes.c.prefix_key)
            ).all()
        return [HomedPrefix(row[0], row[1], row[2]) for row in rows]


class BatchingWriter:
    """Group commit for handle creation: creates requested at about the same time (from
    any thread, through ``create``) are written by one transaction, so a busy node pays one
    commit per batch instead of one per handle. Runs on the event loop it was made in."""

    def __init__(self, store: HandleStore, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[Creation, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def create(
        self, handle: Handle, values: Sequence[HandleValue], *, overwrite: bool
    ) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((Creation(handle, values, overwrite), future))
        running = self._flushing
        if running is None or running.done() or running.get_loop() is not future.get_loop():
            self._flushing = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    def _write(self, creations: list[Creation]) -> list[bool | HandleError]:
        try:
            return self.store.create_many(creations)
        except IntegrityError:
            # Another server of the site created one of them meanwhile (PostgreSQL): write
            # them one by one, so only that one hears "already exists".
            outcomes: list[bool | HandleError] = []
            for creation in creations:
                try:
                    outcomes.append(
                        self.store.create(
                            creation.handle, creation.values, overwrite=creation.overwrite
                        )
                    )
                except HandleError as error:
                    outcomes.append(error)
            return outcomes

    async def _flush(self) -> None:
        while self._pending:
            batch: list[tuple[Creation, asyncio.Future[bool]]] = []
            seen: set[str] = set()
            later = []
            for entry in self._pending:
                if len(batch) < self.max_batch and entry[0].handle.key not in seen:
                    seen.add(entry[0].handle.key)
                    batch.append(entry)
                else:
                    later.append(entry)  # the same handle twice: the next batch, in order
            self._pending = later
            try:
                outcomes = await anyio.to_thread.run_sync(
                    self._write, [creation for creation, _ in batch]
                )
            except Exception as error:  # the whole transaction failed: each caller hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                try:
                    if isinstance(outcome, HandleError):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                except RuntimeError:  # its event loop is gone; nobody waits for it
                    continue

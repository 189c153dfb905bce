"""The embedded time-series store: one DuckDB database file for recent points and catalogues,
sealed Parquet files per tenant and day beside it (layout and measurements: docs/telemetry.md).

One process owns the store (DuckDB allows one writing process). Appends take a short lock and
run on one writer connection; reads and maintenance each run on a cursor of their own (DuckDB's
MVCC: readers see a snapshot and never wait for the writer, and a seal deleting old hot rows
does not conflict with appends of new ones)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from plantwire.telemetry.store import queries, sealing
from plantwire.telemetry.store.batch import PointBatch, SeriesKey
from plantwire.telemetry.store.model import (
    Activity,
    Bucket,
    DiskUsage,
    Point,
    RawPage,
    StaleCheckpointError,
    StoreError,
    to_micros,
)
from plantwire.telemetry.store.schema import DDL, FORMAT

__all__ = ["DuckDBStore", "MaintenancePolicy"]

T = TypeVar("T")
DATABASE = "telemetry.duckdb"
SEALED = "sealed"
_MICROSECOND = timedelta(microseconds=1)

#: DuckDB's own memory by default: its buffer pool (cached blocks of the database and of
#: sealed files) and what sorts, joins and aggregates hold; beyond it they spill to
#: ``telemetry.duckdb.tmp`` in the store folder (a query's materialised result cannot, and
#: must fit). DuckDB's own default is 80 % of RAM: sealing and merging a 25-million-point
#: backlog took the process to 3.6 GiB with it and 0.7 GiB with this, 1.2 times as long
#: (bench/seal_memory.py), which leaves room under the platform process's 1 GiB bound.
DEFAULT_MEMORY_LIMIT = 512 << 20

# Store folders open in this process. DuckDB hands a second connection to an open file the same
# database, so a second DuckDBStore on it would write with its own locks and series numbering,
# and take the first one's half-written seals for orphans: refused instead.
_open_folders: set[Path] = set()
_open_folders_lock = threading.Lock()


def _series_table(rows: list[tuple[int, int, str, str]]) -> pa.Table:
    """New rows of ``series`` (id, tenant, device, metric) as columns."""
    ids, tenants, devices, metrics = zip(*rows, strict=True)
    return pa.table(
        {
            "id": pa.array(ids, pa.int32()),
            "tenant": pa.array(tenants, pa.int32()),
            "device": pa.array(devices, pa.string()),
            "metric": pa.array(metrics, pa.string()),
        }
    )


class MaintenancePolicy:
    """When `DuckDBStore.maintain` seals and merges.

    Hot points are sealed once there are ``seal_rows`` of them or the oldest is ``seal_age``
    old, leaving the last ``grace`` in hot for late arrivals, in chunks of at most about
    ``seal_rows`` points, oldest first: a backlog is sealed a chunk at a time, so what one seal
    sorts and holds does not grow with it. A tenant-day's sealed files are merged once the day
    is past ``grace``, or sooner when it has ``max_files``."""

    def __init__(
        self,
        seal_rows: int = 2_000_000,
        seal_age: timedelta = timedelta(hours=1),
        grace: timedelta = timedelta(minutes=5),
        max_files: int = 8,
    ) -> None:
        self.seal_rows = seal_rows
        self.seal_age = seal_age
        self.grace = grace
        self.max_files = max_files


def _micros(moment: datetime | int) -> int:
    return moment if isinstance(moment, int) else to_micros(moment)


class DuckDBStore:
    """`TimeSeriesStore` on DuckDB and Parquet, in ``directory`` (created if missing).

    ``memory_limit`` bounds DuckDB's memory, in bytes (None: DuckDB's default, 80 % of RAM);
    sorts and joins that need more spill to ``telemetry.duckdb.tmp`` in ``directory``."""

    def __init__(
        self,
        directory: Path,
        policy: MaintenancePolicy | None = None,
        *,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.policy = policy or MaintenancePolicy()
        self._root = directory / SEALED
        self._root.mkdir(exist_ok=True)
        self._folder = directory.resolve()
        with _open_folders_lock:
            if self._folder in _open_folders:
                raise StoreError(f"the store in {directory} is open already in this process")
            _open_folders.add(self._folder)
        config: dict[str, str | bool | int | float | list[str]] = {
            "temp_directory": str(directory / f"{DATABASE}.tmp")
        }
        if memory_limit is not None:
            config["memory_limit"] = f"{int(memory_limit)}B"
        try:
            self._db = duckdb.connect(str(directory / DATABASE), config=config)
        except BaseException:
            self._forget_folder()
            raise
        try:
            self._db.execute("SET GLOBAL parquet_metadata_cache = true")
            self._db.execute(DDL)
            self._check_format()
            self._tenants: dict[str, int] = dict(
                self._db.execute("SELECT name, id FROM tenants").fetchall()
            )
            self._series: dict[SeriesKey, int] = {}
            names = {number: name for name, number in self._tenants.items()}
            for series_id, tenant, device, metric in self._db.execute(
                "SELECT id, tenant, device, metric FROM series"
            ).fetchall():
                self._series[(names[tenant], device, metric)] = series_id
            self._checkpoints: dict[str, int] = dict(
                self._db.execute("SELECT name, seq FROM checkpoints").fetchall()
            )
            (last_file,) = self._db.execute("SELECT coalesce(max(id), 0) FROM sealed").fetchone()  # type: ignore[misc]
            self._last_file = int(last_file)
            catalogued = {
                path for (path,) in self._db.execute("SELECT path FROM sealed").fetchall()
            }
            sealing.remove_orphans(self._root, catalogued)
        except BaseException:
            self._db.close()
            self._forget_folder()
            raise
        self._closed = False
        self._writer = self._db.cursor()
        self._write_lock = threading.Lock()
        self._maintenance_lock = threading.Lock()

    def _check_format(self) -> None:
        found = self._db.execute("SELECT format FROM store_format").fetchall()
        if not found:
            self._db.execute("INSERT INTO store_format VALUES (?)", [FORMAT])
        elif found[0][0] in (1, 2):
            # Format 2 dropped the primary key of `latest`; format 3 keeps in `latest` only
            # the newest *sealed* point of a series (a format-2 table, newest of all, is one).
            self._db.begin()
            if found[0][0] == 1:
                self._db.execute(
                    "CREATE TABLE latest_2 AS SELECT * FROM latest; DROP TABLE latest;"
                    " ALTER TABLE latest_2 RENAME TO latest"
                )
            self._db.execute("UPDATE store_format SET format = ?", [FORMAT])
            self._db.commit()
        elif found[0][0] != FORMAT:
            raise StoreError(
                f"{self.directory / DATABASE} has store format {found[0][0]}; "
                f"this plantwire reads format {FORMAT}"
            )

    def _forget_folder(self) -> None:
        with _open_folders_lock:
            _open_folders.discard(self._folder)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._db.close()
        self._forget_folder()

    def ping(self) -> None:
        """Answer a trivial query, or raise: what readiness checks ask."""
        self._read(lambda db: db.execute("SELECT 1").fetchall())

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------

    def checkpoint(self, name: str) -> int:
        """The last stream sequence committed with data under ``name`` (0: none yet)."""
        return self._checkpoints.get(name, 0)

    def append(
        self,
        batch: PointBatch,
        checkpoint: tuple[str, int] | None = None,
        states: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Write ``batch`` and, in the same transaction, move checkpoint ``(name, seq)``
        forward and set ``states`` (None removes a key). All are committed or none; a
        ``seq`` not after the committed one raises `StaleCheckpointError` and writes
        nothing."""
        if not len(batch) and checkpoint is None and not states:
            return
        with self._write_lock:
            if checkpoint is not None:
                name, seq = checkpoint
                committed = self._checkpoints.get(name, 0)
                if seq <= committed:
                    raise StaleCheckpointError(name, seq, committed)
            new_tenants, new_series, ids = self._number(batch.keys)
            table = batch.to_arrow(ids)
            try:
                self._write(table, new_tenants, new_series, checkpoint, states or {})
            except duckdb.Error as error:  # a full disk, an I/O error: rolled back
                raise StoreError(f"the append failed and was rolled back: {error}") from error
            for tenant_id, tenant_name in new_tenants:
                self._tenants[tenant_name] = tenant_id
            names = {number: name for name, number in self._tenants.items()}
            for series_id, tenant_id, device, metric in new_series:
                self._series[(names[tenant_id], device, metric)] = series_id
            if checkpoint is not None:
                self._checkpoints[checkpoint[0]] = checkpoint[1]

    def _write(
        self,
        table: pa.Table,
        new_tenants: list[tuple[int, str]],
        new_series: list[tuple[int, int, str, str]],
        checkpoint: tuple[str, int] | None,
        states: Mapping[str, bytes | None],
    ) -> None:
        cursor = self._writer
        cursor.begin()
        try:
            if new_tenants:
                cursor.executemany("INSERT INTO tenants VALUES (?, ?)", new_tenants)
            if new_series:  # as one Arrow table: executemany took 27 s for 100,000 rows
                cursor.register("new_series", _series_table(new_series))
                cursor.execute("INSERT INTO series SELECT * FROM new_series")
            self._insert_points(cursor, table)
            if checkpoint is not None:
                self._commit_checkpoint(cursor, *checkpoint)
            if states:
                self._set_states(cursor, states)
            cursor.commit()
        except BaseException:
            cursor.rollback()
            raise
        finally:
            cursor.unregister("incoming")
            if new_series:
                cursor.unregister("new_series")

    def _number(
        self, keys: list[SeriesKey]
    ) -> tuple[list[tuple[int, str]], list[tuple[int, int, str, str]], list[int]]:
        """Ids of ``keys``, and the tenants and series rows to insert for those not seen yet
        (the caches learn them only once the append commits)."""
        new_tenants: dict[str, int] = {}
        new_series: list[tuple[int, int, str, str]] = []
        ids = []
        next_tenant = len(self._tenants) + 1
        next_series = len(self._series) + 1
        for key in keys:
            found = self._series.get(key)
            if found is None:
                tenant, device, metric = key
                tenant_id = self._tenants.get(tenant) or new_tenants.get(tenant)
                if tenant_id is None:
                    tenant_id = new_tenants[tenant] = next_tenant
                    next_tenant += 1
                found = next_series
                next_series += 1
                new_series.append((found, tenant_id, device, metric))
            ids.append(found)
        return [(number, name) for name, number in new_tenants.items()], new_series, ids

    def _insert_points(self, cursor: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
        cursor.register("incoming", table)
        cursor.execute("INSERT INTO hot SELECT * FROM incoming")

    def _commit_checkpoint(self, cursor: duckdb.DuckDBPyConnection, name: str, seq: int) -> None:
        cursor.execute(
            "INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seq = ?",
            [name, seq, seq],
        )

    def _set_states(
        self, cursor: duckdb.DuckDBPyConnection, states: Mapping[str, bytes | None]
    ) -> None:
        gone = [[key] for key, value in states.items() if value is None]
        if gone:
            cursor.executemany("DELETE FROM states WHERE key = ?", gone)
        kept = [[key, value] for key, value in states.items() if value is not None]
        if kept:
            cursor.executemany(
                "INSERT INTO states VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                kept,
            )

    def states(self, prefix: str) -> dict[str, bytes]:
        """The committed states whose keys start with ``prefix``."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT key, value FROM states WHERE starts_with(key, ?)", [prefix]
            ).fetchall()
        )
        return {str(key): bytes(value) for key, value in rows}

    # --- reading ------------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._db.cursor()
        try:
            cursor.begin()
            yield cursor
        finally:
            cursor.close()  # a read-only transaction: closing rolls it back

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``query`` at one snapshot; if a sealed file it named was merged or dropped
        meanwhile (unlinked after the catalogue changed), run it again at a fresh snapshot."""
        for attempt in range(3):
            try:
                with self._snapshot() as cursor:
                    return query(cursor)
            except duckdb.IOException:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _series_id(self, tenant: str, device: str, metric: str) -> int | None:
        return self._series.get((tenant, device, metric))

    def latest(self, tenant: str, device: str) -> list[Point]:
        """The latest point of each metric of a device, by metric name."""
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            return []
        return self._read(lambda cursor: queries.latest(cursor, tenant_id, device))

    def activity(self, tenant: str, since: int) -> Activity:
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            return Activity({}, {})
        return self._read(lambda cursor: queries.activity(cursor, tenant_id, since))

    def raw(
        self,
        tenant: str,
        device: str,
        metric: str,
        start: datetime | int,
        end: datetime | int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> RawPage:
        """Points of a metric in [start, end), oldest first; pass the page's ``cursor`` back
        for the next page."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        series = self._series_id(tenant, device, metric)
        if series is None:
            return RawPage([], None)
        window = (_micros(start), _micros(end))
        return self._read(
            lambda db: queries.raw(
                db,
                self._root,
                self._tenants[tenant],
                series,
                (device, metric),
                window,
                limit,
                cursor,
            )
        )

    def aggregate(
        self,
        tenant: str,
        device: str,
        metric: str,
        start: datetime | int,
        end: datetime | int,
        interval: timedelta,
        *,
        use_rollups: bool = True,
    ) -> list[Bucket]:
        """avg, min, max, sum, count, first and last of a metric's numeric points in [start,
        end) per interval (aligned on the epoch; buckets without points are left out). From the
        1-hour or 1-minute rollups when the interval and range allow, else from raw points."""
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        series = self._series_id(tenant, device, metric)
        if series is None:
            return []
        window = (_micros(start), _micros(end))
        return self._read(
            lambda db: queries.aggregate(
                db, self._root, self._tenants[tenant], series, window, interval, use_rollups
            )
        )

    def export(
        self,
        tenant: str,
        start: datetime | int,
        end: datetime | int,
        device: str | None = None,
        *,
        metric: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """A tenant's points in [start, end), of one device and one metric if given, as an
        Arrow table sorted by device, metric and time; at most ``limit`` rows if given."""
        chosen = queries.Chosen(device, metric, limit)
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            return self._read(lambda db: queries.export(db, self._root, -1, (0, 0), chosen))
        window = (_micros(start), _micros(end))
        return self._read(lambda db: queries.export(db, self._root, tenant_id, window, chosen))

    def disk_usage(self, tenant: str | None = None) -> DiskUsage:
        """Bytes on disk; with ``tenant``, the sealed files are only that tenant's."""
        database = sum(
            path.stat().st_size
            for path in (self.directory / DATABASE, self.directory / f"{DATABASE}.wal")
            if path.exists()
        )
        where, parameters = "", []
        if tenant is not None:
            where, parameters = "WHERE tenant = ?", [self._tenants.get(tenant, -1)]
        files, size = self._read(
            lambda db: db.execute(
                f"SELECT count(*), coalesce(sum(bytes), 0) FROM sealed {where}", parameters
            ).fetchone()
        ) or (0, 0)
        return DiskUsage(database, int(size), int(files))

    # --- maintenance --------------------------------------------------------------------------

    def _next_file(self) -> int:
        self._last_file += 1
        return self._last_file

    @contextmanager
    def _maintaining(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[Path]]]:
        """One maintenance transaction; files listed in the yielded list are unlinked after it
        commits, and files it wrote are unlinked if it fails."""
        with self._maintenance_lock:
            first_new = self._last_file + 1
            doomed: list[Path] = []
            cursor = self._db.cursor()
            try:
                cursor.begin()
                yield cursor, doomed
                cursor.commit()
            except BaseException:
                cursor.rollback()
                catalogued = {p for (p,) in self._db.execute("SELECT path FROM sealed").fetchall()}
                written = [
                    path
                    for path in self._root.rglob("*")
                    if path.is_file()
                    and path.relative_to(self._root).as_posix() not in catalogued
                    and (
                        path.suffix == ".tmp"
                        or (path.stem.isdigit() and int(path.stem) >= first_new)
                    )
                ]
                sealing.unlink_all(written, self._root)
                raise
            finally:
                cursor.close()
            sealing.unlink_all(doomed, self._root)

    def seal(self, before: datetime | int) -> int:
        """Move hot points older than ``before`` into sealed files; how many were moved."""
        with self._maintaining() as (cursor, _):
            return sealing.seal(cursor, self._root, _micros(before), self._next_file)

    def compact(self, tenant: str, day: date) -> bool:
        """Merge a tenant-day's sealed files into one; whether there was anything to merge."""
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            return False
        with self._maintaining() as (cursor, doomed):
            doomed.extend(sealing.compact(cursor, self._root, tenant_id, day, self._next_file))
        return bool(doomed)

    def drop_before(
        self,
        tenant: str,
        before: datetime,
        device: str | None = None,
        *,
        keep: Collection[str] = (),
    ) -> int:
        """Retention: drop a tenant's points (or one device's) before ``before``, taken in
        whole UTC days (rounded down to midnight); how many points were dropped. Sealed files
        of whole days are unlinked, so their disk space is returned at once; files that also
        hold points that stay are rewritten without the dropped ones. The points of the
        devices in ``keep`` stay (they have a retention of their own)."""
        if device is not None and keep:
            raise ValueError("drop one device's points, or a tenant's but those of 'keep'")
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            return 0
        series = None
        if device is not None:
            known = list(self._series.items())  # the writer may add series meanwhile
            series = [sid for (t, d, _), sid in known if t == tenant and d == device]
        cutoff = before.astimezone(UTC).date() if before.tzinfo else before.date()
        with self._maintaining() as (cursor, doomed):
            dropped, files = sealing.drop_before(
                cursor, self._root, tenant_id, series, cutoff, self._next_file, keep
            )
            doomed.extend(files)
            sealing.forget_latest(cursor, tenant_id, series, cutoff, keep)
        return dropped

    def maintain(self, now: datetime | None = None) -> None:
        """Seal and merge as `policy` says; the platform calls this every minute or so."""
        moment = _micros(now or datetime.now(UTC))
        grace = self.policy.grace // _MICROSECOND
        self._seal_backlog(moment)
        closed = (datetime.fromtimestamp((moment - grace) / 1e6, UTC)).date()
        crowded = self._read(
            lambda db: db.execute(
                "SELECT t.name, s.day, count(*) AS files FROM sealed s "
                "JOIN tenants t ON t.id = s.tenant GROUP BY ALL "
                "HAVING files >= ? OR (files > 1 AND s.day < ?)",
                [self.policy.max_files, closed],
            ).fetchall()
        )
        for tenant, day, _ in crowded:
            self.compact(tenant, day)

    def _seal_backlog(self, moment: int) -> None:
        """Seal hot points, a chunk of at most about ``seal_rows`` at a time, oldest first and
        each chunk its own transaction, while the hot table holds ``seal_rows`` points or its
        oldest is ``seal_age`` old; the last ``grace`` stays. A chunk ends before the
        timestamp of the (seal_rows + 1)-th oldest point; when more than ``seal_rows`` points
        share the oldest timestamp, it takes all of them (a seal cuts between timestamps)."""
        policy = self.policy
        limit = moment - policy.grace // _MICROSECOND
        aged = moment - policy.seal_age // _MICROSECOND
        while True:
            rows, oldest, cut = self._read(lambda db: self._backlog(db, policy.seal_rows))
            if not rows or (rows < policy.seal_rows and oldest >= aged):
                return
            # a chunk takes at least the points at ``oldest``, so each one makes progress
            before = limit if cut is None else min(max(cut, oldest + 1), limit)
            if before <= oldest or not self.seal(before):
                return  # all in the grace period (or gone meanwhile): the next run goes on

    @staticmethod
    def _backlog(db: duckdb.DuckDBPyConnection, chunk: int) -> tuple[int, int, int | None]:
        """(hot points, the oldest one's timestamp, that of the (chunk + 1)-th oldest or None
        when there are no more): ``ORDER BY … LIMIT … OFFSET`` is DuckDB's top-N, which holds
        a chunk's timestamps, not the table's."""
        rows, oldest = db.execute(  # type: ignore[misc]
            "SELECT count(*), coalesce(epoch_us(min(ts)), 0) FROM hot"
        ).fetchone()
        if rows <= chunk:
            return int(rows), int(oldest), None
        (cut,) = db.execute(  # type: ignore[misc]
            "SELECT epoch_us(ts) FROM hot ORDER BY ts LIMIT 1 OFFSET ?", [chunk]
        ).fetchone()
        return int(rows), int(oldest), int(cut)

    def backup(self, destination: Path) -> list[str]:
        """Copy the store into ``destination`` (a new folder) while it runs, consistently: no
        maintenance runs meanwhile, so the sealed files and their catalogue stay as they are,
        and appends wait only while the database is checkpointed and copied. The files
        written, relative to ``destination``."""
        destination.mkdir(parents=True)
        written = []
        with self._maintenance_lock:
            with self._write_lock:
                self._writer.execute("CHECKPOINT")
                for name in (DATABASE, f"{DATABASE}.wal"):
                    if (self.directory / name).exists():
                        shutil.copyfile(self.directory / name, destination / name)
                        written.append(name)
            catalogued = self._read(
                lambda db: db.execute("SELECT path FROM sealed ORDER BY path").fetchall()
            )
            for (path,) in catalogued:
                target = destination / SEALED / path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._root / path, target)
                written.append(f"{SEALED}/{path}")
        return written

    def checkpoint_database(self) -> None:
        """Write DuckDB's WAL into the database file (DuckDB also does so by itself)."""
        with self._write_lock:
            self._writer.execute("CHECKPOINT")

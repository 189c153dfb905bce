"""``plantwire backup`` / ``plantwire restore``: a consistent copy of a data dir, made while
the platform runs.

The registry is dumped logically (one JSON Lines file per table, with a manifest carrying the
schema revision and a SHA-256 of every file) from one snapshot: SQLite is first copied with
SQLite's online backup API, PostgreSQL is read in one REPEATABLE READ transaction. A backup
restores into an empty registry on either backend, so it also moves a platform from SQLite to
PostgreSQL.

The time-series store is copied as files by the store itself (``TimeSeriesStore.backup``): its
DuckDB database checkpointed and copied while appends wait, and the sealed Parquet files its
catalogue names, while no maintenance runs. The process that holds the store does that: the
running platform passes its store in; without one, the backup opens the data dir's store
itself, which works while no platform runs on the data dir."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import tempfile
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Connection, DateTime, Engine, MetaData, Table, func, make_url, select, text
from sqlalchemy.exc import SAWarning, SQLAlchemyError

from plantwire import __version__
from plantwire.config import CONFIG_FILE_NAME, Settings
from plantwire.datadir import FORMAT_VERSION, TELEMETRY_DIR, read_format, write_format
from plantwire.db import current_revision, known_revision, make_engine, migrate, writing
from plantwire.telemetry.store import DuckDBStore, StoreError, TimeSeriesStore

__all__ = ["MANIFEST", "BackupError", "make_backup", "restore_backup"]

MANIFEST = "manifest.json"
_REGISTRY = "registry"
_SKIP_TABLES = frozenset({"alembic_version"})


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reflect(connection: Connection) -> MetaData:
    """The registry's tables as the database has them (the backup's schema may be older than
    this plantwire's models). Only columns matter here: SQLite cannot reflect expression
    indexes and says so, which is harmless for copying rows."""
    metadata = MetaData()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index", SAWarning
        )
        metadata.reflect(connection)
    return metadata


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


@contextmanager
def _snapshot(settings: Settings) -> Iterator[Connection]:
    """A connection that sees one consistent state of the registry."""
    url = settings.registry_url
    if url.startswith("sqlite"):
        source_path = make_url(url).database or ""
        with tempfile.TemporaryDirectory(prefix="plantwire-backup-") as scratch:
            copy_path = Path(scratch) / "registry.db"
            with sqlite3.connect(source_path) as source, sqlite3.connect(copy_path) as copy:
                source.backup(copy)  # SQLite's online backup: consistent while writers run
            source.close()
            copy.close()
            engine = make_engine(f"sqlite:///{copy_path}")
            try:
                with engine.connect() as connection:
                    yield connection
            finally:
                engine.dispose()
        return
    engine = make_engine(url)
    try:
        with (
            engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ) as connection,
            connection.begin(),
        ):
            yield connection
    finally:
        engine.dispose()


def _backup_store(settings: Settings, target: Path, store: TimeSeriesStore | None) -> list[str]:
    """Copy the time-series store into ``target``; the files written, relative to it."""
    if store is not None:
        return store.backup(target)
    folder = settings.data_dir / TELEMETRY_DIR
    if not folder.is_dir():
        return []  # no platform has run on this data dir yet: there is no store
    try:
        opened = DuckDBStore(folder)
    except duckdb.IOException as error:
        raise BackupError(
            f"The telemetry store in {folder} is held by a running process ({error}); the "
            "process that holds it must make the backup, or stop it and back up again."
        ) from error
    except StoreError as error:
        raise BackupError(f"The telemetry store in {folder} cannot be opened: {error}") from error
    with opened:
        return opened.backup(target)


def make_backup(
    settings: Settings, destination: Path, store: TimeSeriesStore | None = None
) -> dict[str, Any]:
    """Write a backup of ``settings.data_dir`` to ``destination`` (new or empty folder).
    ``store``: the time-series store, when this process holds it open (the running platform);
    else the backup opens the data dir's store."""
    if read_format(settings.data_dir) is None:
        raise BackupError(f"{settings.data_dir} is not an initialised plantwire data dir.")
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty; back up into a new folder.")
    (destination / _REGISTRY).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    with _snapshot(settings) as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        metadata = _reflect(connection)
        for table in metadata.sorted_tables:
            if table.name in _SKIP_TABLES:
                continue
            relative = f"{_REGISTRY}/{table.name}.jsonl"
            path = destination / relative
            rows = 0
            key = list(table.primary_key.columns)
            with path.open("w", encoding="utf-8") as handle:
                for row in connection.execute(select(table).order_by(*key)).mappings():
                    record = {name: _encode(value) for name, value in row.items()}
                    handle.write(json.dumps(record, separators=(",", ":")) + "\n")
                    rows += 1
            files[relative] = _sha256(path)
            counts[table.name] = rows
    telemetry = _backup_store(settings, destination / TELEMETRY_DIR, store)
    for relative in telemetry:
        files[f"{TELEMETRY_DIR}/{relative}"] = _sha256(destination / TELEMETRY_DIR / relative)
    config = settings.data_dir / CONFIG_FILE_NAME
    if config.exists():
        shutil.copy2(config, destination / CONFIG_FILE_NAME)
        files[CONFIG_FILE_NAME] = _sha256(destination / CONFIG_FILE_NAME)
    manifest = {
        "plantwire": __version__,
        "format": FORMAT_VERSION,
        "schema_revision": revision,
        "created_at": datetime.now(UTC).isoformat(),
        "tables": counts,
        "telemetry_files": len(telemetry),
        "files": files,
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _read_manifest(source: Path) -> dict[str, Any]:
    """The backup's manifest, checked whole: its shape, its format, every file's checksum."""
    where = source / MANIFEST
    try:
        manifest = json.loads(where.read_text("utf-8"))
    except FileNotFoundError as error:
        raise BackupError(f"{source} holds no {MANIFEST}: not a plantwire backup.") from error
    except (ValueError, OSError) as error:  # UnicodeDecodeError and JSONDecodeError included
        raise BackupError(f"{where} is damaged: {error}") from error
    files = manifest.get("files") if isinstance(manifest, dict) else None
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not isinstance(version, int) or isinstance(version, bool):
        raise BackupError(f"{where} is not a plantwire backup manifest.")
    if version > FORMAT_VERSION:
        raise BackupError(
            f"The backup has data dir format {version}; this plantwire reads up to "
            f"{FORMAT_VERSION}. Restore it with plantwire {manifest.get('plantwire')} or newer."
        )
    for relative, expected in files.items():
        parts = Path(relative).parts
        if Path(relative).is_absolute() or ".." in parts or not parts:
            raise BackupError(f"{where} names a file outside the backup: {relative!r}.")
        path = source / relative
        if not path.is_file() or _sha256(path) != expected:
            raise BackupError(f"{path} is missing or does not match its checksum.")
    checked: dict[str, Any] = manifest
    return checked


def _decode_row(table: Table, record: dict[str, Any]) -> dict[str, Any]:
    row = {}
    for name, value in record.items():
        column = table.columns.get(name)
        if column is None:
            raise BackupError(f"Backup column {table.name}.{name} is unknown to the schema.")
        if value is not None and isinstance(column.type, DateTime):
            parsed = datetime.fromisoformat(value).astimezone(UTC)
            value = parsed if column.type.timezone else parsed.replace(tzinfo=None)
        row[name] = value
    return row


def _load_registry(engine: Engine, source: Path, manifest: dict[str, Any]) -> None:
    with writing(engine) as connection:
        metadata = _reflect(connection)
        for table in metadata.sorted_tables:
            if table.name in _SKIP_TABLES:
                continue
            if connection.execute(select(func.count()).select_from(table)).scalar():
                raise BackupError(
                    f"The target registry already holds {table.name}; restore into a new data "
                    "dir or an empty database."
                )
        for table in metadata.sorted_tables:
            path = source / _REGISTRY / f"{table.name}.jsonl"
            if table.name in _SKIP_TABLES or not path.exists():
                continue
            _load_table(connection, table, path)
        if connection.dialect.name == "postgresql":
            _reset_sequences(connection, metadata)


def _load_table(connection: Connection, table: Table, path: Path) -> None:
    """Insert a table's rows in batches; a row that cannot be read or stored fails the whole
    restore (the caller's transaction rolls back) with the line it came from."""
    batch: list[dict[str, Any]] = []
    number = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise BackupError(f"{path}:{number} is not a row object.")
                batch.append(_decode_row(table, record))
                if len(batch) >= 1000:
                    connection.execute(table.insert(), batch)
                    batch.clear()
        if batch:
            connection.execute(table.insert(), batch)
    except (ValueError, TypeError, SQLAlchemyError) as error:
        raise BackupError(f"{path} near line {number} cannot be restored: {error}") from error


def _reset_sequences(connection: Connection, metadata: MetaData) -> None:
    """After inserting explicit ids, move PostgreSQL's serial sequences past them."""
    quote = connection.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is not True:
                continue
            highest = connection.execute(select(func.max(column))).scalar() or 0
            connection.execute(
                text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, false)"),
                {"t": quote(table.name), "c": column.name, "v": highest + 1},
            )


def restore_backup(source: Path, settings: Settings) -> dict[str, Any]:
    """Restore ``source`` into ``settings.data_dir``, which must not be initialised yet (its
    database, for PostgreSQL, must be empty). The schema is then migrated to this version.
    Nothing is written before the backup has been checked whole."""
    manifest = _read_manifest(source)
    revision = str(manifest.get("schema_revision"))
    if not known_revision(revision):
        raise BackupError(
            f"The backup's registry schema ({revision}) is newer than this plantwire knows; "
            f"restore it with plantwire {manifest.get('plantwire')} or newer."
        )
    if read_format(settings.data_dir) is not None:
        raise BackupError(
            f"{settings.data_dir} is an initialised data dir; restore into a new one "
            "(--data-dir) so the running platform keeps its data until you switch over."
        )
    store_folder = settings.data_dir / TELEMETRY_DIR
    if store_folder.exists() and not (store_folder.is_dir() and not any(store_folder.iterdir())):
        raise BackupError(f"{store_folder} exists already; restore into a new data dir.")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The store first: copying it is what most likely fails (disk space), and a failure after
    # it takes it away again, so the target can be used for another attempt.
    _restore_store(source, store_folder, manifest["files"])
    try:
        engine = make_engine(settings.registry_url)
        try:
            found = current_revision(engine)
            if found is not None and found != revision:
                raise BackupError(
                    f"The target database is at schema {found}, the backup at {revision}."
                )
            migrate(engine, revision)
            _load_registry(engine, source, manifest)
            migrate(engine)
        finally:
            engine.dispose()
        _restore_config(source, settings, str(manifest.get("created_at")))
    except BaseException:
        shutil.rmtree(store_folder, ignore_errors=True)
        raise
    write_format(settings.data_dir, int(manifest["format"]))
    return manifest


def _restore_store(source: Path, folder: Path, files: dict[str, str]) -> None:
    """Copy the backup's time-series store (checked against the manifest already) into
    ``folder``, and open it once: its format must be one this plantwire reads."""
    prefix = f"{TELEMETRY_DIR}/"
    chosen = sorted(relative for relative in files if relative.startswith(prefix))
    if not chosen:
        return  # a backup of a data dir on which no platform had run
    try:
        for relative in chosen:
            target = folder / relative.removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, target)
        DuckDBStore(folder).close()
    except (StoreError, duckdb.Error) as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise BackupError(f"The backup's telemetry store cannot be opened: {error}") from error
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


_DATABASE_URL_LINE = re.compile(r"^\s*database_url\s*=")


def _restore_config(source: Path, settings: Settings, created_at: str) -> None:
    """Give the new data dir the backup's settings, except where its registry lives: that is
    where this restore wrote it, so a later ``plantwire up`` opens the restored registry and
    never the one the backup came from. A target that has its own config keeps it."""
    target = settings.data_dir / CONFIG_FILE_NAME
    if target.exists():
        return
    backup_config = source / CONFIG_FILE_NAME
    lines = [f"# restored from the backup of {created_at}"]
    if backup_config.exists():
        kept = backup_config.read_text("utf-8").splitlines()
        lines += [line for line in kept if not _DATABASE_URL_LINE.match(line)]
    if settings.database_url is not None:
        lines.append(f"database_url = {json.dumps(settings.database_url)}")
    text_out = "\n".join(lines) + "\n"
    try:
        tomllib.loads(text_out)
    except tomllib.TOMLDecodeError as error:  # e.g. a multi-line database_url value
        raise BackupError(
            f"Cannot rewrite {backup_config} for the new data dir: {error}"
        ) from error
    target.write_text(text_out, encoding="utf-8")
    target.chmod(0o600)  # it may hold a database password

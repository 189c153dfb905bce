"""Moving points out of the hot table into sealed Parquet files, merging those files, and
dropping them for retention. Every function runs inside the caller's transaction on a cursor
of the store's database and returns the files to unlink once that transaction commits.

Sealed files are per tenant and UTC day (``t<tenant>/<day>/<id>.parquet``), sorted by (series,
ts), so a one-series query reads the footer and the one or two row groups holding the series;
dropping a tenant's old days unlinks whole files and gives the disk back at once. A file is
written under a temporary name, renamed into place, and only then entered in the ``sealed``
catalogue, in the transaction that also deletes its points from ``hot`` and adds their rollups:
readers see the points in exactly one place, and a crash leaves at most a file no catalogue row
names, which `remove_orphans` deletes on the next open."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from datetime import date
from pathlib import Path

import duckdb

from plantwire.telemetry.store.schema import PARQUET_OPTIONS, POINT_COLUMNS, ROLLUPS, rollup_select

__all__ = [
    "compact",
    "drop_before",
    "forget_latest",
    "remove_orphans",
    "seal",
    "sql_files",
    "unlink_all",
]

Cursor = duckdb.DuckDBPyConnection


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_files(root: Path, paths: Iterable[str]) -> str:
    """A ``read_parquet`` call over sealed files given by catalogue paths."""
    return "read_parquet([" + ", ".join(_quote(str(root / path)) for path in paths) + "])"


def _write(cursor: Cursor, root: Path, relative: str, query: str) -> tuple[int, int]:
    """Write ``query``'s rows to ``root/relative`` (via a temporary name); (rows, bytes)."""
    final = root / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.with_suffix(".tmp")
    cursor.execute(f"COPY ({query}) TO {_quote(str(scratch))} ({PARQUET_OPTIONS})")
    (rows,) = cursor.execute(
        f"SELECT count(*) FROM read_parquet({_quote(str(scratch))})"
    ).fetchone()  # type: ignore[misc]
    os.replace(scratch, final)
    return int(rows), final.stat().st_size


def _add_rollups(cursor: Cursor, source: str) -> None:
    for width, table in ROLLUPS.items():
        cursor.execute(f"INSERT INTO {table} {rollup_select(width, source)}")


def _tenant_series(tenant: int) -> str:
    return f"(SELECT id FROM series WHERE tenant = {int(tenant)})"


def _chosen(tenant: int, series: list[int] | None, keep: Collection[str] = ()) -> str:
    """The listed series (a non-empty list), or all of a tenant's series but those of the
    devices in ``keep``."""
    if series is not None:
        return "(" + ", ".join(str(int(number)) for number in series) + ")"
    if not keep:
        return _tenant_series(tenant)
    devices = ", ".join(_quote(device) for device in sorted(keep))
    return f"(SELECT id FROM series WHERE tenant = {int(tenant)} AND device NOT IN ({devices}))"


def seal(cursor: Cursor, root: Path, before: int, next_id: Callable[[], int]) -> int:
    """Seal the hot points older than ``before`` (epoch µs); how many points were sealed."""
    groups = cursor.execute(
        "SELECT s.tenant, CAST(h.ts AS DATE) AS day, count(*) FROM hot h "
        "JOIN series s ON s.id = h.series WHERE h.ts < make_timestamp($1) GROUP BY ALL "
        "ORDER BY ALL",
        [before],
    ).fetchall()
    sealed = 0
    for tenant, day, count in groups:
        file_id = next_id()
        relative = f"t{tenant}/{day.isoformat()}/{file_id}.parquet"
        query = (
            f"SELECT {POINT_COLUMNS} FROM hot WHERE series IN {_tenant_series(tenant)} "
            f"AND ts >= DATE {_quote(day.isoformat())} "
            f"AND ts < DATE {_quote(day.isoformat())} + INTERVAL 1 DAY "
            f"AND ts < make_timestamp({int(before)}) ORDER BY series, ts"
        )
        rows, size = _write(cursor, root, relative, query)
        _add_rollups(cursor, sql_files(root, [relative]))
        cursor.execute(
            "INSERT INTO sealed VALUES (?, ?, ?, ?, ?, ?)",
            [file_id, tenant, day, relative, rows, size],
        )
        sealed += int(count)
    _keep_latest(cursor, before)
    cursor.execute("DELETE FROM hot WHERE ts < make_timestamp($1)", [before])
    return sealed


#: The newest of the points being sealed, per series, into ``latest`` (an UPDATE joined on
#: those series and an INSERT of the series not there yet; of points sharing a timestamp, the
#: one stored last). ``arg_max`` holds a row per series; a window function held the chunk (out
#: of memory under a 32 MiB limit). Appends leave ``latest`` alone: a query takes the newest
#: of ``latest`` and ``hot``. Updating it with every append cost two thirds of the append
#: (10,000 series in a batch: 26 ms of the upsert and 15 of its share of the commit, beside
#: 3.5 ms to insert).
_NEWEST = f"""
CREATE OR REPLACE TEMP TABLE newest AS SELECT series,
    unnest(arg_max(struct_pack({POINT_COLUMNS.removeprefix("series, ")}), (ts, rowid)))
    FROM hot WHERE ts < make_timestamp($before) GROUP BY series"""
_LATEST_FROM_NEWEST = """
UPDATE latest SET ts = n.ts, quality = n.quality, kind = n.kind, v_num = n.v_num,
    v_int = n.v_int, v_text = n.v_text, v_blob = n.v_blob, v_nums = n.v_nums,
    v_ints = n.v_ints, v_texts = n.v_texts
    FROM newest n WHERE latest.series = n.series AND n.ts >= latest.ts;
INSERT INTO latest SELECT * FROM newest n
    WHERE NOT EXISTS (SELECT 1 FROM latest l WHERE l.series = n.series);
DROP TABLE newest;"""


def _keep_latest(cursor: Cursor, before: int) -> None:
    cursor.execute(_NEWEST, {"before": before})
    cursor.execute(_LATEST_FROM_NEWEST)


def compact(
    cursor: Cursor, root: Path, tenant: int, day: date, next_id: Callable[[], int]
) -> list[Path]:
    """Merge a tenant-day's sealed files into one, and rebuild that day's rollups from it (one
    clustered run of rows per series instead of one per seal). The old files, to unlink."""
    old = cursor.execute(
        "SELECT id, path FROM sealed WHERE tenant = ? AND day = ? ORDER BY id", [tenant, day]
    ).fetchall()
    if len(old) < 2:
        return []
    file_id = next_id()
    relative = f"t{tenant}/{day.isoformat()}/{file_id}.parquet"
    source = sql_files(root, [path for _, path in old])
    rows, size = _write(cursor, root, relative, f"SELECT * FROM {source} ORDER BY series, ts")
    day_sql = f"DATE {_quote(day.isoformat())}"
    for table in ROLLUPS.values():
        cursor.execute(
            f"DELETE FROM {table} WHERE series IN {_tenant_series(tenant)} "
            f"AND bucket >= {day_sql} AND bucket < {day_sql} + INTERVAL 1 DAY"
        )
    _add_rollups(cursor, sql_files(root, [relative]))
    cursor.execute("DELETE FROM sealed WHERE id IN (SELECT unnest(?))", [[i for i, _ in old]])
    cursor.execute(
        "INSERT INTO sealed VALUES (?, ?, ?, ?, ?, ?)", [file_id, tenant, day, relative, rows, size]
    )
    return [root / path for _, path in old]


def drop_before(
    cursor: Cursor,
    root: Path,
    tenant: int,
    series: list[int] | None,
    cutoff: date,
    next_id: Callable[[], int],
    keep: Collection[str] = (),
) -> tuple[int, list[Path]]:
    """Drop a tenant's points (or only those of ``series``; or all but those of the devices in
    ``keep``) before midnight of ``cutoff``. (points dropped, files to unlink). Whole files go
    when the tenant loses its old days; when only some series go, the files holding them are
    rewritten without them."""
    if series is not None and not series:
        return 0, []
    chosen = _chosen(tenant, series, keep)
    whole = series is None and not keep
    files = cursor.execute(
        "SELECT id, day, path, rows FROM sealed WHERE tenant = ? AND day < ? ORDER BY id",
        [tenant, cutoff],
    ).fetchall()
    dropped = 0
    doomed: list[Path] = []
    for file_id, day, path, rows in files:
        if whole:
            kept = 0
        else:
            source = sql_files(root, [path])
            (hits,) = cursor.execute(  # type: ignore[misc]
                f"SELECT count(*) FROM {source} WHERE series IN {chosen}"
            ).fetchone()
            if not hits:
                continue
            kept = int(rows) - int(hits)
            if kept:
                new_id = next_id()
                relative = f"t{tenant}/{day.isoformat()}/{new_id}.parquet"
                query = f"SELECT * FROM {source} WHERE series NOT IN {chosen} ORDER BY series, ts"
                new_rows, size = _write(cursor, root, relative, query)
                cursor.execute(
                    "INSERT INTO sealed VALUES (?, ?, ?, ?, ?, ?)",
                    [new_id, tenant, day, relative, new_rows, size],
                )
        cursor.execute("DELETE FROM sealed WHERE id = ?", [file_id])
        dropped += int(rows) - kept
        doomed.append(root / path)
    cutoff_sql = f"DATE {_quote(cutoff.isoformat())}"
    (hot,) = cursor.execute(  # type: ignore[misc]
        f"DELETE FROM hot WHERE series IN {chosen} AND ts < {cutoff_sql}"
    ).fetchone()
    for table in ROLLUPS.values():
        cursor.execute(f"DELETE FROM {table} WHERE series IN {chosen} AND bucket < {cutoff_sql}")
    return dropped + int(hot), doomed


def forget_latest(
    cursor: Cursor,
    tenant: int,
    series: list[int] | None,
    cutoff: date,
    keep: Collection[str] = (),
) -> None:
    """Delete the latest values older than ``cutoff`` of a tenant (or of ``series``; or of all
    but the devices in ``keep``)."""
    if series is not None and not series:
        return
    chosen = _chosen(tenant, series, keep)
    cursor.execute(
        f"DELETE FROM latest WHERE series IN {chosen} AND ts < DATE {_quote(cutoff.isoformat())}"
    )


def unlink_all(paths: Iterable[Path], root: Path) -> None:
    """Unlink files (already gone is fine) and the day and tenant folders they leave empty."""
    for path in paths:
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            if folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def remove_orphans(root: Path, catalogued: set[str]) -> list[Path]:
    """Delete sealed files no catalogue row names (left by a crash mid-seal) and scratch files."""
    removed = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and (path.suffix == ".tmp" or path.relative_to(root).as_posix() not in catalogued)
    ]
    unlink_all(removed, root)
    return removed

"""Read queries of the DuckDB store, each run inside one read transaction on its own cursor:
the catalogue of sealed files, the hot table and the rollups are read at one snapshot, so a
seal committing meanwhile neither hides nor doubles a point."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from plantwire.telemetry.store.batch import value_from_columns
from plantwire.telemetry.store.model import (
    Activity,
    Bucket,
    Point,
    Quality,
    RawPage,
    ValueKind,
    from_micros,
)
from plantwire.telemetry.store.schema import POINT_COLUMNS, ROLLUPS, rollup_select
from plantwire.telemetry.store.sealing import sql_files

__all__ = ["Chosen", "aggregate", "export", "latest", "raw"]

Cursor = duckdb.DuckDBPyConnection
_MICRO = timedelta(microseconds=1)
_EPOCH = "TIMESTAMP '1970-01-01'"
_EPOCH_DATE = date(1970, 1, 1)
_VALUES = "quality, kind, v_num, v_int, v_text, v_blob, v_nums, v_ints, v_texts"
_VALUE_NAMES = _VALUES.split(", ")
_ORDER = "ts, quality, kind, v_num, v_int, v_text, v_blob, v_nums, v_ints, v_texts"


def _sealed_paths(cursor: Cursor, tenant: int, start: int, end: int) -> list[str]:
    rows = cursor.execute(
        "SELECT path FROM sealed WHERE tenant = $tenant "
        "AND day >= CAST(make_timestamp($start) AS DATE) "
        "AND day <= CAST(make_timestamp($end - 1) AS DATE) ORDER BY day, id",
        {"tenant": tenant, "start": start, "end": end},
    ).fetchall()
    return [path for (path,) in rows]


def _points(root: Path, paths: list[str], where: str) -> str:
    """Every stored point (sealed files and hot) that satisfies ``where``."""
    branches = [f"SELECT {POINT_COLUMNS} FROM hot WHERE {where}"]
    if paths:
        branches.insert(0, f"SELECT {POINT_COLUMNS} FROM {sql_files(root, paths)} WHERE {where}")
    return " UNION ALL ".join(branches)


def _range(series: int, start: int, end: int) -> str:
    return (
        f"series = {int(series)} AND ts >= make_timestamp({int(start)}) "
        f"AND ts < make_timestamp({int(end)})"
    )


_QUALITIES = tuple(Quality)


def _point(device: str, metric: str, row: tuple[Any, ...]) -> Point:
    """A row of (epoch µs, quality, kind, the value columns) as a Point."""
    kind = row[2]
    value = row[3] if kind == ValueKind.FLOAT else value_from_columns(kind, row[3:])
    return Point(device, metric, from_micros(row[0]), value, _QUALITIES[row[1]])


def _parse_cursor(token: str) -> tuple[int, int]:
    try:
        ts, skip = (int(part) for part in token.split(":"))
    except ValueError:
        raise ValueError(f"not a paging cursor: {token!r}") from None
    if skip < 0:
        raise ValueError(f"not a paging cursor: {token!r}")
    return ts, skip


_DAY = 86_400_000_000


def _days(cursor: Cursor, tenant: int, series: int, start: int, end: int) -> list[int]:
    """Starts (epoch µs) of the UTC days in [start, end) that may hold points of the series:
    days with sealed files of the tenant, and days of the series' hot points."""
    rows = cursor.execute(
        "SELECT DISTINCT day FROM ("
        " SELECT day FROM sealed WHERE tenant = $tenant"
        "  AND day >= CAST(make_timestamp($start) AS DATE)"
        "  AND day <= CAST(make_timestamp($end - 1) AS DATE)"
        " UNION ALL SELECT CAST(ts AS DATE) FROM hot WHERE series = $series"
        "  AND ts >= make_timestamp($start) AND ts < make_timestamp($end)"
        ") ORDER BY day",
        {"tenant": tenant, "series": series, "start": start, "end": end},
    ).fetchall()
    return [(day - _EPOCH_DATE).days * _DAY for (day,) in rows]


def raw(
    cursor: Cursor,
    root: Path,
    tenant: int,
    series: int,
    names: tuple[str, str],
    window: tuple[int, int],
    limit: int,
    token: str | None,
) -> RawPage:
    """Points of one series in [start, end), oldest first, ``limit`` at a time, read a day at
    a time until the page is full. The cursor is the last timestamp returned and how many
    points at that timestamp were returned, so a page may end between points that share a
    timestamp."""
    start, end = window
    skipped = 0
    if token is not None:
        start, skipped = _parse_cursor(token)
    skip = skipped
    rows: list[tuple[Any, ...]] = []
    for day in _days(cursor, tenant, series, start, end):
        low, high = max(start, day), min(end, day + _DAY)
        source = _points(root, _sealed_paths(cursor, tenant, low, high), _range(series, low, high))
        rows += cursor.execute(
            f"SELECT epoch_us(ts), {_VALUES} FROM ({source}) ORDER BY {_ORDER} "
            f"LIMIT {int(limit) + 1 - len(rows)} OFFSET {int(skip)}"
        ).fetchall()
        skip = 0  # points sharing the cursor's timestamp are all in its day
        if len(rows) > limit:
            break
    points = [_point(*names, row) for row in rows[:limit]]
    if len(rows) <= limit:
        return RawPage(points, None)
    last = rows[limit - 1][0]
    same = sum(1 for row in rows[:limit] if row[0] == last)
    if last == start:
        same += skipped
    return RawPage(points, f"{last}:{same}")


def _rollup_for(interval: timedelta, start: int, end: int) -> tuple[timedelta, str] | None:
    """The coarsest rollup that answers exactly: its width divides the interval, and the range
    starts and ends on its bucket boundaries."""
    for width, table in ROLLUPS.items():
        micros = width // _MICRO
        if interval % width == timedelta(0) and start % micros == 0 and end % micros == 0:
            return width, table
    return None


def aggregate(
    cursor: Cursor,
    root: Path,
    tenant: int,
    series: int,
    window: tuple[int, int],
    interval: timedelta,
    use_rollups: bool,
) -> list[Bucket]:
    start, end = window
    micros = interval // _MICRO
    bucket = f"time_bucket(INTERVAL {micros} MICROSECONDS, {{}}, {_EPOCH})"
    rollup = _rollup_for(interval, start, end) if use_rollups else None
    if rollup is None:
        source = _points(
            root, _sealed_paths(cursor, tenant, start, end), _range(series, start, end)
        )
        query = f"""
            SELECT epoch_us({bucket.format("ts")}) AS b, count(v_num), sum(v_num), min(v_num),
                   max(v_num), arg_min(v_num, ts), arg_max(v_num, ts)
            FROM ({source}) WHERE v_num IS NOT NULL AND quality < {int(Quality.BAD)}
            GROUP BY b ORDER BY b"""
    else:
        width, table = rollup
        hot = f"(SELECT {POINT_COLUMNS} FROM hot WHERE {_range(series, start, end)})"
        query = f"""
            WITH parts AS (
                SELECT * FROM {table} WHERE series = {int(series)}
                    AND bucket >= make_timestamp({int(start)})
                    AND bucket < make_timestamp({int(end)})
                UNION ALL ({rollup_select(width, hot)})
            )
            SELECT epoch_us({bucket.format("bucket")}) AS b, sum(count), sum(sum), min(min),
                   max(max), arg_min(first, first_ts), arg_max(last, last_ts)
            FROM parts GROUP BY b ORDER BY b"""
    return [
        Bucket(from_micros(b), int(count), total, low, high, first, last)
        for b, count, total, low, high, first, last in cursor.execute(query).fetchall()
    ]


_LATEST = f"""
WITH mine AS (SELECT id, metric FROM series WHERE tenant = $tenant AND device = $device),
candidates AS (
    SELECT series, ts, 1 AS fresh, rowid AS arrival, {_VALUES} FROM hot
        WHERE series IN (SELECT id FROM mine)
    UNION ALL
    SELECT series, ts, 0, 0, {_VALUES} FROM latest WHERE series IN (SELECT id FROM mine)
)
SELECT m.metric, epoch_us(n.ts), {", ".join("n." + c for c in _VALUE_NAMES)}
FROM (
    SELECT series, unnest(arg_max(struct_pack(ts, {_VALUES}), (ts, fresh, arrival)))
    FROM candidates GROUP BY series
) n JOIN mine m ON m.id = n.series
ORDER BY m.metric"""


_ACTIVITY = """
WITH mine AS (SELECT id, device FROM series WHERE tenant = $tenant),
seen AS (
    SELECT series, max(ts) AS ts, count(*) FILTER (WHERE ts >= make_timestamp($since)) AS points
        FROM hot WHERE series IN (SELECT id FROM mine) GROUP BY series
    UNION ALL
    SELECT series, ts, 0 FROM latest WHERE series IN (SELECT id FROM mine)
)
SELECT m.device, epoch_us(max(s.ts)), sum(s.points)::BIGINT
FROM seen s JOIN mine m ON m.id = s.series GROUP BY m.device"""


def activity(cursor: Cursor, tenant: int, since: int) -> Activity:
    """Each device's newest point (the ``latest`` table and ``hot``) and its points in
    ``hot`` stamped at or after ``since``: sealing leaves recent points there."""
    rows = cursor.execute(_ACTIVITY, {"tenant": tenant, "since": since}).fetchall()
    return Activity(
        last_seen={device: int(last) for device, last, _ in rows},
        points={device: int(count) for device, _, count in rows if count},
    )


def latest(cursor: Cursor, tenant: int, device: str) -> list[Point]:
    """The newest point of each of a device's series: of those sealed (the ``latest`` table,
    which sealing keeps) and those in ``hot``. Of points sharing a timestamp, the one stored
    last."""
    rows = cursor.execute(_LATEST, {"tenant": tenant, "device": device}).fetchall()
    return [_point(device, row[0], row[1:]) for row in rows]


_QUALITY_NAMES = "[" + ", ".join(f"'{q.name.lower()}'" for q in Quality) + "]"
_KIND_NAMES = "[" + ", ".join(f"'{k.name.lower()}'" for k in ValueKind) + "]"


@dataclass(frozen=True, slots=True)
class Chosen:
    """What an export takes: one device's points or all, one metric's or all, and at most
    ``limit`` rows (None: all)."""

    device: str | None = None
    metric: str | None = None
    limit: int | None = None


def export(
    cursor: Cursor, root: Path, tenant: int, window: tuple[int, int], chosen: Chosen
) -> pa.Table:
    """A tenant's points in [start, end) (of one device and metric, if given) as an Arrow
    table sorted by device, metric and time; quality and kind as names, ``ts`` in UTC."""
    start, end = window
    parameters: dict[str, Any] = {"tenant": tenant, "start": start, "end": end}
    series = "SELECT id FROM series WHERE tenant = $tenant"
    if chosen.device is not None:
        series += " AND device = $device"
        parameters["device"] = chosen.device
    if chosen.metric is not None:
        series += " AND metric = $metric"
        parameters["metric"] = chosen.metric
    where = f"series IN ({series}) AND ts >= make_timestamp($start) AND ts < make_timestamp($end)"
    source = _points(root, _sealed_paths(cursor, tenant, start, end), where)
    limit = f"LIMIT {int(chosen.limit)}" if chosen.limit is not None else ""
    table: pa.Table = cursor.sql(
        f"""SELECT s.device, s.metric, p.ts,
                   {_QUALITY_NAMES}[p.quality + 1] AS quality, {_KIND_NAMES}[p.kind + 1] AS kind,
                   p.v_num, p.v_int, p.v_text, p.v_blob, p.v_nums, p.v_ints, p.v_texts
            FROM ({source}) p JOIN series s ON s.id = p.series
            ORDER BY s.device, s.metric, p.ts {limit}""",
        params=parameters,
    ).to_arrow_table()
    index = table.schema.get_field_index("ts")
    return table.set_column(index, "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC")))

"""The DuckDB store's tables and the SQL that several of its modules share.

``telemetry.duckdb`` holds the catalogues (tenants, series, checkpoints and the states
committed with them, sealed files), the *hot* table of recent points in arrival order, the
newest sealed point of each series (``latest``: a latest value is the newer of it and the hot
table's), and the 1-minute and 1-hour rollups. Sealed points live in Parquet files beside it
(see ``sealing.py``)."""

from __future__ import annotations

from datetime import timedelta

from plantwire.telemetry.store.model import Quality

__all__ = ["DDL", "FORMAT", "PARQUET_OPTIONS", "POINT_COLUMNS", "ROLLUPS", "rollup_select"]

# 2: `latest` has no primary key; 3: `latest` holds the newest sealed point of each series
# (appends no longer update it; formats 1 and 2 are migrated on opening)
FORMAT = 3

POINT_COLUMNS = "series, ts, quality, kind, v_num, v_int, v_text, v_blob, v_nums, v_ints, v_texts"
_POINT_TYPES = """
    series INTEGER NOT NULL,
    ts TIMESTAMP NOT NULL,
    quality UTINYINT NOT NULL,
    kind UTINYINT NOT NULL,
    v_num DOUBLE,
    v_int BIGINT,
    v_text VARCHAR,
    v_blob BLOB,
    v_nums DOUBLE[],
    v_ints BIGINT[],
    v_texts VARCHAR[]"""
_ROLLUP_TYPES = """
    series INTEGER NOT NULL,
    bucket TIMESTAMP NOT NULL,
    count BIGINT NOT NULL,
    sum DOUBLE NOT NULL,
    min DOUBLE NOT NULL,
    max DOUBLE NOT NULL,
    first_ts TIMESTAMP NOT NULL,
    first DOUBLE NOT NULL,
    last_ts TIMESTAMP NOT NULL,
    last DOUBLE NOT NULL"""

#: Rollup tables by the width of their buckets, finest first.
ROLLUPS = {timedelta(hours=1): "rollup_1h", timedelta(minutes=1): "rollup_1m"}

DDL = f"""
CREATE TABLE IF NOT EXISTS store_format (format INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    tenant INTEGER NOT NULL,
    device VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    UNIQUE (tenant, device, metric)
);
CREATE TABLE IF NOT EXISTS checkpoints (name VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS states (key VARCHAR PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hot ({_POINT_TYPES});
CREATE TABLE IF NOT EXISTS latest ({_POINT_TYPES});
CREATE TABLE IF NOT EXISTS sealed (
    id BIGINT PRIMARY KEY,
    tenant INTEGER NOT NULL,
    day DATE NOT NULL,
    path VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_1m ({_ROLLUP_TYPES});
CREATE TABLE IF NOT EXISTS rollup_1h ({_ROLLUP_TYPES});
"""

#: zstd keeps random-looking floats at ~8 bytes and smooth signals far smaller; row groups of
#: DuckDB's own size (122,880 rows) measured fastest for one-series reads (see docs).
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION V2, ROW_GROUP_SIZE 122880"

_EPOCH = "TIMESTAMP '1970-01-01'"


def rollup_select(width: timedelta, source: str) -> str:
    """Partial aggregates per (series, bucket of ``width``) of the numeric, not-bad points of
    ``source`` (a relation with the point columns), sorted so each series' buckets cluster."""
    micros = width // timedelta(microseconds=1)
    return f"""
        SELECT series, time_bucket(INTERVAL {micros} MICROSECONDS, ts, {_EPOCH}) AS bucket,
               count(v_num), sum(v_num), min(v_num), max(v_num),
               min(ts), arg_min(v_num, ts), max(ts), arg_max(v_num, ts)
        FROM {source}
        WHERE v_num IS NOT NULL AND quality < {int(Quality.BAD)}
        GROUP BY ALL
        ORDER BY series, bucket"""

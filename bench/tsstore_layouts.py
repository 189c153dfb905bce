"""Benchmark: which layout answers a one-series query fastest (the store's design decision).

One day of 1 Hz data of ``--series`` series (random floats, the worst case for compression)
is stored in several layouts, and the query the store is built for — a 1-minute aggregate of
one series over the day — runs on each. The baseline, measured in the same run, is the plain
DuckDB table in arrival order (what appending alone gives):

- arrival order, one DuckDB table (baseline);
- sorted by (series, ts), one DuckDB table (zonemaps prune row groups);
- sorted, in a DuckDB file ATTACHed read-only (one file per partition);
- sorted, Parquet files with several compressions (row-group statistics prune).

Also shows the on-disk size of each. Run: ``.venv/bin/python bench/tsstore_layouts.py``
(about a minute for the default 200 series = 17 million points).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

QUERY = """
    SELECT time_bucket(INTERVAL 1 minute, ts) AS b, avg(num), min(num), max(num)
    FROM {source}
    WHERE series = {series} AND ts >= TIMESTAMP '2026-11-22' AND ts < TIMESTAMP '2026-11-23'
    GROUP BY b ORDER BY b"""
PARQUET = {
    "zstd, v2 (the store's)": "COMPRESSION zstd, PARQUET_VERSION V2",
    "zstd, Parquet v1": "COMPRESSION zstd",
    "snappy": "COMPRESSION snappy",
    "uncompressed": "COMPRESSION uncompressed",
}


def latency(db: duckdb.DuckDBPyConnection, source: str, series: int, runs: int) -> float:
    cursor = db.cursor()
    times = []
    for n in range(runs + 3):
        started = time.perf_counter()
        rows = cursor.execute(QUERY.format(source=source, series=(series + n) % 97)).fetchall()
        if n >= 3:
            times.append((time.perf_counter() - started) * 1000)
        assert len(rows) == 1440
    cursor.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-layouts-") as scratch:
        folder = Path(scratch)
        db = duckdb.connect(str(folder / "main.duckdb"))
        db.execute("SET parquet_metadata_cache = true")
        db.execute(
            f"CREATE TABLE arrival AS SELECT (i % {args.series})::INTEGER AS series, "  # noqa: S608
            f"TIMESTAMP '2026-11-22' + to_microseconds((i // {args.series}) * 1000000) AS ts, "
            f"random() * 100 AS num FROM range({args.series * 86_400}) t(i)"
        )
        db.execute("CREATE TABLE sorted AS SELECT * FROM arrival ORDER BY series, ts")
        db.execute(f"ATTACH '{folder / 'part.duckdb'}' AS part")
        db.execute("CREATE TABLE part.points AS SELECT * FROM sorted")
        db.execute("DETACH part")
        db.execute("CHECKPOINT")
        db.execute(f"ATTACH '{folder / 'part.duckdb'}' AS part (READ_ONLY)")
        points = args.series * 86_400
        print(f"{points:,} points: {args.series} series, one day at 1 Hz; median of {args.runs}")
        base = latency(db, "arrival", 1, args.runs)
        print(f"  {'baseline: arrival order, DuckDB table':<44} {base:7.2f} ms")
        sized: list[tuple[str, str, Path | None]] = [
            ("sorted, DuckDB table", "sorted", None),
            ("sorted, attached DuckDB file", "part.points", folder / "part.duckdb"),
        ]
        for label, options in PARQUET.items():
            written = folder / f"{len(sized)}.parquet"
            db.execute(
                f"COPY sorted TO '{written}' (FORMAT parquet, ROW_GROUP_SIZE 122880, {options})"
            )
            sized.append((f"sorted, Parquet {label}", f"read_parquet('{written}')", written))
        for label, source, file in sized:
            figure = latency(db, source, 1, args.runs)
            size = f"{file.stat().st_size / points:5.2f} bytes/point" if file else ""
            print(f"  {label:<48} {figure:7.2f} ms  {base / figure:5.1f}x faster  {size}")
        db.close()


if __name__ == "__main__":
    main()

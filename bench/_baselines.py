"""Baselines that several benchmarks measure in the same run as their own figure, so that the
ratio between the two survives a noisy machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

__all__ = ["arrow_append_rate"]


def arrow_append_rate(points: int, rows: int = 20_000) -> float:
    """Points/s DuckDB appends from Arrow tables of ``rows`` points into a plain table, one
    transaction per table: the store's raw write speed, without its series dictionary,
    latest values or checkpoint."""
    import duckdb
    import pyarrow as pa

    table = pa.table(
        {
            "series": pa.array([n % 100 for n in range(rows)], pa.int32()),
            "ts": pa.array(range(rows), pa.int64()).cast(pa.timestamp("us")),
            "v": pa.array([n * 0.5 for n in range(rows)], pa.float64()),
        }
    )
    batches = max(1, points // rows)
    with tempfile.TemporaryDirectory() as directory:
        connection = duckdb.connect(str(Path(directory) / "baseline.duckdb"))
        connection.execute("CREATE TABLE p (series INTEGER, ts TIMESTAMP, v DOUBLE)")
        connection.register("incoming", table)
        started = time.perf_counter()
        for _ in range(batches):
            connection.begin()
            connection.execute("INSERT INTO p SELECT * FROM incoming")
            connection.commit()
        elapsed = time.perf_counter() - started
        connection.close()
    return batches * rows / elapsed

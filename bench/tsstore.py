"""Benchmark: the time-series store (``plantwire.telemetry.store.DuckDBStore``).

1. **Append rate**: ``store.append(batch, checkpoint=…)`` of ``--batch`` points (100 series,
   1 Hz, floats) per call, each its own transaction with the ingest checkpoint and the latest
   values, against the baseline of a bare DuckDB ``INSERT … SELECT`` of the same Arrow table
   into a plain table, one transaction per batch. Also shown: how fast ``PointBatch.add`` takes
   points one by one (the part ingest pays per decoded value).
2. **Aggregate latency**: a 1-minute avg/min/max/… aggregate of one metric over one day of
   1 Hz data (86,400 points, 1,440 buckets) in a store of ``--points`` points
   (``--days`` days times as many series as that takes, one tenant), from raw points (forced) and
   through the rollups, for random series and days; against the baseline of the same query
   over an Arrow table holding only that series-day (the aggregation's own cost). The store is
   built once under ``bench-data/tsstore-<points>/`` and reused.
3. **Under load**: the aggregate's latency while another thread appends at the ingest target
   (``--ingest-rate``, 150,000 points/s), and the flat-out append rate while another thread
   queries without pause, against the same figures measured apart.

Run: ``.venv/bin/python bench/tsstore.py [--points N] [--days D]`` (default 20 million points:
a few minutes); ``--points 500000000`` builds ~5 GB of data once (check ``df -h`` first).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from _series_store import DATA, DAY0, PER_DAY, SECOND, TENANT, build_store, series_name
from _timing import latencies
from plantwire.telemetry.store import DuckDBStore, PointBatch
from plantwire.telemetry.store.model import to_micros
from plantwire.telemetry.store.schema import DDL

# --- 1. appends ----------------------------------------------------------------------------


def _batches(count: int, size: int, start: int = 0, tenant: str = TENANT) -> list[PointBatch]:
    """``count`` batches of ``size`` points: 100 series, consecutive seconds."""
    batches = []
    per_series = size // 100
    for b in range(count):
        batch = PointBatch()
        first = to_micros(DAY0) + (start + b * per_series) * SECOND
        for s in range(100):
            device, metric = series_name(s)
            for n in range(per_series):
                batch.add(tenant, device, metric, first + n * SECOND, 20.0 + (s + n) % 17)
        batches.append(batch)
    return batches


def _rate(points: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return points / (time.perf_counter() - started)


def _append_round(
    store: DuckDBStore, plain: duckdb.DuckDBPyConnection, batches: list[PointBatch], seq: int
) -> tuple[float, float]:
    """(store rate, baseline rate) for one round of batches; checkpoints continue from seq."""
    points = sum(len(batch) for batch in batches)
    tables = [batch.to_arrow(list(range(1, 101))) for batch in batches]

    def appends() -> None:
        for n, batch in enumerate(batches, start=seq + 1):
            store.append(batch, checkpoint=("telemetry", n))

    def baseline() -> None:
        for table in tables:
            plain.begin()
            plain.register("incoming", table)
            plain.execute("INSERT INTO hot SELECT * FROM incoming")
            plain.commit()

    return _rate(points, appends), _rate(points, baseline)


def measure_appends(batch_size: int, rounds: int) -> float:
    per_round = 20
    with tempfile.TemporaryDirectory(prefix="pw-bench-ts-") as scratch:
        store = DuckDBStore(Path(scratch) / "store")
        plain = duckdb.connect(str(Path(scratch) / "plain.duckdb"))
        plain.execute(DDL)
        build_rates, store_rates, base_rates = [], [], []
        for r in range(rounds):
            started = time.perf_counter()
            batches = _batches(per_round, batch_size, r * per_round * batch_size)
            build_rates.append(per_round * batch_size / (time.perf_counter() - started))
            mine, base = _append_round(store, plain, batches, r * per_round)
            store_rates.append(mine)
            base_rates.append(base)
        plain.close()
        store.close()
    base, mine, build = max(base_rates), max(store_rates), max(build_rates)
    print(f"batches of {batch_size:,} points, best of {rounds} rounds of {per_round} batches")
    print(f"  baseline: DuckDB INSERT of an Arrow table  {base:>12,.0f} points/s")
    print(
        f"  store.append with checkpoint               {mine:>12,.0f} points/s  "
        f"{mine / base:5.2f}x baseline"
    )
    print(f"  PointBatch.add, one point at a time        {build:>12,.0f} points/s")
    both = 1 / (1 / mine + 1 / build)
    print(f"  both (what ingest pays after decoding)     {both:>12,.0f} points/s")
    return mine


# --- 2. a big store ------------------------------------------------------------------------


def _show(label: str, times: list[float], baseline: float | None = None) -> None:
    median = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    ratio = f"  {median / baseline:6.1f}x baseline" if baseline else ""
    print(f"  {label:<46} median {median:7.2f} ms  p95 {p95:7.2f} ms{ratio}")


def _day_query(
    store: DuckDBStore, series: int, days: int, use_rollups: bool, seed: int
) -> Callable[[], object]:
    """The measured query: a 1-minute aggregate of a random series over a random whole day."""
    rng = random.Random(seed)

    def run() -> object:
        device, metric = series_name(rng.randrange(series))
        day = DAY0 + timedelta(days=rng.randrange(days))
        buckets = store.aggregate(
            TENANT,
            device,
            metric,
            day,
            day + timedelta(days=1),
            timedelta(minutes=1),
            use_rollups=use_rollups,
        )
        assert len(buckets) == 1440, len(buckets)
        return buckets

    return run


def measure_queries(store: DuckDBStore, series: int, days: int, count: int) -> float:
    rng = random.Random(1)

    def pick() -> tuple[str, str, datetime]:
        device, metric = series_name(rng.randrange(series))
        return device, metric, DAY0 + timedelta(days=rng.randrange(days))

    # baseline: the same aggregate over an Arrow table of exactly one series-day
    device, metric, day = pick()
    table = store.raw(TENANT, device, metric, day, day + timedelta(days=1), limit=PER_DAY)
    arrow = pa.table(
        {
            "ts": pa.array([p.ts.replace(tzinfo=None) for p in table.points], pa.timestamp("us")),
            "v_num": pa.array([p.value for p in table.points], pa.float64()),
        }
    )
    alone = duckdb.connect()
    alone.register("one_day", arrow)
    sql = (
        "SELECT time_bucket(INTERVAL 1 minute, ts) AS b, count(v_num), sum(v_num), min(v_num), "
        "max(v_num), arg_min(v_num, ts), arg_max(v_num, ts) FROM one_day GROUP BY b ORDER BY b"
    )
    base = statistics.median(latencies(lambda: alone.execute(sql).fetchall(), count))
    alone.close()
    print(f"one metric, one day of 1 Hz data, 1-minute buckets; {count} random series-days")
    print(f"  {'baseline: DuckDB over that series-day alone':<46} median {base:7.2f} ms")
    raw = latencies(_day_query(store, series, days, False, 1), count)
    _show("raw points (sealed file + hot), forced", raw, base)
    rollup = latencies(_day_query(store, series, days, True, 1), count)
    _show("through the 1-minute rollup (default)", rollup, base)
    page = latencies(
        lambda: store.raw(TENANT, *pick()[:2], DAY0, DAY0 + timedelta(days=days), limit=1000),
        count,
    )
    _show("raw page of 1,000 points", page)
    latest = latencies(lambda: store.latest(TENANT, pick()[0]), count)
    _show("latest values of a device", latest)
    return statistics.median(raw)


# --- 3. under load -------------------------------------------------------------------------


def _append_in_background(
    store: DuckDBStore, batches: list[PointBatch], rate: float | None
) -> tuple[threading.Thread, threading.Event, list[int]]:
    """A thread appending ``batches`` over and over, at ``rate`` points/s (None: flat out)."""
    stop = threading.Event()
    appended = [0]

    def run() -> None:
        started = time.perf_counter()
        while not stop.is_set():
            for batch in batches:
                if rate is not None:
                    delay = started + appended[0] / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                store.append(batch)
                appended[0] += len(batch)
                if stop.is_set():
                    return

    thread = threading.Thread(target=run)
    thread.start()
    return thread, stop, appended


def _flat_out(store: DuckDBStore, batches: list[PointBatch], seconds: float = 3) -> float:
    """Points/s of appending as fast as possible for a few seconds."""
    thread, stop, appended = _append_in_background(store, batches, None)
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    thread.join()
    return appended[0] / (time.perf_counter() - started)


def measure_under_load(
    store: DuckDBStore, series: int, days: int, batch_size: int, ingest_rate: float
) -> None:
    """Queries while ingest appends at ``ingest_rate``, and flat-out appends while a thread
    queries without pause; in a second tenant, dropped afterwards (the built store stays as it
    was)."""
    batches = _batches(20, batch_size, tenant="load")
    query_once = _day_query(store, series, days, False, 2)
    quiet = latencies(query_once, 20)
    thread, stop, appended = _append_in_background(store, batches, ingest_rate)
    started = time.perf_counter()
    loaded = latencies(query_once, 20)
    stop.set()
    thread.join()
    paced = appended[0] / (time.perf_counter() - started)

    quiet_rate = _flat_out(store, batches)
    querying = threading.Event()

    def query_forever() -> None:
        while not querying.is_set():
            query_once()

    querier = threading.Thread(target=query_forever)
    querier.start()
    busy_rate = _flat_out(store, batches)
    querying.set()
    querier.join()
    print("under load (2 cores shared by both threads)")
    _show("aggregate (raw), no appends", quiet)
    _show(f"aggregate (raw), ingest at {paced:,.0f} points/s", loaded, statistics.median(quiet))
    print(f"  appends flat out, no queries                 {quiet_rate:>12,.0f} points/s")
    print(
        f"  appends flat out, queries without pause      {busy_rate:>12,.0f} points/s  "
        f"{busy_rate / quiet_rate:5.2f}x"
    )
    store.drop_before("load", DAY0 + timedelta(days=3650))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000, help="points per append")
    parser.add_argument(
        "--ingest-rate", type=float, default=150_000, help="points/s appended while querying"
    )
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"duckdb {duckdb.__version__}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs")
    print("== appends", flush=True)
    measure_appends(args.batch, args.rounds)
    directory = DATA / f"tsstore-{args.points}"
    print(f"== a store of {args.points:,} points in {directory} (built once; reused)", flush=True)
    series = build_store(directory, args.points, args.days)
    with DuckDBStore(directory) as store:
        usage = store.disk_usage()
        print(
            f"   {series} series x {args.days} days; sealed {usage.sealed_bytes / 1e9:.2f} GB in "
            f"{usage.sealed_files} files, database {usage.database_bytes / 1e6:.0f} MB "
            f"({usage.total_bytes / (series * args.days * PER_DAY):.1f} bytes/point)"
        )
        print("== queries", flush=True)
        measure_queries(store, series, args.days, args.queries)
        print("== under load", flush=True)
        measure_under_load(store, series, args.days, args.batch, args.ingest_rate)


if __name__ == "__main__":
    main()

"""Benchmark: the peak memory of sealing a backlog (``DuckDBStore.maintain``).

When ingest falls behind, the hot table grows far past the seal threshold (the 10,000-device
run left tens of millions of points; see docs/benchmarks.md). The script builds such a backlog
once: ``--points`` points (default 25 million) of ``--series`` series (100,000: 10,000 devices
of 10 metrics, each publishing once a second), in time order but for one point in a thousand
arriving 30 s late, one tenant, all in the hot table as appends leave it. Then, each in a fresh
process on its own copy of the store, it seals all of it and prints the process's peak resident
memory (``ru_maxrss``) and the time taken:

- **baseline**: one seal of everything older than the grace period in one transaction, what
  ``maintain()`` did before seals were chunked, with DuckDB's default memory limit (80 % of RAM);
- the same with the store's memory limit (``--memory-limit``, default the store's own);
- ``maintain()``: sealed in chunks of ``--seal-rows`` (the policy's default), without merging
  the day's files afterwards, and with it (the merge sorts the whole day again), with DuckDB's
  default limit and with the store's.

Run: ``.venv/bin/python bench/seal_memory.py`` (about 3 minutes; the backlog is built once under
``bench-data/``, 140 MB, and each run copies it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from _series_store import DATA, DAY0, SECOND, TENANT, built_before
from plantwire.telemetry.store import DuckDBStore, MaintenancePolicy, PointBatch
from plantwire.telemetry.store.duckdb_store import DEFAULT_MEMORY_LIMIT
from plantwire.telemetry.store.model import from_micros, to_micros

GRACE = MaintenancePolicy().grace
AGED = MaintenancePolicy().seal_age  # "now" is this long after the newest point: all is sealed
LATE = 30 * SECOND  # how late the late points are
#: (label, seal in chunks, merge the day's files afterwards, use the store's memory limit)
VARIANTS = {
    "baseline": ("one seal, one transaction, DuckDB's default limit", False, False, False),
    "one-limited": ("one seal, one transaction, the store's limit", False, False, True),
    "chunks": ("maintain(): chunks only, DuckDB's default limit", True, False, False),
    "maintain": ("maintain(): chunks + merge, DuckDB's default limit", True, True, False),
    "maintain-limited": ("maintain(): chunks + merge, the store's limit", True, True, True),
}


def _rss_mib() -> float:
    """The peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_backlog(directory: Path, points: int, series: int) -> int:
    """A store whose hot table holds ``points`` points of ``series`` series, one per series
    every second (each series at its own offset in the second); one in a thousand 30 s late.
    Kept if built before with the same size; returns the newest timestamp (epoch µs)."""
    start = to_micros(DAY0)
    step = SECOND // series  # the points of one second, spread over it
    newest = start + (points - 1) * step
    if built_before(directory, f"{points} {series}"):
        return newest
    started = time.perf_counter()
    with DuckDBStore(directory) as store:  # numbers the series, and their first points
        batch = PointBatch()
        for n in range(series):
            batch.add(TENANT, f"machine-{n // 10:05d}", f"metric-{n % 10}", start + n * step, 0.0)
        store.append(batch)
    db = duckdb.connect(str(directory / "telemetry.duckdb"))
    for first in range(series, points, 5_000_000):  # the rest straight into the same table
        last = min(points, first + 5_000_000)
        db.execute(
            f"INSERT INTO hot SELECT (i % {series}) + 1, "  # noqa: S608 (numbers only)
            f"make_timestamp({start} + i * {step} - CASE WHEN i % 1000 = 999 THEN {LATE} "
            "ELSE 0 END), 0, 0, round(50 + random() * 10, 3), NULL, NULL, NULL, NULL, NULL, "
            f"NULL FROM range({first}, {last}) AS r(i)"
        )
    db.execute("CHECKPOINT")
    db.close()
    print(f"   built in {time.perf_counter() - started:.0f} s", flush=True)
    (directory / "built.txt").write_text(f"{points} {series}")
    return newest


def run_variant(variant: str, directory: Path, newest: int, seal_rows: int, limit: int) -> None:
    """In the child process: seal the copy in ``directory`` as ``variant`` says; prints JSON."""
    _, chunked, merge, limited = VARIANTS[variant]
    policy = MaintenancePolicy(seal_rows=seal_rows, max_files=8 if merge else 10**9)
    now = newest + AGED // timedelta(microseconds=1)
    store = DuckDBStore(directory, policy, memory_limit=limit if limited else None)
    opened = _rss_mib()
    started = time.perf_counter()
    if not chunked:
        store.seal(now - GRACE // timedelta(microseconds=1))
    store.maintain(from_micros(now))
    seconds = time.perf_counter() - started
    usage = store.disk_usage()
    (hot,) = store._read(lambda db: db.execute("SELECT count(*) FROM hot").fetchone()) or (0,)
    (sealed,) = store._read(
        lambda db: db.execute("SELECT coalesce(sum(rows), 0) FROM sealed").fetchone()
    ) or (0,)
    store.close()
    result = {
        "opened_mib": opened,
        "peak_mib": _rss_mib(),
        "seconds": seconds,
        "files": usage.sealed_files,
        "sealed": int(sealed),
        "hot": int(hot),
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=25_000_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--seal-rows", type=int, default=MaintenancePolicy().seal_rows)
    parser.add_argument("--memory-limit", type=int, default=DEFAULT_MEMORY_LIMIT, help="bytes")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--newest", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args.child, args.store, args.newest, args.seal_rows, args.memory_limit)
        return
    print(f"duckdb {duckdb.__version__}, {os.cpu_count()} CPUs")
    template = DATA / f"seal-backlog-{args.points}-{args.series}"
    print(f"== a hot backlog of {args.points:,} points in {template} (built once)", flush=True)
    newest = build_backlog(template, args.points, args.series)
    print(
        f"== sealing it all; chunks of {args.seal_rows:,} points; the store's limit "
        f"{args.memory_limit / 2**30:.2f} GiB",
        flush=True,
    )
    peaks = {}
    for variant in args.variants:
        with tempfile.TemporaryDirectory(prefix="pw-seal-", dir=DATA) as scratch:
            copy = Path(scratch) / "store"
            shutil.copytree(template, copy)
            found = subprocess.run(
                [
                    *(sys.executable, __file__, "--child", variant, "--store", str(copy)),
                    *("--newest", str(newest), "--seal-rows", str(args.seal_rows)),
                    *("--memory-limit", str(args.memory_limit)),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        result = json.loads(found.stdout.splitlines()[-1])
        assert result["sealed"] == args.points, result  # all of it, each point once
        assert result["hot"] == 0, result
        peaks[variant] = result["peak_mib"]
        ratio = (
            f"  {result['peak_mib'] / peaks['baseline']:5.2f}x baseline"
            if "baseline" in peaks
            else ""
        )
        print(
            f"  {VARIANTS[variant][0]:<54} peak RSS {result['peak_mib']:>7,.0f} MiB "
            f"(opened: {result['opened_mib']:,.0f}){ratio}  {result['seconds']:6.1f} s, "
            f"{result['files']} files",
            flush=True,
        )


if __name__ == "__main__":
    main()

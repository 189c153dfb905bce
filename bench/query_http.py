"""Benchmark: issue 4's aggregate query through the HTTP API — a 1-minute avg/min/max of one
metric over one day of 1 Hz data in a store of ``--points`` points (500 million: < 50 ms).

The platform's data dir is built once under ``bench-data/query_http-<points>/`` and reused:
a tenant and its devices created through the API of a real ``plantwire up``, then the
devices' telemetry store filled with ``--days`` days of 1 Hz floats of ten metrics a device,
a day sealed per file (the same store ``bench/tsstore.py`` builds, under the devices' real
ids, so the API authorises the query as it would any other). Then, in ``--rounds`` rounds:

1. **store level** (the baseline, in this process, the store opened here):
   ``DuckDBStore.aggregate`` of a random series over a random whole day (1,440 one-minute
   buckets, through the 1-minute rollup as the store picks it), and ``query.aggregated``,
   which the API calls: the same plus the answer's JSON-ready values;
2. **HTTP**: ``plantwire up`` on the data dir (one process owns the store, so the two
   alternate) and ``GET /api/v1/devices/{id}/telemetry?metric=…&start=…&end=…&interval=1m
   &agg=avg,min,max`` of the same series-days with a real HTTP client on one keep-alive
   connection, as a viewer of the tenant; also ``GET /healthz``, the HTTP round trip alone.

Each figure is printed as median and p99 with its ratio to the store-level call of the same
run. Run: ``.venv/bin/python bench/query_http.py [--points N]`` (500 million by default:
building it takes ~10 minutes and ~1.8 GB once); smoke test: ``--points 5000000``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from _platform_process import PlatformProcess
from _series_store import DATA, DAY0, PER_DAY, build_store, series_count
from _timing import latencies, quantile
from plantwire.datadir import TELEMETRY_DIR
from plantwire.telemetry import query
from plantwire.telemetry.store import DuckDBStore
from plantwire.telemetry.store.model import to_micros

VIEWER = "bench-viewer"
VIEWER_PASSWORD = "bench-viewer-password"  # a throwaway data dir's user
TARGET_MS = 50.0


def prepare(folder: Path, points: int, days: int) -> dict[str, Any]:
    """The data dir (``folder/data``) with a tenant, its devices and a viewer made through the
    API and their store filled; kept in ``folder/built.json`` and reused while it matches."""
    marker = folder / "built.json"
    series = series_count(points, days)
    if marker.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        if (built["series"], built["days"]) == (series, days):
            return built
    if folder.exists():
        shutil.rmtree(folder)
    devices = -(-series // 10)
    print(f"   a tenant, {devices} devices and a viewer through the API", flush=True)
    platform = PlatformProcess(folder / "data")
    platform.start()
    try:
        with httpx.Client(base_url=platform.url, headers=platform.headers, timeout=60) as client:
            tenant = _created(client, "/api/v1/tenants", {"name": "bench-query"})["id"]
            metrics = [{"name": f"metric-{m}"} for m in range(10)]
            ids = [
                _created(
                    client,
                    "/api/v1/devices",
                    {"name": f"machine-{d:04d}", "tenant": tenant, "metrics": metrics},
                )["id"]
                for d in range(devices)
            ]
            user = {"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}
            _created(client, "/api/v1/users", {**user, "tenant": tenant})
    finally:
        platform.stop()
    print(f"   their store: {series} series x {days} days", flush=True)

    def name(n: int) -> tuple[str, str]:
        return ids[n // 10], f"metric-{n % 10}"

    build_store(folder / "data" / TELEMETRY_DIR, points, days, tenant, name)
    built = {"series": series, "days": days, "tenant": tenant, "devices": ids}
    marker.write_text(json.dumps(built))
    return built


def _created(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    answer = client.post(path, json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
    return answer.json()


def series_days(built: dict[str, Any], count: int, seed: int) -> list[tuple[str, str, datetime]]:
    """``count`` random (device id, metric, day) of the store."""
    rng = random.Random(seed)
    picks = []
    for _ in range(count):
        n = rng.randrange(built["series"])
        day = DAY0 + timedelta(days=rng.randrange(built["days"]))
        picks.append((built["devices"][n // 10], f"metric-{n % 10}", day))
    return picks


def store_level(
    folder: Path, built: dict[str, Any], picks: list[tuple[str, str, datetime]]
) -> tuple[list[float], list[float]]:
    """(store.aggregate, query.aggregated) latencies over ``picks``, store opened here."""
    tenant = built["tenant"]
    with DuckDBStore(folder / "data" / TELEMETRY_DIR) as store:
        calls = iter(picks * 2)

        def aggregate() -> object:
            device, metric, day = next(calls)
            buckets = store.aggregate(
                tenant, device, metric, day, day + timedelta(days=1), timedelta(minutes=1)
            )
            assert len(buckets) == 1440, len(buckets)
            return buckets

        answers = iter(picks * 2)

        def aggregated() -> object:
            device, metric, day = next(answers)
            start = to_micros(day)
            span = query.Window(start, start + PER_DAY * 1_000_000)
            answer = query.aggregated(store, tenant, device, metric, span, "1m", "avg,min,max")
            assert len(answer["points"]) == 1440
            return answer

        return latencies(aggregate, len(picks)), latencies(aggregated, len(picks))


def over_http(
    folder: Path, picks: list[tuple[str, str, datetime]]
) -> tuple[list[float], list[float]]:
    """(GET …/telemetry aggregate, GET /healthz) latencies, the platform serving the data
    dir, as the tenant's viewer."""
    platform = PlatformProcess(folder / "data")
    platform.start()
    try:
        with httpx.Client(base_url=platform.url, timeout=60) as client:
            login = {"username": VIEWER, "password": VIEWER_PASSWORD}
            answer = client.post("/api/v1/auth/login", json=login)
            answer.raise_for_status()
            client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
            calls = iter(picks * 2)

            def aggregate() -> object:
                device, metric, day = next(calls)
                params = {
                    "metric": metric,
                    "start": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "interval": "1m",
                    "agg": "avg,min,max",
                }
                answer = client.get(f"/api/v1/devices/{device}/telemetry", params=params)
                assert answer.status_code == 200, answer.text
                assert len(answer.json()["points"]) == 1440
                return answer

            def health() -> object:
                return client.get("/healthz").raise_for_status()

            return latencies(aggregate, len(picks)), latencies(health, len(picks))
    finally:
        platform.stop()


def show(label: str, times: list[float], baseline: float | None) -> None:
    median = statistics.median(times)
    ratio = f"{median / baseline:6.2f}x" if baseline else "  1.00x"
    print(f"  {label:<58} median {median:7.2f} ms  p99 {quantile(times, 0.99):7.2f} ms  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=500_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--queries", type=int, default=100, help="per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = DATA / f"query_http-{args.points}"
    print(f"{os.cpu_count()} CPUs; data dir {folder / 'data'} (built once; reused)", flush=True)
    started = time.perf_counter()
    built = prepare(folder, args.points, args.days)
    print(
        f"   {built['series']} series x {built['days']} days of 1 Hz in {len(built['devices'])} "
        f"devices ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    measured: dict[str, list[float]] = {"store": [], "query": [], "http": [], "health": []}
    for round_ in range(args.rounds):
        picks = series_days(built, args.queries, seed=round_)
        print(f"== round {round_ + 1}/{args.rounds}: store level, then over HTTP", flush=True)
        store, answered = store_level(folder, built, picks)
        http, health = over_http(folder, picks)
        for key, times in (("store", store), ("query", answered), ("http", http)):
            measured[key] += times
        measured["health"] += health
        show("store.aggregate", store, None)
        show("GET …/telemetry?interval=1m&agg=avg,min,max", http, statistics.median(store))
    base = statistics.median(measured["store"])
    print(
        f"== one metric, one day of 1 Hz, 1-minute avg/min/max; {len(measured['store'])} "
        f"random series-days a kind, {args.rounds} rounds; store of {args.points:,} points"
    )
    show("baseline: store.aggregate (rollup), in process", measured["store"], None)
    show("query.aggregated (the API's call: + JSON-ready values)", measured["query"], base)
    show("HTTP GET …/telemetry (auth, device check, JSON, HTTP)", measured["http"], base)
    show("HTTP GET /healthz (the round trip alone)", measured["health"], base)
    median, p99 = statistics.median(measured["http"]), quantile(measured["http"], 0.99)
    verdict = (
        "MET" if p99 < TARGET_MS else ("MET at the median" if median < TARGET_MS else "NOT MET")
    )
    print(
        f"target < {TARGET_MS:.0f} ms over HTTP: median {median:.1f} ms, p99 {p99:.1f} ms: "
        f"{verdict}"
    )


if __name__ == "__main__":
    main()

"""Latencies of repeated calls, for the benchmarks that print medians and percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["latencies", "quantile"]


def latencies(run: Callable[[], object], count: int, warm: int = 3) -> list[float]:
    """Milliseconds of ``count`` calls of ``run``, after ``warm`` calls that are not kept."""
    for _ in range(warm):
        run()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def quantile(times: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``times``, nearest rank."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

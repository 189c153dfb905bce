"""Aggregates against a plain Python computation, and rollups against raw points."""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwire.telemetry.store import Bucket, DuckDBStore, PointBatch, Quality
from plantwire.telemetry.store.model import from_micros
from tests.telemetry.conftest import DAY, SECOND, micros

HOURS = 3
START = micros(DAY)


@dataclass(frozen=True)
class Sample:
    offset: int  # seconds after DAY
    value: float | int | bool
    quality: Quality


def _expected(samples: list[Sample], start: int, end: int, interval: timedelta) -> list[Bucket]:
    width = interval // timedelta(microseconds=1)
    groups: dict[int, list[tuple[int, float]]] = {}
    for sample in samples:
        ts = START + sample.offset * SECOND
        if start <= ts < end and sample.quality != Quality.BAD:
            groups.setdefault(ts // width * width, []).append((ts, float(sample.value)))
    buckets = []
    for bucket, points in sorted(groups.items()):
        values = [value for _, value in points]
        buckets.append(
            Bucket(
                from_micros(bucket),
                len(values),
                math.fsum(values),
                min(values),
                max(values),
                min(points)[1],
                max(points)[1],
            )
        )
    return buckets


def _close(got: list[Bucket], expected: list[Bucket]) -> None:
    assert [(b.start, b.count, b.min, b.max, b.first, b.last) for b in got] == [
        (b.start, b.count, b.min, b.max, b.first, b.last) for b in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        assert math.isclose(mine.sum, theirs.sum, rel_tol=1e-9, abs_tol=1e-6)


numbers = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
)
samples = st.lists(
    st.builds(
        Sample,
        st.integers(min_value=0, max_value=HOURS * 3600 - 1),
        numbers,
        st.sampled_from(Quality),
    ),
    max_size=300,
    unique_by=lambda sample: sample.offset,  # first and last are defined by time
)
intervals = st.sampled_from(
    [timedelta(seconds=7), timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]
)
aligned = st.sampled_from([(0, HOURS * 3600), (60, 7200), (3600, HOURS * 3600)])
ranges = st.one_of(
    aligned,
    st.tuples(st.integers(0, HOURS * 3600), st.integers(0, HOURS * 3600)).map(sorted).map(tuple),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples,
    intervals,
    ranges,
    st.integers(min_value=0, max_value=HOURS * 3600),
    st.booleans(),
)
def test_aggregates_equal_a_plain_computation(
    points: list[Sample],
    interval: timedelta,
    window: tuple[int, int],
    seal_at: int,
    compact: bool,
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="pw-agg-") as scratch,
        DuckDBStore(Path(scratch)) as store,
    ):
        half = len(points) // 2
        for part in (points[:half], points[half:]):  # two appends, then part sealed
            batch = PointBatch()
            batch.add("acme", "other", "m", DAY, 1e9)  # another series, never counted
            for sample in part:
                ts = START + sample.offset * SECOND
                batch.add("acme", "d", "m", ts, sample.value, sample.quality)
            store.append(batch)
            store.seal(START + seal_at * SECOND)
        if compact:
            store.compact("acme", DAY.date())
        start, end = (START + second * SECOND for second in window)
        expected = _expected(points, start, end, interval)
        for rollups in (True, False):
            got = store.aggregate("acme", "d", "m", start, end, interval, use_rollups=rollups)
            _close(got, expected)


def test_rollups_answer_as_raw_points_do() -> None:
    rng = random.Random(4)
    with (
        tempfile.TemporaryDirectory(prefix="pw-rollup-") as scratch,
        DuckDBStore(Path(scratch)) as store,
    ):
        for day in range(2):
            for series in range(3):
                batch = PointBatch()
                first = START + day * 86_400 * SECOND
                batch.add_numbers(
                    "acme",
                    f"press-{series}",
                    "temp",
                    [first + n * SECOND for n in range(86_400)],
                    [rng.gauss(50, 10) for _ in range(86_400)],
                )
                store.append(batch)
            store.seal(START + (day * 86_400 + 43_200) * SECOND)  # half a day sealed
        store.seal(START + 2 * 86_400 * SECOND - 600 * SECOND)  # the last minutes stay hot
        store.compact("acme", (DAY + timedelta(days=1)).date())
        end = START + 2 * 86_400 * SECOND
        for interval in (
            timedelta(minutes=1),
            timedelta(minutes=15),
            timedelta(hours=1),
            timedelta(hours=6),
            timedelta(days=1),
        ):
            got = store.aggregate("acme", "press-1", "temp", START, end, interval)
            raw = store.aggregate(
                "acme", "press-1", "temp", START, end, interval, use_rollups=False
            )
            assert len(got) == 2 * 86_400 // (interval // timedelta(seconds=1))
            _close(got, raw)

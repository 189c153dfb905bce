"""The Devices pages' pure parts: the aggregation interval per range, a live series' bounds,
range parsing and a device's status (no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plantwire.console.charts import INTERVALS, LIVE_POINTS, MAX_POINTS, LiveSeries, choose_interval
from plantwire.console.pages.devices import (
    RANGES,
    device_status,
    health_metric,
    numeric,
    resolve_range,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("choice", "interval"), [("15 min", "1s"), ("1 h", "5s"), ("24 h", "5m"), ("7 d", "30m")]
)
def test_each_range_gets_the_shortest_interval_under_the_bound(choice: str, interval: str) -> None:
    assert choose_interval(RANGES[choice]) == interval


def test_no_range_gets_more_than_max_points_unless_too_long_for_any() -> None:
    lengths = dict(INTERVALS)
    for hours in (0.01, 1, 5, 50, 500, 5000):
        span = timedelta(hours=hours)
        assert span / lengths[choose_interval(span)] <= MAX_POINTS
    assert choose_interval(timedelta(days=100_000)) == "7d"  # the API then says it is too many


def test_a_live_series_keeps_the_newest_points_once() -> None:
    series = LiveSeries("t")
    assert series.add("2026-12-01T00:00:00.000000Z", 1.0)
    assert not series.add("2026-12-01T00:00:00.000000Z", 1.0)  # the same poll again
    for second in range(1, LIVE_POINTS + 10):
        series.add(f"2026-12-01T01:{second // 60:02d}:{second % 60:02d}.000000Z", float(second))
    assert len(series.option()["data"]) == LIVE_POINTS
    assert series.option()["data"][-1][1] == LIVE_POINTS + 9


def test_custom_ranges_are_read_as_utc_or_refused_with_a_reason() -> None:
    assert resolve_range("1 h", "", "", NOW) == (NOW - timedelta(hours=1), NOW)
    first, last = resolve_range("Custom", "2026-11-22 08:00", "2026-11-22T10:00:00+01:00", NOW)
    assert (first, last) == (
        datetime(2026, 11, 22, 8, tzinfo=UTC),
        datetime(2026, 11, 22, 9, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="custom end 'soon' is not a time"):
        resolve_range("Custom", "2026-11-22 08:00", "soon", NOW)


def test_status_online_offline_never_seen() -> None:
    def value(age: timedelta, **more: object) -> dict[str, object]:
        return {"ts": (NOW - age).isoformat(), "value": 1, "quality": "good", **more}

    assert device_status({}, NOW) == "never seen"
    assert device_status({"a": value(timedelta(minutes=1))}, NOW) == "online"
    assert device_status({"a": value(timedelta(hours=1))}, NOW) == "offline"
    assert device_status({"a": value(timedelta(minutes=1), stale=True)}, NOW) == "offline"
    assert device_status({"a": value(timedelta(minutes=1), quality="bad")}, NOW) == "offline"
    assert [numeric(v) for v in (1, 2.5, True, "3", None)] == [1.0, 2.5, None, None, None]


def test_a_machines_own_values_come_before_a_gateways_health_reports() -> None:
    names = ["Buffer/Points", "Connector/Connected", "MotorCurrent", "Uplink/Replayed", "Speed"]
    names.sort(key=lambda name: (health_metric(name), name))
    assert names == [
        "MotorCurrent",
        "Speed",
        "Buffer/Points",
        "Connector/Connected",
        "Uplink/Replayed",
    ]

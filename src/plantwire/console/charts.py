"""Time-series charts of the console (NiceGUI's bundled ECharts, no CDN): the options of a
line chart over time, a live series with a bounded number of points, and the aggregation
interval that keeps a history chart under :data:`MAX_POINTS` points."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

__all__ = [
    "INTERVALS",
    "LIVE_POINTS",
    "MAX_POINTS",
    "LiveSeries",
    "choose_interval",
    "numeric",
    "time_chart",
]

#: At most this many points per series in a history chart.
MAX_POINTS = 1_000
#: At most this many points per metric in a live chart; older ones scroll out.
LIVE_POINTS = 300

#: Aggregation intervals the console asks the API for, as the API writes them, shortest first.
INTERVALS: tuple[tuple[str, timedelta], ...] = tuple(
    (text, timedelta(seconds=seconds))
    for text, seconds in (
        ("1s", 1),
        ("5s", 5),
        ("10s", 10),
        ("30s", 30),
        ("1m", 60),
        ("5m", 300),
        ("10m", 600),
        ("30m", 1800),
        ("1h", 3600),
        ("3h", 3 * 3600),
        ("6h", 6 * 3600),
        ("12h", 12 * 3600),
        ("1d", 86400),
        ("7d", 7 * 86400),
    )
)


def choose_interval(span: timedelta) -> str:
    """The shortest interval of :data:`INTERVALS` that cuts ``span`` into at most
    :data:`MAX_POINTS` intervals (the longest if none does: the API then says why)."""
    for text, length in INTERVALS:
        if span / length <= MAX_POINTS:
            return text
    return INTERVALS[-1][0]


def time_chart(
    series: list[dict[str, Any]], *, unit: str = "", span: tuple[str, str] | None = None
) -> dict[str, Any]:
    """ECharts options of a line chart over time; each series' data is ``[iso time, value]``
    pairs. ``span`` (ISO times) fixes the time axis to a range, even where it has no points.
    Points are drawn as symbols too, so a lone one shows (ECharts thins them when dense)."""
    x_axis: dict[str, Any] = {"type": "time"}
    if span is not None:
        x_axis["min"], x_axis["max"] = span
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll", "top": 0},
        "grid": {"left": 56, "right": 24, "top": 36, "bottom": 32},
        "xAxis": x_axis,
        "yAxis": {"type": "value", "scale": True, "name": unit},
        "series": [
            {"type": "line", "symbolSize": 4, "connectNulls": False, **one} for one in series
        ],
    }


@dataclass(slots=True)
class LiveSeries:
    """A metric's newest values for a live chart: at most :data:`LIVE_POINTS` of them, each
    once (a poll that finds the same timestamp again adds nothing)."""

    name: str
    points: deque[list[Any]] = field(default_factory=lambda: deque(maxlen=LIVE_POINTS))

    def add(self, ts: str, value: float) -> bool:
        """Append the value measured at ``ts``; False if it is not newer than the last."""
        if self.points and self.points[-1][0] >= ts:
            return False
        self.points.append([ts, value])
        return True

    def option(self) -> dict[str, Any]:
        return {"name": self.name, "data": list(self.points)}


def numeric(value: Any) -> float | None:
    """A value a chart can draw (booleans are not numbers here), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None

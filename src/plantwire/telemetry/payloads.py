"""The JSON telemetry payload of issue 4 (sans-I/O): bytes from a device → points, or a
``PayloadError`` whose reason the dead-letter store keeps.

A message is one of:

* ``{"ts": <epoch ms | ISO 8601 with zone>, "values": {"metric": value, …}}``
* a list of those (several samples in one message);
* a flat ``{"metric": value, …}``, stamped with the time it arrived.

Values are numbers, booleans or strings. A message is taken whole or not at all: one bad
value rejects it, so what is stored never depends on where in a message the fault was."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "MAX_METRIC_NAME",
    "MAX_POINTS",
    "MAX_STRING",
    "PayloadError",
    "Point",
    "Value",
    "decode_json",
    "typed_value",
]

Value = float | int | bool | str
Point = tuple[str, int, Value]  # metric, epoch milliseconds (UTC), value

MAX_POINTS = 10_000  # per message
MAX_METRIC_NAME = 200
MAX_STRING = 64 * 1024
MAX_FUTURE_MS = 3_600_000  # a device clock this far ahead of the platform's is wrong
_INT64 = 2**63
_CONTROL = {chr(code) for code in (*range(0x20), 0x7F)}


class PayloadError(ValueError):
    """Why a message cannot be stored; ``reason`` is a short stable code for counting
    (``json``, ``shape``, ``metric``, ``value``, ``timestamp``, ``type``, ``size``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _no_constants(name: str) -> Any:
    raise PayloadError("value", f"{name} is not a number JSON allows")


def decode_json(
    payload: bytes,
    arrived_ms: int,
    *,
    declared: Mapping[str, str] | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
) -> list[Point]:
    """The points of one message, in the order given. ``arrived_ms`` stamps a flat message
    and bounds how far in the future a timestamp may be. ``declared`` maps metric names to
    their declared data type (``float``, ``int``, ``bool``, ``string``); a value of another
    type is refused. Metrics not declared take any value type."""
    try:
        document = json.loads(payload, parse_constant=_no_constants)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise PayloadError("json", f"not JSON: {error}") from None
    latest = arrived_ms + max_future_ms
    points: list[Point] = []
    if isinstance(document, list):
        if not document:
            raise PayloadError("shape", "an empty list holds no samples")
        for sample in document:
            if not isinstance(sample, dict) or "values" not in sample:
                raise PayloadError("shape", 'each item of a list needs "ts" and "values"')
            _sample(sample, arrived_ms, latest, declared, points)
    elif isinstance(document, dict):
        if "values" in document and isinstance(document["values"], dict):
            _sample(document, arrived_ms, latest, declared, points)
        else:
            _values(document, arrived_ms, declared, points)
    else:
        raise PayloadError("shape", "a message is an object or a list of objects")
    if not points:
        raise PayloadError("shape", "the message holds no values")
    return points


def _sample(
    sample: dict[str, Any],
    arrived_ms: int,
    latest: int,
    declared: Mapping[str, str] | None,
    points: list[Point],
) -> None:
    extra = set(sample) - {"ts", "values"}
    if extra:
        raise PayloadError("shape", f"unknown keys beside ts and values: {sorted(extra)[:5]}")
    values = sample["values"]
    if not isinstance(values, dict):
        raise PayloadError("shape", '"values" must be an object of metric: value')
    ts = _timestamp(sample["ts"], latest) if "ts" in sample else arrived_ms
    _values(values, ts, declared, points)


def _values(
    values: dict[str, Any], ts: int, declared: Mapping[str, str] | None, points: list[Point]
) -> None:
    if len(points) + len(values) > MAX_POINTS:
        raise PayloadError("size", f"more than {MAX_POINTS} values in one message")
    for metric, value in values.items():
        if not metric or len(metric) > MAX_METRIC_NAME or not _CONTROL.isdisjoint(metric):
            shown = json.dumps(metric[:40])
            raise PayloadError(
                "metric", f"metric name {shown} must be 1-{MAX_METRIC_NAME} printable characters"
            )
        wanted = declared.get(metric) if declared is not None else None
        points.append((metric, ts, typed_value(metric, value, wanted)))


def typed_value(metric: str, value: Any, declared: str | None) -> Value:
    """``value`` as a stored value of ``metric``: a finite number, a 64-bit integer, a
    boolean or a string of bounded length, of the metric's ``declared`` data type when it
    has one (an integer is a fine float, made one). PayloadError ("value" or "type") if not.
    Device payloads and commands to devices both pass through here."""
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise PayloadError("value", f"{metric}: integer out of the 64-bit range")
        kind = "int"
    elif isinstance(value, float):
        if not math.isfinite(value):  # 1e999 parses as infinity
            raise PayloadError("value", f"{metric}: not a finite number")
        kind = "float"
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise PayloadError("value", f"{metric}: string longer than {MAX_STRING} characters")
        kind = "string"
    else:
        shown = "null" if value is None else type(value).__name__
        raise PayloadError("value", f"{metric}: {shown} is not a number, boolean or string")
    if declared is not None and declared != kind and not (declared == "float" and kind == "int"):
        raise PayloadError("type", f"{metric} is declared {declared}, got {kind}")
    if declared == "float" and kind == "int":
        return float(value)
    result: Value = value
    return result


def _timestamp(raw: Any, latest: int) -> int:
    if isinstance(raw, bool):
        raise PayloadError("timestamp", '"ts" is epoch milliseconds or ISO 8601, not a boolean')
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise PayloadError("timestamp", '"ts" is not a finite number')
        ms = int(raw)
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise PayloadError("timestamp", f'"ts" {raw[:40]!r} is not ISO 8601') from None
        if moment.tzinfo is None:
            raise PayloadError("timestamp", f'"ts" {raw[:40]!r} has no time zone')
        ms = (moment - _EPOCH) // _MILLISECOND
    else:
        raise PayloadError("timestamp", '"ts" is epoch milliseconds or ISO 8601')
    if ms < 0:
        raise PayloadError("timestamp", '"ts" is before 1970')
    if ms > latest:
        raise PayloadError("timestamp", '"ts" is too far in the future (check the clock)')
    return ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

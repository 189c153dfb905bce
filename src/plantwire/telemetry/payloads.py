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

import msgspec

__all__ = [
    "MAX_METRIC_NAME",
    "MAX_POINTS",
    "MAX_STRING",
    "PayloadError",
    "Point",
    "Sample",
    "Value",
    "decode_json",
    "decode_samples",
    "typed_value",
    "zoned_time",
]

Value = float | int | bool | str
Point = tuple[str, int, Value]  # metric, epoch milliseconds (UTC), value
Sample = tuple[int, dict[str, Value]]  # epoch milliseconds (UTC), {metric: value}

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


#: One decoder for every message (json.loads with an option builds one per call).
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
#: msgspec's decoder takes a message in a tenth of the standard library's time (0.7 µs of
#: 5.6 µs for ten values); what it refuses (NaN, a byte order mark, lone surrogates, bad
#: JSON) goes to the standard library's, which has the last word, so both accept the same.
_FAST = msgspec.json.Decoder()


def _parse(payload: bytes) -> Any:
    try:
        return _FAST.decode(payload)
    except msgspec.DecodeError:
        pass
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith("\ufeff"):  # UTF-16/32, a byte order mark
        return json.loads(payload, parse_constant=_no_constants)  # finds the encoding
    return _DECODER.decode(text)


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
    samples = decode_samples(payload, arrived_ms, declared=declared, max_future_ms=max_future_ms)
    return [(metric, ts, value) for ts, values in samples for metric, value in values.items()]


def decode_samples(
    payload: bytes,
    arrived_ms: int,
    *,
    declared: Mapping[str, str] | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
) -> list[Sample]:
    """`decode_json` as samples: (epoch milliseconds, {metric: value}) in the order given,
    the form ingest stores without building a tuple per point."""
    try:
        document = _parse(payload)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise PayloadError("json", f"not JSON: {error}") from None
    latest = arrived_ms + max_future_ms
    samples: list[Sample] = []
    if isinstance(document, list):
        if not document:
            raise PayloadError("shape", "an empty list holds no samples")
        count = 0
        for sample in document:
            if not isinstance(sample, dict) or "values" not in sample:
                raise PayloadError("shape", 'each item of a list needs "ts" and "values"')
            count = _sample(sample, arrived_ms, latest, declared, samples, count)
    elif isinstance(document, dict):
        if "values" in document and isinstance(document["values"], dict):
            count = _sample(document, arrived_ms, latest, declared, samples, 0)
        else:
            count = _values(document, arrived_ms, declared, samples, 0)
    else:
        raise PayloadError("shape", "a message is an object or a list of objects")
    if not count:
        raise PayloadError("shape", "the message holds no values")
    return samples


def _sample(
    sample: dict[str, Any],
    arrived_ms: int,
    latest: int,
    declared: Mapping[str, str] | None,
    samples: list[Sample],
    count: int,
) -> int:
    if len(sample) > 2 or (len(sample) == 2 and "ts" not in sample):
        extra = set(sample) - {"ts", "values"}
        raise PayloadError("shape", f"unknown keys beside ts and values: {sorted(extra)[:5]}")
    values = sample["values"]
    if not isinstance(values, dict):
        raise PayloadError("shape", '"values" must be an object of metric: value')
    ts = _timestamp(sample["ts"], latest) if "ts" in sample else arrived_ms
    return _values(values, ts, declared, samples, count)


def _values(
    values: dict[str, Any],
    ts: int,
    declared: Mapping[str, str] | None,
    samples: list[Sample],
    count: int,
) -> int:
    """Check and type one sample's values (the common case, a float of a metric seen
    before, takes a dict lookup and two type checks); the running count of points."""
    count += len(values)
    if count > MAX_POINTS:
        raise PayloadError("size", f"more than {MAX_POINTS} values in one message")
    typed: dict[str, Value] | None = None  # a copy, once a value changes type (int → float)
    for metric, value in values.items():
        if metric not in _good_names:
            _check_name(metric)
        wanted = declared.get(metric) if declared else None
        if type(value) is float and _isfinite(value) and wanted in (None, "float"):
            continue
        stored = typed_value(metric, value, wanted)
        if stored is not value:
            if typed is None:
                typed = dict(values)
            typed[metric] = stored
    if values:
        samples.append((ts, typed if typed is not None else values))
    return count


#: Metric names seen valid (checking each character of every name of every message is a
#: measurable share of ingest); forgotten when it grows past a bound.
_good_names: set[str] = set()
_GOOD_NAMES_MAX = 100_000
_isfinite = math.isfinite


def _check_name(metric: str) -> None:
    if not metric or len(metric) > MAX_METRIC_NAME or not _CONTROL.isdisjoint(metric):
        shown = json.dumps(metric[:40])
        raise PayloadError(
            "metric", f"metric name {shown} must be 1-{MAX_METRIC_NAME} printable characters"
        )
    if len(_good_names) >= _GOOD_NAMES_MAX:
        _good_names.clear()
    _good_names.add(metric)


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


def zoned_time(text: str, reason: str, what: str) -> datetime:
    """ISO 8601 text with a zone as an aware datetime; else PayloadError (``reason``) that
    names the text as ``what``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(reason, f"{what} {text[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise PayloadError(reason, f"{what} {text[:40]!r} has no time zone")
    return moment


def _timestamp(raw: Any, latest: int) -> int:
    if isinstance(raw, bool):
        raise PayloadError("timestamp", '"ts" is epoch milliseconds or ISO 8601, not a boolean')
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise PayloadError("timestamp", '"ts" is not a finite number')
        ms = int(raw)
    elif isinstance(raw, str):
        ms = (zoned_time(raw, "timestamp", '"ts"') - _EPOCH) // _MILLISECOND
    else:
        raise PayloadError("timestamp", '"ts" is epoch milliseconds or ISO 8601')
    if ms < 0:
        raise PayloadError("timestamp", '"ts" is before 1970')
    if ms > latest:
        raise PayloadError("timestamp", '"ts" is too far in the future (check the clock)')
    return ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

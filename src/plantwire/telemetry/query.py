"""Telemetry queries as the HTTP API answers them (``api.py`` serves them; no HTTP here).

Times and intervals are parsed from what callers send, requests that would be unbounded are
refused with a `QueryError` saying why, the store's points and buckets become JSON-ready values
(finite numbers or null, bytes in base64, times in ISO 8601 UTC), and exports are encoded as
CSV or Parquet in chunks."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from plantwire.telemetry.store import Bucket, TimeSeriesStore, Value, ValueKind
from plantwire.telemetry.store.batch import VALUE_COLUMNS, value_from_columns
from plantwire.telemetry.store.model import to_micros

__all__ = [
    "AGGREGATES",
    "AGGREGATE_PATTERN",
    "CURSOR_PATTERN",
    "DEFAULT_LIMIT",
    "DEFAULT_RANGE",
    "EXPORT_MAX_RANGE",
    "EXPORT_MAX_ROWS",
    "INTERVAL_PATTERN",
    "MAX_BUCKETS",
    "MAX_LIMIT",
    "TIME_PATTERN",
    "QueryError",
    "Window",
    "aggregated",
    "csv_chunks",
    "export_table",
    "iso",
    "json_value",
    "latest",
    "parquet_chunks",
    "raw",
    "window",
]

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
MAX_BUCKETS = 10_000
DEFAULT_RANGE = timedelta(hours=1)
EXPORT_MAX_RANGE = timedelta(days=31)
EXPORT_MAX_ROWS = 1_000_000
AGGREGATES = ("avg", "min", "max", "sum", "count", "first", "last")

_ISO = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"  # a zone is needed; without one, the answer says so
)
#: ``start`` and ``end``: ISO 8601 with a zone, or epoch milliseconds.
TIME_PATTERN = rf"^({_ISO}|[0-9]{{1,15}})$"
_INTERVAL = re.compile(r"[1-9][0-9]{0,5}[smhd]")
#: A whole number of seconds, minutes, hours or days.
INTERVAL_PATTERN = f"^{_INTERVAL.pattern}$"
_ONE_AGGREGATE = "(" + "|".join(AGGREGATES) + ")"
#: One aggregate, or several separated by commas.
AGGREGATE_PATTERN = rf"^{_ONE_AGGREGATE}(,{_ONE_AGGREGATE})*$"
_CURSOR = re.compile(r"([0-9]{1,19}):[0-9]{1,9}")
#: The store's paging cursor: the last timestamp returned (epoch µs) and how many points at it.
CURSOR_PATTERN = f"^{_CURSOR.pattern}$"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = to_micros(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_MICRO = timedelta(microseconds=1)
_QUALITY = ("good", "uncertain", "bad")


class QueryError(ValueError):
    """A query that cannot be answered as asked (the API's 422); the message says why."""


@dataclass(frozen=True, slots=True)
class Window:
    """A time range [start, end) in epoch microseconds."""

    start: int
    end: int


def _parse_time(text: str, name: str) -> int:
    """Epoch microseconds of ISO 8601 with a zone, or of epoch milliseconds."""
    if text.isascii() and text.isdigit():
        micros = int(text) * 1000
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise QueryError(
                f"'{name}' is neither ISO 8601 (such as 2026-11-22T08:00:00Z) nor epoch "
                "milliseconds."
            ) from None
        if moment.tzinfo is None:
            raise QueryError(f"'{name}' needs a zone, such as Z or +01:00.")
        micros = (moment - _EPOCH) // _MICRO
    if not 0 <= micros <= _LATEST:
        raise QueryError(f"'{name}' must lie between 1970 and the end of 9999.")
    return micros


def window(start: str | None, end: str | None, now: datetime | None = None) -> Window:
    """The range a request asks for: ``end`` defaults to now, ``start`` to an hour before
    ``end``; ``start`` must come before ``end``."""
    if end is not None:
        last = _parse_time(end, "end")
    else:
        last = min(to_micros(now or datetime.now(UTC)), _LATEST)
    if start is not None:
        first = _parse_time(start, "start")
    else:
        first = max(0, last - _span(DEFAULT_RANGE))
    if first >= last:
        raise QueryError("'start' must come before 'end'.")
    return Window(first, last)


def _span(length: timedelta) -> int:
    return length // _MICRO


def _interval(text: str) -> timedelta:
    if _INTERVAL.fullmatch(text) is None:
        raise QueryError("'interval' must be a number and a unit (s, m, h, d), such as 1m or 5m.")
    return int(text[:-1]) * _UNITS[text[-1]]


def _aggregates(text: str) -> list[str]:
    names = text.split(",")
    unknown = [name for name in names if name not in AGGREGATES]
    if unknown:
        raise QueryError(f"'agg' takes {', '.join(AGGREGATES)}, or several separated by commas.")
    return names


def _cursor(text: str) -> str:
    match = _CURSOR.fullmatch(text)
    if match is None or int(match.group(1)) > _LATEST:
        raise QueryError("'cursor' is not a cursor this API gave out.")
    return text


# --- JSON forms ------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: ``2026-11-22T08:00:00.000000Z`` (fixed width, so
    such strings sort as their times do)."""
    if moment.tzinfo is not UTC:  # the store's own times are UTC already: the fast path
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def json_value(value: Value) -> Any:
    """A value in a form JSON can hold: NaN and infinities as null, bytes as base64, times
    as ISO 8601, arrays item by item."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list):
        return [json_value(item) for item in value]
    raise TypeError(f"not a stored value: {type(value).__name__}")


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _of(bucket: Bucket, name: str) -> float | int | None:
    if name == "count":
        return bucket.count
    if name == "avg":
        return _number(bucket.avg)
    number: float = getattr(bucket, name)
    return _number(number)


# --- queries ---------------------------------------------------------------------------------


def latest(store: TimeSeriesStore, tenant: str, device: str) -> dict[str, dict[str, Any]]:
    """The newest point of each of the device's metrics: ``{metric: {ts, value, quality}}``."""
    return {
        point.metric: {
            "ts": iso(point.ts),
            "value": json_value(point.value),
            "quality": _QUALITY[point.quality],
        }
        for point in store.latest(tenant, device)
    }


def raw(
    store: TimeSeriesStore,
    tenant: str,
    device: str,
    metric: str,
    span: Window,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of a metric's points, oldest first, and the cursor of the next page (None: the
    last page)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"'limit' must be between 1 and {MAX_LIMIT}.")
    token = _cursor(cursor) if cursor is not None else None
    page = store.raw(tenant, device, metric, span.start, span.end, limit=limit, cursor=token)
    return {
        "metric": metric,
        "points": [[iso(point.ts), json_value(point.value)] for point in page.points],
        "next": page.cursor,
    }


def aggregated(
    store: TimeSeriesStore,
    tenant: str,
    device: str,
    metric: str,
    span: Window,
    interval: str,
    agg: str = "avg",
) -> dict[str, Any]:
    """Aggregates over fixed intervals aligned on the epoch, each stamped with its interval's
    start; intervals without numeric points are left out. At most `MAX_BUCKETS` intervals."""
    width = _interval(interval)
    names = _aggregates(agg)
    micros = _span(width)
    buckets = (span.end - 1) // micros - span.start // micros + 1
    if buckets > MAX_BUCKETS:
        raise QueryError(
            f"The range holds {buckets:,} intervals of {interval}; at most {MAX_BUCKETS:,} are "
            "answered. Ask for a longer interval or a shorter range."
        )
    found = store.aggregate(tenant, device, metric, span.start, span.end, width)
    return {
        "metric": metric,
        "interval": interval,
        "agg": agg,
        "points": [[iso(bucket.start), *(_of(bucket, name) for name in names)] for bucket in found],
    }


# --- exports ---------------------------------------------------------------------------------


def export_table(
    store: TimeSeriesStore, tenant: str, device: str, span: Window, metric: str | None = None
) -> pa.Table:
    """A device's points in the range (of one metric, if given), at most `EXPORT_MAX_ROWS`;
    the store is asked for one row more, to know a range that holds too many."""
    if span.end - span.start > _span(EXPORT_MAX_RANGE):
        raise QueryError(
            f"An export may span at most {EXPORT_MAX_RANGE.days} days; ask for a shorter range."
        )
    table = store.export(
        tenant, span.start, span.end, device, metric=metric, limit=EXPORT_MAX_ROWS + 1
    )
    if table.num_rows > EXPORT_MAX_ROWS:
        raise QueryError(
            f"The range holds more than {EXPORT_MAX_ROWS:,} points; an export holds at most "
            "that many. Ask for a shorter range or one metric."
        )
    return table


_ROWS_PER_CHUNK = 50_000
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Arrow's %S carries the fraction (microseconds here)
#: kinds whose text Arrow computes; bytes and arrays are rare and done in Python
_TEXT_KINDS = ("float", "int", "bool", "string", "datetime")


def _iso_text(times: pa.Array[Any]) -> pa.Array[Any]:
    """Timestamps in UTC (or epoch microseconds) as ISO 8601 text with microseconds."""
    naive = times.cast(pa.timestamp("us"))  # the same instants, without a zone to convert to
    # pyarrow-stubs leave timestamp arrays out of strftime's argument types
    text: pa.Array[Any] = pc.strftime(naive, format=_TS_FORMAT)  # type: ignore[arg-type]
    return text


def _value_text(table: pa.Table) -> pa.Array[Any]:
    """Each row's value as text: numbers as Arrow prints them (nan, inf included), booleans as
    true/false, times in ISO 8601, bytes in base64, arrays as JSON."""
    column = {name: table[name].combine_chunks() for name in ("kind", "v_num", "v_int")}
    kind = column["kind"]
    texts = [
        column["v_num"].cast(pa.string()),
        column["v_int"].cast(pa.string()),
        pc.if_else(pc.equal(column["v_num"], pa.scalar(0.0)), "false", "true"),
        table["v_text"].combine_chunks(),
        _iso_text(column["v_int"]),
    ]
    chosen = pc.make_struct(*(pc.equal(kind, pa.scalar(name)) for name in _TEXT_KINDS))
    value: pa.Array[Any] = pc.case_when(chosen, *texts)
    other = pc.invert(pc.is_in(kind, value_set=pa.array(_TEXT_KINDS)))
    if not pc.any(other).as_py():
        return value
    rows = table.filter(other).select(["kind", *VALUE_COLUMNS]).to_pylist()
    extra = []
    for row in rows:
        stored = value_from_columns(
            ValueKind[row["kind"].upper()], [row[name] for name in VALUE_COLUMNS]
        )
        converted = json_value(stored)
        extra.append(converted if isinstance(converted, str) else json.dumps(converted))
    replaced: pa.Array[Any] = pc.replace_with_mask(value, other, pa.array(extra, pa.string()))
    return replaced


def csv_chunks(table: pa.Table) -> Iterator[bytes]:
    """The export as CSV (UTF-8, a header line, one row a point): device, metric, ts,
    quality, kind, value."""
    text = pa.Table.from_arrays(
        [
            table["device"],
            table["metric"],
            _iso_text(table["ts"].combine_chunks()),
            table["quality"],
            table["kind"],
            _value_text(table),
        ],
        names=["device", "metric", "ts", "quality", "kind", "value"],
    )
    header = True
    for offset in range(0, max(text.num_rows, 1), _ROWS_PER_CHUNK):
        sink = pa.BufferOutputStream()
        options = pa_csv.WriteOptions(include_header=header)
        pa_csv.write_csv(text.slice(offset, _ROWS_PER_CHUNK), sink, options)
        header = False
        yield sink.getvalue().to_pybytes()


class _Pieces:
    """A write-only file that keeps what is written until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False
        self._position = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(table: pa.Table) -> Iterator[bytes]:
    """The export as one Parquet file (zstd), written a row group at a time: the store's
    columns, ``ts`` in UTC."""
    sink = _Pieces()
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:  # type: ignore[arg-type]
        for batch in table.to_batches(max_chunksize=_ROWS_PER_CHUNK):
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()

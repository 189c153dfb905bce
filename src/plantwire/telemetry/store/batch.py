"""Points as Arrow columns: the store's column layout, the `PointBatch` builder ingest fills
from decoded messages, and the way back from columns to typed values (no I/O).

Each point is one row of `POINT_SCHEMA`. A value is kept in the column of its kind: floats,
ints and bools also in ``v_num`` (what aggregates read), ints and datetimes exactly in ``v_int``
(datetimes as epoch microseconds), strings in ``v_text``, bytes in ``v_blob``, arrays in
``v_nums`` / ``v_ints`` (int, bool and datetime arrays) / ``v_texts``. Columns a batch does not
use are all-null, which Arrow, DuckDB and Parquet store in next to nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from plantwire.telemetry.store.model import Quality, Value, ValueKind, from_micros, to_micros

__all__ = ["POINT_SCHEMA", "VALUE_COLUMNS", "PointBatch", "SeriesKey", "value_from_columns"]

#: (tenant, device, metric)
SeriesKey = tuple[str, str, str]

_FIELDS: list[pa.Field[Any]] = [
    pa.field("series", pa.int32()),
    pa.field("ts", pa.timestamp("us")),
    pa.field("quality", pa.uint8()),
    pa.field("kind", pa.uint8()),
    pa.field("v_num", pa.float64()),
    pa.field("v_int", pa.int64()),
    pa.field("v_text", pa.string()),
    pa.field("v_blob", pa.binary()),
    pa.field("v_nums", pa.list_(pa.float64())),
    pa.field("v_ints", pa.list_(pa.int64())),
    pa.field("v_texts", pa.list_(pa.string())),
]
POINT_SCHEMA = pa.schema(_FIELDS)
VALUE_COLUMNS = ("v_num", "v_int", "v_text", "v_blob", "v_nums", "v_ints", "v_texts")
# Columns other than v_num that some value kinds fill, and which kinds fill them.
_SPARSE = {
    "v_int": (ValueKind.INT, ValueKind.DATETIME),
    "v_text": (ValueKind.STRING,),
    "v_blob": (ValueKind.BYTES,),
    "v_nums": (ValueKind.FLOAT_ARRAY,),
    "v_ints": (ValueKind.INT_ARRAY, ValueKind.BOOL_ARRAY, ValueKind.DATETIME_ARRAY),
    "v_texts": (ValueKind.STRING_ARRAY,),
}
_COLUMN_OF_KIND = {kind: column for column, kinds in _SPARSE.items() for kind in kinds}
_FLOAT, _INT, _BOOL = int(ValueKind.FLOAT), int(ValueKind.INT), int(ValueKind.BOOL)


def _array_kind(items: Sequence[Any]) -> tuple[ValueKind, list[Any]]:
    if not items or all(type(item) is float for item in items):
        return ValueKind.FLOAT_ARRAY, list(items)
    if all(isinstance(item, bool) for item in items):
        return ValueKind.BOOL_ARRAY, [int(item) for item in items]
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return ValueKind.INT_ARRAY, list(items)
    if all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
        return ValueKind.FLOAT_ARRAY, [float(item) for item in items]
    if all(isinstance(item, str) for item in items):
        return ValueKind.STRING_ARRAY, list(items)
    if all(isinstance(item, datetime) for item in items):
        return ValueKind.DATETIME_ARRAY, [to_micros(item) for item in items]
    raise ValueError(
        "an array value must hold items of one type: float, int, bool, str or datetime"
    )


class PointBatch:
    """Points gathered for one `append`, kept as columns.

    ``add`` takes one point (a few list appends; series are numbered as they first appear);
    ``add_numbers`` takes a run of float values of one series at once, as Arrow arrays or
    sequences. Timestamps are epoch microseconds (int) or datetimes."""

    __slots__ = (
        "_chunks",
        "_devices",
        "_indexes",
        "_key",
        "_keys",
        "_kind",
        "_num",
        "_quality",
        "_sparse",
        "_ts",
    )

    def __init__(self) -> None:
        self._keys: dict[SeriesKey, int] = {}
        self._devices: dict[tuple[str, str], dict[str, int]] = {}  # metric → key, by device
        # add_values' keys by (tenant, device, id of the list of names), with that list
        self._indexes: dict[tuple[str, str, int], tuple[Sequence[str], list[int]]] = {}
        self._key: list[int] = []
        self._ts: list[int] = []
        self._quality: list[int] = []
        self._kind: list[int] = []
        self._num: list[float | None] = []
        self._sparse: list[tuple[int, ValueKind, Any]] = []  # (row, kind, stored form)
        self._chunks: list[
            tuple[int, pa.Array[Any], pa.Array[Any], int]
        ] = []  # key, ts, values, quality

    def __len__(self) -> int:
        return len(self._key) + sum(len(chunk[1]) for chunk in self._chunks)

    @property
    def keys(self) -> list[SeriesKey]:
        """The batch's series, in the order `to_arrow` expects their ids."""
        return list(self._keys)

    def _key_index(self, tenant: str, device: str, metric: str) -> int:
        key = (tenant, device, metric)
        index = self._keys.get(key)
        if index is None:
            index = self._keys[key] = len(self._keys)
        return index

    def add(
        self,
        tenant: str,
        device: str,
        metric: str,
        ts: int | datetime,
        value: Value,
        quality: Quality = Quality.GOOD,
    ) -> None:
        self._add_value(len(self._key), value)
        self._key.append(self._key_index(tenant, device, metric))
        self._ts.append(ts if type(ts) is int else to_micros(ts))  # type: ignore[arg-type]
        self._quality.append(quality)

    def add_sample(
        self,
        tenant: str,
        device: str,
        ts: int,
        values: Mapping[str, Value],
        quality: Quality = Quality.GOOD,
    ) -> None:
        """The values of one device at one time (epoch microseconds): ``add`` for each,
        without a key tuple and a call per point (ingest's hot path)."""
        metrics = self._devices.get((tenant, device))
        if metrics is None:
            metrics = self._devices[(tenant, device)] = {}
        keys, kinds, nums = self._key, self._kind, self._num
        for metric, value in values.items():
            index = metrics.get(metric)
            if index is None:
                index = metrics[metric] = self._key_index(tenant, device, metric)
            if type(value) is float:
                kinds.append(_FLOAT)
                nums.append(value)
            else:
                self._add_value(len(keys), value)
            keys.append(index)
        self._ts.extend([ts] * len(values))
        self._quality.extend([quality] * len(values))

    def add_values(
        self,
        tenant: str,
        device: str,
        ts: int,
        names: Sequence[str],
        values: Sequence[Value],
        floats: bool = False,
        quality: Quality = Quality.GOOD,
    ) -> None:
        """`add_sample` with the names and values as two sequences (``values[i]`` is metric
        ``names[i]``'s); ``floats`` says every value is a float, so none is looked at (the
        Sparkplug quick path reads a column of them)."""
        if len(names) != len(values):
            raise ValueError(f"{len(names)} names but {len(values)} values")
        # the same list of names comes again and again (a Sparkplug message shape's): its
        # keys are worked out once; the list is kept with them, so its id is not reused
        key = (tenant, device, id(names))
        remembered = self._indexes.get(key)
        if remembered is not None and remembered[0] is names:
            indexes = remembered[1]
        else:
            indexes = self._indexes_of(tenant, device, names)
            self._indexes[key] = (names, indexes)
        keys = self._key
        if floats:
            self._kind.extend([_FLOAT] * len(values))
            self._num.extend(values)  # type: ignore[arg-type]
            keys.extend(indexes)
        else:
            for index, value in zip(indexes, values, strict=True):
                if type(value) is float:
                    self._kind.append(_FLOAT)
                    self._num.append(value)
                else:
                    self._add_value(len(keys), value)
                keys.append(index)
        self._ts.extend([ts] * len(values))
        self._quality.extend([quality] * len(values))

    def _indexes_of(self, tenant: str, device: str, names: Sequence[str]) -> list[int]:
        metrics = self._devices.get((tenant, device))
        if metrics is None:
            metrics = self._devices[(tenant, device)] = {}
        indexes = []
        for name in names:
            index = metrics.get(name)
            if index is None:
                index = metrics[name] = self._key_index(tenant, device, name)
            indexes.append(index)
        return indexes

    def _add_value(self, row: int, value: Value) -> None:
        """The kind and numeric column of one value, and its exact form where kept."""
        kind = type(value)
        if kind is float:
            self._kind.append(_FLOAT)
            self._num.append(value)  # type: ignore[arg-type]
        elif kind is bool:
            self._kind.append(_BOOL)
            self._num.append(1.0 if value else 0.0)
        elif kind is int:
            self._kind.append(_INT)
            self._num.append(float(value))  # type: ignore[arg-type]
            self._sparse.append((row, ValueKind.INT, value))
        else:
            self._add_other(row, value)

    def _add_other(self, row: int, value: Value) -> None:
        stored: Any
        if isinstance(value, bool):
            kind, number, stored = ValueKind.BOOL, float(value), None
        elif isinstance(value, int):
            kind, number, stored = ValueKind.INT, float(value), int(value)
        elif isinstance(value, float):
            kind, number, stored = ValueKind.FLOAT, float(value), None
        elif isinstance(value, str):
            kind, number, stored = ValueKind.STRING, None, value
        elif isinstance(value, bytes | bytearray | memoryview):
            kind, number, stored = ValueKind.BYTES, None, bytes(value)
        elif isinstance(value, datetime):
            kind, number, stored = ValueKind.DATETIME, None, to_micros(value)
        elif isinstance(value, list | tuple):
            kind, stored = _array_kind(value)
            number = None
        else:
            raise ValueError(f"cannot store a value of type {type(value).__name__}")
        self._kind.append(kind)
        self._num.append(number)
        if stored is not None:
            self._sparse.append((row, kind, stored))

    def add_numbers(
        self,
        tenant: str,
        device: str,
        metric: str,
        timestamps: pa.Array[Any] | Sequence[int],
        values: pa.Array[Any] | Sequence[float],
        quality: Quality = Quality.GOOD,
    ) -> None:
        """Many float points of one series (a Sparkplug dataset column, a device's buffer)."""
        ts = (
            pa.array(timestamps, pa.int64()) if not isinstance(timestamps, pa.Array) else timestamps
        )
        nums = pa.array(values, pa.float64()) if not isinstance(values, pa.Array) else values
        if len(ts) != len(nums):
            raise ValueError(f"{len(ts)} timestamps but {len(nums)} values")
        ts = ts.cast(pa.int64()).cast(pa.timestamp("us"))
        self._chunks.append(
            (self._key_index(tenant, device, metric), ts, nums.cast(pa.float64()), int(quality))
        )

    def to_arrow(self, series_ids: Sequence[int]) -> pa.Table:
        """The batch as a `POINT_SCHEMA` table; ``series_ids[i]`` is the id of ``keys[i]``."""
        ids = pa.array(series_ids, pa.int32())
        tables = []
        if self._key:
            tables.append(self._rows_table(ids))
        for key, ts, nums, quality in self._chunks:
            rows = len(ts)
            columns: dict[str, pa.Array[Any]] = {
                "series": pa.repeat(ids[key], rows),
                "ts": ts,
                "quality": pa.repeat(pa.scalar(quality, pa.uint8()), rows),
                "kind": pa.repeat(pa.scalar(_FLOAT, pa.uint8()), rows),
                "v_num": nums,
            }
            tables.append(_table(columns, rows))
        if not tables:
            return POINT_SCHEMA.empty_table()
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _rows_table(self, ids: pa.Array[Any]) -> pa.Table:
        rows = len(self._key)
        columns: dict[str, pa.Array[Any]] = {
            "series": pc.take(ids, pa.array(self._key, pa.int32())),
            "ts": pa.array(self._ts, pa.timestamp("us")),
            "quality": pa.array(self._quality, pa.uint8()),
            "kind": pa.array(self._kind, pa.uint8()),
            "v_num": pa.array(self._num, pa.float64()),
        }
        if self._sparse:
            filled: dict[str, list[Any]] = {}
            for row, kind, stored in self._sparse:
                column = _COLUMN_OF_KIND[kind]
                cells = filled.get(column)
                if cells is None:
                    cells = filled[column] = [None] * rows
                cells[row] = stored
            for column, cells in filled.items():
                columns[column] = pa.array(cells, POINT_SCHEMA.field(column).type)
        return _table(columns, rows)


def _table(columns: dict[str, pa.Array[Any]], rows: int) -> pa.Table:
    arrays: list[pa.Array[Any]] = [
        columns[field.name] if field.name in columns else pa.nulls(rows, field.type)
        for field in POINT_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=POINT_SCHEMA)


def value_from_columns(kind: int, values: Sequence[Any]) -> Value:
    """A stored value back in its written type, from one row's cells of `VALUE_COLUMNS`."""
    num, integer, text, blob, nums, ints, texts = values
    match kind:
        case ValueKind.FLOAT:
            return float(num)
        case ValueKind.INT:
            return int(integer)
        case ValueKind.BOOL:
            return bool(num)
        case ValueKind.STRING:
            return str(text)
        case ValueKind.BYTES:
            return bytes(blob)
        case ValueKind.DATETIME:
            return from_micros(integer)
        case ValueKind.FLOAT_ARRAY:
            return list(nums)
        case ValueKind.INT_ARRAY:
            return list(ints)
        case ValueKind.BOOL_ARRAY:
            return [bool(item) for item in ints]
        case ValueKind.STRING_ARRAY:
            return list(texts)
        case ValueKind.DATETIME_ARRAY:
            return [from_micros(item) for item in ints]
    raise ValueError(f"unknown value kind {kind}")

"""What the time-series store keeps of a Sparkplug metric: its value as a store value, its
quality as a store `Quality` (no I/O).

================================================  ========================================
Sparkplug data type                               stored as (`ValueKind`)
================================================  ========================================
Int8 … Int64, UInt8 … UInt32                      ``int`` (INT)
UInt64                                            ``int`` (INT); above 2⁶³ - 1, ``float``
                                                  (FLOAT, the nearest double)
Float, Double                                     ``float`` (FLOAT)
Boolean                                           ``bool`` (BOOL)
String, Text, UUID                                ``str`` (STRING)
DateTime                                          ``datetime`` (DATETIME)
Bytes, File                                       ``bytes`` (BYTES; a file's name is not kept)
Int8Array … UInt64Array                           ``list[int]`` (INT_ARRAY; a UInt64Array
                                                  with an item above 2⁶³ - 1: FLOAT_ARRAY)
FloatArray, DoubleArray                           ``list[float]`` (FLOAT_ARRAY)
BooleanArray                                      ``list[bool]`` (BOOL_ARRAY)
StringArray                                       ``list[str]`` (STRING_ARRAY)
DateTimeArray                                     ``list[datetime]`` (DATETIME_ARRAY)
DataSet, Template                                 ``str`` (STRING): compact JSON, see
                                                  `structured`
================================================  ========================================

A null metric stores nothing (`store_value` is None). Quality comes from the metric's
``Quality`` property (Sparkplug's "Quality Codes"): none, or 192, is GOOD; 0 is BAD; 500
(STALE: the last known value, no longer current) is UNCERTAIN; any other code, or a Quality
that is not an integer, is UNCERTAIN too — plantwire cannot vouch for a value it cannot read
the quality of."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

from plantwire.telemetry.sparkplug.model import (
    QUALITY_BAD,
    QUALITY_GOOD,
    QUALITY_PROPERTY,
    QUALITY_STALE,
    DataSet,
    DataType,
    Metric,
    MetricValue,
    Template,
)
from plantwire.telemetry.store.model import Quality, Value

__all__ = ["store_quality", "store_value", "stored_int", "structured"]

_INT64_MAX = (1 << 63) - 1
_QUALITIES = {
    QUALITY_GOOD: Quality.GOOD,
    QUALITY_BAD: Quality.BAD,
    QUALITY_STALE: Quality.UNCERTAIN,
}


def store_value(metric: Metric) -> Value | None:
    """The metric's value in a form `PointBatch.add` takes (table in the module docstring);
    None for a null metric."""
    value = metric.value
    if value is None:
        return None
    if isinstance(value, DataSet | Template):
        return json.dumps(structured(value), separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, int):
        return stored_int(value)
    if metric.datatype is DataType.UInt64Array and isinstance(value, list):
        items = [item for item in value if isinstance(item, int)]
        if any(item > _INT64_MAX for item in items):
            return [float(item) for item in items]
    stored: Value = value
    return stored


def stored_int(value: int) -> int | float:
    """An integer as the store keeps it: past the int64 range (a UInt64's), as a float."""
    return float(value) if value > _INT64_MAX else value


def store_quality(metric: Metric) -> Quality:
    """The store's quality of the metric's value, from its ``Quality`` property."""
    prop = metric.properties.get(QUALITY_PROPERTY)
    if prop is None or prop.value is None:
        return Quality.GOOD
    code = prop.value
    if type(code) is not int:
        return Quality.UNCERTAIN
    return _QUALITIES.get(code, Quality.UNCERTAIN)


def structured(value: DataSet | Template) -> dict[str, Any]:
    """A DataSet or Template as a JSON-able dict.

    * DataSet: ``{"columns": [names], "types": [type names], "rows": [[cells]]}``;
    * Template: ``{"template_ref", "version", "is_definition", "parameters": [{"name",
      "type", "value"}], "metrics": [{"name", "alias", "datatype", "value"}]}`` (``alias``
      only when the member has one), members' values in this same JSON form.

    In it, times are ISO 8601 strings in UTC with milliseconds (``2026-11-30T10:00:00.000Z``),
    bytes are base64, NaN and infinities are null (as in the query API), nested DataSets and
    Templates are objects."""
    if isinstance(value, DataSet):
        return {
            "columns": list(value.columns),
            "types": [datatype.name for datatype in value.types],
            "rows": [[_json(cell) for cell in row] for row in value.rows],
        }
    return {
        "template_ref": value.template_ref,
        "version": value.version,
        "is_definition": value.is_definition,
        "parameters": [
            {"name": p.name, "type": p.type.name, "value": _json(p.value)} for p in value.parameters
        ],
        "metrics": [_member(member) for member in value.metrics],
    }


def _member(metric: Metric) -> dict[str, Any]:
    member: dict[str, Any] = {"name": metric.name}
    if metric.alias is not None:
        member["alias"] = metric.alias
    member["datatype"] = metric.datatype.name
    member["value"] = _json(metric.value)
    return member


def _json(value: MetricValue) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z"
        )
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, DataSet | Template):
        return structured(value)
    return value

"""What the store keeps of a Sparkplug metric: every data type's value written to a real
DuckDB store and read back, Sparkplug quality codes as store qualities, and the JSON form of
DataSets and Templates."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.model import (
    DataSet,
    DataType,
    Metric,
    Parameter,
    Payload,
    PropertyValue,
    Template,
)
from plantwire.telemetry.sparkplug.points import store_quality, store_value, structured
from plantwire.telemetry.store import DuckDBStore, PointBatch, Quality, ValueKind
from tests.telemetry.sparkplug.test_codec import VALUES, WHEN

T = DataType
TS = 1_764_500_000_000  # ms


def test_every_data_type_is_stored_and_read_back(store: DuckDBStore) -> None:
    batch = PointBatch()
    expected: dict[str, Any] = {}
    for number, (datatype, value) in enumerate(VALUES):
        # through the codec, as ingest will see it
        metric = Metric(name=f"m{number}", datatype=datatype, value=value)
        decoded = decode_payload(encode_payload(Payload(metrics=[metric]))).metrics[0]
        stored = store_value(decoded)
        assert stored is not None
        batch.add("t", "edge/dev", f"m{number}", TS * 1000, stored, store_quality(decoded))
        expected[f"m{number}"] = stored
    store.append(batch)
    latest = {point.metric: point.value for point in store.latest("t", "edge/dev")}
    assert latest.keys() == expected.keys()
    for name, value in expected.items():
        read = latest[name]
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(read, float)
            assert math.isnan(read)
        else:
            assert read == value, name


@pytest.mark.parametrize(
    ("datatype", "value", "stored", "kind"),
    [
        (T.Int8, -1, -1, int),
        (T.UInt64, 2**63 - 1, 2**63 - 1, int),
        (T.UInt64, 2**64 - 1, float(2**64 - 1), float),
        (T.UInt64Array, [1, 2**63], [1.0, float(2**63)], list),
        (T.UInt64Array, [1, 2**63 - 1], [1, 2**63 - 1], list),
        (T.Float, 1.5, 1.5, float),
        (T.Boolean, False, False, bool),
        (T.UUID, "u", "u", str),
        (T.Text, "t", "t", str),
        (T.DateTime, WHEN, WHEN, datetime),
        (T.File, b"f", b"f", bytes),
        (T.BooleanArray, [True], [True], list),
        (T.DateTimeArray, [WHEN], [WHEN], list),
    ],
)
def test_store_values(datatype: DataType, value: Any, stored: Any, kind: type) -> None:
    result = store_value(Metric(datatype=datatype, value=value))
    assert result == stored
    assert type(result) is kind


def test_null_metrics_store_nothing() -> None:
    assert store_value(Metric(name="m", datatype=T.Int32)) is None


def test_large_unsigned_values_are_stored_as_floats(store: DuckDBStore) -> None:
    batch = PointBatch()
    batch.add("t", "d", "u64", 0, store_value(Metric(datatype=T.UInt64, value=2**64 - 1)) or 0)
    store.append(batch)
    (point,) = store.latest("t", "d")
    assert point.value == float(2**64 - 1)


@pytest.mark.parametrize(
    ("properties", "quality"),
    [
        ({}, Quality.GOOD),
        ({"Quality": PropertyValue(T.Int32, 192)}, Quality.GOOD),
        ({"Quality": PropertyValue(T.Int32, 0)}, Quality.BAD),
        ({"Quality": PropertyValue(T.Int32, 500)}, Quality.UNCERTAIN),
        ({"Quality": PropertyValue(T.Int32, 64)}, Quality.UNCERTAIN),
        ({"Quality": PropertyValue(T.String, "GOOD")}, Quality.UNCERTAIN),
        ({"Quality": PropertyValue(T.Int32, None)}, Quality.GOOD),
        ({"quality": PropertyValue(T.Int32, 0)}, Quality.GOOD),  # the key is case-sensitive
    ],
)
def test_sparkplug_quality_codes(properties: dict[str, PropertyValue], quality: Quality) -> None:
    metric = Metric(datatype=T.Double, value=1.0, properties=properties)
    assert store_quality(metric) is quality
    assert (
        store_quality(decode_payload(encode_payload(Payload(metrics=[metric]))).metrics[0])
        is quality
    )


def test_datasets_and_templates_are_stored_as_json() -> None:
    dataset = DataSet(
        ["id", "at", "level", "ok"],
        [T.UInt8, T.DateTime, T.Double, T.Boolean],
        [[1, WHEN, math.nan, True], [None, None, 2.5, None]],
    )
    assert structured(dataset) == {
        "columns": ["id", "at", "level", "ok"],
        "types": ["UInt8", "DateTime", "Double", "Boolean"],
        "rows": [[1, "2009-10-21T05:27:55.335Z", None, True], [None, None, 2.5, None]],
    }
    template = Template(
        metrics=[
            Metric(name="speed", alias=3, datatype=T.Float, value=1.5),
            Metric(name="image", datatype=T.Bytes, value=b"\x00\x01"),
            Metric(name="table", datatype=T.DataSet, value=DataSet(["a"], [T.String], [["x"]])),
            Metric(name="child", datatype=T.Template, value=Template(template_ref="Child")),
            Metric(
                name="times", datatype=T.DateTimeArray, value=[datetime(2026, 1, 1, tzinfo=UTC)]
            ),
            Metric(name="off", datatype=T.Boolean),
        ],
        parameters=[Parameter("unit", T.String, "rpm")],
        version="1",
        template_ref="Motor",
    )
    stored = store_value(Metric(name="motor", datatype=T.Template, value=template))
    assert isinstance(stored, str)
    assert json.loads(stored) == {
        "template_ref": "Motor",
        "version": "1",
        "is_definition": False,
        "parameters": [{"name": "unit", "type": "String", "value": "rpm"}],
        "metrics": [
            {"name": "speed", "alias": 3, "datatype": "Float", "value": 1.5},
            {"name": "image", "datatype": "Bytes", "value": "AAE="},
            {
                "name": "table",
                "datatype": "DataSet",
                "value": {"columns": ["a"], "types": ["String"], "rows": [["x"]]},
            },
            {
                "name": "child",
                "datatype": "Template",
                "value": {
                    "template_ref": "Child",
                    "version": None,
                    "is_definition": False,
                    "parameters": [],
                    "metrics": [],
                },
            },
            {"name": "times", "datatype": "DateTimeArray", "value": ["2026-01-01T00:00:00.000Z"]},
            {"name": "off", "datatype": "Boolean", "value": None},
        ],
    }
    assert " " not in stored  # compact
    assert store_value(Metric(datatype=T.DataSet, value=DataSet(["ü"], [T.Text], [["✓"]]))) == (
        '{"columns":["ü"],"types":["Text"],"rows":[["✓"]]}'
    )


def test_kinds_of_what_is_stored() -> None:
    """Each stored form is one the store keeps with the kind the module docstring says."""
    batch = PointBatch()
    kinds: dict[DataType, tuple[Any, ValueKind]] = {
        T.Int16: (5, ValueKind.INT),
        T.Double: (0.5, ValueKind.FLOAT),
        T.StringArray: (["a"], ValueKind.STRING_ARRAY),
        T.Int32Array: ([1], ValueKind.INT_ARRAY),
        T.FloatArray: ([0.5], ValueKind.FLOAT_ARRAY),
        T.DataSet: (DataSet([], [], []), ValueKind.STRING),
    }
    for number, (datatype, (value, _)) in enumerate(kinds.items()):
        stored = store_value(Metric(datatype=datatype, value=value))
        assert stored is not None
        batch.add("t", "d", f"m{number}", number, stored)
    table = batch.to_arrow(range(len(batch.keys)))
    assert table.column("kind").to_pylist() == [int(kind) for _, kind in kinds.values()]

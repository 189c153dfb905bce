"""What a birth says of its metrics' units and descriptions (`sparkplug.descriptions`), and
the device API's data type of every Sparkplug metric type."""

from __future__ import annotations

from plantwire.telemetry.schemas import DataType as PlatformType
from plantwire.telemetry.sparkplug.descriptions import MetricDescription, describe
from plantwire.telemetry.sparkplug.model import (
    METRIC_TYPES,
    DataType,
    MetaData,
    Metric,
    PropertyValue,
)
from plantwire.telemetry.sparkplug_registry import PLATFORM_TYPES

T = DataType


def text(value: str) -> PropertyValue:
    return PropertyValue(T.String, value)


def test_units_and_descriptions_come_from_the_conventional_properties() -> None:
    metrics = [
        Metric(
            name="Temp",
            datatype=T.Float,
            properties={"engUnit": text("°C"), "description": text("Oil temperature")},
        ),
        Metric(  # keys in any case; Text counts as a string
            name="Count",
            datatype=T.UInt32,
            properties={
                "ENGINEERING UNITS": PropertyValue(T.Text, "strokes"),
                "documentation": text("Strokes since start"),
            },
        ),
        Metric(  # description before Documentation, engUnit before Engineering Units
            name="Level",
            datatype=T.Double,
            properties={
                "Documentation": text("second"),
                "Engineering Units": text("m"),
                "Description": text("first"),
                "engunit": text("mm"),
            },
        ),
        Metric(  # no description property: the MetaData's
            name="Curve",
            datatype=T.Int32Array,
            metadata=MetaData(description="Pressure curve"),
        ),
        Metric(  # not strings: as if absent; Quality is no unit
            name="Running",
            datatype=T.Boolean,
            properties={"engUnit": PropertyValue(T.Int32, 3), "Quality": PropertyValue(T.Int32, 0)},
            metadata=MetaData(content_type="text/plain"),
        ),
        Metric(alias=7, datatype=T.Int8),  # no name: nothing to describe
    ]
    assert describe(metrics) == [
        MetricDescription("Temp", T.Float, "°C", "Oil temperature"),
        MetricDescription("Count", T.UInt32, "strokes", "Strokes since start"),
        MetricDescription("Level", T.Double, "mm", "first"),
        MetricDescription("Curve", T.Int32Array, "", "Pressure curve"),
        MetricDescription("Running", T.Boolean, "", ""),
    ]


def test_every_metric_type_has_the_platform_type_its_values_are_stored_as() -> None:
    assert set(PLATFORM_TYPES) == METRIC_TYPES
    assert {kind.name: PLATFORM_TYPES[kind].value for kind in METRIC_TYPES if kind <= 19} == {
        "Int8": "int",
        "Int16": "int",
        "Int32": "int",
        "Int64": "int",
        "UInt8": "int",
        "UInt16": "int",
        "UInt32": "int",
        "UInt64": "int",
        "Float": "float",
        "Double": "float",
        "Boolean": "bool",
        "String": "string",
        "DateTime": "datetime",
        "Text": "string",
        "UUID": "string",
        "DataSet": "string",  # stored as JSON text
        "Bytes": "bytes",
        "File": "bytes",
        "Template": "string",  # stored as JSON text
    }
    arrays = {PLATFORM_TYPES[kind] for kind in METRIC_TYPES if kind >= 22}
    assert arrays == {PlatformType.ARRAY}

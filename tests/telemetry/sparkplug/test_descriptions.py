"""What a birth says of its metrics' units and descriptions (`sparkplug.descriptions`)."""

from __future__ import annotations

from plantwire.telemetry.sparkplug.descriptions import MetricDescription, describe
from plantwire.telemetry.sparkplug.model import DataType, MetaData, Metric, PropertyValue

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

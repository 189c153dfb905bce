"""Sparkplug B: the payload codec, topics and subjects, and what the store keeps of a metric
(sans-I/O). The host application that runs on them comes next (see docs/telemetry.md)."""

from plantwire.telemetry.sparkplug.codec import (
    MAX_DEPTH,
    MAX_METRICS,
    decode_payload,
    encode_payload,
)
from plantwire.telemetry.sparkplug.model import (
    DataSet,
    DataType,
    MetaData,
    Metric,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_METRICS",
    "DataSet",
    "DataType",
    "MetaData",
    "Metric",
    "Parameter",
    "Payload",
    "PropertySet",
    "PropertyValue",
    "Template",
    "decode_payload",
    "encode_payload",
]

"""Sparkplug B, sans-I/O: the payload codec (`codec`, `model`; re-exported here), topics and
their NATS subjects (`topics`), and what the time-series store keeps of a metric (`points`,
not imported here: it pulls in the store). The host application that runs on them comes
next (docs/telemetry.md, "Sparkplug B")."""

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

"""Typed constructors for the asyncua values the simulator makes. asyncua annotates its
protocol fields with its own ``int``/``str``/``datetime`` subclasses (``ua.Int16``,
``ua.String``, ``ua.DateTime`` …) that plain values satisfy at run time; here is the one
place that converts, so the rest stays free of casts."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

__all__ = ["GOOD", "SENSOR_FAILURE", "ObjectIds", "data_value", "standard_node", "string_node"]

GOOD: int = StatusCodes.Good
SENSOR_FAILURE: int = StatusCodes.BadSensorFailure


def string_node(identifier: str, namespace: int) -> ua.NodeId:
    """``ns=<namespace>;s=<identifier>``."""
    return ua.NodeId(ua.String(identifier), ua.Int16(namespace))


def standard_node(identifier: int) -> ua.NodeId:
    """A node of the OPC UA namespace (0), such as ``ObjectIds.AnalogItemType``."""
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


def data_value(
    value: object, kind: ua.VariantType, status: int = GOOD, when: datetime | None = None
) -> ua.DataValue:
    """A value with its status and, if given, source and server timestamps."""
    stamp = cast("ua.DateTime | None", when)
    return ua.DataValue(
        ua.Variant(value, kind),
        ua.StatusCode(ua.UInt32(status)),
        SourceTimestamp=stamp,
        ServerTimestamp=stamp,
    )

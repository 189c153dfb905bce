"""NCMD/DCMD payloads typed by a birth certificate (sans-I/O): what the node reads is the
value sent, and `CommandPayload.value` is what a read-back of it stores; values a type cannot
hold are refused with the codec's reasons, never sent."""

from __future__ import annotations

import base64
import struct
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.query import iso
from plantwire.telemetry.sparkplug.arrays import to_datetime
from plantwire.telemetry.sparkplug.codec import decode_payload
from plantwire.telemetry.sparkplug.commands import COMMAND_TYPES, command_payload
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import DataType, Metric
from plantwire.telemetry.sparkplug.points import store_value
from tests.telemetry.sparkplug.strategies import ARRAY_ITEMS as ITEMS

T = DataType
BITS = {T.Int8: 8, T.Int16: 16, T.Int32: 32, T.Int64: 64}
UBITS = {T.UInt8: 8, T.UInt16: 16, T.UInt32: 32, T.UInt64: 64}
CERTIFICATE = Certificate.of(
    [Metric(name=datatype.name, alias=int(datatype), datatype=datatype) for datatype in T]
    + [Metric(name="Named", datatype=T.Int32)]
)


def values(datatype: DataType) -> st.SearchStrategy[Any]:
    if datatype in BITS:
        half = 1 << (BITS[datatype] - 1)
        return st.integers(-half, half - 1)
    if datatype in UBITS:
        return st.integers(0, (1 << UBITS[datatype]) - 1)
    if datatype is T.Float:
        return st.floats(width=32, allow_nan=False, allow_infinity=False) | st.integers(-999, 999)
    if datatype is T.Double:
        return st.floats(allow_nan=False, allow_infinity=False)
    if datatype is T.Boolean:
        return st.booleans()
    if datatype is T.DateTime:
        return MOMENTS.map(lambda ms: ms) | MOMENTS.map(lambda ms: iso(to_datetime(ms)))
    if datatype in (T.Bytes, T.File):
        return st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())
    if datatype is T.StringArray:  # items end with a NUL byte, so they hold none
        return st.lists(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0")))
    if datatype in ITEMS:
        return st.lists(values(ITEMS[datatype]), max_size=6)
    return st.text(st.characters(exclude_categories=["Cs"]))  # UTF-8: no lone surrogates


MOMENTS = st.integers(0, 253_402_300_799_999)  # the DateTime range: 1970 to the year 9999


def native(datatype: DataType, value: Any) -> Any:
    """What the node reads: times as datetimes, bytes as bytes, items likewise."""
    if datatype in (T.DateTime, T.DateTimeArray) and isinstance(value, list):
        return [native(T.DateTime, item) for item in value]
    if datatype is T.DateTime:
        return to_datetime(value) if isinstance(value, int) else datetime.fromisoformat(value)
    if datatype in (T.Bytes, T.File):
        return base64.b64decode(value)
    return value


SCALARS_AND_ARRAYS = sorted(
    COMMAND_TYPES - {T.DataSet, T.Template}
)  # those: test_command_structures


@given(st.sampled_from(SCALARS_AND_ARRAYS).flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_the_node_reads_the_value_and_the_read_back_matches(case: tuple[DataType, Any]) -> None:
    datatype, value = case
    command = command_payload(CERTIFICATE, datatype.name, value, 1_764_500_000_000)
    payload = decode_payload(command.data)
    assert payload.seq is None
    (metric,) = payload.metrics
    assert (metric.name, metric.alias, metric.datatype) == (None, int(datatype), datatype)
    if datatype in (T.FloatArray,):  # the items as 32 bits carry them
        assert metric.value == [float32(item) for item in value]
    else:
        assert metric.value == native(datatype, value)
    assert store_value(metric) == command.value


def test_the_commands_cover_every_type_a_metric_may_have() -> None:
    metric_types = {t for t in T if t not in (T.Unknown, T.PropertySet, T.PropertySetList)}
    assert metric_types == COMMAND_TYPES


def float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("Int8", 128, "value"),
        ("UInt16", -1, "value"),
        ("UInt64", 1 << 64, "value"),
        ("Int32", True, "value"),
        ("Int32", 1.0, "value"),
        ("Float", 1e39, "value"),
        ("Double", float("nan"), "value"),
        ("Double", 10**400, "value"),  # JSON integers have no bound; a double has
        ("DoubleArray", [1, 10**400], "value"),
        ("Boolean", 1, "value"),
        ("String", 5, "value"),
        ("Int32Array", 1, "value"),
        ("Int8Array", [300], "value"),
        ("Int32", [1], "value"),
        ("DateTime", -1, "value"),
        ("DateTime", "yesterday", "value"),
        ("DateTime", "2026-11-30T10:00:00", "value"),  # no zone
        ("DateTime", 1.5, "value"),
        ("Bytes", "not base64!", "value"),
        ("File", b"raw".hex() + "=", "value"),
        ("DataSet", [], "value"),
        ("Template", 1, "value"),
        ("Int32", {"a": 1}, "value"),
        ("FloatArray", [1.0, float("inf")], "value"),
        ("Missing", 1, "alias"),
    ],
)
def test_values_the_type_cannot_hold_are_refused(metric: str, value: Any, reason: str) -> None:
    with pytest.raises(PayloadError) as refused:
        command_payload(CERTIFICATE, metric, value, 0)
    assert refused.value.reason == reason


def test_a_metric_without_an_alias_goes_by_name() -> None:
    (metric,) = decode_payload(command_payload(CERTIFICATE, "Named", 5, 0).data).metrics
    assert (metric.name, metric.alias, metric.value) == ("Named", None, 5)

"""NCMD/DCMD payloads typed by a birth certificate (sans-I/O): what the node reads is the
value sent, and `CommandPayload.value` is what a read-back of it stores; values a type cannot
hold are refused with the codec's reasons, never sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.codec import decode_payload
from plantwire.telemetry.sparkplug.commands import COMMAND_TYPES, command_payload
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import DataType, Metric
from plantwire.telemetry.sparkplug.points import store_value

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
    return st.text(st.characters(exclude_categories=["Cs"]))  # UTF-8: no lone surrogates


@given(st.sampled_from(sorted(COMMAND_TYPES)).flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_the_node_reads_the_value_and_the_read_back_matches(case: tuple[DataType, Any]) -> None:
    datatype, value = case
    command = command_payload(CERTIFICATE, datatype.name, value, 1_764_500_000_000)
    payload = decode_payload(command.data)
    assert payload.seq is None
    (metric,) = payload.metrics
    assert (metric.name, metric.alias, metric.datatype) == (None, int(datatype), datatype)
    assert metric.value == value
    assert store_value(metric) == command.value


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
        ("Boolean", 1, "value"),
        ("String", 5, "value"),
        ("Int32Array", 1, "datatype"),
        ("DateTime", 1, "datatype"),
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

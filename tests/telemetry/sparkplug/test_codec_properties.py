"""Property tests of the Sparkplug B codec: any bytes decode to a payload or are refused with
a reason, never another exception; any valid payload encodes and decodes back to itself."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from tests.telemetry.sparkplug.strategies import payloads

REASONS = {"protobuf", "datatype", "value", "shape", "size"}
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode_payload(data)
    except PayloadError as error:
        refused: str | None = error.reason
    else:
        refused = None
        encode_payload(decoded)  # what was decoded is valid: it encodes again
    assert refused is None or refused in REASONS


@SLOW
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused_with_a_reason(data: bytes) -> None:
    _decodes_or_refuses(data)


@pytest.mark.slow
@SLOW
@given(payloads)
def test_any_valid_payload_round_trips(payload: Payload) -> None:
    assert decode_payload(encode_payload(payload)) == payload


@pytest.mark.slow
@SLOW
@given(payloads, st.data())
def test_damaged_payloads_decode_or_are_refused(payload: Payload, data: st.DataObject) -> None:
    """Valid payloads with bytes changed, cut or spliced reach the decoder's deeper checks,
    which random bytes seldom do."""
    raw = bytearray(encode_payload(payload))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _decodes_or_refuses(bytes(raw[:cut]) + data.draw(st.binary(max_size=8)))


# Any protobuf Payload message (built field by field, so every combination of datatype
# number and value field the schema allows) decodes or is refused with a reason.
_numbers = st.integers(0, 40)
_values = st.one_of(
    st.builds(lambda v: {"int_value": v}, st.integers(0, 2**32 - 1)),
    st.builds(lambda v: {"long_value": v}, st.integers(0, 2**64 - 1)),
    st.builds(lambda v: {"float_value": v}, st.floats(width=32)),
    st.builds(lambda v: {"double_value": v}, st.floats()),
    st.builds(lambda v: {"boolean_value": v}, st.booleans()),
    st.builds(lambda v: {"string_value": v}, st.text(max_size=8)),
    st.builds(lambda v: {"bytes_value": v}, st.binary(max_size=16)),
    st.just({}),
)
_proto_metrics = st.builds(
    lambda datatype, value, null, alias: pb.Payload.Metric(
        datatype=datatype, is_null=null, alias=alias, **value
    ),
    _numbers,
    _values,
    st.booleans(),
    st.integers(0, 3),
)


@SLOW
@given(st.lists(_proto_metrics, max_size=5))
def test_any_metric_the_schema_allows_decodes_or_is_refused(
    metrics: list[pb.Payload.Metric],
) -> None:
    _decodes_or_refuses(pb.Payload(seq=0, metrics=metrics).SerializeToString())


def test_nan_round_trips() -> None:
    """NaN is left out of the property test (NaN != NaN), so here."""
    for datatype in (DataType.Float, DataType.Double):
        value = (
            decode_payload(
                encode_payload(Payload(metrics=[Metric(datatype=datatype, value=math.nan)]))
            )
            .metrics[0]
            .value
        )
        assert isinstance(value, float)
        assert math.isnan(value)

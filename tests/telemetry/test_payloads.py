"""The JSON telemetry payload: every accepted shape, every refusal with its reason, and
property tests (any bytes: points or a PayloadError, never another exception)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.telemetry import payloads
from plantwire.telemetry.payloads import (
    MAX_POINTS,
    PayloadError,
    decode_json,
)

NOW = 1_764_500_000_000  # 2025-11-30, epoch ms


def decode(document: Any, **kwargs: Any) -> Any:
    return decode_json(json.dumps(document).encode(), NOW, **kwargs)


def reason(payload: bytes | Any, **kwargs: Any) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(PayloadError) as caught:
        decode_json(raw, NOW, **kwargs)
    return caught.value.reason


def test_the_three_shapes() -> None:
    assert decode({"ts": 1_700_000_000_123, "values": {"t": 21.5, "on": True}}) == [
        ("t", 1_700_000_000_123, 21.5),
        ("on", 1_700_000_000_123, True),
    ]
    assert decode(
        [
            {"ts": "2025-11-30T10:00:00Z", "values": {"count": 7}},
            {"ts": "2025-11-30T11:00:00.250+01:00", "values": {"state": "run"}},
        ]
    ) == [("count", 1_764_496_800_000, 7), ("state", 1_764_496_800_250, "run")]
    assert decode({"t": 1, "mode": "auto"}) == [("t", NOW, 1), ("mode", NOW, "auto")]
    assert decode({"values": {"t": 2}}) == [("t", NOW, 2)]  # no ts: stamped at arrival


def test_a_flat_message_may_name_a_metric_values_if_it_is_not_an_object() -> None:
    assert decode({"values": 3, "ts": 5}) == [("values", NOW, 3), ("ts", NOW, 5)]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_json_in_any_of_its_encodings(encoding: str) -> None:
    text = json.dumps({"ts": 1_700_000_000_000, "values": {"t": 21.5, "ü": "läuft"}})
    assert decode_json(text.encode(encoding), NOW) == [
        ("t", 1_700_000_000_000, 21.5),
        ("ü", 1_700_000_000_000, "läuft"),
    ]


def test_declared_types_are_enforced() -> None:
    declared = {"t": "float", "n": "int", "on": "bool", "s": "string"}
    assert decode({"t": 1, "n": 2, "on": False, "s": "x", "other": "y"}, declared=declared) == [
        ("t", NOW, 1.0),  # an integer is a fine float
        ("n", NOW, 2),
        ("on", NOW, False),
        ("s", NOW, "x"),
        ("other", NOW, "y"),  # undeclared metrics take any type
    ]
    assert isinstance(decode({"t": 1}, declared=declared)[0][2], float)
    for bad in ({"t": "hot"}, {"n": 1.5}, {"on": 1}, {"s": 2}, {"n": True}):
        assert reason(bad, declared=declared) == "type"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "json"),
        (b"{", "json"),
        (b"\xff\xfe", "json"),
        (b'{"t": NaN}', "value"),
        (b'{"t": Infinity}', "value"),
        (b'{"t": 1e999}', "value"),
        (b"[" * 100_000, "json"),
        (b"42", "shape"),
        (b'"text"', "shape"),
        (b"[]", "shape"),
        (b"{}", "shape"),
        (b"[1, 2]", "shape"),
        (b'[{"ts": 1}]', "shape"),
        (b'{"ts": 1, "values": {}, "extra": 1}', "shape"),
        (b'{"ts": 1, "values": {}}', "shape"),
        (b'{"t": null}', "value"),
        (b'{"t": [1, 2]}', "value"),
        (b'{"t": {"a": 1}}', "value"),
        (b'{"t": 9223372036854775808}', "value"),
        (b'{"": 1}', "metric"),
        (b'{"a\\nb": 1}', "metric"),
        (b'{"ts": -1, "values": {"t": 1}}', "timestamp"),
        (b'{"ts": "1969-12-31T23:59:59Z", "values": {"t": 1}}', "timestamp"),
        (b'{"ts": "2025-11-30T10:00:00", "values": {"t": 1}}', "timestamp"),
        (b'{"ts": "yesterday", "values": {"t": 1}}', "timestamp"),
        (b'{"ts": true, "values": {"t": 1}}', "timestamp"),
        (b'{"ts": null, "values": {"t": 1}}', "timestamp"),
        (b'{"ts": 99999999999999999, "values": {"t": 1}}', "timestamp"),
    ],
)
def test_refusals_name_their_reason(payload: bytes, expected: str) -> None:
    assert reason(payload) == expected


def test_size_limits() -> None:
    assert reason({f"m{i}": i for i in range(MAX_POINTS + 1)}) == "size"
    many = [{"values": {f"m{i}": i for i in range(100)}} for _ in range(MAX_POINTS // 100 + 1)]
    assert reason(many) == "size"
    assert reason({"m" * 201: 1}) == "metric"
    assert reason({"s": "x" * (64 * 1024 + 1)}) == "value"


def test_future_timestamps_within_the_allowance_pass() -> None:
    assert decode({"ts": NOW + 60_000, "values": {"t": 1}})[0][1] == NOW + 60_000
    assert reason({"ts": NOW + 3_600_001, "values": {"t": 1}}) == "timestamp"
    late = {"ts": NOW + 7_200_000, "values": {"t": 1}}
    assert decode(late, max_future_ms=86_400_000)[0][1] == NOW + 7_200_000


def test_one_bad_value_rejects_the_whole_message() -> None:
    assert reason([{"values": {"t": 1}}, {"values": {"t": None}}]) == "value"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused_with_a_reason(payload: bytes) -> None:
    reasons = {"json", "shape", "metric", "value", "timestamp", "type", "size"}
    try:
        points = decode_json(payload, NOW)
    except PayloadError as error:
        refused = error.reason
    else:
        assert points
        return
    assert refused in reasons


def _standard(raw: bytes) -> str:
    """The standard library's reading of ``raw`` (as repr, so -0.0 is not 0.0), or why not."""
    try:
        return repr(json.loads(raw, parse_constant=payloads._no_constants))
    except (ValueError, RecursionError) as error:
        return f"refused: {type(error).__name__}"


def _fast(raw: bytes) -> str:
    try:
        return repr(payloads._parse(raw))
    except (ValueError, RecursionError) as error:
        return f"refused: {type(error).__name__}"


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(json_values, st.booleans()).map(
            lambda pair: json.dumps(pair[0], ensure_ascii=pair[1]).encode()
        ),
        st.text(max_size=60).map(lambda text: json.dumps({"s": text}, ensure_ascii=False).encode()),
    )
)
def test_the_fast_decoder_reads_what_the_standard_library_reads(raw: bytes) -> None:
    # msgspec decodes first and the standard library takes what it refuses: for any input
    # the result is the standard library's.
    assert _fast(raw) == _standard(raw)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": NaN}', b'{"a": 1e999}', b'"\\ud800"', b"\xef\xbb\xbf{}", b"[" * 5000, b"{} x"],
)
def test_the_fast_decoder_hands_what_it_refuses_to_the_standard_library(raw: bytes) -> None:
    assert _fast(raw) == _standard(raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_decodes_to_well_typed_points_or_is_refused(document: Any) -> None:
    try:
        raw = json.dumps(document).encode()
    except ValueError:
        return
    try:
        points = decode_json(raw, NOW)
    except PayloadError:
        return
    for metric, ts, value in points:
        assert isinstance(metric, str)
        assert metric
        assert 0 <= ts <= NOW + 3_600_000
        assert isinstance(value, bool | int | float | str)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(
            # no surrogates: a name is text, and two of them side by side are one character
            # once written as JSON and read back (found by hypothesis in CI)
            alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFFFF, codec="utf-8"),
            min_size=1,
            max_size=30,
        ).filter(lambda name: "\x7f" not in name),
        st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30),
        min_size=1,
        max_size=20,
    ),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2025, 11, 30), timezones=st.just(UTC)
    ),
)
def test_valid_samples_round_trip(values: dict[str, Any], moment: datetime) -> None:
    ms = int(moment.timestamp() * 1000)
    as_iso = moment.isoformat(timespec="milliseconds")
    for ts in (ms, as_iso):
        points = decode({"ts": ts, "values": values})
        assert [(metric, value) for metric, _, value in points] == list(values.items())
        assert {point_ts for _, point_ts, _ in points} == {ms}

"""The gateway's Sparkplug B edge node session: births, data, death and commands, read back
by our codec and by an independent implementation (pysparkplug)."""

from __future__ import annotations

from datetime import UTC, datetime

import pysparkplug as psp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.edge.buffer import BufferedPoint
from plantwire.edge.node import (
    BD_SEQ,
    REBIRTH,
    CommandError,
    EdgeNodeSession,
    MetricSpec,
    Rebirth,
    Write,
)
from plantwire.telemetry.sparkplug import DataType, Metric, Payload, decode_payload, encode_payload
from plantwire.telemetry.sparkplug.model import QUALITY_PROPERTY
from plantwire.telemetry.sparkplug.topics import TopicError

T = DataType
NOW = 1_764_500_000_000


def _session(bd_seq: int = 0) -> EdgeNodeSession:
    return EdgeNodeSession(
        "Plant1",
        "Gateway1",
        {
            "Press1": [
                MetricSpec("Temperature", T.Double, unit="°C", description="Oil temperature"),
                MetricSpec("Strokes", T.UInt32),
                MetricSpec("Running", T.Boolean),
            ],
            "Meter1": [MetricSpec("Power", T.Float, unit="kW"), MetricSpec("Since", T.DateTime)],
        },
        node_metrics=[MetricSpec("Buffer/Dropped", T.UInt64)],
        bd_seq=bd_seq,
    )


def test_births_declare_every_metric_with_alias_unit_and_last_value() -> None:
    session = _session(bd_seq=7)
    read = [BufferedPoint("Press1", "Temperature", T.Double, NOW - 5, 71.5)]
    session.data(session.changes(read), NOW - 5)  # published
    session.changes([BufferedPoint("Press1", "Strokes", T.UInt32, NOW - 4, 3)])  # read only
    (nbirth_topic, nbirth), *dbirths = session.births(NOW)
    assert nbirth_topic == "spBv1.0/Plant1/NBIRTH/Gateway1"
    node = decode_payload(nbirth)
    assert node.seq == 0
    assert [m.name for m in node.metrics] == [BD_SEQ, REBIRTH, "Buffer/Dropped"]
    assert node.metrics[0].value == 7
    assert node.metrics[1].value is False
    assert [topic for topic, _ in dbirths] == [
        "spBv1.0/Plant1/DBIRTH/Gateway1/Press1",
        "spBv1.0/Plant1/DBIRTH/Gateway1/Meter1",
    ]
    press = decode_payload(dbirths[0][1])
    assert press.seq == 1
    assert decode_payload(dbirths[1][1]).seq == 2
    temperature, strokes, running = press.metrics
    assert running.value is None
    assert (temperature.name, temperature.datatype, temperature.value) == (
        "Temperature",
        T.Double,
        71.5,
    )
    assert temperature.timestamp == NOW - 5
    assert temperature.is_transient  # the host has it already: shown, not stored again
    assert temperature.properties["engUnit"].value == "°C"
    assert temperature.metadata is not None
    assert temperature.metadata.description == "Oil temperature"
    assert strokes.value is None  # read, not published (it may wait in the buffer): null
    assert not strokes.is_transient
    aliases = [m.alias for m in [*node.metrics[2:], *press.metrics]]
    aliases += [m.alias for m in decode_payload(dbirths[1][1]).metrics]
    assert len(set(aliases)) == len(aliases) == 6  # unique across the whole node
    # pysparkplug reads the same births
    theirs = psp.NBirth.decode(nbirth)
    assert theirs.seq == 0
    their_press = psp.DBirth.decode(dbirths[0][1])
    assert [m.name for m in their_press.metrics] == ["Temperature", "Strokes", "Running"]
    assert their_press.metrics[0].value == 71.5


def test_the_will_carries_the_births_bdseq_and_sessions_count_up_wrapping() -> None:
    session = _session(bd_seq=255)
    topic, will = session.will(NOW)
    assert topic == "spBv1.0/Plant1/NDEATH/Gateway1"
    assert decode_payload(will).metrics == [Metric(BD_SEQ, None, None, T.Int64, 255)]
    assert psp.NDeath.decode(will).bd_seq_metric.value == 255
    session.next_session()
    assert session.bd_seq == 0
    assert decode_payload(session.will(NOW)[1]).metrics[0].value == 0
    assert decode_payload(session.births(NOW)[0][1]).metrics[0].value == 0


def test_data_by_alias_in_sequence_with_quality_and_history() -> None:
    session = _session()
    births = session.births(NOW)
    points = [
        BufferedPoint("Press1", "Temperature", T.Double, NOW + 1, 72.0),
        BufferedPoint("Meter1", "Power", T.Float, NOW + 1, 12.5, quality=0),
        BufferedPoint("Press1", "Running", T.Boolean, NOW + 2, True),
        BufferedPoint("Meter1", "Since", T.DateTime, NOW + 2, 1_764_000_000_123),
        BufferedPoint("", "Buffer/Dropped", T.UInt64, NOW + 3, 2**64 - 1),
    ]
    messages = session.data(points, NOW + 10, historical=True)
    assert [topic for topic, _ in messages] == [
        "spBv1.0/Plant1/DDATA/Gateway1/Press1",
        "spBv1.0/Plant1/DDATA/Gateway1/Meter1",
        "spBv1.0/Plant1/NDATA/Gateway1",
    ]
    press, meter, node = (decode_payload(payload) for _, payload in messages)
    assert [press.seq, meter.seq, node.seq] == [len(births), len(births) + 1, len(births) + 2]
    assert all(m.name is None and m.is_historical for m in press.metrics + meter.metrics)
    assert [m.alias for m in press.metrics] == [
        session.alias("Press1", "Temperature"),
        session.alias("Press1", "Running"),
    ]
    assert [m.value for m in press.metrics] == [72.0, True]
    power, since = meter.metrics
    assert power.properties[QUALITY_PROPERTY].value == 0
    assert QUALITY_PROPERTY not in press.metrics[0].properties  # good goes without it
    assert since.value == datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)
    assert node.metrics[0].value == 2**64 - 1
    their = psp.DData.decode(messages[0][1], birth=psp.DBirth.decode(births[1][1]))
    assert [m.value for m in their.metrics] == [72.0, True]
    with pytest.raises(KeyError):
        session.data([BufferedPoint("Press1", "Nope", T.Double, NOW, 1.0)], NOW)


def test_seq_wraps_after_255_and_births_start_it_again() -> None:
    session = _session()
    session.births(NOW)  # seq 0, 1, 2
    point = BufferedPoint("Press1", "Strokes", T.UInt32, NOW, 1)
    seqs = [decode_payload(session.data([point], NOW)[0][1]).seq for _ in range(300)]
    assert seqs[:3] == [3, 4, 5]
    assert seqs[252:255] == [255, 0, 1]
    assert decode_payload(session.births(NOW)[0][1]).seq == 0


def test_changes_keep_what_differs_in_value_type_or_quality() -> None:
    session = _session()
    first = [
        BufferedPoint("Press1", "Strokes", T.UInt32, NOW, 1),
        BufferedPoint("Press1", "Running", T.Boolean, NOW, True),
    ]
    assert session.changes(first) == first
    same = [
        BufferedPoint("Press1", "Strokes", T.UInt32, NOW + 1, 1),
        BufferedPoint("Press1", "Running", T.Boolean, NOW + 1, True),
    ]
    assert session.changes(same) == []
    bad = BufferedPoint("Press1", "Strokes", T.UInt32, NOW + 2, 1, quality=0)
    more = BufferedPoint("Press1", "Strokes", T.UInt32, NOW + 3, 2)
    assert session.changes([bad, more]) == [bad, more]
    # the last value published goes into the next birth; an older one published after
    # (a buffered point replayed) does not replace it
    session.data([more], NOW + 4)
    session.data([bad], NOW + 5, historical=True)
    birth = decode_payload(session.births(NOW + 6)[1][1])
    assert birth.metrics[1].value == 2
    assert birth.metrics[1].timestamp == NOW + 3


def test_declaring_a_new_metric_or_type_asks_for_births() -> None:
    session = _session()
    assert session.declare("Press1", MetricSpec("Pressure", T.Double)) is True
    assert session.declare("Press1", MetricSpec("Pressure", T.Double, unit="bar")) is False
    assert session.declare("Press1", MetricSpec("Pressure", T.Float)) is True
    assert session.declare("Press2", MetricSpec("Pressure", T.Double)) is True
    assert session.devices == ["Press1", "Meter1", "Press2"]
    with pytest.raises(ValueError, match="bdSeq"):
        session.declare("", MetricSpec(BD_SEQ, T.Int64))
    with pytest.raises(TopicError):
        session.declare("Press/3", MetricSpec("Pressure", T.Double))


def _command(*metrics: Metric) -> bytes:
    return encode_payload(Payload(timestamp=NOW, metrics=list(metrics)))


def test_commands_become_rebirths_and_typed_writes() -> None:
    session = _session()
    assert session.command(
        "spBv1.0/Plant1/NCMD/Gateway1", _command(Metric(REBIRTH, None, NOW, T.Boolean, True))
    ) == [Rebirth()]
    alias = session.alias("Meter1", "Since")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    # by alias only and without a data type, as the specification has hosts send them
    raw = encode_payload(
        Payload(timestamp=NOW, metrics=[Metric(None, alias, NOW, T.DateTime, since)]),
        include_datatypes=False,
    )
    assert session.command("spBv1.0/Plant1/DCMD/Gateway1/Meter1", raw) == [
        Write("Meter1", "Since", 1_767_225_600_000)
    ]
    by_name = _command(Metric("Strokes", None, NOW, T.UInt32, 5))
    assert session.command("spBv1.0/Plant1/DCMD/Gateway1/Press1", by_name) == [
        Write("Press1", "Strokes", 5)
    ]
    their = psp.DCmd(
        timestamp=NOW,
        metrics=(
            psp.Metric(
                timestamp=NOW,
                name=None,
                alias=session.alias("Press1", "Temperature"),
                datatype=psp.DataType.DOUBLE,
                value=80.5,
            ),
        ),
    ).encode(include_dtypes=True)
    assert session.command("spBv1.0/Plant1/DCMD/Gateway1/Press1", their) == [
        Write("Press1", "Temperature", 80.5)
    ]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("spBv1.0/Plant1/DCMD/Gateway1/Press9", _command(), "no command topic"),
        ("spBv1.0/Plant2/NCMD/Gateway1", _command(), "no command topic"),
        ("spBv1.0/Plant1/DDATA/Gateway1/Press1", _command(), "no command topic"),
        ("not/a/topic", _command(), "not under spBv1.0"),
        ("spBv1.0/Plant1/NCMD/Gateway1", b"\xff\xff", "undecodable"),
        (
            "spBv1.0/Plant1/DCMD/Gateway1/Press1",
            _command(Metric(None, 999, NOW, T.Double, 1.0)),
            "alias 999",
        ),
        (
            "spBv1.0/Plant1/DCMD/Gateway1/Press1",
            _command(Metric("Power", None, NOW, T.Float, 1.0)),
            "'Power'",
        ),
        (
            "spBv1.0/Plant1/DCMD/Gateway1/Press1",
            _command(Metric("Strokes", None, NOW, T.UInt32, None)),
            "null",
        ),
    ],
)
def test_commands_it_cannot_act_on_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        _session().command(topic, payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["Press1", "Meter1"]))
def test_garbage_commands_are_command_errors_never_crashes(data: bytes, device: str) -> None:
    try:
        wanted = _session().command(f"spBv1.0/Plant1/DCMD/Gateway1/{device}", data)
    except CommandError:
        return
    assert all(isinstance(item, Write) and item.device == device for item in wanted)


# --- the quick encoding of data: the same bytes as the full model --------------------------

_QUICK_SPECS = [
    MetricSpec("i8", T.Int8),
    MetricSpec("i16", T.Int16),
    MetricSpec("i32", T.Int32),
    MetricSpec("i64", T.Int64),
    MetricSpec("u8", T.UInt8),
    MetricSpec("u16", T.UInt16),
    MetricSpec("u32", T.UInt32),
    MetricSpec("u64", T.UInt64),
    MetricSpec("f", T.Float),
    MetricSpec("d", T.Double),
    MetricSpec("b", T.Boolean),
    MetricSpec("s", T.String),
    MetricSpec("t", T.Text),
    MetricSpec("when", T.DateTime),
    MetricSpec("arr", T.Int16Array),
]
_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([0, 1, -1, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**63, 2**64 - 1]),
    st.floats(allow_nan=False),
    st.floats(width=32),
    st.sampled_from([3.5e38, -1e300, 1e308]),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "plain"]),
    st.lists(st.integers(min_value=-(2**15), max_value=2**15 - 1), max_size=3),
)
_POINT = st.builds(
    lambda device, spec, value, quality, ts: BufferedPoint(
        device, spec.name, spec.datatype, ts, value, quality
    ),
    st.sampled_from(["A", "B", ""]),
    st.sampled_from(_QUICK_SPECS),
    _ANY_VALUE,
    st.sampled_from([192, 192, 192, 64, 0]),
    st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.just(NOW), st.just(-1)),
)


def _expected(
    session: EdgeNodeSession, points: list[BufferedPoint], now: int, historical: bool
) -> list[tuple[str, bytes]]:
    """What `data` made before its quick path: a `Metric` each, through `encode_payload`."""
    from plantwire.edge.node import _metric_value, _quality

    by_device: dict[str, list[Metric]] = {}
    for point in points:
        spec = next(s for s in _QUICK_SPECS if s.name == point.metric)
        by_device.setdefault(point.device, []).append(
            Metric(
                alias=session.alias(point.device, point.metric),
                timestamp=point.timestamp,
                datatype=spec.datatype,
                value=_metric_value(spec.datatype, point.value),
                is_historical=historical,
                properties=_quality(point.quality),
            )
        )
    seq = session._seq
    messages = []
    for device, metrics in by_device.items():
        kind = "DDATA" if device else "NDATA"
        topic = f"spBv1.0/Plant1/{kind}/Gateway1" + (f"/{device}" if device else "")
        payload = Payload(timestamp=now, metrics=metrics, seq=seq)
        messages.append((topic, encode_payload(payload)))
        seq = (seq + 1) % 256
    return messages


@settings(max_examples=300, deadline=None)
@given(st.lists(_POINT, max_size=12), st.booleans(), st.integers(min_value=0, max_value=300))
def test_data_writes_exactly_what_the_full_model_writes(
    points: list[BufferedPoint], historical: bool, skip: int
) -> None:
    session = EdgeNodeSession(
        "Plant1", "Gateway1", {"A": _QUICK_SPECS, "B": _QUICK_SPECS}, node_metrics=_QUICK_SPECS
    )
    for _ in range(skip):
        session._seq = (session._seq + 1) % 256
    seq = session._seq
    try:
        expected = _expected(session, points, NOW, historical)
    except (ValueError, OverflowError):  # PayloadError is a ValueError
        with pytest.raises((ValueError, OverflowError)):
            session.data(points, NOW, historical=historical)
        assert session._seq == seq  # nothing published: no seq taken
        assert not session._sent
        return
    messages = session.data(points, NOW, historical=historical)
    assert messages == expected
    births = {topic.rsplit("/", 1)[-1]: payload for topic, payload in session.births(NOW)}
    for topic, payload in messages:
        ours = decode_payload(payload)
        if topic.startswith("spBv1.0/Plant1/DDATA/"):
            birth = psp.DBirth.decode(births[topic.rsplit("/", 1)[-1]])
            theirs = psp.DData.decode(payload, birth=birth)
            assert theirs.seq == ours.seq
            assert [m.alias for m in theirs.metrics] == [m.alias for m in ours.metrics]
            assert [m.timestamp for m in theirs.metrics] == [m.timestamp for m in ours.metrics]

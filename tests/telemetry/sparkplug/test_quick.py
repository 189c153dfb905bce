"""The quick path of NDATA/DDATA (`sparkplug.quick`) stores exactly what the full path
stores, or leaves the message to it."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.host import Certificate, _Rebirth, _samples
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from plantwire.telemetry.sparkplug.quick import _column_wise, quick_samples
from plantwire.telemetry.store.model import Quality

T = DataType
RECEIVED = 1_764_000_000_000
NAMES = ["a", "b", "c", "d"]
TYPES = [T.Double, T.Float, T.Boolean, T.Int8, T.Int32, T.Int64, T.UInt64, T.String, T.DateTime]
FIELDS = {
    "double_value": st.floats(width=64),
    "float_value": st.floats(width=32),
    "int_value": st.integers(0, 2**32 - 1),
    "long_value": st.integers(0, 2**64 - 1),
    "boolean_value": st.booleans(),
    "string_value": st.text(max_size=4),
}


def full_path(data: bytes, certificate: Certificate) -> Any:
    """What the full path stores of a message: (seq, [(metric, ms, value, quality)]), or
    why not."""
    try:
        payload = decode_payload(data, datatypes=certificate.datatypes())
        if payload.seq is None:
            return "no seq"
        samples = _samples(None, payload, certificate, RECEIVED)
    except (PayloadError, _Rebirth) as error:
        return f"refused: {error}"
    return payload.seq, [(s.metric, s.ms, s.value, s.quality) for s in samples]


def quick_path(data: bytes, certificate: Certificate) -> Any:
    found = quick_samples(data, certificate.plan(), RECEIVED)
    if found is None:
        return None
    seq, grouped = found
    return seq, [
        (metric, group.ms, value, Quality.GOOD)
        for group in grouped
        for metric, value in zip(group.names, group.values, strict=True)
    ]


births = st.lists(
    st.tuples(st.sampled_from(NAMES), st.none() | st.integers(0, 4), st.sampled_from(TYPES)),
    max_size=4,
    unique_by=(lambda row: row[0]),
).filter(
    lambda rows: (
        len({a for _, a, _ in rows if a is not None}) == sum(a is not None for _, a, _ in rows)
    )
)


@st.composite
def wire_metrics(draw: st.DrawFn) -> pb.Payload.Metric:
    metric = pb.Payload.Metric()
    name = draw(st.none() | st.sampled_from([*NAMES, ""]))
    if name is not None:
        metric.name = name
    alias = draw(st.none() | st.integers(0, 5))
    if alias is not None:
        metric.alias = alias
    datatype = draw(st.none() | st.sampled_from([0, *TYPES, T.Int8Array]))
    if datatype is not None:
        metric.datatype = int(datatype)
    field = draw(st.none() | st.sampled_from(sorted(FIELDS)))
    if field is not None:
        setattr(metric, field, draw(FIELDS[field]))
    for flag in ("is_null", "is_historical", "is_transient"):
        if draw(st.integers(0, 9)) == 0:
            setattr(metric, flag, True)
    timestamp = draw(st.none() | st.sampled_from([0, RECEIVED - 5, RECEIVED + 7, 2**63]))
    if timestamp is not None:
        metric.timestamp = timestamp
    if draw(st.integers(0, 9)) == 0:
        metric.properties.keys.append("Quality")
        metric.properties.values.add(type=int(T.Int32), int_value=500)
    return metric


#: the field of each type of TYPES, and values a sender may put there
PLAIN = {
    T.Double: ("double_value", st.floats(width=64)),
    T.Float: ("float_value", st.floats(width=32)),
    T.Boolean: ("boolean_value", st.booleans()),
    T.Int8: ("int_value", st.integers(0, 255) | st.integers(2**32 - 128, 2**32 - 1)),
    T.Int32: ("int_value", st.integers(0, 2**32 - 1)),
    T.Int64: ("long_value", st.integers(0, 2**64 - 1)),
    T.UInt64: ("long_value", st.integers(0, 2**64 - 1)),
    T.String: ("string_value", st.text(max_size=4)),
    T.DateTime: ("long_value", st.integers(0, 253_402_300_799_999)),
}


@st.composite
def plain_metrics(draw: st.DrawFn, birth: list[tuple[str, int | None, DataType]]) -> Any:
    """A metric of the birth as a sender would send it (or a random one when the birth has
    none)."""
    if not birth:
        return draw(wire_metrics())
    name, alias, kind = draw(st.sampled_from(birth))
    field, values = PLAIN[kind]
    metric = pb.Payload.Metric()
    setattr(metric, field, draw(values))
    if alias is not None and draw(st.booleans()):
        metric.alias = alias
    else:
        metric.name = name
    if draw(st.booleans()):
        metric.datatype = int(kind)
    timestamp = draw(st.none() | st.sampled_from([RECEIVED - 5, RECEIVED + 7]))
    if timestamp is not None:
        metric.timestamp = timestamp
    return metric


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[tuple[str, int | None, DataType]], list[Any]]:
    """A birth and the metrics of a data message: all as a sender sends them, or some
    anything."""
    birth = draw(births)
    one = plain_metrics(birth)
    if draw(st.booleans()):
        one = one | wire_metrics()
    return birth, draw(st.lists(one, max_size=5))


seqs = st.integers(0, 9).flatmap(
    lambda n: st.none() if n == 0 else st.integers(256, 300) if n == 1 else st.integers(0, 255)
)


@settings(max_examples=1500, deadline=None)
@given(cases(), seqs, st.booleans())
def test_the_quick_path_stores_what_the_full_path_stores(
    case: tuple[list[tuple[str, int | None, DataType]], list[pb.Payload.Metric]],
    seq: int | None,
    stamped: bool,
) -> None:
    birth, metrics = case
    certificate = Certificate.of([Metric(name, alias, None, kind) for name, alias, kind in birth])
    proto = pb.Payload(metrics=metrics)
    if seq is not None:
        proto.seq = seq
    if stamped:
        proto.timestamp = RECEIVED - 1000
    data = proto.SerializeToString()
    quick = quick_path(data, certificate)
    event("quick" if quick is not None else "full")
    if quick is not None:
        assert repr(quick) == repr(full_path(data, certificate))


def test_plain_data_takes_the_quick_path() -> None:
    birth = [Metric(f"m{k}", k + 1, None, T.Double) for k in range(100)]
    birth += [Metric("count", 200, None, T.Int32), Metric("state", 201, None, T.String)]
    certificate = Certificate.of(birth)
    metrics = [Metric(None, k + 1, RECEIVED + 1, T.Double, k * 0.5) for k in range(100)]
    metrics += [
        Metric(None, 200, RECEIVED + 2, T.Int32, -3),
        Metric("state", None, None, T.String, "run"),
    ]
    data = encode_payload(Payload(RECEIVED, metrics, seq=7))
    quick = quick_path(data, certificate)
    assert quick is not None
    assert repr(quick) == repr(full_path(data, certificate))
    _, grouped = quick_samples(data, certificate.plan(), RECEIVED) or (0, [])
    assert [(group.ms, len(group.values)) for group in grouped] == [
        (RECEIVED + 1, 100),
        (RECEIVED + 2, 1),
        (RECEIVED, 1),
    ]


def test_what_the_quick_path_leaves_to_the_full_one() -> None:
    certificate = Certificate.of([Metric("a", 1, None, T.Double)])

    def message(**fields: Any) -> bytes:
        metric = pb.Payload.Metric(alias=1, double_value=1.5, **fields)
        return pb.Payload(seq=1, metrics=[metric]).SerializeToString()

    assert quick_path(message(), certificate) is not None
    for fields in (
        {"is_null": True},
        {"is_historical": True},
        {"is_transient": True},
        {"datatype": int(T.Float)},
        {"name": ""},
    ):
        assert quick_path(message(**fields), certificate) is None, fields
    twice = pb.Payload(seq=1, metrics=[pb.Payload.Metric(alias=1, double_value=v) for v in (1, 2)])
    assert quick_path(twice.SerializeToString(), certificate) is None  # one name, one time
    assert quick_path(b"\xff\xff", certificate) is None
    assert quick_path(pb.Payload(metrics=[]).SerializeToString(), certificate) is None  # no seq


COLUMN_TYPES = [T.Double, T.Float, T.Boolean]


@st.composite
def homogeneous(draw: st.DrawFn) -> tuple[Certificate, bytes, bool]:
    """A birth of Float, Double or Boolean metrics and a data message of some of them, mostly
    in one field and named alike (what the column-wise way reads), sometimes not quite. And
    whether the message should be read column-wise."""
    kind = draw(st.sampled_from(COLUMN_TYPES))
    size = draw(st.integers(1, 8))
    birth = [Metric(f"m{k}", k + 1, None, kind) for k in range(size)]
    if draw(st.booleans()):
        birth.append(Metric("other", 100, None, draw(st.sampled_from(TYPES))))
    certificate = Certificate.of(birth)
    chosen = draw(st.lists(st.sampled_from(birth), min_size=1, max_size=12))
    by_alias = draw(st.booleans())
    typed = draw(st.booleans())  # a sender sends data types with every metric or with none
    stamp = draw(st.none() | st.sampled_from([0, RECEIVED + 3]))
    metrics = []
    for metric in chosen:
        wire = pb.Payload.Metric()
        if by_alias:
            wire.alias = metric.alias or 0
        else:
            wire.name = metric.name or ""
        other_field, other_values = PLAIN[metric.datatype]
        setattr(wire, other_field, draw(other_values))
        if typed:
            wire.datatype = int(metric.datatype)
        if stamp is not None:
            wire.timestamp = stamp
        metrics.append(wire)
    odd = False
    if metrics and draw(st.integers(0, 3)) == 0:  # spoil one metric
        spoilt = draw(st.sampled_from(metrics))
        how = draw(st.sampled_from(["null", "historical", "quality", "stamp", "type", "name"]))
        odd = True
        if how == "null":
            spoilt.is_null = True
        elif how == "historical":
            spoilt.is_historical = True
        elif how == "quality":
            spoilt.properties.keys.append("Quality")
            spoilt.properties.values.add(type=int(T.Int32), int_value=500)
        elif how == "stamp":
            spoilt.timestamp = RECEIVED + 11
        elif how == "type":
            spoilt.datatype = int(T.Int64)
        else:
            spoilt.name = "m0" if by_alias else "nobody"
    data = pb.Payload(seq=9, timestamp=RECEIVED - 3, metrics=metrics).SerializeToString()
    unique = len({m.name for m in chosen}) == len(chosen)
    plain = all(m.datatype == kind for m in chosen) and unique and not odd
    return certificate, data, plain


@settings(max_examples=800, deadline=None)
@given(homogeneous())
def test_column_wise_reads_what_the_full_path_reads(case: tuple[Certificate, bytes, bool]) -> None:
    certificate, data, plain = case
    count = len(pb.Payload.FromString(data).metrics)
    columns = _column_wise(data, count, certificate.plan(), RECEIVED - 3)
    if plain:
        assert columns is not None  # one field, named alike, nothing odd: read column-wise
    quick = quick_path(data, certificate)
    if columns is not None:  # what quick_samples answers, as the full path reads it
        assert repr(columns) == repr(quick_samples(data, certificate.plan(), RECEIVED - 3)[1])  # type: ignore[index]
    if quick is not None:
        assert repr(quick) == repr(full_path(data, certificate))

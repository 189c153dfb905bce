"""The Sparkplug B codec: every data type round-tripped, signed integers and packed arrays
checked on the wire against the specification's examples, the forms other implementations
send, and every refusal with its reason."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.codec import (
    MAX_DEPTH,
    MAX_METRICS,
    decode_payload,
    encode_payload,
)
from plantwire.telemetry.sparkplug.model import (
    ARRAY_TYPES,
    BASIC_TYPES,
    METRIC_TYPES,
    DataSet,
    DataType,
    MetaData,
    Metric,
    Parameter,
    Payload,
    PropertyValue,
    Template,
)

T = DataType
WHEN = datetime(2009, 10, 21, 5, 27, 55, 335_000, tzinfo=UTC)  # 1256102875335 ms

#: one or more values of every metric data type, edges included
VALUES: list[tuple[DataType, Any]] = [
    (T.Int8, -128),
    (T.Int8, -1),
    (T.Int8, 127),
    (T.Int16, -32768),
    (T.Int16, -2),
    (T.Int32, -(2**31)),
    (T.Int32, -1),
    (T.Int32, 2**31 - 1),
    (T.Int64, -(2**63)),
    (T.Int64, -1),
    (T.Int64, 2**63 - 1),
    (T.UInt8, 255),
    (T.UInt16, 65535),
    (T.UInt32, 2**32 - 1),
    (T.UInt64, 2**64 - 1),
    (T.Float, 1.5),
    (T.Float, -math.inf),
    (T.Double, math.pi),
    (T.Double, -0.0),
    (T.Boolean, True),
    (T.Boolean, False),
    (T.String, "héllo wörld ✓"),
    (T.String, ""),
    (T.DateTime, WHEN),
    (T.Text, "line one\nline two"),
    (T.UUID, "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
    (T.Bytes, b"\x00\xffraw"),
    (T.File, b"%PDF-1.7"),
    (T.Int8Array, [-23, 123]),
    (T.Int16Array, [-30000, 30000]),
    (T.Int32Array, [-1, 315338746]),
    (T.Int64Array, [-4270929666821191986, -3601064768563266876]),
    (T.UInt8Array, [23, 250]),
    (T.UInt16Array, [30, 52360]),
    (T.UInt32Array, [52, 3293969225]),
    (T.UInt64Array, [52, 16444743074749521625]),
    (T.FloatArray, [1.25, -89.5]),
    (T.DoubleArray, [12.354213, 1022.9123213]),
    (
        T.BooleanArray,
        [False, False, True, True, False, True, False, False, True, True, False, True],
    ),
    (T.BooleanArray, []),
    (T.StringArray, ["ABC", "hello"]),
    (T.StringArray, ["", "ünï", ""]),
    (T.StringArray, []),
    (T.DateTimeArray, [WHEN, datetime(2022, 6, 24, 21, 57, 55, tzinfo=UTC)]),
    (
        T.DataSet,
        DataSet(
            ["id", "name", "at"],
            [T.Int32, T.String, T.DateTime],
            [[-1, "a", WHEN], [None, "b", None]],
        ),
    ),
    (
        T.Template,
        Template(
            metrics=[Metric(name="speed", datatype=T.Float, value=2.5)],
            parameters=[Parameter("unit", T.String, "rpm"), Parameter("max", T.Int16, None)],
            version="1.0",
            template_ref="Motor",
        ),
    ),
]


def round_trip(payload: Payload, **kwargs: Any) -> Payload:
    return decode_payload(encode_payload(payload), **kwargs)


def proto_of(payload: Payload) -> pb.Payload:
    return pb.Payload.FromString(encode_payload(payload))


def reason(data: bytes | Payload, **kwargs: Any) -> str:
    """The reason a payload is refused: bytes by the decoder, a Payload by the encoder."""
    work = encode_payload if isinstance(data, Payload) else decode_payload
    with pytest.raises(PayloadError) as caught:
        work(data, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def raw_metric(**fields: Any) -> bytes:
    """A payload of one metric built straight in protobuf (what other encoders may send)."""
    return pb.Payload(timestamp=1, seq=0, metrics=[pb.Payload.Metric(**fields)]).SerializeToString()


@pytest.mark.parametrize(("datatype", "value"), VALUES, ids=lambda v: getattr(v, "name", None))
def test_every_data_type_round_trips(datatype: DataType, value: Any) -> None:
    metric = Metric(name="m", alias=7, timestamp=1_764_500_000_000, datatype=datatype, value=value)
    payload = Payload(timestamp=1_764_500_000_001, metrics=[metric], seq=3)
    assert round_trip(payload) == payload
    null = Payload(metrics=[Metric(name="m", datatype=datatype, value=None)])
    assert round_trip(null).metrics[0].is_null


def test_every_metric_data_type_is_covered() -> None:
    assert {datatype for datatype, _ in VALUES} == METRIC_TYPES


@pytest.mark.parametrize(
    ("datatype", "value", "wire"),
    [
        (T.Int8, -1, 255),
        (T.Int8, -128, 128),
        (T.Int16, -30000, 35536),
        (T.Int32, -1, 2**32 - 1),
        (T.Int64, -1, 2**64 - 1),
        (T.Int64, -(2**63), 2**63),
        (T.UInt32, 2**32 - 1, 2**32 - 1),
    ],
)
def test_signed_integers_are_twos_complement_of_their_width(
    datatype: DataType, value: int, wire: int
) -> None:
    metric = proto_of(Payload(metrics=[Metric(name="i", datatype=datatype, value=value)])).metrics[
        0
    ]
    field = "long_value" if datatype in (T.Int64, T.UInt64) else "int_value"
    assert metric.WhichOneof("value") == field
    assert getattr(metric, field) == wire
    decoded = decode_payload(raw_metric(name="i", datatype=datatype, **{field: wire}))
    assert decoded.metrics[0].value == value


@pytest.mark.parametrize(
    ("datatype", "fields", "value"),
    [
        # Eclipse Tahu's Java encoder sign-extends Int8/Int16/Int32 to 32 bits ...
        (T.Int8, {"int_value": 2**32 - 1}, -1),
        (T.Int8, {"int_value": 2**32 - 128}, -128),
        (T.Int16, {"int_value": 2**32 - 30000}, -30000),
        # ... and writes UInt32 in long_value
        (T.UInt32, {"long_value": 2**32 - 1}, 2**32 - 1),
        # a small type in long_value, sign-extended to 64 bits
        (T.Int16, {"long_value": 2**64 - 2}, -2),
        (T.Int32, {"long_value": 7}, 7),
    ],
)
def test_integers_as_other_encoders_send_them(
    datatype: DataType, fields: dict[str, int], value: int
) -> None:
    assert decode_payload(raw_metric(datatype=datatype, **fields)).metrics[0].value == value


@pytest.mark.parametrize(
    ("datatype", "value", "packed"),
    [  # the specification's examples ("Datatype Details", array types) ...
        (T.Int8Array, [-23, 123], "e97b"),  # (it prints 0xEF, which is -17, for -23)
        (T.Int16Array, [-30000, 30000], "d08a3075"),
        (T.Int32Array, [-1, 315338746], "fffffffffaafcb12"),
        (
            T.Int64Array,
            [-4270929666821191986, -3601064768563266876],
            "ce0672ac189cbac4c4ba9c18ac7206ce",
        ),
        (T.UInt8Array, [23, 250], "17fa"),
        (T.UInt16Array, [30, 52360], "1e0088cc"),
        (T.UInt32Array, [52, 3293969225], "3400000049fb55c4"),
        (T.UInt64Array, [52, 16444743074749521625], "3400000000000000d99e02d1b27637e4"),
        (
            T.BooleanArray,
            [False, False, True, True, False, True, False, False, True, True, False, True],
            "0c00000034d0",
        ),
        (T.StringArray, ["ABC", "hello"], "4142430068656c6c6f00"),
        # ... and the text's little-endian packing where its examples are garbled
        (T.FloatArray, [1.25, -89.5], "0000a03f0000b3c2"),
        (T.DoubleArray, [0.5], "000000000000e03f"),
        (T.DateTimeArray, [WHEN], "c7d0907524010000"),
    ],
)
def test_arrays_are_packed_as_the_specification_says(
    datatype: DataType, value: list[Any], packed: str
) -> None:
    metric = proto_of(Payload(metrics=[Metric(name="a", datatype=datatype, value=value)])).metrics[
        0
    ]
    assert metric.bytes_value.hex() == packed
    assert (
        decode_payload(raw_metric(datatype=datatype, bytes_value=bytes.fromhex(packed)))
        .metrics[0]
        .value
        == value
    )


def test_a_boolean_array_s_padding_bits_are_ignored() -> None:
    data = raw_metric(datatype=T.BooleanArray, bytes_value=bytes.fromhex("03000000ff"))
    assert decode_payload(data).metrics[0].value == [True, True, True]


def test_float_is_32_bit_double_is_64_bit() -> None:
    metric = decode_payload(raw_metric(datatype=T.Float, float_value=0.1)).metrics[0]
    assert metric.value != 0.1
    assert metric.value == pytest.approx(0.1)
    nan = round_trip(Payload(metrics=[Metric(datatype=T.Double, value=math.nan)])).metrics[0]
    assert isinstance(nan.value, float)
    assert math.isnan(nan.value)


def test_properties_metadata_and_flags_round_trip() -> None:
    properties = {
        "Quality": PropertyValue(T.Int32, 500),
        "engUnit": PropertyValue(T.String, "°C"),
        "limits": PropertyValue(
            T.PropertySet,
            {"low": PropertyValue(T.Double, -5.0), "high": PropertyValue(T.Double, None)},
        ),
        "history": PropertyValue(T.PropertySetList, [{"at": PropertyValue(T.DateTime, WHEN)}, {}]),
        "empty": PropertyValue(T.PropertySetList, []),
        "no keys": PropertyValue(T.PropertySet, {}),
        "nothing": PropertyValue(T.Boolean, None),
    }
    metric = Metric(
        name="file",
        alias=2**64 - 1,
        timestamp=0,
        datatype=T.File,
        value=b"contents",
        is_historical=True,
        is_transient=True,
        properties=properties,
        metadata=MetaData(is_multi_part=False, size=8, seq=0, file_name="a.txt", md5="x"),
    )
    payload = Payload(timestamp=0, metrics=[metric], seq=255, uuid="schema-1", body=b"")
    assert round_trip(payload) == payload
    assert (
        round_trip(Payload(metrics=[Metric(datatype=T.Bytes, value=b"", metadata=MetaData())]))
        .metrics[0]
        .metadata
        == MetaData()
    )


def test_templates_nest_and_definitions_may_leave_values_out() -> None:
    definition = Template(
        metrics=[
            Metric(
                name="inner",
                datatype=T.Template,
                value=Template(
                    metrics=[Metric(name="x", datatype=T.Int64Array, value=[1, -1])],
                    template_ref="Inner",
                ),
            ),
            Metric(name="table", datatype=T.DataSet, value=DataSet([], [], [])),
        ],
        is_definition=True,
        version="2",
    )
    payload = Payload(metrics=[Metric(name="Motor", datatype=T.Template, value=definition)])
    assert round_trip(payload) == payload
    # a member of a definition without a value (no default) is null, not an error
    member = pb.Payload.Metric(name="speed", datatype=T.Float)
    data = raw_metric(
        name="Motor",
        datatype=T.Template,
        template_value=pb.Payload.Template(is_definition=True, metrics=[member]),
    )
    assert decode_payload(data).metrics[0].value == Template(
        metrics=[Metric(name="speed", datatype=T.Float)], is_definition=True
    )
    # ... but in an instance it is
    data = raw_metric(
        name="m1",
        datatype=T.Template,
        template_value=pb.Payload.Template(template_ref="Motor", metrics=[member]),
    )
    assert reason(data) == "value"


def test_metrics_without_a_datatype_take_the_birth_s() -> None:
    birth: dict[int | str, DataType] = {7: T.Int16, "Temp": T.Float}
    data = pb.Payload(
        seq=1,
        metrics=[
            pb.Payload.Metric(alias=7, int_value=65535),
            pb.Payload.Metric(name="Temp", float_value=1.5),
        ],
    ).SerializeToString()
    decoded = decode_payload(data, datatypes=birth)
    assert [(m.datatype, m.value) for m in decoded.metrics] == [(T.Int16, -1), (T.Float, 1.5)]
    assert reason(data) == "datatype"
    # and they can be sent that way
    without = encode_payload(decoded, include_datatypes=False)
    assert not pb.Payload.FromString(without).metrics[0].HasField("datatype")
    assert decode_payload(without, datatypes=birth) == decoded


def test_null_metrics_carry_no_value() -> None:
    metric = proto_of(Payload(metrics=[Metric(alias=1, datatype=T.Int32)])).metrics[0]
    assert metric.is_null
    assert metric.WhichOneof("value") is None
    # a value sent beside is_null is not taken
    assert (
        decode_payload(raw_metric(datatype=T.Int32, is_null=True, int_value=5)).metrics[0].is_null
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xff\xff", "protobuf"),
        (b"\x12\x05\x0a\x03ab", "protobuf"),  # a metric cut short
        (pb.Payload(seq=256).SerializeToString(), "value"),
        (pb.Payload(uuid="ab").SerializeToString().replace(b"ab", b"\xc3\x28"), "value"),
        (raw_metric(datatype=99, int_value=1), "datatype"),
        (raw_metric(datatype=T.PropertySet, int_value=1), "datatype"),
        (raw_metric(datatype=T.Unknown, int_value=1), "datatype"),
        (raw_metric(int_value=1), "datatype"),
        (raw_metric(datatype=T.Float, double_value=1.0), "datatype"),
        (raw_metric(datatype=T.Double, float_value=1.0), "datatype"),
        (raw_metric(datatype=T.Int32, string_value="1"), "datatype"),
        (raw_metric(datatype=T.Int64, int_value=1), "datatype"),
        (raw_metric(datatype=T.DateTime, int_value=1), "datatype"),
        (raw_metric(datatype=T.String, bytes_value=b"x"), "datatype"),
        (raw_metric(datatype=T.Bytes, string_value="x"), "datatype"),
        (raw_metric(datatype=T.Int8Array, string_value="x"), "datatype"),
        (raw_metric(datatype=T.DataSet, int_value=1), "datatype"),
        (raw_metric(datatype=T.Template, int_value=1), "datatype"),
        (
            raw_metric(datatype=T.Int32, extension_value=pb.Payload.Metric.MetricValueExtension()),
            "datatype",
        ),
        (raw_metric(datatype=T.Int32), "value"),
        (raw_metric(datatype=T.Int8, int_value=256), "value"),
        (raw_metric(datatype=T.Int8, int_value=2**32 - 129), "value"),
        (raw_metric(datatype=T.UInt8, int_value=256), "value"),
        (raw_metric(datatype=T.UInt32, long_value=2**32), "value"),
        (raw_metric(datatype=T.Int32, long_value=2**40), "value"),
        (raw_metric(datatype=T.DateTime, long_value=2**63), "value"),
        (raw_metric(datatype=T.Int16Array, bytes_value=b"\x01\x02\x03"), "value"),
        (raw_metric(datatype=T.DoubleArray, bytes_value=b"\x00" * 12), "value"),
        (raw_metric(datatype=T.BooleanArray, bytes_value=b"\x01\x00"), "value"),
        (raw_metric(datatype=T.BooleanArray, bytes_value=bytes.fromhex("0900000001")), "value"),
        (raw_metric(datatype=T.BooleanArray, bytes_value=bytes.fromhex("01000000ff00")), "value"),
        (raw_metric(datatype=T.StringArray, bytes_value=b"abc"), "value"),
        (raw_metric(datatype=T.StringArray, bytes_value=b"\xc3\x28\x00"), "value"),
        (raw_metric(datatype=T.DateTimeArray, bytes_value=b"\xff" * 8), "value"),
        (raw_metric(name="ab", datatype=T.Int8, int_value=1), None),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(data: bytes, expected: str | None) -> None:
    if expected is None:
        decode_payload(data)
    else:
        assert reason(data) == expected


def _property(**fields: Any) -> bytes:
    values = [pb.Payload.PropertyValue(**fields)]
    return raw_metric(
        datatype=T.Int32, int_value=1, properties=pb.Payload.PropertySet(keys=["p"], values=values)
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"int_value": 500}, PropertyValue(T.Int32, 500)),
        ({"int_value": 2**32 - 1}, PropertyValue(T.Int32, -1)),
        ({"long_value": 2**64 - 2}, PropertyValue(T.Int64, -2)),
        ({"float_value": 0.5}, PropertyValue(T.Float, 0.5)),
        ({"double_value": 0.1}, PropertyValue(T.Double, 0.1)),
        ({"boolean_value": True}, PropertyValue(T.Boolean, True)),
        ({"string_value": "°C"}, PropertyValue(T.String, "°C")),
        ({"propertyset_value": {}}, PropertyValue(T.PropertySet, {})),
        ({"propertysets_value": {}}, PropertyValue(T.PropertySetList, [])),
    ],
)
def test_properties_without_a_type_take_their_field_s(
    fields: dict[str, Any], expected: PropertyValue
) -> None:
    """Outside births a property may come without its type (the Quality in an NDATA, say)."""
    assert decode_payload(_property(**fields)).metrics[0].properties == {"p": expected}


def test_bad_properties_datasets_and_templates_are_refused() -> None:
    assert reason(_property(type=T.Int32)) == "value"  # neither null nor a value
    assert reason(_property(type=T.Template, int_value=1)) == "datatype"
    assert reason(_property(type=0)) == "datatype"  # no type, no value
    assert reason(_property(type=0, is_null=True)) == "datatype"
    assert reason(_property(type=0, extension_value={})) == "datatype"
    assert reason(_property(type=T.PropertySet, int_value=1)) == "datatype"
    assert reason(_property(type=T.String, int_value=1)) == "datatype"
    assert reason(_property(type=T.Int8, int_value=300)) == "value"
    keys_only = pb.Payload.PropertySet(
        keys=["a", "b"], values=[pb.Payload.PropertyValue(type=T.Int32, is_null=True)]
    )
    assert reason(raw_metric(datatype=T.Int32, int_value=1, properties=keys_only)) == "shape"
    twice = pb.Payload.PropertySet(
        keys=["a", "a"], values=[pb.Payload.PropertyValue(type=T.Int32, is_null=True)] * 2
    )
    assert reason(raw_metric(datatype=T.Int32, int_value=1, properties=twice)) == "shape"

    def dataset(**fields: Any) -> bytes:
        return raw_metric(datatype=T.DataSet, dataset_value=pb.Payload.DataSet(**fields))

    row = pb.Payload.DataSet.Row(elements=[pb.Payload.DataSet.DataSetValue(int_value=1)])
    assert decode_payload(
        dataset(num_of_columns=1, columns=["a"], types=[T.Int8], rows=[row])
    ).metrics[0].value == DataSet(["a"], [T.Int8], [[1]])
    assert reason(dataset(num_of_columns=2, columns=["a"], types=[T.Int8])) == "shape"
    assert reason(dataset(columns=["a", "b"], types=[T.Int8])) == "shape"
    assert reason(dataset(columns=["a", "b"], types=[T.Int8, T.Int8], rows=[row])) == "shape"
    assert reason(dataset(columns=["a"], types=[T.Bytes])) == "datatype"
    assert reason(dataset(columns=["a"], types=[T.String], rows=[row])) == "datatype"
    assert reason(dataset(columns=["a"], types=[77])) == "datatype"

    def template(*parameters: pb.Payload.Template.Parameter) -> bytes:
        return raw_metric(
            datatype=T.Template, template_value=pb.Payload.Template(parameters=parameters)
        )

    assert reason(template(pb.Payload.Template.Parameter(type=T.Int8, int_value=1))) == "shape"
    assert reason(template(pb.Payload.Template.Parameter(name="p", type=T.File))) == "datatype"
    assert (
        reason(template(pb.Payload.Template.Parameter(name="p", type=T.Int8, int_value=999)))
        == "value"
    )
    assert decode_payload(template(pb.Payload.Template.Parameter(name="p", type=T.Int8))).metrics[
        0
    ].value == Template(parameters=[Parameter("p", T.Int8)])


def test_size_limits() -> None:
    many = pb.Payload(
        metrics=[pb.Payload.Metric(datatype=T.Boolean, boolean_value=True)] * (MAX_METRICS + 1)
    )
    assert reason(many.SerializeToString()) == "size"
    assert (
        len(
            decode_payload(
                pb.Payload(metrics=many.metrics[:MAX_METRICS]).SerializeToString()
            ).metrics
        )
        == MAX_METRICS
    )
    deep = Metric(datatype=T.Int8, value=1)
    for _ in range(MAX_DEPTH):
        deep = Metric(datatype=T.Template, value=Template(metrics=[deep]))
    assert reason(Payload(metrics=[deep])) == "size"
    too_deep = pb.Payload.Metric(datatype=T.Int8, int_value=1)
    for _ in range(MAX_DEPTH):
        too_deep = pb.Payload.Metric(
            datatype=T.Template, template_value=pb.Payload.Template(metrics=[too_deep])
        )
    assert reason(pb.Payload(metrics=[too_deep]).SerializeToString()) == "size"
    nested: dict[str, PropertyValue] = {}
    for _ in range(MAX_DEPTH + 1):
        nested = {"p": PropertyValue(T.PropertySet, nested)}
    assert reason(Payload(metrics=[Metric(datatype=T.Int8, value=1, properties=nested)])) == "size"


@pytest.mark.parametrize(
    "metric",
    [
        Metric(datatype=T.Int8, value=128),
        Metric(datatype=T.Int8, value=True),
        Metric(datatype=T.UInt64, value=-1),
        Metric(datatype=T.UInt8Array, value=[256]),
        Metric(datatype=T.Int32Array, value=[1.0]),
        Metric(datatype=T.FloatArray, value=[1]),
        Metric(datatype=T.FloatArray, value=[1e300]),
        Metric(datatype=T.Float, value=1e300),
        Metric(datatype=T.Float, value="1"),
        Metric(datatype=T.Boolean, value=1),
        Metric(datatype=T.String, value=b"x"),
        Metric(datatype=T.String, value="\ud800"),
        Metric(datatype=T.StringArray, value=["a\0b"]),
        Metric(datatype=T.StringArray, value="ab"),
        Metric(datatype=T.DateTime, value=datetime(1969, 12, 31, tzinfo=UTC)),
        Metric(datatype=T.DateTime, value=0),
        Metric(datatype=T.Bytes, value="x"),
        Metric(datatype=T.DataSet, value=DataSet(["a"], [], [])),
        Metric(datatype=T.DataSet, value=DataSet(["a"], [T.Int8], [[1, 2]])),
        Metric(datatype=T.DataSet, value=DataSet(["a"], [T.Bytes], [])),
        Metric(datatype=T.DataSet, value=[]),
        Metric(datatype=T.Template, value=Template(parameters=[Parameter("p", T.Template)])),
        Metric(datatype=T.Template, value=1),
        Metric(datatype=T.Unknown, value=1),
        Metric(datatype=T.PropertySet, value=1),
        Metric(datatype=T.Int8, value=1, alias=-1),
        Metric(datatype=T.Int8, value=1, timestamp=2**64),
        Metric(datatype=T.Int8, value=1, properties={"p": PropertyValue(T.File, 1)}),
        Metric(datatype=T.Int8, value=1, properties={"p": PropertyValue(T.PropertySet, [])}),
        Metric(datatype=T.Int8, value=1, properties={"p": PropertyValue(T.Int8, {})}),
    ],
    ids=repr,
)
def test_the_encoder_refuses_what_its_type_cannot_carry(metric: Metric) -> None:
    assert reason(Payload(metrics=[metric])) in {"value", "datatype", "shape"}


def test_the_encoder_checks_the_payload_fields() -> None:
    assert reason(Payload(seq=256)) == "value"
    assert reason(Payload(timestamp=-1)) == "value"


def test_basic_and_array_types_are_what_the_specification_lists() -> None:
    assert {t.name for t in BASIC_TYPES} == {
        "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
        "Float", "Double", "Boolean", "String", "DateTime", "Text",
    }  # fmt: skip
    assert len(ARRAY_TYPES) == 13
    assert [t.value for t in DataType] == list(range(35))
    assert {t.name: t.value for t in DataType} == dict(pb.DataType.items())


def test_errors_say_where_the_fault_is() -> None:
    member = pb.Payload.Metric(name="speed", datatype=T.Int8, int_value=300)
    template = pb.Payload.Template(template_ref="Motor", metrics=[member])
    with pytest.raises(PayloadError) as caught:
        decode_payload(raw_metric(name="Motor 1", datatype=T.Template, template_value=template))
    assert caught.value.detail == "metric 'Motor 1': metric 'speed': 300 is out of the Int8 range"
    with pytest.raises(PayloadError) as caught:
        encode_payload(Payload(metrics=[Metric(alias=4, datatype=T.UInt8, value=-1)]))
    assert caught.value.detail == "metric alias 4: -1 is out of the UInt8 range"

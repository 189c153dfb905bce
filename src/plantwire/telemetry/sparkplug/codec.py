"""Sparkplug B payloads: bytes → `Payload` and back (sans-I/O).

`decode_payload` parses the protobuf (schema: ``sparkplug_b.proto`` beside this module) and
checks every value against its data type; `encode_payload` is the reverse. Values are typed
as `plantwire.telemetry.sparkplug.model` says. Anything wrong raises `PayloadError` (the JSON
decoder's error, so ingest counts and dead-letters both alike) with one of these reasons, and
a detail that says where (``metric 'Motor': metric 'speed': 300 is out of the Int8 range``):

=============  ==========================================================================
reason         the payload …
=============  ==========================================================================
``protobuf``   is not a Sparkplug B protobuf message
``datatype``   has a data type number that does not exist or is not allowed where it is
               (a metric of type PropertySet, a DataSet column of type Template…), a value
               in the wrong field for its type (a Float in ``int_value``), or a metric
               without a data type that ``datatypes`` does not know either
``value``      has a metric or property that is neither null nor has a value, an integer
               out of its type's range, packed array bytes of the wrong length, a string
               that is not UTF-8, a DateTime beyond the year 9999, or a ``seq`` over 255
``shape``      has property keys and values of different counts or a key twice, DataSet
               columns, types and rows of different widths, or a nameless template parameter
``size``       holds more than `MAX_METRICS` metrics (template members included), or
               templates or property sets nested deeper than `MAX_DEPTH`
=============  ==========================================================================

A property sent without a type (the specification requires one in births only) takes the
type its value's field implies: Int32 for ``int_value`` (the Quality property's type), Int64
for ``long_value``, and Float, Double, Boolean, String, PropertySet or PropertySetList.
Integers and where they travel: `plantwire.telemetry.sparkplug.scalars`; arrays:
`plantwire.telemetry.sparkplug.arrays`. Metrics without a data type (allowed outside births)
take theirs from ``datatypes``, by alias and then by name, as the edge node's birth
certificate declared them. A member of a template definition may come without a value (it
has no default): it is null. Everywhere else a metric is null only when it says so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.message import DecodeError

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.arrays import pack_array, unpack_array
from plantwire.telemetry.sparkplug.model import (
    ARRAY_TYPES,
    BASIC_TYPES,
    METRIC_TYPES,
    PROPERTY_TYPES,
    CellValue,
    DataSet,
    DataType,
    MetaData,
    Metric,
    MetricValue,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
)
from plantwire.telemetry.sparkplug.scalars import (
    datatype_of,
    decoded_text,
    misplaced,
    read_scalar,
    text,
    type_name,
    uint64,
    write_scalar,
    wrong_type,
)

__all__ = ["MAX_DEPTH", "MAX_METRICS", "decode_payload", "encode_metric", "encode_payload"]

MAX_METRICS = 10_000  # per payload, template members included
MAX_DEPTH = 16  # templates in templates, property sets in property sets

_BLOB_TYPES = frozenset({DataType.Bytes, DataType.File})
#: the type of a property sent without one (allowed outside births), by its value's field;
#: Int32 for int_value is what the Quality property is
_PROPERTY_FIELD_TYPES = {
    "int_value": DataType.Int32,
    "long_value": DataType.Int64,
    "float_value": DataType.Float,
    "double_value": DataType.Double,
    "boolean_value": DataType.Boolean,
    "string_value": DataType.String,
    "propertyset_value": DataType.PropertySet,
    "propertysets_value": DataType.PropertySetList,
}
_META_TEXT = ("content_type", "file_name", "file_type", "md5", "description")
_META_NUMBERS = ("size", "seq")


def decode_payload(
    data: bytes, *, datatypes: Mapping[int | str, DataType] | None = None
) -> Payload:
    """The payload of one Sparkplug B message (NBIRTH, NDATA, DCMD…; STATE is JSON, not
    this). ``datatypes`` maps aliases (int) and names (str) to the data types an earlier
    birth declared, for metrics sent without one. PayloadError if anything is wrong."""
    try:
        proto = pb.Payload.FromString(data)
    except DecodeError as error:
        raise PayloadError("protobuf", f"not a Sparkplug B payload: {error}") from None
    seq = proto.seq if proto.HasField("seq") else None
    if seq is not None and seq > 255:
        raise PayloadError("value", f"seq {seq} is over 255")
    uuid = None
    if proto.HasField("uuid"):
        uuid = _in("payload uuid", decoded_text, proto.uuid)
    decoder = _Decoder(datatypes or {})
    return Payload(
        timestamp=proto.timestamp if proto.HasField("timestamp") else None,
        metrics=[decoder.metric(metric, 0, False) for metric in proto.metrics],
        seq=seq,
        uuid=uuid,
        body=proto.body if proto.HasField("body") else None,
    )


def encode_payload(payload: Payload, *, include_datatypes: bool = True) -> bytes:
    """The protobuf bytes of a payload. ``include_datatypes=False`` leaves metrics' data types
    out (allowed in data and command messages, whose receiver knows them from the birth).
    PayloadError (reason ``value``, ``datatype``, ``shape`` or ``size``) for a value its data
    type cannot carry."""
    proto = pb.Payload()
    if payload.timestamp is not None:
        proto.timestamp = _in("payload timestamp", uint64, payload.timestamp)
    if payload.seq is not None:
        if type(payload.seq) is not int or not 0 <= payload.seq <= 255:
            raise PayloadError("value", f"seq {payload.seq!r} is not 0-255")
        proto.seq = payload.seq
    if payload.uuid is not None:
        proto.uuid = _in("payload uuid", text, payload.uuid)
    if payload.body is not None:
        proto.body = bytes(payload.body)
    encoder = _Encoder(include_datatypes)
    for metric in payload.metrics:
        encoder.metric(proto.metrics.add(), metric, 0)
    return proto.SerializeToString()


def encode_metric(
    proto: pb.Payload.Metric, metric: Metric, *, include_datatypes: bool = True
) -> None:
    """Fills one protobuf metric (of a payload being built) as `encode_payload` does each
    of its metrics; PayloadError likewise."""
    _Encoder(include_datatypes).metric(proto, metric, 0)


def _in(where: str, convert: Any, value: Any) -> Any:
    """``convert(value)``, its PayloadError told where."""
    try:
        return convert(value)
    except PayloadError as error:
        raise _located(where, error) from None


def _located(where: str, error: PayloadError) -> PayloadError:
    return PayloadError(error.reason, f"{where}: {error.detail}")


def _label(name: str | None, alias: int | None) -> str:
    if name is not None:
        return f"metric {name[:80]!r}"
    return f"metric alias {alias}" if alias is not None else "a metric without name or alias"


# -- decoding ------------------------------------------------------------------------------


class _Decoder:
    __slots__ = ("count", "datatypes")

    def __init__(self, datatypes: Mapping[int | str, DataType]) -> None:
        self.datatypes = datatypes
        self.count = 0

    def metric(self, proto: pb.Payload.Metric, depth: int, in_definition: bool) -> Metric:
        self.count += 1
        if self.count > MAX_METRICS:
            raise PayloadError("size", f"more than {MAX_METRICS} metrics in one payload")
        name = proto.name if proto.HasField("name") else None
        alias = proto.alias if proto.HasField("alias") else None
        try:
            if name is not None:
                name = decoded_text(name)
            datatype = self.metric_type(proto.datatype, name, alias)
            value: MetricValue = None
            if not proto.is_null:
                which = proto.WhichOneof("value")
                if which is not None:
                    value = self.metric_value(proto, which, datatype, depth, in_definition)
                elif not in_definition:
                    raise PayloadError("value", "no value, and it is not null")
            properties: PropertySet = {}
            if proto.HasField("properties"):
                properties = self.properties(proto.properties, depth)
            metadata = _metadata(proto.metadata) if proto.HasField("metadata") else None
        except PayloadError as error:
            if error.reason == "size":
                raise
            raise _located(_label(name, alias), error) from None
        return Metric(
            name,
            alias,
            proto.timestamp if proto.HasField("timestamp") else None,
            datatype,
            value,
            proto.is_historical,
            proto.is_transient,
            properties,
            metadata,
        )

    def metric_type(self, number: int, name: str | None, alias: int | None) -> DataType:
        if number:
            datatype = datatype_of(number)
            if datatype not in METRIC_TYPES:
                raise PayloadError("datatype", f"{datatype.name} is not a metric's type")
            return datatype
        known = self.datatypes.get(alias) if alias is not None else None
        if known is None and name is not None:
            known = self.datatypes.get(name)
        if known is None:
            raise PayloadError("datatype", "no datatype, and the birth gave it none")
        return known

    def metric_value(
        self,
        proto: pb.Payload.Metric,
        which: str,
        datatype: DataType,
        depth: int,
        in_definition: bool,
    ) -> MetricValue:
        if datatype in ARRAY_TYPES or datatype in _BLOB_TYPES:
            if which != "bytes_value":
                raise misplaced(datatype, which)
            if datatype in ARRAY_TYPES:
                return unpack_array(datatype, proto.bytes_value)
            return proto.bytes_value
        if datatype is DataType.DataSet:
            if which != "dataset_value":
                raise misplaced(datatype, which)
            return _dataset(proto.dataset_value)
        if datatype is DataType.Template:
            if which != "template_value":
                raise misplaced(datatype, which)
            return self.template(proto.template_value, depth + 1, in_definition)
        return read_scalar(datatype, which, getattr(proto, which))

    def properties(self, proto: pb.Payload.PropertySet, depth: int) -> PropertySet:
        if depth >= MAX_DEPTH:
            raise PayloadError("size", f"property sets nested over {MAX_DEPTH} deep")
        keys, values = proto.keys, proto.values
        if len(keys) != len(values):
            raise PayloadError("shape", f"{len(keys)} property keys for {len(values)} values")
        result: PropertySet = {}
        for raw_key, value in zip(keys, values, strict=True):
            key = _in("a property key", decoded_text, raw_key)
            if key in result:
                raise PayloadError("shape", f"property {key[:80]!r} given twice")
            try:
                result[key] = self.property_value(value, depth)
            except PayloadError as error:
                raise _located(f"property {key[:80]!r}", error) from None
        return result

    def property_value(self, proto: pb.Payload.PropertyValue, depth: int) -> PropertyValue:
        which = proto.WhichOneof("value")
        if proto.type or which is None:
            datatype = datatype_of(proto.type)
        else:  # a type is required in births only: take the one the value's field implies
            datatype = _PROPERTY_FIELD_TYPES.get(which, DataType.Unknown)
        if datatype not in PROPERTY_TYPES:
            raise PayloadError("datatype", f"{datatype.name} is not a property's type")
        if proto.is_null:
            return PropertyValue(datatype, None)
        if which is None:
            raise PayloadError("value", "no value, and it is not null")
        if datatype is DataType.PropertySet:
            if which != "propertyset_value":
                raise misplaced(datatype, which)
            return PropertyValue(datatype, self.properties(proto.propertyset_value, depth + 1))
        if datatype is DataType.PropertySetList:
            if which != "propertysets_value":
                raise misplaced(datatype, which)
            sets = proto.propertysets_value.propertyset
            return PropertyValue(datatype, [self.properties(s, depth + 1) for s in sets])
        return PropertyValue(datatype, read_scalar(datatype, which, getattr(proto, which)))

    def template(self, proto: pb.Payload.Template, depth: int, in_definition: bool) -> Template:
        if depth >= MAX_DEPTH:
            raise PayloadError("size", f"templates nested over {MAX_DEPTH} deep")
        parameters = []
        for parameter in proto.parameters:
            if not parameter.HasField("name"):
                raise PayloadError("shape", "a template parameter has no name")
            name = _in("a parameter name", decoded_text, parameter.name)
            try:
                datatype = datatype_of(parameter.type)
                if datatype not in BASIC_TYPES:
                    raise PayloadError("datatype", f"{datatype.name} is not a parameter's type")
                parameters.append(Parameter(name, datatype, _cell(datatype, parameter)))
            except PayloadError as error:
                raise _located(f"parameter {name[:80]!r}", error) from None
        is_definition = proto.is_definition
        members = [self.metric(m, depth, in_definition or is_definition) for m in proto.metrics]
        return Template(
            members,
            parameters,
            _in("version", decoded_text, proto.version) if proto.HasField("version") else None,
            (
                _in("template_ref", decoded_text, proto.template_ref)
                if proto.HasField("template_ref")
                else None
            ),
            is_definition,
        )


def _dataset(proto: pb.Payload.DataSet) -> DataSet:
    columns = [_in("a column name", decoded_text, column) for column in proto.columns]
    types = [datatype_of(number) for number in proto.types]
    for datatype in types:
        if datatype not in BASIC_TYPES:
            raise PayloadError("datatype", f"{datatype.name} is not a DataSet column's type")
    width = len(columns)
    if len(types) != width or (proto.HasField("num_of_columns") and proto.num_of_columns != width):
        raise PayloadError(
            "shape",
            f"DataSet of {proto.num_of_columns} columns, {width} names, {len(types)} types",
        )
    rows: list[list[CellValue]] = []
    for row in proto.rows:
        if len(row.elements) != width:
            raise PayloadError("shape", f"a DataSet row of {len(row.elements)} values")
        try:
            rows.append([_cell(t, cell) for t, cell in zip(types, row.elements, strict=True)])
        except PayloadError as error:
            raise _located(f"DataSet row {len(rows)}", error) from None
    return DataSet(columns, types, rows)


def _cell(datatype: DataType, proto: Any) -> CellValue:
    """A DataSet value or a template parameter's value; None when it has none."""
    which = proto.WhichOneof("value")
    return None if which is None else read_scalar(datatype, which, getattr(proto, which))


def _metadata(proto: pb.Payload.MetaData) -> MetaData:
    metadata = MetaData()
    if proto.HasField("is_multi_part"):
        metadata.is_multi_part = proto.is_multi_part
    for name in _META_NUMBERS:
        if proto.HasField(name):
            setattr(metadata, name, getattr(proto, name))
    for name in _META_TEXT:
        if proto.HasField(name):
            setattr(metadata, name, _in(f"metadata {name}", decoded_text, getattr(proto, name)))
    return metadata


# -- encoding ------------------------------------------------------------------------------


class _Encoder:
    __slots__ = ("include_datatypes",)

    def __init__(self, include_datatypes: bool) -> None:
        self.include_datatypes = include_datatypes

    def metric(self, proto: pb.Payload.Metric, metric: Metric, depth: int) -> None:
        try:
            self.metric_fields(proto, metric, depth)
        except PayloadError as error:
            if error.reason == "size":
                raise
            raise _located(_label(metric.name, metric.alias), error) from None

    def metric_fields(self, proto: pb.Payload.Metric, metric: Metric, depth: int) -> None:
        datatype = metric.datatype
        if datatype not in METRIC_TYPES:
            raise PayloadError("datatype", f"{type_name(datatype)} is not a metric's type")
        if metric.name is not None:
            proto.name = text(metric.name)
        if metric.alias is not None:
            proto.alias = uint64(metric.alias)
        if metric.timestamp is not None:
            proto.timestamp = uint64(metric.timestamp)
        if self.include_datatypes:
            proto.datatype = datatype
        if metric.is_historical:
            proto.is_historical = True
        if metric.is_transient:
            proto.is_transient = True
        if metric.metadata is not None:
            _set_metadata(proto.metadata, metric.metadata)
        if metric.properties:
            self.properties(proto.properties, metric.properties, depth)
        value = metric.value
        if value is None:
            proto.is_null = True
        elif datatype in ARRAY_TYPES:
            if not isinstance(value, list | tuple):
                raise wrong_type(datatype, value)
            proto.bytes_value = pack_array(datatype, value)
        elif datatype in _BLOB_TYPES:
            if not isinstance(value, bytes | bytearray):
                raise wrong_type(datatype, value)
            proto.bytes_value = bytes(value)
        elif datatype is DataType.DataSet:
            if not isinstance(value, DataSet):
                raise wrong_type(datatype, value)
            _set_dataset(proto.dataset_value, value)
        elif datatype is DataType.Template:
            if not isinstance(value, Template):
                raise wrong_type(datatype, value)
            self.template(proto.template_value, value, depth + 1)
        else:
            write_scalar(proto, datatype, value)

    def properties(
        self, proto: pb.Payload.PropertySet, properties: PropertySet, depth: int
    ) -> None:
        if depth >= MAX_DEPTH:
            raise PayloadError("size", f"property sets nested over {MAX_DEPTH} deep")
        for key, prop in properties.items():
            proto.keys.append(_in("a property key", text, key))
            try:
                self.property_value(proto.values.add(), prop, depth)
            except PayloadError as error:
                raise _located(f"property {key[:80]!r}", error) from None

    def property_value(
        self, proto: pb.Payload.PropertyValue, prop: PropertyValue, depth: int
    ) -> None:
        datatype, value = prop.type, prop.value
        if datatype not in PROPERTY_TYPES:
            raise PayloadError("datatype", f"{type_name(datatype)} is not a property's type")
        proto.type = datatype
        if value is None:
            proto.is_null = True
        elif datatype is DataType.PropertySet:
            if not isinstance(value, dict):
                raise wrong_type(datatype, value)
            proto.propertyset_value.SetInParent()  # an empty set is still a value
            self.properties(proto.propertyset_value, value, depth + 1)
        elif datatype is DataType.PropertySetList:
            if not isinstance(value, list):
                raise wrong_type(datatype, value)
            sets = proto.propertysets_value
            sets.SetInParent()  # an empty list is still a value
            for item in value:
                if not isinstance(item, dict):
                    raise wrong_type(datatype, item)
                self.properties(sets.propertyset.add(), item, depth + 1)
        elif isinstance(value, dict | list):
            raise wrong_type(datatype, value)
        else:
            write_scalar(proto, datatype, value)

    def template(self, proto: pb.Payload.Template, template: Template, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise PayloadError("size", f"templates nested over {MAX_DEPTH} deep")
        if template.version is not None:
            proto.version = _in("version", text, template.version)
        if template.template_ref is not None:
            proto.template_ref = _in("template_ref", text, template.template_ref)
        proto.is_definition = bool(template.is_definition)
        for parameter in template.parameters:
            item = proto.parameters.add()
            try:
                if parameter.type not in BASIC_TYPES:
                    raise PayloadError(
                        "datatype", f"{type_name(parameter.type)} is not a parameter's type"
                    )
                item.name = text(parameter.name)
                item.type = parameter.type
                if parameter.value is not None:
                    write_scalar(item, parameter.type, parameter.value)
            except PayloadError as error:
                raise _located(f"parameter {parameter.name!r:.80}", error) from None
        for member in template.metrics:
            self.metric(proto.metrics.add(), member, depth)


def _set_dataset(proto: pb.Payload.DataSet, dataset: DataSet) -> None:
    width = len(dataset.columns)
    if len(dataset.types) != width:
        raise PayloadError("shape", f"{width} DataSet columns, {len(dataset.types)} types")
    proto.num_of_columns = width
    for column in dataset.columns:
        proto.columns.append(_in("a column name", text, column))
    for datatype in dataset.types:
        if datatype not in BASIC_TYPES:
            raise PayloadError("datatype", f"{type_name(datatype)} is not a column's type")
        proto.types.append(datatype)
    for number, row in enumerate(dataset.rows):
        if len(row) != width:
            raise PayloadError("shape", f"a DataSet row of {len(row)} values")
        elements = proto.rows.add().elements
        try:
            for datatype, cell in zip(dataset.types, row, strict=True):
                element = elements.add()
                if cell is not None:
                    write_scalar(element, datatype, cell)
        except PayloadError as error:
            raise _located(f"DataSet row {number}", error) from None


def _set_metadata(proto: pb.Payload.MetaData, metadata: MetaData) -> None:
    proto.SetInParent()  # metadata with no field set is still sent
    if metadata.is_multi_part is not None:
        proto.is_multi_part = bool(metadata.is_multi_part)
    for name in _META_NUMBERS:
        value = getattr(metadata, name)
        if value is not None:
            setattr(proto, name, _in(f"metadata {name}", uint64, value))
    for name in _META_TEXT:
        value = getattr(metadata, name)
        if value is not None:
            setattr(proto, name, _in(f"metadata {name}", text, value))

"""A command's value as JSON gives it, in the form the codec takes for the metric's data type
(no I/O). `sparkplug.commands` builds the NCMD/DCMD payload around it.

* The integer types, Boolean, String, Text, UUID: the value as it is (the codec checks it);
  Float and Double a finite number (``2`` is ``2.0``); DateTime epoch milliseconds or ISO
  8601 text with a zone; Bytes and File base64 text; an array type a list of its items'
  values (DateTimeArray items as DateTime).
* DataSet: the object the query API shows for a stored one (`points.structured`),
  ``{"columns": [names], "types": [type names], "rows": [[cells]]}``, or that object's JSON
  text as ``/latest`` shows it. When the birth gave the metric a value, its columns and types
  are the birth's (`shapes.TableShape`): ``columns`` and ``types`` may be left out, and when
  given must be the birth's; else both are needed. Each cell is converted by its column's
  type as a scalar is, or is null (an empty cell).
* Template: likewise the stored form, ``{"template_ref", "version", "is_definition",
  "parameters": [{"name", "type", "value"}], "metrics": [{"name", "alias", "datatype",
  "value"}]}`` or its text: an *instance* of the template the birth declared
  (`shapes.TemplateShape`). Members and parameters go by name, each of the type the birth
  gave it; any subset of them, at least one, may be written (Eclipse Sparkplug 3.0.0,
  "Template": an instance "MUST include only members that were included in the
  corresponding template definition", and outside births need not include all).
  ``template_ref``, ``version``, ``datatype`` and ``type`` may be left out and when given
  must be the birth's; ``alias`` is ignored (members are written by name); ``is_definition``
  must be false. A Template metric born null has no shape: the value then gives
  ``template_ref`` and every member's ``datatype`` and parameter's ``type`` itself.

Errors are `PayloadError` (``value``, or ``size`` for templates nested too deep) whose detail
says where: ``member 'speed': row 0, column 'rpm': 300 is out of the Int8 range``."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Collection
from datetime import datetime
from typing import Any

from plantwire.telemetry.payloads import PayloadError, zoned_time
from plantwire.telemetry.sparkplug import sparkplug_b_pb2 as pb
from plantwire.telemetry.sparkplug.arrays import from_datetime, to_datetime
from plantwire.telemetry.sparkplug.codec import MAX_DEPTH, encode_payload
from plantwire.telemetry.sparkplug.model import (
    ARRAY_TYPES,
    BASIC_TYPES,
    METRIC_TYPES,
    CellValue,
    DataSet,
    DataType,
    Metric,
    MetricValue,
    Parameter,
    Payload,
    Template,
)
from plantwire.telemetry.sparkplug.scalars import write_scalar
from plantwire.telemetry.sparkplug.shapes import Shape, TableShape, TemplateShape

__all__ = ["CommandValue", "native", "unlocated"]

T = DataType
_BLOBS = frozenset({T.Bytes, T.File})
_FLOATS = frozenset({T.Float, T.Double})
_DATASET_FIELDS = ("columns", "types", "rows")
_TEMPLATE_FIELDS = ("template_ref", "version", "is_definition", "parameters", "metrics")
_MEMBER_FIELDS = ("name", "alias", "datatype", "value")
_PARAMETER_FIELDS = ("name", "type", "value")

#: What a command's value may be, as JSON gives it.
CommandValue = bool | int | float | str | list[bool | int | float | str] | dict[str, Any]


def native(
    datatype: DataType, value: Any, shape: Shape | None = None, depth: int = 0
) -> MetricValue:
    """``value`` as JSON gives it, in the form the codec takes for ``datatype``; ``shape`` is
    what the birth declared of a DataSet or Template."""
    if datatype is T.DataSet:
        return _dataset(value, shape if isinstance(shape, TableShape) else None)
    if datatype is T.Template:
        return _template(value, shape if isinstance(shape, TemplateShape) else None, depth)
    if isinstance(value, dict):
        raise PayloadError("value", f"a {datatype.name} value is not an object")
    if datatype in _BLOBS:
        if type(value) is not str:
            raise PayloadError("value", f"a {datatype.name} value is sent as base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise PayloadError("value", "not base64 text") from None
    if datatype in ARRAY_TYPES:
        if not isinstance(value, list):
            raise PayloadError("value", f"a {datatype.name} value is a list")
        if datatype is T.DateTimeArray:
            return [_moment(item) for item in value]
        items: Any = list(value)  # the codec checks each item against the type
        if datatype in (T.FloatArray, T.DoubleArray):  # JSON writes 2.0 as 2
            items = [_number(item, datatype) for item in items]
        return items  # type: ignore[no-any-return]
    if isinstance(value, list):
        raise PayloadError("value", f"a {datatype.name} value is not a list")
    scalar: MetricValue = _basic(datatype, value)
    return scalar


def _basic(datatype: DataType, value: Any) -> Any:
    """A basic type's value (the codec checks the rest)."""
    if datatype is T.DateTime:
        return _moment(value)
    if datatype in _FLOATS:
        return _number(value, datatype)
    return value


def _number(value: Any, datatype: DataType) -> Any:
    """A Float's or Double's value (an item's too): an int made a float; NaN and infinities
    refused (JSON has none: the query API shows them as null)."""
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:  # JSON integers have no bound
            raise PayloadError(
                "value",
                f"an integer of {value.bit_length()} bits is too large for a {datatype.name}",
            ) from None
    if type(value) is float and not math.isfinite(value):
        raise PayloadError("value", "not a finite number")
    return value  # anything else: the codec says it cannot be that


def _moment(value: object) -> datetime:
    """A DateTime from epoch milliseconds or ISO 8601 text with a zone."""
    if type(value) is int:
        return to_datetime(value)
    if type(value) is str:
        return to_datetime(from_datetime(zoned_time(value, "value", "the time")))
    raise PayloadError("value", "a DateTime is epoch milliseconds or ISO 8601 text")


# --- DataSet ---------------------------------------------------------------------------------


def _dataset(value: Any, shape: TableShape | None) -> DataSet:
    fields = _object(value, "a DataSet", _DATASET_FIELDS)
    columns, types = fields.get("columns"), fields.get("types")
    if columns is not None and not _strings(columns):
        raise PayloadError("value", "a DataSet's columns are a list of names")
    if types is not None:
        types = [
            _type_named(name, BASIC_TYPES, "a DataSet column")
            for name in _list(types, "a DataSet's types")
        ]
    if shape is not None:
        if columns is not None and tuple(columns) != shape.columns:
            raise PayloadError(
                "value", f"the birth's DataSet has columns {_brief(list(shape.columns))}"
            )
        if types is not None and tuple(types) != shape.types:
            named = [datatype.name for datatype in shape.types]
            raise PayloadError("value", f"the birth's DataSet columns are of types {_brief(named)}")
        columns, types = list(shape.columns), list(shape.types)
    elif columns is None or types is None:
        raise PayloadError(
            "value",
            "the birth gave this DataSet no columns, so the value gives its columns and types",
        )
    elif len(columns) != len(types):
        raise PayloadError("value", f"a DataSet of {len(columns)} columns and {len(types)} types")
    if "rows" not in fields:
        raise PayloadError("value", "a DataSet has rows (a list of lists of cells)")
    rows: list[list[CellValue]] = []
    for number, row in enumerate(_list(fields["rows"], "a DataSet's rows")):
        if not isinstance(row, list) or len(row) != len(columns):
            raise PayloadError("value", f"row {number} is not a list of {len(columns)} cells")
        rows.append(
            [
                _cell(datatype, cell, f"row {number}, column {name!r:.80}")
                for name, datatype, cell in zip(columns, types, row, strict=True)
            ]
        )
    return DataSet(list(columns), list(types), rows)


def _cell(datatype: DataType, value: Any, where: str) -> CellValue:
    """A DataSet cell's or template parameter's value of a basic type; null stays null."""
    if value is None:
        return None
    try:
        cell = _basic(datatype, value)
        write_scalar(pb.Payload.DataSet.DataSetValue(), datatype, cell)  # the codec's check
    except PayloadError as error:
        raise _at(where, error) from None
    result: CellValue = cell
    return result


# --- Template --------------------------------------------------------------------------------


def _template(value: Any, shape: TemplateShape | None, depth: int) -> Template:
    if depth >= MAX_DEPTH:
        raise PayloadError("size", f"templates nested over {MAX_DEPTH} deep")
    fields = _object(value, "a Template", _TEMPLATE_FIELDS)
    if fields.get("is_definition") not in (None, False):
        raise PayloadError("value", "a command writes a template instance, not a definition")
    ref, version = fields.get("template_ref"), fields.get("version")
    if shape is not None:
        if shape.is_definition:
            raise PayloadError("value", "the birth declares a template definition, not an instance")
        if ref is not None and ref != shape.template_ref:
            raise PayloadError(
                "value", f"the birth's instance is of template {shape.template_ref!r}"
            )
        if version is not None and version != shape.version:
            raise PayloadError("value", f"the birth's template is version {shape.version!r}")
        ref, version = shape.template_ref, shape.version
    elif type(ref) is not str:
        raise PayloadError(
            "value", "the birth gave this Template no value, so the value gives its template_ref"
        )
    elif version is not None and type(version) is not str:
        raise PayloadError("value", "a template's version is a string")
    members = [
        _member(item, shape, depth)
        for item in _list(fields.get("metrics", []), "a template's metrics (its members)")
    ]
    parameters = [
        _parameter(item, shape)
        for item in _list(fields.get("parameters", []), "a template's parameters")
    ]
    for kind, named in (("member", members), ("parameter", parameters)):
        names = [item.name for item in named]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            raise PayloadError("value", f"{kind} {twice!r:.80} is given twice")
    if depth == 0 and not members and not parameters:
        raise PayloadError("value", "the template's value writes no member or parameter")
    return Template(members, parameters, version, ref)


def _member(item: Any, shape: TemplateShape | None, depth: int) -> Metric:
    fields = _object(item, "a template member", _MEMBER_FIELDS, text=False)
    name = _name(fields, "a template member")
    where = f"member {name!r:.80}"
    given = fields.get("datatype")
    alias = fields.get("alias")
    if alias is not None and type(alias) is not int:
        raise PayloadError("value", f"{where}: an alias is an integer")
    inner: Shape | None = None
    if shape is not None:
        declared = next((m for m in shape.members if m.name == name), None)
        if declared is None:
            raise PayloadError("value", f"template {shape.template_ref!r:.80} has no {where}")
        datatype, inner = declared.datatype, declared.shape
        if given is not None and given != datatype.name:
            raise PayloadError("value", f"{where} is {_an(datatype)}, not {_brief(given)}")
    else:
        datatype = _type_named(given, METRIC_TYPES - {T.Unknown}, where)
    if "value" not in fields:
        raise PayloadError("value", f"{where} has no value")
    member = Metric(name=name, datatype=datatype)
    try:
        if fields["value"] is not None:
            member.value = native(datatype, fields["value"], inner, depth + 1)
        if datatype not in (T.DataSet, T.Template):  # else checked above, part by part
            encode_payload(Payload(metrics=[member]))  # the codec's check of the value
    except PayloadError as error:
        raise _at(where, unlocated(error, member)) from None
    return member


def _parameter(item: Any, shape: TemplateShape | None) -> Parameter:
    fields = _object(item, "a template parameter", _PARAMETER_FIELDS, text=False)
    name = _name(fields, "a template parameter")
    where = f"parameter {name!r:.80}"
    given = fields.get("type")
    if shape is not None:
        declared = dict(shape.parameters).get(name)
        if declared is None:
            raise PayloadError("value", f"template {shape.template_ref!r:.80} has no {where}")
        if given is not None and given != declared.name:
            raise PayloadError("value", f"{where} is {_an(declared)}, not {_brief(given)}")
    else:
        declared = _type_named(given, BASIC_TYPES, where)
    return Parameter(name, declared, _cell(declared, fields.get("value"), where))


# --- JSON ------------------------------------------------------------------------------------


def _object(value: Any, what: str, fields: tuple[str, ...], *, text: bool = True) -> dict[str, Any]:
    """``value`` as an object of ``fields`` at most; with ``text``, also its JSON text (the
    query API shows a stored DataSet or Template as such)."""
    if text and isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise PayloadError("value", f"{what} given as text is not JSON") from None
    if not isinstance(value, dict):
        shown = "the JSON text of an object, or an object" if text else "an object"
        raise PayloadError("value", f"{what} is {shown}, not {_kind(value)}")
    unknown = next((key for key in value if key not in fields), None)
    if unknown is not None:
        raise PayloadError(
            "value", f"{what} has no field {unknown!r:.80} (it has {', '.join(fields)})"
        )
    return value


def _name(fields: dict[str, Any], what: str) -> str:
    name = fields.get("name")
    if type(name) is not str:
        raise PayloadError("value", f"{what} has a name (a string)")
    return name


def _type_named(name: Any, allowed: Collection[DataType], where: str) -> DataType:
    datatype = DataType.__members__.get(name) if type(name) is str else None
    if datatype is None:
        raise PayloadError("value", f"{where}: {_brief(name)} is not a data type's name")
    if datatype not in allowed:
        raise PayloadError("value", f"{where} cannot be of type {datatype.name}")
    return datatype


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError("value", f"{what} are a list, not {_kind(value)}")
    return value


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(type(item) is str for item in value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _an(datatype: DataType) -> str:
    return f"{'an' if datatype.name.startswith('Int') else 'a'} {datatype.name}"


def _brief(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def unlocated(error: PayloadError, metric: Metric) -> PayloadError:
    """The codec's error about ``metric`` without the codec's "metric …: " before it."""
    label = (
        f"metric {metric.name[:80]!r}"
        if metric.name is not None
        else f"metric alias {metric.alias}"
    )
    return PayloadError(error.reason, error.detail.removeprefix(f"{label}: "))


def _at(where: str, error: PayloadError) -> PayloadError:
    return PayloadError(error.reason, f"{where}: {error.detail}")

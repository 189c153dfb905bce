"""A Sparkplug B payload as plain typed values (no I/O, no protobuf).

Eclipse Sparkplug 3.0.0, chapter 6 "Payloads": a payload holds metrics; a metric has a name
(in births) or an alias (in data and commands), a timestamp, a data type and a value, plus
flags, properties and metadata. `plantwire.telemetry.sparkplug.codec` turns bytes into these
and back. They are plain dataclasses with slots (not frozen: building thousands a message is
the decoder's hot path, and frozen ones cost twice as much to make).

Values by data type (what `Metric.value` holds; ``None`` is a null value):

==================================================  ======================================
data type                                           Python value
==================================================  ======================================
Int8, Int16, Int32, Int64, UInt8 … UInt64           ``int`` (negative for the signed types)
Float, Double                                       ``float`` (Float: a 32-bit float's value)
Boolean                                             ``bool``
String, Text, UUID                                  ``str``
DateTime                                            ``datetime`` in UTC, whole milliseconds
Bytes, File                                         ``bytes`` (a file's name is in metadata)
Int8Array … UInt64Array                             ``list[int]``
FloatArray, DoubleArray                             ``list[float]``
BooleanArray                                        ``list[bool]``
StringArray                                         ``list[str]``
DateTimeArray                                       ``list[datetime]``
DataSet                                             `DataSet`
Template                                            `Template`
==================================================  ======================================

Property values (`PropertyValue`) take the basic types (Int8 … Text) and also PropertySet (a
``dict[str, PropertyValue]``) and PropertySetList (a list of those)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

__all__ = [
    "ARRAY_TYPES",
    "BASIC_TYPES",
    "METRIC_TYPES",
    "PROPERTY_TYPES",
    "QUALITY_BAD",
    "QUALITY_GOOD",
    "QUALITY_PROPERTY",
    "QUALITY_STALE",
    "ArrayValue",
    "CellValue",
    "DataSet",
    "DataType",
    "MetaData",
    "Metric",
    "MetricValue",
    "Parameter",
    "Payload",
    "PropertySet",
    "PropertyValue",
    "Template",
]


class DataType(IntEnum):
    """The Sparkplug data types ("Data Types"; numbers as on the wire)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


#: "Basic types": what DataSet columns and Template parameters may be.
BASIC_TYPES = frozenset(DataType(number) for number in range(1, 15))
ARRAY_TYPES = frozenset(DataType(number) for number in range(22, 35))
#: What a metric may be (PropertySet and PropertySetList are for properties only).
METRIC_TYPES = (
    BASIC_TYPES
    | ARRAY_TYPES
    | {
        DataType.UUID,
        DataType.DataSet,
        DataType.Bytes,
        DataType.File,
        DataType.Template,
    }
)
#: What a property value may be ("Sparkplug Basic Data Types" and "Property Value Types").
PROPERTY_TYPES = BASIC_TYPES | {DataType.PropertySet, DataType.PropertySetList}

#: The property that carries a metric's quality ("Quality Codes"), an Int32 of one of:
QUALITY_PROPERTY = "Quality"
QUALITY_BAD = 0
QUALITY_GOOD = 192
QUALITY_STALE = 500

#: A DataSet cell or a Template parameter: a basic type's value, or None (null).
CellValue = int | float | bool | str | datetime | None
ArrayValue = list[int] | list[float] | list[bool] | list[str] | list[datetime]
#: A PropertySet: property values by key, in the order sent.
PropertySet = dict[str, "PropertyValue"]


@dataclass(slots=True)
class PropertyValue:
    """A property of a metric ("PropertyValue"): a basic type's value, a nested `PropertySet`
    (type PropertySet) or a list of them (PropertySetList); ``None`` is null."""

    type: DataType
    value: CellValue | PropertySet | list[PropertySet]


@dataclass(slots=True)
class MetaData:
    """What describes a Bytes or File value, or one part of a multi-part value ("MetaData")."""

    is_multi_part: bool | None = None
    content_type: str | None = None
    size: int | None = None
    seq: int | None = None
    file_name: str | None = None
    file_type: str | None = None
    md5: str | None = None
    description: str | None = None


@dataclass(slots=True)
class DataSet:
    """A table ("DataSet"): named columns of basic types, rows holding one value per column
    (``None`` where a cell is empty)."""

    columns: list[str]
    types: list[DataType]
    rows: list[list[CellValue]] = field(default_factory=list)


@dataclass(slots=True)
class Parameter:
    """A template parameter ("Template.Parameter"): a default in a definition, the instance's
    own value in an instance; ``None`` when it has none."""

    name: str
    type: DataType
    value: CellValue = None


@dataclass(slots=True)
class Template:
    """A user-defined type ("Template"). A definition (``is_definition``, sent in an NBIRTH,
    no ``template_ref``) or an instance of the definition whose metric name is
    ``template_ref``; its members are metrics, which may be templates in turn."""

    metrics: list[Metric] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    version: str | None = None
    template_ref: str | None = None
    is_definition: bool = False


@dataclass(slots=True)
class Metric:
    """One metric ("Metric"). ``timestamp`` is milliseconds since the epoch (UTC), when the
    value was measured; ``value`` is typed as the table in this module's docstring says, and
    ``None`` means null (``is_null`` on the wire)."""

    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype: DataType = DataType.Unknown
    value: MetricValue = None
    is_historical: bool = False
    is_transient: bool = False
    properties: PropertySet = field(default_factory=dict)
    metadata: MetaData | None = None

    @property
    def is_null(self) -> bool:
        return self.value is None

    @property
    def label(self) -> str:
        """How errors and logs name the metric: its name, else its alias."""
        if self.name is not None:
            return repr(self.name)
        return f"alias {self.alias}" if self.alias is not None else "(no name or alias)"


@dataclass(slots=True)
class Payload:
    """A Sparkplug B payload ("Payload"): when it was published (ms since the epoch, UTC), its
    metrics, its sequence number (0-255; none in an NDEATH), and the seldom-used ``uuid`` and
    ``body``."""

    timestamp: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None


#: What `Metric.value` holds (see the table in this module's docstring).
MetricValue = int | float | bool | str | bytes | datetime | ArrayValue | DataSet | Template | None

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Columns(_message.Message):
    __slots__ = ("timestamp", "metrics", "seq")
    class Metrics(_message.Message):
        __slots__ = ("name", "alias", "timestamp", "datatype", "is_historical", "is_transient", "is_null", "metadata", "properties", "int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value", "bytes_value", "dataset_value", "template_value", "extension_value")
        NAME_FIELD_NUMBER: _ClassVar[int]
        ALIAS_FIELD_NUMBER: _ClassVar[int]
        TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
        DATATYPE_FIELD_NUMBER: _ClassVar[int]
        IS_HISTORICAL_FIELD_NUMBER: _ClassVar[int]
        IS_TRANSIENT_FIELD_NUMBER: _ClassVar[int]
        IS_NULL_FIELD_NUMBER: _ClassVar[int]
        METADATA_FIELD_NUMBER: _ClassVar[int]
        PROPERTIES_FIELD_NUMBER: _ClassVar[int]
        INT_VALUE_FIELD_NUMBER: _ClassVar[int]
        LONG_VALUE_FIELD_NUMBER: _ClassVar[int]
        FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
        DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
        BOOLEAN_VALUE_FIELD_NUMBER: _ClassVar[int]
        STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
        BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
        DATASET_VALUE_FIELD_NUMBER: _ClassVar[int]
        TEMPLATE_VALUE_FIELD_NUMBER: _ClassVar[int]
        EXTENSION_VALUE_FIELD_NUMBER: _ClassVar[int]
        name: _containers.RepeatedScalarFieldContainer[bytes]
        alias: _containers.RepeatedScalarFieldContainer[int]
        timestamp: _containers.RepeatedScalarFieldContainer[int]
        datatype: _containers.RepeatedScalarFieldContainer[int]
        is_historical: _containers.RepeatedScalarFieldContainer[bool]
        is_transient: _containers.RepeatedScalarFieldContainer[bool]
        is_null: _containers.RepeatedScalarFieldContainer[bool]
        metadata: _containers.RepeatedScalarFieldContainer[bytes]
        properties: _containers.RepeatedScalarFieldContainer[bytes]
        int_value: _containers.RepeatedScalarFieldContainer[int]
        long_value: _containers.RepeatedScalarFieldContainer[int]
        float_value: _containers.RepeatedScalarFieldContainer[float]
        double_value: _containers.RepeatedScalarFieldContainer[float]
        boolean_value: _containers.RepeatedScalarFieldContainer[bool]
        string_value: _containers.RepeatedScalarFieldContainer[bytes]
        bytes_value: _containers.RepeatedScalarFieldContainer[bytes]
        dataset_value: _containers.RepeatedScalarFieldContainer[bytes]
        template_value: _containers.RepeatedScalarFieldContainer[bytes]
        extension_value: _containers.RepeatedScalarFieldContainer[bytes]
        def __init__(self, name: _Optional[_Iterable[bytes]] = ..., alias: _Optional[_Iterable[int]] = ..., timestamp: _Optional[_Iterable[int]] = ..., datatype: _Optional[_Iterable[int]] = ..., is_historical: _Optional[_Iterable[bool]] = ..., is_transient: _Optional[_Iterable[bool]] = ..., is_null: _Optional[_Iterable[bool]] = ..., metadata: _Optional[_Iterable[bytes]] = ..., properties: _Optional[_Iterable[bytes]] = ..., int_value: _Optional[_Iterable[int]] = ..., long_value: _Optional[_Iterable[int]] = ..., float_value: _Optional[_Iterable[float]] = ..., double_value: _Optional[_Iterable[float]] = ..., boolean_value: _Optional[_Iterable[bool]] = ..., string_value: _Optional[_Iterable[bytes]] = ..., bytes_value: _Optional[_Iterable[bytes]] = ..., dataset_value: _Optional[_Iterable[bytes]] = ..., template_value: _Optional[_Iterable[bytes]] = ..., extension_value: _Optional[_Iterable[bytes]] = ...) -> None: ...
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    metrics: Columns.Metrics
    seq: int
    def __init__(self, timestamp: _Optional[int] = ..., metrics: _Optional[_Union[Columns.Metrics, _Mapping]] = ..., seq: _Optional[int] = ...) -> None: ...

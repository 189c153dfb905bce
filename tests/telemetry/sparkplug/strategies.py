"""Hypothesis strategies for Sparkplug B payloads: valid values of every data type, metrics,
DataSets, Templates, property sets and whole payloads, all of which encode and decode back to
themselves (floats are 32-bit where the type is, times whole milliseconds, no NaN)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from plantwire.telemetry.sparkplug.arrays import to_datetime
from plantwire.telemetry.sparkplug.model import (
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
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

_RANGES = {
    T.Int8: (-(2**7), 2**7 - 1),
    T.Int16: (-(2**15), 2**15 - 1),
    T.Int32: (-(2**31), 2**31 - 1),
    T.Int64: (-(2**63), 2**63 - 1),
    T.UInt8: (0, 2**8 - 1),
    T.UInt16: (0, 2**16 - 1),
    T.UInt32: (0, 2**32 - 1),
    T.UInt64: (0, 2**64 - 1),
}
ARRAY_ITEMS = {
    T.Int8Array: T.Int8,
    T.Int16Array: T.Int16,
    T.Int32Array: T.Int32,
    T.Int64Array: T.Int64,
    T.UInt8Array: T.UInt8,
    T.UInt16Array: T.UInt16,
    T.UInt32Array: T.UInt32,
    T.UInt64Array: T.UInt64,
    T.FloatArray: T.Float,
    T.DoubleArray: T.Double,
    T.BooleanArray: T.Boolean,
    T.StringArray: T.String,
    T.DateTimeArray: T.DateTime,
}

uint64 = st.integers(0, 2**64 - 1)
datetimes = st.integers(0, MAX_MS).map(to_datetime)
names = st.text(max_size=12)


def basic(datatype: DataType, *, nul: bool = True) -> st.SearchStrategy[Any]:
    """Valid values of a basic type (or UUID); ``nul=False`` leaves NUL out of strings."""
    if datatype in _RANGES:
        low, high = _RANGES[datatype]
        return st.integers(low, high)
    if datatype is T.Float:
        return st.floats(width=32, allow_nan=False)
    if datatype is T.Double:
        return st.floats(allow_nan=False)
    if datatype is T.Boolean:
        return st.booleans()
    if datatype is T.DateTime:
        return datetimes
    alphabet = st.characters(codec="utf-8", exclude_characters=None if nul else "\0")
    return st.text(alphabet=alphabet, max_size=12)


def scalar_or_array(datatype: DataType) -> st.SearchStrategy[Any]:
    """Valid metric values of every type but DataSet and Template."""
    if datatype in (T.Bytes, T.File):
        return st.binary(max_size=16)
    item = ARRAY_ITEMS.get(datatype)
    if item is not None:
        return st.lists(basic(item, nul=False), max_size=10)
    return basic(datatype)


basic_types = st.sampled_from(sorted(BASIC_TYPES))
cells = basic_types.flatmap(lambda t: st.tuples(st.just(t), st.none() | basic(t)))


@st.composite
def datasets(draw: st.DrawFn) -> DataSet:
    types = draw(st.lists(basic_types, max_size=4))
    rows = draw(st.lists(st.tuples(*[st.none() | basic(t) for t in types]).map(list), max_size=4))
    return DataSet(draw(st.lists(names, min_size=len(types), max_size=len(types))), types, rows)


def property_sets(depth: int = 2) -> st.SearchStrategy[dict[str, PropertyValue]]:
    leaf = cells.map(lambda cell: PropertyValue(cell[0], cell[1]))
    if depth:
        inner = property_sets(depth - 1)
        leaf = leaf | inner.map(lambda s: PropertyValue(T.PropertySet, s))
        leaf = leaf | st.lists(inner, max_size=2).map(
            lambda sets: PropertyValue(T.PropertySetList, sets)
        )
    return st.dictionaries(
        names,
        leaf | st.sampled_from([T.Int32, T.PropertySet]).map(lambda t: PropertyValue(t, None)),
        max_size=3,
    )


metadata = st.builds(
    MetaData,
    is_multi_part=st.none() | st.booleans(),
    content_type=st.none() | names,
    size=st.none() | uint64,
    seq=st.none() | uint64,
    file_name=st.none() | names,
    file_type=st.none() | names,
    md5=st.none() | names,
    description=st.none() | names,
)


def metrics(depth: int = 2) -> st.SearchStrategy[Metric]:
    simple = sorted(METRIC_TYPES - {T.DataSet, T.Template})
    typed = st.sampled_from(simple).flatmap(
        lambda t: st.tuples(st.just(t), st.none() | scalar_or_array(t))
    )
    typed = typed | st.tuples(st.just(T.DataSet), st.none() | datasets())
    if depth:
        typed = typed | st.tuples(st.just(T.Template), st.none() | templates(depth - 1))
    return typed.flatmap(
        lambda pair: st.builds(
            Metric,
            name=st.none() | names,
            alias=st.none() | uint64,
            timestamp=st.none() | uint64,
            datatype=st.just(pair[0]),
            value=st.just(pair[1]),
            is_historical=st.booleans(),
            is_transient=st.booleans(),
            properties=property_sets(1),
            metadata=st.none() | metadata,
        )
    )


def templates(depth: int) -> st.SearchStrategy[Template]:
    parameters = st.lists(
        cells.flatmap(lambda cell: st.builds(Parameter, names, st.just(cell[0]), st.just(cell[1]))),
        max_size=3,
    )
    return st.builds(
        Template,
        metrics=st.lists(metrics(depth), max_size=3),
        parameters=parameters,
        version=st.none() | names,
        template_ref=st.none() | names,
        is_definition=st.booleans(),
    )


payloads = st.builds(
    Payload,
    timestamp=st.none() | uint64,
    metrics=st.lists(metrics(), max_size=4),
    seq=st.none() | st.integers(0, 255),
    uuid=st.none() | names,
    body=st.none() | st.binary(max_size=16),
)

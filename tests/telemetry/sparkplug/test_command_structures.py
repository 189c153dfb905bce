"""DataSet and Template commands (sans-I/O): a value as the query API shows a stored one is
converted by the birth's shape of the metric, so what ``/latest`` shows can be sent back and
the node reads that very value; wrong shapes and types are refused with a `PayloadError` that
says where, and garbage never crashes. A Template's read-back is matched member by member."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.telemetry.commands import same_value
from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.codec import decode_payload
from plantwire.telemetry.sparkplug.commands import MembersReadBack, command_payload
from plantwire.telemetry.sparkplug.host import Certificate
from plantwire.telemetry.sparkplug.model import (
    BASIC_TYPES,
    METRIC_TYPES,
    DataSet,
    DataType,
    Metric,
    Parameter,
    Template,
)
from plantwire.telemetry.sparkplug.points import store_value, structured
from tests.telemetry.sparkplug.strategies import basic, names, scalar_or_array

T = DataType
TS = 1_764_500_000_000


def finite(value: Any) -> bool:
    """No infinity (JSON shows it as null, which would send back an empty cell)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, list) or all(finite(item) for item in value)


def cell(datatype: DataType) -> st.SearchStrategy[Any]:
    return st.none() | basic(datatype).filter(finite)


@st.composite
def datasets(draw: st.DrawFn) -> DataSet:
    types = draw(st.lists(st.sampled_from(sorted(BASIC_TYPES)), max_size=4))
    rows = draw(st.lists(st.tuples(*[cell(t) for t in types]).map(list), max_size=4))
    return DataSet(draw(st.lists(names, min_size=len(types), max_size=len(types))), types, rows)


def members(depth: int) -> st.SearchStrategy[tuple[DataType, Any]]:
    simple = sorted(METRIC_TYPES - {T.DataSet, T.Template})
    typed = st.sampled_from(simple).flatmap(
        lambda t: st.tuples(st.just(t), st.none() | scalar_or_array(t).filter(finite))
    )
    typed = typed | st.tuples(st.just(T.DataSet), datasets())
    if depth:
        typed = typed | st.tuples(st.just(T.Template), instances(depth - 1))
    return typed


@st.composite
def instances(draw: st.DrawFn, depth: int = 2) -> Template:
    """A template instance as a birth has it: every member named once, no aliases."""
    member_names = draw(st.lists(names, max_size=4, unique=True))
    parameter_names = draw(st.lists(names, max_size=3, unique=True))
    return Template(
        metrics=[Metric(name, None, None, *draw(members(depth))) for name in member_names],
        parameters=[
            Parameter(name, t, draw(cell(t)))
            for name in parameter_names
            for t in [draw(st.sampled_from(sorted(BASIC_TYPES)))]
        ],
        version=draw(st.none() | names),
        template_ref=draw(names),
    )


def stored(datatype: DataType, value: DataSet | Template) -> str:
    text = store_value(Metric("x", None, None, datatype, value))
    assert isinstance(text, str)
    return text


@given(st.tuples(st.just(T.DataSet), datasets()) | st.tuples(st.just(T.Template), instances()))
def test_what_latest_shows_sent_back_is_what_the_node_reads(
    case: tuple[DataType, DataSet | Template],
) -> None:
    """The birth's value stored, then commanded as the query API shows it (text or object):
    the node reads a value that stores to the same JSON, and its read-back confirms it."""
    datatype, value = case
    birth = Metric("Thing", 7, None, datatype, value)
    certificate = Certificate.of([birth])
    text = stored(datatype, value)
    if isinstance(value, Template) and not value.metrics and not value.parameters:
        with pytest.raises(PayloadError, match="writes no member or parameter"):
            command_payload(certificate, "Thing", text, TS)
        return
    for sent in (text, json.loads(text)):
        command = command_payload(certificate, "Thing", sent, TS)
        (metric,) = decode_payload(command.data).metrics
        assert (metric.alias, metric.datatype) == (7, datatype)
        assert command.value == store_value(metric) == text
        assert same_value(command.expected, text)
    assert Certificate.from_json(json.loads(json.dumps(certificate.to_json()))) == certificate


@given(instances(), st.data())
def test_a_template_command_writes_any_subset_and_its_read_back_matches_the_whole(
    instance: Template, data: st.DataObject
) -> None:
    certificate = Certificate.of([Metric("Motor", None, None, T.Template, instance)])
    shown = json.loads(stored(T.Template, instance))
    members = shown["metrics"]
    written = [m for m in members if data.draw(st.booleans())] if members else []
    parameters = data.draw(st.sampled_from([[], shown["parameters"]]))
    if not written and not parameters:
        return
    bare = [{"name": m["name"], "value": m["value"]} for m in written]  # typed by the birth
    command = command_payload(certificate, "Motor", {"metrics": bare, "parameters": parameters}, 0)
    (metric,) = decode_payload(command.data).metrics
    assert isinstance(metric.value, Template)
    assert [m.name for m in metric.value.metrics] == [m["name"] for m in written]
    assert metric.value.template_ref == instance.template_ref
    assert isinstance(command.expected, MembersReadBack)
    assert command.expected.matches(stored(T.Template, instance))  # the node reports it all
    assert command.expected.matches(command.value)  # or only what changed


BIRTH = Certificate.of(
    [
        Metric("Table", 1, None, T.DataSet, DataSet(["n", "at"], [T.Int8, T.DateTime])),
        Metric("Free", 2, None, T.DataSet),  # born null: no shape
        Metric(
            "Motor",
            3,
            None,
            T.Template,
            Template(
                [
                    Metric("speed", None, None, T.UInt16, 0),
                    Metric("on", None, None, T.Boolean, False),
                    Metric("log", None, None, T.DataSet, DataSet(["v"], [T.Float])),
                    Metric("pump", None, None, T.Template, Template([], [], None, "Pump")),
                ],
                [Parameter("max", T.Int32, 10)],
                "2",
                "Motor",
            ),
        ),
        Metric("Shape", 4, None, T.Template, Template(is_definition=True)),
        Metric("Loose", 5, None, T.Template),  # born null
    ]
)


def test_values_by_the_birth_and_by_themselves() -> None:
    command = command_payload(
        BIRTH, "Table", {"rows": [[-1, 0], [None, "1970-01-01T01:00+01:00"]]}, 0
    )
    (metric,) = decode_payload(command.data).metrics
    assert isinstance(metric.value, DataSet)
    assert metric.value.rows[1][1] is not None
    assert command.value == (
        '{"columns":["n","at"],"types":["Int8","DateTime"],'
        '"rows":[[-1,"1970-01-01T00:00:00.000Z"],[null,"1970-01-01T00:00:00.000Z"]]}'
    )
    free = {"columns": ["a"], "types": ["Double"], "rows": [[2]]}  # 2 is a fine Double
    assert command_payload(BIRTH, "Free", free, 0).value == (
        '{"columns":["a"],"types":["Double"],"rows":[[2.0]]}'
    )
    loose = {
        "template_ref": "Pump",
        "metrics": [{"name": "rpm", "datatype": "Int16Array", "value": [1, -2]}],
        "parameters": [{"name": "p", "type": "String", "value": "x"}],
    }
    (metric,) = decode_payload(command_payload(BIRTH, "Loose", loose, 0).data).metrics
    assert metric.value == Template(
        [Metric("rpm", None, None, T.Int16Array, [1, -2])],
        [Parameter("p", T.String, "x")],
        None,
        "Pump",
    )


@pytest.mark.parametrize(
    ("metric", "value", "detail"),
    [
        ("Table", {"rows": [[300, 0]]}, "row 0, column 'n': 300 is out of the Int8 range"),
        ("Table", {"rows": [[1]]}, "row 0 is not a list of 2 cells"),
        ("Table", {"rows": [[1, 1.5]]}, "column 'at': a DateTime is epoch milliseconds"),
        ("Table", {"rows": [[1, "2026-11-30T10:00:00"]]}, "has no time zone"),
        ("Table", {"rows": [[1.0, 0]]}, "column 'n': a Int8 cannot be float"),
        ("Table", {"columns": ["n", "x"], "rows": []}, 'has columns ["n", "at"]'),
        ("Table", {"types": ["Int8", "Text"], "rows": []}, 'of types ["Int8", "DateTime"]'),
        ("Table", {"types": ["Nope"], "rows": []}, '"Nope" is not a data type'),
        ("Table", {"columns": ["n", "at"]}, "a DataSet has rows"),
        ("Table", {"rows": {}}, "rows are a list, not an object"),
        ("Table", {"rows": [], "cols": []}, "has no field 'cols'"),
        ("Table", [[1, 0]], "a DataSet is the JSON text of an object, or an object, not a list"),
        ("Table", "{not json", "given as text is not JSON"),
        ("Table", "[" * 100_000, "given as text is not JSON"),
        ("Free", {"rows": []}, "gives its columns and types"),
        ("Free", {"columns": ["a"], "types": ["Template"], "rows": []}, "cannot be of type"),
        ("Free", {"columns": ["a"], "types": [], "rows": []}, "1 columns and 0 types"),
        ("Free", {"columns": ["a"], "types": ["Float"], "rows": [[math.inf]]}, "not a finite"),
        ("Motor", {"metrics": [{"name": "x", "value": 1}]}, "'Motor' has no member 'x'"),
        ("Motor", {"metrics": [{"name": "speed", "value": -1}]}, "member 'speed': -1 is out"),
        ("Motor", {"metrics": [{"name": "speed", "value": {}}]}, "UInt16 value is not an object"),
        ("Motor", {"metrics": [{"name": "on", "value": 1}]}, "member 'on': a Boolean cannot"),
        (
            "Motor",
            {"metrics": [{"name": "speed", "datatype": "Int32", "value": 1}]},
            "member 'speed' is a UInt16, not \"Int32\"",
        ),
        ("Motor", {"metrics": [{"name": "speed"}]}, "member 'speed' has no value"),
        ("Motor", {"metrics": [{"value": 1}]}, "a template member has a name"),
        ("Motor", {"metrics": [{"name": "on", "value": True, "unit": "x"}]}, "no field 'unit'"),
        (
            "Motor",
            {"metrics": [{"name": "on", "value": True}, {"name": "on", "value": False}]},
            "member 'on' is given twice",
        ),
        (
            "Motor",
            {"metrics": [{"name": "log", "value": {"rows": [["x"]]}}]},
            "member 'log': row 0, column 'v': a Float cannot be str",
        ),
        (
            "Motor",
            {"metrics": [{"name": "pump", "value": {"metrics": [{"name": "q", "value": 1}]}}]},
            "member 'pump': template 'Pump' has no member 'q'",
        ),
        ("Motor", {"parameters": [{"name": "max", "value": "x"}]}, "parameter 'max': a Int32"),
        ("Motor", {"parameters": [{"name": "min", "value": 1}]}, "has no parameter 'min'"),
        ("Motor", {"template_ref": "Pump", "metrics": []}, "instance is of template 'Motor'"),
        ("Motor", {"version": "3", "metrics": []}, "template is version '2'"),
        ("Motor", {"is_definition": True}, "not a definition"),
        ("Motor", {"metrics": []}, "writes no member or parameter"),
        ("Motor", 5, "a Template is the JSON text of an object, or an object, not a number"),
        ("Shape", {"metrics": [{"name": "a", "value": 1}]}, "declares a template definition"),
        ("Loose", {"metrics": []}, "gives its template_ref"),
        (
            "Loose",
            {"template_ref": "P", "metrics": [{"name": "a", "value": 1}]},
            "member 'a': null is not a data type's name",
        ),
        (
            "Loose",
            {"template_ref": "P", "metrics": [{"name": "a", "datatype": "PropertySet"}]},
            "cannot be of type PropertySet",
        ),
    ],
)
def test_wrong_shapes_and_types_are_refused_saying_where(
    metric: str, value: Any, detail: str
) -> None:
    with pytest.raises(PayloadError) as refused:
        command_payload(BIRTH, metric, value, 0)
    assert detail in refused.value.detail
    assert refused.value.reason == "value"


def test_templates_nested_too_deep_are_refused() -> None:
    value: dict[str, Any] = {"template_ref": "T", "metrics": []}
    for _ in range(20):
        value = {
            "template_ref": "T",
            "metrics": [{"name": "m", "datatype": "Template", "value": value}],
        }
    with pytest.raises(PayloadError) as refused:
        command_payload(BIRTH, "Loose", value, 0)
    assert refused.value.reason == "size"


def test_a_template_read_back_needs_the_written_members_at_their_values() -> None:
    written = {"metrics": [{"name": "speed", "value": 5}], "parameters": []}
    command = command_payload(BIRTH, "Motor", written, 0)
    reported = structured(
        Template(
            [Metric("on", None, None, T.Boolean, True), Metric("speed", None, None, T.UInt16, 5)],
            [Parameter("max", T.Int32, 10)],
            "2",
            "Motor",
        )
    )
    assert same_value(command.expected, json.dumps(reported))
    changes: list[Callable[[dict[str, Any]], object]] = [
        lambda r: r["metrics"][1].update(value=6),
        lambda r: r["metrics"][1].update(datatype="Int32"),
        lambda r: r["metrics"].pop(),
        lambda r: r.update(template_ref="Pump"),
    ]
    for change in changes:
        other = json.loads(json.dumps(reported))
        change(other)
        assert not same_value(command.expected, json.dumps(other))
    assert not same_value(command.expected, "not json")
    assert not same_value(command.expected, 5)
    # a boolean is never a number, in a member either
    on = command_payload(BIRTH, "Motor", {"metrics": [{"name": "on", "value": True}]}, 0)
    reported["metrics"][0]["value"] = 1
    assert not same_value(on.expected, json.dumps(reported))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    [
        "columns",
        "types",
        "rows",
        "template_ref",
        "version",
        "metrics",
        "parameters",
        "name",
        "value",
        "datatype",
        "type",
        "alias",
        "is_definition",
    ]
)
ALMOST = st.recursive(
    JSON | st.sampled_from([t.name for t in T]) | st.sampled_from(["n", "at", "speed", "on"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELDS, inner, max_size=5),
    max_leaves=40,
)


@given(st.sampled_from(["Table", "Free", "Motor", "Loose"]), JSON | ALMOST)
def test_garbage_is_refused_never_a_crash(metric: str, value: Any) -> None:
    reason = None
    try:
        command = command_payload(BIRTH, metric, value, 0)
    except PayloadError as error:
        reason = error.reason
    else:
        decode_payload(command.data)
    assert reason in (None, "value", "size")

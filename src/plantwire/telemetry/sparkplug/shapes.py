"""What a birth declares of a DataSet or Template metric beyond its data type: its *shape*
(no I/O). Commands check a written value against it (`command_values`).

* A DataSet's shape is its columns and their types, as the birth's value has them (its rows
  are data, not shape).
* A Template's shape is what its birth value says of the instance: ``template_ref`` (the
  definition it is of), ``version``, its parameters' names and types, and its members'
  names and data types — with the shape of members that are DataSets or Templates in turn.
  Eclipse Sparkplug 3.0.0, "Template": an instance in an NBIRTH or DBIRTH "MUST include
  all members that were included in the corresponding Template Definition", so the birth's
  instance is the whole of it. A definition (``is_definition``) keeps its shape too, marked.

A metric born null has no shape. Shapes serialise to JSON with the certificate that holds
them (`to_json`, `from_json`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plantwire.telemetry.sparkplug.model import DataSet, DataType, Metric, Template

__all__ = ["Member", "Shape", "TableShape", "TemplateShape", "from_json", "shape_of", "to_json"]


@dataclass(frozen=True, slots=True)
class TableShape:
    """A DataSet's columns and their types."""

    columns: tuple[str, ...]
    types: tuple[DataType, ...]


@dataclass(frozen=True, slots=True)
class Member:
    """A template member: its name, data type, and shape when it is a DataSet or Template
    born with a value."""

    name: str
    datatype: DataType
    shape: Shape | None = None


@dataclass(frozen=True, slots=True)
class TemplateShape:
    """A template instance (or definition): what it is of, its parameters and members."""

    template_ref: str | None
    version: str | None
    is_definition: bool
    parameters: tuple[tuple[str, DataType], ...]
    members: tuple[Member, ...]


Shape = TableShape | TemplateShape


def shape_of(metric: Metric) -> Shape | None:
    """The shape of a DataSet or Template metric born with a value; else None."""
    value = metric.value
    if isinstance(value, DataSet):
        return TableShape(tuple(value.columns), tuple(value.types))
    if isinstance(value, Template):
        return TemplateShape(
            value.template_ref,
            value.version,
            value.is_definition,
            tuple((p.name, p.type) for p in value.parameters),
            tuple(
                Member(m.name, m.datatype, shape_of(m)) for m in value.metrics if m.name is not None
            ),
        )
    return None


def to_json(shape: Shape) -> dict[str, Any]:
    if isinstance(shape, TableShape):
        return {"columns": list(shape.columns), "types": [int(t) for t in shape.types]}
    return {
        "template_ref": shape.template_ref,
        "version": shape.version,
        "is_definition": shape.is_definition,
        "parameters": [[name, int(kind)] for name, kind in shape.parameters],
        "members": [
            [m.name, int(m.datatype), None if m.shape is None else to_json(m.shape)]
            for m in shape.members
        ],
    }


def from_json(data: dict[str, Any]) -> Shape:
    if "columns" in data:
        return TableShape(tuple(data["columns"]), tuple(DataType(t) for t in data["types"]))
    return TemplateShape(
        data["template_ref"],
        data["version"],
        data["is_definition"],
        tuple((name, DataType(kind)) for name, kind in data["parameters"]),
        tuple(
            Member(name, DataType(kind), None if shape is None else from_json(shape))
            for name, kind, shape in data["members"]
        ),
    )

"""Lists the variables under a node of an OPC UA server, with what a ``[[opcua.servers.nodes]]``
entry needs (NodeId, browse path, types, writability): for users writing gateway.toml."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import Client, ua

from plantwire.edge.opcua_types import (
    UnsupportedValue,
    browse_path_text,
    declared_type,
    metric_type,
    parse_browse_path,
)

__all__ = ["BrowsedVariable", "browse_variables"]


@dataclass(frozen=True, slots=True)
class BrowsedVariable:
    """A variable found by :func:`browse_variables`, in the forms a config uses."""

    node_id: str
    browse_path: str
    display_name: str
    data_type: str  # the built-in type's name, or the DataType NodeId
    array: bool
    datatype: int | None  # its Sparkplug data type, if it has one
    writable: bool


async def browse_variables(
    client: Client,
    start: str = "0:Objects",
    *,
    max_depth: int = 10,
    limit: int = 10_000,
) -> list[BrowsedVariable]:
    """The variables under ``start`` (a browse path from Root; default the Objects folder),
    breadth first through hierarchical references, with the NodeId, browse path and
    Sparkplug data type a config needs; at most ``limit``, at most ``max_depth`` levels down."""
    base = parse_browse_path(start)
    root = await client.nodes.root.get_child(base)
    seen = {root.nodeid}
    level: list[tuple[ua.NodeId, list[ua.QualifiedName]]] = [(root.nodeid, base)]
    variables: list[tuple[ua.NodeId, list[ua.QualifiedName], str]] = []
    for _ in range(max_depth):
        if not level or len(variables) >= limit:
            break
        results = await client.browse_nodes([client.get_node(node_id) for node_id, _ in level])
        following = []
        for (_, path), (_, result) in zip(level, results, strict=True):
            for reference in result.References:
                target = reference.NodeId
                if not reference.IsForward or target in seen:
                    continue
                seen.add(target)
                child_path = [*path, reference.BrowseName]
                if reference.NodeClass == ua.NodeClass.Variable:
                    variables.append((target, child_path, reference.DisplayName.Text or ""))
                if reference.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                    following.append((target, child_path))
        level = following
    return await _describe(client, variables[:limit])


async def _describe(
    client: Client, variables: Sequence[tuple[ua.NodeId, list[ua.QualifiedName], str]]
) -> list[BrowsedVariable]:
    handles = [client.get_node(node_id) for node_id, _, _ in variables]
    if not handles:
        return []
    types = await client.read_attributes(handles, ua.AttributeIds.DataType)
    ranks = await client.read_attributes(handles, ua.AttributeIds.ValueRank)
    access = await client.read_attributes(handles, ua.AttributeIds.UserAccessLevel)
    found = []
    for (node_id, path, display), type_value, rank_value, access_value in zip(
        variables, types, ranks, access, strict=True
    ):
        data_type = type_value.Value.Value if type_value.Value is not None else None
        rank = rank_value.Value.Value if rank_value.Value is not None else -1
        level = access_value.Value.Value if access_value.Value is not None else 0
        array = rank == 1
        variant_type = declared_type(data_type)
        datatype = None
        if variant_type is not None and rank in (-1, 1):
            try:
                datatype = int(metric_type(variant_type, array))
            except UnsupportedValue:
                datatype = None
        if variant_type is not None:
            name = variant_type.name
        else:
            name = data_type.to_string() if isinstance(data_type, ua.NodeId) else "unknown"
        found.append(
            BrowsedVariable(
                node_id=node_id.to_string(),
                browse_path=browse_path_text(path),
                display_name=display,
                data_type=name,
                array=array,
                datatype=datatype,
                writable=bool(isinstance(level, int) and level & ua.AccessLevel.CurrentWrite.mask),
            )
        )
    return found

"""Read planning: a device's points as the fewest read requests the protocol allows (no I/O).

Points are planned per poll interval (`plan_polls`), and within one interval per unit and
table: sorted by address, each point joins the request before it when the request then still
asks for at most ``max_registers`` registers (``max_bits`` bits) and the unwanted addresses
between them are at most ``max_gap_registers`` (``max_gap_bits``); otherwise it starts a new
request. Overlapping points share a request. Taking every point into the earliest request that
can hold it is optimal for points without gaps between them (a request started at the first
point left reads everything any other choice could), so contiguous points need the least
possible number of requests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import TypeVar

from plantwire.edge.modbus_map import Point, ReadLimits, RegisterMap, Table

__all__ = ["PollGroup", "ReadRequest", "plan_polls", "plan_reads"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: ``count`` registers or bits of ``table`` from ``address``, on ``unit``, which
    holds ``points`` (in address order)."""

    unit: int
    table: Table
    address: int
    count: int
    points: tuple[Point, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    def part(self, point: Point, values: Sequence[_T]) -> Sequence[_T]:
        """The point's registers (or bit) out of the values this request read."""
        start = point.address - self.address
        return values[start : start + point.count]


@dataclass(frozen=True, slots=True)
class PollGroup:
    """The requests that read every point polled at ``interval`` seconds."""

    interval: float
    requests: tuple[ReadRequest, ...]


def plan_polls(register_map: RegisterMap) -> tuple[PollGroup, ...]:
    """The map's reads, one group per poll interval (shortest interval first)."""
    points = sorted(register_map.points, key=lambda point: point.poll_interval)
    return tuple(
        PollGroup(interval, tuple(plan_reads(group, register_map.limits)))
        for interval, group in groupby(points, key=lambda point: point.poll_interval)
    )


def plan_reads(points: Iterable[Point], limits: ReadLimits) -> list[ReadRequest]:
    """The fewest requests that read ``points`` under ``limits`` (see the module's text)."""
    ordered = sorted(points, key=lambda point: (point.unit, point.table, point.address, point.end))
    requests: list[ReadRequest] = []
    for (unit, table), run in groupby(ordered, key=lambda point: (point.unit, point.table)):
        if table.holds_bits:
            limit, gap = limits.max_bits, limits.max_gap_bits
        else:
            limit, gap = limits.max_registers, limits.max_gap_registers
        members: list[Point] = []
        start = end = 0
        for point in run:
            if members and point.address - end <= gap and max(end, point.end) - start <= limit:
                members.append(point)
                end = max(end, point.end)
                continue
            if members:
                requests.append(ReadRequest(unit, table, start, end - start, tuple(members)))
            members, start, end = [point], point.address, point.end
        requests.append(ReadRequest(unit, table, start, end - start, tuple(members)))
    return requests

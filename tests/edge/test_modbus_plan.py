"""Read planning: hand-worked plans, and properties (every point read by exactly one request
that holds it, limits kept, the fewest requests for contiguous points)."""

from __future__ import annotations

from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from plantwire.edge.modbus_map import DataType, Point, ReadLimits, RegisterMap, Table
from plantwire.edge.modbus_plan import ReadRequest, plan_polls, plan_reads

HR, IR, CO, DI = (
    Table.HOLDING_REGISTER,
    Table.INPUT_REGISTER,
    Table.COIL,
    Table.DISCRETE_INPUT,
)


def reg(name: str, address: int, kind: DataType = DataType.UINT16, **extra: object) -> Point:
    return Point(name, HR, address, kind, **extra)  # type: ignore[arg-type]


def spans(requests: list[ReadRequest]) -> list[tuple[int, Table, int, int]]:
    return [(r.unit, r.table, r.address, r.count) for r in requests]


def test_adjacent_points_share_a_request() -> None:
    points = [reg("a", 0), reg("b", 1, DataType.FLOAT32), reg("c", 3, DataType.FLOAT64)]
    assert spans(plan_reads(points, ReadLimits())) == [(1, HR, 0, 7)]


def test_gaps_join_only_within_max_gap() -> None:
    points = [reg("a", 0), reg("b", 5), reg("c", 20)]
    assert spans(plan_reads(points, ReadLimits())) == [(1, HR, 0, 1), (1, HR, 5, 1), (1, HR, 20, 1)]
    wide = ReadLimits(max_gap_registers=4)
    assert spans(plan_reads(points, wide)) == [(1, HR, 0, 6), (1, HR, 20, 1)]
    assert spans(plan_reads(points, ReadLimits(max_gap_registers=14))) == [(1, HR, 0, 21)]


def test_limits_split_requests() -> None:
    points = [reg(f"p{i}", 2 * i, DataType.INT32) for i in range(100)]  # 200 registers
    plan = plan_reads(points, ReadLimits())
    assert spans(plan) == [(1, HR, 0, 124), (1, HR, 124, 76)]  # an int32 is never split
    small = plan_reads(points, ReadLimits(max_registers=10))
    assert [r.count for r in small] == [10] * 20


def test_tables_units_and_bits_apart() -> None:
    points = [
        reg("a", 0),
        Point("b", IR, 1, DataType.INT16),
        Point("c", HR, 1, DataType.INT16, unit=2),
        Point("d", CO, 0, DataType.BOOL),
        Point("e", CO, 1999, DataType.BOOL),
        Point("f", CO, 2000, DataType.BOOL),
        Point("g", DI, 7, DataType.BOOL),
    ]
    assert spans(plan_reads(points, ReadLimits(max_gap_bits=2000))) == [
        (1, CO, 0, 2000),
        (1, CO, 2000, 1),
        (1, DI, 7, 1),
        (1, HR, 0, 1),
        (1, IR, 1, 1),
        (2, HR, 1, 1),
    ]


def test_overlapping_points_share_a_request() -> None:
    points = [
        reg("whole", 10, DataType.UINT32),
        reg("high", 10),
        Point("flag", HR, 11, DataType.BOOL, bit=3),
    ]
    (request,) = plan_reads(points, ReadLimits())
    assert (request.address, request.count) == (10, 2)
    assert {p.name for p in request.points} == {"whole", "high", "flag"}
    assert request.part(points[2], [0xAAAA, 0x0008]) == [0x0008]


def test_poll_groups_per_interval() -> None:
    register_map = RegisterMap(
        (
            reg("fast", 0, poll_interval=0.5),
            reg("slow", 1, poll_interval=10),
            reg("f2", 2, poll_interval=0.5),
        )
    )
    groups = plan_polls(register_map)
    assert [g.interval for g in groups] == [0.5, 10]
    assert spans(list(groups[0].requests)) == [(1, HR, 0, 1), (1, HR, 2, 1)]
    assert spans(list(groups[1].requests)) == [(1, HR, 1, 1)]


# --- properties ----------------------------------------------------------------------------------

SIZES = {DataType.UINT16: 1, DataType.INT32: 2, DataType.FLOAT64: 4}


@st.composite
def register_points(draw: st.DrawFn) -> list[Point]:
    """Points anywhere in a few hundred registers of two tables and two units, overlaps and all,
    strings up to the full 125 registers."""
    points = []
    for i in range(draw(st.integers(1, 40))):
        table = draw(st.sampled_from([HR, IR]))
        unit = draw(st.sampled_from([1, 2]))
        address = draw(st.integers(0, 400))
        if draw(st.booleans()):
            kind, length = draw(st.sampled_from(sorted(SIZES))), None
        else:
            kind, length = DataType.STRING, draw(st.integers(1, 125))
        points.append(Point(f"p{i}", table, address, kind, unit=unit, length=length))
    return points


limits = st.builds(
    ReadLimits,
    max_registers=st.integers(125, 125) | st.integers(4, 125),
    max_gap_registers=st.integers(0, 30),
)


def check_plan(points: list[Point], plan: list[ReadRequest], limit: ReadLimits) -> None:
    held = [p for request in plan for p in request.points]
    assert sorted(p.name for p in held) == sorted(p.name for p in points)  # each exactly once
    for request in plan:
        cap = limit.max_bits if request.table.holds_bits else limit.max_registers
        gap = limit.max_gap_bits if request.table.holds_bits else limit.max_gap_registers
        assert 1 <= request.count <= cap
        covered: set[int] = set()
        for p in request.points:
            assert (p.unit, p.table) == (request.unit, request.table)
            assert request.address <= p.address
            assert p.end <= request.end
            covered.update(range(p.address, p.end))
        assert request.address in covered
        assert request.end - 1 in covered
        hole = 0
        for address in range(request.address, request.end):  # no run of unread addresses > gap
            hole = 0 if address in covered else hole + 1
            assert hole <= gap


@given(points=register_points(), limit=limits)
def test_every_point_is_read_once_within_limits(points: list[Point], limit: ReadLimits) -> None:
    points = [p for p in points if p.count <= limit.max_registers]
    plan = plan_reads(points, limit)
    check_plan(points, plan, limit)


@given(
    addresses=st.lists(st.integers(0, 65535), min_size=1, max_size=60, unique=True),
    limit=st.builds(ReadLimits, max_bits=st.integers(1, 2000), max_gap_bits=st.integers(0, 3000)),
)
def test_bits_are_read_once_within_limits(addresses: list[int], limit: ReadLimits) -> None:
    points = [Point(f"c{a}", CO, a, DataType.BOOL) for a in addresses]
    check_plan(points, plan_reads(points, limit), limit)


@given(
    sizes=st.lists(st.sampled_from([1, 2, 4]) | st.integers(1, 125), min_size=1, max_size=40),
    start=st.integers(0, 1000),
    cap=st.integers(4, 125),
)
def test_contiguous_points_take_the_fewest_requests(sizes: list[int], start: int, cap: int) -> None:
    """Back to back points, no gaps: the plan's count equals the optimum found by dynamic
    programming over every way of cutting the run into requests."""
    sizes = [min(size, cap) for size in sizes]
    points, address = [], start
    for i, size in enumerate(sizes):
        points.append(Point(f"s{i}", IR, address, DataType.STRING, length=size))
        address += size
    limit = ReadLimits(max_registers=cap)
    plan = plan_reads(points, limit)
    check_plan(points, plan, limit)

    @cache
    def fewest(i: int) -> int:  # requests for points i.. when a request starts at point i
        if i == len(sizes):
            return 0
        best, total = len(sizes), 0
        for j in range(i, len(sizes)):
            total += sizes[j]
            if total > cap:
                break
            best = min(best, 1 + fewest(j + 1))
        return best

    assert len(plan) == fewest(0)
    if all(size == 1 for size in sizes):
        assert len(plan) == -(-len(sizes) // cap)


@given(
    layout=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 125)), min_size=1, max_size=40),
    limit=limits,
)
def test_points_apart_are_each_inside_exactly_their_request(
    layout: list[tuple[int, int]], limit: ReadLimits
) -> None:
    """Points that do not overlap: the requests do not overlap either, so each point lies in
    exactly one request's range, the one that holds it."""
    points, address = [], 0
    for i, (gap, size) in enumerate(layout):
        address += gap
        points.append(
            Point(f"s{i}", HR, address, DataType.STRING, length=min(size, limit.max_registers))
        )
        address = points[-1].end
    plan = plan_reads(points, limit)
    check_plan(points, plan, limit)
    for point in points:
        around = [r for r in plan if r.address <= point.address and point.end <= r.end]
        holding = [r for r in plan if point in r.points]
        assert around == holding
        assert len(around) == 1
    assert len(plan) <= len(points)

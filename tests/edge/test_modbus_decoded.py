"""The Modbus connector's quick reading of plain 16-bit registers (no `decode` call per
point) gives exactly what `modbus_codec.decode` gives, point by point, errors included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.edge.modbus import ModbusDevice, TcpLink, _DeviceLink
from plantwire.edge.modbus_codec import CodecError, decode
from plantwire.edge.modbus_map import DataType, Order, Point, RegisterMap, Table
from plantwire.edge.samples import Quality, Sample, SampleValue

_KINDS = st.sampled_from(
    [
        (DataType.UINT16, {}),
        (DataType.UINT16, {}),
        (DataType.INT16, {}),
        (DataType.INT16, {}),
        (DataType.UINT16, {"byte_order": Order.LITTLE}),
        (DataType.INT16, {"word_order": Order.LITTLE}),
        (DataType.UINT16, {"scale": 0.1}),
        (DataType.INT16, {"offset": -40.0}),
        (DataType.INT32, {}),
        (DataType.FLOAT32, {"word_order": Order.LITTLE}),
        (DataType.BOOL, {"bit": 3}),
    ]
)
_REGISTER = st.one_of(
    st.integers(min_value=0, max_value=0xFFFF),
    st.sampled_from([0, 0x7FFF, 0x8000, 0xFFFF, -1, 0x10000]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_KINDS, min_size=1, max_size=30), st.data())
def test_plain_registers_read_as_decode_reads_them(kinds: list[Any], data: st.DataObject) -> None:
    points, address = [], 0
    for number, (kind, extra) in enumerate(kinds):
        point = Point(f"p{number}", Table.HOLDING_REGISTER, address, kind, **extra)
        points.append(point)
        address += point.count
    link = _DeviceLink(
        ModbusDevice("dev", TcpLink("127.0.0.1"), RegisterMap(tuple(points))), lambda _: None
    )
    (group,) = link.groups
    for request in group.requests:
        registers = data.draw(st.lists(_REGISTER, min_size=request.count, max_size=request.count))
        samples: list[Sample] = []
        link._decoded(request, SimpleNamespace(registers=registers), samples)  # type: ignore[arg-type]
        expected: list[tuple[str, SampleValue | None, Quality]] = []
        for point in request.points:
            try:
                value = decode(point, request.part(point, registers))
            except CodecError:
                expected.append((point.name, None, Quality.BAD))
            else:
                expected.append((point.name, value, Quality.GOOD))
        # repr: NaN is not equal to itself, and 1 == 1.0 == True hides a type
        got = [(s.metric, repr(s.value), s.quality) for s in samples]
        assert got == [(name, repr(value), quality) for name, value, quality in expected]

"""The meters' register map: its codec round-trips, its byte orders are the ones the names
say, and docs/simulator.md shows exactly the map the code serves."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.sim.plant import MeterSnapshot
from plantwire.sim.registers import (
    REGISTER_MAP,
    ByteOrder,
    MeterRegister,
    RegisterTable,
    RegisterType,
    table_image,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
HEADER = "| table | address | registers | value | type | order | unit | scale | description |"


def _register(kind: RegisterType, order: ByteOrder, scale: float = 1.0) -> MeterRegister:
    return MeterRegister(RegisterTable.HOLDING, 0, "x", kind, order, "", scale)


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        (ByteOrder.ABCD, [0x4120, 0x0000]),  # 10.0 is 0x41200000
        (ByteOrder.CDAB, [0x0000, 0x4120]),
        (ByteOrder.BADC, [0x2041, 0x0000]),
        (ByteOrder.DCBA, [0x0000, 0x2041]),
    ],
)
def test_float32_orders_are_the_byte_orders_their_names_say(
    order: ByteOrder, registers: list[int]
) -> None:
    register = _register(RegisterType.FLOAT32, order)
    assert register.encode(10.0) == registers
    assert register.decode(registers) == 10.0


def test_float64_word_swap_reverses_all_four_words() -> None:
    big = _register(RegisterType.FLOAT64, ByteOrder.ABCD).encode(1234.5)
    assert _register(RegisterType.FLOAT64, ByteOrder.CDAB).encode(1234.5) == big[::-1]
    words = b"".join(w.to_bytes(2, "big") for w in big)
    assert struct.unpack(">d", words) == (1234.5,)


def test_integers_are_scaled_and_wrap_like_counters() -> None:
    register = _register(RegisterType.UINT32, ByteOrder.CDAB, scale=1000.0)
    assert register.encode(1.5) == [1500, 0]
    assert register.encode(4_294_967.297) == [1, 0]  # 2**32 + 1 Wh
    assert register.decode([1500, 0]) == 1.5
    with pytest.raises(ValueError, match="cannot encode"):
        register.encode(math.inf)
    with pytest.raises(ValueError, match="takes 2 registers"):
        register.decode([1])


@given(
    register=st.sampled_from(REGISTER_MAP),
    value=st.floats(0.0, 60_000.0, allow_nan=False),
)
def test_every_register_round_trips_within_its_resolution(
    register: MeterRegister, value: float
) -> None:
    registers = register.encode(value)
    assert len(registers) == register.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    decoded = register.decode(registers)
    if register.type is RegisterType.FLOAT64:
        assert decoded == value
    elif register.type is RegisterType.FLOAT32:
        assert decoded == pytest.approx(value, rel=1e-6)
    else:
        span = (1 << (16 * register.count)) / register.scale
        assert decoded == pytest.approx(value % span, abs=0.5 / register.scale + 1e-9)


def test_the_map_covers_every_meter_value_and_has_no_overlaps() -> None:
    fields = {name for name, kind in MeterSnapshot.__annotations__.items() if kind == "float"}
    assert {r.name for r in REGISTER_MAP} == fields
    for table in RegisterTable:
        used: set[int] = set()
        for register in (r for r in REGISTER_MAP if r.table is table):
            span = set(range(register.address, register.address + register.count))
            assert not used & span, f"{register} overlaps"
            used |= span
        assert used == set(range(len(used))), "registers from 0 without gaps"
        values = dict.fromkeys(fields, 1.0)
        assert len(table_image(table, values)) == len(used)


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def test_docs_register_table_is_the_map_in_the_code() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    assert lines.count(HEADER) == 1, f"docs/simulator.md needs one line {HEADER!r}"
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    expected = [
        [
            r.table.value,
            str(r.address),
            str(r.count),
            r.name,
            r.type.value,
            r.order.value,
            r.unit,
            "" if r.scale == 1.0 else f"{r.scale:g}",
            r.description,
        ]
        for r in REGISTER_MAP
    ]
    assert rows == expected

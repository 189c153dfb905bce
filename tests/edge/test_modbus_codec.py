"""The Modbus codec: golden vectors written from IEEE 754 / two's complement and the usual
ABCD/BADC/CDAB/DCBA tables (never produced by our encoder), round trips of every type in every
byte and word order, and garbage in → a CodecError."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.edge.modbus_codec import CodecError, decode, encode, encode_bit
from plantwire.edge.modbus_map import DataType, Order, Point, Table

B, L = Order.BIG, Order.LITTLE
ORDERS = [(B, B), (L, B), (B, L), (L, L)]  # ABCD, BADC, CDAB, DCBA


def point(kind: DataType, byte: Order = B, word: Order = B, **extra: Any) -> Point:
    return Point("p", Table.HOLDING_REGISTER, 100, kind, byte_order=byte, word_order=word, **extra)


# (type, value, {(byte order, word order): registers}); every value's four layouts side by side
GOLDEN: list[tuple[DataType, Any, dict[tuple[Order, Order], list[int]]]] = [
    # 123.456 as IEEE 754 binary32 is 0x42F6E979
    (
        DataType.FLOAT32,
        struct.unpack(">f", bytes.fromhex("42F6E979"))[0],
        {
            (B, B): [0x42F6, 0xE979],
            (L, B): [0xF642, 0x79E9],
            (B, L): [0xE979, 0x42F6],
            (L, L): [0x79E9, 0xF642],
        },
    ),
    # -2.5 is 0xC0200000
    (
        DataType.FLOAT32,
        -2.5,
        {
            (B, B): [0xC020, 0x0000],
            (L, B): [0x20C0, 0x0000],
            (B, L): [0x0000, 0xC020],
            (L, L): [0x0000, 0x20C0],
        },
    ),
    # -123456789 in two's complement is 0xF8A432EB
    (
        DataType.INT32,
        -123456789,
        {
            (B, B): [0xF8A4, 0x32EB],
            (L, B): [0xA4F8, 0xEB32],
            (B, L): [0x32EB, 0xF8A4],
            (L, L): [0xEB32, 0xA4F8],
        },
    ),
    (
        DataType.UINT32,
        0x12345678,
        {
            (B, B): [0x1234, 0x5678],
            (L, B): [0x3412, 0x7856],
            (B, L): [0x5678, 0x1234],
            (L, L): [0x7856, 0x3412],
        },
    ),
    (
        DataType.INT64,
        0x0102030405060708,
        {
            (B, B): [0x0102, 0x0304, 0x0506, 0x0708],
            (L, B): [0x0201, 0x0403, 0x0605, 0x0807],
            (B, L): [0x0708, 0x0506, 0x0304, 0x0102],
            (L, L): [0x0807, 0x0605, 0x0403, 0x0201],
        },
    ),
    (
        DataType.INT64,
        -2,
        {
            (B, B): [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
            (L, B): [0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
            (B, L): [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
            (L, L): [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
        },
    ),
    (
        DataType.UINT64,
        18364758544493064720,  # 0xFEDCBA9876543210
        {
            (B, B): [0xFEDC, 0xBA98, 0x7654, 0x3210],
            (L, B): [0xDCFE, 0x98BA, 0x5476, 0x1032],
            (B, L): [0x3210, 0x7654, 0xBA98, 0xFEDC],
            (L, L): [0x1032, 0x5476, 0x98BA, 0xDCFE],
        },
    ),
    # pi as IEEE 754 binary64 is 0x400921FB54442D18
    (
        DataType.FLOAT64,
        math.pi,
        {
            (B, B): [0x4009, 0x21FB, 0x5444, 0x2D18],
            (L, B): [0x0940, 0xFB21, 0x4454, 0x182D],
            (B, L): [0x2D18, 0x5444, 0x21FB, 0x4009],
            (L, L): [0x182D, 0x4454, 0xFB21, 0x0940],
        },
    ),
    # 123.456 as binary64 is 0x405EDD2F1A9FBE77
    (
        DataType.FLOAT64,
        123.456,
        {
            (B, B): [0x405E, 0xDD2F, 0x1A9F, 0xBE77],
            (B, L): [0xBE77, 0x1A9F, 0xDD2F, 0x405E],
        },
    ),
    (DataType.INT16, -1, {(B, B): [0xFFFF], (L, B): [0xFFFF], (B, L): [0xFFFF]}),
    (DataType.INT16, -32768, {(B, B): [0x8000], (L, B): [0x0080], (L, L): [0x0080]}),
    (DataType.INT16, 0x1234, {(B, B): [0x1234], (L, B): [0x3412], (B, L): [0x1234]}),
    (DataType.UINT16, 65535, {(B, B): [0xFFFF], (L, B): [0xFFFF]}),
    (DataType.UINT16, 0xABCD, {(B, B): [0xABCD], (L, B): [0xCDAB], (L, L): [0xCDAB]}),
]


@pytest.mark.parametrize(
    ("kind", "value", "byte", "word", "registers"),
    [
        (kind, value, byte, word, registers)
        for kind, value, layouts in GOLDEN
        for (byte, word), registers in layouts.items()
    ],
)
def test_golden_vectors(
    kind: DataType, value: Any, byte: Order, word: Order, registers: list[int]
) -> None:
    at = point(kind, byte, word)
    assert decode(at, registers) == value
    assert encode(at, value) == tuple(registers)


@pytest.mark.parametrize(
    ("byte", "text", "length", "registers"),
    [
        # ASCII, two characters a register, the first in the high byte
        (B, "ABCD", 2, [0x4142, 0x4344]),
        (L, "ABCD", 2, [0x4241, 0x4443]),
        (B, "ABC", 2, [0x4142, 0x4300]),  # NUL-padded
        (B, "PW-7", 4, [0x5057, 0x2D37, 0x0000, 0x0000]),
        (L, "ABC", 3, [0x4241, 0x0043, 0x0000]),
        (B, "", 1, [0x0000]),
        (B, "é", 1, [0xC3A9]),  # UTF-8
    ],
)
def test_string_vectors(byte: Order, text: str, length: int, registers: list[int]) -> None:
    at = point(DataType.STRING, byte, length=length)
    assert decode(at, registers) == text
    assert encode(at, text) == tuple(registers)


def test_string_ends_at_the_first_nul_and_ignores_word_order() -> None:
    at = point(DataType.STRING, B, L, length=3)
    assert decode(at, [0x4142, 0x0043, 0x4445]) == "AB"
    assert encode(at, "ABCD") == (0x4142, 0x4344, 0x0000)


def test_bits_of_a_register() -> None:
    def bit(index: int, byte: Order = B) -> Point:
        return Point("b", Table.INPUT_REGISTER, 0, DataType.BOOL, bit=index, byte_order=byte)

    assert decode(bit(0), [0x0001]) is True
    assert decode(bit(15), [0x8000]) is True
    assert decode(bit(14), [0x8000]) is False
    assert decode(bit(8, L), [0x0001]) is True  # bytes swapped first: 0x0100


def test_scale_and_offset() -> None:
    tenths = point(DataType.INT16, scale=0.1)
    assert decode(tenths, [0xFF9C]) == pytest.approx(-10.0)  # -100 raw
    assert encode(tenths, -10.0) == (0xFF9C,)
    assert encode(tenths, 2.34) == (23,)  # the nearest raw count
    kelvin = point(DataType.UINT16, scale=0.01, offset=-273.15)
    assert decode(kelvin, [29315]) == pytest.approx(20.0)
    assert encode(kelvin, 20.0) == (29315,)
    assert tenths.value_type is DataType.FLOAT64
    assert point(DataType.INT16).value_type is DataType.INT16
    assert isinstance(decode(point(DataType.INT32), [0, 7]), int)


@pytest.mark.parametrize(
    ("at", "value", "message"),
    [
        (point(DataType.INT16), 32768, "out of range for int16"),
        (point(DataType.UINT16), -1, "out of range for uint16"),
        (point(DataType.UINT64), 1 << 64, "out of range for uint64"),
        (point(DataType.INT16), 1.5, "takes an integer"),
        (point(DataType.INT16), math.nan, "takes an integer"),
        (point(DataType.INT16, scale=0.1), 3276.8, "out of range for int16"),
        (point(DataType.INT16, scale=0.1), math.inf, "has no int16 value"),
        (point(DataType.FLOAT32), 1e39, "out of range for float32"),
        (point(DataType.FLOAT32), 10**400, "out of range for float32"),
        (point(DataType.INT32), True, "takes a number"),
        (point(DataType.INT32), "7", "takes a number"),
        (point(DataType.STRING, length=1), "ABC", "do not fit in 1 registers"),
        (point(DataType.STRING, length=2), "A\0B", "contains NUL"),
        (point(DataType.STRING, length=2), 5, "takes text"),
    ],
)
def test_values_that_do_not_fit(at: Point, value: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(at, value)


def test_registers_that_do_not_decode() -> None:
    with pytest.raises(CodecError, match="2 registers, 1 expected"):
        decode(point(DataType.INT16), [1, 2])
    with pytest.raises(CodecError, match="not a 16-bit register"):
        decode(point(DataType.UINT16), [0x10000])
    with pytest.raises(CodecError, match="not UTF-8"):
        decode(point(DataType.STRING, length=1), [0xFF41])


def test_coil_values() -> None:
    coil = Point("c", Table.COIL, 3, DataType.BOOL, writable=True)
    assert encode_bit(coil, True) is True
    assert encode_bit(coil, 0) is False
    with pytest.raises(CodecError, match="true or false"):
        encode_bit(coil, 2)
    with pytest.raises(CodecError, match="not written on its own"):
        encode(Point("b", Table.HOLDING_REGISTER, 0, DataType.BOOL, bit=1), True)


# --- round trips --------------------------------------------------------------------------------

orders = st.sampled_from(ORDERS)


def _float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


VALUES: dict[DataType, st.SearchStrategy[Any]] = {
    kind: st.integers(*kind.integer_range)
    for kind in (
        DataType.INT16,
        DataType.UINT16,
        DataType.INT32,
        DataType.UINT32,
        DataType.INT64,
        DataType.UINT64,
    )
}
VALUES[DataType.FLOAT32] = st.floats(width=32, allow_nan=False).map(_float32)
VALUES[DataType.FLOAT64] = st.floats(allow_nan=False)


@given(kind=st.sampled_from(sorted(VALUES)), order=orders, data=st.data())
def test_numbers_round_trip(
    kind: DataType, order: tuple[Order, Order], data: st.DataObject
) -> None:
    value = data.draw(VALUES[kind])
    at = point(kind, *order)
    registers = encode(at, value)
    assert len(registers) == kind.registers
    assert all(0 <= register <= 0xFFFF for register in registers)
    assert decode(at, registers) == value


@pytest.mark.parametrize("order", ORDERS)
def test_nan_round_trips(order: tuple[Order, Order]) -> None:
    for kind in (DataType.FLOAT32, DataType.FLOAT64):
        decoded = decode(point(kind, *order), encode(point(kind, *order), math.nan))
        assert isinstance(decoded, float)
        assert math.isnan(decoded)


@given(
    kind=st.sampled_from([DataType.INT16, DataType.UINT32, DataType.INT64]),
    order=orders,
    raw=st.integers(0, 30000),
    scale=st.sampled_from([0.1, 0.01, 2.0, 0.5]),
    offset=st.sampled_from([0.0, -273.15, 100.0]),
)
def test_scaled_integers_round_trip(
    kind: DataType, order: tuple[Order, Order], raw: int, scale: float, offset: float
) -> None:
    at = point(kind, *order, scale=scale, offset=offset)
    value = raw * scale + offset
    assert decode(at, encode(at, value)) == pytest.approx(value, abs=scale / 2)
    assert encode(at, value) == encode(point(kind, *order), raw)


@given(
    byte=st.sampled_from([B, L]),
    length=st.integers(1, 8),
    text=st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=16),
)
def test_strings_round_trip(byte: Order, length: int, text: str) -> None:
    at = point(DataType.STRING, byte, length=length)
    if len(text.encode()) > 2 * length:
        with pytest.raises(CodecError):
            encode(at, text)
        return
    assert decode(at, encode(at, text)) == text


@given(
    kind=st.sampled_from(list(DataType)),
    order=orders,
    registers=st.lists(st.integers(-5, 0x1_0005), min_size=0, max_size=6),
)
def test_any_registers_decode_or_fail_cleanly(
    kind: DataType, order: tuple[Order, Order], registers: list[int]
) -> None:
    extra: dict[str, Any] = {"length": 3} if kind is DataType.STRING else {}
    if kind is DataType.BOOL:
        extra = {"bit": 3}
    at = point(kind, *order, **extra)
    try:
        value = decode(at, registers)
    except CodecError:
        return
    assert len(registers) == at.count
    assert isinstance(value, (bool, int, float, str))

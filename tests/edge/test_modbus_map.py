"""The register map: points checked when built, and read from gateway.toml's device entries."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.edge.modbus import parse_devices
from plantwire.edge.modbus_map import (
    DataType,
    MapError,
    Order,
    Point,
    ReadLimits,
    RegisterMap,
    Table,
    parse_register_map,
)

HR = Table.HOLDING_REGISTER

EXAMPLE = """
[[modbus.devices]]
name = "meter-1"
host = "10.0.0.7"
unit = 3
word_order = "little"
poll_interval = 2.0
max_gap_registers = 4

[[modbus.devices.points]]
name = "voltage_l1"
table = "input_register"
address = 0
type = "float32"

[[modbus.devices.points]]
name = "energy_wh"
table = "input_register"
address = 40
type = "uint64"
word_order = "big"
poll_interval = 60

[[modbus.devices.points]]
name = "setpoint"
table = "holding_register"
address = 100
type = "int16"
scale = 0.1
writable = true

[[modbus.devices.points]]
name = "serial"
table = "holding_register"
address = 200
type = "string"
length = 8

[[modbus.devices.points]]
name = "alarm"
table = "input_register"
address = 10
type = "bool"
bit = 4

[[modbus.devices.points]]
name = "pump_on"
table = "coil"
address = 0
type = "bool"
writable = true
unit = 4
"""


def test_a_device_entry() -> None:
    entry = dict(tomllib.loads(EXAMPLE)["modbus"]["devices"][0])
    del entry["name"], entry["host"]
    register_map = parse_register_map(entry)
    assert register_map.limits == ReadLimits(max_gap_registers=4)
    voltage = register_map.point("voltage_l1")
    assert voltage == Point(
        "voltage_l1",
        Table.INPUT_REGISTER,
        0,
        DataType.FLOAT32,
        unit=3,
        word_order=Order.LITTLE,
        poll_interval=2.0,
    )
    assert register_map.point("energy_wh").word_order is Order.BIG
    assert register_map.point("energy_wh").poll_interval == 60.0
    assert register_map.point("setpoint").scale == 0.1
    assert register_map.point("setpoint").writable
    assert register_map.point("serial").count == 8
    assert register_map.point("alarm").bit == 4
    assert register_map.point("pump_on").unit == 4
    with pytest.raises(KeyError):
        register_map.point("nothing")


def hr(**changes: Any) -> Point:
    fields: dict[str, Any] = {"name": "p", "table": HR, "address": 0, "data_type": DataType.INT16}
    fields.update(changes)
    return Point(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": 65536}, "address 65536 is outside 0 to 65535"),
        ({"address": -1}, "address -1 is outside"),
        ({"address": 65535, "data_type": DataType.INT32}, "run past address 65535"),
        ({"address": 65535, "data_type": DataType.STRING, "length": 2}, "run past"),
        ({"table": Table.COIL}, "can only be bool, not int16"),
        ({"table": Table.DISCRETE_INPUT, "data_type": DataType.FLOAT32}, "can only be bool"),
        ({"data_type": DataType.BOOL}, "needs the bit"),
        ({"data_type": DataType.BOOL, "bit": 16}, "bit 16 is outside"),
        ({"bit": 2}, "bit is for a bool in a holding or input register"),
        ({"table": Table.COIL, "data_type": DataType.BOOL, "bit": 0}, "bit is for a bool"),
        ({"data_type": DataType.STRING}, "needs a length of 1 to 125"),
        ({"data_type": DataType.STRING, "length": 126}, "needs a length"),
        ({"length": 2}, "length is for strings; a int16 always spans 1"),
        ({"data_type": DataType.STRING, "length": 2, "scale": 2.0}, "for numbers, not string"),
        ({"scale": 0.0}, "scale must be finite and non-zero"),
        ({"offset": float("nan")}, "offset finite"),
        ({"poll_interval": 0.0}, "positive number of seconds"),
        ({"unit": 256}, "unit 256"),
        ({"name": ""}, "non-empty"),
        ({"table": Table.INPUT_REGISTER, "writable": True}, "input_register cannot be written"),
        ({"data_type": DataType.BOOL, "bit": 1, "writable": True}, "bit of a register cannot"),
    ],
)
def test_bad_points(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MapError, match=message):
        hr(**changes)


def test_overlapping_points_are_allowed() -> None:
    RegisterMap((hr(name="a", data_type=DataType.UINT32), hr(name="b"), hr(name="c", address=1)))


def test_bad_maps() -> None:
    with pytest.raises(MapError, match="'a': the name is used twice"):
        RegisterMap((hr(name="a"), hr(name="a", address=5)))
    with pytest.raises(MapError, match="8 registers do not fit in one read of at most"):
        RegisterMap((hr(data_type=DataType.STRING, length=8),), ReadLimits(max_registers=4))
    with pytest.raises(MapError, match="max_registers must be 1 to 125"):
        ReadLimits(max_registers=126)
    with pytest.raises(MapError, match="max_bits must be 1 to 2000"):
        ReadLimits(max_bits=2001)
    with pytest.raises(MapError, match="cannot be negative"):
        ReadLimits(max_gap_registers=-1)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"colour": 1}, "unknown device keys: colour"),
        ({"points": "x"}, "points must be a list"),
        ({"points": [1]}, "each point must be a table"),
        ({"points": [{"table": "coil"}]}, "needs a name"),
        ({"points": [{"name": "a", "table": "coil", "type": "bool"}]}, "'a': address is missing"),
        (
            {"points": [{"name": "a", "table": "coils", "address": 0, "type": "bool"}]},
            "table 'coils' is not one of coil, discrete_input",
        ),
        (
            {"points": [{"name": "a", "table": "coil", "address": 0, "type": "float"}]},
            "type 'float' is not one of bool",
        ),
        (
            {"points": [{"name": "a", "table": "coil", "address": "0", "type": "bool"}]},
            "address must be int, not '0'",
        ),
        (
            {"points": [{"name": "a", "table": "coil", "address": True, "type": "bool"}]},
            "address must be int, not True",
        ),
        (
            {"points": [{"name": "a", "table": "coil", "address": 0, "type": "bool", "adress": 1}]},
            "'a': unknown keys: adress",
        ),
        (
            {
                "byte_order": "middle",
                "points": [{"name": "a", "table": "coil", "address": 0, "type": "bool"}],
            },
            "byte_order 'middle' is not one of big, little",
        ),
        ({"max_gap_registers": 1.5}, "max_gap_registers must be int"),
        (
            {
                "poll_interval": "1s",
                "points": [{"name": "a", "table": "coil", "address": 0, "type": "bool"}],
            },
            "poll_interval must be float",
        ),
    ],
)
def test_bad_entries(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(MapError, match=message):
        parse_register_map(entry)


def test_integers_are_taken_as_floats() -> None:
    entry = {
        "points": [
            {
                "name": "a",
                "table": "holding_register",
                "address": 0,
                "type": "int16",
                "scale": 2,
                "poll_interval": 5,
            }
        ]
    }
    point = parse_register_map(entry).point("a")
    assert (point.scale, point.poll_interval) == (2.0, 5.0)
    assert isinstance(point.scale, float)


def test_sparkplug_types() -> None:
    from plantwire.telemetry.sparkplug import DataType as SparkplugType

    for kind in DataType:
        assert SparkplugType[kind.sparkplug_name].name == kind.sparkplug_name
    assert hr(scale=0.5).value_type.sparkplug_name == "Double"
    assert hr(data_type=DataType.FLOAT32).value_type.sparkplug_name == "Float"


_KEYS = st.sampled_from(
    [
        "name",
        "table",
        "address",
        "type",
        "unit",
        "length",
        "bit",
        "byte_order",
        "word_order",
        "scale",
        "offset",
        "poll_interval",
        "writable",
        "points",
        "max_registers",
        "max_gap_bits",
        "host",
        "port",
        "serial_port",
        "parity",
        "timeout",
        "retries",
        "devices",
        "other",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from(["coil", "holding_register", "int16", "string", "bool", "big", "x", ""])
)
_TOML = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=8),
    max_leaves=30,
)


@given(section=st.dictionaries(_KEYS, _TOML, max_size=4))
def test_any_configuration_parses_or_says_why(section: dict[str, Any]) -> None:
    """Whatever a gateway.toml's [modbus] section holds: devices, or a MapError."""
    try:
        parse_devices(section)
    except MapError as exc:
        message = str(exc)
    else:
        message = "parsed"
    assert message


@given(entry=st.dictionaries(_KEYS, _TOML, max_size=8))
def test_any_device_entry_parses_or_says_why(entry: dict[str, Any]) -> None:
    entry.pop("host", None)
    entry.pop("port", None)
    entry.pop("serial_port", None)
    entry.pop("parity", None)
    entry.pop("timeout", None)
    entry.pop("retries", None)
    entry.pop("devices", None)
    entry.pop("name", None)
    try:
        parse_register_map(entry)
    except MapError as exc:
        message = str(exc)
    else:
        message = "parsed"
    assert message

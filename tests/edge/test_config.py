"""gateway.toml: the documented example runs, every problem is named with its key and line,
and the JSON schema says the same as the checks."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema_rs
import pytest
from typer.testing import CliRunner

from plantwire.cli import app
from plantwire.edge.config import ConfigError, json_schema, load_config, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "edge.md"


def documented_example() -> str:
    """The full gateway.toml of docs/edge.md (the block after "A whole gateway.toml")."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"A whole `gateway.toml`.*?```toml\n(.*?)```", text, re.S)
    assert found is not None, "docs/edge.md lost its whole gateway.toml example"
    return found.group(1)


def test_the_documented_example_is_valid_and_complete() -> None:
    config = parse_config(documented_example())
    assert (config.node.group, config.node.edge_node) == ("Plant1", "Gateway1")
    assert config.uplink.primary_host == "plantwire"
    assert [device.name for device in config.modbus_devices] == ["meter-1"]
    (server,) = config.opcua_servers
    assert [(node.device, node.metric, node.writable) for node in server.nodes] == [
        ("cnc-1", "SpindleSpeed", False),
        ("cnc-1", "SpeedSetpoint", True),
    ]
    assert jsonschema_rs.validator_for(json_schema()).is_valid(tomllib.loads(documented_example()))


BASE = '[node]\ngroup = "Plant1"\nedge_node = "Gateway1"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n" + BASE, r"gateway.toml:1: colour: Extra inputs are not permitted"),
        (BASE + "colour = 1\n", r"gateway.toml:4: node.colour: Extra inputs are not permitted"),
        (
            BASE + "[uplink]\nhost = 'x'\nport = 99999\n",
            r"gateway.toml:6: uplink.port: Input should be less than or equal to 65535",
        ),
        (
            '[node]\nedge_node = "G"\n',
            r"gateway.toml:1: node.group: Field required",
        ),
        (
            BASE + '[[modbus.devices]]\nname = "a"\nhost = "h"\n[[modbus.devices.points]]\n'
            'name = "p"\ntable = "coil"\naddress = 0\ntype = "bool"\n'
            '[[modbus.devices]]\nname = "b"\nhost = "h"\n[[modbus.devices.points]]\n'
            'name = "q"\ntable = "holding"\naddress = 0\ntype = "int16"\n',
            r"gateway.toml:17: modbus.devices\[1\].points\[0\].table: Input should be",
        ),
        (
            BASE + '[[modbus.devices]]\nname = "a"\nhost = "h"\n[[modbus.devices.points]]\n'
            'name = "p"\ntable = "coil"\naddress = 0\ntype = "bool"\nscale = 2.0\n',
            r"gateway.toml: modbus: device 'a'.*scale",
        ),
        ('[node]\ngroup = "Plant/1"\nedge_node = "G"\n', r"gateway.toml: node: .*group id"),
        ("[node\n", r"gateway.toml: not TOML"),
        (BASE + "[buffer]\nmax_bytes = 10\n", r"gateway.toml:5: buffer.max_bytes"),
    ],
)
def test_each_problem_is_named_with_its_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_every_problem_is_named_not_only_the_first() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(BASE + "[uplink]\nport = 0\nqos = 2\n")
    assert "uplink.port" in str(raised.value)
    assert "uplink.qos" in str(raised.value)


def test_the_schema_refuses_what_the_checks_refuse() -> None:
    validator = jsonschema_rs.validator_for(json_schema())
    assert not validator.is_valid(tomllib.loads("colour = 1\n" + BASE))
    assert not validator.is_valid(tomllib.loads(BASE + "[uplink]\nport = 0\n"))
    assert not validator.is_valid({"uplink": {}})  # no [node]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "gateway.toml")


def test_the_cli_prints_the_schema_and_refuses_a_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["gateway", "--schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == json_schema()
    bad = tmp_path / "gateway.toml"
    bad.write_text(BASE + "[uplink]\nport = 'x'\n")
    refused = runner.invoke(app, ["gateway", "--config", str(bad)])
    assert refused.exit_code == 2
    assert f"{bad}:5: uplink.port" in refused.stderr
    assert runner.invoke(app, ["gateway"]).exit_code == 2

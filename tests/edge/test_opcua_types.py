"""OPC UA values ↔ Sparkplug metrics, the connector's config and browse paths, without a
server."""

from __future__ import annotations

import math
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import ua
from hypothesis import given
from hypothesis import strategies as st

from plantwire.edge.opcua_config import (
    OpcUaConfigError,
    SecurityMode,
    server_from_mapping,
    servers_from_toml,
)
from plantwire.edge.opcua_types import (
    SCALAR_TYPES,
    UnsupportedValue,
    browse_path_text,
    epoch_ms,
    metric_value,
    parse_browse_path,
    quality,
    write_variant,
)
from plantwire.telemetry.sparkplug.model import DataType

V = ua.VariantType
INTEGERS = {
    V.SByte: (-(2**7), 2**7 - 1),
    V.Byte: (0, 2**8 - 1),
    V.Int16: (-(2**15), 2**15 - 1),
    V.UInt16: (0, 2**16 - 1),
    V.Int32: (-(2**31), 2**31 - 1),
    V.UInt32: (0, 2**32 - 1),
    V.Int64: (-(2**63), 2**63 - 1),
    V.UInt64: (0, 2**64 - 1),
}


@given(st.sampled_from(sorted(INTEGERS)), st.data())
def test_integers_written_come_back_as_they_went(variant_type: V, data: st.DataObject) -> None:
    low, high = INTEGERS[variant_type]
    value = data.draw(st.integers(low, high))
    variant = write_variant(value, variant_type, array=False)
    assert variant.VariantType == variant_type
    assert metric_value(variant) == (SCALAR_TYPES[variant_type], value)
    outside = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    with pytest.raises(UnsupportedValue, match="out of range"):
        write_variant(outside, variant_type, array=False)


@given(st.lists(st.integers(-(2**15), 2**15 - 1), max_size=20))
def test_arrays_written_come_back_as_lists(values: list[int]) -> None:
    variant = write_variant(values, V.Int16, array=True)
    assert metric_value(variant) == (DataType.Int16Array, values)


def test_scalars_of_the_other_types() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    guid = uuid.uuid4()
    cases: list[tuple[object, V, DataType, object]] = [
        (True, V.Boolean, DataType.Boolean, True),
        (1.5, V.Float, DataType.Float, 1.5),
        (3, V.Double, DataType.Double, 3.0),
        ("x", V.String, DataType.String, "x"),
        (epoch_ms(when), V.DateTime, DataType.DateTime, epoch_ms(when)),
        (when, V.DateTime, DataType.DateTime, epoch_ms(when)),
        (b"\x00", V.ByteString, DataType.Bytes, b"\x00"),
        (str(guid), V.Guid, DataType.UUID, str(guid)),
        (guid, V.Guid, DataType.UUID, str(guid)),
    ]
    for value, variant_type, datatype, expected in cases:
        assert metric_value(write_variant(value, variant_type, False)) == (datatype, expected)
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1)) == 1000  # naive: UTC


@pytest.mark.parametrize(
    ("value", "variant_type", "reason"),
    [
        (True, V.Int16, "a bool cannot be written to a Int16 node"),
        (1.0, V.Int32, "a float cannot be written to a Int32 node"),
        (1, V.Boolean, "a int cannot be written to a Boolean node"),
        (1e39, V.Float, "1e+39 is out of range for Float"),
        ("x", V.Guid, "'x' is not a GUID"),
        (datetime(2026, 1, 1), V.DateTime, "a datetime cannot be written to a DateTime node"),
        (ua.LocalizedText("x"), V.LocalizedText, "writing OPC UA LocalizedText is not supported"),
    ],
)
def test_writes_that_do_not_fit_are_refused(value: object, variant_type: V, reason: str) -> None:
    with pytest.raises(UnsupportedValue) as refused:
        write_variant(value, variant_type, array=False)
    assert str(refused.value) == reason


def test_values_without_a_sparkplug_type_are_refused_with_the_reason() -> None:
    cases = [
        (ua.Variant(ua.LocalizedText("x")), "OPC UA LocalizedText has no Sparkplug B data type"),
        (ua.Variant([b"a"], V.ByteString), "OPC UA arrays of ByteString has no Sparkplug B"),
        (
            ua.Variant([[1, 2], [3, 4]], V.Int32, Dimensions=[ua.Int32(2), ua.Int32(2)]),
            "2-dimensional array",
        ),
        (ua.Variant(None, V.Null), "a Null value carries no type"),
    ]
    for variant, reason in cases:
        with pytest.raises(UnsupportedValue, match=reason):
            metric_value(variant)


def test_quality_follows_the_severity_bits() -> None:
    assert quality(0) == 192
    assert quality(ua.StatusCodes.GoodOverload) == 192
    assert quality(ua.StatusCodes.UncertainLastUsableValue) == 64
    assert quality(ua.StatusCodes.BadSensorFailure) == 0
    assert quality(0xC0000000) == 0  # severity 11, reserved: bad


@given(
    st.lists(
        st.tuples(
            st.integers(0, 65535), st.text(st.characters(blacklist_characters="/"), min_size=1)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_browse_paths_round_trip(elements: list[tuple[int, str]]) -> None:
    text = "/".join(f"{index}:{name}" for index, name in elements)
    names = parse_browse_path(text)
    assert [(name.NamespaceIndex, name.Name) for name in names] == elements
    assert browse_path_text(names) == text


@pytest.mark.parametrize("path", ["", "Objects", "0:Objects/Plant", "x:Objects", "0:", "0:a//1:b"])
def test_malformed_browse_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="browse path"):
        parse_browse_path(path)


# --- gateway.toml --------------------------------------------------------------------------

GATEWAY_TOML = """
[[opcua.servers]]
name = "press-line"
endpoint = "opc.tcp://10.0.0.5:4840"
security_mode = "SignAndEncrypt"
security_policy = "Basic256Sha256"
certificate = "pki/gateway.der"
private_key = "pki/gateway.pem"
username = "gateway"
password = "s3cret"
publishing_interval_ms = 500
device = "press-1"

[[opcua.servers.nodes]]
metric = "Temperature"
node_id = "ns=2;s=Press1.Temperature"
sampling_interval_ms = 250
deadband = 0.5

[[opcua.servers.nodes]]
metric = "Setpoint"
browse_path = "0:Objects/2:Plant/2:Press1/2:Setpoint"
writable = true

[[opcua.servers.nodes]]
metric = "Count"
device = "counter-1"
node_id = "ns=2;i=1001"
"""


def test_the_documented_gateway_toml_reads() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "edge.md"
    text = docs.read_text(encoding="utf-8")
    start = text.index("```toml\n", text.index("## OPC UA connector")) + len("```toml\n")
    documented = servers_from_toml(tomllib.loads(text[start : text.index("```", start)]))
    assert documented  # the example in docs/edge.md is a valid configuration

    [server] = servers_from_toml(tomllib.loads(GATEWAY_TOML), base=Path("/etc/plantwire"))
    assert server.name == "press-line"
    assert server.security_mode == SecurityMode.SIGN_AND_ENCRYPT
    assert server.certificate == Path("/etc/plantwire/pki/gateway.der")
    assert server.publishing_ms == 500.0
    temperature, setpoint, count = server.nodes
    assert (temperature.device, temperature.sampling_ms, temperature.deadband) == (
        "press-1",
        250.0,
        0.5,
    )
    assert (setpoint.browse_path, setpoint.writable, setpoint.node_id) == (
        "0:Objects/2:Plant/2:Press1/2:Setpoint",
        True,
        None,
    )
    assert count.device == "counter-1"
    assert server.node("press-1", "Setpoint") is setpoint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('endpoint = "http://x"', "opcua.servers[0].endpoint: 'http://x' is not an opc.tcp://"),
        ('security_policy = "Basic128Rsa15"', "security_policy: 'Basic128Rsa15' is not one of"),
        ('security_mode = "Encrypt"', "security_mode: 'Encrypt' is not one of None, Sign,"),
        ("publishing_interval_ms = -1", "publishing_ms: must be a positive number"),
        ('publishing_interval_ms = "fast"', "publishing_interval_ms: 'fast' is not a number"),
        ("colour = 1", "opcua.servers[0].colour: unknown key"),
    ],
)
def test_bad_server_settings_name_the_key(change: str, message: str) -> None:
    key = change.split(" = ")[0]
    lines = [line for line in GATEWAY_TOML.splitlines() if not line.startswith(f"{key} =")]
    lines.insert(lines.index("[[opcua.servers]]") + 1, change)
    with pytest.raises(OpcUaConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        servers_from_toml(tomllib.loads("\n".join(lines)))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ('metric = "a"\nnode_id = "garbage"', r"nodes\[0\].node_id: 'garbage' is not a NodeId"),
        ('metric = "a"', r"nodes\[0\]: give exactly one of node_id and browse_path"),
        ('metric = "a"\nbrowse_path = "Objects"', r"nodes\[0\].browse_path: browse path element"),
        (
            'metric = "a"\nnode_id = "i=1"\ndeadband = -1',
            r"nodes\[0\].deadband: must be a number, 0 or more",
        ),
        ('metric = "a"\nnode_id = "i=1"\nwritable = "yes"', r"writable: 'yes' is not a boolean"),
        ('node_id = "i=1"', r"nodes\[0\].metric: missing"),
    ],
)
def test_bad_nodes_name_the_key(node: str, message: str) -> None:
    document = f'[[opcua.servers]]\nendpoint = "opc.tcp://h:4840"\n[[opcua.servers.nodes]]\n{node}'
    with pytest.raises(OpcUaConfigError, match=message):
        servers_from_toml(tomllib.loads(document))


def test_whole_server_rules() -> None:
    base = '[[opcua.servers]]\nendpoint = "opc.tcp://h:4840"\n'
    node = '[[opcua.servers.nodes]]\nmetric = "a"\nnode_id = "i=1"\n'
    cases = {
        base: "nodes: no nodes to subscribe to",
        base + 'security_mode = "Sign"\nsecurity_policy = "Basic256Sha256"\n' + node: (
            "certificate: security_mode Sign needs certificate and key"
        ),
        base + 'username = "u"\n' + node: "username: username and password go together",
        base + node + node: "'a' of device '' appears twice",
        base + node + base + node: "two servers are named 'opc.tcp://h:4840'",
    }
    for document, message in cases.items():
        with pytest.raises(OpcUaConfigError, match=message):
            servers_from_toml(tomllib.loads(document))
    assert servers_from_toml({}) == []


_VALUES = st.one_of(
    st.sampled_from(
        [
            "opc.tcp://h:4840",
            "ns=2;i=1",
            "0:Objects/2:Plant",
            "SignAndEncrypt",
            "Basic256Sha256",
            "None",
            "a",
            "",
        ]
    ),
    st.text(max_size=20),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
_SERVER_KEYS = ["endpoint", "name", "security_mode", "security_policy", "certificate"]
_SERVER_KEYS += ["private_key", "username", "password", "publishing_interval_ms", "device"]
_SERVER_KEYS += ["reconnect_min_seconds", "reconnect_max_seconds", "junk"]
_NODE_KEYS = ["metric", "device", "node_id", "browse_path", "sampling_interval_ms"]
_NODE_KEYS += ["deadband", "writable", "junk"]


@given(
    st.dictionaries(st.sampled_from(_SERVER_KEYS), _VALUES),
    st.one_of(
        st.lists(st.dictionaries(st.sampled_from(_NODE_KEYS), _VALUES), max_size=3),
        _VALUES,
    ),
)
def test_garbage_configs_are_refused_with_a_reason(table: dict[str, object], nodes: object) -> None:
    try:
        config = server_from_mapping({**table, "nodes": nodes})
    except OpcUaConfigError as error:
        message = str(error)
    else:  # what passes is usable: an opc.tcp endpoint, some nodes, finite numbers
        assert config.nodes
        assert config.endpoint.startswith("opc.tcp://")
        numbers = [config.publishing_ms, config.reconnect_min_s, config.reconnect_max_s]
        for node in config.nodes:
            numbers += [node.sampling_ms, 0.0 if node.deadband is None else node.deadband]
        assert all(math.isfinite(number) and number >= 0 for number in numbers)
        return
    assert message.startswith("opcua.servers[0]")

"""The OPC UA connector against a real asyncua server on a loopback port: every mapped type,
deadband, browse paths, status codes, a server restart, write-back and a secured connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from plantwire.edge.buffer import BufferedPoint
from plantwire.edge.opcua import ConnectionState, OpcUaConnector, OpcUaSample, connect_client
from plantwire.edge.opcua_browse import browse_variables
from plantwire.edge.opcua_config import NodeConfig, OpcUaServerConfig, SecurityMode
from plantwire.edge.opcua_types import epoch_ms
from plantwire.telemetry.sparkplug.model import DataType
from tests.conftest import free_ports
from tests.edge.opcua_server import GUID, TYPED, WHEN, PlantServer, SilentProxy, make_server

pytestmark = pytest.mark.timeout(60)


def config(plant: PlantServer, nodes: Iterable[NodeConfig], **options: Any) -> OpcUaServerConfig:
    """The plant's server with short intervals: publishing 50 ms, a probe every 0.3 s,
    reconnects after 0.2 s doubling up to 1 s."""
    fast = OpcUaServerConfig(
        plant.endpoint,
        tuple(nodes),
        publishing_ms=50.0,
        keepalive_s=0.3,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )
    return dataclasses.replace(fast, **options)


def press(plant: PlantServer, name: str, **options: Any) -> NodeConfig:
    node = NodeConfig(name, "press-1", plant.node_id(f"Press1.{name}"), sampling_ms=20.0)
    return dataclasses.replace(node, **options)


@contextlib.asynccontextmanager
async def serving(plant: PlantServer) -> AsyncIterator[PlantServer]:
    await plant.server.start()
    try:
        yield plant
    finally:
        await plant.stop()


@contextlib.asynccontextmanager
async def running(connector: OpcUaConnector, connected: bool = True) -> AsyncIterator[None]:
    task = asyncio.create_task(connector.run())
    try:
        if connected:
            await connector.wait_connected(10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert connector.health().state == ConnectionState.STOPPED


async def sample_of(
    queue: asyncio.Queue[OpcUaSample], metric: str, within: float = 5.0, **fields: object
) -> OpcUaSample:
    """The next sample of ``metric`` (with the given field values), skipping others."""
    async with asyncio.timeout(within):
        while True:
            sample = await queue.get()
            if sample.metric == metric and all(
                getattr(sample, key) == value for key, value in fields.items()
            ):
                return sample


@pytest.fixture
def port() -> int:
    return free_ports(1)[0]


# --- values --------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[DataType, object]] = {
    "Boolean": (DataType.Boolean, True),
    "SByte": (DataType.Int8, -5),
    "Byte": (DataType.UInt8, 200),
    "Int16": (DataType.Int16, -300),
    "UInt16": (DataType.UInt16, 60000),
    "Int32": (DataType.Int32, -70000),
    "UInt32": (DataType.UInt32, 4_000_000_000),
    "Int64": (DataType.Int64, -(2**40)),
    "UInt64": (DataType.UInt64, 2**63 + 5),
    "Float": (DataType.Float, 1.5),
    "Double": (DataType.Double, 2.25),
    "String": (DataType.String, "héllo"),
    "DateTime": (DataType.DateTime, epoch_ms(WHEN)),
    "ByteString": (DataType.Bytes, b"\x00\x01\xff"),
    "Guid": (DataType.UUID, str(GUID)),
    "BooleanArray": (DataType.BooleanArray, [True, False]),
    "SByteArray": (DataType.Int8Array, [-1, 2]),
    "ByteArray": (DataType.UInt8Array, [1, 2, 255]),
    "Int16Array": (DataType.Int16Array, [1, -2]),
    "UInt16Array": (DataType.UInt16Array, [1, 65535]),
    "Int32Array": (DataType.Int32Array, [-(2**31), 7]),
    "UInt32Array": (DataType.UInt32Array, [2**32 - 1]),
    "Int64Array": (DataType.Int64Array, [-(2**63), 2**62]),
    "UInt64Array": (DataType.UInt64Array, [2**64 - 1, 0]),
    "FloatArray": (DataType.FloatArray, [0.5, -1.25]),
    "DoubleArray": (DataType.DoubleArray, [1.0, 2.5]),
    "StringArray": (DataType.StringArray, ["a", "b"]),
    "DateTimeArray": (DataType.DateTimeArray, [epoch_ms(WHEN)]),
}


async def test_every_supported_type_arrives_with_its_sparkplug_type(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        nodes = [
            NodeConfig(name, "types", plant.node_id(f"Types.{name}"), sampling_ms=20)
            for name in TYPED
        ]
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        connector = OpcUaConnector(config(plant, nodes), queue.put)
        async with running(connector):
            got: dict[str, OpcUaSample] = {}
            async with asyncio.timeout(5):
                while set(EXPECTED) - got.keys():
                    sample = await queue.get()
                    got[sample.metric] = sample
            for name, (datatype, value) in EXPECTED.items():
                sample = got[name]
                assert (sample.datatype, sample.value) == (datatype, value), name
                assert type(sample.value) is type(value), name
                assert (sample.device, sample.quality, sample.status) == ("types", 192, 0)
                assert isinstance(sample, BufferedPoint)  # buffered as it is
            health = connector.health()
            # refused per node with the reason; the others unaffected
            assert health.refused == {
                ("types", "LocalizedText"): "OPC UA LocalizedText has no Sparkplug B data type",
                ("types", "GuidArray"): "OPC UA arrays of Guid has no Sparkplug B data type",
            }
            assert "LocalizedText" not in got
            assert "GuidArray" not in got
            # declared by the node (scalars) or learnt from the value (arrays)
            assert connector.datatypes()[("types", "Double")] == DataType.Double
            assert connector.datatypes()[("types", "Int16Array")] == DataType.Int16Array
            assert health.state == ConnectionState.CONNECTED
            assert health.data_changes >= len(EXPECTED)


async def test_changes_timestamps_and_status_codes(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        connector = OpcUaConnector(config(plant, [press(plant, "Temperature")]), queue.put)
        async with running(connector):
            first = await sample_of(queue, "Temperature")
            assert (first.device, first.value, first.datatype) == ("press-1", 20.0, 10)

            source = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
            await plant.set("Temperature", 21.5, source=source)
            changed = await sample_of(queue, "Temperature", value=21.5)
            assert changed.timestamp == epoch_ms(source)  # the source's time, not ours
            assert (changed.quality, changed.status) == (192, 0)

            failure = ua.StatusCodes.BadSensorFailure
            await plant.set("Temperature", 21.5, status=failure)
            bad = await sample_of(queue, "Temperature", quality=0)
            assert bad.status == failure

            await plant.set("Temperature", None, status=ua.StatusCodes.BadNoCommunication)
            empty = await sample_of(queue, "Temperature", status=ua.StatusCodes.BadNoCommunication)
            assert (empty.value, empty.quality, empty.datatype) == (None, 0, DataType.Double)

            uncertain = ua.StatusCodes.UncertainLastUsableValue
            await plant.set("Temperature", 22.0, status=uncertain)
            doubtful = await sample_of(queue, "Temperature", value=22.0)
            assert (doubtful.quality, doubtful.status) == (64, uncertain)


async def test_every_change_between_two_publishes_arrives(port: int) -> None:
    """Sampling 20 ms, publishing 500 ms: the queue holds what the server takes between two
    publishes with room to spare, so 30 changes within one interval all arrive, in order
    (a queue of publishing / sampling = 25 would have dropped the oldest five)."""
    async with serving(await make_server(port)) as plant:
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        connector = OpcUaConnector(
            config(plant, [press(plant, "Temperature")], publishing_ms=500.0), queue.put
        )
        async with running(connector):
            assert (await sample_of(queue, "Temperature")).value == 20.0
            values = [30.0 + step for step in range(30)]
            for value in values:
                await plant.set("Temperature", value)
            received: list[object] = []
            async with asyncio.timeout(5):
                while len(received) < len(values):
                    received.append((await queue.get()).value)
            assert received == values


async def test_deadband_suppresses_small_changes(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        nodes = [press(plant, "Temperature", deadband=1.0)]
        connector = OpcUaConnector(config(plant, nodes), queue.put)
        async with running(connector):
            assert (await sample_of(queue, "Temperature")).value == 20.0
            # each small change is within 1.0 of both the last value written and the last
            # reported (asyncua's server compares with the former, the spec says the latter)
            for value in (20.4, 20.8, 20.5, 22.0, 22.3, 30.0):
                await plant.set("Temperature", value)
                await asyncio.sleep(0.05)
            reported: list[object] = []
            async with asyncio.timeout(5):
                while not reported or reported[-1] != 30.0:
                    reported.append((await queue.get()).value)
            assert reported == [22.0, 30.0]


async def test_browse_paths_are_resolved_and_bad_ones_refused(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        ns = plant.ns
        nodes = [
            NodeConfig(
                "temperature",
                "press-1",
                browse_path=f"0:Objects/{ns}:Plant/{ns}:Press1/{ns}:Temperature",
                sampling_ms=20,
            ),
            NodeConfig("ghost", "press-1", browse_path=f"0:Objects/{ns}:Plant/{ns}:Nothing"),
            NodeConfig("unknown-id", "press-1", node_id=f"ns={ns};s=No.Such.Node"),
        ]
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        connector = OpcUaConnector(config(plant, nodes), queue.put)
        async with running(connector):
            assert (await sample_of(queue, "temperature")).value == 20.0
            refused = connector.health().refused
            assert refused[("press-1", "ghost")] == (
                f"browse path 0:Objects/{ns}:Plant/{ns}:Nothing not found"
            )
            assert "BadNodeIdUnknown" in refused[("press-1", "unknown-id")]
            assert len(refused) == 2


async def test_browse_lists_variables_for_configs(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        client = await connect_client(config(plant, [press(plant, "Temperature")]))
        try:
            found = await browse_variables(client, f"0:Objects/{plant.ns}:Plant")
        finally:
            await client.disconnect()
    by_name = {variable.display_name: variable for variable in found}
    assert set(by_name) == {"Temperature", "Pressure", "Setpoint"}
    setpoint = by_name["Setpoint"]
    ns = plant.ns
    assert setpoint.node_id == f"ns={ns};s=Press1.Setpoint"
    assert setpoint.browse_path == f"0:Objects/{ns}:Plant/{ns}:Press1/{ns}:Setpoint"
    assert (setpoint.data_type, setpoint.datatype, setpoint.array) == ("Int16", 2, False)
    assert setpoint.writable
    assert not by_name["Temperature"].writable


# --- reconnection --------------------------------------------------------------------------


async def test_server_restart_is_reported_stale_then_data_resumes(port: int) -> None:
    queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
    plant = await make_server(port)
    await plant.server.start()
    connector = OpcUaConnector(config(plant, [press(plant, "Temperature")]), queue.put)
    async with running(connector):
        try:
            await sample_of(queue, "Temperature", value=20.0)
            await plant.set("Temperature", 25.0)
            await sample_of(queue, "Temperature", value=25.0)
        finally:
            await plant.stop()  # sockets closed, sessions and subscriptions gone

        stale = await sample_of(queue, "Temperature", quality=0)
        assert stale.value == 25.0  # the last value, now bad
        assert stale.status == ua.StatusCodes.BadNotConnected
        assert connector.health().state != ConnectionState.CONNECTED
        assert connector.health().last_error is not None
        await asyncio.sleep(1.0)  # attempts fail while the server is down
        assert queue.empty()  # reported stale once, not at every attempt

        await plant.set("Temperature", 30.0)  # changed while the server was down
        started = time.monotonic()
        async with serving(plant):  # the same address space, on the same port
            await connector.wait_connected(5)
            assert (await sample_of(queue, "Temperature")).value == 30.0
            await plant.set("Temperature", 26.0)
            resumed = await sample_of(queue, "Temperature", value=26.0)
            assert resumed.quality == 192
            assert time.monotonic() - started < 5
            health = connector.health()
            assert health.reconnects == 1
            assert health.failed_connects >= 1
            assert health.state == ConnectionState.CONNECTED


async def test_a_silent_connection_is_noticed_by_the_keepalive(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        proxy = SilentProxy(port)
        endpoint = f"opc.tcp://127.0.0.1:{await proxy.start()}"
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        nodes = (press(plant, "Temperature"),)
        settings = config(plant, nodes, endpoint=endpoint, timeout_s=1.0)
        connector = OpcUaConnector(settings, queue.put)
        try:
            async with running(connector):
                await sample_of(queue, "Temperature", value=20.0)
                proxy.silent = True  # no error, no closed socket: only silence
                started = time.monotonic()
                stale = await sample_of(queue, "Temperature", quality=0)
                assert time.monotonic() - started < 3  # keepalive 0.3 s, request timeout 1 s
                assert stale.status == ua.StatusCodes.BadNotConnected
                proxy.silent = False
                await plant.set("Temperature", 27.0)
                await sample_of(queue, "Temperature", value=27.0, within=10)
                assert connector.health().reconnects == 1
        finally:
            await proxy.stop()


async def test_a_server_that_is_not_there_is_retried(port: int) -> None:
    queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
    plant = await make_server(port)
    connector = OpcUaConnector(config(plant, [press(plant, "Temperature")]), queue.put)
    async with running(connector, connected=False):
        await asyncio.sleep(0.8)
        health = connector.health()
        assert health.state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
        assert health.failed_connects >= 2  # 0.2 s, then 0.4 s …
        assert health.last_error is not None
        async with serving(plant):
            await connector.wait_connected(5)
            assert (await sample_of(queue, "Temperature")).value == 20.0


# --- write-back ----------------------------------------------------------------------------


async def test_write_back_converts_to_the_nodes_type(port: int) -> None:
    async with serving(await make_server(port)) as plant:
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        nodes = [
            press(plant, "Setpoint", writable=True),
            press(plant, "Pressure", writable=True),
            press(plant, "Temperature", writable=True),  # not writable on the server
        ]
        connector = OpcUaConnector(config(plant, nodes), queue.put)
        async with running(connector):
            result = await connector.write("press-1", "Setpoint", 1234)
            assert (result.ok, result.status) == (True, 0)
            stored = await plant.nodes["Setpoint"].read_data_value()
            assert stored.Value is not None
            assert (stored.Value.Value, stored.Value.VariantType) == (1234, ua.VariantType.Int16)
            assert (await sample_of(queue, "Setpoint", value=1234)).datatype == DataType.Int16

            result = await connector.write("press-1", "Pressure", 3)  # an int to a Double
            assert result.ok
            stored = await plant.nodes["Pressure"].read_data_value()
            assert stored.Value is not None
            assert (stored.Value.Value, stored.Value.VariantType) == (3.0, ua.VariantType.Double)

            too_big = await connector.write("press-1", "Setpoint", 40000)
            assert not too_big.ok
            assert too_big.status == ua.StatusCodes.BadTypeMismatch
            assert too_big.reason == "40000 is out of range for Int16"
            text = await connector.write("press-1", "Pressure", "high")
            assert (text.ok, text.reason) == (False, "a str cannot be written to a Double node")

            refused = await connector.write("press-1", "Temperature", 1.0)
            assert not refused.ok
            assert refused.status == ua.StatusCodes.BadUserAccessDenied  # the server's answer
            assert (await plant.nodes["Setpoint"].read_value()) == 1234

            unknown = await connector.write("press-1", "Nothing", 1)
            assert (unknown.ok, unknown.status) == (False, ua.StatusCodes.BadNodeIdUnknown)


async def test_write_back_refuses_what_the_config_does_not_allow(port: int) -> None:
    nodes = (
        NodeConfig("Setpoint", "press-1", "ns=2;s=Press1.Setpoint"),
        NodeConfig("Pressure", "press-1", "ns=2;s=Press1.Pressure", writable=True),
    )
    queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
    connector = OpcUaConnector(OpcUaServerConfig(f"opc.tcp://127.0.0.1:{port}", nodes), queue.put)
    not_writable = await connector.write("press-1", "Setpoint", 1)
    assert (not_writable.ok, not_writable.status) == (False, ua.StatusCodes.BadUserAccessDenied)
    offline = await connector.write("press-1", "Pressure", 1.0)
    assert (offline.ok, offline.status) == (False, ua.StatusCodes.BadNotConnected)


# --- security ------------------------------------------------------------------------------


async def _certificate(
    folder: Path, name: str, uri: str, use: ObjectIdentifier
) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.der", folder / f"{name}.pem"
    await cert_gen.setup_self_signed_certificate(
        key, cert, uri, socket.gethostname(), [use], {"organizationName": "plantwire tests"}
    )
    return cert, key


async def test_signed_and_encrypted_with_a_password(port: int, tmp_path: Path) -> None:
    server_cert = await _certificate(
        tmp_path, "server", "urn:freeopcua:python:server", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert = await _certificate(
        tmp_path, "gateway", "urn:plantwire:gateway", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    plant = await make_server(port, certificate=server_cert, users={"gateway": "s3cret"})
    secured = {
        "security_mode": SecurityMode.SIGN_AND_ENCRYPT,
        "security_policy": "Basic256Sha256",
        "certificate": client_cert[0],
        "private_key": client_cert[1],
        "username": "gateway",
    }
    async with serving(plant):
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        nodes = [press(plant, "Temperature")]
        connector = OpcUaConnector(config(plant, nodes, **secured, password="s3cret"), queue.put)
        async with running(connector):
            assert (await sample_of(queue, "Temperature")).value == 20.0

        # a wrong password and an unsecured connection are both turned away, and said so
        for options in (
            {**secured, "password": "wrong"},
            {"username": "gateway", "password": "s3cret"},
        ):
            rejected = OpcUaConnector(config(plant, nodes, **options), queue.put)
            async with running(rejected, connected=False):
                for _ in range(200):
                    if rejected.health().last_error is not None:
                        break
                    await asyncio.sleep(0.05)
                assert rejected.health().state != ConnectionState.CONNECTED
                assert rejected.health().failed_connects >= 1


async def test_signed_with_aes128_anonymously(port: int, tmp_path: Path) -> None:
    server_cert = await _certificate(
        tmp_path, "server", "urn:freeopcua:python:server", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert = await _certificate(
        tmp_path, "gateway", "urn:plantwire:gateway", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    policy = ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign
    async with serving(await make_server(port, certificate=server_cert, policy=policy)) as plant:
        queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
        settings = config(
            plant,
            [press(plant, "Temperature")],
            security_mode=SecurityMode.SIGN,
            security_policy="Aes128Sha256RsaOaep",
            certificate=client_cert[0],
            private_key=client_cert[1],
            server_certificate=server_cert[0],  # pinned: no endpoint lookup first
        )
        connector = OpcUaConnector(settings, queue.put)
        async with running(connector):
            assert (await sample_of(queue, "Temperature")).value == 20.0


async def test_unreadable_keys_are_reported_and_retried(port: int, tmp_path: Path) -> None:
    cert, _ = await _certificate(
        tmp_path, "gateway", "urn:plantwire:gateway", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    nodes = (NodeConfig("Temperature", "press-1", "ns=2;s=Press1.Temperature"),)
    settings = OpcUaServerConfig(
        f"opc.tcp://127.0.0.1:{port}",
        nodes,
        security_mode=SecurityMode.SIGN,
        security_policy="Basic256Sha256",
        certificate=cert,
        private_key=garbage,
        server_certificate=cert,
        reconnect_min_s=0.1,
    )
    queue: asyncio.Queue[OpcUaSample] = asyncio.Queue()
    connector = OpcUaConnector(settings, queue.put)
    async with running(connector, connected=False):
        for _ in range(100):
            if connector.health().failed_connects >= 2:
                break
            await asyncio.sleep(0.05)
        health = connector.health()
        assert health.failed_connects >= 2  # retried, the loop alive
        assert health.last_error is not None
        assert health.last_error.startswith("UaError: cannot load the certificate or key")

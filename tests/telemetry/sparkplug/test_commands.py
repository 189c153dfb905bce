"""Sparkplug commands through the command API and the real bundled broker: a paho client
acting as the edge node gets the NCMD or DCMD on its topic, typed by its birth (read with
our codec and with pysparkplug), answers with NDATA/DDATA, and the command is confirmed by
that read-back; DataSet and Template values too, checked against the birth's shapes.
Refusals: metrics, types, ranges, shapes, roles, tenants, nodes offline."""

from __future__ import annotations

import copy
import json
import struct
import threading
from datetime import UTC, datetime
from typing import Any

import pysparkplug as psp
from fastapi.testclient import TestClient
from sqlalchemy import select

from plantwire.security.tables import AuditEntry
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.model import (
    DataSet,
    DataType,
    Metric,
    Parameter,
    Payload,
    Template,
)
from tests.conftest import Seed
from tests.security.helpers import assert_problem, platform_of
from tests.telemetry.conftest import MqttDevice, mqtt_device
from tests.telemetry.sparkplug.test_host import TS, death, eventually, got, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node

T = DataType
G = "Plant1"
NCMD, DCMD = f"spBv1.0/{G}/NCMD/Edge1", f"spBv1.0/{G}/DCMD/Edge1/press-1"
NODE_METRICS = [
    Metric(name="bdSeq", datatype=T.Int64, value=0),
    Metric(name="Setpoint", alias=1, datatype=T.Float, value=1.0),
    Metric(name="Mode", datatype=T.String, value="auto"),  # no alias: commanded by name
    Metric(name="Limit", alias=3, datatype=T.Int8, value=0),
    Metric(name="Curve", alias=4, datatype=T.Int32Array, value=[1, 2]),
    Metric(name="Temp", alias=5, datatype=T.Float, value=20.0),
    Metric(name="Stamp", alias=6, datatype=T.DateTime, value=datetime(2026, 1, 1, tzinfo=UTC)),
    Metric(name="Blob", alias=7, datatype=T.Bytes, value=b""),
    Metric(name="Table", alias=8, datatype=T.DataSet, value=DataSet(["a"], [T.Int32], [[1]])),
]
VALVE = Template(  # an instance of the definition _types_/Valve the NBIRTH gives
    [
        Metric("open", None, None, T.Boolean, False),
        Metric("flow", None, None, T.Float, 0.0),
        Metric("curve", None, None, T.DataSet, DataSet(["t", "v"], [T.DateTime, T.Double])),
    ],
    [Parameter("size", T.Int32, 50)],
    "1",
    "_types_/Valve",
)
NODE_METRICS.append(
    Metric(
        "_types_/Valve",
        datatype=T.Template,
        value=Template(VALVE.metrics, VALVE.parameters, "1", None, is_definition=True),
    )
)
DEVICE_METRICS = [
    Metric(name="Speed", alias=10, datatype=T.Double, value=100.0),
    Metric(name="Valve", alias=11, datatype=T.Template, value=VALVE),
]
# Ghost: not in the birth
WRITABLE = ["Setpoint", "Mode", "Limit", "Curve", "Stamp", "Blob", "Table", "Ghost"]


def declare(client: TestClient, headers: dict[str, str], device: str, names: list[str]) -> None:
    """Declare the metrics writable in the device API (Sparkplug births carry no such flag)."""
    metrics = [{"name": name, "writable": True} for name in names] + [{"name": "Temp"}]
    patched = client.patch(f"{DEVICES}/{device}", json={"metrics": metrics}, headers=headers)
    assert patched.status_code == 200, patched.text


def float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


class EdgeNode:
    """The edge node's firmware: births, then every NCMD/DCMD received is applied and
    reported back in NDATA/DDATA with the node's next seq (run in a thread for ``?wait``)."""

    def __init__(self, mqtt: MqttDevice) -> None:
        self.mqtt = mqtt
        self.seq = 0
        self.handled = 0
        self.instances = {  # the templates it holds, by alias
            metric.alias: copy.deepcopy(metric.value)
            for metric in DEVICE_METRICS
            if isinstance(metric.value, Template)
        }

    def publish(self, kind: str, payload: Payload, device: str | None = None) -> None:
        payload.seq = self.seq
        self.seq = (self.seq + 1) % 256
        topic = f"spBv1.0/{G}/{kind}/Edge1" + (f"/{device}" if device else "")
        # types in births; in data for templates too, whose members the birth does not type
        typed = kind.endswith("BIRTH") or any(m.datatype is T.Template for m in payload.metrics)
        self.mqtt.publish(topic, encode_payload(payload, include_datatypes=typed))

    def applied(self, metric: Metric) -> Metric:
        """A Template command applied to the instance the node holds, which it reports whole
        (every member); any other metric as it came."""
        held = self.instances.get(metric.alias)
        if held is None or not isinstance(metric.value, Template):
            return metric
        members = {member.name: member for member in metric.value.metrics}
        held.metrics = [members.get(member.name, member) for member in held.metrics]
        parameters = {parameter.name: parameter for parameter in metric.value.parameters}
        held.parameters = [parameters.get(p.name, p) for p in held.parameters]
        return Metric(None, metric.alias, metric.timestamp, T.Template, copy.deepcopy(held))

    def born(self) -> None:
        self.publish("NBIRTH", Payload(timestamp=TS, metrics=list(NODE_METRICS)))
        self.publish("DBIRTH", Payload(timestamp=TS, metrics=list(DEVICE_METRICS)), "press-1")

    def commands(self) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p in self.mqtt.messages if "CMD/" in t]

    def answer_all(self) -> None:
        """Report each command not answered yet at the value it wrote."""
        received = self.commands()
        for topic, data in received[self.handled :]:
            payload = decode_payload(data)
            device = topic.split("/")[4] if "/DCMD/" in topic else None
            self.publish(
                "DDATA" if device else "NDATA",
                Payload(
                    timestamp=payload.timestamp,
                    metrics=[self.applied(metric) for metric in payload.metrics],
                ),
                device,
            )
        self.handled = len(received)

    def echo(self, stop: threading.Event) -> threading.Thread:
        def run() -> None:
            while not stop.is_set():
                self.answer_all()
                stop.wait(0.02)

        thread = threading.Thread(target=run, name="edge-node-echo")
        thread.start()
        return thread


async def born_node(
    client: TestClient, seed: Seed, broker: BundledBroker
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tenant a's Plant1/Edge1 (the node) with writable metrics declared, once ingest runs."""
    headers = seed.tenants["a"].headers["engineer"]
    node = make_node(client, headers, f"{G}/Edge1")
    declare(client, headers, str(node["id"]), WRITABLE)
    platform = platform_of(client)
    await eventually(
        lambda: platform.ingest is not None and platform.ingest.client is not None, "ingest"
    )
    return node, node["mqtt"]  # type: ignore[return-value]


async def test_ncmd_and_dcmd_are_typed_by_the_birth_and_confirmed_by_read_back(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant = seed.tenants["a"]
    operator, engineer = tenant.headers["operator"], tenant.headers["engineer"]
    node, credentials = await born_node(client, seed, broker)
    commands = f"{DEVICES}/{node['id']}/commands"
    with mqtt_device(broker, credentials["username"], credentials["password"]) as mqtt:
        assert mqtt.subscribe(NCMD) == "Granted QoS 1"
        assert mqtt.subscribe(DCMD) == "Granted QoS 1"
        edge = EdgeNode(mqtt)
        edge.born()
        press = await made(client, engineer, "press-1")
        declare(client, engineer, press["id"], ["Speed"])

        # NCMD by alias, a Float: the value as 32 bits carry it
        sent = client.post(commands, json={"metric": "Setpoint", "value": 7.1}, headers=operator)
        assert sent.status_code == 202, sent.text
        command = sent.json()
        assert (command["status"], command["value"]) == ("sent", float32(7.1))
        ((topic, data),) = mqtt.wait_message(1)
        assert topic == NCMD
        ours = decode_payload(data)
        assert ours.seq is None
        assert ours.timestamp is not None
        assert ours.metrics == [Metric(None, 1, ours.timestamp, T.Float, float32(7.1))]
        (theirs,) = psp.NCmd.decode(data).metrics
        assert (theirs.name, theirs.alias, theirs.datatype) == (None, 1, psp.DataType.FLOAT)
        assert theirs.value == float32(7.1)
        one = f"{commands}/{command['id']}"
        assert client.get(one, headers=operator).json()["status"] == "sent"
        edge.answer_all()  # NDATA, Setpoint by alias at the commanded value
        await eventually(
            lambda: client.get(one, headers=operator).json()["status"] == "confirmed", "read-back"
        )

        # NCMD by name (Mode has no alias), confirmed within ?wait by the echoing node
        stop = threading.Event()
        firmware = edge.echo(stop)
        try:
            waited = client.post(
                f"{commands}?wait=10", json={"metric": "Mode", "value": "manual"}, headers=operator
            )
            # DCMD to the device: an integer is a fine Double
            to_press = client.post(
                f"{DEVICES}/{press['id']}/commands?wait=10",
                json={"metric": "Speed", "value": 1500},
                headers=operator,
            )
        finally:
            stop.set()
            firmware.join()
        assert waited.status_code == 202, waited.text
        assert (waited.json()["status"], waited.json()["value"]) == ("confirmed", "manual")
        assert to_press.status_code == 202, to_press.text
        assert (to_press.json()["status"], to_press.json()["value"]) == ("confirmed", 1500.0)
        (by_name,) = decode_payload(edge.commands()[1][1]).metrics
        assert (by_name.name, by_name.alias, by_name.datatype) == ("Mode", None, T.String)
        dcmd_topic, dcmd = edge.commands()[2]
        assert dcmd_topic == DCMD
        (speed,) = decode_payload(dcmd).metrics
        assert (speed.name, speed.alias, speed.datatype, speed.value) == (
            None,
            10,
            T.Double,
            1500.0,
        )
        (their_speed,) = psp.DCmd.decode(dcmd).metrics
        assert (their_speed.alias, their_speed.datatype, their_speed.value) == (
            10,
            psp.DataType.DOUBLE,
            1500.0,
        )
        assert [t for t, _ in mqtt.messages] == [NCMD, NCMD, DCMD]  # no rebirth request
    listed = client.get(commands, headers=tenant.headers["viewer"]).json()["items"]
    assert [(c["metric"], c["status"]) for c in listed] == [
        ("Mode", "confirmed"),
        ("Setpoint", "confirmed"),
    ]
    with platform_of(client).sessions() as session:
        audited = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id.in_([node["id"], press["id"]]))
        ).all()
    assert audited.count("device.command") == 3


async def test_commands_write_times_bytes_and_arrays(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    """A DateTime as ISO 8601 or epoch ms, Bytes as base64, an array as a list: the node reads
    a datetime, bytes and a list, and the read-back confirms each (compared in the store's
    form); the command shows the value as the API shows stored values."""
    client, seed, broker = with_broker
    operator = seed.tenants["a"].headers["operator"]
    node, credentials = await born_node(client, seed, broker)
    commands = f"{DEVICES}/{node['id']}/commands?wait=10"
    writes: list[tuple[dict[str, Any], Any, Any]] = [
        (  # (the command, what the node reads, what the API shows)
            {"metric": "Stamp", "value": "2026-11-30T11:00:00.123+01:00"},
            datetime(2026, 11, 30, 10, 0, 0, 123000, tzinfo=UTC),
            "2026-11-30T10:00:00.123000Z",
        ),
        (
            {"metric": "Stamp", "value": 1_764_500_000_000},
            datetime.fromtimestamp(1_764_500_000, UTC),
            "2025-11-30T10:53:20.000000Z",
        ),
        ({"metric": "Blob", "value": "AAEC/w=="}, b"\x00\x01\x02\xff", "AAEC/w=="),
        ({"metric": "Curve", "value": [3, -4, 5]}, [3, -4, 5], [3, -4, 5]),
    ]
    with mqtt_device(broker, credentials["username"], credentials["password"]) as mqtt:
        assert mqtt.subscribe(NCMD) == "Granted QoS 1"
        edge = EdgeNode(mqtt)
        edge.born()
        platform = platform_of(client)
        key = f"sparkplug/{seed.tenants['a'].id}/{G}/Edge1"
        await eventually(lambda: bool(platform.store and platform.store.states(key)), "NBIRTH")
        stop = threading.Event()
        firmware = edge.echo(stop)
        try:
            sent = [client.post(commands, json=body, headers=operator) for body, _, _ in writes]
        finally:
            stop.set()
            firmware.join()
        for answer, (_, _, shown) in zip(sent, writes, strict=True):
            assert answer.status_code == 202, answer.text
            assert (answer.json()["status"], answer.json()["value"]) == ("confirmed", shown)
        read = [decode_payload(data).metrics[0] for _, data in edge.commands()]
        assert [metric.value for metric in read] == [node_reads for _, node_reads, _ in writes]
        assert [metric.datatype for metric in read] == [
            T.DateTime,
            T.DateTime,
            T.Bytes,
            T.Int32Array,
        ]
        (theirs,) = psp.NCmd.decode(edge.commands()[3][1]).metrics
        assert (theirs.alias, theirs.datatype) == (4, psp.DataType.INT32_ARRAY)
        assert theirs.value in ((3, -4, 5), [3, -4, 5])  # pysparkplug reads an array


async def test_sparkplug_commands_are_refused_rightly(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant = seed.tenants["a"]
    operator = tenant.headers["operator"]
    node, credentials = await born_node(client, seed, broker)
    commands = f"{DEVICES}/{node['id']}/commands"
    ok = {"metric": "Setpoint", "value": 2.5}
    never_born = make_node(client, tenant.headers["engineer"], f"{G}/Edge2")
    declare(client, tenant.headers["engineer"], str(never_born["id"]), ["Setpoint"])
    refused = client.post(f"{DEVICES}/{never_born['id']}/commands", json=ok, headers=operator)
    assert "has not sent its NBIRTH" in assert_problem(refused, 409)["detail"]
    with mqtt_device(broker, credentials["username"], credentials["password"]) as mqtt:
        assert mqtt.subscribe(NCMD) == "Granted QoS 1"
        edge = EdgeNode(mqtt)
        assert_problem(client.post(commands, json=ok, headers=operator), 409)  # not born yet
        edge.born()
        platform = platform_of(client)
        assert platform.store is not None
        key = f"sparkplug/{tenant.id}/{G}/Edge1"
        await eventually(lambda: bool(platform.store and platform.store.states(key)), "NBIRTH")
        # the birth replaced the declared metrics with its own (Ghost went): declared again,
        # Ghost is in the registry until the next birth, and still not in the certificate
        engineer = tenant.headers["engineer"]

        def declared() -> set[str]:
            return {m["name"] for m in got(client, f"{DEVICES}/{node['id']}", engineer)["metrics"]}

        await eventually(lambda: "bdSeq" in declared(), "the birth's metadata")
        declare(client, engineer, str(node["id"]), WRITABLE)
        bad: list[tuple[dict[str, Any], str]] = [
            ({"metric": "Temp", "value": 1.0}, "not writable"),
            ({"metric": "Pressure", "value": 1.0}, "declares no metric"),
            ({"metric": "Ghost", "value": 1.0}, "birth certificate has no metric"),
            ({"metric": "Setpoint", "value": "high"}, "cannot be str"),
            ({"metric": "Setpoint", "value": True}, "cannot be bool"),
            ({"metric": "Setpoint", "value": 1e39}, "too large for a Float"),
            ({"metric": "Setpoint", "value": 10**40}, "too large for a Float"),  # no 500
            ({"metric": "Limit", "value": 300}, "out of the Int8 range"),
            ({"metric": "Limit", "value": 1.0}, "cannot be float"),
            ({"metric": "Mode", "value": 3}, "not a string"),
            ({"metric": "Curve", "value": 1}, "is a list"),
            ({"metric": "Curve", "value": [1, "two"]}, "cannot hold"),
            ({"metric": "Stamp", "value": "2026-11-30T10:00:00"}, "has no time zone"),
            ({"metric": "Blob", "value": "not base64!"}, "not base64"),
            ({"metric": "Table", "value": []}, "an object, not a list"),
            ({"metric": "Table", "value": {"rows": [["x"]]}}, "row 0, column 'a': "),
            ({"metric": "Table", "value": {"columns": ["b"], "rows": []}}, 'has columns ["a"]'),
            ({"metric": "Table", "value": {"rows": [[1, 2]]}}, "row 0 is not a list of 1 cells"),
            ({"metric": "Table", "value": "{oops"}, "given as text is not JSON"),
        ]
        for body, detail in bad:
            problem = assert_problem(client.post(commands, json=body, headers=operator), 422)
            assert detail in problem["detail"], (body, problem)
        viewer = tenant.headers["viewer"]
        assert_problem(client.post(commands, json=ok, headers=viewer), 403)
        other = seed.tenants["b"].headers["tenant-admin"]
        assert_problem(client.post(commands, json=ok, headers=other), 404)
        assert client.get(commands, headers=operator).json()["items"] == []
        assert client.post(commands, json=ok, headers=operator).status_code == 202
        assert mqtt.wait_message(1)[0][0] == NCMD
        # the node dies: offline, no command reaches it
        mqtt.publish(f"spBv1.0/{G}/NDEATH/Edge1", death())
        await eventually(
            lambda: (
                b'"online":false' in (platform.store.states(key) if platform.store else {})[key]
            ),
            "NDEATH",
        )
        refused = client.post(commands, json=ok, headers=operator)
        assert "offline" in assert_problem(refused, 409)["detail"]
    assert len(client.get(commands, headers=operator).json()["items"]) == 1


async def test_dataset_and_template_commands_are_typed_by_the_birth_and_read_back(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    """A DataSet (NCMD) as ``/latest`` shows it, edited or as it is, and some members and a
    parameter of a Template instance (DCMD): the node reads the birth's columns and types and
    the template's members typed by its birth; it reports the DataSet back as it came and the
    Template whole (as firmware holding the instance does), and each command is confirmed.
    Values the birth's shapes do not take are 422."""
    client, seed, broker = with_broker
    tenant = seed.tenants["a"]
    operator, engineer = tenant.headers["operator"], tenant.headers["engineer"]
    node, credentials = await born_node(client, seed, broker)
    commands = f"{DEVICES}/{node['id']}/commands?wait=10"
    with mqtt_device(broker, credentials["username"], credentials["password"]) as mqtt:
        assert mqtt.subscribe(NCMD) == "Granted QoS 1"
        assert mqtt.subscribe(DCMD) == "Granted QoS 1"
        edge = EdgeNode(mqtt)
        edge.born()
        press = await made(client, engineer, "press-1")
        declare(client, engineer, press["id"], ["Valve"])
        to_press = f"{DEVICES}/{press['id']}/commands?wait=10"
        latest = f"{DEVICES}/{node['id']}/latest"
        await eventually(lambda: "Table" in got(client, latest, operator), "the birth's Table")
        shown = got(client, latest, operator)["Table"]["value"]
        assert shown == '{"columns":["a"],"types":["Int32"],"rows":[[1]]}'
        edited = {**json.loads(shown), "rows": [[5], [-6], [None]]}
        valve = {
            "metrics": [
                {"name": "open", "value": True},
                {"name": "curve", "value": {"rows": [["2026-11-30T11:00:00+01:00", 2]]}},
            ],
            "parameters": [{"name": "size", "value": 80}],
        }
        stop = threading.Event()
        firmware = edge.echo(stop)
        try:
            sent = [
                client.post(commands, json={"metric": "Table", "value": edited}, headers=operator),
                client.post(commands, json={"metric": "Table", "value": shown}, headers=operator),
                client.post(to_press, json={"metric": "Valve", "value": valve}, headers=operator),
            ]
        finally:
            stop.set()
            firmware.join()
        for answer in sent:
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "confirmed", answer.json()
        assert sent[0].json()["value"] == (
            '{"columns":["a"],"types":["Int32"],"rows":[[5],[-6],[null]]}'
        )
        assert sent[1].json()["value"] == shown
        assert json.loads(sent[2].json()["value"]) == {
            "template_ref": "_types_/Valve",
            "version": "1",
            "is_definition": False,
            "parameters": [{"name": "size", "type": "Int32", "value": 80}],
            "metrics": [
                {"name": "open", "datatype": "Boolean", "value": True},
                {
                    "name": "curve",
                    "datatype": "DataSet",
                    "value": {
                        "columns": ["t", "v"],
                        "types": ["DateTime", "Double"],
                        "rows": [["2026-11-30T10:00:00.000Z", 2.0]],
                    },
                },
            ],
        }
        # what went out, read with our codec
        assert [topic for topic, _ in edge.commands()] == [NCMD, NCMD, DCMD]
        tables = [decode_payload(data).metrics[0] for _, data in edge.commands()[:2]]
        assert [(m.name, m.alias, m.datatype) for m in tables] == [(None, 8, T.DataSet)] * 2
        assert [m.value for m in tables] == [
            DataSet(["a"], [T.Int32], [[5], [-6], [None]]),
            DataSet(["a"], [T.Int32], [[1]]),
        ]
        (written,) = decode_payload(edge.commands()[2][1]).metrics
        assert (written.name, written.alias, written.datatype) == (None, 11, T.Template)
        moment = datetime(2026, 11, 30, 10, tzinfo=UTC)
        assert written.value == Template(
            [
                Metric("open", None, None, T.Boolean, True),
                Metric(
                    "curve",
                    None,
                    None,
                    T.DataSet,
                    DataSet(["t", "v"], [T.DateTime, T.Double], [[moment, 2.0]]),
                ),
            ],
            [Parameter("size", T.Int32, 80)],
            "1",
            "_types_/Valve",
        )
        # the node reported the instance whole: flow, not written, is there as it was
        reported = json.loads(
            got(client, f"{DEVICES}/{press['id']}/latest", operator)["Valve"]["value"]
        )
        assert [(m["name"], m["value"]) for m in reported["metrics"]][:2] == [
            ("open", True),
            ("flow", 0.0),
        ]
        bad: list[tuple[object, str]] = [
            ({"metrics": [{"name": "stuck", "value": True}]}, "has no member 'stuck'"),
            ({"metrics": [{"name": "open", "value": "yes"}]}, "member 'open': a Boolean cannot"),
            (
                {"metrics": [{"name": "flow", "datatype": "Double", "value": 1}]},
                "member 'flow' is a Float, not \"Double\"",
            ),
            ({"parameters": [{"name": "size", "value": 2**40}]}, "parameter 'size': "),
            ({"template_ref": "_types_/Pump", "metrics": []}, "of template '_types_/Valve'"),
            ({"metrics": []}, "writes no member or parameter"),
            ({"is_definition": True}, "not a definition"),
            (7, "not a number"),
        ]
        for value, detail in bad:
            body = {"metric": "Valve", "value": value}
            problem = assert_problem(client.post(to_press, json=body, headers=operator), 422)
            assert detail in problem["detail"], (value, problem)
        assert len(edge.commands()) == 3  # none of those was sent

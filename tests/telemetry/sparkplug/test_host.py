"""The Sparkplug host application through the real platform: edge nodes made through the
device API publish with a real MQTT client (payloads from our codec and from pysparkplug)
through the bundled broker; ingest applies births, data and deaths, stores the points
(queryable through the query API), makes the Sparkplug devices, letters bad messages and
asks for rebirths on the node's NCMD topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pysparkplug as psp
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from plantwire.platform import Platform
from plantwire.telemetry.accounts import Device, TenantAccount, device_username
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.ingest import CHECKPOINT, REASON, Ingest, IngestMetrics
from plantwire.telemetry.sparkplug.codec import decode_payload, encode_payload
from plantwire.telemetry.sparkplug.descriptions import MetricDescription
from plantwire.telemetry.sparkplug.host import REBIRTH
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload, PropertyValue
from plantwire.telemetry.sparkplug_intake import SparkplugIntake, SparkplugMetrics
from plantwire.telemetry.store import DuckDBStore
from tests.conftest import Seed
from tests.security.helpers import platform_of
from tests.telemetry.conftest import CHEAP_HASH, TENANT_A, MqttDevice, mqtt_device
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node
from tests.telemetry.test_ingest import FAST, Directory, dead_letters, running

T = DataType
TS = 1_764_500_000_000
G = "Plant1"


def birth(seq: int = 0, bd_seq: int = 0) -> bytes:
    return encode_payload(
        Payload(
            timestamp=TS,
            seq=seq,
            metrics=[
                Metric(name="bdSeq", datatype=T.Int64, value=bd_seq),
                Metric(name="Temp", alias=1, datatype=T.Float, value=20.0),
                Metric(name="Count", alias=2, datatype=T.Int32, value=1),
                Metric(name="Inputs/Mode", alias=3, datatype=T.String, value="auto"),
            ],
        )
    )


def data(seq: int, *metrics: Metric, ts: int = TS + 1000) -> bytes:
    payload = Payload(timestamp=ts, seq=seq, metrics=list(metrics))
    return encode_payload(payload, include_datatypes=False)


def death(bd_seq: int = 0) -> bytes:
    return encode_payload(
        Payload(timestamp=TS, metrics=[Metric(name="bdSeq", datatype=T.Int64, value=bd_seq)])
    )


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Waits for ``condition``, looking every 50 ms. The default bound is generous: these
    things take well under a second, but CI machines are shared and a loaded one can stall
    the platform's threads for many seconds; a passing test does not wait longer for it."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def ingest_started(client: TestClient) -> Platform:
    """The app's platform, once ingest has its stream (what a device publishes is taken)."""
    platform = platform_of(client)
    await eventually(
        lambda: platform.ingest is not None and platform.ingest.js is not None, "ingest"
    )
    return platform


def got(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    """The JSON answer of a GET that must succeed."""
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def made(client: TestClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    """The Sparkplug device a DBIRTH makes, once it is there (found by its name)."""
    found: list[dict[str, Any]] = []

    def there() -> bool:
        found[:] = got(client, f"{DEVICES}?search={name}", headers)["items"]
        return bool(found)

    await eventually(there, f"the device {name} made")
    (device,) = found
    return device


def node_state(platform: Platform, tenant: str, edge: str) -> dict[str, Any]:
    assert platform.store is not None
    states = platform.store.states(f"sparkplug/{tenant}/{G}/{edge}")
    return json.loads(states[f"sparkplug/{tenant}/{G}/{edge}"]) if states else {}


def rebirths(node: MqttDevice) -> list[bool]:
    found = []
    for topic, payload in node.messages:
        if "/NCMD/" in topic:
            (metric,) = decode_payload(payload).metrics
            assert metric.name == REBIRTH
            found.append(bool(metric.value))
    return found


async def test_births_data_and_deaths_of_nodes_and_devices(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    headers = tenant_a.headers["engineer"]
    node = make_node(client, headers, f"{G}/Edge1")
    theirs = make_node(client, tenant_b.headers["engineer"], f"{G}/Edge1")
    platform = await ingest_started(client)
    mine: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    other: dict[str, str] = theirs["mqtt"]  # type: ignore[assignment]

    def stored(device: str, metric: str, who: dict[str, str] = headers) -> list[Any]:
        path = f"{DEVICES}/{device}/telemetry"
        query = {"metric": metric, "start": "0", "end": str(TS + 3_600_000)}
        answer = client.get(path, params=query, headers=who)
        assert answer.status_code == 200, answer.text
        return [value for _, value in answer.json()["points"]]

    with mqtt_device(broker, mine["username"], mine["password"], client_id="a-e1") as edge:
        assert edge.subscribe(f"spBv1.0/{G}/NCMD/Edge1") == "Granted QoS 1"
        edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth())
        edge.publish(
            f"spBv1.0/{G}/NDATA/Edge1",
            data(
                1,
                Metric(alias=1, datatype=T.Float, value=21.5, timestamp=TS + 500),
                Metric(alias=2, datatype=T.Int32, value=5),
            ),
        )
        speed = Metric(name="Speed", alias=10, datatype=T.Double, value=100.0)
        edge.publish(
            f"spBv1.0/{G}/DBIRTH/Edge1/press-1",
            encode_payload(Payload(timestamp=TS + 2000, seq=2, metrics=[speed])),
        )
        stale = {"Quality": PropertyValue(T.Int32, 500)}
        edge.publish(
            f"spBv1.0/{G}/DDATA/Edge1/press-1",
            data(
                3, Metric(alias=10, datatype=T.Double, value=101.0, properties=stale), ts=TS + 3000
            ),
        )
        edge.publish(
            f"spBv1.0/{G}/NDATA/Edge2", data(4, Metric(alias=1, datatype=T.Float, value=99.0))
        )  # refused
        # tenant b's Plant1/Edge1, with pysparkplug's encoder
        with mqtt_device(broker, other["username"], other["password"], client_id="b-e1") as b:
            b.publish(
                f"spBv1.0/{G}/NBIRTH/Edge1",
                psp.NBirth(
                    timestamp=TS,
                    seq=0,
                    metrics=(
                        psp.Metric(
                            timestamp=TS, name="bdSeq", datatype=psp.DataType.INT64, value=0
                        ),
                        psp.Metric(
                            timestamp=TS,
                            name="Temp",
                            alias=1,
                            datatype=psp.DataType.FLOAT,
                            value=-5.0,
                        ),
                    ),
                ).encode(),
            )
            b.publish(
                f"spBv1.0/{G}/NDATA/Edge1",
                psp.NData(
                    timestamp=TS + 1000,
                    seq=1,
                    metrics=(
                        psp.Metric(
                            timestamp=TS + 1000,
                            name=None,
                            alias=1,
                            datatype=psp.DataType.FLOAT,
                            value=-6.0,
                        ),
                    ),
                ).encode(include_dtypes=False),
            )
        await eventually(lambda: stored(str(node["id"]), "Temp") == [20.0, 21.5], "node data")
        assert stored(str(node["id"]), "Count") == [1, 5]
        assert stored(str(node["id"]), "Inputs/Mode") == ["auto"]
        b_headers = tenant_b.headers["engineer"]
        await eventually(lambda: stored(str(theirs["id"]), "Temp", b_headers) == [-5.0, -6.0], "b")
        found = client.get(DEVICES, params={"search": "press-1"}, headers=headers).json()["items"]
        assert [(d["name"], d["kind"], d["parent"]) for d in found] == [
            (f"{G}/Edge1/press-1", "sparkplug-device", node["id"])
        ]
        press = found[0]
        assert press["topics"]["telemetry"] == f"spBv1.0/{G}/DDATA/Edge1/press-1"
        await eventually(lambda: stored(press["id"], "Speed") == [100.0, 101.0], "device data")
        latest = client.get(f"{DEVICES}/{press['id']}/latest", headers=headers).json()
        assert latest["Speed"]["quality"] == "uncertain"
        assert (
            client.get(DEVICES, params={"search": "press-1"}, headers=b_headers).json()["items"]
            == []
        )
        state = node_state(platform, tenant_a.id, "Edge1")
        assert (state["online"], state["seq"], state["bd_seq"]) == (True, 3, 0)
        assert state["devices"]["press-1"]["online"] is True

        edge.publish(f"spBv1.0/{G}/DDEATH/Edge1/press-1", data(4))
        await eventually(
            lambda: not node_state(platform, tenant_a.id, "Edge1")["devices"]["press-1"]["online"],
            "DDEATH",
        )
        edge.publish(f"spBv1.0/{G}/NDEATH/Edge1", death(bd_seq=7))  # an older session's
        edge.publish(f"spBv1.0/{G}/NDEATH/Edge1", death(bd_seq=0))
        await eventually(lambda: not node_state(platform, tenant_a.id, "Edge1")["online"], "NDEATH")
        assert rebirths(edge) == []
        # data after the death: a dead letter, and a rebirth request on the node's NCMD
        edge.publish(
            f"spBv1.0/{G}/NDATA/Edge1", data(5, Metric(alias=1, datatype=T.Float, value=30.0))
        )
        await eventually(lambda: rebirths(edge) == [True], "a rebirth request")
    letters = client.get(f"{DEVICES}/{node['id']}/dead-letters", headers=headers).json()
    assert [(item["reason"], item["detail"]) for item in letters["items"]] == [
        ("birth", "NDATA before the NBIRTH")
    ]
    assert stored(str(node["id"]), "Temp") == [20.0, 21.5]
    metrics = client.get("/metrics").text
    assert "plantwire_sparkplug_rebirth_requests_total 1.0" in metrics
    assert "plantwire_sparkplug_stale_deaths_total 1.0" in metrics


class Nodes:
    """A fixed directory of edge nodes (the registry's has the test above)."""

    def node(self, tenant: str, group: str, edge_node: str) -> str | None:
        return {(TENANT_A, G, "Edge1"): "edge-1", (TENANT_A, G, "Edge2"): "edge-2"}.get(
            (tenant, group, edge_node)
        )

    def device(self, tenant: str, node_id: str, name: str) -> str | None:
        return name

    def describe(self, births: Mapping[tuple[str, str], Sequence[MetricDescription]]) -> int:
        return 0


def sparkplug_ingest(
    broker: BundledBroker, store: DuckDBStore, registry: CollectorRegistry
) -> Ingest:
    intake = SparkplugIntake(Nodes(), SparkplugMetrics(registry))
    return Ingest(
        broker.endpoint, store, Directory({}), IngestMetrics(registry), FAST, sparkplug=intake
    )


def raw(store: DuckDBStore, device: str, metric: str) -> list[Any]:
    return [point.value for point in store.raw(TENANT_A, device, metric, 0, 2**62).points]


async def test_a_restart_resumes_from_the_committed_births_and_seq(
    broker: BundledBroker, tmp_path: Path
) -> None:
    """NDATA after a restart decodes through the NBIRTH acked before it, with no rebirth
    request; a seq gap, data before a birth and a broken payload each ask for a rebirth
    (at most one per node in the rate limit) and are lettered or stored as they should."""
    broker.apply(
        [
            TenantAccount(
                TENANT_A,
                (
                    Device("edge-1", CHEAP_HASH, G, "Edge1"),
                    Device("edge-2", CHEAP_HASH, G, "Edge2"),
                ),
            )
        ]
    )
    user_1, user_2 = device_username(TENANT_A, "edge-1"), device_username(TENANT_A, "edge-2")
    with (
        DuckDBStore(tmp_path / "telemetry") as store,
        mqtt_device(broker, user_1, client_id="e1") as edge,
        mqtt_device(broker, user_2, client_id="e2") as edge_2,
    ):
        assert edge.subscribe(f"spBv1.0/{G}/NCMD/Edge1") == "Granted QoS 1"
        assert edge_2.subscribe(f"spBv1.0/{G}/NCMD/Edge2") == "Granted QoS 1"
        first = CollectorRegistry()
        ingest = sparkplug_ingest(broker, store, first)
        async with running(ingest):
            edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth())
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(1, Metric(alias=1, datatype=T.Float, value=1.0))
            )
            await eventually(lambda: raw(store, "edge-1", "Temp") == [20.0, 1.0], "the first NDATA")
        assert store.checkpoint(CHECKPOINT) == 2

        second = CollectorRegistry()
        ingest = sparkplug_ingest(broker, store, second)  # a new host: only the store knows
        async with running(ingest):
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(2, Metric(alias=1, datatype=T.Float, value=2.0))
            )
            await eventually(lambda: raw(store, "edge-1", "Temp") == [20.0, 1.0, 2.0], "NDATA")
            assert rebirths(edge) == []
            assert second.get_sample_value("plantwire_sparkplug_rebirth_requests_total") == 0
            # a gap (3, 4 missing): stored all the same, and a rebirth asked for
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(5, Metric(alias=1, datatype=T.Float, value=5.0))
            )
            await eventually(lambda: rebirths(edge) == [True], "a rebirth request after the gap")
            # the request goes out as the batch is decoded, before its points are committed
            await eventually(
                lambda: raw(store, "edge-1", "Temp") == [20.0, 1.0, 2.0, 5.0], "the NDATA after it"
            )
            # an unknown alias: refused; the rate limit holds the second request back
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(6, Metric(alias=99, datatype=T.Float, value=1.0))
            )
            edge.publish(f"spBv1.0/{G}/NDATA/Edge1", b"\xff\xff not protobuf")
            # data before any birth of Edge2
            edge_2.publish(
                f"spBv1.0/{G}/NDATA/Edge2", data(0, Metric(alias=1, datatype=T.Float, value=7.0))
            )
            await eventually(lambda: rebirths(edge_2) == [True], "a rebirth request to Edge2")
            await eventually(
                lambda: second.get_sample_value("plantwire_ingest_messages_total") == 5,
                "5 messages",
            )
        assert rebirths(edge) == [True]
        assert second.get_sample_value("plantwire_sparkplug_seq_gaps_total") == 1
        assert second.get_sample_value("plantwire_sparkplug_rebirth_requests_total") == 2
        assert raw(store, "edge-2", "Temp") == []
        letters = await dead_letters(broker)
        assert [(subject.split(".")[2], headers[REASON]) for subject, headers, _ in letters] == [
            ("edge-1", "alias"),
            ("edge-1", "protobuf"),
            ("edge-2", "birth"),
        ]

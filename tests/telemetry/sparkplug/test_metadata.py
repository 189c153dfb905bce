"""Births fill in the metric metadata of edge nodes and Sparkplug devices, through the real
platform: an edge node made through the API publishes NBIRTH and DBIRTH with a real MQTT
client through the bundled broker, and GET /api/v1/devices/{id} shows each metric born with
its mapped data type, unit and description; a rebirth replaces them (keeping what the API
said is writable), an unchanged one writes nothing, a registry that fails stops no data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from plantwire.db import make_engine, make_sessionmaker
from plantwire.telemetry.accounts import Device, TenantAccount, device_username
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.devices import RegistryDevices
from plantwire.telemetry.ingest import Ingest, IngestMetrics
from plantwire.telemetry.schemas import MAX_METRICS
from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.descriptions import MetricDescription
from plantwire.telemetry.sparkplug.model import (
    DataSet,
    DataType,
    MetaData,
    Metric,
    MetricValue,
    Payload,
    PropertyValue,
)
from plantwire.telemetry.sparkplug_intake import DirectoryError, SparkplugIntake, SparkplugMetrics
from plantwire.telemetry.sparkplug_registry import RegistrySparkplug
from plantwire.telemetry.store import DuckDBStore
from tests.conftest import Seed
from tests.security.helpers import platform_of
from tests.telemetry.conftest import CHEAP_HASH, TENANT_A, mqtt_device
from tests.telemetry.sparkplug.test_host import (
    TS,
    G,
    Nodes,
    birth,
    data,
    eventually,
    got,
    ingest_started,
    made,
    raw,
)
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node
from tests.telemetry.test_ingest import FAST, Directory, running

T = DataType


def texts(**properties: str) -> dict[str, PropertyValue]:
    """String properties; ``_`` in a keyword is a space (``Engineering_Units``)."""
    return {
        key.replace("_", " "): PropertyValue(T.String, value) for key, value in properties.items()
    }


def born(name: str, alias: int, kind: DataType, value: MetricValue, **properties: str) -> Metric:
    """A birth's metric with string properties (see `texts`)."""
    return Metric(
        name=name, alias=alias, datatype=kind, value=value, properties=texts(**properties)
    )


def node_birth(bd_seq: int, *metrics: Metric) -> bytes:
    declared = [Metric(name="bdSeq", datatype=T.Int64, value=bd_seq), *metrics]
    return encode_payload(Payload(timestamp=TS, seq=0, metrics=declared))


def device_birth(seq: int) -> bytes:
    speed = born("Speed", 10, T.Double, 100.0, engUnit="rpm", Documentation="Spindle speed")
    batch = born("Batch", 11, T.UUID, "0b9f3f9e-1c4e-4a8e-9c1a-000000000001")
    return encode_payload(Payload(timestamp=TS + 1, seq=seq, metrics=[speed, batch]))


FIRST_NODE_METRICS = [
    born("Temp", 1, T.Float, 20.0, engUnit="°C", description="Oil temperature"),
    born("Count", 2, T.UInt32, 1, Engineering_Units="strokes"),
    Metric(
        name="Curve",
        alias=3,
        datatype=T.Int32Array,
        value=[1, 2],
        metadata=MetaData(description="Pressure\ncurve"),  # a control character: a space
    ),
    Metric(
        name="Recipe",
        alias=4,
        datatype=T.DataSet,
        value=DataSet(columns=["step"], types=[T.Int32], rows=[[1]]),
    ),
    Metric(name="Started", alias=5, datatype=T.DateTime, value=datetime(2025, 1, 1, tzinfo=UTC)),
    Metric(name="Blob", alias=6, datatype=T.Bytes, value=b"\x00\x01"),
    Metric(
        name="Running",
        alias=7,
        datatype=T.Boolean,
        value=True,
        properties={"engUnit": PropertyValue(T.Text, "on/off")},
    ),
]


def spec(data_type: str, unit: str = "", description: str = "", writable: bool = False) -> Any:
    return {"data_type": data_type, "unit": unit, "description": description, "writable": writable}


async def test_births_fill_in_and_replace_the_metric_metadata(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    headers = tenant_a.headers["engineer"]
    node = make_node(client, headers, f"{G}/Edge1")
    node_id = str(node["id"])
    await ingest_started(client)

    def shown(device: str) -> dict[str, Any]:
        found: dict[str, Any] = got(client, f"{DEVICES}/{device}", headers)
        return found

    def metrics(device: str) -> dict[str, Any]:
        return {m.pop("name"): m for m in shown(device)["metrics"]}

    assert metrics(node_id) == {}
    mqtt: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    with mqtt_device(broker, mqtt["username"], mqtt["password"], client_id="a-e1") as edge:
        edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", node_birth(0, *FIRST_NODE_METRICS))
        edge.publish(f"spBv1.0/{G}/DBIRTH/Edge1/press-1", device_birth(1))
        first = {
            "bdSeq": spec("int"),
            "Temp": spec("float", "°C", "Oil temperature"),
            "Count": spec("int", "strokes"),
            "Curve": spec("array", "", "Pressure curve"),
            "Recipe": spec("string"),
            "Started": spec("datetime"),
            "Blob": spec("bytes"),
            "Running": spec("bool", "on/off"),
        }
        await eventually(lambda: metrics(node_id) == first, "the node's metadata")
        press = (await made(client, headers, "press-1"))["id"]
        press_metrics = {
            "Speed": spec("float", "rpm", "Spindle speed"),
            "Batch": spec("string"),
        }
        await eventually(lambda: metrics(press) == press_metrics, "the device's metadata")
        names = [m["name"] for m in shown(node_id)["metrics"]]
        assert names == sorted(names)

        # a user marks Temp writable, adds a metric and changes a unit through the API
        declared = [{"name": n, **m} for n, m in metrics(node_id).items()]
        for metric in declared:
            if metric["name"] == "Temp":
                metric["writable"] = True
            if metric["name"] == "Count":
                metric["unit"] = "pcs"
        declared.append({"name": "Note", "data_type": "string"})
        patched = client.patch(f"{DEVICES}/{node_id}", json={"metrics": declared}, headers=headers)
        assert patched.status_code == 200, patched.text
        press_before = shown(press)

        # a rebirth with another metric set: the birth wins, writable stays where still born
        rebirth = [
            FIRST_NODE_METRICS[0],
            born("Count", 2, T.UInt32, 1, engUnit="parts"),
            born("Pressure", 8, T.Double, 2.5, engUnit="bar"),
        ]
        edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", node_birth(1, *rebirth))
        edge.publish(f"spBv1.0/{G}/DBIRTH/Edge1/press-1", device_birth(1))  # the same as before
        second = {
            "bdSeq": spec("int"),
            "Temp": spec("float", "°C", "Oil temperature", writable=True),
            "Count": spec("int", "parts"),
            "Pressure": spec("float", "bar"),
        }
        await eventually(lambda: metrics(node_id) == second, "the node's metadata replaced")
        birth_before = press_before["sparkplug"]["birth"]
        await eventually(lambda: shown(press)["sparkplug"]["birth"] != birth_before, "DBIRTH")
        press_after = shown(press)
        assert press_after["metrics"] == press_before["metrics"]
        assert press_after["updated_at"] == press_before["updated_at"]  # nothing rewritten
        moment = datetime.fromisoformat
        assert moment(shown(node_id)["updated_at"]) > moment(patched.json()["updated_at"])

        # the same DBIRTH again after a user changed the unit: the birth puts it back
        changed = [{"name": "Speed", "data_type": "float", "unit": "m/s"}]
        patched = client.patch(f"{DEVICES}/{press}", json={"metrics": changed}, headers=headers)
        assert patched.status_code == 200, patched.text
        edge.publish(f"spBv1.0/{G}/DBIRTH/Edge1/press-1", device_birth(2))
        await eventually(lambda: metrics(press) == press_metrics, "the birth's metadata back")

    other = tenant_b.headers["engineer"]
    assert client.get(f"{DEVICES}/{node_id}", headers=other).status_code == 404
    text = client.get("/metrics").text
    assert "plantwire_sparkplug_metadata_changes_total 4.0" in text  # 2 births, 1 + 1 rebirths
    assert "plantwire_sparkplug_metadata_errors_total 0.0" in text


class FailingOnce(Nodes):
    """The fixed directory of test_host, whose registry fails to take the first births."""

    def __init__(self) -> None:
        self.calls: list[dict[tuple[str, str], list[str]]] = []

    def describe(self, births: Mapping[tuple[str, str], Sequence[MetricDescription]]) -> int:
        self.calls.append({key: [m.name for m in metrics] for key, metrics in births.items()})
        if len(self.calls) == 1:
            raise DirectoryError("the registry is down")
        return len(births)


async def test_a_failing_registry_stops_no_data_and_the_next_birth_tries_again(
    broker: BundledBroker, tmp_path: Path
) -> None:
    broker.apply([TenantAccount(TENANT_A, (Device("edge-1", CHEAP_HASH, G, "Edge1"),))])
    directory = FailingOnce()
    registry = CollectorRegistry()
    intake = SparkplugIntake(directory, SparkplugMetrics(registry))
    with (
        DuckDBStore(tmp_path / "telemetry") as store,
        mqtt_device(broker, device_username(TENANT_A, "edge-1"), client_id="e1") as edge,
    ):
        ingest = Ingest(
            broker.endpoint, store, Directory({}), IngestMetrics(registry), FAST, sparkplug=intake
        )
        async with running(ingest):
            edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth())
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(1, Metric(alias=1, datatype=T.Float, value=1.0))
            )
            await eventually(lambda: raw(store, "edge-1", "Temp") == [20.0, 1.0], "the data")
            assert registry.get_sample_value("plantwire_sparkplug_metadata_errors_total") == 1
            edge.publish(
                f"spBv1.0/{G}/NDATA/Edge1", data(2, Metric(alias=1, datatype=T.Float, value=2.0))
            )
            await eventually(lambda: raw(store, "edge-1", "Temp")[-1] == 2.0, "more data")
            assert len(directory.calls) == 1  # data sets no metadata
            edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth(bd_seq=1))
            await eventually(lambda: len(directory.calls) == 2, "the next birth")
            await eventually(
                lambda: (
                    registry.get_sample_value("plantwire_sparkplug_metadata_changes_total") == 1
                ),
                "counted",
            )
    born = ["bdSeq", "Temp", "Count", "Inputs/Mode"]
    assert directory.calls == [{(TENANT_A, "edge-1"): born}] * 2
    assert registry.get_sample_value("plantwire_sparkplug_metadata_errors_total") == 1


def test_the_registry_says_it_failed_as_a_directory_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    try:
        registry = RegistrySparkplug(make_sessionmaker(engine))
        births = {("t", "d"): [MetricDescription("Temp", T.Float)]}
        with pytest.raises(DirectoryError, match="no such table"):
            registry.describe(births)
        # the lookups ingest makes for every batch say so too: ingest then waits, and takes
        # the batch again, instead of ending
        with pytest.raises(DirectoryError, match="no such table"):
            registry.node("t", "Plant1", "Edge1")
        with pytest.raises(DirectoryError, match="no such table"):
            registry.device("t", "node-id", "Plant1/Edge1/Dev1")
        with pytest.raises(DirectoryError, match="no such table"):
            RegistryDevices(make_sessionmaker(engine)).declared([("t", "d")])
    finally:
        engine.dispose()


def test_births_fit_the_device_api_however_big_or_odd(
    seeded: tuple[TestClient, Seed],
) -> None:
    """On SQLite and PostgreSQL: names the API cannot carry and metrics past MAX_METRICS are
    left out, units and descriptions made to fit; the same birth again writes nothing."""
    client, seed = seeded
    headers = seed.tenants["a"].headers["engineer"]
    node = make_node(client, headers, f"{G}/Edge1")
    tenant = seed.tenants["a"].id
    registry = RegistrySparkplug(platform_of(client).sessions)
    odd = [
        MetricDescription("x" * 201, T.Float),
        MetricDescription("bad\x00name", T.Float),
        MetricDescription("", T.Float),
        MetricDescription("Level", T.Float, "m" * 40 + "\t", "Tank\x7flevel " + "d" * 600),
    ]
    many = [MetricDescription(f"m{index:04}", T.Int16) for index in range(MAX_METRICS + 5)]
    births = {(tenant, str(node["id"])): odd + many}
    assert registry.describe(births) == 1
    assert registry.describe(births) == 0  # unchanged: not written again
    assert registry.describe({(seed.tenants["b"].id, str(node["id"])): odd}) == 0  # not theirs
    answer = client.get(f"{DEVICES}/{node['id']}", headers=headers)
    assert answer.status_code == 200, answer.text
    shown = {metric["name"]: metric for metric in answer.json()["metrics"]}
    assert len(shown) == MAX_METRICS
    assert shown["Level"]["unit"] == "m" * 32
    assert shown["Level"]["description"] == ("Tank level " + "d" * 600)[:500]
    assert "m0998" in shown
    assert "m0999" not in shown  # Level took the first place

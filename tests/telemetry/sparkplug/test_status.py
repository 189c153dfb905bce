"""Sparkplug status in the device API and on /metrics, through the real platform: an edge
node made through the API publishes births, data with a seq gap and deaths with a real MQTT
client; GET /api/v1/devices/{id} shows what the host committed, /latest marks the metrics of
a dead node or device stale, and another tenant sees nothing of it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from tests.conftest import Seed
from tests.telemetry.conftest import mqtt_device
from tests.telemetry.sparkplug.test_host import (
    TS,
    G,
    birth,
    data,
    death,
    eventually,
    got,
    ingest_started,
)
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node

T = DataType


async def test_status_follows_births_gaps_and_deaths(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    headers = tenant_a.headers["engineer"]
    node = make_node(client, headers, f"{G}/Edge1")
    await ingest_started(client)

    def status(device: str) -> dict[str, Any]:
        found: dict[str, Any] = got(client, f"{DEVICES}/{device}", headers)["sparkplug"]
        return found

    def latest(device: str) -> dict[str, Any]:
        found: dict[str, Any] = got(client, f"{DEVICES}/{device}/latest", headers)
        return found

    node_id = str(node["id"])
    assert status(node_id) == {
        "online": False,
        "birth": None,
        "last_death": None,
        "bd_seq": None,
        "rebirths": 0,
        "seq_gaps": 0,
    }
    mqtt: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    with mqtt_device(broker, mqtt["username"], mqtt["password"], client_id="a-e1") as edge:
        edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth(bd_seq=3))
        edge.publish(  # seq 1 missing: a gap, stored, and a rebirth asked for
            f"spBv1.0/{G}/NDATA/Edge1", data(2, Metric(alias=1, datatype=T.Float, value=21.0))
        )
        speed = Metric(name="Speed", alias=10, datatype=T.Double, value=100.0)
        edge.publish(
            f"spBv1.0/{G}/DBIRTH/Edge1/press-1",
            encode_payload(Payload(timestamp=TS + 2000, seq=3, metrics=[speed])),
        )
        await eventually(lambda: status(node_id)["seq_gaps"] == 1, "the gap counted")
        shown = status(node_id)
        assert (shown["online"], shown["bd_seq"], shown["rebirths"]) == (True, 3, 1)
        assert shown["birth"] is not None
        assert shown["last_death"] is None
        found = client.get(DEVICES, params={"search": "press-1"}, headers=headers).json()
        press = found["items"][0]["id"]
        assert found["items"][0]["sparkplug"] is None  # in a single device's GET only
        await eventually(lambda: status(press)["online"], "the device born")
        assert status(press)["birth"] is not None
        assert latest(press)["Speed"] == {
            "ts": "2025-11-30T10:53:22.000000Z",
            "value": 100.0,
            "quality": "good",
        }

        edge.publish(f"spBv1.0/{G}/DDEATH/Edge1/press-1", data(4))
        await eventually(lambda: not status(press)["online"], "DDEATH")
        assert status(press)["last_death"] is not None
        assert latest(press)["Speed"]["stale"] is True
        assert latest(press)["Speed"]["quality"] == "uncertain"
        assert status(node_id)["online"] is True
        assert "stale" not in latest(node_id)["Temp"]

        edge.publish(f"spBv1.0/{G}/NDEATH/Edge1", death(bd_seq=3))
        await eventually(lambda: not status(node_id)["online"], "NDEATH")
        assert status(node_id)["last_death"] is not None
        assert latest(node_id)["Temp"]["stale"] is True
        assert latest(node_id)["Temp"]["value"] == 21.0

    # another tenant sees neither the node nor its status
    other = tenant_b.headers["engineer"]
    assert client.get(f"{DEVICES}/{node_id}", headers=other).status_code == 404
    assert client.get(f"{DEVICES}/{node_id}/latest", headers=other).status_code == 404
    metrics = client.get("/metrics").text
    for line in (
        "plantwire_sparkplug_nodes_online 0.0",
        "plantwire_sparkplug_births_total 2.0",
        "plantwire_sparkplug_deaths_total 2.0",
        "plantwire_sparkplug_seq_gaps_total 1.0",
        "plantwire_sparkplug_rebirth_requests_total 1.0",
        "plantwire_sparkplug_host_online_accounts 1.0",
    ):
        assert line in metrics, line

"""Sparkplug B edge nodes provisioned through the device API, checked against the real bundled
broker with a real MQTT client: what the credentials may publish and subscribe to, names the
broker cannot carry, and two tenants with the same group."""

from __future__ import annotations

from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.telemetry.conftest import mqtt_device
from tests.telemetry.test_broker import no_message, platform, subscribe

DEVICES = "/api/v1/devices"
FAILURE = 0x80


def make_node(client: TestClient, headers: dict[str, str], name: str) -> dict[str, object]:
    made = client.post(DEVICES, json={"name": name, "kind": "sparkplug-node"}, headers=headers)
    assert made.status_code == 201, made.text
    body: dict[str, object] = made.json()
    return body


def test_edge_node_names_the_broker_cannot_carry_are_refused(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, _ = with_broker
    headers = seed.tenants["a"].headers["engineer"]
    for name in ("Plant 1/Edge1", "Plant1", "Plant1/Edge1/extra", "Pl*nt/E", "P/E>", "P/.E", "/E"):
        refused = client.post(
            DEVICES, json={"name": name, "kind": "sparkplug-node"}, headers=headers
        )
        assert refused.status_code == 422, (name, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    refused = client.post(
        DEVICES, json={"name": "P/E/d", "kind": "sparkplug-device"}, headers=headers
    )
    assert refused.status_code == 422  # made by the platform on DBIRTH, never through the API
    node = make_node(client, headers, "Plant1/Edge.1")
    assert node["kind"] == "sparkplug-node"
    assert node["topics"] == {
        "telemetry": "spBv1.0/Plant1/NDATA/Edge.1",
        "commands": "spBv1.0/Plant1/NCMD/Edge.1",
    }
    renamed = client.patch(f"{DEVICES}/{node['id']}", json={"name": "Plant1/E2"}, headers=headers)
    assert renamed.status_code == 422, renamed.text
    placed = client.patch(f"{DEVICES}/{node['id']}", json={"place": "Plant1/Hall"}, headers=headers)
    assert placed.status_code == 200, placed.text


async def test_edge_node_credentials_reach_only_its_own_topics(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    node = make_node(client, tenant_a.headers["engineer"], "Plant1/Edge1")
    make_node(client, tenant_a.headers["engineer"], "Plant1/Edge2")
    theirs = make_node(client, tenant_b.headers["engineer"], "Plant1/Edge1")  # same group, ok
    credentials: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    other: dict[str, str] = theirs["mqtt"]  # type: ignore[assignment]
    async with platform(broker) as nats_client:
        received = await subscribe(nats_client, "tenant.*.spBv1//0.>")
        with (
            mqtt_device(
                broker, credentials["username"], credentials["password"], client_id="e1"
            ) as edge,
            mqtt_device(broker, other["username"], other["password"], client_id="e1") as edge_b,
        ):
            assert edge.connack == "Success"
            assert edge_b.connack == "Success"
            for topic in (
                "spBv1.0/Plant1/NBIRTH/Edge1",
                "spBv1.0/Plant1/NDATA/Edge1",
                "spBv1.0/Plant1/DBIRTH/Edge1/press-1",
                "spBv1.0/Plant1/DDATA/Edge1/press-1",
                "spBv1.0/Plant1/DDEATH/Edge1/press-1",
                "spBv1.0/Plant1/NDEATH/Edge1",
                # refused ("Publish Violation"): another node, another group, commands, STATE
                "spBv1.0/Plant1/NDATA/Edge2",
                "spBv1.0/Plant1/DDATA/Edge2/press-1",
                "spBv1.0/Plant2/NDATA/Edge1",
                "spBv1.0/Plant1/NCMD/Edge1",
                "spBv1.0/STATE/plantwire",
                "spBv1.0/Plant1/DDATA/Edge1/press-1/deeper",
            ):
                edge.publish(topic, topic.encode())
            edge_b.publish("spBv1.0/Plant1/NDATA/Edge1", b"tenant b")
            seen = [await received.next_msg(timeout=5) for _ in range(7)]
            assert await no_message(received)
            assert edge.subscribe("spBv1.0/Plant1/NCMD/Edge1") == "Granted QoS 1"
            assert edge.subscribe("spBv1.0/Plant1/DCMD/Edge1/press-1") == "Granted QoS 1"
            assert edge.subscribe("spBv1.0/STATE/plantwire") == "Granted QoS 1"
            assert edge.subscribe("spBv1.0/Plant1/NCMD/Edge2").value == FAILURE
            assert edge.subscribe("spBv1.0/Plant1/NDATA/Edge1").value == FAILURE
    a, b = tenant_a.id, tenant_b.id
    assert [(message.subject, message.data) for message in seen] == [
        (f"tenant.{a}.spBv1//0.Plant1.NBIRTH.Edge1", b"spBv1.0/Plant1/NBIRTH/Edge1"),
        (f"tenant.{a}.spBv1//0.Plant1.NDATA.Edge1", b"spBv1.0/Plant1/NDATA/Edge1"),
        (
            f"tenant.{a}.spBv1//0.Plant1.DBIRTH.Edge1.press-1",
            b"spBv1.0/Plant1/DBIRTH/Edge1/press-1",
        ),
        (f"tenant.{a}.spBv1//0.Plant1.DDATA.Edge1.press-1", b"spBv1.0/Plant1/DDATA/Edge1/press-1"),
        (
            f"tenant.{a}.spBv1//0.Plant1.DDEATH.Edge1.press-1",
            b"spBv1.0/Plant1/DDEATH/Edge1/press-1",
        ),
        (f"tenant.{a}.spBv1//0.Plant1.NDEATH.Edge1", b"spBv1.0/Plant1/NDEATH/Edge1"),
        (f"tenant.{b}.spBv1//0.Plant1.NDATA.Edge1", b"tenant b"),
    ]

"""The host's STATE through the real bundled broker, seen by real MQTT clients (paho) of the
tenants' edge nodes: the retained birth on subscribe, in each tenant account that has an edge
node (and only there); the will when the platform is killed; the death on a clean stop; a new
birth, with a later timestamp, after a restart."""

from __future__ import annotations

import json
import signal
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.mqtt_packets import (
    Incoming,
    MqttError,
    Will,
    connect,
    publish,
    read_packet,
)
from tests.conftest import Seed
from tests.security.helpers import platform_of
from tests.telemetry.conftest import MqttDevice, mqtt_device, wait_for
from tests.telemetry.sparkplug.test_provisioning import make_node
from tests.telemetry.test_platform_kill import (  # noqa: F401 - site: a fixture
    Site,
    admin_and_tenant,
    site,
)

STATE = "spBv1.0/STATE/plantwire"


def states(node: MqttDevice) -> list[dict[str, Any]]:
    return [json.loads(payload) for topic, payload in node.messages if topic == STATE]


def host_of(client: TestClient) -> Any:
    platform = platform_of(client)
    return platform.host_state


def test_each_tenant_with_an_edge_node_holds_the_retained_birth(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    node = make_node(client, tenant_a.headers["engineer"], "Plant1/Edge1")
    host = host_of(client)
    wait_for(lambda: tenant_a.id in host.online, "the host's birth in tenant a", 10)
    assert tenant_b.id not in host.online  # no edge node there: no connection either
    born = host.online[tenant_a.id]
    mine: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    with mqtt_device(broker, mine["username"], mine["password"], client_id="a-e1") as edge:
        assert edge.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
        edge.wait_message()
        assert states(edge) == [{"online": True, "timestamp": born}]
        # tenant b gets its own once it has an edge node
        theirs = make_node(client, tenant_b.headers["engineer"], "Plant1/Edge1")
        other: dict[str, str] = theirs["mqtt"]  # type: ignore[assignment]
        wait_for(lambda: tenant_b.id in host.online, "the host's birth in tenant b", 10)
        with mqtt_device(broker, other["username"], other["password"], client_id="b") as b:
            assert b.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
            b.wait_message()
            assert states(b) == [{"online": True, "timestamp": host.online[tenant_b.id]}]
        # its last edge node deleted: the host says it goes offline there, then leaves
        deleted = client.delete(
            f"/api/v1/devices/{theirs['id']}", headers=tenant_b.headers["engineer"]
        )
        assert deleted.status_code == 204, deleted.text
        wait_for(lambda: tenant_b.id not in host.online, "the host leaving tenant b", 10)
        assert states(edge) == [{"online": True, "timestamp": born}]  # a's is untouched


def test_nobody_else_may_publish_as_the_host(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    """An edge node's STATE publish is dropped; the host's user is refused a wrong
    password."""
    client, seed, broker = with_broker
    tenant_a = seed.tenants["a"]
    node = make_node(client, tenant_a.headers["engineer"], "Plant1/Edge1")
    host = host_of(client)
    wait_for(lambda: tenant_a.id in host.online, "the host's birth", 10)
    mine: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    with mqtt_device(broker, mine["username"], mine["password"], client_id="a-e1") as edge:
        edge.publish(STATE, json.dumps({"online": False, "timestamp": 2**50}).encode())
        assert edge.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
        edge.wait_message()
        assert states(edge) == [{"online": True, "timestamp": host.online[tenant_a.id]}]
    with mqtt_device(
        broker, f"sparkplug-host/{tenant_a.id}", "not the password", client_id="x", wait=True
    ) as impostor:
        assert impostor.connack is not None
        assert impostor.connack.is_failure


def test_mqtt_packets_round_trip_what_the_host_sends() -> None:
    will = Will(STATE, b'{"online":false}')
    packet = connect("c", "u", "p", keepalive=30, will=will)
    assert packet[0] == 0x10
    assert packet[2:8] == b"\x00\x04MQTT"
    buffer = bytearray(publish(STATE, b"x" * 300, 7, retain=True) + b"\x40\x02\x00\x07")
    first = read_packet(buffer)
    assert first is not None
    assert first.kind == 0x30
    assert first.flags == 0x03
    assert read_packet(buffer) == Incoming(0x40, 0, b"\x00\x07")
    assert read_packet(buffer) is None
    half = bytearray(b"\x20\x02\x00")
    assert read_packet(half) is None
    assert half == b"\x20\x02\x00"
    with pytest.raises(MqttError):
        read_packet(bytearray(b"\x30\xff\xff\xff\xff\x01"))
    with pytest.raises(MqttError):
        publish(STATE, b"", 0)


def test_a_killed_platform_leaves_its_will_and_a_stopped_one_its_death(
    site: Site,  # noqa: F811 - the fixture
) -> None:
    first = site.start()
    first.wait_for('"ingest.started"')
    admin, tenant = admin_and_tenant(site)
    body = {"name": "Plant1/Edge1", "kind": "sparkplug-node", "tenant": tenant["id"]}
    made = httpx.post(f"{site.url}/api/v1/devices", json=body, headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    mqtt = made.json()["mqtt"]
    broker = cast(BundledBroker, SimpleNamespace(options=SimpleNamespace(mqtt_port=site.mqtt)))
    with mqtt_device(broker, mqtt["username"], mqtt["password"], client_id="e1") as edge:
        assert edge.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
        wait_for(lambda: len(states(edge)) == 1, "the retained birth", 10)
        (birth,) = states(edge)
        assert birth["online"] is True
        first.kill()  # SIGKILL: the broker publishes the host's will
        wait_for(lambda: len(states(edge)) == 2, "the will", 10)
        assert states(edge)[1] == {"online": False, "timestamp": birth["timestamp"]}
        second = site.start()
        second.wait_for('"ingest.started"')
        wait_for(lambda: len(states(edge)) == 3, "a new birth", 20)
        again = states(edge)[2]
        assert again["online"] is True
        assert again["timestamp"] > birth["timestamp"]
        second.process.send_signal(signal.SIGTERM)  # a clean stop: the host's own death
        second.process.wait(30)  # (uvicorn raises SIGTERM again once it has shut down)
        wait_for(lambda: len(states(edge)) == 4, "the death", 10)
        assert states(edge)[3] == {"online": False, "timestamp": again["timestamp"]}
        assert '"sparkplug.state_offline"' in second.output()

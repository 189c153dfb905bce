"""The host's STATE through the real bundled broker, seen by real MQTT clients (paho) of the
tenants' edge nodes: the retained birth on subscribe, in each tenant account that has an edge
node (and only there); the will when the platform is killed; the death on a clean stop; a new
birth, with a later timestamp, after a restart; all of it over MQTT with TLS too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import trustme
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from plantwire.app import create_app
from plantwire.lifecycle import build_platform, initialise
from plantwire.telemetry.accounts import Device, TenantAccount, device_username
from plantwire.telemetry.broker import CLIENTS_CA_FILE, BundledBroker
from plantwire.telemetry.devices import broker_accounts
from plantwire.telemetry.mqtt_packets import (
    Incoming,
    MqttError,
    Will,
    connect,
    publish,
    read_packet,
)
from plantwire.telemetry.mqtt_tls import host_tls_context, pinned_certificate
from plantwire.telemetry.natsconf import PLATFORM_USER
from plantwire.telemetry.sparkplug_state import (
    HostStatePublisher,
    dial_address,
    host_state_publisher,
)
from tests.conftest import ADMIN_PASSWORD, Seed, make_settings, seed_platform
from tests.security.helpers import platform_of
from tests.telemetry.conftest import (
    CHEAP_HASH,
    TENANT_A,
    MqttDevice,
    broker_settings,
    mqtt_device,
    wait_for,
)
from tests.telemetry.sparkplug.test_host import eventually
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


# --- MQTT over TLS ---------------------------------------------------------------------------


def tls_files(
    directory: Path, name: str = "broker.plant.example"
) -> tuple[trustme.CA, dict[str, Path]]:
    """A CA and a broker certificate for a plant's host name only (not 127.0.0.1, where the
    host dials): ``cert`` holds the key and the chain, as operators often keep them."""
    ca = trustme.CA()
    server = ca.issue_cert(name)
    files = {name: directory / f"{name}.pem" for name in ("cert", "key", "ca")}
    server.private_key_and_cert_chain_pem.write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    return ca, files


def device_tls(ca: trustme.CA, ca_file: Path, client: bool) -> ssl.SSLContext:
    """An edge node's context: trusts the CA (the certificate does not name 127.0.0.1),
    with a client certificate of that CA when ``client``."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    if client:
        ca.issue_cert("edge-1.plant.example").configure_cert(context)
    return context


def test_over_tls_with_client_certificates_a_killed_platform_leaves_its_will(
    site: Site,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener on 0.0.0.0 with TLS and client certificates required: the host dials
    loopback, pins the listener's certificate and presents its own; an edge node over TLS
    gets the retained birth, the will when the platform is killed, and a new birth."""
    ca, files = tls_files(tmp_path)
    monkeypatch.setenv("PLANTWIRE_BROKER_MQTT_HOST", "0.0.0.0")
    monkeypatch.setenv("PLANTWIRE_BROKER_MQTT_TLS_CERT", str(files["cert"]))
    monkeypatch.setenv("PLANTWIRE_BROKER_MQTT_TLS_KEY", str(files["key"]))
    monkeypatch.setenv("PLANTWIRE_BROKER_MQTT_TLS_CA", str(files["ca"]))
    first = site.start()
    first.wait_for('"ingest.started"')
    admin, tenant = admin_and_tenant(site)
    body = {"name": "Plant1/Edge1", "kind": "sparkplug-node", "tenant": tenant["id"]}
    made = httpx.post(f"{site.url}/api/v1/devices", json=body, headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    mqtt = made.json()["mqtt"]
    broker = cast(BundledBroker, SimpleNamespace(options=SimpleNamespace(mqtt_port=site.mqtt)))
    tls = device_tls(ca, files["ca"], client=True)
    with mqtt_device(broker, mqtt["username"], mqtt["password"], client_id="e1", tls=tls) as edge:
        assert edge.connack == "Success"
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
        assert states(edge)[2]["online"] is True
        assert states(edge)[2]["timestamp"] > birth["timestamp"]
    assert "sparkplug.state_connection_lost" not in first.output() + second.output()
    # the listener admits exactly the host's certificate besides the operator's CA's
    cas = (site.data / "broker" / CLIENTS_CA_FILE).read_text(encoding="ascii")
    assert cas.startswith(files["ca"].read_text(encoding="ascii").rstrip("\n"))
    host_cert = (site.data / "broker" / "mqtt-host-cert.pem").read_text(encoding="ascii")
    assert cas.endswith(host_cert)
    with mqtt_device(broker, mqtt["username"], mqtt["password"], client_id="e2") as plain:
        assert plain.connack is None  # plain MQTT on the TLS port: no CONNACK


async def test_over_tls_the_host_trusts_only_the_listeners_certificate(tmp_path: Path) -> None:
    """Without client certificates: the birth and the death over TLS, seen by an edge node
    over TLS; a host pinned to another certificate never connects."""
    ca, files = tls_files(tmp_path)
    settings = broker_settings(
        tmp_path / "data",
        broker_mqtt_tls_cert=files["cert"],
        broker_mqtt_tls_key=files["key"],
    )
    broker = BundledBroker.from_settings(settings)
    edge_node = Device("edge-1", CHEAP_HASH, "Plant1", "Edge1")
    broker.start([TenantAccount(TENANT_A, (edge_node,))])
    try:
        publisher = host_state_publisher(broker, CollectorRegistry())
        assert publisher is not None
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await eventually(lambda: TENANT_A in publisher.online, "the host's birth over TLS")
        username = device_username(TENANT_A, "edge-1")
        tls = device_tls(ca, files["ca"], client=False)
        with mqtt_device(broker, username, client_id="e1", tls=tls) as edge:
            assert edge.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
            wait_for(lambda: len(states(edge)) == 1, "the retained birth")
            born = publisher.online[TENANT_A]
            assert states(edge) == [{"online": True, "timestamp": born}]
            stop.set()
            await asyncio.wait_for(task, 10)
            wait_for(lambda: len(states(edge)) == 2, "the death")
            assert states(edge)[1] == {"online": False, "timestamp": born}

        other = trustme.CA().issue_cert("broker.plant.example")  # same name, another key
        other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.pem"))
        impostor = HostStatePublisher(
            lambda: broker.tenants,
            "plantwire",
            ("127.0.0.1", broker.options.mqtt_port),
            broker.endpoint.password or "",
            tls=partial(host_tls_context, tmp_path / "other.pem"),
            retry_seconds=(0.1,),
        )
        stop = asyncio.Event()
        with capture_logs() as logs:
            task = asyncio.create_task(impostor.run(stop))
            await eventually(lambda: len(logs) >= 2, "two refused connections")
            stop.set()
            await asyncio.wait_for(task, 10)
        assert impostor.online == {}
        assert all("CERTIFICATE_VERIFY_FAILED" in str(log["error"]) for log in logs), logs
    finally:
        broker.stop()


def test_the_pinned_certificate_is_the_first_of_the_file(tmp_path: Path) -> None:
    _, files = tls_files(tmp_path)
    pinned = pinned_certificate(files["cert"])  # the key comes first in that file
    assert pinned.startswith("-----BEGIN CERTIFICATE-----")
    assert pinned.count("BEGIN CERTIFICATE") == 1
    (tmp_path / "empty.pem").write_text("no PEM here\n", encoding="ascii")
    with pytest.raises(ValueError, match="no PEM certificate"):
        pinned_certificate(tmp_path / "empty.pem")
    assert [dial_address(host) for host in ("0.0.0.0", "::", "[::]", "10.0.0.5", "mqtt.lan")] == [
        "127.0.0.1",
        "::1",
        "::1",
        "10.0.0.5",
        "mqtt.lan",
    ]


# --- an external NATS --------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["mqtt", "mqtts"])
def test_with_an_external_nats_the_host_publishes_its_state_through_its_mqtt(
    tmp_path: Path, scheme: str
) -> None:
    """``broker_url`` and ``sparkplug_state_mqtt_url``: a nats-server the platform does not
    run (started here, as an operator would, with the bundled broker's account layout, which
    has the host's users), kept in step with the registry by the operator (here: the test).
    The host publishes its birth as ``sparkplug-host/<tenant>`` there, and its death on stop;
    ingest ignores its own STATE. ``mqtts``: the listener requires client certificates of
    the operator's CA, and the host presents the one it was given."""
    ca, files = tls_files(tmp_path, "localhost")
    secure = scheme == "mqtts"
    listener: dict[str, Path] = {}
    state_tls: dict[str, Path] = {}
    if secure:
        listener = {
            "broker_mqtt_tls_cert": files["cert"],
            "broker_mqtt_tls_key": files["key"],
            "broker_mqtt_tls_ca": files["ca"],
        }
        issued = ca.issue_cert("plantwire-host")
        issued.cert_chain_pems[0].write_to_path(str(tmp_path / "host-cert.pem"))
        issued.private_key_pem.write_to_path(str(tmp_path / "host-key.pem"))
        state_tls = {
            "sparkplug_state_mqtt_ca": files["ca"],
            "sparkplug_state_mqtt_cert": tmp_path / "host-cert.pem",
            "sparkplug_state_mqtt_key": tmp_path / "host-key.pem",
        }
    external = BundledBroker.from_settings(broker_settings(tmp_path / "external", **listener))
    external.start()
    try:
        password = external.endpoint.password or ""
        host = "localhost" if secure else "127.0.0.1"  # the name the certificate holds
        settings = make_settings(
            tmp_path / "data",
            broker_url=f"nats://{PLATFORM_USER}:{password}@127.0.0.1:{external.options.nats_port}",
            sparkplug_state_mqtt_url=f"{scheme}://{host}:{external.options.mqtt_port}",
            sparkplug_state_mqtt_password=password,
            **state_tls,
        )
        initialise(settings, ADMIN_PASSWORD)
        built = build_platform(settings)
        with contextlib.ExitStack() as edges:  # the edge node outlives the app
            with TestClient(create_app(settings, built), raise_server_exceptions=False) as client:
                assert built.broker is None
                seed = seed_platform(client)
                tenant_a = seed.tenants["a"]
                node = make_node(client, tenant_a.headers["engineer"], "Plant1/Edge1")
                with built.sessions() as session:  # the operator's part: users and accounts
                    external.apply(broker_accounts(session))
                publisher = built.host_state
                assert publisher is not None
                wait_for(lambda: tenant_a.id in publisher.online, "the host's birth", 20)
                born = publisher.online[tenant_a.id]
                mine: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
                tls = device_tls(ca, files["ca"], client=True) if secure else None
                edge = edges.enter_context(
                    mqtt_device(
                        external, mine["username"], mine["password"], client_id="e1", tls=tls
                    )
                )
                assert edge.subscribe("spBv1.0/STATE/+") == "Granted QoS 1"
                wait_for(lambda: len(states(edge)) == 1, "the retained birth")
                assert states(edge) == [{"online": True, "timestamp": born}]

                def applied() -> bool:
                    return "plantwire_ingest_messages_total 1.0" in client.get("/metrics").text

                wait_for(applied, "ingest took the host's own STATE", 10)
                assert 'reason="state"' not in client.get("/metrics").text
            # the app stopped: the host's death
            wait_for(lambda: len(states(edge)) == 2, "the death", 10)
            assert states(edge)[1] == {"online": False, "timestamp": born}
    finally:
        external.stop()

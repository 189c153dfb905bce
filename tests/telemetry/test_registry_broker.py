"""The device registry drives the bundled broker: a device created through the API connects
with the credentials the API gave and its data reaches the platform under its tenant;
rotated and deleted credentials stop working at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.config import Settings
from plantwire.lifecycle import build_platform
from plantwire.telemetry.accounts import telemetry_subject
from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed, seed_platform
from tests.security.helpers import platform_of
from tests.telemetry.conftest import mqtt_device
from tests.telemetry.test_broker import REFUSED, platform, subscribe

DEVICES = "/api/v1/devices"


async def test_registry_devices_connect_and_lose_access_when_changed(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant_a, tenant_b = seed.tenants["a"], seed.tenants["b"]
    made = client.post(DEVICES, json={"name": "press-1"}, headers=tenant_a.headers["engineer"])
    assert made.status_code == 201, made.text
    device = made.json()
    theirs = client.post(DEVICES, json={"name": "press-1"}, headers=tenant_b.headers["engineer"])
    assert theirs.status_code == 201, theirs.text
    username, password = device["mqtt"]["username"], device["mqtt"]["password"]
    async with platform(broker) as nats_client:
        received = await subscribe(nats_client, "tenant.*.plantwire.v1.devices.*.telemetry")
        with mqtt_device(broker, username, password) as press:
            assert press.connack == "Success"
            press.publish(device["topics"]["telemetry"], b'{"t": 1}')
            message = await received.next_msg(timeout=5)
        assert message.subject == telemetry_subject(tenant_a.id, device["id"])
        assert message.data == b'{"t": 1}'
        # the other tenant's press-1 is another user, with another password
        with mqtt_device(broker, theirs.json()["mqtt"]["username"], password) as wrong:
            assert wrong.connack == REFUSED

        path = f"{DEVICES}/{device['id']}"
        with mqtt_device(broker, username, password) as connected:
            assert connected.connack == "Success"
            rotated = client.post(f"{path}/credentials", headers=tenant_a.headers["engineer"])
            assert rotated.status_code == 200, rotated.text
        with mqtt_device(broker, username, password) as old:
            assert old.connack == REFUSED
        new_password = rotated.json()["password"]
        with mqtt_device(broker, username, new_password) as renewed:
            assert renewed.connack == "Success"
        assert client.delete(path, headers=tenant_a.headers["engineer"]).status_code == 204
        with mqtt_device(broker, username, new_password) as gone:
            assert gone.connack == REFUSED


def test_a_restarted_platform_admits_the_registrys_devices(platform_settings: Settings) -> None:
    """Devices created before a restart connect after it, with no change needed."""
    built = build_platform(platform_settings)
    with TestClient(create_app(platform_settings, built)) as client:  # no broker yet
        seed = seed_platform(client)
        made = client.post(
            DEVICES, json={"name": "oven"}, headers=seed.tenants["a"].headers["tenant-admin"]
        )
        credentials = made.json()["mqtt"]
    restarted = build_platform(platform_settings)
    restarted.broker = BundledBroker.from_settings(platform_settings)
    restarted.broker.start()
    try:
        with (
            TestClient(create_app(platform_settings, restarted)),
            mqtt_device(restarted.broker, credentials["username"], credentials["password"]) as oven,
        ):
            assert oven.connack == "Success"
    finally:
        restarted.broker.stop()


async def test_the_platform_ingests_what_its_devices_publish(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    """Device created through the API → MQTT → broker → ingest → store, with bad messages
    readable as the device's dead letters, and readiness reporting the broker."""
    client, seed, broker = with_broker
    headers = seed.tenants["a"].headers["engineer"]
    body = {"name": "press-1", "metrics": [{"name": "t", "data_type": "float"}]}
    device = client.post(DEVICES, json=body, headers=headers).json()
    platform = platform_of(client)
    assert platform.ingest is not None
    await eventually(lambda: platform.ingest is not None and platform.ingest.js is not None)
    ready = client.get("/readyz").json()
    assert ready["checks"]["broker"] == "ok", ready
    credentials = device["mqtt"]
    with mqtt_device(broker, credentials["username"], credentials["password"]) as press:
        assert press.connack == "Success"
        for payload in (b'{"ts": 1764496800000, "values": {"t": 20.5}}', b'{"t": "hot"}', b"{"):
            press.publish(device["topics"]["telemetry"], payload)
    store = platform.store
    assert store is not None
    tenant_id = seed.tenants["a"].id

    def stored() -> list[object]:
        assert store is not None
        page = store.raw(tenant_id, device["id"], "t", 0, 2**62, limit=10)
        return [point.value for point in page.points]

    await eventually(lambda: stored() == [20.5])
    path = f"{DEVICES}/{device['id']}/dead-letters"
    await eventually(lambda: client.get(path, headers=headers).json().get("count") == 2)
    letters = client.get(path, headers=headers).json()
    assert [(item["reason"], item["payload"]) for item in letters["items"]] == [
        ("type", '{"t": "hot"}'),
        ("json", "{"),
    ]
    other = seed.tenants["b"].headers["tenant-admin"]
    assert client.get(path, headers=other).status_code == 404


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)

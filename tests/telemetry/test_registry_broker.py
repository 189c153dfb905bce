"""The device registry drives the bundled broker: a device created through the API connects
with the credentials the API gave and its data reaches the platform under its tenant;
rotated and deleted credentials stop working at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plantwire.app import create_app
from plantwire.config import Settings
from plantwire.lifecycle import build_platform, initialise
from plantwire.telemetry.accounts import telemetry_subject
from plantwire.telemetry.broker import BundledBroker
from tests.conftest import ADMIN_PASSWORD, Seed, seed_platform
from tests.telemetry.conftest import broker_settings, mqtt_device
from tests.telemetry.test_broker import REFUSED, platform, subscribe

DEVICES = "/api/v1/devices"


@pytest.fixture
def platform_settings(tmp_path: Path) -> Settings:
    settings = broker_settings(tmp_path / "data")
    initialise(settings, ADMIN_PASSWORD)
    return settings


@pytest.fixture
def with_broker(platform_settings: Settings) -> Iterator[tuple[TestClient, Seed, BundledBroker]]:
    """The platform app with a started bundled broker, as ``plantwire up`` wires them."""
    built = build_platform(platform_settings)
    broker = BundledBroker.from_settings(platform_settings)
    broker.start()
    built.broker = broker  # the app's shutdown stops it
    try:
        app = create_app(platform_settings, built)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, seed_platform(client), broker
    finally:
        broker.stop()


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

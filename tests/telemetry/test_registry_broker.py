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
from plantwire.telemetry.accounts import account_name, telemetry_subject
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.devices import broker_accounts
from plantwire.telemetry.ingest import CHECKPOINT, TELEMETRY_STREAM, dead_letter_subject
from plantwire.telemetry.natsconf import configured_tenants
from tests.conftest import Seed, broker_port_env, seed_platform
from tests.security.helpers import platform_of
from tests.telemetry.conftest import mqtt_device
from tests.telemetry.test_broker import (
    REFUSED,
    broker_command,
    orphaned_broker,
    platform,
    subscribe,
)
from tests.telemetry.test_ingest import dead_letters
from tests.telemetry.test_tenant_removal import healthy, jetstream_accounts, leave_session

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
    # its stream must exist before the device publishes, or the stream never sees the message
    await eventually(lambda: platform.ingest is not None and platform.ingest.ready.is_set())
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


async def test_a_deleted_tenants_broker_state_goes_and_the_other_tenants_stays(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    """A tenant whose device kept a persistent MQTT session is deleted through the API: the
    deletion itself reloads the broker, which stays healthy without the tenant's JetStream
    state; the tenant's device is refused; the other tenant's device keeps its session and
    its data reaches the store; and what the TELEMETRY stream accepted from the deleted
    tenant is each stored or, for a device gone by then, a dead letter, once."""
    client, seed, broker = with_broker
    ours, theirs = seed.tenants["a"], seed.tenants["b"]
    served = platform_of(client)
    await eventually(lambda: served.ingest is not None and served.ingest.ready.is_set())
    store = served.store
    assert store is not None
    press, idle, oven = (
        client.post(DEVICES, json={"name": name}, headers=who.headers["engineer"]).json()
        for name, who in (("press-1", ours), ("press-2", ours), ("oven", theirs))
    )
    leave_session(broker, ours.id, press["id"], press["mqtt"]["password"])
    leave_session(broker, theirs.id, oven["id"], oven["mqtt"]["password"])

    def points(tenant_id: str, device_id: str) -> list[object]:
        assert store is not None
        page = store.raw(tenant_id, device_id, "t", 0, 2**62, limit=10)
        return [point.value for point in page.points]

    await eventually(
        lambda: points(ours.id, press["id"]) == points(theirs.id, oven["id"]) == [1, 2]
    )

    tenant_path = f"/api/v1/tenants/{ours.id}"
    assert client.delete(tenant_path, headers=seed.admin).status_code == 409  # not empty yet
    for device in (press, idle):
        gone = client.delete(f"{DEVICES}/{device['id']}", headers=ours.headers["engineer"])
        assert gone.status_code == 204
    for user in ours.users.values():
        assert client.delete(f"/api/v1/users/{user['id']}", headers=seed.admin).status_code == 204
    # the tenant's last device gone, its account (and what the session left) stays
    assert ours.id in configured_tenants(broker.options.config_file.read_text())
    assert account_name(ours.id) in jetstream_accounts(broker)
    assert client.delete(tenant_path, headers=seed.admin).status_code == 204
    # no other change needed: the deletion took the account and its state off the broker
    assert healthy(broker)
    assert account_name(ours.id) not in jetstream_accounts(broker)
    assert ours.id not in broker.options.config_file.read_text()

    with mqtt_device(broker, press["mqtt"]["username"], press["mqtt"]["password"]) as refused:
        assert refused.connack == REFUSED
    oven_login = oven["mqtt"]["username"], oven["mqtt"]["password"]
    with mqtt_device(broker, *oven_login, clean_session=False) as kept:
        assert kept.connack == "Success"
        assert kept.session_present
        kept.publish(oven["topics"]["telemetry"], b'{"t": 3}')
    await eventually(lambda: points(theirs.id, oven["id"]) == [1, 2, 3])

    # a message the stream accepted from the deleted tenant that ingest meets only now
    async with platform(broker) as nats_client:
        js = nats_client.jetstream()
        await js.publish(telemetry_subject(ours.id, idle["id"]), b'{"t": 4}')
        info = await js.stream_info(TELEMETRY_STREAM, subjects_filter=f"tenant.{ours.id}.>")
    await eventually(lambda: store.checkpoint(CHECKPOINT) == info.state.last_seq)
    letters = [
        (subject, headers.get("Plantwire-Reason"), payload)
        for subject, headers, payload in await dead_letters(broker)
    ]
    assert letters == [(dead_letter_subject(ours.id, idle["id"]), "device", b'{"t": 4}')]
    assert points(ours.id, press["id"]) == [1, 2]  # what was stored stays
    # each of the tenant's accepted messages: stored, or lettered, once
    assert sum((info.state.subjects or {}).values()) == 3 == len(points(ours.id, press["id"])) + 1


def test_plantwire_broker_adopts_a_killed_platforms_broker_with_the_registrys_devices(
    platform_settings: Settings,
) -> None:
    """``plantwire broker`` on a data dir whose platform was killed while a device was
    connected: it adopts the broker with the registry's devices, so the device stays
    connected, keeps its session, and can connect again."""
    built = build_platform(platform_settings)
    with TestClient(create_app(platform_settings, built)) as client:  # no broker
        seed = seed_platform(client)
        headers = seed.tenants["a"].headers["tenant-admin"]
        login = client.post(DEVICES, json={"name": "oven"}, headers=headers).json()["mqtt"]
    credentials = login["username"], login["password"]
    with orphaned_broker(platform_settings):  # the broker a killed platform left
        left = BundledBroker.from_settings(platform_settings)
        reader = build_platform(platform_settings)
        try:
            with reader.sessions() as session:
                left.start(broker_accounts(session))  # the killed platform had its devices
        finally:
            reader.engine.dispose()
        try:
            with mqtt_device(left, *credentials, clean_session=False) as oven:
                assert oven.connack == "Success"
                data = platform_settings.data_dir
                with broker_command(data, broker_port_env(platform_settings)) as output:
                    assert "reused the running nats-server" in output
                    assert healthy(left)
                    assert not oven.disconnected.is_set()
                    assert account_name(seed.tenants["a"].id) in jetstream_accounts(left)
                    with mqtt_device(left, *credentials, client_id="oven-2") as again:
                        assert again.connack == "Success"
        finally:
            left.stop()

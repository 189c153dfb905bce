"""``GET /api/v1/tenants/{id}/telemetry/activity`` through the real broker: a device's
points counted in the window and the device reporting, a malformed message counted as a
dead letter, nothing of another tenant's, and the tenant's scope enforced."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.security.helpers import assert_problem
from tests.telemetry.conftest import mqtt_device
from tests.telemetry.test_commands import eventually, press_with_commands


def _activity(client: TestClient, seed: Seed, tenant: str, viewer_of: str = "a") -> Any:
    return client.get(
        f"/api/v1/tenants/{seed.tenants[tenant].id}/telemetry/activity",
        params={"window": 60},
        headers=seed.tenants[viewer_of].headers["viewer"],
    )


async def test_points_devices_reporting_and_dead_letters_of_the_tenant_only(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = with_broker
    created, _ = await press_with_commands(client, seed)  # tenant a's press, ingest running
    other = client.post(
        "/api/v1/devices", json={"name": "press-1"}, headers=seed.tenants["b"].headers["engineer"]
    )
    assert other.status_code == 201, other.text
    quiet = _activity(client, seed, "a").json()
    assert quiet | {"tenant": None} == {
        "tenant": None,
        "window_seconds": 60,
        "devices": 1,
        "devices_reporting": 0,
        "points": 0,
        "points_per_second": 0.0,
        "dead_letters": 0,
    }
    now = int(time.time() * 1000)
    credentials, topic = created["mqtt"], created["topics"]["telemetry"]
    with mqtt_device(broker, credentials["username"], credentials["password"]) as press:
        for n in range(3):
            report = {"ts": now - n, "values": {"temperature": 20.0 + n, "setpoint": 5.0}}
            press.publish(topic, json.dumps(report).encode())
        press.publish(topic, b"{not json")
        old = {"ts": now - 3_600_000, "values": {"temperature": 1.0}}  # outside the window
        press.publish(topic, json.dumps(old).encode())
    await eventually(lambda: _activity(client, seed, "a").json()["dead_letters"] == 1)
    temperatures = f"/api/v1/devices/{created['id']}/telemetry"
    window = {"metric": "temperature", "start": str(now - 7_200_000), "end": str(now + 1)}
    headers = seed.tenants["a"].headers["viewer"]
    await eventually(
        lambda: len(client.get(temperatures, params=window, headers=headers).json()["points"]) == 4
    )  # the hour-old point is stored too, and not counted
    busy = _activity(client, seed, "a").json()
    assert busy["points"] == 6
    assert (busy["devices"], busy["devices_reporting"]) == (1, 1)
    assert busy["points_per_second"] == 6 / 60
    theirs = _activity(client, seed, "b", viewer_of="b").json()
    assert (theirs["devices"], theirs["points"], theirs["dead_letters"]) == (1, 0, 0)


def test_another_tenants_activity_is_not_found_and_the_window_is_checked(
    seeded: tuple[TestClient, Seed],
) -> None:
    client, seed = seeded
    assert_problem(_activity(client, seed, "b", viewer_of="a"), 404)
    mine = f"/api/v1/tenants/{seed.tenants['a'].id}/telemetry/activity"
    headers = seed.tenants["a"].headers["viewer"]
    for window in (5, 301):  # 301: longer than the store keeps its recent points apart
        assert_problem(client.get(mine, params={"window": window}, headers=headers), 422)
    without_broker = client.get(mine, headers=headers).json()
    assert without_broker["dead_letters"] is None  # no broker: ingest is not connected

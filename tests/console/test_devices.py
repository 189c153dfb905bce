"""The Devices pages in real Chromium against a real platform: the list (tenant scope, search),
a device's latest values, its live chart while a device publishes over the platform's MQTT
listener, history aggregated per range, the CSV download, and the messages for bad input."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pyarrow.parquet
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page, expect

from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from tests.console.conftest import ConsoleServer, sign_in

LIVE_WAIT = 15_000  # ms: a value's way through ingest plus a poll (2 s), on a busy machine


@contextlib.contextmanager
def mqtt_device(server: ConsoleServer, device: dict[str, Any]) -> Iterator[mqtt.Client]:
    """A seeded JSON device connected to the platform's MQTT listener with its credentials."""
    credentials = device["mqtt"]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=credentials["username"], protocol=mqtt.MQTTv311
    )
    client.username_pw_set(credentials["username"], credentials["password"])
    client.connect("127.0.0.1", server.mqtt_port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, device: dict[str, Any], ts_ms: int, **values: float) -> None:
    payload = json.dumps({"ts": ts_ms, "values": values}).encode()
    client.publish(device["topics"]["telemetry"], payload, qos=1).wait_for_publish(5)


def now_ms() -> int:
    return int(time.time() * 1000)


def send_now(server: ConsoleServer, device: dict[str, Any], metric: str, value: float) -> None:
    """One value of ``metric`` measured now, published and stored before this returns."""
    with mqtt_device(server, device) as client:
        publish(client, device, now_ms(), **{metric: value})
    wait_stored(server, device, metric, value)


def wait_stored(server: ConsoleServer, device: dict[str, Any], metric: str, value: float) -> None:
    """Until the platform answers ``value`` as the metric's latest (ingest is asynchronous)."""
    deadline = time.monotonic() + 15
    with server.api() as api:
        while time.monotonic() < deadline:
            latest = api.get(f"/api/v1/devices/{device['id']}/latest").json()
            if latest.get(metric, {}).get("value") == value:
                return
            time.sleep(0.1)
    raise AssertionError(f"{metric}={value} not stored in 15 s")


def wait_points(
    server: ConsoleServer, device: dict[str, Any], metric: str, start: int, end: int, count: int
) -> None:
    """Until the platform stores ``count`` points of the metric in [start, end) (epoch ms)."""
    deadline = time.monotonic() + 15
    params = {"metric": metric, "start": str(start), "end": str(end), "limit": "1000"}
    found = 0
    with server.api() as api:
        while time.monotonic() < deadline:
            answer = api.get(f"/api/v1/devices/{device['id']}/telemetry", params=params)
            found = len(answer.json()["points"])
            if found == count:
                return
            time.sleep(0.1)
    raise AssertionError(f"{found} of {count} {metric} points stored in 15 s")


def test_list_shows_own_tenant_and_search_filters(
    page: Page, console_server: ConsoleServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    send_now(console_server, console_server.devices["a"][0], "temperature", 19.0)
    sign_in(page, "a-viewer", path="/devices")
    table = page.get_by_test_id("devices")
    for number in range(3):
        expect(table.get_by_test_id(f"device-a-press-{number}")).to_be_visible()
    expect(table.get_by_text("b-press-0")).to_have_count(0)
    expect(table.get_by_role("row", name="a-press-0")).to_contain_text("online")

    page.get_by_label("Status").click()
    page.get_by_role("option", name="Online").click()
    expect(table.get_by_test_id("device-a-press-0")).to_be_visible()
    expect(table.get_by_test_id("device-a-press-1")).to_have_count(0)
    expect(page.get_by_test_id("devices-shown")).to_contain_text("1 match kind and status")
    page.get_by_label("Status").click()
    page.get_by_role("option", name="Any status").click()
    expect(table.get_by_test_id("device-a-press-2")).to_be_visible()
    expect(page.get_by_role("option")).to_have_count(0)  # the menu closed
    shots = tmp_path_factory.getbasetemp() / "screenshots"  # the list; the fixture's is the device
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "test_list_shows_own_tenant_and_search_filters-list.png"))

    page.get_by_label("Search by name").fill("press-1")
    expect(table.get_by_test_id("device-a-press-1")).to_be_visible()
    expect(table.get_by_test_id("device-a-press-0")).to_have_count(0)
    expect(table.get_by_test_id("device-a-press-2")).to_have_count(0)

    table.get_by_test_id("device-a-press-1").click()
    expect(page.get_by_test_id("device-name")).to_have_text("a-press-1")


def test_device_page_latest_and_live_chart(page: Page, console_server: ConsoleServer) -> None:
    device = console_server.devices["a"][0]
    send_now(console_server, device, "temperature", 20.5)
    sign_in(page, "a-operator", path=f"/devices/{device['id']}")
    latest = page.get_by_test_id("latest")
    expect(latest.get_by_role("row", name=re.compile("temperature"))).to_contain_text("20.5")
    counted = page.get_by_test_id("live-points")
    expect(counted).to_contain_text("1 points of 1 numeric metrics")
    with mqtt_device(console_server, device) as client:
        for step in range(1, 4):  # data flows while the page is open
            publish(client, device, now_ms(), temperature=20.5 + step)
            expect(counted).to_contain_text(
                f"{1 + step} points of 1 numeric metrics", timeout=LIVE_WAIT
            )
        expect(latest.get_by_role("row", name=re.compile("temperature"))).to_contain_text("23.5")
    drawn = page.evaluate(
        """() => {
            const chart = getElement(document.querySelector('[data-testid=live-chart]')).chart;
            return chart.getOption().series[0].data.length;
        }"""
    )
    assert drawn == 4


def test_range_changes_the_aggregated_series(page: Page, console_server: ConsoleServer) -> None:
    device = console_server.devices["a"][1]
    now = now_ms()
    with mqtt_device(console_server, device) as client:
        # with the one now: 2 in 15 min, 3 in 1 h, 6 in 24 h (each in a 5-minute bucket of its own)
        for minutes in (7, 30, 180, 600, 1200):
            publish(client, device, now - minutes * 60_000, pressure=float(minutes))
        publish(client, device, now, pressure=1.0)
    # all six stored, not only the last: a message redelivered under load lands after it
    wait_points(console_server, device, "pressure", now - 1300 * 60_000, now + 1, 6)

    sign_in(page, "a-engineer", path=f"/devices/{device['id']}")
    info = page.get_by_test_id("history-info")
    for choice, interval in (("1 h", "5s"), ("24 h", "5m"), ("15 min", "1s")):
        page.get_by_test_id("range").get_by_text(choice, exact=True).click()
        expect(info).to_contain_text(f"intervals of {interval}, ")
        # the page shows what the API aggregates over the window it names
        shown = re.search(r"pressure: (\d+) intervals of \S+, (\S+) to (\S+)", info.inner_text())
        assert shown is not None, info.inner_text()
        params = {"metric": "pressure", "start": shown[2], "end": shown[3], "interval": interval}
        with console_server.api() as api:
            answer = api.get(f"/api/v1/devices/{device['id']}/telemetry", params=params)
        assert int(shown[1]) == len(answer.json()["points"]) >= 2, answer.text

    with page.expect_download() as download:
        page.get_by_test_id("download-csv").click()
    lines = download.value.path().read_text().splitlines()
    assert download.value.suggested_filename.endswith(".csv")
    with console_server.api() as api:  # the points of the window the page names
        window = {key: value for key, value in params.items() if key != "interval"}
        raw = api.get(f"/api/v1/devices/{device['id']}/telemetry", params=window).json()
    assert len([line for line in lines if "pressure" in line]) == len(raw["points"]) >= 1

    page.get_by_test_id("range").get_by_text("24 h").click()
    expect(info).to_contain_text("6 intervals")
    with page.expect_download() as download:
        page.get_by_test_id("download-csv").click()
    rows = [line for line in download.value.path().read_text().splitlines() if "pressure" in line]
    assert len(rows) == 6
    with page.expect_download() as download:
        page.get_by_test_id("download-parquet").click()
    assert download.value.suggested_filename.endswith(".parquet")
    table = pyarrow.parquet.read_table(download.value.path())
    assert table.num_rows == 6


def test_bad_custom_range_says_why(page: Page, console_server: ConsoleServer) -> None:
    device = console_server.devices["a"][2]
    send_now(console_server, device, "speed", 3.0)
    sign_in(page, "a-viewer", path=f"/devices/{device['id']}")
    page.get_by_test_id("range").get_by_text("Custom").click()
    page.get_by_label("From (UTC)").fill("yesterday")
    page.get_by_label("To (UTC)").fill("2026-11-22 09:00")
    page.get_by_test_id("custom-show").click()
    problem = page.get_by_test_id("history-error")
    expect(problem).to_contain_text("The custom start 'yesterday' is not a time")

    page.get_by_label("From (UTC)").fill("2026-11-22 10:00")
    page.get_by_test_id("custom-show").click()
    expect(problem).to_contain_text("'start' must come before 'end'")  # the API's answer
    page.get_by_label("From (UTC)").fill("2026-09-01 00:00")
    page.get_by_test_id("custom-show").click()
    expect(problem).to_have_text("")  # a range the API can answer clears the message
    page.get_by_test_id("download-csv").click()  # but not an export of three months
    expect(problem).to_contain_text("An export may span at most 31 days")
    expect(page.get_by_test_id("device-name")).to_have_text("a-press-2")


def test_unknown_and_foreign_devices_are_not_found(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_in(page, "a-viewer", path="/devices/no-such-device")
    expect(page.get_by_role("alert")).to_contain_text("No device 'no-such-device'.")
    foreign = console_server.devices["b"][0]
    page.goto(f"/devices/{foreign['id']}")
    expect(page.get_by_role("alert")).to_contain_text(f"No device '{foreign['id']}'.")
    expect(page.get_by_text("b-press-0")).to_have_count(0)


def test_edge_node_shows_sparkplug_status_and_gateway_health(
    page: Page, console_server: ConsoleServer
) -> None:
    with console_server.api() as api:  # a tenant of its own: the others' device counts stay
        tenant = api.post("/api/v1/tenants", json={"name": "Tenant c"})
        assert tenant.status_code == 201, tenant.text
        console_server.tenants["c"] = tenant.json()["id"]
        body = {"name": "Line1/Edge1", "kind": "sparkplug-node", "tenant": tenant.json()["id"]}
        created = api.post("/api/v1/devices", json=body)
    assert created.status_code == 201, created.text
    console_server.add_user("c-viewer", "viewer", "c")
    node = created.json()
    ts = now_ms()
    node_birth = Payload(
        timestamp=ts,
        seq=0,
        metrics=[
            Metric(name="bdSeq", datatype=DataType.Int64, value=0),
            Metric(name="Buffer/Points", alias=1, datatype=DataType.Int64, value=12),
            Metric(name="Uplink/Replayed", alias=2, datatype=DataType.Int64, value=3),
        ],
    )
    device_birth = Payload(
        timestamp=ts,
        seq=1,
        metrics=[
            Metric(name="Connector/Connected", alias=10, datatype=DataType.Boolean, value=True),
            Metric(name="Connector/Errors", alias=11, datatype=DataType.Int64, value=2),
            Metric(name="Speed", alias=12, datatype=DataType.Double, value=100.0),
        ],
    )
    with mqtt_device(console_server, node) as client:
        for topic, payload in (
            ("spBv1.0/Line1/NBIRTH/Edge1", node_birth),
            ("spBv1.0/Line1/DBIRTH/Edge1/plc-1", device_birth),
        ):
            client.publish(topic, encode_payload(payload), qos=1).wait_for_publish(5)
        sign_in(page, "c-viewer", path=f"/devices/{node['id']}")
        health = page.get_by_test_id("health")
        for _ in range(30):  # the births are stored asynchronously: reload until they are
            if health.get_by_text("Connector/Connected").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.get_by_test_id("sparkplug-state")).to_have_text("Online")
        expect(health.get_by_role("row", name="Buffer/Points")).to_contain_text("12")
        connected = health.get_by_role("row", name="Connector/Connected")
        expect(connected).to_contain_text("plc-1")
        expect(connected).to_contain_text("True")
        expect(health.get_by_role("row", name="Connector/Errors")).to_contain_text("2")
        expect(health).not_to_contain_text("Speed")  # data, not health
        page.goto("/")  # the Overview's tile
        expect(page.get_by_test_id("gateways-value")).to_have_text("1 of 1")

"""The Identifiers pages and the product page in a real Chromium against a real ``plantwire
up``: resolving handles made through the Handle API, bad input in words, creating, editing and
deleting handles, a viewer without edit controls whom the API refuses too, the QR code of the
proxy URL, and a product's page with its machine's data from telemetry sent over MQTT."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import pytest
import segno
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Locator, Page, expect

from plantwire.console.handle_values import proxy_url
from tests.conftest import ADMIN_PASSWORD, PASSWORD
from tests.console.conftest import ConsoleServer, sign_in, sign_out

PREFIX = "88.77.1"  # homed for tenant a


def _token(server: ConsoleServer, username: str) -> dict[str, str]:
    login = {"username": username, "password": PASSWORD}
    answer = httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=30)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


@dataclass
class Handles:
    """The Handle API as one of tenant a's users."""

    server: ConsoleServer
    headers: dict[str, str]

    def put(self, handle: str, values: list[dict[str, Any]]) -> httpx.Response:
        return httpx.put(
            f"{self.server.url}/api/handles/{quote(handle, safe='/')}",
            json={"values": values},
            headers=self.headers,
            timeout=30,
        )

    def get(self, handle: str) -> httpx.Response:
        return httpx.get(
            f"{self.server.url}/api/handles/{quote(handle, safe='/')}",
            headers=self.headers,
            timeout=30,
        )


@pytest.fixture(scope="module")
def admin_handles(console_server: ConsoleServer) -> Handles:
    """Tenant a owns PREFIX; its tenant admin writes handles with its platform token."""
    body = {
        "prefix": PREFIX,
        "tenant": console_server.tenants["a"],
        "admin_secret": "prefix-admin-secret-for-tests",
    }
    with console_server.api() as api:
        homed = api.post("/api/v1/ids/prefixes", json=body)
    assert homed.status_code == 201, homed.text
    return Handles(console_server, _token(console_server, "a-tenant-admin"))


def _string(index: int, kind: str, text: str) -> dict[str, Any]:
    return {"index": index, "type": kind, "data": {"format": "string", "value": text}}


ADMIN = {
    "index": 100,
    "type": "HS_ADMIN",
    "data": {
        "format": "admin",
        "value": {"handle": f"0.NA/{PREFIX}", "index": 200, "permissions": "011111110011"},
    },
}


def _new_handle(handles: Handles, values: list[dict[str, Any]]) -> str:
    handle = f"{PREFIX}/t-{uuid.uuid4().hex[:10]}"
    made = handles.put(handle, values)
    assert made.status_code == 201, made.text
    return handle


def _lookup(page: Page, handle: str) -> None:
    page.get_by_test_id("lookup-input").fill(handle)
    page.get_by_test_id("lookup-input").press("Enter")


def test_a_handle_resolves_into_its_values_in_words(page: Page, admin_handles: Handles) -> None:
    handle = _new_handle(
        admin_handles,
        [
            _string(1, "URL", "https://plant.example/units/42"),
            _string(2, "EMAIL", "quality@plant.example"),
            {"index": 3, "type": "BLOB", "data": {"format": "hex", "value": "00ff10"}},
            ADMIN,
        ],
    )
    sign_in(page, "a-viewer", path="/identifiers")
    expect(page.get_by_test_id("page-title")).to_have_text("Identifiers")
    _lookup(page, handle)
    expect(page.get_by_test_id("resolved-handle")).to_have_text(handle)
    values = page.get_by_test_id("values")
    link = values.get_by_role("link", name="https://plant.example/units/42")
    expect(link).to_have_attribute("href", "https://plant.example/units/42")
    expect(values).to_contain_text("quality@plant.example")
    expect(values).to_contain_text("3 bytes: 00 ff 10")
    expect(values).to_contain_text(f"200:0.NA/{PREFIX} may: add handle, delete handle")
    expect(values).to_contain_text("read value")
    expect(values).to_contain_text("86400 s")  # the default TTL
    expect(values.locator("tbody tr")).to_have_count(4)
    expect(page.get_by_test_id("product-link")).to_have_count(0)  # not a product record


def test_the_qr_code_is_an_inline_svg_of_the_proxy_url(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    handle = _new_handle(admin_handles, [_string(1, "URL", "https://plant.example/u/7"), ADMIN])
    sign_in(page, "a-viewer", path="/identifiers")
    page.goto(f"/identifiers?handle={quote(handle)}")  # resolves what the address names
    expected = proxy_url(console_server.url, handle)
    expect(page.get_by_test_id("proxy-url")).to_have_text(expected)
    svg = page.get_by_test_id("qr").locator("svg")
    expect(svg).to_have_count(1)
    # the modules drawn are those segno draws for the proxy URL, made in the server
    made = io.BytesIO()
    segno.make(expected, error="m", micro=False).save(made, kind="svg", xmldecl=False)
    path = re.search(r' d="([^"]+)"', made.getvalue().decode())
    assert path is not None
    assert svg.locator("path").get_attribute("d") == path.group(1)
    # and the proxy itself sends a phone that scans it to the handle's URL
    answer = httpx.get(expected, follow_redirects=False, timeout=30)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://plant.example/u/7"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("no-slash-here", "has no '/'"),
        ("88 77/x", "printable ASCII characters without spaces"),
        ("88..7/x", "empty segment"),
    ],
    ids=["no-slash", "space", "empty-segment"],  # test ids name the screenshots: no '/'
)
def test_a_malformed_handle_is_said_before_asking(page: Page, text: str, said: str) -> None:
    sign_in(page, "a-viewer", path="/identifiers")
    _lookup(page, text)
    alert = page.get_by_test_id("lookup-result").get_by_role("alert")
    expect(alert).to_contain_text("Not a valid handle")
    expect(alert).to_contain_text(said)


def test_an_unknown_handle_is_not_found(page: Page, admin_handles: Handles) -> None:
    sign_in(page, "a-viewer", path="/identifiers")
    _lookup(page, f"{PREFIX}/no-such-unit")
    alert = page.get_by_test_id("lookup-result").get_by_role("alert")
    expect(alert).to_contain_text("Handle not found")
    _lookup(page, "99.1/elsewhere")  # a prefix this platform knows nothing of
    expect(alert).to_contain_text("Not resolved by this platform")


def _new_in_editor(page: Page, handle: str, url: str) -> Locator:
    """As tenant a's admin, the editor of a new handle with its URL filled in."""
    sign_in(page, "a-tenant-admin", path="/identifiers")
    page.get_by_test_id("new-handle").click()
    editor = page.get_by_test_id("editor")
    editor.get_by_test_id("editor-handle").fill(handle)
    editor.get_by_test_id("row-value-0").fill(url)
    return editor


def test_a_handle_held_by_another_node_says_where(page: Page, admin_handles: Handles) -> None:
    """A derived prefix delegated to another node: the platform (not a recursive node here)
    refers, and the page says to where; the delegating record's HS_SITE reads in words."""
    site = {
        "servers": [
            {
                "serverId": 1,
                "address": "10.9.9.9",
                "interfaces": [{"query": True, "admin": True, "protocol": "HTTP", "port": 8000}],
            }
        ]
    }
    record = f"0.NA/{PREFIX}.5"
    made = admin_handles.put(
        record, [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": site}}]
    )
    assert made.status_code in (200, 201), made.text
    sign_in(page, "a-viewer", path="/identifiers")
    _lookup(page, f"{PREFIX}.5/SN-1")
    alert = page.get_by_test_id("lookup-result").get_by_role("alert")
    expect(alert).to_contain_text("Held by another identifier node")
    expect(alert).to_contain_text(f"{record} names another node (10.9.9.9:8000)")
    _lookup(page, record)
    expect(page.get_by_test_id("values")).to_contain_text(
        "primary site, 1 server: 10.9.9.9 (HTTP 8000)"
    )


def test_create_edit_and_delete_a_handle(page: Page, admin_handles: Handles) -> None:
    suffix = f"made-in-console-{uuid.uuid4().hex[:6]}"
    handle = f"{PREFIX}/{suffix}"
    editor = _new_in_editor(page, handle, "https://plant.example/a")
    editor.get_by_test_id("add-row").click()
    editor.get_by_test_id("row-type-1").fill("LINE")
    editor.get_by_test_id("row-value-1").fill("press-line")
    editor.get_by_test_id("save-handle").click()
    expect(editor).to_have_count(0)
    row = page.locator(f"[data-handle='{handle}']")
    expect(row).to_have_count(1)
    made = admin_handles.get(handle).json()
    assert {v["type"]: v["data"]["value"] for v in made["values"] if v["type"] != "HS_ADMIN"} == {
        "URL": "https://plant.example/a",
        "LINE": "press-line",
    }
    admin = next(v for v in made["values"] if v["type"] == "HS_ADMIN")
    assert admin["data"]["value"]["handle"] == f"0.NA/{PREFIX}"  # the prefix's admins keep it

    page.get_by_role("button", name=f"Edit {handle}").click()
    editor = page.get_by_test_id("editor")
    expect(editor).to_contain_text("Kept as they are: HS_ADMIN (100)")
    editor.get_by_test_id("row-value-1").fill("cnc-cell")
    editor.get_by_test_id("save-handle").click()
    expect(editor).to_have_count(0)
    edited = admin_handles.get(handle).json()
    assert {v["type"]: v["data"]["value"] for v in edited["values"]}["LINE"] == "cnc-cell"
    assert any(v["type"] == "HS_ADMIN" for v in edited["values"])

    page.get_by_role("button", name=f"Show {handle}").click()
    expect(page.get_by_test_id("values")).to_contain_text("cnc-cell")

    page.get_by_role("button", name=f"Delete {handle}").click()
    confirm = page.get_by_test_id("confirm-delete")
    expect(confirm).to_contain_text(f"Delete {handle}?")
    confirm.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.get_by_test_id("lookup-result")).to_contain_text("Handle not found")  # shown again
    assert admin_handles.get(handle).status_code == 404


def test_a_duplicate_handle_is_refused_in_the_editor(page: Page, admin_handles: Handles) -> None:
    handle = _new_handle(admin_handles, [_string(1, "URL", "https://plant.example/d"), ADMIN])
    editor = _new_in_editor(page, handle, "https://plant.example/other")
    editor.get_by_test_id("save-handle").click()
    expect(editor.get_by_test_id("editor-error")).to_contain_text("The handle exists already")
    editor.get_by_test_id("editor-handle").fill("no slash")
    editor.get_by_test_id("save-handle").click()
    expect(editor.get_by_test_id("editor-error")).to_contain_text("has no '/'")
    assert admin_handles.get(handle).json()["values"][0]["data"]["value"].endswith("/d")


def test_a_viewer_has_no_edit_controls_and_the_api_refuses_it(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    handle = _new_handle(admin_handles, [_string(1, "URL", "https://plant.example/v"), ADMIN])
    sign_in(page, "a-viewer", path="/identifiers")
    expect(page.get_by_test_id("lookup-input")).to_be_visible()
    expect(page.get_by_test_id("manage")).to_have_count(0)
    expect(page.get_by_test_id("new-handle")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Edit|Delete) "))).to_have_count(0)
    viewer = Handles(console_server, _token(console_server, "a-viewer"))
    refused = viewer.put(handle, [_string(1, "URL", "https://evil.example/")])
    assert refused.status_code == 403, refused.text
    assert refused.json()["responseCode"] == 400
    listing = httpx.get(
        f"{console_server.url}/api/handles",
        params={"prefix": PREFIX},
        headers=viewer.headers,
        timeout=30,
    )
    assert listing.status_code == 403
    deleted = httpx.delete(
        f"{console_server.url}/api/handles/{handle}", headers=viewer.headers, timeout=30
    )
    assert deleted.status_code == 403
    assert admin_handles.get(handle).json()["values"][0]["data"]["value"].endswith("/v")


# --- the product page -------------------------------------------------------------------------


def _machine_with_data(
    server: ConsoleServer, name: str, start: datetime, tenant: str = "a", scale: int = 1
) -> int:
    """A device of ``tenant`` named ``name`` that sent speeds (0, 5, … 55 times ``scale``)
    over MQTT during the minute from ``start``; the number of points stored."""
    device = {"name": name, "metrics": [{"name": "speed", "unit": "rpm"}]}
    admin = _token(server, f"{tenant}-tenant-admin")
    made = httpx.post(f"{server.url}/api/v1/devices", json=device, headers=admin, timeout=30)
    assert made.status_code == 201, made.text
    created = made.json()
    samples = [
        {
            "ts": int((start + timedelta(seconds=s)).timestamp() * 1000),
            "values": {"speed": s * scale},
        }
        for s in range(0, 60, 5)
    ]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(created["mqtt"]["username"], created["mqtt"]["password"])
    client.connect("127.0.0.1", server.mqtt_port)
    client.loop_start()
    try:
        sent = client.publish(created["topics"]["telemetry"], json.dumps(samples), qos=1)
        sent.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
    params = {
        "metric": "speed",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=1)).isoformat(),
    }
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stored = httpx.get(
            f"{server.url}/api/v1/devices/{created['id']}/telemetry",
            params=params,
            headers=admin,
            timeout=30,
        ).json()
        if len(stored.get("points", [])) == len(samples):
            return len(samples)
        time.sleep(0.2)
    pytest.fail(f"telemetry not stored: {stored}")


def _product(handles: Handles, machine: str, start: datetime, end: datetime) -> str:
    handle = f"{PREFIX}/261130203000-{uuid.uuid4().hex[:6].upper()}"
    record = [
        ("URL", f"{handles.server.url}/products/{handle}"),
        ("PRODUCT_TYPE", "bracket-A"),
        ("LINE", "cnc-cell"),
        ("MACHINE", machine),
        ("PRODUCTION_START", start.isoformat().replace("+00:00", "Z")),
        ("PRODUCTION_END", end.isoformat().replace("+00:00", "Z")),
        ("QUALITY", "good"),
    ]
    values = [_string(n, kind, text) for n, (kind, text) in enumerate(record, start=1)]
    made = handles.put(handle, [*values, ADMIN])
    assert made.status_code == 201, made.text
    return handle


def test_the_product_page_shows_the_record_and_the_machines_data(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    machine = f"cnc-{uuid.uuid4().hex[:4]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    points = _machine_with_data(console_server, f"Plant1/Gateway1/{machine}", start)
    # the unit was made in the middle 30 s of that minute: 6 of the 12 points
    handle = _product(
        admin_handles, machine, start + timedelta(seconds=15), start + timedelta(seconds=45)
    )
    assert points == 12
    sign_in(page, "a-engineer", path="/identifiers")
    _lookup(page, handle)
    page.get_by_test_id("product-link").click()
    expect(page).to_have_url(re.compile(re.escape(f"/products/{handle}") + "$"))
    expect(page.get_by_test_id("page-title")).to_have_text("Product")
    expect(page.get_by_test_id("product-PRODUCT_TYPE")).to_have_text("bracket-A")
    expect(page.get_by_test_id("product-MACHINE")).to_have_text(machine)
    expect(page.get_by_test_id("product-QUALITY")).to_have_text("good")
    expect(page.get_by_test_id("machine-chart")).to_be_visible()
    summary = page.get_by_test_id("machine-summary")
    expect(summary).to_contain_text("speed")
    cells = summary.locator("tbody tr").first.locator("td")
    expect(cells).to_have_text(["speed", "rpm", "6", "15", "40", "27.5"])
    expect(page.get_by_test_id("qr").locator("svg")).to_have_count(1)


def test_a_platform_admin_sees_the_machine_of_the_prefixs_tenant(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    """A platform admin sees every tenant's devices; a unit's machine is the one of the tenant
    owning the handle's prefix, not another tenant's machine of the same name."""
    machine = f"cnc-{uuid.uuid4().hex[:4]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    _machine_with_data(console_server, machine, start, tenant="b", scale=100)
    _machine_with_data(console_server, machine, start)
    handle = _product(admin_handles, machine, start, start + timedelta(seconds=20))
    sign_in(page, "admin", password=ADMIN_PASSWORD, path=f"/products/{handle}")
    cells = page.get_by_test_id("machine-summary").locator("tbody tr").first.locator("td")
    expect(cells).to_have_text(["speed", "rpm", "4", "0", "15", "7.5"])


def test_a_product_without_its_machine_says_why(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    handle = _product(admin_handles, "lathe-nowhere", now - timedelta(minutes=2), now)
    sign_in(page, "a-viewer", path=f"/products/{handle}")
    expect(page.get_by_test_id("product-MACHINE")).to_have_text("lathe-nowhere")
    expect(page.get_by_test_id("no-machine-data")).to_contain_text(
        "Your tenant has no device named lathe-nowhere"
    )
    expect(page.get_by_test_id("machine-chart")).to_have_count(0)


def test_another_tenant_sees_the_public_record_but_not_the_machine(
    page: Page, admin_handles: Handles, console_server: ConsoleServer
) -> None:
    machine = f"cnc-{uuid.uuid4().hex[:4]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    _machine_with_data(console_server, machine, start)
    handle = _product(admin_handles, machine, start, start + timedelta(minutes=1))
    sign_in(page, "b-viewer", path=f"/products/{handle}")
    expect(page.get_by_test_id("product-MACHINE")).to_have_text(machine)
    expect(page.get_by_test_id("no-machine-data")).to_contain_text(
        f"Your tenant has no device named {machine}"
    )


def test_the_product_page_of_bad_or_unknown_handles(page: Page, admin_handles: Handles) -> None:
    plain = _new_handle(admin_handles, [_string(1, "URL", "https://plant.example/p"), ADMIN])
    sign_in(page, "a-viewer", path=f"/products/{PREFIX}/no-such-unit")
    expect(page.get_by_role("alert")).to_contain_text("Handle not found")
    page.goto(f"/products/{plain}")
    expect(page.get_by_role("alert")).to_contain_text("Not a product record")
    expect(page.get_by_test_id("values")).to_contain_text("https://plant.example/p")
    page.goto("/products/no-slash")
    expect(page.get_by_role("alert")).to_contain_text("Not a valid handle")


def test_the_overview_lists_the_latest_identifiers_minted(
    page: Page, admin_handles: Handles
) -> None:
    handle = _new_handle(admin_handles, [_string(1, "URL", "https://plant.example/u/new"), ADMIN])
    sign_in(page, "a-viewer")
    latest = page.get_by_test_id("newest-handle").first
    expect(latest).to_have_text(handle)  # the newest first
    latest.click()
    expect(page.get_by_test_id("resolved-handle")).to_have_text(handle)
    sign_out(page)
    sign_in(page, "b-viewer")
    expect(page.get_by_test_id("newest-handles")).to_contain_text("None minted yet")

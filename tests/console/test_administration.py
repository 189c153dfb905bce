"""Administration in a real Chromium against a real ``plantwire up``: users, roles, API tokens,
devices with their MQTT credentials (tried on the bundled broker), the audit log, and that
roles and tenants see only what is theirs."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from playwright.sync_api import Locator, Page, expect

from plantwire.security.roles import Permission
from tests.conftest import ADMIN_PASSWORD, PASSWORD
from tests.console.conftest import ConsoleServer, sign_in, sign_out


def choose(page: Page, select_testid: str, option: str) -> None:
    """Pick ``option`` in the Quasar select with ``select_testid``."""
    page.get_by_test_id(select_testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def confirm_dialog(page: Page) -> None:
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("confirm")).to_have_count(0)


def bearer(server: ConsoleServer, username: str) -> dict[str, str]:
    login = {"username": username, "password": PASSWORD}
    answer = httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=30)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def mqtt_accepts(port: int, username: str, password: str) -> bool:
    """Whether the platform's broker accepts a device connecting with these credentials
    (its CONNACK; a connection closed without one is a refusal)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{username}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(username, password)
    answers: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, code, _p: answers.append(code)
    client.connect("127.0.0.1", port, keepalive=10)
    deadline = time.monotonic() + 5
    while not answers and time.monotonic() < deadline:
        if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
            break
    client.disconnect()
    return bool(answers) and not answers[0].is_failure


def eventually_accepted(port: int, username: str, password: str, expected: bool) -> None:
    """The broker learns changed accounts within moments, not at once."""
    deadline = time.monotonic() + 15
    while mqtt_accepts(port, username, password) != expected:
        assert time.monotonic() < deadline, (
            f"the broker never {'accepted' if expected else 'refused'} {username}"
        )
        time.sleep(0.3)


def remove_devices(server: ConsoleServer, search: str) -> None:
    """Whatever a failed test left behind: other tests count tenant a's devices."""
    with server.api() as api:
        for device in api.get("/api/v1/devices", params={"search": search}).json()["items"]:
            api.delete(f"/api/v1/devices/{device['id']}")


def row(page: Page, testid: str) -> Locator:
    return page.get_by_test_id(testid)


def test_an_admin_creates_a_user_who_can_then_sign_in(page: Page) -> None:
    sign_in(page, "a-tenant-admin", path="/admin")
    page.get_by_test_id("new-username").fill("a-newcomer")
    choose(page, "new-role", "engineer")
    password = page.get_by_test_id("new-password")
    password.fill("short")  # the API's rule, said from its problem document
    password.press("Enter")
    expect(page.get_by_test_id("new-user-error")).to_contain_text("password")
    expect(page.get_by_test_id("new-user-error")).to_contain_text("at least 8 characters")
    password.fill(PASSWORD)
    password.press("Enter")  # Enter submits the form
    expect(page.get_by_text("User a-newcomer created.")).to_be_visible()
    expect(row(page, "user-a-newcomer")).to_contain_text("engineer")
    page.get_by_test_id("new-username").fill("A-Newcomer")
    page.get_by_test_id("new-password").fill(PASSWORD)
    page.get_by_test_id("create-user").click()
    expect(page.get_by_test_id("new-user-error")).to_contain_text("is taken")
    sign_out(page)
    sign_in(page, "a-newcomer")
    expect(page.get_by_test_id("who")).to_have_text("a-newcomer · engineer · Tenant a")


def test_an_admin_changes_a_role_disables_and_deletes_a_user(
    page: Page, console_server: ConsoleServer
) -> None:
    user = console_server.add_user("a-changing", "viewer", "a")
    sign_in(page, "a-tenant-admin", path="/admin")
    page.get_by_label("Role of a-changing").click()
    page.get_by_role("option", name="operator", exact=True).click()
    expect(page.get_by_text("a-changing is now operator.")).to_be_visible()
    with console_server.api() as api:
        assert api.get(f"/api/v1/users/{user['id']}").json()["role"] == "operator"
    row(page, "user-a-changing").get_by_role("button", name="Disable").click()
    expect(row(page, "user-a-changing")).to_contain_text("disabled")
    with console_server.api() as api:
        assert api.get(f"/api/v1/users/{user['id']}").json()["disabled"] is True
    row(page, "user-a-changing").get_by_role("button", name="Delete").click()
    page.get_by_test_id("confirm-no").click()  # asked first; "Cancel" keeps the user
    expect(row(page, "user-a-changing")).to_be_visible()
    row(page, "user-a-changing").get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("confirm")).to_contain_text("Delete the user a-changing?")
    confirm_dialog(page)
    expect(row(page, "user-a-changing")).to_have_count(0)
    with console_server.api() as api:
        assert api.get(f"/api/v1/users/{user['id']}").status_code == 404
    expect(row(page, "user-a-tenant-admin")).to_contain_text("(you)")  # no deleting oneself


def test_the_roles_page_shows_the_permission_matrix(page: Page) -> None:
    sign_in(page, "a-engineer", path="/admin/roles")
    table = page.get_by_test_id("roles")
    write_users = table.locator("tr", has_text="user:write")
    expect(write_users).to_contain_text("Create, change, disable and delete users")
    expect(table.locator("tbody tr")).to_have_count(len(Permission))
    for line in table.locator("tbody tr").all():
        words, code = line.locator("td").nth(0).inner_text(), line.locator("td").nth(1).inner_text()
        assert words != code, f"{code} is not said in words"
    cells = write_users.locator("td")
    expect(cells).to_have_text(
        ["Create, change, disable and delete users", "user:write", "✓", "✓", "—", "—", "—"]
    )


def test_a_token_is_shown_once_and_works_against_the_api(
    page: Page, console_server: ConsoleServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.url)
    sign_in(page, "a-tenant-admin", path="/admin/tokens")
    page.get_by_test_id("token-name").fill("nightly export")
    choose(page, "token-role", "viewer")
    page.get_by_test_id("token-days").fill("7")
    page.get_by_test_id("token-name").press("Enter")
    dialog = page.get_by_test_id("secret-dialog")
    expect(dialog).to_contain_text("you will not see it again")
    secret = page.get_by_test_id("secret-token").input_value()
    assert len(secret) >= 32
    page.get_by_test_id("copy-token").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_test_id("secret-done").click()
    expect(dialog).to_have_count(0)

    script = {"Authorization": f"Bearer {secret}"}
    me = httpx.get(f"{console_server.url}/api/v1/auth/me", headers=script, timeout=30)
    assert me.status_code == 200
    assert me.json()["username"] == "a-tenant-admin"
    refused = httpx.post(
        f"{console_server.url}/api/v1/devices", headers=script, json={"name": "x"}, timeout=30
    )
    assert refused.status_code == 403  # the token's role (viewer) is what counts

    page.reload()  # the name remains, the secret is gone for good
    tokens = page.get_by_test_id("tokens")
    expect(tokens).to_contain_text("nightly export")
    assert secret not in page.content()
    mine = tokens.locator("[data-testid^=token-]", has_text="nightly export")
    mine.get_by_role("button", name="Revoke").click()
    confirm_dialog(page)
    expect(tokens).not_to_contain_text("nightly export")
    me = httpx.get(f"{console_server.url}/api/v1/auth/me", headers=script, timeout=30)
    assert me.status_code == 401


def test_a_device_shows_its_credentials_once_and_they_work(
    page: Page, console_server: ConsoleServer
) -> None:
    try:
        sign_in(page, "a-engineer", path="/admin/devices")
        expect(page.get_by_test_id("admin-tab-users")).to_have_count(0)  # not an engineer's
        page.get_by_test_id("device-name").fill("a-admin-press")
        page.get_by_test_id("device-name").press("Enter")
        dialog = page.get_by_test_id("secret-dialog")
        expect(dialog).to_contain_text("you will not see it again")
        expect(dialog).to_contain_text("Publishes telemetry on")
        username = page.get_by_test_id("secret-mqtt-username").input_value()
        password = page.get_by_test_id("secret-mqtt-password").input_value()
        page.get_by_test_id("secret-done").click()
        port = console_server.mqtt_port
        eventually_accepted(port, username, password, expected=True)
        assert not mqtt_accepts(port, username, password + "x")

        with console_server.api() as api:
            found = api.get("/api/v1/devices", params={"search": "a-admin-press"}).json()["items"]
            assert [d["name"] for d in found] == ["a-admin-press"]
            device = api.get(f"/api/v1/devices/{found[0]['id']}").text
            assert password not in device  # the API never shows it again
        line = row(page, f"device-{found[0]['id']}")
        line.get_by_role("button", name="Rotate credentials").click()
        confirm_dialog(page)
        rotated = page.get_by_test_id("secret-mqtt-password").input_value()
        assert rotated != password
        page.get_by_test_id("secret-done").click()
        eventually_accepted(port, username, password, expected=False)
        eventually_accepted(port, username, rotated, expected=True)

        line.get_by_role("button", name="Delete").click()
        confirm_dialog(page)
        expect(line).to_have_count(0)
        eventually_accepted(port, username, rotated, expected=False)
    finally:
        remove_devices(console_server, "a-admin-press")


def test_a_sparkplug_node_gets_its_topics_and_a_bad_name_is_explained(
    page: Page, console_server: ConsoleServer
) -> None:
    try:
        sign_in(page, "a-tenant-admin", path="/admin/devices")
        choose(page, "device-kind", "Sparkplug B edge node (name: <group id>/<edge node id>)")
        name = page.get_by_test_id("device-name")
        name.fill("no-group")
        name.press("Enter")
        expect(page.get_by_test_id("new-device-error")).to_contain_text("<group id>/<edge node id>")
        name.fill("plant1/edge-7")
        name.press("Enter")
        dialog = page.get_by_test_id("secret-dialog")
        expect(dialog).to_contain_text("spBv1.0/plant1/NDATA/edge-7")
        expect(dialog).to_contain_text("NBIRTH")
        page.get_by_test_id("secret-done").click()
        page.get_by_test_id("device-search").fill("edge-7")
        expect(page.get_by_test_id("admin-devices")).to_contain_text("plant1/edge-7")
        listed = page.get_by_test_id("admin-devices")
        expect(listed).not_to_contain_text("a-press-0")
        listed.get_by_role("button", name="Delete").click()
        expect(page.get_by_test_id("confirm")).to_contain_text("and its Sparkplug devices")
        confirm_dialog(page)
        expect(listed).to_contain_text("No devices match.")
    finally:
        remove_devices(console_server, "edge-7")


def test_the_audit_log_lists_a_user_creation_and_filters_narrow_it(
    page: Page, console_server: ConsoleServer
) -> None:
    console_server.add_user("b-audited", "viewer", "b")  # another tenant's: never shown to a
    sign_in(page, "a-tenant-admin", path="/admin")
    page.get_by_test_id("new-username").fill("a-audited")
    page.get_by_test_id("new-password").fill(PASSWORD)
    page.get_by_test_id("create-user").click()
    expect(row(page, "user-a-audited")).to_be_visible()
    page.get_by_test_id("admin-tab-audit").click()
    audit = page.get_by_test_id("audit")
    expect(audit).to_contain_text("a-audited")
    expect(audit).to_contain_text("auth.login")
    expect(audit).not_to_contain_text("b-audited")
    newest = audit.locator("tbody tr").first
    expect(newest).to_contain_text("user.create")  # newest first

    page.get_by_test_id("audit-action").fill("user.create")
    page.get_by_test_id("audit-actor").fill("a-tenant-admin")
    page.get_by_test_id("audit-actor").press("Enter")
    expect(audit).not_to_contain_text("auth.login")
    expect(audit.locator("tbody tr", has_text="a-audited")).to_have_count(1)
    for action in audit.locator("tbody tr td:nth-child(3)").all_inner_texts():
        assert action == "user.create"

    page.get_by_test_id("audit-since").fill("yesterday")
    page.get_by_test_id("audit-filter").click()
    expect(page.get_by_test_id("audit-error")).to_contain_text("is not a date and time")
    page.get_by_test_id("audit-since").fill("2999-01-01 00:00")
    page.get_by_test_id("audit-filter").click()
    expect(page.get_by_test_id("audit-page")).to_have_text("page 1 · no entries")


def test_the_audit_log_pages_back_in_time(page: Page, console_server: ConsoleServer) -> None:
    headers = bearer(console_server, "b-tenant-admin")
    with httpx.Client(base_url=console_server.url, headers=headers, timeout=30) as api:
        for number in range(55):  # more than a page of entries of one kind
            body = {"name": f"b-paged-{number}", "expires_in_days": 1}
            assert api.post("/api/v1/tokens", json=body).status_code == 201
    sign_in(page, "b-tenant-admin", path="/admin/audit")
    page.get_by_test_id("audit-action").fill("token.create")
    page.get_by_test_id("audit-filter").click()
    audit = page.get_by_test_id("audit")
    expect(audit.locator("tbody tr")).to_have_count(50)
    expect(audit.locator("tbody tr").first).to_contain_text("b-paged-54")
    expect(page.get_by_test_id("audit-newer")).to_be_disabled()
    page.get_by_test_id("audit-older").click()
    expect(page.get_by_test_id("audit-page")).to_have_text("page 2")
    expect(audit.locator("tbody tr")).to_have_count(5)
    expect(audit.locator("tbody tr").last).to_contain_text("b-paged-0")
    expect(page.get_by_test_id("audit-older")).to_be_disabled()
    page.get_by_test_id("audit-newer").click()
    expect(audit.locator("tbody tr").first).to_contain_text("b-paged-54")


def test_viewers_and_engineers_are_refused_administration(
    page: Page, console_server: ConsoleServer
) -> None:
    for role in ("viewer", "engineer"):
        sign_in(page, f"a-{role}", path="/admin")
        expect(page.get_by_test_id("forbidden")).to_contain_text("Your role may not use")
        expect(page.get_by_test_id("nav-admin")).to_have_count(0)
        page.goto("/admin/audit")
        expect(page.get_by_test_id("forbidden")).to_be_visible()
        if role == "viewer":
            page.goto("/admin/devices")
            expect(page.get_by_test_id("forbidden")).to_be_visible()
            page.get_by_test_id("nav-admin/tokens").click()  # their own tokens: theirs to use
            expect(page.get_by_test_id("new-token")).to_be_visible()
            expect(page.get_by_test_id("admin-tab-tokens")).to_be_visible()
            expect(page.get_by_test_id("admin-tab-roles")).to_have_count(0)
        sign_out(page)
        headers = bearer(console_server, f"a-{role}")
        body = {"username": f"a-by-{role}", "password": PASSWORD, "role": "viewer"}
        answer = httpx.post(
            f"{console_server.url}/api/v1/users", headers=headers, json=body, timeout=30
        )
        assert answer.status_code == 403, answer.text  # the API refuses what the console hides


def test_a_tenant_admin_sees_only_their_tenant(page: Page) -> None:
    sign_in(page, "b-tenant-admin", path="/admin")
    users = page.get_by_test_id("users")
    expect(users).to_contain_text("b-viewer")
    expect(users).not_to_contain_text("a-viewer")
    page.get_by_test_id("admin-tab-devices").click()
    devices = page.get_by_test_id("admin-devices")
    expect(devices).to_contain_text("b-press-0")
    expect(devices).not_to_contain_text("a-press-0")
    page.get_by_test_id("admin-tab-audit").click()
    expect(page.get_by_test_id("audit")).not_to_contain_text(re.compile(r"\ba-(viewer|engineer)"))


def test_a_platform_admin_sees_every_tenant_and_chooses_one(
    page: Page, console_server: ConsoleServer
) -> None:
    sign_in(page, "admin", ADMIN_PASSWORD, path="/admin")
    users = page.get_by_test_id("users")
    expect(users).to_contain_text("a-viewer")
    expect(row(page, "user-b-viewer")).to_contain_text("Tenant b")
    page.get_by_test_id("new-username").fill("b-by-platform")
    page.get_by_test_id("new-password").fill(PASSWORD)
    choose(page, "new-role", "operator")
    choose(page, "new-tenant", "Tenant b")
    page.get_by_test_id("create-user").click()
    expect(row(page, "user-b-by-platform")).to_contain_text("Tenant b")
    with console_server.api() as api:
        made = api.get("/api/v1/users", params={"tenant": console_server.tenants["b"]}).json()
    assert {"b-by-platform": "operator"}.items() <= {
        u["username"]: u["role"] for u in made["items"]
    }.items()


def test_the_administration_pages_fit_a_tablet(page: Page) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, "a-tenant-admin", path="/admin")
    for tab in ("users", "roles", "tokens", "devices", "audit"):
        page.get_by_test_id(f"admin-tab-{tab}").click()
        expect(page.get_by_test_id(f"admin-tab-{tab}")).to_have_attribute("aria-current", "page")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 820, f"{tab} scrolls sideways on a tablet ({width} px)"

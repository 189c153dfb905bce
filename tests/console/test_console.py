"""The console in a real Chromium against a real ``plantwire up``: login, logout, expired
sessions, roles, the theme, and the overview's tenant scoping."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.console.conftest import DEVICES, ConsoleServer, sign_in, sign_out


def test_login_lands_on_the_overview(page: Page) -> None:
    sign_in(page, "a-engineer")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_test_id("page-title")).to_have_text("Overview")
    expect(page.get_by_test_id("who")).to_have_text("a-engineer · engineer · Tenant a")


def test_signing_in_gives_the_browser_a_new_id(page: Page) -> None:
    page.goto("/login")
    before = {c["name"]: c["value"] for c in page.context.cookies()}["plantwire_console"]
    sign_in(page, "a-viewer", path="/login")
    after = {c["name"]: c["value"] for c in page.context.cookies()}["plantwire_console"]
    assert after != before  # an id planted before sign-in is worth nothing after it
    page.goto("/login/complete?ticket=used-or-forged&next=/admin")
    expect(page).to_have_url(re.compile(r"/login\?reason=required&next=/admin"))


def test_a_wrong_password_is_said_in_the_page(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_test_id("login-reason")).to_contain_text("Please sign in")
    page.get_by_label("Username").fill("a-engineer")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login"))


def test_sign_out_ends_the_session(page: Page) -> None:
    sign_in(page, "a-viewer")
    sign_out(page)
    page.goto("/")  # the old session is gone: back to the login page
    expect(page).to_have_url(re.compile(r"/login\?reason=required"))


def test_an_ended_session_goes_back_to_login_with_a_message(
    page: Page, console_server: ConsoleServer
) -> None:
    user = console_server.add_user("a-leaving", "viewer", "a")
    sign_in(page, "a-leaving")
    with console_server.api() as api:  # disabling a user ends their sessions
        assert api.patch(f"/api/v1/users/{user['id']}", json={"disabled": True}).is_success
    page.reload()
    expect(page).to_have_url(re.compile(r"/login\?reason=expired"))
    expect(page.get_by_test_id("login-reason")).to_contain_text("session has expired")


def test_an_unknown_browser_session_must_sign_in(page: Page, console_server: ConsoleServer) -> None:
    forged = {"name": "plantwire_console", "value": "x" * 43, "url": console_server.url}
    page.context.add_cookies([forged])  # type: ignore[list-item]
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?reason=required&next=/admin"))


def test_login_returns_to_the_page_asked_for(page: Page) -> None:
    sign_in(page, "a-tenant-admin", path="/admin")
    expect(page).to_have_url(re.compile(r"/admin$"))
    expect(page.get_by_test_id("users")).to_contain_text("a-viewer")
    expect(page.get_by_test_id("users")).not_to_contain_text("b-viewer")  # tenant-scoped


def test_login_keeps_the_query_of_the_page_asked_for(page: Page) -> None:
    sign_in(page, "a-viewer", path="/admin/tokens?from=link")
    expect(page).to_have_url(re.compile(r"/admin/tokens\?from=link$"))


def test_a_viewer_sees_no_administration_and_is_refused_it(page: Page) -> None:
    sign_in(page, "a-viewer")
    expect(page.get_by_test_id("nav-overview")).to_be_visible()
    expect(page.get_by_test_id("nav-admin")).to_have_count(0)
    page.goto("/admin")
    expect(page.get_by_test_id("forbidden")).to_contain_text("Your role may not use")
    expect(page.get_by_test_id("users")).to_have_count(0)


def test_the_theme_follows_the_browser_until_chosen(page: Page) -> None:
    page.emulate_media(color_scheme="dark")
    sign_in(page, "b-engineer")
    body = page.locator("body")
    expect(body).to_have_class(re.compile(r"body--dark"))
    page.emulate_media(color_scheme="light")
    expect(body).not_to_have_class(re.compile(r"body--dark"))


def test_the_dark_theme_is_remembered_for_the_user(page: Page) -> None:
    sign_in(page, "b-operator")
    body = page.locator("body")
    expect(body).not_to_have_class(re.compile(r"body--dark"))  # the browser's light default
    page.get_by_test_id("theme").click()
    expect(body).to_have_class(re.compile(r"body--dark"))
    page.reload()
    expect(body).to_have_class(re.compile(r"body--dark"))
    sign_out(page)
    sign_in(page, "b-operator")  # a new session of the same user
    expect(body).to_have_class(re.compile(r"body--dark"))
    page.get_by_test_id("theme").click()
    expect(body).not_to_have_class(re.compile(r"body--dark"))


def test_the_overview_counts_only_the_tenants_devices(page: Page) -> None:
    sign_in(page, "b-viewer")
    expect(page.get_by_test_id("devices-value")).to_have_text(str(DEVICES["b"]))
    expect(page.get_by_test_id("online-value")).to_have_text("0")
    expect(page.get_by_test_id("dead-letters-value")).to_have_text("0")
    expect(page.get_by_test_id("ingest-value")).to_have_text("0.0")  # the tenant's own rate
    sign_out(page)
    sign_in(page, "a-viewer")
    expect(page.get_by_test_id("devices-value")).to_have_text(str(DEVICES["a"]))


def test_the_overview_fits_a_tablet(page: Page) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, "a-engineer", PASSWORD)
    expect(page.get_by_test_id("devices-value")).to_have_text(str(DEVICES["a"]))
    navigation = page.get_by_test_id("nav-overview")
    expect(navigation).not_to_be_in_viewport()  # folded away, not over the tiles
    page.get_by_role("button", name="Toggle navigation").click()
    expect(navigation).to_be_in_viewport()
    page.mouse.click(700, 600)  # beside the drawer: it folds away again
    expect(navigation).not_to_be_in_viewport()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, f"the page scrolls sideways on a tablet ({width} px)"

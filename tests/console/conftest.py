"""A real platform (``plantwire up`` with its console, broker and store) on ephemeral loopback
ports, seeded with two tenants, and a real headless Chromium (Debian's, driven by Playwright)
whose pages fail their test on any JavaScript error or any request leaving the server.

Both are shared by the package's tests (package scope: Playwright's sync API keeps an event
loop running in this thread while it lives, which the rest of the suite's async fixtures
cannot run beside). NiceGUI serves one console per process, so the console runs in its own
``plantwire up`` process, exactly as deployed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import ADMIN_PASSWORD, PASSWORD, ROLES, _live_threads, free_ports

CHROMIUM = Path("/usr/bin/chromium")
DEVICES = {"a": 3, "b": 1}  # devices per seeded tenant
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


@dataclass
class ConsoleServer:
    url: str
    data: Path
    mqtt_port: int = 0  # the bundled broker's MQTT listener, on 127.0.0.1
    tenants: dict[str, str] = field(default_factory=dict)  # key → tenant id
    admin: dict[str, str] = field(default_factory=dict)  # platform admin's headers
    devices: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # as created

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.admin, timeout=30)

    def add_user(self, username: str, role: str, tenant_key: str) -> dict[str, object]:
        """A fresh user of a seeded tenant (for tests that change or disable theirs)."""
        body = {
            "username": username,
            "password": PASSWORD,
            "role": role,
            "tenant": self.tenants[tenant_key],
        }
        with self.api() as api:
            created = api.post("/api/v1/users", json=body)
        assert created.status_code == 201, created.text
        user: dict[str, object] = created.json()
        return user


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"plantwire up exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"plantwire up not ready in 60 s: {log.read_text(errors='replace')}")


def _seed(server: ConsoleServer) -> None:
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    token = httpx.post(f"{server.url}/api/v1/auth/login", json=login, timeout=30).json()["token"]
    server.admin = {"Authorization": f"Bearer {token}"}
    with server.api() as api:
        for key, count in DEVICES.items():
            tenant = api.post("/api/v1/tenants", json={"name": f"Tenant {key}"})
            assert tenant.status_code == 201, tenant.text
            server.tenants[key] = tenant.json()["id"]
            for role in ROLES:
                server.add_user(f"{key}-{role}", role, key)
            for number in range(count):
                device = {"name": f"{key}-press-{number}", "tenant": server.tenants[key]}
                created = api.post("/api/v1/devices", json=device)
                assert created.status_code == 201, created.text
                server.devices.setdefault(key, []).append(created.json())  # with its MQTT


@pytest.fixture(scope="package")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """``plantwire up`` (this checkout's code, via ``python -m plantwire``) with two seeded
    tenants: tenant a has 3 devices, tenant b 1."""
    data = tmp_path_factory.mktemp("console") / "data"
    http, mqtt, nats, monitor = free_ports(4)
    env = {
        **os.environ,
        "PLANTWIRE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PLANTWIRE_ARGON2_TIME_COST": "1",
        "PLANTWIRE_ARGON2_MEMORY_KIB": "8",
        "PLANTWIRE_BROKER_MONITOR_PORT": str(monitor),
        "PLANTWIRE_COOKIE_SECURE": "false",  # plain HTTP on loopback
        "PLANTWIRE_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "plantwire", "up", "--data-dir", str(data)]
    command += ["--host", "127.0.0.1", "--http-port", str(http)]
    command += ["--mqtt-port", str(mqtt), "--nats-port", str(nats)]
    log = data.parent / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    server = ConsoleServer(url=f"http://127.0.0.1:{http}", data=data, mqtt_port=mqtt)
    try:
        _wait_ready(server.url, process, log)
        _seed(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _children() -> set[int]:
    """This process's live descendants; one that ends while being looked at is not one."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError):
            if child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
    return found


_DRIVERS: set[int] = set()  # Playwright's driver processes; the browser runs under them


def _browser_processes() -> set[int]:
    found = set()
    for pid in _DRIVERS:
        with contextlib.suppress(psutil.Error, OSError):
            found |= {p.pid for p in psutil.Process(pid).children(recursive=True)}
    return found | _DRIVERS


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Replaces the suite's leak check here: Playwright's sync API keeps its own event loop
    in this thread, so pytest-asyncio cannot run the suite's async fixture beside it. The same
    checks but for asyncio tasks (these tests start none): threads, and processes, except the
    session's browser, which starts and ends renderers as pages come and go."""
    threads_before = _live_threads()
    children_before = _children()
    yield
    deadline = time.monotonic() + 5
    while True:
        threads = _live_threads() - threads_before
        children = _children() - children_before - _browser_processes()
        if not (threads or children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not threads, f"test left threads running: {[t.name for t in threads]}"
    assert not children, f"test left processes running: {children}"


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    before = _children()
    with sync_playwright() as driver:
        _DRIVERS.update(_children() - before)
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright's own browser downloads are not used)."""
    assert CHROMIUM.exists(), "install Debian's chromium (.ci/run does)"
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield chromium
    chromium.close()


@dataclass
class PageErrors:
    """What a page must not produce: JavaScript errors and requests to other hosts."""

    console: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


@pytest.fixture
def page(
    browser: Browser, console_server: ConsoleServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280x800. After the test: a screenshot in
    the test's tmp dir, and the test fails on any console error, page error or request that
    left the platform (plants are air-gapped: fonts, icons and scripts must be bundled)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=console_server.url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors = PageErrors()
    own_host = urlsplit(console_server.url).netloc

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.console.append(message.text)

    def on_request(sent: object) -> None:
        url = getattr(sent, "url", "")
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and (
            urlsplit(url).netloc != own_host
        ):
            errors.external.append(url)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: errors.console.append(f"page error: {error}"))
    tab.on("request", on_request)
    try:
        yield tab
    finally:
        shots = request.getfixturevalue("tmp_path_factory").getbasetemp() / "screenshots"
        shots.mkdir(exist_ok=True)
        try:
            tab.screenshot(path=str(shots / f"{request.node.name}.png"), full_page=True)
        except PlaywrightError as error:  # a page that crashed: the errors below say why
            errors.console.append(f"no screenshot: {error}")
        context.close()
    assert not errors.console, f"JavaScript errors in the page: {errors.console}"
    assert not errors.external, f"requests left the platform: {errors.external}"


def connected(page: Page) -> None:
    """Wait for the page's websocket: NiceGUI queues the events of a page not yet connected,
    each on its own timer, so typing then pressing Enter before it could reach the server
    out of order (a sign-in without its password)."""
    page.wait_for_function("() => window.did_handshake === true")


def sign_in(page: Page, username: str, password: str = PASSWORD, path: str = "/") -> None:
    """Open ``path``, land on the login page, sign in and wait for the frame."""
    page.goto(path)
    connected(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")  # the keyboard submits the form
    page.get_by_test_id("who").wait_for()
    connected(page)


def sign_out(page: Page) -> None:
    """Sign out and wait for the login page to say so."""
    page.get_by_test_id("sign-out").click()
    page.get_by_text("You have signed out.").wait_for()

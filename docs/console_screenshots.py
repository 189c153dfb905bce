"""Takes the screenshots in docs/console.md from a running demo, in Debian's Chromium driven
by Playwright (as the console's tests do):

    make demo                                   # in one terminal; wait for its banner
    .venv/bin/python docs/console_screenshots.py --demo-dir .demo-data

It signs in with the demo's user (``demo.json``), waits a little for live data, and writes
``docs/images/console-*.png`` at 1280x800, light and dark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


def _machine(console_url: str, username: str, password: str, name: str) -> str:
    """The id of the demo's Sparkplug device of machine ``name``."""
    login = {"username": username, "password": password}
    token = httpx.post(f"{console_url}/api/v1/auth/login", json=login, timeout=30).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    page = httpx.get(
        f"{console_url}/api/v1/devices", params={"limit": 500}, headers=headers, timeout=30
    ).json()
    for device in page["items"]:
        if str(device["name"]).endswith(f"/{name}"):
            return str(device["id"])
    raise SystemExit(f"the demo has no device for machine {name!r} yet")


def _shoot(page: Page, path: str, ready: str, out: Path, pause_ms: int = 6000) -> None:
    """Opens ``path``, waits for the element ``ready`` and a few live updates, and shoots the
    viewport with that element scrolled into it."""
    page.goto(path)
    shown = page.get_by_test_id(ready).first
    shown.wait_for(timeout=30_000)
    page.wait_for_timeout(pause_ms)  # live values arrive, charts fill
    shown.scroll_into_view_if_needed()
    page.screenshot(path=str(out))
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path(".demo-data"))
    parser.add_argument("--out", type=Path, default=HERE / "images")
    args = parser.parse_args()
    demo = json.loads((args.demo_dir / "demo.json").read_text())
    url, user, password = demo["console_url"].rstrip("/"), demo["username"], demo["password"]
    handle = demo["example_identifier"]
    machine = _machine(url, user, password, "cnc-1")
    args.out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("overview", "/", "page-title"),
        ("devices", "/devices", "page-title"),
        ("device", f"/devices/{machine}", "live-chart"),
        ("identifier", f"/identifiers?handle={quote(handle, safe='')}", "page-title"),
        ("product", f"/products/{quote(handle, safe='/')}", "product-record"),
        ("administration", "/admin", "page-title"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        for scheme in ("light", "dark"):
            context = browser.new_context(
                base_url=url, viewport={"width": 1280, "height": 800}, color_scheme=scheme
            )
            page = context.new_page()
            page.goto("/")
            if scheme == "light":
                page.screenshot(path=str(args.out / "console-login.png"))
            page.get_by_label("Username").fill(user)
            page.get_by_label("Password").fill(password)
            page.get_by_label("Password").press("Enter")
            page.get_by_test_id("who").wait_for()
            for name, path, ready in shots if scheme == "light" else shots[2:3]:
                suffix = "" if scheme == "light" else "-dark"
                _shoot(page, path, ready, args.out / f"console-{name}{suffix}.png")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()

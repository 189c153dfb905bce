"""``/``: the tenant at a glance, refreshed every few seconds: its devices online and offline,
messages ingest refused (dead letters), identifier prefixes, and for platform admins the
platform's ingest rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.frame import Console, NavItem, console_page
from plantwire.security.roles import Permission, Role

__all__ = ["overview"]

REFRESH_SECONDS = 10.0
ONLINE_WITHIN = timedelta(minutes=5)  # a device with a good value this recent is online
MAX_DEVICES = 100  # the overview looks at the first 100 devices; the Devices page pages
INGEST_POINTS = "plantwire_ingest_points_total"


@dataclass(slots=True)
class DeviceSummary:
    total: int = 0
    online: int = 0
    dead_letters: int = 0
    more: bool = False  # the tenant has more devices than the overview examined
    gateways: int = 0  # Sparkplug edge nodes (a gateway is one)
    gateways_online: int = 0  # by the Sparkplug host's view: born and not dead since
    errors: list[str] = field(default_factory=list)


def _online(latest: dict[str, Any], now: datetime) -> bool:
    for value in latest.values():
        ts = datetime.fromisoformat(value["ts"])
        if not value.get("stale") and now - ts <= ONLINE_WITHIN:
            return True
    return False


async def summarise_devices(console: Console) -> DeviceSummary:
    page = await console.api.get("/api/v1/devices", limit=MAX_DEVICES)
    summary = DeviceSummary(total=len(page["items"]), more=len(page["items"]) >= MAX_DEVICES)
    now = datetime.now(UTC)
    for device in page["items"]:
        base = f"/api/v1/devices/{device['id']}"
        try:
            if _online(await console.api.get(f"{base}/latest"), now):
                summary.online += 1
            if device["kind"] == "sparkplug-node":
                summary.gateways += 1
                summary.gateways_online += (await console.api.get(base))["sparkplug"]["online"]
            summary.dead_letters += (await console.api.get(f"{base}/dead-letters"))["count"]
        except ConsoleError as error:
            if error.status == 401:
                raise
            summary.errors.append(f"{device['name']}: {error.message}")
    return summary


def ingested_points(metrics_text: str) -> float:
    """The platform's ``plantwire_ingest_points_total`` from Prometheus' text format."""
    for line in metrics_text.splitlines():
        if line.startswith(INGEST_POINTS + " "):
            return float(line.split()[1])
    return 0.0


@dataclass(slots=True)
class IngestRate:
    """Points a second, from two readings of the ingest counter."""

    last: tuple[float, float] | None = None  # (monotonic time, points)

    def update(self, points: float) -> float | None:
        now = time.monotonic()
        rate = None
        if self.last is not None and now > self.last[0]:
            rate = max(0.0, (points - self.last[1]) / (now - self.last[0]))
        self.last = (now, points)
        return rate


def _tile(title: str, testid: str) -> tuple[ui.label, ui.label]:
    with ui.card().classes("min-w-[14rem] grow").props(f"flat bordered data-testid={testid}"):
        ui.label(title).classes("text-subtitle2 text-grey-7")
        value = ui.label("…").classes("text-h4").props(f"data-testid={testid}-value")
        note = ui.label("").classes("text-caption")
    return value, note


@console_page("/", title="Overview", nav=NavItem("Overview", "dashboard", order=10))
async def overview(console: Console) -> None:
    with ui.row().classes("w-full gap-4"):
        devices, devices_note = _tile("Devices", "devices")
        online, online_note = _tile("Online now", "online")
        letters, letters_note = _tile("Dead letters", "dead-letters")
        prefixes, prefixes_note = _tile("Identifier prefixes", "prefixes")
        gateways, gateways_note = _tile("Gateways online", "gateways")
        ingest = None
        if console.user.role is Role.PLATFORM_ADMIN:  # the rate is the platform's, not a tenant's
            ingest = _tile("Ingest (points/s)", "ingest")
    rate = IngestRate()

    async def refresh_all() -> None:
        await _refresh_devices()
        await _refresh_prefixes()
        if ingest is not None:
            await _refresh_ingest()

    async def refresh() -> None:
        try:
            await refresh_all()
        except ConsoleError as error:
            console.fail(error)

    async def _refresh_devices() -> None:
        if not console.can(Permission.DEVICE_READ):
            devices.set_text("—")
            return
        summary = await summarise_devices(console)
        devices.set_text(f"{summary.total}{'+' if summary.more else ''}")
        devices_note.set_text(f"first {MAX_DEVICES} examined" if summary.more else "")
        online.set_text(str(summary.online))
        online_note.set_text(
            f"{summary.total - summary.online} offline (no value in the last "
            f"{int(ONLINE_WITHIN.total_seconds() // 60)} minutes)"
        )
        letters.set_text(str(summary.dead_letters))
        letters_note.set_text("; ".join(summary.errors) or "messages refused by ingest")
        gateways.set_text(f"{summary.gateways_online} of {summary.gateways}")
        gateways_note.set_text("edge nodes; connector health on each one's Devices page")

    async def _refresh_prefixes() -> None:
        page = await console.api.get("/api/v1/ids/prefixes")
        names = [item["prefix"] for item in page["items"]]
        prefixes.set_text(str(len(names)))
        prefixes_note.set_text(", ".join(names[:5]) + (" …" if len(names) > 5 else ""))

    async def _refresh_ingest() -> None:
        if ingest is None:
            return
        value = rate.update(ingested_points(await console.api.get("/metrics")))
        ingest[0].set_text("…" if value is None else f"{value:,.0f}")
        ingest[1].set_text("platform-wide, all tenants")

    ui.timer(REFRESH_SECONDS, refresh, immediate=False)
    await refresh_all()  # errors here are shown in the page by console_page

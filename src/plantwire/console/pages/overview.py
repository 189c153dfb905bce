"""``/``: the tenant at a glance, refreshed every few seconds: its devices, those reporting,
their points a second and the messages ingest refused (dead letters), all from the API's tenant
activity in one request, and its identifier prefixes; for platform admins the devices of all
tenants and the platform's ingest rate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.frame import Console, NavItem, console_page
from plantwire.security.roles import Permission, Role

__all__ = ["overview"]

REFRESH_SECONDS = 10.0
NEWEST_HANDLES = 5  # the latest identifiers listed
MAX_DEVICES = 1000  # a platform admin's count of devices stops here
ONLINE_WINDOW = 300  # seconds: a device with a point stamped this recently is reporting
INGEST_POINTS = "plantwire_ingest_points_total"


@dataclass(slots=True)
class DeviceSummary:
    total: int = 0
    more: bool = False  # a platform admin's count stopped at MAX_DEVICES
    reporting: int = 0
    points_per_second: float = 0.0
    dead_letters: int | None = None  # None: ingest is not connected to a broker
    gateways: int = 0  # Sparkplug edge nodes (a gateway is one)
    gateways_online: int = 0  # by the Sparkplug host's view: born and not dead since


async def _gateways(console: Console, summary: DeviceSummary) -> None:
    """Counts the edge nodes among the first MAX_DEVICES devices, and those online (one
    request per edge node: a plant has few)."""
    page = await console.api.get("/api/v1/devices", limit=MAX_DEVICES)
    for device in page["items"]:
        if device["kind"] == "sparkplug-node":
            summary.gateways += 1
            found = await console.api.get(f"/api/v1/devices/{device['id']}")
            summary.gateways_online += bool((found.get("sparkplug") or {}).get("online"))


async def summarise_devices(console: Console) -> DeviceSummary:
    """The tenant's devices, those reporting, their points a second and the dead letters,
    in one request (the API's tenant activity); a platform admin's count of devices of all
    tenants, from the device list."""
    if console.user.tenant is None:
        page = await console.api.get("/api/v1/devices", limit=MAX_DEVICES)
        count = len(page["items"])
        return DeviceSummary(total=count, more=count >= MAX_DEVICES)
    activity = await console.api.get(
        f"/api/v1/tenants/{console.user.tenant}/telemetry/activity", window=ONLINE_WINDOW
    )
    summary = DeviceSummary(
        total=activity["devices"],
        reporting=activity["devices_reporting"],
        points_per_second=activity["points_per_second"],
        dead_letters=activity["dead_letters"],
    )
    await _gateways(console, summary)
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


def _when(created_at: str) -> str:
    """``2026-12-01 00:13:08 UTC`` from the API's ISO time."""
    moment = datetime.fromisoformat(created_at).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _tile(title: str, testid: str) -> tuple[ui.label, ui.label]:
    with ui.card().classes("min-w-[14rem] grow").props(f"flat bordered data-testid={testid}"):
        ui.label(title).classes("text-subtitle2 text-grey-7")
        value = ui.label("…").classes("text-h4").props(f"data-testid={testid}-value")
        note = ui.label("").classes("text-caption")
    return value, note


@console_page("/", title="Overview", nav=NavItem("Overview", "dashboard", order=10))
async def overview(console: Console) -> None:
    tenant = console.user.tenant is not None
    with ui.row().classes("w-full gap-4"):
        devices, devices_note = _tile("Devices", "devices")
        online, online_note = _tile("Reporting now", "online")
        letters, letters_note = _tile("Dead letters", "dead-letters")
        prefixes, prefixes_note = _tile("Identifier prefixes", "prefixes")
        # a tenant's own rate; a platform admin's is the whole platform's
        ingest = _tile("Ingest (points/s)", "ingest")
        gateways, gateways_note = _tile("Gateways online", "gateways")
    with ui.card().classes("w-full").props("flat bordered data-testid=newest-handles"):
        ui.label("Latest identifiers").classes("text-subtitle2 text-grey-7")
        newest = ui.column().classes("gap-1")
    rate = IngestRate()

    async def refresh_all() -> None:
        await _refresh_devices()
        await _refresh_prefixes()
        await _refresh_newest()
        if not tenant and console.user.role is Role.PLATFORM_ADMIN:
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
        if not tenant:
            devices_note.set_text("of all tenants")
            return
        online.set_text(str(summary.reporting))
        online_note.set_text(
            f"{summary.total - summary.reporting} silent (no point in the last "
            f"{ONLINE_WINDOW // 60} minutes)"
        )
        shown = "—" if summary.dead_letters is None else str(summary.dead_letters)
        letters.set_text(shown)
        letters_note.set_text(
            "ingest is not connected"
            if summary.dead_letters is None
            else "messages refused by ingest, kept for inspection"
        )
        ingest[0].set_text(f"{summary.points_per_second:,.1f}")
        ingest[1].set_text(f"your devices, the last {ONLINE_WINDOW // 60} minutes' average")
        gateways.set_text(f"{summary.gateways_online} of {summary.gateways}")
        gateways_note.set_text("edge nodes; connector health on each one's Devices page")

    async def _refresh_prefixes() -> None:
        page = await console.api.get("/api/v1/ids/prefixes")
        names = [item["prefix"] for item in page["items"]]
        prefixes.set_text(str(len(names)))
        prefixes_note.set_text(", ".join(names[:5]) + (" …" if len(names) > 5 else ""))

    async def _refresh_newest() -> None:
        page = await console.api.get("/api/v1/ids/handles/newest", limit=NEWEST_HANDLES)
        newest.clear()
        with newest:
            if not page["items"]:
                ui.label("None minted yet under your prefixes.").classes("text-caption")
            for item in page["items"]:
                with ui.row().classes("items-baseline gap-3"):
                    target = f"/identifiers?handle={quote(item['handle'], safe='')}"
                    ui.link(item["handle"], target).props("data-testid=newest-handle")
                    ui.label(_when(item["created_at"])).classes("text-caption")

    async def _refresh_ingest() -> None:
        value = rate.update(ingested_points(await console.api.get("/metrics")))
        ingest[0].set_text("…" if value is None else f"{value:,.0f}")
        ingest[1].set_text("platform-wide, all tenants")

    ui.timer(REFRESH_SECONDS, refresh, immediate=False)
    await refresh_all()  # errors here are shown in the page by console_page

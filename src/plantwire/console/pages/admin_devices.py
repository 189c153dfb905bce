"""``/admin/devices``: create a device and get its MQTT credentials (shown once), rotate them,
delete a device. Browsing devices and their data is the Devices page's (``/devices``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from plantwire.console.frame import Console, console_page
from plantwire.console.pages.admin_frame import (
    CreateForm,
    admin_row,
    admin_tabs,
    confirm,
    reported,
    show_once,
    tenant_choices,
    tenant_select,
)
from plantwire.security.roles import Permission

__all__ = ["admin_devices"]

SHOWN = 100  # devices listed at once; the search narrows
KINDS = {
    "json": "JSON over MQTT",
    "sparkplug-node": "Sparkplug B edge node (name: <group id>/<edge node id>)",
}


def _credentials(title: str, device: dict[str, Any], mqtt: dict[str, Any]) -> None:
    notes = {
        "Publishes telemetry on": str(device["topics"]["telemetry"]),
        "Receives commands on": str(device["topics"]["commands"]),
    }
    if device["kind"] == "sparkplug-node":
        notes["Sparkplug"] = (
            "The edge node also publishes its NBIRTH/NDEATH and its devices' DBIRTH, DDATA "
            "and DDEATH beside these topics, with these credentials."
        )
    show_once(
        title,
        {"MQTT username": str(mqtt["username"]), "MQTT password": str(mqtt["password"])},
        notes,
    )


@console_page("/admin/devices", title="Devices and credentials", permission=Permission.DEVICE_WRITE)
async def admin_devices(console: Console) -> None:
    admin_tabs(console, "/admin/devices")
    tenants = await tenant_choices(console)

    form = CreateForm(console, "device")

    async def create() -> None:
        body: dict[str, Any] = {"name": (name.value or "").strip(), "kind": kind.value}
        if place.value:
            body["place"] = place.value.strip()
        if tenant is not None:
            body["tenant"] = tenant.value
        created = await form.post("/api/v1/devices", body)
        if created is None:
            return
        name.set_value("")
        place.set_value("")
        _credentials(f"Device “{created['name']}” created", created, created["mqtt"])
        await reload()

    with form.build("New device", "Create device", create):
        name = ui.input("Name").props("outlined dense data-testid=device-name")
        kind = (
            ui.select(KINDS, label="Kind", value="json")
            .props("outlined dense data-testid=device-kind")
            .classes("min-w-[14rem]")
        )
        place = ui.input("Place (optional)").props(
            "outlined dense data-testid=device-place hint='e.g. Plant1/Assembly/Line3'"
        )
        tenant = tenant_select(tenants, "device-tenant")

    search = ui.input("Search devices by name", on_change=lambda: reload()).props(
        "outlined dense clearable debounce=300 data-testid=device-search"
    )
    listing = ui.column().classes("w-full gap-0")
    shown = _Shown()

    async def load() -> None:
        shown.generation += 1
        mine = shown.generation
        params: dict[str, Any] = {"limit": SHOWN}
        if search.value:
            params["search"] = search.value
        page = await console.api.get("/api/v1/devices", **params)
        if mine != shown.generation:  # a later search answered first: it stands
            return
        listing.clear()
        with listing, ui.column().classes("w-full gap-0").props("data-testid=admin-devices"):
            for device in page["items"]:
                _device_row(console, device, tenants, reload)
            if not page["items"]:
                ui.label("No devices" + (" match." if search.value else "."))
            if len(page["items"]) >= SHOWN:
                ui.label(f"The first {SHOWN} are shown: search to find others.").classes(
                    "text-caption"
                )

    async def reload() -> None:
        await reported(console, load)()

    await load()


@dataclass(slots=True)
class _Shown:
    generation: int = 0  # of the listing's loads; only the latest is shown


def _device_row(
    console: Console,
    device: dict[str, Any],
    tenants: dict[str, str],
    refresh: Callable[[], Awaitable[None]],
) -> None:
    name, base = str(device["name"]), f"/api/v1/devices/{device['id']}"

    async def rotate() -> None:
        mqtt = await console.api.post(f"{base}/credentials")
        _credentials(f"New credentials of “{name}”", device, mqtt)

    async def delete() -> None:
        await console.api.delete(base)
        ui.notify(f"Device {name} deleted.", type="positive")
        await refresh()

    with admin_row(f"device-{device['id']}", name):
        ui.label(str(device["kind"])).classes("min-w-[9rem]")
        ui.label(str(device["place"]) or "—").classes("min-w-[10rem]")
        if tenants:
            ui.label(tenants.get(str(device["tenant"]), str(device["tenant"])))
        if device["kind"] != "sparkplug-device":  # it talks through its edge node's
            ui.button(
                "Rotate credentials",
                on_click=lambda: confirm(
                    console,
                    f"Replace the MQTT password of {name}? The device must be given the new "
                    "one; the old one stops working at once.",
                    "Rotate",
                    rotate,
                ),
            ).props("flat dense no-caps")
        suffix = " and its Sparkplug devices" if device["kind"] == "sparkplug-node" else ""
        ui.button(
            "Delete",
            on_click=lambda: confirm(
                console,
                f"Delete the device {name}{suffix}? Its credentials stop working at once.",
                "Delete",
                delete,
            ),
        ).props("flat dense no-caps color=negative")

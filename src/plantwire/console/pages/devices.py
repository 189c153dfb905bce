"""``/devices``: the tenant's devices (name search by the API, kind and status per page), and
``/devices/{device_id}``: a device's latest values, a live chart polled from ``/latest``, its
history aggregated by the API over a chosen range, CSV/Parquet downloads, and for a Sparkplug
edge node its status and the gateway's health metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.charts import LiveSeries, choose_interval, numeric, time_chart
from plantwire.console.frame import Console, NavItem, console_page, show_error
from plantwire.console.pages.overview import ONLINE_WINDOW
from plantwire.security.roles import Permission

__all__ = [
    "RANGES",
    "device_page",
    "device_status",
    "devices",
    "health_metric",
    "numeric",
    "resolve_range",
]

ONLINE_WITHIN = timedelta(seconds=ONLINE_WINDOW)  # as the Overview counts reporting

PAGE_SIZE = 50  # devices per page of the list
LIVE_SECONDS = 2.0  # how often the device page polls /latest
MAX_LIVE_METRICS = 8  # numeric metrics in the live chart (each at most LIVE_POINTS points)
CUSTOM = "Custom"
RANGES: dict[str, timedelta] = {
    "15 min": timedelta(minutes=15),
    "1 h": timedelta(hours=1),
    "24 h": timedelta(hours=24),
    "7 d": timedelta(days=7),
}
KINDS = {"json": "JSON", "sparkplug-node": "Sparkplug edge node", "sparkplug-device": "Sparkplug"}
STATUSES = ("online", "offline", "never seen")
#: What a gateway publishes about itself and its connectors (docs/edge.md).
HEALTH_PREFIXES = ("Connector/", "Buffer/", "Uplink/")


def device_status(latest: dict[str, Any], now: datetime) -> str:
    """online: a good, non-stale value within ``ONLINE_WITHIN`` (as the Overview counts);
    never seen: no value at all; offline otherwise."""
    if not latest:
        return "never seen"
    for value in latest.values():
        fresh = now - datetime.fromisoformat(value["ts"]) <= ONLINE_WITHIN
        if fresh and value.get("quality") == "good" and not value.get("stale"):
            return "online"
    return "offline"


def health_metric(name: str) -> bool:
    """A gateway's health report (``Connector/…``, ``Buffer/…``, ``Uplink/…``, see
    docs/edge.md) rather than a value of the machine itself."""
    return name.startswith(HEALTH_PREFIXES)


def resolve_range(choice: str, start: str, end: str, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) a range choice means; a custom range is two ISO 8601 times (UTC when
    they name no zone). ValueError says what is wrong with a custom one."""
    if choice in RANGES:
        return now - RANGES[choice], now
    return _custom_time(start, "start"), _custom_time(end, "end")


def _custom_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"The custom {name} '{text}' is not a time such as 2026-11-22 08:00 (UTC) or "
            "2026-11-22T08:00:00+01:00."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _device_path(device_id: str) -> str:
    return f"/api/v1/devices/{quote(device_id, safe='')}"


class ProblemSlot:
    """A place in the page for a problem of a refresh or a click: an expired session goes to
    the login page, anything else is a banner here until the next success."""

    def __init__(self, console: Console, testid: str) -> None:
        self.console = console
        self.box = ui.column().classes("w-full").props(f"data-testid={testid}")

    def show(self, error: ConsoleError) -> None:
        if error.status == 401:
            self.console.fail(error)
            return
        self.box.clear()
        with self.box:
            show_error(error)

    def clear(self) -> None:
        self.box.clear()

    async def run(self, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except ConsoleError as error:
            self.show(error)
        else:
            self.clear()


# --- the list --------------------------------------------------------------------------------

_LIST_COLUMNS: list[dict[str, object]] = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind_label", "align": "left"},
    {"name": "place", "label": "Place", "field": "place", "align": "left"},
    {"name": "metrics", "label": "Metrics", "field": "metrics"},
    {"name": "last", "label": "Last value", "field": "last", "align": "left"},
]
_NAME_LINK = (
    '<q-td :props="props"><a class="text-primary" :data-testid="\'device-\' + props.row.name"'
    " :href=\"'/devices/' + encodeURIComponent(props.row.id)\">{{ props.value }}</a></q-td>"
)


async def _device_row(console: Console, device: dict[str, Any], now: datetime) -> dict[str, Any]:
    latest: dict[str, Any] = await console.api.get(f"{_device_path(device['id'])}/latest")
    newest = max((value["ts"] for value in latest.values()), default="")
    return {
        "id": device["id"],
        "name": device["name"],
        "kind": device["kind"],
        "kind_label": KINDS.get(device["kind"], device["kind"]),
        "place": device["place"],
        "metrics": len(latest),
        "status": device_status(latest, now),
        "last": newest[:19].replace("T", " ") + (" UTC" if newest else "—"),
    }


@console_page(
    "/devices",
    title="Devices",
    permission=Permission.DEVICE_READ,
    nav=NavItem("Devices", "sensors", order=20),
)
async def devices(console: Console) -> None:
    offset = 0
    problems = ProblemSlot(console, "devices-error")
    with ui.row().classes("items-end gap-4 w-full"):
        search = ui.input("Search by name").props("clearable debounce=400 data-testid=search")
        kind = ui.select({"": "Any kind", **KINDS}, value="", label="Kind").props(
            "data-testid=kind"
        )
        status = ui.select(
            {"": "Any status", **{s: s.capitalize() for s in STATUSES}}, value="", label="Status"
        ).props("data-testid=status")
        ui.button(icon="refresh", on_click=lambda: problems.run(refresh)).props(
            "flat round aria-label='Refresh'"
        )
    table = (
        ui.table(columns=_LIST_COLUMNS, rows=[], row_key="id")
        .classes("w-full")
        .props("flat bordered data-testid=devices hide-pagination :rows-per-page-options=[0]")
    )
    table.add_slot("body-cell-name", _NAME_LINK)
    with ui.row().classes("items-center gap-2"):
        earlier = ui.button("Previous", icon="chevron_left").props("flat data-testid=previous")
        shown = ui.label("").classes("text-body2").props("data-testid=devices-shown")
        later = ui.button("Next", icon="chevron_right").props("flat data-testid=next")

    async def refresh() -> None:
        params: dict[str, Any] = {"limit": PAGE_SIZE, "offset": offset}
        if search.value:
            params["search"] = search.value
        page = await console.api.get("/api/v1/devices", **params)
        now = datetime.now(UTC)
        rows = [await _device_row(console, device, now) for device in page["items"]]
        fetched = len(rows)
        rows = [
            row
            for row in rows
            if (not kind.value or row["kind"] == kind.value)
            and (not status.value or row["status"] == status.value)
        ]
        table.rows = rows
        table.update()
        earlier.set_enabled(offset > 0)
        later.set_enabled(fetched == PAGE_SIZE)
        filtered = f", {len(rows)} match kind and status" if kind.value or status.value else ""
        shown.set_text(
            f"Devices {offset + 1} to {offset + fetched}{filtered}" if fetched else "No devices"
        )

    async def turn(step: int) -> None:
        nonlocal offset
        offset = max(0, offset + step * PAGE_SIZE)
        await problems.run(refresh)

    async def first_page() -> None:
        nonlocal offset
        offset = 0
        await problems.run(refresh)

    earlier.on_click(lambda: turn(-1))
    later.on_click(lambda: turn(1))
    search.on_value_change(first_page)
    kind.on_value_change(lambda: problems.run(refresh))
    status.on_value_change(lambda: problems.run(refresh))
    await refresh()  # a problem here is shown in the page by console_page


# --- one device ------------------------------------------------------------------------------

_LATEST_COLUMNS: list[dict[str, object]] = [
    {"name": "metric", "label": "Metric", "field": "metric", "align": "left"},
    {"name": "value", "label": "Value", "field": "value", "align": "right"},
    {"name": "unit", "label": "Unit", "field": "unit", "align": "left"},
    {"name": "quality", "label": "Quality", "field": "quality", "align": "left"},
    {"name": "ts", "label": "Measured (UTC)", "field": "ts", "align": "left"},
]


def _latest_rows(
    latest: dict[str, Any], units: dict[str, str], keep: Callable[[str], bool]
) -> list[dict[str, Any]]:
    return [
        {
            "metric": name,
            "value": _shown(value["value"]),
            "unit": units.get(name, ""),
            "quality": value["quality"] + (" (stale)" if value.get("stale") else ""),
            "ts": value["ts"][:23].replace("T", " "),
        }
        for name, value in sorted(latest.items())
        if keep(name)
    ]


def _facts(device: dict[str, Any]) -> None:
    with ui.row().classes("gap-6 text-body2").props("data-testid=device-facts"):
        ui.label(device["name"]).classes("text-h6").props("data-testid=device-name")
        for label, text in (
            ("Kind", KINDS.get(device["kind"], device["kind"])),
            ("Place", device["place"] or "—"),
            ("Id", device["id"]),
            ("Telemetry topic", device["topics"]["telemetry"]),
        ):
            with ui.column().classes("gap-0"):
                ui.label(label).classes("text-caption text-grey-7")
                ui.label(text)


def _sparkplug_card(status: dict[str, Any]) -> None:
    with ui.card().classes("w-full").props("flat bordered data-testid=sparkplug"):
        ui.label("Sparkplug").classes("text-subtitle1 text-weight-bold")
        with ui.row().classes("gap-6 text-body2"):
            ui.label("Online" if status["online"] else "Offline").classes(
                "text-positive" if status["online"] else "text-negative"
            ).props("data-testid=sparkplug-state")
            for label, key in (
                ("Born", "birth"),
                ("Last death", "last_death"),
                ("bdSeq", "bd_seq"),
                ("Rebirths asked", "rebirths"),
                ("Sequence gaps", "seq_gaps"),
            ):
                value = status.get(key)
                ui.label(f"{label}: {'—' if value is None else value}")


async def _gateway_health(console: Console, node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's own health metrics and its Sparkplug devices' connector metrics (its devices
    are named ``<node name>/<device>``, so the name search finds them)."""
    rows = []
    own = await console.api.get(f"{_device_path(node['id'])}/latest")
    for row in _latest_rows(own, {}, health_metric):
        rows.append({"device": "(edge node)", **row})
    found = await console.api.get("/api/v1/devices", search=node["name"], limit=200)
    for child in found["items"]:
        if child.get("parent") != node["id"]:
            continue
        latest = await console.api.get(f"{_device_path(child['id'])}/latest")
        for row in _latest_rows(latest, {}, health_metric):
            rows.append({"device": child["name"].rsplit("/", 1)[-1], **row})
    return rows


@console_page("/devices/{device_id}", title="Device", permission=Permission.DEVICE_READ)
async def device_page(console: Console, device_id: str) -> None:
    base = _device_path(device_id)
    device = await console.api.get(base)  # 404 for unknown and other tenants' ids alike
    units = {metric["name"]: metric["unit"] for metric in device["metrics"]}
    _facts(device)
    if device.get("sparkplug") is not None:
        _sparkplug_card(device["sparkplug"])
    if device["kind"] == "sparkplug-node":
        ui.label("Gateway and connector health").classes("text-h6")
        health = ui.table(
            columns=[
                {"name": "device", "label": "Device", "field": "device", "align": "left"},
                *_LATEST_COLUMNS,
            ],
            rows=await _gateway_health(console, device),
        ).classes("w-full")
        health.props("flat bordered data-testid=health hide-pagination :rows-per-page-options=[0]")
    live = await _live_section(console, base, units)
    await _history_section(console, base, device, units)
    ui.timer(LIVE_SECONDS, live, immediate=False)


async def _live_section(
    console: Console, base: str, units: dict[str, str]
) -> Callable[[], Awaitable[None]]:
    """Latest values and the live chart; returns the poll the page's timer calls."""
    ui.label("Latest values").classes("text-h6")
    problems = ProblemSlot(console, "live-error")
    table = ui.table(columns=_LATEST_COLUMNS, rows=[], row_key="metric").classes("w-full")
    table.props("flat bordered data-testid=latest hide-pagination :rows-per-page-options=[0]")
    with ui.row().classes("items-center gap-4"):
        ui.label("Live").classes("text-h6")
        counted = ui.label("").classes("text-caption").props("data-testid=live-points")
    chart = ui.echart(time_chart([])).classes("w-full h-72").props("data-testid=live-chart")
    series: dict[str, LiveSeries] = {}

    async def poll() -> None:
        latest: dict[str, Any] = await console.api.get(f"{base}/latest")
        table.rows = _latest_rows(latest, units, lambda name: True)
        table.update()
        changed = False
        for name, value in sorted(
            latest.items(), key=lambda item: (health_metric(item[0]), item[0])
        ):
            number = numeric(value["value"])
            if number is None or value["quality"] == "bad":
                continue
            if name not in series and len(series) < MAX_LIVE_METRICS:
                series[name] = LiveSeries(name)
            if name in series:
                changed = series[name].add(value["ts"], number) or changed
        total = sum(len(one.points) for one in series.values())
        counted.set_text(
            f"{total} points of {len(series)} numeric metrics, polled every {LIVE_SECONDS:g} s"
            if series
            else "No numeric values yet"
        )
        if changed:
            chart.options["series"] = time_chart([one.option() for one in series.values()])[
                "series"
            ]
            chart.update()

    await poll()  # a problem here is shown in the page by console_page
    return lambda: problems.run(poll)


async def _history_section(
    console: Console, base: str, device: dict[str, Any], units: dict[str, str]
) -> None:
    """A metric's history over a chosen range, aggregated by the API, and the downloads."""
    ui.label("History").classes("text-h6")
    names = sorted(units) or sorted(await console.api.get(f"{base}/latest"))
    # the machine's own numbers first, then its other values, then a gateway's health reports
    kinds = {metric["name"]: metric.get("data_type") for metric in device.get("metrics", [])}
    names.sort(
        key=lambda name: (health_metric(name), kinds.get(name) not in ("float", "int"), name)
    )
    with ui.row().classes("items-end gap-4 w-full"):
        metric = ui.select(names, value=names[0] if names else None, label="Metric").props(
            "data-testid=history-metric"
        )
        choice = ui.toggle([*RANGES, CUSTOM], value="1 h").props("data-testid=range")
        start = ui.input("From (UTC)", placeholder="2026-11-22 08:00").props(
            "data-testid=custom-start"
        )
        end = ui.input("To (UTC)", placeholder="2026-11-22 09:00").props("data-testid=custom-end")
        apply = ui.button("Show").props("data-testid=custom-show")
    start.bind_visibility_from(choice, "value", value=CUSTOM)
    end.bind_visibility_from(choice, "value", value=CUSTOM)
    apply.bind_visibility_from(choice, "value", value=CUSTOM)
    info = ui.label("").classes("text-caption").props("data-testid=history-info")
    problems = ProblemSlot(console, "history-error")
    chart = ui.echart(time_chart([])).classes("w-full h-72").props("data-testid=history-chart")

    def span() -> tuple[datetime, datetime]:
        try:
            return resolve_range(choice.value, start.value, end.value, datetime.now(UTC))
        except ValueError as error:
            raise ConsoleError(422, "The range cannot be shown", str(error)) from error

    async def show() -> None:
        first, last = span()
        if not metric.value:
            info.set_text("The device has no metrics yet.")
            return
        interval = choose_interval(last - first)
        answer = await console.api.get(
            f"{base}/telemetry",
            metric=metric.value,
            start=_api_time(first),
            end=_api_time(last),
            interval=interval,
            agg="avg,min,max",
        )
        points = answer["points"]
        chart.options.update(
            time_chart(
                [
                    {"name": f"{name} per {interval}", "data": [[p[0], p[i]] for p in points]}
                    for i, name in enumerate(("avg", "min", "max"), start=1)
                ],
                unit=units.get(metric.value, ""),
                span=(_api_time(first), _api_time(last)),
            )
        )
        chart.update()
        found = f"{len(points)} intervals of {interval}" if points else "no numeric values"
        info.set_text(f"{metric.value}: {found}, {_api_time(first)} to {_api_time(last)}")

    async def download(file_format: str) -> None:
        first, last = span()
        content, name = await console.api.download(
            f"{base}/export", start=_api_time(first), end=_api_time(last), format=file_format
        )
        ui.download(content, name or f"{device['name']}.{file_format}")

    with ui.row().classes("gap-2"):
        ui.button(
            "Download CSV",
            icon="download",
            on_click=lambda: problems.run(lambda: download("csv")),
        ).props("outline data-testid=download-csv")
        ui.button(
            "Download Parquet",
            icon="download",
            on_click=lambda: problems.run(lambda: download("parquet")),
        ).props("outline data-testid=download-parquet")
    ui.label("Downloads hold every point of every metric in the range (at most 31 days).").classes(
        "text-caption"
    )

    def on_change() -> Awaitable[None] | None:
        if choice.value == CUSTOM:
            return None  # the Show button
        return problems.run(show)

    choice.on_value_change(on_change)
    metric.on_value_change(lambda: problems.run(show))
    apply.on_click(lambda: problems.run(show))
    await problems.run(show)

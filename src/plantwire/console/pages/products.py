"""``/products/<handle>``: a unit's page, the address its identifier's URL value points at
(``demo/traceability.product_url``). It resolves the handle, shows what the record says (product
type, line, machine, production start and end, quality) and the data of the machine that made
the unit during its production window, from the tenant's device of that name, aggregated over
intervals when the window is long. Without such a device, or the right to read it, the page
says why there is no machine data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.charts import numeric
from plantwire.console.frame import Console, console_page, show_error
from plantwire.console.handle_api import HandleApi
from plantwire.console.handle_values import ProductRecord, check_handle, product_record
from plantwire.console.pages.identifiers import show_qr, show_record
from plantwire.ids.names import HandleSyntaxError, match_key, parse_handle
from plantwire.security.roles import Permission

__all__ = ["MachineSeries", "find_machine", "interval_for", "products"]

MAX_METRICS = 8  # charted per unit; a machine's main measurements
RAW_WITHIN = timedelta(minutes=15)  # shorter windows are charted point by point
MAX_BUCKETS = 500  # longer ones in at most this many intervals
#: the intervals the chart may aggregate over (the telemetry API's syntax), shortest first
INTERVALS = (
    ("1s", timedelta(seconds=1)),
    ("10s", timedelta(seconds=10)),
    ("1m", timedelta(minutes=1)),
    ("5m", timedelta(minutes=5)),
    ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("1d", timedelta(days=1)),
)
NUMERIC = ("float", "int")
_LABELS = {
    "PRODUCT_TYPE": "Product type",
    "LINE": "Line",
    "MACHINE": "Machine",
    "PRODUCTION_START": "Production start",
    "PRODUCTION_END": "Production end",
    "QUALITY": "Quality",
}


def interval_for(span: timedelta) -> str | None:
    """None to chart raw points; else the shortest interval giving at most MAX_BUCKETS."""
    if span <= RAW_WITHIN:
        return None
    for name, length in INTERVALS:
        if span / length <= MAX_BUCKETS:
            return name
    return INTERVALS[-1][0]


def find_machine(devices: list[dict[str, Any]], machine: str) -> dict[str, Any] | None:
    """The device named ``machine``, or a Sparkplug device ``<group>/<edge node>/<machine>``
    (as the demo's gateway names them); an exact name wins."""
    wanted = machine.lower()
    exact = [d for d in devices if str(d["name"]).lower() == wanted]
    nested = [d for d in devices if str(d["name"]).lower().endswith("/" + wanted)]
    found = exact or nested
    return found[0] if found else None


@dataclass(slots=True)
class MachineSeries:
    metric: str
    unit: str
    points: list[tuple[str, float]] = field(default_factory=list)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _series(
    console: Console, device: dict[str, Any], start: datetime, end: datetime
) -> list[MachineSeries]:
    base = f"/api/v1/devices/{device['id']}"
    detail = await console.api.get(base)
    units = {m["name"]: m.get("unit", "") for m in detail.get("metrics") or []}
    names = [m["name"] for m in detail.get("metrics") or [] if m.get("data_type") in NUMERIC]
    if not names:  # no declared metrics: the ones it reported, if numbers
        latest = await console.api.get(f"{base}/latest")
        names = [
            name
            for name, value in sorted(latest.items())
            if numeric(value.get("value")) is not None
        ]
    interval = interval_for(end - start)
    window = {"start": _iso(start), "end": _iso(end)}
    found = []
    for name in names[:MAX_METRICS]:
        if interval is None:
            answer = await console.api.get(f"{base}/telemetry", metric=name, limit=10_000, **window)
        else:
            answer = await console.api.get(
                f"{base}/telemetry", metric=name, interval=interval, agg="avg", **window
            )
        points = [
            (str(point[0]), number)
            for point in answer["points"]
            if (number := numeric(point[1])) is not None
        ]
        if points:
            found.append(MachineSeries(name, units.get(name, ""), points))
    return found


def _record_card(handle: str, record: ProductRecord) -> None:
    card = ui.card().classes("w-full").props("flat bordered data-testid=product-record")
    with card, ui.row().classes("w-full items-start justify-between no-wrap"):
        with ui.grid(columns=2).classes("gap-x-6 gap-y-1"):
            ui.label("Identifier").classes("text-grey-7")
            ui.link(handle, f"/identifiers?handle={quote(handle)}").props(
                "data-testid=product-handle"
            )
            for kind, label in _LABELS.items():
                ui.label(label).classes("text-grey-7")
                ui.label(record.fields.get(kind, "—")).props(f"data-testid=product-{kind}")
        show_qr(handle)


def _no_data(why: str) -> None:
    with ui.card().classes("w-full").props("flat bordered role=status data-testid=no-machine-data"):
        ui.label("No machine data").classes("text-subtitle1 text-weight-bold")
        ui.label(why)


def _chart(device: dict[str, Any], series: list[MachineSeries], interval: str | None) -> None:
    how = "each point" if interval is None else f"averages over {interval}"
    ui.label(f"{device['name']} during production ({how})").classes("text-subtitle1")
    options = {
        "animation": False,  # the data is history: draw it at once
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll", "top": 0},
        "grid": {"left": 60, "right": 30, "top": 40, "bottom": 30},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "scale": True},
        "series": [
            {
                "name": f"{s.metric} ({s.unit})" if s.unit else s.metric,
                "type": "line",
                "showSymbol": len(s.points) < 50,
                "data": [list(point) for point in s.points],
            }
            for s in series
        ],
    }
    ui.echart(options).classes("w-full h-80").props("data-testid=machine-chart")
    rows = [
        {
            "metric": s.metric,
            "unit": s.unit,
            "points": len(s.points),
            "min": f"{min(v for _, v in s.points):.6g}",
            "max": f"{max(v for _, v in s.points):.6g}",
            "mean": f"{sum(v for _, v in s.points) / len(s.points):.6g}",
        }
        for s in series
    ]
    columns = [{"name": k, "label": k.capitalize(), "field": k, "align": "left"} for k in rows[0]]
    ui.table(columns=columns, rows=rows, row_key="metric").classes("w-full").props(
        "flat bordered dense data-testid=machine-summary"
    )


async def _owner(console: Console, handle: str) -> str | None:
    """For a platform admin (who sees every tenant's devices): the tenant owning the handle's
    prefix, whose machine made the unit; None if no tenant here owns it."""
    prefix = match_key(parse_handle(handle).prefix)
    for item in (await console.api.get("/api/v1/ids/prefixes"))["items"]:
        if match_key(str(item["prefix"])) == prefix:
            return item["tenant_id"] if isinstance(item["tenant_id"], str) else None
    return None


async def _machine_data(console: Console, handle: str, record: ProductRecord) -> None:
    machine = record.machine
    if not machine:
        _no_data("The record names no machine.")
        return
    if record.start is None or record.end is None or record.end <= record.start:
        _no_data("The record has no production window (start and end in ISO 8601).")
        return
    if not console.can(Permission.DEVICE_READ):
        _no_data(f"Your role may not read devices, so not {machine}'s data.")
        return
    scope = {}
    if console.user.tenant is None:  # a platform admin: the devices of the prefix's tenant
        owner = await _owner(console, handle)
        if owner is None:
            _no_data(f"No tenant of this platform owns the prefix of {handle}.")
            return
        scope["tenant"] = owner
    page = await console.api.get("/api/v1/devices", search=machine, limit=100, **scope)
    device = find_machine(page["items"], machine)
    if device is None:
        _no_data(f"Your tenant has no device named {machine} (nor one ending in /{machine}).")
        return
    series = await _series(console, device, record.start, record.end)
    if not series:
        _no_data(
            f"{device['name']} stored no numeric data between {_iso(record.start)} "
            f"and {_iso(record.end)}."
        )
        return
    _chart(device, series, interval_for(record.end - record.start))


@console_page("/products/{handle:path}", title="Product", permission=Permission.PREFIX_READ)
async def products(console: Console, handle: str) -> None:
    raw = handle
    try:
        handle = check_handle(raw)
    except HandleSyntaxError as error:
        show_error(ConsoleError(400, "Not a valid handle", str(error)))
        return
    values = await HandleApi(console.api).resolve(handle)  # errors: shown by console_page
    record = product_record(values)
    if record is None:
        show_error(
            ConsoleError(404, "Not a product record", f"{handle} has no production start or end.")
        )
        show_record(handle, values)
        return
    _record_card(handle, record)
    try:
        await _machine_data(console, handle, record)
    except ConsoleError as error:
        if error.status == 401:
            raise
        _no_data(f"The machine's data could not be read: {error.message}")

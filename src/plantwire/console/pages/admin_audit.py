"""``/admin/audit``: the audit log, newest first, filtered by actor, action, target, outcome
and time (UTC), a page at a time (``before_id`` paging of ``GET /api/v1/audit``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from plantwire.console.frame import Console, console_page
from plantwire.console.pages.admin_frame import admin_tabs, reported
from plantwire.security.roles import Permission

__all__ = ["audit_log", "audit_time"]

PAGE_SIZE = 50
ACTIONS = [
    "auth.login",
    "user.create",
    "user.update",
    "user.delete",
    "token.create",
    "token.revoke",
    "device.create",
    "device.update",
    "device.credentials",
    "device.delete",
    "tenant.update",
]
OUTCOMES = {"": "any", "success": "success", "denied": "denied", "failure": "failure"}
COLUMNS: list[dict[str, object]] = [
    {"name": "at", "label": "When (UTC)", "field": "at", "align": "left"},
    {"name": "actor", "label": "Actor", "field": "actor", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "source", "label": "From", "field": "source", "align": "left"},
    {"name": "detail", "label": "Detail", "field": "detail", "align": "left"},
]


def audit_time(text: str | None, what: str) -> str | None:
    """A date and time typed in the filter (``2026-12-01T00:10`` or ``2026-12-01 00:10``,
    taken as UTC, or with an offset) as the API's ISO form; ValueError says what is wrong."""
    if not text or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(
            f"{what}: '{text}' is not a date and time like 2026-12-01 08:30."
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    target = str(entry["target_type"])
    if entry.get("target_id"):
        target += f" {entry['target_id']}"
    return {
        "id": entry["id"],
        "at": datetime.fromisoformat(entry["at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "actor": entry["actor"],
        "action": entry["action"],
        "target": target,
        "outcome": entry["outcome"],
        "source": entry.get("source") or "",
        "detail": json.dumps(entry["detail"], ensure_ascii=False) if entry.get("detail") else "",
    }


@dataclass(slots=True)
class _Paging:
    """The ``before_id`` of each page shown so far (None: the newest), and the next one's."""

    starts: list[int | None] = field(default_factory=lambda: [None])
    next_before: int | None = None


@console_page("/admin/audit", title="Audit log", permission=Permission.AUDIT_READ)
async def audit_log(console: Console) -> None:
    admin_tabs(console, "/admin/audit")
    paging = _Paging()

    with (
        ui.element("form")
        .classes("row items-start gap-3 w-full")
        .on("submit.prevent", lambda: search())
        .props("data-testid=audit-filters")
    ):
        actor = ui.input("Actor").props("outlined dense clearable data-testid=audit-actor")
        action = ui.input("Action", autocomplete=ACTIONS).props(
            "outlined dense clearable data-testid=audit-action"
        )
        target = ui.input("Target type").props("outlined dense clearable data-testid=audit-target")
        outcome = (
            ui.select(OUTCOMES, label="Outcome", value="")
            .props("outlined dense data-testid=audit-outcome")
            .classes("min-w-[8rem]")
        )
        since = ui.input("Since (UTC)", placeholder="2026-12-01 08:00").props(
            "outlined dense clearable data-testid=audit-since"
        )
        until = ui.input("Until (UTC)", placeholder="2026-12-01 17:00").props(
            "outlined dense clearable data-testid=audit-until"
        )
        ui.button("Filter").props("type=submit color=primary data-testid=audit-filter")
    message = ui.label("").classes("text-negative").props("role=alert data-testid=audit-error")
    table = (
        ui.table(columns=COLUMNS, rows=[], row_key="id")
        .classes("w-full")
        .props(
            "flat bordered dense wrap-cells hide-pagination data-testid=audit "
            ":pagination='{rowsPerPage: 0}'"
        )
    )
    with ui.row().classes("items-center gap-2"):
        newer = ui.button("Newer", on_click=lambda: turn(-1)).props(
            "flat no-caps data-testid=audit-newer"
        )
        page_label = ui.label("").props("data-testid=audit-page")
        older = ui.button("Older", on_click=lambda: turn(1)).props(
            "flat no-caps data-testid=audit-older"
        )

    def params() -> dict[str, Any]:
        found: dict[str, Any] = {"limit": PAGE_SIZE}
        for key, widget in (("actor", actor), ("action", action), ("target_type", target)):
            if widget.value and widget.value.strip():
                found[key] = widget.value.strip()
        if outcome.value:
            found["outcome"] = outcome.value
        for key, widget, what in (("since", since, "Since"), ("until", until, "Until")):
            moment = audit_time(widget.value, what)
            if moment is not None:
                found[key] = moment
        if paging.starts[-1] is not None:
            found["before_id"] = paging.starts[-1]
        return found

    async def load() -> None:
        message.set_text("")
        try:
            query = params()
        except ValueError as error:
            message.set_text(str(error))
            return
        page = await console.api.get("/api/v1/audit", **query)
        table.rows = [_row(entry) for entry in page["items"]]
        table.update()
        paging.next_before = page["next_before_id"]
        number = len(paging.starts)
        page_label.set_text(f"page {number}" + ("" if page["items"] else " · no entries"))
        newer.set_enabled(number > 1)
        older.set_enabled(paging.next_before is not None)

    reload = reported(console, load)

    async def search() -> None:
        paging.starts = [None]
        await reload()

    async def turn(step: int) -> None:
        if step > 0 and paging.next_before is not None:
            paging.starts.append(paging.next_before)
        elif step < 0 and len(paging.starts) > 1:
            paging.starts.pop()
        await reload()

    await load()

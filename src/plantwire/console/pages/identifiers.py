"""``/identifiers``: resolve any handle through the platform's identifier node and read its
values in words, with the QR code of its proxy URL; and, for roles that administer the
tenant's handles (``handle:admin``), the handles under the tenant's prefixes, to create, edit
and delete. Every call goes to the Handle API as the signed-in user: the node decides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from nicegui import ui

from plantwire.console.api import ConsoleError
from plantwire.console.frame import Console, NavItem, console_page, show_error
from plantwire.console.handle_api import HandleApi, HandlePage
from plantwire.console.handle_values import (
    EditRow,
    admin_value,
    check_handle,
    describe,
    editable_rows,
    kept_values,
    product_record,
    proxy_url,
    qr_svg,
    value_index,
    written_values,
)
from plantwire.ids.names import HandleSyntaxError, url_path
from plantwire.security.roles import Permission

__all__ = ["identifiers", "show_record"]

PAGE_SIZE = 50

OnHandle = Callable[[str], Awaitable[None]]  # what to do next with a handle

_VALUE_COLUMNS: list[dict[str, Any]] = [
    {"name": "index", "label": "Index", "field": "index", "align": "right", "sortable": True},
    {"name": "type", "label": "Type", "field": "type", "align": "left", "sortable": True},
    {"name": "text", "label": "Data", "field": "text", "align": "left"},
    {"name": "format", "label": "Format", "field": "format", "align": "left"},
    {"name": "ttl", "label": "TTL", "field": "ttl", "align": "left"},
    {"name": "timestamp", "label": "Written", "field": "timestamp", "align": "left"},
]
_LINK_CELL = (
    # wraps long values anywhere, but from a readable width (else the column shrinks to a
    # few letters a line)
    '<q-td :props="props"'
    ' style="white-space: normal; overflow-wrap: anywhere; min-width: 12rem">'
    '<a v-if="props.row.link" :href="props.row.link" target="_blank" rel="noopener"'
    ' class="text-primary" style="text-decoration: underline">'
    "{{ props.value }}</a><span v-else>{{ props.value }}</span></q-td>"
)


def product_path(handle: str) -> str:
    return f"/products/{url_path(handle)}"


def base_url() -> str:
    """The platform's address as the browser reached it."""
    return str(ui.context.client.request.base_url)


def show_qr(handle: str) -> None:
    """The QR code of the handle's proxy URL, made here (segno), inline."""
    url = proxy_url(base_url(), handle)
    with ui.column().classes("items-center gap-1 w-48 shrink-0"):
        ui.html(qr_svg(url)).classes("w-40 h-40 bg-white q-pa-xs").props("data-testid=qr")
        link = ui.link(url, url, new_tab=True).classes("text-caption break-all text-center")
        link.props("data-testid=proxy-url")


def show_record(handle: str, values: list[dict[str, Any]]) -> None:
    """A record's values in words, with its QR code and, for a product, its page."""
    with ui.row().classes("w-full items-start gap-6 no-wrap"):
        with ui.column().classes("grow gap-2"):
            ui.label(handle).classes("text-h6").props("data-testid=resolved-handle")
            if product_record(values) is not None:
                ui.link("Product page", product_path(handle)).props("data-testid=product-link")
            rows = [asdict(describe(value)) for value in values]
            table = ui.table(columns=_VALUE_COLUMNS, rows=rows, row_key="index")
            table.classes("w-full").props("flat bordered dense data-testid=values")
            table.add_slot("body-cell-text", _LINK_CELL)
            if not rows:
                ui.label("The record holds no values you may read.")
        show_qr(handle)


NAV = NavItem("Identifiers", "qr_code_2", order=30)


@console_page("/identifiers", title="Identifiers", permission=Permission.PREFIX_READ, nav=NAV)
async def identifiers(console: Console) -> None:
    handles = HandleApi(console.api)
    with ui.card().classes("w-full").props("flat bordered"):
        ui.label("Resolve a handle").classes("text-subtitle1 text-weight-bold")
        with ui.row().classes("w-full items-center no-wrap"):
            box = ui.input("Handle", placeholder="88.101.5/SN-000123").classes("grow")
            box.props("clearable data-testid=lookup-input")
            go = ui.button("Resolve").props("data-testid=lookup-button")
        result = ui.column().classes("w-full").props("data-testid=lookup-result")

    async def lookup(text: str) -> None:
        result.clear()
        with result:
            try:
                handle = check_handle(text)
            except HandleSyntaxError as error:
                show_error(ConsoleError(400, "Not a valid handle", str(error)))
                return
            try:
                values = await handles.resolve(handle)
            except ConsoleError as error:
                if error.status == 401:
                    console.fail(error)
                    return
                show_error(error)
                return
            show_record(handle, values)

    go.on_click(lambda: lookup(box.value or ""))
    box.on("keydown.enter", lambda: lookup(box.value or ""))
    asked = ui.context.client.request.query_params.get("handle")
    if asked:
        box.set_value(asked)
        await lookup(asked)

    if console.can(Permission.HANDLE_ADMIN):
        await _manage(console, handles, lookup, box)


def _action(icon: str, label: str, then: Callable[[], Awaitable[None]]) -> None:
    """A row's icon button, named for screen readers (and tests) by what it does."""
    button = ui.button(icon=icon, on_click=then).props("flat round dense")
    button.props["aria-label"] = label
    if icon == "delete":
        button.props["color"] = "negative"


async def _manage(console: Console, handles: HandleApi, lookup: OnHandle, box: ui.input) -> None:
    """The handles under the tenant's prefixes, page by page, with create, edit and delete."""
    prefixes = [item["prefix"] for item in (await console.api.get("/api/v1/ids/prefixes"))["items"]]
    with ui.card().classes("w-full").props("flat bordered data-testid=manage"):
        ui.label("Your tenant's handles").classes("text-subtitle1 text-weight-bold")
        if not prefixes:
            ui.label("Your tenant has no identifier prefix yet; a platform admin homes one.")
            return
        state: dict[str, Any] = {"prefix": prefixes[0], "page": 0}
        with ui.row().classes("items-center"):
            chooser = ui.select(prefixes, value=prefixes[0], label="Prefix").classes(
                "min-w-[12rem]"
            )
            chooser.props("data-testid=prefix")
            ui.button("New handle", icon="add", on_click=lambda: editor(None)).props(
                "data-testid=new-handle"
            )
        listing = ui.column().classes("w-full")

    async def load() -> None:
        try:
            page = await handles.list_handles(state["prefix"], state["page"], PAGE_SIZE)
        except ConsoleError as error:
            listing.clear()
            if error.status == 401:
                console.fail(error)
                return
            with listing:
                show_error(error)
            return
        draw(page)

    def draw(page: HandlePage) -> None:
        listing.clear()
        with listing:
            first = state["page"] * PAGE_SIZE
            ui.label(
                f"{page.total} handle{'s' if page.total != 1 else ''} under {page.prefix}"
                + (f"; {first + 1} to {first + len(page.handles)} shown" if page.handles else "")
            ).classes("text-caption").props("data-testid=handle-count")
            with ui.list().props("bordered separator dense").classes("w-full"):
                for handle in page.handles:
                    with ui.item().props("data-testid=handle-row") as item:
                        item.props["data-handle"] = handle  # as a dict: any character is fine
                        with ui.item_section():
                            ui.item_label(handle)
                        with ui.item_section().props("side"), ui.row().classes("no-wrap"):
                            _action("search", f"Show {handle}", partial(show, handle))
                            _action("edit", f"Edit {handle}", partial(editor, handle))
                            _action("delete", f"Delete {handle}", partial(remove, handle))
            with ui.row():
                if state["page"] > 0:
                    ui.button("Previous", on_click=lambda: turn(-1)).props("flat")
                if first + len(page.handles) < page.total:
                    ui.button("Next", on_click=lambda: turn(1)).props("flat")

    async def turn(step: int) -> None:
        state["page"] = max(0, state["page"] + step)
        await load()

    async def choose(prefix: str) -> None:
        state["prefix"], state["page"] = prefix, 0
        await load()

    async def show(handle: str) -> None:
        box.set_value(handle)
        await lookup(handle)

    async def editor(handle: str | None) -> None:
        values: list[dict[str, Any]] = []
        if handle is not None:
            try:
                values = await handles.resolve(handle)
            except ConsoleError as error:
                console.fail(error)
                return
        await _edit_dialog(console, handles, handle, values, state["prefix"], after=saved)

    async def remove(handle: str) -> None:
        with ui.dialog() as dialog, ui.card().props("data-testid=confirm-delete"):
            ui.label(f"Delete {handle}?").classes("text-subtitle1 text-weight-bold")
            ui.label("Its record is gone for everyone who resolves it. This cannot be undone.")
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Delete", on_click=lambda: dialog.submit(True)).props("color=negative")
        answer = await dialog
        dialog.delete()  # answered: gone from the page
        if not answer:
            return
        try:
            await handles.delete(handle)
        except ConsoleError as error:
            console.fail(error)
            return
        ui.notify(f"Deleted {handle}", type="positive")
        await load()
        await shown_again(handle)

    async def shown_again(handle: str) -> None:
        """The record shown above, read again if it is this handle's."""
        if (box.value or "").strip() == handle:
            await lookup(handle)

    async def saved(handle: str) -> None:
        await load()
        await shown_again(handle)

    chooser.on_value_change(lambda event: choose(str(event.value)))
    await load()


async def _edit_dialog(
    console: Console,
    handles: HandleApi,
    handle: str | None,
    values: list[dict[str, Any]],
    prefix: str,
    *,
    after: OnHandle,
) -> None:
    """Create a handle (``handle`` None) or edit the text values of one; the values the
    console does not edit (HS_ADMIN, keys, binary data) are written back unchanged."""
    rows = editable_rows(values) if handle is not None else [EditRow(1, "URL", "")]
    kept = kept_values(values)
    with ui.dialog() as dialog, ui.card().classes("min-w-[44rem]").props("data-testid=editor"):
        ui.label(f"Edit {handle}" if handle else "New handle").classes("text-h6")
        name = None
        if handle is None:
            name = ui.input("Handle", value=f"{prefix}/").classes("w-full")
            name.props("data-testid=editor-handle autofocus")
        if kept:
            kinds = ", ".join(f"{v.get('type')} ({v.get('index')})" for v in kept)
            ui.label(f"Kept as they are: {kinds}").classes("text-caption")

        @ui.refreshable
        def table() -> None:
            for number, row in enumerate(rows):
                with ui.row().classes("w-full items-center no-wrap"):
                    ui.number("Index", min=1, format="%d").bind_value(
                        row, "index", forward=lambda v: int(v or 0)
                    ).classes("w-24").props(f"data-testid=row-index-{number}")
                    ui.input("Type").bind_value(row, "type").classes("w-40").props(
                        f"data-testid=row-type-{number}"
                    )
                    ui.input("Value").bind_value(row, "value").classes("grow").props(
                        f"data-testid=row-value-{number}"
                    )
                    ui.button(icon="close", on_click=lambda r=row: drop(r)).props(
                        f"flat round dense aria-label='Remove value {number + 1}'"
                    )

        def drop(row: EditRow) -> None:
            rows.remove(row)
            table.refresh()

        def add() -> None:
            taken = {row.index for row in rows} | {value_index(v) for v in kept}
            rows.append(EditRow(next(n for n in range(1, 10_000) if n not in taken), "", ""))
            table.refresh()

        table()
        problem = ui.label("").classes("text-negative").props("role=alert data-testid=editor-error")
        with ui.row().classes("justify-between w-full"):
            ui.button("Add value", icon="add", on_click=add).props("flat data-testid=add-row")
            with ui.row():
                ui.button("Cancel", on_click=dialog.close).props("flat")
                save = ui.button("Save").props("data-testid=save-handle")

    async def submit() -> None:
        target = handle
        try:
            if target is None:
                assert name is not None
                target = check_handle(name.value or "")
            written = written_values(rows, kept if handle is not None else [admin_value(target)])
        except (ValueError, HandleSyntaxError) as error:
            problem.set_text(str(error))
            return
        try:
            await handles.put(target, written, new=handle is None)
        except ConsoleError as error:
            if error.status == 401:
                dialog.close()
                console.fail(error)
                return
            problem.set_text(error.message)
            return
        dialog.close()
        ui.notify(f"Saved {target}", type="positive")
        await after(target)

    save.on_click(submit)
    dialog.on("hide", dialog.delete)  # closed: gone from the page, not hidden in it
    dialog.open()

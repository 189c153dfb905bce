"""Handle records in words, for the console: each value's data by its format (text, a link,
an HS_ADMIN's permissions by name, a site's servers, a key's kind, bytes by size), the record
of a product (the demo's traceability fields), the rows the console edits, and the QR code
of a handle's proxy URL. Pure functions over the Handle.net JSON shape (docs/identifiers.md)."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno

from plantwire.ids.handle_json import ValueFormatError, admin_permissions_from_json
from plantwire.ids.model import ADMIN_PERMISSION_ORDER
from plantwire.ids.names import HandleSyntaxError, parse_handle, prefix_record, url_path

__all__ = [
    "PRODUCT_FIELDS",
    "EditRow",
    "ProductRecord",
    "ValueView",
    "admin_value",
    "check_handle",
    "describe",
    "editable_rows",
    "kept_values",
    "product_record",
    "proxy_url",
    "qr_svg",
    "value_index",
    "written_values",
]

#: The value types of a product's record (``demo/traceability.FIELDS``), in their order.
PRODUCT_FIELDS = (
    "PRODUCT_TYPE",
    "LINE",
    "MACHINE",
    "PRODUCTION_START",
    "PRODUCTION_END",
    "QUALITY",
)
ADMIN_INDEX = 100  # where the console puts the HS_ADMIN of a handle it creates
ADMIN_GROUP_INDEX = 200  # the prefix's admin group (HS_VLIST) in 0.NA/<prefix>
ALL_BUT_LIST = "011111110011"  # what demo/traceability and `plantwire ids create` grant it


def check_handle(text: str) -> str:
    """The handle ``text`` names (trimmed), or HandleSyntaxError saying what is wrong: checked
    before anything is asked of the node."""
    handle = text.strip()
    if not handle:
        raise HandleSyntaxError("Enter a handle, such as 88.101.5/SN-000123.")
    parse_handle(handle)
    return handle


def value_index(value: dict[str, Any]) -> int:
    """A value's index; 0 for one without a usable index (never a node's answer)."""
    index = value.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


@dataclass(frozen=True, slots=True)
class ValueView:
    """One value as the page shows it."""

    index: int
    type: str
    format: str
    text: str  # the data, in words
    link: str | None  # a URL to open, for URL values
    ttl: str
    timestamp: str


def _permission_names(raw: Any) -> str:
    try:
        granted = admin_permissions_from_json(raw)
    except ValueFormatError:
        return f"unreadable permissions {raw!r}"
    names = [str(flag.name).lower().replace("_", " ") for flag in ADMIN_PERMISSION_ORDER]
    held = [
        name for flag, name in zip(ADMIN_PERMISSION_ORDER, names, strict=True) if flag in granted
    ]
    if len(held) == len(names):
        return "all permissions"
    return ", ".join(reversed(held)) or "no permissions"


def _site_text(site: dict[str, Any]) -> str:
    servers = []
    listed = site.get("servers")
    for server in listed if isinstance(listed, list) else []:
        if not isinstance(server, dict):
            continue
        interfaces = server.get("interfaces")
        ports = ", ".join(
            f"{interface.get('protocol')} {interface.get('port')}"
            for interface in (interfaces if isinstance(interfaces, list) else [])
            if isinstance(interface, dict)
        )
        servers.append(
            f"{server.get('address')} ({ports})" if ports else str(server.get("address"))
        )
    kind = "primary site" if site.get("primarySite", True) else "mirror site"
    count = len(servers)
    return f"{kind}, {count} server{'s' if count != 1 else ''}: " + "; ".join(servers)


def _bytes_text(fmt: str, raw: Any) -> str:
    try:
        data = (
            base64.b64decode(str(raw), validate=True)
            if fmt == "base64"
            else bytes.fromhex(str(raw))
        )
    except (binascii.Error, ValueError):
        return f"{fmt} data that does not decode"
    shown = data[:32].hex(" ")
    return f"{len(data)} bytes: {shown}{' …' if len(data) > 32 else ''}"


def _data_text(data: Any) -> tuple[str, str]:
    """(format, the data in words)."""
    if not isinstance(data, dict):
        return "string", str(data)
    fmt = str(data.get("format", "string")).lower()
    raw = data.get("value")
    if fmt == "string":
        return fmt, str(raw)
    if fmt == "admin" and isinstance(raw, dict):
        who = f"{raw.get('index')}:{raw.get('handle')}"
        return fmt, f"{who} may: {_permission_names(raw.get('permissions'))}"
    if fmt == "vlist" and isinstance(raw, list):
        members = [
            f"{ref.get('index')}:{ref.get('handle')}" for ref in raw if isinstance(ref, dict)
        ]
        return fmt, f"group of {len(members)}: " + ", ".join(members)
    if fmt == "site" and isinstance(raw, dict):
        return fmt, _site_text(raw)
    if fmt == "key" and isinstance(raw, dict):
        return fmt, f"{raw.get('kty', 'unknown')} public key"
    if fmt in ("base64", "hex"):
        return fmt, _bytes_text(fmt, raw)
    return fmt, str(raw)


def _ttl_text(ttl: Any) -> str:
    if isinstance(ttl, int):
        return f"{ttl} s"
    return f"until {ttl}" if ttl is not None else ""


def describe(value: dict[str, Any]) -> ValueView:
    """A value of the Handle.net JSON shape, in words."""
    value_type = str(value.get("type", ""))
    fmt, text = _data_text(value.get("data"))
    is_url = value_type.upper() == "URL" or value_type.upper().startswith("URL.")
    link = text if is_url and fmt == "string" and text.startswith(("http://", "https://")) else None
    return ValueView(
        index=value_index(value),
        type=value_type,
        format=fmt,
        text=text,
        link=link,
        ttl=_ttl_text(value.get("ttl")),
        timestamp=str(value.get("timestamp") or ""),
    )


def _string_of(value: dict[str, Any]) -> str | None:
    data = value.get("data")
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and str(data.get("format", "string")).lower() == "string":
        return str(data.get("value"))
    return None


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """What a product's handle says about the unit (the demo's traceability record)."""

    fields: dict[str, str]  # type → text, of PRODUCT_FIELDS present
    start: datetime | None
    end: datetime | None

    @property
    def machine(self) -> str | None:
        return self.fields.get("MACHINE")


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def product_record(values: list[dict[str, Any]]) -> ProductRecord | None:
    """The unit's record, if the values look like a product's (a production start or end)."""
    fields = {}
    for value in sorted(values, key=value_index):
        kind = str(value.get("type", "")).upper()
        text = _string_of(value)
        if kind in PRODUCT_FIELDS and text is not None and kind not in fields:
            fields[kind] = text
    if "PRODUCTION_START" not in fields and "PRODUCTION_END" not in fields:
        return None
    return ProductRecord(
        fields, _moment(fields.get("PRODUCTION_START")), _moment(fields.get("PRODUCTION_END"))
    )


@dataclass(slots=True)
class EditRow:
    """A string value the console edits: its index, type and text."""

    index: int
    type: str
    value: str


def editable_rows(values: list[dict[str, Any]]) -> list[EditRow]:
    """The record's string values (text, URLs), in index order."""
    rows = []
    for value in sorted(values, key=value_index):
        text = _string_of(value)
        if text is not None and not str(value.get("type", "")).upper().startswith("HS_"):
            rows.append(EditRow(value_index(value), str(value.get("type", "")), text))
    return rows


def kept_values(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The values the console does not edit (HS_ADMIN, keys, sites, binary data), kept as they
    are when the record is written back."""
    edited = {row.index for row in editable_rows(values)}
    return [value for value in values if value_index(value) not in edited]


def admin_value(handle: str) -> dict[str, Any]:
    """The HS_ADMIN a new handle gets: its prefix's admin group may administer it (as
    ``plantwire ids create`` and the demo's registrar do)."""
    prefix = parse_handle(handle).prefix
    admin = {
        "handle": str(prefix_record(prefix)),
        "index": ADMIN_GROUP_INDEX,
        "permissions": ALL_BUT_LIST,
    }
    return {"index": ADMIN_INDEX, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}}


def written_values(rows: list[EditRow], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record to write: the edited rows (blank rows dropped) and the kept values. Raises
    ValueError saying which row is wrong (no type; an index taken twice)."""
    taken = {value_index(value) for value in kept}
    out = list(kept)
    for number, row in enumerate(rows, start=1):
        if not row.type.strip() and not row.value.strip():
            continue
        if not row.type.strip():
            raise ValueError(f"Row {number}: give the value a type, such as URL.")
        if row.index < 1:
            raise ValueError(f"Row {number}: the index must be a positive number.")
        if row.index in taken:
            raise ValueError(f"Row {number}: index {row.index} is taken by another value.")
        taken.add(row.index)
        data = {"format": "string", "value": row.value}
        out.append({"index": row.index, "type": row.type.strip(), "data": data})
    return out


def proxy_url(base_url: str, handle: str) -> str:
    """The handle's address at the platform's proxy, which redirects to its URL value."""
    return f"{base_url.rstrip('/')}/hdl/{url_path(handle)}"


def qr_svg(url: str) -> str:
    """A QR code of ``url`` as an inline SVG element (no XML declaration), scaled by CSS."""
    code = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", xmldecl=False, svgns=True, scale=4, title=url)
    return out.getvalue().decode()

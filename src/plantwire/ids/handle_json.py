"""The Handle.net REST JSON form of handle values (HANDLE.NET 9's ``GsonUtility``), both ways.

Output follows what HANDLE.NET writes, so its clients read it unchanged: keys in the order
index, type, data, [permissions], ttl, timestamp, [references]; ``data.format`` decided by the
value's type (``admin``, ``vlist``, ``site``, ``key``; else ``string`` for text and ``base64``
for binary); default permissions (``"1110"``) and empty references omitted; relative TTLs as
integers, absolute ones as ISO 8601 strings; timestamps to the second, in UTC.

Input takes what real clients send: an array of values, ``{"values": [...]}`` or one value;
``data`` as ``{format, value}`` or a bare string (pyhandle); formats named in any case; an
admin ``index`` as a string of digits (pyhandle). Anything else is a ``ValueFormatError`` with
a message naming the value and field, never another exception."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from plantwire.ids.model import (
    ADMIN_PERMISSION_ORDER,
    DEFAULT_TTL,
    HS_ADMIN,
    HS_PUBKEY,
    HS_SITE,
    HS_VLIST,
    MAX_INDEX,
    AdminPermission,
    AdminRef,
    HandleValue,
    PublicKey,
    SiteInfo,
    SiteInterface,
    SiteServer,
    ValueData,
    ValuePermissions,
    ValueRef,
    type_matches,
)

__all__ = [
    "MAX_DATA_BYTES",
    "IndexConflictError",
    "ValueFormatError",
    "admin_permissions_from_json",
    "admin_permissions_to_json",
    "format_timestamp",
    "parse_values",
    "value_from_json",
    "value_to_json",
]

MAX_DATA_BYTES = 64 * 1024
_MAX_TYPE_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_DIGITS = re.compile(r"[0-9]{1,12}")
_JWK_MEMBERS = {"RSA": ("n", "e"), "DSA": ("y", "p", "q", "g")}
_PROTOCOLS = ("UDP", "TCP", "HTTP", "HTTPS")


class ValueFormatError(ValueError):
    """A value (or the request body) is not valid Handle JSON; Handle responseCode 202."""


class IndexConflictError(ValueFormatError):
    """Two values of one request share an index; Handle responseCode 201."""


# --- small readers ------------------------------------------------------------------------


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise ValueFormatError(f"{where} must be a JSON object.")
    return raw


def _int(raw: Any, where: str, low: int = 0, high: int = MAX_INDEX) -> int:
    if isinstance(raw, str) and _DIGITS.fullmatch(raw):
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ValueFormatError(f"{where} must be an integer from {low} to {high}.")
    return raw


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ValueFormatError(f"{where} must be true or false.")
    return raw


def _text(raw: Any, where: str, max_bytes: int = MAX_DATA_BYTES) -> str:
    if not isinstance(raw, str):
        raise ValueFormatError(f"{where} must be a string.")
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise ValueFormatError(f"{where} is not valid Unicode.") from error
    if size > max_bytes:
        raise ValueFormatError(f"{where} is longer than {max_bytes} bytes.")
    return raw


def _handle_text(raw: Any, where: str) -> str:
    text = _text(raw, where, 1024)
    if not text or "/" not in text or _CONTROL.search(text):
        raise ValueFormatError(f"{where} must be a handle ('prefix/suffix').")
    return text


def _ref(raw: Any, where: str) -> ValueRef:
    obj = _object(raw, where)
    return ValueRef(
        _handle_text(obj.get("handle"), f"{where}.handle"),
        _int(obj.get("index"), f"{where}.index"),
    )


# --- timestamps and TTLs --------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, as HANDLE.NET writes it: ``2026-11-22T03:15:00Z``."""
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def _datetime(raw: Any, where: str) -> datetime:
    text = _text(raw, where, 64)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise ValueFormatError(f"{where} must be an ISO 8601 date and time.") from error


def _ttl(raw: Any, where: str) -> int | datetime:
    if raw is None:
        return DEFAULT_TTL
    if isinstance(raw, str) and not _DIGITS.fullmatch(raw):
        return _datetime(raw, where)  # an absolute expiry
    return _int(raw, where, 0, MAX_INDEX)


# --- permissions ----------------------------------------------------------------------------


def admin_permissions_to_json(permissions: AdminPermission) -> str:
    return "".join("1" if flag in permissions else "0" for flag in ADMIN_PERMISSION_ORDER)


def admin_permissions_from_json(raw: Any, where: str = "permissions") -> AdminPermission:
    """A 12-character bit string (as HANDLE.NET writes it), ``"*"`` or ``true`` for all,
    ``false`` for none. Shorter strings fill from the right, as HANDLE.NET reads them."""
    if raw is True or raw == "*":
        return AdminPermission.all()
    if raw is False or raw is None:
        return AdminPermission(0)
    if not isinstance(raw, str) or not raw or len(raw) > 12 or set(raw) - {"0", "1"}:
        raise ValueFormatError(f"{where} must be a string of up to twelve 0s and 1s.")
    permissions = AdminPermission(0)
    for flag, bit in zip(ADMIN_PERMISSION_ORDER[12 - len(raw) :], raw, strict=True):
        if bit == "1":
            permissions |= flag
    return permissions


def _value_permissions_to_json(permissions: ValuePermissions) -> str:
    flags = (
        permissions.admin_read,
        permissions.admin_write,
        permissions.public_read,
        permissions.public_write,
    )
    return "".join("1" if flag else "0" for flag in flags)


def _value_permissions(raw: Any, where: str) -> ValuePermissions:
    if raw is None:
        return ValuePermissions()
    if raw == "*":
        return ValuePermissions(True, True, True, True)
    if not isinstance(raw, str) or len(raw) != 4 or set(raw) - {"0", "1"}:
        raise ValueFormatError(
            f"{where} must be four 0s and 1s (admin read/write, public read/write)."
        )
    return ValuePermissions(*(bit == "1" for bit in raw))


# --- data -------------------------------------------------------------------------------------


def _looks_binary(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return bool(re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text))


def _key_from_json(raw: Any, where: str) -> PublicKey:
    obj = _object(raw, where)
    kty = obj.get("kty")
    if not isinstance(kty, str) or kty.upper() not in _JWK_MEMBERS:
        raise ValueFormatError(f"{where}.kty must be 'RSA' or 'DSA'.")
    members = {}
    for name in _JWK_MEMBERS[kty.upper()]:
        member = obj.get(name)
        if not isinstance(member, str) or len(member) > 4096 or not _B64URL.fullmatch(member):
            raise ValueFormatError(f"{where}.{name} must be a base64url integer.")
        members[name] = member
    return PublicKey(kty.upper(), members)


def _key_to_json(key: PublicKey) -> dict[str, str]:
    return {"kty": key.kty, **key.members}


def _list(raw: Any, where: str, most: int) -> list[Any]:
    if not isinstance(raw, list) or len(raw) > most:
        raise ValueFormatError(f"{where} must be a list of at most {most} entries.")
    return raw


def _interface_from_json(raw: Any, where: str) -> SiteInterface:
    interface = _object(raw, where)
    protocol = interface.get("protocol")
    if isinstance(protocol, str) and protocol.upper() in _PROTOCOLS:
        protocol = protocol.upper()
    else:
        protocol = _int(protocol, f"{where}.protocol", 0, 255)
    return SiteInterface(
        query=_bool(interface.get("query", True), f"{where}.query"),
        admin=_bool(interface.get("admin", False), f"{where}.admin"),
        protocol=protocol,
        port=_int(interface.get("port"), f"{where}.port", 0, 65535),
    )


def _server_from_json(raw: Any, where: str, number: int) -> SiteServer:
    server = _object(raw, where)
    key_raw = server.get("publicKey")
    public_key: PublicKey | bytes | None = None
    if key_raw is not None:
        key_obj = _object(key_raw, f"{where}.publicKey")
        if str(key_obj.get("format", "")).lower() == "key":
            public_key = _key_from_json(key_obj.get("value"), f"{where}.publicKey.value")
        else:
            public_key = _bytes_data("base64", key_obj.get("value"), f"{where}.publicKey")
    interfaces_at = f"{where}.interfaces"
    interfaces = _list(server.get("interfaces", server.get("interfaceList", [])), interfaces_at, 16)
    return SiteServer(
        server_id=_int(server.get("serverId", number + 1), f"{where}.serverId"),
        address=_text(server.get("address"), f"{where}.address", 255),
        public_key=public_key,
        interfaces=tuple(
            _interface_from_json(item, f"{interfaces_at}[{n}]") for n, item in enumerate(interfaces)
        ),
    )


def _site_from_json(raw: Any, where: str) -> SiteInfo:
    obj = _object(raw, where)
    servers = _list(obj.get("servers", obj.get("serverList", [])), f"{where}.servers", 64)
    attributes_raw = obj.get("attributes", [])
    if isinstance(attributes_raw, dict):
        attributes_raw = [{"name": k, "value": v} for k, v in attributes_raw.items()]
    attributes = []
    for number, item in enumerate(_list(attributes_raw, f"{where}.attributes", 64)):
        at = f"{where}.attributes[{number}]"
        attribute = _object(item, at)
        attributes.append(
            (
                _text(attribute.get("name"), f"{at}.name", 1024),
                _text(attribute.get("value"), f"{at}.value", 8192),
            )
        )
    protocol_version = obj.get("protocolVersion", "2.10")
    if not isinstance(protocol_version, str) or not re.fullmatch(
        r"\d{1,3}\.\d{1,3}", protocol_version
    ):
        raise ValueFormatError(f"{where}.protocolVersion must be 'major.minor'.")
    hash_option, hash_filter = obj.get("hashOption"), obj.get("hashFilter")
    return SiteInfo(
        version=_int(obj.get("version", 1), f"{where}.version", 0, 65535),
        protocol_version=protocol_version,
        serial_number=_int(obj.get("serialNumber", 1), f"{where}.serialNumber", 0, 65535),
        primary_site=_bool(obj.get("primarySite", True), f"{where}.primarySite"),
        multi_primary=_bool(obj.get("multiPrimary", False), f"{where}.multiPrimary"),
        servers=tuple(
            _server_from_json(item, f"{where}.servers[{n}]", n) for n, item in enumerate(servers)
        ),
        attributes=tuple(attributes),
        hash_option=None
        if hash_option is None
        else _int(hash_option, f"{where}.hashOption", 0, 255),
        hash_filter=None if hash_filter is None else _text(hash_filter, f"{where}.hashFilter", 255),
    )


def _site_to_json(site: SiteInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": site.version,
        "protocolVersion": site.protocol_version,
        "serialNumber": site.serial_number,
        "primarySite": site.primary_site,
        "multiPrimary": site.multi_primary,
    }
    if site.hash_option is not None:
        out["hashOption"] = site.hash_option
    if site.hash_filter:
        out["hashFilter"] = site.hash_filter
    out["attributes"] = [{"name": name, "value": value} for name, value in site.attributes]
    servers = []
    for server in site.servers:
        entry: dict[str, Any] = {"serverId": server.server_id, "address": server.address}
        if isinstance(server.public_key, PublicKey):
            entry["publicKey"] = {"format": "key", "value": _key_to_json(server.public_key)}
        elif isinstance(server.public_key, bytes):
            encoded = base64.b64encode(server.public_key).decode()
            entry["publicKey"] = {"format": "base64", "value": encoded}
        entry["interfaces"] = [
            {"query": i.query, "admin": i.admin, "protocol": i.protocol, "port": i.port}
            for i in server.interfaces
        ]
        servers.append(entry)
    out["servers"] = servers
    return out


def _bytes_data(fmt: str, raw: Any, where: str) -> bytes:
    text = _text(raw, f"{where}.value", MAX_DATA_BYTES * 2)
    try:
        if fmt == "string":
            data = text.encode("utf-8")
        elif fmt == "base64":
            data = base64.b64decode(text, validate=True)
        else:  # hex
            data = bytes.fromhex(text)
    except (binascii.Error, ValueError) as error:
        raise ValueFormatError(f"{where}.value is not valid {fmt}.") from error
    if len(data) > MAX_DATA_BYTES:
        raise ValueFormatError(f"{where}.value is longer than {MAX_DATA_BYTES} bytes.")
    return data


_STRUCTURED = {HS_ADMIN: "admin", HS_VLIST: "vlist", HS_SITE: "site", HS_PUBKEY: "key"}


def _structured_format(value_type: str) -> str | None:
    """The typed format a value of this type must use (HS_SITE.PREFIX is a site too)."""
    for reserved, fmt in _STRUCTURED.items():
        if type_matches(value_type, reserved) or type_matches(value_type, reserved + "."):
            return fmt
    return None


def _data_from_json(value_type: str, raw: Any, where: str) -> ValueData:
    if isinstance(raw, str):  # a bare string, as pyhandle sends it
        raw = {"format": "string", "value": raw}
    obj = _object(raw, where)
    fmt_raw = obj.get("format", "string")
    if not isinstance(fmt_raw, str):
        raise ValueFormatError(f"{where}.format must be a string.")
    fmt = fmt_raw.lower()
    required = _structured_format(value_type)
    if required is not None and fmt != required:
        raise ValueFormatError(f"A {value_type} value needs data of format '{required}'.")
    value = obj.get("value")
    if fmt in ("string", "base64", "hex"):
        return _bytes_data(fmt, value, where)
    if fmt == "admin":
        admin = _object(value, f"{where}.value")
        return AdminRef(
            handle=_handle_text(admin.get("handle"), f"{where}.value.handle"),
            index=_int(admin.get("index"), f"{where}.value.index"),
            permissions=admin_permissions_from_json(
                admin.get("permissions"), f"{where}.value.permissions"
            ),
        )
    if fmt == "vlist":
        refs = _list(value, f"{where}.value", 1000)
        return tuple(_ref(item, f"{where}.value[{n}]") for n, item in enumerate(refs))
    if fmt == "site":
        return _site_from_json(value, f"{where}.value")
    if fmt == "key":
        return _key_from_json(value, f"{where}.value")
    raise ValueFormatError(f"{where}.format '{fmt_raw}' is unknown.")


def _data_to_json(value: HandleValue) -> dict[str, Any]:
    data = value.data
    if isinstance(data, AdminRef):
        admin = {
            "handle": data.handle,
            "index": data.index,
            "permissions": admin_permissions_to_json(data.permissions),
        }
        return {"format": "admin", "value": admin}
    if isinstance(data, tuple):
        refs = [{"handle": ref.handle, "index": ref.index} for ref in data]
        return {"format": "vlist", "value": refs}
    if isinstance(data, SiteInfo):
        return {"format": "site", "value": _site_to_json(data)}
    if isinstance(data, PublicKey):
        return {"format": "key", "value": _key_to_json(data)}
    if _looks_binary(data):
        return {"format": "base64", "value": base64.b64encode(data).decode()}
    return {"format": "string", "value": data.decode("utf-8")}


# --- values -------------------------------------------------------------------------------


def value_from_json(raw: Any, where: str = "value") -> HandleValue:
    obj = _object(raw, where)
    value_type = _text(obj.get("type"), f"{where}.type", _MAX_TYPE_BYTES)
    if not value_type or _CONTROL.search(value_type):
        raise ValueFormatError(f"{where}.type must be a non-empty name without control characters.")
    if "data" not in obj:
        raise ValueFormatError(f"{where} has no 'data'.")
    references_raw = _list(obj.get("references", []), f"{where}.references", 100)
    timestamp_raw = obj.get("timestamp")
    return HandleValue(
        index=_int(obj.get("index"), f"{where}.index", 1, MAX_INDEX),
        type=value_type,
        data=_data_from_json(value_type, obj["data"], f"{where}.data"),
        ttl=_ttl(obj.get("ttl"), f"{where}.ttl"),
        timestamp=None if timestamp_raw is None else _datetime(timestamp_raw, f"{where}.timestamp"),
        permissions=_value_permissions(obj.get("permissions"), f"{where}.permissions"),
        references=tuple(
            _ref(item, f"{where}.references[{n}]") for n, item in enumerate(references_raw)
        ),
    )


def value_to_json(value: HandleValue) -> dict[str, Any]:
    out: dict[str, Any] = {"index": value.index, "type": value.type, "data": _data_to_json(value)}
    if not value.permissions.is_default:
        out["permissions"] = _value_permissions_to_json(value.permissions)
    out["ttl"] = value.ttl if isinstance(value.ttl, int) else format_timestamp(value.ttl)
    if value.timestamp is not None:
        out["timestamp"] = format_timestamp(value.timestamp)
    if value.references:
        out["references"] = [{"handle": r.handle, "index": r.index} for r in value.references]
    return out


def parse_values(body: Any, max_values: int = 1000) -> list[HandleValue]:
    """The values of a PUT body: an array, ``{"values": [...]}`` or one value object.
    Indexes must be unique within the body."""
    if isinstance(body, dict) and "values" in body:
        items = body["values"]
    elif isinstance(body, dict):
        items = [body]
    else:
        items = body
    if not isinstance(items, list):
        raise ValueFormatError('The body must be a list of values or {"values": [...]}.')
    if len(items) > max_values:
        raise ValueFormatError(f"A record may have at most {max_values} values.")
    values = [value_from_json(item, f"values[{n}]") for n, item in enumerate(items)]
    seen: set[int] = set()
    for value in values:
        if value.index in seen:
            raise IndexConflictError(f"Index conflict for {value.index}.")
        seen.add(value.index)
    return values

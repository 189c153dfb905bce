"""Handle records as typed values (RFC 3651 §3, HANDLE.NET 9 JSON). No I/O, no serialisation:
the Handle.net JSON codec lives in ``handle_json.py``, the binary protocol codec later in
``wire/``.

A handle's record is a set of values, each with a unique positive ``index``, a ``type`` (UTF-8,
matched ASCII-case-insensitively; ``URL``, ``HS_ADMIN``…), ``data``, a TTL, a timestamp, four
permission flags and optional references to other values. Data is raw bytes for ordinary types
and a typed object for the types the Handle System itself interprets."""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from plantwire.ids.names import match_key

__all__ = [
    "ADMIN_PERMISSION_ORDER",
    "DEFAULT_TTL",
    "EMAIL",
    "HS_ADMIN",
    "HS_ALIAS",
    "HS_PUBKEY",
    "HS_SECKEY",
    "HS_SERV",
    "HS_SITE",
    "HS_SITE_PREFIX",
    "HS_VLIST",
    "LOC_10320",
    "MAX_INDEX",
    "URL",
    "AdminPermission",
    "AdminRef",
    "HandleValue",
    "PublicKey",
    "SiteInfo",
    "SiteInterface",
    "SiteServer",
    "ValueData",
    "ValuePermissions",
    "ValueRef",
    "type_matches",
]

# Types the Handle System defines (RFC 3651 §3.2) and the ones plantwire gives meaning to.
HS_ADMIN = "HS_ADMIN"
HS_SITE = "HS_SITE"
HS_SITE_PREFIX = "HS_SITE.PREFIX"  # the site that holds every prefix derived from this one
HS_VLIST = "HS_VLIST"
HS_PUBKEY = "HS_PUBKEY"
HS_SECKEY = "HS_SECKEY"
HS_SERV = "HS_SERV"
HS_ALIAS = "HS_ALIAS"
URL = "URL"
EMAIL = "EMAIL"
LOC_10320 = "10320/loc"

DEFAULT_TTL = 86400  # seconds, relative: the Handle System's default
MAX_INDEX = 2**31 - 1  # indexes are positive 32-bit integers; 0 is reserved


@functools.lru_cache(maxsize=4096)  # a node sees few distinct types; every check asks
def type_matches(value_type: str, wanted: str) -> bool:
    """Whether ``value_type`` is ``wanted`` or, when ``wanted`` ends with '.', one of its
    subtypes (``URL.`` matches ``URL.mobile``); ASCII letters compare without case."""
    have, want = match_key(value_type), match_key(wanted)
    if want.endswith("."):
        return have == want[:-1] or have.startswith(want)
    return have == want


class AdminPermission(enum.IntFlag):
    """The twelve HS_ADMIN permission bits, with their values in the Handle protocol (the
    mask HANDLE.NET encodes; JSON writes it as a 12-character string, highest bit first)."""

    ADD_HANDLE = 0x001
    DELETE_HANDLE = 0x002
    ADD_DERIVED_PREFIX = 0x004
    DELETE_DERIVED_PREFIX = 0x008
    MODIFY_VALUE = 0x010
    REMOVE_VALUE = 0x020
    ADD_VALUE = 0x040
    MODIFY_ADMIN = 0x080
    REMOVE_ADMIN = 0x100
    ADD_ADMIN = 0x200
    READ_VALUE = 0x400
    LIST_HANDLES = 0x800

    @classmethod
    def all(cls) -> AdminPermission:
        return cls(0xFFF)


#: Left to right, the flags a JSON permission string spells (``"011111111111"``: all but
#: list_handles).
ADMIN_PERMISSION_ORDER: tuple[AdminPermission, ...] = tuple(
    AdminPermission(1 << bit) for bit in range(11, -1, -1)
)


@dataclass(frozen=True, slots=True)
class ValuePermissions:
    """Who may read and write one value. Default: admins read and write, the public reads."""

    admin_read: bool = True
    admin_write: bool = True
    public_read: bool = True
    public_write: bool = False

    @property
    def is_default(self) -> bool:
        return self == _DEFAULT_PERMISSIONS


_DEFAULT_PERMISSIONS = ValuePermissions()


@dataclass(frozen=True, slots=True)
class ValueRef:
    """A reference to one value of a handle: ``index:handle`` (an HS_VLIST entry, a value's
    reference, an identity)."""

    handle: str
    index: int

    def __str__(self) -> str:
        return f"{self.index}:{self.handle}"


@dataclass(frozen=True, slots=True)
class AdminRef:
    """HS_ADMIN data: the identity (or group, through an HS_VLIST) ``index:handle`` and what
    it may do to this handle."""

    handle: str
    index: int
    permissions: AdminPermission

    @property
    def identity(self) -> ValueRef:
        return ValueRef(self.handle, self.index)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """HS_PUBKEY data as a JSON Web Key: ``kty`` RSA (members n, e) or DSA (y, p, q, g),
    each a base64url big-endian unsigned integer without padding."""

    kty: str
    members: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SiteInterface:
    query: bool
    admin: bool
    protocol: str | int  # "UDP", "TCP", "HTTP", "HTTPS", or a protocol number
    port: int


@dataclass(frozen=True, slots=True)
class SiteServer:
    server_id: int
    address: str
    public_key: PublicKey | bytes | None
    interfaces: tuple[SiteInterface, ...]


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """HS_SITE / HS_SITE.PREFIX data: a service site and the servers it is made of."""

    version: int
    protocol_version: str  # "major.minor"
    serial_number: int
    primary_site: bool
    multi_primary: bool
    servers: tuple[SiteServer, ...]
    attributes: tuple[tuple[str, str], ...] = ()
    hash_option: int | None = None
    hash_filter: str | None = None


#: What a value's data can be: raw bytes (text or binary) or one of the typed forms.
ValueData = bytes | AdminRef | tuple[ValueRef, ...] | SiteInfo | PublicKey


@dataclass(frozen=True, slots=True)
class HandleValue:
    """One value of a handle record. ``ttl`` is seconds (relative: how long resolvers may
    cache it) or a datetime (absolute: when cached copies expire). ``timestamp`` is when the
    value was last written; the node that stores it sets it."""

    index: int
    type: str
    data: ValueData
    ttl: int | datetime = DEFAULT_TTL
    timestamp: datetime | None = None
    permissions: ValuePermissions = field(default_factory=ValuePermissions)
    references: tuple[ValueRef, ...] = ()

    def has_type(self, wanted: str) -> bool:
        return type_matches(self.type, wanted)

    @property
    def is_public(self) -> bool:
        return self.permissions.public_read

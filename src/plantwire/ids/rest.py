"""An identifier node's HTTP interface: the Handle.net v9 REST API and the handle proxy.

Raw ASGI, not FastAPI routes: resolution is the hot path of an identifier node, so a request
goes from the socket to one indexed read (or one cache hit) and back as pre-serialised bytes,
with no validation layer between. Every answer uses the Handle.net JSON shape and HTTP status
mapping (``codes.http_status``), never problem+json, as Handle clients expect.

Paths (HANDLE.NET 9's servlet map):
- ``GET|HEAD /api/handles/{handle}`` resolve (``index=``, ``type=``, ``auth``, ``publicOnly``,
  ``pretty``); a handle with no ``/`` names a prefix record (``88.101`` is ``0.NA/88.101``).
- ``PUT /api/handles/{handle}`` create or replace (``overwrite``, default true), or with
  ``index=N…``/``index=various`` add or modify values; ``mintNewSuffix=true`` appends a UUID.
- ``DELETE /api/handles/{handle}`` the handle, or with ``index=`` some of its values.
- ``GET /api/handles?prefix=P&page=&pageSize=`` list (needs LIST_HANDLES on ``0.NA/P``).
- ``GET /api/prefixes`` the homed prefixes the caller may list.
- ``POST /api/sessions``, ``GET|PUT|POST|DELETE /api/sessions/this`` challenge sessions.
- ``POST /api/verifications`` {"id", "secret"}: whether a secret key held here is right,
  for nodes that authenticate an identity whose record lives here.
- ``GET /hdl/{handle}`` (and ``/{handle}`` on a standalone node) the proxy, as hdl.handle.net.

Who is responsible for what (``locate``): a node serves the handles of the prefixes it homes;
the record ``0.NA/P`` of a prefix lives on the node of its parent prefix (the root, homing
``0.NA``, holds the top-level records), or anywhere it is stored. Asked about anything else, a
node refers the client to the site that is responsible (responseCode 303 with the HS_SITE or
HS_SITE.PREFIX values of the delegating record) or, knowing nothing, answers 301; a recursive
node instead resolves it through its ``Resolver``."""

from __future__ import annotations

import functools
import html
import ipaddress
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

import anyio.from_thread
import anyio.to_thread
import structlog
from starlette.types import Receive, Scope, Send

from plantwire.ids import authority
from plantwire.ids.authority import Operation
from plantwire.ids.codes import HandleError, ResponseCode, http_status
from plantwire.ids.handle_auth import (
    Authenticator,
    AuthHeaderError,
    BasicCredentials,
    BearerCredentials,
    ChallengeSession,
    HandleCredentials,
    SecretKeys,
    SessionTable,
    parse_authorization,
    parse_identity,
)
from plantwire.ids.handle_json import (
    IndexConflictError,
    ValueFormatError,
    parse_values,
)
from plantwire.ids.model import (
    HS_ADMIN,
    HS_SECKEY,
    HS_SITE,
    HS_SITE_PREFIX,
    MAX_INDEX,
    URL,
    AdminPermission,
    HandleValue,
    ValueRef,
    type_matches,
)
from plantwire.ids.names import (
    DEFAULT_MAX_HANDLE_BYTES,
    PREFIX_AUTHORITY,
    Handle,
    HandleSyntaxError,
    match_key,
    parse_handle,
    parse_prefix,
    prefix_chain,
    prefix_record,
    unquote_handle,
)
from plantwire.ids.openapi import handle_api_document
from plantwire.ids.store import BatchingWriter, HandleStore, StoredValue

if TYPE_CHECKING:
    from plantwire.ids.resolver import Resolution, Resolver

__all__ = [
    "HANDLES_PATH",
    "AuditHook",
    "Caller",
    "HandleNode",
    "PlatformAuth",
    "PlatformGrant",
    "is_loopback_host",
]

HANDLES_PATH = "/api/handles/"
_HANDLES_PATH_BYTES = HANDLES_PATH.encode()
_VALUES_HEAD = b'{"responseCode":1,"handle":'
_DECODE_MEMO = 10_000  # decoded records kept (HandleValues are immutable)
_PARSED_CACHE = 100_000  # parsed request paths and cached bodies kept (then forgotten at once)
PROXY_PATH = "/hdl/"
MAX_BODY = 1024 * 1024
_TRUE = {"", "true", "yes"}  # how HANDLE.NET reads a boolean query parameter
_AUTHORITY_KEY = match_key(PREFIX_AUTHORITY)
_CORS = [
    (b"access-control-allow-origin", b"*"),
]
_PREFLIGHT = [
    *_CORS,
    (b"access-control-allow-methods", b"GET, POST, HEAD, PUT, DELETE"),
    (
        b"access-control-allow-headers",
        b"X-Requested-With, Authorization, Origin, Accept, Content-Type",
    ),
    (b"access-control-max-age", b"86400"),
]
_log = structlog.get_logger("plantwire.ids")
_stdlib_log = logging.getLogger("plantwire.ids")

#: Records a write (or a refused one): caller, action, handle, outcome, source address.
AuditHook = Callable[[str, str, str, str, str | None], None]


@dataclass(frozen=True, slots=True)
class PlatformGrant:
    """A platform user (inside the platform) and the prefixes (match keys) it administers."""

    user: str
    tenant_id: str | None
    prefixes: frozenset[str]


#: Turns a platform bearer token into its holder's grant (None: the token is not valid).
PlatformAuth = Callable[[str], PlatformGrant | None]


def _flag(params: list[tuple[str, str]], name: str) -> bool:
    return any(key == name and value.lower() in _TRUE for key, value in params)


def _has(params: list[tuple[str, str]], name: str) -> bool:
    return any(key == name for key, _ in params)


def _parent(prefix: str) -> str | None:
    head, dot, _ = prefix.rpartition(".")
    return head if dot else None


@functools.lru_cache(maxsize=1024)  # asked per request, of the same few peers
def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a peer or listen address) is this machine."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _body(code: ResponseCode, message: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"responseCode": int(code)}
    out.update(extra)
    if message is not None:
        out["message"] = message
    return out


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: an identity proven by Handle authentication, or a platform
    user (by token) administering ``prefixes`` (match keys)."""

    identity: ValueRef | None = None
    prefixes: frozenset[str] = frozenset()
    platform_user: str | None = None

    @property
    def name(self) -> str:
        if self.identity is not None:
            return str(self.identity)
        return self.platform_user or "anonymous"


@dataclass(frozen=True, slots=True)
class _Local:
    """This node answers for the handle from its own store."""


@dataclass(frozen=True, slots=True)
class _Refer:
    record: str
    values: tuple[StoredValue, ...]


@dataclass(frozen=True, slots=True)
class _Unknown:
    """Authoritatively unknown (a prefix nobody registered here) or nobody's here (301)."""

    code: ResponseCode
    message: str


_LOCAL = _Local()


class _NeedsThread(Exception):
    """Deciding this write needs work that must not run on the event loop."""


class _WriteLater(Exception):
    """A create decided on the event loop, to be written by the batching writer."""

    def __init__(
        self,
        caller: Caller,
        handle: Handle,
        values: list[HandleValue],
        overwrite: bool,
        *,
        unread: bool = False,
    ) -> None:
        super().__init__(str(handle))
        self.caller = caller
        self.handle = handle
        self.values = values
        self.overwrite = overwrite
        # Decided as a create without reading the handle: if it exists after all, the
        # request is decided again in a worker thread (see HandleNode._create).
        self.unread = unread


class _Answer(Exception):
    """Ends a request with this Handle response (raised inside the synchronous parts)."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = list(headers)


@dataclass(slots=True)
class _Request:
    scope: Scope
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[bytes, bytes]
    pretty: bool
    secure: bool
    client: str | None
    body: bytes = b""
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


class HandleNode:
    """The ASGI app of one identifier node. ``store`` holds the handles of the homed
    prefixes; ``resolver`` (when given) reads records held elsewhere, and with
    ``recursive`` resolves any handle for clients. ``is_root`` marks a node started without
    upstream roots: it holds the records of the prefixes it homes itself."""

    def __init__(
        self,
        store: HandleStore,
        secret_keys: SecretKeys,
        *,
        resolver: Resolver | None = None,
        recursive: bool = False,
        is_root: bool = True,
        max_handle_bytes: int = DEFAULT_MAX_HANDLE_BYTES,
        audit: AuditHook | None = None,
        platform_auth: PlatformAuth | None = None,
        proxy_at_root: bool = False,
        sessions: SessionTable | None = None,
        homed_refresh_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.recursive = recursive and resolver is not None
        self.is_root = is_root
        self.max_handle_bytes = max_handle_bytes
        self.audit = audit
        self.platform_auth = platform_auth
        self.proxy_at_root = proxy_at_root
        self.sessions = sessions or SessionTable()
        self.authenticator = Authenticator(
            secret_keys, self._read_record, self._held_here, self._verify_elsewhere
        )
        self._homed_refresh = homed_refresh_seconds
        self._homed: frozenset[str] = frozenset()
        self._homed_at = float("-inf")
        self._homed_lock = threading.Lock()
        self._batcher = BatchingWriter(store)
        self._inline = threading.local()  # set while a write is decided on the event loop
        self._parsed: dict[str, tuple[Handle, str, bytes]] = {}
        self._decode_memo: dict[tuple[str, ...], list[HandleValue]] = {}
        self._bodies: dict[str, tuple[tuple[StoredValue, ...], bytes, bytes]] = {}

    # --- what lives here --------------------------------------------------------------

    def homed_keys(self) -> frozenset[str]:
        """Match keys of the homed prefixes, re-read from the store every few seconds (other
        servers of the same site may home prefixes too)."""
        now = time.monotonic()
        if now - self._homed_at > self._homed_refresh:
            with self._homed_lock:
                if now - self._homed_at > self._homed_refresh:
                    self._homed = frozenset(match_key(p.prefix) for p in self.store.homed())
                    self._homed_at = now
        return self._homed

    def refresh_homed(self) -> None:
        self._homed_at = float("-inf")

    def _homes(self, prefix: str) -> bool:
        return match_key(prefix) in self.homed_keys()

    def locate(self, handle: Handle) -> _Local | _Refer | _Unknown:
        """Whether this node answers for ``handle``, refers elsewhere, or knows it is
        unknown. Reads only local prefix records."""
        if not handle.is_prefix_record:
            if self._homes(handle.prefix):
                return _LOCAL
            target, for_derived = handle.prefix, False
        else:
            described = handle.suffix
            parent = _parent(described)
            if parent is None:
                if self._homes(PREFIX_AUTHORITY) or self.store.get(handle) is not None:
                    return _LOCAL
                return _Unknown(
                    ResponseCode.SERVER_NOT_RESPONSIBLE, "That prefix doesn't live here"
                )
            if self._homes(parent) or self.store.get(handle) is not None:
                return _LOCAL
            target, for_derived = parent, True
        chain = prefix_chain(target)
        for prefix in reversed(chain):
            exact = prefix == target and not for_derived
            if not exact and self._homes(prefix):
                # The records of the prefixes under one homed here are here, and no record
                # on the way from it to the target was: the target is not registered.
                return _Unknown(
                    ResponseCode.HANDLE_NOT_FOUND, f"Prefix {target} is not registered."
                )
            stored = self.store.get(prefix_record(prefix))
            if stored is None:
                continue
            delegation = [v for v in stored if v.type_key == match_key(HS_SITE_PREFIX)]
            sites = [v for v in stored if v.type_key == match_key(HS_SITE)]
            chosen = sites if exact or not delegation else delegation
            if not chosen:
                return _Unknown(
                    ResponseCode.SERVER_NOT_RESPONSIBLE,
                    f"The record of prefix {prefix} names no site.",
                )
            return _Refer(str(prefix_record(prefix)), tuple(chosen))
        if self._homes(PREFIX_AUTHORITY):
            return _Unknown(ResponseCode.HANDLE_NOT_FOUND, f"Prefix {chain[0]} is not registered.")
        return _Unknown(ResponseCode.SERVER_NOT_RESPONSIBLE, "That prefix doesn't live here")

    def _held_here(self, handle_text: str) -> bool:
        try:
            handle = parse_handle(handle_text, self.max_handle_bytes)
        except HandleSyntaxError:
            return False
        return isinstance(self.locate(handle), _Local)

    # --- reading records (worker threads) ---------------------------------------------

    def _read_record(self, handle_text: str) -> list[HandleValue] | None:
        """A record's values wherever it lives: here, or through the resolver (its public
        values). Runs in a worker thread."""
        handle = parse_handle(handle_text, self.max_handle_bytes)
        if isinstance(self.locate(handle), _Local):
            stored = self.store.get(handle)
            return None if stored is None else self._decoded(stored)
        if self.resolver is None:
            return None
        if self._inline_now():
            raise _NeedsThread
        resolution = anyio.from_thread.run(self.resolver.resolve, handle)
        return self._record_of(resolution)

    @staticmethod
    def _record_of(resolution: Resolution) -> list[HandleValue] | None:
        if resolution.code in (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND):
            return [value.decode() for value in resolution.values]
        if resolution.code is ResponseCode.HANDLE_NOT_FOUND:
            return None
        raise _Answer(
            502,
            _body(
                ResponseCode.ERROR,
                f"Could not read {resolution.handle}: {resolution.message or resolution.code}",
            ),
        )

    def _verify_elsewhere(self, identity: ValueRef, secret: str) -> bool:
        if self.resolver is None:
            return False
        handle = parse_handle(identity.handle, self.max_handle_bytes)
        return bool(
            anyio.from_thread.run(self.resolver.verify_secret, handle, identity.index, secret)
        )

    def _value_reader(
        self, known: dict[str, list[HandleValue] | None] | None = None
    ) -> Callable[[ValueRef], HandleValue | None]:
        """Reads values by reference, each record once; ``known`` records (by match key) are
        not read again."""
        records: dict[str, list[HandleValue] | None] = dict(known or {})

        def read(ref: ValueRef) -> HandleValue | None:
            key = match_key(ref.handle)
            if key not in records:
                try:
                    records[key] = self._read_record(ref.handle)
                except HandleSyntaxError:
                    records[key] = None
            for value in records[key] or ():
                if value.index == ref.index:
                    return value
            return None

        return read

    # --- ASGI -------------------------------------------------------------------------

    def _fast(self, raw_path: bytes) -> tuple[int, bytes] | None:
        """The answer to a plain resolution (GET, no query, no credentials) of a handle this
        node serves from its SQLite store, or that a recursive node has cached, as bytes put
        together from stored fragments; None sends the request down the general path."""
        text = raw_path[len(HANDLES_PATH) :].decode("latin-1")
        parsed = self._parsed.get(text)
        if parsed is None:
            if not text or ("/" not in text and "%2f" not in text.lower()):
                return None
            try:
                handle = unquote_handle(text, self.max_handle_bytes)
            except HandleSyntaxError:
                return None
            echoed = json.dumps(str(handle), ensure_ascii=False).encode()
            parsed = (handle, match_key(handle.prefix), echoed)
            if len(self._parsed) >= _PARSED_CACHE:
                self._parsed.clear()
            self._parsed[text] = parsed
        handle, prefix_key, echoed = parsed
        if not handle.is_prefix_record and prefix_key in self.homed_keys():
            if not self.store.reads_inline:
                return None
            fragments = self.store.public_json(handle.key)
            if fragments is None:
                return 404, b'{"responseCode":100,"handle":' + echoed + b"}"
            if not fragments:
                return None
            return 200, _with_values(_VALUES_HEAD + echoed, fragments)
        if self.recursive and self.resolver is not None:
            resolution = self.resolver.cached(handle)
            if resolution is None or resolution.code is not ResponseCode.SUCCESS:
                return None
            memo = self._bodies.get(handle.key)
            if memo is not None and memo[0] is resolution.values and memo[1] == echoed:
                return 200, memo[2]
            public = [value.json for value in resolution.values if value.public_read]
            if not public:
                return None
            body = _with_values(_VALUES_HEAD + echoed, public)
            if len(self._bodies) >= _PARSED_CACHE:
                self._bodies.clear()
            self._bodies[handle.key] = (resolution.values, echoed, body)
            return 200, body
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("query_string")
            and (raw := scope.get("raw_path") or b"").startswith(_HANDLES_PATH_BYTES)
            and not any(name.lower() == b"authorization" for name, _ in scope["headers"])
        ):
            answer = self._fast(raw)
            if answer is not None:
                status, payload = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json;charset=utf-8"),
                            (b"content-length", str(len(payload)).encode()),
                            *_CORS,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": payload})
                return
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").partition("?")[0]
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        client = scope.get("client")
        host = client[0] if client else None
        request = _Request(
            scope=scope,
            method=scope["method"],
            path=path,
            params=params,
            headers={name.lower(): value for name, value in scope.get("headers", [])},
            pretty=_flag(params, "pretty"),
            secure=scope.get("scheme") == "https" or is_loopback_host(host),
            client=host,
        )
        try:
            status, body = await self._dispatch(request, receive)
        except _Answer as answer:
            status, body = answer.status, answer.body
            request.extra_headers.extend(answer.headers)
        if isinstance(body, _Raw):
            await _send(
                send,
                status,
                body.content,
                body.content_type,
                request.extra_headers,
                head=request.method == "HEAD",
            )
            return
        await self._answer(send, status, body, request)

    async def _dispatch(
        self, request: _Request, receive: Receive
    ) -> tuple[int, dict[str, Any] | bytes | _Raw]:
        path, method = request.path, request.method
        if method == "OPTIONS":
            return 204, _Raw(b"", "text/plain", preflight=True)
        if path.startswith(HANDLES_PATH) and len(path) > len(HANDLES_PATH):
            raw = path[len(HANDLES_PATH) :]
            if method in ("GET", "HEAD"):
                return await self.resolve(raw, request)
            if method == "PUT":
                request.body = await _read_body(receive)
                if self.store.reads_inline:
                    # Decided here, on the loop (local reads take microseconds, and a worker
                    # thread would wait for the GIL after each); anything slower goes on.
                    self._inline.active = True
                    try:
                        return self._put(raw, request)
                    except _WriteLater as later:
                        self._inline.active = False
                        return await self._finish_create(later, raw, request)
                    except _NeedsThread:
                        pass
                    finally:
                        self._inline.active = False
                return await self._in_thread(self._put, raw, request)
            if method == "DELETE":
                return await self._in_thread(self._delete, raw, request)
            return self._not_allowed(request, "GET, HEAD, PUT, DELETE")
        if path in ("/api/handles", HANDLES_PATH):
            if method not in ("GET", "HEAD"):
                return self._not_allowed(request, "GET, HEAD")
            if not _has(request.params, "prefix"):
                return 400, _body(ResponseCode.INVALID_HANDLE, "Empty handle invalid")
            return await self._in_thread(self._list, request)
        if path in ("/api/prefixes", "/api/prefixes/"):
            if method not in ("GET", "HEAD"):
                return self._not_allowed(request, "GET, HEAD")
            return await self._in_thread(self._prefixes, request)
        if path in ("/api/sessions", "/api/sessions/", "/api/sessions/this"):
            request.body = await _read_body(receive)
            return await self._in_thread(self._session, request)
        if path in ("/api/verifications", "/api/verifications/"):
            if method != "POST":
                return self._not_allowed(request, "POST")
            request.body = await _read_body(receive)
            return await self._in_thread(self._verification, request)
        if path == "/api/openapi.json" and self.proxy_at_root and method in ("GET", "HEAD"):
            return 200, handle_api_document()  # a standalone node describes itself
        if path.startswith(PROXY_PATH):
            return await self._proxy(path[len(PROXY_PATH) :], request)
        if self.proxy_at_root and not path.startswith("/api/") and len(path) > 1:
            return await self._proxy(path[1:], request)
        message = f"Unknown HTTP API endpoint {method} {request.scope['path']}"
        return 404, _body(ResponseCode.PROTOCOL_ERROR, message)

    @staticmethod
    def _not_allowed(request: _Request, allow: str) -> tuple[int, dict[str, Any]]:
        request.extra_headers.append((b"allow", allow.encode()))
        message = f"Method {request.method} is not allowed on {request.scope['path']}"
        return 405, _body(ResponseCode.PROTOCOL_ERROR, message)

    async def _in_thread(
        self, work: Callable[..., tuple[int, dict[str, Any] | bytes]], *args: Any
    ) -> tuple[int, dict[str, Any] | bytes]:
        try:
            return await anyio.to_thread.run_sync(work, *args)
        except _Answer as answer:
            request = args[-1]
            assert isinstance(request, _Request)
            request.extra_headers.extend(answer.headers)
            return answer.status, answer.body

    # --- resolution -------------------------------------------------------------------

    def _parse(self, raw: str) -> Handle:
        if "/" not in raw and "%2f" not in raw.lower():
            raw = f"{PREFIX_AUTHORITY}/{raw}"
        try:
            return unquote_handle(raw, self.max_handle_bytes)
        except HandleSyntaxError as error:
            raise _Answer(400, _body(ResponseCode.INVALID_HANDLE, str(error))) from error

    async def resolve(self, raw: str, request: _Request) -> tuple[int, dict[str, Any] | bytes]:
        """The status and body answering a resolution of ``raw`` (the percent-encoded handle
        from the URL); the body is bytes when it is assembled from stored fragments."""
        if not raw:
            return 400, _body(ResponseCode.INVALID_HANDLE, "Empty handle invalid")
        handle = self._parse(raw)
        params = request.params
        if request.headers.get(b"authorization") is not None and not _flag(params, "publicOnly"):
            return await self._in_thread(self._resolve_authenticated, handle, request)
        if self.recursive and not handle.is_prefix_record and not self._homes(handle.prefix):
            where: _Local | _Refer | _Unknown | None = None  # the resolver's, not ours
        elif self.store.reads_inline:
            where = self.locate(handle)
        else:
            where = await anyio.to_thread.run_sync(self.locate, handle)
        if isinstance(where, _Local):
            if self.store.reads_inline:
                stored = self.store.get(handle)
            else:
                stored = await anyio.to_thread.run_sync(self.store.get, handle)
            return self._answer_values(str(handle), stored, params, public_only=True)
        if self.recursive:
            assert self.resolver is not None
            resolution = None if _flag(params, "auth") else self.resolver.cached(handle)
            if resolution is None:
                resolution = await self.resolver.resolve(handle, bypass_cache=_flag(params, "auth"))
            return self._answer_resolution(str(handle), resolution, params)
        assert where is not None
        return self._answer_elsewhere(str(handle), where)

    def _resolve_authenticated(
        self, handle: Handle, request: _Request
    ) -> tuple[int, dict[str, Any] | bytes]:
        """A resolution with credentials: an admin holding READ_VALUE sees every value."""
        where = self.locate(handle)
        if not isinstance(where, _Local):
            if self.recursive and self.resolver is not None:
                # Held elsewhere: what anyone may read, through the resolver.
                resolution = anyio.from_thread.run(
                    functools.partial(
                        self.resolver.resolve, handle, bypass_cache=_flag(request.params, "auth")
                    )
                )
                return self._answer_resolution(str(handle), resolution, request.params)
            return self._answer_elsewhere(str(handle), where)
        caller = self._authenticate(request, required=True)
        stored = self.store.get(handle)
        if stored is None:
            return self._answer_values(str(handle), None, request.params, public_only=True)
        record = self._decoded(stored)
        may_read = self._permitted(caller, handle, AdminPermission.READ_VALUE, record)
        return self._answer_values(str(handle), stored, request.params, public_only=not may_read)

    def _answer_elsewhere(
        self, echoed: str, where: _Refer | _Unknown | _Local
    ) -> tuple[int, dict[str, Any] | bytes]:
        if isinstance(where, _Refer):
            code = ResponseCode.PREFIX_REFERRAL
            head = _head({"responseCode": int(code), "handle": echoed, "referral": where.record})
            return http_status(code), _with_values(head, (value.json for value in where.values))
        assert isinstance(where, _Unknown)
        return http_status(where.code), _body(where.code, where.message, handle=echoed)

    def _answer_values(
        self,
        echoed: str,
        stored: Sequence[StoredValue] | None,
        params: list[tuple[str, str]],
        *,
        public_only: bool,
    ) -> tuple[int, dict[str, Any] | bytes]:
        if stored is None:
            code = ResponseCode.HANDLE_NOT_FOUND
            return http_status(code), {"responseCode": int(code), "handle": echoed}
        chosen = _select(stored, params, public_only)
        if not chosen:
            code = ResponseCode.VALUES_NOT_FOUND
            return http_status(code, resolution=True), {
                "responseCode": int(code),
                "handle": echoed,
                "values": [],
            }
        head = _head({"responseCode": 1, "handle": echoed})
        return 200, _with_values(head, (value.json for value in chosen))

    def _answer_resolution(
        self, echoed: str, resolution: Resolution, params: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any] | bytes]:
        if resolution.code in (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND):
            return self._answer_values(echoed, resolution.values, params, public_only=True)
        body = _body(resolution.code, resolution.message, handle=echoed)
        return resolution.http_status, body

    # --- authentication ---------------------------------------------------------------

    def _challenge_headers(
        self, request: _Request, error: str | None = None
    ) -> list[tuple[bytes, bytes]]:
        session = self.sessions.create()
        challenge = f'Handle sessionId="{session.id}", nonce="{session.nonce_b64}"'
        if error:
            challenge += f', error="{error.replace(chr(34), chr(39))}"'
        headers = []
        authorization = request.header(b"authorization") or ""
        ajax = (request.header(b"x-requested-with") or "").lower() == "xmlhttprequest"
        if authorization.lower().startswith("basic") or (not authorization and not ajax):
            headers.append((b"www-authenticate", b'Basic realm="handle"'))
        headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
        return headers

    def _needs_auth(self, request: _Request, message: str) -> _Answer:
        return _Answer(
            401,
            _body(ResponseCode.AUTHENTICATION_NEEDED, message),
            self._challenge_headers(request),
        )

    def _failed_auth(self, request: _Request, message: str) -> _Answer:
        return _Answer(
            401,
            _body(ResponseCode.AUTHENTICATION_FAILED, message),
            self._challenge_headers(request, message),
        )

    def _authenticate(self, request: _Request, *, required: bool) -> Caller:
        """The caller a request's credentials prove (worker thread). Credentials sent in
        clear from anywhere but loopback are refused, as Handle servers ignore them."""
        header = request.header(b"authorization")
        if header is None:
            if required:
                raise self._needs_auth(request, "Authentication needed")
            return Caller()
        try:
            credentials = parse_authorization(header)
        except AuthHeaderError as error:
            raise self._failed_auth(request, str(error)) from error
        if credentials is None:
            raise self._needs_auth(request, "Authentication needed")
        if not request.secure and not isinstance(credentials, BearerCredentials):
            # Platform tokens follow the platform's own transport policy; Handle
            # credentials in clear are ignored, as Handle servers ignore them.
            raise self._needs_auth(
                request, "Credentials are accepted only over HTTPS (or from this host)."
            )
        if self._inline_now() and not isinstance(credentials, HandleCredentials):
            raise _NeedsThread  # argon2, a remote verification or a database read
        if isinstance(credentials, BasicCredentials):
            identity = self.authenticator.check_secret(credentials.identity, credentials.secret)
            if identity is None:
                raise self._failed_auth(
                    request, "Authentication failed: wrong identity or secret key."
                )
            return Caller(identity=identity)
        if isinstance(credentials, BearerCredentials):
            grant = self.platform_auth(credentials.token) if self.platform_auth else None
            if grant is None:
                raise self._failed_auth(request, "The token is not valid here.")
            return Caller(prefixes=grant.prefixes, platform_user=grant.user)
        return self._session_caller(request, credentials)

    def _session_caller(self, request: _Request, credentials: HandleCredentials) -> Caller:
        session_id = credentials.session_id
        session = self.sessions.get(session_id) if session_id else None
        if session is None:
            raise self._failed_auth(request, "Unknown or expired session.")
        if credentials.authenticating:
            if self._inline_now():
                raise _NeedsThread  # before the nonce is spent
            self._prove(request, session, credentials)
        if session.identity is None:
            raise self._needs_auth(request, "The session is not authenticated.")
        return Caller(identity=session.identity)

    def _prove(
        self, request: _Request, session: ChallengeSession, credentials: HandleCredentials
    ) -> ValueRef:
        nonce = self.sessions.take_nonce(session)  # one attempt per nonce: no replays
        try:
            identity = parse_identity(credentials.fields.get("id", ""))
            proven = self.authenticator.check_signature(identity, nonce, credentials)
        except AuthHeaderError as error:
            raise self._failed_auth(request, str(error)) from error
        if proven is None:
            self.sessions.authenticated(session, None)
            raise self._failed_auth(
                request, "Authentication failed: the signature does not verify."
            )
        self.sessions.authenticated(session, proven)
        return proven

    def _permitted(
        self,
        caller: Caller,
        handle: Handle,
        needed: AdminPermission,
        admin_record: Sequence[HandleValue] | None,
        *,
        record_of: Handle | None = None,
    ) -> bool:
        """Whether ``caller`` holds ``needed`` through ``admin_record`` (the governing
        record's values; ``record_of`` names that record, so that it is not read again) or as
        a platform user administering the handle's prefix."""
        if caller.platform_user is not None:
            if not handle.is_prefix_record:
                return match_key(handle.prefix) in caller.prefixes
            # A prefix's own record is its owner's; a record under an owned prefix may be
            # made only for a prefix that is not homed here (for another tenant).
            described = match_key(handle.suffix)
            if described in caller.prefixes:
                return True
            parent = _parent(handle.suffix)
            return (
                parent is not None
                and match_key(parent) in caller.prefixes
                and described not in self.homed_keys()
            )
        if caller.identity is None or not admin_record:
            return False
        admins = [value for value in admin_record if value.has_type(HS_ADMIN)]
        known: dict[str, list[HandleValue] | None] = {}
        if record_of is not None:
            known[record_of.key] = list(admin_record)
        return authority.holds(caller.identity, needed, admins, self._value_reader(known))

    def _governing(
        self, operation: Operation, handle: Handle
    ) -> tuple[Handle, list[HandleValue] | None]:
        """The record deciding ``operation`` on ``handle``, and its values."""
        record = authority.governing_record(operation, handle)
        return record, self._read_record(str(record))

    # --- writes -----------------------------------------------------------------------

    def _writable(self, handle: Handle) -> None:
        where = self.locate(handle)
        if not isinstance(where, _Local):
            code = ResponseCode.SERVER_NOT_RESPONSIBLE
            raise _Answer(
                http_status(code), _body(code, "That prefix doesn't live here", handle=str(handle))
            )

    def _deny(self, caller: Caller, action: str, handle: Handle, request: _Request) -> _Answer:
        self._audit(caller, action, str(handle), "denied", request)
        code = ResponseCode.INVALID_ADMIN
        message = f"{caller.name} may not {action.split('.')[-1].replace('_', ' ')} {handle}."
        return _Answer(http_status(code), _body(code, message, handle=str(handle)))

    def _audit(
        self, caller: Caller, action: str, target: str, outcome: str, request: _Request
    ) -> None:
        if self.audit is not None and self._inline_now():
            raise _NeedsThread
        if _stdlib_log.isEnabledFor(logging.INFO):  # skips structlog's work when info is off
            _log.info(
                "handle write", actor=caller.name, action=action, handle=target, outcome=outcome
            )
        if self.audit is not None:
            self.audit(caller.name, action, target, outcome, request.client)

    def _put(self, raw: str, request: _Request) -> tuple[int, dict[str, Any]]:
        content_type = (request.header(b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            message = f"Unsupported media type {content_type or '(none)'}: send application/json."
            return 400, _body(ResponseCode.PROTOCOL_ERROR, message)
        mint = _flag(request.params, "mintNewSuffix")
        if mint:
            raw = raw + str(uuid.uuid4())
        handle = self._parse(raw)
        try:
            document = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return 400, _body(
                ResponseCode.PROTOCOL_ERROR, "The body is not JSON.", handle=str(handle)
            )
        if isinstance(document, dict) and "handle" in document:
            named = document["handle"]
            if not isinstance(named, str) or match_key(named) != handle.key:
                return 400, _body(
                    ResponseCode.PROTOCOL_ERROR,
                    "Mismatched handle in PUT request",
                    handle=str(handle),
                )
        try:
            values = parse_values(document)
        except IndexConflictError as error:
            code = ResponseCode.VALUE_ALREADY_EXISTS
            return http_status(code), _body(code, str(error), handle=str(handle))
        except ValueFormatError as error:
            code = ResponseCode.INVALID_VALUE
            return http_status(code), _body(code, str(error), handle=str(handle))
        self._writable(handle)
        caller = self._authenticate(request, required=True)
        overwrite = not any(k == "overwrite" and v.lower() not in _TRUE for k, v in request.params)
        index_params = [v for k, v in request.params if k == "index"]
        if self._inline_now() and (
            index_params or any(value.has_type(HS_SECKEY) for value in values)
        ):
            raise _NeedsThread  # a store write of its own, or argon2
        kept: frozenset[bytes] = frozenset()
        if any(value.has_type(HS_SECKEY) for value in values):
            stored = self.store.get(handle) or []
            kept = frozenset(
                v.data
                for v in self._decoded(stored)
                if v.has_type(HS_SECKEY) and isinstance(v.data, bytes)
            )
        values = [self._prepare(value, kept) for value in values]
        if not index_params:
            return self._create(caller, handle, values, overwrite, request)
        if index_params != ["various"]:
            try:
                wanted = {int(v) for v in index_params}
            except ValueError:
                return 400, _body(
                    ResponseCode.PROTOCOL_ERROR, "index must be a number or 'various'."
                )
            if wanted != {value.index for value in values}:
                return 400, _body(ResponseCode.PROTOCOL_ERROR, "Mismatched indexes in PUT request")
        if not values:
            return 400, _body(ResponseCode.INVALID_VALUE, "No values to add.", handle=str(handle))
        return self._add(caller, handle, values, overwrite, request)

    def _prepare(self, value: HandleValue, kept_hashes: frozenset[bytes]) -> HandleValue:
        """Secret keys are stored hashed and never publicly readable. A hash sent back
        unchanged (a record rewritten as read) is kept; any other value is a secret and is
        hashed here, with this node's parameters: a client-made hash could ask argon2 for
        gigabytes on every later login."""
        if not value.has_type(HS_SECKEY) or not isinstance(value.data, bytes):
            return value
        data = value.data
        if data not in kept_hashes:
            data = self.authenticator.secret_keys.hash(data)
        permissions = replace(value.permissions, public_read=False)
        return replace(value, data=data, permissions=permissions)

    def _create(
        self,
        caller: Caller,
        handle: Handle,
        values: list[HandleValue],
        overwrite: bool,
        request: _Request,
    ) -> tuple[int, dict[str, Any]]:
        echoed = str(handle)
        operation = Operation.CREATE_HANDLE
        if handle.is_prefix_record and _parent(handle.suffix) is not None:
            operation = Operation.CREATE_DERIVED_PREFIX
        if self._inline_now():
            # On the event loop, a caller who may create the handle has it written as new
            # without reading it first: the batch refuses it if it exists, and the request
            # is then decided again in a worker thread (replacing needs the handle's own
            # HS_ADMIN). Anyone else is decided there too: refusals are not the hot path.
            record_of, admin_record = self._governing(operation, handle)
            if self._permitted(caller, handle, operation.value, admin_record, record_of=record_of):
                raise _WriteLater(caller, handle, values, overwrite=False, unread=overwrite)
            raise _NeedsThread
        stored = self.store.get(handle)
        if stored is None:
            needed = operation.value
            record_of, admin_record = self._governing(operation, handle)
        else:
            if not overwrite:
                code = ResponseCode.HANDLE_ALREADY_EXISTS
                return http_status(code), _body(
                    code, f"Handle {handle} already exists.", handle=echoed
                )
            existing = self._decoded(stored)
            kept = {value.index for value in values}
            needed = authority.needed_for_values(existing, values) | authority.needed_for_removal(
                existing, [value.index for value in existing if value.index not in kept]
            )
            needed = needed or AdminPermission.MODIFY_VALUE
            record_of, admin_record = handle, existing
        if not self._permitted(caller, handle, needed, admin_record, record_of=record_of):
            raise self._deny(
                caller, "handle.create" if stored is None else "handle.replace", handle, request
            )
        # Permission was checked for what exists now: a create decided on "no such handle"
        # must not replace one made meanwhile (that would need the handle's own HS_ADMIN).
        overwrite = overwrite and stored is not None
        try:
            created = anyio.from_thread.run(
                functools.partial(self._batcher.create, handle, values, overwrite=overwrite)
            )
        except HandleError as error:
            return http_status(error.code), _body(error.code, error.message, handle=echoed)
        self._audit(
            caller, "handle.create" if created else "handle.replace", echoed, "success", request
        )
        return _written(echoed, created=created)

    async def _finish_create(
        self, later: _WriteLater, raw: str, request: _Request
    ) -> tuple[int, dict[str, Any] | bytes]:
        """The write of a create decided on the event loop: joins the next batch."""
        echoed = str(later.handle)
        try:
            created = await self._batcher.create(
                later.handle, later.values, overwrite=later.overwrite
            )
        except HandleError as error:
            if later.unread and error.code is ResponseCode.HANDLE_ALREADY_EXISTS:
                return await self._in_thread(self._put, raw, request)  # a replace, then
            return http_status(error.code), _body(error.code, error.message, handle=echoed)
        action = "handle.create" if created else "handle.replace"
        if self.audit is None:
            self._audit(later.caller, action, echoed, "success", request)
        else:  # the platform's audit log is a database write
            await anyio.to_thread.run_sync(
                self._audit, later.caller, action, echoed, "success", request
            )
        return _written(echoed, created=created)

    def _decoded(self, stored: Sequence[StoredValue]) -> list[HandleValue]:
        """Stored values decoded, memoised by their JSON: the records every write consults
        (its prefix's record, the admin group) are decoded once, not per request."""
        key = tuple(value.json for value in stored)
        found = self._decode_memo.get(key)
        if found is None:
            found = [value.decode() for value in stored]
            if len(self._decode_memo) >= _DECODE_MEMO:
                self._decode_memo.clear()
            self._decode_memo[key] = found
        return list(found)

    def _inline_now(self) -> bool:
        return bool(getattr(self._inline, "active", False))

    def _add(
        self,
        caller: Caller,
        handle: Handle,
        values: list[HandleValue],
        overwrite: bool,
        request: _Request,
    ) -> tuple[int, dict[str, Any]]:
        echoed = str(handle)
        stored = self.store.get(handle)
        if stored is None:
            code = ResponseCode.HANDLE_NOT_FOUND
            return http_status(code), _body(code, f"Handle {handle} not found.", handle=echoed)
        existing = self._decoded(stored)
        if not self._permitted(
            caller, handle, authority.needed_for_values(existing, values), existing
        ):
            raise self._deny(caller, "handle.add_values", handle, request)
        try:
            untouched = self.store.add_values(handle, values, overwrite=overwrite)
        except HandleError as error:
            return http_status(error.code), _body(error.code, error.message, handle=echoed)
        self._audit(caller, "handle.add_values", echoed, "success", request)
        return _written(echoed, created=untouched)

    def _delete(self, raw: str, request: _Request) -> tuple[int, dict[str, Any]]:
        handle = self._parse(raw)
        echoed = str(handle)
        self._writable(handle)
        caller = self._authenticate(request, required=True)
        index_params = [v for k, v in request.params if k == "index"]
        stored = self.store.get(handle)
        if stored is None:
            code = ResponseCode.HANDLE_NOT_FOUND
            return http_status(code), _body(code, f"Handle {handle} not found.", handle=echoed)
        existing = self._decoded(stored)
        try:
            if index_params:
                try:
                    indexes = {int(v) for v in index_params}
                    if not all(1 <= i <= MAX_INDEX for i in indexes):
                        raise ValueError
                except ValueError:
                    return 400, _body(
                        ResponseCode.PROTOCOL_ERROR, "index must be a number.", handle=echoed
                    )
                needed = authority.needed_for_removal(existing, indexes)
                if not self._permitted(caller, handle, needed, existing):
                    raise self._deny(caller, "handle.remove_values", handle, request)
                self.store.remove_values(handle, indexes)
                action = "handle.remove_values"
            else:
                if handle.is_prefix_record and _parent(handle.suffix) is not None:
                    operation = Operation.DELETE_DERIVED_PREFIX
                    record_of, admin_record = self._governing(operation, handle)
                else:
                    operation, admin_record = Operation.DELETE_HANDLE, existing
                    record_of = handle
                if not self._permitted(
                    caller, handle, operation.value, admin_record, record_of=record_of
                ):
                    raise self._deny(caller, "handle.delete", handle, request)
                self.store.delete(handle)
                action = "handle.delete"
        except HandleError as error:
            return http_status(error.code), _body(error.code, error.message, handle=echoed)
        self._audit(caller, action, echoed, "success", request)
        return 200, _body(ResponseCode.SUCCESS, handle=echoed)

    # --- listing ----------------------------------------------------------------------

    def _list(self, request: _Request) -> tuple[int, dict[str, Any]]:
        given = next(v for k, v in request.params if k == "prefix")
        text = given.partition("/")[2] if "/" in given else given
        try:
            prefix = parse_prefix(text)
        except HandleSyntaxError as error:
            return 400, _body(ResponseCode.INVALID_HANDLE, str(error))
        record = prefix_record(prefix)
        if not self._homes(prefix):
            code = ResponseCode.SERVER_NOT_RESPONSIBLE
            return http_status(code), _body(code, "That prefix doesn't live here")
        page, page_size = _paging(request.params)
        caller = self._authenticate(request, required=True)
        admin_record = self._read_record(str(record))
        if not self._permitted(caller, record, AdminPermission.LIST_HANDLES, admin_record):
            raise self._deny(caller, "handle.list", record, request)
        total = self.store.count_handles(prefix)
        out: dict[str, Any] = {"responseCode": 1, "prefix": given, "totalCount": str(total)}
        if page >= 0 and page_size >= 0:
            out["page"], out["pageSize"] = page, page_size
            handles = (
                self.store.list_handles(prefix, page * page_size, page_size) if page_size else []
            )
        else:
            handles = self.store.list_handles(prefix, 0, None)
        out["handles"] = handles
        return 200, out

    def _prefixes(self, request: _Request) -> tuple[int, dict[str, Any]]:
        caller = self._authenticate(request, required=True)
        page, page_size = _paging(request.params)
        mine = []
        for homed in self.store.homed():
            record = prefix_record(homed.prefix)
            try:
                admin_record = self._read_record(str(record))
            except _Answer:
                continue
            if self._permitted(caller, record, AdminPermission.LIST_HANDLES, admin_record):
                mine.append(str(record))
        out: dict[str, Any] = {"responseCode": 1, "totalCount": str(len(mine))}
        if page >= 0 and page_size >= 0:
            out["page"], out["pageSize"] = page, page_size
            mine = mine[page * page_size : page * page_size + page_size]
        out["prefixes"] = mine
        return 200, out

    # --- sessions and verifications ---------------------------------------------------

    def _session(self, request: _Request) -> tuple[int, dict[str, Any]]:
        if not request.secure:
            return 403, _body(ResponseCode.AUTHENTICATION_NEEDED, "Sessions need HTTPS.")
        try:
            credentials = parse_authorization(request.header(b"authorization"))
        except AuthHeaderError as error:
            return 400, _body(ResponseCode.PROTOCOL_ERROR, str(error))
        fields = (
            credentials if isinstance(credentials, HandleCredentials) else HandleCredentials({})
        )
        method = request.method
        if request.path.rstrip("/") == "/api/sessions":
            if method != "POST":
                return self._not_allowed(request, "POST")
            if fields.session_id:
                return 400, _body(ResponseCode.PROTOCOL_ERROR, "A session is already named.")
            session = self.sessions.create()
            request.extra_headers.append((b"location", b"/api/sessions/this"))
            if fields.authenticating:
                try:
                    self._prove(request, session, fields)
                except _Answer:
                    return 401, _session_body(session, error="Authentication failed")
            return 201, _session_body(session)
        current = self.sessions.get(fields.session_id) if fields.session_id else None
        if current is None:
            return 403, _body(ResponseCode.SESSION_FAILED, "No such session (or it expired).")
        session = current
        if method == "GET":
            return 200, _session_body(session)
        if method == "DELETE":
            self.sessions.delete(session.id)
            return 204, {}
        if method not in ("PUT", "POST"):
            return self._not_allowed(request, "GET, PUT, POST, DELETE")
        if not fields.authenticating:
            return 200, _session_body(session)
        try:
            self._prove(request, session, fields)
        except _Answer as answer:
            return 401, _session_body(session, error=str(answer.body.get("message")))
        return 200, _session_body(session)

    def _verification(self, request: _Request) -> tuple[int, dict[str, Any]]:
        if not request.secure:
            return 403, _body(ResponseCode.AUTHENTICATION_NEEDED, "Verification needs HTTPS.")
        try:
            document = json.loads(request.body)
            identity = parse_identity(str(document["id"]))
            secret = document["secret"]
            if not isinstance(secret, str):
                raise TypeError
        except (
            ValueError,
            KeyError,
            TypeError,
            AuthHeaderError,
            UnicodeDecodeError,
            RecursionError,
        ):
            return 400, _body(
                ResponseCode.PROTOCOL_ERROR, 'Send {"id": "index:handle", "secret": "..."}.'
            )
        if not self._held_here(identity.handle):
            code = ResponseCode.SERVER_NOT_RESPONSIBLE
            return http_status(code), _body(code, "That identity doesn't live here")
        verified = self.authenticator.check_secret(identity, secret)
        return 200, {"responseCode": 1, "verified": verified is not None}

    # --- proxy ------------------------------------------------------------------------

    async def _proxy(self, raw: str, request: _Request) -> tuple[int, _Raw]:
        if request.method not in ("GET", "HEAD"):
            return 405, _Raw(b"Method not allowed", "text/plain; charset=utf-8")
        for scheme in ("hdl:", "doi:", "info:hdl/", "urn:hdl:"):
            if raw.lower().startswith(scheme):
                raw = raw[len(scheme) :]
        try:
            status, body = await self.resolve(raw, _public(request))
        except _Answer as answer:
            status, body = answer.status, answer.body
        document = json.loads(body) if isinstance(body, bytes) else body
        code = document.get("responseCode")
        shown = html.escape(document.get("handle") or unquote(raw))
        if code == ResponseCode.HANDLE_NOT_FOUND:
            return 404, _page(f"Handle {shown} not found", "<p>No such handle is registered.</p>")
        if code not in (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND):
            message = html.escape(
                str(document.get("message") or "The handle could not be resolved.")
            )
            return (status if status >= 400 else 502), _page(
                f"Cannot resolve {shown}", f"<p>{message}</p>"
            )
        values = document.get("values", [])
        target = (
            None if _has(request.params, "noredirect") else _redirect_target(values, request.params)
        )
        if target is not None:
            # Percent-encode what a header cannot carry (controls, non-ASCII).
            location = quote(target, safe=":/?#[]@!$&'()*+,;=%~")
            request.extra_headers.append((b"location", location.encode("ascii")))
            return 302, _Raw(b"", "text/plain; charset=utf-8")
        return 200, _page(f"Handle {shown}", _values_table(values))

    # --- output -----------------------------------------------------------------------

    async def _answer(
        self, send: Send, status: int, body: dict[str, Any] | bytes, request: _Request
    ) -> None:
        if status == 204:
            await _send(
                send, 204, b"", "application/json;charset=utf-8", request.extra_headers, head=True
            )
            return
        if isinstance(body, bytes):
            payload = (
                json.dumps(json.loads(body), indent=2, ensure_ascii=False).encode()
                if request.pretty
                else body
            )
        else:
            payload = json.dumps(
                body, ensure_ascii=False, indent=2 if request.pretty else None
            ).encode()
        await _send(
            send,
            status,
            payload,
            "application/json;charset=utf-8",
            request.extra_headers,
            head=request.method == "HEAD",
        )


@dataclass(frozen=True, slots=True)
class _Raw:
    content: bytes
    content_type: str
    preflight: bool = False


def _public(request: _Request) -> _Request:
    headers = {k: v for k, v in request.headers.items() if k != b"authorization"}
    params = [(k, v) for k, v in request.params if k in ("auth",)]
    return replace(request, headers=headers, params=params, extra_headers=request.extra_headers)


def _paging(params: list[tuple[str, str]]) -> tuple[int, int]:
    def number(name: str) -> int:
        raw = next((v for k, v in params if k == name), "-1")
        try:
            return max(-1, min(int(raw), 1_000_000_000))
        except ValueError as error:
            raise _Answer(
                400, _body(ResponseCode.PROTOCOL_ERROR, f"{name} must be a number.")
            ) from error

    page, page_size = number("page"), number("pageSize")
    if page_size > 10_000:
        page_size = 10_000
    return page, page_size


def _written(echoed: str, *, created: bool) -> tuple[int, dict[str, Any]]:
    """The answer to a successful write: 201 when it created something, else 200."""
    return http_status(ResponseCode.SUCCESS, created=created), _body(
        ResponseCode.SUCCESS, handle=echoed
    )


def _with_values(head: bytes, fragments: Iterable[str]) -> bytes:
    """A JSON answer from ``head`` (an object's text without its closing brace) and the
    stored JSON fragments of its values: nothing is parsed or re-serialised."""
    return head + b',"values":[' + ",".join(fragments).encode() + b"]}"


def _head(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False)[:-1].encode()


def _select(
    stored: Sequence[StoredValue], params: list[tuple[str, str]], public_only: bool
) -> list[StoredValue]:
    indexes = {value for key, value in params if key == "index"}
    types = [value for key, value in params if key == "type"]
    chosen = []
    for value in stored:
        if public_only and not value.public_read:
            continue
        index_ok = (not indexes and not types) or str(value.index) in indexes
        type_ok = any(type_matches(value.type_key, wanted) for wanted in types)
        if index_ok or type_ok:
            chosen.append(value)
    return chosen


def _session_body(session: ChallengeSession, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"sessionId": session.id, "nonce": session.nonce_b64}
    if session.identity is not None:
        out["authenticated"] = True
        out["id"] = str(session.identity)
    else:
        out["authenticated"] = False
    if error:
        out["error"] = error
    return out


def _redirect_target(values: list[dict[str, Any]], params: list[tuple[str, str]]) -> str | None:
    """The URL the proxy redirects to: the value at ``?index=`` if given, else the first
    value of type URL, else the first URL subtype."""

    def text(value: dict[str, Any]) -> str | None:
        data = value.get("data")
        if isinstance(data, dict) and data.get("format") == "string":
            target = str(data.get("value", ""))
            return target if target.lower().startswith(("http://", "https://")) else None
        return None

    indexes = {v for k, v in params if k == "index"}
    if indexes:
        for value in values:
            if str(value.get("index")) in indexes:
                return text(value)
        return None
    for exact in (True, False):
        for value in values:
            value_type = str(value.get("type", ""))
            if (
                (match_key(value_type) == match_key(URL))
                if exact
                else type_matches(value_type, "URL.")
            ):
                target = text(value)
                if target:
                    return target
    return None


def _values_table(values: list[dict[str, Any]]) -> str:
    if not values:
        return "<p>This handle has no public values.</p>"
    rows = []
    for value in values:
        data = value.get("data", {})
        shown = data.get("value") if isinstance(data, dict) else data
        if not isinstance(shown, str):
            shown = json.dumps(shown, ensure_ascii=False, indent=1)
        rows.append(
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>".format(
                html.escape(str(value.get("index"))),
                html.escape(str(value.get("type"))),
                html.escape(shown),
                html.escape(str(value.get("ttl"))),
            )
        )
    return (
        "<table><thead><tr><th>Index</th><th>Type</th><th>Data</th><th>TTL</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _page(title: str, content: str) -> _Raw:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2rem}}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3rem .6rem;"
        "text-align:left;vertical-align:top}pre{margin:0;white-space:pre-wrap}</style></head>"
        f"<body><h1>{title}</h1>{content}</body></html>"
    )
    return _Raw(document.encode(), "text/html; charset=utf-8")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Answer(413, _body(ResponseCode.PROTOCOL_ERROR, "The body is larger than 1 MiB."))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(
    send: Send,
    status: int,
    payload: bytes,
    content_type: str,
    extra: Sequence[tuple[bytes, bytes]],
    *,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
        *(_PREFLIGHT if status == 204 else _CORS),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: the store and resolver are the caller's."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""The Handle.net v9 REST API of a node: ``GET /api/handles/{handle}`` (resolution) so far.

Raw ASGI, not a FastAPI route: resolution is the hot path of an identifier node, so a request
goes from the socket to one indexed read and back as pre-serialised bytes (the store keeps each
value as its JSON fragment), with no validation layer between. Answers use the Handle.net JSON
shape and HTTP status mapping (``codes.http_status``), never problem+json, as Handle clients
expect. Writes, sessions and listing arrive with Handle authentication (issue 3).

What a request may ask, as HANDLE.NET 9 takes it:
- ``index=N`` and ``type=T`` (both repeatable; a type ending in ``.`` matches its subtypes);
- ``publicOnly`` — until authentication lands, only publicly readable values are ever served;
- ``pretty`` — indented JSON;
- a handle with no ``/`` names a prefix record: ``88.101`` is ``0.NA/88.101``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from plantwire.ids.codes import ResponseCode, http_status
from plantwire.ids.model import type_matches
from plantwire.ids.names import (
    DEFAULT_MAX_HANDLE_BYTES,
    PREFIX_AUTHORITY,
    HandleSyntaxError,
    match_key,
    unquote_handle,
)
from plantwire.ids.store import HandleStore, StoredValue

__all__ = ["HANDLES_PATH", "HandleRestApi"]

HANDLES_PATH = "/api/handles/"
_TRUE = {"", "true", "yes"}  # how HANDLE.NET reads a boolean query parameter


def _flag(params: list[tuple[str, str]], name: str) -> bool:
    return any(key == name and value.lower() in _TRUE for key, value in params)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: the store is the caller's."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class HandleRestApi:
    """ASGI app answering ``GET /api/handles/{handle}`` from ``store`` for the prefixes
    ``homed()`` returns (match keys); anything else is referred away (responseCode 301)."""

    def __init__(
        self,
        store: HandleStore,
        homed: Callable[[], Iterable[str]],
        max_handle_bytes: int = DEFAULT_MAX_HANDLE_BYTES,
    ) -> None:
        self.store = store
        self.homed = homed
        self.max_handle_bytes = max_handle_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here
        # Dispatch on the raw path prefix, not a route pattern: a handle may hold any
        # character, a newline included, and must still reach resolution.
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        pretty = _flag(params, "pretty")
        path = raw_path.decode("latin-1")
        if not path.startswith(HANDLES_PATH):
            message = f"Unknown HTTP API endpoint {scope['method']} {scope['path']}"
            unknown = {"responseCode": ResponseCode.PROTOCOL_ERROR, "message": message}
            await self._answer(send, 404, unknown, pretty)
            return
        raw = path[len(HANDLES_PATH) :]
        if scope["method"] not in ("GET", "HEAD"):
            await self._answer(
                send,
                405,
                {"responseCode": ResponseCode.PROTOCOL_ERROR, "message": "This node serves GET."},
                pretty,
                extra_headers=[(b"allow", b"GET, HEAD")],
            )
            return
        body: dict[str, Any] | bytes
        if self.store.reads_inline:
            status, body = self.resolve(raw, params)
        else:  # a network round trip: not on the event loop
            status, body = await anyio.to_thread.run_sync(self.resolve, raw, params)
        await self._answer(send, status, body, pretty, head=scope["method"] == "HEAD")

    def resolve(
        self, raw: str, params: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any] | bytes]:
        """The status and body answering a resolution of ``raw`` (the percent-encoded handle
        from the URL); the body is bytes when it is assembled from stored fragments."""
        if not raw:
            return 400, {
                "responseCode": ResponseCode.INVALID_HANDLE,
                "message": "Empty handle invalid",
            }
        if "/" not in raw and "%2f" not in raw.lower():
            raw = f"{PREFIX_AUTHORITY}/{raw}"
        try:
            handle = unquote_handle(raw, self.max_handle_bytes)
        except HandleSyntaxError as error:
            body = {"responseCode": ResponseCode.INVALID_HANDLE, "message": str(error)}
            return http_status(ResponseCode.INVALID_HANDLE), body
        echoed = str(handle)  # Handle clients compare it with what they asked for
        if match_key(handle.authority) not in set(self.homed()):
            code = ResponseCode.SERVER_NOT_RESPONSIBLE
            return http_status(code), {
                "responseCode": code,
                "handle": echoed,
                "message": "That prefix doesn't live here",
            }
        stored = self.store.get(handle)
        if stored is None:
            code = ResponseCode.HANDLE_NOT_FOUND
            return http_status(code), {"responseCode": code, "handle": echoed}
        chosen = self._select(stored, params)
        if not chosen:
            code = ResponseCode.VALUES_NOT_FOUND
            return http_status(code, resolution=True), {
                "responseCode": code,
                "handle": echoed,
                "values": [],
            }
        head = json.dumps(
            {"responseCode": ResponseCode.SUCCESS, "handle": echoed}, ensure_ascii=False
        )
        fragments = ",".join(value.json for value in chosen)
        return 200, f'{head[:-1]},"values":[{fragments}]}}'.encode()

    @staticmethod
    def _select(stored: list[StoredValue], params: list[tuple[str, str]]) -> list[StoredValue]:
        indexes = {value for key, value in params if key == "index"}
        types = [value for key, value in params if key == "type"]
        chosen = []
        for value in stored:
            if not value.public_read:
                continue  # needs an authenticated admin with read_value: not served yet
            index_ok = (not indexes and not types) or str(value.index) in indexes
            type_ok = any(type_matches(value.type_key, wanted) for wanted in types)
            if index_ok or type_ok:
                chosen.append(value)
        return chosen

    @staticmethod
    async def _answer(
        send: Send,
        status: int,
        body: dict[str, Any] | bytes,
        pretty: bool,
        *,
        head: bool = False,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if isinstance(body, bytes):
            payload = json.dumps(json.loads(body), indent=2).encode() if pretty else body
        else:
            payload = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None).encode()
        headers = [
            (b"content-type", b"application/json;charset=utf-8"),
            (b"content-length", str(len(payload)).encode()),
            (b"access-control-allow-origin", b"*"),
            *(extra_headers or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else payload})

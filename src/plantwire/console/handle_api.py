"""The console's client of the platform's Handle REST API (``/api/handles``), as the signed-in
user: their platform token is a Handle credential there (tenant admins administer the handles
of their tenant's prefixes; see ``ids/routes.platform_auth``), so the node decides every
write and listing, never the console.

The Handle API answers in the Handle.net JSON shape (a ``responseCode`` and a ``message``),
not in problem documents; each answer that is not a success leaves as a
:class:`~plantwire.console.api.ConsoleError` whose title says what the code means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from plantwire.console.api import ApiClient, ConsoleError, SessionExpired
from plantwire.ids.codes import ResponseCode
from plantwire.ids.names import url_path

__all__ = ["HandleApi", "HandlePage", "handle_path"]

HANDLES = "/api/handles"

#: What a responseCode means, for the person reading the page.
_TITLES = {
    ResponseCode.HANDLE_NOT_FOUND: "Handle not found",
    ResponseCode.HANDLE_ALREADY_EXISTS: "The handle exists already",
    ResponseCode.INVALID_HANDLE: "Not a valid handle",
    ResponseCode.VALUES_NOT_FOUND: "No such values",
    ResponseCode.VALUE_ALREADY_EXISTS: "Two values share an index",
    ResponseCode.INVALID_VALUE: "A value is not valid",
    ResponseCode.SERVER_NOT_RESPONSIBLE: "Not resolved by this platform",
    ResponseCode.PREFIX_REFERRAL: "Held by another identifier node",
    ResponseCode.INVALID_ADMIN: "Not allowed",
    ResponseCode.INSUFFICIENT_PERMISSIONS: "Not allowed",
    ResponseCode.AUTHENTICATION_NEEDED: "Not allowed",
    ResponseCode.AUTHENTICATION_FAILED: "Not allowed",
    ResponseCode.ERROR: "The identifier resolver failed",
    ResponseCode.RECURSION_COUNT_TOO_HIGH: "The identifier resolver failed",
}


def handle_path(handle: str) -> str:
    """``/api/handles/<handle>`` with the handle percent-encoded, its ``/`` kept."""
    return f"{HANDLES}/{url_path(handle)}"


def _referral_detail(body: dict[str, Any]) -> str:
    """Where a referral points: the addresses of the sites in its HS_SITE values."""
    places = []
    for value in body.get("values") or []:
        site = (value.get("data") or {}).get("value")
        if not isinstance(site, dict):
            continue
        for server in site.get("servers") or []:
            for interface in server.get("interfaces") or []:
                places.append(f"{server.get('address')}:{interface.get('port')}")
    where = f" ({', '.join(sorted(set(places)))})" if places else ""
    return (
        f"Its prefix's record {body.get('referral', '')} names another node{where}; this "
        "platform's node is not a recursive resolver, so it does not follow the referral."
    )


def handle_problem(response: httpx.Response) -> ConsoleError:
    """The error for an answer that is not a success, in words."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ConsoleError(response.status_code, response.reason_phrase or "Error")
    raw_code = body.get("responseCode")
    code = None
    if isinstance(raw_code, int) and raw_code in ResponseCode._value2member_map_:
        code = ResponseCode(raw_code)
    message = str(body.get("message") or "")
    if code is ResponseCode.HANDLE_NOT_FOUND:
        handle = body.get("handle") or ""
        message = message or f"No handle {handle} is registered."
    if code is ResponseCode.PREFIX_REFERRAL:
        message = _referral_detail(body)
    if response.status_code == 401 and code is ResponseCode.AUTHENTICATION_FAILED:
        # the node refused the session's token: the console session is over
        return SessionExpired(401, "Session expired", message)
    title = _TITLES.get(code, f"The identifier node answered {raw_code}") if code else "Error"
    return ConsoleError(response.status_code, title, message)


@dataclass(frozen=True, slots=True)
class HandlePage:
    prefix: str
    total: int
    handles: list[str]


class HandleApi:
    """Resolve, list, write and delete handles through the platform's Handle API."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    async def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        response = await self._api.response(method, path, **options)
        if response.status_code >= 400 or response.status_code == 300:
            raise handle_problem(response)
        if not response.content:
            return {}
        body = response.json()
        if not isinstance(body, dict):
            raise ConsoleError(502, "The identifier node answered something unexpected")
        return body

    async def resolve(self, handle: str) -> list[dict[str, Any]]:
        """The record's values (those the user may read)."""
        body = await self._call("GET", handle_path(handle))
        values = body.get("values") or []
        return [value for value in values if isinstance(value, dict)]

    async def list_handles(self, prefix: str, page: int = 0, page_size: int = 50) -> HandlePage:
        body = await self._call(
            "GET", HANDLES, params={"prefix": prefix, "page": page, "pageSize": page_size}
        )
        return HandlePage(
            prefix=prefix,
            total=int(body.get("totalCount") or 0),
            handles=[str(h) for h in body.get("handles") or []],
        )

    async def put(self, handle: str, values: list[dict[str, Any]], *, new: bool) -> None:
        """Create the handle (``new``: refused if it exists) or replace its record."""
        params = {"overwrite": "false"} if new else None
        await self._call("PUT", handle_path(handle), json={"values": values}, params=params)

    async def delete(self, handle: str) -> None:
        await self._call("DELETE", handle_path(handle))

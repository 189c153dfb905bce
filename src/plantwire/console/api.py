"""The console's client of the platform's own HTTP API, in-process.

Every page reads and writes through the same ``/api/v1`` endpoints a script would, over
httpx's ASGI transport to the running app: authorisation, tenant scoping, validation and the
audit log are the API's, never re-implemented here. Errors arrive as RFC 9457 problem
documents and leave as :class:`ConsoleError` with the problem's title and detail."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.types import ASGIApp

__all__ = ["ApiClient", "ConsoleError", "SessionExpired"]

_BASE_URL = "http://plantwire.console"  # never resolved: the transport calls the app directly
_TIMEOUT = 30.0


class ConsoleError(Exception):
    """An API call that did not succeed, in words for the page: the problem's title and
    detail (or what went wrong reaching the API)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail

    @property
    def message(self) -> str:
        """One line for a notification or an inline banner."""
        return f"{self.title}: {self.detail}" if self.detail else self.title


class SessionExpired(ConsoleError):
    """The API refused the session's token (401): expired, revoked, or the user disabled."""


def _field_errors(errors: Any) -> list[str]:
    """A validation problem's ``errors`` (``loc``, ``msg``) as ``"password: String should
    have at least 8 characters."``: which field, and what is wrong with it."""
    if not isinstance(errors, list):
        return []
    said = []
    for error in errors:
        if isinstance(error, dict) and error.get("msg"):
            where = [str(part) for part in error.get("loc") or () if part != "body"]
            said.append(f"{'.'.join(where) or 'request'}: {error['msg']}.")
    return said


def _problem(response: httpx.Response) -> ConsoleError:
    title, detail = response.reason_phrase or "Error", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
        detail = " ".join([detail, *_field_errors(body.get("errors"))]).strip()
    kind = SessionExpired if response.status_code == 401 else ConsoleError
    return kind(response.status_code, title, detail)


class ApiClient:
    """Calls the platform's API as one console user (``token``), from the browser's address
    (so the login rate limit and the audit log see the person, not the console)."""

    def __init__(self, app: ASGIApp, token: str | None, client_address: str) -> None:
        self._app = app
        self._token = token
        self._client_address = client_address

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON body of a 2xx answer (None if empty); raises :class:`ConsoleError`
        (:class:`SessionExpired` for a 401) otherwise."""
        response = await self.response(method, path, json=json, params=params)
        if response.status_code >= 400:
            raise _problem(response)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("text/"):
            return response.text
        return response.json()

    async def download(self, path: str, **params: Any) -> tuple[bytes, str | None]:
        """A file the API answers (an export): its bytes and the name its
        ``Content-Disposition`` gives, if any; raises :class:`ConsoleError` as ``request``."""
        response = await self.response("GET", path, params=params or None)
        if response.status_code >= 400:
            raise _problem(response)
        disposition = response.headers.get("content-disposition", "")
        found = re.search(r'filename="([^"]+)"', disposition)
        return response.content, found.group(1) if found else None

    async def response(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The API's answer as it is, whatever its status: for APIs that do not answer in
        problem documents (the Handle API's responseCode) and for downloads; ``options`` are
        httpx's (``json``, ``params``). Raises :class:`ConsoleError` only when the API could
        not be reached."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        # an exception in the app is its 500 problem answer here, not raised past the
        # console's ConsoleError handling (Starlette re-raises after sending the 500)
        transport = httpx.ASGITransport(
            app=self._app, client=(self._client_address, 0), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(
            transport=transport, base_url=_BASE_URL, timeout=_TIMEOUT
        ) as client:
            try:
                return await client.request(method, path, headers=headers, **options)
            except httpx.HTTPError as error:
                raise ConsoleError(502, "The platform did not answer", str(error)) from error

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.request("POST", path, json=json)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.request("PATCH", path, json=json)

    async def put(self, path: str, json: Any = None) -> Any:
        return await self.request("PUT", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

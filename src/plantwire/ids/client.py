"""A Handle.net REST client for ``plantwire ids`` commands (and anyone scripting a node):
resolve, create, modify, delete and list handles, authenticated by a secret key (HTTP Basic)
or by a private key (challenge-response session)."""

from __future__ import annotations

import base64
import secrets
import ssl
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from plantwire.ids.keys import PrivateKey, sign_challenge
from plantwire.ids.names import url_path

__all__ = ["HandleClient", "HandleClientError"]


class HandleClientError(Exception):
    """A node answered with something other than success."""

    def __init__(self, status: int, body: dict[str, Any] | None, text: str = "") -> None:
        self.status = status
        self.body = body or {}
        self.response_code = self.body.get("responseCode")
        message = self.body.get("message") or text or "no message"
        super().__init__(f"HTTP {status}, responseCode {self.response_code}: {message}")


class HandleClient:
    """One node's REST API. ``identity`` is ``index:handle``; give ``secret`` (its HS_SECKEY)
    or ``private_key`` (matching its HS_PUBKEY) to write."""

    def __init__(
        self,
        base_url: str,
        *,
        identity: str | None = None,
        secret: str | None = None,
        private_key: PrivateKey | None = None,
        alg: str = "SHA256",
        verify: ssl.SSLContext | str | bool = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.secret = secret
        self.private_key = private_key
        self.alg = alg
        self._session_id: str | None = None
        self._http = httpx.Client(
            base_url=self.base_url, verify=verify, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HandleClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- authentication ---------------------------------------------------------------

    def _authorization(self) -> str | None:
        if self.identity is None:
            return None
        if self.secret is not None:
            user = quote(self.identity, safe="/")
            token = base64.b64encode(f"{user}:{self.secret}".encode()).decode()
            return f"Basic {token}"
        if self.private_key is not None:
            if self._session_id is None:
                self._session_id = self._open_session()
            return f'Handle version="0", sessionId="{self._session_id}"'
        return None

    def _open_session(self) -> str:
        assert self.private_key is not None
        assert self.identity is not None
        opened = self._http.post("/api/sessions")
        body = self._json(opened)
        if opened.status_code != 201:
            raise HandleClientError(opened.status_code, body, opened.text)
        session_id, nonce = str(body["sessionId"]), base64.b64decode(body["nonce"])
        cnonce = secrets.token_bytes(16)
        signature = sign_challenge(self.private_key, nonce, cnonce, self.alg)
        header = (
            f'Handle version="0", sessionId="{session_id}", id="{quote(self.identity)}", '
            f'type="HS_PUBKEY", cnonce="{base64.b64encode(cnonce).decode()}", '
            f'alg="{self.alg}", signature="{base64.b64encode(signature).decode()}"'
        )
        proved = self._http.put("/api/sessions/this", headers={"Authorization": header})
        result = self._json(proved)
        if proved.status_code != 200 or not result.get("authenticated"):
            raise HandleClientError(proved.status_code, result, proved.text)
        return session_id

    # --- requests ---------------------------------------------------------------------

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _call(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        body: Any = None,
        *,
        authenticated: bool = True,
        ok: Iterable[int] = (200, 201),
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        authorization = self._authorization() if authenticated else None
        if authorization:
            headers["Authorization"] = authorization
        response = self._http.request(method, path, params=list(params), json=body, headers=headers)
        result = self._json(response)
        if response.status_code not in set(ok) or result.get("responseCode") not in (1, 200):
            raise HandleClientError(response.status_code, result, response.text[:200])
        return result

    @staticmethod
    def _path(handle: str) -> str:
        return "/api/handles/" + url_path(handle)

    def get(
        self,
        handle: str,
        indexes: Iterable[int] = (),
        types: Iterable[str] = (),
        *,
        authoritative: bool = False,
        authenticated: bool = False,
    ) -> dict[str, Any]:
        params = [("index", str(i)) for i in indexes] + [("type", t) for t in types]
        if authoritative:
            params.append(("auth", "true"))
        return self._call("GET", self._path(handle), params, authenticated=authenticated)

    def put(
        self,
        handle: str,
        values: list[dict[str, Any]],
        *,
        overwrite: bool = True,
        indexes: Iterable[int] | str | None = None,
        mint: bool = False,
    ) -> dict[str, Any]:
        params = [("overwrite", "true" if overwrite else "false")]
        if isinstance(indexes, str):
            params.append(("index", indexes))
        elif indexes is not None:
            params += [("index", str(i)) for i in indexes]
        if mint:
            params.append(("mintNewSuffix", "true"))
        return self._call("PUT", self._path(handle), params, {"values": values})

    def delete(self, handle: str, indexes: Iterable[int] = ()) -> dict[str, Any]:
        params = [("index", str(i)) for i in indexes]
        return self._call("DELETE", self._path(handle), params)

    def list(
        self, prefix: str, page: int | None = None, page_size: int | None = None
    ) -> dict[str, Any]:
        params = [("prefix", prefix)]
        if page is not None and page_size is not None:
            params += [("page", str(page)), ("pageSize", str(page_size))]
        return self._call("GET", "/api/handles", params)

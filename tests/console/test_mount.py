"""With the console mounted at "/", the platform's own paths answer as before (plain HTTP,
no browser)."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import ConsoleServer


@pytest.mark.parametrize("path", ["/api/nope", "/api/v1/nope", "/api/v1/devices/x/y/z"])
def test_unknown_api_paths_are_problem_json(console_server: ConsoleServer, path: str) -> None:
    response = httpx.get(console_server.url + path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_a_wrong_method_is_still_405(console_server: ConsoleServer) -> None:
    response = httpx.delete(console_server.url + "/healthz")
    assert response.status_code == 405
    response = httpx.put(console_server.url + "/api/v1/auth/login")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def test_the_handle_api_and_proxy_keep_their_shape(console_server: ConsoleServer) -> None:
    handles = httpx.get(console_server.url + "/api/handles/0.NA/nope")
    assert handles.headers["content-type"].startswith("application/json")
    assert "responseCode" in handles.json()
    proxy = httpx.get(console_server.url + "/hdl/0.NA/nope")
    assert proxy.status_code >= 400
    assert "problem" not in proxy.headers["content-type"]
    assert "<h1>" in proxy.text


def test_service_paths_are_untouched(console_server: ConsoleServer) -> None:
    assert httpx.get(console_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(console_server.url + "/metrics").text.startswith("#")
    assert httpx.get(console_server.url + "/api/openapi.json").json()["info"]["title"]
    assert httpx.get(console_server.url + "/api").json()["name"] == "plantwire"


def test_the_console_owns_the_root(console_server: ConsoleServer) -> None:
    root = httpx.get(console_server.url + "/")
    assert root.status_code == 303
    assert root.headers["location"].startswith("/login")
    cookie = root.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    login = httpx.get(console_server.url + "/login")
    assert login.status_code == 200
    assert "text/html" in login.headers["content-type"]
    assert "https://" not in login.text.split("<body", 1)[0]  # nothing from a CDN

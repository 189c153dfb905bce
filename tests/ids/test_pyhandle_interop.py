"""Interoperability: pyhandle (the Handle.net REST client from PyPI, written against
HANDLE.NET servers, not against plantwire) creates, reads, modifies and deletes handles on a
plantwire node with Basic secret-key authentication."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pyhandle.client.resthandleclient import RESTHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleNotFoundException

from plantwire.ids.server import serve_node
from tests.ids.test_node import ADMIN, SECRET, start_node


@pytest.fixture
async def node_url(tmp_path: Path) -> AsyncIterator[str]:
    running, sock, url = await start_node(tmp_path)
    async with serve_node(running, sock):
        yield url


def _lifecycle(url: str) -> dict[str, Any]:
    client = RESTHandleClient.instantiate_with_username_and_password(url, ADMIN, SECRET)
    seen: dict[str, Any] = {}
    handle = "88.101.5/PYHANDLE-1"
    seen["registered"] = client.register_handle(
        handle, "https://plant.example/units/1", EMAIL="qa@plant.example"
    )
    try:
        client.register_handle(handle, "https://elsewhere.example", overwrite=False)
    except HandleAlreadyExistsException:
        seen["refused_duplicate"] = True
    seen["url"] = client.get_value_from_handle(handle, "URL")
    client.modify_handle_value(handle, URL="https://plant.example/units/1/v2", CHECKSUM="abc123")
    seen["modified"] = client.get_value_from_handle(handle, "URL")
    seen["checksum"] = client.get_value_from_handle(handle, "CHECKSUM")
    client.delete_handle_value(handle, "EMAIL")
    seen["email_after_delete"] = client.get_value_from_handle(handle, "EMAIL")
    seen["record"] = client.retrieve_handle_record_json(handle)
    seen["minted"] = client.generate_and_register_handle("88.101.5", "https://plant.example/minted")
    client.delete_handle(handle)
    seen["after_delete"] = client.retrieve_handle_record_json(handle)
    try:
        client.delete_handle(handle)
    except HandleNotFoundException:
        seen["delete_missing_refused"] = True
    return seen


async def test_pyhandle_manages_handles_on_a_plantwire_node(node_url: str) -> None:
    seen = await asyncio.to_thread(_lifecycle, node_url)
    assert seen["registered"] == "88.101.5/PYHANDLE-1"
    assert seen.get("refused_duplicate") is True
    assert seen["url"] == "https://plant.example/units/1"
    assert seen["modified"] == "https://plant.example/units/1/v2"
    assert seen["checksum"] == "abc123"
    assert seen["email_after_delete"] is None
    types = [value["type"] for value in seen["record"]["values"]]
    assert sorted(types) == ["CHECKSUM", "HS_ADMIN", "URL"]
    assert seen["minted"].startswith("88.101.5/")
    assert seen["after_delete"] is None
    assert seen.get("delete_missing_refused") is True


def _wrong_secret(url: str) -> str:
    client = RESTHandleClient.instantiate_with_username_and_password(url, ADMIN, "not-the-secret")
    try:
        client.register_handle("88.101.5/X", "https://plant.example/x")
    except Exception as error:  # pyhandle raises HandleAuthenticationError
        return type(error).__name__
    return "accepted"


async def test_pyhandle_sees_a_wrong_secret_as_an_authentication_error(node_url: str) -> None:
    assert await asyncio.to_thread(_wrong_secret, node_url) == "HandleAuthenticationError"

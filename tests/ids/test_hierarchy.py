"""A five-node hierarchy on loopback (root, top-level 88, secondary 88.101, enterprise
88.101.5, recursive), each node its own server with its own store, wired as real tiers are:
each prefix registered on its parent's node by the parent's administrator, whose secret key is
verified by the node that holds it. Then: referrals, recursive resolution with caching and TTL
expiry, a node dying mid-hierarchy, and a site of two servers over one PostgreSQL store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plantwire.ids.client import HandleClient, HandleClientError
from plantwire.ids.demo import EXAMPLE_HANDLE, Hierarchy, start_hierarchy
from plantwire.ids.handle_json import value_to_json
from plantwire.ids.server import (
    NodeOptions,
    admin_values,
    base_url,
    bind_socket,
    build_node,
    prepare_node_dir,
    serve_node,
    site_value,
)
from tests.conftest import make_settings

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def hierarchy(tmp_path: Path) -> AsyncIterator[Hierarchy]:
    async with start_hierarchy(tmp_path, settings_for=make_settings) as started:
        yield started


def enterprise_admin(hierarchy: Hierarchy) -> HandleClient:
    return HandleClient(
        hierarchy.urls["enterprise"],
        identity=hierarchy.admin("88.101.5"),
        secret=hierarchy.secrets["88.101.5"],
    )


async def create(hierarchy: Hierarchy, handle: str, url: str, ttl: int = 86400) -> None:
    admin = {"handle": "0.NA/88.101.5", "index": 200, "permissions": "011111110011"}
    values = [
        {"index": 1, "type": "URL", "data": url, "ttl": ttl},
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}},
    ]
    with enterprise_admin(hierarchy) as client:
        await asyncio.to_thread(client.put, handle, values)


async def get(base: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as http:
        return await http.get(path, params=params)


def upstream_requests(hierarchy: Hierarchy) -> int:
    resolver = hierarchy.nodes["recursive"].resolver
    assert resolver is not None
    return resolver.stats.upstream_requests


async def test_each_tier_refers_to_the_next(hierarchy: Hierarchy) -> None:
    for tier, record in (
        ("root", "0.NA/88"),
        ("top", "0.NA/88.101"),
        ("secondary", "0.NA/88.101.5"),
    ):
        response = await get(hierarchy.urls[tier], f"/api/handles/{EXAMPLE_HANDLE}")
        body = response.json()
        assert (response.status_code, body["responseCode"]) == (300, 303), tier
        assert body["handle"] == EXAMPLE_HANDLE
        assert body["referral"] == record
        assert [v["type"] for v in body["values"]] == ["HS_SITE"]
    # The enterprise node answers itself; the prefix record lives on its parent's node.
    answer = await get(hierarchy.urls["enterprise"], f"/api/handles/{EXAMPLE_HANDLE}")
    assert answer.json()["responseCode"] == 1
    prefix_record = await get(hierarchy.urls["secondary"], "/api/handles/0.NA/88.101.5")
    types = sorted(v["type"] for v in prefix_record.json()["values"])
    assert types == ["HS_ADMIN", "HS_SITE", "HS_VLIST"]  # the secret key is not public
    unknown = await get(hierarchy.urls["root"], "/api/handles/77/x")
    assert (unknown.status_code, unknown.json()["responseCode"]) == (404, 100)
    unknown_below = await get(hierarchy.urls["secondary"], "/api/handles/88.101.9/x")
    assert unknown_below.json()["responseCode"] == 100


async def test_the_recursive_node_resolves_and_caches(hierarchy: Hierarchy) -> None:
    recursive = hierarchy.urls["recursive"]
    first = await get(recursive, f"/api/handles/{EXAMPLE_HANDLE}")
    assert first.status_code == 200
    assert first.json()["values"][0]["data"]["value"] == "https://plant.example/units/SN-000123"
    asked = upstream_requests(hierarchy)
    assert asked >= 4  # root, top, secondary, enterprise
    again = await get(recursive, f"/api/handles/{EXAMPLE_HANDLE}", type="URL")
    assert [v["type"] for v in again.json()["values"]] == ["URL"]
    assert upstream_requests(hierarchy) == asked  # from the cache, filtered there
    # Another handle of the same enterprise goes straight to it (referrals are cached).
    await create(hierarchy, "88.101.5/SN-2", "https://plant.example/units/SN-2")
    second = await get(recursive, "/api/handles/88.101.5/SN-2")
    assert second.json()["responseCode"] == 1
    assert upstream_requests(hierarchy) == asked + 1
    # auth=true bypasses the cache.
    await get(recursive, "/api/handles/88.101.5/SN-2", auth="true")
    assert upstream_requests(hierarchy) == asked + 2
    missing = await get(recursive, "/api/handles/88.101.5/none")
    assert (missing.status_code, missing.json()["responseCode"]) == (404, 100)
    # A client that always sends its credentials still resolves through the recursive node.
    async with httpx.AsyncClient(base_url=recursive) as http:
        credentialed = await http.get(
            f"/api/handles/{EXAMPLE_HANDLE}", headers={"Authorization": "Basic dTpw"}
        )
    assert (credentialed.status_code, credentialed.json()["responseCode"]) == (200, 1)
    proxied = await get(recursive, f"/hdl/{EXAMPLE_HANDLE}")
    assert proxied.status_code == 302
    assert proxied.headers["location"] == "https://plant.example/units/SN-000123"


async def test_an_expired_ttl_is_fetched_again(hierarchy: Hierarchy) -> None:
    await create(hierarchy, "88.101.5/short", "https://plant.example/v1", ttl=1)
    recursive = hierarchy.urls["recursive"]
    assert (await get(recursive, "/api/handles/88.101.5/short")).json()["values"][0]["data"][
        "value"
    ] == "https://plant.example/v1"
    await create(hierarchy, "88.101.5/short", "https://plant.example/v2", ttl=1)
    cached = await get(recursive, "/api/handles/88.101.5/short")
    assert cached.json()["values"][0]["data"]["value"] == "https://plant.example/v1"
    await asyncio.sleep(1.2)
    fresh = await get(recursive, "/api/handles/88.101.5/short")
    assert fresh.json()["values"][0]["data"]["value"] == "https://plant.example/v2"


async def test_a_dead_node_gives_a_clean_error(hierarchy: Hierarchy) -> None:
    await hierarchy.stop("enterprise")
    recursive = hierarchy.urls["recursive"]
    response = await get(recursive, "/api/handles/88.101.5/never-cached")
    body = response.json()
    assert (response.status_code, body["responseCode"]) == (502, 2)
    assert "88.101.5" in body["message"] or "127.0.0.1" in body["message"]
    # What was cached before keeps resolving while the node is down? Nothing was: the
    # example handle was never asked for here, so it fails the same way, and quickly.
    page = await get(recursive, f"/hdl/{EXAMPLE_HANDLE}")
    assert page.status_code == 502


async def test_writes_are_refused_outside_the_admins_prefix(hierarchy: Hierarchy) -> None:
    # The enterprise admin's secret is checked by the secondary node (it holds 0.NA/88.101.5);
    # a wrong one is refused, and the right one does not reach another enterprise's prefix.
    wrong = HandleClient(
        hierarchy.urls["enterprise"], identity=hierarchy.admin("88.101.5"), secret="wrong"
    )
    with wrong, pytest.raises(HandleClientError) as caught:
        await asyncio.to_thread(wrong.put, "88.101.5/x", [{"index": 1, "type": "URL", "data": "x"}])
    assert caught.value.status == 401
    top_admin = HandleClient(
        hierarchy.urls["secondary"],
        identity=hierarchy.admin("88.101.5"),
        secret=hierarchy.secrets["88.101.5"],
    )
    with top_admin, pytest.raises(HandleClientError) as refused:
        await asyncio.to_thread(
            top_admin.put, "0.NA/88.101.7", [{"index": 1, "type": "URL", "data": "x"}]
        )
    assert (refused.value.status, refused.value.response_code) == (403, 400)


@pytest.mark.postgres
async def test_a_site_of_two_servers_over_one_store(tmp_path: Path, postgres_url: str) -> None:
    root_settings = make_settings(tmp_path / "root")
    await asyncio.to_thread(prepare_node_dir, root_settings)
    root_secret = "root-admin-secret"
    root = await asyncio.to_thread(
        build_node, root_settings, NodeOptions(homes=["0.NA", "88.101"], admin_secret=root_secret)
    )
    root_sock = bind_socket("127.0.0.1", 0)
    root_url = base_url(root_sock, "127.0.0.1", tls=False)
    async with serve_node(root, root_sock):
        shared = make_settings(tmp_path / "a", database_url=postgres_url)
        await asyncio.to_thread(prepare_node_dir, shared)
        sites = []
        for name in ("a", "b"):
            settings = make_settings(tmp_path / name, database_url=postgres_url)
            options = NodeOptions(homes=["88.101.5"], roots=[root_url])
            running = await asyncio.to_thread(build_node, settings, options)
            sock = bind_socket("127.0.0.1", 0)
            sites.append((running, sock, base_url(sock, "127.0.0.1", tls=False)))
        recursive_settings = make_settings(tmp_path / "recursive")
        await asyncio.to_thread(prepare_node_dir, recursive_settings)
        recursive = await asyncio.to_thread(
            build_node,
            recursive_settings,
            NodeOptions(roots=[root_url], recursive=True, resolver_timeout=1.0),
        )
        recursive_sock = bind_socket("127.0.0.1", 0)
        recursive_url = base_url(recursive_sock, "127.0.0.1", tls=False)
        secret = "enterprise-secret-1"
        values = [
            site_value([url for _, _, url in sites]),
            *admin_values("88.101.5", secret.encode(), None),
        ]
        # The root also homes 88.101, so it holds the records of the prefixes under it.
        with HandleClient(root_url, identity="300:0.NA/88.101", secret=root_secret) as client:
            await asyncio.to_thread(client.put, "0.NA/88.101.5", [value_to_json(v) for v in values])
        (a, a_sock, a_url), (b, b_sock, _) = sites
        async with serve_node(recursive, recursive_sock), serve_node(b, b_sock):
            server_a = serve_node(a, a_sock)
            uvicorn_a = await server_a.__aenter__()
            try:
                with HandleClient(a_url, identity="300:0.NA/88.101.5", secret=secret) as client:
                    for n in range(3):
                        unit = [{"index": 1, "type": "URL", "data": f"https://p.example/{n}"}]
                        await asyncio.to_thread(client.put, f"88.101.5/u{n}", unit)
                first = await get(recursive_url, "/api/handles/88.101.5/u0")
                assert first.json()["responseCode"] == 1
                uvicorn_a.should_exit = True
            finally:
                await server_a.__aexit__(None, None, None)
            # Server a is gone; the site's other server answers from the same store.
            for n in (1, 2):
                response = await get(recursive_url, f"/api/handles/88.101.5/u{n}")
                assert response.json()["responseCode"] == 1, response.text
                assert response.json()["values"][0]["data"]["value"] == f"https://p.example/{n}"

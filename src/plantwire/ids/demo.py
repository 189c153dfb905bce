"""A whole identifier hierarchy on loopback, for trying it out and for tests: root (homing
``0.NA``), top-level ``88``, secondary ``88.101``, enterprise ``88.101.5`` and a recursive
node, each its own node with its own data dir and port, wired together the way real tiers
are: each prefix is registered on its parent's node by the parent's administrator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from plantwire.config import Settings, load_settings
from plantwire.ids.client import HandleClient, HandleClientError
from plantwire.ids.codes import ResponseCode
from plantwire.ids.handle_json import value_to_json
from plantwire.ids.names import prefix_record
from plantwire.ids.server import (
    NodeOptions,
    RunningNode,
    admin_values,
    base_url,
    bind_socket,
    build_node,
    prepare_node_dir,
    serve_node,
    site_value,
)

__all__ = ["EXAMPLE_HANDLE", "TIERS", "Hierarchy", "run_hierarchy", "start_hierarchy"]

EXAMPLE_HANDLE = "88.101.5/SN-000123"
#: name, prefix it homes, the prefix whose admin registers it (None: root), role
TIERS = (
    ("root", "0.NA", None, "root node (holds the records of top-level prefixes)"),
    ("top", "88", "0.NA", "top-level node for 88"),
    ("secondary", "88.101", "88", "industry secondary node for 88.101"),
    ("enterprise", "88.101.5", "88.101", "enterprise node for 88.101.5"),
)


@dataclass(slots=True)
class Hierarchy:
    urls: dict[str, str]
    nodes: dict[str, RunningNode]
    secrets: dict[str, str]  # prefix -> its admin's secret key
    servers: dict[str, uvicorn.Server]

    async def stop(self, name: str) -> None:
        """Stop one node's HTTP server (as if the node died); the rest keep running."""
        server = self.servers[name]
        server.should_exit = True
        for _ in range(500):  # uvicorn closes its listeners within a tick or two
            if all(not listener.is_serving() for listener in server.servers):
                return
            await asyncio.sleep(0.01)

    def admin(self, prefix: str) -> str:
        return f"300:{prefix_record(prefix)}"

    def describe(self) -> dict[str, Any]:
        roles = {name: role for name, _, _, role in TIERS}
        roles["recursive"] = "recursive node (resolves anything, caches)"
        return {
            "nodes": {name: {"url": url, "role": roles[name]} for name, url in self.urls.items()},
            "enterprise_admin": {"id": self.admin("88.101.5"), "secret": self.secrets["88.101.5"]},
            "example_handle": EXAMPLE_HANDLE,
        }


@contextlib.asynccontextmanager
async def start_hierarchy(
    directory: Path,
    base_port: int = 0,
    secret: str = "demo-secret",  # noqa: S107 - loopback demo nodes; the CLI passes a random one
    settings_for: Callable[[Path], Settings] = load_settings,
    *,
    enterprise_site: str | None = None,
    handle_signals: bool = True,
) -> Any:
    """Start the five nodes under ``directory``; yields a ``Hierarchy``.

    With ``enterprise_site`` (a node's base URL) the enterprise prefix is registered as served
    there and no enterprise node is started, nor the example handle made: the platform's own
    node plays the enterprise (``plantwire up --demo``). ``handle_signals=False`` leaves
    Ctrl-C to the caller."""
    secrets = {prefix: f"{secret}-{prefix}" for _, prefix, _, _ in TIERS}
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        nodes: dict[str, RunningNode] = {}
        servers: dict[str, uvicorn.Server] = {}
        for offset, (name, prefix, parent, _) in enumerate([*TIERS, ("recursive", None, None, "")]):
            if name == "enterprise" and enterprise_site is not None:
                assert parent is not None
                assert prefix is not None
                urls[name] = enterprise_site
                await asyncio.to_thread(
                    _register,
                    urls[_node_of(parent)],
                    parent,
                    secrets[parent],
                    prefix,
                    secrets[prefix],
                    enterprise_site,
                )
                continue
            settings = settings_for(directory / name)
            await asyncio.to_thread(prepare_node_dir, settings)
            roots = [] if name == "root" else [urls["root"]]
            options = NodeOptions(
                homes=[prefix] if prefix else [],
                roots=roots,
                recursive=name == "recursive",
                admin_secret=secrets["0.NA"] if name == "root" else None,
            )
            running = await asyncio.to_thread(build_node, settings, options)
            sock = bind_socket("127.0.0.1", base_port + offset if base_port else 0)
            servers[name] = await stack.enter_async_context(
                serve_node(running, sock, handle_signals=handle_signals)
            )
            urls[name] = base_url(sock, "127.0.0.1", tls=False)
            nodes[name] = running
            if parent is not None and prefix is not None:
                await asyncio.to_thread(
                    _register,
                    urls[_node_of(parent)],
                    parent,
                    secrets[parent],
                    prefix,
                    secrets[prefix],
                    urls[name],
                )
        hierarchy = Hierarchy(urls, nodes, secrets, servers)
        if enterprise_site is None:
            await asyncio.to_thread(_example, hierarchy)
        yield hierarchy


def _node_of(prefix: str) -> str:
    return next(name for name, homed, _, _ in TIERS if homed == prefix)


def _register(
    parent_url: str, parent: str, parent_secret: str, prefix: str, secret: str, site: str
) -> None:
    """Register ``prefix`` on its parent's node as served at ``site``. A record a run on the
    same data dir made already is the prefix administrator's to change (its HS_ADMIN): that
    administrator points its site here."""
    record = str(prefix_record(prefix))
    values = [site_value(site), *admin_values(prefix, secret.encode(), None)]
    with HandleClient(
        parent_url, identity=f"300:{prefix_record(parent)}", secret=parent_secret
    ) as client:
        try:
            client.put(record, [value_to_json(v) for v in values], overwrite=False)
            return
        except HandleClientError as error:
            if error.response_code != ResponseCode.HANDLE_ALREADY_EXISTS:
                raise
    with HandleClient(parent_url, identity=f"300:{record}", secret=secret) as client:
        client.put(record, [value_to_json(site_value(site))], indexes=[1])


def _example(hierarchy: Hierarchy) -> None:
    values = [
        {
            "index": 1,
            "type": "URL",
            "data": {"format": "string", "value": "https://plant.example/units/SN-000123"},
        },
        {
            "index": 2,
            "type": "PRODUCT_TYPE",
            "data": {"format": "string", "value": "gearbox GX-200"},
        },
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": "0.NA/88.101.5", "index": 200, "permissions": "011111110011"},
            },
        },
    ]
    with HandleClient(
        hierarchy.urls["enterprise"],
        identity=hierarchy.admin("88.101.5"),
        secret=hierarchy.secrets["88.101.5"],
    ) as client:
        client.put(EXAMPLE_HANDLE, values, overwrite=True)


async def run_hierarchy(
    directory: Path,
    base_port: int,
    announce: Callable[[dict[str, Any]], None],
    *,
    stop_at_once: bool = False,
    secret: str = "demo-secret",  # noqa: S107 - see start_hierarchy
) -> None:
    async with start_hierarchy(directory, base_port, secret) as hierarchy:
        announce(hierarchy.describe())
        if stop_at_once:
            return
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()

"""Running an identifier node: its parts wired together, the bootstrap of the prefixes it
homes, and serving it over HTTP(S) with uvicorn (``plantwire ids serve``, ``plantwire up``,
``plantwire ids demo-hierarchy`` and the tests all start nodes through here)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import uvicorn
from sqlalchemy import Engine

if TYPE_CHECKING:
    from plantwire.ids.resolver import Resolver

from plantwire.config import Settings
from plantwire.datadir import read_format, write_format
from plantwire.db import make_engine, migrate
from plantwire.ids.handle_auth import SecretKeys
from plantwire.ids.model import (
    HS_ADMIN,
    HS_PUBKEY,
    HS_SECKEY,
    HS_SITE,
    HS_VLIST,
    AdminPermission,
    AdminRef,
    HandleValue,
    PublicKey,
    SiteInfo,
    SiteInterface,
    SiteServer,
    ValuePermissions,
    ValueRef,
)
from plantwire.ids.names import parse_prefix, prefix_record
from plantwire.ids.rest import AuditHook, HandleNode, PlatformAuth
from plantwire.ids.store import SqlHandleStore
from plantwire.lifecycle import prepare
from plantwire.security.hashing import PasswordHashing

__all__ = [
    "ADMIN_GROUP_INDEX",
    "ADMIN_KEY_INDEX",
    "BootstrapError",
    "NodeOptions",
    "RunningNode",
    "admin_values",
    "bootstrap",
    "build_node",
    "prepare_node_dir",
    "serve_node",
    "site_value",
]

ADMIN_VALUE_INDEX = 100
ADMIN_GROUP_INDEX = 200
ADMIN_KEY_INDEX = 300
_SECRET_ONLY = ValuePermissions(
    admin_read=True, admin_write=True, public_read=False, public_write=False
)


class BootstrapError(Exception):
    """A node cannot start as configured; the message says why and what to do."""


T = TypeVar("T")


@dataclass(slots=True)
class NodeOptions:
    """What ``plantwire ids serve`` takes (and ``plantwire up`` derives from settings)."""

    homes: Sequence[str] = ()
    roots: Sequence[str] = ()
    recursive: bool = False
    admin_secret: str | None = None
    admin_pubkey: PublicKey | None = None
    proxy_at_root: bool = True
    resolver_timeout: float = 3.0
    negative_ttl: float = 10.0
    verify_tls: bool | str = True


@dataclass(slots=True)
class RunningNode:
    node: HandleNode
    store: SqlHandleStore
    engine: Engine
    resolver: Resolver | None
    owns_engine: bool = True

    async def aclose(self) -> None:
        if self.resolver is not None:
            await self.resolver.aclose()
        self.store.close()
        if self.owns_engine:
            self.engine.dispose()


def prepare_node_dir(settings: Settings) -> None:
    """Create (or bring up to date) the data dir of a standalone node: format and schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if read_format(settings.data_dir) is None:
        engine = make_engine(settings.registry_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        write_format(settings.data_dir)
    else:
        prepare(settings)


def admin_values(
    prefix: str, secret_hash: bytes | None, pubkey: PublicKey | None
) -> list[HandleValue]:
    """The administrative values of a new prefix record ``0.NA/<prefix>``, as a Handle
    server's setup writes them: HS_ADMIN granting ``300:0.NA/<prefix>`` every permission,
    the admin group HS_VLIST at 200 (clients name ``200:0.NA/<prefix>`` in the HS_ADMIN of
    handles they create) and the key at 300 (a public key goes to 301 when there is a
    secret key too)."""
    record = str(prefix_record(prefix))
    keys: list[HandleValue] = []
    if secret_hash is not None:
        keys.append(HandleValue(ADMIN_KEY_INDEX, HS_SECKEY, secret_hash, permissions=_SECRET_ONLY))
    if pubkey is not None:
        keys.append(HandleValue(ADMIN_KEY_INDEX + len(keys), HS_PUBKEY, pubkey))
    if not keys:
        raise BootstrapError(f"The record of prefix {prefix} needs an admin secret or public key.")
    values = [
        HandleValue(
            ADMIN_VALUE_INDEX + n, HS_ADMIN, AdminRef(record, key.index, AdminPermission.all())
        )
        for n, key in enumerate(keys)
    ]
    members = tuple(ValueRef(record, key.index) for key in keys)
    values.append(HandleValue(ADMIN_GROUP_INDEX, HS_VLIST, members))
    return values + keys


def site_value(urls: str | Sequence[str], index: int = 1, value_type: str = HS_SITE) -> HandleValue:
    """An HS_SITE (or HS_SITE.PREFIX) value naming the servers at ``urls`` (one site of
    one or more servers sharing one store)."""
    servers = []
    for number, url in enumerate([urls] if isinstance(urls, str) else urls, start=1):
        parts = urlsplit(url)
        scheme = parts.scheme.upper()
        if scheme not in ("HTTP", "HTTPS") or not parts.hostname:
            raise BootstrapError(f"A site URL is http(s)://host:port; got {url!r}.")
        port = parts.port or (443 if scheme == "HTTPS" else 80)
        interface = SiteInterface(True, True, scheme, port)
        servers.append(SiteServer(number, parts.hostname, None, (interface,)))
    if not servers:
        raise BootstrapError("A site needs at least one server URL.")
    return HandleValue(index, value_type, SiteInfo(1, "2.10", 1, True, False, tuple(servers)))


def bootstrap(
    store: SqlHandleStore,
    secret_keys: SecretKeys,
    options: NodeOptions,
    tenant_id: str | None = None,
) -> list[str]:
    """Home ``options.homes``; on a root node (no upstream roots) create the record of each
    homed prefix that has none yet. Returns the records created."""
    created = []
    is_root = not options.roots
    for prefix in options.homes:
        parse_prefix(prefix)
        store.home(prefix, tenant_id)
        record = prefix_record(prefix)
        if not is_root or store.get(record) is not None:
            continue
        if options.admin_secret is None and options.admin_pubkey is None:
            raise BootstrapError(
                f"Prefix {prefix} has no record yet, so this node would create it with an "
                "administrator: give --admin-secret-file FILE (or PLANTWIRE_IDS_ADMIN_SECRET) "
                "and/or --admin-pubkey FILE."
            )
        secret = options.admin_secret.encode() if options.admin_secret is not None else None
        values = admin_values(
            prefix, secret_keys.hash(secret) if secret else None, options.admin_pubkey
        )
        store.create(record, values, overwrite=False)
        created.append(str(record))
    return created


def build_node(
    settings: Settings,
    options: NodeOptions,
    *,
    audit: AuditHook | None = None,
    platform_auth: PlatformAuth | None = None,
    tenant_id: str | None = None,
    engine: Engine | None = None,
) -> RunningNode:
    """A node over ``settings``' registry database (already migrated), or over ``engine``
    when the caller shares its own (then the caller disposes of it)."""
    owns_engine = engine is None
    engine = engine or make_engine(settings.registry_url)
    store = SqlHandleStore(engine)
    hashing = PasswordHashing(settings.argon2_time_cost, settings.argon2_memory_kib)
    secret_keys = SecretKeys(hashing)
    try:
        bootstrap(store, secret_keys, options, tenant_id)
    except Exception:
        store.close()
        if owns_engine:
            engine.dispose()
        raise
    resolver = None
    if options.roots:
        from plantwire.ids.resolver import Resolver

        resolver = Resolver(
            list(options.roots),
            timeout=options.resolver_timeout,
            negative_ttl=options.negative_ttl,
            verify=options.verify_tls,
        )
    node = HandleNode(
        store,
        secret_keys,
        resolver=resolver,
        recursive=options.recursive,
        is_root=not options.roots,
        audit=audit,
        platform_auth=platform_auth,
        proxy_at_root=options.proxy_at_root,
    )
    return RunningNode(node, store, engine, resolver, owns_engine)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: an ephemeral one), so callers know the port before the
    server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _SignalFreeServer(uvicorn.Server):
    """uvicorn's server without its own signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_node(
    running: RunningNode,
    sock: socket.socket,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    handle_signals: bool = True,
) -> AsyncIterator[uvicorn.Server]:
    """Serve ``running`` on ``sock`` until the block ends, then stop and close it.
    ``handle_signals=False`` leaves Ctrl-C to the caller (a process running several servers,
    which stops them itself), instead of uvicorn's capturing it."""
    config = uvicorn.Config(
        running.node,
        log_level="warning",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    server = uvicorn.Server(config) if handle_signals else _SignalFreeServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("The node's HTTP server stopped while starting.")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
        await running.aclose()


@contextlib.asynccontextmanager
async def serve_node_granian(
    running: RunningNode,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    ready_timeout: float = 15.0,
) -> AsyncIterator[Callable[[], None]]:
    """Serve ``running`` on granian's embedded server (Rust HTTP, the app on this event
    loop) until the block ends; yields a function that stops it early. Resolution served
    this way answers several times as many requests per second as on uvicorn
    (docs/benchmarks.md). The port must be given: the server binds it itself."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(
        running.node,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,  # the node has no lifespan work
        log_enabled=False,
        backlog=2048,
        ssl_cert=tls_cert,
        ssl_key=tls_key,
    )
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + ready_timeout
        while True:
            if task.done():
                task.result()
                raise OSError(f"the identifier node could not serve on {host}:{port}")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield server.stop
    finally:
        if not task.done():
            server.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await running.aclose()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop where it is installed (everywhere but Windows),
    else on asyncio's own loop. Measured here, uvloop under granian answered a third more
    requests per second than asyncio's loop (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(main)
    return uvloop.run(main)


def base_url(sock: socket.socket, host: str, tls: bool) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"

"""Runs the demo in one process: the identifier hierarchy's extra nodes, the platform (its
own node plays the enterprise node), the demo tenant, the simulator, the gateway and the
part registrar, until SIGINT or SIGTERM; then stops them in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog

from plantwire.config import Settings
from plantwire.demo import provision
from plantwire.demo.gateway_config import Uplink, gateway_toml, modbus_section, opcua_section
from plantwire.demo.state import load_or_create
from plantwire.demo.traceability import PartRegistrar, product_url
from plantwire.edge.config import parse_config
from plantwire.edge.gateway import Gateway, quiet_protocol_libraries
from plantwire.ids.client import HandleClientError
from plantwire.ids.demo import start_hierarchy
from plantwire.ids.names import prefix_record
from plantwire.ids.server import bind_socket
from plantwire.platform import Platform
from plantwire.serving import PlatformServer
from plantwire.signals import stop_on_signals
from plantwire.sim.plant import MachineSpec
from plantwire.sim.runner import SimEndpoints, Simulator

__all__ = ["DemoError", "DemoParts", "DemoPorts", "run_demo"]

_log = structlog.get_logger("plantwire.demo")

SIM_SPEED = 1.0  # the press line then finishes a part every 2 s or so
_WARM_UP_S = 30  # simulated seconds stepped at once: the first part is done at ~24 s
_FIRST_PART_WAIT_S = 30.0


class DemoError(Exception):
    """The demo cannot start (its message says why)."""


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """Ports of the demo's own servers; 0 takes a free one."""

    ids_base: int = 0  # the root's; top, secondary and recursive take the next 1, 2 and 4
    opcua: int = 0
    modbus: int = 0


@dataclass(frozen=True, slots=True)
class DemoParts:
    """What ``plantwire up`` does for the platform, reused: open it (data dir, store,
    broker), close what the app did not, and make its server."""

    open_platform: Callable[[Settings], Platform]
    close_platform: Callable[[Platform], None]
    platform_server: Callable[[Settings, Platform], PlatformServer]
    announce: Callable[[str], None]
    ports: DemoPorts = DemoPorts()


def _loopback(host: str) -> str:
    """An address to reach a server listening on ``host`` from this machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url(scheme: str, host: str, port: int) -> str:
    host = _loopback(host)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _write_json(path: Path, info: dict[str, Any]) -> None:
    """Atomically, readable by the owner only (it holds the demo password)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    temporary.replace(path)


async def _stop_task(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_server(server: PlatformServer, serving: asyncio.Task[None]) -> None:
    server.should_exit = True
    await serving


async def run_demo(settings: Settings, parts: DemoParts) -> bool:
    """Run the demo until SIGINT or SIGTERM; False when the platform's server did not
    start (uvicorn logged why)."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        return await _run(settings, parts, stop)


async def _run(settings: Settings, parts: DemoParts, stop: asyncio.Event) -> bool:
    # the simulator's and the gateway's protocol libraries: their disconnect tracebacks are
    # the connectors' health here
    quiet_protocol_libraries()
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    secrets = load_or_create(demo_dir / "secrets.json")
    if secrets.created:  # nodes a lost secrets file administered: made anew (they hold only
        # the prefix records; the parts' identifiers live on the platform's node)
        shutil.rmtree(demo_dir / "ids", ignore_errors=True)
    # bound first, so the platform's URL (the enterprise node's site) is known, port 0 too
    sock = bind_socket(settings.http_host, settings.http_port)
    settings = settings.model_copy(update={"http_port": sock.getsockname()[1]})
    scheme = "https" if settings.tls_enabled else "http"
    console_url = _url(scheme, settings.http_host, settings.http_port)
    prefix = provision.DEMO_PREFIX
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sock.close)
        try:
            hierarchy = await stack.enter_async_context(
                start_hierarchy(
                    demo_dir / "ids",
                    parts.ports.ids_base,
                    secrets.ids_secret,
                    enterprise_site=console_url,
                    handle_signals=False,
                )
            )
        except HandleClientError as error:
            raise DemoError(
                f"the demo's identifier hierarchy in {demo_dir / 'ids'} refused to be set up "
                f"({error}); remove that folder to have it made anew."
            ) from error
        settings = settings.model_copy(update={"ids_roots": [hierarchy.urls["root"]]})
        platform = await asyncio.to_thread(parts.open_platform, settings)
        stack.callback(parts.close_platform, platform)
        server = parts.platform_server(settings, platform)
        serving = asyncio.create_task(server.serve([sock]), name="plantwire platform")
        stack.push_async_callback(_stop_server, server, serving)
        while not server.started:
            if serving.done():
                serving.result()
                return False
            await asyncio.sleep(0.02)
        if stop.is_set():  # Ctrl-C while starting
            return True

        tenant_id = await asyncio.to_thread(
            provision.ensure_tenant_and_user, platform, secrets.password
        )
        await asyncio.to_thread(provision.home_prefix, platform, tenant_id, prefix)

        registrar = PartRegistrar(
            console_url,
            prefix,
            f"300:{prefix_record(prefix)}",
            hierarchy.secrets[prefix],
            console_url,
        )
        stack.push_async_callback(registrar.aclose)
        simulator = Simulator(
            speed=SIM_SPEED,
            opcua_port=parts.ports.opcua,
            modbus_port=parts.ports.modbus,
            start=datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=_WARM_UP_S),
        )
        simulator.add_part_listener(registrar.add)
        endpoints = await simulator.start()
        stack.push_async_callback(simulator.stop)
        registering = asyncio.create_task(registrar.run(), name="plantwire demo parts")
        stack.push_async_callback(_stop_task, registering)
        await simulator.advance(int(_WARM_UP_S / simulator.plant.step_s))

        if stop.is_set():
            return True
        mqtt_url = platform.broker.mqtt_url if platform.broker is not None else None
        if platform.broker is not None:
            gateway = await _gateway(
                settings,
                console_url,
                demo_dir,
                secrets.password,
                endpoints,
                simulator.plant.machines,
            )
            gateway_stop = asyncio.Event()
            gateway_task = asyncio.create_task(gateway.run(gateway_stop), name="demo gateway")
            gateway_task.add_done_callback(_report_gateway)

            async def stop_gateway() -> None:
                gateway_stop.set()
                await asyncio.wait({gateway_task})  # a failure was logged when it happened

            stack.push_async_callback(stop_gateway)
            # the example is a part made while the gateway forwarded: its page has machine data
            deadline = asyncio.get_running_loop().time() + _FIRST_PART_WAIT_S
            while not gateway.uplink.stats.online and not stop.is_set():
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            registrar.trace_from(simulator.plant.now)
        else:
            parts.announce("  gateway: not started (broker_url names an external broker)")

        example = registrar.traced if platform.broker is not None else registrar.first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first_of(example, stop), _FIRST_PART_WAIT_S)
        info = {
            "console_url": console_url,
            "username": provision.DEMO_USERNAME,
            "password": secrets.password,
            "tenant": provision.DEMO_TENANT,
            "resolver_url": hierarchy.urls["recursive"],
            "example_identifier": registrar.stats.traced_handle or registrar.stats.last_handle,
            "mqtt_url": mqtt_url,
            "ids_nodes": dict(hierarchy.urls),
            "opcua_url": endpoints.opcua_url,
            "modbus_url": endpoints.modbus_url,
            "edge_node": "/".join(provision.EDGE_NODE),
        }
        _write_json(settings.data_dir / "demo.json", info)
        _announce(parts.announce, info, settings.data_dir / "demo.json")

        waiters = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(simulator.wait()),
            asyncio.create_task(asyncio.wait({serving})),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if serving.done() and not stop.is_set():
            raise DemoError("the platform's HTTP server stopped by itself; its log says why.")
        stats = registrar.stats
        parts.announce(
            f"plantwire demo stopping: {stats.registered} part identifier(s) registered, "
            f"{stats.failed} failed, {stats.dropped} dropped."
        )
    return True


def _report_gateway(task: asyncio.Task[None]) -> None:
    """The gateway stopping by itself: the rest of the demo goes on, this is logged."""
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.error("demo.gateway_failed", error=f"{type(error).__name__}: {error}", exc_info=error)


async def _first_of(first: asyncio.Event, stop: asyncio.Event) -> None:
    waiters = [asyncio.create_task(first.wait()), asyncio.create_task(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def _gateway(
    settings: Settings,
    console_url: str,
    demo_dir: Path,
    password: str,
    endpoints: SimEndpoints,
    machines: Sequence[MachineSpec],
) -> Gateway:
    """The demo gateway: its edge node provisioned through the device API as the demo user,
    its configuration written to ``<data dir>/demo/gateway/gateway.toml``."""
    folder = demo_dir / "gateway"
    async with httpx.AsyncClient(base_url=console_url, timeout=30.0) as client:
        token = await provision.login(client, provision.DEMO_USERNAME, password)
        client.headers["Authorization"] = f"Bearer {token}"
        credentials = await provision.ensure_edge_node(client, folder)
    group, edge_node = provision.EDGE_NODE
    uplink = Uplink(
        host=_loopback(settings.broker_mqtt_host),
        port=settings.broker_mqtt_port,
        username=credentials.username,
        password_file=credentials.password_file,
        primary_host=settings.sparkplug_host_id,
    )
    meters = modbus_section(endpoints.modbus_host, endpoints.modbus_port, endpoints.modbus_units)
    opcua = opcua_section(endpoints.opcua_url, machines)
    text = gateway_toml(group, edge_node, folder / "data", uplink, [meters, opcua])
    path = folder / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return Gateway(parse_config(text, str(path)), folder)


def _announce(say: Callable[[str], None], info: dict[str, Any], where: Path) -> None:
    say("plantwire demo is running:")
    say(f"  console:     {info['console_url']}  (open it in a browser and sign in)")
    say(f"  sign in:     user {info['username']!r}, password {info['password']!r}")
    say(f"  MQTT:        {info['mqtt_url']}    edge node {info['edge_node']}")
    say(f"  simulator:   OPC UA {info['opcua_url']}    Modbus {info['modbus_url']}")
    say(f"  identifiers: resolver {info['resolver_url']}")
    example = info["example_identifier"]
    if example is not None:
        say(f"  example:     plantwire ids resolve {example} --via {info['resolver_url']}")
        say(f"               {info['resolver_url']}/api/handles/{example}")
        say(f"  its page:    {product_url(info['console_url'], example)}")
    for name, url in info["ids_nodes"].items():
        say(f"    {name:<10} {url}")
    say(f"  all of this: {where}")
    say("Ctrl-C stops it.")

"""The ASGI app: composes each pillar's router with health, metrics and problem handling.
This module and cli.py are the only places that wire pillars together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import duckdb
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route

from plantwire import __version__
from plantwire.config import Settings
from plantwire.datadir import TELEMETRY_DIR
from plantwire.db import ping
from plantwire.ids.rest import HandleNode
from plantwire.ids.routes import audit_hook, platform_auth
from plantwire.ids.routes import router as ids_router
from plantwire.ids.server import NodeOptions, build_node
from plantwire.lifecycle import build_platform, open_store
from plantwire.middleware import BodySizeLimit, HttpMetrics, RequestLog
from plantwire.observability import register_platform_metrics
from plantwire.platform import Platform, platform_of
from plantwire.problems import install_problem_handlers
from plantwire.security.routes import router as security_router
from plantwire.telemetry.activity_routes import router as activity_router
from plantwire.telemetry.api import router as telemetry_router
from plantwire.telemetry.backup_requests import serve_backup_requests
from plantwire.telemetry.broker import broker_endpoint
from plantwire.telemetry.broker_metrics import BrokerMetrics, poll_periodically
from plantwire.telemetry.command_routes import router as commands_router
from plantwire.telemetry.commands import CommandWatch
from plantwire.telemetry.deadletter_routes import router as dead_letters_router
from plantwire.telemetry.devices import RegistryAccounts, RegistryDevices, broker_follower
from plantwire.telemetry.ingest import Ingest, IngestMetrics
from plantwire.telemetry.live import LiveHub, LiveMetrics, LiveOptions
from plantwire.telemetry.retention import retention_plans
from plantwire.telemetry.retention_routes import router as retention_router
from plantwire.telemetry.routes import router as devices_router
from plantwire.telemetry.sparkplug_intake import SparkplugIntake, SparkplugMetrics
from plantwire.telemetry.sparkplug_registry import RegistrySparkplug
from plantwire.telemetry.sparkplug_state import (
    HostStatePublisher,
    external_state_publisher,
    host_state_publisher,
)
from plantwire.telemetry.store import StoreError
from plantwire.telemetry.upkeep import Retention, UpkeepMetrics, maintain_periodically

__all__ = ["create_app"]

OPENAPI_URL = "/api/openapi.json"


async def _publish_state(
    publisher: HostStatePublisher, stop: asyncio.Event, done: anyio.Event
) -> None:
    try:
        await publisher.run(stop)
    finally:
        done.set()


#: The platform's own paths (and everything under them): the console mounted at "/" never
#: answers there, so unknown API paths stay problem+json 404s and the Handle API stays itself.
PLATFORM_PATHS = ("/api", "/hdl", "/healthz", "/readyz", "/metrics")


def create_app(
    settings: Settings, platform: Platform | None = None, *, console: bool = False
) -> FastAPI:
    """The platform's ASGI app. The data dir must be prepared (``lifecycle.prepare``). With
    ``console``, the web console is served at ``/`` (once per process: NiceGUI's app is a
    process singleton; ``plantwire up`` asks for it, the tests' in-process apps do not)."""
    platform = platform or build_platform(settings)

    if platform.ids is None:
        platform.ids = build_node(
            settings,
            NodeOptions(
                roots=settings.ids_roots,
                recursive=settings.ids_recursive,
                proxy_at_root=False,  # "/" belongs to the console
            ),
            audit=audit_hook(platform),
            platform_auth=platform_auth(platform),
            engine=platform.engine,
        )

    if platform.broker is not None:  # the bundled broker admits the registry's devices
        follow = broker_follower(platform.sessions, platform.broker)
        platform.account_listeners.append(follow)
        follow()
    host_state = platform.host_state = host_state_publisher(platform.broker, platform.metrics)
    if platform.broker is None:  # an external broker: its MQTT listener, if configured
        registry_accounts = RegistryAccounts(platform.sessions)
        host_state = platform.host_state = external_state_publisher(
            settings, registry_accounts, platform.metrics
        )
        if host_state is not None:
            registry_accounts.refresh()
            platform.account_listeners.append(registry_accounts.refresh)
    if host_state is not None:  # told after the broker (or the list) has the change
        platform.account_listeners.append(host_state.changed)

    upkeep_metrics = UpkeepMetrics(platform.metrics)
    retention = Retention(
        partial(retention_plans, platform.sessions, settings.telemetry_retention_days)
    )
    endpoint = (
        platform.broker.endpoint if platform.broker is not None else broker_endpoint(settings)
    )
    broker_metrics = None  # an external broker's monitoring port is not ours to know
    if platform.broker is not None:
        broker_metrics = BrokerMetrics.on_port(
            platform.broker.options.monitor_port, settings.broker_metrics_max_accounts
        )
        platform.metrics.register(broker_metrics)
    ingest_metrics = IngestMetrics(platform.metrics)
    sparkplug_metrics = SparkplugMetrics(platform.metrics)
    platform.commands = CommandWatch(platform.sessions)
    live = platform.live = LiveHub(
        LiveMetrics(platform.metrics),
        LiveOptions(settings.live_streams_per_tenant, settings.live_stream_buffer_points),
    )
    stop_ingest = asyncio.Event()
    stop_state = asyncio.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as background:
                if platform.store is not None:
                    background.start_soon(
                        maintain_periodically,
                        platform.store,
                        settings.store_maintenance_seconds,
                        upkeep_metrics,
                        retention,
                    )
                    background.start_soon(
                        serve_backup_requests, platform.store, settings.data_dir / TELEMETRY_DIR
                    )
                if broker_metrics is not None:
                    background.start_soon(
                        poll_periodically, broker_metrics, settings.broker_metrics_seconds
                    )
                if platform.store is not None and endpoint is not None:
                    platform.ingest = Ingest(
                        endpoint,
                        platform.store,
                        RegistryDevices(platform.sessions),
                        ingest_metrics,
                        watch=platform.commands,
                        feed=live.publish,
                        sparkplug=SparkplugIntake(
                            RegistrySparkplug(platform.sessions),
                            sparkplug_metrics,
                            host_id=settings.sparkplug_host_id,
                            publishes_state=host_state is not None,
                        ),
                    )
                    background.start_soon(platform.ingest.run, stop_ingest)
                state_done = anyio.Event()
                if host_state is not None:
                    background.start_soon(_publish_state, host_state, stop_state, state_done)
                try:
                    yield
                finally:
                    live.close()  # open streams end (if the server has not ended them)
                    stop_ingest.set()
                    stop_state.set()  # the host's STATE deaths, published before the broker stops
                    if platform.ingest is not None:  # it finishes the batch in hand
                        with anyio.move_on_after(30):
                            await platform.ingest.stopped.wait()
                    if host_state is not None:
                        with anyio.move_on_after(15):
                            await state_done.wait()
                    background.cancel_scope.cancel()  # waits for a run in progress
        finally:
            if platform.store is not None:
                await anyio.to_thread.run_sync(platform.store.close)
                platform.store = None
            if platform.ids is not None:
                await platform.ids.aclose()
            if platform.broker is not None:
                await anyio.to_thread.run_sync(platform.broker.stop)
            platform.engine.dispose()

    app = FastAPI(
        title="plantwire",
        version=__version__,
        summary="Open Industrial Internet platform",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # Swagger UI and ReDoc load from CDNs; plants are often air-gapped
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_problem_handlers(app)
    register_platform_metrics(platform.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog, metrics=HttpMetrics(platform.metrics))
    app.include_router(security_router)
    app.include_router(ids_router)
    app.include_router(devices_router)
    app.include_router(telemetry_router)
    app.include_router(dead_letters_router)
    app.include_router(commands_router)
    app.include_router(retention_router)
    app.include_router(activity_router)
    _mount_handle_api(app, platform.ids.node)
    _add_service_routes(app)
    if console:
        from plantwire.console import mount_console  # NiceGUI only where a console is served

        mount_console(
            app,
            data_dir=settings.data_dir,
            cookie_secure=settings.cookie_secure,
            platform_paths=PLATFORM_PATHS,
        )
    if platform.store is None:
        platform.store = open_store(settings)  # last: nothing after it may fail and leak it
    return app


def _mount_handle_api(app: FastAPI, node: HandleNode) -> None:
    """The identifier node's own paths: the Handle.net REST API and the /hdl proxy answer
    in the Handle JSON shape (or HTML), not problem+json, straight from the node's ASGI app."""
    for path in ("/api/handles", "/api/prefixes", "/api/sessions", "/api/verifications"):
        app.router.routes.append(Route(path, node, include_in_schema=False))
        app.mount(path, node)
    app.mount("/hdl", node)


async def _store_check(platform: Platform) -> str:
    """Readiness of the time-series store: a trivial query answered within 5 s."""
    store = platform.store
    if store is None:
        return "not open"
    try:
        with anyio.fail_after(5):
            await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)
    except (StoreError, duckdb.Error, OSError, TimeoutError) as error:
        return f"unreachable: {type(error).__name__}"
    return "ok"


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/api", tags=["service"], summary="What this server is, and where to go next")
    async def index() -> dict[str, Any]:
        return {
            "name": "plantwire",
            "version": __version__,
            "links": {
                "openapi": OPENAPI_URL,
                "login": "/api/v1/auth/login",
                "health": "/healthz",
                "ready": "/readyz",
                "metrics": "/metrics",
            },
        }

    @app.get("/healthz", tags=["service"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["service"],
        summary="The platform can serve: its database and its time-series store answer",
        responses={503: {"description": "A dependency is unreachable"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        platform = platform_of(request)
        checks: dict[str, Any] = {}
        try:
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(ping, platform.engine, abandon_on_cancel=True)
            checks["database"] = "ok"
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            checks["database"] = f"unreachable: {type(error).__name__}"
        checks["telemetry_store"] = await _store_check(platform)
        if platform.ingest is not None:  # ingest from a broker is configured
            checks["broker"] = "ok" if platform.ingest.js is not None else "unreachable"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,  # documents the text exposition format, not JSON
    )
    async def metrics(request: Request) -> Response:
        registry = platform_of(request).metrics
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

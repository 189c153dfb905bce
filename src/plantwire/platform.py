"""The running platform's shared parts, built once by ``app.create_app`` and reached by
request handlers through the ``platform`` dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from plantwire.config import Settings
from plantwire.security.hashing import PasswordHashing
from plantwire.security.ratelimit import LoginLimiter

if TYPE_CHECKING:
    from plantwire.ids.server import RunningNode
    from plantwire.telemetry.broker import BundledBroker
    from plantwire.telemetry.commands import CommandWatch
    from plantwire.telemetry.ingest import Ingest
    from plantwire.telemetry.live import LiveHub
    from plantwire.telemetry.sparkplug_state import HostStatePublisher
    from plantwire.telemetry.store import TimeSeriesStore

__all__ = ["Platform", "get_platform", "platform_of"]


@dataclass(slots=True)
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    passwords: PasswordHashing
    login_limiter: LoginLimiter
    metrics: CollectorRegistry
    ids: RunningNode | None = None  # the identifier node, attached by app.create_app
    # Called after every committed change of the broker's accounts: a device created or
    # deleted, a device secret replaced, a tenant deleted (accounts_changed()).
    account_listeners: list[Callable[[], None]] = field(default_factory=list)
    # the bundled broker `plantwire up` started; the app's shutdown stops it (uvicorn
    # re-raises SIGTERM/SIGINT after shutdown, so code after uvicorn.run never runs then)
    broker: BundledBroker | None = None
    # the time-series store (DuckDB allows one writing process: this one), opened by
    # app.create_app and closed by the app's shutdown
    store: TimeSeriesStore | None = None
    # durable ingest from the broker into the store, run by the app's lifespan when both
    # exist (the bundled broker, or broker_url)
    ingest: Ingest | None = None
    # commands sent to devices, waiting for ingest to read their value back
    commands: CommandWatch | None = None
    # live streams of devices' points, fed by ingest after each commit; closed when the
    # server begins to shut down (serving.PlatformServer) and by the app's shutdown
    live: LiveHub | None = None
    # the Sparkplug host's STATE in each tenant account with an edge node (the bundled
    # broker, or an external one's MQTT listener given sparkplug_state_mqtt_url)
    host_state: HostStatePublisher | None = None

    def accounts_changed(self) -> None:
        """After a committed change of tenants, devices or device secrets: tell who mirrors
        them (the bundled broker's accounts)."""
        for listener in self.account_listeners:
            listener()


def platform_of(request: Request) -> Platform:
    platform = request.app.state.platform
    assert isinstance(platform, Platform)
    return platform


async def get_platform(request: Request) -> Platform:
    """The ``Depends`` form of ``platform_of``: async, so FastAPI runs it on the event loop
    instead of sending every request through a worker thread for it."""
    return platform_of(request)

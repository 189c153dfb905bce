"""The Sparkplug host's STATE (Sparkplug 3.0, 5.3 "Host Application Session Establishment"):
``{"online": true, "timestamp": <ms>}`` retained at QoS 1 on ``spBv1.0/STATE/<host id>`` once
connected, the same with ``false`` and the same timestamp as the connection's will, and
published by the host itself when it stops cleanly.

Tenants are NATS accounts, and nats-server keeps MQTT retained messages per account, made
only by an MQTT client's retained PUBLISH (a NATS publish, imported or not, is delivered to
subscribers but never retained). So the host connects over MQTT into each tenant account that
has a Sparkplug edge node — one connection per such tenant, as the broker's user
``sparkplug-host/<tenant>`` that may publish this STATE and nothing else — and each
connection carries its own will. Killing the platform closes them all, and the broker
publishes every will. With MQTT over TLS the connections are TLS too (``mqtt_tls``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry, Gauge

from plantwire.telemetry.accounts import TenantAccount, host_username
from plantwire.telemetry.mqtt_packets import (
    PINGRESP,
    PUBACK,
    Incoming,
    MqttError,
    Will,
    connack_code,
    connect,
    disconnect,
    pingreq,
    puback_id,
    publish,
    read_packet,
)
from plantwire.telemetry.mqtt_tls import external_tls_context, host_tls_context

if TYPE_CHECKING:
    from plantwire.config import Settings
    from plantwire.telemetry.broker import BundledBroker

__all__ = [
    "HostStatePublisher",
    "dial_address",
    "external_state_publisher",
    "host_state_publisher",
    "is_state_payload",
    "state_payload",
    "state_topic",
]

_log = structlog.get_logger("plantwire.sparkplug")


def state_topic(host_id: str) -> str:
    return f"spBv1.0/STATE/{host_id}"


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


def is_state_payload(data: bytes) -> bool:
    """Whether ``data`` is exactly what `state_payload` makes (of some flag and timestamp)."""
    try:
        found = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return False
    if not isinstance(found, dict) or found.keys() != {"online", "timestamp"}:
        return False
    online, timestamp = found["online"], found["timestamp"]
    if not isinstance(online, bool) or type(timestamp) is not int or timestamp < 0:
        return False
    return data == state_payload(online, timestamp)


class HostStatePublisher:
    """Keeps the host's STATE birth published in each tenant account that has an edge node
    (``tenants()``, read again after each ``changed()``), reconnecting with backoff; ``run``
    until ``stop`` is set, then publishes the deaths and disconnects."""

    def __init__(
        self,
        tenants: Callable[[], Sequence[TenantAccount]],
        host_id: str,
        address: tuple[str, int],
        password: str,
        registry: CollectorRegistry | None = None,
        *,
        tls: Callable[[], ssl.SSLContext] | None = None,
        keepalive: int = 30,
        timeout: float = 10.0,
        retry_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host_id = host_id
        self.topic = state_topic(host_id)
        self._tenants = tenants
        self._address = address
        self._password = password
        self._tls = tls  # called for each connection: renewed certificate files are read
        self._keepalive = keepalive
        self._timeout = timeout
        self._retry = retry_seconds
        self._clock = clock
        self._client_id = f"plantwire-host-{secrets.token_hex(6)}"  # not guessed by devices
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._last_ms = 0
        #: tenant → the timestamp of the STATE birth its account holds now
        self.online: dict[str, int] = {}
        self._gauge = Gauge(
            "plantwire_sparkplug_host_online_accounts",
            "Tenant accounts where the host's STATE birth (online) is published.",
            registry=registry,
        )
        self._gauge.set_function(lambda: len(self.online))

    def changed(self) -> None:
        """The broker's tenants changed (from any thread)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        sessions: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        waiting = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                wanted = {tenant.tenant_id for tenant in self._tenants() if tenant.has_sparkplug}
                for tenant_id in wanted - sessions.keys():
                    ended = asyncio.Event()
                    task = asyncio.create_task(self._session(tenant_id, ended))
                    sessions[tenant_id] = (ended, task)
                for tenant_id in sessions.keys() - wanted:
                    ended, task = sessions.pop(tenant_id)
                    ended.set()  # it publishes its death and disconnects
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({woken, waiting}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            waiting.cancel()
            for ended, _ in sessions.values():
                ended.set()
            tasks = [task for _, task in sessions.values()]
            if tasks:
                await asyncio.wait(tasks, timeout=self._timeout)
            for task in tasks:
                task.cancel()
            self._loop = None

    async def _session(self, tenant_id: str, ended: asyncio.Event) -> None:
        attempt = 0
        while not ended.is_set():
            try:
                await self._connected(tenant_id, ended)
                attempt = 0
            # OSError includes ssl.SSLError; ValueError: a certificate file holds none
            except (OSError, MqttError, TimeoutError, ValueError) as error:
                _log.warning("sparkplug.state_connection_lost", tenant=tenant_id, error=str(error))
            finally:
                self.online.pop(tenant_id, None)
            if ended.is_set():
                return
            delay = self._retry[min(attempt, len(self._retry) - 1)]
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), delay)

    async def _connected(self, tenant_id: str, ended: asyncio.Event) -> None:
        """One MQTT connection: birth, keep alive until ``ended``, death. Raises when the
        connection is refused or lost."""
        timestamp = self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        host, port = self._address
        context = self._tls() if self._tls is not None else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), self._timeout
        )
        buffer = bytearray()
        acks: asyncio.Queue[int] = asyncio.Queue()

        async def next_packet() -> Incoming:
            while True:
                packet = read_packet(buffer)
                if packet is not None:
                    return packet
                chunk = await reader.read(4096)
                if not chunk:
                    raise ConnectionResetError("the broker closed the connection")
                buffer.extend(chunk)

        async def read_all() -> None:
            while True:
                packet = await next_packet()
                if packet.kind == PUBACK:
                    acks.put_nowait(puback_id(packet))
                elif packet.kind != PINGRESP:
                    raise MqttError(f"unexpected packet type {packet.kind >> 4}")

        async def state(online: bool, packet_id: int) -> None:
            message = state_payload(online, timestamp)
            writer.write(publish(self.topic, message, packet_id, retain=True))
            await writer.drain()
            while await asyncio.wait_for(acks.get(), self._timeout) != packet_id:
                pass

        reading: asyncio.Task[None] | None = None
        waiting = asyncio.ensure_future(ended.wait())
        try:
            will = Will(self.topic, state_payload(False, timestamp))
            writer.write(
                connect(
                    self._client_id,
                    host_username(tenant_id),
                    self._password,
                    keepalive=self._keepalive,
                    will=will,
                )
            )
            await writer.drain()
            code = connack_code(await asyncio.wait_for(next_packet(), self._timeout))
            if code != 0:
                raise MqttError(f"the broker refused the connection (CONNACK {code})")
            reading = asyncio.create_task(read_all())
            await state(True, 1)
            self.online[tenant_id] = timestamp
            _log.info("sparkplug.state_online", tenant=tenant_id, timestamp=timestamp)
            while not ended.is_set():
                await asyncio.wait(
                    {reading, waiting},
                    timeout=self._keepalive / 2,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if reading.done():
                    reading.result()  # raises what ended it
                    raise ConnectionResetError("the broker closed the connection")
                if not ended.is_set():
                    writer.write(pingreq())
                    await writer.drain()
            del self.online[tenant_id]
            await state(False, 2)
            writer.write(disconnect())
            await writer.drain()
            _log.info("sparkplug.state_offline", tenant=tenant_id, timestamp=timestamp)
        finally:
            waiting.cancel()
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, MqttError):
                    await reading
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def dial_address(listen_host: str) -> str:
    """Where to reach a listener bound to ``listen_host``: loopback for the wildcard
    addresses, else the address or name itself."""
    host = listen_host.removeprefix("[").removesuffix("]")
    if host in ("", "0.0.0.0"):  # noqa: S104 - matched, not bound
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def host_state_publisher(
    broker: BundledBroker | None, registry: CollectorRegistry
) -> HostStatePublisher | None:
    """The STATE publisher of the bundled broker's host user; None without a bundled broker
    (an external one's accounts are not ours) or a host id. With MQTT over TLS it pins the
    listener's certificate and, when clients need one, presents the host's own
    (``mqtt_tls``)."""
    if broker is None or broker.sparkplug_host_id is None:
        return None
    options = broker.options
    tls = options.mqtt_tls
    context: Callable[[], ssl.SSLContext] | None = None
    if tls is not None:
        client = options.host_client_cert if tls.clients_ca is not None else None
        context = partial(host_tls_context, tls.cert, client)
    return HostStatePublisher(
        lambda: broker.tenants,
        broker.sparkplug_host_id,
        (dial_address(options.mqtt_host), options.mqtt_port),
        broker.endpoint.password or "",
        registry,
        tls=context,
    )


def external_state_publisher(
    settings: Settings,
    tenants: Callable[[], Sequence[TenantAccount]],
    registry: CollectorRegistry,
) -> HostStatePublisher | None:
    """The STATE publisher for an external broker (``broker_url``), when
    ``sparkplug_state_mqtt_url`` names its MQTT listener: the operator has made the user
    ``sparkplug-host/<tenant id>`` in each tenant account, with the permissions and the
    password the bundled broker would give it; ``tenants``: the registry's."""
    url, password = settings.sparkplug_state_mqtt_url, settings.sparkplug_state_mqtt_password
    if url is None or password is None:
        return None
    parts = urlsplit(url)
    secure = parts.scheme == "mqtts"
    cert, key = settings.sparkplug_state_mqtt_cert, settings.sparkplug_state_mqtt_key
    client = (cert, key) if cert is not None and key is not None else None
    context = None
    if secure:
        context = partial(external_tls_context, settings.sparkplug_state_mqtt_ca, client)
    return HostStatePublisher(
        tenants,
        settings.sparkplug_host_id,
        (parts.hostname or "", parts.port or (8883 if secure else 1883)),
        password.get_secret_value(),
        registry,
        tls=context,
    )

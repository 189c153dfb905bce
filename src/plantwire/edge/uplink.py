"""The gateway's uplink: its Sparkplug B edge node session (`node.EdgeNodeSession`) over an
MQTT connection (aiomqtt), with the store-and-forward buffer (`buffer.PointBuffer`) behind it.

One connection at a time, made again with backoff whenever it is lost; each is a new
Sparkplug session (the next ``bdSeq``, kept in a file across restarts), with the NDEATH as
its will. With a primary host configured, births wait for that host's STATE to say it is
online, and its death ends the connection (Sparkplug 3.0, "Edge Node Session Establishment").

Points reach :meth:`SparkplugUplink.submit` from the connectors. Only what changed goes on
(report by exception). While the session is up and nothing waits in the buffer they are
published at once; otherwise — uplink down, host offline, or older points still waiting —
they are appended to the buffer, and on the next session they are replayed first, oldest
first, flagged historical, each batch removed only once the broker acknowledged it; then live
data resumes. So points leave in the order they were read, and none is lost.

Only the sender task publishes, so the wire order of messages is their ``seq`` order.
Data and births are published at QoS 1 (``qos``): the buffer may forget a point only once
the broker has it, which QoS 0 — what Sparkplug 3.0 asks for data — cannot tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from plantwire.edge.buffer import BufferedPoint, PointBuffer
from plantwire.edge.node import CommandError, EdgeNodeSession, MetricSpec, Rebirth, Write
from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import DataType
from plantwire.telemetry.sparkplug.topics import HostStateTopic, MessageType, Topic

__all__ = ["SparkplugUplink", "UplinkSettings", "UplinkStats"]

_log = structlog.get_logger("plantwire.edge")


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Where and how the edge node connects. ``client_id`` defaults to
    ``<group>-<edge node>``; ``primary_host`` is the host application id whose STATE the
    node waits for (None: publish as soon as connected)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    tls: ssl.SSLContext | None = None
    primary_host: str | None = None
    qos: int = 1
    keepalive: int = 30
    batch: int = 1000  # points a batch of messages holds at most (replayed or live)
    window: int = 8  # batches published and not yet acknowledged by the broker, at most
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    host_wait: float = 5.0  # waiting longer than this for the host's STATE, subscribe again


@dataclass(slots=True)
class UplinkStats:
    """What the uplink did since it started (the gateway reports these)."""

    connected: bool = False
    online: bool = False  # births published in the current session
    sessions: int = 0
    published: int = 0  # points published live
    replayed: int = 0  # points published from the buffer, as historical
    buffered: int = 0  # points put into the buffer
    invalid: int = 0  # points whose value their metric's type cannot carry, dropped
    births: int = 0
    commands: int = 0
    command_errors: int = 0
    state_resubscribes: int = 0  # the host's STATE asked for again (see ``_await_host``)
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class SparkplugUplink:
    """The edge node's connection to the broker (see the module's docstring)."""

    def __init__(
        self,
        session: EdgeNodeSession,
        buffer: PointBuffer,
        settings: UplinkSettings,
        *,
        on_write: Callable[[Write], Awaitable[bool]] | None = None,
        bd_seq_file: Path | None = None,
    ) -> None:
        self.session = session
        self.buffer = buffer
        self.settings = settings
        self.stats = UplinkStats()
        self._on_write = on_write
        self._bd_seq_file = bd_seq_file
        if bd_seq_file is not None and bd_seq_file.exists():
            session.bd_seq = _read_bd_seq(bd_seq_file)
        self._live: list[BufferedPoint] | None = None  # None: not sending live
        self._backlog = len(buffer) > 0
        self._wake = asyncio.Event()
        self._rebirth = False
        self._host_online = asyncio.Event()
        self._host_timestamp = -1

    # --- from the connectors -------------------------------------------------------------

    def submit(self, points: Sequence[BufferedPoint]) -> None:
        """Takes points read by the connectors, oldest first: publishes what changed, or
        buffers it while that cannot be done now."""
        changed = self.session.changes(points)
        if not changed:
            return
        self._declare(changed)
        if self._live is not None and not self._backlog:
            self._live.extend(changed)
            self._wake.set()
        else:
            self._to_buffer(changed)

    def _to_buffer(self, points: Sequence[BufferedPoint]) -> None:
        self.buffer.append(points)
        self.stats.buffered += len(points)
        self._backlog = True

    def _declare(self, points: Sequence[BufferedPoint]) -> None:
        """Declares metrics first seen in ``points``; a new one needs births again."""
        for point in points:
            try:
                self.session.alias(point.device, point.metric)
            except KeyError:
                spec = MetricSpec(point.metric, DataType(point.datatype))
                if self.session.declare(point.device, spec):
                    self._rebirth = True

    # --- the connection ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connects, publishes, reconnects until ``stop`` is set; then publishes the NDEATH
        itself and disconnects."""
        delay = self.settings.reconnect_min
        while not stop.is_set():
            self.session.next_session()
            self._save_bd_seq()
            try:
                await self._session(stop)
                delay = self.settings.reconnect_min
            except (aiomqtt.MqttError, OSError) as error:
                self._error(f"uplink: {error}")
            finally:
                self._go_offline()
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self, stop: asyncio.Event) -> None:
        settings = self.settings
        will_topic, will = self.session.will(_now_ms())
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            identifier=settings.client_id or f"{self.session.group}-{self.session.edge_node}",
            username=settings.username,
            password=settings.password,
            will=aiomqtt.Will(will_topic, will, qos=1, retain=False),
            keepalive=settings.keepalive,
            tls_context=settings.tls,
            clean_session=True,
            max_inflight_messages=200,
            timeout=30,
        )
        # window batches of a message per device may wait for their PUBACKs at once (aiomqtt
        # warns past 10 pending calls)
        client.pending_calls_threshold = max(200, settings.window * (len(self.session.devices) + 1))
        async with client:
            self.stats.connected = True
            self.stats.sessions += 1
            group, edge = self.session.group, self.session.edge_node
            topics = [str(Topic(MessageType.NCMD, group, edge)), f"spBv1.0/{group}/DCMD/{edge}/+"]
            if settings.primary_host is not None:
                topics.append(str(HostStateTopic(settings.primary_host)))
            else:
                self._host_online.set()
            await client.subscribe([(topic, 1) for topic in topics])
            receiver = asyncio.create_task(self._receive(client))
            sender = asyncio.create_task(self._send(client))
            stopped = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {receiver, sender, stopped}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (receiver, sender, stopped):
                    task.cancel()
                for task in (receiver, sender, stopped):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            error = next(
                (task.exception() for task in done if task is not stopped and task.exception()),
                None,
            )
            if error is not None and not isinstance(error, _HostOffline):
                raise error
            # a clean stop, or the primary host gone: the death, then the disconnect
            self._go_offline()
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(will_topic, will, qos=1)
            if error is not None:
                self._error(str(error))

    def _go_offline(self) -> None:
        """The session is over: what was waiting to go live goes into the buffer."""
        self.stats.connected = self.stats.online = False
        self._host_online.clear()
        if self._live:
            self._to_buffer(self._live)
        self._live = None

    # --- sending -------------------------------------------------------------------------

    async def _send(self, client: aiomqtt.Client) -> None:
        """Publishes births, then the buffer's points, then live ones, keeping up to
        ``window`` batches in flight (published, their PUBACKs awaited in order): a batch
        from the buffer is acked there once the broker has it and every batch before it; a
        live batch not confirmed when the session ends goes back, in order, to the buffer."""
        await self._await_host(client)
        await self._births(client)
        flights: deque[_Flight] = deque()
        after = 0  # the buffer's last point taken into a flight
        try:
            while True:
                self._landed(flights)
                if self._rebirth:
                    await self._land(flights, 0)  # births after the data before them
                    await self._births(client)
                if len(flights) >= self.settings.window:
                    await self._land(flights, self.settings.window - 1)
                    continue
                if self._backlog:
                    taken = self.buffer.peek(self.settings.batch, after)
                    if not taken:
                        self._backlog = False
                        self._live = []
                        after = 0
                        continue
                    points = [point for _, point in taken]
                    self._declare(points)
                    if self._rebirth:
                        continue
                    after = taken[-1][0]
                    messages = self._encode(points, historical=True)
                    flights.append(
                        _Flight(self._launch(client, messages), None, after, len(points))
                    )
                    continue
                if self._live is None:
                    self._live = []
                if not self._live:
                    await self._idle(flights)
                    continue
                batch = self._live[: self.settings.batch]
                del self._live[: self.settings.batch]
                messages = self._encode(batch, historical=False)
                flights.append(_Flight(self._launch(client, messages), batch, None, len(batch)))
        finally:
            self._landed(flights)  # confirmed already: acked, counted
            unconfirmed: list[BufferedPoint] = []
            for flight in flights:
                flight.task.cancel()
                if flight.live is not None:
                    unconfirmed += flight.live
                else:
                    self._backlog = True  # still in the buffer: replayed first next time
            if unconfirmed:  # in order, before what waits to go live, for the buffer
                self._live = unconfirmed + (self._live or [])
            # their errors are the session's (raised from _land) or its end's
            await asyncio.gather(*(flight.task for flight in flights), return_exceptions=True)

    def _launch(
        self, client: aiomqtt.Client, messages: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        # tasks start in the order made, so the packets go out in seq order
        return asyncio.ensure_future(self._publish(client, messages))

    def _landed(self, flights: deque[_Flight]) -> None:
        """Takes the oldest flights the broker confirmed, in order, up to the first that
        is still on its way (or failed: its error comes from `_land`)."""
        while flights and flights[0].task.done() and not flights[0].task.exception():
            self._confirm(flights.popleft())

    async def _land(self, flights: deque[_Flight], keep: int) -> None:
        """Waits, oldest first, until at most ``keep`` flights are on their way."""
        while len(flights) > keep:
            await asyncio.shield(flights[0].task)  # its failure ends the session
            self._confirm(flights.popleft())

    def _confirm(self, flight: _Flight) -> None:
        if flight.through is not None:
            self.buffer.ack(flight.through)
            self.stats.replayed += flight.count
        else:
            self.stats.published += flight.count

    async def _idle(self, flights: deque[_Flight]) -> None:
        """Nothing to send: waits for points to send, or for the oldest flight to land."""
        self._wake.clear()
        if not flights:
            await self._wake.wait()
            return
        woken = asyncio.ensure_future(self._wake.wait())
        either: set[asyncio.Future[Any]] = {woken, flights[0].task}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken
        if flights[0].task.done():
            await self._land(flights, len(flights) - 1)

    async def _births(self, client: aiomqtt.Client) -> None:
        self._rebirth = False
        await self._publish(client, self.session.births(_now_ms()))
        self.stats.births += 1
        self.stats.online = True

    async def _publish(self, client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> None:
        # tasks start in the order made, so the packets go out in seq order
        await asyncio.gather(
            *(client.publish(topic, payload, qos=self.settings.qos) for topic, payload in messages)
        )

    def _encode(self, points: list[BufferedPoint], *, historical: bool) -> list[tuple[str, bytes]]:
        """The messages of ``points``; a point its metric's type cannot carry is dropped
        and counted, not allowed to hold up the others."""
        try:
            return self.session.data(points, _now_ms(), historical=historical)
        except (PayloadError, ValueError, OverflowError):
            pass
        messages = []
        for point in points:
            try:
                messages += self.session.data([point], _now_ms(), historical=historical)
            except (PayloadError, ValueError, OverflowError) as error:
                self.stats.invalid += 1
                self._error(f"point {point.device}/{point.metric} dropped: {error}")
        return messages

    async def _await_host(self, client: aiomqtt.Client) -> None:
        """Waits for the primary host's STATE to say online, subscribing to it again after
        ``host_wait`` seconds, then twice as long, up to a minute: a new SUBSCRIBE makes the
        broker send the retained STATE again (MQTT 3.1.1, 3.8.4), and a subscription made
        just as the host published its birth can miss both the live message and, on a broker
        that stores retained messages asynchronously (nats-server), the retained one."""
        wait = self.settings.host_wait
        while not self._host_online.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._host_online.wait(), wait)
            if not self._host_online.is_set() and self.settings.primary_host is not None:
                self.stats.state_resubscribes += 1
                await client.subscribe(str(HostStateTopic(self.settings.primary_host)), qos=1)
                wait = min(wait * 2, 60.0)

    # --- receiving -----------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic.startswith("spBv1.0/STATE/"):
                self._state(payload)
                continue
            try:
                wanted = self.session.command(topic, payload)
            except CommandError as error:
                self.stats.command_errors += 1
                self._error(f"command on {topic}: {error}")
                continue
            for item in wanted:
                self.stats.commands += 1
                if isinstance(item, Rebirth):
                    self._rebirth = True
                    self._wake.set()
                elif self._on_write is not None:
                    await self._write(item)

    async def _write(self, write: Write) -> None:
        assert self._on_write is not None
        if await self._on_write(write):
            # the next read reports the value even if it did not change: the read-back
            self.session.forget(write.device, write.metric)
        else:
            self.stats.command_errors += 1

    def _state(self, payload: bytes) -> None:
        """The primary host's STATE: births wait for it online; its death ends the session."""
        try:
            state = json.loads(payload)
            online, stamp = state["online"], state["timestamp"]
            if not isinstance(online, bool) or not isinstance(stamp, int):
                raise TypeError("online must be a boolean and timestamp an integer")
        except (ValueError, KeyError, TypeError) as error:
            self._error(f"STATE of the primary host unreadable: {error}")
            return
        if stamp < self._host_timestamp:
            return  # an older STATE than one already seen
        self._host_timestamp = stamp
        if online:
            self._host_online.set()
        elif self._host_online.is_set():
            raise _HostOffline(f"the primary host {self.settings.primary_host!r} went offline")

    # --- bookkeeping ---------------------------------------------------------------------

    def _error(self, text: str) -> None:
        self.stats.last_error = text
        self.stats.errors = [*self.stats.errors[-9:], text]
        _log.warning("edge.uplink", error=text)

    def _save_bd_seq(self) -> None:
        if self._bd_seq_file is None:
            return
        temporary = self._bd_seq_file.with_suffix(".tmp")
        temporary.write_text(str(self.session.bd_seq))
        os.replace(temporary, self._bd_seq_file)


@dataclass(frozen=True, slots=True)
class _Flight:
    """A batch published and not yet confirmed: its live points (None: from the buffer), or
    the buffer's sequence number to ack through once it is confirmed."""

    task: asyncio.Future[None]
    live: list[BufferedPoint] | None
    through: int | None
    count: int


class _HostOffline(Exception):
    """The primary host's STATE said it went offline: the session ends (NDEATH first)."""


def _read_bd_seq(path: Path) -> int:
    try:
        return int(path.read_text().strip()) % 256
    except ValueError:
        return 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

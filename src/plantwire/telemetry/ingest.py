"""Durable ingest: the telemetry JetStream stream → decode → time-series store → ack.

A device's message is *accepted* once it is in the ``TELEMETRY`` stream (in the platform's
NATS account, capturing what every tenant account exports). A durable pull consumer fetches
it in batches; each batch is decoded, its refused messages are put in the ``DEADLETTER``
stream with their reason, its points are appended to the store **in one transaction with the
batch's last stream sequence** (the store's checkpoint), and only then is the batch acked.
So a crash at any moment loses nothing (unacked messages are delivered again) and writes
nothing twice (messages at or below the checkpoint are acked without being applied again).
A flat payload is stamped with the time the stream stored it, so a redelivery decodes to
the same points.

The store failing stops the acks, not the process: the batch is retried with backoff and
the messages wait in the stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NotJSMessageError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from plantwire.telemetry.accounts import TELEMETRY_PREFIX
from plantwire.telemetry.broker import BrokerEndpoint
from plantwire.telemetry.commands import CommandWatch
from plantwire.telemetry.payloads import PayloadError, decode_samples
from plantwire.telemetry.pull import PullBatches, ack_position
from plantwire.telemetry.sparkplug_intake import (
    SPARKPLUG_SUBJECTS,
    DirectoryError,
    SparkplugIntake,
)
from plantwire.telemetry.store import (
    PointBatch,
    StaleCheckpointError,
    StoreError,
    TimeSeriesStore,
)

__all__ = [
    "CHECKPOINT",
    "CONSUMER",
    "DEAD_LETTER_STREAM",
    "TELEMETRY_STREAM",
    "DeviceDirectory",
    "Ingest",
    "IngestMetrics",
    "IngestOptions",
    "dead_letter_subject",
    "parse_telemetry_subject",
]

TELEMETRY_STREAM = "TELEMETRY"
DEAD_LETTER_STREAM = "DEADLETTER"
CONSUMER = "ingest"
CHECKPOINT = "telemetry"  # the store checkpoint this consumer commits with its data
JSON_SUBJECTS = f"{TELEMETRY_PREFIX}.*.plantwire.v1.devices.*.telemetry"
DEAD_LETTER_PREFIX = "deadletter"

# Headers of a dead letter (the payload is the message as the device sent it).
REASON = "Plantwire-Reason"
DETAIL = "Plantwire-Detail"
SOURCE_SEQUENCE = "Plantwire-Stream-Sequence"
SOURCE_TIME = "Plantwire-Received-Ms"

_log = structlog.get_logger("plantwire.ingest")


def parse_telemetry_subject(subject: str) -> tuple[str, str] | None:
    """(tenant id, device id) of ``tenant.<t>.plantwire.v1.devices.<d>.telemetry``; None for
    any other subject. A ``.`` in a device id travels as ``//`` (nats-server's MQTT rule)."""
    parts = subject.split(".")
    if (
        len(parts) != 7
        or parts[0] != TELEMETRY_PREFIX
        or parts[2:5] != ["plantwire", "v1", "devices"]
        or parts[6] != "telemetry"
    ):
        return None
    return parts[1], parts[5].replace("//", ".")


def dead_letter_subject(tenant_id: str, device_id: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{tenant_id}.{device_id.replace('.', '//')}"


class DeviceDirectory(Protocol):
    """What ingest needs to know of devices: for each (tenant, device) of a batch, the
    declared data types of its metrics, or None for a device that does not exist;
    `DirectoryError` when the registry cannot say (ingest waits and tries again)."""

    def declared(
        self, keys: Iterable[tuple[str, str]]
    ) -> Mapping[tuple[str, str], Mapping[str, str] | None]: ...


@dataclass(frozen=True, slots=True)
class IngestOptions:
    batch: int = 1000  # messages per fetch
    # While a backlog waits, fetches take up to this many: an append's cost grows slower
    # than its size (the latest-value upsert of 10,000 series in one go costs 3.5 µs a
    # point, of 50,000 2.3 µs), so catching up goes faster the more it takes at once.
    max_batch: int = 5000
    # and at most this many bytes of messages (a larger message comes alone): what one batch
    # holds in memory stays bounded however many points a message carries
    max_bytes: int = 8 * 1024**2
    fetch_seconds: float = 1.0  # how long a fetch waits for a full batch
    # After a fetch that brought less than a full batch: wait this long before the next, so
    # a trickle is stored in few appends (an append costs about as much for 10 messages as
    # for 1,000: its transaction, the latest-value upsert and the checkpoint).
    linger_seconds: float = 0.1
    observe_seconds: float = 5.0  # the lag and stream gauges' refresh while busy
    ack_wait_seconds: float = 60.0  # unacked messages come back after this
    stream_max_age_seconds: float = 7 * 24 * 3600
    stream_max_bytes: int = 10 * 1024**3
    dead_letter_max_age_seconds: float = 30 * 24 * 3600
    dead_letter_max_bytes: int = 1024**3
    retry_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # store failures


class IngestMetrics:
    """Prometheus metrics of ingest, in the platform's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "plantwire_ingest_messages",
            "Telemetry messages taken from the stream and applied (stored or dead-lettered).",
            registry=registry,
        )
        self.points = Counter(
            "plantwire_ingest_points", "Points written to the time-series store.", registry=registry
        )
        self.bad = Counter(
            "plantwire_ingest_bad_messages",
            "Messages refused into the dead-letter stream, by reason.",
            ["reason"],
            registry=registry,
        )
        self.replayed = Counter(
            "plantwire_ingest_replayed_messages",
            "Redelivered messages skipped because the store already had them.",
            registry=registry,
        )
        self.lost = Counter(
            "plantwire_ingest_lost_messages",
            "Accepted messages the stream discarded (age or size limits) before ingest applied"
            " them.",
            registry=registry,
        )
        self.failures = Counter(
            "plantwire_ingest_failures",
            "Times ingest stopped on an unexpected error and started again from its checkpoint.",
            registry=registry,
        )
        self.store_errors = Counter(
            "plantwire_ingest_store_errors",
            "Failed store writes (the batch is retried; nothing is acked meanwhile).",
            registry=registry,
        )
        self.lag = Gauge(
            "plantwire_ingest_lag_messages",
            "Messages in the telemetry stream not yet applied.",
            registry=registry,
        )
        self.stream_messages = Gauge(
            "plantwire_ingest_stream_messages",
            "Messages the telemetry stream has accepted in all (its last sequence).",
            registry=registry,
        )
        self.store_seconds = Histogram(
            "plantwire_ingest_store_seconds",
            "Time to append one batch to the store.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )


@dataclass(slots=True)
class Prepared:
    """A decoded run of messages, ready to commit: ``resume`` is where delivery must start
    again when the batch had a gap after the run (or before it: then ``run`` is empty)."""

    run: list[Msg]
    points: PointBatch
    resume: int | None
    last: int = 0  # the stream sequence of the run's last message
    reports: list[tuple[tuple[str, str, str], object]] = field(default_factory=list)
    states: dict[str, bytes | None] = field(default_factory=dict)  # committed with the run


class Ingest:
    """The ingest loop. ``run`` until ``stop`` is set; ``ensure_streams`` alone for setup.
    Store calls go to a worker thread (DuckDB blocks)."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        store: TimeSeriesStore,
        devices: DeviceDirectory,
        metrics: IngestMetrics,
        options: IngestOptions | None = None,
        *,
        watch: CommandWatch | None = None,
        feed: Callable[[PointBatch, int], None] | None = None,
        sparkplug: SparkplugIntake | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.devices = devices
        self.metrics = metrics
        self.options = options or IngestOptions()
        self.ready = asyncio.Event()  # set once the streams and the consumer exist
        self.stopped = asyncio.Event()  # set when run() has returned
        self.js: JetStreamContext | None = None  # while running: for readers of the streams
        self.client: NatsClient | None = None  # while running: for publishers (commands)
        self.watch = watch
        # told each committed batch's points and last sequence, on the event loop; must not
        # block (the live streams' hub)
        self.feed = feed
        self.sparkplug = sparkplug

    async def connect(self) -> NatsClient:
        return await nats.connect(
            self.endpoint.url,
            user=self.endpoint.user,
            password=self.endpoint.password,
            name="plantwire-ingest",
            max_reconnect_attempts=-1,  # a broker restart is waited out
            reconnect_time_wait=0.5,
        )

    async def ensure_streams(self, js: JetStreamContext) -> None:
        """Create (or bring to this config) the telemetry and dead-letter streams. Messages
        stay in the telemetry stream until its age or size limit
        (not until acked), so a store outage shorter than the limits loses nothing."""
        options = self.options
        telemetry = StreamConfig(
            name=TELEMETRY_STREAM,
            subjects=[JSON_SUBJECTS, *SPARKPLUG_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=options.stream_max_age_seconds,
            max_bytes=options.stream_max_bytes,
            storage=StorageType.FILE,
        )
        dead_letters = StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=[f"{DEAD_LETTER_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=options.dead_letter_max_age_seconds,
            max_bytes=options.dead_letter_max_bytes,
            storage=StorageType.FILE,
            duplicate_window=15 * 60,  # a message applied again after a crash letters once
            allow_direct=True,
        )
        for config in (telemetry, dead_letters):
            try:
                await js.stream_info(str(config.name))
                await js.update_stream(config)
            except NotFoundError:
                await js.add_stream(config)

    async def open_consumer(
        self, client: NatsClient, js: JetStreamContext, start: int
    ) -> PullBatches:
        """The durable consumer, made anew to deliver the stream in order from sequence
        ``start`` (the checkpoint + 1). The store's checkpoint, not the consumer's state,
        says what is applied; the consumer is only the cursor that follows it, so one
        ingest process owns it (the embedded store has one writer anyway)."""
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(TELEMETRY_STREAM, CONSUMER)
        consumer = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.ALL,  # acking a batch's last message acks the batch
            ack_wait=self.options.ack_wait_seconds,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            max_ack_pending=max(self.options.max_batch * 4, 10_000),
        )
        await js.add_consumer(TELEMETRY_STREAM, consumer)
        batches = PullBatches(client, TELEMETRY_STREAM, CONSUMER)
        await batches.start()
        return batches

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest until ``stop`` is set. A broker that cannot be reached (or is lost for
        good), or a registry that cannot be read, is tried again with backoff, logged, never
        fatal to the platform."""
        attempt = 0
        try:
            while not stop.is_set():
                delays = self.options.retry_seconds
                delay = delays[min(attempt, len(delays) - 1)]
                try:
                    await self._run(stop)
                    attempt = 0
                    continue
                except (NatsError, OSError, DirectoryError) as error:
                    # the batch in hand was not acked: it comes again from the checkpoint,
                    # and the Sparkplug host starts again from the state committed with it
                    event = (
                        "ingest.registry_unreachable"
                        if isinstance(error, DirectoryError)
                        else "ingest.broker_unreachable"
                    )
                    _log.warning(event, error=str(error), retry_in=delay)
                except Exception as error:  # a bug: logged, the batch taken again, not fatal
                    _log.error("ingest.failed", error=repr(error), retry_in=delay, exc_info=error)
                    self.metrics.failures.inc()
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            self.stopped.set()

    async def _run(self, stop: asyncio.Event) -> None:
        """Fetch, apply and ack batches until ``stop`` is set. The store's append of one
        batch overlaps the fetch and decoding of the next; appends stay in stream order.
        A broker that goes away is reconnected to (nats-py does that)."""
        client = self.client = await self.connect()
        committing: asyncio.Task[bool] | None = None
        try:
            js = self.js = client.jetstream()
            await self.ensure_streams(js)
            applied = await asyncio.to_thread(self.store.checkpoint, CHECKPOINT)
            if self.sparkplug is not None:  # the host's state as committed with the data
                await asyncio.to_thread(self.sparkplug.load, self.store)
            subscription = await self.open_consumer(client, js, applied + 1)
            self.ready.set()
            _log.info("ingest.started", stream=TELEMETRY_STREAM, after=applied)
            expected = applied + 1  # the next sequence to apply
            observed = time.monotonic()
            size = self.options.batch  # grows to max_batch while a backlog waits
            while not stop.is_set():
                asked = time.monotonic()
                try:
                    batch = await subscription.fetch(
                        size, expires=self.options.fetch_seconds, max_bytes=self.options.max_bytes
                    )
                except NoRespondersError:  # the consumer went (deleted by hand?): made again
                    _log.warning("ingest.consumer_missing", resume=expected)
                    if committing is not None and not await committing:
                        break
                    committing = None
                    await subscription.stop()
                    subscription = await self.open_consumer(client, js, expected)
                    continue
                except NatsError as error:  # disconnected meanwhile: wait for the reconnect
                    _log.warning("ingest.fetch_failed", error=str(error))
                    await asyncio.sleep(0.5)
                    continue
                if not batch or time.monotonic() - observed >= self.options.observe_seconds:
                    await self._observe(js)  # idle, or refreshed every so often while busy
                    observed = time.monotonic()
                if not batch:  # a request the server ended early waits a little
                    if time.monotonic() - asked < self.options.fetch_seconds / 2:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), 0.1)
                    continue
                waiting = (ack_position(batch[-1]) or (0, 0, 0))[2]
                size = min(self.options.max_batch, max(self.options.batch, waiting))
                prepared = await self.prepare(js, batch, expected)
                if committing is not None and not await committing:
                    committing = None
                    break  # stopped while the store was failing: the rest comes back
                committing = None
                if prepared.run:
                    expected = prepared.last + 1
                    committing = asyncio.create_task(self.commit(prepared, stop))
                if prepared.resume is not None:  # a gap: follow the checkpoint again
                    if committing is not None and not await committing:
                        break
                    committing = None
                    await subscription.stop()
                    subscription = await self.open_consumer(client, js, prepared.resume)
                    expected = prepared.resume
                elif len(batch) < self.options.batch and self.options.linger_seconds:
                    with contextlib.suppress(TimeoutError):  # the store appends meanwhile
                        await asyncio.wait_for(stop.wait(), self.options.linger_seconds)
        finally:
            try:
                if committing is not None:
                    await committing  # an append in flight finishes (or gives up on stop)
            finally:
                self.js = self.client = None
                await client.close()  # every batch in hand was acked or is left to come back

    async def prepare(self, js: JetStreamContext, batch: list[Msg], expected: int) -> Prepared:
        """Decode the run of messages that continues from sequence ``expected`` without a
        gap and letter its refused messages; anything after a gap is left to come again.
        ``batch`` may be empty: nats-py's fetch returns no messages for a status reply (seen
        while the broker reloads its config)."""
        positions = [stream_position(m) for m in batch]
        fresh = [
            (m, seq, ms) for m, (seq, ms) in zip(batch, positions, strict=True) if seq >= expected
        ]
        if len(fresh) < len(batch):
            self.metrics.replayed.inc(len(batch) - len(fresh))
        if not fresh:
            if batch:  # all applied before: ack them
                await batch[-1].ack()
            return Prepared([], PointBatch(), None)
        first = fresh[0][1]
        if first != expected and not await self._gone(js, expected, first):
            return Prepared([], PointBatch(), expected)
        length = 1
        while length < len(fresh) and fresh[length][1] == first + length:
            length += 1
        run = fresh[:length]
        points, letters, reports, sparkplug = await self._decode(run)
        for subject, message, reason, detail in letters:
            await self._letter(js, subject, message, reason, detail)
        states: dict[str, bytes | None] = {}
        if sparkplug:
            states = await self._sparkplug(js, sparkplug, points, reports)
        last = first + length - 1
        resume = last + 1 if length < len(fresh) else None
        return Prepared([m for m, _, _ in run], points, resume, last, reports, states)

    async def commit(self, prepared: Prepared, stop: asyncio.Event) -> bool:
        """Store the run's points with its last sequence, then ack it. False: stopped while
        the store was failing (nothing acked; it all comes back)."""
        last = prepared.last
        if not await self._store(prepared.points, last, stop, prepared.states):
            return False
        if self.feed is not None:
            try:
                self.feed(prepared.points, last)
            except Exception as error:  # an observer of stored points must not stop ingest
                _log.error("ingest.feed_failed", error=repr(error), exc_info=error)
        self.metrics.messages.inc(len(prepared.run))
        self.metrics.points.inc(len(prepared.points))
        if prepared.reports and self.watch is not None:  # read-backs of commands sent
            await asyncio.to_thread(self.watch.seen, prepared.reports, datetime.now(UTC))
        try:
            await prepared.run[-1].ack()  # AckPolicy.ALL: everything delivered up to it
        except NatsError as error:  # stored already: a redelivery will be skipped
            _log.warning("ingest.ack_failed", error=str(error), sequence=last)
        return True

    async def _gone(self, js: JetStreamContext, expected: int, delivered: int) -> bool:
        """Whether the messages from ``expected`` up to ``delivered`` left the stream (its
        age or size limit discarded them before they were applied): then they are counted
        as lost and ingest goes on; else they are merely not delivered yet."""
        try:
            await js.get_msg(TELEMETRY_STREAM, expected)
        except NotFoundError:
            lost = delivered - expected
            self.metrics.lost.inc(lost)
            _log.error("ingest.lost", first=expected, last=delivered - 1, lost=lost)
            return True
        return False

    async def _decode(
        self, messages: list[tuple[Msg, int, int]]
    ) -> tuple[
        PointBatch,
        list[tuple[str, Msg, str, str]],
        list[tuple[tuple[str, str, str], object]],
        list[tuple[Msg, int]],
    ]:
        """The JSON messages' points, letters and command read-backs; the Sparkplug
        messages (with their arrival time) left to `_sparkplug`, in stream order."""
        keys = [parse_telemetry_subject(m.subject) for m, _, _ in messages]
        declared = await asyncio.to_thread(
            self.devices.declared, {key for key in keys if key is not None}
        )
        points = PointBatch()
        letters: list[tuple[str, Msg, str, str]] = []
        reports: list[tuple[tuple[str, str, str], object]] = []
        sparkplug: list[tuple[Msg, int]] = []
        watch = self.watch if self.watch is not None and self.watch.watching else None
        for (message, _, received_ms), key in zip(messages, keys, strict=True):
            if key is None and self.sparkplug is not None and self.sparkplug.takes(message.subject):
                sparkplug.append((message, received_ms))
                continue
            if key is None:  # the stream's subjects admit nothing else; kept, not lost
                letters.append((f"{DEAD_LETTER_PREFIX}._", message, "subject", message.subject))
                continue
            tenant_id, device_id = key
            types = declared.get(key)
            if types is None:
                letters.append(
                    (dead_letter_subject(*key), message, "device", "no such device (deleted?)")
                )
                continue
            try:
                samples = decode_samples(message.data, received_ms, declared=types)
            except PayloadError as error:
                letters.append((dead_letter_subject(*key), message, error.reason, error.detail))
                continue
            for ms, values in samples:
                points.add_sample(tenant_id, device_id, ms * 1000, values)
                if watch is not None:
                    reports += watch.watched(tenant_id, device_id, values.items())
        return points, letters, reports, sparkplug

    async def _sparkplug(
        self,
        js: JetStreamContext,
        mine: list[tuple[Msg, int]],
        points: PointBatch,
        reports: list[tuple[tuple[str, str, str], object]],
    ) -> dict[str, bytes | None]:
        """Apply the run's Sparkplug messages (``mine``) to the host, in stream order, adding their
        points and the read-backs of commands to ``reports``; letter the refused ones, send
        the rebirth requests; the host's states to commit with the run."""
        assert self.sparkplug is not None
        watch = self.watch if self.watch is not None and self.watch.watching else None
        done = await asyncio.to_thread(
            self.sparkplug.decode, [(m.subject, m.data, ms) for m, ms in mine], points, watch
        )
        reports += done.reports
        for index, device, reason, detail in done.letters:
            message = mine[index][0]
            tenant_id = message.subject.split(".", 2)[1]
            await self._letter(js, dead_letter_subject(tenant_id, device), message, reason, detail)
        for subject, payload in done.rebirths:
            try:
                assert self.client is not None  # set while running
                await self.client.publish(subject, payload)
            except NatsError as error:  # the next gap or early data asks again
                _log.warning("ingest.rebirth_failed", subject=subject, error=str(error))
        return done.states

    async def _letter(
        self, js: JetStreamContext, subject: str, message: Msg, reason: str, detail: str
    ) -> None:
        sequence = message.metadata.sequence.stream
        headers = {
            REASON: reason,
            DETAIL: detail[:500],
            SOURCE_SEQUENCE: str(sequence),
            SOURCE_TIME: str(stream_position(message)[1]),
            "Nats-Msg-Id": f"telemetry-{sequence}",  # a redelivered batch letters it once
        }
        await js.publish(subject, message.data, stream=DEAD_LETTER_STREAM, headers=headers)
        self.metrics.bad.labels(reason).inc()
        _log.info("ingest.dead_letter", subject=message.subject, reason=reason, detail=detail)

    async def _store(
        self,
        points: PointBatch,
        last: int,
        stop: asyncio.Event,
        states: dict[str, bytes | None] | None = None,
    ) -> bool:
        """Append with the checkpoint, retrying while the store fails. False: stopped
        before it succeeded."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self.store.append, points, (CHECKPOINT, last), states)
            except StaleCheckpointError:
                return True  # applied by another run meanwhile: nothing to write twice
            except (StoreError, OSError) as error:  # a full or failing disk, say
                self._store_failed(error, attempt)
            else:
                self.metrics.store_seconds.observe(time.perf_counter() - started)
                return True
            delays = self.options.retry_seconds
            try:
                await asyncio.wait_for(stop.wait(), delays[min(attempt, len(delays) - 1)])
            except TimeoutError:
                attempt += 1
                continue
            return False

    def _store_failed(self, error: Exception, attempt: int) -> None:
        self.metrics.store_errors.inc()
        _log.error("ingest.store_failed", error=str(error), attempt=attempt + 1)

    async def _observe(self, js: JetStreamContext) -> None:
        """Refresh the lag and stream gauges (when idle, and every ``observe_seconds`` while
        busy). The lag counts messages not delivered yet and those delivered but not acked
        (being applied)."""
        try:
            info = await js.consumer_info(TELEMETRY_STREAM, CONSUMER)
            stream = await js.stream_info(TELEMETRY_STREAM)
        except NatsError:
            return
        self.metrics.lag.set((info.num_pending or 0) + (info.num_ack_pending or 0))
        self.metrics.stream_messages.set(stream.state.last_seq)


def stream_position(message: Msg) -> tuple[int, int]:
    """(stream sequence, when the stream stored it in epoch ms, floored: a flat payload's
    timestamp, the same on every redelivery) of a JetStream message (nats-py's metadata
    would round the time to microseconds first)."""
    position = ack_position(message)
    if position is None:
        raise NotJSMessageError
    return position[0], position[1] // 1_000_000

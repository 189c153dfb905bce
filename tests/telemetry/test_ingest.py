"""Durable ingest through the real bundled broker and a real DuckDB store: JSON intake end to
end, dead letters with their reasons, redelivery after a crash between commit and ack, and a
failing store that stops the acks, not the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import nats
import pytest
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from plantwire.telemetry.accounts import device_username, telemetry_topic
from plantwire.telemetry.broker import BrokerEndpoint, BundledBroker
from plantwire.telemetry.deadletters import read_dead_letters
from plantwire.telemetry.ingest import (
    CHECKPOINT,
    CONSUMER,
    DEAD_LETTER_STREAM,
    REASON,
    TELEMETRY_STREAM,
    Ingest,
    IngestMetrics,
    IngestOptions,
    parse_telemetry_subject,
)
from plantwire.telemetry.sparkplug_intake import DirectoryError
from plantwire.telemetry.store import DuckDBStore, PointBatch, StoreError
from tests.telemetry.conftest import TENANT_A, TENANT_B, mqtt_device, tenant

PRESS, OVEN = "press-1", "oven-1"


class Directory:
    """A fixed device directory (the registry-backed one has its own test)."""

    def __init__(self, devices: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self.devices = devices

    def declared(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, str] | None]:
        return {key: self.devices.get(key) for key in keys}


DIRECTORY = Directory({(TENANT_A, PRESS): {"t": "float"}, (TENANT_B, PRESS): {}})
FAST = IngestOptions(batch=100, fetch_seconds=0.2, ack_wait_seconds=1.0, retry_seconds=(0.1,))


def value(metrics: IngestMetrics, name: str, **labels: str) -> float:
    counter = getattr(metrics, name)
    sample = counter.labels(**labels) if labels else counter
    return float(sample._value.get())


@contextlib.asynccontextmanager
async def running(ingest: Ingest) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        await asyncio.wait_for(ingest.ready.wait(), 10)  # its stream takes what comes next
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def eventually(condition: Any, what: str, seconds: float = 10.0) -> None:
    """Wait for ``condition`` without blocking the event loop ingest runs on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def stored(store: DuckDBStore, tenant_id: str, device: str, metric: str) -> list[Any]:
    start, end = datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(hours=2)
    page = store.raw(tenant_id, device, metric, start, end, limit=10_000)
    return [point.value for point in page.points]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DuckDBStore(tmp_path / "telemetry") as opened:
        yield opened


@pytest.fixture
def accounts(broker: BundledBroker) -> BundledBroker:
    broker.apply([tenant(TENANT_A, PRESS, OVEN), tenant(TENANT_B, PRESS)])
    return broker


def publish(broker: BundledBroker, tenant_id: str, device: str, *payloads: bytes) -> None:
    with mqtt_device(broker, device_username(tenant_id, device)) as client:
        assert client.connack == "Success"
        for payload in payloads:
            client.publish(telemetry_topic(device), payload)


async def pending(js: JetStreamContext) -> int:
    info = await js.consumer_info(TELEMETRY_STREAM, CONSUMER)
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


def test_subjects_parse_back_to_tenant_and_device() -> None:
    subject = f"tenant.{TENANT_A}.plantwire.v1.devices.line//7.telemetry"
    assert parse_telemetry_subject(subject) == (TENANT_A, "line.7")
    for other in ("tenant.x.spBv1//0.G.NDATA.E", "cmd.x.plantwire.v1.devices.d.commands", "a"):
        assert parse_telemetry_subject(other) is None


async def test_json_intake_end_to_end_with_dead_letters(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    metrics = IngestMetrics(CollectorRegistry())
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, FAST)
    async with running(ingest):
        publish(
            accounts,
            TENANT_A,
            PRESS,
            b'{"ts": 1764496800000, "values": {"t": 20.5, "mode": "auto"}}',
            json.dumps(
                [
                    {"ts": 1764496801000, "values": {"t": 21}},
                    {"ts": 1764496802000, "values": {"t": 22.5}},
                ]
            ).encode(),
            b'{"t": "hot"}',  # declared float: refused, type
            b"not json",
            b'{"t": 23.5}',  # flat: stamped by the stream
        )
        publish(accounts, TENANT_B, PRESS, b'{"t": "b-data"}')  # same name, other tenant
        publish(accounts, TENANT_A, OVEN, b'{"t": 1}')  # unknown to the directory
        await eventually(
            lambda: value(metrics, "messages") >= 7, "ingest of 7 messages", seconds=10
        )
    assert stored(store, TENANT_A, PRESS, "t") == [20.5, 21.0, 22.5, 23.5]
    assert stored(store, TENANT_A, PRESS, "mode") == ["auto"]
    assert stored(store, TENANT_B, PRESS, "t") == ["b-data"]
    assert stored(store, TENANT_A, OVEN, "t") == []
    assert value(metrics, "points") == 6
    for reason in ("type", "json", "device"):
        assert value(metrics, "bad", reason=reason) == 1
    letters = await dead_letters(accounts)
    assert [
        (subject.split(".")[1:], headers[REASON], data) for subject, headers, data in letters
    ] == [
        ([TENANT_A, PRESS], "type", b'{"t": "hot"}'),
        ([TENANT_A, PRESS], "json", b"not json"),
        ([TENANT_A, OVEN], "device", b'{"t": 1}'),
    ]
    assert store.checkpoint(CHECKPOINT) == 7
    client = await nats.connect(
        accounts.endpoint.url, user=accounts.endpoint.user, password=accounts.endpoint.password
    )
    try:
        js = client.jetstream()
        page = await read_dead_letters(js, TENANT_A, PRESS, limit=1)
        assert (page.count, [letter.reason for letter in page.items]) == (2, ["type"])
        assert page.items[0].payload == b'{"t": "hot"}'
        assert page.items[0].detail == "t is declared float, got string"
        assert page.items[0].telemetry_sequence == 3
        assert page.next_after is not None
        rest = await read_dead_letters(js, TENANT_A, PRESS, after=page.next_after)
        assert [letter.reason for letter in rest.items] == ["json"]
        assert rest.next_after is None
        assert (await read_dead_letters(js, TENANT_B, PRESS)).count == 0
    finally:
        await client.close()


async def test_an_empty_fetch_is_nothing_to_apply(store: DuckDBStore) -> None:
    """nats-py's fetch can return no message at all (a status reply, seen during a broker
    reload). That once raised IndexError out of ingest, whose task group then ended the app's
    lifespan: the broker stopped and the store closed while HTTP went on answering."""
    ingest = Ingest(
        BrokerEndpoint("nats://127.0.0.1:1"), store, DIRECTORY, IngestMetrics(CollectorRegistry())
    )
    prepared = await ingest.prepare(cast(JetStreamContext, None), [], 1)
    assert (prepared.run, len(prepared.points), prepared.resume) == ([], 0, None)


async def test_the_lag_gauges_follow_a_stream_that_never_goes_idle(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """Under steady load a fetch never times out, so the gauges cannot wait for idle time
    (they did, and showed 0 all through bench/devices.py's run)."""
    metrics = IngestMetrics(CollectorRegistry())
    busy = IngestOptions(batch=5, fetch_seconds=5, observe_seconds=0, retry_seconds=(0.1,))
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, busy)
    async with running(ingest):
        publish(accounts, TENANT_A, PRESS, *(b'{"t": %d}' % n for n in range(20)))
        await eventually(lambda: value(metrics, "messages") >= 20, "ingest of 20 messages")
        # observed after the fetch of the last batch, before it was applied and acked
        assert value(metrics, "stream_messages") == 20
        assert value(metrics, "lag") >= 1


def appends(metrics: IngestMetrics) -> int:
    [family] = metrics.store_seconds.collect()
    return int(next(s.value for s in family.samples if s.name.endswith("_count")))


async def with_streams(ingest: Ingest) -> Ingest:
    """``ingest`` with its streams made, so that what is published before it runs waits."""
    client = await ingest.connect()
    await ingest.ensure_streams(client.jetstream())
    await client.close()
    return ingest


async def test_a_backlog_is_fetched_in_larger_batches(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """350 messages waiting, fetches of 100 growing up to 300 while a backlog waits: the
    first fetch says 250 wait, so the second takes them all (four appends without it)."""
    metrics = IngestMetrics(CollectorRegistry())
    options = IngestOptions(batch=100, max_batch=300, fetch_seconds=0.5, retry_seconds=(0.1,))
    ingest = await with_streams(Ingest(accounts.endpoint, store, DIRECTORY, metrics, options))
    publish(accounts, TENANT_A, PRESS, *(b'{"t": %d}' % n for n in range(350)))
    async with running(ingest):
        await eventually(lambda: value(metrics, "messages") >= 350, "ingest of the backlog")
    assert stored(store, TENANT_A, PRESS, "t") == [float(n) for n in range(350)]
    assert appends(metrics) == 2


async def test_a_fetch_takes_at_most_max_bytes_and_a_larger_message_alone(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """What one batch holds is bounded in bytes too (a message may carry 10,000 points); a
    message larger than the bound still comes, alone."""
    metrics = IngestMetrics(CollectorRegistry())
    options = IngestOptions(batch=100, max_bytes=1500, fetch_seconds=0.5, retry_seconds=(0.1,))
    ingest = await with_streams(Ingest(accounts.endpoint, store, DIRECTORY, metrics, options))
    large = json.dumps({"t": 0.5, **{f"pad{n}": float(n) for n in range(200)}}).encode()
    assert len(large) > 1500
    publish(accounts, TENANT_A, PRESS, *(b'{"t": %d}' % n for n in range(40)), large)
    async with running(ingest):
        await eventually(lambda: value(metrics, "messages") >= 41, "ingest of all 41")
    # (sorted: flat messages are stamped with the stream's millisecond, which they may share)
    assert sorted(stored(store, TENANT_A, PRESS, "t")) == sorted([*map(float, range(40)), 0.5])
    assert appends(metrics) >= 3  # 40 small messages (several hundred bytes each with
    # their subject and headers) do not fit in 1,500 bytes at once, nor with the large one


class Unreachable(Directory):
    """The registry failing its first ``failures`` lookups with ``error``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__(DIRECTORY.devices)
        self.failures = failures
        self.error = error or DirectoryError("the registry's database is down")

    def declared(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, str] | None]:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().declared(keys)


async def test_a_registry_that_cannot_be_read_holds_ingest_up_without_loss(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """A lookup failing is not a bad message: nothing is acked or lettered, ingest waits and
    takes the batch again (it once ended the ingest task, and with it the platform's)."""
    metrics = IngestMetrics(CollectorRegistry())
    directory = Unreachable(failures=3)
    ingest = await with_streams(Ingest(accounts.endpoint, store, directory, metrics, FAST))
    publish(accounts, TENANT_A, PRESS, *(b'{"t": %d}' % n for n in range(5)))
    async with running(ingest):
        await eventually(lambda: value(metrics, "messages") >= 5, "ingest after the outage")
        assert not ingest.stopped.is_set()
    assert directory.failures == 0
    assert stored(store, TENANT_A, PRESS, "t") == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert store.checkpoint(CHECKPOINT) == 5
    assert await dead_letters(accounts) == []


async def test_an_unexpected_error_is_logged_counted_and_ridden_out(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """A bug in a step of ingest (here: the directory raising what it never should) does not
    end ingest, which would end the platform's lifespan: the batch is taken again."""
    metrics = IngestMetrics(CollectorRegistry())
    directory = Unreachable(failures=2, error=RuntimeError("a bug"))
    ingest = await with_streams(Ingest(accounts.endpoint, store, directory, metrics, FAST))
    publish(accounts, TENANT_A, PRESS, b'{"t": 1}', b'{"t": 2}')
    async with running(ingest):
        await eventually(lambda: value(metrics, "messages") >= 2, "ingest after the bug")
        assert not ingest.stopped.is_set()
    assert value(metrics, "failures") == 2
    assert stored(store, TENANT_A, PRESS, "t") == [1.0, 2.0]


async def test_a_consumer_deleted_under_ingest_is_made_again(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """A pull request to a consumer that is gone has no responder: ingest makes the consumer
    again from its checkpoint and goes on, writing nothing twice."""
    metrics = IngestMetrics(CollectorRegistry())
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, FAST)
    async with running(ingest):
        publish(accounts, TENANT_A, PRESS, b'{"t": 1}')
        await eventually(lambda: value(metrics, "messages") >= 1, "the first message")
        assert ingest.js is not None
        await ingest.js.delete_consumer(TELEMETRY_STREAM, CONSUMER)
        publish(accounts, TENANT_A, PRESS, b'{"t": 2}', b'{"t": 3}')
        await eventually(lambda: value(metrics, "messages") >= 3, "the messages after")
    assert stored(store, TENANT_A, PRESS, "t") == [1.0, 2.0, 3.0]


async def dead_letters(broker: BundledBroker) -> list[tuple[str, dict[str, str], bytes]]:
    endpoint = broker.endpoint
    client = await nats.connect(endpoint.url, user=endpoint.user, password=endpoint.password)
    try:
        js = client.jetstream()
        info = await js.stream_info(DEAD_LETTER_STREAM)
        if not info.state.messages:
            return []
        found = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(DEAD_LETTER_STREAM, sequence)
            found.append(
                (str(message.subject), dict(message.headers or {}), bytes(message.data or b""))
            )
        return found
    finally:
        await client.close()


async def test_a_crash_between_commit_and_ack_writes_nothing_twice(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    metrics = IngestMetrics(CollectorRegistry())
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, FAST)
    client = await ingest.connect()
    js = client.jetstream()
    await ingest.ensure_streams(js)
    publish(accounts, TENANT_A, PRESS, *(json.dumps({"t": n}).encode() for n in range(5)))
    subscription = await ingest.open_consumer(client, js, 1)
    batch = await subscription.fetch(5, expires=5)
    prepared = await ingest.prepare(js, batch, 1)
    assert len(prepared.run) == 5
    assert prepared.last == batch[-1].metadata.sequence.stream
    assert await ingest._store(prepared.points, prepared.last, asyncio.Event())
    await client.close()  # "crashed": stored and committed, never acked
    assert stored(store, TENANT_A, PRESS, "t") == [0.0, 1.0, 2.0, 3.0, 4.0]

    async with running(ingest):  # delivers from the checkpoint on, not the unacked batch
        publish(accounts, TENANT_A, PRESS, b'{"t": 5}')
        await eventually(lambda: value(metrics, "messages") >= 1, "the new message")
    assert stored(store, TENANT_A, PRESS, "t") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert store.checkpoint(CHECKPOINT) == 6


class FailingStore:
    """The real store behind a switch that makes appends fail, as a full disk would."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.failing = True
        self.attempts = 0

    def append(
        self,
        batch: PointBatch,
        checkpoint: tuple[str, int] | None = None,
        states: Mapping[str, bytes | None] | None = None,
    ) -> None:
        self.attempts += 1
        if self.failing:
            raise StoreError("disk full")
        self.store.append(batch, checkpoint, states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_failing_store_stops_the_acks_and_loses_nothing(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    metrics = IngestMetrics(CollectorRegistry())
    failing = FailingStore(store)
    ingest = Ingest(accounts.endpoint, failing, DIRECTORY, metrics, FAST)
    async with running(ingest):
        publish(accounts, TENANT_A, PRESS, b'{"t": 1}', b'{"t": 2}')
        await eventually(lambda: failing.attempts >= 3, "retries of the failing store")
        assert value(metrics, "store_errors") >= 3
        assert value(metrics, "messages") == 0
        assert stored(store, TENANT_A, PRESS, "t") == []
        failing.failing = False
        await eventually(
            lambda: value(metrics, "messages") >= 2, "the store to recover", seconds=10
        )
    assert stored(store, TENANT_A, PRESS, "t") == [1.0, 2.0]


async def test_ingest_rides_out_a_broker_restart(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """The broker stops and starts again on its data (JetStream keeps the stream): ingest
    reconnects by itself and applies what comes after, losing nothing."""
    metrics = IngestMetrics(CollectorRegistry())
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, FAST)
    async with running(ingest):
        publish(accounts, TENANT_A, PRESS, b'{"t": 1}')
        await eventually(lambda: value(metrics, "messages") >= 1, "the first message")
        await asyncio.to_thread(accounts.stop)
        await asyncio.sleep(1.0)  # ingest's fetches fail meanwhile
        tenants = [tenant(TENANT_A, PRESS, OVEN), tenant(TENANT_B, PRESS)]
        await asyncio.to_thread(accounts.start, tenants)
        publish(accounts, TENANT_A, PRESS, b'{"t": 2}', b'{"t": 3}')
        await eventually(lambda: value(metrics, "messages") >= 3, "the messages after", 30)
    assert stored(store, TENANT_A, PRESS, "t") == [1.0, 2.0, 3.0]


async def test_a_failing_feed_does_not_stop_ingest(
    accounts: BundledBroker, store: DuckDBStore
) -> None:
    """The live streams' feed is told each stored batch; if it raises, the batch stays
    stored and acked and ingest goes on with the next."""
    told: list[int] = []

    def feed(points: PointBatch, last: int) -> None:
        told.append(last)
        raise RuntimeError("a broken observer")

    metrics = IngestMetrics(CollectorRegistry())
    ingest = Ingest(accounts.endpoint, store, DIRECTORY, metrics, FAST, feed=feed)
    async with running(ingest):
        publish(accounts, TENANT_A, PRESS, b'{"t": 1}')
        await eventually(lambda: value(metrics, "messages") >= 1, "the first message")
        publish(accounts, TENANT_A, PRESS, b'{"t": 2}')
        await eventually(lambda: value(metrics, "messages") >= 2, "the second message")
    assert stored(store, TENANT_A, PRESS, "t") == [1.0, 2.0]
    assert told == [1, 2]
    assert store.checkpoint(CHECKPOINT) == 2

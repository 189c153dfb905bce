"""What the bundled broker counts itself, for ``/metrics``: the messages it took in from each
tenant's devices, what the platform's streams accepted and hold, slow consumers and JetStream
API errors. Read from nats-server's monitoring port (``/varz``, ``/accstatz``, ``/jsz``) by a
background poll every few seconds, so ``/metrics`` never waits for the broker: when it does
not answer, ``plantwire_broker_up`` is 0 and the last counts stay.

Set beside ingest's counters, these show where messages go missing: acknowledged to MQTT
clients (the broker took them in) → accepted by the ``TELEMETRY`` stream → applied to the
store (docs/telemetry.md, "Broker metrics")."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantwire.telemetry.accounts import TENANT_ACCOUNT_PREFIX
from plantwire.telemetry.broker import read_monitor
from plantwire.telemetry.natsconf import PLATFORM_ACCOUNT

__all__ = ["BrokerCounts", "BrokerMetrics", "parse_counts", "poll_periodically"]

#: What one poll asks the monitoring port: every account (with or without connections, so
#: a tenant whose devices are offline keeps its count), and the platform account's streams.
PATHS = ("/varz", "/accstatz?unused=true", f"/jsz?acc={PLATFORM_ACCOUNT}&streams=true")

_log = structlog.get_logger("plantwire.broker")


@dataclass(frozen=True, slots=True)
class BrokerCounts:
    """One reading of the broker. Its counters start at 0 when the server starts."""

    server_id: str  # a new one on every start of nats-server
    received: Mapping[str, int]  # tenant account -> messages taken in from its clients
    slow_consumers: int
    api_errors: int  # JetStream API requests answered with an error, all accounts
    streams: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # (held, last seq)


def parse_counts(
    varz: Mapping[str, Any], accstatz: Mapping[str, Any], jsz: Mapping[str, Any]
) -> BrokerCounts:
    """The counts in the three answers (of ``PATHS``); ValueError for answers of another
    shape."""
    try:
        received = {
            str(account["acc"]): int(account["received"]["msgs"])
            for account in accstatz["account_statz"]
            if str(account["acc"]).startswith(TENANT_ACCOUNT_PREFIX)
        }
        streams = {
            str(stream["name"]): (
                int(stream["state"]["messages"]),
                int(stream["state"]["last_seq"]),
            )
            for details in jsz.get("account_details") or ()
            if details["name"] == PLATFORM_ACCOUNT
            for stream in details.get("stream_detail") or ()
        }
        return BrokerCounts(
            server_id=str(varz["server_id"]),
            received=received,
            slow_consumers=int(varz["slow_consumers"]),
            api_errors=int(jsz["api"]["errors"]),
            streams=streams,
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise ValueError(f"unexpected answer from the monitoring port: {error!r}") from error


class BrokerMetrics(Collector):
    """A Prometheus collector of the broker's counts; ``poll()`` (blocking: a worker thread)
    reads them, ``collect()`` serves the last reading.

    ``plantwire_broker_received_messages_total`` sums every tenant account and is kept by
    this process: it does not go back when the broker restarts or a tenant (account) is
    deleted. Per account, the broker's own counts are exported only while there are at most
    ``max_accounts`` tenant accounts: thousands of tenants would be thousands of series."""

    def __init__(self, read: Callable[[str], Mapping[str, Any]], max_accounts: int) -> None:
        self.read, self.max_accounts = read, max_accounts
        self._lock = threading.Lock()
        self._up = False
        self._counts: BrokerCounts | None = None
        self._total = 0

    @classmethod
    def on_port(cls, port: int, max_accounts: int, timeout: float = 1.0) -> BrokerMetrics:
        """Reading the monitoring port on loopback, each request given up after ``timeout``."""
        return cls(partial(read_monitor, port, timeout=timeout), max_accounts)

    def poll(self) -> bool:
        """Read the broker once; whether it answered."""
        try:
            counts = parse_counts(*(self.read(path) for path in PATHS))
        except (OSError, ValueError) as error:
            with self._lock:
                was_up, self._up = self._up, False
            if was_up:
                _log.warning("broker.monitor_unreachable", error=str(error))
            return False
        with self._lock:
            self._total += _taken_in_since(self._counts, counts)
            self._counts, self._up = counts, True
        return True

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            up, counts, total = self._up, self._counts, self._total
        yield GaugeMetricFamily(
            "plantwire_broker_up",
            "1 when the last read of the bundled broker's monitoring port succeeded.",
            value=int(up),
        )
        if counts is None:
            return
        yield CounterMetricFamily(
            "plantwire_broker_received_messages",
            "Messages the broker took in from the clients (devices) of all tenant accounts;"
            " kept by this process across broker restarts.",
            value=total,
        )
        if len(counts.received) <= self.max_accounts:
            per_account = CounterMetricFamily(
                "plantwire_broker_account_received_messages",
                "Messages the broker took in from the clients of a tenant account, since the"
                " broker started (only while there are at most broker_metrics_max_accounts).",
                labels=["account"],
            )
            for account, messages in sorted(counts.received.items()):
                per_account.add_metric([account], messages)
            yield per_account
        accepted = CounterMetricFamily(
            "plantwire_broker_stream_accepted_messages",
            "Messages a platform stream has accepted in all (its last sequence).",
            labels=["stream"],
        )
        held = GaugeMetricFamily(
            "plantwire_broker_stream_messages",
            "Messages a platform stream holds now.",
            labels=["stream"],
        )
        for stream, (messages, last) in sorted(counts.streams.items()):
            accepted.add_metric([stream], last)
            held.add_metric([stream], messages)
        yield accepted
        yield held
        yield CounterMetricFamily(
            "plantwire_broker_slow_consumers",
            "Times the broker cut a client off for not reading fast enough, since it started.",
            value=counts.slow_consumers,
        )
        yield CounterMetricFamily(
            "plantwire_broker_jetstream_api_errors",
            "JetStream API requests answered with an error, since the broker started.",
            value=counts.api_errors,
        )


def _taken_in_since(before: BrokerCounts | None, now: BrokerCounts) -> int:
    """Messages taken in between two readings. The first reading, and the first after the
    broker restarted (a new server id), count all the broker has; an account not seen before,
    or at a lower count than before, counts in full; an account that went away (a deleted
    tenant) counts nothing more, and takes nothing back."""
    if before is None or before.server_id != now.server_id:
        return sum(now.received.values())
    taken = 0
    for account, messages in now.received.items():
        earlier = before.received.get(account)
        taken += messages if earlier is None or messages < earlier else messages - earlier
    return taken


async def poll_periodically(metrics: BrokerMetrics, interval: float) -> None:
    """``metrics.poll()`` now and every ``interval`` seconds, in a worker thread, until
    cancelled (which waits for a poll in progress: at most a few request timeouts)."""
    while True:
        await anyio.to_thread.run_sync(metrics.poll)
        await anyio.sleep(interval)

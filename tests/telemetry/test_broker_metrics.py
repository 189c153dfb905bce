"""The broker's own counts on /metrics: read from the real bundled nats-server after real MQTT
QoS 1 publishes (the field names are checked against the server, not assumed), set beside
what the stream accepted and what ingest stored; a broker that does not answer shows as down
without holding /metrics up; the total survives broker restarts and deleted tenants; label
cardinality stays bounded; any answer parses or is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from plantwire.app import create_app
from plantwire.config import Settings
from plantwire.lifecycle import build_platform, initialise
from plantwire.telemetry.accounts import account_name, device_username
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.broker_metrics import PATHS, BrokerMetrics, parse_counts
from tests.conftest import ADMIN_PASSWORD, Seed, free_ports, seed_platform
from tests.telemetry.conftest import (
    DEVICE_PASSWORD,
    TENANT_A,
    TENANT_B,
    broker_settings,
    mqtt_device,
    tenant,
    wait_for,
)

MESSAGES = 25


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(scraped: Mapping[tuple[str, Any], float], name: str, **labels: str) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[TestClient, Seed, BundledBroker]]:
    """The platform with its bundled broker, reading the broker's counts every second."""
    config = broker_settings(tmp_path / "data", broker_metrics_seconds=1)
    initialise(config, ADMIN_PASSWORD)
    built = build_platform(config)
    broker = BundledBroker.from_settings(config)
    broker.start()
    built.broker = broker  # the app's shutdown stops it
    try:
        with TestClient(create_app(config, built), raise_server_exceptions=False) as client:
            yield client, seed_platform(client), broker
    finally:
        broker.stop()


def test_acked_in_the_stream_and_stored_line_up_on_metrics(
    monitored: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, broker = monitored
    tenant_a = seed.tenants["a"]
    made = client.post(
        "/api/v1/devices", json={"name": "press-1"}, headers=tenant_a.headers["engineer"]
    )
    assert made.status_code == 201, made.text
    device = made.json()
    account = account_name(tenant_a.id)
    with mqtt_device(broker, device["mqtt"]["username"], device["mqtt"]["password"]) as press:
        for n in range(MESSAGES):  # each returns once the broker acknowledged it (PUBACK)
            press.publish(device["topics"]["telemetry"], b'{"t": %d}' % n)

    def counted() -> bool:
        scraped = _scrape(client)
        accepted = "plantwire_broker_stream_accepted_messages_total"
        return (
            (_value(scraped, "plantwire_broker_account_received_messages_total", account=account)
            or 0) >= MESSAGES
            and (_value(scraped, accepted, stream="TELEMETRY") or 0) >= MESSAGES
            and (_value(scraped, "plantwire_ingest_messages_total") or 0) >= MESSAGES
        )  # fmt: skip

    wait_for(counted, "the broker's and ingest's counts of the messages", timeout=15)
    scraped = _scrape(client)
    assert _value(scraped, "plantwire_broker_up") == 1
    received = _value(scraped, "plantwire_broker_received_messages_total")
    assert received is not None
    assert received >= MESSAGES
    other = account_name(seed.tenants["b"].id)  # its devices sent nothing
    assert _value(scraped, "plantwire_broker_account_received_messages_total", account=other) == 0
    assert _value(scraped, "plantwire_broker_stream_messages", stream="TELEMETRY") == MESSAGES
    for name in ("slow_consumers_total", "jetstream_api_errors_total"):
        assert _value(scraped, f"plantwire_broker_{name}") is not None
    # nothing was dropped on the way: acked = in the stream = stored
    assert _value(scraped, "plantwire_ingest_points_total") == MESSAGES

    broker.stop()  # the broker goes away: /metrics says so, quickly, and keeps the counts
    wait_for(lambda: _value(_scrape(client), "plantwire_broker_up") == 0, "broker_up 0", 10)
    began = time.monotonic()
    scraped = _scrape(client)
    assert time.monotonic() - began < 0.5
    assert _value(scraped, "plantwire_broker_received_messages_total") == received


def _publish(broker: BundledBroker, tenant_id: str, count: int) -> None:
    with mqtt_device(broker, device_username(tenant_id, "press-1"), DEVICE_PASSWORD) as press:
        for n in range(count):
            press.publish("plantwire/v1/devices/press-1/telemetry", b'{"t": %d}' % n)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_total_goes_on_across_a_broker_restart(broker_config: Settings) -> None:
    registry = CollectorRegistry()
    metrics = BrokerMetrics.on_port(broker_config.broker_monitor_port, max_accounts=10)
    registry.register(metrics)
    tenants = [tenant(TENANT_A, "press-1"), tenant(TENANT_B, "press-1")]
    account = account_name(TENANT_A)
    broker = BundledBroker.from_settings(broker_config)
    broker.start(tenants)
    try:
        _publish(broker, TENANT_A, 5)
        assert metrics.poll()
        total = "plantwire_broker_received_messages_total"
        per_account = "plantwire_broker_account_received_messages_total"
        assert _sample(registry, per_account, account=account) == 5
        assert _sample(registry, total) == 5
        broker.stop()
        assert not metrics.poll()
        assert _sample(registry, "plantwire_broker_up") == 0
        assert _sample(registry, total) == 5  # kept
        broker = BundledBroker.from_settings(broker_config)
        broker.start(tenants)
        _publish(broker, TENANT_A, 3)
        _publish(broker, TENANT_B, 2)
        assert metrics.poll()
        assert _sample(registry, per_account, account=account) == 3  # the broker's own count
        assert _sample(registry, total) == 10  # this process's: 5 + 3 + 2
    finally:
        broker.stop()


def test_a_monitoring_port_that_does_not_answer_is_down_at_once(tmp_path: Path) -> None:
    [port] = free_ports(1)
    registry = CollectorRegistry()
    metrics = BrokerMetrics.on_port(port, max_accounts=10)
    registry.register(metrics)
    began = time.monotonic()
    assert not metrics.poll()
    assert time.monotonic() - began < 1
    assert _sample(registry, "plantwire_broker_up") == 0
    assert _sample(registry, "plantwire_broker_received_messages_total") is None


# --- the counts, from answers shaped as nats-server 2.15 gives them ---------------------------


def _answers(server: str, received: Mapping[str, int], last_seq: int = 7) -> dict[str, Any]:
    statz = [
        {"acc": name, "received": {"msgs": count, "bytes": 10 * count}, "conns": 1}
        for name, count in {"PLATFORM": 99, "$SYS": 3, **received}.items()
    ]
    stream = {"name": "TELEMETRY", "state": {"messages": 4, "last_seq": last_seq}}
    return {
        PATHS[0]: {"server_id": server, "in_msgs": 1000, "slow_consumers": 2},
        PATHS[1]: {"server_id": server, "account_statz": statz},
        PATHS[2]: {
            "api": {"total": 50, "errors": 6},
            "account_details": [{"name": "PLATFORM", "stream_detail": [stream]}],
        },
    }


class _Canned:
    """Answers of the monitoring port, changed by the test between polls."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}

    def __call__(self, path: str) -> Mapping[str, Any]:
        if not self.answers:
            raise ConnectionRefusedError(path)
        answer: Mapping[str, Any] = self.answers[path]
        return answer


def test_counts_are_read_and_the_total_only_grows() -> None:
    canned, registry = _Canned(), CollectorRegistry()
    metrics = BrokerMetrics(canned, max_accounts=2)
    registry.register(metrics)
    assert not metrics.poll()
    assert _sample(registry, "plantwire_broker_up") == 0
    canned.answers = _answers("S1", {"tenant-a": 10, "tenant-b": 20})
    assert metrics.poll()
    assert _sample(registry, "plantwire_broker_up") == 1
    assert _sample(registry, "plantwire_broker_received_messages_total") == 30  # not PLATFORM's
    per_account = "plantwire_broker_account_received_messages_total"
    assert _sample(registry, per_account, account="tenant-b") == 20
    assert _sample(registry, per_account, account="PLATFORM") is None
    accepted = "plantwire_broker_stream_accepted_messages_total"
    assert _sample(registry, accepted, stream="TELEMETRY") == 7
    assert _sample(registry, "plantwire_broker_stream_messages", stream="TELEMETRY") == 4
    assert _sample(registry, "plantwire_broker_slow_consumers_total") == 2
    assert _sample(registry, "plantwire_broker_jetstream_api_errors_total") == 6

    canned.answers = _answers("S1", {"tenant-a": 15, "tenant-c": 1})  # b deleted, c new
    assert metrics.poll()
    assert _sample(registry, "plantwire_broker_received_messages_total") == 36
    canned.answers = _answers("S2", {"tenant-a": 2, "tenant-c": 1})  # the broker restarted
    assert metrics.poll()
    assert _sample(registry, "plantwire_broker_received_messages_total") == 39
    assert _sample(registry, per_account, account="tenant-a") == 2

    # More tenant accounts than max_accounts: the total alone, no series per account.
    canned.answers = _answers("S2", {"tenant-a": 3, "tenant-c": 1, "tenant-d": 1})
    assert metrics.poll()
    assert _sample(registry, per_account, account="tenant-a") is None
    assert _sample(registry, "plantwire_broker_received_messages_total") == 41

    canned.answers = {path: {"unexpected": True} for path in PATHS}
    assert not metrics.poll()  # an answer of another shape is a failed read, not a crash
    assert _sample(registry, "plantwire_broker_up") == 0
    assert _sample(registry, "plantwire_broker_received_messages_total") == 41


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=15,
)
shaped = st.fixed_dictionaries(
    {"acc": st.one_of(st.just("tenant-x"), st.text(max_size=8)), "received": json_values}
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["server_id", "slow_consumers"]), json_values),
    st.one_of(json_values, st.fixed_dictionaries({"account_statz": st.lists(shaped)})),
    st.one_of(json_values, st.fixed_dictionaries({"api": json_values})),
)
def test_any_answer_parses_or_is_refused(varz: Any, accstatz: Any, jsz: Any) -> None:
    try:
        counts = parse_counts(varz, accstatz, jsz)
    except ValueError:
        return
    assert all(isinstance(value, int) for value in counts.received.values())

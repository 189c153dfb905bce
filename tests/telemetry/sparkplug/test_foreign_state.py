"""A host application's STATE in a tenant's account: the platform's own is acked and ignored,
any other (another host's, or a payload on the platform's topic it did not publish) is a dead
letter with its reason, counted, and the data behind it is still stored. Through the real
bundled broker: the host's own MQTT user publishing on its topic, and another host's STATE
put into the stream's tenant subject over NATS, as an external NATS that lets other host
applications into a tenant's account delivers it."""

from __future__ import annotations

from pathlib import Path

import nats
from fastapi.testclient import TestClient
from nats.js.api import StreamConfig
from prometheus_client import CollectorRegistry

from plantwire.telemetry.accounts import Device, TenantAccount, device_username, host_username
from plantwire.telemetry.broker import BundledBroker
from plantwire.telemetry.ingest import (
    DETAIL,
    JSON_SUBJECTS,
    REASON,
    TELEMETRY_STREAM,
    Ingest,
    IngestMetrics,
)
from plantwire.telemetry.sparkplug.model import DataType, Metric
from plantwire.telemetry.sparkplug_intake import (
    SPARKPLUG_SUBJECTS,
    SparkplugIntake,
    SparkplugMetrics,
)
from plantwire.telemetry.sparkplug_state import is_state_payload, state_payload
from plantwire.telemetry.store import DuckDBStore, PointBatch
from tests.conftest import Seed
from tests.telemetry.conftest import CHEAP_HASH, TENANT_A, mqtt_device
from tests.telemetry.sparkplug.test_host import (
    G,
    Nodes,
    birth,
    data,
    eventually,
    ingest_started,
    raw,
)
from tests.telemetry.sparkplug.test_provisioning import make_node
from tests.telemetry.test_ingest import FAST, Directory, dead_letters, running

OURS = "spBv1.0/STATE/plantwire"
TS = 1_764_500_000_000
STATE_SUBJECT = "tenant.*.spBv1//0.STATE.*"


async def test_a_foreign_state_is_a_dead_letter_and_stops_nothing(
    broker: BundledBroker, tmp_path: Path
) -> None:
    broker.apply([TenantAccount(TENANT_A, (Device("edge-1", CHEAP_HASH, G, "Edge1"),))])
    endpoint = broker.endpoint
    client = await nats.connect(endpoint.url, user=endpoint.user, password=endpoint.password)
    try:
        js = client.jetstream()
        # the stream as an older plantwire made it, without STATE: brought up to date on start
        older = [subject for subject in SPARKPLUG_SUBJECTS if subject != STATE_SUBJECT]
        assert len(older) == len(SPARKPLUG_SUBJECTS) - 1
        await js.add_stream(StreamConfig(name=TELEMETRY_STREAM, subjects=[JSON_SUBJECTS, *older]))
        registry = CollectorRegistry()
        intake = SparkplugIntake(
            Nodes(), SparkplugMetrics(registry), host_id="plantwire", publishes_state=True
        )
        with (
            DuckDBStore(tmp_path / "telemetry") as store,
            mqtt_device(broker, device_username(TENANT_A, "edge-1"), client_id="e1") as edge,
            mqtt_device(
                broker, host_username(TENANT_A), endpoint.password or "", client_id="host"
            ) as host,
        ):
            metrics = IngestMetrics(registry)
            ingest = Ingest(endpoint, store, Directory({}), metrics, FAST, sparkplug=intake)
            async with running(ingest):
                info = await js.stream_info(TELEMETRY_STREAM)
                assert STATE_SUBJECT in (info.config.subjects or [])
                edge.publish(f"spBv1.0/{G}/NBIRTH/Edge1", birth())
                host.publish(OURS, state_payload(True, TS))  # the platform's own: ignored
                host.publish(OURS, b'{"online": true}')  # not what the host publishes
                other = state_payload(True, TS + 1)  # another host, through an external NATS
                await js.publish(f"tenant.{TENANT_A}.spBv1//0.STATE.scada-1", other)
                edge.publish(
                    f"spBv1.0/{G}/NDATA/Edge1",
                    data(1, Metric(alias=1, datatype=DataType.Float, value=1.0)),
                )
                await eventually(lambda: raw(store, "edge-1", "Temp") == [20.0, 1.0], "the data")
                await eventually(
                    lambda: registry.get_sample_value("plantwire_ingest_messages_total") == 5,
                    "5 messages applied",
                )
        letters = await dead_letters(broker)
        assert sorted((subject, h[REASON], h[DETAIL], body) for subject, h, body in letters) == [
            (
                f"deadletter.{TENANT_A}._sparkplug",
                "state",
                "STATE of another host application 'scada-1' (this one is 'plantwire')",
                other,
            ),
            (
                f"deadletter.{TENANT_A}._sparkplug",
                "state",
                'not the STATE this host publishes ({"online": <bool>, "timestamp": <ms>}): '
                "another application uses the id, or the payload was changed",
                b'{"online": true}',
            ),
        ]
        bad = registry.get_sample_value("plantwire_ingest_bad_messages_total", {"reason": "state"})
        assert bad == 2
        assert registry.get_sample_value("plantwire_sparkplug_births_total") == 1
    finally:
        await client.close()


async def test_the_platforms_own_state_births_are_ignored(
    with_broker: tuple[TestClient, Seed, BundledBroker],
) -> None:
    client, seed, _ = with_broker
    tenant_a = seed.tenants["a"]
    make_node(client, tenant_a.headers["engineer"], f"{G}/Edge1")
    platform = await ingest_started(client)

    def applied() -> float:
        metrics = client.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("plantwire_ingest_messages_"))
        return float(line.split()[-1])

    # the host's birth in tenant a reaches the stream, and ingest takes it
    await eventually(lambda: applied() == 1, "the host's STATE birth applied")
    assert platform.host_state is not None
    assert tenant_a.id in platform.host_state.online
    assert 'reason="state"' not in client.get("/metrics").text
    assert await dead_letters(with_broker[2]) == []


def test_which_states_are_refused() -> None:
    def letters(publishes: bool, *messages: tuple[str, bytes]) -> list[tuple[str, str]]:
        intake = SparkplugIntake(
            Nodes(),
            SparkplugMetrics(CollectorRegistry()),
            host_id="plantwire",
            publishes_state=publishes,
        )
        done = intake.decode(
            [(f"tenant.t1.{subject}", body, TS) for subject, body in messages], PointBatch()
        )
        return [(reason, detail) for _, _, reason, detail in done.letters]

    own = ("spBv1//0.STATE.plantwire", state_payload(False, TS))
    assert letters(True, own) == []
    assert letters(False, own) == [
        (
            "state",
            "STATE on this platform's host id 'plantwire', which it does not publish on this "
            "broker: another application uses the id",
        )
    ]
    assert letters(True, ("spBv1//0.STATE.Plantwire", own[1]))[0][1].startswith(
        "STATE of another host application 'Plantwire'"
    )
    for body in (
        b"",
        b"\xff",
        b"[]",
        b'{"online": true, "timestamp": 1}\n',
        b'{"online":true,"timestamp":1}',
        b'{"online": 1, "timestamp": 1}',
        b'{"online": true, "timestamp": -1}',
        b'{"online": true, "timestamp": 1.0}',
        b'{"online": true, "timestamp": 1, "x": 2}',
        b'{"timestamp": 1, "online": true}',
    ):
        assert not is_state_payload(body), body
        assert [reason for reason, _ in letters(True, (own[0], body))] == ["state"]
    assert is_state_payload(b'{"online": true, "timestamp": 0}')

"""The bundled broker with thousands of tenant accounts: nothing reserved per account, so
JetStream starts and reloads whatever the count (docs/telemetry.md, "JetStream limits of an
account"). ``bench/broker_accounts.py`` measures the same at 5,000."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from plantwire.telemetry.accounts import TenantAccount, commands_topic, device_username
from plantwire.telemetry.broker import BundledBroker, read_monitor
from tests.telemetry.conftest import broker_settings, device, mqtt_device, tenant

#: Tenant accounts, one device each; 64 MiB reserved for each (the old default) would have
#: needed 62.5 GiB of memory store.
TENANTS = 1000

pytestmark = pytest.mark.slow


def many(count: int, *device_ids: str) -> list[TenantAccount]:
    return [tenant(str(uuid.UUID(int=index + 1)), *device_ids) for index in range(count)]


def test_thousands_of_tenant_accounts_start_and_reload(tmp_path: Path) -> None:
    broker = BundledBroker.from_settings(broker_settings(tmp_path / "data"), ready_timeout=60)
    broker.start(many(TENANTS, "press-1"))
    try:
        broker.apply(many(TENANTS, "press-1", "press-2"))  # returns once healthy with it
        jsz = read_monitor(broker.options.monitor_port, "/jsz")
        assert (jsz["reserved_memory"], jsz["reserved_storage"]) == (0, 0)
        assert jsz["accounts"] >= TENANTS  # JetStream on in every tenant account

        last = str(uuid.UUID(int=TENANTS))
        # a persistent session with a QoS 1 subscription: MQTT's streams (file storage)
        # and a consumer, within the account's limits
        with mqtt_device(broker, device_username(last, "press-2"), clean_session=False) as dev:
            assert dev.connack == "Success"
            assert not dev.subscribe(commands_topic("press-2")).is_failure
        account = f"tenant-{last}"
        detail = read_monitor(
            broker.options.monitor_port, f"/jsz?acc={account}&streams=true&config=true"
        )
        (found,) = [a for a in detail["account_details"] if a["name"] == account]
        streams = {stream["name"]: stream["config"]["storage"] for stream in found["stream_detail"]}
        assert set(streams.values()) == {"file"}
        assert 0 < len(streams) <= broker.options.tenant_max_streams
        assert found["memory"] == 0
    finally:
        broker.stop()


def test_a_tenant_holds_no_more_streams_than_allowed(tmp_path: Path) -> None:
    settings = broker_settings(
        tmp_path / "data",
        broker_tenant_max_streams=2,
        broker_max_memory_bytes=256 * 2**20,
        broker_max_store_bytes=10 * 2**30,
    )
    broker = BundledBroker.from_settings(settings)
    one = str(uuid.UUID(int=1))
    broker.start([TenantAccount(one, (device("press-1"),))])
    try:
        # MQTT needs more than 2 streams: the session is refused, the broker stays healthy
        with mqtt_device(broker, device_username(one, "press-1"), clean_session=False) as dev:
            assert dev.connack != "Success"
        read_monitor(broker.options.monitor_port, "/healthz")
        config = read_monitor(broker.options.monitor_port, "/jsz?config=true")["config"]
        assert (config["max_memory"], config["max_storage"]) == (256 * 2**20, 10 * 2**30)
    finally:
        broker.stop()

"""Benchmark: the bundled broker with many tenant accounts.

Each tenant is a NATS account with JetStream on and one device. The script starts a real
``BundledBroker`` on a temporary data dir with ``N`` tenants, measures the start (until
``/healthz`` passes with the config's digest), then a reload (``apply()`` with one more
device in every account), and the server's resident memory; it does the same for a
baseline of ``BASELINE`` tenants in the same run and prints the ratios.
Run: ``.venv/bin/python bench/broker_accounts.py [N ...]`` (default 1000 5000).
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from plantwire.config import load_settings
from plantwire.telemetry.accounts import Device, TenantAccount, hash_device_password
from plantwire.telemetry.broker import BundledBroker

BASELINE = 10
DEFAULT_SIZES = (1000, 5000)
_HASH = hash_device_password("device-password-for-bench", rounds=4)


def tenants(count: int, devices: int = 1) -> list[TenantAccount]:
    return [
        TenantAccount(
            str(uuid.UUID(int=index + 1)),
            tuple(Device(f"device-{number}", _HASH) for number in range(devices)),
        )
        for index in range(count)
    ]


def measure(count: int, ports: tuple[int, int, int]) -> tuple[float, float, float]:
    """(start seconds, reload seconds, RSS MiB after the reload) with ``count`` tenants."""
    with tempfile.TemporaryDirectory(prefix="plantwire-bench-broker-") as folder:
        nats, monitor, mqtt = ports
        settings = load_settings(
            Path(folder),
            broker_nats_port=nats,
            broker_monitor_port=monitor,
            broker_mqtt_port=mqtt,
        )
        broker = BundledBroker.from_settings(settings, ready_timeout=600)
        began = time.perf_counter()
        broker.start(tenants(count))
        try:
            started = time.perf_counter() - began
            began = time.perf_counter()
            broker.apply(tenants(count, devices=2))
            reloaded = time.perf_counter() - began
            assert broker.pid is not None
            rss = psutil.Process(broker.pid).memory_info().rss / 2**20
        finally:
            broker.stop()
    return started, reloaded, rss


def main(sizes: list[int]) -> None:
    ports = (14222, 18222, 11883)
    base_start, base_reload, base_rss = measure(BASELINE, ports)
    print(
        f"N={BASELINE:>6}: start {base_start:7.2f} s  reload {base_reload:7.2f} s  "
        f"RSS {base_rss:7.1f} MiB  (baseline)"
    )
    for count in sizes:
        start, reload, rss = measure(count, ports)
        print(
            f"N={count:>6}: start {start:7.2f} s ({start / base_start:6.1f}x)  "
            f"reload {reload:7.2f} s ({reload / base_reload:6.1f}x)  RSS {rss:7.1f} MiB"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or list(DEFAULT_SIZES))

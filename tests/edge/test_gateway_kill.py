"""The gateway killed with SIGKILL while the platform's broker is down, its buffer full of
points, then started again (issue 6: "gateway kill -9 and restart with a full buffer →
buffered points delivered in order with their original timestamps, none lost or
duplicated"; "broker down … gateway killed and restarted: no crash, no lost buffered point").

``plantwire gateway --config gateway.toml`` runs as a subprocess against a pymodbus device
whose holding registers count up on every read, so every poll is a new value of every point
and goes into the buffer (the broker is stopped before the gateway starts: nothing has gone
up yet). The gateway is killed mid-stream; what its buffer file holds then is read with
``PointBuffer``; the gateway is started again on the same data dir, then the broker. Every
point that was in the buffer at the kill is stored on the platform once, with its own
timestamp and value, in order, and what the restarted gateway read follows it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymodbus.server import ModbusTcpServer

from plantwire.edge.buffer import BufferedPoint, PointBuffer
from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.edge.test_gateway import write_config
from tests.edge.test_modbus import servers, start_server
from tests.edge.test_uplink import EDGE, G, with_node
from tests.telemetry.sparkplug.test_host import eventually, got, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES

__all__ = ["servers"]

pytestmark = pytest.mark.slow

COUNTERS = 8  # holding registers 0..7, read in one request, each counting up on every read
WANTED = 2500  # points in the buffer at the kill: replayed in several batches of 1,000
SRC = Path(__file__).resolve().parents[2] / "src"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Row = tuple[int, object]  # a point as stored: its timestamp (epoch ms) and its value


async def _count_up(
    code: int, start: int, address: int, count: int, current: list[int], _values: object
) -> None:
    if code == 3:  # read holding registers: the next value of each register read
        for index in range(address - start, address - start + count):
            current[index] = (current[index] + 1) & 0xFFFF


def _config(tmp_path: Path, node: dict[str, Any], mqtt_port: int, modbus_port: int) -> Path:
    points = "".join(
        f'\n[[modbus.devices.points]]\nname = "c{n}"\ntable = "holding_register"\n'
        f'address = {n}\ntype = "uint16"\n'
        for n in range(COUNTERS)
    )
    device = f'host = "127.0.0.1"\nport = {modbus_port}\npoll_interval = 0.02\ntimeout = 10.0'
    return write_config(tmp_path, node, mqtt_port, device, points)


class GatewayProcess:
    """``plantwire gateway --config …`` as a child process, its output in a log file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "plantwire", "gateway", "--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(SRC), "PLANTWIRE_LOG_LEVEL": "warning"},
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        assert self.process.poll() is None, f"the gateway exited: {self.output()}"
        return True

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def _buffered(path: Path) -> int:
    """Points in the buffer file now, read beside the gateway writing it (read-only)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM points").fetchone()[0])
    except sqlite3.OperationalError:  # the schema not made yet
        return 0
    finally:
        db.close()


def _stored(client: TestClient, headers: dict[str, str], device: str, metric: str) -> list[Row]:
    """The metric's points on the platform, oldest first, as (epoch ms, value)."""
    end = time.time_ns() // 1_000_000 + 86_400_000
    answer = client.get(
        f"{DEVICES}/{device}/telemetry",
        params={"metric": metric, "start": "0", "end": str(end), "limit": 10_000},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    rows = []
    for stamp, value in answer.json()["points"]:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        rows.append(((when - EPOCH) // timedelta(milliseconds=1), value))
    return rows


def _ties_sorted(rows: list[Row]) -> list[Row]:
    """``rows`` in time order, those of the same millisecond by value: as the store has them."""
    return sorted(rows, key=lambda row: (row[0], repr(row[1])))


def _by_metric(points: list[BufferedPoint]) -> dict[tuple[str, str], list[Row]]:
    rows: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for point in points:
        rows[(point.device, point.metric)].append((point.timestamp, point.value))
    return rows


async def test_killed_with_a_full_buffer_and_restarted_delivers_every_point_once_in_order(
    with_broker: tuple[TestClient, Seed, BundledBroker],
    servers: list[ModbusTcpServer],
    tmp_path: Path,
) -> None:
    client, headers, broker, node = await with_node(with_broker)
    server, modbus_port = await start_server(action=_count_up)
    servers.append(server)
    config = _config(tmp_path, node, broker.options.mqtt_port, modbus_port)
    data = tmp_path / "data"
    buffer_file = data / "buffer.sqlite"
    tenants = broker.tenants
    await asyncio.to_thread(broker.stop)  # down before the gateway starts: all is buffered

    first = GatewayProcess(config, tmp_path / "gateway-1.log")
    second: GatewayProcess | None = None
    try:
        await eventually(
            lambda: first.running() and _buffered(buffer_file) >= WANTED, "a full buffer", 40
        )
        first.kill()  # mid-stream: it polls and appends every 20 ms
        bd_seq_at_kill = int((data / "bdseq").read_text())
        assert bd_seq_at_kill >= 1  # each attempt to connect took the next bdSeq
        with PointBuffer(buffer_file) as buffer:
            taken = buffer.peek(10**6)
            assert buffer.stats().dropped == 0
        kept = [point for _, point in taken]
        assert len(kept) >= WANTED
        rows = _by_metric(kept)
        counters = [rows[("meter-1", f"c{n}")] for n in range(COUNTERS)]
        # every read of the registers, from the first, went into the buffer, whole, in
        # order: each counter's values are 1, 2, 3…, one timestamp a poll, never falling (a
        # poll that came late is followed at once by the next: two may share a millisecond)
        for series in counters:
            assert [value for _, value in series] == list(range(1, len(series) + 1))
            assert [stamp for stamp, _ in series] == [stamp for stamp, _ in counters[0]]
            assert all(a <= b for (a, _), (b, _) in pairwise(series))
        assert ("", "Buffer/Points") in rows  # the node's health went into the buffer too

        second = GatewayProcess(config, tmp_path / "gateway-2.log")
        # it runs on the same buffer: what it reads goes in behind what the first one left
        await eventually(
            lambda: second.running() and _buffered(buffer_file) >= len(kept) + 10 * COUNTERS,
            "the restarted gateway buffering",
            30,
        )
        await asyncio.to_thread(broker.start, tenants)
        await eventually(
            lambda: second.running() and _buffered(buffer_file) == 0, "the buffer replayed", 60
        )
        meter = await made(client, headers, f"{G}/{EDGE}/meter-1")
        ids = {"": node["id"], "meter-1": meter["id"]}
        last_kept = {key: series[-1][0] for key, series in rows.items()}

        def delivered() -> bool:  # points read after the restart stored, behind the kill's
            return all(
                any(stamp > last_kept[(device, metric)] for stamp, _ in rows_of(device, metric))
                for device, metric in [("meter-1", "c0"), ("", "Buffer/Points")]
            )

        def rows_of(device: str, metric: str) -> list[Row]:
            return _stored(client, headers, ids[device], metric)

        await eventually(delivered, "the points read after the restart stored", 30)
        # once, in order, with their own timestamps and values; after them, the newer reads
        # (the store returns points of the same millisecond in no particular order)
        for (device, metric), series in rows.items():
            stored = _stored(client, headers, ids[device], metric)
            assert _ties_sorted(stored[: len(series)]) == _ties_sorted(series), f"{device}/{metric}"
            assert all(stamp > series[-1][0] for stamp, _ in stored[len(series) :])
        for n in range(COUNTERS):
            stored = _stored(client, headers, meter["id"], f"c{n}")
            assert len(stored) > len(counters[n]), f"c{n}: nothing read after the restart"
            counted = sorted((stamp, value) for stamp, value in stored if isinstance(value, int))
            assert len(counted) == len(stored), f"c{n}: {stored}"
            values = [value for _, value in counted]  # in time order: rising, none twice
            assert all(a < b for a, b in pairwise(values)), f"c{n}: a value twice, or out of order"
        # the restarted gateway's sessions went on from the bdSeq the first one had reached
        bd_seq = int((data / "bdseq").read_text())
        assert bd_seq > bd_seq_at_kill
        await eventually(
            lambda: (
                got(client, f"{DEVICES}/{node['id']}", headers)["sparkplug"]["bd_seq"]
                == int((data / "bdseq").read_text())
            ),
            "the platform seeing the restarted gateway's session",
        )
    finally:
        if first.process.poll() is None:
            first.kill()
        status = second.stop() if second is not None else None
    assert second is not None
    assert status == 0, second.output()  # a clean stop
    assert "plantwire gateway stopped." in second.output()

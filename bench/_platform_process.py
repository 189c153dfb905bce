"""The real platform for benchmarks that measure it from outside: ``plantwire up`` in a
subprocess (its bundled nats-server a grandchild) on a data dir, on free loopback ports,
logged in as the platform admin.

Used by ``bench/devices.py`` and ``bench/query_http.py``; ``free_ports`` also by
``bench/ingest.py``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from nats.js import JetStreamContext

from plantwire.telemetry.ingest import CONSUMER, TELEMETRY_STREAM

__all__ = ["ADMIN_PASSWORD", "PlatformProcess", "free_ports", "parse_metrics", "telemetry_backlog"]

ADMIN_PASSWORD = "bench-admin-password"  # a throwaway data dir's admin
ROOT = Path(__file__).resolve().parent.parent


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports free right now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → {sample name with labels: value} (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def telemetry_backlog(js: JetStreamContext) -> tuple[int, int, int]:
    """(last sequence of the TELEMETRY stream, messages in it, messages ingest has not yet
    applied: not delivered to its consumer, or delivered and not acked — ingest acks after
    the store's commit)."""
    stream = await js.stream_info(TELEMETRY_STREAM)
    consumer = await js.consumer_info(TELEMETRY_STREAM, CONSUMER)
    waiting = int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
    return stream.state.last_seq, stream.state.messages, waiting


@dataclass(frozen=True, slots=True)
class Ports:
    http: int
    nats: int
    monitor: int
    mqtt: int


class PlatformProcess:
    """``plantwire up --data-dir DIR`` on free ports, until ``stop()`` (SIGTERM: the platform
    stops its broker). A new data dir is initialised by ``up`` itself with the admin password
    ``ADMIN_PASSWORD`` and cheap argon2 settings (only logins pay for them)."""

    def __init__(self, data_dir: Path, *, log_level: str = "warning") -> None:
        self.data_dir = data_dir
        self.log_level = log_level
        self.ports = Ports(*free_ports(4))
        self.url = f"http://127.0.0.1:{self.ports.http}"
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def broker_pid(self) -> int:
        """The bundled nats-server's pid (a process of its own session, not our child)."""
        return int((self.data_dir / "broker" / "nats.pid").read_text().strip())

    @property
    def nats_password(self) -> str:
        """The platform user's NATS password (in the data dir, for the platform alone)."""
        return (self.data_dir / "broker" / "platform-password").read_text().strip()

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 120) -> None:
        """Start it, wait until ``/readyz`` says ready (registry, store, broker), log in."""
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "PLANTWIRE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PLANTWIRE_ARGON2_TIME_COST": "1",
            "PLANTWIRE_ARGON2_MEMORY_KIB": "8",
            "PLANTWIRE_BROKER_MONITOR_PORT": str(self.ports.monitor),
            "PLANTWIRE_LOG_LEVEL": self.log_level,
            "PLANTWIRE_LOG_FORMAT": "console",
        }
        command = [sys.executable, "-m", "plantwire", "up", "--data-dir", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--http-port", str(self.ports.http)]
        command += ["--nats-port", str(self.ports.nats), "--mqtt-port", str(self.ports.mqtt)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "bench-platform.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"plantwire up exited: {self.log_tail()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"plantwire up not ready in {timeout} s: {self.log_tail()}")
                time.sleep(0.1)
            answer = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            answer.raise_for_status()
            self.token = answer.json()["token"]

    def metrics(self, client: httpx.Client) -> dict[str, float]:
        return parse_metrics(client.get(f"{self.url}/metrics").text)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (the platform stops ingest, the store and its broker), then SIGKILL."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the platform's output."""
        return _tail(self.data_dir / "bench-platform.log", lines)

    def broker_log_tail(self, lines: int = 15) -> str:
        """The last lines of the bundled nats-server's log."""
        return _tail(self.data_dir / "broker" / "nats.log", lines)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])

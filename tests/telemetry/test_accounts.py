"""The accounts model and the config it renders to (no server, except ``nats-server -t``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bcrypt
import pytest
import trustme

from plantwire.telemetry.accounts import (
    Device,
    TenantAccount,
    command_subject,
    device_permissions,
    hash_device_password,
    mqtt_topic_to_subject,
    telemetry_subject,
)
from plantwire.telemetry.broker import nats_server_binary
from plantwire.telemetry.natsconf import (
    MqttTls,
    ServerOptions,
    configured_tenants,
    fingerprint_of,
    render_config,
)
from tests.telemetry.conftest import CHEAP_HASH, device


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("plantwire/v1/devices/press-1/telemetry", "plantwire.v1.devices.press-1.telemetry"),
        ("spBv1.0/Plant1/NBIRTH/Edge7", "spBv1//0.Plant1.NBIRTH.Edge7"),
        ("a.b.c/d", "a//b//c.d"),
    ],
)
def test_mqtt_topics_map_as_nats_server_maps_them(topic: str, subject: str) -> None:
    assert mqtt_topic_to_subject(topic) == subject


@pytest.mark.parametrize("topic", ["", "a//b", "/a", "a/", "a/+/b", "a/#", "a b", "a/*", "a>"])
def test_topics_plantwire_never_uses_are_refused(topic: str) -> None:
    with pytest.raises(ValueError, match="not a topic"):
        mqtt_topic_to_subject(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "a b", "a*", "a>", "+", "#", ".a", "a.", "x" * 129])
def test_device_ids_must_be_one_safe_topic_level(bad: str) -> None:
    with pytest.raises(ValueError, match="device id"):
        Device(bad, CHEAP_HASH)


def test_device_records_need_a_bcrypt_hash_and_unique_ids() -> None:
    with pytest.raises(ValueError, match="not a bcrypt hash"):
        Device("press-1", "plaintext")
    with pytest.raises(ValueError, match="twice"):
        TenantAccount("t1", (device("press-1"), device("press-1")))
    with pytest.raises(ValueError, match="tenant id"):
        TenantAccount("a.b")


def test_password_hashes_verify() -> None:
    hashed = hash_device_password("s3cret-device", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw(b"s3cret-device", hashed.encode())


def test_platform_subjects_carry_the_tenant() -> None:
    assert telemetry_subject("t1", "line.7") == "tenant.t1.plantwire.v1.devices.line//7.telemetry"
    assert command_subject("t1", "press-1") == "cmd.t1.plantwire.v1.devices.press-1.commands"


def test_permissions_are_the_devices_own_topics() -> None:
    plain = device_permissions(device("press-1"))
    assert plain.publish == ("plantwire.v1.devices.press-1.telemetry",)
    assert plain.subscribe == ("plantwire.v1.devices.press-1.commands",)
    edge = device_permissions(device("edge.7", sparkplug_group="Plant1"))
    assert "spBv1//0.Plant1.NBIRTH.edge//7" in edge.publish
    assert "spBv1//0.Plant1.DDATA.edge//7.*" in edge.publish
    assert "spBv1//0.Plant1.NCMD.edge//7" in edge.subscribe
    assert not any(">" in subject for subject in edge.publish + edge.subscribe)


def options(directory: Path, **changes: object) -> ServerOptions:
    values: dict[str, object] = {
        "directory": directory,
        "nats_port": 4222,
        "monitor_port": 8222,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": 1883,
        "max_payload": 1024 * 1024,
        "tenant_max_memory": 1024,
        "tenant_max_store": 4096,
    }
    values.update(changes)
    return ServerOptions(**values)  # type: ignore[arg-type]


def test_odd_paths_are_quoted_so_nats_server_reads_them(tmp_path: Path) -> None:
    odd = tmp_path / 'a "quoted" $dir\\with ünïcode'
    odd.mkdir()
    cert, key = odd / "cert $HOME.pem", odd / "key.pem"
    issued = trustme.CA().issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    config = render_config(
        options(odd, mqtt_host="::", mqtt_tls=MqttTls(cert, key, cert)),
        CHEAP_HASH,
        [TenantAccount("t1", (device("press-1", "G.1"),)), TenantAccount("t2")],
    )
    path = tmp_path / "nats.conf"
    path.write_text(config, encoding="utf-8")
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr  # it found the files at those paths


def test_the_fingerprint_follows_listener_settings_only(tmp_path: Path) -> None:
    base = options(tmp_path)
    one = render_config(base, CHEAP_HASH, [])
    two = render_config(base, CHEAP_HASH, [TenantAccount("t1", (device("press-1"),))])
    assert fingerprint_of(one) == fingerprint_of(two) == base.fingerprint
    moved = options(tmp_path, mqtt_port=8883)
    assert fingerprint_of(render_config(moved, CHEAP_HASH, [])) != base.fingerprint
    assert fingerprint_of("# something else\n") is None
    with pytest.raises(ValueError, match="twice"):
        render_config(base, CHEAP_HASH, [TenantAccount("t1"), TenantAccount("t1")])


def test_retired_tenants_keep_an_account_with_jetstream_and_nothing_else(tmp_path: Path) -> None:
    base = options(tmp_path)
    config = render_config(base, CHEAP_HASH, [TenantAccount("t1", (device("p"),))], ["t2"])
    retired = config[config.index('  "tenant-t2": {') :]
    assert retired.splitlines()[1:3] == [
        "    jetstream: {max_memory: 1024, max_file: 4096, max_streams: 8, max_consumers: -1}",
        "  }",
    ]
    assert "tenant.t2" not in config  # the platform imports nothing from it
    assert configured_tenants(config) == {"t1", "t2"}
    # the platform's user in the system account may ask for purges, and nothing else
    system = config[config.index('  "$SYS": {') :].splitlines()[1]
    assert '"$JS.API.ACCOUNT.PURGE.*"' in system
    assert 'subscribe: {allow: ["_INBOX.>"]}' in system
    with pytest.raises(ValueError, match="twice"):
        render_config(base, CHEAP_HASH, [TenantAccount("t1")], ["t1"])
    with pytest.raises(ValueError, match="tenant id"):
        render_config(base, CHEAP_HASH, [], ["bad id"])

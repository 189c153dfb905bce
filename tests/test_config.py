"""Settings: defaults, plantwire.toml, PLANTWIRE_* variables, explicit overrides, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwire.config import ConfigError, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANTWIRE_DATA_DIR", raising=False)
    loaded = load_settings(tmp_path)
    assert loaded.http_host == "127.0.0.1"
    assert loaded.http_port == 8080
    assert loaded.max_body_bytes == 1024 * 1024
    assert loaded.registry_url == f"sqlite:///{(tmp_path / 'plantwire.db').resolve()}"
    assert not loaded.tls_enabled


def test_precedence_toml_then_env_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plantwire.toml").write_text(
        'http_port = 9000\nhttp_host = "0.0.0.0"\nlog_format = "console"\n', encoding="utf-8"
    )
    assert load_settings(tmp_path).http_port == 9000
    monkeypatch.setenv("PLANTWIRE_HTTP_PORT", "9100")
    loaded = load_settings(tmp_path)
    assert (loaded.http_port, loaded.http_host, loaded.log_format) == (9100, "0.0.0.0", "console")
    assert load_settings(tmp_path, http_port=9200, http_host=None).http_port == 9200


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWIRE_DATA_DIR", str(tmp_path))
    (tmp_path / "plantwire.toml").write_text("http_port = 9300\n", encoding="utf-8")
    loaded = load_settings()
    assert loaded.data_dir == tmp_path
    assert loaded.http_port == 9300


def test_postgres_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, database_url="postgresql://u@db.example/plantwire")
    assert loaded.registry_url == "postgresql+psycopg://u@db.example/plantwire"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///plantwire.db",
        "sqlite+pysqlite:////srv/plantwire/plantwire.db",
        "postgresql://u@db.example/plantwire",
        "postgresql+psycopg://u:p@db.example:5432/plantwire?sslmode=verify-full",
    ],
)
def test_supported_database_urls(tmp_path: Path, url: str) -> None:
    loaded = load_settings(tmp_path, database_url=url)
    assert loaded.database_url == url
    assert loaded.registry_url.startswith(("sqlite", "postgresql+psycopg://"))


def test_registry_url_keeps_explicit_drivers(tmp_path: Path) -> None:
    for url in ("postgresql+psycopg://u@db.example/p", "sqlite+pysqlite:///x.db"):
        assert load_settings(tmp_path, database_url=url).registry_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlitefoo:///x.db", "scheme 'sqlitefoo' is not supported"),
        ("sqlite+aiosqlite:///x.db", "scheme 'sqlite\\+aiosqlite' is not supported"),
        ("postgresql+asyncpg://u@h/db", "scheme 'postgresql\\+asyncpg' is not supported"),
        ("postgresqlx://u@h/db", "scheme 'postgresqlx' is not supported"),
        ("postgres://u@h/db", "scheme 'postgres' is not supported"),
        ("mysql://u@h/db", "scheme 'mysql' is not supported"),
        ("sqlite", "is not a database URL"),
        ("postgresql://u@h:port/db", "is not a database URL"),
    ],
)
def test_unsupported_database_urls_are_refused(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"database_url: .*{message}"):
        load_settings(tmp_path, database_url=url)


@pytest.mark.parametrize(
    ("setting", "highest"),
    [("session_ttl_seconds", 366 * 24 * 3600), ("token_max_ttl_days", 3650)],
)
def test_lifetimes_have_an_upper_bound(tmp_path: Path, setting: str, highest: int) -> None:
    assert getattr(load_settings(tmp_path, **{setting: highest}), setting) == highest
    with pytest.raises(ConfigError, match=f"{setting}: Input should be less than or equal"):
        load_settings(tmp_path, **{setting: highest + 1})
    with pytest.raises(ConfigError, match=setting):
        load_settings(tmp_path, **{setting: 10**12})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("http_port = [", "not valid TOML"),
        ("no_such_setting = 1", "no_such_setting"),
        ('http_port = "eighty"', "http_port"),
        ("http_port = 70000", "http_port"),
        ('database_url = "mysql://x"', "database_url"),
        ('tls_cert = "/x.pem"', "tls_cert and tls_key"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "plantwire.toml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path)


def test_bad_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWIRE_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_settings(tmp_path)


def test_non_utf8_config_file(tmp_path: Path) -> None:
    (tmp_path / "plantwire.toml").write_bytes(b"http_host = '\xff\xfe'\n")
    with pytest.raises(ConfigError):
        load_settings(tmp_path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.text(max_size=200))
def test_any_config_file_loads_or_fails_clearly(tmp_path: Path, content: str) -> None:
    (tmp_path / "plantwire.toml").write_text(content, encoding="utf-8")
    try:
        outcome = f"loaded port {load_settings(tmp_path).http_port}"
    except ConfigError as error:
        outcome = str(error)
    assert outcome


def test_broker_defaults_stay_on_loopback(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path)
    assert (loaded.broker_nats_port, loaded.broker_mqtt_port) == (4222, 1883)
    assert loaded.broker_mqtt_host == "127.0.0.1"
    assert loaded.broker_url is None
    assert load_settings(tmp_path, broker_mqtt_host="::1").broker_mqtt_host == "::1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"broker_mqtt_host": "0.0.0.0"}, "beyond loopback"),
        ({"broker_mqtt_host": "plant.example"}, "beyond loopback"),
        ({"broker_mqtt_tls_cert": "c.pem"}, "given together"),
        ({"broker_mqtt_tls_ca": "ca.pem"}, "broker_mqtt_tls_ca needs"),
        ({"broker_url": "http://nats.example:4222"}, "nats:// or tls://"),
        ({"broker_url": "nats://"}, "nats:// or tls://"),
        ({"sparkplug_state_mqtt_url": "mqtts://mqtt.plant:8883"}, "external broker"),
        (
            {"broker_url": "nats://n:4222", "sparkplug_state_mqtt_url": "mqtts://m:8883"},
            "needs sparkplug_state_mqtt_password",
        ),
        (
            {
                "broker_url": "nats://n:4222",
                "sparkplug_state_mqtt_url": "mqtt://m:1883",
                "sparkplug_state_mqtt_password": "x",
            },
            "beyond loopback",
        ),
        ({"sparkplug_state_mqtt_url": "https://m:8883"}, "mqtts://host:port"),
        ({"sparkplug_state_mqtt_url": "mqtts://user:pw@m:8883"}, "mqtts://host:port"),
        ({"sparkplug_state_mqtt_url": "mqtts://m:99999"}, "bad port"),
        ({"sparkplug_state_mqtt_password": "x"}, "need sparkplug_state_mqtt_url"),
        ({"sparkplug_state_mqtt_cert": "c.pem"}, "need sparkplug_state_mqtt_url"),
        (
            {
                "broker_url": "nats://n:4222",
                "sparkplug_state_mqtt_url": "mqtts://m:8883",
                "sparkplug_state_mqtt_password": "x",
                "sparkplug_state_mqtt_cert": "c.pem",
            },
            "must be given together",
        ),
    ],
)
def test_unsafe_or_broken_broker_settings_are_refused(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, **overrides)


def test_state_over_an_external_brokers_mqtt(tmp_path: Path) -> None:
    loaded = load_settings(
        tmp_path,
        broker_url="nats://nats.plant:4222",
        sparkplug_state_mqtt_url="mqtts://mqtt.plant:8883",
        sparkplug_state_mqtt_password="s3cret",
        sparkplug_state_mqtt_ca="ca.pem",
    )
    assert loaded.sparkplug_state_mqtt_password is not None
    assert loaded.sparkplug_state_mqtt_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loaded)
    with pytest.raises(ConfigError, match="are for an mqtts:// URL"):
        load_settings(
            tmp_path,
            broker_url="nats://nats.plant:4222",
            sparkplug_state_mqtt_url="mqtt://127.0.0.1:1883",
            sparkplug_state_mqtt_password="s3cret",
            sparkplug_state_mqtt_ca="ca.pem",
        )


def test_mqtt_beyond_loopback_with_tls(tmp_path: Path) -> None:
    loaded = load_settings(
        tmp_path,
        broker_mqtt_host="0.0.0.0",
        broker_mqtt_tls_cert="c.pem",
        broker_mqtt_tls_key="k.pem",
    )
    assert loaded.broker_mqtt_host == "0.0.0.0"

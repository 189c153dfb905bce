"""One typed ``Settings`` object, read from ``plantwire.toml`` in the data dir and from
``PLANTWIRE_*`` environment variables (environment wins over the file; explicit arguments,
such as command-line options, win over both)."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["CONFIG_FILE_NAME", "DEFAULT_DATA_DIR", "ConfigError", "Settings", "load_settings"]

CONFIG_FILE_NAME = "plantwire.toml"
DEFAULT_DATA_DIR = Path("plantwire-data")

#: Upper bounds that keep expiry timestamps far inside what datetimes and databases can hold.
MAX_SESSION_TTL_SECONDS = 366 * 24 * 3600
MAX_TOKEN_TTL_DAYS = 3650

#: The SQLAlchemy URL schemes (``dialect[+driver]``) of the backends plantwire supports.
DATABASE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"})

_toml_file: ContextVar[Path | None] = ContextVar("plantwire_toml_file", default=None)


class ConfigError(Exception):
    """The settings cannot be used; the message names the file or variable and the key."""


class Settings(BaseSettings):
    """Every setting of the platform. See docs/configuration.md for each one."""

    model_config = SettingsConfigDict(
        env_prefix="PLANTWIRE_", extra="forbid", validate_default=True, frozen=True
    )

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Folder holding databases and config.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry database; default SQLite in the data dir.",
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP(S) port.")
    tls_cert: Path | None = Field(None, description="PEM certificate chain; enables HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted request body.")
    session_ttl_seconds: int = Field(
        12 * 3600, ge=60, le=MAX_SESSION_TTL_SECONDS, description="Lifetime of a login session."
    )
    token_max_ttl_days: int = Field(
        365, ge=1, le=MAX_TOKEN_TTL_DAYS, description="Longest lifetime of an API token."
    )
    cookie_secure: bool = Field(True, description="Mark the session cookie Secure.")
    login_max_failures_per_user: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_failure_window_seconds: int = Field(300, ge=1)
    argon2_time_cost: int = Field(3, ge=1, description="argon2id passes (RFC 9106 default 3).")
    argon2_memory_kib: int = Field(65536, ge=8, description="argon2id memory in KiB.")
    ids_roots: list[str] = Field(
        default_factory=list,
        description="Root identifier nodes (URLs) the platform's node resolves through; "
        "empty: the platform is the root of its own hierarchy.",
    )
    ids_recursive: bool = Field(
        True, description="Resolve any handle for clients through ids_roots (a recursive node)."
    )
    broker_url: str | None = Field(
        None,
        description="nats:// URL of an existing NATS server (with JetStream and MQTT) to use "
        "instead of starting the bundled nats-server.",
    )
    broker_nats_port: int = Field(
        4222, ge=1, le=65535, description="NATS port of the bundled broker (on 127.0.0.1)."
    )
    broker_monitor_port: int = Field(
        8222, ge=1, le=65535, description="Monitoring port of the bundled broker (127.0.0.1)."
    )
    broker_mqtt_host: str = Field(
        "127.0.0.1", description="Address the bundled broker's MQTT listener binds to."
    )
    broker_mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT port (8883 with TLS).")
    broker_mqtt_tls_cert: Path | None = Field(
        None, description="PEM certificate chain: MQTT over TLS only."
    )
    broker_mqtt_tls_key: Path | None = Field(None, description="PEM private key of the above.")
    broker_mqtt_tls_ca: Path | None = Field(
        None, description="PEM CA bundle: MQTT clients must present a certificate it signed."
    )
    broker_max_payload_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest message the broker takes."
    )
    broker_tenant_max_memory_bytes: int = Field(
        0,
        ge=-1,
        description="JetStream memory each tenant account may use: 0 none (MQTT keeps its "
        "state on file), -1 no limit of its own; a positive value is reserved for every tenant.",
    )
    broker_tenant_max_store_bytes: int = Field(
        -1,
        ge=-1,
        description="JetStream file storage each tenant account may use: -1 no limit of its "
        "own (bounded by broker_max_store_bytes); a positive value is reserved for every tenant.",
    )
    broker_tenant_max_streams: int = Field(
        8, ge=-1, description="JetStream streams each tenant account may hold (MQTT makes 5)."
    )
    broker_tenant_max_consumers: int = Field(
        -1,
        ge=-1,
        description="JetStream consumers each tenant account may hold (MQTT makes one per "
        "QoS 1 subscription of a session); -1 no limit.",
    )
    broker_max_memory_bytes: int | None = Field(
        None, ge=0, description="The bundled broker's JetStream memory store; unset: 75% of RAM."
    )
    broker_max_store_bytes: int | None = Field(
        None, ge=0, description="The bundled broker's JetStream file store; unset: the free disk."
    )
    sparkplug_host_id: str = Field(
        "plantwire",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.:-]*$",
        description="The Sparkplug host id: the platform publishes its STATE on "
        "spBv1.0/STATE/<id> in every tenant account with an edge node.",
    )
    broker_metrics_seconds: int = Field(
        5,
        ge=1,
        le=3600,
        description="Seconds between two reads of the bundled broker's counts for /metrics.",
    )
    broker_metrics_max_accounts: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Export the broker's per-tenant-account counts while there are at most "
        "this many tenants (one series each); above it, only the total.",
    )
    store_maintenance_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="Seconds between runs of the time-series store's upkeep (sealing, merging).",
    )
    store_memory_limit_bytes: int = Field(
        512 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        description="DuckDB's memory in the time-series store (cached data, sorts, joins); "
        "larger sorts spill to disk in the store folder.",
    )
    telemetry_retention_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="Drop telemetry older than this many days (whole UTC days); none: keep all.",
    )
    live_streams_per_tenant: int = Field(
        100, ge=1, le=100_000, description="Live streams a tenant may have open at once."
    )
    live_stream_buffer_points: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Points a live stream may have waiting to be sent; past it the oldest go.",
    )
    live_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="Seconds of quiet after which a live stream sends a ping."
    )
    live_stream_max_seconds: float = Field(
        900.0,
        gt=0,
        le=86_400,
        description="A live stream ends after this long; the client reconnects (and "
        "authenticates again).",
    )
    sparkplug_state_mqtt_url: str | None = Field(
        None,
        description="With broker_url: the external server's MQTT listener (mqtts://host:port, "
        "or mqtt:// on loopback), where the host publishes its STATE as the user "
        "sparkplug-host/<tenant id> in each tenant account with an edge node.",
    )
    sparkplug_state_mqtt_password: SecretStr | None = Field(
        None, description="The password of those users (the operator gives them all this one)."
    )
    sparkplug_state_mqtt_ca: Path | None = Field(
        None,
        description="PEM CA bundle the mqtts:// server's certificate chains to; unset: the "
        "system's CAs.",
    )
    sparkplug_state_mqtt_cert: Path | None = Field(
        None,
        description="PEM client certificate (chain) the host presents to that mqtts:// "
        "listener, when it requires one.",
    )
    sparkplug_state_mqtt_key: Path | None = Field(
        None, description="PEM private key of sparkplug_state_mqtt_cert (not encrypted)."
    )
    log_format: Literal["json", "console"] = Field("json", description="Log line format.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @field_validator("ids_roots")
    @classmethod
    def _root_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"ids_roots entry {url!r} is not an http(s):// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            scheme = make_url(value).drivername
        except (ArgumentError, ValueError) as error:
            raise ValueError(f"database_url is not a database URL ({error})") from None
        if scheme not in DATABASE_SCHEMES:
            accepted = ", ".join(f"{name}://" for name in sorted(DATABASE_SCHEMES))
            raise ValueError(f"database_url scheme {scheme!r} is not supported; use {accepted}")
        return value

    @field_validator("broker_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError(f"broker_url {value!r} is not a nats:// or tls:// URL")
        return value

    @field_validator("sparkplug_state_mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises ValueError when out of range
        except ValueError:
            raise ValueError(f"sparkplug_state_mqtt_url {value!r} has a bad port") from None
        if (
            parts.scheme not in ("mqtt", "mqtts")
            or not parts.hostname
            or parts.username is not None
            or parts.path not in ("", "/")
        ):
            raise ValueError(
                f"sparkplug_state_mqtt_url {value!r} is not mqtt://host:port or "
                "mqtts://host:port (the password goes in sparkplug_state_mqtt_password)"
            )
        return value

    @model_validator(mode="after")
    def _state_over_mqtt(self) -> Settings:
        url = self.sparkplug_state_mqtt_url
        tls_files = (self.sparkplug_state_mqtt_ca, self.sparkplug_state_mqtt_cert)
        if url is None:
            if self.sparkplug_state_mqtt_password or any(tls_files):
                raise ValueError(
                    "sparkplug_state_mqtt_password, _ca, _cert and _key need "
                    "sparkplug_state_mqtt_url"
                )
            return self
        if (self.sparkplug_state_mqtt_cert is None) != (self.sparkplug_state_mqtt_key is None):
            raise ValueError(
                "sparkplug_state_mqtt_cert and sparkplug_state_mqtt_key must be given together"
            )
        if self.broker_url is None:
            raise ValueError(
                "sparkplug_state_mqtt_url is for an external broker (broker_url); the bundled "
                "broker's STATE needs no setting"
            )
        if self.sparkplug_state_mqtt_password is None:
            raise ValueError("sparkplug_state_mqtt_url needs sparkplug_state_mqtt_password")
        parts = urlsplit(url)
        if parts.scheme == "mqtt" and not _is_loopback(parts.hostname or ""):
            raise ValueError(
                f"sparkplug_state_mqtt_url {url!r} is beyond loopback: the password would "
                "cross the network in clear; use mqtts://"
            )
        if parts.scheme == "mqtt" and any(tls_files):
            raise ValueError("sparkplug_state_mqtt_ca, _cert and _key are for an mqtts:// URL")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if (self.broker_mqtt_tls_cert is None) != (self.broker_mqtt_tls_key is None):
            raise ValueError("broker_mqtt_tls_cert and broker_mqtt_tls_key must be given together")
        if self.broker_mqtt_tls_ca is not None and self.broker_mqtt_tls_cert is None:
            raise ValueError(
                "broker_mqtt_tls_ca needs broker_mqtt_tls_cert and broker_mqtt_tls_key"
            )
        if not _is_loopback(self.broker_mqtt_host) and self.broker_mqtt_tls_cert is None:
            raise ValueError(
                f"broker_mqtt_host {self.broker_mqtt_host!r} is beyond loopback: device "
                "passwords would cross the network in clear; set broker_mqtt_tls_cert and "
                "broker_mqtt_tls_key"
            )
        return self

    @property
    def registry_url(self) -> str:
        """The registry database URL, with the driver plantwire uses filled in."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'plantwire.db').resolve()}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings for ``data_dir`` (else ``$PLANTWIRE_DATA_DIR``, else ``./plantwire-data``):
    defaults < ``<data_dir>/plantwire.toml`` < environment < ``overrides``.
    ``None`` overrides are ignored, so optional CLI options can be passed straight through."""
    chosen = data_dir or os.environ.get("PLANTWIRE_DATA_DIR") or DEFAULT_DATA_DIR
    directory = Path(chosen)
    toml = directory / CONFIG_FILE_NAME
    token = _toml_file.set(toml if toml.is_file() else None)
    try:
        given = {k: v for k, v in overrides.items() if v is not None}
        return Settings(data_dir=directory, **given)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{toml} is not valid TOML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{toml} is not UTF-8 text: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(
            f"invalid settings (from {toml}, PLANTWIRE_* variables or options): {problems}"
        ) from error
    finally:
        _toml_file.reset(token)

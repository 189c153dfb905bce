"""The device registry: rows to API shapes, MQTT secrets, and the rules names and places
follow. The HTTP routes (``routes.py``) and the broker's account config both read it."""

from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt

from plantwire.security.tables import name_key
from plantwire.telemetry.schemas import DataType, DeviceOut, MetricSpec, Topics
from plantwire.telemetry.tables import Device, DeviceMetric

__all__ = [
    "TOPIC_ROOT",
    "MqttSecret",
    "commands_topic",
    "device_out",
    "metric_rows",
    "new_secret",
    "place_filter",
    "search_key",
    "telemetry_topic",
]

TOPIC_ROOT = "plantwire/v1/devices"
# bcrypt's lowest cost: the secret has 256 random bits, so guessing it is hopeless however
# fast the hash, and the broker checks every connecting device against it.
_BCRYPT_ROUNDS = 4


def telemetry_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/telemetry"


def commands_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/commands"


class MqttSecret:
    """A new device secret: the password (shown once) and the two hashes stored."""

    __slots__ = ("bcrypt", "password", "sha256")

    def __init__(self, password: str) -> None:
        self.password = password
        self.sha256 = hashlib.sha256(password.encode()).hexdigest()
        self.bcrypt = bcrypt.hashpw(password.encode(), bcrypt.gensalt(_BCRYPT_ROUNDS)).decode()


def new_secret() -> MqttSecret:
    """256 random bits, URL-safe base64 without padding (43 characters)."""
    return MqttSecret(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode())


def search_key(text: str) -> str:
    """What ``?search=`` compares: the name folded as names are for uniqueness."""
    return name_key(text.strip())


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def place_filter(place: str) -> tuple[str, str]:
    """(exact, LIKE pattern) matching ``place`` and every place below it, level by level:
    'Plant1/Line3' matches 'Plant1/Line3' and 'Plant1/Line3/Press1', not 'Plant1/Line30'."""
    place = place.strip("/")
    return place, like_escape(place) + "/%"


def metric_rows(metrics: list[MetricSpec]) -> list[DeviceMetric]:
    return [
        DeviceMetric(
            name=metric.name,
            unit=metric.unit,
            data_type=metric.data_type.value,
            description=metric.description,
            writable=metric.writable,
        )
        for metric in metrics
    ]


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        tenant=device.tenant_id,
        name=device.name,
        kind=device.kind,
        place=device.place,
        attributes=device.attributes,
        metrics=[
            MetricSpec(
                name=metric.name,
                data_type=DataType(metric.data_type),
                unit=metric.unit,
                description=metric.description,
                writable=metric.writable,
            )
            for metric in sorted(device.metrics, key=lambda metric: metric.name)
        ],
        topics=Topics(telemetry=telemetry_topic(device.id), commands=commands_topic(device.id)),
        created_at=device.created_at,
        updated_at=device.updated_at,
    )

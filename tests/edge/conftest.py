"""The platform with its bundled broker, for the gateway's end-to-end tests."""

from tests.telemetry.conftest import platform_settings, with_broker

__all__ = ["platform_settings", "with_broker"]

"""Telemetry: devices, the MQTT broker, intake, ingest and the time-series store."""

"""Telemetry pillar: devices, MQTT intake, durable ingest, the time-series store."""

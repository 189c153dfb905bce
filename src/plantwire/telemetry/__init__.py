"""Telemetry: devices, the MQTT broker, intake, ingest, the time-series store, queries."""

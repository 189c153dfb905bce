"""Telemetry: devices, MQTT/Sparkplug intake, durable ingest, the time-series store, queries."""

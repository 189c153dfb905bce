"""The edge gateway: connectors to machines (Modbus, OPC UA) → store-and-forward → Sparkplug B."""

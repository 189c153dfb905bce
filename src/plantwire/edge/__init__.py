"""The edge gateway: connectors that read OPC UA servers and Modbus devices, a
store-and-forward buffer for when the uplink is down, and a Sparkplug B edge node that
publishes to the platform."""

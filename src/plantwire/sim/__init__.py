"""The factory simulator: a small plant (a CNC cell and a press line) behind a real OPC UA
server and a real Modbus TCP server, for demos, the gateway's tests and the traceability
step. ``plant.py`` is the model (no I/O); ``opcua.py``, ``modbus.py`` publish it and
``runner.py`` runs all three."""

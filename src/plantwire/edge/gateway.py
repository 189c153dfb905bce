"""The edge gateway, put together: connectors → the Sparkplug B edge node's uplink, with the
store-and-forward buffer behind it; commands back to the connectors; health as metrics.

``plantwire gateway --config gateway.toml`` runs one (`run_gateway`). Each connector device
is a Sparkplug device of the node, its points its metrics; besides them each device reports
its connection as metrics (``Connector/Connected``, ``Connector/Errors``,
``Connector/Last Error``), and the node its buffer (``Buffer/Points``, ``Buffer/Dropped``,
``Buffer/Dropped Bytes``) and uplink (``Uplink/Replayed``, ``Uplink/Invalid``), every
``health_interval`` seconds, by exception like any metric — so the platform shows connector
health and a buffer that had to drop points beside the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from plantwire.edge.buffer import BufferedPoint, PointBuffer
from plantwire.edge.config import GatewayConfig
from plantwire.edge.modbus import ModbusConnector
from plantwire.edge.node import EdgeNodeSession, MetricSpec, Write
from plantwire.edge.opcua import ConnectionState, OpcUaConnector, OpcUaSample
from plantwire.edge.samples import Sample
from plantwire.edge.uplink import SparkplugUplink, UplinkSettings
from plantwire.telemetry.sparkplug import DataType

__all__ = ["Gateway", "quiet_protocol_libraries"]

_log = structlog.get_logger("plantwire.edge")

_NODE_HEALTH = (
    MetricSpec("Buffer/Points", DataType.UInt64, description="points waiting for the uplink"),
    MetricSpec("Buffer/Dropped", DataType.UInt64, description="points the buffer's bounds dropped"),
    MetricSpec("Buffer/Dropped Bytes", DataType.UInt64),
    MetricSpec("Uplink/Replayed", DataType.UInt64, description="buffered points sent since start"),
    MetricSpec("Uplink/Invalid", DataType.UInt64, description="points their type cannot carry"),
)
_DEVICE_HEALTH = (
    MetricSpec("Connector/Connected", DataType.Boolean),
    MetricSpec("Connector/Errors", DataType.UInt64, description="failed reads since start"),
    MetricSpec("Connector/Last Error", DataType.String),
)


#: the protocol libraries' own loggers: they log hex dumps of frames and tracebacks, at ERROR,
#: on every lost connection, which the connectors report already (as health and warnings)
_PROTOCOL_LOGGERS = ("pymodbus", "pymodbus.logging", "asyncua")


def quiet_protocol_libraries() -> None:
    """Lets only CRITICAL records of pymodbus's and asyncua's own loggers through: the
    gateway says what happened to a device itself (``Connector/*`` metrics, its log)."""
    for name in _PROTOCOL_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


class Gateway:
    """One gateway from its checked configuration; ``base`` is the folder relative paths of
    the configuration are taken from (the configuration file's)."""

    def __init__(self, config: GatewayConfig, base: Path) -> None:
        self.config = config
        data_dir = config.node.data_dir
        data_dir = data_dir if data_dir.is_absolute() else base / data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._types: dict[tuple[str, str], DataType] = {}
        devices: dict[str, list[MetricSpec]] = {}
        for device in config.modbus_devices:
            specs = []
            for point in device.register_map.points:
                datatype = DataType[point.value_type.sparkplug_name]
                self._types[(device.name, point.name)] = datatype
                specs.append(MetricSpec(point.name, datatype))
            devices[device.name] = [*specs, *_DEVICE_HEALTH]
        # OPC UA metrics are declared when their types are known (at connect, or from the
        # first value): the uplink declares them from the samples and publishes births again
        for server in config.opcua_servers:
            for node in server.nodes:
                devices.setdefault(node.device, [*_DEVICE_HEALTH])
        self.session = EdgeNodeSession(
            config.node.group, config.node.edge_node, devices, node_metrics=_NODE_HEALTH
        )
        self.buffer = PointBuffer(
            data_dir / "buffer.sqlite",
            max_bytes=config.buffer.max_bytes,
            max_age=config.buffer.max_age,
        )
        uplink = config.uplink
        self.uplink = SparkplugUplink(
            self.session,
            self.buffer,
            UplinkSettings(
                uplink.host,
                uplink.port,
                username=uplink.username,
                password=config.password(base),
                client_id=uplink.client_id,
                tls=_tls(uplink.tls, uplink.ca_file, base),
                primary_host=uplink.primary_host,
                qos=uplink.qos,
                keepalive=uplink.keepalive,
            ),
            on_write=self._write,
            bd_seq_file=data_dir / "bdseq",
        )
        self.modbus = ModbusConnector(config.modbus_devices, self._samples)
        self.opcua = [
            OpcUaConnector(server, self._opcua_samples) for server in config.opcua_servers
        ]
        self._opcua_owner = {
            node.key: connector for connector in self.opcua for node in connector.config.nodes
        }
        #: samples the connectors handed over since the start (changed or not)
        self.polled = 0

    def _samples(self, samples: Sequence[Sample]) -> None:
        self.polled += len(samples)
        types, point = self._types, BufferedPoint
        self.uplink.submit(
            [
                point(
                    sample.device,
                    sample.metric,
                    types[(sample.device, sample.metric)],
                    sample.timestamp,
                    sample.value,
                    int(sample.quality),
                )
                for sample in samples
            ]
        )

    async def _opcua_samples(self, sample: OpcUaSample) -> None:
        self.polled += 1
        self.uplink.submit([sample])

    async def _write(self, write: Write) -> bool:
        opcua = self._opcua_owner.get((write.device, write.metric))
        if opcua is not None:
            written = await opcua.write(write.device, write.metric, write.value)
            if not written.ok:
                _log.warning(
                    "edge.write_failed",
                    device=write.device,
                    metric=write.metric,
                    error=written.reason,
                )
            return written.ok
        if write.value is None or isinstance(write.value, bytes | list):
            _log.warning("edge.write_refused", device=write.device, metric=write.metric)
            return False
        result = await self.modbus.write(write.device, write.metric, write.value)
        if not result.ok:
            _log.warning(
                "edge.write_failed", device=write.device, metric=write.metric, error=result.error
            )
        return result.ok

    def health_points(self, now_ms: int) -> list[BufferedPoint]:
        """The node's and the devices' health, as points."""
        stats = self.buffer.stats()
        uplink = self.uplink.stats
        points = [
            BufferedPoint("", "Buffer/Points", DataType.UInt64, now_ms, stats.points),
            BufferedPoint("", "Buffer/Dropped", DataType.UInt64, now_ms, stats.dropped),
            BufferedPoint("", "Buffer/Dropped Bytes", DataType.UInt64, now_ms, stats.dropped_bytes),
            BufferedPoint("", "Uplink/Replayed", DataType.UInt64, now_ms, uplink.replayed),
            BufferedPoint("", "Uplink/Invalid", DataType.UInt64, now_ms, uplink.invalid),
        ]
        for connector in self.opcua:
            opcua = connector.health()
            devices = {node.device for node in connector.config.nodes}
            for name in sorted(devices):
                points += [
                    BufferedPoint(
                        name,
                        "Connector/Connected",
                        DataType.Boolean,
                        now_ms,
                        opcua.state is ConnectionState.CONNECTED,
                    ),
                    BufferedPoint(
                        name, "Connector/Errors", DataType.UInt64, now_ms, opcua.failed_connects
                    ),
                    BufferedPoint(
                        name,
                        "Connector/Last Error",
                        DataType.String,
                        now_ms,
                        opcua.last_error or "",
                    ),
                ]
        for name, health in self.modbus.health().items():
            errors = health.exception_responses + health.timeouts + health.decode_errors
            errors += health.connect_failures
            points += [
                BufferedPoint(
                    name, "Connector/Connected", DataType.Boolean, now_ms, health.connected
                ),
                BufferedPoint(name, "Connector/Errors", DataType.UInt64, now_ms, errors),
                BufferedPoint(
                    name, "Connector/Last Error", DataType.String, now_ms, health.last_error or ""
                ),
            ]
        return points

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set; then stops the connectors, publishes the node's death
        and closes the buffer."""
        try:
            async with self.modbus:
                uplink = asyncio.create_task(self.uplink.run(stop), name="gateway uplink")
                opcua = [
                    asyncio.create_task(connector.run(), name=f"opcua {connector.config.name}")
                    for connector in self.opcua
                ]
                try:
                    while not stop.is_set():
                        self.uplink.submit(self.health_points(_now_ms()))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.config.node.health_interval)
                finally:
                    stop.set()
                    for task in opcua:
                        task.cancel()
                    for task in opcua:
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    await uplink
        finally:
            self.buffer.close()


def _tls(enabled: bool, ca_file: Path | None, base: Path) -> ssl.SSLContext | None:
    if not enabled:
        return None
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(ca_file if ca_file.is_absolute() else base / ca_file)
    return context


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

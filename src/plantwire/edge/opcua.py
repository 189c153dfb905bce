"""The gateway's OPC UA connector: subscribes to a server's variables and hands each data
change to the gateway as a sample, keeps the subscription alive across server restarts and
network loss, and writes commands back to nodes.

One :class:`OpcUaConnector` per server (:class:`~plantwire.edge.opcua_config.OpcUaServerConfig`).
:meth:`OpcUaConnector.run` connects (security and identity as configured), resolves browse
paths, reads each node's declared data type, creates one subscription with all monitored
items in one call (sampling interval and absolute deadband per node) and passes every data
change, converted by :mod:`plantwire.edge.opcua_types`, to the sink as an
:class:`OpcUaSample` — a :class:`~plantwire.edge.buffer.BufferedPoint` that also carries the
raw OPC UA status code, so the gateway buffers samples as they are.

The connection is asyncua's, with its own supervisor probing the server every
``keepalive_s``; asyncua's auto-reconnect is off, because the connector reconnects itself:
on a lost connection (a probe that fails, a closed socket, a subscription the server
dropped) it reports each subscribed metric once with quality 0, then connects a fresh client
with exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``), resolving
browse paths and creating the subscription anew — a restarted server has none of the old
session's state. Errors are logged, kept in :meth:`OpcUaConnector.health` and never end
:meth:`~OpcUaConnector.run`; only cancelling it does.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.common.ua_utils import data_type_to_variant_type
from asyncua.crypto import security_policies

from plantwire.edge.buffer import BufferedPoint, PointValue
from plantwire.edge.opcua_config import NodeConfig, OpcUaServerConfig, SecurityMode
from plantwire.edge.opcua_types import (
    UnsupportedValue,
    declared_type,
    epoch_ms,
    metric_type,
    metric_value,
    parse_browse_path,
    quality,
    write_variant,
)
from plantwire.telemetry.sparkplug.model import DataType

__all__ = [
    "ConnectionState",
    "ConnectorHealth",
    "OpcUaConnector",
    "OpcUaSample",
    "SampleSink",
    "WriteResult",
    "connect_client",
]

_log = logging.getLogger(__name__)

_POLICIES: Final[dict[str, type[security_policies.SecurityPolicy]]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES: Final[dict[SecurityMode, ua.MessageSecurityMode]] = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}
#: What a connection failure can raise: sockets, timeouts, and OPC UA's own errors.
_CONNECTION_ERRORS = (OSError, TimeoutError, ConnectionError, ua.UaError)
_MAX_QUEUE = 100
#: how long closing a lost connection may take
_CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class OpcUaSample(BufferedPoint):
    """A data change: a :class:`BufferedPoint` (quality from the status code's severity)
    plus the status code itself (``0``: Good)."""

    status: int = 0


#: Where samples go: an async callable, e.g. ``asyncio.Queue.put``.
SampleSink = Callable[[OpcUaSample], Awaitable[None]]


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # waiting to reconnect
    STOPPED = "stopped"  # run() is not running


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    """A connector's health at one moment (times: wall clock, seconds)."""

    server: str
    state: ConnectionState
    connected_since: float | None
    last_error: str | None
    last_error_at: float | None
    data_changes: int  # notifications received
    samples: int  # samples handed to the sink
    reconnects: int  # connections made after the first
    failed_connects: int
    values_refused: int  # values with no Sparkplug form
    #: nodes not subscribed, or whose last value was refused: (device, metric) → reason
    refused: dict[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a write-back: the server's status code, or a local refusal's."""

    ok: bool
    status: int
    reason: str


@dataclass(slots=True)
class _Node:
    """A configured node on the current connection."""

    config: NodeConfig
    node_id: ua.NodeId | None = None
    declared: DataType | None = None  # from the node's DataType and ValueRank
    last_type: DataType | None = None
    last_value: PointValue | None = None
    write_type: tuple[ua.VariantType, bool | None] | None = None


class _ConnectionLost(Exception):
    pass


@dataclass(slots=True)
class _Counters:
    data_changes: int = 0
    samples: int = 0
    reconnects: int = 0
    failed_connects: int = 0
    values_refused: int = 0
    refused: dict[tuple[str, str], str] = field(default_factory=dict)


async def connect_client(config: OpcUaServerConfig) -> Client:
    """A connected asyncua client with the config's security and identity (auto-reconnect
    off); the caller disconnects it."""
    client = Client(
        config.endpoint, timeout=config.timeout_s, watchdog_intervall=config.keepalive_s
    )
    client.application_uri = config.application_uri
    client.name = client.description = "plantwire gateway"
    # a lost gateway's session (and its subscription) is freed after two minutes, not an hour
    client.session_timeout = 120_000
    if config.username is not None and config.password is not None:
        client.set_user(config.username)
        client.set_password(config.password)
    if config.security_mode != SecurityMode.NONE:
        if config.certificate is None or config.private_key is None:  # the config checks
            raise ValueError("a secured connection needs a certificate and its key")
        server_certificate = config.server_certificate
        try:
            await client.set_security(
                _POLICIES[config.security_policy],
                str(config.certificate),
                str(config.private_key),
                server_certificate=None if server_certificate is None else str(server_certificate),
                mode=_MODES[config.security_mode],
            )
        except ValueError as error:  # cryptography's, for a file that is no key or certificate
            raise ua.UaError(f"cannot load the certificate or key: {error}") from error
    await client.connect(auto_reconnect=False)
    return client


async def _close(client: Client) -> None:
    """Close the session if the server still answers; the socket in any case."""
    try:
        await asyncio.wait_for(client.disconnect(), _CLOSE_TIMEOUT)
    except _CONNECTION_ERRORS as error:
        _log.debug("closing the OPC UA client: %r", error)
    finally:
        client.disconnect_socket()


class OpcUaConnector:
    """One OPC UA server's subscription, kept up by :meth:`run` (see the module's doc)."""

    def __init__(
        self,
        config: OpcUaServerConfig,
        sink: SampleSink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._sink = sink
        self._clock = clock
        self._nodes = {node.key: _Node(node) for node in config.nodes}
        self._by_handle: dict[int, _Node] = {}
        self._client: Client | None = None
        self._state = ConnectionState.STOPPED
        self._connected = asyncio.Event()
        self._connected_since: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._counts = _Counters()
        self._sessions = 0

    # --- what the gateway reads ------------------------------------------------------

    def health(self) -> ConnectorHealth:
        counts = self._counts
        return ConnectorHealth(
            server=self.config.name,
            state=self._state,
            connected_since=self._connected_since,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            data_changes=counts.data_changes,
            samples=counts.samples,
            reconnects=counts.reconnects,
            failed_connects=counts.failed_connects,
            values_refused=counts.values_refused,
            refused=dict(counts.refused),
        )

    def datatypes(self) -> dict[tuple[str, str], DataType]:
        """The Sparkplug data type of each metric known so far (declared by its node, else
        of its last value): what a device birth needs."""
        known = {}
        for key, node in self._nodes.items():
            datatype = node.declared or node.last_type
            if datatype is not None:
                known[key] = datatype
        return known

    async def wait_connected(self, within: float) -> None:
        """Wait until subscribed, at most ``within`` seconds (then ``TimeoutError``)."""
        async with asyncio.timeout(within):
            await self._connected.wait()

    # --- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe and deliver samples until cancelled, reconnecting as needed."""
        delay = self.config.reconnect_min_s
        try:
            while True:
                self._state = ConnectionState.CONNECTING
                try:
                    await self._session()
                except _ConnectionLost as lost:
                    self._error(f"connection lost: {lost}")
                except _CONNECTION_ERRORS as error:
                    self._error(f"{type(error).__name__}: {error}")
                _raise_if_cancelled()
                if self._connected.is_set():  # a subscribed connection ended
                    self._connected.clear()
                    self._connected_since = None
                    delay = self.config.reconnect_min_s
                    await self._report_stale()
                else:
                    self._counts.failed_connects += 1
                self._state = ConnectionState.DISCONNECTED
                _log.info("OPC UA %s: reconnecting in %.1f s", self.config.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
        finally:
            self._state = ConnectionState.STOPPED
            self._connected.clear()
            self._connected_since = None

    def _error(self, message: str) -> None:
        self._last_error = message
        self._last_error_at = self._clock()
        _log.warning("OPC UA %s: %s", self.config.name, message)

    async def _session(self) -> None:
        client = await connect_client(self.config)
        try:
            _raise_if_cancelled()
            subscription = await self._subscribe(client)
            self._client = client
            self._connected_since = self._clock()
            self._state = ConnectionState.CONNECTED
            self._connected.set()
            if self._sessions:
                self._counts.reconnects += 1
            self._sessions += 1
            _log.info("OPC UA %s: subscribed", self.config.name)
            await self._pump(subscription)
        finally:
            self._client = None
            self._by_handle = {}
            await _close(client)

    async def _subscribe(self, client: Client) -> Subscription:
        nodes = list(self._nodes.values())
        for node in nodes:
            node.node_id = None
            node.declared = None
            node.write_type = None
        self._counts.refused.clear()
        await self._resolve(client, nodes)
        await self._declare(client, [node for node in nodes if node.node_id is not None])
        subscription = await client.create_subscription(
            self.config.publishing_ms, handler=None, queue_maxsize=10_000
        )
        wanted = [node for node in nodes if node.config.key not in self._counts.refused]
        # client handles of our own: the subscription is used through this call only
        requests = [self._request(handle, node) for handle, node in enumerate(wanted, 1)]
        results = await subscription.create_monitored_items(requests) if requests else []
        by_handle = {}
        for handle, (node, result) in enumerate(zip(wanted, results, strict=True), 1):
            if isinstance(result, ua.StatusCode):
                self._refuse(node, f"monitored item refused: {result.name}")
            else:
                by_handle[handle] = node
        self._by_handle = by_handle
        return subscription

    def _refuse(self, node: _Node, reason: str) -> None:
        _log.warning(
            "OPC UA %s: %s (%s) of %r: %s",
            self.config.name,
            node.config.metric,
            node.config.address,
            node.config.device,
            reason,
        )
        self._counts.refused[node.config.key] = reason

    async def _resolve(self, client: Client, nodes: list[_Node]) -> None:
        """NodeIds as configured; browse paths translated in one call."""
        by_path = []
        for node in nodes:
            if node.config.node_id is not None:
                node.node_id = ua.NodeId.from_string(node.config.node_id)
            else:
                by_path.append(node)
        if not by_path:
            return
        paths = [parse_browse_path(node.config.browse_path or "") for node in by_path]
        found = await client.nodes.root.get_children_by_path(paths, raise_on_partial_error=False)
        for node, targets in zip(by_path, found, strict=True):
            if not targets or targets[0] is None:
                self._refuse(node, f"browse path {node.config.browse_path} not found")
            else:
                node.node_id = targets[0].nodeid

    async def _declare(self, client: Client, nodes: list[_Node]) -> None:
        """Each node's declared Sparkplug type, from its DataType and ValueRank (read in two
        calls); a node whose declared type has none is refused."""
        if not nodes:
            return
        handles = [client.get_node(node.node_id) for node in nodes if node.node_id is not None]
        types = await client.read_attributes(handles, ua.AttributeIds.DataType)
        ranks = await client.read_attributes(handles, ua.AttributeIds.ValueRank)
        for node, type_value, rank_value in zip(nodes, types, ranks, strict=True):
            status = type_value.StatusCode
            if status is not None and not status.is_good():
                self._refuse(node, f"cannot read its DataType: {status.name}")
                continue
            data_type = type_value.Value.Value if type_value.Value is not None else None
            rank = rank_value.Value.Value if rank_value.Value is not None else None
            if not isinstance(data_type, ua.NodeId) or not isinstance(rank, int):
                continue
            if rank > 1:
                self._refuse(node, f"a {rank}-dimensional array has no Sparkplug B data type")
                continue
            variant_type = declared_type(data_type)
            if variant_type is None or rank not in (-1, 1):
                continue  # learnt from the first value
            try:
                node.declared = metric_type(variant_type, array=rank == 1)
            except UnsupportedValue as error:
                self._refuse(node, str(error))

    def _request(self, handle: int, node: _Node) -> ua.MonitoredItemCreateRequest:
        config = node.config
        parameters = ua.MonitoringParameters()
        parameters.ClientHandle = handle
        parameters.SamplingInterval = config.sampling_ms
        # room for every sample taken over two publishing intervals: one publish that comes
        # late (a busy client, a jittery server) loses nothing
        ratio = self.config.publishing_ms / config.sampling_ms if config.sampling_ms > 0 else 10
        parameters.QueueSize = max(2, min(_MAX_QUEUE, math.ceil(2 * ratio)))
        parameters.DiscardOldest = True
        if config.deadband is not None:
            parameters.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=int(ua.DeadbandType.Absolute),
                DeadbandValue=config.deadband,
            )
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = ua.ReadValueId(
            NodeId=node.node_id, AttributeId=ua.AttributeIds.Value
        )
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = parameters
        return request

    async def _pump(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                await self._data_change(event)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and not status.is_good():
                    raise _ConnectionLost(f"subscription status {status.name}")
        raise _ConnectionLost("the subscription ended")

    async def _data_change(self, event: DataChangeEvent) -> None:
        self._counts.data_changes += 1
        handle = event.data.subscription_data.client_handle
        node = self._by_handle.get(handle) if handle is not None else None
        if node is None:
            return
        sample = self._sample(node, event.data.monitored_item.Value)
        if sample is not None:
            self._counts.samples += 1
            await self._sink(sample)

    def _sample(self, node: _Node, value: ua.DataValue | None) -> OpcUaSample | None:
        if value is None:
            return None
        status = value.StatusCode.value if value.StatusCode is not None else 0
        moment = value.SourceTimestamp or value.ServerTimestamp
        timestamp = epoch_ms(moment) if moment is not None else int(self._clock() * 1000)
        variant = value.Value
        converted: PointValue | None = None
        if variant is None or variant.VariantType == ua.VariantType.Null:
            datatype = node.declared or node.last_type
            if datatype is None:
                self._counts.values_refused += 1
                return None  # a null of a node whose type is not known yet
        else:
            try:
                datatype, converted = metric_value(variant)
            except UnsupportedValue as error:
                self._counts.values_refused += 1
                if node.config.key not in self._counts.refused:
                    self._refuse(node, str(error))
                return None
        node.last_type, node.last_value = datatype, converted
        self._counts.refused.pop(node.config.key, None)
        return OpcUaSample(
            node.config.device,
            node.config.metric,
            int(datatype),
            timestamp,
            converted,
            quality(status),
            status,
        )

    async def _report_stale(self) -> None:
        """Each metric once with quality 0 and its last value: the platform sees them stale."""
        now = int(self._clock() * 1000)
        for node in self._nodes.values():
            datatype = node.last_type or node.declared
            if datatype is None:
                continue
            value = node.last_value if node.last_type == datatype else None
            await self._sink(
                OpcUaSample(
                    node.config.device,
                    node.config.metric,
                    int(datatype),
                    now,
                    value,
                    0,
                    ua.StatusCodes.BadNotConnected,
                )
            )

    # --- write-back ------------------------------------------------------------------

    async def write(self, device: str, metric: str, value: object) -> WriteResult:
        """Write ``value`` to the node of a writable metric, converted to the node's own
        data type (read once per connection). Never raises for a refusal or a failure: the
        result says what happened."""
        node = self._nodes.get((device, metric))
        if node is None:
            return _refusal(ua.StatusCodes.BadNodeIdUnknown, f"{metric!r} is not configured")
        if not node.config.writable:
            return _refusal(ua.StatusCodes.BadUserAccessDenied, f"{metric!r} is not writable")
        client = self._client
        if client is None or node.node_id is None:
            return _refusal(ua.StatusCodes.BadNotConnected, "not connected to the server")
        handle = client.get_node(node.node_id)
        try:
            if node.write_type is None:
                variant_type = await data_type_to_variant_type(
                    client.get_node(await handle.read_data_type())
                )
                rank = await handle.read_value_rank()
                node.write_type = (
                    variant_type,
                    True if rank == 1 else False if rank == -1 else None,
                )
            variant_type, array = node.write_type
            try:
                variant = write_variant(
                    value, variant_type, isinstance(value, list) if array is None else array
                )
            except UnsupportedValue as error:
                return _refusal(ua.StatusCodes.BadTypeMismatch, str(error))
            results = await client.uaclient.write_attributes(
                [node.node_id], [ua.DataValue(variant)], ua.AttributeIds.Value
            )
        except _CONNECTION_ERRORS as error:
            if isinstance(error, ua.UaStatusCodeError):
                return _refusal(error.code, str(error))
            return _refusal(
                ua.StatusCodes.BadCommunicationError, f"{type(error).__name__}: {error}"
            )
        status = results[0]
        return WriteResult(status.is_good(), status.value, status.name)


def _raise_if_cancelled() -> None:
    """Raise the CancelledError of a cancel that asyncua swallowed: its connect and teardown
    catch CancelledError while they wait for their own tasks, and may eat ours with it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _refusal(status: int, reason: str) -> WriteResult:
    return WriteResult(False, status, reason)

"""A real asyncua server for the connector's tests: a plant with a press and one variable of
each built-in type the connector maps, on a loopback port."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.user_managers import UserManager

V = ua.VariantType
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
GUID = uuid.UUID("72962b91-fa75-4ae6-8d28-b404dc7daf63")

#: name → (variant type, array, initial value)
TYPED: dict[str, tuple[ua.VariantType, bool, Any]] = {
    "Boolean": (V.Boolean, False, True),
    "SByte": (V.SByte, False, -5),
    "Byte": (V.Byte, False, 200),
    "Int16": (V.Int16, False, -300),
    "UInt16": (V.UInt16, False, 60000),
    "Int32": (V.Int32, False, -70000),
    "UInt32": (V.UInt32, False, 4_000_000_000),
    "Int64": (V.Int64, False, -(2**40)),
    "UInt64": (V.UInt64, False, 2**63 + 5),
    "Float": (V.Float, False, 1.5),
    "Double": (V.Double, False, 2.25),
    "String": (V.String, False, "héllo"),
    "DateTime": (V.DateTime, False, WHEN),
    "ByteString": (V.ByteString, False, b"\x00\x01\xff"),
    "Guid": (V.Guid, False, GUID),
    "BooleanArray": (V.Boolean, True, [True, False]),
    "SByteArray": (V.SByte, True, [-1, 2]),
    "ByteArray": (V.Byte, True, [1, 2, 255]),
    "Int16Array": (V.Int16, True, [1, -2]),
    "UInt16Array": (V.UInt16, True, [1, 65535]),
    "Int32Array": (V.Int32, True, [-(2**31), 7]),
    "UInt32Array": (V.UInt32, True, [2**32 - 1]),
    "Int64Array": (V.Int64, True, [-(2**63), 2**62]),
    "UInt64Array": (V.UInt64, True, [2**64 - 1, 0]),
    "FloatArray": (V.Float, True, [0.5, -1.25]),
    "DoubleArray": (V.Double, True, [1.0, 2.5]),
    "StringArray": (V.String, True, ["a", "b"]),
    "DateTimeArray": (V.DateTime, True, [WHEN]),
    "LocalizedText": (V.LocalizedText, False, ua.LocalizedText("text")),
    "GuidArray": (V.Guid, True, [GUID]),
}


def _moment(moment: datetime) -> ua.DateTime:
    """asyncua types DataValue's times as its own datetime subclass, and takes any datetime."""
    return cast(ua.DateTime, moment)


class PasswordUsers(UserManager):
    """Users with passwords."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


@dataclass
class PlantServer:
    server: Server
    port: int
    ns: int
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    def node_id(self, name: str) -> str:
        return f"ns={self.ns};s={name}"

    async def set(
        self, name: str, value: Any, status: int = 0, source: datetime | None = None
    ) -> None:
        variant_type, array, _ = TYPED.get(name, (V.Double, False, None))
        variant = ua.Variant() if value is None else ua.Variant(value, variant_type, is_array=array)
        data = ua.DataValue(
            variant,
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=_moment(source or datetime.now(UTC)),
            ServerTimestamp=_moment(datetime.now(UTC)),
        )
        await self.nodes[name].write_value(data)

    async def stop(self) -> None:
        """Stop the server as a crash would, for its clients: sockets closed first. Then
        close the sessions it had, which asyncua keeps (with their tasks) for clients to
        reactivate."""
        await self.server.stop()
        sessions = self.server.iserver._external_sessions
        for session in list(sessions.values()):
            await session.close_session(True)
        sessions.clear()


async def make_server(
    port: int,
    *,
    certificate: tuple[Path, Path] | None = None,
    policy: ua.SecurityPolicyType = ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    users: dict[str, str] | None = None,
) -> PlantServer:
    """A server (not started): ``Plant/Press1/{Temperature,Pressure,Setpoint}`` (Double, Double,
    Int16) and ``Types/<name>`` of :data:`TYPED`; with ``certificate`` (cert, key) it takes
    ``policy`` only, with ``users`` only those users."""
    server = Server(user_manager=PasswordUsers(users) if users is not None else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    if certificate is not None:
        await server.load_certificate(str(certificate[0]))
        await server.load_private_key(str(certificate[1]))
        server.set_security_policy([policy])
    if users is not None:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    ns = await server.register_namespace("urn:plantwire:test")
    plant = PlantServer(server, port, ns)
    objects = server.nodes.objects
    press = await (await objects.add_object(ns, "Plant")).add_object(ns, "Press1")
    for name, value, variant_type in (
        ("Temperature", 20.0, V.Double),
        ("Pressure", 1.0, V.Double),
        ("Setpoint", 100, V.Int16),
    ):
        node = await press.add_variable(
            plant.node_id(f"Press1.{name}"),
            ua.QualifiedName(name, ns),
            ua.Variant(value, variant_type),
        )
        plant.nodes[name] = node
    await plant.nodes["Setpoint"].set_writable()
    await plant.nodes["Pressure"].set_writable()
    types = await objects.add_object(ns, "Types")
    for name, (variant_type, array, value) in TYPED.items():
        node = await types.add_variable(
            plant.node_id(f"Types.{name}"),
            ua.QualifiedName(name, ns),
            ua.Variant(value, variant_type, is_array=array),
        )
        plant.nodes[name] = node
    return plant


class SilentProxy:
    """A TCP proxy to a local port that can go silent: while ``silent``, it keeps every
    connection open but passes nothing on, as a network that drops packets does."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.silent = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target
            )
            self._writers += [writer, upstream_writer]
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        except OSError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

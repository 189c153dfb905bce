"""Commands down to devices, and their outcome by read-back (issue 4, item 7).

A command writes one metric the device declared writable. The platform publishes
``{"id", "metric", "value", "ts"}`` on the device's commands topic and keeps the command as
``sent``; when ingest next stores that metric of that device at the commanded value, the
command is ``confirmed`` (the device reports the new value: the read-back). A command still
``sent`` after its deadline is ``unconfirmed``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from plantwire.telemetry.tables import DeviceCommand

__all__ = ["CommandWatch", "ReadBack", "command_message", "same_value", "status_of"]

_log = structlog.get_logger("plantwire.commands")

Key = tuple[str, str, str]  # tenant, device, metric


@runtime_checkable
class ReadBack(Protocol):
    """A commanded value that a read-back confirms by more than equality (a Sparkplug
    Template's, which a node may report only in part: `sparkplug.commands.MembersReadBack`)."""

    def matches(self, reported: object) -> bool: ...


def same_value(commanded: object, reported: object) -> bool:
    """Equal and of one type (``True`` is not ``1``; an int read back is a float's), or
    what a `ReadBack` matches."""
    if isinstance(commanded, ReadBack):
        return commanded.matches(reported)
    if isinstance(commanded, bool) or isinstance(reported, bool):
        return type(commanded) is type(reported) and commanded == reported
    return commanded == reported


def command_message(command_id: str, metric: str, value: object, sent_at: datetime) -> bytes:
    return json.dumps(
        {
            "id": command_id,
            "metric": metric,
            "value": value,
            "ts": int(sent_at.timestamp() * 1000),
        }
    ).encode()


def status_of(command: DeviceCommand, now: datetime) -> str:
    if command.status == "sent" and now > command.deadline:
        return "unconfirmed"
    return command.status


class CommandWatch:
    """Commands waiting for their read-back. Ingest hands it each stored point of a watched
    metric (``watching`` is the cheap check); a match is confirmed in the registry and wakes
    whoever waits for it."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._pending: dict[Key, list[tuple[str, object, datetime]]] = {}
        self._waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    @property
    def watching(self) -> bool:
        return bool(self._pending)

    def watches(self, key: Key) -> bool:
        return key in self._pending

    def watched(
        self, tenant: str, device: str, values: Iterable[tuple[str, object]]
    ) -> list[tuple[Key, object]]:
        """Of a device's stored (metric, value) pairs, those a command waits for, as the
        reports `seen` takes."""
        return [
            ((tenant, device, metric), value)
            for metric, value in values
            if (tenant, device, metric) in self._pending
        ]

    def expect(self, key: Key, command_id: str, value: object, deadline: datetime) -> None:
        with self._lock:
            self._pending.setdefault(key, []).append((command_id, value, deadline))

    def forget(self, key: Key, command_id: str) -> None:
        with self._lock:
            left = [entry for entry in self._pending.get(key, []) if entry[0] != command_id]
            if left:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)

    def seen(self, reports: Iterable[tuple[Key, object]], at: datetime) -> list[str]:
        """Confirm the commands whose value ``reports`` carry; returns their ids. Expired
        commands are dropped from the watch (they stay ``sent``: reported unconfirmed)."""
        confirmed: list[str] = []
        with self._lock:
            for key, reported in reports:
                entries = self._pending.get(key)
                if not entries:
                    continue
                left = []
                for command_id, value, deadline in entries:
                    if at > deadline:
                        continue
                    if same_value(value, reported):
                        confirmed.append(command_id)
                    else:
                        left.append((command_id, value, deadline))
                if left:
                    self._pending[key] = left
                else:
                    del self._pending[key]
        if confirmed:
            with self._sessions() as session, session.begin():
                session.execute(
                    update(DeviceCommand)
                    .where(DeviceCommand.id.in_(confirmed), DeviceCommand.status == "sent")
                    .values(status="confirmed", confirmed_at=at)
                )
            for command_id in confirmed:
                waiter = self._waiters.get(command_id)
                if waiter is not None:
                    loop, event = waiter
                    loop.call_soon_threadsafe(event.set)
            _log.info("commands.confirmed", commands=len(confirmed))
        return confirmed

    def waiter(self, command_id: str) -> asyncio.Event:
        """An event set when the command is confirmed (ask before sending it)."""
        event = asyncio.Event()
        self._waiters[command_id] = (asyncio.get_running_loop(), event)
        return event

    def drop_waiter(self, command_id: str) -> None:
        self._waiters.pop(command_id, None)

"""Commands to a device's writable metrics under /api/v1/devices/{device_id}/commands:
send one (audited, only with ``device:operate``), list them, read one with its outcome.
A JSON device gets ``{"id", "metric", "value", "ts"}`` on its commands topic; a Sparkplug
edge node an NCMD, a Sparkplug device a DCMD, typed by its birth (`sparkplug_commands`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import (
    READ_ERRORS,
    WRITE_ERRORS,
    audited,
    conflict,
    invalid,
    not_found,
    unavailable,
)
from plantwire.security.tables import utcnow
from plantwire.telemetry.accounts import command_subject
from plantwire.telemetry.commands import command_message, status_of
from plantwire.telemetry.payloads import PayloadError, typed_value
from plantwire.telemetry.query import json_value
from plantwire.telemetry.routes import reachable_device
from plantwire.telemetry.schemas import MetricName
from plantwire.telemetry.sparkplug.commands import CommandPayload, CommandValue, command_payload
from plantwire.telemetry.sparkplug_commands import SPARKPLUG_KINDS, NotBorn, sparkplug_target
from plantwire.telemetry.tables import Device, DeviceCommand

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], route_class=AuthenticateFirst)

COMMAND_SECONDS = 30  # how long a command waits for its read-back before it is unconfirmed


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: MetricName
    value: CommandValue = Field(
        description="Of the metric's declared type. A Sparkplug metric also takes a DateTime "
        "(epoch ms or ISO 8601 with a zone), Bytes or File (base64), an array (a list), or a "
        "DataSet or Template (an object as the query API shows a stored one, or its JSON text)."
    )


class CommandOut(BaseModel):
    id: str
    device: str
    metric: str
    value: Any
    status: str = Field(description="sent, confirmed (read back), unconfirmed or failed")
    sent_at: datetime
    deadline: datetime
    confirmed_at: datetime | None


class CommandPage(BaseModel):
    items: list[CommandOut]


def _out(command: DeviceCommand, now: datetime) -> CommandOut:
    return CommandOut(
        id=command.id,
        device=command.device_id,
        metric=command.metric,
        value=command.value,
        status=status_of(command, now),
        sent_at=command.sent_at,
        deadline=command.deadline,
        confirmed_at=command.confirmed_at,
    )


def _checked(
    session: Session, principal: Principal, device_id: str, body: CommandIn
) -> tuple[Device, Any]:
    """The device (in the caller's reach) and the value, checked against the metric the
    device API declares (a Sparkplug metric's type is its birth's: checked later)."""
    device = reachable_device(session, principal, device_id)
    metric = next((m for m in device.metrics if m.name == body.metric), None)
    if metric is None:
        raise invalid(f"The device declares no metric '{body.metric}'.")
    if not metric.writable:
        raise invalid(f"The metric '{body.metric}' is not writable.")
    if device.kind in SPARKPLUG_KINDS:
        return device, body.value
    try:
        return device, typed_value(body.metric, body.value, metric.data_type)
    except PayloadError as error:
        raise invalid(f"The value cannot be written: {error.detail}.") from error


@dataclass(frozen=True, slots=True)
class Checked:
    """A command found fit to send, before it is recorded."""

    tenant_id: str
    kind: str
    name: str
    value: Any


def _check(platform: Platform, principal: Principal, device_id: str, body: CommandIn) -> Checked:
    with platform.sessions() as session:
        device, value = _checked(session, principal, device_id, body)
        return Checked(device.tenant_id, device.kind, device.name, value)


def _sparkplug(platform: Platform, checked: Checked, body: CommandIn) -> tuple[str, CommandPayload]:
    """The subject and NCMD/DCMD payload of a command to a Sparkplug node or device, typed
    by its birth certificate: 409 while it is offline, 422 for a value the birth's type
    does not take."""
    assert platform.store is not None  # ingest runs on it
    try:
        target = sparkplug_target(platform.store, checked.tenant_id, checked.kind, checked.name)
    except NotBorn as error:
        raise conflict(f"{error} A command cannot be sent now.") from error
    now_ms = int(utcnow().timestamp() * 1000)
    try:
        return target.subject, command_payload(target.certificate, body.metric, body.value, now_ms)
    except PayloadError as error:
        raise invalid(f"The value cannot be written: {error.detail}.") from error


def _record(
    platform: Platform,
    principal: Principal,
    request: Request,
    device_id: str,
    body: CommandIn,
    value: Any,
) -> DeviceCommand:
    """Keep the command as sent (audited, one transaction)."""
    with transaction(platform.sessions) as session:
        device, _ = _checked(session, principal, device_id, body)
        now = utcnow()
        command = DeviceCommand(
            device_id=device.id,
            metric=body.metric,
            value=value,
            status="sent",
            actor_id=principal.user_id,
            sent_at=now,
            deadline=now + timedelta(seconds=COMMAND_SECONDS),
        )
        session.add(command)
        session.flush()
        audited(
            session,
            request,
            principal,
            "device.command",
            "device",
            device.id,
            device.tenant_id,
            {"command": command.id, "metric": body.metric, "value": value},
        )
        return command


def _mark_failed(platform: Platform, command_id: str) -> None:
    with transaction(platform.sessions) as session:
        session.execute(
            update(DeviceCommand).where(DeviceCommand.id == command_id).values(status="failed")
        )


def _load(platform: Platform, command_id: str) -> DeviceCommand:
    with platform.sessions() as session:
        command = session.get(DeviceCommand, command_id)
        assert command is not None
        return command


@router.post(
    "/{device_id}/commands",
    response_model=CommandOut,
    status_code=202,
    responses={**WRITE_ERRORS, 503: {"description": "The broker cannot be reached"}},
    summary="Write a value to a device's writable metric; the outcome comes by read-back",
)
async def send_command(
    device_id: str,
    body: CommandIn,
    request: Request,
    wait: Annotated[
        float, Query(ge=0, le=COMMAND_SECONDS, description="Seconds to wait for the read-back.")
    ] = 0,
    principal: Principal = Depends(require(Permission.DEVICE_OPERATE)),
    platform: Platform = Depends(get_platform),
) -> CommandOut:
    # checked before the broker is, so another tenant's device answers 404 like a missing one
    checked = await anyio.to_thread.run_sync(_check, platform, principal, device_id, body)
    ingest, watch = platform.ingest, platform.commands
    if ingest is None or watch is None:  # a state of the platform, not a passing failure
        raise conflict("This platform runs without a broker, so it cannot send commands.")
    client = ingest.client
    if client is None:
        raise unavailable("The platform cannot reach its broker now; no command was sent.")
    value = checked.value
    sparkplug: tuple[str, CommandPayload] | None = None
    if checked.kind in SPARKPLUG_KINDS:
        sparkplug = await anyio.to_thread.run_sync(_sparkplug, platform, checked, body)
        value = json_value(sparkplug[1].value)  # recorded as JSON (times ISO, bytes base64)
    command = await anyio.to_thread.run_sync(
        _record, platform, principal, request, device_id, body, value
    )
    if sparkplug is not None:
        subject, message = sparkplug[0], sparkplug[1].data
    else:
        subject = command_subject(checked.tenant_id, device_id)
        message = command_message(command.id, command.metric, command.value, command.sent_at)
    key = (checked.tenant_id, device_id, command.metric)
    # the read-back is compared in the store's form (a datetime, bytes), not the record's
    expected = command.value if sparkplug is None else sparkplug[1].expected
    watch.expect(key, command.id, expected, command.deadline)
    confirmed = watch.waiter(command.id)
    try:
        try:
            await client.publish(subject, message)
            await client.flush(timeout=5)
        except (NatsError, TimeoutError) as error:
            watch.forget(key, command.id)
            await anyio.to_thread.run_sync(_mark_failed, platform, command.id)
            raise unavailable(f"The command could not be sent: {error}") from error
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(confirmed.wait(), wait)
    finally:
        watch.drop_waiter(command.id)
    current = await anyio.to_thread.run_sync(_load, platform, command.id)
    return _out(current, utcnow())


def _commands(
    platform: Platform, principal: Principal, device_id: str, command_id: str | None, limit: int
) -> list[DeviceCommand]:
    with platform.sessions() as session:
        reachable_device(session, principal, device_id)
        query = select(DeviceCommand).where(DeviceCommand.device_id == device_id)
        if command_id is not None:
            query = query.where(DeviceCommand.id == command_id)
        query = query.order_by(DeviceCommand.sent_at.desc(), DeviceCommand.id).limit(limit)
        return list(session.scalars(query))


@router.get(
    "/{device_id}/commands",
    response_model=CommandPage,
    responses=READ_ERRORS,
    summary="The device's commands, newest first, with their outcome",
)
def list_commands(
    device_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> CommandPage:
    now = utcnow()
    items = _commands(platform, principal, device_id, None, limit)
    return CommandPage(items=[_out(command, now) for command in items])


@router.get(
    "/{device_id}/commands/{command_id}",
    response_model=CommandOut,
    responses=READ_ERRORS,
    summary="One command and its outcome",
)
def get_command(
    device_id: str,
    command_id: str,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> CommandOut:
    found = _commands(platform, principal, device_id, command_id, 1)
    if not found:
        raise not_found("command", command_id)
    return _out(found[0], utcnow())

"""``GET /api/v1/devices/{device_id}/dead-letters``: what a device sent that could not be
stored, and why, read from the dead-letter stream through the platform's ingest."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from nats.errors import Error as NatsError
from pydantic import BaseModel, Field

from plantwire.platform import Platform, get_platform
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import READ_ERRORS, unavailable
from plantwire.telemetry.deadletters import MAX_PAGE, read_dead_letters
from plantwire.telemetry.routes import reachable_device

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], route_class=AuthenticateFirst)


class DeadLetterOut(BaseModel):
    sequence: int = Field(description="Position in the dead-letter stream (the paging cursor).")
    received_at: datetime = Field(description="When the platform accepted the message.")
    reason: str = Field(description="json, shape, metric, value, timestamp, type, size, device")
    detail: str
    payload: str | None = Field(description="The message as sent, if it is UTF-8 text.")
    payload_base64: str = Field(description="The message as sent, base64.")


class DeadLetterPageOut(BaseModel):
    count: int = Field(description="The device's dead letters the stream holds.")
    items: list[DeadLetterOut]
    next_after: int | None = Field(description="Pass as 'after' for the next page.")


def _tenant_of(platform: Platform, principal: Principal, device_id: str) -> str:
    with platform.sessions() as session:
        return reachable_device(session, principal, device_id).tenant_id


@router.get(
    "/{device_id}/dead-letters",
    response_model=DeadLetterPageOut,
    responses={**READ_ERRORS, 503: {"description": "Ingest is not connected to a broker"}},
    summary="The device's refused messages, oldest first, with the reason",
)
async def dead_letters(
    device_id: str,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Stream sequence.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> DeadLetterPageOut:
    tenant_id = await anyio.to_thread.run_sync(_tenant_of, platform, principal, device_id)
    if platform.ingest is None:  # no broker configured: nothing is ingested, nothing refused
        return DeadLetterPageOut(count=0, items=[], next_after=None)
    js = platform.ingest.js
    if js is None:
        raise unavailable(
            "Ingest is not connected to a broker, so dead letters cannot be read now."
        )
    try:
        page = await read_dead_letters(js, tenant_id, device_id, after=after, limit=limit)
    except NatsError as error:
        raise unavailable(f"The broker did not answer: {error}") from error
    items = []
    for letter in page.items:
        try:
            text: str | None = letter.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        items.append(
            DeadLetterOut(
                sequence=letter.sequence,
                received_at=letter.received_at,
                reason=letter.reason,
                detail=letter.detail,
                payload=text,
                payload_base64=base64.b64encode(letter.payload).decode(),
            )
        )
    return DeadLetterPageOut(count=page.count, items=items, next_after=page.next_after)

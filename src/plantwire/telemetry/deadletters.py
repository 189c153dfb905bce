"""Reading the dead-letter stream: what a device sent that could not be stored, and why.

Ingest letters each refused message to ``DEADLETTER`` under ``deadletter.<tenant>.<device>``
with the payload as sent and the reason in its headers (see ``ingest``). This reads one
device's letters, oldest first, paged by the stream sequence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from plantwire.telemetry.ingest import (
    DEAD_LETTER_STREAM,
    DETAIL,
    REASON,
    SOURCE_SEQUENCE,
    SOURCE_TIME,
    dead_letter_subject,
)

__all__ = ["DeadLetter", "DeadLetterPage", "read_dead_letters"]

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class DeadLetter:
    sequence: int  # in the dead-letter stream: the paging cursor
    received_at: datetime  # when the telemetry stream accepted the message
    reason: str
    detail: str
    telemetry_sequence: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    count: int  # the device's letters the stream holds now
    items: list[DeadLetter]
    next_after: int | None  # pass as ``after`` for the next page; None: no more


async def read_dead_letters(
    js: JetStreamContext, tenant_id: str, device_id: str, *, after: int = 0, limit: int = 50
) -> DeadLetterPage:
    """The device's dead letters after stream sequence ``after``, oldest first."""
    subject = dead_letter_subject(tenant_id, device_id)
    limit = max(1, min(limit, MAX_PAGE))
    try:
        info = await js.stream_info(DEAD_LETTER_STREAM, subjects_filter=subject)
    except NotFoundError:  # ingest has not run yet: nothing was ever refused
        return DeadLetterPage(0, [], None)
    count = (info.state.subjects or {}).get(subject, 0)
    items: list[DeadLetter] = []
    sequence = after + 1
    while len(items) < limit and count:
        try:
            raw = await js.get_msg(DEAD_LETTER_STREAM, sequence, subject=subject, next=True)
        except NotFoundError:
            break
        headers = raw.headers or {}
        received = int(headers.get(SOURCE_TIME, "0"))
        items.append(
            DeadLetter(
                sequence=int(raw.seq or 0),
                received_at=datetime.fromtimestamp(received / 1000, UTC),
                reason=str(headers.get(REASON, "")),
                detail=str(headers.get(DETAIL, "")),
                telemetry_sequence=int(headers.get(SOURCE_SEQUENCE, "0")),
                payload=bytes(raw.data or b""),
            )
        )
        sequence = items[-1].sequence + 1
    more = len(items) == limit and items[-1].sequence < info.state.last_seq
    return DeadLetterPage(count, items, items[-1].sequence if more else None)

"""The telemetry query API under /api/v1/devices/{device_id}/: the latest values, raw points
page by page, aggregates over fixed intervals, CSV or Parquet exports, and the live stream of
new points (Server-Sent Events; the hub and the frames are in ``live.py``).

Every query goes through the device: a device of another tenant answers 404 exactly like a
missing one, and the store is asked for the device's own tenant only. The logic lives in
``query.py``; answers are built as plain JSON-ready values and sent as they are (no
per-point validation layer on the way out; the models below document the shapes)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, RootModel
from starlette.types import Receive, Scope, Send

from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem, problem_responses
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import invalid
from plantwire.telemetry import query
from plantwire.telemetry.live import (
    HubClosedError,
    StreamLimitError,
    Subscription,
    latest_frame,
)
from plantwire.telemetry.query import QueryError
from plantwire.telemetry.routes import reachable_device
from plantwire.telemetry.sparkplug_status import sparkplug_status
from plantwire.telemetry.store import TimeSeriesStore
from plantwire.telemetry.store.model import from_micros

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/devices", tags=["telemetry"], route_class=AuthenticateFirst)

QUERY_ERRORS = problem_responses(400, 401, 403, 404, 413, 422, 503)
PARQUET = "application/vnd.apache.parquet"

_TIME_HELP = "ISO 8601 with a zone (2026-11-22T08:00:00Z) or epoch milliseconds"
Start = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=query.TIME_PATTERN,
        description=f"Start of the range, included; {_TIME_HELP}. Default: an hour before end.",
    ),
]
End = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=query.TIME_PATTERN,
        description=f"End of the range, excluded; {_TIME_HELP}. Default: now.",
    ),
]
Metric = Annotated[str, Query(min_length=1, max_length=200, description="The metric's name.")]


class LatestValue(BaseModel):
    ts: datetime = Field(description="When the value was measured (UTC).")
    value: Any = Field(
        description="The value as written: number, boolean, string, bytes as base64, time as "
        "ISO 8601, or an array of them; NaN and infinities are null."
    )
    quality: Literal["good", "uncertain", "bad"]
    stale: bool | None = Field(
        None,
        description="Of a Sparkplug edge node or device that is offline (dead, or not born "
        "again): true, and the quality is uncertain whatever it was stored with.",
    )


class LatestValues(RootModel[dict[str, LatestValue]]):
    """The newest value of each metric, by metric name."""


class RawPoints(BaseModel):
    metric: str
    points: list[tuple[datetime, Any]] = Field(description="[ts, value] pairs, oldest first.")
    next: str | None = Field(description="Pass as 'cursor' for the next page; null: the last.")


class Aggregates(BaseModel):
    metric: str
    interval: str
    agg: str = Field(description="The aggregates asked for, in the order of each point's values.")
    points: list[list[datetime | float | None]] = Field(
        description="[interval start, value per aggregate...]; intervals without points are "
        "left out, and a non-finite result is null."
    )


class CsvStream(StreamingResponse):
    media_type = "text/csv"


def _device_tenant(platform: Platform, principal: Principal, device_id: str) -> str:
    with platform.sessions() as session:
        return reachable_device(session, principal, device_id).tenant_id


def _store(platform: Platform) -> TimeSeriesStore:
    if platform.store is None:
        raise Problem(503, "The time-series store is not open.")
    return platform.store


@router.get(
    "/{device_id}/latest",
    response_model=LatestValues,
    responses=QUERY_ERRORS,
    summary="The newest value of each of the device's metrics",
)
def device_latest(
    device_id: str,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> Response:
    with platform.sessions() as session:
        device = reachable_device(session, principal, device_id)
        tenant, kind, name = device.tenant_id, device.kind, device.name
    store = _store(platform)
    latest = query.latest(store, tenant, device_id)
    status = sparkplug_status(store, tenant, kind, name)
    if status is not None and not status.online:  # the host's view: no longer current
        for value in latest.values():
            value["quality"], value["stale"] = "uncertain", True
    return JSONResponse(latest)


@router.get(
    "/{device_id}/telemetry",
    response_model=RawPoints | Aggregates,
    responses=QUERY_ERRORS,
    summary="A metric's points in a time range, raw (paged) or aggregated over intervals",
)
def device_telemetry(
    device_id: str,
    metric: Metric,
    start: Start = None,
    end: End = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=query.MAX_LIMIT,
            description=f"Raw points per page (default {query.DEFAULT_LIMIT}).",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=query.CURSOR_PATTERN,
            description="The 'next' of the previous page.",
        ),
    ] = None,
    interval: Annotated[
        str | None,
        Query(
            max_length=7,
            pattern=query.INTERVAL_PATTERN,
            description="Aggregate over intervals of this length: 1s, 10s, 1m, 5m, 1h, 1d...",
        ),
    ] = None,
    agg: Annotated[
        str | None,
        Query(
            max_length=80,
            pattern=query.AGGREGATE_PATTERN,
            description="With interval: " + ", ".join(query.AGGREGATES) + ", or several "
            "separated by commas (default avg).",
        ),
    ] = None,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> Response:
    tenant = _device_tenant(platform, principal, device_id)
    store = _store(platform)
    try:
        span = query.window(start, end)
        if interval is None:
            if agg is not None:
                raise QueryError("'agg' goes with 'interval'.")
            answer = query.raw(
                store, tenant, device_id, metric, span, limit or query.DEFAULT_LIMIT, cursor
            )
        else:
            if limit is not None or cursor is not None:
                raise QueryError("'limit' and 'cursor' page raw points; aggregates have no pages.")
            answer = query.aggregated(
                store, tenant, device_id, metric, span, interval, agg or "avg"
            )
    except QueryError as error:
        raise invalid(str(error)) from error
    return JSONResponse(answer)


@router.get(
    "/{device_id}/export",
    response_class=CsvStream,
    responses={
        200: {
            "description": "The points as CSV (the default) or Parquet",
            "content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}},
        },
        **QUERY_ERRORS,
    },
    summary="Download a device's points in a time range as CSV or Parquet",
)
def device_export(
    device_id: str,
    start: Start = None,
    end: End = None,
    metric: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only this metric.")
    ] = None,
    file_format: Annotated[
        Literal["csv", "parquet"],
        Query(alias="format", description="csv (the default) or parquet."),
    ] = "csv",
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> StreamingResponse:
    tenant = _device_tenant(platform, principal, device_id)
    store = _store(platform)
    try:
        span = query.window(start, end)
        table = query.export_table(store, tenant, device_id, span, metric)
    except QueryError as error:
        raise invalid(str(error)) from error
    name = f"{_file_part(device_id)}_{_stamp(span.start)}_{_stamp(span.end)}.{file_format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if file_format == "parquet":
        return StreamingResponse(query.parquet_chunks(table), media_type=PARQUET, headers=headers)
    return CsvStream(query.csv_chunks(table), media_type="text/csv", headers=headers)


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]


def _stamp(micros: int) -> str:
    return from_micros(micros).strftime("%Y%m%dT%H%M%SZ")


# --- the live stream -------------------------------------------------------------------------

EVENT_STREAM = "text/event-stream"
MAX_STREAM_METRICS = 100


class EventStream(Response):
    """A live stream as ``text/event-stream``: the first frame, then the subscription's frames
    until the client leaves, the stream's time is up or the platform shuts down. However it
    ends, the subscription is closed."""

    media_type = EVENT_STREAM

    def __init__(
        self, subscription: Subscription, first: bytes, heartbeat: float, lifetime: float
    ) -> None:
        self.subscription = subscription
        self.first = first
        self.heartbeat = heartbeat
        self.lifetime = lifetime
        self.connected = True  # until the client leaves
        self.status_code = 200
        self.background = None
        # never cached; nginx passes each event on at once instead of buffering the response
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_disconnect, receive, group.cancel_scope)
                with anyio.move_on_after(self.lifetime):
                    await self._stream(send)
                group.cancel_scope.cancel()
            await self._send(send, b"", more=False)
        finally:
            self.subscription.close()

    async def _until_disconnect(self, receive: Receive, streaming: anyio.CancelScope) -> None:
        """Whatever the server's ASGI version, a client that leaves ends the stream at once
        (not at the next frame sent, which may be a heartbeat away)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.connected = False
        streaming.cancel()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await self._send(send, self.first)
        async for frame in self.subscription.frames(self.heartbeat):
            if not self.connected:
                return
            await self._send(send, frame)

    async def _send(self, send: Send, body: bytes, *, more: bool = True) -> None:
        if not self.connected:
            return
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError:  # the client left while the frame was on its way
            self.connected = False


_LIVE_POINT = {
    "type": "object",
    "required": ["metric", "ts", "value", "quality"],
    "properties": {
        "metric": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "value": {
            "description": "As in /latest: number, boolean, string, base64, ISO 8601, "
            "array; null for NaN and infinities."
        },
        "quality": {"type": "string", "enum": ["good", "uncertain", "bad"]},
    },
}
#: One event of the stream, as OpenAPI describes Server-Sent Events: its fields, with `data`
#: holding JSON (pings are comments, not events).
LIVE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["latest", "points", "overflow"]},
        "id": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": "Of 'points': the stream sequence of the batch's last message.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["points"],
                        "properties": {"points": {"type": "array", "items": _LIVE_POINT}},
                    },
                    {
                        "type": "object",
                        "required": ["dropped"],
                        "properties": {"dropped": {"type": "integer", "minimum": 1}},
                    },
                ]
            },
        },
    },
}

StreamMetrics = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]] | None,
    Query(
        max_length=MAX_STREAM_METRICS,
        description="Only this metric; repeat for several (at most "
        f"{MAX_STREAM_METRICS}). Default: every metric.",
    ),
]


@router.get(
    "/{device_id}/stream",
    response_class=EventStream,
    status_code=200,  # FastAPI reads it from the class's __init__ otherwise
    responses={
        200: {
            "description": "Server-Sent Events: 'latest' (the newest values) first, then "
            "'points' for each batch stored, 'overflow' when points were dropped for a slow "
            "reader, and a ':' comment after a quiet interval. Ends after "
            "live_stream_max_seconds; clients reconnect.",
            "content": {EVENT_STREAM: {"schema": LIVE_EVENT}},
        },
        **QUERY_ERRORS,
        **problem_responses(429),
    },
    summary="The device's new points as they are stored, as a live stream (Server-Sent Events)",
)
async def device_stream(
    device_id: str,
    metric: StreamMetrics = None,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> Response:
    tenant = await run_in_threadpool(_device_tenant, platform, principal, device_id)
    store = _store(platform)
    if platform.live is None:
        raise Problem(503, "Live streams are not available.")
    metrics = frozenset(metric) if metric else None
    try:
        subscription = platform.live.subscribe(tenant, device_id, metrics)
    except StreamLimitError:
        limit = platform.live.options.streams_per_tenant
        raise Problem(
            429,
            f"The tenant has {limit} live streams open, as many as it may; close one first.",
            type_="urn:plantwire:problem:too-many-streams",
        ) from None
    except HubClosedError:
        raise Problem(503, "The platform is shutting down.") from None
    # Subscribed first, then read: a point stored in between is in both (never in neither).
    try:
        latest = await anyio.to_thread.run_sync(query.latest, store, tenant, device_id)
    except BaseException:
        subscription.close()
        raise
    settings = platform.settings
    return EventStream(
        subscription,
        latest_frame(latest, metrics),
        settings.live_heartbeat_seconds,
        settings.live_stream_max_seconds,
    )

"""A tenant's telemetry at a glance, in one request: ``GET /api/v1/tenants/{tenant_id}/
telemetry/activity`` — its devices, how many reported within the window, the points they
stamped in it (the tenant's ingest rate), and the messages ingest refused (dead letters).
The console's overview asks for it every few seconds instead of two requests per device."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field
from sqlalchemy import select

from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import READ_ERRORS
from plantwire.security.routes.tenants import reachable_tenant
from plantwire.telemetry.ingest import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM
from plantwire.telemetry.tables import Device

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], route_class=AuthenticateFirst)

#: The longest window: the points are counted in the store's recent (hot) table, which keeps
#: at least the last 5 minutes when sealing moves older ones out (MaintenancePolicy.grace).
MAX_WINDOW = 300


class TenantActivityOut(BaseModel):
    tenant: str
    window_seconds: int = Field(description="The window asked about, ending now.")
    devices: int = Field(description="The tenant's devices.")
    devices_reporting: int = Field(
        description="Its devices with a point stamped within the window (any metric)."
    )
    points: int = Field(description="Points of its devices stamped within the window.")
    points_per_second: float = Field(description="points / window_seconds.")
    dead_letters: int | None = Field(
        description="Messages of its devices ingest refused that the dead-letter stream holds; "
        "null when ingest is not connected to a broker."
    )


def _registry_and_store(
    platform: Platform, principal: Principal, tenant_id: str, since: int
) -> tuple[int, int, int]:
    with platform.sessions() as session:
        reachable_tenant(session, principal, tenant_id)
        ids = set(session.scalars(select(Device.id).where(Device.tenant_id == tenant_id)))
    if platform.store is None:
        raise Problem(503, "The time-series store is not open.")
    activity = platform.store.activity(tenant_id, since)
    reporting = sum(
        1 for device, last in activity.last_seen.items() if device in ids and last >= since
    )
    points = sum(count for device, count in activity.points.items() if device in ids)
    return len(ids), reporting, points


async def _dead_letters(platform: Platform, tenant_id: str) -> int | None:
    js = platform.ingest.js if platform.ingest is not None else None
    if js is None:
        return None
    try:
        info = await js.stream_info(
            DEAD_LETTER_STREAM, subjects_filter=f"{DEAD_LETTER_PREFIX}.{tenant_id}.>"
        )
    except NotFoundError:  # ingest has not made the stream yet: nothing was refused
        return 0
    except NatsError:
        return None
    return sum((info.state.subjects or {}).values())


@router.get(
    "/{tenant_id}/telemetry/activity",
    response_model=TenantActivityOut,
    responses=READ_ERRORS,
    summary="The tenant's devices reporting, points a second and dead letters, now",
)
async def tenant_activity(
    tenant_id: str,
    window: Annotated[
        int, Query(ge=10, le=MAX_WINDOW, description="Seconds back from now (10 to 300).")
    ] = MAX_WINDOW,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> TenantActivityOut:
    since = int((time.time() - window) * 1_000_000)
    devices, reporting, points = await anyio.to_thread.run_sync(
        _registry_and_store, platform, principal, tenant_id, since
    )
    return TenantActivityOut(
        tenant=tenant_id,
        window_seconds=window,
        devices=devices,
        devices_reporting=reporting,
        points=points,
        points_per_second=points / window,
        dead_letters=await _dead_letters(platform, tenant_id),
    )

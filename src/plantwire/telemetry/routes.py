"""Devices of a tenant under /api/v1/devices: create (with MQTT credentials shown once),
list with search and place filters, read, change, delete, rotate the MQTT secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import (
    READ_ERRORS,
    WRITE_ERRORS,
    Limit,
    Offset,
    TenantFilter,
    audited,
    conflict,
    forbidden,
    invalid,
    not_found,
)
from plantwire.security.tables import Tenant, name_key, utcnow
from plantwire.telemetry.devices import (
    device_out,
    like_escape,
    metric_rows,
    mqtt_username,
    new_secret,
    place_filter,
    search_key,
)
from plantwire.telemetry.schemas import (
    DeviceCreated,
    DeviceIn,
    DeviceKind,
    DeviceOut,
    DevicePage,
    DevicePatch,
    MqttCredentials,
    Place,
)
from plantwire.telemetry.sparkplug_status import sparkplug_status
from plantwire.telemetry.tables import Device

__all__ = ["reachable_device", "router"]

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], route_class=AuthenticateFirst)

Search = Annotated[
    str | None,
    Query(max_length=200, description="Only devices whose name contains this (any case)."),
]
PlaceQuery = Annotated[
    Place | None, Query(description="Only devices at this ISA-95 place or below it.")
]


def reachable_device(session: Session, principal: Principal, device_id: str) -> Device:
    """The device, if the caller's tenant scope reaches it; 404 exactly as for a missing one
    otherwise, so other tenants' device ids leak nothing."""
    device = session.get(Device, device_id)
    if device is None or not principal.reaches(device.tenant_id):
        raise not_found("device", device_id)
    return device


def _name_taken(name: str) -> Problem:
    return conflict(f"The tenant has a device named '{name}' already.")


def _may_set_retention(principal: Principal) -> None:
    """A device's retention decides when its data is deleted: a tenant admin's decision
    (``tenant:update``), beyond ``device:write``."""
    if not principal.can(Permission.TENANT_UPDATE):
        raise forbidden(
            f"Role '{principal.role}' does not grant '{Permission.TENANT_UPDATE}', which "
            "setting a device's retention_days needs."
        )


def _audit(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    device: Device,
    detail: dict[str, Any] | None = None,
) -> None:
    audited(session, request, principal, action, "device", device.id, device.tenant_id, detail)


@router.get("", response_model=DevicePage, responses=READ_ERRORS, summary="List devices")
def list_devices(
    search: Search = None,
    place: PlaceQuery = None,
    tenant: TenantFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> DevicePage:
    query = select(Device).order_by(Device.name_key, Device.id).limit(limit).offset(offset)
    if not principal.is_platform_admin:
        query = query.where(Device.tenant_id == principal.tenant_id)
    elif tenant is not None:
        query = query.where(Device.tenant_id == tenant)
    if search:
        query = query.where(Device.name_key.like(f"%{like_escape(search_key(search))}%", "\\"))
    if place:
        exact, below = place_filter(place)
        query = query.where(or_(Device.place == exact, Device.place.like(below, "\\")))
    with platform.sessions() as session:
        items = [device_out(device) for device in session.scalars(query)]
    return DevicePage(items=items, limit=limit, offset=offset)


@router.post(
    "",
    response_model=DeviceCreated,
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Create a device; its MQTT credentials are in the answer, this once",
)
def create_device(
    body: DeviceIn,
    request: Request,
    principal: Principal = Depends(require(Permission.DEVICE_WRITE)),
    platform: Platform = Depends(get_platform),
) -> DeviceCreated:
    tenant_id = principal.tenant_id
    if principal.is_platform_admin:
        if body.tenant is None:
            raise invalid("Platform admins name the device's 'tenant'.")
        tenant_id = body.tenant
    elif body.tenant is not None and body.tenant != principal.tenant_id:
        raise not_found("tenant", body.tenant)
    assert tenant_id is not None
    if body.retention_days is not None:
        _may_set_retention(principal)
    secret = new_secret()
    try:
        with transaction(platform.sessions) as session:
            if session.get(Tenant, tenant_id) is None:
                raise not_found("tenant", tenant_id)
            key = name_key(body.name)
            taken = select(Device.id).where(Device.tenant_id == tenant_id, Device.name_key == key)
            if session.scalar(taken) is not None:
                raise _name_taken(body.name)
            now = utcnow()
            device = Device(
                tenant_id=tenant_id,
                name=body.name,
                name_key=key,
                kind=body.kind,
                place=body.place,
                attributes=body.attributes,
                secret_sha256=secret.sha256,
                secret_bcrypt=secret.bcrypt,
                retention_days=body.retention_days,
                created_at=now,
                updated_at=now,
                metrics=metric_rows(body.metrics),
            )
            session.add(device)
            session.flush()
            detail: dict[str, Any] = {"name": device.name}
            if device.retention_days is not None:
                detail["retention_days"] = device.retention_days
            _audit(session, request, principal, "device.create", device, detail)
            out = device_out(device)
    except IntegrityError as error:  # named the same meanwhile, or the tenant went away
        with platform.sessions() as session:
            if session.get(Tenant, tenant_id) is None:
                raise not_found("tenant", tenant_id) from error
        raise _name_taken(body.name) from error
    platform.accounts_changed()
    credentials = MqttCredentials(username=mqtt_username(device), password=secret.password)
    return DeviceCreated(**out.model_dump(), mqtt=credentials)


@router.get("/{device_id}", response_model=DeviceOut, responses=READ_ERRORS, summary="Get a device")
def get_device(
    device_id: str,
    principal: Principal = Depends(require(Permission.DEVICE_READ)),
    platform: Platform = Depends(get_platform),
) -> DeviceOut:
    with platform.sessions() as session:
        shown = device_out(reachable_device(session, principal, device_id))
    if platform.store is not None:
        shown.sparkplug = sparkplug_status(platform.store, shown.tenant, shown.kind, shown.name)
    return shown


@router.patch(
    "/{device_id}",
    response_model=DeviceOut,
    responses=WRITE_ERRORS,
    summary="Change a device's name, place, attributes, metric metadata or retention",
)
def update_device(
    device_id: str,
    body: DevicePatch,
    request: Request,
    principal: Principal = Depends(require(Permission.DEVICE_WRITE)),
    platform: Platform = Depends(get_platform),
) -> DeviceOut:
    try:
        with transaction(platform.sessions) as session:
            device = reachable_device(session, principal, device_id)
            changes: dict[str, Any] = {}
            if "retention_days" in body.model_fields_set:  # null: back to the tenant's
                _may_set_retention(principal)
                if body.retention_days != device.retention_days:
                    changes["retention_days"] = [device.retention_days, body.retention_days]
                    device.retention_days = body.retention_days
            if body.name is not None and body.name != device.name:
                if device.kind != DeviceKind.JSON:
                    raise invalid(
                        "A Sparkplug edge node's or device's name is its topic identity "
                        "('<group>/<edge node>[/<device>]'): it cannot change."
                    )
                key = name_key(body.name)
                taken = select(Device.id).where(
                    Device.tenant_id == device.tenant_id,
                    Device.name_key == key,
                    Device.id != device.id,
                )
                if session.scalar(taken) is not None:
                    raise _name_taken(body.name)
                changes["name"] = [device.name, body.name]
                device.name, device.name_key = body.name, key
            if body.place is not None and body.place != device.place:
                changes["place"] = [device.place, body.place]
                device.place = body.place
            if body.attributes is not None:
                changes["attributes"] = "replaced"
                device.attributes = body.attributes
            if body.metrics is not None:
                changes["metrics"] = [metric.name for metric in body.metrics]
                device.metrics = metric_rows(body.metrics)
                session.flush()  # the old metric rows go before the new ones arrive
            if changes:
                device.updated_at = utcnow()
                _audit(session, request, principal, "device.update", device, changes)
            session.flush()
            out = device_out(device)
    except IntegrityError as error:
        assert body.name is not None  # only a name can collide
        raise _name_taken(body.name) from error
    return out


@router.post(
    "/{device_id}/credentials",
    response_model=MqttCredentials,
    responses=WRITE_ERRORS,
    summary="Replace a device's MQTT secret; the new one is in the answer, this once",
)
def rotate_credentials(
    device_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.DEVICE_WRITE)),
    platform: Platform = Depends(get_platform),
) -> MqttCredentials:
    secret = new_secret()
    with transaction(platform.sessions) as session:
        device = reachable_device(session, principal, device_id)
        if device.kind == DeviceKind.SPARKPLUG_DEVICE:
            raise conflict(
                "A Sparkplug device has no credentials: it talks through its edge node's."
            )
        device.secret_sha256, device.secret_bcrypt = secret.sha256, secret.bcrypt
        device.updated_at = utcnow()
        _audit(session, request, principal, "device.credentials", device)
    platform.accounts_changed()
    return MqttCredentials(username=mqtt_username(device), password=secret.password)


@router.delete("/{device_id}", status_code=204, responses=WRITE_ERRORS, summary="Delete a device")
def delete_device(
    device_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.DEVICE_WRITE)),
    platform: Platform = Depends(get_platform),
) -> None:
    with transaction(platform.sessions) as session:
        device = reachable_device(session, principal, device_id)
        _audit(session, request, principal, "device.delete", device, {"name": device.name})
        if device.kind == DeviceKind.SPARKPLUG_NODE:  # its devices go with it
            session.execute(delete(Device).where(Device.parent_id == device.id))
        session.delete(device)
    platform.accounts_changed()

"""The identifier node inside the platform: its wiring to platform users and the audit log,
and the platform API that homes prefixes for tenants (``/api/v1/ids/prefixes``).

The Handle API itself (``/api/handles/...``, ``/hdl/...``) is the node's own raw ASGI app,
mounted beside the FastAPI routes by ``app.create_app``. There, besides the HS_ADMIN
identities of the Handle System, a platform token of a user holding ``handle:admin`` (a
tenant admin) administers the handles under the prefixes its tenant owns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from plantwire.db import transaction
from plantwire.ids.handle_json import ValueFormatError, value_from_json
from plantwire.ids.model import HS_PUBKEY, PublicKey
from plantwire.ids.names import HandleSyntaxError, match_key, parse_prefix, prefix_record
from plantwire.ids.rest import AuditHook, PlatformAuth, PlatformGrant
from plantwire.ids.server import RunningNode, admin_values
from plantwire.ids.store import HomedPrefix
from plantwire.platform import Platform, get_platform
from plantwire.security import audit
from plantwire.security.auth import AuthenticateFirst, principal_for_token, require
from plantwire.security.principal import Principal
from plantwire.security.roles import ROLE_PERMISSIONS, Permission
from plantwire.security.routes._common import (
    READ_ERRORS,
    WRITE_ERRORS,
    audited,
    conflict,
    invalid,
    not_found,
)
from plantwire.security.schemas import ID_PATTERN
from plantwire.security.tables import Tenant

__all__ = ["audit_hook", "platform_auth", "router"]

router = APIRouter(prefix="/api/v1/ids", tags=["identifiers"], route_class=AuthenticateFirst)

PrefixText = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[!-~]+$")]


class PrefixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: PrefixText = Field(description="The prefix, e.g. 88.101.5.")
    tenant: Annotated[str, StringConstraints(pattern=ID_PATTERN)] = Field(
        description="Owning tenant id."
    )
    admin_secret: Annotated[str, StringConstraints(min_length=16, max_length=1024)] | None = Field(
        None,
        description="Secret key of the prefix's Handle administrator 300:0.NA/<prefix> (stored "
        "hashed). Only used when this platform is the root of its own hierarchy.",
    )
    admin_pubkey: dict[str, str] | None = Field(
        None, description="Public key (JWK, RSA or DSA) of the prefix's Handle administrator."
    )


class PrefixOut(BaseModel):
    prefix: str
    tenant_id: str | None
    created_at: datetime
    record: str = Field(description="The prefix's own record, 0.NA/<prefix>.")


class PrefixPage(BaseModel):
    items: list[PrefixOut]


class NewHandleOut(BaseModel):
    handle: str
    prefix: str
    created_at: datetime


class NewHandlePage(BaseModel):
    items: list[NewHandleOut] = Field(description="Newest first.")


def _homed_as(node: RunningNode, prefix: str) -> HomedPrefix | None:
    """The homing of ``prefix`` on the node (its spelling and owner), if it is homed."""
    key = match_key(prefix)
    return next((h for h in node.store.homed() if match_key(h.prefix) == key), None)


def _node(platform: Platform) -> RunningNode:
    node = platform.ids
    assert node is not None, "the platform always runs its identifier node"
    return node


@router.get(
    "/prefixes",
    response_model=PrefixPage,
    responses=READ_ERRORS,
    summary="List identifier prefixes",
)
def list_prefixes(
    principal: Principal = Depends(require(Permission.PREFIX_READ)),
    platform: Platform = Depends(get_platform),
) -> PrefixPage:
    homed = _node(platform).store.homed()
    items = [
        PrefixOut(
            prefix=h.prefix,
            tenant_id=h.tenant_id,
            created_at=h.created_at,
            record=str(prefix_record(h.prefix)),
        )
        for h in homed
        if principal.is_platform_admin or h.tenant_id == principal.tenant_id
    ]
    return PrefixPage(items=items)


@router.get(
    "/handles/newest",
    response_model=NewHandlePage,
    responses=READ_ERRORS,
    summary="The handles created last under the caller's prefixes",
)
def newest_handles(
    limit: Annotated[int, Query(ge=1, le=100, description="How many, at most 100.")] = 10,
    principal: Principal = Depends(require(Permission.PREFIX_READ)),
    platform: Platform = Depends(get_platform),
) -> NewHandlePage:
    """Of each prefix homed here for the caller's tenant (a platform admin: every homed
    prefix), its ``limit`` newest handles; of those, the ``limit`` newest."""
    store = _node(platform).store
    found = [
        NewHandleOut(handle=handle, prefix=homed.prefix, created_at=created)
        for homed in store.homed()
        if principal.is_platform_admin or homed.tenant_id == principal.tenant_id
        for handle, created in store.newest_handles(homed.prefix, limit)
    ]
    found.sort(key=lambda item: (item.created_at, item.handle), reverse=True)
    return NewHandlePage(items=found[:limit])


@router.post(
    "/prefixes",
    response_model=PrefixOut,
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Home a prefix on the platform's identifier node for a tenant",
)
def home_prefix(
    body: PrefixIn,
    request: Request,
    principal: Principal = Depends(require(Permission.PREFIX_HOME)),
    platform: Platform = Depends(get_platform),
) -> PrefixOut:
    node = _node(platform)
    try:
        prefix = parse_prefix(body.prefix)
    except HandleSyntaxError as error:
        raise invalid(str(error)) from error
    if match_key(prefix) == match_key("0.NA"):
        raise invalid("0.NA is the prefix of prefix records; it cannot belong to a tenant.")
    pubkey = None
    if body.admin_pubkey is not None:
        try:
            value = value_from_json(
                {
                    "index": 300,
                    "type": HS_PUBKEY,
                    "data": {"format": "key", "value": body.admin_pubkey},
                }
            )
        except ValueFormatError as error:
            raise invalid(f"admin_pubkey: {error}") from error
        assert isinstance(value.data, PublicKey)
        pubkey = value.data
    with platform.sessions() as session:
        if session.scalar(select(Tenant.id).where(Tenant.id == body.tenant)) is None:
            raise not_found("tenant", body.tenant)
    already = _homed_as(node, prefix)
    if already is not None:
        raise conflict(f"Prefix {already.prefix} is homed here already.")
    node.store.home(prefix, body.tenant)
    owner = _homed_as(node, prefix)
    assert owner is not None, "homed just now"
    if owner.tenant_id != body.tenant:  # homed for another tenant at the same moment
        raise conflict(f"Prefix {owner.prefix} is homed here already.")
    record = prefix_record(prefix)
    if node.node.is_root and node.store.get(record) is None:
        secret_keys = node.node.authenticator.secret_keys
        secret = secret_keys.hash(body.admin_secret.encode()) if body.admin_secret else None
        values = admin_values(prefix, secret, pubkey) if secret or pubkey else []
        node.store.create(record, values, overwrite=False)
    node.node.refresh_homed()
    with transaction(platform.sessions) as session:
        audited(session, request, principal, "prefix.home", "prefix", prefix, body.tenant)
    return PrefixOut(
        prefix=owner.prefix,
        tenant_id=owner.tenant_id,
        created_at=owner.created_at,
        record=str(record),
    )


@router.delete(
    "/prefixes/{prefix}",
    status_code=204,
    responses=WRITE_ERRORS,
    summary="Stop homing a prefix (its handles stay stored)",
)
def unhome_prefix(
    prefix: PrefixText,
    request: Request,
    principal: Principal = Depends(require(Permission.PREFIX_HOME)),
    platform: Platform = Depends(get_platform),
) -> None:
    node = _node(platform)
    found = _homed_as(node, prefix)
    if found is None:
        raise not_found("prefix", prefix)
    node.store.unhome(found.prefix)
    node.node.refresh_homed()
    with transaction(platform.sessions) as session:
        audited(
            session, request, principal, "prefix.unhome", "prefix", found.prefix, found.tenant_id
        )


def platform_auth(platform: Platform) -> PlatformAuth:
    """The node's hook turning a platform token into the prefixes its holder administers."""

    def grant(token: str) -> PlatformGrant | None:
        principal = principal_for_token(platform.engine, token)
        if isinstance(principal, str):
            return None
        if Permission.HANDLE_ADMIN not in ROLE_PERMISSIONS[principal.role]:
            return PlatformGrant(principal.username, principal.tenant_id, frozenset())
        node = _node(platform)
        prefixes = frozenset(
            match_key(h.prefix)
            for h in node.store.homed()
            if principal.is_platform_admin or h.tenant_id == principal.tenant_id
        )
        return PlatformGrant(principal.username, principal.tenant_id, prefixes)

    return grant


def audit_hook(platform: Platform) -> AuditHook:
    """The node's hook writing Handle API writes (and refusals) to the platform audit log."""

    def record(actor: str, action: str, handle: str, outcome: str, source: str | None) -> None:
        node = platform.ids
        tenant = None
        if node is not None:
            prefix = handle.partition("/")[0]
            owner = _homed_as(node, prefix)
            tenant = owner.tenant_id if owner is not None else None
        audit.record_apart(
            platform.sessions,
            actor=None,
            actor_name=actor,
            action=action,
            target_type="handle",
            target_id=handle[:255],
            tenant_id=tenant,
            source=source,
            outcome=audit.Outcome(outcome),
        )

    return record

"""Tenants (enterprises). Platform admins create and delete them; members see their own."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import exists, select
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
    audited,
    conflict,
    not_found,
)
from plantwire.security.schemas import TenantIn, TenantOut, TenantPage
from plantwire.security.tables import Tenant, User, name_key
from plantwire.security.views import tenant_out

__all__ = ["reachable_tenant", "router"]

router = APIRouter(prefix="/tenants", tags=["tenants"], route_class=AuthenticateFirst)


def _name_taken(name: str) -> Problem:
    return conflict(f"A tenant named '{name}' exists already.")


@router.get("", response_model=TenantPage, responses=READ_ERRORS, summary="List tenants")
def list_tenants(
    limit: Limit = 100,
    offset: Offset = 0,
    principal: Principal = Depends(require(Permission.TENANT_READ)),
    platform: Platform = Depends(get_platform),
) -> TenantPage:
    query = select(Tenant).order_by(Tenant.name).limit(limit).offset(offset)
    if not principal.is_platform_admin:
        query = query.where(Tenant.id == principal.tenant_id)
    with platform.sessions() as session:
        items = [tenant_out(t) for t in session.scalars(query)]
    return TenantPage(items=items, limit=limit, offset=offset)


@router.post(
    "",
    response_model=TenantOut,
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Create a tenant",
)
def create_tenant(
    body: TenantIn,
    request: Request,
    principal: Principal = Depends(require(Permission.TENANT_CREATE)),
    platform: Platform = Depends(get_platform),
) -> TenantOut:
    try:
        with transaction(platform.sessions) as session:
            if session.scalar(select(exists().where(Tenant.name_key == name_key(body.name)))):
                raise _name_taken(body.name)
            tenant = Tenant(name=body.name, name_key=name_key(body.name))
            session.add(tenant)
            session.flush()
            audited(session, request, principal, "tenant.create", "tenant", tenant.id, tenant.id)
    except IntegrityError as error:  # a concurrent create of the same name
        raise _name_taken(body.name) from error
    return tenant_out(tenant)


def reachable_tenant(session: Session, principal: Principal, tenant_id: str) -> Tenant:
    """The tenant, if the caller's scope reaches it; 404 exactly as for a missing one."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or not principal.reaches(tenant.id):
        raise not_found("tenant", tenant_id)
    return tenant


@router.get("/{tenant_id}", response_model=TenantOut, responses=READ_ERRORS, summary="Get a tenant")
def get_tenant(
    tenant_id: str,
    principal: Principal = Depends(require(Permission.TENANT_READ)),
    platform: Platform = Depends(get_platform),
) -> TenantOut:
    with platform.sessions() as session:
        return tenant_out(reachable_tenant(session, principal, tenant_id))


@router.patch(
    "/{tenant_id}", response_model=TenantOut, responses=WRITE_ERRORS, summary="Rename a tenant"
)
def update_tenant(
    tenant_id: str,
    body: TenantIn,
    request: Request,
    principal: Principal = Depends(require(Permission.TENANT_UPDATE)),
    platform: Platform = Depends(get_platform),
) -> TenantOut:
    try:
        with transaction(platform.sessions) as session:
            tenant = reachable_tenant(session, principal, tenant_id)
            clash = select(Tenant.id).where(
                Tenant.name_key == name_key(body.name), Tenant.id != tenant.id
            )
            if session.scalar(clash) is not None:
                raise _name_taken(body.name)
            old = tenant.name
            tenant.name = body.name
            tenant.name_key = name_key(body.name)
            audited(
                session,
                request,
                principal,
                "tenant.update",
                "tenant",
                tenant.id,
                tenant.id,
                {"name": [old, body.name]},
            )
    except IntegrityError as error:
        raise _name_taken(body.name) from error
    return tenant_out(tenant)


@router.delete(
    "/{tenant_id}", status_code=204, responses=WRITE_ERRORS, summary="Delete an empty tenant"
)
def delete_tenant(
    tenant_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.TENANT_DELETE)),
    platform: Platform = Depends(get_platform),
) -> None:
    with transaction(platform.sessions) as session:
        tenant = reachable_tenant(session, principal, tenant_id)
        if session.scalar(select(exists().where(User.tenant_id == tenant.id))):
            raise conflict("The tenant still has users; delete them first.")
        audited(
            session,
            request,
            principal,
            "tenant.delete",
            "tenant",
            tenant.id,
            tenant.id,
            {"name": tenant.name},
        )
        session.delete(tenant)
        try:
            session.flush()
        except IntegrityError as error:
            # another pillar's resources (identifier prefixes, devices…) still point at it, or
            # a user was added meanwhile: the foreign keys refuse, and so do we
            raise conflict(
                "The tenant still has resources (users, identifier prefixes…); remove them first."
            ) from error
    platform.accounts_changed()  # its broker account goes, with what its devices left there

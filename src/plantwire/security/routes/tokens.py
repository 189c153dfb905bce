"""API tokens: made by a user for scripts and machines, with a role no higher than the
creator's and an expiry; the secret is shown once and only its SHA-256 is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.hashing import hash_secret, new_secret
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission
from plantwire.security.routes._common import (
    READ_ERRORS,
    WRITE_ERRORS,
    Limit,
    Offset,
    audited,
    forbidden,
    invalid,
    not_found,
)
from plantwire.security.schemas import TokenCreated, TokenIn, TokenOut, TokenPage
from plantwire.security.tables import ApiToken, utcnow
from plantwire.security.views import token_out

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=AuthenticateFirst)


def _reachable(session: Session, principal: Principal, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise not_found("token", token_id)
    own = token.user_id == principal.user_id
    if not own and not (
        principal.can(Permission.TOKEN_ADMIN) and principal.reaches(token.tenant_id)
    ):
        raise not_found("token", token_id)
    return token


@router.get("", response_model=TokenPage, responses=READ_ERRORS, summary="List tokens")
def list_tokens(
    scope: Annotated[
        Literal["own", "tenant"],
        Query(description="'own': your tokens and sessions; 'tenant' (admins): everyone's."),
    ] = "own",
    include_inactive: Annotated[bool, Query(description="Also expired and revoked ones.")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
    principal: Principal = Depends(require(Permission.TOKEN_OWN)),
    platform: Platform = Depends(get_platform),
) -> TokenPage:
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if scope == "own":
        query = query.where(ApiToken.user_id == principal.user_id)
    elif not principal.can(Permission.TOKEN_ADMIN):
        raise forbidden(f"Role '{principal.role}' may list only its own tokens.")
    elif not principal.is_platform_admin:
        query = query.where(ApiToken.tenant_id == principal.tenant_id)
    if not include_inactive:
        query = query.where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
    with platform.sessions() as session:
        items = [token_out(t) for t in session.scalars(query.limit(limit).offset(offset))]
    return TokenPage(items=items, limit=limit, offset=offset)


@router.post(
    "",
    response_model=TokenCreated,
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Create an API token (its secret is shown once)",
)
def create_token(
    body: TokenIn,
    request: Request,
    principal: Principal = Depends(require(Permission.TOKEN_OWN)),
    platform: Platform = Depends(get_platform),
) -> TokenCreated:
    role = body.role or principal.role
    if principal.tenant_id is None and not role.is_platform:
        # a tenant role needs a tenant to be scoped to; a platform admin has none
        raise invalid("A platform admin's tokens carry the platform-admin role.")
    if not role.at_most(principal.role):
        raise forbidden(
            f"A token's role may not exceed your own ('{principal.role}').",
        )
    if body.expires_in_days > platform.settings.token_max_ttl_days:
        raise invalid(
            f"expires_in_days may be at most {platform.settings.token_max_ttl_days}.",
        )
    secret = new_secret()
    with transaction(platform.sessions) as session:
        token = ApiToken(
            user_id=principal.user_id,
            tenant_id=principal.tenant_id,
            kind="api",
            name=body.name,
            role=role.value,
            secret_hash=hash_secret(secret),
            expires_at=utcnow() + timedelta(days=body.expires_in_days),
        )
        session.add(token)
        session.flush()
        audited(
            session,
            request,
            principal,
            "token.create",
            "token",
            token.id,
            principal.tenant_id,
            {"name": token.name, "role": token.role},
        )
    return TokenCreated(**token_out(token).model_dump(), token=secret)


@router.get("/{token_id}", response_model=TokenOut, responses=READ_ERRORS, summary="Get a token")
def get_token(
    token_id: str,
    principal: Principal = Depends(require(Permission.TOKEN_OWN)),
    platform: Platform = Depends(get_platform),
) -> TokenOut:
    with platform.sessions() as session:
        return token_out(_reachable(session, principal, token_id))


@router.delete(
    "/{token_id}", status_code=204, responses=WRITE_ERRORS, summary="Revoke a token or session"
)
def revoke_token(
    token_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.TOKEN_OWN)),
    platform: Platform = Depends(get_platform),
) -> None:
    with transaction(platform.sessions) as session:
        token = _reachable(session, principal, token_id)
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            audited(
                session,
                request,
                principal,
                "token.revoke",
                "token",
                token.id,
                token.tenant_id,
                {"name": token.name},
            )

"""Authentication (who is calling) and authorisation (may they do this) for HTTP handlers.

A caller presents a secret either as ``Authorization: Bearer <token>`` (APIs, scripts) or as
the ``plantwire_session`` cookie (the console). Either way the secret's SHA-256 is looked up
among unexpired, unrevoked tokens of enabled users: one indexed query per request."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy import select

from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem
from plantwire.security import audit
from plantwire.security.hashing import hash_secret
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission, Role
from plantwire.security.tables import ApiToken, User, utcnow

__all__ = ["SESSION_COOKIE", "authenticate", "require", "source_address"]

SESSION_COOKIE = "plantwire_session"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def source_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorised(detail: str) -> Problem:
    return Problem(
        401,
        detail,
        type_="urn:plantwire:problem:unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="plantwire"'},
    )


def _presented_secret(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorised("The Authorization header must be 'Bearer <token>'.")
        return value.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


def _check_same_origin(request: Request) -> None:
    """Cookie-authenticated writes must come from the platform's own pages (CSRF defence on
    top of SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Problem(403, "Cross-origin request refused for cookie authentication.")


def authenticate(request: Request, platform: Platform = Depends(get_platform)) -> Principal:
    """The calling principal, or 401."""
    presented = _presented_secret(request)
    if presented is None:
        raise _unauthorised("Authentication required: log in or present an API token.")
    secret, via = presented
    with platform.sessions() as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.secret_hash == hash_secret(secret))
        ).first()
    if row is None:
        raise _unauthorised("The token is not valid.")
    token, user = row
    if token.revoked_at is not None:
        raise _unauthorised("The token has been revoked.")
    if token.expires_at <= utcnow():
        raise _unauthorised("The token has expired.")
    if user.disabled:
        raise _unauthorised("The user is disabled.")
    if via == "cookie" and request.method in _UNSAFE_METHODS:
        _check_same_origin(request)
    user_role, token_role = Role(user.role), Role(token.role)
    return Principal(
        user_id=user.id,
        username=user.username,
        tenant_id=user.tenant_id,
        role=token_role if token_role.at_most(user_role) else user_role,
        token_id=token.id,
        via=via,
    )


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency giving the caller if their role grants ``permission``; 401 or 403 else.
    Refused writes are audited."""

    def dependency(
        request: Request,
        principal: Principal = Depends(authenticate),
        platform: Platform = Depends(get_platform),
    ) -> Principal:
        if principal.can(permission):
            return principal
        if request.method in _UNSAFE_METHODS:
            audit.record_apart(
                platform.sessions,
                actor=principal,
                action=str(permission),
                target_type=permission.split(":", 1)[0],
                target_id=None,
                tenant_id=principal.tenant_id,
                source=source_address(request),
                outcome=audit.Outcome.DENIED,
                detail={"method": request.method, "path": request.url.path},
            )
        raise Problem(
            403,
            f"Role '{principal.role}' does not grant '{permission}'.",
            type_="urn:plantwire:problem:forbidden",
        )

    return dependency

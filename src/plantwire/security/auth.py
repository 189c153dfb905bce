"""Authentication (who is calling) and authorisation (may they do this) for HTTP handlers.

A caller presents a secret either as ``Authorization: Bearer <token>`` (APIs, scripts) or as
the ``plantwire_session`` cookie (the console). Either way the secret's SHA-256 is looked up
among unexpired, unrevoked tokens of enabled users: one indexed query per request."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPBearer
from sqlalchemy import Engine, bindparam, select
from starlette.exceptions import HTTPException

from plantwire.platform import Platform, get_platform, platform_of
from plantwire.problems import Problem
from plantwire.security import audit
from plantwire.security.hashing import hash_secret
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission, Role
from plantwire.security.tables import ApiToken, User, utcnow

__all__ = [
    "SESSION_COOKIE",
    "AuthenticateFirst",
    "authenticate",
    "principal_for_token",
    "require",
    "source_address",
]

SESSION_COOKIE = "plantwire_session"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def source_address(request: Request) -> str:
    """The client's address, as the audit log and the per-address login limit record it: an IP
    address, or a short host-like token (such as the test client's ``testclient``); anything
    else (a proxy passing odd X-Forwarded-For text) is ``invalid``. Never over 64 characters,
    the width of the audit log's ``source`` column."""
    if request.client is None:
        return "unknown"
    host = request.client.host
    if len(host) > 64:
        return "invalid"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", host) is None:
            return "invalid"
    return host


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
        raise Problem(
            403,
            "Cross-origin request refused for cookie authentication.",
            type_="urn:plantwire:problem:forbidden",
        )


# The hot path of every API request: plain columns through Core (no ORM identity map), one
# statement compiled once and cached by SQLAlchemy, answered from the unique secret_hash index.
_TOKEN_LOOKUP = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.role.label("token_role"),
        ApiToken.expires_at,
        ApiToken.revoked_at,
        User.id.label("user_id"),
        User.username,
        User.tenant_id,
        User.role.label("user_role"),
        User.disabled,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.secret_hash == bindparam("secret_hash"))
)


# For the OpenAPI document only: FastAPI declares these schemes, and which operations take
# them, from these dependencies. Reading and checking the secret is authenticate()'s work.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A session token from POST /api/v1/auth/login, or an API token.",
)
_COOKIE = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The session cookie login sets, for the console.",
)


def authenticate(
    request: Request,
    platform: Platform = Depends(get_platform),
    _bearer: object = Security(_BEARER),
    _cookie: object = Security(_COOKIE),
) -> Principal:
    """The calling principal, or 401."""
    presented = _presented_secret(request)
    if presented is None:
        raise _unauthorised("Authentication required: log in or present an API token.")
    secret, via = presented
    principal = principal_for_token(platform.engine, secret, via)
    if isinstance(principal, str):
        raise _unauthorised(principal)
    if via == "cookie" and request.method in _UNSAFE_METHODS:
        _check_same_origin(request)
    return principal


def principal_for_token(engine: Engine, secret: str, via: str = "bearer") -> Principal | str:
    """The principal an API or session token stands for, or why it stands for nobody.
    Shared by the FastAPI dependency and the pillars that authenticate platform users on
    their own paths (the identifier node's Handle API)."""
    with engine.connect() as connection:
        row = connection.execute(_TOKEN_LOOKUP, {"secret_hash": hash_secret(secret)}).first()
    if row is None:
        return "The token is not valid."
    if row.revoked_at is not None:
        return "The token has been revoked."
    if row.expires_at <= utcnow():
        return "The token has expired."
    if row.disabled:
        return "The user is disabled."
    user_role, token_role = Role(row.user_role), Role(row.token_role)
    return Principal(
        user_id=row.user_id,
        username=row.username,
        tenant_id=row.tenant_id,
        role=token_role if token_role.at_most(user_role) else user_role,
        token_id=row.token_id,
        via=via,
    )


def require(permission: Permission) -> Callable[..., Iterator[Principal]]:
    """A dependency giving the caller if their role grants ``permission``; 401 or 403 else.

    Every write that does not succeed is audited: refused for lack of the permission here, and
    refused or failed later in the handler (out of scope, role too high, conflict...), whose
    own transaction is rolled back, in a transaction of its own."""

    def dependency(
        request: Request,
        principal: Principal = Depends(authenticate),
        platform: Platform = Depends(get_platform),
    ) -> Iterator[Principal]:
        if not principal.can(permission):
            problem = Problem(
                403,
                f"Role '{principal.role}' does not grant '{permission}'.",
                type_="urn:plantwire:problem:forbidden",
            )
            _audit_unsuccessful_write(platform, request, principal, permission, problem)
            raise problem
        try:
            yield principal
        except Problem as problem:
            _audit_unsuccessful_write(platform, request, principal, permission, problem)
            raise

    return dependency


def _printable(text: str) -> str:
    """What a caller sent, made safe to store: control characters (a NUL is refused by
    PostgreSQL) written as escapes."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _audit_unsuccessful_write(
    platform: Platform,
    request: Request,
    principal: Principal,
    permission: Permission,
    problem: Problem,
) -> None:
    if request.method not in _UNSAFE_METHODS or problem.status >= 500:
        return
    refused = problem.status in (401, 403, 404)
    target_id = next(iter(request.path_params.values()), None)
    if target_id is not None:
        target_id = _printable(str(target_id))
    audit.record_apart(
        platform.sessions,
        actor=principal,
        action=str(permission),
        target_type=permission.split(":", 1)[0],
        target_id=str(target_id)[:64] if target_id is not None else None,
        tenant_id=principal.tenant_id,
        source=source_address(request),
        outcome=audit.Outcome.DENIED if refused else audit.Outcome.FAILURE,
        detail={
            "method": request.method,
            "path": _printable(request.url.path),
            "status": problem.status,
            "reason": problem.detail or problem.title,
        },
    )


class AuthenticateFirst(APIRoute):
    """A route that answers an unauthenticated caller 401 even when its body is unreadable.

    FastAPI reads and parses the body before it solves dependencies, so a malformed body would
    be answered 400 before ``authenticate`` ran: callers would hear about the body before being
    asked who they are. Authenticating only once the body failed keeps one query per request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _needs_caller(self.dependant):
            return handler

        async def authenticate_first(request: Request) -> Response:
            try:
                return await handler(request)
            except (RequestValidationError, HTTPException) as error:
                if _unreadable_body(error):
                    platform = platform_of(request)
                    await run_in_threadpool(authenticate, request, platform)  # 401 if anonymous
                raise

        return authenticate_first


def _needs_caller(dependant: Dependant) -> bool:
    return any(sub.call is authenticate or _needs_caller(sub) for sub in dependant.dependencies)


def _unreadable_body(error: Exception) -> bool:
    """Errors FastAPI raises while reading the body, before any dependency ran."""
    if isinstance(error, RequestValidationError):
        return any(detail.get("type") == "json_invalid" for detail in error.errors())
    return isinstance(error, HTTPException) and error.status_code == 400

"""Login and logout: sessions for people (cookie for the console, bearer for APIs)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem, problem_responses
from plantwire.security import audit
from plantwire.security.auth import SESSION_COOKIE, AuthenticateFirst, authenticate, source_address
from plantwire.security.hashing import hash_secret, new_secret
from plantwire.security.principal import Principal
from plantwire.security.schemas import LoginIn, LoginOut, UserOut
from plantwire.security.tables import ApiToken, User, utcnow
from plantwire.security.views import user_out

router = APIRouter(prefix="/auth", tags=["auth"], route_class=AuthenticateFirst)


@router.post(
    "/login",
    response_model=LoginOut,
    responses=problem_responses(400, 401, 413, 422, 429),
    summary="Log in with username and password",
)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    platform: Platform = Depends(get_platform),
) -> LoginOut:
    address = source_address(request)
    wait = platform.login_limiter.attempt(body.username, address)  # counted from here
    if wait:
        raise Problem(
            429,
            "Too many failed logins; try again later.",
            type_="urn:plantwire:problem:rate-limited",
            headers={"Retry-After": str(wait)},
        )
    with platform.sessions() as session:
        by_name = func.lower(User.username) == func.lower(body.username)
        user = session.scalars(select(User).where(by_name)).first()
    valid = platform.passwords.verify(user.password_hash if user else None, body.password)
    if user is None or not valid or user.disabled:
        audit.record_apart(
            platform.sessions,
            actor=None,
            actor_name=body.username,
            actor_id=user.id if user else None,
            action="auth.login",
            target_type="session",
            target_id=None,
            tenant_id=user.tenant_id if user else None,
            source=address,
            outcome=audit.Outcome.FAILURE,
        )
        raise Problem(
            401, "Wrong username or password.", type_="urn:plantwire:problem:login-failed"
        )
    platform.login_limiter.succeeded(body.username, address)
    secret = new_secret()
    expires = utcnow() + timedelta(seconds=platform.settings.session_ttl_seconds)
    with transaction(platform.sessions) as session:
        _prune_sessions(session, user.id)
        token = ApiToken(
            user_id=user.id,
            tenant_id=user.tenant_id,
            kind="session",
            name=f"session from {address}"[:100],
            role=user.role,
            secret_hash=hash_secret(secret),
            expires_at=expires,
        )
        session.add(token)
        session.flush()
        audit.record(
            session,
            actor=None,
            actor_name=user.username,
            actor_id=user.id,
            action="auth.login",
            target_type="session",
            target_id=token.id,
            tenant_id=user.tenant_id,
            source=address,
        )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=platform.settings.session_ttl_seconds,
        httponly=True,
        secure=platform.settings.cookie_secure,
        samesite="strict",
    )
    return LoginOut(token=secret, expires_at=expires, user=user_out(user))


def _prune_sessions(session: Session, user_id: str) -> None:
    """Drop this user's login sessions that ended over a day ago, so the tokens table holds
    live sessions and API tokens, not one row per login ever made. API tokens are kept (their
    owners list revoked ones); the audit log keeps the history of every session."""
    cutoff = utcnow() - timedelta(days=1)
    session.execute(
        delete(ApiToken).where(
            ApiToken.user_id == user_id,
            ApiToken.kind == "session",
            or_(ApiToken.expires_at < cutoff, ApiToken.revoked_at < cutoff),
        )
    )


@router.post(
    "/logout",
    status_code=204,
    responses=problem_responses(401, 403),
    summary="End the session (or revoke the token) used for this request",
)
def logout(
    request: Request,
    response: Response,
    principal: Principal = Depends(authenticate),
    platform: Platform = Depends(get_platform),
) -> None:
    with transaction(platform.sessions) as session:
        token = session.get(ApiToken, principal.token_id)
        if token is not None and token.revoked_at is None:
            token.revoked_at = utcnow()
        audit.record(
            session,
            actor=principal,
            action="auth.logout",
            target_type="session",
            target_id=principal.token_id,
            tenant_id=principal.tenant_id,
            source=source_address(request),
        )
    response.delete_cookie(SESSION_COOKIE, httponly=True, secure=platform.settings.cookie_secure)


@router.get("/me", response_model=UserOut, responses=problem_responses(401), summary="Who am I")
def me(
    principal: Principal = Depends(authenticate),
    platform: Platform = Depends(get_platform),
) -> UserOut:
    with platform.sessions() as session:
        user = session.get(User, principal.user_id)
    if user is None:  # deleted between authentication and this read
        raise Problem(401, "The user no longer exists.")
    out = user_out(user)
    return out.model_copy(update={"role": principal.role})

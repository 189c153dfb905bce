"""Users of a tenant (and platform admins). Tenant admins manage their own tenant's users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.platform import Platform, get_platform
from plantwire.problems import Problem
from plantwire.security.auth import AuthenticateFirst, require
from plantwire.security.principal import Principal
from plantwire.security.roles import Permission, Role
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
from plantwire.security.schemas import UserIn, UserOut, UserPage, UserPatch
from plantwire.security.tables import ApiToken, Tenant, User, utcnow
from plantwire.security.views import user_out

router = APIRouter(prefix="/users", tags=["users"], route_class=AuthenticateFirst)


def _reachable(session: Session, principal: Principal, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or not principal.reaches(user.tenant_id):
        raise not_found("user", user_id)
    return user


def _check_role_grant(principal: Principal, role: Role) -> None:
    if not role.at_most(principal.role):
        raise forbidden(f"Role '{principal.role}' cannot grant role '{role}'.")


def _active_platform_admins(session: Session) -> int:
    query = select(func.count()).where(
        User.role == Role.PLATFORM_ADMIN.value, User.disabled.is_(False)
    )
    return session.scalar(query) or 0


def _begin_user_change(session: Session, principal: Principal) -> None:
    """Start a change that may take a platform admin away. Concurrent changes take turns
    (PostgreSQL: the platform admins' rows are locked; SQLite: writes are serialised), and
    the caller must still be who it was when authenticated: two admins removing each other
    at once leave one, not none. Only platform admins can reach platform admins, so tenant
    admins' changes need no such turn-taking."""
    if not principal.is_platform_admin:
        return
    session.execute(select(User.id).where(User.role == Role.PLATFORM_ADMIN.value).with_for_update())
    caller = session.get(User, principal.user_id)
    if caller is None or caller.disabled or not Role(caller.role).at_least(principal.role):
        raise Problem(
            401,
            "Your account changed while this request waited; authenticate again.",
            type_="urn:plantwire:problem:unauthenticated",
        )


def _keep_a_platform_admin(session: Session) -> None:
    session.flush()
    if _active_platform_admins(session) == 0:
        raise conflict("The platform must keep at least one active platform admin.")


@router.get("", response_model=UserPage, responses=READ_ERRORS, summary="List users")
def list_users(
    tenant: TenantFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
    principal: Principal = Depends(require(Permission.USER_READ)),
    platform: Platform = Depends(get_platform),
) -> UserPage:
    query = select(User).order_by(User.username).limit(limit).offset(offset)
    if not principal.is_platform_admin:
        query = query.where(User.tenant_id == principal.tenant_id)
    elif tenant is not None:
        query = query.where(User.tenant_id == tenant)
    with platform.sessions() as session:
        items = [user_out(u) for u in session.scalars(query)]
    return UserPage(items=items, limit=limit, offset=offset)


@router.post(
    "", response_model=UserOut, status_code=201, responses=WRITE_ERRORS, summary="Create a user"
)
def create_user(
    body: UserIn,
    request: Request,
    principal: Principal = Depends(require(Permission.USER_WRITE)),
    platform: Platform = Depends(get_platform),
) -> UserOut:
    _check_role_grant(principal, body.role)
    tenant_id = body.tenant if body.tenant is not None else principal.tenant_id
    if body.role.is_platform:
        if body.tenant is not None:
            raise invalid("Platform admins belong to no tenant: omit 'tenant'.")
        tenant_id = None
    elif tenant_id is None:
        raise invalid(f"A user with role '{body.role}' needs a 'tenant'.")
    password_hash = platform.passwords.hash(body.password)
    try:
        with transaction(platform.sessions) as session:
            if tenant_id is not None:
                tenant = session.get(Tenant, tenant_id)
                if tenant is None or not principal.reaches(tenant.id):
                    raise not_found("tenant", tenant_id)
            taken = select(User.id).where(func.lower(User.username) == func.lower(body.username))
            if session.scalar(taken) is not None:
                raise conflict(f"The username '{body.username}' is taken.")
            user = User(
                username=body.username,
                password_hash=password_hash,
                role=body.role.value,
                tenant_id=tenant_id,
                disabled=False,
            )
            session.add(user)
            session.flush()
            audited(
                session,
                request,
                principal,
                "user.create",
                "user",
                user.id,
                tenant_id,
                {"username": user.username, "role": user.role},
            )
    except IntegrityError as error:
        # the tenant was deleted meanwhile, or the username taken meanwhile
        with platform.sessions() as session:
            if tenant_id is not None and session.get(Tenant, tenant_id) is None:
                raise not_found("tenant", tenant_id) from error
        raise conflict(f"The username '{body.username}' is taken.") from error
    return user_out(user)


@router.get("/{user_id}", response_model=UserOut, responses=READ_ERRORS, summary="Get a user")
def get_user(
    user_id: str,
    principal: Principal = Depends(require(Permission.USER_READ)),
    platform: Platform = Depends(get_platform),
) -> UserOut:
    with platform.sessions() as session:
        return user_out(_reachable(session, principal, user_id))


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    responses=WRITE_ERRORS,
    summary="Change a user's role, password or disabled flag",
)
def update_user(
    user_id: str,
    body: UserPatch,
    request: Request,
    principal: Principal = Depends(require(Permission.USER_WRITE)),
    platform: Platform = Depends(get_platform),
) -> UserOut:
    password_hash = platform.passwords.hash(body.password) if body.password else None
    with transaction(platform.sessions) as session:
        _begin_user_change(session, principal)
        user = _reachable(session, principal, user_id)
        _check_role_grant(principal, Role(user.role))
        changes: dict[str, object] = {}
        was_active_platform_admin = user.role == Role.PLATFORM_ADMIN and not user.disabled
        if body.role is not None and body.role.value != user.role:
            _check_role_grant(principal, body.role)
            if body.role.is_platform != (user.tenant_id is None):
                raise conflict("A user cannot move between the platform and a tenant.")
            changes["role"] = [user.role, body.role.value]
            user.role = body.role.value
        if body.disabled is not None and body.disabled != user.disabled:
            if user.id == principal.user_id and body.disabled:
                raise conflict("You cannot disable yourself.")
            changes["disabled"] = body.disabled
            user.disabled = body.disabled
        if password_hash is not None:
            user.password_hash = password_hash
            changes["password"] = "changed"
            session.execute(
                update(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.kind == "session")
                .where(ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        if was_active_platform_admin:
            _keep_a_platform_admin(session)
        if changes:
            audited(
                session,
                request,
                principal,
                "user.update",
                "user",
                user.id,
                user.tenant_id,
                changes,
            )
    return user_out(user)


@router.delete("/{user_id}", status_code=204, responses=WRITE_ERRORS, summary="Delete a user")
def delete_user(
    user_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.USER_WRITE)),
    platform: Platform = Depends(get_platform),
) -> None:
    with transaction(platform.sessions) as session:
        _begin_user_change(session, principal)
        user = _reachable(session, principal, user_id)
        _check_role_grant(principal, Role(user.role))
        if user.id == principal.user_id:
            raise conflict("You cannot delete yourself.")
        was_active_platform_admin = user.role == Role.PLATFORM_ADMIN and not user.disabled
        audited(
            session,
            request,
            principal,
            "user.delete",
            "user",
            user.id,
            user.tenant_id,
            {"username": user.username},
        )
        session.delete(user)
        if was_active_platform_admin:
            _keep_a_platform_admin(session)

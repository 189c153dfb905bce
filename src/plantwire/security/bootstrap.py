"""The first platform admin, made by ``plantwire init``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from plantwire.db import transaction
from plantwire.security import audit
from plantwire.security.hashing import PasswordHashing
from plantwire.security.roles import Role
from plantwire.security.tables import User

__all__ = ["ADMIN_USERNAME", "FirstAdmin", "ensure_first_admin"]

ADMIN_USERNAME = "admin"


@dataclass(frozen=True, slots=True)
class FirstAdmin:
    """What ``ensure_first_admin`` did."""

    created: bool  # False: the platform had a platform admin already; nothing was created
    generated_password: str | None = None  # set when created with a generated password


def ensure_first_admin(
    sessions: sessionmaker[Session], passwords: PasswordHashing, password: str | None
) -> FirstAdmin:
    """Create user ``admin`` (platform admin) if the platform has no platform admin yet, with
    ``password``, or with a generated one (returned, to be shown once) when that is None."""
    generated = None
    with transaction(sessions) as session:
        query = select(User.id).where(User.role == Role.PLATFORM_ADMIN.value).limit(1)
        if session.scalar(query) is not None:
            return FirstAdmin(created=False)
        if password is None:
            generated = password = secrets.token_urlsafe(18)
        admin = User(
            username=ADMIN_USERNAME,
            password_hash=passwords.hash(password),
            role=Role.PLATFORM_ADMIN.value,
            tenant_id=None,
            disabled=False,
        )
        session.add(admin)
        session.flush()
        audit.record(
            session,
            actor=None,
            actor_name="plantwire init",
            action="user.create",
            target_type="user",
            target_id=admin.id,
            tenant_id=None,
            source="cli",
            detail={"username": ADMIN_USERNAME, "role": Role.PLATFORM_ADMIN.value},
        )
    return FirstAdmin(created=True, generated_password=generated)

"""JSON shapes of the security API (pydantic models; they also make its OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from plantwire.security.roles import Role

__all__ = [
    "ID_PATTERN",
    "MIN_PASSWORD_LENGTH",
    "AuditEntryOut",
    "AuditPage",
    "LoginIn",
    "LoginOut",
    "TenantIn",
    "TenantOut",
    "TenantPage",
    "TokenCreated",
    "TokenIn",
    "TokenOut",
    "TokenPage",
    "UserIn",
    "UserOut",
    "UserPage",
    "UserPatch",
]

Name = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
MIN_PASSWORD_LENGTH = 8
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=1024)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


NoControl = r"^[^\x00-\x1f\x7f]+$"
ID_PATTERN = r"^[0-9A-Za-z-]{1,64}$"  # the ids plantwire issues (UUIDs), and no more
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class LoginIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NoControl)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    id: str
    username: str
    role: Role
    tenant: str | None = Field(description="Tenant id; null for platform admins.")
    disabled: bool
    created_at: datetime


class LoginOut(BaseModel):
    token: str = Field(description="Session secret: send as 'Authorization: Bearer <token>'.")
    token_type: str = "bearer"
    expires_at: datetime
    user: UserOut


class TenantIn(_In):
    name: Name


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class UserIn(_In):
    username: Username
    password: Password
    role: Role
    tenant: Id | None = Field(
        None, description="Tenant id; a tenant admin may omit it for their own tenant."
    )


class UserPatch(_In):
    password: Password | None = None
    role: Role | None = None
    disabled: bool | None = None


class TokenIn(_In):
    name: Name
    role: Role | None = Field(None, description="At most the creator's role; default theirs.")
    expires_in_days: int = Field(90, ge=1, le=3650)


class TokenOut(BaseModel):
    id: str
    name: str
    kind: str
    role: Role
    user_id: str
    tenant: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret, shown this once; only its hash is stored.")


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    tenant: str | None
    actor: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    source: str | None
    outcome: str
    detail: dict[str, Any] | None


class _Page(BaseModel):
    limit: int
    offset: int


class TenantPage(_Page):
    items: list[TenantOut]


class UserPage(_Page):
    items: list[UserOut]


class TokenPage(_Page):
    items: list[TokenOut]


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_before_id: int | None = Field(description="Pass as before_id for the next page.")

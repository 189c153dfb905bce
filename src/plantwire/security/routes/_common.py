"""Pieces every security route uses: paging, scoping, audit of successful writes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from sqlalchemy.orm import Session

from plantwire.problems import Problem, problem_responses
from plantwire.security import audit
from plantwire.security.auth import source_address
from plantwire.security.principal import Principal
from plantwire.security.schemas import ID_PATTERN

__all__ = ["READ_ERRORS", "WRITE_ERRORS", "Limit", "Offset", "audited", "not_found"]

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
TenantFilter = Annotated[
    str | None,
    Query(description="Platform admins: only this tenant's.", pattern=ID_PATTERN),
]

READ_ERRORS = problem_responses(400, 401, 403, 404, 413, 422)
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)


def not_found(kind: str, ident: str) -> Problem:
    """Out-of-scope resources answer exactly like missing ones, so ids of other tenants leak
    nothing."""
    return Problem(404, f"No {kind} '{ident}'.", type_="urn:plantwire:problem:not-found")


def conflict(detail: str) -> Problem:
    return Problem(409, detail, type_="urn:plantwire:problem:conflict")


def forbidden(detail: str) -> Problem:
    return Problem(403, detail, type_="urn:plantwire:problem:forbidden")


def unavailable(detail: str) -> Problem:
    """A service the request needs cannot be reached now (503); trying later may work."""
    return Problem(503, detail, type_="urn:plantwire:problem:unavailable")


def invalid(detail: str) -> Problem:
    """A request that is well-formed but not acceptable as a whole (422)."""
    return Problem(422, detail, title="Invalid request", type_="urn:plantwire:problem:validation")


def audited(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str | None,
    tenant_id: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        actor=principal,
        action=action,
        target_type=target_type,
        target_id=target_id,
        tenant_id=tenant_id,
        source=source_address(request),
        detail=detail,
    )

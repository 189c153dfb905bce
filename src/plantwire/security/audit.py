"""The append-only audit log: who did what to which resource, for which tenant, from where,
and how it ended. Successful writes are recorded in the same transaction as the write itself,
so a write and its audit entry land together or not at all."""

from __future__ import annotations

import enum
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from plantwire.db import transaction
from plantwire.security.principal import Principal
from plantwire.security.tables import AuditEntry

__all__ = ["Outcome", "record", "record_apart"]

_log = structlog.get_logger("plantwire.audit")


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: str | None,
    tenant_id: str | None,
    source: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    actor_name: str | None = None,
    actor_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an entry to ``session``'s transaction. Without a principal (logins, the CLI) the
    actor is named by ``actor_name`` and, where known, ``actor_id``."""
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            actor_id=actor.user_id if actor else actor_id,
            actor=actor.username if actor else (actor_name or "anonymous")[:64],
            action=action,
            target_type=target_type,
            target_id=target_id,
            source=source,
            outcome=outcome.value,
            detail=detail,
        )
    )


def record_apart(sessions: sessionmaker[Session], **entry: Any) -> None:
    """Record in a transaction of its own: for refused and failed attempts, whose own
    transaction (if any) is rolled back."""
    with transaction(sessions) as session:
        record(session, **entry)
    _log.info("audit", **{k: v for k, v in entry.items() if k not in ("actor", "detail")})

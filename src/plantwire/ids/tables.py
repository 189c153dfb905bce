"""Registry tables of the identifier pillar.

One row per handle and one per value, keyed by the handle's match key (ASCII lower-cased, see
``names.match_key``), both clustered on that key (WITHOUT ROWID on SQLite), so resolving is
one index range read. Each value is kept as the JSON fragment the REST API answers with,
written once at write time: resolution concatenates fragments and parses nothing."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from plantwire.db import Base
from plantwire.security.tables import UTCDateTime

__all__ = ["handle_values", "handles", "homed_prefixes"]

handles = Table(
    "handles",
    Base.metadata,
    Column("handle_key", String(1024), primary_key=True),
    Column("handle", String(1024), nullable=False),  # as first written: case is kept
    Column("prefix_key", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_handles_prefix_key", "prefix_key", "handle_key"),
    # the newest handles of a prefix (the console's overview) without a scan of the prefix
    Index("ix_handles_prefix_created", "prefix_key", "created_at"),
    sqlite_with_rowid=False,
)

handle_values = Table(
    "handle_values",
    Base.metadata,
    Column(
        "handle_key",
        String(1024),
        ForeignKey("handles.handle_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("idx", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("type_key", String(255), nullable=False),  # match key of the type, for ?type=
    Column("public_read", Boolean, nullable=False),
    Column("value_json", Text, nullable=False),  # the value as the REST API writes it
    sqlite_with_rowid=False,
)

homed_prefixes = Table(
    "homed_prefixes",
    Base.metadata,
    Column("prefix_key", String(255), primary_key=True),
    Column("prefix", String(255), nullable=False),
    Column("tenant_id", String(36), ForeignKey("tenants.id", ondelete="RESTRICT"), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

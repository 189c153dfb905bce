"""Identifier pillar: handles, their values (pre-serialised), homed prefixes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from plantwire.security.tables import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handles",
        sa.Column("handle_key", sa.String(1024), primary_key=True),
        sa.Column("handle", sa.String(1024), nullable=False),
        sa.Column("prefix_key", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_handles_prefix_key", "handles", ["prefix_key", "handle_key"])
    op.create_table(
        "handle_values",
        sa.Column(
            "handle_key",
            sa.String(1024),
            sa.ForeignKey("handles.handle_key", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("type_key", sa.String(255), nullable=False),
        sa.Column("public_read", sa.Boolean(), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "homed_prefixes",
        sa.Column("prefix_key", sa.String(255), primary_key=True),
        sa.Column("prefix", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="RESTRICT")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_homed_prefixes_tenant_id", "homed_prefixes", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("homed_prefixes")
    op.drop_table("handle_values")
    op.drop_table("handles")

"""Identifier pillar: the newest handles of a prefix by an index (the console's overview).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_handles_prefix_created", "handles", ["prefix_key", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_handles_prefix_created", table_name="handles")

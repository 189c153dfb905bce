"""Telemetry pillar: a Sparkplug device's edge node (``devices.parent_id``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign key: SQLite adds one only by rebuilding `devices`, whose drop would cascade
    # into its metrics and commands. Deleting an edge node deletes its devices in the API.
    op.add_column("devices", sa.Column("parent_id", sa.String(36), nullable=True))
    op.create_index("ix_devices_parent", "devices", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_devices_parent", table_name="devices")
    op.drop_column("devices", "parent_id")

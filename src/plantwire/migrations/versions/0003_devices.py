"""Telemetry pillar: devices and their metric metadata.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from plantwire.security.tables import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(36),
            sa.ForeignKey("tenants.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(800), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("place", sa.String(400), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("secret_bcrypt", sa.String(60), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name_key", name="uq_devices_tenant_name"),
    )
    op.create_index("ix_devices_tenant_place", "devices", ["tenant_id", "place"])
    op.create_table(
        "device_metrics",
        sa.Column(
            "device_id",
            sa.String(36),
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("data_type", sa.String(16), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("writable", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("device_metrics")
    op.drop_index("ix_devices_tenant_place", table_name="devices")
    op.drop_table("devices")

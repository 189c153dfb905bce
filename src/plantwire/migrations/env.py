"""Alembic environment: plantwire always passes its own engine; there is no alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from plantwire.db import Base
from plantwire.ids import tables as ids_tables  # noqa: F401  (registers tables on Base.metadata)
from plantwire.security import tables  # noqa: F401
from plantwire.telemetry import tables as telemetry_tables  # noqa: F401

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("plantwire migrations run through plantwire.db.migrate(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

"""Registry migrations on fresh SQLite and PostgreSQL databases, kept equal to the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from plantwire.db import Base, alembic_config, current_revision, head_revision, make_engine, migrate
from tests.conftest import make_settings


def _url(tmp_path: Path, database_url: str | None) -> str:
    return make_settings(tmp_path / "data", database_url=database_url).registry_url


# SQLite cannot reflect expression indexes (lower(name)); the other backend compares them
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_fresh_database_migrates_to_head_and_matches_models(
    tmp_path: Path, database_url: str | None
) -> None:
    (tmp_path / "data").mkdir()
    engine = make_engine(_url(tmp_path, database_url))
    try:
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"tenants", "users", "api_tokens", "audit_log", "alembic_version"} <= tables
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        migrate(engine)  # idempotent
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(tmp_path: Path, database_url: str | None) -> None:
    (tmp_path / "data").mkdir()
    engine = make_engine(_url(tmp_path, database_url))
    try:
        migrate(engine)
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

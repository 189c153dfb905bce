"""Fixtures of the identifier tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantwire.db import make_engine, migrate
from plantwire.ids.store import SqlHandleStore
from tests.conftest import make_settings


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[SqlHandleStore]:
    (tmp_path / "data").mkdir()
    engine = make_engine(make_settings(tmp_path / "data", database_url=database_url).registry_url)
    migrate(engine)
    handle_store = SqlHandleStore(engine)
    yield handle_store
    handle_store.close()
    engine.dispose()

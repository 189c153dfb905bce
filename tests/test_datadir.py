"""Data dir format versioning: current dirs pass, older ones migrate, newer ones are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantwire import datadir
from plantwire.datadir import FORMAT_FILE, DataDirError, ensure_current, read_format, write_format


def test_uninitialised_dir(tmp_path: Path) -> None:
    assert read_format(tmp_path) is None
    with pytest.raises(DataDirError, match="plantwire init"):
        ensure_current(tmp_path)


def test_current_format_passes(tmp_path: Path) -> None:
    write_format(tmp_path)
    found = ensure_current(tmp_path)
    assert found.version == datadir.FORMAT_VERSION


def test_newer_format_is_refused(tmp_path: Path) -> None:
    write_format(tmp_path, datadir.FORMAT_VERSION + 1)
    with pytest.raises(DataDirError, match="Upgrade plantwire"):
        ensure_current(tmp_path)


def test_older_format_is_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    base = datadir.FORMAT_VERSION
    monkeypatch.setattr(datadir, "FORMAT_VERSION", base + 2)
    monkeypatch.setattr(
        datadir,
        "_STEPS",
        {base: lambda d: ran.append(base), base + 1: lambda d: ran.append(base + 1)},
    )
    write_format(tmp_path, base)
    assert ensure_current(tmp_path).version == base + 2
    assert ran == [base, base + 1]
    assert json.loads((tmp_path / FORMAT_FILE).read_text())["format"] == base + 2


def test_missing_step_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datadir, "FORMAT_VERSION", datadir.FORMAT_VERSION + 1)
    write_format(tmp_path, datadir.FORMAT_VERSION - 1)
    with pytest.raises(DataDirError, match="No migration"):
        ensure_current(tmp_path)


@pytest.mark.parametrize(
    "content", [b'{"format": 1e999, "written_by": "x", "written_at": "y"}', b"[]", b"{}", b"\xff"]
)
def test_known_damage(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FORMAT_FILE).write_bytes(content)
    with pytest.raises(DataDirError):
        read_format(tmp_path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_damaged_format_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FORMAT_FILE).write_bytes(content)
    try:
        found = read_format(tmp_path)
    except DataDirError as error:
        outcome = str(error)
    else:
        assert found is not None
        outcome = f"read format {found.version}; not damaged, nothing to restore from a backup"
    assert "from a backup" in outcome

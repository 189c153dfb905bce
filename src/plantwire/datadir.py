"""The data dir: its layout and its format version.

A data dir records the format version it was written in. At start an older dir is migrated step
by step (``_STEPS``) and a newer one is refused, since this plantwire cannot know its layout.
The registry database's own schema is migrated by Alembic (``plantwire.db.migrate``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from plantwire import __version__

__all__ = [
    "FORMAT_FILE",
    "FORMAT_VERSION",
    "TELEMETRY_DIR",
    "DataDirError",
    "DataDirFormat",
    "ensure_current",
    "read_format",
    "write_format",
]

FORMAT_VERSION = 1
FORMAT_FILE = "plantwire-format.json"
#: The time-series store's folder: the platform creates it when it first opens the store, so
#: data dirs without it need no migration.
TELEMETRY_DIR = "telemetry"

#: Step functions migrating a data dir from format N to N + 1, keyed by N.
_STEPS: dict[int, Callable[[Path], None]] = {}


class DataDirError(Exception):
    """The data dir cannot be used as it is; the message tells the operator what to do."""


@dataclass(frozen=True, slots=True)
class DataDirFormat:
    version: int
    written_by: str
    written_at: str


def read_format(data_dir: Path) -> DataDirFormat | None:
    """The recorded format, or None for a dir that was never initialised."""
    path = data_dir / FORMAT_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:  # a directory, unreadable, an I/O error
        reason = error.strerror or error
        raise DataDirError(f"{path} cannot be read ({reason}); fix or restore it.") from error
    try:
        raw = json.loads(data.decode("utf-8"))
        return DataDirFormat(int(raw["format"]), str(raw["written_by"]), str(raw["written_at"]))
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        raise DataDirError(f"{path} is damaged ({error}); restore it from a backup.") from error


def write_format(data_dir: Path, version: int = FORMAT_VERSION) -> None:
    """Record ``version`` atomically (write, fsync, rename)."""
    path = data_dir / FORMAT_FILE
    record = {
        "format": version,
        "written_by": __version__,
        "written_at": datetime.now(UTC).isoformat(),
    }
    scratch = path.with_suffix(".tmp")
    with scratch.open("w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    scratch.replace(path)


def ensure_current(data_dir: Path) -> DataDirFormat:
    """Check an initialised data dir; migrate it if it is older than this plantwire."""
    found = read_format(data_dir)
    if found is None:
        raise DataDirError(f"{data_dir} is not a plantwire data dir; run 'plantwire init' first.")
    if found.version > FORMAT_VERSION:
        raise DataDirError(
            f"{data_dir} has data dir format {found.version}, written by plantwire "
            f"{found.written_by}; this plantwire ({__version__}) reads formats up to "
            f"{FORMAT_VERSION}. Upgrade plantwire, or restore a backup made by this version."
        )
    version = found.version
    while version < FORMAT_VERSION:
        step = _STEPS.get(version)
        if step is None:
            raise DataDirError(f"No migration from data dir format {version}; cannot upgrade.")
        step(data_dir)
        version += 1
        write_format(data_dir, version)
    return read_format(data_dir) or found

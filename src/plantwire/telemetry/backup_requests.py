"""Backups of the time-series store that another process holds open: ``plantwire backup``
while ``plantwire up`` runs.

DuckDB lets only the process that holds a database file open read it, and only that process
has the store's locks, so only it can copy the store consistently. The asking process leaves a
request file in ``<store>/backup-requests/``; the platform looks there twice a second, claims
the request, copies the store where it says (``TimeSeriesStore.backup``) and leaves an answer
beside it, touching its claim every second while it copies so the asker can tell a long copy
from a platform that died. Whoever may write into the data dir may ask: the same people who
could read every file of it anyway."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import duckdb
import structlog

from plantwire.telemetry.store import StoreError, TimeSeriesStore

__all__ = ["INBOX", "BackupRequestError", "request_backup", "serve_backup_requests"]

INBOX = "backup-requests"
#: How long an asker waits for its request to be claimed before giving up.
CLAIM_WITHIN = 10.0
#: How old a claim may grow without being touched before the asker gives up.
SILENT_FOR = 10.0
_POLL = 0.5

_log = structlog.get_logger("plantwire.telemetry.backup")


class BackupRequestError(Exception):
    """The process holding the store did not make the backup; the message says why."""


def _write_json(path: Path, content: dict[str, Any]) -> None:
    """Write under a temporary name, then rename: readers never see half a file."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(content), encoding="utf-8")
    os.replace(scratch, path)


# --- the side that holds the store ------------------------------------------------------------


async def serve_backup_requests(store: TimeSeriesStore, folder: Path) -> None:
    """Answer backup requests left in ``folder/backup-requests`` until cancelled. Requests
    left from before (by an asker that is gone) are dropped first."""
    inbox = folder / INBOX
    await anyio.to_thread.run_sync(_empty, inbox)
    while True:
        for request in await anyio.to_thread.run_sync(_pending, inbox):
            await _answer(store, request)
        await anyio.sleep(_POLL)


def _empty(inbox: Path) -> None:
    inbox.mkdir(exist_ok=True)
    for stale in inbox.iterdir():
        stale.unlink(missing_ok=True)


def _pending(inbox: Path) -> list[Path]:
    return sorted(inbox.glob("*.request"))


def _claim(request: Path, claim: Path) -> Path | dict[str, Any] | None:
    """Take the request: where to copy the store, an answer for an unreadable request, or
    None when the asker took it back first."""
    try:
        request.rename(claim)
    except FileNotFoundError:
        return None
    try:
        return Path(json.loads(claim.read_text("utf-8"))["destination"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return {"error": f"an unreadable request ({type(error).__name__}: {error})"}


async def _answer(store: TimeSeriesStore, request: Path) -> None:
    claim = request.with_suffix(".claimed")
    claimed = await anyio.to_thread.run_sync(_claim, request, claim)
    if claimed is None:
        return
    if isinstance(claimed, dict):
        answer = claimed
    else:
        async with anyio.create_task_group() as beating:
            beating.start_soon(_touch_every_second, claim)
            answer = await anyio.to_thread.run_sync(_copy, store, claimed)
            beating.cancel_scope.cancel()
    await anyio.to_thread.run_sync(_write_json, request.with_suffix(".answer"), answer)
    await anyio.Path(claim).unlink(missing_ok=True)


def _copy(store: TimeSeriesStore, destination: Path) -> dict[str, Any]:
    """The store's backup into ``destination``, as the answer to leave for the asker."""
    try:
        files = store.backup(destination)
    except (OSError, StoreError, duckdb.Error) as error:
        _log.error("store.backup_failed", destination=str(destination), error=repr(error))
        return {"error": f"{type(error).__name__}: {error}"}
    _log.info("store.backup", destination=str(destination), files=len(files))
    return {"files": files}


async def _touch_every_second(path: Path) -> None:
    while True:
        await anyio.sleep(1)
        await anyio.Path(path).touch()


# --- the side that asks --------------------------------------------------------------------


def request_backup(folder: Path, destination: Path) -> list[str]:
    """Have the process holding the store in ``folder`` copy it into ``destination`` (a new
    folder); the files written, relative to it."""
    inbox = folder / INBOX
    if not inbox.is_dir():
        raise BackupRequestError("the process holding it does not take backup requests")
    name = uuid.uuid4().hex
    request, claim, answer = (inbox / f"{name}.{kind}" for kind in ("request", "claimed", "answer"))
    _write_json(request, {"destination": str(destination.resolve())})
    asked = time.monotonic()
    while True:
        if answer.exists():
            found = json.loads(answer.read_text("utf-8"))
            answer.unlink()
            if "error" in found:
                raise BackupRequestError(f"the platform could not copy it: {found['error']}")
            files: list[str] = found["files"]
            return files
        try:
            silent: float | None = time.time() - claim.stat().st_mtime
        except FileNotFoundError:  # not claimed yet, or answered just now
            silent = None
        if silent is not None:
            if silent > SILENT_FOR:
                raise BackupRequestError("the platform stopped answering while copying it")
        elif time.monotonic() - asked > CLAIM_WITHIN:
            try:
                request.unlink()
            except FileNotFoundError:
                continue  # claimed just now: wait for it after all
            raise BackupRequestError(
                f"the process holding it did not take the request within {CLAIM_WITHIN:.0f} s"
            )
        time.sleep(0.05)

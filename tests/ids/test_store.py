"""The SQL handle store on SQLite and PostgreSQL: atomic writes, case rules, paging."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from plantwire.ids.codes import HandleError, ResponseCode
from plantwire.ids.model import AdminPermission, AdminRef, HandleValue, ValuePermissions
from plantwire.ids.names import parse_handle
from plantwire.ids.store import BatchingWriter, Creation, SqlHandleStore

H = parse_handle("88.101.5/SN-000123")
URL_TEXT = "https://plant.example/units/SN-000123"
URL = HandleValue(1, "URL", URL_TEXT.encode())
ADMIN = HandleValue(100, "HS_ADMIN", AdminRef("0.NA/88.101.5", 200, AdminPermission.all()))
SECRET = HandleValue(
    300, "HS_SECKEY", b"hash", permissions=ValuePermissions(True, True, False, False)
)
VALUES = [URL, ADMIN]


def codes(error: pytest.ExceptionInfo[HandleError]) -> ResponseCode:
    return error.value.code


def test_create_and_get(store: SqlHandleStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert store.create(H, [ADMIN, URL, SECRET], overwrite=False) is True
    stored = store.get(H)
    assert stored is not None
    assert [v.index for v in stored] == [1, 100, 300]
    assert [v.type_key for v in stored] == ["url", "hs_admin", "hs_seckey"]
    assert [v.public_read for v in stored] == [True, True, False]
    decoded = [v.decode() for v in stored]
    assert decoded[0].data == URL.data
    assert decoded[1].data == ADMIN.data
    assert all(
        v.timestamp is not None and v.timestamp >= before.replace(microsecond=0) for v in decoded
    )
    assert json.loads(stored[0].json)["data"] == {"format": "string", "value": URL_TEXT}


def test_ascii_case_insensitive_keeps_original_case(store: SqlHandleStore) -> None:
    store.create(H, [URL], overwrite=False)
    assert store.get(parse_handle("88.101.5/sn-000123")) is not None
    assert store.list_handles("88.101.5") == ["88.101.5/SN-000123"]
    with pytest.raises(HandleError) as error:
        store.create(parse_handle("88.101.5/sn-000123"), [URL], overwrite=False)
    assert codes(error) is ResponseCode.HANDLE_ALREADY_EXISTS
    assert store.get(parse_handle("88.101.5/SN-000123Ä")) is None


def test_overwrite_replaces_the_whole_record(store: SqlHandleStore) -> None:
    store.create(H, [ADMIN, URL], overwrite=False)
    assert store.create(H, [HandleValue(2, "EMAIL", b"qa@plant.example")], overwrite=True) is False
    stored = store.get(H)
    assert stored is not None
    assert [v.index for v in stored] == [2]


def test_a_handle_with_no_values_exists(store: SqlHandleStore) -> None:
    store.create(H, [], overwrite=False)
    assert store.get(H) == []
    assert store.get(parse_handle("88.101.5/other")) is None


def test_add_values(store: SqlHandleStore) -> None:
    store.create(H, [URL], overwrite=False)
    assert store.add_values(H, [HandleValue(2, "EMAIL", b"a@b")], overwrite=False) is True
    with pytest.raises(HandleError) as error:
        store.add_values(H, [HandleValue(1, "URL", b"https://new")], overwrite=False)
    assert codes(error) is ResponseCode.VALUE_ALREADY_EXISTS
    assert store.add_values(H, [HandleValue(1, "URL", b"https://new")], overwrite=True) is False
    stored = store.get(H)
    assert stored is not None
    assert [(v.index, v.decode().data) for v in stored] == [(1, b"https://new"), (2, b"a@b")]
    with pytest.raises(HandleError) as missing:
        store.add_values(parse_handle("88/none"), [URL], overwrite=True)
    assert codes(missing) is ResponseCode.HANDLE_NOT_FOUND


def test_remove_values_is_all_or_nothing(store: SqlHandleStore) -> None:
    store.create(H, [ADMIN, URL, SECRET], overwrite=False)
    with pytest.raises(HandleError) as error:
        store.remove_values(H, [1, 7])
    assert codes(error) is ResponseCode.VALUES_NOT_FOUND
    stored = store.get(H)
    assert stored is not None
    assert len(stored) == 3
    store.remove_values(H, [1, 300])
    stored = store.get(H)
    assert stored is not None
    assert [v.index for v in stored] == [100]


def test_delete(store: SqlHandleStore) -> None:
    store.create(H, [URL], overwrite=False)
    store.delete(H)
    assert store.get(H) is None
    with pytest.raises(HandleError) as error:
        store.delete(H)
    assert codes(error) is ResponseCode.HANDLE_NOT_FOUND


def test_list_and_count_by_prefix(store: SqlHandleStore) -> None:
    for n in range(25):
        store.create(parse_handle(f"88.101.5/SN-{n:03d}"), [URL], overwrite=False)
    store.create(parse_handle("88.101.55/SN-000"), [URL], overwrite=False)  # another prefix
    store.create(parse_handle("88.101.5.1/SN-000"), [URL], overwrite=False)  # a derived one
    assert store.count_handles("88.101.5") == 25
    first = store.list_handles("88.101.5", 0, 10)
    assert first == [f"88.101.5/SN-{n:03d}" for n in range(10)]
    assert store.list_handles("88.101.5", 20, 10) == [f"88.101.5/SN-{n:03d}" for n in range(20, 25)]
    assert len(store.list_handles("88.101.5")) == 25


def test_concurrent_creates_of_one_handle_have_one_winner(store: SqlHandleStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        try:
            store.create(H, [URL], overwrite=False)
            outcomes.append("created")
        except HandleError as error:
            outcomes.append(error.code.name)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["HANDLE_ALREADY_EXISTS"] * 3 + ["created"]


def test_homed_prefixes(store: SqlHandleStore) -> None:
    store.home("88.101.5", None)
    store.home("88.101.5", None)  # idempotent
    store.home("88.101.6", None)
    assert [p.prefix for p in store.homed()] == ["88.101.5", "88.101.6"]
    store.unhome("88.101.5")
    assert [p.prefix for p in store.homed()] == ["88.101.6"]


def test_create_many_writes_a_batch_in_one_transaction(store: SqlHandleStore) -> None:
    existing = parse_handle("88.101.5/existing")
    store.create(existing, VALUES, overwrite=False)
    batch = [
        Creation(parse_handle("88.101.5/new-1"), VALUES, overwrite=False),
        Creation(existing, VALUES[:1], overwrite=False),
        Creation(parse_handle("88.101.5/EXISTING"), VALUES[:1], overwrite=True),
    ]
    with pytest.raises(ValueError, match="at most once"):
        store.create_many(batch)  # existing and EXISTING are one handle
    outcomes = store.create_many([batch[0], batch[1]])
    assert outcomes[0] is True
    assert isinstance(outcomes[1], HandleError)
    assert outcomes[1].code is ResponseCode.HANDLE_ALREADY_EXISTS
    assert store.create_many([batch[2]]) == [False]  # replaced
    replaced = store.get(existing)
    assert replaced is not None
    assert [v.index for v in replaced] == [VALUES[0].index]


async def test_the_batching_writer_groups_concurrent_creates(store: SqlHandleStore) -> None:
    writer = BatchingWriter(store)
    calls: list[int] = []
    original = store.create_many

    def counting(items: Sequence[Creation]) -> list[bool | HandleError]:
        calls.append(len(items))
        return original(items)

    store.create_many = counting  # type: ignore[method-assign]
    names = [parse_handle(f"88.101.5/unit-{n}") for n in range(40)]
    results = await asyncio.gather(
        *(writer.create(name, VALUES, overwrite=False) for name in names),
        writer.create(names[0], VALUES, overwrite=False),  # the same handle again: next batch
        return_exceptions=True,
    )
    assert results[:40] == [True] * 40
    assert isinstance(results[40], HandleError)
    assert sum(calls) == 41
    assert len(calls) < 41  # grouped: far fewer transactions than creates
    assert all(store.get(name) is not None for name in names)


def test_create_many_stamps_times_readable_as_utc(store: SqlHandleStore) -> None:
    from sqlalchemy import select

    from plantwire.ids.tables import handles

    first, second = parse_handle("88.101.5/stamped-1"), parse_handle("88.101.5/stamped-2")
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.create_many([Creation(first, VALUES, False), Creation(second, VALUES, False)])
    store.create_many([Creation(first, VALUES[:1], True)])  # replaces: touches updated_at
    after = datetime.now(UTC) + timedelta(seconds=1)
    query = select(handles.c.handle, handles.c.created_at, handles.c.updated_at).where(
        handles.c.handle.in_([str(first), str(second)])
    )
    with store.engine.connect() as connection:
        rows = {row[0]: (row[1], row[2]) for row in connection.execute(query)}
    assert set(rows) == {str(first), str(second)}
    for created, updated in rows.values():
        assert created.tzinfo is not None
        assert before <= created <= updated <= after
    assert rows[str(first)][1] > rows[str(first)][0]  # replaced later
    assert rows[str(second)][1] == rows[str(second)][0]


def test_prefix_records_are_kept_briefly_and_forgotten_on_write(store: SqlHandleStore) -> None:
    record = parse_handle("0.NA/88.101.5")
    store.create(record, [ADMIN], overwrite=False)
    assert [v.index for v in store.get(record) or []] == [100]
    # Written through this store: seen at once, whichever write it is.
    store.add_values(record, [URL], overwrite=False)
    assert [v.index for v in store.get(record) or []] == [1, 100]
    store.remove_values(record, [1])
    assert [v.index for v in store.get(record) or []] == [100]
    # Written by another server of the site (another store on the same database): kept
    # until RECORD_SECONDS pass, then read again.
    other = SqlHandleStore(store.engine)
    try:
        store.RECORD_SECONDS = 0.3
        assert store.get(record) is not None  # kept from now
        other.delete(record)
        assert store.get(record) is not None
        deadline = time.monotonic() + 5
        while store.get(record) is not None:
            assert time.monotonic() < deadline, "the record was never read again"
            time.sleep(0.05)
        # A missing record is kept too, and a create through this store forgets it.
        store.create(record, [ADMIN], overwrite=False)
        assert store.get(record) is not None
    finally:
        other.close()
    # Ordinary handles are always read afresh.
    store.create(H, VALUES, overwrite=False)
    other = SqlHandleStore(store.engine)
    try:
        other.delete(H)
        assert store.get(H) is None
    finally:
        other.close()

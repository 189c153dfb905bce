"""Benchmark: the identifier store's hot paths, on SQLite.

1. **Authoritative lookup**: ``SqlHandleStore.get`` of a random one of ``HANDLES`` handles (three
   values each), against the baseline of the same indexed read through a bare stdlib
   ``sqlite3`` connection: what the database alone costs. The ratio says how much the store's
   layer (SQLAlchemy Core, pooling, building ``StoredValue``s) adds; the REST fast path will
   aim at the baseline.
2. **Registration**: ``SqlHandleStore.create`` of a new handle (its own write transaction),
   against the baseline of a bare ``sqlite3`` transaction inserting the same rows.

The table is filled with a bulk insert first (set-up, not measured). Measurement and baseline
alternate in short blocks and the fastest block of each counts, as the machine is shared.
Run: ``.venv/bin/python bench/ids_store.py [HANDLES]`` (default 100,000).
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert

from plantwire.db import make_engine, migrate, writing
from plantwire.ids.handle_json import value_to_json
from plantwire.ids.model import AdminPermission, AdminRef, HandleValue
from plantwire.ids.names import match_key, parse_handle
from plantwire.ids.store import SqlHandleStore
from plantwire.ids.tables import handle_values, handles
from plantwire.security.tables import utcnow

PREFIX = "88.101.5"
BLOCK = 500
BLOCKS = 12
SQL_READ = (
    "SELECT idx, type_key, public_read, value_json FROM handle_values "
    "WHERE handle_key = ? ORDER BY idx"
)


def _values(n: int) -> list[HandleValue]:
    return [
        HandleValue(1, "URL", f"https://plant.example/units/SN-{n:09d}".encode()),
        HandleValue(2, "PRODUCT", b'{"type":"gearbox","line":"L3"}'),
        HandleValue(100, "HS_ADMIN", AdminRef(f"0.NA/{PREFIX}", 200, AdminPermission.all())),
    ]


def _fill(database: Path, count: int) -> None:
    engine = make_engine(f"sqlite:///{database}")
    migrate(engine)
    now = utcnow()
    with writing(engine) as connection:
        for start in range(0, count, 10_000):
            batch = range(start, min(count, start + 10_000))
            keys = [match_key(f"{PREFIX}/SN-{n:09d}") for n in batch]
            connection.execute(
                insert(handles),
                [
                    {
                        "handle_key": key,
                        "handle": f"{PREFIX}/SN-{n:09d}",
                        "prefix_key": PREFIX,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, key in zip(batch, keys, strict=True)
                ],
            )
            connection.execute(
                insert(handle_values),
                [
                    {
                        "handle_key": key,
                        "idx": value.index,
                        "type_key": match_key(value.type),
                        "public_read": True,
                        "value_json": json.dumps(value_to_json(value), separators=(",", ":")),
                    }
                    for n, key in zip(batch, keys, strict=True)
                    for value in _values(n)
                ],
            )
    engine.dispose()


def _best_rate(measure: Callable[[], None], blocks: int, per_block: int) -> float:
    best = float("inf")
    for _ in range(blocks):
        started = time.perf_counter()
        measure()
        best = min(best, time.perf_counter() - started)
    return per_block / best


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plantwire-bench-") as scratch:
        database = Path(scratch) / "plantwire.db"
        _fill(database, count)
        engine = make_engine(f"sqlite:///{database}")
        store = SqlHandleStore(engine)
        raw = sqlite3.connect(database, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        rng = random.Random(7)

        def lookups() -> None:
            for _ in range(BLOCK):
                handle = parse_handle(f"{PREFIX}/SN-{rng.randrange(count):09d}")
                found = store.get(handle)
                assert found is not None
                assert len(found) == 3

        def raw_lookups() -> None:
            for _ in range(BLOCK):
                key = match_key(f"{PREFIX}/SN-{rng.randrange(count):09d}")
                rows = raw.execute(SQL_READ, (key,)).fetchall()
                assert len(rows) == 3

        next_new = [count]

        def registrations() -> None:
            for _ in range(BLOCK // 5):
                n = next_new[0]
                next_new[0] += 1
                store.create(parse_handle(f"{PREFIX}/SN-{n:09d}"), _values(n), overwrite=False)

        def raw_registrations() -> None:
            now = utcnow().isoformat()
            for _ in range(BLOCK // 5):
                n = next_new[0]
                next_new[0] += 1
                key = match_key(f"{PREFIX}/SN-{n:09d}")
                raw.execute("BEGIN IMMEDIATE")
                raw.execute(
                    "INSERT INTO handles VALUES (?, ?, ?, ?, ?)",
                    (key, f"{PREFIX}/SN-{n:09d}", PREFIX, now, now),
                )
                raw.executemany(
                    "INSERT INTO handle_values VALUES (?, ?, ?, ?, ?)",
                    [
                        (key, v.index, match_key(v.type), 1, json.dumps(value_to_json(v)))
                        for v in _values(n)
                    ],
                )
                raw.execute("COMMIT")

        rates: dict[str, list[float]] = {k: [] for k in ("get", "raw_get", "put", "raw_put")}
        for _ in range(BLOCKS):  # alternate, so both see the same machine
            rates["get"].append(_best_rate(lookups, 1, BLOCK))
            rates["raw_get"].append(_best_rate(raw_lookups, 1, BLOCK))
            rates["put"].append(_best_rate(registrations, 1, BLOCK // 5))
            rates["raw_put"].append(_best_rate(raw_registrations, 1, BLOCK // 5))
        raw.close()
        store.close()
        engine.dispose()
    best = {name: max(values) for name, values in rates.items()}
    print(f"Identifier store on SQLite, {count:,} handles of 3 values, best of {BLOCKS} blocks:")
    print(f"  baseline: bare sqlite3 indexed read      {best['raw_get']:10,.0f} /s")
    print(f"  SqlHandleStore.get                       {best['get']:10,.0f} /s")
    print(f"  ratio store / baseline                   {best['get'] / best['raw_get']:10.2f}")
    print(f"  baseline: bare sqlite3 insert + commit   {best['raw_put']:10,.0f} /s")
    print(f"  SqlHandleStore.create                    {best['put']:10,.0f} /s")
    print(f"  ratio store / baseline                   {best['put'] / best['raw_put']:10.2f}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

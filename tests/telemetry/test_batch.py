"""PointBatch: every value kind survives the trip into Arrow columns and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.telemetry.store.batch import (
    POINT_SCHEMA,
    VALUE_COLUMNS,
    PointBatch,
    value_from_columns,
)
from plantwire.telemetry.store.model import Quality, Value, ValueKind, from_micros, to_micros

MOMENT = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)

SAMPLES: list[tuple[Value, ValueKind]] = [
    (21.5, ValueKind.FLOAT),
    (-(2**63), ValueKind.INT),
    (2**63 - 1, ValueKind.INT),
    (True, ValueKind.BOOL),
    (False, ValueKind.BOOL),
    ("läuft", ValueKind.STRING),
    (b"\x00\xffraw", ValueKind.BYTES),
    (MOMENT, ValueKind.DATETIME),
    ([1.5, -2.0], ValueKind.FLOAT_ARRAY),
    ([], ValueKind.FLOAT_ARRAY),
    ([1, 2, 3], ValueKind.INT_ARRAY),
    ([True, False], ValueKind.BOOL_ARRAY),
    (["a", "b"], ValueKind.STRING_ARRAY),
    ([MOMENT, from_micros(0)], ValueKind.DATETIME_ARRAY),
]


def _round_trip(batch: PointBatch) -> list[tuple[Value, ValueKind, int]]:
    table = batch.to_arrow(list(range(1, len(batch.keys) + 1)))
    assert table.schema == POINT_SCHEMA
    return [
        (
            value_from_columns(row["kind"], [row[name] for name in VALUE_COLUMNS]),
            ValueKind(row["kind"]),
            row["quality"],
        )
        for row in table.to_pylist()
    ]


def test_a_sample_is_the_same_as_its_points_one_by_one() -> None:
    """``add_sample`` (ingest's fast path) and ``add`` build the same table, mixing the two
    and sharing series between them."""
    values: dict[str, Value] = {f"m{n}": value for n, (value, _) in enumerate(SAMPLES)}
    one_by_one, sampled = PointBatch(), PointBatch()
    for ts in (1_000, 2_000):
        for device in ("d1", "d2"):
            for metric, value in values.items():
                one_by_one.add("t", device, metric, ts, value, Quality.UNCERTAIN)
    sampled.add("t", "d1", "m0", 1_000, values["m0"], Quality.UNCERTAIN)
    sampled.add_sample("t", "d1", 1_000, dict(list(values.items())[1:]), Quality.UNCERTAIN)
    sampled.add_sample("t", "d2", 1_000, values, Quality.UNCERTAIN)
    sampled.add_sample("t", "d1", 2_000, values, Quality.UNCERTAIN)
    sampled.add_sample("t", "d2", 2_000, values, Quality.UNCERTAIN)
    assert sampled.keys == one_by_one.keys
    ids = list(range(1, len(sampled.keys) + 1))
    assert sampled.to_arrow(ids).equals(one_by_one.to_arrow(ids))


def test_values_as_two_sequences_are_the_same_as_a_sample() -> None:
    """``add_values`` (the Sparkplug quick path's) builds what ``add_sample`` builds, floats
    told or not, series shared with ``add``."""
    values: dict[str, Value] = {f"m{n}": value for n, (value, _) in enumerate(SAMPLES)}
    floats = {f"f{n}": n * 0.5 for n in range(5)}
    sampled, listed = PointBatch(), PointBatch()
    for batch in (sampled, listed):
        batch.add("t", "d1", "m1", 500, values["m1"])
    sampled.add_sample("t", "d1", 1_000, values, Quality.BAD)
    sampled.add_sample("t", "d2", 1_000, floats)
    sampled.add_sample("t", "d1", 2_000, floats)
    listed.add_values("t", "d1", 1_000, list(values), list(values.values()), quality=Quality.BAD)
    listed.add_values("t", "d2", 1_000, list(floats), list(floats.values()), floats=True)
    listed.add_values("t", "d1", 2_000, list(floats), list(floats.values()), floats=True)
    assert listed.keys == sampled.keys
    ids = list(range(1, len(sampled.keys) + 1))
    assert listed.to_arrow(ids).equals(sampled.to_arrow(ids))
    with pytest.raises(ValueError, match="2 names but 1 values"):
        listed.add_values("t", "d1", 3_000, ["a", "b"], [1.0], floats=True)


def test_every_kind_round_trips() -> None:
    batch = PointBatch()
    for n, (value, _) in enumerate(SAMPLES):
        batch.add("t", "d", f"m{n}", 1_000 + n, value, Quality(n % 3))
    back = _round_trip(batch)
    for n, ((value, kind), (got, got_kind, quality)) in enumerate(zip(SAMPLES, back, strict=True)):
        assert got == value
        assert type(got) is type(value)
        assert got_kind == kind
        assert quality == n % 3


def test_series_are_numbered_in_order_of_appearance() -> None:
    batch = PointBatch()
    batch.add("t", "d", "b", 1, 1.0)
    batch.add("t", "d", "a", 2, 1.0)
    batch.add("t", "d", "b", 3, 1.0)
    batch.add_numbers("u", "d", "c", [4, 5], [1.0, 2.0])
    assert batch.keys == [("t", "d", "b"), ("t", "d", "a"), ("u", "d", "c")]
    table = batch.to_arrow([10, 20, 30])
    assert table.column("series").to_pylist() == [10, 20, 10, 30, 30]
    assert len(batch) == 5


def test_datetime_timestamps_and_naive_datetimes_are_utc() -> None:
    batch = PointBatch()
    batch.add("t", "d", "m", MOMENT, MOMENT.replace(tzinfo=None))
    row = batch.to_arrow([1]).to_pylist()[0]
    assert row["v_int"] == to_micros(MOMENT)
    assert row["ts"] == MOMENT.replace(tzinfo=None)


@pytest.mark.parametrize("value", [{"a": 1}, [1, "a"], None, [[1.0]]])
def test_values_of_other_types_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="value"):
        PointBatch().add("t", "d", "m", 1, value)


def test_add_numbers_needs_as_many_values_as_timestamps() -> None:
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        PointBatch().add_numbers("t", "d", "m", [1, 2], [1.0])


def test_an_empty_batch_is_an_empty_table() -> None:
    assert PointBatch().to_arrow([]).num_rows == 0


def test_an_unknown_stored_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown value kind 99"):
        value_from_columns(99, [None] * len(VALUE_COLUMNS))


scalars = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(),
    st.binary(),
    st.datetimes(timezones=st.just(UTC)),
)
arrays = st.one_of(
    st.lists(st.floats(allow_nan=False), min_size=1),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1),
    st.lists(st.booleans(), min_size=1),
    st.lists(st.text()),
)


@given(st.lists(st.one_of(scalars, arrays), max_size=30))
def test_any_values_round_trip(values: list[Value]) -> None:
    batch = PointBatch()
    for n, value in enumerate(values):
        batch.add("t", "d", f"m{n % 3}", n, value)
    back = [got for got, _, _ in _round_trip(batch)]
    assert back == values
    assert [type(got) for got in back] == [type(value) for value in values]

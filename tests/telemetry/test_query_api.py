"""The query API: latest values, raw pages, aggregates, exports, over devices created through
the API and points put straight into the platform's store (ingest comes later). Sealed and
hot points alike; every aggregate against a plain Python computation; tenants apart."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from plantwire.telemetry import query
from plantwire.telemetry.store import DuckDBStore, PointBatch, Quality, Value
from tests.conftest import Seed, seed_platform
from tests.security.helpers import PROBLEM_JSON, media_type, platform_of
from tests.telemetry.conftest import seconds_of

DAY = datetime(2026, 11, 22, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Plant:
    client: TestClient
    seed: Seed
    store: DuckDBStore
    tenant: str  # tenant a's id
    press: str  # a device of tenant a
    other: str  # a device of tenant b

    def get(self, path: str, role: str = "viewer", **params: Any) -> Response:
        headers = self.seed.tenants["a"].headers[role]
        return self.client.get(
            f"/api/v1/devices/{self.press}/{path}", params=params, headers=headers
        )


def _device(client: TestClient, headers: dict[str, str], name: str) -> str:
    made = client.post("/api/v1/devices", json={"name": name}, headers=headers)
    assert made.status_code == 201, made.text
    device_id: str = made.json()["id"]
    return device_id


@pytest.fixture
def plant(client: TestClient) -> Plant:
    seed = seed_platform(client)
    store = platform_of(client).store
    assert isinstance(store, DuckDBStore)
    press = _device(client, seed.tenants["a"].headers["engineer"], "press-1")
    other = _device(client, seed.tenants["b"].headers["engineer"], "press-1")
    return Plant(client, seed, store, seed.tenants["a"].id, press, other)


def _strict_json(response: Response) -> Any:
    """The body parsed as JSON proper: NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in a JSON answer")

    assert response.headers["content-type"] == "application/json"
    return json.loads(response.text, parse_constant=refuse)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms(moment: datetime) -> str:
    return str((moment - EPOCH) // timedelta(milliseconds=1))


def _problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert media_type(response) == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    return body


# --- latest --------------------------------------------------------------------------------

MOMENT = datetime(2026, 11, 22, 8, 0, 0, 500_000, tzinfo=UTC)

#: metric -> (value written, its JSON form)
VALUES: dict[str, tuple[Value, Any]] = {
    "float": (21.5, 21.5),
    "nan": (float("nan"), None),
    "inf": (float("-inf"), None),
    "int": (2**63 - 1, 2**63 - 1),
    "bool": (True, True),
    "string": ("läuft", "läuft"),
    "bytes": (b"\x00\xffraw", "AP9yYXc="),
    "datetime": (MOMENT, "2026-11-22T08:00:00.500000Z"),
    "floats": ([1.5, float("nan")], [1.5, None]),
    "ints": ([1, 2, 3], [1, 2, 3]),
    "bools": ([True, False], [True, False]),
    "strings": (["a", "b"], ["a", "b"]),
    "times": ([EPOCH], ["1970-01-01T00:00:00.000000Z"]),
}


def _every_kind(plant: Plant, at: datetime) -> None:
    batch = PointBatch()
    for n, (metric, (value, _)) in enumerate(VALUES.items()):
        batch.add(
            plant.tenant, plant.press, metric, at + timedelta(seconds=n), value, Quality(n % 3)
        )
    plant.store.append(batch)


@pytest.mark.parametrize("sealed", [False, True], ids=["hot", "sealed"])
def test_latest_answers_every_kind_of_value_in_json(plant: Plant, sealed: bool) -> None:
    older = PointBatch()
    older.add(plant.tenant, plant.press, "float", DAY - timedelta(days=1), 1.0)
    plant.store.append(older)
    _every_kind(plant, DAY)
    if sealed:
        plant.store.seal(DAY + timedelta(days=1))
    answer = _strict_json(plant.get("latest"))
    assert answer == {
        metric: {
            "ts": _iso(DAY + timedelta(seconds=n)),
            "value": shown,
            "quality": ("good", "uncertain", "bad")[n % 3],
        }
        for n, (metric, (_, shown)) in enumerate(VALUES.items())
    }
    # a device without points, and the other tenant's points under the same device name
    assert _strict_json(plant.get("latest", role="tenant-admin")) == answer
    quiet = _device(plant.client, plant.seed.tenants["a"].headers["engineer"], "quiet")
    empty = plant.client.get(
        f"/api/v1/devices/{quiet}/latest", headers=plant.seed.tenants["a"].headers["viewer"]
    )
    assert _strict_json(empty) == {}


# --- raw points ----------------------------------------------------------------------------


def _pages(plant: Plant, **params: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        asked = dict(params) if cursor is None else {**params, "cursor": cursor}
        page = _strict_json(plant.get("telemetry", **asked))
        yield page
        cursor = page["next"]
        if cursor is None:
            return


def test_raw_points_page_across_boundaries_days_and_sealed_files(plant: Plant) -> None:
    """2,500 points over two days, the first day sealed; points 999 to 1,001 share one
    timestamp, so the first page ends between points of the same time."""
    batch = PointBatch()
    times = [DAY + timedelta(hours=23, seconds=n) for n in range(2500)]
    times[1000] = times[1001] = times[999]
    for n, moment in enumerate(times):
        batch.add(plant.tenant, plant.press, "temp", moment, float(n))
    plant.store.append(batch)
    plant.store.seal(DAY + timedelta(days=1))  # the first 3,600 s: 3,600 > 2,500 of them
    assert plant.store.disk_usage().sealed_files == 1
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(days=2)), "metric": "temp"}
    pages = list(_pages(plant, **window, limit=1000))
    assert [len(page["points"]) for page in pages] == [1000, 1000, 500]
    assert {page["metric"] for page in pages} == {"temp"}
    points = [point for page in pages for point in page["points"]]
    assert points == [[_iso(moment), float(n)] for n, moment in enumerate(times)]
    assert pages[0]["points"][-1][0] == pages[1]["points"][0][0]  # the shared timestamp
    # the default page is 1,000 points
    assert len(_strict_json(plant.get("telemetry", **window))["points"]) == 1000
    # one page holding everything
    whole = _strict_json(plant.get("telemetry", **window, limit=10_000))
    assert whole["next"] is None
    assert whole["points"] == points


def test_raw_points_of_every_kind_and_unknown_metrics(plant: Plant) -> None:
    _every_kind(plant, DAY)
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(hours=1))}
    for n, (metric, (_, shown)) in enumerate(VALUES.items()):
        page = _strict_json(plant.get("telemetry", metric=metric, **window))
        assert page == {
            "metric": metric,
            "points": [[_iso(DAY + timedelta(seconds=n)), shown]],
            "next": None,
        }
    nothing = _strict_json(plant.get("telemetry", metric="no-such-metric", **window))
    assert nothing == {"metric": "no-such-metric", "points": [], "next": None}


def test_times_are_iso_with_a_zone_or_epoch_milliseconds(plant: Plant) -> None:
    now = datetime.now(UTC)
    batch = PointBatch()
    for minutes in (150, 90, 30, 1):
        batch.add(plant.tenant, plant.press, "temp", now - timedelta(minutes=minutes), minutes)
    plant.store.append(batch)
    # the default range is the last hour
    default = _strict_json(plant.get("telemetry", metric="temp"))
    assert [value for _, value in default["points"]] == [30, 1]
    start, end = now - timedelta(minutes=100), now - timedelta(minutes=10)
    expected = [90, 30]
    forms = [
        {"start": _iso(start), "end": _iso(end)},
        {"start": _ms(start), "end": _ms(end)},
        {
            "start": start.astimezone(timezone(timedelta(hours=8))).isoformat(),
            "end": end.astimezone(timezone(timedelta(hours=-5))).isoformat(),
        },
    ]
    for form in forms:
        page = _strict_json(plant.get("telemetry", metric="temp", **form))
        assert [value for _, value in page["points"]] == expected, form
    # only a start: up to now; only an end: the hour before it
    since = _strict_json(plant.get("telemetry", metric="temp", start=_ms(start)))
    assert [value for _, value in since["points"]] == [90, 30, 1]
    until = _strict_json(plant.get("telemetry", metric="temp", end=_ms(end)))
    assert [value for _, value in until["points"]] == [30]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start": "2026-11-22T08:00:00"}, "needs a zone"),
        ({"start": "2026-13-22T08:00:00Z"}, "neither ISO 8601"),
        ({"start": "999999999999999"}, "between 1970"),
        ({"start": "2026-11-22T08:00:00Z", "end": "2026-11-22T08:00:00Z"}, "before 'end'"),
        ({"start": "1764496800000", "end": "1764496799999"}, "before 'end'"),
        ({"agg": "avg"}, "'agg' goes with 'interval'"),
        ({"interval": "1m", "limit": 10}, "aggregates have no pages"),
        ({"interval": "1m", "cursor": "0:0"}, "aggregates have no pages"),
        ({"cursor": "9999999999999999999:0"}, "not a cursor"),
        ({"interval": "0m"}, None),
        ({"interval": "1w"}, None),
        ({"agg": "median", "interval": "1m"}, None),
        ({"limit": 10_001}, None),
        ({"cursor": "yesterday"}, None),
        ({"start": "yesterday"}, None),
    ],
)
def test_unacceptable_queries_are_422_problems(
    plant: Plant, params: dict[str, Any], words: str | None
) -> None:
    body = _problem(plant.get("telemetry", metric="temp", **params), 422)
    assert body["type"] == "urn:plantwire:problem:validation"
    if words is not None:
        assert words in body["detail"]


# --- aggregates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    offset: int  # seconds after DAY
    value: float | int | bool
    quality: Quality


def _samples() -> list[Sample]:
    chance = random.Random(4)
    offsets = chance.sample(range(3 * 3600), 2000)
    return [
        Sample(
            offset,
            chance.choice(
                [chance.uniform(-1e3, 1e3), chance.randint(-1000, 1000), chance.random() < 0.5]
            ),
            chance.choice([Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN, Quality.BAD]),
        )
        for offset in offsets
    ]


def _expected(samples: list[Sample], start: int, end: int, width: int, agg: str) -> list[Any]:
    """The aggregate per interval, computed plainly: bad points left out, booleans as 0/1."""
    groups: dict[int, list[tuple[int, float]]] = {}
    for sample in samples:
        if start <= sample.offset < end and sample.quality != Quality.BAD:
            bucket = sample.offset // width * width
            groups.setdefault(bucket, []).append((sample.offset, float(sample.value)))
    answers = []
    for bucket, points in sorted(groups.items()):
        values = [value for _, value in sorted(points)]
        answers.append([_iso(DAY + timedelta(seconds=bucket)), _plainly(agg, values)])
    return answers


def _plainly(agg: str, values: list[float]) -> float | int:
    """One aggregate of a bucket's values, in time order."""
    if agg == "count":
        return len(values)
    if agg == "sum":
        return math.fsum(values)
    if agg == "avg":
        return math.fsum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    return values[0] if agg == "first" else values[-1]


def _same(got: list[list[Any]], expected: list[list[Any]]) -> None:
    assert [point[0] for point in got] == [point[0] for point in expected]
    for (_, mine), (_, theirs) in zip(got, expected, strict=True):
        assert math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-9), (mine, theirs)


@pytest.mark.parametrize("sealed", [False, True], ids=["hot", "sealed"])
def test_every_aggregate_equals_a_plain_computation(plant: Plant, sealed: bool) -> None:
    samples = _samples()
    batch = PointBatch()
    for sample in samples:
        moment = DAY + timedelta(seconds=sample.offset)
        batch.add(plant.tenant, plant.press, "temp", moment, sample.value, sample.quality)
    plant.store.append(batch)
    if sealed:
        plant.store.seal(DAY + timedelta(hours=2))  # two hours sealed, one hot
    ranges = [(0, 3 * 3600), (60, 7200), (1234, 9876)]  # aligned (rollups) and not
    for interval, width in (("10s", 10), ("1m", 60), ("5m", 300), ("1h", 3600)):
        for start, end in ranges:
            window = {
                "start": _iso(DAY + timedelta(seconds=start)),
                "end": _ms(DAY + timedelta(seconds=end)),
            }
            for agg in query.AGGREGATES:
                answer = _strict_json(
                    plant.get("telemetry", metric="temp", interval=interval, agg=agg, **window)
                )
                assert (answer["metric"], answer["interval"], answer["agg"]) == (
                    "temp",
                    interval,
                    agg,
                )
                _same(answer["points"], _expected(samples, start, end, width, agg))
    # several aggregates at once, in the order asked; avg by default
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(hours=3))}
    several = _strict_json(
        plant.get("telemetry", metric="temp", interval="1h", agg="max,count,min", **window)
    )
    counts = _expected(samples, 0, 3 * 3600, 3600, "count")
    assert [point[2] for point in several["points"]] == [count for _, count in counts]
    assert all(type(point[2]) is int for point in several["points"])
    highs = _expected(samples, 0, 3 * 3600, 3600, "max")
    assert [point[1] for point in several["points"]] == [high for _, high in highs]
    default = _strict_json(plant.get("telemetry", metric="temp", interval="1h", **window))
    assert default["agg"] == "avg"
    _same(default["points"], _expected(samples, 0, 3 * 3600, 3600, "avg"))


def test_a_nan_makes_its_interval_null_not_invalid_json(plant: Plant) -> None:
    batch = PointBatch()
    batch.add(plant.tenant, plant.press, "temp", DAY, 1.0)
    batch.add(plant.tenant, plant.press, "temp", DAY + timedelta(seconds=1), float("nan"))
    batch.add(plant.tenant, plant.press, "temp", DAY + timedelta(minutes=1), 2.0)
    plant.store.append(batch)
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(minutes=2))}
    answer = _strict_json(
        plant.get("telemetry", metric="temp", interval="1m", agg="avg,count,first", **window)
    )
    assert answer["points"] == [
        [_iso(DAY), None, 2, 1.0],
        [_iso(DAY + timedelta(minutes=1)), 2.0, 1, 2.0],
    ]
    raw = _strict_json(plant.get("telemetry", metric="temp", **window))
    assert [value for _, value in raw["points"]] == [1.0, None, 2.0]


def test_ranges_of_too_many_intervals_are_refused(plant: Plant) -> None:
    start = DAY
    at_most = {"start": _iso(start), "end": _iso(start + timedelta(seconds=10_000))}
    assert plant.get("telemetry", metric="temp", interval="1s", **at_most).status_code == 200
    # an unaligned range touches one interval more
    shifted = {
        "start": _iso(start + timedelta(milliseconds=500)),
        "end": _iso(start + timedelta(seconds=10_000, milliseconds=500)),
    }
    body = _problem(plant.get("telemetry", metric="temp", interval="1s", **shifted), 422)
    assert "10,001 intervals of 1s; at most 10,000" in body["detail"]
    year = {"start": _iso(start - timedelta(days=365)), "end": _iso(start)}
    body = _problem(plant.get("telemetry", metric="temp", interval="1m", **year), 422)
    assert "525,600 intervals of 1m" in body["detail"]
    assert plant.get("telemetry", metric="temp", interval="1h", **year).status_code == 200


# --- exports -------------------------------------------------------------------------------

#: metric -> the value's text in CSV
CSV_TEXT = {
    "float": "21.5",
    "nan": "nan",
    "inf": "-inf",
    "int": "9223372036854775807",
    "bool": "true",
    "string": "läuft",
    "bytes": "AP9yYXc=",
    "datetime": "2026-11-22T08:00:00.500000Z",
    "floats": "[1.5, null]",
    "ints": "[1, 2, 3]",
    "bools": "[true, false]",
    "strings": '["a", "b"]',
    "times": '["1970-01-01T00:00:00.000000Z"]',
}


@pytest.mark.parametrize("sealed", [False, True], ids=["hot", "sealed"])
def test_export_as_csv_and_parquet(plant: Plant, sealed: bool) -> None:
    _every_kind(plant, DAY)
    plant.store.append(seconds_of(plant.tenant, plant.press, "temp", DAY, 300))
    plant.store.append(seconds_of(plant.tenant, plant.other, "temp", DAY, 5))  # another device
    plant.store.append(seconds_of(plant.seed.tenants["b"].id, plant.press, "temp", DAY, 7))
    if sealed:
        plant.store.seal(DAY + timedelta(days=1))
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(hours=1))}

    answer = plant.get("export", **window)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    assert disposition == (
        f'attachment; filename="{plant.press}_20261122T000000Z_20261122T010000Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == ["device", "metric", "ts", "quality", "kind", "value"]
    assert {row["device"] for row in rows} == {plant.press}
    assert len(rows) == len(VALUES) + 300
    by_metric = {row["metric"]: row for row in rows if row["metric"] != "temp"}
    for n, metric in enumerate(VALUES):
        row = by_metric[metric]
        assert row["ts"] == _iso(DAY + timedelta(seconds=n))
        assert row["quality"] == ("good", "uncertain", "bad")[n % 3]
        assert row["value"] == CSV_TEXT[metric], metric
    temps = [row for row in rows if row["metric"] == "temp"]
    assert [float(row["value"]) for row in temps] == [float(n) for n in range(300)]
    assert [row["kind"] for row in temps] == ["float"] * 300

    parquet = plant.get("export", format="parquet", **window)
    assert parquet.status_code == 200, parquet.text
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert parquet.headers["content-disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(parquet.content))
    expected = plant.store.export(plant.tenant, DAY, DAY + timedelta(hours=1), plant.press)
    assert table.column_names == expected.column_names
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert _comparable(table.to_pylist()) == _comparable(expected.to_pylist())

    only = plant.get("export", metric="temp", format="parquet", **window)
    assert pq.read_table(io.BytesIO(only.content)).num_rows == 300
    nothing = plant.get("export", metric="none", **window)
    assert nothing.text.splitlines() == ['"device","metric","ts","quality","kind","value"']


def _comparable(value: Any) -> Any:
    """Rows with NaN written as a string, so that equal rows compare equal."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def test_exports_are_bounded(plant: Plant, monkeypatch: pytest.MonkeyPatch) -> None:
    plant.store.append(seconds_of(plant.tenant, plant.press, "temp", DAY, 300))
    month = {"start": _iso(DAY - timedelta(days=31)), "end": _iso(DAY)}
    assert plant.get("export", **month).status_code == 200
    longer = {"start": _iso(DAY - timedelta(days=31)), "end": _iso(DAY + timedelta(seconds=1))}
    body = _problem(plant.get("export", **longer), 422)
    assert "at most 31 days" in body["detail"]
    monkeypatch.setattr(query, "EXPORT_MAX_ROWS", 299)
    window = {"start": _iso(DAY), "end": _iso(DAY + timedelta(hours=1))}
    body = _problem(plant.get("export", **window), 422)
    assert "more than 299 points" in body["detail"]
    monkeypatch.setattr(query, "EXPORT_MAX_ROWS", 300)
    assert plant.get("export", format="parquet", **window).status_code == 200
    _problem(plant.get("export", format="xlsx", **window), 422)


# --- who may ask ---------------------------------------------------------------------------

PATHS = ("latest", "telemetry?metric=temp", "export")


def test_another_tenants_device_answers_404_like_a_missing_one(plant: Plant) -> None:
    plant.store.append(seconds_of(plant.seed.tenants["b"].id, plant.other, "temp", DAY, 5))
    missing = "00000000-0000-4000-8000-000000000000"
    for role in ("tenant-admin", "engineer", "operator", "viewer"):
        headers = plant.seed.tenants["a"].headers[role]
        for path in PATHS:
            theirs = plant.client.get(f"/api/v1/devices/{plant.other}/{path}", headers=headers)
            nobody = plant.client.get(f"/api/v1/devices/{missing}/{path}", headers=headers)
            body, absent = _problem(theirs, 404), _problem(nobody, 404)
            assert body["detail"] == absent["detail"].replace(missing, plant.other)
            assert plant.seed.tenants["b"].id not in theirs.text
    # tenant b and the platform admin do see them
    for headers in (plant.seed.tenants["b"].headers["viewer"], plant.seed.admin):
        answer = plant.client.get(f"/api/v1/devices/{plant.other}/latest", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["temp"]["value"] == 4.0


def test_every_role_may_read_and_nobody_anonymous(plant: Plant) -> None:
    plant.store.append(seconds_of(plant.tenant, plant.press, "temp", datetime.now(UTC), 1))
    for role in ("tenant-admin", "engineer", "operator", "viewer"):
        for path in PATHS:
            answer = plant.client.get(
                f"/api/v1/devices/{plant.press}/{path}",
                headers=plant.seed.tenants["a"].headers[role],
            )
            assert answer.status_code == 200, (role, path, answer.text)
    plant.client.cookies.clear()
    for path in PATHS:
        anonymous = plant.client.get(f"/api/v1/devices/{plant.press}/{path}")
        body = _problem(anonymous, 401)
        assert body["type"] == "urn:plantwire:problem:unauthenticated"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        # bad parameters do not tell an anonymous caller anything either
        bad = plant.client.get(f"/api/v1/devices/{plant.press}/{path}?start=garbage")
        assert bad.status_code in (401, 422)

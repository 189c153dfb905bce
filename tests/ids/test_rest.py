"""GET /api/handles/{handle}: the Handle.net JSON shape, filters and response codes, served
from a real store on SQLite (inline reads) and PostgreSQL (reads in a worker thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plantwire.ids.handle_auth import SecretKeys
from plantwire.ids.model import AdminPermission, AdminRef, HandleValue, ValuePermissions
from plantwire.ids.names import parse_handle
from plantwire.ids.rest import HandleNode
from plantwire.ids.store import SqlHandleStore
from plantwire.security.hashing import PasswordHashing

UNIT = "88.101.5/SN-000123"
VALUES = [
    HandleValue(1, "URL", b"https://plant.example/units/SN-000123"),
    HandleValue(2, "URL.mobile", b"https://m.plant.example/u/123"),
    HandleValue(3, "EMAIL", b"qa@plant.example"),
    HandleValue(100, "HS_ADMIN", AdminRef("0.NA/88.101.5", 200, AdminPermission.all())),
    HandleValue(
        300, "HS_SECKEY", b"hashed", permissions=ValuePermissions(True, True, False, False)
    ),
]


@pytest.fixture
def client(store: SqlHandleStore) -> Iterator[TestClient]:
    store.home("88.101.5", None)
    store.create(parse_handle(UNIT), VALUES, overwrite=False)
    store.create(parse_handle("0.NA/88.101.5"), VALUES[3:4], overwrite=False)
    store.create(parse_handle("88.101.5/no-values"), [], overwrite=False)
    api = HandleNode(store, SecretKeys(PasswordHashing(1, 8)))
    with TestClient(api) as test_client:
        yield test_client


def test_resolution_answers_in_the_handle_net_shape(client: TestClient) -> None:
    response = client.get(f"/api/handles/{UNIT}")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert list(body) == ["responseCode", "handle", "values"]
    assert body["responseCode"] == 1
    assert body["handle"] == UNIT
    assert [v["index"] for v in body["values"]] == [1, 2, 3, 100]  # the secret key is not public
    url = body["values"][0]
    assert url["type"] == "URL"
    assert url["data"] == {"format": "string", "value": "https://plant.example/units/SN-000123"}
    assert url["ttl"] == 86400
    assert url["timestamp"].endswith("Z")  # pyhandle needs a timestamp on every value
    assert body["values"][3]["data"]["format"] == "admin"


def test_the_handle_is_echoed_as_asked(client: TestClient) -> None:
    body = client.get("/api/handles/88.101.5/sn-000123").json()
    assert body["responseCode"] == 1
    assert body["handle"] == "88.101.5/sn-000123"


@pytest.mark.parametrize(
    ("query", "indexes"),
    [
        ("index=1", [1]),
        ("index=1&index=3", [1, 3]),
        ("type=URL", [1]),
        ("type=URL.", [1, 2]),
        ("type=email", [3]),
        ("index=100&type=EMAIL", [3, 100]),
        ("index=300", []),
        ("index=7", []),
    ],
)
def test_index_and_type_filters(client: TestClient, query: str, indexes: list[int]) -> None:
    response = client.get(f"/api/handles/{UNIT}?{query}")
    body = response.json()
    assert response.status_code == 200
    assert [v["index"] for v in body["values"]] == indexes
    assert body["responseCode"] == (1 if indexes else 200)


def test_response_codes(client: TestClient) -> None:
    missing = client.get("/api/handles/88.101.5/nothing")
    assert (missing.status_code, missing.json()) == (
        404,
        {"responseCode": 100, "handle": "88.101.5/nothing"},
    )
    elsewhere = client.get("/api/handles/88.101.6/x")
    assert elsewhere.status_code == 400
    assert elsewhere.json()["responseCode"] == 301
    invalid = client.get("/api/handles/88..5/x")
    assert invalid.status_code == 400
    assert invalid.json()["responseCode"] == 102
    bad_escape = client.get("/api/handles/88.101.5/%ZZ")
    assert (bad_escape.status_code, bad_escape.json()["responseCode"]) == (400, 102)
    unknown = client.get("/api/elsewhere")
    assert (unknown.status_code, unknown.json()["responseCode"]) == (404, 4)
    empty = client.get("/api/handles/")
    assert (empty.status_code, empty.json()["responseCode"]) == (400, 102)
    no_values = client.get("/api/handles/88.101.5/no-values")
    assert (no_values.status_code, no_values.json()["responseCode"]) == (200, 200)
    post = client.post(f"/api/handles/{UNIT}", json=[])
    assert (post.status_code, post.json()["responseCode"], post.headers["allow"]) == (
        405,
        4,
        "GET, HEAD, PUT, DELETE",
    )


def test_a_prefix_without_slash_names_its_record(client: TestClient) -> None:
    body = client.get("/api/handles/88.101.5").json()
    assert body["handle"] == "0.NA/88.101.5"
    assert body["values"][0]["type"] == "HS_ADMIN"


def test_percent_encoded_slash_and_pretty(client: TestClient) -> None:
    response = client.get("/api/handles/88.101.5%2FSN-000123?pretty")
    assert response.json()["handle"] == UNIT
    assert "\n  " in response.text


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.text(max_size=60))
def test_any_path_gets_a_handle_answer(client: TestClient, raw: str) -> None:
    from urllib.parse import quote

    # HTTP clients resolve '.' and '..' segments before sending (RFC 3986 §5.2.4)
    assume(not any(segment in (".", "..") for segment in raw.split("/")))
    response = client.get("/api/handles/" + quote(raw, safe="/"))
    assert response.status_code in (200, 400, 404)
    assert isinstance(response.json()["responseCode"], int)

"""The demo's part records and their registration, without servers (the whole demo runs in
tests/test_demo.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx

from plantwire.demo.traceability import PartRegistrar, part_values
from plantwire.ids.handle_json import value_from_json
from plantwire.sim.plant import PartRecord, Quality

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _part(serial: str = "261130080000-PRS1-0000001") -> PartRecord:
    return PartRecord(
        serial=serial,
        product_type="PW-BRACKET-3",
        line="press-line",
        machine="press-1",
        started_at=START,
        finished_at=START + timedelta(seconds=2),
        quality=Quality.SCRAP,
    )


def test_part_values_are_a_valid_handle_record() -> None:
    values = part_values("88.101.5", _part(), "http://127.0.0.1:8080/")
    for value in values:
        value_from_json(value)  # each one a well-formed Handle.net JSON value
    by_type = {v["type"]: v["data"]["value"] for v in values}
    assert by_type["URL"] == ("http://127.0.0.1:8080/products/88.101.5/261130080000-PRS1-0000001")
    assert by_type["PRODUCT_TYPE"] == "PW-BRACKET-3"
    assert by_type["LINE"] == "press-line"
    assert by_type["MACHINE"] == "press-1"
    assert by_type["PRODUCTION_START"] == "2026-11-30T08:00:00Z"
    assert by_type["PRODUCTION_END"] == "2026-11-30T08:00:02Z"
    assert by_type["QUALITY"] == "scrap"
    assert by_type["HS_ADMIN"]["handle"] == "0.NA/88.101.5"
    assert len({v["index"] for v in values}) == len(values)


async def test_registrar_puts_as_the_prefix_admin_and_counts_what_fails() -> None:
    seen: list[httpx.Request] = []
    answers = iter(
        [
            httpx.Response(201, json={"responseCode": 1}),
            httpx.Response(403, json={"responseCode": 400, "message": "no"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        try:
            return next(answers)
        except StopIteration:
            raise httpx.ConnectError("node down", request=request) from None

    registrar = PartRegistrar(
        "http://127.0.0.1:1",
        "88.101.5",
        "300:0.NA/88.101.5",
        "the-secret",
        "http://127.0.0.1:1",
        queue_size=1,
        transport=httpx.MockTransport(handler),
    )
    try:
        assert await registrar.register(_part("A-PRS1-1"))
        assert registrar.first.is_set()
        assert not await registrar.register(_part("A-PRS1-2"))  # refused
        assert not await registrar.register(_part("A-PRS1-3"))  # unreachable
        registrar.add(_part("A-PRS1-4"))
        registrar.add(_part("A-PRS1-5"))  # the queue holds one
    finally:
        await registrar.aclose()
    stats = registrar.stats
    assert (stats.registered, stats.failed, stats.dropped) == (1, 2, 1)
    assert stats.last_handle == "88.101.5/A-PRS1-1"
    first = seen[0]
    assert first.method == "PUT"
    assert first.url.path == "/api/handles/88.101.5/A-PRS1-1"
    user, _, secret = base64.b64decode(first.headers["authorization"][6:]).decode().partition(":")
    assert (user, secret) == ("300%3A0.NA/88.101.5", "the-secret")
    assert {v["type"] for v in json.loads(first.content)["values"]} >= {"URL", "QUALITY"}

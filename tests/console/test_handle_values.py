"""The console's handle values in words: each format, a product's record, the editor's rows
and the QR code; and anything a node might answer is shown, never a crash."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from plantwire.console import handle_values as hv
from plantwire.ids.names import HandleSyntaxError
from tests.telemetry.sparkplug.test_command_structures import JSON


def _value(index: int, kind: str, fmt: str, data: Any) -> dict[str, Any]:
    return {"index": index, "type": kind, "data": {"format": fmt, "value": data}, "ttl": 86400}


def test_each_format_in_words() -> None:
    site = {
        "primarySite": True,
        "servers": [
            {"address": "10.0.0.5", "interfaces": [{"protocol": "HTTP", "port": 8000}]},
            {"address": "10.0.0.6", "interfaces": [{"protocol": "HTTP", "port": 8000}]},
        ],
    }
    admin = {"handle": "0.NA/88.1", "index": 200, "permissions": "111111111111"}
    seen = {
        view.type: view
        for view in map(
            hv.describe,
            [
                _value(1, "URL", "string", "https://plant.example/u"),
                _value(2, "URL.mobile", "string", "ftp://not-a-link"),
                _value(100, "HS_ADMIN", "admin", admin),
                _value(101, "HS_ADMIN.2", "admin", {**admin, "permissions": "000000000011"}),
                _value(200, "HS_VLIST", "vlist", [{"handle": "0.NA/88.1", "index": 300}]),
                _value(1, "HS_SITE", "site", site),
                _value(301, "HS_PUBKEY", "key", {"kty": "RSA", "n": "…", "e": "AQAB"}),
                _value(5, "BLOB", "base64", "AAEC"),
                _value(6, "HEX", "hex", "zz"),
            ],
        )
    }
    assert seen["URL"].link == "https://plant.example/u"
    assert seen["URL.mobile"].link is None  # only http(s) is a link
    assert seen["HS_ADMIN"].text == "200:0.NA/88.1 may: all permissions"
    assert seen["HS_ADMIN.2"].text == "200:0.NA/88.1 may: add handle, delete handle"
    assert seen["HS_VLIST"].text == "group of 1: 300:0.NA/88.1"
    assert seen["HS_SITE"].text == (
        "primary site, 2 servers: 10.0.0.5 (HTTP 8000); 10.0.0.6 (HTTP 8000)"
    )
    assert seen["HS_PUBKEY"].text == "RSA public key"
    assert seen["BLOB"].text == "3 bytes: 00 01 02"
    assert seen["HEX"].text == "hex data that does not decode"
    assert seen["BLOB"].ttl == "86400 s"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "Enter a handle"),
        ("  ", "Enter a handle"),
        ("88.1", "has no '/'"),
        ("88.1/", "empty suffix"),
        ("88 1/x", "without spaces"),
        ("88.1/a\x00b", "control characters"),
        ("88.1/" + "x" * 300, "at most 255 bytes"),
    ],
)
def test_malformed_handles_are_said(text: str, said: str) -> None:
    with pytest.raises(HandleSyntaxError, match=re.escape(said)):
        hv.check_handle(text)


def test_a_handle_is_trimmed() -> None:
    assert hv.check_handle("  88.1/SN-1 ") == "88.1/SN-1"


def test_a_product_record() -> None:
    values = [
        _value(4, "MACHINE", "string", "cnc-1"),
        _value(5, "PRODUCTION_START", "string", "2026-11-30T20:30:00Z"),
        _value(6, "PRODUCTION_END", "string", "not a time"),
        _value(7, "QUALITY", "string", "good"),
    ]
    record = hv.product_record(values)
    assert record is not None
    assert record.machine == "cnc-1"
    assert record.start is not None
    assert record.start.isoformat() == "2026-11-30T20:30:00+00:00"
    assert record.end is None  # unreadable: no window, said on the page
    assert hv.product_record([_value(1, "URL", "string", "https://x")]) is None


def test_editing_keeps_what_the_editor_does_not_show() -> None:
    values = [
        _value(1, "URL", "string", "https://a"),
        _value(2, "LINE", "string", "press"),
        hv.admin_value("88.1/SN-1"),
        _value(3, "BLOB", "base64", "AAEC"),
    ]
    rows = hv.editable_rows(values)
    assert rows == [hv.EditRow(1, "URL", "https://a"), hv.EditRow(2, "LINE", "press")]
    kept = hv.kept_values(values)
    assert [v["index"] for v in kept] == [100, 3]
    rows[1].value = "cnc"
    rows.append(hv.EditRow(4, "", ""))  # a blank row is dropped
    written = hv.written_values(rows, kept)
    assert {v["index"]: v["type"] for v in written} == {
        100: "HS_ADMIN",
        3: "BLOB",
        1: "URL",
        2: "LINE",
    }
    with pytest.raises(ValueError, match="index 100 is taken"):
        hv.written_values([hv.EditRow(100, "URL", "x")], kept)
    with pytest.raises(ValueError, match="give the value a type"):
        hv.written_values([hv.EditRow(5, " ", "x")], kept)


def test_the_qr_code_encodes_the_proxy_url() -> None:
    url = hv.proxy_url("http://plant.local:8080/", "88.1/SN 1")
    assert url == "http://plant.local:8080/hdl/88.1/SN%201"
    svg = hv.qr_svg(url)
    assert svg.startswith("<svg")
    assert "<?xml" not in svg
    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="svg", xmldecl=False)
    drawn = re.search(r' d="([^"]+)"', expected.getvalue().decode())
    assert drawn is not None
    assert drawn.group(1) in svg


_json = JSON  # any JSON document
_site = st.fixed_dictionaries(
    {"servers": st.lists(_json | st.fixed_dictionaries({"interfaces": _json}), max_size=3)}
)
_formats = st.sampled_from(["string", "admin", "vlist", "site", "key", "base64", "hex", "odd"])
_values = st.fixed_dictionaries(
    {"index": _json, "type": st.text(max_size=12) | st.sampled_from(["URL", "MACHINE"])},
    optional={
        "data": _json | st.fixed_dictionaries({"format": _formats, "value": _json | _site}),
        "ttl": _json,
        "timestamp": _json,
    },
)


@given(st.lists(_values, max_size=5))
def test_anything_a_node_answers_is_shown(values: list[dict[str, Any]]) -> None:
    for value in values:
        view = hv.describe(value)
        assert isinstance(view.text, str)
    hv.product_record(values)
    rows = hv.editable_rows(values)
    hv.kept_values(values)
    assert all(isinstance(row.value, str) for row in rows)

"""The Handle.net JSON codec: every value format both ways, the shapes HANDLE.NET writes and
pyhandle sends, and garbage refused with ValueFormatError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.ids.handle_json import (
    ValueFormatError,
    admin_permissions_from_json,
    admin_permissions_to_json,
    parse_values,
    value_from_json,
    value_to_json,
)
from plantwire.ids.model import (
    AdminPermission,
    AdminRef,
    HandleValue,
    PublicKey,
    SiteInfo,
    SiteInterface,
    SiteServer,
    ValuePermissions,
    ValueRef,
)

P = AdminPermission
WHEN = datetime(2026, 11, 22, 3, 15, 0, tzinfo=UTC)
RSA = PublicKey("RSA", {"n": "sXch_u2bRy5f", "e": "AQAB"})
DSA = PublicKey("DSA", {"y": "AbC", "p": "dEf", "q": "gh-_", "g": "IJk"})
SITE = SiteInfo(
    version=1,
    protocol_version="2.10",
    serial_number=3,
    primary_site=True,
    multi_primary=False,
    servers=(
        SiteServer(
            server_id=1,
            address="192.0.2.10",
            public_key=RSA,
            interfaces=(
                SiteInterface(query=True, admin=True, protocol="TCP", port=2641),
                SiteInterface(query=True, admin=False, protocol="HTTPS", port=443),
            ),
        ),
    ),
    attributes=(("desc", "88.101 secondary node"),),
)


def round_trip(value: HandleValue) -> HandleValue:
    return value_from_json(json.loads(json.dumps(value_to_json(value))))


@pytest.mark.parametrize(
    "value",
    [
        HandleValue(1, "URL", b"https://plant.example/units/SN-000123", timestamp=WHEN),
        HandleValue(2, "BLOB", b"\x00\x01\xffbinary", timestamp=WHEN),
        HandleValue(3, "EMAIL", "质量@工厂.例".encode(), ttl=3600, timestamp=WHEN),
        HandleValue(100, "HS_ADMIN", AdminRef("0.NA/88.101.5", 200, P.all()), timestamp=WHEN),
        HandleValue(
            200,
            "HS_VLIST",
            (ValueRef("0.NA/88.101.5", 300), ValueRef("88.101.5/ops", 301)),
            timestamp=WHEN,
        ),
        HandleValue(1, "HS_SITE", SITE, timestamp=WHEN),
        HandleValue(2, "HS_SITE.PREFIX", SITE, timestamp=WHEN),
        HandleValue(300, "HS_PUBKEY", RSA, timestamp=WHEN),
        HandleValue(301, "HS_PUBKEY", DSA, timestamp=WHEN),
        HandleValue(
            302,
            "HS_SECKEY",
            b"hashed-secret",
            permissions=ValuePermissions(True, True, False, False),
            timestamp=WHEN,
        ),
        HandleValue(4, "URL", b"x", ttl=datetime(2027, 1, 1, tzinfo=UTC), timestamp=WHEN),
        HandleValue(5, "NOTE", b"see also", references=(ValueRef("88/x", 1),), timestamp=WHEN),
        HandleValue(6, "NOTE", b"no timestamp yet"),
    ],
)
def test_every_format_round_trips(value: HandleValue) -> None:
    assert round_trip(value) == value


def test_output_shape_is_handle_net_s() -> None:
    value = HandleValue(
        7,
        "URL",
        b"https://x",
        permissions=ValuePermissions(True, True, False, False),
        timestamp=WHEN,
        references=(ValueRef("88/y", 2),),
    )
    out = value_to_json(value)
    assert list(out) == ["index", "type", "data", "permissions", "ttl", "timestamp", "references"]
    assert out["data"] == {"format": "string", "value": "https://x"}
    assert out["permissions"] == "1100"
    assert out["ttl"] == 86400
    assert out["timestamp"] == "2026-11-22T03:15:00Z"
    plain = value_to_json(HandleValue(1, "URL", b"https://x"))
    assert list(plain) == ["index", "type", "data", "ttl"]  # defaults omitted


def test_binary_data_is_written_as_base64() -> None:
    assert value_to_json(HandleValue(1, "X", b"\x00\xff"))["data"] == {
        "format": "base64",
        "value": "AP8=",
    }


def test_hex_is_accepted_on_input() -> None:
    value = value_from_json({"index": 1, "type": "X", "data": {"format": "HEX", "value": "00ff"}})
    assert value.data == b"\x00\xff"


def test_admin_permission_strings_follow_handle_net() -> None:
    # HANDLE.NET writes the 12-bit mask highest bit first: list_handles … add_handle
    assert admin_permissions_from_json("011111111111") == P.all() & ~P.LIST_HANDLES
    assert admin_permissions_from_json("100000000000") == P.LIST_HANDLES
    assert admin_permissions_from_json("010000000000") == P.READ_VALUE
    assert admin_permissions_from_json("000010000000") == P.MODIFY_ADMIN
    assert admin_permissions_from_json("000000000001") == P.ADD_HANDLE
    # pyhandle's default for handles it creates ("default from hdl-admintool")
    default = admin_permissions_from_json("011111110011")
    assert P.ADD_DERIVED_PREFIX not in default
    assert P.LIST_HANDLES not in default
    assert {P.READ_VALUE, P.MODIFY_VALUE, P.ADD_ADMIN, P.DELETE_HANDLE} <= set(default)
    assert admin_permissions_from_json("*") == P.all()
    assert admin_permissions_from_json(True) == P.all()
    assert admin_permissions_from_json("11") == P.DELETE_HANDLE | P.ADD_HANDLE
    for mask in (0, 0x555, 0xAAA, 0xFFF):
        assert admin_permissions_from_json(admin_permissions_to_json(P(mask))) == P(mask)


def test_what_pyhandle_sends_is_accepted() -> None:
    body = {
        "values": [
            {"index": 1, "type": "URL", "data": "https://plant.example/u/1"},
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {
                        "index": "200",
                        "handle": "0.NA/88.101.5",
                        "permissions": "011111110011",
                    },
                },
            },
        ]
    }
    url, admin = parse_values(body)
    assert url.data == b"https://plant.example/u/1"
    assert url.ttl == 86400
    assert admin.data == AdminRef("0.NA/88.101.5", 200, admin_permissions_from_json("011111110011"))


def test_body_shapes() -> None:
    one = {"index": 1, "type": "URL", "data": "x"}
    assert len(parse_values([one])) == 1
    assert len(parse_values({"values": [one]})) == 1
    assert len(parse_values(one)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("nope", "list of values"),
        ([{"index": 0, "type": "URL", "data": "x"}], "index must be an integer from 1"),
        ([{"index": "²", "type": "URL", "data": "x"}], "index"),
        ([{"index": 1, "type": "", "data": "x"}], "type"),
        ([{"index": 1, "type": "U\nRL", "data": "x"}], "type"),
        ([{"index": 1, "type": "URL"}], "no 'data'"),
        ([{"index": 1, "type": "URL", "data": {"format": "gif", "value": "x"}}], "unknown"),
        ([{"index": 1, "type": "X", "data": {"format": "base64", "value": "!!"}}], "base64"),
        ([{"index": 1, "type": "X", "data": {"format": "hex", "value": "0g"}}], "hex"),
        ([{"index": 100, "type": "HS_ADMIN", "data": "0.NA/88"}], "format 'admin'"),
        ([{"index": 1, "type": "HS_SITE.PREFIX", "data": "x"}], "format 'site'"),
        ([{"index": 1, "type": "X", "data": "x", "ttl": "soon"}], "ttl"),
        ([{"index": 1, "type": "X", "data": "x", "ttl": "0001-01-01T00:00:00+01:00"}], "ttl"),
        ([{"index": 1, "type": "X", "data": "x", "permissions": "11"}], "permissions"),
        (
            [{"index": 1, "type": "X", "data": "x"}, {"index": 1, "type": "Y", "data": "y"}],
            "conflict",
        ),
        (
            [{"index": 1, "type": "HS_PUBKEY", "data": {"format": "key", "value": {"kty": "EC"}}}],
            "kty",
        ),
        (
            [
                {
                    "index": 1,
                    "type": "HS_PUBKEY",
                    "data": {"format": "key", "value": {"kty": "RSA", "n": "a+b", "e": "AQAB"}},
                }
            ],
            "base64url",
        ),
        ([{"index": 1, "type": "X", "data": {"format": "string", "value": "x" * 70000}}], "longer"),
    ],
)
def test_invalid_values(body: Any, message: str) -> None:
    with pytest.raises(ValueFormatError, match=message):
        parse_values(body)


# --- properties ------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
handles = st.builds(
    lambda p, s: f"{p}/{s}",
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True),
)
refs = st.builds(ValueRef, handles, st.integers(1, 2**31 - 1))
seconds = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
data = st.one_of(
    st.binary(max_size=64).map(lambda b: ("NOTE", b)),
    st.builds(AdminRef, handles, st.integers(1, 999), st.integers(0, 0xFFF).map(P)).map(
        lambda a: ("HS_ADMIN", a)
    ),
    st.lists(refs, max_size=4).map(tuple).map(lambda v: ("HS_VLIST", v)),
)


@given(
    index=st.integers(1, 2**31 - 1),
    typed=data,
    ttl=st.one_of(st.integers(0, 2**31 - 1), seconds),
    timestamp=st.none() | seconds,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    references=st.lists(refs, max_size=3).map(tuple),
)
def test_values_round_trip(
    index: int,
    typed: tuple[str, Any],
    ttl: int | datetime,
    timestamp: datetime | None,
    flags: tuple[bool, bool, bool, bool],
    references: tuple[ValueRef, ...],
) -> None:
    value_type, payload = typed
    value = HandleValue(
        index, value_type, payload, ttl, timestamp, ValuePermissions(*flags), references
    )
    assert round_trip(value) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
value_like = st.fixed_dictionaries(
    {"index": json_values, "type": json_values, "data": json_values},
    optional={
        "ttl": json_values,
        "timestamp": json_values,
        "permissions": json_values,
        "references": json_values,
    },
)


@given(body=st.one_of(json_values, st.lists(value_like, max_size=3), value_like))
def test_any_json_parses_or_fails_clearly(body: Any) -> None:
    try:
        values = parse_values(body)
    except ValueFormatError as error:
        outcome = str(error)
    else:
        outcome = f"{len(values)} values"
        for value in values:
            assert round_trip(value).index == value.index
    assert outcome

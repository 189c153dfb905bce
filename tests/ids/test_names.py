"""Handle and prefix names: parsing, case rules, limits, percent-encoding."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.ids.names import (
    Handle,
    HandleSyntaxError,
    parse_handle,
    parse_prefix,
    prefix_chain,
    prefix_record,
    unquote_handle,
)

segments = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="./"),
    min_size=1,
    max_size=8,
)
prefixes = st.lists(segments, min_size=1, max_size=4).map(".".join)
suffixes = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
)


def test_parts() -> None:
    handle = parse_handle("88.101.5/SN-000123")
    assert handle == Handle("88.101.5", "SN-000123")
    assert str(handle) == "88.101.5/SN-000123"
    assert handle.authority == "88.101.5"
    assert not handle.is_prefix_record


def test_suffix_may_contain_slashes() -> None:
    assert parse_handle("88.101.5/line/3/unit/7").suffix == "line/3/unit/7"


def test_prefix_records() -> None:
    record = parse_handle("0.NA/88.101.5")
    assert record.is_prefix_record
    assert record.authority == "88.101.5"
    assert parse_handle("0.na/88").is_prefix_record
    assert prefix_record("88.101") == Handle("0.NA", "88.101")
    with pytest.raises(HandleSyntaxError):
        parse_handle("0.NA/88..1")


def test_ascii_case_is_ignored_other_case_is_not() -> None:
    assert parse_handle("88.101.5/SN-1").key == parse_handle("88.101.5/sn-1").key
    assert parse_handle("ABC/x").key == parse_handle("abc/X").key
    assert parse_handle("88/Ä").key != parse_handle("88/ä").key
    assert parse_handle("88/İ").key != parse_handle("88/i").key


def test_prefix_chain() -> None:
    assert prefix_chain("88.101.5") == ["88", "88.101", "88.101.5"]
    assert prefix_chain("88") == ["88"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("88.101.5", "no '/'"),
        ("88.101.5/", "empty suffix"),
        ("/x", "prefix cannot be empty"),
        ("88..5/x", "empty segment"),
        (".88/x", "empty segment"),
        ("88 5/x", "printable ASCII"),
        ("八八/x", "printable ASCII"),
        ("88/a\x00b", "control"),
        ("88/a\nb", "control"),
        ("88/a\x85b", "control"),
        ("88/\ud800", "valid Unicode"),
        ("88/" + "x" * 253, "at most 255 bytes"),
        ("88/" + "é" * 127, "at most 255 bytes"),
    ],
)
def test_invalid_handles(text: str, message: str) -> None:
    with pytest.raises(HandleSyntaxError, match=message):
        parse_handle(text)


def test_length_limit_is_configurable() -> None:
    long = "88/" + "x" * 300
    assert parse_handle(long, max_bytes=1024).suffix == "x" * 300
    assert parse_handle("88/" + "x" * 252).suffix  # exactly 255 bytes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("88.101.5%2FSN-1", "88.101.5/SN-1"),
        ("88.101.5/SN%20one", "88.101.5/SN one"),
        ("88/%C3%A4", "88/ä"),
    ],
)
def test_unquote(raw: str, expected: str) -> None:
    assert str(unquote_handle(raw)) == expected


@pytest.mark.parametrize("raw", ["88/%", "88/%G1", "88/%4", "88/%FF", "88/%C3"])
def test_bad_percent_encoding(raw: str) -> None:
    with pytest.raises(HandleSyntaxError):
        unquote_handle(raw)


def test_bad_prefixes() -> None:
    for bad in ["", "88/5", "88.", "8 8"]:
        with pytest.raises(HandleSyntaxError):
            parse_prefix(bad)


@given(prefix=prefixes, suffix=suffixes)
def test_round_trip(prefix: str, suffix: str) -> None:
    text = f"{prefix}/{suffix}"
    try:
        handle = parse_handle(text, max_bytes=10_000)
    except HandleSyntaxError:
        assert prefix.upper() == "0.NA"  # a prefix record whose suffix is not a prefix
        return
    assert str(handle) == text
    assert parse_handle(str(handle), max_bytes=10_000) == handle
    assert unquote_handle(quote(text, safe=""), max_bytes=10_000) == handle
    assert (
        parse_handle(text.upper() if text.isascii() else text, max_bytes=10_000).key == handle.key
    )


@given(st.text(max_size=300))
def test_any_text_parses_or_fails_clearly(text: str) -> None:
    try:
        handle = parse_handle(text)
    except HandleSyntaxError as error:
        outcome = str(error)
    else:
        outcome = str(handle)
    assert outcome


@given(st.text(max_size=100))
def test_any_url_text_parses_or_fails_clearly(text: str) -> None:
    try:
        outcome = str(unquote_handle(text))
    except HandleSyntaxError as error:
        outcome = str(error)
    assert outcome

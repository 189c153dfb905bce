"""Handle authentication parts without a server: Authorization headers, identities,
challenge sessions (expiry, bounds) and hashed secret keys."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantwire.ids.handle_auth import (
    AuthHeaderError,
    BasicCredentials,
    BearerCredentials,
    HandleCredentials,
    SecretKeys,
    SessionTable,
    parse_authorization,
    parse_identity,
)
from plantwire.ids.model import ValueRef
from plantwire.security.hashing import PasswordHashing


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_usernames_are_percent_decoded_identities() -> None:
    parsed = parse_authorization(basic("300%3A0.NA/88.101.5:s3cret:with:colons"))
    assert parsed == BasicCredentials(ValueRef("0.NA/88.101.5", 300), "s3cret:with:colons")
    bare = parse_authorization(basic("88.101.5/admin:x"))
    assert bare == BasicCredentials(ValueRef("88.101.5/admin", 0), "x")


def test_handle_fields_are_read_with_quotes_and_escapes() -> None:
    parsed = parse_authorization(
        'Handle version="0", sessionId="abc", id="300%3A0.NA/88", cnonce=AAA=, '
        'type="HS_PUBKEY", alg="SHA256", signature="a\\"b"'
    )
    assert isinstance(parsed, HandleCredentials)
    assert parsed.session_id == "abc"
    assert parsed.fields["id"] == "300:0.NA/88"
    assert parsed.fields["cnonce"] == "AAA="
    assert parsed.fields["signature"] == 'a"b'
    assert parsed.authenticating
    assert not HandleCredentials({"sessionid": "x"}).authenticating
    assert parse_authorization("Bearer pw_x") == BearerCredentials("pw_x")
    assert parse_authorization(None) is None


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        basic("no-colon"),
        basic("300:bad handle:x"),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        'Handle version="1"',
        "Handle ,,,",
        "Digest x=1",
        "Basic " + "A" * 20_000,
    ],
)
def test_unreadable_headers_say_why(header: str) -> None:
    with pytest.raises(AuthHeaderError):
        parse_authorization(header)


@given(st.text(max_size=200))
def test_any_header_parses_or_is_refused_cleanly(header: str) -> None:
    with contextlib.suppress(AuthHeaderError):
        parse_authorization(header)


def test_identities() -> None:
    assert parse_identity("300:0.NA/88") == ValueRef("0.NA/88", 300)
    assert parse_identity("0.NA/88") == ValueRef("0.NA/88", 0)
    with pytest.raises(AuthHeaderError):
        parse_identity("300:")


def test_sessions_expire_when_idle_and_are_bounded() -> None:
    now = [1000.0]
    table = SessionTable(
        idle_seconds=60,
        max_sessions=3,
        challenge_seconds=10,
        max_challenges=3,
        clock=lambda: now[0],
    )
    first = table.create()
    nonce = table.take_nonce(first)
    assert first.nonce != nonce
    now[0] += 11
    assert table.get(first.id) is None  # an unanswered challenge expires soon
    proven = table.create()
    table.authenticated(proven, ValueRef("0.NA/88", 300))
    now[0] += 59
    assert table.get(proven.id) is proven  # used: its idle time starts again
    now[0] += 59
    assert table.get(proven.id) is proven
    challenges = [table.create() for _ in range(10)]  # a flood of 401s
    assert table.get(proven.id) is proven  # does not push the proven session out
    assert table.get(challenges[0].id) is None  # the oldest challenges went first
    assert table.get(challenges[-1].id) is challenges[-1]
    now[0] += 61
    assert table.get(proven.id) is None  # idle too long
    kept = [table.create() for _ in range(4)]
    for session in kept:
        table.authenticated(session, ValueRef("0.NA/88", 300))
    assert table.get(kept[0].id) is None  # at most 3 proven sessions: the oldest went
    assert table.delete(kept[3].id)
    assert not table.delete(kept[3].id)


def test_secret_keys_are_hashed_and_clear_text_is_never_trusted() -> None:
    keys = SecretKeys(PasswordHashing(1, 8))
    stored = keys.hash(b"the-secret")
    assert keys.is_hashed(stored)
    assert b"the-secret" not in stored
    assert keys.verify(stored, "the-secret")
    assert keys.verify(stored, "the-secret")  # remembered
    assert not keys.verify(stored, "other")
    assert not keys.verify(b"the-secret", "the-secret")  # a secret stored in clear

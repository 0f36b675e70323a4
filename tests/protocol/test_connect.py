"""The signed connect query of docs/protocol.md §1: one builder, one parser, one verifier."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from nacl.signing import SigningKey

from messenger_protocol.connect import (
    ConnectQuery,
    connect_message,
    signed_connect_query,
    with_query,
)
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.errors import InvalidConnect

pytestmark = pytest.mark.unit

KEY = SigningKey.generate()
SIGN_KEY = b64url_encode(bytes(KEY.verify_key))
BOX_KEY = b64url_encode(b"\x07" * 32)


def test_the_signed_bytes_are_the_protocols() -> None:
    assert connect_message("alice", "1764190000", "n" * 16) == (
        b"messenger-connect\nalice\n1764190000\n" + b"n" * 16
    )


def test_a_signed_query_parses_and_verifies_against_its_key_only() -> None:
    # Given a query signed by alice's key, with her keys to register
    query = signed_connect_query(KEY, "alice", now=1_764_190_000.9, keys=(SIGN_KEY, BOX_KEY))
    # When the server parses it
    parsed = ConnectQuery.parse(query)
    # Then every part is there and the signature holds for her key and no other
    assert (parsed.user_id, parsed.ts, parsed.sign_key, parsed.box_key) == (
        "alice",
        "1764190000",
        SIGN_KEY,
        BOX_KEY,
    )
    assert parsed.registers_keys
    assert parsed.verifies(SIGN_KEY)
    assert not parsed.verifies(b64url_encode(bytes(SigningKey.generate().verify_key)))


def test_a_changed_part_breaks_the_signature() -> None:
    query = signed_connect_query(KEY, "alice", now=1_764_190_000)
    assert not ConnectQuery.parse(query | {"ts": "1764190001"}).verifies(SIGN_KEY)
    assert not ConnectQuery.parse(query | {"userId": "alicf"}).verifies(SIGN_KEY)


def test_every_query_has_a_fresh_nonce_inside_the_rule() -> None:
    nonces = {signed_connect_query(KEY, "a", now=0)["nonce"] for _ in range(50)}
    assert len(nonces) == 50
    assert all(16 <= len(nonce) <= 64 for nonce in nonces)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"userId": None}, "required"),
        ({"ts": "12a"}, "ts is malformed"),
        ({"nonce": "short"}, "nonce is malformed"),
        ({"sig": "AAAA"}, "sig must be 64 bytes"),
        ({"signKey": SIGN_KEY}, "signKey and boxKey come together"),
        ({"userId": "alice\n"}, "userId is malformed"),
    ],
)
def test_a_malformed_query_is_refused_with_its_reason(change: dict, says: str) -> None:
    query: dict = signed_connect_query(KEY, "alice", now=0)
    query.update(change)
    query = {k: v for k, v in query.items() if v is not None}
    with pytest.raises(InvalidConnect, match=says):
        ConnectQuery.parse(query)


def test_the_query_joins_a_url_with_or_without_its_own_query() -> None:
    query = {"userId": "alice", "ts": "1"}
    assert dict(parse_qsl(urlsplit(with_query("ws://h/s", query)).query)) == query
    assert with_query("ws://h/s?x=1", query).startswith("ws://h/s?x=1&userId=alice")

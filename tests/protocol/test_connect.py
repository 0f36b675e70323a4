"""The signed connect query of docs/protocol.md §1: one builder, one parser, one verifier."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from jsonschema import Draft7Validator
from nacl.signing import SigningKey

from messenger_protocol.connect import (
    ConnectQuery,
    bound_connect_message,
    canonical_endpoint,
    connect_message,
    query_schema,
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


# --- v1.2: bound to the endpoint and the device -----------------------------------------------

AUD = "wss://a1b2.execute-api.us-east-1.amazonaws.com/prod"
LAPTOP = SigningKey.generate()
LAPTOP_SIGN_KEY = b64url_encode(bytes(LAPTOP.verify_key))


def test_the_bound_message_names_the_device_and_the_endpoint() -> None:
    assert bound_connect_message("alice", "laptop", "1764190000", "n" * 16, AUD) == (
        b"messenger-connect-2\nalice\nlaptop\n1764190000\n" + b"n" * 16 + b"\n" + AUD.encode()
    )


def test_aud_selects_the_v12_form_and_device_1_is_signed_as_1_though_unnamed() -> None:
    # Given device 1 connecting with aud
    query = signed_connect_query(KEY, "alice", now=1_764_190_000, aud=AUD)
    # Then the query names no device, carries aud, and signs the bound message for device 1
    assert "deviceId" not in query and query["aud"] == AUD
    parsed = ConnectQuery.parse(query)
    assert (parsed.device_id, parsed.aud, parsed.is_bound, parsed.is_primary_device) == (
        "1",
        AUD,
        True,
        True,
    )
    assert parsed.message == bound_connect_message("alice", "1", query["ts"], query["nonce"], AUD)
    assert parsed.verifies(SIGN_KEY)
    # And the same query read as v1.1 (aud dropped) no longer verifies: the forms differ
    assert not ConnectQuery.parse({k: v for k, v in query.items() if k != "aud"}).verifies(SIGN_KEY)
    assert ConnectQuery.parse(query | {"deviceId": "1"}).verifies(SIGN_KEY)


def test_a_linked_device_signs_with_its_own_key_for_one_endpoint() -> None:
    query = signed_connect_query(LAPTOP, "alice", now=1_764_190_000, aud=AUD, device_id="laptop")
    parsed = ConnectQuery.parse(query)
    assert (parsed.device_id, parsed.is_primary_device) == ("laptop", False)
    assert parsed.verifies(LAPTOP_SIGN_KEY)
    assert not parsed.verifies(SIGN_KEY)  # the account key is not the laptop's
    # A relayed query is worth nothing at another endpoint, or as another device
    elsewhere = AUD.replace("a1b2", "c3d4")
    assert not ConnectQuery.parse(query | {"aud": elsewhere}).verifies(LAPTOP_SIGN_KEY)
    assert not ConnectQuery.parse(query | {"deviceId": "tablet"}).verifies(LAPTOP_SIGN_KEY)


def test_a_url_carries_aud_percent_encoded_and_the_server_reads_it_decoded() -> None:
    aud = "ws://127.0.0.1:8080/c0"
    query = signed_connect_query(KEY, "alice", now=1, aud=aud)
    url = with_query(aud, query)
    assert "aud=ws%3A%2F%2F127.0.0.1%3A8080%2Fc0" in url
    assert ConnectQuery.parse(dict(parse_qsl(urlsplit(url).query))).verifies(SIGN_KEY)


def test_a_linked_device_without_aud_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match=r"only in the v1\.2 form"):
        signed_connect_query(LAPTOP, "alice", now=0, device_id="laptop")
    query = signed_connect_query(LAPTOP, "alice", now=0, aud=AUD, device_id="laptop")
    with pytest.raises(InvalidConnect, match="a linked device connects only with aud"):
        ConnectQuery.parse({k: v for k, v in query.items() if k != "aud"})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"deviceId": "Laptop"}, "deviceId is malformed"),
        ({"deviceId": ""}, "deviceId is malformed"),
        ({"deviceId": "x" * 33}, "deviceId is malformed"),
        ({"aud": "https://a1b2.example/prod"}, "aud is malformed"),
        ({"aud": "wss://a b/prod"}, "aud is malformed"),
        ({"aud": "wss://x/" + "p" * 2048}, "aud is malformed"),
        ({"aud": ""}, "aud is malformed"),
        ({"aud": ["wss://x"]}, "aud is malformed"),
    ],
)
def test_a_malformed_v12_query_is_refused_with_its_reason(change: dict, says: str) -> None:
    query: dict = signed_connect_query(LAPTOP, "alice", now=0, aud=AUD, device_id="laptop")
    with pytest.raises(InvalidConnect, match=says):
        ConnectQuery.parse(query | change)


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("wss://a1b2.execute-api.us-east-1.amazonaws.com/prod", AUD),
        ("wss://a1b2.execute-api.us-east-1.amazonaws.com/prod/", AUD),
        ("wss://a1b2.execute-api.us-east-1.amazonaws.com:443/prod", AUD),
        ("WSS://A1B2.Execute-API.us-east-1.amazonaws.com/prod", AUD),
        ("wss://a1b2.execute-api.us-east-1.amazonaws.com/prod?userId=alice&ts=1#x", AUD),
        ("ws://127.0.0.1:8080/c0", "ws://127.0.0.1:8080/c0"),
        ("ws://127.0.0.1:80/local/", "ws://127.0.0.1/local"),
        ("ws://localhost:443/local", "ws://localhost:443/local"),  # 443 is not ws's default
        ("wss://h:80/p", "wss://h:80/p"),
        ("wss://h/", "wss://h"),
        ("wss://h", "wss://h"),
        ("ws://[::1]:8080/c0/", "ws://[::1]:8080/c0"),
        ("wss://h/Stage/Path//", "wss://h/Stage/Path"),  # a path keeps its case
    ],
)
def test_the_canonical_endpoint_is_the_one_string_both_sides_compare(url, endpoint) -> None:
    assert canonical_endpoint(url) == endpoint
    assert canonical_endpoint(endpoint) == endpoint  # already canonical: unchanged


@pytest.mark.parametrize(
    "url",
    ["https://h/prod", "h/prod", "wss://", "wss://user:pw@h/prod", "wss://h/a b", "", "ws://h:x/"],
)
def test_anything_but_a_websocket_url_has_no_endpoint(url: str) -> None:
    with pytest.raises(ValueError):
        canonical_endpoint(url)


def test_the_query_schema_names_the_v12_params_and_wants_aud_for_a_linked_device() -> None:
    validator = Draft7Validator(query_schema())
    query = signed_connect_query(LAPTOP, "alice", now=0, aud=AUD, device_id="laptop")
    assert list(validator.iter_errors(query)) == []
    assert list(validator.iter_errors({k: v for k, v in query.items() if k != "aud"}))
    assert list(validator.iter_errors(query | {"deviceId": "Laptop"}))
    device_1 = signed_connect_query(KEY, "alice", now=0)
    assert list(validator.iter_errors(device_1 | {"deviceId": "1"})) == []

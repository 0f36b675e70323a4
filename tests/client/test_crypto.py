"""NaCl Box and the connect signature, checked against the server's own validation."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from messenger_client import crypto
from messenger_client.errors import MessageTooLong, UnreadableMessage
from messenger_client.keystore import Identity
from messenger_protocol.connect import ConnectQuery
from messenger_protocol.encoding import b64url_decode
from messenger_protocol.frames import SendMessage
from messenger_protocol.limits import MAX_BODY_BYTES, MAX_FRAME_BYTES

pytestmark = pytest.mark.unit

ALICE = Identity.generate("alice")
BOB = Identity.generate("bob")
# {"text":""} plus Box's tag: what every message costs besides its text.
OVERHEAD = len(b'{"text":""}') + crypto.BOX_OVERHEAD_BYTES
LONGEST_ASCII = MAX_BODY_BYTES - OVERHEAD


def test_the_connect_query_is_what_the_server_verifies() -> None:
    # Given alice's signed connect URL
    url = crypto.signed_url("ws://127.0.0.1:8080/local", ALICE, now=1_764_190_000.7)
    query = dict(parse_qsl(urlsplit(url).query))
    # When the server's authorizer parses it, Then it is well formed and the signature holds
    request = ConnectQuery.parse(query)
    assert request.user_id == "alice"
    assert request.ts == "1764190000"
    assert request.verifies(ALICE.public_keys.sign_key)
    assert not request.verifies(BOB.public_keys.sign_key)
    # And it carries alice's public keys (registering her on a first connect)
    assert (request.sign_key, request.box_key) == (
        ALICE.public_keys.sign_key,
        ALICE.public_keys.box_key,
    )


def test_every_connect_uses_a_fresh_nonce() -> None:
    nonces = {crypto.connect_query(ALICE, now=0)["nonce"] for _ in range(50)}
    assert len(nonces) == 50


def test_a_sealed_text_opens_only_for_its_recipient_from_its_sender() -> None:
    # Given a message sealed by alice for bob
    body, nonce = crypto.seal(ALICE, BOB.public_keys, crypto.encode_plaintext("hi bob ✓"))
    # Then bob opens it with alice's key
    opened = crypto.open_sealed(BOB, ALICE.public_keys, body, nonce)
    assert crypto.decode_plaintext(opened) == "hi bob ✓"
    assert json.loads(opened) == {"text": "hi bob ✓"}
    # And no one else, and not as if it came from someone else
    mallory = Identity.generate("mallory")
    with pytest.raises(UnreadableMessage):
        crypto.open_sealed(mallory, ALICE.public_keys, body, nonce)
    with pytest.raises(UnreadableMessage):
        crypto.open_sealed(BOB, mallory.public_keys, body, nonce)


def test_each_seal_has_a_fresh_nonce() -> None:
    seals = {crypto.seal(ALICE, BOB.public_keys, b"same")[1] for _ in range(20)}
    assert len(seals) == 20


def test_a_plaintext_that_is_not_our_json_is_unreadable() -> None:
    for plaintext in (b"\xff", b"not json", b"[1]", b'{"text": 3}'):
        with pytest.raises(UnreadableMessage):
            crypto.decode_plaintext(plaintext)


def test_the_longest_text_fills_one_frame_and_the_server_accepts_it() -> None:
    # Given the longest text that fits (ASCII: one byte a character)
    frame = crypto.send_message_frame(
        ALICE, BOB.public_keys, "01J9Z3ABCDEFGHJKMNPQRSTVWX", "x" * LONGEST_ASCII, 1_764_190_000_123
    )
    # Then its frame is within API Gateway's 32 KB and the server's own validation passes
    assert len(frame.encode()) <= MAX_FRAME_BYTES
    parsed = SendMessage.read(json.loads(frame))
    assert len(b64url_decode(parsed.body)) == MAX_BODY_BYTES


@pytest.mark.parametrize("text", ["x" * (LONGEST_ASCII + 1), "é" * (LONGEST_ASCII // 2 + 1)])
def test_a_text_one_byte_too_long_is_refused_before_sending(text: str) -> None:
    with pytest.raises(MessageTooLong, match=r"too long.*24,000 bytes"):
        crypto.send_message_frame(ALICE, BOB.public_keys, "01J9Z3ABCDEFGHJKMNPQRSTVWX", text, 1)


def test_a_resend_can_reuse_the_frame_because_it_holds_everything() -> None:
    frame = json.loads(crypto.send_message_frame(ALICE, BOB.public_keys, "m-00000001", "hi", 7))
    assert set(frame) == {"action", "messageId", "to", "body", "nonce", "sentAt"}
    assert (frame["action"], frame["to"], frame["sentAt"]) == ("sendMessage", "bob", 7)

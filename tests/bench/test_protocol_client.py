"""The benchmarks' protocol client: its users sign and seal as any client does, and it
reads every frame the stack or API Gateway sends into a type."""

from __future__ import annotations

import json

import pytest

from bench.protocol_client import BenchUser, GatewayError, Unreadable, read_frame
from messenger_protocol.connect import ConnectQuery
from messenger_protocol.frames import AckFrame, SendMessage
from messenger_protocol.names import SENT_STATUS

pytestmark = pytest.mark.unit


def test_a_connect_query_verifies_against_the_users_own_key() -> None:
    # Given a benchmark user
    alice = BenchUser.generate("alice")
    # When it signs a connect query, keys included and not
    with_keys = ConnectQuery.parse(alice.connect_query(ts=1_764_190_000))
    without = ConnectQuery.parse(alice.connect_query(with_keys=False))
    # Then both verify against its signKey, and only the first registers keys
    assert with_keys.verifies(alice.public_keys.sign_key)
    assert without.verifies(alice.public_keys.sign_key)
    assert with_keys.sign_key == alice.public_keys.sign_key and with_keys.ts == "1764190000"
    assert not without.registers_keys


def test_a_sealed_message_opens_for_its_recipient_only() -> None:
    # Given two users and a third
    alice, bob, eve = (BenchUser.generate(name) for name in ("alice", "bob", "eve"))
    # When alice writes to bob
    frame = SendMessage.read(json.loads(alice.message_frame(bob, "m-00000001", "hi bob", 7)))
    # Then the frame is a valid sendMessage to bob, and bob reads the text
    assert (frame.to, frame.message_id, frame.sent_at) == ("bob", "m-00000001", 7)
    assert bob.decrypt_from(alice, frame.body, frame.nonce) == "hi bob"
    # And no one else does
    with pytest.raises(Exception, match="does not open"):
        eve.decrypt_from(alice, frame.body, frame.nonce)


def test_frames_are_read_into_their_types() -> None:
    # Given a server frame, API Gateway's own error frame, and a frame of neither
    ack = {"type": "ack", "messageId": "m-00000001", "serverTs": 5, "status": SENT_STATUS}
    gateway = {"message": "Internal server error", "connectionId": "c=", "requestId": "r"}
    stray = {"type": "nonsense"}
    # When they are read
    # Then each is what it is, and the stray one says why it is unreadable
    assert read_frame(ack) == AckFrame(message_id="m-00000001", server_ts=5, status=SENT_STATUS)
    assert read_frame(gateway) == GatewayError("Internal server error")
    unreadable = read_frame(stray)
    assert isinstance(unreadable, Unreadable) and "nonsense" in unreadable.reason

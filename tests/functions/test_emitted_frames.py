"""Every kind of frame the functions send validates against docs/asyncapi.yaml.

The harness checks each frame it sees (posts and route responses) against the
published schemas in every test; this test makes sure one run produces every server
frame type, so none of them escapes that check.
"""

from __future__ import annotations

import pytest

from messenger_protocol.frames import SERVER_FRAMES
from tests.support.devices import LinkedDevice, device_list, set_devices_frame
from tests.support.identities import TestUser
from tests.support.push import push_harness, token_for
from tests.support.schemas import check_server_frame
from tests.support.v12_pending import FRAMES_NOT_SENT_YET

pytestmark = pytest.mark.integration


def test_one_conversation_emits_every_server_frame_and_each_keeps_its_schema(
    alice: TestUser, bob: TestUser
) -> None:
    with push_harness() as (h, _pushes):
        # Given alice and bob online, alice watching bob
        a, b = h.connect(alice), h.connect(bob)
        replies = [
            h.send(a, {"action": "getPresence", "userIds": ["bob"], "subscribe": True}),
            h.send(a, {"action": "getKeys", "userId": "bob"}),
            h.send(a, {"action": "registerPush", "platform": "APNS", "token": token_for("APNS")}),
            h.send(a, {"action": "fly"}),
            h.send(
                a, {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": []}
            ),
            h.send(a, {"action": "setBlocked", "add": ["mallory"]}),
            h.send(a, {"action": "getSettings"}),
            h.send(b, set_devices_frame(device_list(bob, 1, LinkedDevice(bob, "laptop")))),
            # When alice writes, bob acks and marks it seen, and alice syncs (once batched)
            h.send(a, h.message(a, bob, "hello", "msg-00000001")),
        ]
        message = h.posts.of_type(b.connection_id, "message")[0]
        h.send(b, {"action": "ack", "ids": [message["id"]]})
        replies.append(
            h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-00000001"]})
        )
        h.send(a, {"action": "sync"})
        h.send(a, {"action": "sync", "batch": True})
        h.disconnect(b)
        # Then every server frame type was sent, and each one is valid
        sent = [*replies, *(f for frames in h.posts.frames.values() for f in frames)]
        for frame in sent:
            check_server_frame(frame)
        # (but the v1.2 frames not sent yet: once one is, the set is wrong and this fails;
        # and `pong`, which API Gateway sends itself: tests/e2e/test_keepalive.py)
        assert {frame["type"] for frame in sent} == set(SERVER_FRAMES) - FRAMES_NOT_SENT_YET - {
            "pong"
        }

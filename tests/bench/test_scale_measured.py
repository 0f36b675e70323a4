"""`bench scale`'s measurements on the real handlers (moto): what the model is fed."""

from __future__ import annotations

import pytest

from bench.scale import measure
from bench.scale_model import Workload, message_cost

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_measured_pieces_are_the_operations_the_handlers_run() -> None:
    # Given the real handlers on moto
    # When bench scale measures every operation (it asserts itself that one message to
    # one device, piece by piece, is the measured life again)
    measured, same_cell, sender_cell, home_cell = measure()
    short, large = measured.short, measured.large
    # Then a message to one device is 3 frames, 2 posts and 3 invocations
    single = message_cost(short, Workload(devices=1, seen=0), 0, measured.relays)
    assert (single.frames, single.posts, single.invocations) == (3, 2, 3)
    # And a 24,000-byte copy writes about 32 KB more than a short one, stored and deleted
    assert large.copy.total_wru - short.copy.total_wru >= 30
    assert large.copy_ack.total_wru - short.copy_ack.total_wru >= 30
    # And every frame route takes a rate-limit unit: the ping writes one, in Limits
    assert measured.ping.wru == {"Limits": 1}
    assert measured.ping.invocations == 1
    # And a renewal's handshake (the user stays online) starts no presence function
    assert measured.handshake.invocations == 2
    assert measured.presence_change.invocations == 1
    # And each watcher told is one post
    assert measured.watcher_post.posts == 1
    # And each cross-cell operation makes one Relay call, and a send across cells does in
    # the two cells what it does in one, plus the Invoke and, in the called cell, one unit
    # of the calling cell's budget (docs/scale.md "The mesh")
    relays = measured.relays
    assert (relays.send, relays.ack, relays.mark_seen, relays.subscribe) == (1, 1, 1, 1)
    assert sender_cell["lambda.Invoke"] == 1
    assert (sender_cell + home_cell) - same_cell == {
        "lambda.Invoke": 1,
        "dynamodb.UpdateItem": 1,
        "dynamodb.GetItem": 2,  # the two profiles one BatchGetItem reads in a single cell
    }

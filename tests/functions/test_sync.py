"""sync in pages and batches (docs/protocol.md §2-§3): bounded pages in store order, a cursor
that only its user can use, acks between pages, items frames of at most 32 KB."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger.contract import SYNC_PAGE_ITEMS, SYNC_PAGE_POSTS
from messenger_protocol.encoding import b64url_decode, b64url_encode
from messenger_protocol.limits import (
    MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
    MAX_IDS_PER_FRAME,
    MIN_SYNC_PAGE_ITEMS,
)
from tests.support.harness import TABLE_NAMES, Connection, Harness, harness
from tests.support.identities import TestUser
from tests.support.queue import seed

pytestmark = pytest.mark.integration


def page(
    h: Harness, connection: Connection, *, batch: bool, after: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """One sync request: (the items it brought, its syncDone, the frames as posted)."""
    request: dict[str, Any] = {"action": "sync", "batch": batch}
    if after is not None:
        request["after"] = after
    assert h.send(connection, request) is None
    frames = h.posts.take(connection.connection_id)
    *carriers, done = frames
    assert done["type"] == "syncDone"
    items: list[dict[str, Any]] = []
    for frame in carriers:
        assert frame["type"] in ("items", "message", "receipt")
        items += frame["items"] if frame["type"] == "items" else [frame]
    assert done["count"] == len(items)
    return items, done, frames


def ack(h: Harness, connection: Connection, ids: list[str]) -> None:
    for start in range(0, len(ids), MAX_IDS_PER_FRAME):
        chunk = ids[start : start + MAX_IDS_PER_FRAME]
        assert h.send(connection, {"action": "ack", "ids": chunk}) is None


def catch_up(h: Harness, connection: Connection, *, batch: bool, acking: bool = True):
    """A whole round as the SDK does it: sync, follow `more` with the cursor, ack each
    page as it comes. Returns (every item id in the order received, the syncDones)."""
    received: list[str] = []
    dones: list[dict[str, Any]] = []
    after = None
    while True:
        items, done, _ = page(h, connection, batch=batch, after=after)
        received += [item["id"] for item in items]
        dones.append(done)
        if acking:
            ack(h, connection, [item["id"] for item in items])
        if not done["more"]:
            return received, dones
        after = done["cursor"]


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_a_long_queue_comes_in_bounded_pages_in_store_order(h: Harness, bob: TestUser) -> None:
    # Given 450 items queued for offline bob, receipts among the messages
    stored = seed(h, bob.user_id, 2 * SYNC_PAGE_POSTS + 50, receipt_every=9)
    b = h.connect(bob)
    # When he syncs one frame per item (a v1 client) and follows each cursor, acking nothing
    received, dones = catch_up(h, b, batch=False, acking=False)
    # Then every item came once, in store order
    assert received == stored
    # And each page was at least 100 items and at most one post budget, with a cursor
    # exactly while more remained
    assert [d["count"] for d in dones] == [SYNC_PAGE_POSTS, SYNC_PAGE_POSTS, 50]
    assert all(d["count"] >= MIN_SYNC_PAGE_ITEMS for d in dones[:-1])
    assert [d["more"] for d in dones] == [True, True, False]
    assert all(("cursor" in d) == d["more"] for d in dones)
    assert {d["epoch"] for d in dones} == {"local#0"}


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_batched_pages_pack_short_items_into_few_frames(h: Harness, bob: TestUser) -> None:
    stored = seed(h, bob.user_id, 1_200, receipt_every=5)
    b = h.connect(bob)
    # When bob syncs with batch
    items, done, frames = page(h, b, batch=True)
    # Then the page holds the page size in a handful of items frames, each within 32 KB
    assert done["count"] == SYNC_PAGE_ITEMS and done["more"] is True
    assert [f["type"] for f in frames] == ["items"] * (len(frames) - 1) + ["syncDone"]
    assert len(frames) - 1 <= SYNC_PAGE_ITEMS // 50
    assert all(
        len(json.dumps(f, separators=(",", ":")).encode()) <= MAX_FRAME_BYTES for f in frames
    )
    assert [item["id"] for item in items] == stored[:SYNC_PAGE_ITEMS]


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_acks_between_pages_never_repeat_or_skip_an_item(h: Harness, bob: TestUser) -> None:
    stored = seed(h, bob.user_id, 700)
    b = h.connect(bob)
    # Given bob has the first page and acks only every other item of it
    first, done, _ = page(h, b, batch=True)
    acked = [item["id"] for item in first[::2]]
    ack(h, b, acked)
    # And new items arrive while the round goes on
    arriving = seed(h, bob.user_id, 30)
    # When he asks for the following pages with the cursors
    rest: list[str] = []
    after = done["cursor"]
    while after:
        items, done, _ = page(h, b, batch=True, after=after)
        rest += [item["id"] for item in items]
        acked += [item["id"] for item in items[:50]]  # some acks land mid-round too
        ack(h, b, [item["id"] for item in items[:50]])
        after = done.get("cursor")
    # Then the round brought every item exactly once, in order, the new ones last
    assert [item["id"] for item in first] + rest == stored + arriving
    # And a new round (sync without after) starts again from the oldest unacknowledged
    again, _, _ = page(h, b, batch=True)
    assert again[0]["id"] == first[1]["id"]
    unacked = [i for i in stored + arriving if i not in set(acked)]
    assert [item["id"] for item in again] == unacked[:SYNC_PAGE_ITEMS]


@pytest.mark.slow
def test_ten_thousand_items_are_caught_up_completely_in_order(bob: TestUser) -> None:
    with harness() as h:
        # Given 10,000 items queued for bob
        stored = seed(h, bob.user_id, 10_000, receipt_every=11)
        b = h.connect(bob)
        # When his device catches up with batch, acking each page as it stores it
        received, dones = catch_up(h, b, batch=True)
        # Then every item came once, in store order, in 20 bounded pages
        assert received == stored
        assert len(dones) == 10_000 // SYNC_PAGE_ITEMS
        # And nothing is left queued
        assert h.queue_of(bob) == []


def test_maximum_size_bodies_travel_one_per_frame_within_32_kb(h: Harness, bob: TestUser) -> None:
    # Given maximum-size messages between short ones
    big = seed(h, bob.user_id, 4, body_bytes=MAX_BODY_BYTES)
    small = seed(h, bob.user_id, 100)
    bigger = seed(h, bob.user_id, 3, body_bytes=MAX_BODY_BYTES)
    b = h.connect(bob)
    items, _, frames = page(h, b, batch=True)
    # Then every frame as posted is at most 32 KB, and everything came in order
    sizes = [len(json.dumps(f, separators=(",", ":")).encode()) for f in frames]
    assert max(sizes) <= MAX_FRAME_BYTES
    assert [item["id"] for item in items] == big + small + bigger
    assert len(b64url_decode(items[0]["body"])) == MAX_BODY_BYTES
    # And a maximum-size message fills its items frame alone
    assert [len(f["items"]) for f in frames[:3]] == [1, 1, 1]


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_pages_of_maximum_size_items_stay_within_the_post_budget(h: Harness, bob: TestUser) -> None:
    stored = seed(h, bob.user_id, SYNC_PAGE_POSTS + 20, body_bytes=MAX_BODY_BYTES)
    b = h.connect(bob)
    received: list[str] = []
    after = None
    while True:
        # (A 1 MB read may end a page sooner: moto counts whole items against it.)
        items, done, frames = page(h, b, batch=True, after=after)
        assert len(frames) <= SYNC_PAGE_POSTS + 1
        received += [item["id"] for item in items]
        if not done["more"]:
            break
        after = done["cursor"]
    assert received == stored


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_expired_items_are_skipped_on_every_page(h: Harness, bob: TestUser) -> None:
    # Given a whole page's worth of items that expire, between live ones
    early = seed(h, bob.user_id, 150)
    h.clock.advance(3600)
    expiring = seed(h, bob.user_id, SYNC_PAGE_ITEMS + 50)
    late = seed(h, bob.user_id, 150)
    for item_id in expiring:  # moto never sweeps: the items stay, past their expiry
        h.dynamodb.update_item(
            TableName=TABLE_NAMES["Queue"],
            Key={"pk": {"S": bob.user_id}, "sk": {"S": item_id}},
            UpdateExpression="SET expiresAt = :past",
            ExpressionAttributeValues={":past": {"N": str(h.clock.now_s() - 1)}},
        )
    b = h.connect(bob)
    # When bob catches up
    received, dones = catch_up(h, b, batch=True, acking=False)
    # Then only the unexpired items came, in order
    assert received == early + late
    assert sum(d["count"] for d in dones) == 300


def forgeries(cursor: str) -> list[str]:
    raw = b64url_decode(cursor)
    flipped = bytearray(raw)
    flipped[-1] ^= 1
    moved = bytearray(raw)
    moved[5] = ord("0") if moved[5] != ord("0") else ord("1")  # another position
    other_version = bytearray(raw)
    other_version[0] = 2
    return [
        "garbage",
        cursor[:-2],
        cursor + "AA",
        b64url_encode(bytes(flipped)),
        b64url_encode(bytes(moved)),
        b64url_encode(bytes(other_version)),
        b64url_encode(b"\x01" + b"0" * 17 + b"#" + b"0" * 8 + b"\x00" * 16),
    ]


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_a_forged_or_garbled_cursor_is_refused_and_changes_nothing(
    h: Harness, bob: TestUser
) -> None:
    seed(h, bob.user_id, SYNC_PAGE_ITEMS + 10)
    b = h.connect(bob)
    _, done, _ = page(h, b, batch=True)
    before = h.dump()
    for forged in forgeries(done["cursor"]):
        # When bob's client sends a cursor the server did not give
        reply = h.send(b, {"action": "sync", "after": forged, "batch": True})
        # Then it is BAD_REQUEST, nothing is posted and nothing changes
        assert reply is not None and reply["code"] == "BAD_REQUEST", forged
        assert reply["ref"] == "sync"
        assert h.posts.take(b.connection_id) == []
        assert h.dump() == before
    # And the genuine cursor still works
    items, _, _ = page(h, b, batch=True, after=done["cursor"])
    assert len(items) == 10


@pytest.mark.slow  # seeds 1,000+ queue items: in the full run, not the fast tier
def test_another_users_cursor_is_useless(h: Harness, alice: TestUser, bob: TestUser) -> None:
    # Given alice and bob each have a long queue and alice holds a cursor into hers
    seed(h, alice.user_id, SYNC_PAGE_ITEMS + 10)
    seed(h, bob.user_id, SYNC_PAGE_ITEMS + 10)
    a, b = h.connect(alice), h.connect(bob)
    _, alices, _ = page(h, a, batch=True)
    before = h.dump()
    # When bob presents alice's cursor
    reply = h.send(b, {"action": "sync", "after": alices["cursor"], "batch": True})
    # Then it is refused: it reaches neither her items nor a position in his own queue
    assert reply is not None and reply["code"] == "BAD_REQUEST"
    assert h.posts.take(b.connection_id) == []
    assert h.dump() == before


def test_a_server_that_never_gave_a_cursor_refuses_any_and_writes_no_key(
    h: Harness, bob: TestUser
) -> None:
    seed(h, bob.user_id, 5)
    b = h.connect(bob)
    shaped = b64url_encode(b"\x01" + b"1" * 17 + b"#" + b"abcdef01" + b"\x07" * 16)
    before = h.dump()
    reply = h.send(b, {"action": "sync", "after": shaped})
    assert reply is not None and reply["code"] == "BAD_REQUEST"
    assert h.dump() == before


def test_sync_done_names_the_cells_generation(bob: TestUser) -> None:
    with harness(cell_epoch="us-east-1") as h:
        b = h.connect(bob)
        _, done, _ = page(h, b, batch=False)
        assert done == {
            "type": "syncDone",
            "count": 0,
            "more": False,
            "epoch": "us-east-1#0",
            "dv": 0,
        }

"""setBlocked and getSettings (docs/protocol.md §2): a blocked user's frames are accepted on
the wire and have no effect, and nothing tells the blocked that they are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messenger.dal.subscriptions import Interest
from messenger_protocol.limits import MAX_BLOCKED
from tests.support.cells import CellsUnderTest, cells_harness, user_homed_in
from tests.support.harness import Connection, Harness, harness
from tests.support.identities import TestUser
from tests.support.push import Pushes, apns_token, push_harness

pytestmark = pytest.mark.integration


def set_blocked(h: Harness, connection: Connection, **fields: Any) -> dict[str, Any]:
    frame = {"action": "setBlocked"}
    frame |= {("userIds" if k == "user_ids" else k): v for k, v in fields.items()}
    reply = h.send(connection, frame)
    assert reply is not None
    return reply


def settings_of(h: Harness, connection: Connection) -> dict[str, Any]:
    reply = h.send(connection, {"action": "getSettings"})
    assert reply is not None and reply["type"] == "settings", reply
    return reply


def block_items(h: Harness) -> list[tuple[str, str]]:
    return sorted(
        (item["pk"]["S"], item["sk"]["S"])
        for item in h.dump()["test-users"]
        if item["sk"]["S"].startswith("BLOCK#")
    )


def subscriptions_to(h: Harness, user_id: str) -> list[str]:
    return [
        item["watcher"]["S"]
        for item in h.dump()["test-users"]
        if item["pk"]["S"] == f"U#{user_id}" and item["sk"]["S"].startswith("SUB#")
    ]


# --- the list ----------------------------------------------------------------------


def test_add_remove_and_replace_edit_one_list_that_get_settings_reads_back(
    h: Harness, bob: TestUser
) -> None:
    # Given bob, who blocks no one: his settings are the defaults
    b = h.connect(bob)
    assert settings_of(h, b) == {
        "type": "settings",
        "visibility": "everyone",
        "contacts": [],
        "blocked": [],
    }
    # When he blocks two users (one twice), then unblocks one
    assert set_blocked(h, b, add=["mallory", "eve", "mallory"]) == {"type": "blocked", "count": 2}
    assert set_blocked(h, b, remove=["eve", "nobody"]) == {"type": "blocked", "count": 1}
    # Then getSettings reads back the one left
    assert settings_of(h, b)["blocked"] == ["mallory"]
    # And userIds replaces the whole list
    assert set_blocked(h, b, user_ids=["trent", "oscar"])["count"] == 2
    assert settings_of(h, b)["blocked"] == ["oscar", "trent"]
    assert block_items(h) == [("U#bob", "BLOCK#oscar"), ("U#bob", "BLOCK#trent")]
    # And an empty list unblocks everyone, leaving no item behind
    assert set_blocked(h, b, user_ids=[])["count"] == 0
    assert block_items(h) == []
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and profile.blocked_count == 0


def test_get_settings_answers_visibility_and_contacts_as_set(h: Harness, bob: TestUser) -> None:
    b = h.connect(bob)
    h.send(b, {"action": "setPresenceVisibility", "visibility": "contacts", "contacts": ["x", "a"]})
    set_blocked(h, b, add=["mallory"])
    assert settings_of(h, b) == {
        "type": "settings",
        "visibility": "contacts",
        "contacts": ["a", "x"],
        "blocked": ["mallory"],
    }
    # Under another setting the contact list is not in effect, and is not answered
    h.send(b, {"action": "setPresenceVisibility", "visibility": "nobody"})
    assert settings_of(h, b)["contacts"] == []


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "setBlocked"},
        {"action": "setBlocked", "userIds": ["a"], "add": ["b"]},
        {"action": "setBlocked", "userIds": ["a"], "remove": ["b"]},
        {"action": "setBlocked", "add": ["a"], "remove": ["a"]},
        {"action": "setBlocked", "add": ["Mallory"]},
        {"action": "setBlocked", "add": [".."]},
        {"action": "setBlocked", "add": "mallory"},
        {"action": "setBlocked", "userIds": [f"u{i}" for i in range(MAX_BLOCKED + 1)]},
        {"action": "setBlocked", "add": [f"u{i}" for i in range(MAX_BLOCKED + 1)]},
    ],
    ids=[
        "nothing",
        "userIds-and-add",
        "userIds-and-remove",
        "add-and-remove-one-user",
        "uppercase-id",
        "dots-id",
        "not-a-list",
        "too-many-userIds",
        "too-many-add",
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    h: Harness, bob: TestUser, frame: dict[str, Any]
) -> None:
    b = h.connect(bob)
    set_blocked(h, b, add=["eve"])
    before = h.dump()
    reply = h.send(b, frame)
    assert reply is not None and (reply["type"], reply["code"]) == ("error", "BAD_REQUEST")
    assert reply["ref"] == "setBlocked"
    assert h.dump() == before


def test_an_edit_past_the_limit_is_refused_and_writes_nothing(h: Harness, bob: TestUser) -> None:
    # Given bob blocks as many as he may
    b = h.connect(bob)
    assert set_blocked(h, b, user_ids=[f"u{i}" for i in range(MAX_BLOCKED)])["count"] == MAX_BLOCKED
    before = h.dump()
    # When he adds one more (and removes nobody he blocks)
    reply = set_blocked(h, b, add=["one-more"], remove=["not-blocked"])
    # Then it is refused, and the list stays as it was
    assert (reply["type"], reply["code"]) == ("error", "BAD_REQUEST")
    assert h.dump() == before
    # While swapping one for another keeps within it
    assert set_blocked(h, b, add=["one-more"], remove=["u0"])["count"] == MAX_BLOCKED


# --- what a block does ---------------------------------------------------------------


@pytest.fixture
def hp() -> Iterator[tuple[Harness, Pushes]]:
    with push_harness() as running:
        yield running


def test_a_blocked_sender_gets_an_ordinary_ack_and_nothing_is_stored_delivered_or_pushed(
    hp: tuple[Harness, Pushes], alice: TestUser, bob: TestUser, mallory: TestUser
) -> None:
    h, pushes = hp
    # Given bob, with a push device and a live connection, blocks mallory
    b = h.connect(bob)
    register = {"action": "registerPush", "platform": "APNS", "token": apns_token()}
    assert h.send(b, register)["type"] == "pushRegistered"
    set_blocked(h, b, add=["mallory"])
    m, a = h.connect(mallory), h.connect(alice)
    # When mallory sends to bob, online and then offline
    online = h.send(m, h.message(m, bob, "hello", "msg-blk-0001"))
    h.disconnect(b)
    offline = h.send(m, h.message(m, bob, "hello again", "msg-blk-0002"))
    # Then she gets acks shaped exactly like alice's
    from_alice = h.send(a, h.message(a, bob, "hi", "msg-blk-0003"))
    for ack, message_id in ((online, "msg-blk-0001"), (offline, "msg-blk-0002")):
        assert ack["type"] == "ack" and ack["messageId"] == message_id
        assert sorted(ack) == sorted(from_alice)
    # And bob's queue holds alice's message only; bob was posted no message, and the
    # only push is the one for alice's
    assert [item["sender"]["S"] for item in h.queue_of(bob) if "sender" in item] == ["alice"]
    assert h.posts.of_type(b.connection_id, "message") == []
    assert len(pushes.all()) == 1


def test_a_block_keeps_what_was_queued_and_unblocking_lets_messages_through(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    b, m = h.connect(bob), h.connect(mallory)
    h.disconnect(b)
    h.send(m, h.message(m, bob, "before", "msg-blk-0010"))
    b = h.connect(bob)
    set_blocked(h, b, add=["mallory"])
    assert len(h.queue_of(bob)) == 1  # already queued stays
    set_blocked(h, b, remove=["mallory"])
    assert h.send(m, h.message(m, bob, "after", "msg-blk-0011"))["type"] == "ack"
    assert len(h.posts.of_type(b.connection_id, "message")) == 1
    assert len(h.queue_of(bob)) == 2


def test_mark_seen_by_a_blocked_reader_is_answered_as_usual_and_tells_nothing(
    h: Harness, alice: TestUser, bob: TestUser, mallory: TestUser
) -> None:
    b, m, a = h.connect(bob), h.connect(mallory), h.connect(alice)
    set_blocked(h, b, add=["mallory"])
    # When mallory and alice each mark a message of bob's seen
    by_mallory = h.send(m, {"action": "markSeen", "to": "bob", "messageIds": ["msg-blk-0020"]})
    by_alice = h.send(a, {"action": "markSeen", "to": "bob", "messageIds": ["msg-blk-0021"]})
    # Then both get the same answer, and bob hears and stores alice's receipt only
    assert by_mallory["type"] == by_alice["type"] == "seenStored"
    assert by_mallory | {"messageIds": by_alice["messageIds"]} == by_alice
    [receipt] = h.posts.of_type(b.connection_id, "receipt")
    assert receipt["by"] == "alice"
    assert [item["by"]["S"] for item in h.queue_of(bob)] == ["alice"]


def test_a_blocked_watcher_sees_an_unknown_user_and_records_no_subscription(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    b, m = h.connect(bob), h.connect(mallory)
    set_blocked(h, b, add=["mallory"])
    reply = h.send(m, {"action": "getPresence", "userIds": ["bob", "ghost"], "subscribe": True})
    assert reply["users"] == [
        {"userId": "bob", "online": False, "lastSeen": None},
        {"userId": "ghost", "online": False, "lastSeen": None},
    ]
    assert subscriptions_to(h, "bob") == []
    # While bob still sees himself
    assert h.send(b, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is True


def test_a_newly_blocked_watchers_subscription_ends_silently(
    h: Harness, alice: TestUser, bob: TestUser, mallory: TestUser
) -> None:
    # Given alice and mallory watch bob
    b = h.connect(bob)
    a, m = h.connect(alice), h.connect(mallory)
    for watcher in (a, m):
        h.send(watcher, {"action": "getPresence", "userIds": ["bob"], "subscribe": True})
    assert sorted(subscriptions_to(h, "bob")) == ["alice", "mallory"]
    # When bob blocks mallory
    set_blocked(h, b, add=["mallory"])
    # Then her subscription is gone, and she was told nothing
    assert subscriptions_to(h, "bob") == ["alice"]
    assert h.posts.of_type(m.connection_id, "presence") == []
    # And when bob goes offline (and it holds), alice hears it and mallory still hears
    # nothing
    h.disconnect(b)
    h.settle_flaps()
    assert h.posts.of_type(a.connection_id, "presence")[-1]["users"][0]["online"] is False
    assert h.posts.of_type(m.connection_id, "presence") == []


def test_a_subscription_made_before_the_block_is_not_told_a_change(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    # Given mallory's subscription to bob that a block did not find (recorded meanwhile)
    b, m = h.connect(bob), h.connect(mallory)
    set_blocked(h, b, add=["mallory"])
    h.services.subscriptions.add_subscriptions(
        "mallory", m.connection_id, ["bob"], ["bob"], h.clock.now_s(), h.clock.now_s() + 3600
    )
    # When bob goes offline (and it holds), mallory hears nothing, and the subscription ends
    h.disconnect(b)
    h.settle_flaps()
    assert h.posts.of_type(m.connection_id, "presence") == []
    assert subscriptions_to(h, "bob") == []


# --- refusals come before the block ---------------------------------------------------


def test_refusals_come_before_the_block(bob: TestUser, mallory: TestUser) -> None:
    with harness(rate_limit_per_minute=60, rate_limit_burst=2) as h:
        b, m = h.connect(bob), h.connect(mallory)
        set_blocked(h, b, add=["mallory"])
        # A body over its limit is TOO_LARGE, a malformed frame BAD_REQUEST, as for anyone
        big = h.message(m, bob, "x", "msg-blk-0030") | {"body": "A" * 40_000}
        assert h.send(m, big)["code"] == "TOO_LARGE"
        bad = h.message(m, bob, "x", "msg-blk-0031") | {"nonce": "short"}
        assert h.send(m, bad)["code"] == "BAD_REQUEST"
        # And past her rate, RATE_LIMITED, with retryAfter like anyone's
        replies = [h.send(m, h.message(m, bob, "x", f"msg-blk-004{i}")) for i in range(3)]
        assert [r["type"] for r in replies[:2]] == ["ack", "ack"]
        assert replies[2]["code"] == "RATE_LIMITED"
        assert h.queue_of(bob) == []


# --- across cells: the recipient's home cell decides ----------------------------------


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness() as running:
        yield running


def test_across_cells_the_recipients_cell_drops_what_a_blocked_user_sends(
    cells: CellsUnderTest,
) -> None:
    bob, mallory = user_homed_in("c0", "bob"), user_homed_in("c1", "mallory")
    b, m = cells["c0"].connect(bob), cells["c1"].connect(mallory)
    assert set_blocked(cells["c0"], b, add=[mallory.user_id])["count"] == 1
    # A message: an ordinary ack from c0, nothing stored or delivered anywhere
    ack = cells["c1"].send(m, cells["c1"].message(m, bob, "hi", "msg-blk-0050"))
    assert ack["type"] == "ack" and ack["messageId"] == "msg-blk-0050"
    assert cells["c0"].queue_of(bob) == [] and cells["c1"].queue_of(bob) == []
    assert cells["c0"].posts.of_type(b.connection_id, "message") == []
    # markSeen: answered as usual, nothing queued for bob
    seen = {"action": "markSeen", "to": bob.user_id, "messageIds": ["msg-blk-0051"]}
    assert cells["c1"].send(m, seen)["type"] == "seenStored"
    assert cells["c0"].queue_of(bob) == []
    assert cells["c0"].posts.of_type(b.connection_id, "receipt") == []
    # Presence: bob looks unknown, and no interest is recorded in c0
    ask = {"action": "getPresence", "userIds": [bob.user_id], "subscribe": True}
    reply = cells["c1"].send(m, ask)
    assert reply["users"] == [{"userId": bob.user_id, "online": False, "lastSeen": None}]
    users_table = cells["c0"].table_names["Users"]
    interests = [i for i in cells["c0"].dump()[users_table] if "watcherCell" in i]
    assert interests == []


def test_across_cells_a_newly_blocked_watcher_is_told_nothing_more(cells: CellsUnderTest) -> None:
    # Given mallory (c1) watching bob (c0), her interest recorded in c0
    bob, mallory = user_homed_in("c0", "bob"), user_homed_in("c1", "mallory")
    b, m = cells["c0"].connect(bob), cells["c1"].connect(mallory)
    ask = {"action": "getPresence", "userIds": [bob.user_id], "subscribe": True}
    assert cells["c1"].send(m, ask)["users"][0]["online"] is True
    users_table = cells["c0"].table_names["Users"]
    assert [i for i in cells["c0"].dump()[users_table] if "watcherCell" in i] != []
    # When bob blocks her
    set_blocked(cells["c0"], b, add=[mallory.user_id])
    # Then her interest in c0 is gone, and when bob goes offline she hears nothing
    assert [i for i in cells["c0"].dump()[users_table] if "watcherCell" in i] == []
    cells["c0"].disconnect(b)
    assert cells["c1"].posts.of_type(m.connection_id, "presence") == []


def test_across_cells_an_interest_the_block_did_not_find_ends_at_the_next_change(
    cells: CellsUnderTest,
) -> None:
    # Given bob (c0) blocks mallory (c1), and an interest of hers recorded meanwhile
    bob, mallory = user_homed_in("c0", "bob"), user_homed_in("c1", "mallory")
    b, m = cells["c0"].connect(bob), cells["c1"].connect(mallory)
    ask = {"action": "getPresence", "userIds": [bob.user_id], "subscribe": True}
    cells["c1"].send(m, ask)  # her subscription in c1 (c0 records no interest: blocked)
    set_blocked(cells["c0"], b, add=[mallory.user_id])
    interest = Interest(bob.user_id, "c1", mallory.user_id)
    cells["c0"].services.subscriptions.add_interests([interest], cells["c0"].clock.now_s() + 60)
    # When bob goes offline, c1 is not told, and the interest ends
    cells.invokes.calls.clear()
    cells["c0"].disconnect(b)
    cells["c0"].settle_flaps()
    assert [call for call in cells.invokes.calls if call[0] == "c1"] == []
    assert cells["c1"].posts.of_type(m.connection_id, "presence") == []
    users_table = cells["c0"].table_names["Users"]
    assert [i for i in cells["c0"].dump()[users_table] if "watcherCell" in i] == []

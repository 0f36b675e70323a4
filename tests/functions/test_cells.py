"""Users of different cells (docs/protocol.md §6), on moto: each cell its own tables and
functions, the cell-to-cell call a real Lambda Invoke of the peer's Relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from nacl.signing import SigningKey

from messenger.contract import STALE_CONNECTION_SECONDS
from messenger.transport.relay_records import read_request, request_payload
from messenger_protocol.errors import BadRequest
from messenger_protocol.names import RelayOperation
from tests.support.cells import CellsUnderTest, cells_harness, relay_arn, user_homed_in
from tests.support.harness import Connection, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

ALICE = user_homed_in("c0", "alice")  # at home in c0
BOB = user_homed_in("c1", "bob")  # at home in c1


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness() as running:
        yield running


def test_given_a_user_of_another_cell_then_the_handshake_is_refused_and_writes_nothing(
    cells: CellsUnderTest,
) -> None:
    before = cells.dump()
    # When bob (home c1) signs a correct connect to c0
    decision = cells["c0"].authorize(BOB.connect_query(ts=cells["c0"].clock.now_s()))
    # Then c0 denies it (403) and no table of either cell changed
    assert decision["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert cells.dump() == before


def test_given_users_in_two_cells_then_a_message_crosses_with_one_relay_call(
    cells: CellsUnderTest,
) -> None:
    # Given alice online in c0 and bob online in c1 (their registrations counted in the
    # cell that keeps their address's budget: a relay call for one of them)
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    cells.invokes.calls.clear()
    # When alice sends to bob
    ack = cells["c0"].send(a, cells["c0"].message(a, BOB, "hello across", "msg-cross-0001"))
    # Then alice's ack carries c1's serverTs, bob got the message live from c1
    assert ack["type"] == "ack" and ack["messageId"] == "msg-cross-0001"
    [message] = cells["c1"].posts.of_type(b.connection_id, "message")
    assert message["from"] == ALICE.user_id
    assert message["serverTs"] == ack["serverTs"]
    assert BOB.decrypt_from(ALICE, message["body"], message["nonce"]) == "hello across"
    # And it is stored in bob's home queue, nothing in c0's
    assert len(cells["c1"].queue_of(BOB)) == 1
    assert cells["c0"].queue_of(BOB) == []
    # And exactly one cell-to-cell call was made
    assert [(cell, kind) for cell, kind, _ in cells.invokes.calls] == [("c1", "RequestResponse")]


def test_given_a_resend_across_cells_then_the_same_ack_and_no_second_delivery(
    cells: CellsUnderTest,
) -> None:
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    frame = cells["c0"].message(a, BOB, "once", "msg-cross-0002")
    first, second = cells["c0"].send(a, frame), cells["c0"].send(a, frame)
    assert first == second
    assert len(cells["c1"].posts.of_type(b.connection_id, "message")) == 1
    assert len(cells["c1"].queue_of(BOB)) == 1


def test_given_an_unknown_user_of_another_cell_then_unknown_recipient_and_nothing_stored(
    cells: CellsUnderTest,
) -> None:
    a = cells["c0"].connect(ALICE)
    nobody = user_homed_in("c1", "nobody")
    before = cells.dump()
    reply = cells["c0"].send(a, cells["c0"].message(a, nobody, "hi", "msg-cross-0003"))
    assert (reply["type"], reply["code"], reply["ref"]) == (
        "error",
        "UNKNOWN_RECIPIENT",
        "msg-cross-0003",
    )
    after = cells.dump()
    # Only alice's rate-limit bucket in c0 moved; c1 wrote nothing.
    assert after["c1"] == before["c1"]


def test_given_a_peer_that_does_not_answer_then_internal_and_the_resend_delivers_once(
    cells: CellsUnderTest,
) -> None:
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    frame = cells["c0"].message(a, BOB, "later", "msg-cross-0004")
    cells.invokes.failing.add("c1")
    assert cells["c0"].send(a, frame)["code"] == "INTERNAL"
    cells.invokes.failing.clear()
    assert cells["c0"].send(a, frame)["type"] == "ack"
    assert len(cells["c1"].posts.of_type(b.connection_id, "message")) == 1


def test_given_keys_of_a_user_of_another_cell_then_they_come_from_the_home_cell(
    cells: CellsUnderTest,
) -> None:
    a = cells["c0"].connect(ALICE)
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    keys = cells["c0"].send(a, {"action": "getKeys", "userId": BOB.user_id})
    assert (keys["type"], keys["signKey"], keys["boxKey"]) == (
        "keys",
        BOB.sign_key_b64,
        BOB.box_key_b64,
    )
    unknown = cells["c0"].send(a, {"action": "getKeys", "userId": "nobody-x1"})
    assert unknown["type"] == "error" and unknown["code"] == "UNKNOWN_USER"


def _receipt(
    recipient: str, by: str, status: str = "seen", ids: list[str] | None = None
) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "status": status,
        "messageIds": ["msg-cross-0001"] if ids is None else ids,
        "by": by,
        "at": 1,
    }


def _change(user: str, watchers: list[str]) -> dict[str, Any]:
    entry = {"userId": user, "online": True, "lastSeen": None}
    return {
        "op": "presenceChanged",
        "from": "c1",
        "user": user,
        "entry": entry,
        "watchers": watchers,
    }


def _relay(cells: CellsUnderTest, cell: str, request: Any, *, signer: str | None = None) -> dict:
    """Invoke a cell's Relay directly, through the lambda client, as a peer would: signed
    by the cell it says it is from (or by `signer`), when it says."""
    caller = request.get("from") if isinstance(request, dict) else None
    signed_by = signer or (caller if caller in cells.harnesses else None)
    if signed_by is not None:
        request = cells.signed_by(signed_by, request, to=cell)
    client = cells.invokes.client()
    response = client.invoke(FunctionName=relay_arn(cell), Payload=json.dumps(request).encode())
    return json.loads(response["Payload"].read())


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "storeMessage", "from": "c1"},  # no frame
        {"op": "keys", "from": "c1", "userId": BOB.user_id},  # bob is not c0's
        {"op": "dropTables", "from": "c1"},
        # a receipt for a user who is not c0's, or by a user who is not the caller's
        {"op": "storeReceipt", "from": "c1", "receipts": [_receipt(BOB.user_id, BOB.user_id)]},
        {"op": "storeReceipt", "from": "c1", "receipts": [_receipt(ALICE.user_id, ALICE.user_id)]},
        {"op": "storeReceipt", "from": "c1", "receipts": []},
        {
            "op": "storeReceipt",
            "from": "c1",
            "receipts": [_receipt(ALICE.user_id, BOB.user_id, status="read")],
        },
        {
            "op": "storeReceipt",
            "from": "c1",
            "receipts": [_receipt(ALICE.user_id, BOB.user_id, ids=[])],
        },
        # presence of a user who is not c0's, or for a watcher who is not the caller's
        {"op": "presence", "from": "c1", "watcher": BOB.user_id, "userIds": [BOB.user_id]},
        {"op": "presence", "from": "c1", "watcher": ALICE.user_id, "userIds": [ALICE.user_id]},
        {
            "op": "presence",
            "from": "c1",
            "watcher": BOB.user_id,
            "userIds": [ALICE.user_id],
            "subscribe": "yes",
        },
        # a change of a user who is not the caller's, or told to watchers who are not c0's
        _change(ALICE.user_id, [ALICE.user_id]),
        _change(BOB.user_id, [BOB.user_id]),
        _change(BOB.user_id, []),
        {"from": "c1"},
        ["not", "an", "object"],
    ],
)
def test_a_relay_request_a_peer_may_not_make_is_refused_and_changes_nothing(
    cells: CellsUnderTest, request_: object
) -> None:
    cells["c0"].disconnect(cells["c0"].connect(ALICE))
    before = cells.dump()
    answer = _relay(cells, "c0", request_)
    assert answer["error"]["code"] == "BAD_REQUEST"
    assert cells.dump() == before


@pytest.mark.parametrize("caller", ["c1", "c0"])
def test_a_deployment_that_is_one_cell_answers_no_relay_request(caller: str) -> None:
    # Given a single deployment (no CELL_ID): one cell, home to every user, with no peers
    with harness(connections_endpoint="https://relay.test/local") as h:
        h.disconnect(h.connect(TestUser("alice")))
        before = h.dump()
        # When its Relay is asked for a user's keys, by another cell or by "itself"
        request = read_request(
            request_payload(
                RelayOperation.KEYS, caller, "c0", {"userId": "alice"}, SigningKey.generate(), 0
            )
        )
        # Then it refuses, and nothing changed
        with pytest.raises(BadRequest, match="relay requests come from peer cells"):
            h.services.relay().answer(request)
        assert h.dump() == before


def test_a_relayed_message_must_come_from_a_user_of_the_calling_cell(
    cells: CellsUnderTest,
) -> None:
    # c1 cannot make c0 store a message "from" a user of c0 (or of any cell but c1)
    cells["c0"].disconnect(cells["c0"].connect(ALICE))
    carol = user_homed_in("c0", "carol")
    cells["c0"].disconnect(cells["c0"].connect(carol))
    frame = cells["c0"].message(cells["c0"].connect(carol), ALICE, "forged", "msg-forged-01")
    before = cells.dump()
    answer = _relay(
        cells, "c0", {"op": "storeMessage", "from": "c1", "sender": carol.user_id, "frame": frame}
    )
    assert answer["error"]["code"] == "BAD_REQUEST"
    assert cells.dump() == before


# --- receipts across cells -----------------------------------------------------------


def _deliver(cells: CellsUnderTest, a: Connection, b: Connection, message_id: str) -> str:
    """alice (c0) sends bob (c1) a message; the queue item id bob's device got."""
    cells["c0"].send(a, cells["c0"].message(a, BOB, "hi", message_id))
    return str(cells["c1"].posts.of_type(b.connection_id, "message")[-1]["id"])


def _ops(cells: CellsUnderTest) -> list[tuple[str, str, str]]:
    return [(cell, kind, payload["op"]) for cell, kind, payload in cells.invokes.calls]


def test_given_a_message_from_another_cell_when_acked_then_its_sender_gets_delivered_at_home(
    cells: CellsUnderTest,
) -> None:
    # Given alice (c0) online and bob (c1) holding her message
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    item_id = _deliver(cells, a, b, "msg-rcpt-0001")
    cells.invokes.calls.clear()
    # When bob acks it
    assert cells["c1"].send(b, {"action": "ack", "ids": [item_id]}) is None
    # Then alice got a delivered receipt live from c0, where it is queued for her
    [receipt] = cells["c0"].posts.of_type(a.connection_id, "receipt")
    assert (receipt["status"], receipt["messageIds"], receipt["by"]) == (
        "delivered",
        ["msg-rcpt-0001"],
        BOB.user_id,
    )
    assert [item["sk"]["S"] for item in cells["c0"].queue_of(ALICE)] == [receipt["id"]]
    # And bob's queue in c1 is empty, after exactly one storeReceipt call to c0
    assert cells["c1"].queue_of(BOB) == []
    assert _ops(cells) == [("c0", "RequestResponse", "storeReceipt")]


def test_given_an_offline_sender_then_the_receipt_from_another_cell_comes_with_sync(
    cells: CellsUnderTest,
) -> None:
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    item_id = _deliver(cells, a, b, "msg-rcpt-0002")
    cells["c0"].disconnect(a)
    cells["c1"].send(b, {"action": "ack", "ids": [item_id]})
    # When alice comes back and syncs in c0
    again = cells["c0"].connect(ALICE, with_keys=False)
    cells["c0"].send(again, {"action": "sync"})
    # Then the delivered receipt is served like a local one
    [receipt] = cells["c0"].posts.of_type(again.connection_id, "receipt")
    assert (receipt["status"], receipt["messageIds"]) == ("delivered", ["msg-rcpt-0002"])
    [done] = cells["c0"].posts.of_type(again.connection_id, "syncDone")
    assert done["count"] == 1


def test_given_senders_of_several_cells_then_one_ack_makes_one_call_per_foreign_cell(
    cells: CellsUnderTest,
) -> None:
    # Given bob (c1) holding messages from alice and carol (both c0) and from dave (c1)
    carol, dave = user_homed_in("c0", "carol"), user_homed_in("c1", "dave")
    a, c = cells["c0"].connect(ALICE), cells["c0"].connect(carol)
    d, b = cells["c1"].connect(dave), cells["c1"].connect(BOB)
    cells["c0"].send(a, cells["c0"].message(a, BOB, "1", "msg-batch-0001"))
    cells["c0"].send(c, cells["c0"].message(c, BOB, "2", "msg-batch-0002"))
    cells["c0"].send(a, cells["c0"].message(a, BOB, "3", "msg-batch-0003"))
    cells["c1"].send(d, cells["c1"].message(d, BOB, "4", "msg-batch-0004"))
    ids = [m["id"] for m in cells["c1"].posts.of_type(b.connection_id, "message")]
    cells.invokes.calls.clear()
    # When bob acks all four at once
    cells["c1"].send(b, {"action": "ack", "ids": ids})
    # Then c0 was called once, with alice's two ids and carol's one
    [(_, _, payload)] = cells.invokes.calls
    assert payload["op"] == "storeReceipt"
    assert sorted((r["recipient"], tuple(r["messageIds"])) for r in payload["receipts"]) == sorted(
        [
            (ALICE.user_id, ("msg-batch-0001", "msg-batch-0003")),
            (carol.user_id, ("msg-batch-0002",)),
        ]
    )
    # And each sender got one receipt, dave's locally in c1; bob's queue is empty
    assert len(cells["c0"].posts.of_type(a.connection_id, "receipt")) == 1
    assert len(cells["c0"].posts.of_type(c.connection_id, "receipt")) == 1
    assert len(cells["c1"].posts.of_type(d.connection_id, "receipt")) == 1
    assert cells["c1"].queue_of(BOB) == []


def test_given_the_senders_cell_fails_then_the_ack_is_internal_and_nothing_is_deleted(
    cells: CellsUnderTest,
) -> None:
    # Given bob holding a message from alice (c0) and one from dave (his own cell)
    dave = user_homed_in("c1", "dave")
    a, b, d = cells["c0"].connect(ALICE), cells["c1"].connect(BOB), cells["c1"].connect(dave)
    foreign = _deliver(cells, a, b, "msg-fail-0001")
    cells["c1"].send(d, cells["c1"].message(d, BOB, "local", "msg-fail-0002"))
    ids = [m["id"] for m in cells["c1"].posts.of_type(b.connection_id, "message")]
    assert foreign in ids
    before = cells.dump()
    # When c0's Relay does not answer bob's ack
    cells.invokes.failing.add("c0")
    reply = cells["c1"].send(b, {"action": "ack", "ids": ids})
    # Then bob is told INTERNAL (a 5xx: try again), no message was deleted, c0 unchanged
    assert (reply["type"], reply["code"]) == ("error", "INTERNAL")
    assert cells.dump()["c0"] == before["c0"]
    assert {item["sk"]["S"] for item in cells["c1"].queue_of(BOB)} == set(ids)
    assert cells["c0"].posts.of_type(a.connection_id, "receipt") == []
    # And the same ack again, once c0 answers, deletes them and tells alice once
    cells.invokes.failing.clear()
    assert cells["c1"].send(b, {"action": "ack", "ids": ids}) is None
    assert cells["c1"].queue_of(BOB) == []
    assert len(cells["c0"].posts.of_type(a.connection_id, "receipt")) == 1


def test_given_a_reader_in_another_cell_then_mark_seen_reaches_the_sender_at_home(
    cells: CellsUnderTest,
) -> None:
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    cells.invokes.calls.clear()
    # When bob (c1) marks alice's (c0) messages seen
    frame = {"action": "markSeen", "to": ALICE.user_id, "messageIds": ["msg-seen-0001"] * 2}
    # Then bob's cell answers seenStored with the epoch of c0, which queued the receipt
    stored = cells["c1"].send(b, frame)
    assert (stored["type"], stored["to"], stored["epoch"]) == (
        "seenStored",
        ALICE.user_id,
        cells["c0"].services.epoch.current(),
    )
    # And alice gets the seen receipt live from c0, queued there, after one Relay call
    [receipt] = cells["c0"].posts.of_type(a.connection_id, "receipt")
    assert (receipt["status"], receipt["messageIds"], receipt["by"]) == (
        "seen",
        ["msg-seen-0001"],
        BOB.user_id,
    )
    assert len(cells["c0"].queue_of(ALICE)) == 1
    assert _ops(cells) == [("c0", "RequestResponse", "storeReceipt")]


def test_given_an_unknown_user_of_another_cell_then_mark_seen_is_unknown_recipient(
    cells: CellsUnderTest,
) -> None:
    b = cells["c1"].connect(BOB)
    nobody = user_homed_in("c0", "nobody")
    before = cells.dump()
    frame = {"action": "markSeen", "to": nobody.user_id, "messageIds": ["msg-seen-0002"]}
    reply = cells["c1"].send(b, frame)
    assert (reply["type"], reply["code"], reply["ref"]) == (
        "error",
        "UNKNOWN_RECIPIENT",
        "markSeen",
    )
    # No table of either cell changed (the reader's rate-limit buckets aside)
    assert cells.dump() == before


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_given_too_many_seen_receipts_to_one_foreign_user_then_rate_limited_in_the_readers_cell(
    cells: CellsUnderTest,
) -> None:
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
    frame = {"action": "markSeen", "to": ALICE.user_id, "messageIds": ["msg-seen-0003"]}
    replies = [cells["c1"].send(b, frame) for _ in range(61)]
    assert [reply["type"] for reply in replies[:60]] == ["seenStored"] * 60
    assert (replies[60]["type"], replies[60]["code"]) == ("error", "RATE_LIMITED")
    # The refused one never reached c0
    assert len(cells["c0"].posts.of_type(a.connection_id, "receipt")) == 60


# --- order across cells --------------------------------------------------------------


def test_given_messages_across_cells_then_the_sender_order_holds(cells: CellsUnderTest) -> None:
    a = cells["c0"].connect(ALICE)
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    sent = [f"msg-order-{n:04d}" for n in range(5)]
    for message_id in sent:  # one after the other's ack, as the SDK sends
        assert cells["c0"].send(a, cells["c0"].message(a, BOB, "x", message_id))["type"] == "ack"
    b = cells["c1"].connect(BOB, with_keys=False)
    cells["c1"].send(b, {"action": "sync"})
    assert [m["messageId"] for m in cells["c1"].posts.of_type(b.connection_id, "message")] == sent


# --- presence across cells -----------------------------------------------------------


def _presence(
    cells: CellsUnderTest, cell: str, c: Connection, *users: str, subscribe: bool = False
) -> Any:
    frame = {"action": "getPresence", "userIds": list(users), "subscribe": subscribe}
    return cells[cell].send(c, frame)


def _visibility(
    cells: CellsUnderTest, cell: str, c: Connection, visibility: str, *contacts: str
) -> None:
    frame: dict[str, Any] = {"action": "setPresenceVisibility", "visibility": visibility}
    if visibility == "contacts":
        frame["contacts"] = list(contacts)
    assert cells[cell].send(c, frame)["type"] == "presenceVisibility"


def _items(cells: CellsUnderTest, cell: str, prefix: str) -> list[tuple[str, str]]:
    users = cells.dump()[cell][cells[cell].table_names["Users"]]
    return sorted(
        (item["pk"]["S"], item["sk"]["S"]) for item in users if item["sk"]["S"].startswith(prefix)
    )


def test_given_users_of_two_cells_then_get_presence_asks_each_foreign_cell_once(
    cells: CellsUnderTest,
) -> None:
    # Given bob and dave (c1) online, erin (c1) known and offline, and alice in c0
    dave, erin = user_homed_in("c1", "dave"), user_homed_in("c1", "erin")
    cells["c1"].connect(BOB), cells["c1"].connect(dave)
    cells["c1"].disconnect(cells["c1"].connect(erin))
    carol = user_homed_in("c0", "carol")
    a, _ = cells["c0"].connect(ALICE), cells["c0"].connect(carol)
    cells.invokes.calls.clear()
    nobody = user_homed_in("c1", "nobody")
    # When alice asks for all of them
    asked = [BOB.user_id, carol.user_id, nobody.user_id, dave.user_id, erin.user_id]
    reply = _presence(cells, "c0", a, *asked)
    # Then one answer, in the order asked, from one call to c1
    assert [entry["userId"] for entry in reply["users"]] == asked
    online = {entry["userId"]: entry["online"] for entry in reply["users"]}
    assert online == {
        BOB.user_id: True,
        carol.user_id: True,
        nobody.user_id: False,
        dave.user_id: True,
        erin.user_id: False,
    }
    by_id = {entry["userId"]: entry for entry in reply["users"]}
    assert by_id[nobody.user_id]["lastSeen"] is None
    assert isinstance(by_id[erin.user_id]["lastSeen"], int)
    assert _ops(cells) == [("c1", "RequestResponse", "presence")]


def test_given_a_subscription_across_cells_then_changes_reach_the_watcher(
    cells: CellsUnderTest,
) -> None:
    # Given alice (c0) subscribed to bob (c1), who is offline
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    a = cells["c0"].connect(ALICE)
    [entry] = _presence(cells, "c0", a, BOB.user_id, subscribe=True)["users"]
    assert entry["online"] is False
    # Then the subscription is in c0 like a local one, the interest in c1
    assert _items(cells, "c0", "SUB#") == [(f"U#{BOB.user_id}", f"SUB#{a.connection_id}")]
    assert _items(cells, "c1", "WATCH#c0#") == [(f"U#{BOB.user_id}", f"WATCH#c0#{ALICE.user_id}")]
    cells.invokes.calls.clear()
    # When bob comes online (a moment after his last close: it is told once it held),
    # then goes offline
    b = cells["c1"].connect(BOB, with_keys=False)
    cells["c1"].settle_flaps()
    cells["c0"].clock.advance(5)
    cells["c1"].disconnect(b)
    # Then alice heard both changes, each from one asynchronous call to c0
    changes = cells["c0"].posts.of_type(a.connection_id, "presence")
    assert [c["users"][0]["online"] for c in changes] == [True, False]
    assert isinstance(changes[1]["users"][0]["lastSeen"], int)
    assert _ops(cells) == [("c0", "Event", "presenceChanged")] * 2


def test_given_a_second_device_then_a_cross_cell_watcher_hears_no_change(
    cells: CellsUnderTest,
) -> None:
    b = cells["c1"].connect(BOB)
    a = cells["c0"].connect(ALICE)
    _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    cells.invokes.calls.clear()
    cells["c1"].connect(BOB, with_keys=False)  # a second device: bob was online already
    cells["c1"].disconnect(b)  # and still is
    assert cells["c0"].posts.of_type(a.connection_id, "presence") == []
    assert cells.invokes.calls == []


def test_given_bob_hides_from_everyone_then_a_watcher_in_another_cell_sees_an_unknown_user(
    cells: CellsUnderTest,
) -> None:
    # Given bob (c1) online, visible to nobody
    b = cells["c1"].connect(BOB)
    _visibility(cells, "c1", b, "nobody")
    a = cells["c0"].connect(ALICE)
    # When alice subscribes
    [entry] = _presence(cells, "c0", a, BOB.user_id, subscribe=True)["users"]
    # Then bob looks unknown, and neither a subscription nor an interest stays
    assert entry == {"userId": BOB.user_id, "online": False, "lastSeen": None}
    assert _items(cells, "c0", "SUB#") == []
    assert _items(cells, "c1", "WATCH#c0#") == []
    # And his changes reach no one
    cells.invokes.calls.clear()
    cells["c1"].disconnect(b)
    assert cells["c0"].posts.of_type(a.connection_id, "presence") == []
    assert cells.invokes.calls == []


def test_given_contacts_then_only_listed_watchers_of_another_cell_see_and_hear(
    cells: CellsUnderTest,
) -> None:
    # Given bob (c1) visible to alice only; alice and carol (c0) subscribed
    carol = user_homed_in("c0", "carol")
    b = cells["c1"].connect(BOB)
    _visibility(cells, "c1", b, "contacts", ALICE.user_id)
    a, c = cells["c0"].connect(ALICE), cells["c0"].connect(carol)
    assert _presence(cells, "c0", a, BOB.user_id, subscribe=True)["users"][0]["online"] is True
    assert _presence(cells, "c0", c, BOB.user_id, subscribe=True)["users"][0]["online"] is False
    cells.invokes.calls.clear()
    # When bob goes offline (a moment after he came: it is told once it held)
    cells["c1"].disconnect(b)
    cells["c1"].settle_flaps()
    # Then alice hears it, carol hears nothing
    [change] = cells["c0"].posts.of_type(a.connection_id, "presence")
    assert change["users"][0]["online"] is False
    assert cells["c0"].posts.of_type(c.connection_id, "presence") == []
    [(_, _, payload)] = cells.invokes.calls
    assert payload["watchers"] == [ALICE.user_id]


def test_given_a_watcher_no_longer_allowed_then_it_sees_an_unknown_user_and_its_interest_ends(
    cells: CellsUnderTest,
) -> None:
    b = cells["c1"].connect(BOB)
    a = cells["c0"].connect(ALICE)
    _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    # When bob hides from everyone
    _visibility(cells, "c1", b, "nobody")
    # Then alice is shown an unknown user, her subscription and c1's interest are gone
    [change] = cells["c0"].posts.of_type(a.connection_id, "presence")
    assert change["users"][0] == {"userId": BOB.user_id, "online": False, "lastSeen": None}
    assert _items(cells, "c0", "SUB#") == []
    assert _items(cells, "c1", "WATCH#c0#") == []


def test_given_an_expired_interest_then_no_cell_is_told(cells: CellsUnderTest) -> None:
    # Given alice subscribed to bob longer ago than any connection lives
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    a = cells["c0"].connect(ALICE)
    _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    cells["c0"].clock.advance(STALE_CONNECTION_SECONDS + 1)
    cells.invokes.calls.clear()
    # When bob comes online (the TTL sweeper has not removed the interest yet)
    cells["c1"].connect(BOB, with_keys=False)
    # Then no Relay call is made
    assert _items(cells, "c1", "WATCH#c0#") != []
    assert cells.invokes.calls == []


def test_given_a_closed_watcher_then_a_stale_interest_costs_one_call_and_posts_nothing(
    cells: CellsUnderTest,
) -> None:
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    a = cells["c0"].connect(ALICE)
    _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    cells["c0"].disconnect(a)  # its subscription goes; c1's interest stays until it expires
    cells.invokes.calls.clear()
    cells["c1"].connect(BOB, with_keys=False)
    cells["c1"].settle_flaps()
    assert _ops(cells) == [("c0", "Event", "presenceChanged")]
    assert cells["c0"].posts.of_type(a.connection_id, "presence") == []


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_given_too_many_subscriptions_across_cells_then_bad_request_and_nothing_recorded(
    cells: CellsUnderTest,
) -> None:
    a = cells["c0"].connect(ALICE)
    others = [f"w{n:04d}x" for n in range(100)]
    for start in range(0, 1000, 100):  # 1,000 watched: the cap
        batch = [f"{name}{start}" for name in others]
        assert _presence(cells, "c0", a, *batch, subscribe=True)["type"] == "presence"
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    before = cells.dump()
    cells.invokes.calls.clear()
    reply = _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    assert (reply["type"], reply["code"]) == ("error", "BAD_REQUEST")
    assert cells.dump() == before
    assert cells.invokes.calls == []


def test_given_the_watched_users_cell_fails_then_get_presence_is_internal(
    cells: CellsUnderTest,
) -> None:
    a = cells["c0"].connect(ALICE)
    cells["c1"].disconnect(cells["c1"].connect(BOB))
    before = cells.dump()["c1"]
    cells.invokes.failing.add("c1")
    reply = _presence(cells, "c0", a, BOB.user_id, subscribe=True)
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "INTERNAL", "getPresence")
    assert cells.dump()["c1"] == before

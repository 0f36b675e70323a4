"""Users of different cells (PROTOCOL.md §6), on moto: each cell its own tables and
functions, the cell-to-cell call a real Lambda Invoke of the peer's Relay."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.cells import CellsUnderTest, cells_harness, relay_arn, user_homed_in

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
    # Given alice online in c0 and bob online in c1
    a, b = cells["c0"].connect(ALICE), cells["c1"].connect(BOB)
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


def _relay(cells: CellsUnderTest, cell: str, request: dict) -> dict:
    """Invoke a cell's Relay directly, through the lambda client, as a peer would."""
    client = cells.invokes.client()
    response = client.invoke(FunctionName=relay_arn(cell), Payload=json.dumps(request).encode())
    return json.loads(response["Payload"].read())


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "storeMessage", "from": "c1"},  # no frame
        {"op": "keys", "from": "c1", "userId": BOB.user_id},  # bob is not c0's
        {"op": "keys", "from": "c0", "userId": ALICE.user_id},  # from itself
        {"op": "dropTables", "from": "c1"},
        {"from": "c1"},
        ["not", "an", "object"],
    ],
)
def test_a_relay_request_a_peer_may_not_make_is_refused_and_changes_nothing(
    cells: CellsUnderTest, request_: object
) -> None:
    cells["c0"].disconnect(cells["c0"].connect(ALICE))
    before = cells.dump()
    answer = _relay(cells, "c0", request_)  # type: ignore[arg-type]
    assert answer["error"]["code"] == "BAD_REQUEST"
    assert cells.dump() == before


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

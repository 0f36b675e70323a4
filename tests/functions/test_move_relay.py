"""Every Relay operation for a moved user, at each phase of a shard move (docs/protocol.md
§6 "Shard moves", docs/scale.md "Shard moves"), on moto: alice moves from c0 to c2; bob is
at home in c1, carol stays in c0. Each case is one thing done by or for alice while the
move stands at a phase; the move then finishes, whatever was answered RATE_LIMITED is
done again (as every client does), and the test reads where it was stored.

The rule (issue 23, "Messages in flight"): a message or receipt to or from a moved user,
from any cell, at any moment of the move, is stored exactly once in the home its
recipient reads after the move, and nowhere else; reads (keys, presence) are answered.
Nothing is ever refused but with RATE_LIMITED (try again) while the range is fenced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from messenger.dal.queue import message_item_id
from messenger.errors import RateLimited
from messenger.logic.registrations import registration_source
from messenger_protocol.cells import shard
from tests.support.cells import CellsUnderTest, relay_arn, user_homed_in
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser
from tests.support.moves import (
    ALICE,
    BOB,
    CAROL,
    CELLS,
    Deployment,
    Killed,
    alice_shard,
    moving_deployment,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Where the move stands when the case runs: stopped before this step (None: done, the
# range's items deleted at the old home).
PHASES = {
    "fenced, copied": "switch-in",
    "switched in at c2": "switch-peers",
    "every peer sends to c2, c0 still fenced": "switch-out",
    "switched out at c0, not yet published": "publish",
    "done and cleaned": None,
}
# A phase where c1 has not read the switches yet (a container whose view is older than the
# step's settle): switched out at c0, c1 still placing alice there.
STALE_PHASE = "switched out at c0, c1 still on the view before the switch"


@dataclass
class Run:
    """The deployment during one case, and alice's current connection."""

    deployment: Deployment
    alice: Connection
    bob: Connection
    carol: Connection
    alice_at: str = "c0"
    alice_gone: bool = False  # disconnected by the case: she comes back where she can
    retry: list[Callable[[], Any]] = field(default_factory=list)

    def __getitem__(self, cell: str) -> Harness:
        return self.deployment[cell]

    def by_alice(self, frame: dict[str, Any]) -> Any:
        return self[self.alice_at].send(self.alice, frame)

    def message(self, sender: TestUser, to: TestUser, message_id: str) -> dict[str, Any]:
        connection, cell = self.connection_of(sender)
        return self[cell].message(connection, to, "in flight", message_id)

    def connection_of(self, user: TestUser) -> tuple[Connection, str]:
        if user is ALICE:
            return self.alice, self.alice_at
        if user is BOB:
            return self.bob, "c1"
        return self.carol, "c0"

    def send(self, user: TestUser, frame: dict[str, Any]) -> Any:
        connection, cell = self.connection_of(user)
        return self[cell].send(connection, frame)


def answered(run: Run, user: TestUser, frame: Callable[[], dict[str, Any]]) -> Any:
    """Send `frame()` as `user`: an answer, or RATE_LIMITED (then kept, to send again once
    the move is done, as the client does). Any other refusal fails the case."""
    reply = run.send(user, frame())
    if isinstance(reply, dict) and reply.get("type") == "error":
        assert reply["code"] == "RATE_LIMITED", reply
        run.retry.append(lambda: answered(run, user, frame))
    return reply


# --- what is stored, and where -----------------------------------------------------------


def messages(harness: Harness, owner: TestUser, sender: TestUser, message_id: str) -> int:
    item_id = message_item_id(sender.user_id, message_id)
    return sum(item["sk"]["S"] == item_id for item in harness.queue_of(owner))


def receipts(harness: Harness, owner: TestUser, status: str, message_id: str) -> int:
    return sum(
        item.get("status", {}).get("S") == status
        and message_id in [value["S"] for value in item["messageIds"]["L"]]
        for item in harness.queue_of(owner)
    )


def home_after(user: TestUser) -> str:
    return {ALICE.user_id: "c2", BOB.user_id: "c1", CAROL.user_id: "c0"}[user.user_id]


def stored_once(run: Run, owner: TestUser, count: Callable[[Harness], int]) -> None:
    """Exactly one in the owner's home after the move, none in any other cell."""
    found = {cell: count(run[cell]) for cell in ("c0", "c1", "c2")}
    expected = {cell: int(cell == home_after(owner)) for cell in found}
    assert found == expected


# --- the cases: (what is done, what must hold once the move is done) ------------------------


def message_case(sender: TestUser, to: TestUser) -> Callable[[Run], Callable[[], None]]:
    def case(run: Run) -> Callable[[], None]:
        reply = answered(run, sender, lambda: run.message(sender, to, "msg-in-flight"))
        assert reply["type"] in ("ack", "error")
        return lambda: stored_once(run, to, lambda h: messages(h, to, sender, "msg-in-flight"))

    return case


def receipt_case(status: str, reader: TestUser, sender: TestUser) -> Callable[[Run], Any]:
    """`reader` acks (delivered) or marks seen (seen) `sender`'s message sent before the
    move: the receipt is `sender`'s."""
    message_id = f"msg-before-{sender.user_id}"

    def case(run: Run) -> Callable[[], None]:
        if status == "delivered":
            item = message_item_id(sender.user_id, message_id)
            answered(run, reader, lambda: {"action": "ack", "ids": [item]})
        else:
            frame = {"action": "markSeen", "to": sender.user_id, "messageIds": [message_id]}
            answered(run, reader, lambda: frame)
        return lambda: stored_once(run, sender, lambda h: receipts(h, sender, status, message_id))

    return case


def read_case(action: str, asker: TestUser, about: TestUser) -> Callable[[Run], Any]:
    frame: dict[str, Any] = (
        {"action": "getKeys", "userId": about.user_id}
        if action == "getKeys"
        else {"action": "getPresence", "userIds": [about.user_id]}
    )
    expected = {"getKeys": "keys", "getPresence": "presence"}[action]

    def case(run: Run) -> Callable[[], None]:
        first = run.send(asker, frame)

        def check() -> None:
            final = first
            if first["type"] == "error":  # RATE_LIMITED: asked again (from where it is now)
                assert first["code"] == "RATE_LIMITED", first
                final = run.send(asker, frame)
            assert final["type"] == expected, final
            if expected == "keys":
                assert final["userId"] == about.user_id
            else:
                assert [entry["userId"] for entry in final["users"]] == [about.user_id]

        return check

    return case


def presence_of(run: Run, watcher: Connection, cell: str, user: TestUser) -> list[bool]:
    """What `watcher` was told of `user`'s presence, in order (online or not)."""
    return [
        frame["users"][0]["online"]
        for frame in run[cell].posts.of_type(watcher.connection_id, "presence")
        if frame["users"][0]["userId"] == user.user_id
    ]


def alice_change_case(run: Run) -> Callable[[], None]:
    """alice goes offline (and comes back where her client can): bob, subscribed to her
    before the move, hears it, last that she is online (at c2, through its interest)."""
    run[run.alice_at].disconnect(run.alice)
    run.alice_gone = True

    def check() -> None:
        assert run.alice_at == "c2"
        heard = presence_of(run, run.bob, "c1", ALICE)
        assert heard and heard[-1] is True, heard

    return check


def bob_change_case(run: Run) -> Callable[[], None]:
    """alice subscribes to bob again from where she is (as her client does on a new
    connection); bob goes offline then online: she hears each change once, and the old
    home, still named by c1's interest from before the move, refuses nothing."""
    answered(
        run,
        ALICE,
        lambda: {"action": "getPresence", "userIds": [BOB.user_id], "subscribe": True},
    )

    def check() -> None:
        c1 = run["c1"]
        before = len(presence_of(run, run.alice, run.alice_at, BOB))
        c1.disconnect(run.bob)
        c1.clock.advance(5)
        run.bob = c1.connect(BOB, with_keys=False)
        assert presence_of(run, run.alice, run.alice_at, BOB)[before:] == [False, True]
        told_old_home = {
            "op": "presenceChanged",
            "from": "c1",
            "user": BOB.user_id,
            "entry": run[run.alice_at].posts.of_type(run.alice.connection_id, "presence")[-1][
                "users"
            ][0],
            "watchers": [ALICE.user_id],
        }
        answer = relay(run.deployment.cells, "c1", "c0", told_old_home)
        assert "ok" in answer, answer

    return check


def address_in_alices_range() -> str:
    """An IPv4 address whose registration budget is kept by alice's shard."""
    mine = alice_shard()
    for n in range(1 << 24):
        address = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
        if shard(registration_source(address).shard_key, 65536) == mine:
            return address
    raise AssertionError("no address in alice's shard")


ERIN = user_homed_in("c1", "erin", CELLS)  # registers in c1 during the move


def registration_case(run: Run) -> Callable[[], None]:
    """erin registers in c1 from an address whose budget alice's range keeps: c1 has it
    counted (countRegistration) wherever the range is, once."""
    address = address_in_alices_range()
    c1 = run["c1"]

    def register() -> bool:
        query = ERIN.connect_query(ts=c1.clock.now_s(), aud=c1.endpoint)
        decision = c1.authorize(query, source_ip=address)
        return bool(decision["policyDocument"]["Statement"][0]["Effect"] == "Allow")

    # Counted at once, in any phase: a count is not the range's users' data (the fence
    # holds it back from no one; the counters stay with the old home, docs/scale.md)
    assert register()

    def check() -> None:
        digest = registration_source(address).address
        counted = sum(registrations(run[cell], digest) for cell in ("c0", "c1", "c2"))
        assert counted == 1

    return check


def registrations(harness: Harness, digest: str) -> int:
    response = harness.dynamodb.query(
        TableName=harness.table_names["Limits"],
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"IP#{digest}"}},
    )
    return sum(int(item["n"]["N"]) for item in response["Items"] if "n" in item)


def relay(cells: CellsUnderTest, caller: str, cell: str, request: dict[str, Any]) -> Any:
    """A Relay call made and signed by `caller`, as its Peers make it."""
    signed = cells.signed_by(caller, request, to=cell)
    response = cells.invokes.client().invoke(
        FunctionName=relay_arn(cell), Payload=json.dumps(signed).encode()
    )
    return json.loads(response["Payload"].read())


CASES: dict[str, Callable[[Run], Callable[[], None]]] = {
    "storeMessage to alice from c1": message_case(BOB, ALICE),
    "storeMessage to alice from the old home": message_case(CAROL, ALICE),
    "storeMessage by alice to c1": message_case(ALICE, BOB),
    "storeMessage by alice to the old home": message_case(ALICE, CAROL),
    "delivered receipt to alice from c1": receipt_case("delivered", BOB, ALICE),
    "delivered receipt to alice from the old home": receipt_case("delivered", CAROL, ALICE),
    "delivered receipt by alice to c1": receipt_case("delivered", ALICE, BOB),
    "delivered receipt by alice to the old home": receipt_case("delivered", ALICE, CAROL),
    "seen receipt to alice from c1": receipt_case("seen", BOB, ALICE),
    "seen receipt to alice from the old home": receipt_case("seen", CAROL, ALICE),
    "seen receipt by alice to c1": receipt_case("seen", ALICE, BOB),
    "seen receipt by alice to the old home": receipt_case("seen", ALICE, CAROL),
    "keys of alice asked from c1": read_case("getKeys", BOB, ALICE),
    "keys asked by alice of c1": read_case("getKeys", ALICE, BOB),
    "presence of alice asked from c1": read_case("getPresence", BOB, ALICE),
    "presence asked by alice of c1": read_case("getPresence", ALICE, BOB),
    "presenceChanged of alice to a watcher in c1": alice_change_case,
    "presenceChanged of c1's bob to alice": bob_change_case,
    "countRegistration in c1 of an address alice's range keeps": registration_case,
}


@pytest.fixture
def stale() -> set[str]:
    """The cells whose containers do not read the moves again at a step's settle."""
    return set()


@pytest.fixture
def deployment(stale: set[str]) -> Iterator[Deployment]:
    def waiting(cells: CellsUnderTest) -> Callable[[float], None]:
        def settle(seconds: float) -> None:
            for cell, harness in cells.harnesses.items():
                if cell not in stale:
                    harness.services.cells.forget()

        return settle

    with moving_deployment(waiting) as running:
        yield running


def run_to(deployment: Deployment, move_id: str, stop_before: str | None) -> None:
    def stop(record: Any) -> None:
        if record.step == stop_before:
            raise Killed

    deployment.mover.after_step = stop
    if stop_before is None:
        deployment.mover.run("c0", move_id)
        return
    with pytest.raises(Killed):
        deployment.mover.run("c0", move_id)
    deployment.mover.after_step = lambda record: None


def alice_at_home(run: Run) -> None:
    """alice where her client goes: c2 once c0 refuses her (her connection there closed)."""
    c0 = run["c0"]
    try:
        decision = c0.authorize(ALICE.connect_query(ts=c0.clock.now_s(), aud=c0.endpoint))
    except Exception:  # fenced: the handshake waits (API Gateway's 500, retried)
        return
    if decision["policyDocument"]["Statement"][0]["Effect"] == "Deny" and run.alice_at == "c0":
        run.alice = run["c2"].connect(ALICE, with_keys=False)
        run.alice_at, run.alice_gone = "c2", False
    elif run.alice_gone:
        run.alice = run[run.alice_at].connect(ALICE, with_keys=False)
        run.alice_gone = False


@pytest.mark.parametrize("phase", [*PHASES, STALE_PHASE])
@pytest.mark.parametrize("case", CASES)
def test_an_operation_for_a_moved_user_at_any_phase_is_stored_once_where_it_is_read(
    deployment: Deployment, stale: set[str], case: str, phase: str
) -> None:
    cells: CellsUnderTest = deployment.cells
    c0, c1 = cells["c0"], cells["c1"]
    # Given alice (c0), bob (c1) and carol (c0) online, each with a message from alice
    # (bob's, carol's) waiting, and alice with one from each of them
    run = Run(deployment, c0.connect(ALICE), c1.connect(BOB), c0.connect(CAROL))
    for sender, to in ((ALICE, BOB), (ALICE, CAROL), (BOB, ALICE), (CAROL, ALICE)):
        frame = run.message(sender, to, f"msg-before-{sender.user_id}")
        assert run.send(sender, frame)["type"] == "ack"
    # And alice and bob subscribed to each other's presence
    for watcher, user in ((ALICE, BOB), (BOB, ALICE)):
        subscribe = {"action": "getPresence", "userIds": [user.user_id], "subscribe": True}
        assert run.send(watcher, subscribe)["type"] == "presence"
    mine = alice_shard()
    record = deployment.mover.start("c0", "c2", mine, mine)
    # When the move stands at the phase, and the case is done (alice from where her
    # client is by then)
    if phase == STALE_PHASE:
        run_to(deployment, record.move_id, "switch-peers")
        assert c1.services.cells.home_of(ALICE.user_id) == "c0"  # read, and kept
        stale.add("c1")
        run_to(deployment, record.move_id, "publish")
        assert c1.services.cells.home_of(ALICE.user_id) == "c0"
    else:
        run_to(deployment, record.move_id, PHASES[phase])
    alice_at_home(run)
    check = CASES[case](run)
    # Then once the move is done (c1 has read it by then), and what was RATE_LIMITED is
    # sent again
    stale.clear()
    c1.services.cells.forget()
    run_to(deployment, record.move_id, None)
    alice_at_home(run)
    for again in list(run.retry):
        run.retry.remove(again)
        again()
    assert run.retry == []
    # It is stored exactly once, in the home its recipient reads (or answered)
    check()


DAVE = user_homed_in("c2", "dave", CELLS)  # at home in c2, the new home


def test_a_cell_that_finds_the_new_home_is_itself_calls_its_own_relay_and_is_answered(
    deployment: Deployment,
) -> None:
    """The bench's refusal: c2 found alice elsewhere, then read switch-in (c2 is her home
    now) and called its own Relay, which refused it ("relay requests come from peer
    cells"): the caller is proven by its signature, not by the shard map."""
    c0, c2 = deployment["c0"], deployment["c2"]
    c0.disconnect(c0.connect(ALICE))
    c2.disconnect(c2.connect(DAVE))
    mine = alice_shard()
    record = deployment.mover.start("c0", "c2", mine, mine)
    run_to(deployment, record.move_id, "switch-peers")
    receipt = {
        "recipient": ALICE.user_id,
        "status": "seen",
        "messageIds": ["msg-seen-by-dave"],
        "by": DAVE.user_id,
        "at": 1,
    }
    # When c2 calls its own Relay, signed by itself, as its Peers do
    request = deployment.cells.signed_by(
        "c2", {"op": "storeReceipt", "from": "c2", "receipts": [receipt]}, to="c2"
    )
    response = deployment.cells.invokes.client().invoke(
        FunctionName=relay_arn("c2"), Payload=json.dumps(request).encode()
    )
    answer = json.loads(response["Payload"].read())
    # Then it is answered, and the receipt is stored once, at c2 (alice's home now)
    assert "ok" in answer, answer
    assert receipts(c2, ALICE, "seen", "msg-seen-by-dave") == 1
    assert receipts(c0, ALICE, "seen", "msg-seen-by-dave") == 0


def test_the_old_home_admits_no_write_for_a_user_that_moved_away(
    deployment: Deployment,
) -> None:
    """A request that found alice at home in c0 just before switch-out, and writes after
    it, is refused (RATE_LIMITED, sent again to c2): c2 never reads what c0 stores."""
    c0 = deployment["c0"]
    c0.disconnect(c0.connect(ALICE))
    mine = alice_shard()
    record = deployment.mover.start("c0", "c2", mine, mine)
    run_to(deployment, record.move_id, "publish")
    with pytest.raises(RateLimited):
        c0.services.cells.admit_writes_for(ALICE.user_id)
    c0.services.cells.admit_writes_for(CAROL.user_id)  # carol stays: admitted

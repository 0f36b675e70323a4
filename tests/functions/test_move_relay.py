"""Every Relay operation for a moved user, at each phase of a shard move (docs/protocol.md
§6 "Shard moves", docs/scale.md "Shard moves"), on moto. One deployment and one move per
phase: each operation has its own cast (an alice who moves from c0 to c2 with the moved
range, a bob at home in c1, a carol who stays in c0), so no operation sees another's
users. Before the move, each cast is set up as its operation needs; with the move stopped
at the phase, each operation is done by or for its alice; the move then finishes,
whatever was answered RATE_LIMITED is done again (as every client does), and each
operation's outcome is read where it was stored. A failure names its operation and phase.

The rule (issue 23, "Messages in flight"): a message or receipt to or from a moved user,
from any cell, at any moment of the move, is stored exactly once in the home its
recipient reads after the move, and nowhere else; reads (keys, presence) are answered.
Nothing is ever refused but with RATE_LIMITED (try again) while the range is fenced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

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
    CAROL,
    CELLS,
    SHARDS,
    Deployment,
    Killed,
    alice_shard,
    moving_deployment,
    user_in_shards,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Where the move stands when the operations are done: stopped before this step (None:
# done, the range's items deleted at the old home).
PHASES = {
    "fenced, copied": "switch-in",
    "switched in at c2": "switch-peers",
    "every peer sends to c2, c0 still fenced": "switch-out",
    "switched out at c0, not yet published": "publish",
    "done and cleaned": None,
}
# A phase where c1 has not read the switches yet (a container whose view is older than the
# step's settle): switched out at c0, c1 still placing the moved users there.
STALE_PHASE = "switched out at c0, c1 still on the view before the switch"

# The moved range: shards of c0's (0-21844 in the even split of three cells) holding every
# operation's alice; each carol is in c0 outside it.
MOVED = (0, 8191)

Role = Literal["alice", "bob", "carol"]


@dataclass(frozen=True)
class Cast:
    """One operation's users: alice moves from c0 to c2; bob is at home in c1; carol
    stays in c0."""

    alice: TestUser
    bob: TestUser
    carol: TestUser

    @classmethod
    def numbered(cls, n: int) -> Cast:
        return cls(
            user_in_shards(f"alice{n}", *MOVED),
            user_homed_in("c1", f"bob{n}", CELLS),
            user_in_shards(f"carol{n}", MOVED[1] + 1, SHARDS // len(CELLS) - 1),
        )

    def __getitem__(self, role: Role) -> TestUser:
        return {"alice": self.alice, "bob": self.bob, "carol": self.carol}[role]

    def home_after(self, role: Role) -> str:
        """Where `role` is at home once the move is done."""
        return {"alice": "c2", "bob": "c1", "carol": "c0"}[role]


@dataclass
class Run:
    """The deployment as one operation sees it: its cast and their connections."""

    deployment: Deployment
    cast: Cast
    connections: dict[Role, Connection]
    alice_at: str = "c0"
    alice_gone: bool = False  # disconnected by the operation: she comes back where she can
    retry: list[Callable[[], Any]] = field(default_factory=list)

    def __getitem__(self, cell: str) -> Harness:
        return self.deployment[cell]

    @property
    def alice(self) -> Connection:
        return self.connections["alice"]

    @property
    def bob(self) -> Connection:
        return self.connections["bob"]

    def cell_of(self, role: Role) -> str:
        return {"alice": self.alice_at, "bob": "c1", "carol": "c0"}[role]

    def message(self, sender: Role, to: Role, message_id: str) -> dict[str, Any]:
        harness = self[self.cell_of(sender)]
        return harness.message(self.connections[sender], self.cast[to], "in flight", message_id)

    def send(self, role: Role, frame: dict[str, Any]) -> Any:
        return self[self.cell_of(role)].send(self.connections[role], frame)


def answered(run: Run, role: Role, frame: Callable[[], dict[str, Any]]) -> Any:
    """Send `frame()` as `role`: an answer, or RATE_LIMITED (then kept, to send again once
    the move is done, as the client does). Any other refusal fails the operation."""
    reply = run.send(role, frame())
    if isinstance(reply, dict) and reply.get("type") == "error":
        assert reply["code"] == "RATE_LIMITED", reply
        run.retry.append(lambda: answered(run, role, frame))
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


def stored_once(run: Run, owner: Role, count: Callable[[Harness], int]) -> None:
    """Exactly one in the owner's home after the move, none in any other cell."""
    found = {cell: count(run[cell]) for cell in CELLS}
    expected = {cell: int(cell == run.cast.home_after(owner)) for cell in found}
    assert found == expected


# --- the operations: what each cast needs, what is done, what must hold once the move is done


@dataclass(frozen=True)
class Operation:
    """Done at the phase by `act`, which returns the check made once the move is done.
    Before the move: alice and `peers` online (alice and carol in c0, bob in c1), each
    of `messages_before` (sender, recipient) sent, each of `subscriptions` (watcher,
    user) made."""

    act: Callable[[Run], Callable[[], None]]
    peers: tuple[Role, ...] = ()
    messages_before: tuple[tuple[Role, Role], ...] = ()
    subscriptions: tuple[tuple[Role, Role], ...] = ()


def others(*roles: Role) -> tuple[Role, ...]:
    return tuple(role for role in roles if role != "alice")


def message_case(sender: Role, to: Role) -> Operation:
    def act(run: Run) -> Callable[[], None]:
        reply = answered(run, sender, lambda: run.message(sender, to, "msg-in-flight"))
        assert reply["type"] in ("ack", "error")
        from_user, to_user = run.cast[sender], run.cast[to]
        return lambda: stored_once(
            run, to, lambda h: messages(h, to_user, from_user, "msg-in-flight")
        )

    return Operation(act, peers=others(sender, to))


def before_id(sender: TestUser) -> str:
    return f"msg-before-{sender.user_id}"


def receipt_case(status: str, reader: Role, sender: Role) -> Operation:
    """`reader` acks (delivered) or marks seen (seen) `sender`'s message sent before the
    move: the receipt is `sender`'s."""

    def act(run: Run) -> Callable[[], None]:
        owner = run.cast[sender]
        message_id = before_id(owner)
        if status == "delivered":
            item = message_item_id(owner.user_id, message_id)
            answered(run, reader, lambda: {"action": "ack", "ids": [item]})
        else:
            frame = {"action": "markSeen", "to": owner.user_id, "messageIds": [message_id]}
            answered(run, reader, lambda: frame)
        return lambda: stored_once(run, sender, lambda h: receipts(h, owner, status, message_id))

    return Operation(act, peers=others(reader, sender), messages_before=((sender, reader),))


def read_case(action: str, asker: Role, about: Role) -> Operation:
    expected = {"getKeys": "keys", "getPresence": "presence"}[action]

    def act(run: Run) -> Callable[[], None]:
        user_id = run.cast[about].user_id
        frame: dict[str, Any] = (
            {"action": "getKeys", "userId": user_id}
            if action == "getKeys"
            else {"action": "getPresence", "userIds": [user_id]}
        )
        first = run.send(asker, frame)

        def check() -> None:
            final = first
            if first["type"] == "error":  # RATE_LIMITED: asked again (from where it is now)
                assert first["code"] == "RATE_LIMITED", first
                final = run.send(asker, frame)
            assert final["type"] == expected, final
            if expected == "keys":
                assert final["userId"] == user_id
            else:
                assert [entry["userId"] for entry in final["users"]] == [user_id]

        return check

    return Operation(act, peers=others(asker, about))


def presence_of(run: Run, watcher: Connection, cell: str, user: TestUser) -> list[bool]:
    """What `watcher` was told of `user`'s presence, in order (online or not)."""
    return [
        frame["users"][0]["online"]
        for frame in run[cell].posts.of_type(watcher.connection_id, "presence")
        if frame["users"][0]["userId"] == user.user_id
    ]


def alice_change(run: Run) -> Callable[[], None]:
    """alice goes offline (and comes back where her client can): bob, subscribed to her
    before the move, hears it, last that she is online (at c2, through its interest)."""
    run[run.alice_at].disconnect(run.alice)
    run.alice_gone = True

    def check() -> None:
        assert run.alice_at == "c2"
        heard = presence_of(run, run.bob, "c1", run.cast.alice)
        assert heard and heard[-1] is True, heard

    return check


def bob_change(run: Run) -> Callable[[], None]:
    """alice subscribes to bob again from where she is (as her client does on a new
    connection); bob goes offline then online: she hears each change once, and the old
    home, still named by c1's interest from before the move, refuses nothing."""
    alice, bob = run.cast.alice, run.cast.bob
    answered(
        run,
        "alice",
        lambda: {"action": "getPresence", "userIds": [bob.user_id], "subscribe": True},
    )

    def check() -> None:
        c1 = run["c1"]
        before = len(presence_of(run, run.alice, run.alice_at, bob))
        c1.disconnect(run.bob)
        c1.clock.advance(5)
        run.connections["bob"] = c1.connect(bob, with_keys=False)
        assert presence_of(run, run.alice, run.alice_at, bob)[before:] == [False, True]
        told_old_home = {
            "op": "presenceChanged",
            "from": "c1",
            "user": bob.user_id,
            "entry": run[run.alice_at].posts.of_type(run.alice.connection_id, "presence")[-1][
                "users"
            ][0],
            "watchers": [alice.user_id],
        }
        answer = relay(run.deployment.cells, "c1", "c0", told_old_home)
        assert "ok" in answer, answer

    return check


def address_in_moved_range() -> str:
    """An IPv4 address whose registration budget is kept by a shard of the moved range."""
    for n in range(1 << 24):
        address = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
        if MOVED[0] <= shard(registration_source(address).shard_key, SHARDS) <= MOVED[1]:
            return address
    raise AssertionError("no address in the moved range")


ERIN = user_homed_in("c1", "erin", CELLS)  # registers in c1 during the move


def registration(run: Run) -> Callable[[], None]:
    """erin registers in c1 from an address whose budget the moved range keeps: c1 has it
    counted (countRegistration) wherever the range is, once."""
    address = address_in_moved_range()
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
        counted = sum(registrations(run[cell], digest) for cell in CELLS)
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


# Both watch each other before the move (the interests the move must not break).
WATCHING: tuple[tuple[Role, Role], ...] = (("alice", "bob"), ("bob", "alice"))

OPERATIONS: dict[str, Operation] = {
    "storeMessage to alice from c1": message_case("bob", "alice"),
    "storeMessage to alice from the old home": message_case("carol", "alice"),
    "storeMessage by alice to c1": message_case("alice", "bob"),
    "storeMessage by alice to the old home": message_case("alice", "carol"),
    "delivered receipt to alice from c1": receipt_case("delivered", "bob", "alice"),
    "delivered receipt to alice from the old home": receipt_case("delivered", "carol", "alice"),
    "delivered receipt by alice to c1": receipt_case("delivered", "alice", "bob"),
    "delivered receipt by alice to the old home": receipt_case("delivered", "alice", "carol"),
    "seen receipt to alice from c1": receipt_case("seen", "bob", "alice"),
    "seen receipt to alice from the old home": receipt_case("seen", "carol", "alice"),
    "seen receipt by alice to c1": receipt_case("seen", "alice", "bob"),
    "seen receipt by alice to the old home": receipt_case("seen", "alice", "carol"),
    "keys of alice asked from c1": read_case("getKeys", "bob", "alice"),
    "keys asked by alice of c1": read_case("getKeys", "alice", "bob"),
    "presence of alice asked from c1": read_case("getPresence", "bob", "alice"),
    "presence asked by alice of c1": read_case("getPresence", "alice", "bob"),
    "presenceChanged of alice to a watcher in c1": Operation(
        alice_change, peers=("bob",), subscriptions=WATCHING
    ),
    "presenceChanged of c1's bob to alice": Operation(
        bob_change, peers=("bob",), subscriptions=WATCHING
    ),
    "countRegistration in c1 of an address the moved range keeps": Operation(registration),
}
CASTS = {name: Cast.numbered(n) for n, name in enumerate(OPERATIONS)}


class Outcomes:
    """What failed, by operation: an operation that failed at one stage is not taken
    further; the test fails once, naming every failed operation, its stage and why."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.failed: dict[str, str] = {}

    def attempt(self, operation: str, stage: str, step: Callable[[], Any]) -> Any:
        if operation in self.failed:
            return None
        try:
            return step()
        except Exception as error:  # any failure, an assertion's included, is reported
            self.failed[operation] = f"{stage}: {type(error).__name__}: {error}"
            return None

    def report(self) -> str:
        return "\n".join(
            f"[{self.phase}] {operation} - {why}" for operation, why in self.failed.items()
        )


@pytest.fixture
def stale() -> set[str]:
    """The cells whose containers do not read the moves again at a step's settle."""
    return set()


# Every cast registers from the harness's one address: more users than the default budget
# of one address an hour (30).
REGISTRATIONS_PER_IP = 4 * len(OPERATIONS) + 1


@pytest.fixture
def deployment(stale: set[str]) -> Iterator[Deployment]:
    def waiting(cells: CellsUnderTest) -> Callable[[float], None]:
        def settle(seconds: float) -> None:
            for cell, harness in cells.harnesses.items():
                if cell not in stale:
                    harness.services.cells.forget()

        return settle

    with moving_deployment(waiting, registrations_per_ip_per_hour=REGISTRATIONS_PER_IP) as running:
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
    c0, alice = run["c0"], run.cast.alice
    try:
        decision = c0.authorize(alice.connect_query(ts=c0.clock.now_s(), aud=c0.endpoint))
    except Exception:  # fenced: the handshake waits (API Gateway's 500, retried)
        return
    if decision["policyDocument"]["Statement"][0]["Effect"] == "Deny" and run.alice_at == "c0":
        run.connections["alice"] = run["c2"].connect(alice, with_keys=False)
        run.alice_at, run.alice_gone = "c2", False
    elif run.alice_gone:
        run.connections["alice"] = run[run.alice_at].connect(alice, with_keys=False)
        run.alice_gone = False


def set_up(deployment: Deployment, operation: Operation, cast: Cast) -> Run:
    """The cast online, each message before the move sent, each subscription made."""
    cells = deployment.cells
    connections: dict[Role, Connection] = {"alice": cells["c0"].connect(cast.alice)}
    for peer in operation.peers:
        connections[peer] = cells["c1" if peer == "bob" else "c0"].connect(cast[peer])
    run = Run(deployment, cast, connections)
    for sender, to in operation.messages_before:
        frame = run.message(sender, to, before_id(cast[sender]))
        assert run.send(sender, frame)["type"] == "ack"
    for watcher, user in operation.subscriptions:
        subscribe = {"action": "getPresence", "userIds": [cast[user].user_id], "subscribe": True}
        assert run.send(watcher, subscribe)["type"] == "presence"
    return run


@pytest.mark.parametrize("phase", [*PHASES, STALE_PHASE])
def test_every_operation_for_a_moved_user_at_a_phase_is_stored_once_where_it_is_read(
    deployment: Deployment, stale: set[str], phase: str
) -> None:
    cells: CellsUnderTest = deployment.cells
    c1 = cells["c1"]
    outcomes = Outcomes(phase)
    # Given, for each operation, its cast online as it needs (messages waiting,
    # subscriptions made)
    runs: dict[str, Run] = {}
    for name, operation in OPERATIONS.items():
        run = outcomes.attempt(
            name, "before the move", partial(set_up, deployment, operation, CASTS[name])
        )
        if run is not None:
            runs[name] = run
    record = deployment.mover.start("c0", "c2", *MOVED)
    # When the move stands at the phase, and each operation is done (alice from where
    # her client is by then)
    if phase == STALE_PHASE:
        run_to(deployment, record.move_id, "switch-peers")
        assert alices_homes(c1) == {"c0"}  # read, and kept
        stale.add("c1")
        run_to(deployment, record.move_id, "publish")
        assert alices_homes(c1) == {"c0"}
    else:
        run_to(deployment, record.move_id, PHASES[phase])
    checks: dict[str, Callable[[], None]] = {}
    for name, run in runs.items():
        check = outcomes.attempt(name, "at the phase", partial(act, run, OPERATIONS[name]))
        if check is not None:
            checks[name] = check
    # Then once the move is done (c1 has read it by then), and what was RATE_LIMITED is
    # sent again
    stale.clear()
    c1.services.cells.forget()
    run_to(deployment, record.move_id, None)
    for name, run in runs.items():
        outcomes.attempt(name, "once the move is done", partial(again, run))
    # Each is stored exactly once, in the home its recipient reads (or answered)
    for name, check in checks.items():
        outcomes.attempt(name, "checked", check)
    assert not outcomes.failed, outcomes.report()


def alices_homes(harness: Harness) -> set[str]:
    """Where a cell places the moved users now."""
    return {harness.services.cells.home_of(cast.alice.user_id) for cast in CASTS.values()}


def act(run: Run, operation: Operation) -> Callable[[], None]:
    """alice where her client goes, and the operation done: its check."""
    alice_at_home(run)
    return operation.act(run)


def again(run: Run) -> None:
    """alice where her client goes, and what was RATE_LIMITED sent again."""
    alice_at_home(run)
    for retry in list(run.retry):
        run.retry.remove(retry)
        retry()
    assert run.retry == []


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

"""Fencing (docs/protocol.md §7): exactly one side of a cell serves. The side that is not
active refuses handshakes (403), answers frames `MOVED` and closes the connection, and
refuses Relay calls; nothing it refuses writes anything.

Each harness is one side of the cell (CELL_SIDE), on its own replica of the Users table;
a switch is what messenger_directory.failover writes there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nacl.signing import SigningKey

from messenger.config import PRIMARY_SIDE, STANDBY_SIDE
from messenger.contract import RELAY
from messenger.dal.cell_generation import CellGeneration
from messenger.dal.cell_state import CellState
from messenger.logic.cell_view import CACHE_SECONDS, SideStatus, promotion_delay_ms
from messenger.transport.relay_records import request_payload
from messenger_local.harness import load_handler, serving
from messenger_local.lambdas import LambdaContext
from messenger_protocol.names import ErrorCode, RelayOperation
from tests.support.harness import TABLE_NAMES, Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


@pytest.fixture
def primary() -> Iterator[Harness]:
    with harness(cell_side=PRIMARY_SIDE) as running:
        yield running


@pytest.fixture
def standby() -> Iterator[Harness]:
    with harness(cell_side=STANDBY_SIDE) as running:
        yield running


def effect_of(decision: dict[str, Any]) -> str:
    effect: str = decision["policyDocument"]["Statement"][0]["Effect"]
    return effect


def demote_here(h: Harness, generation: int = 1) -> None:
    """The switch's `fence the old side` step on this replica: the standby is active."""
    now = h.clock.now_ms()
    assert CellState(h.dynamodb, TABLE_NAMES["Users"]).record_switch(
        STANDBY_SIDE, generation, now + promotion_delay_ms(), now
    )


def promote_here(h: Harness) -> None:
    """The switch's `bump the generation` step on this replica: this side becomes active."""
    now = h.clock.now_ms()
    CellGeneration(h.dynamodb, TABLE_NAMES["Users"]).bump(
        STANDBY_SIDE, now, now + promotion_delay_ms()
    )


def relay(h: Harness, operation: RelayOperation, fields: dict[str, Any]) -> Any:
    with serving(h.services):
        return load_handler(RELAY.handler)(
            # A call as a peer makes it (the fenced side refuses before it checks the caller)
            request_payload(operation, "c1", "c0", fields, SigningKey.generate(), 0),
            LambdaContext.for_invocation(
                RELAY.function_name, region="us-east-1", account_id="123456789012"
            ),
        )


def test_a_standby_takes_no_handshake_while_its_primary_serves(
    standby: Harness, alice: TestUser
) -> None:
    # Given the standby of a cell whose primary is active (no switch yet)
    before = standby.dump(with_limits=True)
    # When someone registers alice's id there (the identity theft of issue 21)
    decision = standby.authorize(alice.connect_query(ts=standby.clock.now_s()))
    # Then it is refused 403, and nothing is written: no profile, no nonce, no budget
    assert effect_of(decision) == "Deny"
    assert standby.dump(with_limits=True) == before
    assert standby.services.cell_view.status() is SideStatus.FENCED


def test_a_demoted_primary_refuses_handshakes_with_403(primary: Harness, alice: TestUser) -> None:
    primary.connect(alice)
    demote_here(primary)
    primary.clock.advance(CACHE_SECONDS)
    before = primary.dump(with_limits=True)
    decision = primary.authorize(alice.connect_query(ts=primary.clock.now_s(), with_keys=False))
    assert effect_of(decision) == "Deny"
    assert primary.dump(with_limits=True) == before


def test_a_frame_on_a_demoted_side_is_answered_moved_and_its_connection_closed(
    primary: Harness, alice: TestUser, bob: TestUser
) -> None:
    a = primary.connect(alice)
    primary.connect(bob)
    demote_here(primary)
    # Once the side's view of the cell ran out (at most CACHE_SECONDS after the switch)
    primary.clock.advance(CACHE_SECONDS)
    before = primary.dump(with_limits=True)
    # When alice sends a message on the connection she still holds
    reply = primary.send(a, primary.message(a, bob, "after the switch", "msg-fenced-1"))
    # Then she gets error MOVED (posted, with the frame's messageId), then the close
    assert reply is None
    (moved,) = primary.posts.take(a.connection_id)
    assert (moved["type"], moved["code"]) == ("error", ErrorCode.MOVED)
    assert moved["ref"] is not None
    assert primary.posts.deleted == [a.connection_id]
    # And nothing was written, not even a rate-limit bucket
    assert primary.dump(with_limits=True) == before


def test_relay_calls_to_a_fenced_side_are_refused_moved(standby: Harness, bob: TestUser) -> None:
    before = standby.dump(with_limits=True)
    answer = relay(standby, RelayOperation.KEYS, {"userId": bob.user_id})
    assert answer["error"]["code"] == ErrorCode.MOVED
    assert standby.dump(with_limits=True) == before


def test_a_promoted_side_takes_writes_only_from_active_from(
    standby: Harness, alice: TestUser
) -> None:
    # Given the standby just promoted by a switch
    promote_here(standby)
    standby.services.cell_view.forget()
    # Then, while the old side may still hold its view, a handshake fails as ours (500,
    # retried by clients), not as a refusal
    assert standby.services.cell_view.status() is SideStatus.PROMOTING
    with pytest.raises(Exception, match="takes writes shortly"):
        standby.authorize(alice.connect_query(ts=standby.clock.now_s()))
    # And once activeFrom has passed, it serves
    standby.clock.advance(promotion_delay_ms() / 1000)
    standby.services.cell_view.forget()
    standby.connect(alice)
    assert standby.services.cell_view.status() is SideStatus.ACTIVE


def test_the_view_is_read_at_most_once_per_cache_period(primary: Harness, alice: TestUser) -> None:
    a = primary.connect(alice)
    demote_here(primary)
    # Within the cache period the container still serves (the promoted side waits this out)
    primary.clock.advance(CACHE_SECONDS / 2)
    assert primary.send(a, {"action": "sync"}) is None
    assert primary.posts.of_type(a.connection_id, "syncDone")
    assert primary.posts.deleted == []
    # After it, the switch is seen
    primary.clock.advance(CACHE_SECONDS)
    primary.posts.take(a.connection_id)
    primary.send(a, {"action": "sync"})
    assert [f["code"] for f in primary.posts.take(a.connection_id)] == [ErrorCode.MOVED]


def test_recording_the_same_switch_twice_writes_once(primary: Harness) -> None:
    demote_here(primary, generation=2)
    states = CellState(primary.dynamodb, TABLE_NAMES["Users"])
    # Again, or an older switch arriving late: no write
    assert not states.record_switch(STANDBY_SIDE, 2, 0, 0)
    assert not states.record_switch(PRIMARY_SIDE, 1, 0, 0)
    assert states.read().side == STANDBY_SIDE
    assert states.read().generation == 2

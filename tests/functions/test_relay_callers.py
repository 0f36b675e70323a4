"""A cell accepts a call from another cell only if that cell made it (docs/protocol.md §6,
docs/scale.md "The mesh"), on moto: three cells, each with its relay key in its own Users
table and its Relay record in the directory's bucket, the calls real Lambda Invokes.

Before this, a Relay took its caller from the request's `from`: an unsigned
`{"op": "storeMessage", "from": "c1", ...}` made by anyone allowed to invoke it was stored
as a message from a user of c1. Now every such call is refused and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.contract import RateLimit
from messenger.errors import RateLimited
from messenger.logic.relay_callers import RelayCallers
from messenger.transport.relay_records import SIGNATURE, read_request
from messenger_protocol.mesh import RELAY_CALL_WINDOW_MS, relay_digest
from tests.support.cells import CellsUnderTest, cells_harness, relay_arn, user_homed_in

pytestmark = pytest.mark.integration

CELLS = ("c0", "c1", "c2")
ALICE = user_homed_in("c0", "alice", CELLS)  # the victim, at home in c0
BOB = user_homed_in("c1", "bob", CELLS)  # the user the forger claims to speak for
MALLORY = user_homed_in("c2", "mallory", CELLS)


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness(CELLS) as running:
        # alice and bob are registered in their cells
        for cell, user in (("c0", ALICE), ("c1", BOB), ("c2", MALLORY)):
            running[cell].disconnect(running[cell].connect(user))
        yield running


def _invoke(cells: CellsUnderTest, cell: str, request: Any) -> dict[str, Any]:
    """Invoke a cell's Relay through a real boto3 lambda client, as any caller would."""
    response = cells.invokes.client().invoke(
        FunctionName=relay_arn(cell), Payload=json.dumps(request).encode()
    )
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    return answer


def _store_message(cells: CellsUnderTest) -> dict[str, Any]:
    """storeMessage "from bob" (c1) to alice (c0)."""
    frame = cells["c1"].message(cells["c1"].connect(BOB), ALICE, "hi, it is bob", "msg-forge-0001")
    return {"op": "storeMessage", "from": "c1", "sender": BOB.user_id, "frame": frame}


def _store_receipt(_: CellsUnderTest) -> dict[str, Any]:
    """storeReceipt: bob (c1) "read" alice's message."""
    receipt = {
        "recipient": ALICE.user_id,
        "status": "seen",
        "messageIds": ["msg-forge-0002"],
        "by": BOB.user_id,
        "at": 1,
    }
    return {"op": "storeReceipt", "from": "c1", "receipts": [receipt]}


def _presence(_: CellsUnderTest) -> dict[str, Any]:
    """presence: bob (c1) watches alice and subscribes to her changes."""
    return {
        "op": "presence",
        "from": "c1",
        "watcher": BOB.user_id,
        "userIds": [ALICE.user_id],
        "subscribe": True,
    }


OPERATIONS = [_store_message, _store_receipt, _presence]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.__name__.strip("_"))
def test_a_call_claiming_c1_is_refused_unsigned_or_made_by_another_cell_and_writes_nothing(
    cells: CellsUnderTest, operation: Any
) -> None:
    request = operation(cells)
    before = cells.dump()
    forgeries = {
        # Before: the request as every caller sent it, believed on `from` alone
        "unsigned": request,
        # c2 signs with its own key a call that says it is from c1
        "signed by c2": cells.signed_by("c2", request, to="c0"),
        # c1's own call to c2, replayed at c0
        "made for c2": cells.signed_by("c1", request, to="c2"),
        # c1's own call, too old
        "stale": cells.signed_by(
            "c1", request, to="c0", at_ms=cells["c1"].clock.now_ms() - RELAY_CALL_WINDOW_MS - 1
        ),
        # c1's own call, its body changed after it was signed
        "altered": {**cells.signed_by("c1", request, to="c0"), "from": "c1", "extra": 1},
        # c1's signature on another request
        "signature moved": {
            **request,
            **{
                name: value
                for name, value in cells.signed_by("c1", {**request, "x": 1}, to="c0").items()
                if name != "x"
            },
        },
    }
    for name, forged in forgeries.items():
        # When the forged call reaches c0's Relay
        answer = _invoke(cells, "c0", forged)
        # Then it is refused, and no cell's table changed
        assert answer.get("error", {}).get("code") == "BAD_REQUEST", name
        assert cells.dump() == before, name
    # And the same request, made and signed by c1 for c0, is answered
    made_by_c1 = _invoke(cells, "c0", cells.signed_by("c1", request, to="c0"))
    assert "ok" in made_by_c1, made_by_c1


@pytest.mark.unit
def test_the_signature_covers_every_field_but_itself() -> None:
    signed: dict[str, Any] = {
        "op": "keys",
        "from": "c1",
        "to": "c0",
        "at": 1,
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "userId": "x",
        SIGNATURE: "s",
    }
    digest = relay_digest(signed, SIGNATURE)
    # The signature itself is not signed, and the order of the fields does not matter
    assert relay_digest({**signed, SIGNATURE: "t"}, SIGNATURE) == digest
    assert relay_digest(dict(reversed(signed.items())), SIGNATURE) == digest
    # Any other field changed, added or left out is another digest
    for name, value in signed.items():
        if name != SIGNATURE:
            changed = f"{value}0" if isinstance(value, str) else value + 1
            assert relay_digest({**signed, name: changed}, SIGNATURE) != digest, name
            without = {key: kept for key, kept in signed.items() if key != name}
            assert relay_digest(without, SIGNATURE) != digest, name
    assert relay_digest({**signed, "more": 1}, SIGNATURE) != digest


def test_each_calling_cell_has_its_own_budget(cells: CellsUnderTest) -> None:
    # Given c0's Relay admitting 2 calls at once from each cell
    c0 = cells["c0"].services
    callers = RelayCallers(
        c0.cells, c0.relay_directory, c0.rate_limits, c0.clock, RateLimit(burst=2, per_minute=1)
    )

    def call_from(cell: str) -> Any:
        return read_request(
            cells.signed_by(cell, {"op": "keys", "from": cell, "userId": ALICE.user_id}, to="c0")
        )

    # When c1 calls three times
    callers.admit(call_from("c1"))
    callers.admit(call_from("c1"))
    with pytest.raises(RateLimited) as refused:
        callers.admit(call_from("c1"))
    assert refused.value.retry_after and refused.value.retry_after > 0
    # Then c2 is still admitted: c1 used only its own budget
    callers.admit(call_from("c2"))
    callers.admit(call_from("c2"))

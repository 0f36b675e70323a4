"""The v1.2 connect signature, bound to the endpoint (`aud`, docs/protocol.md §1), on moto:
a query is worth something only at the endpoint it was signed for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from messenger_protocol.connect import canonical_endpoint, signed_connect_query
from tests.support.cells import CellsUnderTest, cells_harness, user_homed_in
from tests.support.harness import Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

# Where whoever lured the client got it to connect (a spoofed directory's cell URL).
FAKE_CELL = "wss://fake.example.net/prod"
# The cell's other side (docs/protocol.md §7): another API, another URL.
STANDBY = "wss://b9c8d7e6f5.execute-api.us-west-2.amazonaws.com/test"


def effect_of(decision: dict) -> str:
    return decision["policyDocument"]["Statement"][0]["Effect"]


def refused_without_writes(h: Harness, query: dict[str, str]) -> str:
    """The Deny's reason, once checked that nothing (the Limits table included) changed."""
    before = h.dump(with_limits=True)
    decision = h.authorize(query)
    assert effect_of(decision) == "Deny"
    assert h.dump(with_limits=True) == before
    return str(decision["context"]["reason"])


def test_given_a_query_bound_to_this_endpoint_then_it_registers_and_later_connects(
    h: Harness, alice: TestUser
) -> None:
    # Given the endpoint API Gateway names in the event (wss://domainName/stage)
    # When alice registers, and later connects, each time signed for it
    first = h.authorize(alice.connect_query(ts=h.clock.now_s(), aud=h.endpoint))
    later = h.authorize(alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=h.endpoint))
    # Then both are allowed as alice
    assert (effect_of(first), effect_of(later)) == ("Allow", "Allow")
    assert later["context"] == {"userId": "alice"}


@pytest.mark.parametrize("elsewhere", [FAKE_CELL, STANDBY, "ws://127.0.0.1:8080/c0"])
def test_given_a_query_signed_for_another_endpoint_then_it_is_refused_and_writes_nothing(
    h: Harness, alice: TestUser, elsewhere: str
) -> None:
    # Given alice registered here
    h.connect(alice)
    # When a query she signed for another endpoint is relayed here, unchanged
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=elsewhere)
    # Then it is refused, its nonce unspent, and it says why
    assert "aud" in refused_without_writes(h, query)


def test_given_a_relayed_first_connect_then_no_user_is_registered(
    h: Harness, alice: TestUser
) -> None:
    # A registration signed for a fake cell registers nobody, not even in the counters
    refused_without_writes(h, alice.connect_query(ts=h.clock.now_s(), aud=FAKE_CELL))
    assert h.services.profiles.get_profile("alice") is None


def test_given_aud_rewritten_to_this_endpoint_then_the_signature_does_not_verify(
    h: Harness, alice: TestUser
) -> None:
    # Given a query signed for the fake cell, When the relay rewrites aud to this endpoint
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=FAKE_CELL)
    query["aud"] = h.endpoint
    # Then the signature, bound to the fake's URL, does not verify here
    assert "signature" in refused_without_writes(h, query)


def test_given_a_v11_query_then_it_is_still_accepted_by_default(
    h: Harness, alice: TestUser
) -> None:
    assert effect_of(h.authorize(alice.connect_query(ts=h.clock.now_s()))) == "Allow"


def test_given_v11_turned_off_then_an_unbound_query_is_refused_and_a_bound_one_accepted(
    alice: TestUser,
) -> None:
    with harness(accept_v11_connect=False) as h:
        # When alice signs in the v1.1 form (no aud), Then refused, nothing written
        assert "aud" in refused_without_writes(h, alice.connect_query(ts=h.clock.now_s()))
        # And signed for this endpoint, she registers
        bound = alice.connect_query(ts=h.clock.now_s(), aud=h.endpoint)
        assert effect_of(h.authorize(bound)) == "Allow"


def test_given_a_configured_endpoint_then_a_query_signed_for_it_is_accepted(
    alice: TestUser,
) -> None:
    # Given a custom domain the deployment serves too (CONNECT_ENDPOINTS)
    custom = canonical_endpoint("wss://chat.example.com/")
    with harness(connect_endpoints=(custom,)) as h:
        # Then a query signed for it, or for the execute-api URL, is accepted
        assert effect_of(h.authorize(alice.connect_query(ts=h.clock.now_s(), aud=custom))) == (
            "Allow"
        )
        later = alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=h.endpoint)
        assert effect_of(h.authorize(later)) == "Allow"
        # And one for another endpoint is not
        refused_without_writes(
            h, alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=FAKE_CELL)
        )


def test_given_aud_in_another_form_of_this_endpoint_then_it_is_refused(
    h: Harness, alice: TestUser
) -> None:
    # aud is compared as an exact string: clients send the canonical form
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False, aud=h.endpoint + "/")
    refused_without_writes(h, query)


def test_given_a_linked_device_then_it_is_refused_until_device_lists_are_kept(
    h: Harness, alice: TestUser
) -> None:
    # Given alice registered; When a "tablet" signs correctly with alice's own key
    h.connect(alice)
    query = signed_connect_query(
        alice.signing_key, "alice", now=h.clock.now_s(), aud=h.endpoint, device_id="tablet"
    )
    # Then it is refused: only device 1 (the account's signKey) connects today
    assert "device" in refused_without_writes(h, query)


# --- a query relayed between cells, each its own API ----------------------------------


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness() as running:
        yield running


def test_given_a_query_signed_for_c0_then_c1_refuses_it_and_nothing_is_written(
    cells: CellsUnderTest,
) -> None:
    # Given bob, at home in c1, lured into signing for c0's endpoint
    bob = user_homed_in("c1", "bob")
    query = bob.connect_query(ts=cells["c1"].clock.now_s(), aud=cells["c0"].endpoint)
    before = cells.dump()
    # When the query is relayed to c1, his real home
    decision = cells["c1"].authorize(query)
    # Then c1 refuses it, and no table of either cell changed
    assert effect_of(decision) == "Deny" and "aud" in decision["context"]["reason"]
    assert cells.dump() == before
    # And signed for c1 itself, bob connects
    own = bob.connect_query(ts=cells["c1"].clock.now_s(), aud=cells["c1"].endpoint)
    assert effect_of(cells["c1"].authorize(own)) == "Allow"

"""One registration budget per source address across the whole deployment (docs/limits.md):
counted in the cell the shard rule gives the address, through the Relay when that is
another cell; IPv6 per /64 and per /48 (ten times the limit). On moto, real Lambda Invokes
between cells."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messenger.dal.profiles import user_key
from messenger.logic.registrations import BLOCK_LIMIT_FACTOR, registration_source
from messenger.logic.relay_callers import CALLERS_BUCKET_OWNER
from messenger_protocol.errors import BadRequest
from tests.support.cells import CellsUnderTest, cells_harness, user_homed_in
from tests.support.harness import Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

PER_HOUR = 30


def effect_of(decision: dict) -> str:
    return decision["policyDocument"]["Statement"][0]["Effect"]


def register(h: Harness, user: TestUser, source_ip: str) -> str:
    return effect_of(h.authorize(user.connect_query(ts=h.clock.now_s()), source_ip=source_ip))


def everything(cells: CellsUnderTest) -> dict[str, Any]:
    """Every item of every cell, but the Relay's per-caller budgets (docs/scale.md "The
    mesh"), which count any call a proven peer makes, refused or not."""
    return {
        cell: {
            table: [item for item in items if item["pk"]["S"] != user_key(CALLERS_BUCKET_OWNER)]
            for table, items in h.dump(with_limits=True).items()
        }
        for cell, h in cells.harnesses.items()
    }


def counters_in(h: Harness) -> list[dict[str, Any]]:
    limits = h.dump(with_limits=True)[h.table_names["Limits"]]
    return [item for item in limits if item["sk"]["S"].startswith("REG#")]


def address_kept_in(cells: CellsUnderTest, cell: str) -> str:
    """An IPv4 address whose registrations `cell` counts."""
    for n in range(1, 255):
        address = f"203.0.113.{n}"
        if cells[cell].services.cells.home_of(registration_source(address).shard_key) == cell:
            return address
    raise AssertionError(f"no address of 203.0.113.0/24 is counted in {cell}")


@pytest.fixture
def cells() -> Iterator[CellsUnderTest]:
    with cells_harness(registrations_per_ip_per_hour=PER_HOUR) as running:
        yield running


@pytest.mark.parametrize("keeper", ["c0", "c1"])
def test_given_30_registrations_in_c0_then_the_31st_from_that_address_in_c1_is_refused(
    cells: CellsUnderTest, keeper: str
) -> None:
    # Given an address (counted in `keeper`) that registered 30 users of c0 this hour
    address = address_kept_in(cells, keeper)
    for n in range(PER_HOUR):
        assert register(cells["c0"], user_homed_in("c0", f"u{n}"), address) == "Allow"
    # When it registers a user of c1
    before = everything(cells)
    decision = cells["c1"].authorize(
        user_homed_in("c1", "late").connect_query(ts=cells["c1"].clock.now_s()),
        source_ip=address,
    )
    # Then c1 refuses it (403), and no table of either cell changed
    assert effect_of(decision) == "Deny"
    assert "too many new users" in decision["context"]["reason"]
    assert everything(cells) == before
    # And the count is kept in one cell only, the address's
    other = "c1" if keeper == "c0" else "c0"
    assert counters_in(cells[keeper]) and not counters_in(cells[other])
    # And another address still registers users of c1, and the next hour this one does
    assert register(cells["c1"], user_homed_in("c1", "other"), "198.51.100.7") == "Allow"
    cells["c1"].clock.advance(3600)
    assert register(cells["c1"], user_homed_in("c1", "next-hour"), address) == "Allow"


def test_given_registrations_spread_over_both_cells_then_they_share_one_budget(
    cells: CellsUnderTest,
) -> None:
    # 15 users of c0 and 15 of c1 from one address use up its 30
    address = address_kept_in(cells, "c1")
    for n in range(PER_HOUR // 2):
        assert register(cells["c0"], user_homed_in("c0", f"a{n}"), address) == "Allow"
        assert register(cells["c1"], user_homed_in("c1", f"b{n}"), address) == "Allow"
    late = user_homed_in("c0", "one-more")
    assert register(cells["c0"], late, address) == "Deny"
    assert cells["c0"].services.profiles.get_profile(late.user_id) is None


def test_given_a_retried_count_then_the_registration_counts_once(cells: CellsUnderTest) -> None:
    # Given the address's cell is c1, When c0 asks it twice for the same attempt (a lost
    # answer, retried), Then it counts one registration
    source = registration_source(address_kept_in(cells, "c1"))
    peers = cells["c0"].services.peers
    for _ in range(2):
        assert peers.count_registration("c1", source.address, None, "SameAttempt0001=")
    [counter] = counters_in(cells["c1"])
    assert counter["n"] == {"N": "1"}


def test_given_an_address_another_cell_keeps_then_the_relay_refuses_to_count_it(
    cells: CellsUnderTest,
) -> None:
    # A peer that asks c1 to count an address c0 keeps is refused, and nothing is written
    source = registration_source(address_kept_in(cells, "c0"))
    before = everything(cells)
    with pytest.raises(BadRequest, match="not counted in this cell"):
        cells["c0"].services.peers.count_registration("c1", source.address, None, "Attempt1=")
    assert everything(cells) == before


# --- IPv6: per /64, and per /48 at ten times the limit ---------------------------------


def test_an_ipv6_64_is_one_source_and_its_48_has_ten_times_the_budget() -> None:
    with harness(registrations_per_ip_per_hour=1) as h:
        # Given one registration from a /64, Then another from the same /64 is refused
        assert register(h, TestUser("first"), "2001:db8:1:0::1") == "Allow"
        assert register(h, TestUser("second"), "2001:db8:1:0:ffff::9") == "Deny"
        # And nine more /64s of the same /48 register one user each (ten in the /48)
        for n in range(1, BLOCK_LIMIT_FACTOR):
            assert register(h, TestUser(f"user{n}"), f"2001:db8:1:{n:x}::1") == "Allow"
        # When an eleventh /64 of that /48 registers, Then it is refused, nothing written
        before = h.dump(with_limits=True)
        assert register(h, TestUser("eleventh"), "2001:db8:1:ff::1") == "Deny"
        assert h.dump(with_limits=True) == before
        # And another /48 still registers
        assert register(h, TestUser("elsewhere"), "2001:db8:2::1") == "Allow"


def test_an_ipv6_48_is_counted_in_one_cell_for_the_whole_deployment() -> None:
    with cells_harness(registrations_per_ip_per_hour=1) as cells:
        # Ten /64s of one /48 register users in c0 and c1 alternately
        for n in range(BLOCK_LIMIT_FACTOR):
            cell = ("c0", "c1")[n % 2]
            user = user_homed_in(cell, f"v6-{n}")
            assert register(cells[cell], user, f"2001:db8:7:{n:x}::1") == "Allow"
        # Then an eleventh /64 of that /48 is refused in either cell
        for cell in ("c0", "c1"):
            late = user_homed_in(cell, "v6-late")
            assert register(cells[cell], late, "2001:db8:7:ff::1") == "Deny"
        # And both counters of each registration are kept in one cell
        keepers = [cell for cell in ("c0", "c1") if counters_in(cells[cell])]
        assert len(keepers) == 1
        assert len(counters_in(cells[keepers[0]])) == BLOCK_LIMIT_FACTOR + 1


def test_counters_hold_no_address() -> None:
    with cells_harness() as cells:
        register(cells["c0"], user_homed_in("c0", "amy"), "2001:db8:9::5")
        text = repr(everything(cells))
        assert "2001:db8" not in text and "REG#" in text

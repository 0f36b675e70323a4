"""A user's watchers are capped per cell (issue 24): a subscribe that would pass the cap
is refused up front, and the count is released with the subscriptions it counted."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.contract import STALE_CONNECTION_SECONDS
from messenger.dal import subscriptions as subscriptions_module
from messenger.dal.subscriptions import WATCHER_COUNT_PERIOD_SECONDS
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

CAP = 3


@pytest.fixture(autouse=True)
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions_module, "MAX_WATCHERS_PER_USER", CAP)


def subscribe(h: Harness, watcher: Connection, user_ids: list[str]) -> dict[str, Any]:
    reply = h.send(watcher, {"action": "getPresence", "userIds": user_ids, "subscribe": True})
    assert reply is not None
    return reply


def watchers(h: Harness, user: str, count: int) -> list[Connection]:
    """`count` connections of distinct users, each subscribed to `user`."""
    connections = [h.connect(TestUser(f"w{n}")) for n in range(count)]
    for connection in connections:
        assert subscribe(h, connection, [user])["type"] == "presence"
    return connections


def subscriptions_to(h: Harness, user: str) -> list[str]:
    return [
        item["sk"]["S"]
        for item in h.dump()["test-users"]
        if item["pk"]["S"] == f"U#{user}" and item["sk"]["S"].startswith("SUB#")
    ]


def test_a_subscribe_past_the_cap_is_refused_and_writes_nothing(
    h: Harness, bob: TestUser, carol: TestUser, mallory: TestUser
) -> None:
    for user in (bob, carol):
        h.disconnect(h.connect(user))
    full = watchers(h, "bob", CAP)
    m = h.connect(mallory)
    before = h.dump()
    # carol has room, bob has none: the whole frame is refused
    reply = subscribe(h, m, ["carol", "bob"])
    assert reply["code"] == "BAD_REQUEST" and reply["ref"] == "getPresence"
    assert "bob" in reply["message"] and "carol" not in reply["message"]
    assert h.dump() == before
    # A plain lookup is still answered; a watcher asking again is no new watcher
    assert h.send(m, {"action": "getPresence", "userIds": ["bob"]})["type"] == "presence"
    assert subscribe(h, full[0], ["bob"])["type"] == "presence"
    assert len(subscriptions_to(h, "bob")) == CAP


def test_a_disconnect_releases_its_count(h: Harness, bob: TestUser, mallory: TestUser) -> None:
    h.disconnect(h.connect(bob))
    full = watchers(h, "bob", CAP)
    m = h.connect(mallory)
    assert subscribe(h, m, ["bob"])["code"] == "BAD_REQUEST"
    h.disconnect(full[0])
    assert subscribe(h, m, ["bob"])["type"] == "presence"
    assert subscribe(h, h.connect(TestUser("late")), ["bob"])["code"] == "BAD_REQUEST"


def test_a_watcher_found_closed_releases_its_count(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    full = watchers(h, "bob", CAP)
    h.posts.gone.add(full[0].connection_id)
    h.connect(bob)
    h.settle_flaps()  # the presence function meets the closed watcher and drops it
    assert subscribe(h, h.connect(mallory), ["bob"])["type"] == "presence"


def test_subscriptions_swept_up_after_a_lost_disconnect_count_no_more(
    h: Harness, bob: TestUser, mallory: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    watchers(h, "bob", CAP)  # connections that will never see their $disconnect
    h.clock.advance(STALE_CONNECTION_SECONDS + WATCHER_COUNT_PERIOD_SECONDS)
    assert subscribe(h, h.connect(mallory), ["bob"])["type"] == "presence"

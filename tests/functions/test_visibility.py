"""setPresenceVisibility (docs/protocol.md §2): to anyone not allowed, a user looks exactly
like an unknown one, in getPresence, in subscriptions and in changes.

The finding (issue 12, 6): any registered user could watch anyone's presence, and
subscriptions to ids never registered were stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from messenger.dal.contacts import VisibilityOvertaken
from messenger_protocol.names import PresenceVisibility
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def set_visibility(
    h: Harness, connection: Connection, visibility: str, contacts: list[str] | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"action": "setPresenceVisibility", "visibility": visibility}
    if contacts is not None:
        frame["contacts"] = contacts
    reply = h.send(connection, frame)
    assert reply is not None
    return reply


def watch(h: Harness, watcher: Connection, *user_ids: str) -> list[dict[str, Any]]:
    reply = h.send(watcher, {"action": "getPresence", "userIds": list(user_ids), "subscribe": True})
    assert reply is not None and reply["type"] == "presence", reply
    return reply["users"]


def subscriptions_to(h: Harness, user_id: str) -> list[str]:
    return [
        item["watcher"]["S"]
        for item in h.dump()["test-users"]
        if item["pk"]["S"] == f"U#{user_id}" and item["sk"]["S"].startswith("SUB#")
    ]


@pytest.fixture
def bob_online_for_contacts(h: Harness, bob: TestUser) -> Connection:
    """Bob, online, visible to alice only."""
    b = h.connect(bob)
    assert set_visibility(h, b, "contacts", ["alice"]) == {
        "type": "presenceVisibility",
        "visibility": "contacts",
        "count": 1,
    }
    return b


def test_a_watcher_not_allowed_sees_the_same_as_for_an_unknown_user(
    h: Harness, alice: TestUser, mallory: TestUser, bob_online_for_contacts: Connection
) -> None:
    # Given bob (online, contacts: alice), and mallory who is not among them
    a, m = h.connect(alice), h.connect(mallory)
    # When both ask about bob and about a user that was never registered, subscribing
    seen_by_mallory = watch(h, m, "bob", "ghost")
    seen_by_alice = watch(h, a, "bob", "ghost")
    # Then mallory sees bob exactly as she sees the unknown user
    unknown = {"online": False, "lastSeen": None}
    assert [{k: u[k] for k in unknown} for u in seen_by_mallory] == [unknown, unknown]
    assert seen_by_alice[0] == {"userId": "bob", "online": True, "lastSeen": None}
    # And only alice's subscription is recorded: none by mallory, none to the unknown user
    assert subscriptions_to(h, "bob") == ["alice"]
    assert subscriptions_to(h, "ghost") == []
    # And when bob goes offline (and it holds), alice hears it and mallory hears nothing
    h.disconnect(bob_online_for_contacts)
    h.settle_flaps()
    assert h.posts.of_type(a.connection_id, "presence")[-1]["users"][0]["online"] is False
    assert h.posts.of_type(m.connection_id, "presence") == []


def test_nobody_hides_the_user_from_everyone_but_themself(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    b1, b2 = h.connect(bob), h.connect(bob)
    assert set_visibility(h, b1, "nobody")["count"] == 0
    a = h.connect(alice)
    assert watch(h, a, "bob") == [{"userId": "bob", "online": False, "lastSeen": None}]
    assert watch(h, b2, "bob") == [{"userId": "bob", "online": True, "lastSeen": None}]


def test_everyone_is_the_default_and_can_be_set_again(
    h: Harness, alice: TestUser, bob: TestUser
) -> None:
    b, a = h.connect(bob), h.connect(alice)
    assert watch(h, a, "bob")[0]["online"] is True
    set_visibility(h, b, "nobody")
    assert watch(h, a, "bob")[0]["online"] is False
    assert set_visibility(h, b, "everyone", ["ignored"]) == {
        "type": "presenceVisibility",
        "visibility": "everyone",
        "count": 0,
    }
    assert watch(h, a, "bob")[0]["online"] is True


def test_watchers_no_longer_allowed_see_an_unknown_user_and_lose_their_subscription(
    h: Harness, alice: TestUser, carol: TestUser, bob: TestUser
) -> None:
    # Given alice and carol watch bob, who shows himself to everyone
    b = h.connect(bob)
    a, c = h.connect(alice), h.connect(carol)
    watch(h, a, "bob")
    watch(h, c, "bob")
    # When bob narrows it to alice
    set_visibility(h, b, "contacts", ["alice"])
    # Then carol is told what an unknown user looks like, and her subscription goes
    assert h.posts.of_type(c.connection_id, "presence") == [
        {"type": "presence", "users": [{"userId": "bob", "online": False, "lastSeen": None}]}
    ]
    assert subscriptions_to(h, "bob") == ["alice"]
    # And alice, still allowed, hears nothing new (nothing changed for her)
    assert h.posts.of_type(a.connection_id, "presence") == []


def test_a_new_list_replaces_the_old_one(
    h: Harness, alice: TestUser, carol: TestUser, bob: TestUser
) -> None:
    b = h.connect(bob)
    a, c = h.connect(alice), h.connect(carol)
    set_visibility(h, b, "contacts", ["alice"])
    assert set_visibility(h, b, "contacts", ["carol", "dave", "carol"])["count"] == 2
    assert h.send(a, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is False
    assert h.send(c, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is True
    # Only the list in effect is kept
    contacts = sorted(
        item["sk"]["S"].rsplit("#", 1)[1]
        for item in h.dump()["test-users"]
        if item["sk"]["S"].startswith("SEE#")
    )
    assert contacts == ["carol", "dave"]


def test_the_same_setting_again_writes_nothing(h: Harness, bob: TestUser) -> None:
    b = h.connect(bob)
    set_visibility(h, b, "contacts", ["alice", "carol"])
    before = h.dump()
    # Clients send it on every connect: the same list, in any order, costs one read
    assert set_visibility(h, b, "contacts", ["carol", "alice"])["count"] == 2
    assert h.dump() == before


def test_an_older_setting_finishing_last_does_not_win(h: Harness, bob: TestUser) -> None:
    h.connect(bob)
    contacts = h.services.contacts
    # Given two settings made at once on two devices, the newer one taking effect first
    newer, older = f"{2:017d}abcd", f"{1:017d}abcd"
    contacts.set_visibility("bob", PresenceVisibility.CONTACTS, ["alice"], newer, "digest-a")
    # When the older one finishes
    with pytest.raises(VisibilityOvertaken):
        contacts.set_visibility("bob", PresenceVisibility.CONTACTS, ["carol"], older, "digest-c")
    # Then the newer stays in effect, and nothing of the older one is left
    profile = h.services.profiles.get_profile("bob")
    assert profile is not None and profile.visibility_generation == newer
    assert contacts.contacts_of_among(profile, ["alice", "carol"]) == {"alice"}
    kept = [i["sk"]["S"] for i in h.dump()["test-users"] if i["sk"]["S"].startswith("SEE#")]
    assert kept == [f"SEE#{newer}#alice"]


def stored_contacts(h: Harness, user_id: str) -> list[str]:
    return sorted(
        item["sk"]["S"].rsplit("#", 1)[1]
        for item in h.dump()["test-users"]
        if item["pk"]["S"] == f"U#{user_id}" and item["sk"]["S"].startswith("SEE#")
    )


def edit_visibility(h: Harness, connection: Connection, **edit: list[str]) -> dict[str, Any]:
    reply = h.send(
        connection, {"action": "setPresenceVisibility", "visibility": "contacts", **edit}
    )
    assert reply is not None
    return reply


def test_add_and_remove_edit_the_stored_list(
    h: Harness, alice: TestUser, carol: TestUser, bob: TestUser
) -> None:
    b = h.connect(bob)
    a, c = h.connect(alice), h.connect(carol)
    set_visibility(h, b, "contacts", ["alice"])
    # add keeps the people already listed (the finding: it replaced the list with its own)
    assert edit_visibility(h, b, add=["carol"])["count"] == 2
    assert stored_contacts(h, "bob") == ["alice", "carol"]
    for watcher in (a, c):
        assert h.send(watcher, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"]
    assert edit_visibility(h, b, remove=["alice", "zed"])["count"] == 1
    assert stored_contacts(h, "bob") == ["carol"]
    assert h.send(a, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is False
    assert h.send(c, {"action": "getPresence", "userIds": ["bob"]})["users"][0]["online"] is True


def test_an_edit_that_would_pass_the_limit_is_refused_and_writes_nothing(
    h: Harness, bob: TestUser
) -> None:
    from messenger_protocol.limits import MAX_CONTACTS

    b = h.connect(bob)
    set_visibility(h, b, "contacts", [f"u{i}" for i in range(MAX_CONTACTS)])
    before = h.dump()
    reply = edit_visibility(h, b, add=["one-more"])
    assert reply["type"] == "error" and reply["code"] == "BAD_REQUEST", reply
    assert h.dump() == before


def test_two_devices_editing_at_once_both_keep_their_contacts(
    h: Harness, bob: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, laptop = h.connect(bob), h.connect(bob)
    set_visibility(h, phone, "contacts", ["alice"])
    contacts = h.services.contacts
    write = contacts.set_visibility
    interleaved: list[str] = []

    def laptop_edits_first(*args: Any, **kwargs: Any) -> None:
        # Given the laptop's edit taking effect between the phone's read and its write
        if not interleaved:
            interleaved.append("dave")
            assert edit_visibility(h, laptop, add=["dave"])["count"] == 2
        write(*args, **kwargs)

    monkeypatch.setattr(contacts, "set_visibility", laptop_edits_first)
    # When the phone adds carol
    assert edit_visibility(h, phone, add=["carol"])["count"] == 3
    # Then both additions are in effect, and nothing of the overtaken attempt is left
    assert interleaved == ["dave"]
    assert stored_contacts(h, "bob") == ["alice", "carol", "dave"]

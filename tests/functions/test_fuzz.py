"""Property-based fuzzing of every route's frame and of the connect query.

For any input: no exception escapes a handler, every refusal is a docs/protocol.md error
code, and a refused frame leaves the Users and Queue tables exactly as they were (the
Limits table counts every well-formed frame; a frame refused RATE_LIMITED writes
nothing there either: tests/functions/test_rate_limits.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.contract import ROUTES
from messenger_protocol.encoding import b64url_encode
from tests.support.harness import harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration

PROTOCOL_CODES = {
    "BAD_REQUEST",
    "UNKNOWN_ACTION",
    "UNKNOWN_RECIPIENT",
    "UNKNOWN_USER",
    "TOO_LARGE",
    "RATE_LIMITED",
    "INTERNAL",
}
FRAME_ROUTES = [r.key for r in ROUTES if not r.key.startswith("$")] + ["$default"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "bob",
            "alice",
            "nobody",
            "msg-00000001",
            "m#alice#msg-00000001",
            "everyone",
            "contacts",
            "nobody",
            b64url_encode(b"\x00" * 24),
            b64url_encode(b"c" * 40),
            "r#x",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "messageId",
        "to",
        "body",
        "nonce",
        "sentAt",
        "ids",
        "messageIds",
        "userIds",
        "subscribe",
        "userId",
        "platform",
        "token",
        "from",
        "action",
        "visibility",
        "contacts",
    ]
)


def frames_for(route: str) -> st.SearchStrategy[str]:
    action = st.just(route) if not route.startswith("$") else st.text(max_size=12)
    framed = st.builds(
        lambda a, fields: json.dumps({**fields, "action": a}),
        action,
        st.dictionaries(field_names, json_values, max_size=6),
    )
    raw = st.text(max_size=60)
    return st.one_of(framed, framed, raw, json_values.map(json.dumps))


def check_reply(reply: dict[str, Any] | None, before: dict, after: dict) -> None:
    if reply is not None and reply.get("type") == "error":
        assert reply["code"] in PROTOCOL_CODES
        assert reply["code"] != "INTERNAL", reply
        assert after == before, "a refused frame changed the tables"


@pytest.mark.parametrize("route", FRAME_ROUTES)
def test_any_frame_is_answered_or_refused_cleanly(route: str) -> None:
    alice, bob = TestUser("alice"), TestUser("bob")
    with harness() as h:
        h.connect(bob)
        a = h.connect(alice)

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(body=frames_for(route))
        def run(body: str) -> None:
            # A minute apart: the rate limits (which count every well-formed frame) never
            # stand between the fuzzer and the rules behind them.
            h.clock.advance(60)
            before = h.dump()
            reply = h.send_raw(a, body, route)
            check_reply(reply, before, h.dump())

        run()


connect_params = st.dictionaries(
    st.sampled_from(["userId", "ts", "nonce", "sig", "signKey", "boxKey", "extra"]),
    st.one_of(
        st.text(max_size=90),
        st.integers().map(str),
        st.binary(min_size=0, max_size=70).map(b64url_encode),
    ),
    max_size=7,
)


def test_any_connect_query_is_denied_cleanly_unless_correctly_signed() -> None:
    alice = TestUser("alice")
    with harness() as h:
        h.connect(alice)

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(query=st.one_of(st.none(), connect_params))
        def run(query: dict[str, str] | None) -> None:
            before = h.dump()
            decision = h.authorize(query)
            effect = decision["policyDocument"]["Statement"][0]["Effect"]
            assert effect == "Deny"  # nothing random can carry a valid signature
            assert h.dump() == before

        run()


def test_a_valid_query_with_one_field_mutated_is_denied() -> None:
    alice = TestUser("alice")
    with harness() as h:
        h.connect(alice)

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(name=st.sampled_from(["userId", "ts", "nonce", "sig"]), junk=st.text(max_size=70))
        def run(name: str, junk: str) -> None:
            query = alice.connect_query(ts=h.clock.now_s(), with_keys=False)
            if query[name] == junk:
                return
            query[name] = junk
            before = h.dump()
            decision = h.authorize(query)
            assert decision["policyDocument"]["Statement"][0]["Effect"] == "Deny"
            assert h.dump() == before

        run()


def test_any_presence_visibility_is_set_exactly_or_refused_with_nothing_changed() -> None:
    bob = TestUser("bob")
    ids = st.one_of(
        st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,8}", fullmatch=True),
        st.text(max_size=10),
    )
    with harness() as h:
        b = h.connect(bob)

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            visibility=st.sampled_from(["everyone", "contacts", "nobody", "friends", 3]),
            contacts=st.one_of(st.none(), st.lists(ids, max_size=12)),
        )
        def run(visibility: Any, contacts: list[str] | None) -> None:
            h.clock.advance(60)
            frame: dict[str, Any] = {"action": "setPresenceVisibility", "visibility": visibility}
            if contacts is not None:
                frame["contacts"] = contacts
            before = h.dump()
            reply = h.send(b, frame)
            assert reply is not None
            if reply["type"] == "error":
                check_reply(reply, before, h.dump())
                return
            allowed = list(dict.fromkeys(contacts or [])) if visibility == "contacts" else []
            assert reply == {
                "type": "presenceVisibility",
                "visibility": visibility,
                "count": len(allowed),
            }
            profile = h.services.profiles.get_profile("bob")
            assert profile is not None and profile.visibility == visibility
            assert profile.contact_count == len(allowed)

        run()

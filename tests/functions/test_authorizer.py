"""The $connect authorizer: docs/protocol.md §1, every acceptance and every refusal."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from messenger_protocol.connect import connect_message
from messenger_protocol.encoding import b64url_encode
from messenger_protocol.limits import CONNECT_WINDOW_SECONDS
from tests.support.harness import Harness, harness
from tests.support.identities import TestUser

pytestmark = pytest.mark.integration


def effect_of(decision: dict) -> str:
    return decision["policyDocument"]["Statement"][0]["Effect"]


def test_first_connect_with_keys_registers_and_allows(h: Harness, alice: TestUser) -> None:
    # Given a new user, When it connects with its keys
    decision = h.authorize(alice.connect_query(ts=h.clock.now_s()))
    # Then it is allowed, and the userId rides principalId and the context
    assert effect_of(decision) == "Allow"
    assert decision["principalId"] == "alice"
    assert decision["context"] == {"userId": "alice"}
    profile = h.services.profiles.get_profile("alice")
    assert profile is not None and profile.sign_key == alice.sign_key_b64


def test_known_user_connects_without_keys(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    decision = h.authorize(alice.connect_query(ts=h.clock.now_s(), with_keys=False))
    assert effect_of(decision) == "Allow"


def test_known_user_may_repeat_identical_keys(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    assert effect_of(h.authorize(alice.connect_query(ts=h.clock.now_s()))) == "Allow"


def refused_without_writes(h: Harness, query: dict | None) -> None:
    before = h.dump()
    decision = h.authorize(query)
    assert effect_of(decision) == "Deny"
    # No identity is passed on: the only context is the reason in words (for the local
    # emulator's 403 body; API Gateway drops it on a Deny)
    assert set(decision["context"]) == {"reason"} and decision["context"]["reason"]
    assert h.dump() == before


def test_wrong_key_signature_is_refused(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    impostor = TestUser("alice")  # other keys, same userId
    refused_without_writes(h, impostor.connect_query(ts=h.clock.now_s(), with_keys=False))


def test_taken_user_id_with_other_keys_is_refused(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    squatter = TestUser("alice")
    refused_without_writes(h, squatter.connect_query(ts=h.clock.now_s()))


@pytest.mark.parametrize("skew", [CONNECT_WINDOW_SECONDS + 1, -(CONNECT_WINDOW_SECONDS + 1)])
def test_ts_outside_the_window_is_refused(h: Harness, alice: TestUser, skew: int) -> None:
    h.connect(alice)
    refused_without_writes(h, alice.connect_query(ts=h.clock.now_s() + skew))


@pytest.mark.parametrize("skew", [CONNECT_WINDOW_SECONDS - 5, -(CONNECT_WINDOW_SECONDS - 5)])
def test_ts_inside_the_window_is_accepted(h: Harness, alice: TestUser, skew: int) -> None:
    h.connect(alice)
    decision = h.authorize(alice.connect_query(ts=h.clock.now_s() + skew))
    assert effect_of(decision) == "Allow"


def test_replayed_nonce_is_refused(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False)
    assert effect_of(h.authorize(query)) == "Allow"
    refused_without_writes(h, query)


def test_replayed_first_connect_is_refused(h: Harness, alice: TestUser) -> None:
    query = alice.connect_query(ts=h.clock.now_s())
    assert effect_of(h.authorize(query)) == "Allow"
    refused_without_writes(h, query)


def test_unknown_user_without_keys_is_refused(h: Harness, alice: TestUser) -> None:
    refused_without_writes(h, alice.connect_query(ts=h.clock.now_s(), with_keys=False))


@pytest.mark.parametrize("missing", ["userId", "ts", "nonce", "sig"])
def test_missing_parameter_is_refused(h: Harness, alice: TestUser, missing: str) -> None:
    query = alice.connect_query(ts=h.clock.now_s())
    del query[missing]
    refused_without_writes(h, query)


def test_no_query_string_is_refused(h: Harness) -> None:
    refused_without_writes(h, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("userId", "al ice"),
        ("userId", "a" * 65),
        ("ts", "12.5"),
        ("ts", "-1"),
        ("nonce", "short"),
        ("nonce", "x" * 65),
        ("nonce", "has+plus/and=pad_____"),
        ("sig", "not-base64!"),
        ("sig", "AAAA"),
        ("signKey", "AAAA"),
        ("boxKey", "AAAA"),
    ],
)
def test_malformed_parameter_is_refused(h: Harness, alice: TestUser, name: str, value: str) -> None:
    query = alice.connect_query(ts=h.clock.now_s())
    query[name] = value
    refused_without_writes(h, query)


@pytest.mark.parametrize("field", ["userId", "ts", "nonce"])
def test_a_signed_query_with_a_trailing_newline_is_refused(h: Harness, field: str) -> None:
    # Signed by its own key, so only the format check can refuse it: "carol\n" must not
    # become a user beside "carol" (a `$` anchor alone lets a trailing newline through).
    user = TestUser("carol")
    parts = {"userId": "carol", "ts": str(h.clock.now_s()), "nonce": "n" * 24}
    parts[field] += "\n"
    sig = user.signing_key.sign(
        connect_message(parts["userId"], parts["ts"], parts["nonce"])
    ).signature
    refused_without_writes(
        h,
        parts
        | {"sig": b64url_encode(sig), "signKey": user.sign_key_b64, "boxKey": user.box_key_b64},
    )


def test_only_one_key_given_is_refused(h: Harness, alice: TestUser) -> None:
    query = alice.connect_query(ts=h.clock.now_s())
    del query["boxKey"]
    refused_without_writes(h, query)


def test_signature_over_other_user_id_is_refused(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False)
    query["userId"] = "mallory"
    refused_without_writes(h, query)


def test_nonce_is_forgotten_only_after_the_window(h: Harness, alice: TestUser) -> None:
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False)
    assert effect_of(h.authorize(query)) == "Allow"
    # Within the window a replay is refused even after the nonce record's TTL should be
    # considered: it lives longer than the window.
    h.clock.advance(CONNECT_WINDOW_SECONDS)
    refused_without_writes(h, query)


def test_retry_of_the_same_attempt_is_not_a_replay(h: Harness, alice: TestUser) -> None:
    # The SDK retries a write whose answer timed out: the nonce record it finds is its own
    h.connect(alice)
    query = alice.connect_query(ts=h.clock.now_s(), with_keys=False)
    assert effect_of(h.authorize(query, "SameAttempt0001=")) == "Allow"
    assert effect_of(h.authorize(query, "SameAttempt0001=")) == "Allow"
    # while the same URL from another connection is a replay
    refused_without_writes(h, query)


def test_retried_registration_is_not_a_replay(h: Harness, alice: TestUser) -> None:
    query = alice.connect_query(ts=h.clock.now_s())
    assert effect_of(h.authorize(query, "FirstConnect001=")) == "Allow"
    assert effect_of(h.authorize(query, "FirstConnect001=")) == "Allow"
    refused_without_writes(h, query)


# --- look-alike ids (issue 12, 5) -------------------------------------------------------


@pytest.mark.parametrize(
    "user_id", ["ALICE-8491ef", "Alice-8491ef", ".", "..", "-", "...", "_alice", ".alice"]
)
def test_a_look_alike_id_cannot_register(h: Harness, user_id: str) -> None:
    # Given alice-8491ef registered, When someone registers a look-alike, correctly signed
    h.connect(TestUser("alice-8491ef"))
    # Then it is refused, and nothing is written
    refused_without_writes(h, TestUser(user_id).connect_query(ts=h.clock.now_s()))


# --- registrations per source address (issue 12, 5) -------------------------------------


def test_a_source_registers_at_most_its_hourly_limit_then_is_refused_with_nothing_written(
    alice: TestUser,
) -> None:
    with harness(registrations_per_ip_per_hour=3) as h:
        # Given a source address that registered three users this hour
        for n in range(3):
            query = TestUser(f"user{n}").connect_query(ts=h.clock.now_s())
            assert effect_of(h.authorize(query, source_ip="203.0.113.7")) == "Allow"
        # When it registers a fourth, Then that is refused and writes nothing
        before = h.dump(with_limits=True)
        decision = h.authorize(alice.connect_query(ts=h.clock.now_s()), source_ip="203.0.113.7")
        assert effect_of(decision) == "Deny"
        assert h.dump(with_limits=True) == before
        # And other sources still register
        elsewhere = h.authorize(alice.connect_query(ts=h.clock.now_s()), source_ip="198.51.100.1")
        assert effect_of(elsewhere) == "Allow"
        # And the next hour it may register again
        h.clock.advance(3600)
        carol = TestUser("carol").connect_query(ts=h.clock.now_s())
        assert effect_of(h.authorize(carol, source_ip="203.0.113.7")) == "Allow"


def test_an_ipv6_subscriber_counts_as_one_source_for_its_whole_64() -> None:
    with harness(registrations_per_ip_per_hour=1) as h:
        first = TestUser("first").connect_query(ts=h.clock.now_s())
        assert effect_of(h.authorize(first, source_ip="2001:db8:1:2::1")) == "Allow"
        second = TestUser("second").connect_query(ts=h.clock.now_s())
        assert effect_of(h.authorize(second, source_ip="2001:db8:1:2:ffff::9")) == "Deny"
        third = TestUser("third").connect_query(ts=h.clock.now_s())
        assert effect_of(h.authorize(third, source_ip="2001:db8:1:3::1")) == "Allow"


def test_registration_counters_hold_no_address(h: Harness, alice: TestUser) -> None:
    h.authorize(alice.connect_query(ts=h.clock.now_s()), source_ip="203.0.113.7")
    limits = json.dumps(h.dump(with_limits=True)["test-limits"])
    assert "203.0.113.7" not in limits and "REG#" in limits


# --- our own failures are not refusals (issue 12, 4) -------------------------------------


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "TransactWriteItems"])
def test_a_throttled_table_makes_the_authorizer_fail_not_deny(
    h: Harness, alice: TestUser, bob: TestUser, operation: str
) -> None:
    # Given a table that keeps throttling (bob connects for the first time: a transaction)
    h.connect(alice)
    query = (bob if operation == "TransactWriteItems" else alice).connect_query(
        ts=h.clock.now_s(), with_keys=operation == "TransactWriteItems"
    )
    h.throttle(operation, times=100)
    before = h.dump(with_limits=True)
    # When the authorizer runs, Then it raises (API Gateway answers 500, clients retry)
    with pytest.raises(ClientError, match="Throttling"):
        h.authorize(query)
    assert h.dump(with_limits=True) == before


def test_a_timeout_makes_the_authorizer_fail_not_deny(
    h: Harness, alice: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.connect(alice)

    def timed_out(*args: object, **kwargs: object) -> None:
        raise ReadTimeoutError(endpoint_url="https://dynamodb")

    monkeypatch.setattr(h.services.profiles, "get_profile", timed_out)
    with pytest.raises(ReadTimeoutError):
        h.authorize(alice.connect_query(ts=h.clock.now_s(), with_keys=False))

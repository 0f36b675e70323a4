"""Which failures a client is answered as refusals (messenger.errors.as_refusal): storage
overload is RATE_LIMITED with a retryAfter, never INTERNAL (docs/protocol.md §3)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from messenger.dal.errors import TransactionCanceled
from messenger.errors import (
    STORAGE_RETRY_AFTER_MS,
    STORAGE_RETRY_SPREAD_MS,
    QueueFull,
    RateLimited,
    UnknownUser,
    as_refusal,
)

pytestmark = pytest.mark.unit


def client_error(code: str, **response: Any) -> ClientError:
    answer: Any = {"Error": {"Code": code, "Message": "x"}, **response}
    return ClientError(answer, "PutItem")


@pytest.mark.parametrize(
    "code",
    ["ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"],
)
def test_a_throttle_is_rate_limited_with_a_spread_retry_after(code: str) -> None:
    waits = set()
    for _ in range(50):
        refusal = as_refusal(client_error(code))
        assert isinstance(refusal, RateLimited)
        waits.add(refusal.retry_after)
    assert min(waits) >= STORAGE_RETRY_AFTER_MS - STORAGE_RETRY_SPREAD_MS
    assert max(waits) <= STORAGE_RETRY_AFTER_MS + STORAGE_RETRY_SPREAD_MS
    assert len(waits) > 1, "every client refused together would come back together"


def test_a_transaction_cancelled_by_a_throttled_item_is_rate_limited() -> None:
    raw = client_error(
        "TransactionCanceledException",
        CancellationReasons=[{"Code": "None"}, {"Code": "ThrottlingError"}],
    )
    assert isinstance(as_refusal(raw), RateLimited)
    assert isinstance(as_refusal(TransactionCanceled([None, "ThrottlingError"])), RateLimited)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ValidationException"),
        client_error("ConditionalCheckFailedException"),
        TransactionCanceled(["ConditionalCheckFailed", None]),
        RuntimeError("a bug"),
    ],
    ids=["validation", "condition", "cancelled", "bug"],
)
def test_anything_else_is_no_refusal_and_is_answered_internal(error: Exception) -> None:
    assert as_refusal(error) is None


def test_a_refusal_is_itself_and_the_waits_have_their_defaults() -> None:
    unknown = UnknownUser("no such user")
    assert as_refusal(unknown) is unknown
    assert RateLimited("slow down").retry_after == RateLimited.DEFAULT_RETRY_AFTER_MS
    assert QueueFull("full").retry_after == QueueFull.DEFAULT_RETRY_AFTER_MS
    assert RateLimited("slow down", retry_after=0).retry_after >= 1

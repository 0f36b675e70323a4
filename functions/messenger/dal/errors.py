"""The one translator from DynamoDB's ClientError codes to the errors the DAL acts on.

    try:
        with dynamodb_errors():
            client.put_item(..., ConditionExpression=...)
    except ConditionFailed as failed:
        failed.item   # the item as it was, when the call asked for it

Throttling past botocore's retries goes up unchanged too, and `is_throttle` names it:
the handler runtime answers it RATE_LIMITED with `retryAfter` (docs/protocol.md §3), so
clients back off instead of retrying at once. Anything else (validation errors) is
answered INTERNAL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError


class ConditionFailed(Exception):
    """A conditional write found the item otherwise; `item` is what it found, if returned."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("the condition of a write failed")
        self.item = item


class TransactionCanceled(Exception):
    """A transaction was cancelled; `reasons` has one code (or None) per action, in order,
    and `items` the item each action found, where it asked for it (ALL_OLD on failure)."""

    def __init__(
        self, reasons: list[str | None], items: list[dict[str, Any] | None] | None = None
    ) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons
        self.items = items or [None] * len(reasons)

    def failed_conditions(self) -> list[int]:
        """The positions of the actions whose condition failed."""
        return [i for i, code in enumerate(self.reasons) if code == "ConditionalCheckFailed"]

    @property
    def conflicted(self) -> bool:
        """Another request touched one of the items at the same moment."""
        return "TransactionConflict" in self.reasons


# DynamoDB's answers to more load than a table or a partition takes (after botocore's own
# retries): the server's storage is overloaded, not broken.
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)


# A transaction's cancellation reason for an item throttled.
THROTTLED_REASON = "ThrottlingError"


def is_throttle(error: BaseException) -> bool:
    """A DynamoDB call refused for load: a throttle code, or a transaction cancelled
    because one of its items was throttled."""
    if isinstance(error, TransactionCanceled):
        return THROTTLED_REASON in error.reasons
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    if code == "TransactionCanceledException":
        reasons: Any = error.response.get("CancellationReasons", [])
        return any(reason.get("Code") == THROTTLED_REASON for reason in reasons)
    return code in THROTTLE_CODES


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def dynamodb_errors() -> Iterator[None]:
    """Turn the ClientErrors callers decide on into ConditionFailed / TransactionCanceled."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code == "ConditionalCheckFailedException":
            item: Any = error.response.get("Item")
            raise ConditionFailed(item) from None
        if code == "TransactionCanceledException":
            reasons: Any = error.response.get("CancellationReasons", [])
            raise TransactionCanceled(
                [reason.get("Code") for reason in reasons],
                [reason.get("Item") for reason in reasons],
            ) from None
        raise

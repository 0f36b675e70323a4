"""The one translator from DynamoDB's ClientError codes to the errors the DAL acts on.

    try:
        with dynamodb_errors():
            client.put_item(..., ConditionExpression=...)
    except ConditionFailed as failed:
        failed.item   # the item as it was, when the call asked for it

Anything else (throttling past botocore's retries, validation errors) goes up unchanged:
the handlers answer it INTERNAL.
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

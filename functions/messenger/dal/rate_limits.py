"""Per-sender rate limit: a leaky bucket kept in DynamoDB, in the spirit of Signal's limiter.

Stored as GCRA's "theoretical arrival time" (`tat`, epoch ms) on the item
("U#<userId>", "RATE") of the Users table: each allowed message pushes `tat` one leak
interval further; a sender may run ahead of the clock by at most the burst. An idle
sender (the usual case) costs one conditional UpdateItem; a sender in a burst costs two
(the second guarded by the value the first saw, so concurrent sends cannot both slip
through); a sender over the limit costs one and writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.users import user_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RATE = "RATE"


class RateLimits:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def allow(self, user_id: str, now_ms: int, interval_ms: int, burst: int) -> bool:
        """Take one unit from the user's bucket; False (nothing written) when it is empty."""
        for _ in range(3):
            seen = self._take_if_drained(user_id, now_ms, interval_ms, burst)
            if seen is None:
                return True
            if seen - now_ms > interval_ms * (burst - 1):
                return False  # over the limit: refuse without writing
            if self._take_after(user_id, seen, interval_ms):
                return True
            # A concurrent send moved the bucket between our two calls: look again.
        return False

    def _write(
        self, user_id: str, tat: int, condition: str, values: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return self._client.update_item(  # type: ignore[return-value]
            TableName=self._table,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": RATE}},
            UpdateExpression="SET tat = :next, expiresAt = :exp",
            ConditionExpression=condition,
            ExpressionAttributeValues={
                ":next": {"N": str(tat)},
                # The item is worthless once the bucket has drained.
                ":exp": {"N": str(tat // 1000 + 60)},
                **values,
            },
            **extra,
        )

    def _take_if_drained(
        self, user_id: str, now_ms: int, interval_ms: int, burst: int
    ) -> int | None:
        """Start the bucket again from now if it has drained; else return its `tat`."""
        try:
            with dynamodb_errors():
                self._write(
                    user_id,
                    now_ms + interval_ms,
                    "attribute_not_exists(tat) OR tat <= :now",
                    {":now": {"N": str(now_ms)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return None
        except ConditionFailed as failed:
            item = failed.item or {}
            return int(item["tat"]["N"]) if "tat" in item else now_ms + interval_ms * burst

    def _take_after(self, user_id: str, seen: int, interval_ms: int) -> bool:
        """Move `tat` on by one interval, if nobody else moved it since we saw it."""
        try:
            with dynamodb_errors():
                self._write(user_id, seen + interval_ms, "tat = :seen", {":seen": {"N": str(seen)}})
        except ConditionFailed:
            return False
        return True

"""The Limits table: rate-limit buckets and registration counters, nothing else.

Item layout (pk, sk):
- ("U#<userId>", "RATE#<action>"), and ("U#<userId>", "RATE#<action>#<otherUserId>") for
  limits per pair: a leaky bucket kept as GCRA's "theoretical arrival time" (`tat`, epoch
  ms). Each frame let through pushes `tat` one leak interval further; a user may run
  ahead of the clock by at most the burst. The item expires once the bucket has drained.
- ("IP#<source>", "REG#<hour>"): how many users that source registered in that hour
  (`n`), in the whole deployment: kept in the cell the shard rule gives the address
  (logic/registrations.py). `source` is a digest of the address (for IPv6, of its /64, and
  apart of its /48), not the address.
- ("REGCOUNTED#<token>", "REGCOUNTED#"): a registration counted for another cell, by a
  digest of its attempt, so that a retry of it counts once; expires after two hours.

A bucket is taken from with at most two conditional UpdateItems and no read:
1. `SET tat = now + interval` if the bucket has drained (the usual case: one call);
2. otherwise `SET tat = tat + interval` if `tat` is at most `now + (burst - 1) * interval`.
The second is an atomic increment checked against the stored value at the moment of the
write, so any number of concurrent frames (two devices, a pipelining client) are each let
through exactly while the bucket has room, and none is refused below the limit. A frame
refused writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messenger.contract import RateLimit
from messenger.dal.errors import ConditionFailed, TransactionCanceled, dynamodb_errors
from messenger.dal.profiles import user_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RATE_PREFIX = "RATE#"
# TTL is lazy and reads never look at expired buckets' age: a second past draining is
# enough (the item then only says what "no item" says).
DRAINED_GRACE_SECONDS = 1
REGISTRATION_WINDOW_SECONDS = 3600
# ("REGCOUNTED#<token>", "REGCOUNTED#"): a registration counted for another cell.
COUNTED_PREFIX = "REGCOUNTED#"


def bucket_key(user_id: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(user_id)}, "sk": {"S": RATE_PREFIX + name}}


class RateLimits:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def take(self, user_id: str, name: str, now_ms: int, limit: RateLimit) -> bool:
        """Take one unit from a user's bucket `name`; False (nothing written) when full."""
        return self.take_or_wait(user_id, name, now_ms, limit) == 0

    def take_or_wait(self, user_id: str, name: str, now_ms: int, limit: RateLimit) -> int:
        """Take one unit from a user's bucket `name`: 0 when taken, else (nothing written)
        how many ms until the bucket has room again (the refusal's `retryAfter`)."""
        interval = limit.interval_ms
        ceiling = now_ms + (limit.burst - 1) * interval
        try:
            with dynamodb_errors():
                self._update(
                    user_id,
                    name,
                    "SET tat = :start, expiresAt = :exp",
                    "attribute_not_exists(tat) OR tat <= :now",
                    {
                        ":start": {"N": str(now_ms + interval)},
                        ":now": {"N": str(now_ms)},
                        ":exp": {"N": str(_expiry(now_ms + interval))},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return 0
        except ConditionFailed as failed:
            item = failed.item or {}
            if "tat" in item and int(item["tat"]["N"]) > ceiling:
                # Full: refused without a second call, until one unit has leaked out.
                return int(item["tat"]["N"]) - ceiling
        try:
            with dynamodb_errors():
                self._update(
                    user_id,
                    name,
                    "SET tat = tat + :interval, expiresAt = :exp",
                    "tat <= :ceiling",
                    {
                        ":interval": {"N": str(interval)},
                        ":ceiling": {"N": str(ceiling)},
                        # tat ends at most one interval past the ceiling.
                        ":exp": {"N": str(_expiry(ceiling + interval))},
                    },
                )
        except ConditionFailed:
            return interval  # filled by a concurrent frame meanwhile
        return 0

    def _update(
        self, user_id: str, name: str, update: str, condition: str, values: Any, **extra: Any
    ) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=bucket_key(user_id, name),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            **extra,
        )

    def registration_count(self, source: str, now_s: int, per_hour: int) -> dict[str, Any]:
        """The TransactWriteItems action that counts one registration from `source` in this
        hour, and fails its condition when the hour already has `per_hour` of them."""
        window = now_s - now_s % REGISTRATION_WINDOW_SECONDS
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"IP#{source}"}, "sk": {"S": f"REG#{window}"}},
                "UpdateExpression": "ADD n :one SET expiresAt = :exp",
                "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":limit": {"N": str(per_hour)},
                    ":exp": {"N": str(window + REGISTRATION_WINDOW_SECONDS)},
                },
            }
        }

    def count_registration(self, counts: Sequence[dict[str, Any]], token: str, now_s: int) -> bool:
        """Count one registration on its own (one another cell writes): the
        `registration_count` actions in one transaction, with a record of `token`, which
        names the registration: a retry of it (a lost answer) finds the record and counts
        nothing more. False, nothing written, when one of the counters is full."""
        window = now_s - now_s % REGISTRATION_WINDOW_SECONDS
        # An UpdateItem that creates the record, as every write of this table is one (the
        # functions may UpdateItem here, nothing else).
        record = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"{COUNTED_PREFIX}{token}"}, "sk": {"S": COUNTED_PREFIX}},
                "UpdateExpression": "SET expiresAt = :exp",
                "ConditionExpression": "attribute_not_exists(pk)",
                # Kept while a retry could still come: past the counters' own hour.
                "ExpressionAttributeValues": {
                    ":exp": {"N": str(window + 2 * REGISTRATION_WINDOW_SECONDS)}
                },
            }
        }
        try:
            with dynamodb_errors():
                self._client.transact_write_items(TransactItems=[record, *counts])  # type: ignore[list-item]
        except TransactionCanceled as canceled:
            failed = canceled.failed_conditions()
            if 0 in failed:
                return True  # counted by an earlier try of the same registration
            if failed:
                return False
            raise
        return True


def _expiry(tat_ms: int) -> int:
    return tat_ms // 1000 + DRAINED_GRACE_SECONDS

"""How many messages wait in each user's queue, in all and from each sender: the counters
behind the queue caps (QUEUE_FULL, docs/protocol.md §2), kept in the Limits table.

Item layout (pk, sk):
- ("U#<recipient>", "QUEUE"): `n`, the messages queued for the recipient;
- ("U#<recipient>", "QUEUE#<sender>"): `n`, those of them from one sender.
Both carry `expiresAt`: the expiry of the newest message they counted. Every message
lives as long as the next (one TTL), so once that moment is past, every message counted
has expired, and the counter starts again from nothing: a message that expired without
being acknowledged is released that way, and a counter off by a message (a crash between
the count and the store) heals within one TTL of its last message.

Counting a message is one conditional UpdateItem per counter and no read, checked against
the stored value at the moment of the write, so concurrent sends never pass a cap; a
count refused writes nothing, and an undone count (the other counter was full, or the
message was a resend) puts back exactly what was there. No Query counts a queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.profiles import user_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

QUEUE_COUNT = "QUEUE"
SENDER_COUNT_PREFIX = QUEUE_COUNT + "#"


@dataclass(frozen=True)
class Counted:
    """A counter one message took: what it held before, to put back on an undo."""

    key: dict[str, Any]
    # True when the message started the counter afresh (none was live); `old` then holds
    # the expired counter it replaced, if any, else the live counter's `n` and `expiresAt`.
    fresh: bool
    old: dict[str, Any] | None


class QueueCounts:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def count(
        self, recipient: str, sender: str | None, cap: int, now_s: int, expires_at: int
    ) -> Counted | None:
        """Count one more message in the recipient's queue (from `sender`, if given);
        None (nothing written) when it holds `cap` of them already."""
        key = count_key(recipient, sender)
        values = {":one": {"N": "1"}, ":now": {"N": str(now_s)}, ":exp": {"N": str(expires_at)}}
        try:
            with dynamodb_errors():
                # No live counter: this message is its first.
                answer = self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET n = :one, expiresAt = :exp",
                    ConditionExpression="attribute_not_exists(n) OR expiresAt < :now",
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            return Counted(key, True, answer.get("Attributes"))
        except ConditionFailed as failed:
            held = _number(failed.item, "n")
            if held is not None and held >= cap:
                return None  # full: refused without a second call
        try:
            with dynamodb_errors():
                answer = self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="ADD n :one SET expiresAt = :exp",
                    ConditionExpression="n < :cap AND expiresAt >= :now",
                    ExpressionAttributeValues=values | {":cap": {"N": str(cap)}},
                    ReturnValues="UPDATED_OLD",
                )
        except ConditionFailed:
            return None  # filled meanwhile (or it expired meanwhile: the client resends)
        return Counted(key, False, answer.get("Attributes"))

    def undo(self, counted: Counted) -> None:
        """Take back one `count` (a message refused by the other cap, or a resend): the
        counter holds what it held before, give or take what others counted meanwhile.
        UpdateItem only (the functions may do nothing else on this table): a counter this
        message started stays, at zero, until it expires."""
        old = counted.old or {}
        if counted.fresh and "n" in old and "expiresAt" in old:
            # It replaced an expired counter: put that back as it was.
            update = "SET n = :n, expiresAt = :exp"
            values = {":n": old["n"], ":exp": old["expiresAt"]}
        elif not counted.fresh and "expiresAt" in old:
            update = "ADD n :minus SET expiresAt = :exp"
            values = {":minus": {"N": "-1"}, ":exp": old["expiresAt"]}
        else:
            update, values = "ADD n :minus", {":minus": {"N": "-1"}}
        self._client.update_item(
            TableName=self._table,
            Key=counted.key,
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )

    def release(self, recipient: str, by_sender: Mapping[str, int]) -> None:
        """Count out messages that left the recipient's queue (acknowledged): one write for
        the queue and one per sender. A counter that already counts fewer (it started
        again after an expiry) is left alone: it never goes below zero."""
        total = sum(by_sender.values())
        for sender, released in [(None, total), *by_sender.items()]:
            try:
                with dynamodb_errors():
                    self._client.update_item(
                        TableName=self._table,
                        Key=count_key(recipient, sender),
                        UpdateExpression="ADD n :minus",
                        ConditionExpression="n >= :k",
                        ExpressionAttributeValues={
                            ":minus": {"N": str(-released)},
                            ":k": {"N": str(released)},
                        },
                    )
            except ConditionFailed:
                continue


def count_key(recipient: str, sender: str | None) -> dict[str, Any]:
    sk = QUEUE_COUNT if sender is None else SENDER_COUNT_PREFIX + sender
    return {"pk": {"S": user_key(recipient)}, "sk": {"S": sk}}


def _number(item: Mapping[str, Any] | None, name: str) -> int | None:
    if not item or name not in item:
        return None
    return int(item[name]["N"])
